//! One S3 request as the operations see it, the reply they build, and S3's time formats.

use bytes::Bytes;
use nimbus_api::ApiRequest;

use crate::error::{S3Error, S3Result};

/// An object event decided by an operation, delivered once the reply is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// Without the `s3:` prefix, as in the record: `ObjectCreated:Put`.
    pub name: &'static str,
    pub key: String,
    /// Size and ETag (unquoted) for created objects; AWS leaves them out of removals.
    pub size: Option<u64>,
    pub etag: Option<String>,
}

pub struct Ctx {
    pub request: ApiRequest,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
    /// S3-style ids: 16 uppercase hex characters and a longer base64-looking host id.
    pub request_id: String,
    pub host_id: String,
    pub events: Vec<ObjectEvent>,
}

impl Ctx {
    pub fn new(request: ApiRequest, bucket: Option<String>, key: Option<String>) -> Ctx {
        let query = request.uri.query().map(parse_query).unwrap_or_default();
        let hex: String = request.request_id.chars().filter(char::is_ascii_hexdigit).collect();
        let request_id = hex.chars().take(16).collect::<String>().to_ascii_uppercase();
        let host_id = format!("{hex}{}", uuid::Uuid::new_v4().simple());
        Ctx { request, bucket, key, query, request_id, host_id, events: Vec::new() }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }
    pub fn bucket(&self) -> &str {
        self.bucket.as_deref().unwrap_or_default()
    }
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// A numeric query parameter, `InvalidArgument` if it is not one.
    pub fn number(&self, name: &str) -> S3Result<Option<i64>> {
        match self.param(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                S3Error::invalid_argument(format!("Provided {name} not an integer or within integer range"))
                    .with("ArgumentName", name)
                    .with("ArgumentValue", text)
            }),
        }
    }
}

/// Query pairs, decoded (`+` as a space, as S3 reads them).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| nimbus_api::percent_decode(&s.replace('+', " "));
            (decode(name), decode(value))
        })
        .collect()
}

/// The reply an operation builds; the request ids are added on the way out.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn empty(status: u16) -> Reply {
        Reply { status, ..Reply::default() }
    }
    pub fn xml(body: String) -> Reply {
        Reply::empty(200).header("content-type", "application/xml").with_body(body)
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2024-05-01T12:00:00.123Z`, as S3 writes timestamps in XML and event records.
pub fn iso8601(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Milliseconds of an ISO 8601 / RFC 3339 time (`2030-01-01T00:00:00Z`, fractions allowed).
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `Wed, 01 May 2024 12:00:00 GMT`, as in `Last-Modified`.
pub fn http_date(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_s3_does() {
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(http_date(1_700_000_000_123), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn query_values_are_decoded() {
        let pairs = parse_query("list-type=2&prefix=a%2Fb+c&uploads");
        assert_eq!(pairs[1], ("prefix".into(), "a/b c".into()));
        assert_eq!(pairs[2], ("uploads".into(), String::new()));
    }
}
