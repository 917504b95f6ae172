//! `Auth` of an HTTP API and of its `HttpApi` events, as SAM writes it into the OpenAPI body:
//! JWT (OAuth2) and Lambda (REQUEST) authorizers and `AWS_IAM` as `components.securitySchemes`,
//! a default authorizer on every route, per-route authorizers and scopes, and the permissions
//! that let API Gateway call Lambda authorizers.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::Event;
use crate::intrinsics::is_no_value;
use crate::model::Cfn;
use crate::swagger::{self, INTEGRATION};

const FIELDS: &[&str] = &["Authorizers", "DefaultAuthorizer", "EnableIamAuthorizer"];
const JWT_ONLY: &[(&str, &str)] = &[
    ("AuthorizationScopes", "OAuth2 Authorizer"),
    ("JwtConfiguration", "OAuth2 Authorizer"),
    ("IdentitySource", "OAuth2 Authorizer. For Lambda Authorizer, use the 'Identity' property instead"),
];
const LAMBDA_ONLY: &[(&str, &str)] = &[
    ("FunctionArn", "Lambda Authorizer"),
    ("FunctionInvokeRole", "Lambda Authorizer"),
    ("Identity", "Lambda Authorizer"),
    ("AuthorizerPayloadFormatVersion", "Lambda Authorizer"),
    ("EnableSimpleResponses", "Lambda Authorizer"),
    ("EnableFunctionDefaultPermissions", "Lambda Authorizer"),
];

struct Authorizer {
    name: String,
    config: Map<String, Value>,
    iam: bool,
}

impl Authorizer {
    fn get(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    fn jwt(&self) -> bool {
        self.get("JwtConfiguration").is_some_and(crate::function::truthy)
    }

    fn scopes(&self) -> Value {
        self.get("AuthorizationScopes").cloned().unwrap_or_else(|| json!([]))
    }

    fn openapi(&self, partition: &str) -> Value {
        if self.iam {
            return json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"});
        }
        if self.jwt() {
            let config: Map<String, Value> = self
                .get("JwtConfiguration")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                .unwrap_or_default();
            return json!({
                "type": "oauth2",
                "x-amazon-apigateway-authorizer": {
                    "jwtConfiguration": config,
                    "identitySource": self.get("IdentitySource").cloned().unwrap_or(Value::Null),
                    "type": "jwt"
                }
            });
        }
        let mut authorizer = Map::new();
        authorizer.insert("type".into(), json!("request"));
        authorizer.insert(
            "authorizerUri".into(),
            json!({"Fn::Sub": [
                format!("arn:{partition}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{__FunctionArn__}}/invocations"),
                {"__FunctionArn__": self.get("FunctionArn").cloned().unwrap_or(Value::Null)}
            ]}),
        );
        if let Some(role) = self
            .get("FunctionInvokeRole")
            .filter(|r| crate::function::truthy(r) && r.as_str() != Some("NONE"))
        {
            authorizer.insert("authorizerCredentials".into(), role.clone());
        }
        if let Some(identity) = self.get("Identity").and_then(Value::as_object) {
            if let Some(ttl) = identity.get("ReauthorizeEvery").filter(|v| !v.is_null()) {
                authorizer.insert("authorizerResultTtlInSeconds".into(), ttl.clone());
            }
            let mut sources = vec![];
            for (prefix, key) in [
                ("$request.header.", "Headers"),
                ("$request.querystring.", "QueryStrings"),
                ("$stageVariables.", "StageVariables"),
                ("$context.", "Context"),
            ] {
                for item in identity.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(s) = item.as_str() {
                        sources.push(json!(format!("{prefix}{s}")));
                    }
                }
            }
            authorizer.insert("identitySource".into(), Value::Array(sources));
        }
        authorizer.insert(
            "authorizerPayloadFormatVersion".into(),
            self.get("AuthorizerPayloadFormatVersion").cloned().unwrap_or(Value::Null),
        );
        if let Some(simple) = self.get("EnableSimpleResponses").filter(|v| crate::function::truthy(v)) {
            authorizer.insert("enableSimpleResponses".into(), simple.clone());
        }
        json!({"type": "apiKey", "name": "Unused", "in": "header", "x-amazon-apigateway-authorizer": authorizer})
    }
}

