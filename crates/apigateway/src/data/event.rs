//! The events AWS hands a Lambda proxy integration: payload 1.0 (REST APIs, and HTTP APIs that
//! ask for it), 2.0 (HTTP APIs) and function URLs' (2.0 with `$default` everywhere).

use base64::Engine as _;
use nimbus_api::ApiRequest;
use serde_json::{json, Map, Value};

use super::routes::{Compiled, HttpMatch, RestMatch};
use super::{json_object, null_if_empty};

/// A request as the events see it.
pub struct Incoming<'a> {
    pub request: &'a ApiRequest,
    pub method: String,
    /// The path under the stage (`/pets/1`).
    pub path: String,
    /// The path as the client sent it under the API (with the stage, if any named one).
    pub full_path: String,
    pub domain: String,
    pub api: String,
    pub stage: String,
    pub request_id: String,
    pub time_ms: i64,
    pub account: String,
}

impl<'a> Incoming<'a> {
    pub fn new(
        request: &'a ApiRequest,
        path: String,
        domain: &str,
        api: &str,
        stage: &str,
        account: &str,
    ) -> Incoming<'a> {
        let full_path = if stage == "$default" {
            path.clone()
        } else {
            format!("/{stage}{}", if path == "/" { "" } else { &path })
        };
        let full_path = if full_path.is_empty() { "/".to_owned() } else { full_path };
        Incoming {
            request,
            method: request.method.as_str().to_owned(),
            path,
            full_path,
            domain: domain.to_owned(),
            api: api.to_owned(),
            stage: stage.to_owned(),
            request_id: request.request_id.clone(),
            time_ms: crate::store::now_ms(),
            account: account.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    pub fn source_ip(&self) -> String {
        let forwarded = self.header("x-forwarded-for").and_then(|f| f.split(',').next()).map(str::trim);
        forwarded.filter(|f| !f.is_empty()).unwrap_or("127.0.0.1").to_owned()
    }

    fn user_agent(&self) -> Value {
        self.header("user-agent").map_or(Value::Null, |u| json!(u))
    }

    /// Query parameters in order, decoded (`+` is a space in query strings).
    pub fn query(&self) -> Vec<(String, String)> {
        let query = self.request.uri.query().unwrap_or_default();
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| nimbus_api::percent_decode(&s.replace('+', " "));
                (decode(k), decode(v))
            })
            .collect()
    }

    fn raw_query(&self) -> String {
        self.request.uri.query().unwrap_or_default().to_owned()
    }

    /// Header names and every value, in the order received.
    fn headers(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &self.request.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match out.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, values)) => values.push(value),
                None => out.push((name.as_str().to_owned(), vec![value])),
            }
        }
        out
    }

    /// The body as the event carries it, and whether it is base64.
    fn body(&self, binary: bool) -> (Value, bool) {
        let body = &self.request.body;
        if body.is_empty() {
            return (Value::Null, false);
        }
        match std::str::from_utf8(body) {
            Ok(text) if !binary => (json!(text), false),
            _ => (json!(base64::engine::general_purpose::STANDARD.encode(body)), true),
        }
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    pub fn time(&self) -> String {
        let format = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        time::OffsetDateTime::from_unix_timestamp_nanos(self.time_ms as i128 * 1_000_000)
            .ok()
            .and_then(|t| t.format(format).ok())
            .unwrap_or_default()
    }
}

/// Whether `content_type` is one of the binary media types (`image/*`, `*/*` wildcards).
pub(crate) fn is_binary_type(content_type: &str, types: &[String]) -> bool {
    let content_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    !content_type.is_empty()
        && types.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            t == content_type
                || t == "*/*"
                || t.strip_suffix("/*").is_some_and(|major| content_type.split('/').next() == Some(major))
        })
}

/// HTTP APIs and function URLs pass text as text and anything else as base64.
fn is_text_type(content_type: &str) -> bool {
    let t = content_type.to_ascii_lowercase();
    t.is_empty()
        || t.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "graphql"]
            .iter()
            .any(|k| t.contains(k))
}

fn params_object(params: &[(String, String)]) -> Value {
    null_if_empty(json_object(params.iter().map(|(k, v)| (k.clone(), json!(v)))))
}

/// The payload 1.0 members common to REST APIs and HTTP APIs.
fn v1_common(
    incoming: &Incoming<'_>,
    resource: &str,
    params: &[(String, String)],
    variables: &Value,
    binary: bool,
) -> Value {
    let headers = incoming.headers();
    let single: Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v.last()))).collect();
    let multi: Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let query = incoming.query();
    let mut query_single = Map::new();
    let mut query_multi: Map<String, Value> = Map::new();
    for (key, value) in &query {
        query_single.insert(key.clone(), json!(value));
        match query_multi.get_mut(key).and_then(Value::as_array_mut) {
            Some(values) => values.push(json!(value)),
            None => {
                query_multi.insert(key.clone(), json!([value]));
            }
        }
    }
    let (body, encoded) = incoming.body(binary);
    json!({
        "resource": resource,
        "path": incoming.path,
        "httpMethod": incoming.method,
        "headers": null_if_empty(Value::Object(single)),
        "multiValueHeaders": null_if_empty(Value::Object(multi)),
        "queryStringParameters": null_if_empty(Value::Object(query_single)),
        "multiValueQueryStringParameters": null_if_empty(Value::Object(query_multi)),
        "pathParameters": params_object(params),
        "stageVariables": null_if_empty(variables.clone()),
        "body": body,
        "isBase64Encoded": encoded,
    })
}

