//! A JSON 1.0 request body read member by member, with AWS's validation messages.

use serde_json::{Map, Value};

use crate::error::{constraint, missing, serialization, Result};

pub struct Input(pub Map<String, Value>);

impl Input {
    pub fn parse(body: &[u8]) -> Result<Input> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Input(map)),
            _ => Err(serialization("Start of structure or map found where not expected.")),
        }
    }

    pub fn from_value(value: &Value) -> Input {
        Input(value.as_object().cloned().unwrap_or_default())
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Result<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(format!("Unexpected value type for {name}"))),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str> {
        self.str(name)?.ok_or_else(|| missing(&lower_first(name)))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(serialization(format!("Unexpected value type for {name}"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| serialization(format!("Unexpected value for {name}")))
            }
            Some(_) => Err(serialization(format!("Unexpected value type for {name}"))),
        }
    }

    pub fn object(&self, name: &str) -> Result<Option<&Map<String, Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(serialization(format!("Unexpected value type for {name}"))),
        }
    }

    pub fn array(&self, name: &str) -> Result<Option<&Vec<Value>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(serialization(format!("Unexpected value type for {name}"))),
        }
    }

    /// `TableName`, checked as AWS's model constrains it (a name or, since 2023, an ARN).
    pub fn table_name(&self) -> Result<String> {
        let name = self.required_str("TableName")?;
        table_name(name, "tableName")
    }

    /// One of the enum's values.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>> {
        match self.str(name)? {
            Some(value) if !allowed.contains(&value) => Err(constraint(
                value,
                &lower_first(name),
                &format!("Member must satisfy enum value set: [{}]", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }
}

pub fn table_name(name: &str, member: &str) -> Result<String> {
    let name = match name.strip_prefix("arn:") {
        Some(_) => name.rsplit_once(":table/").map_or(name, |(_, n)| n),
        None => name,
    };
    if name.len() < 3 {
        return Err(constraint(name, member, "Member must have length greater than or equal to 3"));
    }
    if name.len() > 255 {
        return Err(constraint(name, member, "Member must have length less than or equal to 255"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(constraint(
            name,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(name.to_owned())
}

pub fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

pub fn check_limit(limit: Option<i64>) -> Result<Option<usize>> {
    match limit {
        Some(n) if n < 1 => Err(constraint(n, "limit", "Member must have value greater than or equal to 1")),
        Some(n) => Ok(Some(n as usize)),
        None => Ok(None),
    }
}
