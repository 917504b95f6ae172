//! Functions' answers mapped to HTTP responses as API Gateway and function URLs map them, the
//! gateway's own `{"message": …}` answers, MOCK integrations and CORS.

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use nimbus_api::{ApiRequest, ApiResponse, Body};
use serde_json::{json, Value};

use super::event::is_binary_type;

/// A function's response payload.
pub struct Payload(pub Bytes);

fn response(status: u16, body: impl Into<Bytes>, content_type: &str) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// API Gateway's own answers: `{"message":"Not Found"}` and friends.
pub fn message(status: u16, text: &str) -> ApiResponse {
    response(status, json!({ "message": text }).to_string(), "application/json")
}

/// The policy-denial answers spell it `Message`.
pub fn capital_message(status: u16, text: &str) -> ApiResponse {
    response(status, json!({ "Message": text }).to_string(), "application/json")
}

fn internal() -> ApiResponse {
    message(502, "Internal server error")
}

fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn status_of(value: &Value) -> Option<u16> {
    let status = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    u16::try_from(status).ok().filter(|s| (100..600).contains(s))
}

/// The body a proxy response carries; base64 is decoded when `decode` (a REST API converts it
/// only for its binary media types).
fn body_of(document: &Value, decode: bool) -> Option<Bytes> {
    let encoded = document["isBase64Encoded"] == true && decode;
    match &document["body"] {
        Value::Null => Some(Bytes::new()),
        Value::String(text) if encoded => {
            base64::engine::general_purpose::STANDARD.decode(text).ok().map(Bytes::from)
        }
        Value::String(text) => Some(Bytes::from(text.clone())),
        _ => None,
    }
}

fn append(response: &mut ApiResponse, name: &str, value: &str) -> Option<()> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(value).ok()?;
    response.headers_mut().append(name, value);
    Some(())
}

fn set(response: &mut ApiResponse, name: &str, value: &str) -> Option<()> {
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(value).ok()?;
    response.headers_mut().insert(name, value);
    Some(())
}

/// A REST API's binary media types and the request's first `Accept` type: a base64 body is
/// turned back into bytes only when one of them (or the response's `Content-Type`) matches.
pub struct Binary<'a> {
    pub types: &'a [String],
    pub accept: Option<&'a str>,
}

impl Binary<'_> {
    fn decodes(&self, document: &Value) -> bool {
        let accept = self.accept.and_then(|a| a.split(',').next()).map(str::trim).unwrap_or_default();
        let headers = document["headers"].as_object();
        let content_type = headers
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        is_binary_type(accept, self.types) || is_binary_type(content_type, self.types)
    }
}

/// Payload 1.0: `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`; anything
/// else is a malformed proxy response (502). `binary` is `None` for HTTP APIs, which always
/// decode base64 bodies.
pub fn proxy_v1(payload: Payload, binary: Option<Binary<'_>>) -> ApiResponse {
    let Ok(document) = serde_json::from_slice::<Value>(&payload.0) else { return internal() };
    if !document.is_object() {
        return internal();
    }
    let status = match &document["statusCode"] {
        Value::Null => 200,
        other => match status_of(other) {
            Some(status) => status,
            None => return internal(),
        },
    };
    let decode = binary.is_none_or(|b| b.decodes(&document));
    let Some(body) = body_of(&document, decode) else { return internal() };
    let mut out = response(status, body, "application/json");
    let mut typed = false;
    for (name, value) in document["headers"].as_object().into_iter().flatten() {
        let Some(text) = header_text(value) else { return internal() };
        typed |= name.eq_ignore_ascii_case("content-type");
        if set(&mut out, name, &text).is_none() {
            return internal();
        }
    }
    for (name, values) in document["multiValueHeaders"].as_object().into_iter().flatten() {
        let Some(values) = values.as_array() else { return internal() };
        if name.eq_ignore_ascii_case("content-type") && !typed {
            out.headers_mut().remove(CONTENT_TYPE);
        }
        for value in values {
            let Some(text) = header_text(value) else { return internal() };
            if document["headers"].get(name).is_some() {
                continue;
            }
            append(&mut out, name, &text);
        }
    }
    out
}

/// Payload 2.0 (HTTP APIs and function URLs): a document with `statusCode` is read as such;
/// any other JSON is the body of a 200 `application/json` answer.
pub fn proxy_v2(payload: Payload) -> ApiResponse {
    let Ok(document) = serde_json::from_slice::<Value>(&payload.0) else { return internal() };
    let structured = document.as_object().is_some_and(|o| o.contains_key("statusCode"));
    if !structured {
        return response(200, payload.0, "application/json");
    }
    let Some(status) = status_of(&document["statusCode"]) else { return internal() };
    let Some(body) = body_of(&document, true) else { return internal() };
    let mut out = response(status, body, "application/json");
    for (name, value) in document["headers"].as_object().into_iter().flatten() {
        let Some(text) = header_text(value) else { return internal() };
        if set(&mut out, name, &text).is_none() {
            return internal();
        }
    }
    for cookie in document["cookies"].as_array().into_iter().flatten() {
        if let Some(cookie) = cookie.as_str() {
            append(&mut out, "set-cookie", cookie);
        }
    }
    out
}

