//! What SAM writes into a REST API body from properties given as they are: `GatewayResponses`
//! (`x-amazon-apigateway-gateway-responses`), `Models` (`definitions`), binary media types, and
//! the OpenAPI 3 pass over the body.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::is_intrinsic;

/// `GatewayResponses` as the body's `x-amazon-apigateway-gateway-responses`.
pub(crate) fn gateway_responses(id: &str, responses: &Map<String, Value>) -> Result<Value> {
    let mut out = match responses.is_empty() {
        true => return Ok(json!({})),
        false => Map::new(),
    };
    for (name, response) in responses {
        if is_intrinsic(response) {
            return Err(ResourceError::new(
                id,
                "Unable to set GatewayResponses attribute because intrinsic functions are not supported for this field.",
            ));
        }
        let Some(response) = response.as_object() else {
            return Err(ResourceError::new(
                id,
                format!("Invalid property type '{}' for GatewayResponses. Expected an object of type 'GatewayResponse'.", python_type(response)),
            ));
        };
        for key in response.keys() {
            if !matches!(key.as_str(), "ResponseParameters" | "ResponseTemplates" | "StatusCode") {
                return Err(ResourceError::new(
                    id,
                    format!("Invalid property '{key}' in 'GatewayResponses' property '{name}'."),
                ));
            }
        }
    }
    for (name, response) in responses {
        let params = response.get("ResponseParameters").filter(|v| crate::function::truthy(v));
        let mut prefixed = Map::new();
        if let Some(params) = params {
            let Some(params) = params.as_object() else {
                return Err(ResourceError::new(
                    id,
                    format!("Property 'GatewayResponses.{name}.ResponseParameters' should be a map."),
                ));
            };
            for key in params.keys() {
                if !matches!(key.as_str(), "Headers" | "Paths" | "QueryStrings") {
                    return Err(ResourceError::new(
                        id,
                        format!("Invalid gateway response parameter '{key}'"),
                    ));
                }
            }
            for (property, prefix) in
                [("Headers", "header."), ("Paths", "path."), ("QueryStrings", "querystring.")]
            {
                let Some(values) = params.get(property) else { continue };
                let Some(values) = values.as_object() else {
                    return Err(ResourceError::new(
                        id,
                        format!("Property 'ResponseParameters.{property}' should be a map."),
                    ));
                };
                for (k, v) in values {
                    prefixed.insert(format!("gatewayresponse.{prefix}{k}"), v.clone());
                }
            }
        }
        let mut swagger = Map::new();
        swagger.insert("responseParameters".into(), Value::Object(prefixed));
        let templates = response.get("ResponseTemplates").filter(|v| crate::function::truthy(v)).cloned();
        swagger.insert("responseTemplates".into(), templates.unwrap_or_else(|| json!({})));
        if let Some(code) = response.get("StatusCode").filter(|v| !v.is_null()) {
            let text = match code {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !(1..=3).contains(&text.len()) || !text.chars().all(|c| c.is_ascii_digit()) {
                return Err(ResourceError::new(id, "Property 'StatusCode' must be numeric"));
            }
            if crate::function::truthy(code) {
                swagger.insert("statusCode".into(), json!(text));
            }
        }
        out.insert(name.clone(), Value::Object(swagger));
    }
    Ok(Value::Object(out))
}

fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `Models` as the body's `definitions` (names lower-cased, as SAM writes them).
pub(crate) fn models(id: &str, models: &Map<String, Value>, existing: Option<&Value>) -> Result<Value> {
    if !models.values().all(Value::is_object) {
        return Err(ResourceError::new(id, "Invalid value for 'Models' property"));
    }
    let mut out = existing.and_then(Value::as_object).cloned().unwrap_or_default();
    for (name, schema) in models {
        if !schema.get("type").is_some_and(crate::function::truthy) {
            return Err(ResourceError::template("'Models' schema is missing 'type'."));
        }
        out.insert(name.to_lowercase(), schema.clone());
    }
    Ok(Value::Object(out))
}

/// OpenApiVersion 3: securityDefinitions and definitions move under components, and CORS
/// methods lose `consumes`/`produces` and get their headers wrapped in `schema` — again at each
/// of the translator's passes (after Auth, after Models and at the end), as it does.
pub(crate) fn openapi_postprocess(
    body: &mut Value,
    version: Option<&Value>,
    shadow: &mut crate::py27::Shadow,
) {
    let Some(map) = body.as_object_mut() else { return };
    if map.get("swagger").is_some_and(|v| !v.is_null()) {
        return;
    }
    let version = match (map.get("openapi"), version) {
        (Some(v), None) => Some(v.clone()),
        (_, v) => v.cloned(),
    };
    let is3 = version.as_ref().and_then(Value::as_str).is_some_and(|v| v.starts_with('3'));
    if !is3 {
        return;
    }
    for (from, to) in [("securityDefinitions", "securitySchemes"), ("definitions", "schemas")] {
        if !map.get(from).is_some_and(crate::function::truthy) {
            continue;
        }
        let Some(v) = map.remove(from) else { continue };
        if !map.get("components").is_some_and(crate::function::truthy) {
            map.insert("components".into(), json!({}));
            shadow.set(&[], "components", &json!({}));
        }
        if let Some(c) = map.get_mut("components").and_then(Value::as_object_mut) {
            c.insert(to.into(), v);
        }
        shadow.move_under(from, "components", to);
    }
    let Some(paths) = map.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(options) = item.get_mut("options").filter(|o| crate::function::truthy(o)) else { continue };
        let Some(options) = options.as_object_mut() else { continue };
        for field in ["produces", "consumes"] {
            if options.remove(field).is_some() {
                shadow.remove(&["paths", path, "options"], field);
            }
        }
        let Some(headers) = options
            .get_mut("responses")
            .and_then(|r| r.get_mut("200"))
            .and_then(|r| r.get_mut("headers"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (header, value) in headers.iter_mut() {
            *value = json!({"schema": value.clone()});
            shadow.set(&["paths", path, "options", "responses", "200", "headers"], header, value);
        }
    }
}

/// The translator's `replace_recursively`: `~1` becomes `/` in every string and key, intrinsic
/// functions included.
pub(crate) fn unescape_media_type(value: &Value) -> Value {
    match value {
        Value::String(s) => json!(s.replace("~1", "/")),
        Value::Array(items) => Value::Array(items.iter().map(unescape_media_type).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.replace("~1", "/"), unescape_media_type(v))).collect())
        }
        other => other.clone(),
    }
}

