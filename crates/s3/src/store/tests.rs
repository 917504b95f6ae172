//! The metadata store on SQLite always, and on PostgreSQL when `NIMBUS_TEST_DATABASE` names a
//! server (`scripts/postgres start DIR` prints one): both must answer alike, and concurrent
//! writers on PostgreSQL must neither lose a replaced file nor leave an object without a bucket.

use std::sync::Arc;

use super::*;

/// Every backend to test, each with a fresh `service` schema (tests run in parallel: each
/// passes a name of its own). The temporary directory must outlive the database.
pub(crate) fn databases(service: &'static str) -> Vec<(Database, Schema, Option<tempfile::TempDir>)> {
    let schema = Schema { service, ..SCHEMA };
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(Database::sqlite(dir.path()), schema, Some(dir))];
    if let Ok(url) = std::env::var("NIMBUS_TEST_DATABASE") {
        let database = Database::postgres(&url).expect("NIMBUS_TEST_DATABASE is reachable");
        if let Database::Postgres(server) = &database {
            let drop = format!(
                "DROP SCHEMA IF EXISTS {service} CASCADE; \
                 DELETE FROM public.nimbus_schema WHERE service = '{service}'"
            );
            // Fails only when nimbus_schema does not exist yet: nothing to drop then.
            server.connection().unwrap().batch_execute(&drop).ok();
        }
        all.push((database, schema, None));
    }
    all
}

fn object(bucket: &str, key: &str, file: &str) -> ObjectRow {
    ObjectRow {
        bucket: bucket.into(),
        key: key.into(),
        size: 5_000_000_000,
        etag: "0cc175b9c0f1b6a831c399e269772661".into(),
        modified_ms: 1_700_000_000_000,
        headers: vec![("content-type".into(), "text/plain".into())],
        metadata: vec![("a".into(), "1".into())],
        checksum: Some(Checksum { algorithm: "CRC32".into(), value: "AAAAAA==".into() }),
        parts: 0,
        file: file.into(),
        version_id: "null".into(),
        tags: vec![],
        extra: vec![],
    }
}

fn upload(bucket: &str, key: &str, id: &str) -> UploadRow {
    UploadRow {
        id: id.into(),
        bucket: bucket.into(),
        key: key.into(),
        initiated_ms: 1,
        headers: vec![],
        metadata: vec![],
        algorithm: None,
    }
}

fn part(number: u32, file: &str) -> PartRow {
    PartRow { number, size: 5, etag: "e".into(), modified_ms: 2, checksum: None, file: file.into() }
}

#[test]
fn buckets_and_objects_round_trip_and_list_in_byte_order() {
    for (database, schema, _dir) in databases("s3_test_objects") {
        let db = Db::open_schema(&database, &schema).unwrap();
        assert!(db.create_bucket("bkt", "us-east-1", 10).unwrap());
        assert!(!db.create_bucket("bkt", "eu-west-1", 11).unwrap(), "already there");
        assert_eq!(db.require_bucket("bkt").unwrap().region, "us-east-1");
        assert_eq!(db.put_object(&object("nobkt", "k", "f0")).unwrap_err().code, "NoSuchBucket");

        assert!(db.put_object(&object("bkt", "k", "f1")).unwrap().is_empty());
        assert_eq!(db.put_object(&object("bkt", "k", "f2")).unwrap(), ["f1"]);
        let stored = db.object("bkt", "k").unwrap().unwrap();
        assert_eq!((stored.size, stored.file.as_str()), (5_000_000_000, "f2"));
        assert_eq!(stored.headers, object("", "", "").headers);
        assert_eq!(stored.metadata, object("", "", "").metadata);
        assert_eq!(stored.checksum, object("", "", "").checksum);

        for key in ["a", "B", "_x", "é", "Z", "a/b"] {
            db.put_object(&object("bkt", key, &format!("file-{key}"))).unwrap();
        }
        let keys = |rows: Vec<ObjectRow>| rows.into_iter().map(|o| o.key).collect::<Vec<_>>();
        // Bytes, as S3 lists them, whatever the database's locale.
        assert_eq!(
            keys(db.objects_after("bkt", "", "", 100).unwrap()),
            ["B", "Z", "_x", "a", "a/b", "k", "é"]
        );
        assert_eq!(keys(db.objects_after("bkt", "B", "", 2).unwrap()), ["Z", "_x"]);
        assert_eq!(keys(db.objects_after("bkt", "", "a", 100).unwrap()), ["a", "a/b", "k", "é"]);

        assert_eq!(db.delete_object("bkt", "k").unwrap().unwrap().file, "f2");
        assert!(db.delete_object("bkt", "k").unwrap().is_none());
        assert!(db.referenced_files().unwrap().contains("file-é"));
        assert!(!db.referenced_files().unwrap().contains("f2"));
    }
}