fn authorizers(id: &str, auth: &Map<String, Value>, order: &[String]) -> Result<Vec<Authorizer>> {
    let mut list = vec![];
    if auth.get("EnableIamAuthorizer") == Some(&json!(true)) {
        list.push(Authorizer { name: "AWS_IAM".into(), config: Map::new(), iam: true });
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
        if entry.contains_key("OpenIdConnectUrl") {
            return Err(ResourceError::new(id, format!(
                "'OpenIdConnectUrl' is no longer a supported property for authorizer '{name}'. Please refer to the AWS SAM documentation."
            )));
        }
        let a = Authorizer { name: name.clone(), config: entry.clone(), iam: false };
        if a.get("AuthorizationScopes").is_some_and(|s| !s.is_array()) {
            return Err(ResourceError::new(id, "AuthorizationScopes must be a list."));
        }
        let forbidden = if a.jwt() { LAMBDA_ONLY } else { JWT_ONLY };
        for (key, allowed_for) in forbidden {
            if a.get(key).is_some() {
                return Err(ResourceError::new(id, format!("{key} is only supported for {allowed_for}.")));
            }
        }
        if a.jwt() {
            if a.get("IdentitySource").is_none_or(|v| !crate::function::truthy(v)) {
                return Err(ResourceError::new(
                    id,
                    format!("{name} OAuth2 Authorizer must define 'IdentitySource'."),
                ));
            }
        } else {
            if a.get("FunctionArn").is_none_or(|v| !crate::function::truthy(v)) {
                return Err(ResourceError::new(
                    id,
                    format!("{name} Lambda Authorizer must define 'FunctionArn'."),
                ));
            }
            if a.get("AuthorizerPayloadFormatVersion").is_none_or(|v| !crate::function::truthy(v)) {
                return Err(ResourceError::new(
                    id,
                    format!("{name} Lambda Authorizer must define 'AuthorizerPayloadFormatVersion'."),
                ));
            }
        }
        list.retain(|x: &Authorizer| x.name != a.name);
        list.push(a);
    }
    Ok(list)
}

/// `Auth` of an `AWS::Serverless::HttpApi`.
pub(crate) fn add_http_auth(
    id: &str,
    body: &mut Value,
    auth: &Map<String, Value>,
    order: &[String],
    partition: &str,
) -> Result<()> {
    if auth.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ResourceError::new(id, "Invalid value for 'Auth' property"));
    }
    if !swagger::is_valid(Some(body)) || body.get("openapi").is_none() {
        return Err(ResourceError::new(
            id,
            "Unable to add Auth configuration because 'DefinitionBody' does not contain a valid OpenApi definition.",
        ));
    }
    let list = authorizers(id, auth, order)?;
    if let Some(default) =
        auth.get("DefaultAuthorizer").filter(|d| crate::function::truthy(d) && !is_no_value(d))
    {
        let Some(default) = default.as_str() else {
            return Err(ResourceError::new(id, "Property 'Auth.DefaultAuthorizer' should be a string."));
        };
        let Some(chosen) = list.iter().find(|a| a.name == default) else {
            return Err(ResourceError::new(
                id,
                format!(
                    "Unable to set DefaultAuthorizer because '{default}' was not defined in 'Authorizers'."
                ),
            ));
        };
        let scopes = chosen.scopes();
        if let Some(paths) = body.get_mut("paths").and_then(Value::as_object_mut) {
            for item in paths.values_mut() {
                for item in swagger::conditional_contents(item) {
                    let Some(item) = item.as_object_mut() else { continue };
                    for (method, def) in item.iter_mut() {
                        if method == "parameters" || method == "options" {
                            continue;
                        }
                        for def in swagger::conditional_contents(def) {
                            let Some(def) = def.as_object_mut() else { continue };
                            let has_integration = def.get(INTEGRATION).is_some_and(crate::function::truthy);
                            let secured = def.get("security").is_some_and(crate::function::truthy);
                            if has_integration && !secured {
                                let mut entry = Map::new();
                                entry.insert(default.to_string(), scopes.clone());
                                def.insert("security".into(), json!([entry]));
                            }
                        }
                    }
                }
            }
        }
    }
    if !list.is_empty() {
        let Some(doc) = body.as_object_mut() else { return Ok(()) };
        let components = doc.entry("components").or_insert_with(|| json!({}));
        if !components.is_object() || components.as_object().is_some_and(Map::is_empty) {
            *components = json!({});
        }
        let schemes =
            components.as_object_mut().map(|c| c.entry("securitySchemes").or_insert_with(|| json!({})));
        if let Some(Value::Object(schemes)) = schemes {
            for a in &list {
                schemes.insert(a.name.clone(), a.openapi(partition));
            }
        }
    }
    Ok(())
}

