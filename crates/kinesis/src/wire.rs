//! The two encodings Kinesis speaks: JSON 1.1 (boto3, the aws CLI) and AWS's CBOR
//! (`application/x-amz-cbor-1.1`, the default of the AWS SDK for Java). Operations read and
//! write JSON documents; CBOR is translated at the edge: blobs (`Data`) are byte strings rather
//! than base64 text, and timestamps are tag 1 holding epoch *milliseconds* (not RFC 8949's
//! seconds: the SDKs' own convention).

use base64::Engine as _;
use bytes::Bytes;
use ciborium::Value as Cbor;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiResponse, AwsError, Body};
use serde_json::{Map, Number, Value};

use crate::error::Result;

pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    pub fn of(content_type: Option<&str>) -> Format {
        match content_type {
            Some(t) if t.starts_with(CBOR_CONTENT_TYPE) => Format::Cbor,
            _ => Format::Json,
        }
    }

    /// The request body as a JSON object (blobs as base64, timestamps as epoch seconds).
    pub fn decode(self, body: &[u8]) -> Result<Value> {
        if body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        let document = match self {
            Format::Json => serde_json::from_slice(body)
                .map_err(|e| AwsError::new(400, "SerializationException", format!("Malformed JSON: {e}")))?,
            Format::Cbor => {
                let value: Cbor = ciborium::from_reader(body).map_err(|e| {
                    AwsError::new(400, "SerializationException", format!("Malformed CBOR: {e}"))
                })?;
                cbor_to_json(value)
            }
        };
        match document {
            Value::Object(_) => Ok(document),
            _ => Err(AwsError::new(400, "SerializationException", "The request body must be an object.")),
        }
    }

    pub fn respond(self, output: Value) -> ApiResponse {
        let (bytes, content_type) = match self {
            Format::Json => (output.to_string().into_bytes(), JSON_CONTENT_TYPE),
            Format::Cbor => (encode_cbor(&output), CBOR_CONTENT_TYPE),
        };
        let mut response = ApiResponse::new(Body::new(Bytes::from(bytes)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    pub fn error(self, error: AwsError) -> ApiResponse {
        match self {
            Format::Json => error.into_response(nimbus_api::Protocol::Json),
            Format::Cbor => {
                let body = serde_json::json!({"__type": error.code, "message": error.message});
                let mut response = self.respond(body);
                *response.status_mut() = error.status;
                if let Ok(code) = HeaderValue::from_str(error.code) {
                    response.headers_mut().insert("x-amzn-errortype", code);
                }
                response
            }
        }
    }
}

fn cbor_to_json(value: Cbor) -> Value {
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
        Cbor::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Array(items) => Value::Array(items.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => entries
            .into_iter()
            .filter_map(|(k, v)| k.into_text().ok().map(|k| (k, v)))
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, cbor_to_json(v)))
            .collect(),
        // Timestamps: epoch milliseconds → the epoch seconds JSON carries.
        Cbor::Tag(1, inner) => match cbor_to_json(*inner) {
            Value::Number(n) => {
                n.as_f64().and_then(|ms| Number::from_f64(ms / 1000.0)).map_or(Value::Null, Value::Number)
            }
            other => other,
        },
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        _ => Value::Null,
    }
}

pub fn encode_cbor(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail, and every value here is encodable.
    let _ = ciborium::into_writer(&json_to_cbor(None, value), &mut bytes);
    bytes
}

/// `key` is the member name the value is under: `Data` is a blob, `…Timestamp` a timestamp.
fn json_to_cbor(key: Option<&str>, value: &Value) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) if key.is_some_and(|k| k.ends_with("Timestamp")) => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Tag(1, Box::new(Cbor::Integer(ms.into())))
        }
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(x)) => Cbor::Float(x),
            _ => Cbor::Null,
        },
        Value::String(s) if key == Some("Data") => {
            Cbor::Bytes(base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default())
        }
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(|item| json_to_cbor(key, item)).collect()),
        Value::Object(members) => Cbor::Map(
            members.iter().map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(Some(k), v))).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cbor_blobs_and_millisecond_timestamps_both_ways() {
        let request = Cbor::Map(vec![
            (Cbor::Text("Data".into()), Cbor::Bytes(b"hi".to_vec())),
            (
                Cbor::Text("Timestamp".into()),
                Cbor::Tag(1, Box::new(Cbor::Integer(1_500_000_000_250i64.into()))),
            ),
        ]);
        let mut body = Vec::new();
        ciborium::into_writer(&request, &mut body).unwrap();
        let document = Format::Cbor.decode(&body).unwrap();
        assert_eq!(document, json!({"Data": "aGk=", "Timestamp": 1_500_000_000.25}));

        let out = encode_cbor(&json!({"Records": [{"Data": "aGk=", "ApproximateArrivalTimestamp": 1.5}]}));
        let back: Cbor = ciborium::from_reader(&out[..]).unwrap();
        let record = &back.into_map().unwrap()[0].1.clone().into_array().unwrap()[0];
        let members = record.clone().into_map().unwrap();
        let member = |name: &str| members.iter().find(|(k, _)| k.as_text() == Some(name)).unwrap().1.clone();
        assert_eq!(member("Data"), Cbor::Bytes(b"hi".to_vec()));
        assert_eq!(member("ApproximateArrivalTimestamp"), Cbor::Tag(1, Box::new(Cbor::Integer(1500.into()))));
    }

    #[test]
    fn garbage_is_a_serialization_error() {
        assert_eq!(Format::Json.decode(b"{").unwrap_err().code, "SerializationException");
        assert_eq!(Format::Cbor.decode(b"\xff\xff").unwrap_err().code, "SerializationException");
        assert_eq!(Format::Json.decode(b"").unwrap(), json!({}));
    }
}