#[test]
fn multipart_uploads_complete_and_abort() {
    for (database, schema, _dir) in databases("s3_test_uploads") {
        let db = Db::open_schema(&database, &schema).unwrap();
        assert_eq!(db.create_upload(&upload("nobkt", "k", "u0")).unwrap_err().code, "NoSuchBucket");
        db.create_bucket("bkt", "us-east-1", 1).unwrap();
        db.create_upload(&upload("bkt", "k", "u1")).unwrap();
        assert_eq!(db.upload("bkt", "other", "u1").unwrap_err().code, "NoSuchUpload");
        assert_eq!(db.put_part("u1", &part(2, "p2")).unwrap(), None);
        assert_eq!(db.put_part("u1", &part(1, "p1a")).unwrap(), None);
        assert_eq!(db.put_part("u1", &part(1, "p1b")).unwrap(), Some("p1a".into()));
        let numbers: Vec<u32> = db.parts("u1").unwrap().iter().map(|p| p.number).collect();
        assert_eq!(numbers, [1, 2]);
        assert_eq!(db.referenced_files().unwrap().len(), 2);

        db.put_object(&object("bkt", "k", "old")).unwrap();
        let mut unreferenced = db.complete_upload("u1", &object("bkt", "k", "joined")).unwrap();
        unreferenced.sort();
        assert_eq!(unreferenced, ["old", "p1b", "p2"]);
        assert_eq!(db.object("bkt", "k").unwrap().unwrap().file, "joined");
        assert!(db.parts("u1").unwrap().is_empty());
        assert_eq!(db.complete_upload("u1", &object("bkt", "k", "again")).unwrap_err().code, "NoSuchUpload");
        assert_eq!(db.put_part("u1", &part(3, "late")).unwrap_err().code, "NoSuchUpload");

        db.create_upload(&upload("bkt", "k2", "u2")).unwrap();
        db.put_part("u2", &part(1, "q1")).unwrap();
        assert_eq!(db.uploads("bkt").unwrap().len(), 1);
        assert_eq!(db.abort_upload("u2").unwrap(), Some(vec!["q1".to_owned()]));
        assert_eq!(db.abort_upload("u2").unwrap(), None);
    }
}

#[test]
fn buckets_delete_only_when_empty_and_take_their_uploads_along() {
    for (database, schema, _dir) in databases("s3_test_buckets") {
        let db = Db::open_schema(&database, &schema).unwrap();
        assert!(matches!(db.delete_bucket("none").unwrap(), BucketDeletion::Missing));
        db.create_bucket("b2", "us-east-1", 2).unwrap();
        db.create_bucket("b1", "us-east-1", 1).unwrap();
        let names: Vec<String> = db.buckets().unwrap().into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["b1", "b2"]);
        assert_eq!(db.notification("b1").unwrap(), None);
        db.set_notification("b1", "{}").unwrap();
        assert_eq!(db.notification("b1").unwrap().as_deref(), Some("{}"));
        assert_eq!(db.set_notification("none", "{}").unwrap_err().code, "NoSuchBucket");

        db.put_object(&object("b1", "k", "f")).unwrap();
        assert!(matches!(db.delete_bucket("b1").unwrap(), BucketDeletion::NotEmpty));
        db.delete_object("b1", "k").unwrap();
        db.create_upload(&upload("b1", "k", "u")).unwrap();
        db.put_part("u", &part(1, "p")).unwrap();
        match db.delete_bucket("b1").unwrap() {
            BucketDeletion::Deleted(files) => assert_eq!(files, ["p"]),
            _ => panic!("not deleted"),
        }
        assert!(db.bucket("b1").unwrap().is_none());
        assert!(db.uploads("b1").unwrap().is_empty());
        assert!(db.referenced_files().unwrap().is_empty());
    }
}

