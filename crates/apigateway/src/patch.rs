//! API Gateway's `patchOperations` (RFC 6902-like: `add`, `replace`, `remove` on `/a/b` paths
//! with `~1` for `/`), applied to a stored document.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::bad_request;

pub fn apply(doc: &mut Value, body: &Value) -> Result<(), AwsError> {
    let empty = Vec::new();
    let operations = body.get("patchOperations").and_then(Value::as_array).unwrap_or(&empty);
    for operation in operations {
        let op = operation["op"].as_str().unwrap_or("replace");
        let path = operation["path"].as_str().ok_or_else(|| bad_request("Invalid patch path null"))?;
        let parts: Vec<String> =
            path.split('/').skip(1).map(|p| p.replace("~1", "/").replace("~0", "~")).collect();
        let Some((last, parents)) = parts.split_last() else {
            return Err(bad_request(format!("Invalid patch path {path}")));
        };
        let mut target = &mut *doc;
        for part in parents {
            if !target.get(part).is_some_and(|v| v.is_object() || v.is_array()) {
                target[part.as_str()] = json!({});
            }
            target = &mut target[part.as_str()];
        }
        let value = operation.get("value").cloned().unwrap_or(Value::Null);
        match op {
            "remove" => {
                if let Some(list) = target.as_array_mut() {
                    list.retain(|v| v.as_str() != Some(last));
                } else if let Some(object) = target.as_object_mut() {
                    object.remove(last);
                }
            }
            // `add /binaryMediaTypes/image~1gif` appends to a list.
            "add" if target.is_array() || (parents.len() == 1 && value.is_null()) => {
                if !target.is_array() {
                    *target = json!([]);
                }
                if let Some(list) = target.as_array_mut() {
                    if !list.iter().any(|v| v.as_str() == Some(last)) {
                        list.push(json!(last));
                    }
                }
            }
            "add" | "replace" => {
                let value = match value {
                    Value::String(s) if s == "true" || s == "false" => {
                        if target.get(last).is_some_and(Value::is_boolean) {
                            json!(s == "true")
                        } else {
                            Value::String(s)
                        }
                    }
                    other => other,
                };
                target[last.as_str()] = value;
            }
            other => return Err(bad_request(format!("Invalid patch operation specified: {other}"))),
        }
    }
    Ok(())
}
