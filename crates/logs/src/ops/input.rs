//! A JSON 1.1 request body, read member by member with AWS's validation messages.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde_json::{Map, Value};

use crate::errors::{constraint, missing, serialization};

pub struct Input(Map<String, Value>);

pub const GROUP_NAME_PATTERN: &str = r"[\.\-_/#A-Za-z0-9]+";
pub const STREAM_NAME_PATTERN: &str = "[^:*]*";

impl Input {
    pub fn parse(body: &[u8]) -> Result<Input, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Input(map)),
            _ => Err(serialization("The request body is not a JSON object")),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(format!("'{name}' must be a string"))),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str, AwsError> {
        self.str(name)?.ok_or_else(|| missing(name))
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                v.as_i64().map(Some).ok_or_else(|| serialization(format!("'{name}' must be an integer")))
            }
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                v.as_bool().map(Some).ok_or_else(|| serialization(format!("'{name}' must be a boolean")))
            }
        }
    }

    pub fn list(&self, name: &str) -> Result<Option<&Vec<Value>>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(serialization(format!("'{name}' must be a list"))),
        }
    }

    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>, AwsError> {
        let Some(items) = self.list(name)? else {
            return Ok(None);
        };
        let strings = items.iter().map(|item| item.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>();
        strings.map(Some).ok_or_else(|| serialization(format!("'{name}' must be a list of strings")))
    }

    pub fn string_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<Option<BTreeMap<_, _>>>()
                .map(Some)
                .ok_or_else(|| serialization(format!("'{name}' must map strings to strings"))),
            Some(_) => Err(serialization(format!("'{name}' must be a map"))),
        }
    }

    /// An optional integer within `min..=max`.
    pub fn bounded(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
        let value = self.i64(name)?;
        match value {
            Some(v) if v < min => {
                Err(constraint(v, name, &format!("Member must have value greater than or equal to {min}")))
            }
            Some(v) if v > max => {
                Err(constraint(v, name, &format!("Member must have value less than or equal to {max}")))
            }
            _ => Ok(value),
        }
    }
}

/// Checks a log group name against the model: 1–512 of `[.\-_/#A-Za-z0-9]`.
pub fn group_name<'a>(name: &'a str, member: &str) -> Result<&'a str, AwsError> {
    if name.is_empty() || name.len() > 512 {
        return Err(constraint(name, member, "Member must have length between 1 and 512"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c)) {
        let rule = format!("Member must satisfy regular expression pattern: {GROUP_NAME_PATTERN}");
        return Err(constraint(name, member, &rule));
    }
    Ok(name)
}

/// Checks a log stream name: 1–512 characters, no `:` or `*`.
pub fn stream_name<'a>(name: &'a str, member: &str) -> Result<&'a str, AwsError> {
    if name.is_empty() || name.len() > 512 {
        return Err(constraint(name, member, "Member must have length between 1 and 512"));
    }
    if name.contains([':', '*']) {
        let rule = format!("Member must satisfy regular expression pattern: {STREAM_NAME_PATTERN}");
        return Err(constraint(name, member, &rule));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_typed_and_validated() {
        let input = Input::parse(br#"{"a":"x","n":5,"b":true,"l":["p"],"m":{"k":"v"},"z":null}"#).unwrap();
        assert_eq!(input.str("a").unwrap(), Some("x"));
        assert_eq!(input.str("z").unwrap(), None);
        assert!(input.str("n").is_err());
        assert_eq!(input.i64("n").unwrap(), Some(5));
        assert_eq!(input.bool("b").unwrap(), Some(true));
        assert_eq!(input.str_list("l").unwrap().unwrap(), ["p"]);
        assert_eq!(input.string_map("m").unwrap().unwrap()["k"], "v");
        assert_eq!(input.required_str("q").unwrap_err().code, "InvalidParameterException");
        assert!(input.bounded("n", 1, 4).unwrap_err().message.contains("less than or equal to 4"));
        assert!(Input::parse(b"").is_ok());
        assert_eq!(Input::parse(b"[1]").err().unwrap().code, "SerializationException");
    }

    #[test]
    fn names_follow_the_model() {
        assert!(group_name("/aws/lambda/my-fn_1.x#2", "logGroupName").is_ok());
        assert!(group_name("bad name", "logGroupName").unwrap_err().message.contains("regular expression"));
        assert!(group_name("", "logGroupName").is_err());
        assert!(stream_name("2024/01/01/[$LATEST]abc", "logStreamName").is_ok());
        assert!(stream_name("a:b", "logStreamName").is_err());
    }
}
