//! Smithy RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/operation/<Op>`): what
//! botocore 1.43 and the aws CLI v1 speak to CloudWatch. Timestamps are tag 1 epoch seconds.

use ciborium::Value as Cbor;
use serde_json::{Map, Number, Value};

use crate::error::{CwError, ErrorKind};
use crate::out::Out;

pub const CONTENT_TYPE: &str = "application/cbor";
pub const PROTOCOL: &str = "rpc-v2-cbor";
/// Tag 1: epoch-based date/time.
const EPOCH_TAG: u64 = 1;

/// The body as the JSON document the operations read; tag-1 timestamps become epoch seconds.
pub fn decode(body: &[u8]) -> Result<Value, CwError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Cbor = ciborium::from_reader(body).map_err(|error| {
        CwError::new(ErrorKind::Serialization, format!("The request body is not CBOR: {error}"))
    })?;
    match to_json(value) {
        document @ Value::Object(_) => Ok(document),
        _ => Err(CwError::new(ErrorKind::Serialization, "The request body must be a CBOR map.")),
    }
}

fn to_json(value: Cbor) -> Value {
    match value {
        Cbor::Integer(i) => {
            let i = i128::from(i);
            i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or(Value::Null)
        }
        Cbor::Float(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => {
            let text_keys = entries.into_iter().filter_map(|(k, v)| k.into_text().ok().map(|k| (k, v)));
            // Smithy serializers may send null for absent members: treat them as absent.
            text_keys.filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, to_json(v))).collect()
        }
        Cbor::Tag(_, inner) => to_json(*inner),
        _ => Value::Null,
    }
}

pub fn encode(out: &Out) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail, and every value here is encodable.
    let _ = ciborium::into_writer(&to_cbor(out), &mut bytes);
    bytes
}

fn to_cbor(out: &Out) -> Cbor {
    match out {
        Out::Str(s) => Cbor::Text(s.clone()),
        Out::Int(n) => Cbor::Integer((*n).into()),
        Out::Bool(b) => Cbor::Bool(*b),
        Out::Double(x) => Cbor::Float(*x),
        Out::Time(seconds) => Cbor::Tag(EPOCH_TAG, Box::new(Cbor::Integer((*seconds).into()))),
        Out::List(items) => Cbor::Array(items.iter().map(to_cbor).collect()),
        Out::Struct(members) => {
            Cbor::Map(members.iter().map(|(k, v)| (Cbor::Text(k.to_string()), to_cbor(v))).collect())
        }
        Out::Map(entries) => {
            Cbor::Map(entries.iter().map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(v))).collect())
        }
    }
}

pub fn error(error: &CwError) -> Vec<u8> {
    encode(&Out::Struct(vec![
        ("__type", Out::Str(error.type_id())),
        (error.kind.message_member(), Out::str(&error.message)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(value: &Cbor) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn decodes_what_botocore_sends() {
        // botocore: {"Namespace": "AWS/Lambda", "StartTime": tag1(1700000000), "Period": 60}
        let body = b"\xa3\x69Namespace\x6aAWS/Lambda\x69StartTime\xc1\x1a\x65\x53\xf1\x00\x66Period\x18\x3c";
        let document = decode(body).unwrap();
        assert_eq!(
            document,
            serde_json::json!({"Namespace": "AWS/Lambda", "StartTime": 1_700_000_000, "Period": 60})
        );
        assert_eq!(decode(b"").unwrap(), serde_json::json!({}));
    }

    #[test]
    fn float_timestamps_nested_lists_and_nulls() {
        let value = Cbor::Map(vec![
            (Cbor::Text("T".into()), Cbor::Tag(1, Box::new(Cbor::Float(1.5)))),
            (
                Cbor::Text("L".into()),
                Cbor::Array(vec![Cbor::Map(vec![(Cbor::Text("Name".into()), Cbor::Text("x".into()))])]),
            ),
            (Cbor::Text("N".into()), Cbor::Null),
        ]);
        assert_eq!(decode(&cbor(&value)).unwrap(), serde_json::json!({"T": 1.5, "L": [{"Name": "x"}]}));
    }

    #[test]
    fn refuses_garbage_and_non_maps() {
        assert_eq!(decode(b"\xff\xff").unwrap_err().kind, ErrorKind::Serialization);
        assert_eq!(decode(&cbor(&Cbor::Array(vec![]))).unwrap_err().kind, ErrorKind::Serialization);
    }

    #[test]
    fn encodes_timestamps_with_tag_one() {
        let bytes = encode(&Out::Struct(vec![("Timestamp", Out::Time(60)), ("Sum", Out::Double(0.5))]));
        let back: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
        let entries = back.into_map().unwrap();
        assert_eq!(entries[0].1, Cbor::Tag(1, Box::new(Cbor::Integer(60.into()))));
        assert_eq!(entries[1].1, Cbor::Float(0.5));
    }

    #[test]
    fn errors_carry_type_and_message() {
        let bytes = error(&CwError::missing("Namespace"));
        let back: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
        let entries = back.into_map().unwrap();
        assert_eq!(
            entries[0].1,
            Cbor::Text("com.amazonaws.cloudwatch#MissingRequiredParameterException".into())
        );
        assert_eq!(entries[1].1, Cbor::Text("The parameter Namespace is required.".into()));
    }
}