/// The path items (or `Fn::If` branches of one) with an `options` method: where, and the method.
pub(crate) fn options_items(body: &Value) -> Vec<(Vec<String>, Value)> {
    let mut found = vec![];
    let Some(paths) = body.get("paths").and_then(Value::as_object) else { return found };
    for (path, item) in paths {
        let at = vec!["paths".to_string(), path.clone()];
        if let Some(options) = item.get("options") {
            found.push((at.clone(), options.clone()));
        }
        if let Some(Value::Array(branches)) = item.get("Fn::If") {
            for (i, branch) in branches.iter().enumerate().skip(1) {
                if let Some(options) = branch.get("options") {
                    let mut at = at.clone();
                    at.extend(["Fn::If".to_string(), format!("[{i}]")]);
                    found.push((at, options.clone()));
                }
            }
        }
    }
    found
}

/// Whether an `Api` event of this API names `AWS_IAM` as its own authorizer: the translator's
/// `AWS_IAM` security definition is then its own constant rather than the template's name.
pub(crate) fn event_iam_authorizer(out: &crate::model::Out, api: &str) -> bool {
    out.sam.values().filter_map(|r| r.pointer("/Properties/Events").and_then(Value::as_object)).any(
        |events| {
            events.values().any(|e| {
                let targets = match e.pointer("/Properties/RestApiId") {
                    Some(Value::Object(m)) => m.get("Ref").and_then(Value::as_str) == Some(api),
                    Some(Value::String(s)) => s == api,
                    None => api == crate::api::IMPLICIT_ID,
                    _ => false,
                };
                e.get("Type").and_then(Value::as_str) == Some("Api")
                    && targets
                    && e.pointer("/Properties/Auth/Authorizer").and_then(Value::as_str) == Some("AWS_IAM")
            })
        },
    )
}
