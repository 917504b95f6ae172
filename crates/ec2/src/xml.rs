//! Answers in EC2's XML (`<{Op}Response xmlns=…><requestId/>…`, lists as `<item>`) and Auto
//! Scaling's Query XML (`<{Op}Result>…`, lists as `<member>`), rendered from JSON values whose
//! keys are already the wire's element names.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::xml::escape;
use nimbus_api::{ApiResponse, Body};
use serde_json::Value;

pub const EC2_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
pub const AUTOSCALING_NAMESPACE: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

/// Renders `value`'s members as elements; arrays become `<item_tag>` children.
pub fn render(out: &mut String, value: &Value, item_tag: &str) {
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                if child.is_null() {
                    continue;
                }
                out.push('<');
                out.push_str(name);
                out.push('>');
                render(out, child, item_tag);
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("<{item_tag}>"));
                render(out, item, item_tag);
                out.push_str(&format!("</{item_tag}>"));
            }
        }
        Value::String(text) => out.push_str(&escape(text)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Null => {}
    }
}

fn xml_response(body: String) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=UTF-8"));
    response
}

/// An EC2 answer: the result's members directly under the response element.
pub fn ec2(action: &str, result: &Value, request_id: &str) -> ApiResponse {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{EC2_NAMESPACE}\"><requestId>{}</requestId>",
        escape(request_id)
    );
    render(&mut body, result, "item");
    body.push_str(&format!("</{action}Response>"));
    xml_response(body)
}

/// An Auto Scaling answer: the result inside `<{Op}Result>`, then the response metadata.
pub fn query(action: &str, result: Option<&Value>, request_id: &str) -> ApiResponse {
    let mut body = format!("<?xml version=\"1.0\"?>\n<{action}Response xmlns=\"{AUTOSCALING_NAMESPACE}\">");
    if let Some(result) = result {
        body.push_str(&format!("<{action}Result>"));
        render(&mut body, result, "member");
        body.push_str(&format!("</{action}Result>"));
    }
    body.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    ));
    xml_response(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_render_as_items() {
        let mut out = String::new();
        render(&mut out, &serde_json::json!({"set": [{"a": "x<"}, {"a": 2}], "skip": null}), "item");
        assert_eq!(out, "<set><item><a>x&lt;</a></item><item><a>2</a></item></set>");
    }
}
