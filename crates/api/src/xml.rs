//! Text for XML answers. Requests echo user input (a bucket name, a parameter value) into
//! error messages and listings; XML 1.0 cannot carry most control characters even escaped, and
//! botocore refuses the whole document when one appears, so they become U+FFFD.

/// `text` escaped for an XML element or attribute, with characters XML 1.0 forbids replaced.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be normalised away by the reader.
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if allowed(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A Query-protocol element from JSON: objects become elements, arrays `<member>` lists,
/// `null` nothing.
pub fn element(out: &mut String, name: &str, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => {}
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (key, value) in map {
                element(out, key, value);
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

/// A Query-protocol answer: `<{Action}Response xmlns><{Action}Result>…</{Action}Result>
/// <ResponseMetadata><RequestId/></ResponseMetadata></{Action}Response>`.
pub fn query_response(
    namespace: &str,
    action: &str,
    result: Option<&serde_json::Value>,
    request_id: &str,
) -> crate::ApiResponse {
    let mut inner = String::new();
    if let Some(serde_json::Value::Object(map)) = result {
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
    let mut response = crate::ApiResponse::new(crate::Body::new(bytes::Bytes::from(body)));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped_and_forbidden_characters_replaced() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("10\u{0}x\u{1b}\u{ffff}"), "10\u{fffd}x\u{fffd}\u{fffd}");
        assert_eq!(escape("tab\tline\nret\r"), "tab\tline\nret&#xD;");
        assert_eq!(escape("ünïcødé 😀"), "ünïcødé 😀");
    }
}
