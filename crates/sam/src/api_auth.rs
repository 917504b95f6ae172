//! `Auth` of a REST API and of its `Api` events, as SAM writes it into the Swagger body: Lambda
//! (TOKEN, REQUEST) and Cognito authorizers as `securityDefinitions`, a default authorizer and
//! API keys on every method, per-method authorizers, `AWS_IAM`, and the permissions that let API
//! Gateway call Lambda authorizers. Resource policies and usage plans are refused by name.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::Event;
use crate::model::Cfn;
use crate::swagger::{self, INTEGRATION};

const FIELDS: &[&str] = &[
    "Authorizers",
    "DefaultAuthorizer",
    "InvokeRole",
    "AddDefaultAuthorizerToCorsPreflight",
    "AddApiKeyRequiredToCorsPreflight",
    "ApiKeyRequired",
    "ResourcePolicy",
    "UsagePlan",
];

/// One entry of `Auth.Authorizers` (or the implicit `AWS_IAM` one).
struct Authorizer {
    name: String,
    config: Map<String, Value>,
    aws_iam: bool,
}

impl Authorizer {
    fn get(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    fn kind(&self) -> &'static str {
        if self.aws_iam {
            "AWS_IAM"
        } else if self.get("UserPoolArn").is_some_and(crate::function::truthy) {
            "COGNITO_USER_POOLS"
        } else {
            "LAMBDA"
        }
    }

    fn payload(&self) -> String {
        self.get("FunctionPayloadType").and_then(Value::as_str).unwrap_or("TOKEN").to_string()
    }

    fn identity(&self) -> Option<&Map<String, Value>> {
        self.get("Identity").and_then(Value::as_object)
    }

    fn scopes(&self) -> Value {
        self.get("AuthorizationScopes").cloned().unwrap_or_else(|| json!([]))
    }

    fn swagger(&self, partition: &str) -> Value {
        let header =
            self.identity().and_then(|i| i.get("Header")).cloned().unwrap_or_else(|| json!("Authorization"));
        let name =
            if self.kind() == "LAMBDA" && self.payload() == "REQUEST" { json!("Unused") } else { header };
        let mut out = Map::new();
        out.insert("type".into(), json!("apiKey"));
        out.insert("name".into(), name);
        out.insert("in".into(), json!("header"));
        let authtype = match self.kind() {
            "AWS_IAM" => "awsSigv4",
            "COGNITO_USER_POOLS" => "cognito_user_pools",
            _ => "custom",
        };
        out.insert("x-amazon-apigateway-authtype".into(), json!(authtype));
        let mut authorizer = Map::new();
        match self.kind() {
            "COGNITO_USER_POOLS" => {
                authorizer.insert("type".into(), json!("cognito_user_pools"));
                let arns = match self.get("UserPoolArn") {
                    Some(Value::Array(list)) => Value::Array(list.clone()),
                    Some(one) => json!([one]),
                    None => json!([]),
                };
                authorizer.insert("providerARNs".into(), arns);
            }
            "LAMBDA" => {
                let payload = self.payload();
                authorizer.insert("type".into(), json!(payload.to_ascii_lowercase()));
                authorizer.insert(
                    "authorizerUri".into(),
                    json!({"Fn::Sub": [
                        format!("arn:{partition}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{__FunctionArn__}}/invocations"),
                        {"__FunctionArn__": self.get("FunctionArn").cloned().unwrap_or(Value::Null)}
                    ]}),
                );
                if let Some(ttl) =
                    self.identity().and_then(|i| i.get("ReauthorizeEvery")).filter(|v| !v.is_null())
                {
                    authorizer.insert("authorizerResultTtlInSeconds".into(), ttl.clone());
                }
                if let Some(role) = self.get("FunctionInvokeRole").filter(|r| r.as_str() != Some("NONE")) {
                    authorizer.insert("authorizerCredentials".into(), role.clone());
                }
                if payload == "REQUEST" {
                    let source = identity_source(self.identity());
                    if !source.is_empty() {
                        authorizer.insert("identitySource".into(), json!(source));
                    }
                }
            }
            _ => {}
        }
        let token = self.kind() == "LAMBDA" && self.payload() == "TOKEN";
        if self.kind() == "COGNITO_USER_POOLS" || token {
            if let Some(expr) =
                self.identity().and_then(|i| i.get("ValidationExpression")).filter(|v| !v.is_null())
            {
                authorizer.insert("identityValidationExpression".into(), expr.clone());
            }
        }
        if !authorizer.is_empty() {
            out.insert("x-amazon-apigateway-authorizer".into(), Value::Object(authorizer));
        }
        Value::Object(out)
    }
}

