//! The service driven in process, request by request, as the shared port would call it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method};
use nimbus_api::{ApiRequest, Service};
use serde_json::Value;

use nimbus_store::{Blobs, Database};

use crate::{NotificationSink, NotificationTarget, S3};

#[derive(Default)]
struct Recorder(Mutex<Vec<(NotificationTarget, Value)>>);

impl NotificationSink for Recorder {
    fn deliver(&self, target: &NotificationTarget, event: Value) {
        self.0.lock().unwrap().push((target.clone(), event));
    }

    /// Every queue and function exists, except those whose name says "missing".
    fn exists(&self, target: &NotificationTarget) -> bool {
        match target {
            NotificationTarget::Queue { queue_arn: arn }
            | NotificationTarget::Lambda { function_arn: arn }
            | NotificationTarget::Topic { topic_arn: arn } => !arn.contains("missing"),
            NotificationTarget::EventBridge { .. } => true,
        }
    }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(s3: &S3, method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut map = HeaderMap::new();
    map.insert("host", "127.0.0.1:4566".parse().unwrap());
    for (name, value) in headers {
        map.insert(hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let request = ApiRequest {
        method,
        uri: uri.parse().unwrap(),
        headers: map,
        body: Bytes::copy_from_slice(body),
        request_id: nimbus_api::new_request_id(),
    };
    let response = s3.call(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body }
}

/// S3 alone on SQLite, `dir` its data directory.
fn open(dir: &std::path::Path, sink: Option<Arc<Recorder>>) -> Arc<S3> {
    let sink = sink.map(|s| s as Arc<dyn NotificationSink>);
    let blobs = Blobs::new(dir, "local", false);
    S3::open_on(&Database::sqlite(dir), &blobs, sink, "us-east-1", "000000000000").unwrap()
}

#[tokio::test]
async fn objects_survive_a_restart_and_read_object_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    // Written through the entry point of before the storage layer, read back through the new
    // one: the same files (`s3/s3.sqlite`, `s3/objects/`).
    let s3 = S3::open(&dir.path().join("s3"), None, "us-east-1", "000000000000").unwrap();
    assert_eq!(send(&s3, Method::PUT, "/code", &[], b"").await.status, 200);
    let put = send(&s3, Method::PUT, "/code/fn.zip", &[("x-amz-meta-a", "1")], b"zip bytes").await;
    assert_eq!(put.status, 200);
    assert_eq!(put.headers["etag"], format!("\"{}\"", crate::checksum::md5_hex(b"zip bytes")).as_str());
    assert!(put.headers.contains_key("x-amz-request-id") && put.headers.contains_key("x-amz-id-2"));
    drop(s3);

    let s3 = open(dir.path(), None);
    let got = send(&s3, Method::GET, "/code/fn.zip", &[], b"").await;
    assert_eq!((got.status, got.body.as_ref()), (200, &b"zip bytes"[..]));
    assert_eq!(got.headers["x-amz-meta-a"], "1");
    assert_eq!(s3.read_object("code", "fn.zip", None).unwrap(), b"zip bytes");
    assert_eq!(s3.read_object("code", "nope", None).unwrap_err().code, "NoSuchKey");
    assert_eq!(s3.read_object("nobucket", "fn.zip", None).unwrap_err().code, "NoSuchBucket");
    assert_eq!(s3.read_object("code", "fn.zip", Some("v1")).unwrap_err().code, "NoSuchVersion");
}

/// A data directory S3 wrote before the storage layer: its own tables in `s3/s3.sqlite` at
/// `user_version` 0, bytes in `s3/objects/`. It opens in place, objects and all.
#[tokio::test]
async fn a_data_directory_of_before_the_storage_layer_opens_in_place() {
    let dir = tempfile::tempdir().unwrap();
    // No migrations: the file is left at user_version 0, as S3 of then left it.
    let then = nimbus_store::Schema { migrations: &[], ..crate::store::SCHEMA };
    let old = Database::sqlite(dir.path()).open(&then).unwrap();
    let tables = crate::store::SCHEMA.migrations[0].sqlite.split(';').filter(|s| !s.trim().is_empty());
    for statement in tables.map(|s| s.replace("IF NOT EXISTS ", "")) {
        old.execute(&statement, &[]).unwrap();
    }
    old.execute("INSERT INTO buckets (name, created_ms, region) VALUES ('old', 1, 'us-east-1')", &[])
        .unwrap();
    old.execute(
        "INSERT INTO objects VALUES ('old', 'k', 5, '5d41402abc4b2a76b9719d911017c592', 2, '[]', '[]', NULL, 0, 'f1')",
        &[],
    )
    .unwrap();
    drop(old);
    std::fs::create_dir_all(dir.path().join("s3").join("objects")).unwrap();
    std::fs::write(dir.path().join("s3").join("objects").join("f1"), b"hello").unwrap();

    let s3 = open(dir.path(), None);
    let got = send(&s3, Method::GET, "/old/k", &[], b"").await;
    assert_eq!((got.status, got.body.as_ref()), (200, &b"hello"[..]));
    assert_eq!(send(&s3, Method::PUT, "/old/k2", &[], b"new").await.status, 200);
}

#[tokio::test]
async fn a_crash_before_the_commit_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = open(dir.path(), None);
    send(&s3, Method::PUT, "/bkt", &[], b"").await;
    // A file that reached objects/ but whose row never committed, and a half-written temp file.
    let orphan = s3.inner.files.write(b"never committed").unwrap();
    let staging = dir.path().join("s3").join(".staging").join("local");
    std::fs::write(staging.join("partial"), b"half").unwrap();
    drop(s3);

    let s3 = open(dir.path(), None);
    let listed = send(&s3, Method::GET, "/bkt?list-type=2", &[], b"").await;
    assert!(listed.text().contains("<KeyCount>0</KeyCount>"), "{}", listed.text());
    assert!(!staging.join("partial").exists());
    for _ in 0..100 {
        if !dir.path().join("s3").join("objects").join(&orphan).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the orphan file was not swept");
}

#[tokio::test]
async fn errors_use_the_s3_xml_shape_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = open(dir.path(), None);
    let missing = send(&s3, Method::GET, "/nobucket/k", &[], b"").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<Code>NoSuchBucket</Code>"), "{}", missing.text());
    let bad = send(&s3, Method::PUT, "/Bad_Name", &[], b"").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("<Code>InvalidBucketName</Code>"));
    send(&s3, Method::PUT, "/bkt", &[], b"").await;
    let again = send(&s3, Method::PUT, "/bkt", &[], b"").await;
    assert_eq!(again.status, 409);
    assert!(again.text().contains("BucketAlreadyOwnedByYou"));
    let head = send(&s3, Method::HEAD, "/bkt/missing", &[], b"").await;
    assert_eq!((head.status, head.body.len()), (404, 0));
    let too_large =
        send(&s3, Method::PUT, "/bkt/k", &[("x-amz-decoded-content-length", "6000000000")], b"").await;
    assert!(too_large.text().contains("EntityTooLarge"), "{}", too_large.text());
}