/// A MOCK integration: the status its request template names, the integration response for it
/// (templates are returned as written; nimbus does not evaluate VTL).
pub fn mock(integration: &Value) -> ApiResponse {
    let template =
        integration["requestTemplates"]["application/json"].as_str().unwrap_or("{\"statusCode\": 200}");
    let status =
        serde_json::from_str::<Value>(template).ok().and_then(|t| status_of(&t["statusCode"])).unwrap_or(200);
    let responses = &integration["integrationResponses"];
    let chosen = responses.get(status.to_string()).or_else(|| {
        responses
            .as_object()
            .and_then(|all| all.values().find(|r| r["selectionPattern"].as_str().is_none_or(str::is_empty)))
    });
    let Some(chosen) = chosen else {
        return message(500, "Internal server error");
    };
    let status = status_of(&chosen["statusCode"]).unwrap_or(status);
    let body = chosen["responseTemplates"]["application/json"].as_str().unwrap_or_default().to_owned();
    let mut out = response(status, body, "application/json");
    for (name, value) in chosen["responseParameters"].as_object().into_iter().flatten() {
        let Some(header) = name.strip_prefix("method.response.header.") else { continue };
        let Some(text) = value.as_str().and_then(|v| v.strip_prefix('\'')).and_then(|v| v.strip_suffix('\''))
        else {
            continue;
        };
        set(&mut out, header, text);
    }
    out
}

/// Reads a CORS configuration member, spelled `allowOrigins` (HTTP APIs) or `AllowOrigins`
/// (function URLs).
fn member<'a>(cors: &'a Value, name: &str, pascal: bool) -> &'a Value {
    if pascal {
        let mut chars = name.chars();
        let upper: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
        &cors[upper]
    } else {
        &cors[name]
    }
}

fn list(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn allowed_origin(cors: &Value, origin: &str, pascal: bool) -> Option<String> {
    let origins = list(member(cors, "allowOrigins", pascal));
    if origins.iter().any(|o| o == "*") {
        return Some("*".to_owned());
    }
    origins.iter().any(|o| o.eq_ignore_ascii_case(origin)).then(|| origin.to_owned())
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) answered from
/// the configuration, as API Gateway does before any route.
pub fn preflight(cors: Option<&Value>, request: &ApiRequest, pascal: bool) -> Option<ApiResponse> {
    let cors = cors?;
    if request.method != hyper::Method::OPTIONS {
        return None;
    }
    let origin = request.header("origin")?;
    let asked = request.header("access-control-request-method")?;
    let mut out = response(204, Bytes::new(), "application/json");
    out.headers_mut().remove(CONTENT_TYPE);
    let Some(allowed) = allowed_origin(cors, origin, pascal) else { return Some(out) };
    let methods = list(member(cors, "allowMethods", pascal));
    if !methods.iter().any(|m| m == "*" || m.eq_ignore_ascii_case(asked)) {
        return Some(out);
    }
    set(&mut out, "access-control-allow-origin", &allowed);
    set(&mut out, "access-control-allow-methods", &methods.join(","));
    let headers = list(member(cors, "allowHeaders", pascal));
    if !headers.is_empty() {
        let value = if headers.iter().any(|h| h == "*") {
            request.header("access-control-request-headers").unwrap_or("*").to_owned()
        } else {
            headers.join(",")
        };
        set(&mut out, "access-control-allow-headers", &value);
    }
    if let Some(age) = member(cors, "maxAge", pascal).as_i64() {
        set(&mut out, "access-control-max-age", &age.to_string());
    }
    if member(cors, "allowCredentials", pascal) == true {
        set(&mut out, "access-control-allow-credentials", "true");
    }
    Some(out)
}

/// CORS headers on an actual response to a request with `Origin`.
pub fn add_cors(cors: Option<&Value>, request: &ApiRequest, out: &mut ApiResponse, pascal: bool) {
    let (Some(cors), Some(origin)) = (cors, request.header("origin")) else { return };
    let Some(allowed) = allowed_origin(cors, origin, pascal) else { return };
    set(out, "access-control-allow-origin", &allowed);
    let expose = list(member(cors, "exposeHeaders", pascal));
    if !expose.is_empty() {
        set(out, "access-control-expose-headers", &expose.join(","));
    }
    if member(cors, "allowCredentials", pascal) == true {
        set(out, "access-control-allow-credentials", "true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: ApiResponse) -> (u16, String) {
        use http_body_util::BodyExt;
        let status = response.status().as_u16();
        let bytes = futures_lite(response.into_body().collect()).unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn futures_lite<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn v2_infers_plain_json_and_rejects_malformed_v1() {
        let (status, text) = body(proxy_v2(Payload(Bytes::from_static(b"{\"hello\":1}"))));
        assert_eq!((status, text.as_str()), (200, "{\"hello\":1}"));
        let (status, text) =
            body(proxy_v1(Payload(Bytes::from_static(b"{\"statusCode\":201,\"body\":5}")), None));
        assert_eq!((status, text.as_str()), (502, "{\"message\":\"Internal server error\"}"));
        let structured = proxy_v2(Payload(Bytes::from_static(
            b"{\"statusCode\":302,\"headers\":{\"location\":\"/x\"},\"cookies\":[\"a=1\",\"b=2\"]}",
        )));
        assert_eq!(structured.headers().get_all("set-cookie").iter().count(), 2);
        // A REST API turns base64 back into bytes only for its binary media types.
        let encoded = b"{\"statusCode\":200,\"headers\":{\"content-type\":\"application/x-thing\"},\"isBase64Encoded\":true,\"body\":\"aGk=\"}";
        let types = vec!["image/*".to_owned()];
        let kept =
            proxy_v1(Payload(Bytes::from_static(encoded)), Some(Binary { types: &types, accept: None }));
        assert_eq!(body(kept).1, "aGk=");
        let accept = Some("image/png, */*");
        let decoded = proxy_v1(Payload(Bytes::from_static(encoded)), Some(Binary { types: &types, accept }));
        assert_eq!(body(decoded).1, "hi");
        assert_eq!(structured.status(), 302);
    }
}
