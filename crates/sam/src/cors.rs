//! CORS as SAM writes it: for a REST API (`Cors`), an `OPTIONS` mock method on every path that
//! has none; for an HTTP API (`CorsConfiguration`), the body's `x-amazon-apigateway-cors`.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::is_intrinsic;
use crate::swagger::{self, ANY_METHOD, INTEGRATION};

const WILDCARD: &str = "'*'";
/// An HTTP API's wildcard origin (unquoted: the value is not a header mapping expression).
const HTTP_WILDCARD: &str = "*";
const ALL_METHODS: &[&str] = &["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

/// The strings SAM writes itself into a REST body's CORS responses (plain in Python 2.7's str).
pub(crate) type SamStrings = Vec<String>;

/// `Cors` of an `AWS::Serverless::Api`.
pub(crate) fn add_rest_cors(
    id: &str,
    body: &mut Value,
    cors: &Value,
    sam_strings: &mut SamStrings,
) -> Result<()> {
    let mut origin = None;
    let mut headers = None;
    let mut methods = None;
    let mut max_age = None;
    let mut credentials = false;
    match cors {
        Value::String(_) => origin = Some(cors.clone()),
        v if is_intrinsic(v) => origin = Some(cors.clone()),
        Value::Object(map) => {
            for (k, v) in map {
                match k.as_str() {
                    "AllowOrigin" => origin = Some(v.clone()),
                    "AllowHeaders" => headers = Some(v.clone()).filter(crate::function::truthy),
                    "AllowMethods" => methods = Some(v.clone()).filter(crate::function::truthy),
                    "MaxAge" => max_age = Some(v.clone()).filter(|v| !v.is_null()),
                    "AllowCredentials" => credentials = v.as_bool() == Some(true),
                    other => {
                        return Err(ResourceError::new(
                            id,
                            format!("Invalid key '{other}' for 'Cors' property."),
                        ))
                    }
                }
            }
            if origin.is_none() {
                origin = Some(json!(WILDCARD));
                sam_strings.push(WILDCARD.to_string());
            }
        }
        _ => return Err(ResourceError::new(id, "Invalid value for 'Cors' property")),
    }
    if !swagger::is_valid(Some(body)) || body.get("swagger").is_none() && body.get("openapi").is_none() {
        return Err(ResourceError::new(
            id,
            "Unable to add Cors configuration because 'DefinitionBody' does not contain a valid Swagger definition.",
        ));
    }
    if credentials && origin.as_ref() == Some(&json!(WILDCARD)) {
        return Err(ResourceError::new(
            id,
            "Unable to add Cors configuration because 'AllowCredentials' can not be true when 'AllowOrigin' is \"'*'\" or not set",
        ));
    }
    let origin = origin.filter(crate::function::truthy);
    if credentials {
        sam_strings.push("'true'".to_string());
    }
    let Some(paths) = body.get_mut("paths").and_then(Value::as_object_mut) else { return Ok(()) };
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = paths.keys().cloned().collect();
    for path in names {
        let normalized = if path == "/" { path.clone() } else { path.trim_end_matches('/').to_string() };
        if !seen.insert(normalized) {
            continue;
        }
        let Some(item) = paths.get_mut(&path) else { continue };
        // Methods the translator computes for a path's first branch serve its other branches too.
        let mut path_methods = methods.clone();
        for item in swagger::conditional_contents(item) {
            let Some(map) = item.as_object_mut() else {
                return Err(ResourceError::new(
                    id,
                    format!("Value of '{path}' path must be a dictionary according to Swagger spec."),
                ));
            };
            if map.contains_key("options") {
                continue;
            }
            let Some(origin) = origin.clone() else {
                return Err(ResourceError::new(id, "Invalid input. Value for AllowedOrigins is required"));
            };
            let methods = match &path_methods {
                Some(m) => m.clone(),
                None => {
                    let computed = format!("'{}'", allowed_methods(map));
                    sam_strings.push(computed.clone());
                    path_methods = Some(json!(computed));
                    json!(computed)
                }
            };
            let options = options_method(origin, headers.clone(), methods, max_age.clone(), credentials);
            map.insert("options".into(), options);
        }
    }
    Ok(())
}

fn allowed_methods(item: &Map<String, Value>) -> String {
    let mut methods: Vec<String> = if item.contains_key(ANY_METHOD) {
        ALL_METHODS.iter().map(|m| m.to_string()).collect()
    } else {
        let mut m: Vec<String> = item.keys().map(|k| k.to_ascii_uppercase()).collect();
        m.push("OPTIONS".into());
        m
    };
    methods.sort();
    methods.dedup();
    methods.join(",")
}

fn options_method(
    origin: Value,
    headers: Option<Value>,
    methods: Value,
    max_age: Option<Value>,
    credentials: bool,
) -> Value {
    let key = |h: &str| format!("method.response.header.{h}");
    let mut params = Map::new();
    let mut response_headers = Map::new();
    params.insert(key("Access-Control-Allow-Origin"), origin);
    response_headers.insert("Access-Control-Allow-Origin".into(), json!({"type": "string"}));
    if let Some(h) = headers {
        params.insert(key("Access-Control-Allow-Headers"), h);
        response_headers.insert("Access-Control-Allow-Headers".into(), json!({"type": "string"}));
    }
    if crate::function::truthy(&methods) {
        params.insert(key("Access-Control-Allow-Methods"), methods);
        response_headers.insert("Access-Control-Allow-Methods".into(), json!({"type": "string"}));
    }
    if let Some(age) = max_age {
        params.insert(key("Access-Control-Max-Age"), age);
        response_headers.insert("Access-Control-Max-Age".into(), json!({"type": "integer"}));
    }
    if credentials {
        params.insert(key("Access-Control-Allow-Credentials"), json!("'true'"));
        response_headers.insert("Access-Control-Allow-Credentials".into(), json!({"type": "string"}));
    }
    json!({
        "summary": "CORS support",
        "consumes": ["application/json"],
        "produces": ["application/json"],
        INTEGRATION: {
            "type": "mock",
            "requestTemplates": {"application/json": "{\n  \"statusCode\" : 200\n}\n"},
            "responses": {"default": {
                "statusCode": "200",
                "responseParameters": params,
                "responseTemplates": {"application/json": "{}\n"}
            }}
        },
        "responses": {"200": {"description": "Default response for CORS method", "headers": response_headers}}
    })
}

/// `CorsConfiguration` of an `AWS::Serverless::HttpApi`.
pub(crate) fn add_http_cors(id: &str, body: &mut Value, cors: &Value) -> Result<()> {
    let mut config = Map::new();
    let fields =
        ["AllowMethods", "AllowHeaders", "AllowOrigins", "MaxAge", "ExposeHeaders", "AllowCredentials"];
    let origins_intrinsic = match cors {
        Value::Bool(_) => {
            config.insert("AllowOrigins".into(), json!([HTTP_WILDCARD]));
            false
        }
        v if is_intrinsic(v) => {
            config.insert("AllowOrigins".into(), v.clone());
            true
        }
        Value::Object(map) => {
            for (k, v) in map {
                if !fields.contains(&k.as_str()) {
                    return Err(ResourceError::new(id, format!("Invalid key '{k}' for 'Cors' property.")));
                }
                config.insert(k.clone(), v.clone());
            }
            config.get("AllowOrigins").is_some_and(is_intrinsic)
        }
        _ => return Err(ResourceError::new(id, "Invalid value for 'Cors' property.")),
    };
    if !swagger::is_valid(Some(body)) || body.get("openapi").is_none() {
        return Err(ResourceError::new(
            id,
            "Unable to add Cors configuration because 'DefinitionBody' does not contain a valid OpenApi definition.",
        ));
    }
    let credentials = config.get("AllowCredentials").and_then(Value::as_bool) == Some(true);
    if credentials && config.get("AllowOrigins") == Some(&json!([HTTP_WILDCARD])) {
        return Err(ResourceError::new(
            id,
            "Unable to add Cors configuration because 'AllowCredentials' can not be true when 'AllowOrigin' is \"'*'\" or not set.",
        ));
    }
    let Some(doc) = body.as_object_mut() else { return Ok(()) };
    let existing = doc.entry("x-amazon-apigateway-cors").or_insert_with(|| json!({}));
    let Some(existing) = existing.as_object_mut() else {
        return Err(ResourceError::template(
            "Value of 'x-amazon-apigateway-cors' must be a dictionary according to Swagger spec.",
        ));
    };
    if origins_intrinsic {
        // The translator renames the keys inside the intrinsic's JSON text (AllowOrigins → allowOrigins).
        let mut text = serde_json::to_string(&config["AllowOrigins"]).unwrap_or_default();
        for f in fields {
            let lower = format!("{}{}", f[..1].to_ascii_lowercase(), &f[1..]);
            text = text.replace(f, &lower);
        }
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
            existing.extend(m);
        }
    } else {
        for f in fields {
            let Some(v) = config.get(f) else { continue };
            let keep = match f {
                "MaxAge" => !v.is_null(),
                "AllowCredentials" => v.as_bool() == Some(true),
                _ => crate::function::truthy(v),
            };
            if keep {
                existing.insert(format!("{}{}", f[..1].to_ascii_lowercase(), &f[1..]), v.clone());
            }
        }
    }
    Ok(())
}
