//! `AWS::Serverless::HttpApi` and the implicit `ServerlessHttpApi`: an API Gateway v2 HTTP API
//! with an OpenAPI 3 body SAM writes (or the template's), a `$default` (or named) auto-deploying
//! stage, and a permission per `HttpApi` event. Also the implicit-API plugin both API kinds share.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{permission, Event, Target};
use crate::function::s3_location;
use crate::implicit::{add_implicit, ImplicitKind};
use crate::model::{check_known, passthrough_attrs, properties, resource_attrs, Cfn, Out};
use crate::swagger;

pub(crate) const IMPLICIT_ID: &str = "ServerlessHttpApi";

const KNOWN: &[&str] = &[
    "__MANAGE_SWAGGER",
    "Name",
    "StageName",
    "Tags",
    "PropagateTags",
    "DefinitionBody",
    "DefinitionUri",
    "StageVariables",
    "CorsConfiguration",
    "AccessLogSettings",
    "DefaultRouteSettings",
    "Auth",
    "RouteSettings",
    "Domain",
    "FailOnWarnings",
    "Description",
    "DisableExecuteApiEndpoint",
];
const UNSUPPORTED: &[&str] = &["Domain"];

pub(crate) fn add_implicit_http_api(
    sam: &mut Map<String, Value>,
    globals: Option<&Value>,
    source: &crate::SourceOrder,
    errors: &mut Vec<String>,
) -> Map<String, Value> {
    add_implicit(
        sam,
        globals,
        None,
        source,
        errors,
        &ImplicitKind {
            id: IMPLICIT_ID,
            condition_name: "ServerlessHttpApiCondition",
            event_type: "HttpApi",
            api_property: "ApiId",
            api_type: "AWS::Serverless::HttpApi",
            resource: json!({
                "Type": "AWS::Serverless::HttpApi",
                "Properties": {"DefinitionBody": swagger::openapi_skeleton(), "__MANAGE_SWAGGER": true}
            }),
        },
    )
}

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::HttpApi", &props, KNOWN)?;
    for key in UNSUPPORTED {
        if props.get(*key).is_some_and(crate::function::truthy) {
            return Err(ResourceError::new(
                id,
                format!("nimbus's SAM transform does not support property '{key}' of AWS::Serverless::HttpApi yet."),
            ));
        }
    }
    let get = |k: &str| props.get(k).filter(|v| crate::function::truthy(v)).cloned();
    let mut body = get("DefinitionBody");
    let uri = get("DefinitionUri");
    if body.is_some() && uri.is_some() {
        return Err(ResourceError::new(
            id,
            "Specify either 'DefinitionUri' or 'DefinitionBody' property and not both.",
        ));
    }
    let mut api = Cfn::with(id, "AWS::ApiGatewayV2::Api", &resource_attrs(resource));
    if let Some(d) = resource.get("DependsOn") {
        api.attrs.insert("DependsOn".into(), d.clone());
    }
    // Tags: SAM's own tag joins the template's, in the body (as x-amazon-apigateway-tag-value).
    let cors = props.get("CorsConfiguration").map(|c| out.params.resolve(c));
    if let Some(cors) = cors.filter(crate::function::truthy) {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Cors works only with inline OpenApi specified in 'DefinitionBody' property.",
            ));
        };
        crate::cors::add_http_cors(id, b, &cors)?;
    }
    let auth = props.get("Auth").and_then(Value::as_object).filter(|a| !a.is_empty()).cloned();
    let auth_order = auth
        .as_ref()
        .map(|a| {
            out.ctx.source_order.keys(
                &["Resources", id, "Properties", "Auth", "Authorizers"],
                a.get("Authorizers").and_then(Value::as_object).unwrap_or(&Map::new()),
            )
        })
        .unwrap_or_default();
    if let Some(auth) = &auth {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Auth works only with inline OpenApi specified in the 'DefinitionBody' property.",
            ));
        };
        crate::http_auth::add_http_auth(id, b, auth, &auth_order, &out.ctx.partition)?;
    }
    let mut tags = props.get("Tags").and_then(Value::as_object).cloned();
    if props.get("Tags").is_some_and(crate::function::truthy) && body.is_none() {
        return Err(ResourceError::new(
            id,
            "Tags works only with inline OpenApi specified in the 'DefinitionBody' property.",
        ));
    }
    if let Some(b) = body.as_mut() {
        if swagger::is_valid(Some(b)) && b.get("openapi").is_some() {
            let t = tags.get_or_insert_with(Map::new);
            t.insert("httpapi:createdBy".into(), json!("SAM"));
            let list = b.as_object_mut().map(|m| m.entry("tags").or_insert_with(|| json!([])));
            let Some(Value::Array(list)) = list else {
                return Err(ResourceError::template("Tags in OpenApi DefinitionBody needs to be a list."));
            };
            for (name, value) in t.iter() {
                match list.iter_mut().find(|e| e.get("name").and_then(Value::as_str) == Some(name)) {
                    Some(existing) => existing["x-amazon-apigateway-tag-value"] = value.clone(),
                    None => list.push(json!({"name": name, "x-amazon-apigateway-tag-value": value})),
                }
            }
        } else if props.get("Tags").is_some_and(crate::function::truthy) {
            return Err(ResourceError::new(
                id,
                "Unable to add `Tags` because 'DefinitionBody' does not contain a valid OpenApi definition.",
            ));
        }
    }
    if let Some(fail) = get("FailOnWarnings") {
        api.set("FailOnWarnings", fail.clone());
    }
    if let Some(disable) = props.get("DisableExecuteApiEndpoint") {
        let Some(b) = body.as_mut().and_then(Value::as_object_mut) else {
            return Err(ResourceError::new(
                id,
                "DisableExecuteApiEndpoint works only within 'DefinitionBody' property.",
            ));
        };
        let servers = b.entry("servers").or_insert_with(|| json!([{}]));
        if let Some(list) = servers.as_array_mut() {
            for config in list {
                if let Some(c) = config.as_object_mut() {
                    c.insert(
                        "x-amazon-apigateway-endpoint-configuration".into(),
                        json!({"disableExecuteApiEndpoint": disable}),
                    );
                }
            }
        }
    }
    if let Some(name) = get("Name") {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Name works only with inline OpenApi specified in the 'DefinitionBody' property.",
            ));
        };
        if b.pointer("/info/title") != Some(&json!({"Ref": "AWS::StackName"})) {
            return Err(ResourceError::new(id, "Unable to set Name because it is already defined within inline OpenAPI specified in the 'DefinitionBody' property."));
        }
        b["info"]["title"] = name;
    }
    if let Some(description) = get("Description") {
        let Some(b) = body.as_mut() else {
            return Err(ResourceError::new(
                id,
                "Description works only with inline OpenApi specified in the 'DefinitionBody' property.",
            ));
        };
        if b.pointer("/info/description").is_some_and(crate::function::truthy) {
            return Err(ResourceError::new(id, "Unable to set Description because it is already defined within inline OpenAPI specified in the 'DefinitionBody' property."));
        }
        if let Some(info) = b.as_object_mut().map(|m| m.entry("info").or_insert_with(|| json!({}))) {
            info["description"] = description;
        }
    }
    if get("FailOnWarnings").is_some() {
        if let Some(paths) = body.as_mut().and_then(|b| b.get_mut("paths")).and_then(Value::as_object_mut) {
            if let Some(default) = paths.remove("$default") {
                paths.insert("/$default".into(), default);
            }
        }
    }
    if let Some(uri) = &uri {
        api.set(
            "BodyS3Location",
            Value::Object(s3_location(id, uri, "DefinitionUri", ("Bucket", "Key", "Version"))?),
        );
    } else if let Some(b) = body {
        api.set("Body", b);
    } else {
        return Err(ResourceError::new(id, "'DefinitionUri' or 'DefinitionBody' are required properties of an 'AWS::Serverless::HttpApi'. Add a value for one of these properties or add a 'HttpApi' event to an 'AWS::Serverless::Function'."));
    }

    let stage_name = get("StageName").unwrap_or_else(|| json!("$default"));
    let prefix = stage_name.as_str().unwrap_or("").to_string();
    let stage_id = if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("{id}{prefix}Stage")
    } else if prefix == "$default" {
        format!("{id}ApiGatewayDefaultStage")
    } else {
        crate::hash::logical_id(&format!("{id}Stage"), &json!(prefix))
    };
    let mut stage = Cfn::with(stage_id, "AWS::ApiGatewayV2::Stage", &passthrough_attrs(resource));
    stage.set("ApiId", json!({"Ref": id}));
    stage.set("StageName", stage_name);
    for key in ["StageVariables", "AccessLogSettings", "DefaultRouteSettings"] {
        stage.set_opt(key, props.get(key));
    }
    if let Some(t) = &tags {
        stage.set("Tags", Value::Object(t.clone()));
    }
    stage.set("AutoDeploy", true);
    stage.set_opt("RouteSettings", props.get("RouteSettings"));
    out.add_ref(id, "Stage", &stage.id.clone());
    let mut resources = vec![api, stage];
    if let Some(auth) = &auth {
        resources.extend(crate::http_auth::permissions(id, auth, &auth_order, &passthrough_attrs(resource))?);
    }
    out.add(id, resources)
}

