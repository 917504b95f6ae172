//! Where a request points: path-style (`/bucket/key`) or virtual-host-style
//! (`bucket.localhost:4566/key`, `bucket.s3.localhost`, `bucket.s3.<region>.amazonaws.com`), and
//! whether a request on the shared port is S3's at all.

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::percent_decode;

/// Bucket and key of a request; `key` is `None` for bucket and service operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

pub fn locate(host: Option<&str>, path: &str) -> Address {
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(bucket) = host.and_then(virtual_bucket) {
        let key = (!path.is_empty()).then(|| percent_decode(path));
        return Address { bucket: Some(bucket), key };
    }
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (bucket, (!key.is_empty()).then(|| percent_decode(key))),
        None => (path, None),
    };
    let bucket = (!bucket.is_empty()).then(|| percent_decode(bucket));
    Address { bucket, key }
}

/// The bucket named by a virtual host, `None` for path-style hosts (IPs, `localhost`,
/// `s3.localhost`, `s3.<region>.amazonaws.com`, any other name).
pub fn virtual_bucket(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None; // IPv6 literal
    }
    let host = host.rsplit_once(':').map_or(host, |(name, _port)| name).to_ascii_lowercase();
    let bucket = if let Some(bucket) = host.strip_suffix(".s3.localhost") {
        bucket
    } else if let Some(bucket) = host.strip_suffix(".localhost") {
        bucket
    } else if host.ends_with(".amazonaws.com") {
        let at = host.find(".s3.").or_else(|| host.find(".s3-"))?;
        &host[..at]
    } else {
        return None;
    };
    (!bucket.is_empty() && bucket != "s3").then(|| bucket.to_owned())
}

/// S3 answers whatever no other service claimed, except the Query and JSON protocols' requests.
pub fn claims(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    if headers.contains_key("x-amz-target") {
        return false;
    }
    let form = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && form {
        return false;
    }
    let query_action = uri.query().is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")));
    !(uri.path() == "/" && query_action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bucket: Option<&str>, key: Option<&str>) -> Address {
        Address { bucket: bucket.map(Into::into), key: key.map(Into::into) }
    }

    #[test]
    fn path_style_splits_bucket_and_decoded_key() {
        assert_eq!(locate(Some("127.0.0.1:4566"), "/"), at(None, None));
        assert_eq!(locate(Some("localhost:4566"), "/b"), at(Some("b"), None));
        assert_eq!(locate(None, "/b/"), at(Some("b"), None));
        assert_eq!(locate(None, "/b/dir/a%20b%2Bc.txt"), at(Some("b"), Some("dir/a b+c.txt")));
        assert_eq!(locate(None, "/b/dir//x/"), at(Some("b"), Some("dir//x/")));
    }

    #[test]
    fn virtual_hosts_name_the_bucket() {
        assert_eq!(locate(Some("photos.localhost:4566"), "/a/b.jpg"), at(Some("photos"), Some("a/b.jpg")));
        assert_eq!(locate(Some("my.bucket.s3.localhost"), "/"), at(Some("my.bucket"), None));
        assert_eq!(locate(Some("b.s3.us-east-1.amazonaws.com"), "/k"), at(Some("b"), Some("k")));
        assert_eq!(locate(Some("s3.localhost:4566"), "/b/k"), at(Some("b"), Some("k")));
        assert_eq!(locate(Some("s3.amazonaws.com"), "/b/k"), at(Some("b"), Some("k")));
        assert_eq!(locate(Some("[::1]:4566"), "/b/k"), at(Some("b"), Some("k")));
        assert_eq!(locate(Some("myhost:4566"), "/b"), at(Some("b"), None));
    }

    #[test]
    fn query_and_json_protocol_requests_are_not_s3s() {
        let mut headers = HeaderMap::new();
        let root: Uri = "/".parse().unwrap();
        assert!(claims(&Method::GET, &root, &headers));
        assert!(claims(&Method::PUT, &"/bucket/key".parse().unwrap(), &headers));
        assert!(!claims(&Method::GET, &"/?Action=ListQueues".parse().unwrap(), &headers));
        headers.insert("content-type", "application/x-www-form-urlencoded; charset=utf-8".parse().unwrap());
        assert!(!claims(&Method::POST, &root, &headers));
        headers.clear();
        headers.insert("x-amz-target", "AmazonSQS.ListQueues".parse().unwrap());
        assert!(!claims(&Method::POST, &root, &headers));
    }
}