#[test]
fn concurrent_writers_lose_no_file_and_orphan_no_object() {
    for (database, schema, _dir) in databases("s3_test_concurrent") {
        let db = Arc::new(Db::open_schema(&database, &schema).unwrap());
        db.create_bucket("bkt", "us-east-1", 1).unwrap();
        // Four writers replace one key: every file but the last is handed back exactly once.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .flat_map(|i| db.put_object(&object("bkt", "k", &format!("{w}-{i}"))).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut replaced: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        replaced.push(db.object("bkt", "k").unwrap().unwrap().file);
        replaced.sort();
        replaced.dedup();
        assert_eq!(replaced.len(), 100);

        // Puts racing a bucket's deletion: once the bucket is gone no put succeeds, and no
        // object outlives it. A few rounds: the race is narrow.
        db.delete_object("bkt", "k").unwrap();
        for round in 0..3 {
            db.create_bucket("race", "us-east-1", round).unwrap();
            let putter = {
                let db = db.clone();
                std::thread::spawn(move || {
                    let put = |i: usize| db.put_object(&object("race", &format!("k{i}"), "f")).is_ok();
                    (0..200).take_while(|&i| put(i)).count()
                })
            };
            loop {
                for object in db.objects_after("race", "", "", 1000).unwrap() {
                    db.delete_object("race", &object.key).unwrap();
                }
                if matches!(db.delete_bucket("race").unwrap(), BucketDeletion::Deleted(_)) {
                    break;
                }
            }
            putter.join().unwrap();
            let left = db.objects_after("race", "", "", 1000).unwrap();
            assert!(left.is_empty(), "{} objects outlived their bucket", left.len());
        }
    }
}

#[test]
fn versions_stack_with_delete_markers_and_promotion() {
    for (database, schema, _dir) in databases("s3_test_versions") {
        let db = Db::open_schema(&database, &schema).unwrap();
        db.create_bucket("bkt", "us-east-1", 1).unwrap();
        db.set_versioning("bkt", "Enabled").unwrap();
        let version = |id: &str, file: &str| ObjectRow { version_id: id.into(), ..object("bkt", "k", file) };
        assert!(db.put_object(&version("v1", "f1")).unwrap().is_empty());
        assert!(db.put_object(&version("v2", "f2")).unwrap().is_empty(), "v1 is kept");
        let deletion = db.delete_current("bkt", "k", "m1", 5).unwrap();
        assert!(deletion.files.is_empty() && deletion.removed.unwrap().marker);
        assert!(db.object("bkt", "k").unwrap().is_none());
        assert_eq!(db.latest_marker("bkt", "k").unwrap().as_deref(), Some("m1"));
        let listed = db.versions_after("bkt", "", i64::MIN, "", 100).unwrap();
        let ids: Vec<_> = listed.iter().map(|l| l.row.version_id.as_str()).collect();
        assert_eq!(ids, ["m1", "v2", "v1"]);
        // Removing the marker brings v2 back; removing v2 then makes v1 current.
        db.delete_version("bkt", "k", "m1", &|_| Ok(())).unwrap();
        assert_eq!(db.object("bkt", "k").unwrap().unwrap().version_id, "v2");
        let gone = db.delete_version("bkt", "k", "v2", &|_| Ok(())).unwrap();
        assert_eq!(gone.files, ["f2"]);
        assert_eq!(db.object("bkt", "k").unwrap().unwrap().version_id, "v1");
        assert!(matches!(db.delete_bucket("bkt").unwrap(), BucketDeletion::NotEmpty));
        db.delete_version("bkt", "k", "v1", &|_| Ok(())).unwrap();
        assert!(db.referenced_files().unwrap().is_empty());
    }
}
