//! The small part of a Swagger 2 / OpenAPI 3 editor the transform needs: paths and methods, and
//! Lambda proxy integrations, on documents that may wrap a path in `Fn::If`.

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::{is_if, is_no_value};

pub(crate) const ANY_METHOD: &str = "x-amazon-apigateway-any-method";
pub(crate) const INTEGRATION: &str = "x-amazon-apigateway-integration";

/// The body SAM starts an API with when the template gives none.
pub(crate) fn swagger_skeleton() -> Value {
    json!({"swagger": "2.0", "info": {"version": "1.0", "title": {"Ref": "AWS::StackName"}}, "paths": {}})
}

pub(crate) fn openapi_skeleton() -> Value {
    json!({"openapi": "3.0.1", "info": {"version": "1.0", "title": {"Ref": "AWS::StackName"}}, "paths": {}})
}

/// `ANY` → `x-amazon-apigateway-any-method`, others lower case.
pub(crate) fn normalize_method(method: &str) -> String {
    let m = method.to_ascii_lowercase();
    if m == "any" {
        ANY_METHOD.to_string()
    } else {
        m
    }
}

/// Whether a body is a Swagger or OpenAPI document the editor can work on.
pub(crate) fn is_valid(doc: Option<&Value>) -> bool {
    let Some(Value::Object(map)) = doc else { return false };
    let versioned = map.get("swagger").is_some_and(Value::is_string)
        || map.get("openapi").and_then(Value::as_str).is_some_and(|v| {
            let mut parts = v.split('.');
            matches!(parts.next(), Some("2" | "3")) && parts.next().is_some()
        });
    versioned && map.get("paths").is_some_and(Value::is_object)
}

fn paths(doc: &mut Value) -> Option<&mut Map<String, Value>> {
    doc.get_mut("paths").and_then(Value::as_object_mut)
}

/// The path items under a path: the item, or both branches of an `Fn::If` (NoValue skipped).
pub(crate) fn conditional_contents(item: &mut Value) -> Vec<&mut Value> {
    if is_if(item) {
        let branches = item["Fn::If"].as_array_mut().map(|a| a.iter_mut().skip(1)).into_iter().flatten();
        return branches.filter(|b| !is_no_value(b)).collect();
    }
    vec![item]
}

pub(crate) fn add_path(doc: &mut Value, path: &str, method: &str) -> Result<()> {
    let method = normalize_method(method);
    let Some(paths) = paths(doc) else { return Ok(()) };
    let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
    if !item.is_object() {
        return Err(ResourceError::template(&format!(
            "Value of '{path}' path must be a dictionary according to Swagger spec."
        )));
    }
    for item in conditional_contents(item) {
        if let Some(map) = item.as_object_mut() {
            map.entry(method.clone()).or_insert_with(|| json!({}));
        }
    }
    Ok(())
}

pub(crate) fn has_integration(doc: &Value, path: &str, method: &str) -> bool {
    let method = normalize_method(method);
    let Some(item) = doc.get("paths").and_then(|p| p.get(path)) else { return false };
    let mut item = item.clone();
    let contents = conditional_contents(&mut item);
    !contents.is_empty()
        && contents.iter().all(|i| {
            i.get(&method).is_some_and(|m| {
                let mut m = m.clone();
                conditional_contents(&mut m)
                    .iter()
                    .any(|d| d.get(INTEGRATION).is_some_and(crate::function::truthy))
            })
        })
}

/// Adds an `aws_proxy` integration calling `uri` at path/method (wrapped in `Fn::If` when the
/// function has a condition).
pub(crate) fn add_lambda_integration(
    doc: &mut Value,
    path: &str,
    method: &str,
    integration: Map<String, Value>,
    condition: Option<&Value>,
) -> Result<()> {
    let method = normalize_method(method);
    if has_integration(doc, path, &method) {
        return Err(ResourceError::template(&format!(
            "Lambda integration already exists on Path={path}, Method={method}"
        )));
    }
    add_path(doc, path, &method)?;
    let Some(item) = paths(doc).and_then(|p| p.get_mut(path)) else { return Ok(()) };
    for item in conditional_contents(item) {
        let Some(m) = item.get_mut(&method).and_then(Value::as_object_mut) else { continue };
        let mut integration = integration.clone();
        if let (Some(cond), Some(uri)) = (condition, integration.get("uri").cloned()) {
            integration.insert("uri".into(), json!({"Fn::If": [cond, uri, {"Ref": "AWS::NoValue"}]}));
        }
        m.insert(INTEGRATION.into(), Value::Object(integration));
        m.entry("responses").or_insert_with(|| json!({}));
        if let Some(cond) = condition {
            let body = Value::Object(m.clone());
            item[&method] = json!({"Fn::If": [cond, body, {"Ref": "AWS::NoValue"}]});
        }
    }
    Ok(())
}

/// Mutable access to every definition of path/method that has an integration.
pub(crate) fn for_each_method(
    doc: &mut Value,
    path: &str,
    method: &str,
    f: &mut dyn FnMut(&mut Map<String, Value>),
) {
    let method = normalize_method(method);
    let Some(item) = paths(doc).and_then(|p| p.get_mut(path)) else { return };
    for item in conditional_contents(item) {
        let Some(m) = item.get_mut(&method) else { continue };
        for def in conditional_contents(m) {
            if let Some(def) = def.as_object_mut() {
                if def.get(INTEGRATION).is_some_and(crate::function::truthy) {
                    f(def);
                }
            }
        }
    }
}

/// `{a}` and `{proxy+}` path parameters become `*`, for permission ARNs.
pub(crate) fn path_wildcards(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        let inner = &rest[start + 1..start + end];
        let name = inner.strip_suffix('+').unwrap_or(inner);
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        out.push_str(&rest[..start]);
        if valid {
            out.push('*');
        } else {
            out.push_str(&rest[start..start + end + 1]);
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// `{"Fn::GetAtt": [a, b]}` → `${a.b}`, `{"Ref": a}` → `${a}`.
pub(crate) fn shorthand(value: &Value) -> String {
    if let Some(Value::String(r)) = value.get("Ref") {
        return format!("${{{r}}}");
    }
    if let Some(Value::Array(items)) = value.get("Fn::GetAtt") {
        let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        return format!("${{{}}}", parts.join("."));
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_become_wildcards() {
        assert_eq!(path_wildcards("/items/{id}"), "/items/*");
        assert_eq!(path_wildcards("/{proxy+}"), "/*");
        assert_eq!(path_wildcards("/a/{b}/c/{d}"), "/a/*/c/*");
    }

    #[test]
    fn integrations_are_added_once() {
        let mut doc = swagger_skeleton();
        let mut integration = Map::new();
        integration.insert("type".into(), json!("aws_proxy"));
        add_lambda_integration(&mut doc, "/x", "GET", integration.clone(), None).unwrap();
        assert!(has_integration(&doc, "/x", "get"));
        assert_eq!(doc["paths"]["/x"]["get"]["responses"], json!({}));
        assert!(add_lambda_integration(&mut doc, "/x", "get", integration, None).is_err());
    }
}
