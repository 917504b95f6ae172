//! `Fn::ForEach` of the `AWS::LanguageExtensions` transform: a loop over a list (or a list
//! parameter) that stamps out resources, outputs or properties, `${Id}` and `&{Id}` in their keys
//! and `Ref: Id` / `${Id}` in `Fn::Sub` standing for each item. Expanded once the parameters are
//! known, before the template is checked.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::params::text;

const PREFIX: &str = "Fn::ForEach::";

/// Whether the template loops (and is allowed to).
pub fn loops(template: &Value) -> bool {
    crate::template::transforms(template).iter().any(|t| t == "AWS::LanguageExtensions")
        && template.to_string().contains(PREFIX)
}

pub fn expand(template: &Value, params: &BTreeMap<String, String>) -> Result<Value, String> {
    walk(template, params, 0)
}

fn walk(value: &Value, params: &BTreeMap<String, String>, depth: usize) -> Result<Value, String> {
    if depth > 64 {
        return Err("Template format error: Fn::ForEach is nested too deeply".into());
    }
    Ok(match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                if !key.starts_with(PREFIX) {
                    out.insert(key.clone(), walk(inner, params, depth + 1)?);
                    continue;
                }
                let malformed = || {
                    format!("Template format error: {key} requires a list of an identifier, a collection and a fragment")
                };
                let parts = inner.as_array().filter(|p| p.len() == 3).ok_or_else(malformed)?;
                let id = parts[0].as_str().ok_or_else(malformed)?;
                let fragment = parts[2].as_object().ok_or_else(malformed)?;
                for item in collection(&parts[1], params)? {
                    for (fragment_key, fragment_value) in fragment {
                        let stamped = fragment_key
                            .replace(&format!("${{{id}}}"), &item)
                            .replace(&format!("&{{{id}}}"), &alphanumeric(&item));
                        let mut single = Map::new();
                        single.insert(stamped, substitute(fragment_value, id, &item));
                        if let Value::Object(expanded) = walk(&Value::Object(single), params, depth + 1)? {
                            out.extend(expanded);
                        }
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| walk(i, params, depth + 1)).collect::<Result<_, _>>()?)
        }
        other => other.clone(),
    })
}

fn collection(value: &Value, params: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => Ok(items.iter().map(text).collect()),
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().unwrap_or_default();
            let value = params.get(name).ok_or_else(|| {
                format!("Template format error: Fn::ForEach collection names an unknown parameter {name}")
            })?;
            Ok(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        }
        _ => Err(
            "Template format error: an Fn::ForEach collection must be a list or a Ref to a list parameter"
                .into(),
        ),
    }
}

fn alphanumeric(item: &str) -> String {
    item.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// The fragment with `Ref: id` and `${id}` (in `Fn::Sub`) standing for `item`.
fn substitute(value: &Value, id: &str, item: &str) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.get("Ref").and_then(Value::as_str) == Some(id) => {
            Value::String(item.to_owned())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("Fn::Sub", Value::String(s)) => {
                            Value::String(s.replace(&format!("${{{id}}}"), item))
                        }
                        ("Fn::Sub", Value::Array(parts)) => {
                            let mut parts = parts.clone();
                            if let Some(Value::String(s)) = parts.first_mut() {
                                *s = s.replace(&format!("${{{id}}}"), item);
                            }
                            Value::Array(parts.iter().map(|p| substitute(p, id, item)).collect())
                        }
                        _ => substitute(v, id, item),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, id, item)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loops_stamp_out_resources_and_outputs() {
        let template = json!({
            "Transform": "AWS::LanguageExtensions",
            "Parameters": {"Names": {"Type": "CommaDelimitedList"}},
            "Resources": {"Fn::ForEach::Queues": ["Name", {"Ref": "Names"}, {
                "Queue${Name}": {"Type": "AWS::SQS::Queue", "Properties": {
                    "QueueName": {"Fn::Sub": "q-${Name}-${AWS::Region}"}, "Tag": {"Ref": "Name"}}}}]},
            "Outputs": {"Fn::ForEach::Urls": ["Name", ["a-b"], {"Url&{Name}": {"Value": {"Ref": "Name"}}}]},
        });
        let params = BTreeMap::from([("Names".to_owned(), "one,two".to_owned())]);
        assert!(loops(&template));
        let expanded = expand(&template, &params).unwrap();
        let queue = &expanded["Resources"]["Queuetwo"]["Properties"];
        assert_eq!(queue["QueueName"], json!({"Fn::Sub": "q-two-${AWS::Region}"}));
        assert_eq!(queue["Tag"], "two");
        assert!(expanded["Resources"].get("Queueone").is_some());
        assert_eq!(expanded["Outputs"]["Urlab"]["Value"], "a-b");
    }
}
