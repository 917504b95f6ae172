//! The text the translator hashes into a REST API deployment's logical id: Python 2.7's
//! `str()` of the Swagger body, as aws-sam-translator reproduces it (its `Py27Dict`): dict keys
//! in Python 2.7's hash-table order, template strings as `u'…'`, strings SAM wrote as `'…'`.
//!
//! Python 2.7 orders a dict by slot in an open-addressing table, which depends on the order keys
//! were inserted when they collide. nimbus sees templates as maps without their order, so keys of
//! the template's own objects are taken as inserted in sorted order and keys SAM writes in the
//! order SAM writes them; ids differ from AWS's only when colliding keys were written in another
//! order.

use serde_json::{Map, Value};

mod shadow;

use shadow::INDEXES;
pub(crate) use shadow::{dict_order, table_order, Op, Shadow, Shadows};

/// The order SAM inserts the keys it writes; anything else sorted after them.
pub(crate) fn insertion_order(map: &Map<String, Value>) -> Vec<String> {
    const SAM_ORDER: &[&str] = &[
        "swagger",
        "openapi",
        "info",
        "version",
        "title",
        "paths",
        "summary",
        "consumes",
        "produces",
        "in",
        "name",
        "schema",
        "required",
        "x-amazon-apigateway-integration",
        "type",
        "httpMethod",
        "uri",
        "requestTemplates",
        "responseTransferMode",
        "credentials",
        "responses",
        "timeoutInMillis",
        "default",
        "statusCode",
        "responseParameters",
        "responseTemplates",
        "description",
        "headers",
        "method.response.header.Access-Control-Allow-Origin",
        "method.response.header.Access-Control-Allow-Headers",
        "method.response.header.Access-Control-Allow-Methods",
        "method.response.header.Access-Control-Max-Age",
        "method.response.header.Access-Control-Allow-Credentials",
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Headers",
        "Access-Control-Allow-Methods",
        "Access-Control-Max-Age",
        "Access-Control-Allow-Credentials",
        "Bucket",
        "Key",
        "Version",
    ];
    // Security definitions and authorizers SAM writes have orders of their own.
    const SECURITY: &[&str] =
        &["type", "name", "in", "x-amazon-apigateway-authtype", "x-amazon-apigateway-authorizer"];
    const AUTHORIZER: &[&str] = &[
        "type",
        "providerARNs",
        "authorizerUri",
        "authorizerResultTtlInSeconds",
        "authorizerCredentials",
        "identitySource",
        "identityValidationExpression",
    ];
    let authtype = map.get("x-amazon-apigateway-authtype").and_then(Value::as_str);
    let api_key = map.len() == 3
        && map.get("type").and_then(Value::as_str) == Some("apiKey")
        && map.contains_key("name")
        && map.contains_key("in");
    let order: &[&str] = if authtype.is_some() || api_key {
        SECURITY
    } else if map.contains_key("authorizerUri") || map.contains_key("providerARNs") {
        AUTHORIZER
    } else {
        SAM_ORDER
    };
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort_by_key(|k| (order.iter().position(|s| s == k).unwrap_or(usize::MAX), k.clone()));
    keys
}

#[derive(Clone, Copy)]
enum Origin<'a> {
    /// Everything came from the template (`u'…'`).
    Template(&'a [String]),
    /// SAM's own document: its constants are plain, paths, methods and URIs come from the
    /// template, and so do CORS header values but the ones SAM wrote (listed).
    Sam(&'a [String]),
}

/// `str(swagger)` as the translator computes it; `managed` when SAM generated the body.
/// Marks (in `sam_strings`) an API one of whose events names `AWS_IAM` as its authorizer.
pub(crate) const EVENT_IAM: &str = "\u{0}event AWS_IAM";

/// `str(swagger)` as the translator computes it; `managed` when SAM generated the body, else
/// `original` is the body the template gave (what SAM added to it is written as SAM writes).
pub(crate) fn swagger_repr(
    body: &Value,
    managed: bool,
    sam_strings: &[String],
    shadow: Option<&Shadow>,
    original: Option<&Value>,
) -> String {
    let mut out = String::new();
    let origin = if managed { Origin::Sam(sam_strings) } else { Origin::Template(sam_strings) };
    write(body, origin, shadow, &[], if managed { None } else { original }, &mut out);
    out
}

/// `str(BodyS3Location)`: SAM's keys, the template's values.
pub(crate) fn body_s3_repr(s3: &Map<String, Value>) -> String {
    let mut out = String::from("{");
    let keys = dict_order(&insertion_order(s3));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(k, false));
        out.push_str(": ");
        write(&s3[k], Origin::Template(&[]), None, &[], None, &mut out);
    }
    out.push('}');
    out
}

