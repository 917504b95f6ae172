//! Choice rules: comparisons of a `Variable` with a literal or another path, type tests, and
//! `And`/`Or`/`Not`.

use serde_json::Value;

use super::{path, Failure};

/// The comparison operators, each also with a `Path` suffix, and the type tests.
pub const COMPARISONS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
];
pub const TESTS: &[&str] = &["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"];

/// The operator of a data-test rule, if it has exactly one.
pub fn operator(rule: &serde_json::Map<String, Value>) -> Option<&str> {
    rule.keys().map(String::as_str).find(|key| {
        let base = key.strip_suffix("Path").unwrap_or(key);
        COMPARISONS.contains(&base) || TESTS.contains(key) || *key == "StringMatches"
    })
}

/// Whether `rule` holds for `input` (`context` for `$$` paths).
pub fn evaluate(rule: &Value, input: &Value, context: &Value) -> Result<bool, Failure> {
    let Some(rule) = rule.as_object() else { return Ok(false) };
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        for r in all {
            if !evaluate(r, input, context)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        for r in any {
            if evaluate(r, input, context)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(not) = rule.get("Not") {
        return Ok(!evaluate(not, input, context)?);
    }
    let variable = rule.get("Variable").and_then(Value::as_str).unwrap_or("$");
    let Some(op) = operator(rule) else { return Ok(false) };
    let lookup = |p: &str| path::resolve(input, context, p).ok();
    let value = lookup(variable);
    let operand = &rule[op];
    match op {
        "IsPresent" => return Ok(value.is_some() == operand.as_bool().unwrap_or(true)),
        _ if TESTS.contains(&op) => {
            let Some(value) = value else { return Ok(false) };
            let holds = match op {
                "IsNull" => value.is_null(),
                "IsNumeric" => value.is_number(),
                "IsString" => value.is_string(),
                "IsBoolean" => value.is_boolean(),
                _ => value.as_str().is_some_and(|s| timestamp(s).is_some()),
            };
            return Ok(holds == operand.as_bool().unwrap_or(true));
        }
        _ => {}
    }
    let Some(value) = value else {
        return Err(Failure::runtime(format!(
            "Invalid path '{variable}': The choice state's condition path references an invalid value."
        )));
    };
    let (base, expected) = match op.strip_suffix("Path") {
        Some(base) => {
            let p = operand.as_str().unwrap_or("$");
            let Some(other) = lookup(p) else {
                return Err(Failure::runtime(format!(
                    "Invalid path '{p}': The choice state's condition path references an invalid value."
                )));
            };
            (base, other)
        }
        None => (op, operand.clone()),
    };
    Ok(compare(base, &value, &expected))
}

fn compare(op: &str, value: &Value, expected: &Value) -> bool {
    use std::cmp::Ordering::*;
    let ordering = |ord: Option<std::cmp::Ordering>, want: &str| {
        let Some(ord) = ord else { return false };
        match want {
            "Equals" => ord == Equal,
            "LessThan" => ord == Less,
            "GreaterThan" => ord == Greater,
            "LessThanEquals" => ord != Greater,
            "GreaterThanEquals" => ord != Less,
            _ => false,
        }
    };
    if op == "StringMatches" {
        return match (value.as_str(), expected.as_str()) {
            (Some(v), Some(p)) => wildcard(v, p),
            _ => false,
        };
    }
    if let Some(want) = op.strip_prefix("String") {
        return match (value.as_str(), expected.as_str()) {
            (Some(a), Some(b)) => ordering(Some(a.cmp(b)), want),
            _ => false,
        };
    }
    if let Some(want) = op.strip_prefix("Numeric") {
        return match (value.as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => ordering(a.partial_cmp(&b), want),
            _ => false,
        };
    }
    if op == "BooleanEquals" {
        return value.is_boolean() && value == expected;
    }
    if let Some(want) = op.strip_prefix("Timestamp") {
        let (a, b) = (value.as_str().and_then(timestamp), expected.as_str().and_then(timestamp));
        return match (a, b) {
            (Some(a), Some(b)) => ordering(Some(a.cmp(&b)), want),
            _ => false,
        };
    }
    false
}

/// An RFC 3339 timestamp (with an uppercase `T`, as AWS requires) in milliseconds.
pub fn timestamp(text: &str) -> Option<i64> {
    if !text.contains('T') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// `StringMatches`: `*` matches any run of characters, `\*` a star.
fn wildcard(text: &str, pattern: &str) -> bool {
    let mut tokens: Vec<Option<char>> = Vec::new(); // None = star
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.extend(chars.next().map(Some)),
            '*' => tokens.push(None),
            c => tokens.push(Some(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic two-pointer glob match with backtracking to the last star.
    let (mut t, mut p, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < tokens.len() && tokens[p] == Some(text[t]) {
            t += 1;
            p += 1;
        } else if p < tokens.len() && tokens[p].is_none() {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    tokens[p..].iter().all(Option::is_none)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(rule: Value) -> bool {
        let input = json!({"s": "abc", "n": 5, "b": true, "t": "2024-01-02T03:04:05Z", "z": null, "m": 5.0});
        evaluate(&rule, &input, &json!({})).unwrap()
    }

    #[test]
    fn every_operator() {
        assert!(holds(json!({"Variable": "$.s", "StringEquals": "abc"})));
        assert!(holds(json!({"Variable": "$.s", "StringLessThan": "abd"})));
        assert!(holds(json!({"Variable": "$.s", "StringGreaterThanEquals": "abc"})));
        assert!(holds(json!({"Variable": "$.s", "StringMatches": "a*c"})));
        assert!(!holds(json!({"Variable": "$.s", "StringMatches": "a\\*c"})));
        assert!(holds(json!({"Variable": "$.n", "NumericEquals": 5})));
        assert!(holds(json!({"Variable": "$.n", "NumericEqualsPath": "$.m"})));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": 4.5})));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThanEquals": 5})));
        assert!(!holds(json!({"Variable": "$.s", "NumericEquals": 5})));
        assert!(holds(json!({"Variable": "$.b", "BooleanEquals": true})));
        assert!(holds(json!({"Variable": "$.t", "TimestampLessThan": "2024-01-02T03:04:06Z"})));
        assert!(holds(json!({"Variable": "$.t", "TimestampEquals": "2024-01-02T04:04:05+01:00"})));
        assert!(holds(json!({"Variable": "$.z", "IsNull": true})));
        assert!(holds(json!({"Variable": "$.nope", "IsPresent": false})));
        assert!(holds(json!({"Variable": "$.n", "IsNumeric": true})));
        assert!(holds(json!({"Variable": "$.s", "IsString": true})));
        assert!(holds(json!({"Variable": "$.b", "IsBoolean": true})));
        assert!(holds(json!({"Variable": "$.t", "IsTimestamp": true})));
        assert!(!holds(json!({"Variable": "$.nope", "IsString": true})));
        assert!(holds(
            json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Not": {"Variable": "$.s", "StringEquals": "x"}}]})
        ));
        assert!(holds(
            json!({"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.b", "BooleanEquals": true}]})
        ));
    }

    #[test]
    fn missing_variable_is_a_runtime_error() {
        let error =
            evaluate(&json!({"Variable": "$.x", "StringEquals": "a"}), &json!({}), &json!({})).unwrap_err();
        assert_eq!(error.error, "States.Runtime");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("log-2024.txt", "log-*.txt"));
        assert!(wildcard("anything", "*"));
        assert!(!wildcard("abc", "ab"));
        assert!(wildcard("a*b", "a\\*b"));
    }
}