fn identity_source(identity: Option<&Map<String, Value>>) -> String {
    let mut parts = vec![];
    for (key, prefix) in [
        ("Headers", "method.request.header."),
        ("QueryStrings", "method.request.querystring."),
        ("StageVariables", "stageVariables."),
        ("Context", "context."),
    ] {
        for item in identity.and_then(|i| i.get(key)).and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = item.as_str() {
                parts.push(format!("{prefix}{s}"));
            }
        }
    }
    parts.join(", ")
}

fn authorizers(id: &str, auth: &Map<String, Value>, order: &[String]) -> Result<Vec<Authorizer>> {
    let mut list = vec![];
    if auth.get("DefaultAuthorizer").and_then(Value::as_str) == Some("AWS_IAM") {
        list.push(Authorizer { name: "AWS_IAM".into(), config: Map::new(), aws_iam: true });
    }
    let Some(config) = auth.get("Authorizers").filter(|v| crate::function::truthy(v)) else {
        return Ok(list);
    };
    let Some(config) = config.as_object() else {
        return Err(ResourceError::new(id, "Property 'Auth.Authorizers' should be a map."));
    };
    for name in order.iter().filter(|n| config.contains_key(*n)) {
        let Some(entry) = config[name].as_object() else {
            return Err(ResourceError::new(
                id,
                format!("Property 'Auth.Authorizers.{name}' should be a map."),
            ));
        };
        let a = Authorizer { name: name.clone(), config: entry.clone(), aws_iam: false };
        let payload = a.get("FunctionPayloadType").map(|p| p.as_str().unwrap_or("?").to_string());
        if let Some(p) = &payload {
            if p != "TOKEN" && p != "REQUEST" {
                return Err(ResourceError::new(
                    id,
                    format!("{name} Authorizer has invalid 'FunctionPayloadType': {p}."),
                ));
            }
        }
        if payload.as_deref() == Some("REQUEST") && missing_identity(a.identity()) {
            return Err(ResourceError::new(
                id,
                format!("{name} Authorizer must specify Identity with at least one of Headers, QueryStrings, StageVariables, or Context."),
            ));
        }
        list.retain(|x: &Authorizer| x.name != a.name);
        list.push(a);
    }
    Ok(list)
}

fn missing_identity(identity: Option<&Map<String, Value>>) -> bool {
    let Some(identity) = identity else { return true };
    let has = |k: &str| identity.get(k).is_some_and(crate::function::truthy);
    let missing = !has("Headers") && !has("QueryStrings") && !has("StageVariables") && !has("Context");
    match identity.get("ReauthorizeEvery").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok())) {
        None => missing,
        Some(ttl) => ttl > 0 && missing,
    }
}

/// What `Auth` of the API did to the body: the methods whose `security` it set.
pub(crate) struct ApiAuth {
    pub changed: Vec<(String, String)>,
}

