//! The three protocols botocore speaks to CloudWatch, told apart by their requests: Smithy RPC
//! v2 CBOR by path, JSON 1.0 by `X-Amz-Target`, Query by a form whose `Version` is CloudWatch's.

pub mod cbor;
pub mod json;
pub mod query;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Body};
use serde_json::Value;

use crate::error::{CwError, ErrorKind};
use crate::out::Out;

/// CloudWatch's Smithy service name, the prefix of its targets and CBOR paths.
pub const SERVICE: &str = "GraniteServiceVersion20100801";
const CBOR_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Cbor,
    Json,
    Query,
}

/// A request decoded: which protocol, which operation, and its input as a JSON document.
#[derive(Debug)]
pub struct Call {
    pub wire: Wire,
    pub operation: String,
    pub input: Value,
}

/// The protocol of a request CloudWatch answers, told by its head: the CBOR path, the JSON
/// target, or a Query `GET /?Action=…&Version=2010-08-01`. Query forms posted to `/` are told
/// by their body: [`claims_body`].
pub fn detect(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Wire> {
    if uri.path().starts_with(CBOR_PATH) {
        return Some(Wire::Cbor);
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if target.is_some_and(|t| t.strip_prefix(SERVICE).is_some_and(|op| op.starts_with('.'))) {
        return Some(Wire::Json);
    }
    let get = method == Method::GET && uri.path() == "/";
    (get && is_cloudwatch_form(uri.query().unwrap_or("").as_bytes())).then_some(Wire::Query)
}

/// A Query form posted to `/` naming an `Action` of CloudWatch's API version: other Query
/// services (SQS 2012-11-05, CloudFormation 2010-05-15, EC2 …) have other versions.
pub fn claims_body(method: &Method, uri: &Uri, body: &[u8]) -> bool {
    let query = uri.query().unwrap_or("").as_bytes();
    method == Method::POST && uri.path() == "/" && (is_cloudwatch_form(body) || is_cloudwatch_form(query))
}

fn is_cloudwatch_form(form: &[u8]) -> bool {
    let (mut action, mut version) = (false, false);
    for (key, value) in form_urlencoded::parse(form) {
        action |= key == "Action" && !value.is_empty();
        version |= key == "Version" && value == query::VERSION;
    }
    action && version
}

pub fn decode(request: &ApiRequest) -> Result<Call, (Wire, CwError)> {
    let wire = detect(&request.method, &request.uri, &request.headers).unwrap_or(Wire::Query);
    let fail = |error| (wire, error);
    let (operation, input) = match wire {
        Wire::Cbor => {
            let operation = request.uri.path().trim_start_matches(CBOR_PATH).to_owned();
            (operation, cbor::decode(&request.body).map_err(fail)?)
        }
        Wire::Json => {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.split_once('.').map_or("", |(_, op)| op).to_owned();
            (operation, json::decode(&request.body).map_err(fail)?)
        }
        Wire::Query => {
            let form = query::decode(request.uri.query(), &request.body).map_err(fail)?;
            let action = form.action.ok_or_else(|| {
                fail(CwError::new(ErrorKind::InvalidAction, "The request must contain the parameter Action."))
            })?;
            if let Some(version) = form.version.filter(|v| v != query::VERSION) {
                let message =
                    format!("Version {version} of CloudWatch is not served; use {}.", query::VERSION);
                return Err(fail(CwError::invalid(message)));
            }
            (action, form.document)
        }
    };
    Ok(Call { wire, operation, input })
}

pub fn respond(wire: Wire, operation: &str, out: &Out, request_id: &str) -> ApiResponse {
    match wire {
        Wire::Cbor => response(StatusCode::OK, wire, cbor::encode(out)),
        Wire::Json => response(StatusCode::OK, wire, json::encode(out).to_string().into_bytes()),
        Wire::Query => response(StatusCode::OK, wire, query::encode(operation, out, request_id)),
    }
}

pub fn error(wire: Wire, error: &CwError, request_id: &str) -> ApiResponse {
    let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match wire {
        Wire::Cbor => cbor::error(error),
        Wire::Json => json::error(error).to_string().into_bytes(),
        Wire::Query => query::error(error, request_id),
    };
    let mut response = response(status, wire, body);
    if wire != Wire::Query {
        if let Some(value) = error.query_error().and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert("x-amzn-query-error", value);
        }
    }
    response
}

fn response(status: StatusCode, wire: Wire, body: Vec<u8>) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = match wire {
        Wire::Cbor => {
            headers.insert("smithy-protocol", HeaderValue::from_static(cbor::PROTOCOL));
            cbor::CONTENT_TYPE
        }
        Wire::Json => json::CONTENT_TYPE,
        Wire::Query => query::CONTENT_TYPE,
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (hyper::header::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn each_protocol_is_recognised() {
        let post = Method::POST;
        let cbor_uri: Uri = "/service/GraniteServiceVersion20100801/operation/ListMetrics".parse().unwrap();
        assert_eq!(detect(&post, &cbor_uri, &HeaderMap::new()), Some(Wire::Cbor));
        let target = headers(&[("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")]);
        assert_eq!(detect(&post, &"/".parse().unwrap(), &target), Some(Wire::Json));
        let get: Uri = "/?Action=ListMetrics&Version=2010-08-01".parse().unwrap();
        assert_eq!(detect(&Method::GET, &get, &HeaderMap::new()), Some(Wire::Query));
        let root: Uri = "/".parse().unwrap();
        assert!(claims_body(&post, &root, b"Action=ListMetrics&Version=2010-08-01"));
        assert!(claims_body(&post, &root, b"Version=2010-08-01&Namespace=AWS%2FLambda&Action=PutMetricData"));
        assert!(claims_body(&post, &"/?Action=ListMetrics&Version=2010-08-01".parse().unwrap(), b""));
    }

    #[test]
    fn other_services_are_left_alone() {
        let post = Method::POST;
        let root: Uri = "/".parse().unwrap();
        assert_eq!(detect(&post, &root, &headers(&[FORM])), None, "forms are claimed by their body");
        assert!(!claims_body(&post, &root, b"Action=ListQueues&Version=2012-11-05"));
        assert!(!claims_body(&post, &root, b"Action=DescribeStacks&Version=2010-05-15"));
        assert!(!claims_body(&post, &root, b"Version=2010-08-01"));
        assert!(!claims_body(&Method::PUT, &root, b"Action=ListMetrics&Version=2010-08-01"));
        assert!(!claims_body(&post, &"/queue".parse().unwrap(), b"Action=ListMetrics&Version=2010-08-01"));
        let other_target = headers(&[("x-amz-target", "Logs_20140328.PutLogEvents")]);
        assert_eq!(detect(&post, &root, &other_target), None);
        let sqs_get: Uri = "/?Action=ListQueues&Version=2012-11-05".parse().unwrap();
        assert_eq!(detect(&Method::GET, &sqs_get, &HeaderMap::new()), None);
        let prefix_only = headers(&[("x-amz-target", "GraniteServiceVersion20100801x.Op")]);
        assert_eq!(detect(&post, &root, &prefix_only), None);
    }

    fn request(method: Method, uri: &str, pairs: &[(&'static str, &str)], body: &[u8]) -> ApiRequest {
        ApiRequest {
            method,
            uri: uri.parse().unwrap(),
            headers: headers(pairs),
            body: Bytes::copy_from_slice(body),
            request_id: "r".into(),
        }
    }

    #[test]
    fn decodes_operation_and_input_per_protocol() {
        let json = request(
            Method::POST,
            "/",
            &[("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")],
            br#"{"Namespace":"AWS/Lambda"}"#,
        );
        let call = decode(&json).unwrap();
        assert_eq!((call.wire, call.operation.as_str()), (Wire::Json, "ListMetrics"));
        assert_eq!(call.input["Namespace"], "AWS/Lambda");
        let cbor =
            request(Method::POST, "/service/GraniteServiceVersion20100801/operation/GetMetricData", &[], b"");
        assert_eq!(decode(&cbor).unwrap().operation, "GetMetricData");
        let form = request(Method::POST, "/", &[FORM], b"Action=ListMetrics&Version=2010-08-01");
        assert_eq!(decode(&form).unwrap().operation, "ListMetrics");
    }

    #[test]
    fn query_requests_without_action_or_with_another_version_fail() {
        let (wire, error) = decode(&request(Method::POST, "/", &[FORM], b"Version=2010-08-01")).unwrap_err();
        assert_eq!((wire, error.kind), (Wire::Query, ErrorKind::InvalidAction));
        let (_, error) =
            decode(&request(Method::POST, "/", &[FORM], b"Action=ListMetrics&Version=2012-11-05"))
                .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
    }

    #[test]
    fn errors_have_each_protocols_headers() {
        let missing = CwError::missing("Namespace");
        let cbor = error(Wire::Cbor, &missing, "r");
        assert_eq!(cbor.status(), 400);
        assert_eq!(cbor.headers()["smithy-protocol"], "rpc-v2-cbor");
        assert_eq!(cbor.headers()["content-type"], "application/cbor");
        assert_eq!(cbor.headers()["x-amzn-query-error"], "MissingParameter;Sender");
        let json = error(Wire::Json, &CwError::new(ErrorKind::InternalServiceError, "x"), "r");
        assert_eq!(json.status(), 500);
        assert_eq!(json.headers()["x-amzn-query-error"], "InternalServiceError;Receiver");
        let query = error(Wire::Query, &missing, "r");
        assert_eq!(query.headers()["content-type"], "text/xml");
        assert!(query.headers().get("x-amzn-query-error").is_none());
    }
}
