//! `Api` events: a permission for API Gateway per event, and in a managed body the Lambda
//! proxy integration (with `TimeoutInMillis` and `RequestParameters`), recorded in the body's
//! Python 2.7 shadow as the translator's editor would write it.

use serde_json::{json, Map, Value};

use crate::api::escape;
use crate::error::{ResourceError, Result};
use crate::events::{permission, Event, Target};
use crate::model::{properties, Cfn, Out};
use crate::swagger;

/// An `Api` event: a permission for API Gateway, and the Lambda integration in the API's body.
pub(crate) fn event(out: &mut Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let api_ref = event.get("RestApiId").cloned().unwrap_or(Value::Null);
    let api_id = match &api_ref {
        Value::Object(m) if m.contains_key("Ref") => m["Ref"].clone(),
        other => other.clone(),
    };
    let Some(api_id) = api_id.as_str().map(str::to_string) else {
        return Err(event.error(
            "RestApiId must be a valid reference to an 'AWS::Serverless::Api' resource in same template.",
        ));
    };
    let Some(api) = out.sam.get(&api_id).filter(|a| a.is_object()).cloned() else {
        return Err(event
            .error("RestApiId property of Api event must reference a valid resource in the same template."));
    };
    let api_props = properties(&api);
    let suffix = match api_props.get("StageName") {
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ResourceError::new(&api_id, "StageName cannot be empty."))
        }
        Some(Value::String(s)) => s.clone(),
        _ => "Stage".to_string(),
    };
    let path = event.get("Path").and_then(Value::as_str).unwrap_or_default().to_string();
    let method = event.get("Method").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let trimmed = if path.len() > 1 { path.strip_suffix('/').unwrap_or(&path) } else { &path };
    let arn_method = if method == "any" { "*".to_string() } else { method.to_ascii_uppercase() };
    let resource = format!("${{__ApiId__}}/${{__Stage__}}/{arn_method}{}", swagger::path_wildcards(trimmed));
    let source_arn = json!({"Fn::Sub": [
        format!("arn:{}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:{resource}", out.ctx.partition),
        {"__ApiId__": api_ref, "__Stage__": "*"}
    ]});
    let perm = permission(&event.id, &suffix, target, "apigateway.amazonaws.com", Some(source_arn), None);

    if api_props.get("__MANAGE_SWAGGER").and_then(Value::as_bool) == Some(true) {
        let Some(mut body) = api_props.get("DefinitionBody").cloned() else { return Ok(vec![perm]) };
        if swagger::has_integration(&body, &path, &method) {
            return Err(
                event.error(format!("API method \"{method}\" defined multiple times for path \"{path}\"."))
            );
        }
        let api_auth =
            api_props.get("Auth").map(|a| out.params.resolve(a)).and_then(|a| a.as_object().cloned());
        let event_auth = match event.get("Auth") {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(event.error("Property 'Auth' should be a map.")),
        };
        let mut integration = Map::new();
        integration.insert("type".into(), json!("aws_proxy"));
        integration.insert("httpMethod".into(), json!("POST"));
        integration.insert(
            "uri".into(),
            integration_uri(&target.arn, &out.ctx.partition, event.get("ResponseTransferMode")),
        );
        if event.get("ResponseTransferMode").and_then(Value::as_str) == Some("RESPONSE_STREAM") {
            integration.insert("responseTransferMode".into(), json!("STREAM"));
        }
        if let Some(credentials) =
            crate::api_auth::iam_credentials(event_auth.as_ref(), api_auth.as_ref(), &out.ctx.partition)
        {
            integration.insert("credentials".into(), credentials);
        }
        swagger::add_lambda_integration(
            &mut body,
            &path,
            &method,
            integration,
            target.attrs.get("Condition"),
        )
        .map_err(|e| ResourceError::raw(e.message()))?;
        if let Some(timeout) = event.get("TimeoutInMillis").filter(|t| crate::function::truthy(t)) {
            swagger::for_each_method(&mut body, &path, &method, &mut |def| {
                if let Some(i) = def.get_mut(swagger::INTEGRATION).and_then(Value::as_object_mut) {
                    i.insert("timeoutInMillis".into(), timeout.clone());
                }
            });
        }
        if let Some(auth) = event_auth.as_ref().filter(|a| !a.is_empty()) {
            crate::api_auth::add_event_auth(event, &mut body, &path, &method, auth, api_auth.as_ref())?;
        }
        let validators_before = body.get("x-amazon-apigateway-request-validators").cloned();
        if let Some(model) = event.get("RequestModel").filter(|m| crate::function::truthy(m)) {
            request_model(event, &mut body, &path, &method, model, api_props.get("Models"))?;
        }
        let parameters = request_parameters(event)?;
        if !parameters.is_empty() {
            swagger::for_each_method(&mut body, &path, &method, &mut |def| {
                let mut cache = vec![];
                let list = def.entry("parameters").or_insert_with(|| json!([]));
                for (name, param, caching) in &parameters {
                    if let Some(list) = list.as_array_mut() {
                        list.push(param.clone());
                    }
                    if *caching {
                        cache.push(json!(name));
                    }
                }
                if !cache.is_empty() {
                    if let Some(i) = def.get_mut(swagger::INTEGRATION).and_then(Value::as_object_mut) {
                        let keys = i.entry("cacheKeyParameters").or_insert_with(|| json!([]));
                        if let Some(keys) = keys.as_array_mut() {
                            keys.extend(cache);
                        }
                    }
                }
            });
        }
        let method_key = swagger::normalize_method(&method);
        if let (Some(shadow), None) = (out.shadows.get_mut(&api_id), target.attrs.get("Condition")) {
            let pointer = format!("/paths/{}/{}", escape(&path), escape(&method_key));
            let definition = body.pointer(&pointer).cloned().unwrap_or(Value::Null);
            let validators = body.get("x-amazon-apigateway-request-validators").cloned();
            let new_validators = (validators != validators_before).then_some(validators).flatten();
            shadow.round(|s| {
                if let Some(v) = &new_validators {
                    s.set(&[], "x-amazon-apigateway-request-validators", v);
                }
                s.set_default(&["paths"], &path);
                s.set_default(&["paths", &path], &method_key);
                let m = ["paths", path.as_str(), method_key.as_str()];
                if let Some(i) = definition.get(swagger::INTEGRATION) {
                    let mut first = i.clone();
                    if let Some(f) = first.as_object_mut() {
                        f.remove("timeoutInMillis");
                        f.remove("cacheKeyParameters");
                    }
                    s.set(&m, swagger::INTEGRATION, &first);
                    s.set_default(&m, "responses");
                    // The event's own authorizer (or NONE) and API key setting.
                    if let Some(security) = definition.get("security") {
                        s.set(&m, "security", security);
                    }
                    let i_path = ["paths", path.as_str(), method_key.as_str(), swagger::INTEGRATION];
                    if let Some(t) = i.get("timeoutInMillis") {
                        s.set(&i_path, "timeoutInMillis", t);
                    }
                    if let Some(p) = definition.get("parameters") {
                        s.set(&m, "parameters", p);
                    }
                    if let Some(v) = definition.get("requestBody") {
                        s.set(&m, "requestBody", v);
                    }
                    if let Some(v) = definition.get("x-amazon-apigateway-request-validator") {
                        s.set(&m, "x-amazon-apigateway-request-validator", v);
                    }
                    if let Some(c) = i.get("cacheKeyParameters") {
                        s.set(&i_path, "cacheKeyParameters", c);
                    }
                }
            });
        }
        if let Some(props) =
            out.sam.get_mut(&api_id).and_then(|a| a.get_mut("Properties")).and_then(Value::as_object_mut)
        {
            props.insert("DefinitionBody".into(), body);
        }
    }
    Ok(vec![perm])
}

