//! S3's one error shape: `<Error><Code>…</Code><Message>…</Message>…<RequestId>…</Error>` with the
//! HTTP status botocore maps to the modelled exception (`NoSuchKey`, `NoSuchBucket` …).

use std::borrow::Cow;

use crate::xml::XmlWriter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra members AWS adds per code (`Key`, `BucketName`, `UploadId`, `ActualObjectSize` …,
    /// and numbered ones such as `ArgumentName1`).
    pub fields: Vec<(Cow<'static, str>, String)>,
    /// Response headers the error carries (`x-amz-delete-marker` …).
    pub headers: Vec<(String, String)>,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error { status, code, message: message.into(), fields: Vec::new(), headers: Vec::new() }
    }

    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> S3Error {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> S3Error {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn no_such_bucket(bucket: &str) -> S3Error {
        S3Error::new(404, "NoSuchBucket", "The specified bucket does not exist").with("BucketName", bucket)
    }
    pub fn no_such_key(key: &str) -> S3Error {
        S3Error::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", key)
    }
    pub fn no_such_version(key: &str, version: &str) -> S3Error {
        S3Error::new(404, "NoSuchVersion", "The specified version does not exist.")
            .with("Key", key)
            .with("VersionId", version)
    }
    pub fn no_such_upload(upload_id: &str) -> S3Error {
        let message = "The specified upload does not exist. The upload ID may be invalid, or the upload may \
                       have been aborted or completed.";
        S3Error::new(404, "NoSuchUpload", message).with("UploadId", upload_id)
    }
    pub fn invalid_bucket_name(bucket: &str) -> S3Error {
        S3Error::new(400, "InvalidBucketName", "The specified bucket is not valid.")
            .with("BucketName", bucket)
    }
    pub fn malformed_xml() -> S3Error {
        let message =
            "The XML you provided was not well-formed or did not validate against our published schema";
        S3Error::new(400, "MalformedXML", message)
    }
    pub fn invalid_argument(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "InvalidArgument", message)
    }
    pub fn invalid_tag(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "InvalidTag", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "InvalidRequest", message)
    }
    pub fn bad_digest(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "BadDigest", message)
    }
    pub fn not_implemented(what: &str) -> S3Error {
        let message = format!("{what} is not implemented by nimbus");
        S3Error::new(501, "NotImplemented", message)
    }
    pub fn internal(error: impl std::fmt::Display) -> S3Error {
        tracing::warn!(%error, "s3 internal error");
        S3Error::new(500, "InternalError", format!("We encountered an internal error: {error}"))
    }

    /// The XML body (empty for HEAD, whose errors botocore reads from the status alone).
    pub fn body(&self, request_id: &str, host_id: &str) -> String {
        let mut xml = XmlWriter::new();
        xml.open("Error");
        xml.elem("Code", self.code);
        xml.elem("Message", &self.message);
        for (name, value) in &self.fields {
            xml.elem(name, value);
        }
        xml.elem("RequestId", request_id);
        xml.elem("HostId", host_id);
        xml.close("Error");
        xml.finish()
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

impl From<nimbus_store::DbError> for S3Error {
    fn from(error: nimbus_store::DbError) -> S3Error {
        match error {
            // A key, prefix or marker with U+0000 on PostgreSQL.
            nimbus_store::DbError::Unstorable(why) => S3Error::new(400, "InvalidArgument", why),
            error => S3Error::internal(error),
        }
    }
}

impl From<std::io::Error> for S3Error {
    fn from(error: std::io::Error) -> S3Error {
        S3Error::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_code_key_and_request_id() {
        let body = S3Error::no_such_key("a&b").body("REQ1", "HOST");
        assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");
        assert!(body.contains("<Key>a&amp;b</Key>"), "{body}");
        assert!(body.contains("<RequestId>REQ1</RequestId>"), "{body}");
    }
}
