//! The little intrinsic resolution the translator does itself: `Ref` to a parameter (template
//! default, given value or pseudo parameter) and `${Param}` inside `Fn::Sub`, wherever a value
//! must be known at transform time (alias names, hashed ids, policy templates …).

use serde_json::{Map, Value};

use crate::Context;

#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    values: Map<String, Value>,
}

impl Params {
    /// Template defaults, then the given values, then `AWS::Region`, `AWS::AccountId`,
    /// `AWS::StackName`, `AWS::Partition`.
    pub(crate) fn new(root: &Map<String, Value>, context: &Context) -> Params {
        let mut values = Map::new();
        if let Some(Value::Object(defs)) = root.get("Parameters") {
            for (name, def) in defs {
                if let Some(default) = def.get("Default") {
                    values.insert(name.clone(), default.clone());
                }
            }
        }
        for (k, v) in &context.parameters {
            values.insert(k.clone(), v.clone());
        }
        for (k, v) in [
            ("AWS::Region", &context.region),
            ("AWS::AccountId", &context.account),
            ("AWS::StackName", &context.stack_name),
            ("AWS::Partition", &context.partition),
        ] {
            values.entry(k.to_string()).or_insert_with(|| Value::String(v.clone()));
        }
        Params { values }
    }

    #[cfg(test)]
    pub(crate) fn from_map(values: Map<String, Value>) -> Params {
        Params { values }
    }

    /// The value with parameter references resolved (other intrinsics are kept).
    pub(crate) fn resolve(&self, value: &Value) -> Value {
        resolve_with(value, &|name| self.values.get(name).cloned())
    }
}

/// `resolve_parameter_refs` with any lookup (policy templates use their own parameters).
pub(crate) fn resolve_with(value: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Value {
    let value = resolve_one(value, lookup);
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, resolve_with(&v, lookup))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_with(v, lookup)).collect()),
        other => other,
    }
}

fn resolve_one(value: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Value {
    let Some(map) = value.as_object().filter(|m| m.len() == 1) else {
        return value.clone();
    };
    if let Some(Value::String(name)) = map.get("Ref") {
        return lookup(name).filter(|v| !is_placeholder(v)).unwrap_or_else(|| value.clone());
    }
    if let Some(sub) = map.get("Fn::Sub") {
        let replace = |text: &str| sub_all(text, lookup);
        let new = match sub {
            Value::String(s) => Value::String(replace(s)),
            Value::Array(items) if matches!(items.first(), Some(Value::String(_))) => {
                let mut items = items.clone();
                items[0] = Value::String(replace(items[0].as_str().unwrap_or_default()));
                Value::Array(items)
            }
            other => other.clone(),
        };
        let mut out = Map::new();
        out.insert("Fn::Sub".into(), new);
        return Value::Object(out);
    }
    value.clone()
}

fn is_placeholder(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with("{{IntrinsicFunction:"))
}

/// Replaces `${Name}` (names of `[A-Za-z0-9.]+` or `AWS::X`) whose value is a known string.
fn sub_all(text: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if is_sub_name(&after[..end]) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(Value::String(v)) if !v.starts_with("{{IntrinsicFunction:") => out.push_str(&v),
                    _ => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_sub_name(name: &str) -> bool {
    if let Some(pseudo) = name.strip_prefix("AWS::") {
        let mut chars = pseudo.chars();
        return chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphabetic());
    }
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// `{"Fn::If": …}`
pub(crate) fn is_if(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.len() == 1 && m.contains_key("Fn::If"))
}

/// An intrinsic function: a one-key object whose key is `Ref`, `Condition` or `Fn::…`.
pub(crate) fn is_intrinsic(value: &Value) -> bool {
    value.as_object().is_some_and(|m| {
        m.len() == 1
            && m.keys().next().is_some_and(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
    })
}

pub(crate) fn is_no_value(value: &Value) -> bool {
    value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue")
        && value.as_object().is_some_and(|m| m.len() == 1)
}

/// The logical id a `Ref` or `Fn::GetAtt` names.
pub(crate) fn referenced_id(value: &Value) -> Option<String> {
    let map = value.as_object().filter(|m| m.len() == 1)?;
    if let Some(Value::String(id)) = map.get("Ref") {
        return Some(id.clone());
    }
    match map.get("Fn::GetAtt")? {
        Value::Array(items) => items.first().and_then(Value::as_str).map(str::to_string),
        Value::String(s) => s.split('.').next().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Params {
        let mut m = Map::new();
        m.insert("Stage".into(), json!("dev"));
        m.insert("AWS::Region".into(), json!("eu-west-1"));
        Params::from_map(m)
    }

    #[test]
    fn refs_and_subs_to_parameters_resolve() {
        let p = params();
        assert_eq!(p.resolve(&json!({"Ref": "Stage"})), json!("dev"));
        assert_eq!(p.resolve(&json!({"Ref": "Other"})), json!({"Ref": "Other"}));
        assert_eq!(
            p.resolve(&json!({"Fn::Sub": "a-${Stage}-${AWS::Region}-${Fn.Arn}"})),
            json!({"Fn::Sub": "a-dev-eu-west-1-${Fn.Arn}"})
        );
        assert_eq!(
            p.resolve(&json!({"Fn::Join": ["-", [{"Ref": "Stage"}, "x"]]})),
            json!({"Fn::Join": ["-", ["dev", "x"]]})
        );
    }
}