/// `Auth` of an `AWS::Serverless::Api`: security definitions and defaults in the body.
pub(crate) fn add_api_auth(
    id: &str,
    body: &mut Value,
    auth: &Map<String, Value>,
    order: &[String],
    partition: &str,
) -> Result<ApiAuth> {
    if auth.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ResourceError::new(id, "Invalid value for 'Auth' property"));
    }
    for key in ["ResourcePolicy"] {
        if auth.get(key).is_some_and(crate::function::truthy) {
            return Err(ResourceError::new(
                id,
                format!("nimbus's SAM transform does not support property 'Auth.{key}' of AWS::Serverless::Api yet."),
            ));
        }
    }
    if !swagger::is_valid(Some(body)) {
        return Err(ResourceError::new(
            id,
            "Unable to add Auth configuration because 'DefinitionBody' does not contain a valid Swagger definition.",
        ));
    }
    let list = authorizers(id, auth, order)?;
    let mut changed = vec![];
    let mut definitions: Map<String, Value> =
        body.get("securityDefinitions").and_then(Value::as_object).cloned().unwrap_or_default();
    if !list.is_empty() {
        for a in &list {
            definitions.insert(a.name.clone(), a.swagger(partition));
        }
        if let Some(default) = auth.get("DefaultAuthorizer").filter(|v| crate::function::truthy(v)) {
            let Some(default) = default.as_str() else {
                return Err(ResourceError::new(id, "DefaultAuthorizer is not a string."));
            };
            if default != "AWS_IAM" && !list.iter().any(|a| a.name == default) {
                return Err(ResourceError::new(
                    id,
                    format!("Unable to set DefaultAuthorizer because '{default}' was not defined in 'Authorizers'."),
                ));
            }
            let preflight =
                auth.get("AddDefaultAuthorizerToCorsPreflight").and_then(Value::as_bool).unwrap_or(true);
            let scopes =
                list.iter().find(|a| a.name == default).map(Authorizer::scopes).unwrap_or_else(|| json!([]));
            let mut names: Vec<String> = list.iter().map(|a| a.name.clone()).collect();
            names.push("AWS_IAM".into());
            for_each_method(body, &mut |path, method, def| {
                if !preflight && method == "options" {
                    return;
                }
                let existing = def.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
                let (authz, mut other): (Vec<Value>, Vec<Value>) = existing
                    .into_iter()
                    .partition(|s| s.as_object().is_some_and(|m| m.keys().any(|k| names.contains(k))));
                let none = other.iter().position(|s| s.as_object().is_some_and(|m| m.contains_key("NONE")));
                let mut chosen = vec![];
                if let Some(i) = none {
                    other.remove(i);
                } else if !authz.is_empty() {
                    chosen = authz;
                } else {
                    let mut entry = Map::new();
                    entry.insert(default.to_string(), scopes.clone());
                    chosen = vec![Value::Object(entry)];
                }
                other.extend(chosen);
                if !other.is_empty() {
                    def.insert("security".into(), Value::Array(other));
                    changed.push((path.to_string(), method.to_string()));
                }
            });
        }
    }
    if auth.get("ApiKeyRequired").is_some_and(crate::function::truthy) {
        definitions
            .entry("api_key")
            .or_insert_with(|| json!({"type": "apiKey", "name": "x-api-key", "in": "header"}));
        let preflight = auth.get("AddApiKeyRequiredToCorsPreflight").and_then(Value::as_bool).unwrap_or(true);
        for_each_method(body, &mut |path, method, def| {
            let existing = def.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
            let is_key = |s: &Value| {
                s.as_object().is_some_and(|m| m.contains_key("api_key") || m.contains_key("api_key_false"))
            };
            let (mut keys, others): (Vec<Value>, Vec<Value>) = existing.iter().cloned().partition(is_key);
            let mut security = others.clone();
            match keys.iter().position(|s| s.get("api_key_false").is_some()) {
                Some(i) => {
                    keys.remove(i);
                }
                None => security.push(json!({"api_key": []})),
            }
            if method == "options" && !preflight {
                security = others;
            }
            if security != existing {
                def.insert("security".into(), Value::Array(security));
                changed.push((path.to_string(), method.to_string()));
            }
        });
    }
    let uses_iam = body_uses_aws_iam(body);
    if uses_iam {
        definitions.entry("AWS_IAM").or_insert_with(aws_iam_definition);
    }
    if !definitions.is_empty() {
        if let Some(b) = body.as_object_mut() {
            b.insert("securityDefinitions".into(), Value::Object(definitions));
        }
    }
    Ok(ApiAuth { changed })
}

fn aws_iam_definition() -> Value {
    json!({"x-amazon-apigateway-authtype": "awsSigv4", "type": "apiKey", "name": "Authorization", "in": "header"})
}

