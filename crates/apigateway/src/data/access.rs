//! Access logs: a stage's `accessLogSettings` (`destinationArn` of a CloudWatch Logs group,
//! `format` with `$context.…` variables) turned into one line per request, handed to
//! [`AccessLogs`] (queued, never waited for).

use serde_json::Value;

use super::event::Incoming;

/// Where access log lines go (CloudWatch Logs, wired in nimbus's binary). Must return at once.
pub trait AccessLogs: Send + Sync + 'static {
    fn write(&self, group: &str, stream: &str, timestamp_ms: i64, line: String);
}

/// The log group of a destination ARN (`arn:aws:logs:…:log-group:NAME[:*]`).
pub fn group_of(settings: &Value) -> Option<(String, String)> {
    let arn = settings["destinationArn"].as_str()?;
    let group = arn.split_once(":log-group:")?.1.trim_end_matches(":*");
    let format = settings["format"].as_str().filter(|f| !f.is_empty())?;
    Some((group.to_owned(), format.to_owned()))
}

/// What a request's line is made of.
pub struct Outcome<'a> {
    pub status: u16,
    pub length: usize,
    pub route: &'a str,
    pub integration_ms: Option<u64>,
    pub total_ms: u64,
}

/// `format` with each `$context.name` replaced (unknown names and missing values give `-`).
pub fn render(format: &str, incoming: &Incoming<'_>, outcome: &Outcome<'_>) -> String {
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(start) = rest.find("$context.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "$context.".len()..];
        let mut end =
            after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).unwrap_or(after.len());
        while end > 0 && after[..end].ends_with('.') {
            end -= 1;
        }
        out.push_str(&value(&after[..end], incoming, outcome));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn value(name: &str, incoming: &Incoming<'_>, outcome: &Outcome<'_>) -> String {
    match name {
        "requestId" | "extendedRequestId" => incoming.request_id.clone(),
        "apiId" | "domainPrefix" => incoming.api.clone(),
        "stage" => incoming.stage.clone(),
        "httpMethod" => incoming.method.clone(),
        "path" => incoming.full_path.clone(),
        "resourcePath" | "routeKey" => outcome.route.to_owned(),
        "protocol" => "HTTP/1.1".to_owned(),
        "status" => outcome.status.to_string(),
        "responseLength" => outcome.length.to_string(),
        "requestTime" => incoming.time(),
        "requestTimeEpoch" => incoming.time_ms.to_string(),
        "domainName" => incoming.domain.clone(),
        "accountId" => incoming.account.clone(),
        "identity.sourceIp" => incoming.source_ip(),
        "identity.userAgent" => incoming.header("user-agent").unwrap_or("-").to_owned(),
        "integrationLatency" | "integration.latency" => {
            outcome.integration_ms.map_or("-".to_owned(), |ms| ms.to_string())
        }
        "responseLatency" => outcome.total_ms.to_string(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_context_variables() {
        let request = nimbus_api::ApiRequest {
            method: hyper::Method::GET,
            uri: "/prod/x".parse().unwrap(),
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::new(),
            request_id: "r-1".into(),
        };
        let incoming =
            Incoming::new(&request, "/x".into(), "a.execute-api.localhost", "a", "prod", "000000000000");
        let outcome = Outcome { status: 200, length: 2, route: "/x", integration_ms: None, total_ms: 3 };
        let line = render(
            "$context.requestId $context.path. $context.status $context.integrationLatency $context.nope",
            &incoming,
            &outcome,
        );
        assert_eq!(line, "r-1 /prod/x. 200 - -");
        let settings = serde_json::json!({ "destinationArn": "arn:aws:logs:us-east-1:0:log-group:g/1:*", "format": "x" });
        assert_eq!(group_of(&settings), Some(("g/1".to_owned(), "x".to_owned())));
    }
}
