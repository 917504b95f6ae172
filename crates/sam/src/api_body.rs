//! The REST API properties SAM writes into the body as they are given: `GatewayResponses`
//! (`x-amazon-apigateway-gateway-responses`) and `Models` (`definitions`).

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
