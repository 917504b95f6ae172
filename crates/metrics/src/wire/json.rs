//! JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`): timestamps are epoch seconds.

use serde_json::{Map, Number, Value};

use crate::error::{CwError, ErrorKind};
use crate::out::Out;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

pub fn decode(body: &[u8]) -> Result<Value, CwError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(CwError::new(ErrorKind::Serialization, "The request body must be a JSON object.")),
        Err(error) => {
            Err(CwError::new(ErrorKind::Serialization, format!("The request body is not JSON: {error}")))
        }
    }
}

pub fn encode(out: &Out) -> Value {
    match out {
        Out::Str(s) => Value::String(s.clone()),
        Out::Int(n) => Value::from(*n),
        Out::Bool(b) => Value::Bool(*b),
        Out::Double(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Out::Time(seconds) => Value::from(*seconds),
        Out::List(items) => Value::Array(items.iter().map(encode).collect()),
        Out::Struct(members) => members.iter().map(|(k, v)| (k.to_string(), encode(v))).collect(),
        Out::Map(entries) => entries.iter().map(|(k, v)| (k.clone(), encode(v))).collect(),
    }
}

pub fn error(error: &CwError) -> Value {
    let mut body = Map::new();
    body.insert("__type".into(), error.type_id().into());
    body.insert(error.kind.message_member().into(), error.message.clone().into());
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_objects_and_refuses_the_rest() {
        assert_eq!(decode(b"").unwrap(), serde_json::json!({}));
        assert_eq!(decode(br#"{"Namespace":"AWS/Lambda"}"#).unwrap()["Namespace"], "AWS/Lambda");
        assert_eq!(decode(b"[1]").unwrap_err().kind, ErrorKind::Serialization);
        assert_eq!(decode(b"{").unwrap_err().kind, ErrorKind::Serialization);
    }

    #[test]
    fn encodes_timestamps_as_epoch_seconds_and_maps_as_objects() {
        let out = Out::Struct(vec![
            ("Timestamp", Out::Time(60)),
            ("Sum", Out::Double(2.5)),
            ("ExtendedStatistics", Out::Map(vec![("p99".into(), Out::Double(1.0))])),
            ("Values", Out::List(vec![])),
        ]);
        let json = encode(&out);
        assert_eq!(
            json,
            serde_json::json!({"Timestamp": 60, "Sum": 2.5, "ExtendedStatistics": {"p99": 1.0}, "Values": []})
        );
    }

    #[test]
    fn errors_name_the_model_shape() {
        let body = error(&CwError::invalid("bad"));
        assert_eq!(body["__type"], "com.amazonaws.cloudwatch#InvalidParameterValueException");
        assert_eq!(body["message"], "bad");
        let fault = error(&CwError::new(ErrorKind::InternalServiceError, "boom"));
        assert_eq!(fault["Message"], "boom");
    }
}
