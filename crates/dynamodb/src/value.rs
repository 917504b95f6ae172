//! AttributeValues as DynamoDB types them, read from and written to the wire's JSON, with AWS's
//! validation and its item-size formula.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::{invalid, validation, DdbError, Result};
use crate::number::Num;

pub type Item = BTreeMap<String, Av>;

#[derive(Debug, Clone, PartialEq)]
pub enum Av {
    S(String),
    N(Num),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(Item),
    L(Vec<Av>),
    Ss(Vec<String>),
    Ns(Vec<Num>),
    Bs(Vec<Vec<u8>>),
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

impl Av {
    /// The type's wire name (`S`, `N`, `SS` …), as `attribute_type` and messages use it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Av::S(_) => "S",
            Av::N(_) => "N",
            Av::B(_) => "B",
            Av::Bool(_) => "BOOL",
            Av::Null => "NULL",
            Av::M(_) => "M",
            Av::L(_) => "L",
            Av::Ss(_) => "SS",
            Av::Ns(_) => "NS",
            Av::Bs(_) => "BS",
        }
    }

    pub fn parse(value: &Value) -> Result<Av> {
        Av::parse_at(value, 0)
    }

    /// AWS allows documents 32 levels deep.
    fn parse_at(value: &Value, depth: usize) -> Result<Av> {
        if depth > 32 {
            return Err(validation("Nesting Levels have exceeded supported limits"));
        }
        let Value::Object(map) = value else {
            return Err(serialization_type());
        };
        let mut set = map.iter().filter(|(_, v)| !v.is_null());
        let (Some((kind, inner)), None) = (set.next(), set.next()) else {
            return Err(match map.iter().filter(|(_, v)| !v.is_null()).count() {
                0 => validation("Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
                _ => validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                ),
            });
        };
        Ok(match (kind.as_str(), inner) {
            ("S", Value::String(s)) => Av::S(s.clone()),
            ("N", Value::String(n)) => Av::N(Num::parse(n)?),
            ("B", Value::String(b)) => Av::B(binary(b)?),
            ("BOOL", Value::Bool(b)) => Av::Bool(*b),
            ("NULL", Value::Bool(true)) => Av::Null,
            ("NULL", Value::Bool(false)) => {
                return Err(invalid("Null attribute value types must have the value of true"))
            }
            ("M", Value::Object(m)) => Av::M(
                m.iter().map(|(k, v)| Ok((k.clone(), Av::parse_at(v, depth + 1)?))).collect::<Result<_>>()?,
            ),
            ("L", Value::Array(l)) => {
                Av::L(l.iter().map(|v| Av::parse_at(v, depth + 1)).collect::<Result<_>>()?)
            }
            ("SS", Value::Array(l)) => {
                let items: Vec<String> = l
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(serialization_type))
                    .collect::<Result<_>>()?;
                no_duplicates(&items, "string", |s| s.clone())?;
                Av::Ss(items)
            }
            ("NS", Value::Array(l)) => {
                let items: Vec<Num> = l
                    .iter()
                    .map(|v| v.as_str().ok_or_else(serialization_type).and_then(Num::parse))
                    .collect::<Result<_>>()?;
                no_duplicates(&items, "number", |n| n.to_string())?;
                Av::Ns(items)
            }
            ("BS", Value::Array(l)) => {
                let items: Vec<Vec<u8>> = l
                    .iter()
                    .map(|v| v.as_str().ok_or_else(serialization_type).and_then(binary))
                    .collect::<Result<_>>()?;
                no_duplicates(&items, "binary", |b| B64.encode(b))?;
                Av::Bs(items)
            }
            ("S" | "N" | "B", other) => return Err(not_a_string(other)),
            ("BOOL" | "NULL" | "M" | "L" | "SS" | "NS" | "BS", _) => return Err(serialization_type()),
            (other, _) => return Err(serialization(format!("Unknown AttributeValue type: {other}"))),
        })
    }

    pub fn to_json(&self) -> Value {
        match self {
            Av::S(s) => json!({ "S": s }),
            Av::N(n) => json!({ "N": n.to_string() }),
            Av::B(b) => json!({ "B": B64.encode(b) }),
            Av::Bool(b) => json!({ "BOOL": b }),
            Av::Null => json!({ "NULL": true }),
            Av::M(m) => json!({ "M": item_json(m) }),
            Av::L(l) => json!({ "L": l.iter().map(Av::to_json).collect::<Vec<_>>() }),
            Av::Ss(s) => json!({ "SS": s }),
            Av::Ns(n) => json!({ "NS": n.iter().map(Num::to_string).collect::<Vec<_>>() }),
            Av::Bs(b) => json!({ "BS": b.iter().map(|b| B64.encode(b)).collect::<Vec<_>>() }),
        }
    }

    /// AWS's size of a value (without its name).
    pub fn size(&self) -> usize {
        match self {
            Av::S(s) => s.len(),
            Av::N(n) => num_size(n),
            Av::B(b) => b.len(),
            Av::Bool(_) | Av::Null => 1,
            Av::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + v.size()).sum::<usize>(),
            Av::L(l) => 3 + l.iter().map(|v| 1 + v.size()).sum::<usize>(),
            Av::Ss(s) => s.iter().map(String::len).sum(),
            Av::Ns(n) => n.iter().map(num_size).sum(),
            Av::Bs(b) => b.iter().map(Vec::len).sum(),
        }
    }

    /// Bytes that sort as DynamoDB sorts key values of this type (numbers numerically, strings
    /// and binaries bytewise).
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Av::S(s) => s.as_bytes().to_vec(),
            Av::N(n) => n.ordered_bytes(),
            Av::B(b) => b.clone(),
            other => other.to_json().to_string().into_bytes(),
        }
    }
}

