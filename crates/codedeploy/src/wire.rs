//! CodeDeploy's two wires: JSON 1.1 (`X-Amz-Target`) and Smithy RPC v2 CBOR
//! (`POST /service/CodeDeploy_20141006/operation/<Op>`), which botocore prefers. Timestamps
//! (members named `…Time`) are tag-1 epoch seconds in CBOR.

use bytes::Bytes;
use ciborium::Value as Cbor;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use nimbus_api::{ApiRequest, ApiResponse, AwsError, Body, Protocol};
use serde_json::{Map, Number, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Json,
    Cbor,
}

pub struct Call {
    pub wire: Wire,
    pub operation: String,
    pub input: Result<Value, AwsError>,
}

pub fn decode(request: &ApiRequest) -> Call {
    let path = request.uri.path();
    if let Some(rest) = path.strip_prefix(&format!("/service/{}/operation/", crate::TARGET_PREFIX)) {
        let input = if request.body.is_empty() {
            Ok(Value::Object(Map::new()))
        } else {
            ciborium::from_reader::<Cbor, _>(&request.body[..])
                .map(to_json)
                .map_err(|e| serialization(format!("The request body is not CBOR: {e}")))
        };
        return Call { wire: Wire::Cbor, operation: rest.to_owned(), input };
    }
    let target = request.header("x-amz-target").unwrap_or_default();
    let operation = target.strip_prefix(crate::TARGET_PREFIX).unwrap_or(target).trim_start_matches('.');
    let input = if request.body.is_empty() {
        Ok(Value::Object(Map::new()))
    } else {
        serde_json::from_slice(&request.body)
            .map_err(|e| serialization(format!("The request body is not JSON: {e}")))
    };
    Call { wire: Wire::Json, operation: operation.to_owned(), input }
}

fn serialization(message: String) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

fn to_json(value: Cbor) -> Value {
    match value {
        Cbor::Integer(i) => i64::try_from(i128::from(i)).map(Value::from).unwrap_or(Value::Null),
        Cbor::Float(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => entries
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .filter_map(|(k, v)| k.into_text().ok().map(|k| (k, to_json(v))))
            .collect(),
        Cbor::Tag(_, inner) => to_json(*inner),
        _ => Value::Null,
    }
}

fn to_cbor(key: Option<&str>, value: &Value) -> Cbor {
    match value {
        Value::Number(n) if key.is_some_and(|k| k.ends_with("Time")) => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or_default())))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Null => Cbor::Null,
        Value::Array(items) => Cbor::Array(items.iter().map(|v| to_cbor(None, v)).collect()),
        Value::Object(map) => {
            Cbor::Map(map.iter().map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(Some(k), v))).collect())
        }
    }
}

fn cbor_response(status: StatusCode, value: &Value) -> ApiResponse {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = ciborium::into_writer(&to_cbor(None, value), &mut bytes);
    let mut response = ApiResponse::new(Body::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/cbor"));
    response
}

pub fn respond(wire: Wire, value: Value) -> ApiResponse {
    match wire {
        Wire::Cbor => cbor_response(StatusCode::OK, &value),
        Wire::Json => {
            let mut response = nimbus_api::json_response(value);
            let json = HeaderValue::from_static("application/x-amz-json-1.1");
            response.headers_mut().insert(CONTENT_TYPE, json);
            response
        }
    }
}

pub fn error(wire: Wire, error: AwsError) -> ApiResponse {
    match wire {
        Wire::Json => error.into_response(Protocol::Json),
        Wire::Cbor => {
            let body = serde_json::json!({"__type": error.code, "message": error.message});
            cbor_response(error.status, &body)
        }
    }
}
