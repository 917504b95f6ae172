//! Query-protocol answers rendered from JSON: objects become elements, arrays `<member>` lists.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::xml::escape;
use nimbus_api::{ApiResponse, Body};
use serde_json::Value;

pub fn element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (key, value) in map {
                match (key.as_str(), value) {
                    // A map: its entries side by side, `<entry><key/><value/></entry>`.
                    ("entry", Value::Array(entries)) => entries.iter().for_each(|e| element(out, "entry", e)),
                    _ => element(out, key, value),
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for item in items {
                element(out, "member", item);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(text) => out.push_str(&format!("<{name}>{}</{name}>", escape(text))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// `<{Action}Response><{Action}Result>…</{Action}Result><ResponseMetadata>…`.
pub fn response(namespace: &str, action: &str, result: Option<&Value>, request_id: &str) -> ApiResponse {
    let mut inner = String::new();
    if let Some(Value::Object(map)) = result {
        for (key, value) in map {
            element(&mut inner, key, value);
        }
    }
    let result =
        if result.is_some() { format!("<{action}Result>{inner}</{action}Result>") } else { String::new() };
    let body = format!(
        "<{action}Response xmlns=\"{namespace}\">{result}<ResponseMetadata><RequestId>{}</RequestId>\
         </ResponseMetadata></{action}Response>",
        escape(request_id)
    );
    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}
