//! The few HTTP exchanges the commands make with a running nimbus, and what can go wrong.
//!
//! `ureq` rather than hyper: the client commands make one or a few requests and exit, so a
//! small, well-maintained blocking client with no async runtime and (without default features)
//! no TLS stack is the right size. nimbus listens on plain HTTP on the local machine.

use std::io::ErrorKind;
use std::time::Duration;

use serde_json::Value;

/// What a client command can fail with; [`crate::run`] prints it as `error: …`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nimbus is not running at {endpoint} (start it with `nimbus up`)")]
    NotRunning { endpoint: String },
    /// An AWS-shaped error answer (`x-amzn-ErrorType` / `__type`, and `message`).
    #[error("{error_type}: {message}")]
    Aws { error_type: String, message: String },
    /// CloudWatch Logs' ResourceNotFoundException for a group, whose message does not name it.
    #[error("log group {group} does not exist (a function's group appears when it first runs)")]
    NoLogGroup { group: String },
    #[error("{url} answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status { url: String, status: u16, body: String },
    #[error("cannot talk to nimbus at {endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// One answer: status, the headers the commands read, the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value; names compare case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

pub struct Client {
    endpoint: String,
    agent: ureq::Agent,
}

/// Reads (health, listings, log pages) that take longer than this mean something is wrong.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(endpoint: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(3)))
            .build()
            .into();
        Client { endpoint: endpoint.trim_end_matches('/').to_string(), agent }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GET path` as JSON; any non-2xx answer is an error.
    pub fn get_json(&self, path: &str) -> Result<Value, Error> {
        let url = format!("{}{path}", self.endpoint);
        let request = self.agent.get(&url).config().timeout_global(Some(READ_TIMEOUT)).build();
        let reply = self.finish(&url, request.call())?;
        parse_json(&url, &reply.body)
    }

    /// `POST path`; no overall timeout, since an invocation may run for up to 15 minutes.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.endpoint);
        let mut request = self.agent.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(&url, request.send(body))
    }

    /// `METHOD path` with a body, answered whatever its status (the caller reads AWS's error
    /// shape itself: Query services answer XML).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, Error> {
        let url = format!("{}{path}", self.endpoint);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.to_vec())
            .map_err(|error| Error::Usage(format!("cannot make a request to {url}: {error}")))?;
        self.read(self.agent.run(request))
    }

    fn read(&self, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Reply, Error> {
        let mut response = sent.map_err(|error| self.transport_error(error))?;
        let body = response.body_mut().read_to_vec().map_err(|error| self.transport_error(error))?;
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        Ok(Reply { status: response.status().as_u16(), headers, body })
    }

    /// Reads the body and turns failures and non-2xx answers into [`Error`]s.
    fn finish(
        &self,
        url: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, Error> {
        let reply = self.read(sent)?;
        match reply.status {
            200..=299 => Ok(reply),
            status => Err(aws_error(&reply).unwrap_or_else(|| Error::Status {
                url: url.to_string(),
                status,
                body: String::from_utf8_lossy(&reply.body).chars().take(200).collect(),
            })),
        }
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        let refused = match &error {
            ureq::Error::Io(io) => matches!(
                io.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotConnected
            ),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
            ureq::Error::Timeout(ureq::Timeout::Connect) => true,
            _ => false,
        };
        if refused {
            Error::NotRunning { endpoint: self.endpoint.clone() }
        } else {
            Error::Transport { endpoint: self.endpoint.clone(), reason: error.to_string() }
        }
    }
}

pub fn parse_json(url: &str, body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body)
        .map_err(|error| Error::Unexpected { url: url.to_string(), reason: format!("not JSON ({error})") })
}

/// AWS's error shapes: the type in `x-amzn-ErrorType` (REST-JSON, e.g. Lambda) or in the body's
/// `__type` (JSON 1.1, e.g. CloudWatch Logs), with decorations stripped; `message` or `Message`.
pub fn aws_error(reply: &Reply) -> Option<Error> {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let error_type = reply
        .header("x-amzn-ErrorType")
        .or_else(|| body.get("__type").and_then(Value::as_str))?
        .split(':')
        .next()?
        .rsplit('#')
        .next()?
        .to_string();
    let message = ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|key| body.get(key).and_then(Value::as_str))
        .unwrap_or("");
    // Some messages already lead with their type (Batch's `CannotPullContainerError: …` wording):
    // printed once.
    let message = message.strip_prefix(&format!("{error_type}: ")).unwrap_or(message).to_string();
    Some(Error::Aws { error_type, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)], body: &str) -> Reply {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Reply { status: 404, headers, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn reads_both_aws_error_shapes() {
        let lambda = reply(
            &[("X-Amzn-Errortype", "ResourceNotFoundException:http://internal.amazon.com/")],
            r#"{"Type":"User","message":"Function not found: fn"}"#,
        );
        assert_eq!(
            aws_error(&lambda).unwrap().to_string(),
            "ResourceNotFoundException: Function not found: fn"
        );
        let logs = reply(
            &[],
            r#"{"__type":"com.amazonaws.logs#ResourceNotFoundException","message":"The specified log group does not exist."}"#,
        );
        assert_eq!(
            aws_error(&logs).unwrap().to_string(),
            "ResourceNotFoundException: The specified log group does not exist."
        );
        assert!(aws_error(&reply(&[], "not found")).is_none());
    }

    #[test]
    fn a_message_leading_with_its_type_names_it_once() {
        let pull = reply(
            &[("X-Amzn-Errortype", "CannotPullContainerError")],
            r#"{"message":"CannotPullContainerError: failed to resolve ref r:x: not found"}"#,
        );
        assert_eq!(
            aws_error(&pull).unwrap().to_string(),
            "CannotPullContainerError: failed to resolve ref r:x: not found"
        );
    }
}
