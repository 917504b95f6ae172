//! Who a request speaks as and where: the SigV4 credential scope
//! (`Credential=AKID/20240101/us-west-2/sqs/aws4_request`, in the `Authorization` header or a
//! presigned URL's `X-Amz-Credential`) names the access key id and the region.

use hyper::{HeaderMap, Uri};

/// The regions of AWS's `aws` partition (botocore's endpoints data): the names a request's scope
/// may carry. Other partitions' ARNs are not `arn:aws:…`, which nimbus's services write.
pub const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

pub fn is_region(name: &str) -> bool {
    REGIONS.contains(&name)
}

/// The parts of a request's credential scope nimbus uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub access_key: String,
    /// Empty for SigV4a, whose scope names no region.
    pub region: String,
    /// The signing name (`sqs`, `execute-api`).
    pub service: String,
}

impl Scope {
    /// The account an access key id of twelve digits names (as LocalStack does).
    pub fn account(&self) -> Option<&str> {
        let key = self.access_key.as_str();
        is_account_id(key).then_some(key)
    }
}

/// Whether `name` is an account id: twelve digits.
pub fn is_account_id(name: &str) -> bool {
    name.len() == 12 && name.bytes().all(|b| b.is_ascii_digit())
}

/// An ARN's region and account (`arn:aws:sqs:us-west-2:123456789012:q`), each empty when the
/// ARN names none.
pub fn arn_scope(arn: &str) -> (&str, &str) {
    let mut parts = arn.split(':');
    (parts.nth(3).unwrap_or_default(), parts.next().unwrap_or_default())
}

/// An `Authorization` header value whose scope names `key`, `region` and `service` (for calls
/// nimbus makes to itself as a client of that region would; the signature is not checked).
pub fn authorization(key: &str, region: &str, service: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={key}/20240101/{region}/{service}/aws4_request")
}

/// The scope of a signed request, if it is signed.
pub fn scope_of(headers: &HeaderMap, uri: &Uri) -> Option<Scope> {
    let from_header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .map(|c| crate::percent_decode(c.split([',', ' ']).next().unwrap_or_default()));
    let credential = from_header.or_else(|| {
        uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == "X-Amz-Credential").then(|| crate::percent_decode(value))
        })
    })?;
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, _date, region, service, "aws4_request"] => Some(Scope {
            access_key: (*key).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
        }),
        [key, _date, service, "aws4_request"] => Some(Scope {
            access_key: (*key).to_owned(),
            region: String::new(),
            service: (*service).to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(auth: &str, uri: &str) -> Option<Scope> {
        let mut headers = HeaderMap::new();
        if !auth.is_empty() {
            headers.insert("authorization", auth.parse().unwrap());
        }
        scope_of(&headers, &uri.parse().unwrap())
    }

    #[test]
    fn reads_header_and_presigned_scopes() {
        let auth = "AWS4-HMAC-SHA256 Credential=123456789012/20240101/us-west-2/sqs/aws4_request, \
                    SignedHeaders=host, Signature=abc";
        let found = scope(auth, "/").unwrap();
        assert_eq!(found.region, "us-west-2");
        assert_eq!(found.account(), Some("123456789012"));
        let presigned = "/b/k?X-Amz-Credential=test%2F20240101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=1";
        let found = scope("", presigned).unwrap();
        assert_eq!((found.region.as_str(), found.account()), ("eu-west-1", None));
        assert_eq!(scope("", "/"), None);
        assert!(is_region("ap-southeast-7") && !is_region("moon-east-1"));
        let forged = authorization("123456789012", "eu-west-1", "sns");
        let found = scope(&forged, "/").unwrap();
        assert_eq!((found.region.as_str(), found.account()), ("eu-west-1", Some("123456789012")));
        assert_eq!(found.service, "sns");
        let sigv4a = scope("AWS4-ECDSA-P256-SHA256 Credential=AKID/20240101/kinesis/aws4_request, S=x", "/");
        assert_eq!(sigv4a.map(|s| (s.region, s.service)), Some((String::new(), "kinesis".to_owned())));
    }

    #[test]
    fn reads_arns_and_account_ids() {
        assert_eq!(arn_scope("arn:aws:sqs:us-west-2:123456789012:q"), ("us-west-2", "123456789012"));
        assert_eq!(arn_scope("arn:aws:s3:::bucket"), ("", ""));
        assert_eq!(arn_scope("nonsense"), ("", ""));
        assert!(is_account_id("000000000000") && !is_account_id("test") && !is_account_id("1234567890123"));
    }
}