pub(crate) fn integration_uri(function_arn: &Value, partition: &str, mode: Option<&Value>) -> Value {
    let (version, path) = if mode.and_then(Value::as_str) == Some("RESPONSE_STREAM") {
        ("2021-11-15", "/response-streaming-invocations")
    } else {
        ("2015-03-31", "/invocations")
    };
    json!({"Fn::Sub": format!(
        "arn:{partition}:apigateway:${{AWS::Region}}:lambda:path/{version}/functions/{}{path}",
        swagger::shorthand(function_arn)
    )})
}

/// `RequestParameters` of an `Api` event: (name, Swagger parameter, caching).
fn request_parameters(event: &Event<'_>) -> Result<Vec<(String, Value, bool)>> {
    let Some(list) = event.get("RequestParameters") else { return Ok(vec![]) };
    let Some(list) = list.as_array() else {
        return Err(event.error("Property 'RequestParameters' should be a list."));
    };
    let key_error = "Invalid value for 'RequestParameters' property. Keys must be in the format \
                     'method.request.[querystring|path|header].{value}', e.g 'method.request.header.Authorization'.";
    let valid = |name: &str| {
        ["method.request.querystring.", "method.request.path.", "method.request.header."]
            .iter()
            .any(|p| name.starts_with(p))
    };
    let mut out = vec![];
    for parameter in list {
        let (name, required, caching) = match parameter {
            Value::String(name) => {
                if !valid(name) {
                    return Err(event.error(key_error));
                }
                (name.clone(), json!(false), false)
            }
            Value::Object(map) if map.len() == 1 => {
                let (name, settings) = map.iter().next().expect("one entry");
                if !valid(name) {
                    return Err(event.error(key_error));
                }
                let ok = settings.as_object().is_some_and(|s| s.keys().all(|k| k == "Required" || k == "Caching"));
                if !ok {
                    return Err(event.error(
                        "Invalid value for 'RequestParameters' property. Values must be an object, e.g { Required: true, Caching: false }",
                    ));
                }
                let required = settings.get("Required").cloned().unwrap_or(json!(false));
                let caching = crate::function::truthy(settings.get("Caching").unwrap_or(&json!(false)));
                (name.clone(), required, caching)
            }
            _ => {
                return Err(event.error(
                    "Invalid value for 'RequestParameters' property. Property must be either a string or an object",
                ))
            }
        };
        let location_name = name.trim_start_matches("method.request.");
        let (location, param) = location_name.split_once('.').unwrap_or((location_name, ""));
        let location = if location == "querystring" { "query" } else { location };
        let swagger_param = json!({"in": location, "name": param, "required": required, "type": "string"});
        out.push((name, swagger_param, caching));
    }
    Ok(out)
}

