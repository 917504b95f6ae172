//! Reading members out of a JSON-shaped input. The Query protocol delivers every scalar as a
//! string, so numbers and booleans are accepted in either form.

use serde_json::Value;

use crate::error::{Result, SqsError};

pub fn string<'a>(input: &'a Value, name: &str) -> Result<&'a str> {
    opt_string(input, name)?.ok_or_else(|| SqsError::missing(name))
}

pub fn opt_string<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SqsError::bad_value(other, name, "Must be a string.")),
    }
}

pub fn opt_int(input: &Value, name: &str) -> Result<Option<i64>> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| SqsError::invalid(not_int(name, n))),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| SqsError::invalid(not_int(name, s))),
        Some(other) => Err(SqsError::invalid(not_int(name, other))),
    }
}

fn not_int(name: &str, value: impl std::fmt::Display) -> String {
    format!("Value {value} for parameter {name} is invalid. Reason: Must be an integer.")
}

/// An integer in `min..=max`, with AWS's wording when it is not.
pub fn int_in(input: &Value, name: &str, min: i64, max: i64, reason: &str) -> Result<Option<i64>> {
    match opt_int(input, name)? {
        Some(n) if !(min..=max).contains(&n) => Err(SqsError::bad_value(n, name, reason)),
        other => Ok(other),
    }
}

/// A list of strings (absent means empty).
pub fn strings(input: &Value, name: &str) -> Vec<String> {
    match input.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// A map of strings (absent means empty).
pub fn string_map(input: &Value, name: &str) -> Result<Vec<(String, String)>> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect(),
        Some(other) => Err(SqsError::bad_value(other, name, "Must be a map.")),
    }
}

/// The queue name a queue URL (`http://host/<account>/<name>`) or bare name refers to.
pub fn queue_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url).trim_end_matches('/');
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_strings_as_numbers() {
        let input = serde_json::json!({"A": "5", "B": 7, "C": "x"});
        assert_eq!(opt_int(&input, "A").unwrap(), Some(5));
        assert_eq!(opt_int(&input, "B").unwrap(), Some(7));
        assert_eq!(opt_int(&input, "C").unwrap_err().shape, "InvalidParameterValue");
        assert_eq!(string(&input, "Q").unwrap_err().shape, "MissingParameter");
    }

    #[test]
    fn queue_names_from_urls() {
        assert_eq!(queue_name("http://127.0.0.1:4566/000000000000/orders"), "orders");
        assert_eq!(queue_name("https://sqs.us-east-1.amazonaws.com/1/q.fifo/"), "q.fifo");
        assert_eq!(queue_name("plain"), "plain");
    }
}