fn v1_context(
    incoming: &Incoming<'_>,
    resource_id: Value,
    resource: &str,
    api_key: Option<&(String, String)>,
) -> Value {
    let (key, key_id) = api_key.map_or((Value::Null, Value::Null), |(k, i)| (json!(k), json!(i)));
    json!({
        "resourceId": resource_id,
        "resourcePath": resource,
        "httpMethod": incoming.method,
        "extendedRequestId": incoming.request_id,
        "requestTime": incoming.time(),
        "path": incoming.full_path,
        "accountId": incoming.account,
        "protocol": "HTTP/1.1",
        "stage": incoming.stage,
        "domainPrefix": incoming.api,
        "requestTimeEpoch": incoming.time_ms,
        "requestId": incoming.request_id,
        "identity": {
            "cognitoIdentityPoolId": null,
            "accountId": null,
            "cognitoIdentityId": null,
            "caller": null,
            "apiKey": key,
            "apiKeyId": key_id,
            "sourceIp": incoming.source_ip(),
            "principalOrgId": null,
            "accessKey": null,
            "cognitoAuthenticationType": null,
            "cognitoAuthenticationProvider": null,
            "userArn": null,
            "userAgent": incoming.user_agent(),
            "user": null,
        },
        "domainName": incoming.domain,
        "apiId": incoming.api,
    })
}

pub fn rest_event(
    incoming: &Incoming<'_>,
    stage: &Compiled,
    matched: &RestMatch<'_>,
    api_key: Option<&(String, String)>,
) -> Value {
    let binary = is_binary_type(incoming.content_type(), &stage.binary_media_types);
    let mut event = v1_common(incoming, matched.template, &matched.path_parameters, &stage.variables, binary);
    event["requestContext"] = v1_context(incoming, matched.resource["id"].clone(), matched.template, api_key);
    event
}

pub fn http_v1_event(incoming: &Incoming<'_>, stage: &Compiled, matched: &HttpMatch<'_>) -> Value {
    let binary = !is_text_type(incoming.content_type());
    let resource = matched.route_key.split_once(' ').map_or(matched.route_key, |(_, p)| p);
    let mut event = json!({ "version": "1.0" });
    let common = v1_common(incoming, resource, &matched.path_parameters, &stage.variables, binary);
    for (key, value) in common.as_object().into_iter().flatten() {
        event[key] = value.clone();
    }
    event["requestContext"] = v1_context(incoming, json!(matched.route["routeId"]), resource, None);
    event["requestContext"]["routeKey"] = json!(matched.route_key);
    event
}

/// Payload 2.0; `stage` is `None` for function URLs.
pub fn v2_event(
    incoming: &Incoming<'_>,
    stage: Option<&Compiled>,
    route_key: &str,
    params: &[(String, String)],
) -> Value {
    let mut cookies = Vec::new();
    let mut headers = Map::new();
    for (name, values) in incoming.headers() {
        if name == "cookie" {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        headers.insert(name, json!(values.join(",")));
    }
    let mut query: Map<String, Value> = Map::new();
    for (key, value) in incoming.query() {
        let joined = match query.get(&key).and_then(Value::as_str) {
            Some(previous) => format!("{previous},{value}"),
            None => value,
        };
        query.insert(key, json!(joined));
    }
    let binary = !is_text_type(incoming.content_type());
    let (body, encoded) = incoming.body(binary);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": incoming.full_path,
        "rawQueryString": incoming.raw_query(),
        "headers": headers,
        "requestContext": {
            "accountId": incoming.account,
            "apiId": incoming.api,
            "domainName": incoming.domain,
            "domainPrefix": incoming.api,
            "http": {
                "method": incoming.method,
                "path": incoming.full_path,
                "protocol": "HTTP/1.1",
                "sourceIp": incoming.source_ip(),
                "userAgent": incoming.user_agent(),
            },
            "requestId": incoming.request_id,
            "routeKey": route_key,
            "stage": incoming.stage,
            "time": incoming.time(),
            "timeEpoch": incoming.time_ms,
        },
        "isBase64Encoded": encoded,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    if !params.is_empty() {
        event["pathParameters"] = params_object(params);
    }
    if let Some(variables) =
        stage.map(|s| &s.variables).filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    {
        event["stageVariables"] = variables.clone();
    }
    event
}

pub fn url_event(incoming: &Incoming<'_>, account: &str, iam: bool) -> Value {
    let mut event = v2_event(incoming, None, "$default", &[]);
    let context = &mut event["requestContext"];
    context["accountId"] = json!(if iam { account } else { "anonymous" });
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_media_types_match_with_wildcards() {
        let types = vec!["image/*".to_owned(), "application/octet-stream".to_owned()];
        assert!(is_binary_type("image/gif", &types));
        assert!(is_binary_type("application/octet-stream; x=1", &types));
        assert!(!is_binary_type("application/json", &types));
        assert!(is_text_type("application/json; charset=utf-8"));
        assert!(!is_text_type("image/gif"));
    }
}
