//! Subscription filter policies, matched by `nimbus_events`' pattern language. With scope
//! `MessageAttributes` the policy is matched against the message attributes (String as text,
//! Number as a number, String.Array as its JSON array; Binary never matches); with
//! `MessageBody` against the message, which must then be a JSON object.

use std::collections::BTreeMap;

use nimbus_events::Pattern;
use serde_json::{Map, Value};

use crate::publish::MessageAttribute;

/// SNS's limits: five keys (counting nested ones), 150 combinations of values.
const MAX_KEYS: usize = 5;
const MAX_COMBINATIONS: usize = 150;

/// Checks a policy as `SetSubscriptionAttributes`/`Subscribe` do; the reason on failure.
pub fn check(policy: &str, scope: &str) -> Result<(), String> {
    Pattern::parse(policy).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(policy).map_err(|e| e.to_string())?;
    let Value::Object(fields) = value else { return Err("Filter policy must be a JSON object".into()) };
    if scope == "MessageAttributes" && fields.iter().any(|(k, v)| k != "$or" && v.is_object()) {
        return Err("Filter policy scope MessageAttributes does not support nested filter policy".into());
    }
    if keys(&fields) > MAX_KEYS {
        return Err(format!("Filter policy can not have more than {MAX_KEYS} keys"));
    }
    if combinations(&fields) > MAX_COMBINATIONS {
        return Err("Filter policy is too complex".into());
    }
    Ok(())
}

fn keys(fields: &Map<String, Value>) -> usize {
    fields
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("$or", Value::Array(options)) => {
                options.iter().filter_map(Value::as_object).map(keys).max().unwrap_or(0)
            }
            (_, Value::Object(nested)) => keys(nested),
            _ => 1,
        })
        .sum()
}

fn combinations(fields: &Map<String, Value>) -> usize {
    fields
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("$or", Value::Array(options)) => {
                options.iter().filter_map(Value::as_object).map(combinations).sum::<usize>().max(1)
            }
            (_, Value::Object(nested)) => combinations(nested),
            (_, Value::Array(values)) => values.len().max(1),
            _ => 1,
        })
        .fold(1usize, |total, n| total.saturating_mul(n))
}

/// The attributes as the matcher sees them.
fn attribute_document(attributes: &BTreeMap<String, MessageAttribute>) -> Value {
    let mut document = Map::new();
    for (name, attribute) in attributes {
        let Some(text) = attribute.string.as_deref() else { continue };
        let value = if attribute.data_type.starts_with("Number") {
            match serde_json::from_str::<serde_json::Number>(text.trim()) {
                Ok(number) => Value::Number(number),
                Err(_) => match text.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    Some(number) => Value::Number(number),
                    None => continue,
                },
            }
        } else if attribute.data_type.starts_with("String.Array") {
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        } else {
            Value::String(text.to_owned())
        };
        document.insert(name.clone(), value);
    }
    Value::Object(document)
}

/// Whether a message passes `policy` (already checked when it was set).
pub fn matches(
    policy: &str,
    scope: &str,
    attributes: &BTreeMap<String, MessageAttribute>,
    message: &str,
) -> bool {
    let Ok(pattern) = Pattern::parse(policy) else { return false };
    if scope == "MessageBody" {
        return match serde_json::from_str::<Value>(message) {
            Ok(body @ Value::Object(_)) => pattern.matches(&body),
            _ => policy.trim() == "{}",
        };
    }
    pattern.matches(&attribute_document(attributes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(data_type: &str, value: &str) -> MessageAttribute {
        MessageAttribute { data_type: data_type.into(), string: Some(value.into()), binary: None }
    }

    fn attrs(items: &[(&str, MessageAttribute)]) -> BTreeMap<String, MessageAttribute> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// AWS's documented examples (Amazon SNS message filtering).
    #[test]
    fn attribute_policies_match_as_aws_documents() {
        let message = attrs(&[
            ("store", attr("String", "example_corp")),
            ("event", attr("String", "order_placed")),
            ("customer_interests", attr("String.Array", r#"["soccer", "rugby", "hockey"]"#)),
            ("price_usd", attr("Number", "210.75")),
        ]);
        let cases = [
            (r#"{"store": ["example_corp"]}"#, true),
            (r#"{"store": ["other"]}"#, false),
            (r#"{"customer_interests": ["rugby", "basketball"]}"#, true),
            (r#"{"price_usd": [{"numeric": [">=", 100, "<", 300]}]}"#, true),
            (r#"{"price_usd": [{"numeric": ["<", 100]}]}"#, false),
            (r#"{"price_usd": [210.75]}"#, true),
            (r#"{"store": [{"prefix": "example"}]}"#, true),
            (r#"{"store": [{"suffix": "_corp"}]}"#, true),
            (r#"{"store": [{"equals-ignore-case": "EXAMPLE_CORP"}]}"#, true),
            (r#"{"store": [{"anything-but": ["example_corp"]}]}"#, false),
            (r#"{"event": [{"anything-but": {"prefix": "order-"}}]}"#, true),
            (r#"{"missing": [{"exists": false}]}"#, true),
            (r#"{"store": [{"exists": false}]}"#, false),
            (r#"{"missing": [{"anything-but": "x"}]}"#, false),
            (r#"{"$or": [{"store": ["nope"]}, {"event": ["order_placed"]}]}"#, true),
            (r#"{"store": ["example_corp"], "event": ["order_cancelled"]}"#, false),
            // Strings match strings only, numbers numbers only.
            (r#"{"price_usd": ["210.75"]}"#, false),
        ];
        for (policy, expected) in cases {
            check(policy, "MessageAttributes").unwrap();
            assert_eq!(matches(policy, "MessageAttributes", &message, "m"), expected, "{policy}");
        }
    }

    #[test]
    fn body_policies_match_nested_fields_of_json_messages() {
        let body = r#"{"order": {"kind": "book", "total": 12}, "region": "eu"}"#;
        let policy = r#"{"order": {"kind": ["book"], "total": [{"numeric": [">", 10]}]}}"#;
        check(policy, "MessageBody").unwrap();
        assert!(matches(policy, "MessageBody", &BTreeMap::new(), body));
        assert!(!matches(
            policy,
            "MessageBody",
            &BTreeMap::new(),
            r#"{"order": {"kind": "pen", "total": 12}}"#
        ));
        assert!(!matches(policy, "MessageBody", &BTreeMap::new(), "not json"));
    }

    #[test]
    fn limits_and_scope_are_checked() {
        assert!(check(r#"{"a": {"b": ["c"]}}"#, "MessageAttributes").unwrap_err().contains("nested"));
        let six = r#"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#;
        assert!(check(six, "MessageAttributes").unwrap_err().contains("5 keys"));
        let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let complex = serde_json::json!({"a": values, "b": values}).to_string();
        assert!(check(&complex, "MessageAttributes").unwrap_err().contains("too complex"));
        assert!(check(r#"{"a": "x"}"#, "MessageAttributes").is_err());
    }
}