#[tokio::test]
async fn notifications_go_to_matching_targets_after_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let s3 = open(dir.path(), Some(recorder.clone()));
    send(&s3, Method::PUT, "/bkt", &[], b"").await;
    let config = br#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
        <QueueConfiguration><Id>q</Id><Queue>arn:aws:sqs:us-east-1:000000000000:q</Queue>
          <Event>s3:ObjectCreated:Put</Event></QueueConfiguration>
        <CloudFunctionConfiguration><Id>f</Id>
          <CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:f</CloudFunction>
          <Event>s3:ObjectCreated:*</Event>
          <Filter><S3Key><FilterRule><Name>suffix</Name><Value>.csv</Value></FilterRule></S3Key></Filter>
        </CloudFunctionConfiguration></NotificationConfiguration>"#;
    assert_eq!(send(&s3, Method::PUT, "/bkt?notification", &[], config).await.status, 200);
    {
        let delivered = recorder.0.lock().unwrap();
        assert_eq!(delivered.len(), 1, "only the queue gets the test event");
        assert_eq!(delivered[0].1["Event"], "s3:TestEvent");
    }
    recorder.0.lock().unwrap().clear();

    let put = send(&s3, Method::PUT, "/bkt/in/a%20b.csv", &[], b"1,2").await;
    send(&s3, Method::PUT, "/bkt/in/x.json", &[], b"{}").await;
    let delivered = recorder.0.lock().unwrap().clone();
    let targets: Vec<_> = delivered.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(
        targets,
        vec![
            NotificationTarget::Queue { queue_arn: "arn:aws:sqs:us-east-1:000000000000:q".into() },
            NotificationTarget::Lambda {
                function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into()
            },
            NotificationTarget::Queue { queue_arn: "arn:aws:sqs:us-east-1:000000000000:q".into() },
        ]
    );
    let record = &delivered[0].1["Records"][0];
    assert_eq!(record["s3"]["object"]["key"], "in/a+b.csv");
    assert_eq!(record["s3"]["object"]["size"], 3);
    assert_eq!(record["s3"]["configurationId"], "q");
    assert_eq!(
        record["responseElements"]["x-amz-request-id"],
        put.headers["x-amz-request-id"].to_str().unwrap()
    );
    // The same object event carries the same sequencer to every target.
    assert_eq!(
        delivered[0].1["Records"][0]["s3"]["object"]["sequencer"],
        delivered[1].1["Records"][0]["s3"]["object"]["sequencer"]
    );

    let got = send(&s3, Method::GET, "/bkt?notification", &[], b"").await;
    assert!(got.text().contains("<Name>Suffix</Name><Value>.csv</Value>"), "{}", got.text());
}