/// `<Api><Name>AuthorizerPermission` for Lambda authorizers with `EnableFunctionDefaultPermissions`.
pub(crate) fn permissions(
    id: &str,
    auth: &Map<String, Value>,
    order: &[String],
    attrs: &Map<String, Value>,
) -> Result<Vec<Cfn>> {
    let mut out = vec![];
    for a in authorizers(id, auth, order)? {
        let Some(arn) = a.get("FunctionArn").filter(|v| crate::function::truthy(v)) else { continue };
        if a.get("EnableFunctionDefaultPermissions") != Some(&json!(true)) {
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
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${__ApiId__}/authorizers/*",
                {"__ApiId__": {"Ref": id}}
            ]}),
        );
        out.push(p);
    }
    Ok(out)
}

/// `Auth` of an `HttpApi` event: its authorizer (or the API's default) on the route.
pub(crate) fn add_event_auth(
    event: &Event<'_>,
    body: &mut Value,
    path: &str,
    method: &str,
    event_auth: &Map<String, Value>,
    api_auth: Option<&Map<String, Value>>,
) -> Result<()> {
    let empty = Map::new();
    let api_auth = api_auth.unwrap_or(&empty);
    let authorizer = match event_auth.get("Authorizer").filter(|v| crate::function::truthy(v)) {
        Some(a) => a.clone(),
        None => match api_auth.get("DefaultAuthorizer").filter(|v| crate::function::truthy(v)) {
            Some(d) => d.clone(),
            None => {
                return Err(event.error(
                    "'Auth' section requires either an explicit 'Authorizer' set or a 'DefaultAuthorizer' configured on the HttpApi.",
                ))
            }
        },
    };
    let api_authorizers = api_auth.get("Authorizers").filter(|v| crate::function::truthy(v));
    let iam_enabled = api_auth.get("EnableIamAuthorizer") == Some(&json!(true));
    let name = authorizer.as_str();
    let skip_check = name == Some("NONE") || (name == Some("AWS_IAM") && iam_enabled);
    if !skip_check && (name.is_none() || !api_authorizers.is_none_or(Value::is_object)) {
        return Err(event.error(format!(
            "Unable to set Authorizer [{authorizer}] on API method [{method}] for path [{path}]. The method authorizer must be a string with a corresponding dict entry in the api authorizer."
        )));
    }
    let name = name.unwrap_or_default();
    if name == "NONE" {
        if !api_auth.get("DefaultAuthorizer").is_some_and(crate::function::truthy) {
            return Err(event.error(format!(
                "Unable to set Authorizer on API method [{method}] for path [{path}] because 'NONE' is only a valid value when a DefaultAuthorizer on the API is specified."
            )));
        }
    } else if !(name == "AWS_IAM" && iam_enabled) {
        let Some(list) = api_authorizers else {
            return Err(event.error(format!(
                "Unable to set Authorizer [{name}] on API method [{method}] for path [{path}] because the related API does not define any Authorizers."
            )));
        };
        if list.get(name).is_none() {
            return Err(event.error(format!(
                "Unable to set Authorizer [{name}] on API method [{method}] for path [{path}] because it wasn't defined in the API's Authorizers."
            )));
        }
    }
    let event_scopes = event_auth.get("AuthorizationScopes").filter(|v| !v.is_null());
    if event_scopes.is_some_and(|s| crate::function::truthy(s) && !s.is_array()) {
        return Err(event.error(format!(
            "Unable to set Authorizer on API method [{method}] for path [{path}] because 'AuthorizationScopes' must be a list of strings."
        )));
    }
    let mut scopes = json!([]);
    if name != "NONE" && name != "AWS_IAM" {
        let own =
            api_authorizers.and_then(|l| l.get(name)).and_then(|a| a.get("AuthorizationScopes")).cloned();
        let chosen = event_scopes.filter(|s| crate::function::truthy(s)).cloned().or(own);
        if let Some(s) = chosen.filter(crate::function::truthy) {
            scopes = s;
        }
    }
    swagger::for_each_method(body, path, method, &mut |def| {
        let mut security = def.get("security").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut entry = Map::new();
        entry.insert(name.to_string(), scopes.clone());
        security.push(Value::Object(entry));
        def.insert("security".into(), Value::Array(security));
    });
    Ok(())
}