fn num_size(n: &Num) -> usize {
    n.significant_digits().div_ceil(2) + 1
}

/// What AWS's parser says of a JSON value where a string belongs.
fn not_a_string(value: &Value) -> DdbError {
    match value {
        Value::Number(_) => serialization("NUMBER_VALUE cannot be converted to String".to_owned()),
        Value::Bool(true) => serialization("TRUE_VALUE cannot be converted to String".to_owned()),
        Value::Bool(false) => serialization("FALSE_VALUE cannot be converted to String".to_owned()),
        Value::Object(_) => serialization("Start of structure or map found where not expected.".to_owned()),
        Value::Array(_) => serialization("Start of list found where not expected".to_owned()),
        _ => serialization_type(),
    }
}

fn serialization_type() -> DdbError {
    serialization("Unexpected value type in AttributeValue".to_owned())
}

fn serialization(message: String) -> DdbError {
    crate::error::serialization(message)
}

fn binary(text: &str) -> Result<Vec<u8>> {
    B64.decode(text).map_err(|_| {
        serialization(
            "Base64 encoded length is expected a multiple of 4 bytes but found: ".to_owned()
                + &text.len().to_string(),
        )
    })
}

fn no_duplicates<T>(items: &[T], kind: &str, show: impl Fn(&T) -> String) -> Result<()> {
    if items.is_empty() {
        return Err(invalid(format!("An {kind} set  may not be empty")));
    }
    let mut seen = std::collections::HashSet::new();
    if items.iter().any(|item| !seen.insert(show(item))) {
        let shown: Vec<String> = items.iter().map(show).collect();
        return Err(invalid(format!("Input collection [{}] contains duplicates.", shown.join(", "))));
    }
    Ok(())
}

pub fn parse_map(map: &Map<String, Value>) -> Result<Item> {
    map.iter().map(|(k, v)| Ok((k.clone(), Av::parse(v)?))).collect()
}

/// An item from the wire (`Item`, `Key`, …); `member` names it in messages.
pub fn parse_item(value: Option<&Value>, member: &str) -> Result<Item> {
    match value {
        None | Some(Value::Null) => Err(crate::error::missing(member)),
        Some(Value::Object(map)) => parse_map(map),
        Some(_) => Err(crate::error::serialization(format!("Unexpected value type for {member}"))),
    }
}

pub fn item_json(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// AWS's size of an item: names and values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// Stored items were validated when written; read back as they are.
pub fn stored_item(text: &str) -> Item {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => parse_map(&map).unwrap_or_default(),
        _ => Item::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_type_and_refuses_bad_ones() {
        let item = json!({"s": {"S": "x"}, "n": {"N": "1.50"}, "l": {"L": [{"NULL": true}, {"BOOL": false}]},
            "m": {"M": {"b": {"B": "AAE="}}}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}});
        let parsed = parse_item(Some(&item), "Item").unwrap();
        assert_eq!(parsed["n"].to_json(), json!({"N": "1.5"}));
        assert_eq!(item_json(&parsed)["m"], json!({"M": {"b": {"B": "AAE="}}}));
        let empty = Av::parse(&json!({"SS": []})).unwrap_err();
        assert_eq!(
            empty.message,
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        let dup = Av::parse(&json!({"SS": ["a", "a"]})).unwrap_err();
        assert!(dup.message.contains("contains duplicates"));
        assert!(Av::parse(&json!({})).is_err());
        assert!(Av::parse(&json!({"S": "a", "N": "1"})).is_err());
    }

    #[test]
    fn sizes_as_aws_does() {
        let item = parse_item(Some(&json!({"ab": {"S": "xyz"}, "n": {"N": "123"}})), "Item").unwrap();
        assert_eq!(item_size(&item), 2 + 3 + 1 + 3);
    }
}