/// Whether some method's first security requirement is `AWS_IAM`.
fn body_uses_aws_iam(body: &mut Value) -> bool {
    let mut found = false;
    for_each_method(body, &mut |_, _, def| {
        if def.get("security").and_then(|s| s.get(0)).and_then(|s| s.get("AWS_IAM")).is_some() {
            found = true;
        }
    });
    found
}

/// Called with a method's path, name and definition.
type MethodFn<'a> = dyn FnMut(&str, &str, &mut Map<String, Value>) + 'a;

/// Every method with an integration, with its path and name.
fn for_each_method(body: &mut Value, f: &mut MethodFn<'_>) {
    let Some(paths) = body.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        for item in swagger::conditional_contents(item) {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, def) in item.iter_mut() {
                if matches!(method.as_str(), "summary" | "description" | "parameters") {
                    continue;
                }
                for def in swagger::conditional_contents(def) {
                    let Some(def) = def.as_object_mut() else { continue };
                    if def.get(INTEGRATION).is_some_and(crate::function::truthy) {
                        f(path, method, def);
                    }
                }
            }
        }
    }
}

/// `<Api><Name>AuthorizerPermission` for each Lambda authorizer.
pub(crate) fn permissions(
    id: &str,
    auth: &Map<String, Value>,
    order: &[String],
    attrs: &Map<String, Value>,
    partition: &str,
) -> Result<Vec<Cfn>> {
    let mut out = vec![];
    let mut without_default = auth.clone();
    without_default.remove("DefaultAuthorizer");
    for a in authorizers(id, &without_default, order)? {
        let Some(arn) = a.get("FunctionArn").filter(|v| crate::function::truthy(v)) else { continue };
        if a.get("DisableFunctionDefaultPermissions").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let mut p =
            Cfn::with(format!("{id}{}AuthorizerPermission", a.name), "AWS::Lambda::Permission", attrs);
        p.set("Action", "lambda:InvokeFunction");
        p.set("FunctionName", arn.clone());
        p.set("Principal", "apigateway.amazonaws.com");
        p.set(
            "SourceArn",
            json!({"Fn::Sub": [
                format!("arn:{partition}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{__ApiId__}}/authorizers/*"),
                {"__ApiId__": {"Ref": id}}
            ]}),
        );
        out.push(p);
    }
    Ok(out)
}

