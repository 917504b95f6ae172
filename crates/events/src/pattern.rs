//! AWS's event-pattern language (EventBridge rules, Lambda `FilterCriteria`): a pattern is a JSON
//! object whose leaves are arrays of matchers — exact values, `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`, `anything-but`, `numeric` ranges, `exists` — with `$or` for
//! alternatives. Every field of the pattern must match; an array in the event matches when any
//! of its elements does.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("Invalid filter pattern: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: Map<String, Value>,
}

impl Pattern {
    /// Parses and checks a pattern (the JSON text of a filter or rule).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatternError::Invalid(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(PatternError::Invalid("a pattern is a JSON object".into()));
        };
        check_object(&fields)?;
        Ok(Pattern { fields })
    }

    pub fn matches(&self, event: &Value) -> bool {
        object_matches(&self.fields, event)
    }
}

fn check_object(fields: &Map<String, Value>) -> Result<(), PatternError> {
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("$or", Value::Array(options)) => {
                for option in options {
                    let Value::Object(option) = option else {
                        return Err(PatternError::Invalid("$or takes an array of objects".into()));
                    };
                    check_object(option)?;
                }
            }
            (_, Value::Object(nested)) => check_object(nested)?,
            (_, Value::Array(matchers)) => matchers.iter().try_for_each(check_matcher)?,
            (key, _) => {
                return Err(PatternError::Invalid(format!(
                    "the value of {key} must be an array or an object"
                )))
            }
        }
    }
    Ok(())
}

fn check_matcher(matcher: &Value) -> Result<(), PatternError> {
    let Value::Object(rule) = matcher else { return Ok(()) };
    let Some((kind, argument)) = rule.iter().next().filter(|_| rule.len() == 1) else {
        return Err(PatternError::Invalid("a matcher object has exactly one key".into()));
    };
    let valid = match kind.as_str() {
        "prefix" | "suffix" => argument.is_string() || argument.get("equals-ignore-case").is_some(),
        "equals-ignore-case" | "wildcard" => argument.is_string(),
        "exists" => argument.is_boolean(),
        "anything-but" => true,
        "numeric" => numeric_bounds(argument).is_some(),
        "cidr" => argument.is_string(),
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(PatternError::Invalid(format!("unsupported or malformed matcher {kind}")))
    }
}

fn object_matches(fields: &Map<String, Value>, event: &Value) -> bool {
    fields.iter().all(|(key, pattern)| {
        if key == "$or" {
            return pattern.as_array().is_some_and(|options| {
                options.iter().any(|option| option.as_object().is_some_and(|o| object_matches(o, event)))
            });
        }
        let field = event.get(key);
        match pattern {
            Value::Object(nested) => field.is_some_and(|f| match f {
                Value::Array(items) => items.iter().any(|item| object_matches(nested, item)),
                other => object_matches(nested, other),
            }),
            Value::Array(matchers) => field_matches(matchers, field),
            _ => false,
        }
    })
}

/// Whether one of `matchers` accepts the field (or, for an array field, one of its elements).
fn field_matches(matchers: &[Value], field: Option<&Value>) -> bool {
    matchers.iter().any(|matcher| {
        if let Some(exists) = matcher.get("exists").and_then(Value::as_bool) {
            let present = field.is_some_and(|f| !f.is_null() || exists);
            return present == exists;
        }
        match field {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|item| value_matches(matcher, item)),
            Some(value) => value_matches(matcher, value),
        }
    })
}

fn value_matches(matcher: &Value, value: &Value) -> bool {
    let Value::Object(rule) = matcher else { return literal_equals(matcher, value) };
    let Some((kind, argument)) = rule.iter().next() else { return false };
    let text = value.as_str();
    match kind.as_str() {
        "prefix" => match (argument, text) {
            (Value::String(prefix), Some(text)) => text.starts_with(prefix.as_str()),
            (Value::Object(o), Some(text)) => o["equals-ignore-case"]
                .as_str()
                .is_some_and(|p| text.to_lowercase().starts_with(&p.to_lowercase())),
            _ => false,
        },
        "suffix" => match (argument, text) {
            (Value::String(suffix), Some(text)) => text.ends_with(suffix.as_str()),
            (Value::Object(o), Some(text)) => o["equals-ignore-case"]
                .as_str()
                .is_some_and(|s| text.to_lowercase().ends_with(&s.to_lowercase())),
            _ => false,
        },
        "equals-ignore-case" => {
            argument.as_str().zip(text).is_some_and(|(a, t)| a.to_lowercase() == t.to_lowercase())
        }
        "wildcard" => argument.as_str().zip(text).is_some_and(|(p, t)| wildcard(p, t)),
        "numeric" => value.as_f64().zip(numeric_bounds(argument)).is_some_and(|(n, bounds)| {
            bounds.iter().all(|(op, bound)| match op.as_str() {
                "=" => n == *bound,
                "<" => n < *bound,
                "<=" => n <= *bound,
                ">" => n > *bound,
                ">=" => n >= *bound,
                _ => false,
            })
        }),
        "anything-but" => match argument {
            Value::Array(excluded) => !excluded.iter().any(|x| literal_equals(x, value)),
            Value::Object(_) => !value_matches(argument, value),
            single => !literal_equals(single, value),
        },
        _ => false,
    }
}

