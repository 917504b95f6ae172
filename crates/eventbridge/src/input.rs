//! Reading a request's JSON members with EventBridge's own validation errors.

use nimbus_api::AwsError;
use serde_json::Value;

pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", message)
}

pub fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", message)
}

pub struct Input<'a>(pub &'a Value);

impl<'a> Input<'a> {
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string member, or a validation error when it has another type.
    pub fn str(&self, name: &str) -> Result<Option<&'a str>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(AwsError::new(400, "SerializationException", format!("{name} must be a string"))),
        }
    }

    pub fn required(&self, name: &str) -> Result<&'a str, AwsError> {
        self.str(name)?.ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    pub fn array(&self, name: &str) -> Result<&'a [Value], AwsError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(AwsError::new(400, "SerializationException", format!("{name} must be a list"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                AwsError::new(400, "SerializationException", format!("{name} must be a number"))
            }),
        }
    }
}

/// AWS's validation messages name members in lower camel case.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A name AWS allows for rules, buses and schedules: 1–64 of `[.\-_A-Za-z0-9]`.
pub fn check_name(kind: &str, name: &str) -> Result<(), AwsError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{kind}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
        )))
    }
}

/// Pagination: `NextToken` is the index of the next item.
pub fn page(
    items: Vec<Value>,
    token: Option<&str>,
    limit: Option<i64>,
    key: &str,
) -> Result<Value, AwsError> {
    let start: usize = match token {
        None => 0,
        Some(token) => token.parse().map_err(|_| validation("The provided NextToken is not valid."))?,
    };
    let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
    let end = (start + limit).min(items.len());
    let mut out = serde_json::Map::new();
    out.insert(key.to_owned(), Value::Array(items.get(start..end).unwrap_or_default().to_vec()));
    if end < items.len() {
        out.insert("NextToken".to_owned(), Value::String(end.to_string()));
    }
    Ok(Value::Object(out))
}