/// `Auth` of an `Api` event: its authorizer or API-key setting on the method.
pub(crate) fn add_event_auth(
    event: &Event<'_>,
    body: &mut Value,
    path: &str,
    method: &str,
    event_auth: &Map<String, Value>,
    api_auth: Option<&Map<String, Value>>,
) -> Result<()> {
    if event_auth.get("ResourcePolicy").is_some_and(crate::function::truthy) {
        return Err(event.error(
            "nimbus's SAM transform does not support property 'Auth.ResourcePolicy' of Api events yet.",
        ));
    }
    let authorizer = event_auth.get("Authorizer").filter(|v| crate::function::truthy(v));
    let api_authorizers = api_auth.and_then(|a| a.get("Authorizers")).filter(|v| crate::function::truthy(v));
    if let Some(authorizer) = authorizer {
        let name = authorizer.as_str();
        if name != Some("AWS_IAM") {
            if name != Some("NONE") {
                let Some(list) = api_authorizers else {
                    return Err(event.error(format!(
                        "Unable to set Authorizer [{}] on API method [{method}] for path [{path}] because the related API does not define any Authorizers.",
                        name.unwrap_or_default()
                    )));
                };
                if name.is_none() || !list.is_object() {
                    return Err(event.error(format!(
                        "Unable to set Authorizer [{authorizer}] on API method [{method}] for path [{path}]. The method authorizer must be a string with a corresponding dict entry in the api authorizer."
                    )));
                }
                if list.get(name.unwrap_or_default()).is_none() {
                    return Err(event.error(format!(
                        "Unable to set Authorizer [{}] on API method [{method}] for path [{path}] because it wasn't defined in the API's Authorizers.",
                        name.unwrap_or_default()
                    )));
                }
            } else if !api_auth.and_then(|a| a.get("DefaultAuthorizer")).is_some_and(crate::function::truthy)
            {
                return Err(event.error(format!(
                    "Unable to set Authorizer on API method [{method}] for path [{path}] because 'NONE' is only a valid value when a DefaultAuthorizer on the API is specified."
                )));
            }
        }
    }
    if event_auth.get("AuthorizationScopes").is_some_and(crate::function::truthy) && authorizer.is_none() {
        return Err(event.error("AuthorizationScopes works only when Authorizer is set"));
    }
    let key_required = event_auth.get("ApiKeyRequired").filter(|v| !v.is_null());
    let key_false = key_required.is_some_and(|v| !crate::function::truthy(v));
    if key_false && !api_auth.and_then(|a| a.get("ApiKeyRequired")).is_some_and(crate::function::truthy) {
        return Err(event.error(format!(
            "Unable to set ApiKeyRequired [False] on API method [{method}] for path [{path}] because the related API does not specify any ApiKeyRequired."
        )));
    }
    if authorizer.is_none() && key_required.is_none() {
        return Ok(());
    }
    let mut needs_iam = false;
    let mut needs_key = false;
    swagger::for_each_method(body, path, method, &mut |def| {
        let mut security = def.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(name) = authorizer.and_then(Value::as_str) {
            let mut scopes = json!([]);
            if name != "NONE" {
                if let Some(a) = api_authorizers.and_then(|l| l.get(name)) {
                    let own = a.get("AuthorizationScopes").cloned();
                    let chosen = event_auth.get("AuthorizationScopes").cloned().or(own);
                    if let Some(s) = chosen.filter(|s| !s.is_null()) {
                        scopes = s;
                    }
                }
            }
            let mut entry = Map::new();
            entry.insert(name.to_string(), scopes);
            security.push(Value::Object(entry));
            needs_iam |= security.first().and_then(|s| s.get("AWS_IAM")).is_some();
        }
        if let Some(required) = key_required {
            if crate::function::truthy(required) {
                security.push(json!({"api_key": []}));
                needs_key = true;
            } else {
                security.push(json!({"api_key_false": []}));
            }
        }
        def.insert("security".into(), Value::Array(security));
    });
    if needs_iam || needs_key {
        let Some(b) = body.as_object_mut() else { return Ok(()) };
        let defs = b.entry("securityDefinitions").or_insert_with(|| json!({}));
        if let Some(defs) = defs.as_object_mut() {
            if needs_iam {
                defs.entry("AWS_IAM").or_insert_with(aws_iam_definition);
            }
            if needs_key {
                defs.entry("api_key")
                    .or_insert_with(|| json!({"type": "apiKey", "name": "x-api-key", "in": "header"}));
            }
        }
    }
    Ok(())
}

/// The integration's `credentials` when the method is authorized with `AWS_IAM`.
pub(crate) fn iam_credentials(
    event_auth: Option<&Map<String, Value>>,
    api_auth: Option<&Map<String, Value>>,
    partition: &str,
) -> Option<Value> {
    let method_auth = event_auth.filter(|m| !m.is_empty());
    let iam = method_auth.and_then(|m| m.get("Authorizer")).and_then(Value::as_str) == Some("AWS_IAM")
        || (api_auth.and_then(|a| a.get("DefaultAuthorizer")).and_then(Value::as_str) == Some("AWS_IAM")
            && method_auth.is_none());
    if !iam {
        return None;
    }
    let role = |auth: Option<&Map<String, Value>>| -> Option<Value> {
        let auth = auth?;
        match auth.get("InvokeRole") {
            Some(v) if crate::function::truthy(v) => Some(v.clone()),
            Some(_) => Some(json!("NONE")),
            None => None,
        }
    };
    let chosen = role(method_auth).or_else(|| role(api_auth));
    match chosen {
        Some(v) if v == json!("NONE") => None,
        Some(v) if v != json!("CALLER_CREDENTIALS") => Some(v),
        _ => Some(json!(format!("arn:{partition}:iam::*:user/*"))),
    }
}