#[tokio::test]
async fn failed_writes_deliver_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let s3 = open(dir.path(), Some(recorder.clone()));
    send(&s3, Method::PUT, "/bkt", &[], b"").await;
    let config = br#"<NotificationConfiguration><CloudFunctionConfiguration>
        <CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:f</CloudFunction>
        <Event>s3:ObjectCreated:*</Event></CloudFunctionConfiguration></NotificationConfiguration>"#;
    send(&s3, Method::PUT, "/bkt?notification", &[], config).await;
    let bad = send(&s3, Method::PUT, "/bkt/k", &[("x-amz-checksum-crc32", "AAAAAA==")], b"data").await;
    assert!(bad.text().contains("BadDigest"));
    assert!(recorder.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn configurations_naming_missing_destinations_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let s3 = open(dir.path(), Some(recorder.clone()));
    send(&s3, Method::PUT, "/bkt", &[], b"").await;
    let config = br#"<NotificationConfiguration>
        <QueueConfiguration><Queue>arn:aws:sqs:us-east-1:000000000000:here</Queue>
          <Event>s3:ObjectCreated:*</Event></QueueConfiguration>
        <QueueConfiguration><Queue>arn:aws:sqs:us-east-1:000000000000:missing</Queue>
          <Event>s3:ObjectCreated:*</Event></QueueConfiguration>
        <CloudFunctionConfiguration><CloudFunction>arn:aws:lambda:us-east-1:000000000000:function:missing</CloudFunction>
          <Event>s3:ObjectCreated:*</Event></CloudFunctionConfiguration></NotificationConfiguration>"#;
    let refused = send(&s3, Method::PUT, "/bkt?notification", &[], config).await;
    assert_eq!(refused.status, 400);
    let text = refused.text();
    for expected in [
        "<Code>InvalidArgument</Code>",
        "<Message>Unable to validate the following destination configurations</Message>",
        "<ArgumentName1>arn:aws:sqs:us-east-1:000000000000:missing</ArgumentName1>",
        "<ArgumentValue1>The destination queue does not exist</ArgumentValue1>",
        "<ArgumentName2>arn:aws:lambda:us-east-1:000000000000:function:missing, null</ArgumentName2>",
        "<ArgumentValue2>Not authorized to invoke function [arn:aws:lambda:us-east-1:000000000000:function:missing]</ArgumentValue2>",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(recorder.0.lock().unwrap().is_empty(), "no test event for a refused configuration");
    let got = send(&s3, Method::GET, "/bkt?notification", &[], b"").await;
    assert!(!got.text().contains("QueueConfiguration"), "nothing stored: {}", got.text());

    let skip = [("x-amz-skip-destination-validation", "true")];
    assert_eq!(send(&s3, Method::PUT, "/bkt?notification", &skip, config).await.status, 200);
    let got = send(&s3, Method::GET, "/bkt?notification", &[], b"").await;
    assert!(got.text().contains("function:missing"), "{}", got.text());
}

/// Two nodes on one PostgreSQL database and one shared blob root: whatever one writes, the
/// other serves at once (nothing is cached). Runs when `NIMBUS_TEST_DATABASE` names a server.
/// Connections are made and dropped outside the runtime: the `postgres` client blocks on a
/// runtime of its own when it connects and closes, which tokio refuses on a runtime thread.
#[test]
fn any_node_serves_any_bucket() {
    for (database, schema, _dir) in crate::store::tests::databases("s3_test_nodes") {
        if !database.is_shared() {
            continue;
        }
        let shared = tempfile::tempdir().unwrap();
        let node = |name: &str| {
            let db = crate::store::Db::open_schema(&database, &schema).unwrap();
            let files = crate::files::Files::open(&Blobs::new(shared.path(), name, true)).unwrap();
            S3::start(db, files, None, "us-east-1", "000000000000").unwrap()
        };
        let (a, b) = (node("a"), node("b"));
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            assert_eq!(send(&a, Method::PUT, "/bkt", &[], b"").await.status, 200);
            assert_eq!(send(&b, Method::PUT, "/bkt", &[], b"").await.status, 409);
            assert_eq!(send(&a, Method::PUT, "/bkt/k", &[], b"from a").await.status, 200);
            let got = send(&b, Method::GET, "/bkt/k", &[], b"").await;
            assert_eq!((got.status, got.body.as_ref()), (200, &b"from a"[..]));
            assert_eq!(send(&b, Method::PUT, "/bkt/k", &[], b"from b").await.status, 200);
            assert_eq!(send(&a, Method::GET, "/bkt/k", &[], b"").await.body.as_ref(), b"from b");
            assert_eq!(send(&b, Method::DELETE, "/bkt/k", &[], b"").await.status, 204);
            assert_eq!(send(&a, Method::GET, "/bkt/k", &[], b"").await.status, 404);
            assert_eq!(send(&a, Method::DELETE, "/bkt", &[], b"").await.status, 204);
            assert_eq!(send(&b, Method::GET, "/bkt?list-type=2", &[], b"").await.status, 404);
        });
    }
}
