//! SNS's Query answers: `<{Op}Response xmlns=…><{Op}Result>…</{Op}Result><ResponseMetadata>…`,
//! lists as `<member>` elements, maps as `<entry><key/><value/></entry>`.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::xml::escape;
use nimbus_api::{ApiResponse, Body};

pub const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// `<name>text</name>`, escaped.
pub fn elem(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// A map as SNS renders attributes.
pub fn entries(name: &str, map: &BTreeMap<String, String>) -> String {
    let mut out = format!("<{name}>");
    for (key, value) in map {
        out.push_str(&format!("<entry>{}{}</entry>", elem("key", key), elem("value", value)));
    }
    out.push_str(&format!("</{name}>"));
    out
}

/// A list whose members are already rendered.
pub fn members(name: &str, items: impl IntoIterator<Item = String>) -> String {
    let inner: String = items.into_iter().map(|item| format!("<member>{item}</member>")).collect();
    format!("<{name}>{inner}</{name}>")
}

/// The whole answer; `result` None for operations without a result element.
pub fn response(action: &str, result: Option<&str>, request_id: &str) -> ApiResponse {
    let result = result.map(|inner| format!("<{action}Result>{inner}</{action}Result>")).unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\"?>\n<{action}Response xmlns=\"{NAMESPACE}\">{result}<ResponseMetadata>\
         <RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    );
    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}