/// An `HttpApi` event: a permission for API Gateway and the route's integration in the body.
pub(crate) fn event(out: &mut Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let api_ref = event.get("ApiId").cloned().unwrap_or(Value::Null);
    let api_id = match &api_ref {
        Value::Object(m) if m.contains_key("Ref") => m["Ref"].as_str().unwrap_or_default().to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let Some(api) = out.sam.get(&api_id).cloned() else {
        return Err(event.error(
            "ApiId must be a valid reference to an 'AWS::Serverless::HttpApi' resource in same template.",
        ));
    };
    let api_props = properties(&api);
    let path = event.get("Path").and_then(Value::as_str).unwrap_or_default().to_string();
    let method = event.get("Method").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let mut resources = vec![];
    let trimmed =
        if path.len() > 1 { path.strip_suffix('/').unwrap_or(&path).to_string() } else { path.clone() };
    let default_taken = api_props.get("DefinitionBody").is_some_and(|b| {
        integration_function(b, "$default", swagger::ANY_METHOD).as_deref()
            == Some(target.function_id.as_str())
    });
    if trimmed == "$default" || !default_taken {
        let arn_path = if trimmed == "$default" { String::new() } else { swagger::path_wildcards(&trimmed) };
        let arn_method = if method == "any" || method == swagger::ANY_METHOD {
            "*".to_string()
        } else {
            method.to_ascii_uppercase()
        };
        let resource = if method == "any" && arn_path == "/$default" {
            format!("${{__ApiId__}}/${{__Stage__}}{arn_path}")
        } else {
            format!("${{__ApiId__}}/${{__Stage__}}/{arn_method}{arn_path}")
        };
        let source_arn = json!({"Fn::Sub": [
            format!("arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"),
            {"__ApiId__": api_ref, "__Stage__": "*"}
        ]});
        resources.push(permission(&event.id, "", target, "apigateway.amazonaws.com", Some(source_arn), None));
    }
    let Some(mut body) = api_props.get("DefinitionBody").cloned() else { return Ok(resources) };
    let managed = api_props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true);
    if managed && swagger::has_integration(&body, &path, &method) {
        return Err(event.error(format!("API method '{method}' defined multiple times for path '{path}'.")));
    }
    let event_auth = match event.get("Auth") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()).filter(|m| !m.is_empty()),
        Some(_) => return Err(event.error("Property 'Auth' should be a map.")),
    };
    if !swagger::has_integration(&body, &path, &method) {
        let mut integration = Map::new();
        integration.insert("type".into(), json!("aws_proxy"));
        integration.insert("httpMethod".into(), json!("POST"));
        integration.insert("payloadFormatVersion".into(), json!("2.0"));
        let uri = json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/{}/invocations",
            swagger::shorthand(&target.arn)
        )});
        integration.insert("uri".into(), uri);
        swagger::add_lambda_integration(
            &mut body,
            &path,
            &method,
            integration,
            target.attrs.get("Condition"),
        )
        .map_err(|e| ResourceError::raw(e.message()))?;
        if path == "$default" && swagger::normalize_method(&method) == swagger::ANY_METHOD {
            if let Some(m) = body
                .pointer_mut(&format!("/paths/$default/{}", swagger::ANY_METHOD))
                .and_then(Value::as_object_mut)
            {
                m.insert("isDefaultRoute".into(), json!(true));
            }
        }
    }
    if let Some(auth) = &event_auth {
        let api_auth = api_props.get("Auth").and_then(Value::as_object);
        crate::http_auth::add_event_auth(event, &mut body, &path, &method, auth, api_auth)?;
    }
    let timeout = event.get("TimeoutInMillis").filter(|t| crate::function::truthy(t)).cloned();
    let params: Vec<String> = path_parameters(&path);
    let payload = event.get("PayloadFormatVersion").filter(|t| crate::function::truthy(t)).cloned();
    swagger::for_each_method(&mut body, &path, &method, &mut |def| {
        if let Some(t) = &timeout {
            def[swagger::INTEGRATION]["timeoutInMillis"] = t.clone();
        }
        if !params.is_empty() {
            let list = def.entry("parameters").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                for p in &params {
                    match list.iter_mut().find(|e| e.get("name").and_then(Value::as_str) == Some(p)) {
                        Some(existing) => {
                            existing["in"] = json!("path");
                            existing["required"] = json!(true);
                        }
                        None => list.push(json!({"name": p, "in": "path", "required": true})),
                    }
                }
            }
        }
        if let Some(v) = &payload {
            def[swagger::INTEGRATION]["payloadFormatVersion"] = v.clone();
        }
    });
    if let Some(props) =
        out.sam.get_mut(&api_id).and_then(|a| a.get_mut("Properties")).and_then(Value::as_object_mut)
    {
        props.insert("DefinitionBody".into(), body);
    }
    Ok(resources)
}

/// The names in `{…}` of a path.
fn path_parameters(path: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        out.push(rest[start + 1..start + end].to_string());
        rest = &rest[start + end + 1..];
    }
    out
}

/// The function whose ARN a path/method's integration URI names (`${Fn.Arn}`).
fn integration_function(body: &Value, path: &str, method: &str) -> Option<String> {
    let sub = body
        .get("paths")?
        .get(path)?
        .get(method)?
        .get(swagger::INTEGRATION)?
        .get("uri")?
        .get("Fn::Sub")?
        .as_str()?;
    // The first `<alphanumerics>.Arn` in the URI.
    let bytes = sub.as_bytes();
    let mut from = 0;
    while let Some(pos) = sub[from..].find(".Arn") {
        let end = from + pos;
        let start = sub[..end].rfind(|c: char| !c.is_ascii_alphanumeric()).map_or(0, |i| i + 1);
        if start < end && bytes[start].is_ascii_alphanumeric() {
            return Some(sub[start..end].to_string());
        }
        from = end + 4;
    }
    None
}
