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
                // Values travel as strings: keep a boolean or number member one.
                let current = target.get(last);
                let value = match value {
                    Value::String(s)
                        if current.is_some_and(Value::is_boolean) && (s == "true" || s == "false") =>
                    {
                        json!(s == "true")
                    }
                    Value::String(s) if current.is_some_and(Value::is_number) => {
                        s.parse::<i64>().map(|n| json!(n)).unwrap_or(Value::String(s))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_keep_types_and_edit_lists_and_maps() {
        let mut doc = json!({ "timeoutInMillis": 29000, "enabled": false, "binaryMediaTypes": ["a/b"] });
        let body = json!({ "patchOperations": [
            { "op": "replace", "path": "/timeoutInMillis", "value": "5000" },
            { "op": "replace", "path": "/enabled", "value": "true" },
            { "op": "add", "path": "/binaryMediaTypes/image~1gif" },
            { "op": "remove", "path": "/binaryMediaTypes/a~1b" },
            { "op": "replace", "path": "/variables/fn", "value": "echo" },
        ] });
        apply(&mut doc, &body).unwrap();
        assert_eq!(
            doc,
            json!({ "timeoutInMillis": 5000, "enabled": true, "binaryMediaTypes": ["image/gif"], "variables": { "fn": "echo" } })
        );
        assert!(apply(&mut doc, &json!({ "patchOperations": [{ "op": "move", "path": "/x" }] })).is_err());
    }
}