fn unicode(origin: Origin<'_>, path: &[&str], is_key: bool, key: &str) -> bool {
    let Origin::Sam(sam_strings) = origin else { return true };
    // `Fn::If` is SAM's; the condition it names is the template's, unless SAM made it up.
    if is_key && (key == "Fn::If" || key == "Ref") {
        return false;
    }
    if !is_key && path.len() >= 2 && path[path.len() - 1] == "[0]" && path[path.len() - 2] == "Fn::If" {
        return !key.ends_with("PathCondition");
    }
    // Rules read the path as if no `Fn::If` wrapped anything.
    let mut logical: Vec<&str> = vec![];
    let mut i = 0;
    while i < path.len() {
        if path[i] == "Fn::If" && path.get(i + 1).is_some_and(|n| n.starts_with('[')) {
            i += 2;
            continue;
        }
        logical.push(path[i]);
        i += 1;
    }
    // OpenAPI 3's components.securitySchemes are Swagger's securityDefinitions, moved.
    if logical.len() >= 2 && logical[0] == "components" && logical[1] == "securitySchemes" {
        logical.splice(0..2, ["securityDefinitions"]);
    }
    let path = &logical[..];
    let parent = path.last().copied().unwrap_or("");
    let grandparent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
    let great = if path.len() >= 3 { path[path.len() - 3] } else { "" };
    let in_definitions = path.first() == Some(&"securityDefinitions");
    // Gateway responses and models are the template's, but for the status code SAM re-writes.
    if path.first() == Some(&"x-amazon-apigateway-gateway-responses") {
        return match is_key {
            true => {
                path.len() == 1 || path.contains(&"responseParameters") || path.contains(&"responseTemplates")
            }
            false => parent != "statusCode",
        };
    }
    if path.first() == Some(&"definitions") {
        return !path.is_empty();
    }
    if path.len() >= 2 && path[0] == "components" && path[1] == "schemas" {
        return true;
    }
    // Binary media types are the template's, intrinsic functions included.
    if path.first() == Some(&"x-amazon-apigateway-binary-media-types") && (is_key || path.len() > 2) {
        return true;
    }
    // A CORS value the template gave as an intrinsic function.
    if let Some(i) = path.iter().position(|p| *p == "responseParameters") {
        if path.len() >= i + 2 && (is_key || path.len() > i + 2) {
            return true;
        }
    }
    if is_key {
        // path names, and method names under a path (ANY is SAM's constant); authorizer names
        if parent.starts_with('[') && grandparent == "security" {
            return key != "api_key" && key != "api_key_false";
        }
        if in_definitions && path.len() == 1 {
            // AWS_IAM is the template's name when only the DefaultAuthorizer gave it.
            return key != "api_key" && !(key == "AWS_IAM" && sam_strings.iter().any(|s| s == EVENT_IAM));
        }
        // values the template gave, intrinsic functions included
        let given =
            ["__FunctionArn__", "providerARNs", "authorizerCredentials", "identityValidationExpression"];
        if in_definitions && path.iter().any(|p| given.contains(p)) {
            return true;
        }
        // ($default is SAM's own path for an HttpApi event without one)
        (parent == "paths" && key != "$default")
            || (grandparent == "paths" && key != "x-amazon-apigateway-any-method")
    } else if path.contains(&"security") && parent.starts_with('[') {
        // authorization scopes
        true
    } else if in_definitions
        && path
            .iter()
            .any(|p| ["providerARNs", "authorizerCredentials", "identityValidationExpression"].contains(p))
    {
        true
    } else if in_definitions {
        (parent == "name"
            && path.len() == 3
            && path[1] != "api_key"
            && key != "Authorization"
            && key != "Unused")
            || (parent.starts_with('[') && grandparent == "providerARNs")
            || matches!(parent, "identitySource" | "identityValidationExpression" | "authorizerCredentials")
            || (path.contains(&"authorizerUri") && path.contains(&"[1]"))
    } else {
        // the integration URI of a function (not of an alias), the OpenApiVersion the template
        // gave, an invoke role the template named, binary media types, CORS values the template gave, request parameters
        (parent == "Fn::Sub" && grandparent == "uri" && key.contains(".Arn}"))
            || (parent == "openapi" && path.len() == 1)
            || (parent == "credentials"
                && grandparent == "x-amazon-apigateway-integration"
                && !(key.starts_with("arn:") && key.ends_with(":iam::*:user/*")))
            || (parent.starts_with('[') && grandparent == "x-amazon-apigateway-binary-media-types")
            || (grandparent == "responseParameters" && !sam_strings.iter().any(|s| s == key))
            || (parent.starts_with('[') && grandparent == "cacheKeyParameters")
            || (parent == "name" && great == "parameters")
            || (parent == "in" && key != "query" && key != "body" && great == "parameters")
    }
}