/// Exact matching: strings to strings, numbers numerically, booleans and null as themselves.
fn literal_equals(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// `[">", 0, "<=", 5]` as (operator, bound) pairs.
fn numeric_bounds(argument: &Value) -> Option<Vec<(String, f64)>> {
    let items = argument.as_array()?;
    if items.is_empty() || items.len() % 2 != 0 {
        return None;
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = pair[0].as_str()?;
            ["=", "<", "<=", ">", ">="].contains(&op).then(|| Some((op.to_owned(), pair[1].as_f64()?)))?
        })
        .collect()
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(pattern: Value, event: Value) -> bool {
        Pattern::parse(&pattern.to_string()).unwrap().matches(&event)
    }

    #[test]
    fn exact_values_nested_fields_and_arrays() {
        let event = json!({"body": {"kind": "order", "total": 42, "tags": ["a", "b"], "ok": true}});
        assert!(matches(json!({"body": {"kind": ["order", "refund"]}}), event.clone()));
        assert!(!matches(json!({"body": {"kind": ["refund"]}}), event.clone()));
        assert!(matches(json!({"body": {"total": [42]}}), event.clone()));
        assert!(matches(json!({"body": {"tags": ["b"]}}), event.clone()));
        assert!(matches(json!({"body": {"ok": [true]}}), event.clone()));
        assert!(!matches(json!({"body": {"missing": ["x"]}}), event));
    }

    #[test]
    fn prefix_suffix_case_and_wildcards() {
        let event = json!({"key": "uploads/2026/Report.CSV"});
        assert!(matches(json!({"key": [{"prefix": "uploads/"}]}), event.clone()));
        assert!(matches(json!({"key": [{"suffix": {"equals-ignore-case": ".csv"}}]}), event.clone()));
        assert!(!matches(json!({"key": [{"suffix": ".csv"}]}), event.clone()));
        assert!(matches(json!({"key": [{"equals-ignore-case": "UPLOADS/2026/report.csv"}]}), event.clone()));
        assert!(matches(json!({"key": [{"wildcard": "uploads/*/*.CSV"}]}), event.clone()));
        assert!(!matches(json!({"key": [{"wildcard": "logs/*"}]}), event));
    }

    #[test]
    fn anything_but_numeric_and_exists() {
        let event = json!({"state": "ok", "size": 10, "note": null});
        assert!(matches(json!({"state": [{"anything-but": ["failed", "error"]}]}), event.clone()));
        assert!(!matches(json!({"state": [{"anything-but": "ok"}]}), event.clone()));
        assert!(matches(json!({"state": [{"anything-but": {"prefix": "err"}}]}), event.clone()));
        assert!(matches(json!({"size": [{"numeric": [">", 0, "<=", 10]}]}), event.clone()));
        assert!(!matches(json!({"size": [{"numeric": ["<", 10]}]}), event.clone()));
        assert!(matches(json!({"size": [{"exists": true}]}), event.clone()));
        assert!(matches(json!({"absent": [{"exists": false}]}), event.clone()));
        assert!(!matches(json!({"size": [{"exists": false}]}), event));
    }

    #[test]
    fn or_combines_alternatives() {
        let pattern = json!({"$or": [{"a": [1]}, {"b": [2]}]});
        assert!(matches(pattern.clone(), json!({"b": 2})));
        assert!(!matches(pattern, json!({"a": 2})));
    }

    #[test]
    fn nesting_is_bounded_by_the_json_parser() {
        // Checking and matching recurse once per level of the pattern; serde_json refuses
        // documents nested deeper than 128, which bounds that (its `unbounded_depth` feature
        // must stay off).
        let nested = |depth: usize| format!("{}[1]{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let pattern = Pattern::parse(&nested(100)).unwrap();
        let event: Value = serde_json::from_str(&nested(100).replace("[1]", "1")).unwrap();
        assert!(pattern.matches(&event));
        assert!(Pattern::parse(&nested(50_000)).unwrap_err().to_string().contains("recursion limit"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(Pattern::parse("[1]").is_err());
        assert!(Pattern::parse(r#"{"a": 1}"#).is_err());
        assert!(Pattern::parse(r#"{"a": [{"numeric": [">"]}]}"#).is_err());
        assert!(Pattern::parse(r#"{"a": [{"bogus": 1}]}"#).is_err());
        assert!(Pattern::parse("not json").is_err());
    }
}
