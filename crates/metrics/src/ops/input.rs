//! Reading members of an operation's input, with CloudWatch's error messages. `path` names the
//! member as the Query protocol would (`MetricDataQueries.member.1.Id`).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::CwError;

/// The member, absent when missing or null.
pub fn member<'a>(document: &'a Value, name: &str) -> Option<&'a Value> {
    document.get(name).filter(|v| !v.is_null())
}

pub fn string(document: &Value, name: &str, path: &str) -> Result<Option<String>, CwError> {
    match member(document, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CwError::invalid(format!("The parameter {path} must be a string, not {other}."))),
    }
}

pub fn required_string(document: &Value, name: &str, path: &str) -> Result<String, CwError> {
    string(document, name, path)?.ok_or_else(|| CwError::missing(path))
}

pub fn integer(document: &Value, name: &str, path: &str) -> Result<Option<i64>, CwError> {
    let invalid = || CwError::invalid(format!("The parameter {path} must be an integer."));
    match member(document, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

pub fn boolean(document: &Value, name: &str, path: &str) -> Result<Option<bool>, CwError> {
    match member(document, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(CwError::invalid(format!("The parameter {path} must be true or false."))),
    }
}

/// Seconds since the epoch, from epoch seconds (JSON, CBOR) or ISO 8601 (Query).
pub fn timestamp(document: &Value, name: &str, path: &str) -> Result<Option<i64>, CwError> {
    let invalid =
        || CwError::invalid(format!("The parameter {path} must be a timestamp (ISO 8601 or epoch seconds)."));
    match member(document, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(|s| Some(s.floor() as i64)).ok_or_else(invalid),
        Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds.floor() as i64);
    }
    let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| t.unix_timestamp());
    // Without a zone, ISO 8601 times are taken as UTC, as CloudWatch does.
    parse(text).or_else(|| parse(&format!("{text}Z"))).or_else(|| parse(&format!("{text}:00Z")))
}

pub fn required_timestamp(document: &Value, name: &str, path: &str) -> Result<i64, CwError> {
    timestamp(document, name, path)?.ok_or_else(|| CwError::missing(path))
}

/// A list member; absent is empty (Query sends `Name=` for an empty list).
pub fn list<'a>(document: &'a Value, name: &str, path: &str) -> Result<&'a [Value], CwError> {
    match member(document, name) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(Value::String(s)) if s.is_empty() => Ok(&[]),
        Some(_) => Err(CwError::invalid(format!("The parameter {path} must be a list."))),
    }
}

/// `Dimensions`: name/value pairs, at most 30, each name given once.
pub fn dimensions(document: &Value, name: &str, path: &str) -> Result<Vec<(String, String)>, CwError> {
    let items = list(document, name, path)?;
    if items.len() > 30 {
        return Err(CwError::invalid(format!("The collection {path} must not have a size greater than 30.")));
    }
    let mut dimensions: Vec<(String, String)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.member.{}", i + 1);
        let dimension_name = required_string(item, "Name", &format!("{at}.Name"))?;
        let value = required_string(item, "Value", &format!("{at}.Value"))?;
        if dimensions.iter().any(|(n, _)| *n == dimension_name) {
            return Err(CwError::invalid(format!(
                "No metric may have more than one dimension named {dimension_name}."
            )));
        }
        dimensions.push((dimension_name, value));
    }
    Ok(dimensions)
}

/// `Unit`, checked against CloudWatch's standard units.
pub fn unit(document: &Value, path: &str) -> Result<Option<String>, CwError> {
    let Some(unit) = string(document, "Unit", path)? else { return Ok(None) };
    if !UNITS.contains(&unit.as_str()) {
        return Err(CwError::not_in_enum(&unit, path, UNITS));
    }
    Ok(Some(unit))
}

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// `Period`: a positive number of seconds, a multiple of 60 or one of the high-resolution
/// periods (which nimbus's 1-minute data answers at 1 minute).
pub fn period(document: &Value, name: &str, path: &str) -> Result<i64, CwError> {
    let period = integer(document, name, path)?.ok_or_else(|| CwError::missing(path))?;
    if period < 1 {
        return Err(CwError::invalid(format!("The parameter {path} must be greater than 0.")));
    }
    if period % 60 != 0 && ![1, 5, 10, 20, 30].contains(&period) {
        return Err(CwError::invalid(format!(
            "The parameter {path} must be 1, 5, 10, 20, 30, or a multiple of 60."
        )));
    }
    Ok(period)
}

