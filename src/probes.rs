//! Read-only calls to a region and account nothing was ever stored in (`ListQueues` in a region
//! a script merely looks at) create no state for it: they are answered by a stand-in instance of
//! the service opened on a throwaway database under `<data dir>/tmp/probes/` (cleared at every
//! start), which answers exactly as the real one would with nothing stored — empty lists, each
//! service's own NotFound. The first call that may write opens the real instance.

use std::path::{Path, PathBuf};

use hyper::Method;
use nimbus_api::scope::is_account_id;
use nimbus_api::{ApiRequest, Protocol};
use nimbus_store::Database;

/// The operations that only read.
const READING: &[&str] = &["List", "Describe", "Get", "BatchGet", "Query", "Scan", "FilterLogEvents"];

/// Whether `request` only reads: its operation (`X-Amz-Target`, a Query `Action`, an RPC v2
/// path) is a List/Describe/Get…, or, for a REST service, its method is GET or HEAD.
pub fn is_read_only(request: &ApiRequest, protocol: Protocol) -> bool {
    match operation_of(request) {
        Some(operation) => READING.iter().any(|prefix| operation.starts_with(prefix)),
        None => {
            matches!(protocol, Protocol::RestJson | Protocol::RestXml)
                && matches!(request.method, Method::GET | Method::HEAD)
        }
    }
}

fn operation_of(request: &ApiRequest) -> Option<String> {
    if let Some(target) = request.header("x-amz-target") {
        return target.rsplit('.').next().map(str::to_owned);
    }
    if let Some((_, operation)) = request.uri.path().split_once("/operation/") {
        return Some(operation.trim_end_matches('/').to_owned());
    }
    if let Some(action) = request.query("Action") {
        return Some(action);
    }
    let form =
        request.header("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body = std::str::from_utf8(&request.body).ok().filter(|_| form)?;
    body.split('&').find_map(|pair| pair.strip_prefix("Action=").map(nimbus_api::percent_decode))
}

/// Whether the scope whose state lives under `dir` (see `regional::scope_dir`) holds anything:
/// on SQLite, a file or directory of a service in it (another account's directory inside a
/// region's is not the region's default account's state); on PostgreSQL, a schema of it.
pub fn scope_used(database: &Database, dir: &str) -> bool {
    match database {
        Database::Sqlite { data_dir } => holds_state(&data_dir.join(dir)),
        Database::Postgres(_) => {
            let suffix = format!("_{}", crate::regional::schema_part(dir));
            database.schema_names().iter().any(|name| name.ends_with(&suffix))
        }
    }
}

fn holds_state(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| !is_account_id(&entry.file_name().to_string_lossy()))
}

/// Where a stand-in for the scope `dir` keeps its throwaway state.
pub fn probe_dir(root: &Path, service: &str, dir: &str) -> PathBuf {
    root.join(service).join(dir)
}

/// Whether `database` is a stand-in's (its services then keep their blobs beside it too).
pub fn probe_database(database: &Database, root: Option<&Path>) -> Option<PathBuf> {
    match (database, root) {
        (Database::Sqlite { data_dir }, Some(root)) if data_dir.starts_with(root) => Some(data_dir.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> ApiRequest {
        let mut map = hyper::HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        ApiRequest {
            method,
            uri: uri.parse().unwrap(),
            headers: map,
            body: bytes::Bytes::from(body.to_owned()),
            request_id: String::new(),
        }
    }

    #[test]
    fn reads_are_told_from_writes_in_every_protocol() {
        let json = |target| request(Method::POST, "/", &[("x-amz-target", target)], "{}");
        assert!(is_read_only(&json("AmazonSQS.ListQueues"), Protocol::Json));
        assert!(is_read_only(&json("DynamoDB_20120810.DescribeTable"), Protocol::Json));
        assert!(!is_read_only(&json("AmazonSQS.CreateQueue"), Protocol::Json));
        assert!(!is_read_only(&json("AmazonSQS.ReceiveMessage"), Protocol::Json));
        let form = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
        let query = |body| request(Method::POST, "/", &form, body);
        assert!(is_read_only(&query("Action=ListTopics&Version=2010-03-31"), Protocol::Query));
        assert!(!is_read_only(&query("Action=CreateTopic&Name=t"), Protocol::Query));
        assert!(is_read_only(&request(Method::GET, "/?Action=DescribeStacks", &[], ""), Protocol::Query));
        let cbor = "/service/GraniteServiceVersion20100801/operation/ListMetrics";
        assert!(is_read_only(&request(Method::POST, cbor, &[], ""), Protocol::Query));
        assert!(is_read_only(&request(Method::GET, "/2015-03-31/functions/", &[], ""), Protocol::RestJson));
        assert!(!is_read_only(&request(Method::POST, "/2015-03-31/functions", &[], ""), Protocol::RestJson));
        assert!(!is_read_only(&request(Method::GET, "/", &[], ""), Protocol::Json));
    }

    #[test]
    fn a_scope_is_used_once_a_service_stored_something_in_it() {
        let root = std::env::temp_dir().join(format!("nimbus-probes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let database = Database::sqlite(&root);
        assert!(!scope_used(&database, "eu-west-1"));
        std::fs::create_dir_all(root.join("eu-west-1/123456789012/sqs")).unwrap();
        assert!(scope_used(&database, "eu-west-1/123456789012"));
        assert!(!scope_used(&database, "eu-west-1"), "another account's state is not the region's");
        std::fs::write(root.join("eu-west-1/nimbus.db"), b"").unwrap();
        assert!(scope_used(&database, "eu-west-1"));
        let probes = root.join("tmp/probes");
        assert!(probe_database(&Database::sqlite(&probes.join("sqs/eu-west-1")), Some(&probes)).is_some());
        assert!(probe_database(&database, Some(&probes)).is_none());
        let _ = std::fs::remove_dir_all(&root);
    }
}
