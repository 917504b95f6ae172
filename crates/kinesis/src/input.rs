//! Reading members of a request document, with AWS's validation messages.

use serde_json::Value;

use crate::error::{self, Result};

pub fn opt_str<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

pub fn req_str<'a>(input: &'a Value, member: &str) -> Result<&'a str> {
    opt_str(input, member).ok_or_else(|| error::missing(&lower_first(member)))
}

/// An integer member within `[min, max]`, `None` when absent.
pub fn opt_int(input: &Value, member: &str, min: i64, max: i64) -> Result<Option<i64>> {
    let Some(value) = input.get(member) else { return Ok(None) };
    let Some(n) = value.as_i64() else {
        return Err(error::validation(value, &lower_first(member), "Member must be an integer"));
    };
    if n < min {
        let constraint = format!("Member must have value greater than or equal to {min}");
        return Err(error::validation(n, &lower_first(member), &constraint));
    }
    if n > max {
        let constraint = format!("Member must have value less than or equal to {max}");
        return Err(error::validation(n, &lower_first(member), &constraint));
    }
    Ok(Some(n))
}

/// A timestamp member (epoch seconds) in milliseconds.
pub fn opt_time_ms(input: &Value, member: &str) -> Option<i64> {
    input.get(member).and_then(Value::as_f64).map(|seconds| (seconds * 1000.0).round() as i64)
}

/// AWS names members in validation messages with a lower-case first letter.
pub fn lower_first(member: &str) -> String {
    let mut chars = member.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// Stream and consumer names: 1–128 of `[a-zA-Z0-9_.-]`.
pub fn check_name(name: &str, member: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 {
        let constraint = "Member must have length less than or equal to 128";
        return Err(error::validation(name, member, constraint));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err(error::validation(
            name,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// Timestamps in responses: epoch seconds with milliseconds.
pub fn seconds(ms: i64) -> Value {
    serde_json::Number::from_f64(ms as f64 / 1000.0).map_or(Value::Null, Value::Number)
}