fn write(
    value: &Value,
    origin: Origin<'_>,
    shadow: Option<&Shadow>,
    path: &[&str],
    original: Option<&Value>,
    out: &mut String,
) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 {
                    out.push_str(&format!("{f:.1}"));
                } else {
                    out.push_str(&format!("{f}"));
                }
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => out.push_str(&quote(s, unicode(origin, path, false, s))),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let mut p = path.to_vec();
                p.push(INDEXES.get(i).copied().unwrap_or("[]"));
                write(item, origin, shadow, &p, original.and_then(|o| o.get(i)), out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let order = match shadow {
                Some(shadow) => shadow.order(path, map),
                None => dict_order(&insertion_order(map)),
            };
            for (i, key) in order.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                // SAM's CORS method is its own constant.
                let cors = key == "options" && map[key].get("summary") == Some(&Value::from("CORS support"));
                // What SAM added to the template's own body is written as in SAM's bodies.
                let added = original.and_then(Value::as_object).is_some_and(|o| !o.contains_key(key));
                let child = match origin {
                    Origin::Template(strings) if cors || added => Origin::Sam(strings),
                    other => other,
                };
                out.push_str(&quote(key, unicode(child, path, true, key) && !cors));
                out.push_str(": ");
                let mut p = path.to_vec();
                p.push(key);
                let below = if added { None } else { original.and_then(|o| o.get(key)) };
                write(&map[key], child, shadow, &p, below, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a string (`u` prefixed for unicode strings).
fn quote(s: &str, unicode: bool) -> String {
    let body: String = if unicode {
        // repr(s.encode("unicode_escape").decode("ascii")) with "\\\\" → "\\"
        let escaped: String = s
            .chars()
            .map(|c| match c {
                '\\' => "\\\\".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
                c if (c as u32) > 0x7f && (c as u32) <= 0xff => format!("\\x{:02x}", c as u32),
                c if (c as u32) > 0xff && (c as u32) <= 0xffff => format!("\\u{:04x}", c as u32),
                c if (c as u32) > 0xffff => format!("\\U{:08x}", c as u32),
                c => c.to_string(),
            })
            .collect();
        python_repr(&escaped).replace("\\\\", "\\")
    } else {
        python_repr(s)
    };
    if unicode {
        format!("u{body}")
    } else {
        body
    }
}

/// Python 3's `repr()` of a str.
fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python27_orders_dicts_by_hash_slot() {
        let keys: Vec<String> = ["swagger", "info", "paths"].iter().map(|s| s.to_string()).collect();
        assert_eq!(dict_order(&keys), vec!["info", "paths", "swagger"]);
        let keys: Vec<String> = ["type", "httpMethod", "uri"].iter().map(|s| s.to_string()).collect();
        assert_eq!(dict_order(&keys), vec!["httpMethod", "type", "uri"]);
    }

    #[test]
    fn a_user_body_prints_as_unicode() {
        let body = json!({"swagger": "2.0", "info": {"title": "body"}, "paths": {"/ping": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}}});
        assert_eq!(
            swagger_repr(&body, false, &[], None, None),
            "{u'info': {u'title': u'body'}, u'paths': {u'/ping': {u'get': {u'x-amazon-apigateway-integration': {u'type': u'mock'}}}}, u'swagger': u'2.0'}"
        );
    }
}
#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn cors_method_keys_follow_python() {
        let keys: Vec<String> =
            ["summary", "consumes", "produces", "x-amazon-apigateway-integration", "responses"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(
            dict_order(&keys),
            vec!["responses", "x-amazon-apigateway-integration", "produces", "consumes", "summary"]
        );
        let mut shadow = Shadow::new(
            &serde_json::json!({"m": {"summary": 1, "consumes": 1, "produces": 1, "x-amazon-apigateway-integration": 1, "responses": 1}}),
        );
        shadow.copy();
        let map = serde_json::json!({"summary": 1, "consumes": 1, "produces": 1, "x-amazon-apigateway-integration": 1, "responses": 1});
        assert_eq!(
            shadow.order(&["m"], map.as_object().unwrap()),
            vec!["x-amazon-apigateway-integration", "consumes", "summary", "responses", "produces"]
        );
    }
}