/// `RequestModel` of an `Api` event: the model as the method's body parameter (or OpenAPI
/// `requestBody`), and a request validator when asked for.
fn request_model(
    event: &Event<'_>,
    body: &mut Value,
    path: &str,
    method: &str,
    model: &Value,
    api_models: Option<&Value>,
) -> Result<()> {
    let Some(model) = model.as_object() else {
        return Err(event.error("Property 'RequestModel' should be a map."));
    };
    let Some(name) = model.get("Model").filter(|m| crate::function::truthy(m)) else { return Ok(()) };
    let shown = name.as_str().map(str::to_string).unwrap_or_else(|| name.to_string());
    let unable = |why: &str| {
        event.error(format!(
            "Unable to set RequestModel [{shown}] on API method [{method}] for path [{path}] {why}"
        ))
    };
    let Some(models) = api_models.filter(|m| crate::function::truthy(m)) else {
        return Err(unable("because the related API does not define any Models."));
    };
    if !crate::intrinsics::is_intrinsic(models) && !models.is_object() {
        return Err(unable("because the related API Models defined is of invalid type."));
    }
    let Some(name) = name.as_str() else {
        return Err(unable("because the related API does not contain valid Models."));
    };
    if !models.get(name).is_some_and(crate::function::truthy) {
        return Err(unable("because it wasn't defined in the API's Models."));
    }
    let lower = name.to_lowercase();
    let required = model.get("Required").filter(|v| !v.is_null()).cloned();
    let swagger2 = body.get("swagger").is_some_and(|v| !v.is_null());
    let openapi3 = body.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with('3'));
    swagger::for_each_method(body, path, method, &mut |def| {
        if swagger2 {
            let mut parameter = Map::new();
            parameter.insert("in".into(), json!("body"));
            parameter.insert("name".into(), json!(lower));
            parameter.insert("schema".into(), json!({"$ref": format!("#/definitions/{lower}")}));
            if let Some(r) = &required {
                parameter.insert("required".into(), r.clone());
            }
            let list = def.entry("parameters").or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(Value::Object(parameter));
            }
        } else if openapi3 {
            let mut request_body = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{lower}")}}}});
            if let Some(r) = &required {
                request_body["required"] = r.clone();
            }
            def.insert("requestBody".into(), request_body);
        }
    });
    let validate_body = model.get("ValidateBody").filter(|v| !v.is_null());
    let validate_parameters = model.get("ValidateParameters").filter(|v| !v.is_null());
    if validate_body.is_none() && validate_parameters.is_none() {
        return Ok(());
    }
    let (Some(vb), Some(vp)) = (
        validate_body.map_or(Some(false), Value::as_bool),
        validate_parameters.map_or(Some(false), Value::as_bool),
    ) else {
        return Err(event.error(format!(
            "Unable to set Validator to RequestModel [{shown}] on API method [{method}] for path [{path}] ValidateBody and ValidateParameters must be a boolean type, strings or intrinsics are not supported."
        )));
    };
    let validator = match (vb, vp) {
        (true, true) => "body-and-params",
        (true, false) => "body-only",
        (false, true) => "params-only",
        (false, false) => "no-validation",
    };
    if let Some(doc) = body.as_object_mut() {
        let all = doc.entry("x-amazon-apigateway-request-validators").or_insert_with(|| json!({}));
        if !crate::function::truthy(all) {
            *all = json!({});
        }
        if let Some(all) = all.as_object_mut() {
            all.entry(validator)
                .or_insert_with(|| json!({"validateRequestBody": vb, "validateRequestParameters": vp}));
        }
    }
    swagger::for_each_method(body, path, method, &mut |def| {
        def.insert("x-amazon-apigateway-request-validator".into(), json!(validator));
    });
    Ok(())
}