/// `StartTime` before `EndTime`.
pub fn time_range(document: &Value) -> Result<(i64, i64), CwError> {
    let start = required_timestamp(document, "StartTime", "StartTime")?;
    let end = required_timestamp(document, "EndTime", "EndTime")?;
    if start >= end {
        return Err(CwError::invalid("The parameter StartTime must be less than the parameter EndTime."));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn timestamps_in_every_form() {
        let doc = json!({"a": 1_700_000_000, "b": 1_700_000_000.7, "c": "2023-11-14T22:13:20Z",
            "d": "2023-11-14T22:13:20.123Z", "e": "2023-11-14T22:13:20", "f": "2023-11-14T23:13:20+01:00",
            "g": "1700000000", "h": "yesterday", "i": "2023-11-14T22:13"});
        for name in ["a", "b", "c", "d", "e", "f", "g"] {
            assert_eq!(timestamp(&doc, name, name).unwrap(), Some(1_700_000_000), "{name}");
        }
        assert_eq!(timestamp(&doc, "i", "i").unwrap(), Some(1_699_999_980));
        assert_eq!(timestamp(&doc, "h", "h").unwrap_err().kind, ErrorKind::InvalidParameterValue);
        assert_eq!(timestamp(&doc, "z", "z").unwrap(), None);
    }

    #[test]
    fn numbers_and_booleans_from_strings_or_values() {
        let doc = json!({"a": "60", "b": 60, "c": "x", "t": "true", "u": false});
        assert_eq!(integer(&doc, "a", "a").unwrap(), Some(60));
        assert_eq!(integer(&doc, "b", "b").unwrap(), Some(60));
        assert!(integer(&doc, "c", "c").is_err());
        assert_eq!(boolean(&doc, "t", "t").unwrap(), Some(true));
        assert_eq!(boolean(&doc, "u", "u").unwrap(), Some(false));
    }

    #[test]
    fn periods_follow_cloudwatch() {
        for ok in [1, 5, 30, 60, 300, 86_400] {
            assert_eq!(period(&json!({"Period": ok}), "Period", "Period").unwrap(), ok);
        }
        for bad in [0, -60, 7, 90] {
            assert_eq!(
                period(&json!({"Period": bad}), "Period", "Period").unwrap_err().kind,
                ErrorKind::InvalidParameterValue
            );
        }
        assert_eq!(period(&json!({}), "Period", "Period").unwrap_err().kind, ErrorKind::MissingParameter);
    }

    #[test]
    fn dimensions_need_names_and_values_once() {
        let doc = json!({"D": [{"Name": "FunctionName", "Value": "f"}]});
        assert_eq!(dimensions(&doc, "D", "D").unwrap(), vec![("FunctionName".into(), "f".into())]);
        let error = dimensions(&json!({"D": [{"Name": "FunctionName"}]}), "D", "D").unwrap_err();
        assert_eq!(error, CwError::missing("D.member.1.Value"));
        let twice = json!({"D": [{"Name": "A", "Value": "1"}, {"Name": "A", "Value": "2"}]});
        assert!(dimensions(&twice, "D", "D").is_err());
    }

    #[test]
    fn time_range_must_move_forward() {
        assert_eq!(time_range(&json!({"StartTime": 0, "EndTime": 60})).unwrap(), (0, 60));
        assert_eq!(
            time_range(&json!({"StartTime": 60, "EndTime": 60})).unwrap_err().kind,
            ErrorKind::InvalidParameterValue
        );
        assert_eq!(time_range(&json!({"StartTime": 60})).unwrap_err(), CwError::missing("EndTime"));
    }
}
