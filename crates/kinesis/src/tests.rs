use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

struct Fixture {
    kinesis: Arc<Kinesis>,
    clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

fn fixture(write_limits: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
    let now = clock.clone();
    let options = Options {
        write_limits,
        sweep_every: None,
        clock: Some(Arc::new(move || now.load(Ordering::SeqCst))),
        announce: None,
    };
    let kinesis = Kinesis::open(&Database::sqlite(dir.path()), Identity::default(), options).unwrap();
    Fixture { kinesis, clock, _dir: dir }
}

impl Fixture {
    fn call(&self, operation: &str, input: Value) -> std::result::Result<Value, AwsError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let response = runtime.block_on(self.kinesis.dispatch(operation, &input, Format::Json))?;
        let bytes =
            runtime.block_on(http_body_util::BodyExt::collect(response.into_body())).unwrap().to_bytes();
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn ok(&self, operation: &str, input: Value) -> Value {
        self.call(operation, input).unwrap_or_else(|e| panic!("{operation}: {e}"))
    }

    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }
}

fn data(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn records_land_on_the_shard_their_hash_says_in_order() {
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 4}));
    let ranges = hash::even_ranges(4);
    for i in 0..40 {
        let key = format!("key-{i}");
        let put =
            f.ok("PutRecord", json!({"StreamName": "s", "PartitionKey": key, "Data": data(&i.to_string())}));
        let h = hash::of_partition_key(&key);
        let expected = ranges.iter().position(|(a, b)| *a <= h && h <= *b).unwrap();
        assert_eq!(put["ShardId"], seq::shard_id(expected as i64));
    }
    let iterator = f.ok(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000001", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = f.ok("GetRecords", json!({"ShardIterator": iterator["ShardIterator"]}));
    let seqs: Vec<&str> =
        got["Records"].as_array().unwrap().iter().map(|r| r["SequenceNumber"].as_str().unwrap()).collect();
    assert!(!seqs.is_empty());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got["MillisBehindLatest"], 0);
    assert!(got["NextShardIterator"].is_string());
}

#[test]
fn errors_name_the_stream_as_aws_does() {
    let f = fixture(false);
    let missing = f.call("DescribeStream", json!({"StreamName": "nope"})).unwrap_err();
    assert_eq!(missing.code, "ResourceNotFoundException");
    assert_eq!(missing.message, "Stream nope under account 000000000000 not found.");
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}));
    let again = f.call("CreateStream", json!({"StreamName": "s", "ShardCount": 1})).unwrap_err();
    assert_eq!(again.code, "ResourceInUseException");
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
    let described = f.ok("DescribeStreamSummary", json!({"StreamARN": arn}));
    assert_eq!(described["StreamDescriptionSummary"]["OpenShardCount"], 1);
    let over = f.call("CreateStream", json!({"StreamName": "t", "ShardCount": 500})).unwrap_err();
    assert_eq!(over.code, "LimitExceededException");
    assert_eq!(
        f.call("CreateStream", json!({"StreamName": "t", "ShardCount": 0})).unwrap_err().code,
        "ValidationException"
    );
    assert_eq!(f.call("Frobnicate", json!({})).unwrap_err().code, "UnknownOperationException");
}

#[test]
fn iterators_expire_after_five_minutes_and_retention_hides_records() {
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}));
    f.ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": data("old")}));
    let it = f.ok(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    f.advance(300_001);
    let expired = f.call("GetRecords", json!({"ShardIterator": it["ShardIterator"]})).unwrap_err();
    assert_eq!(expired.code, "ExpiredIteratorException");
    f.advance(24 * 3_600_000);
    f.ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": data("new")}));
    let it = f.ok(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = f.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    assert_eq!(got["Records"].as_array().unwrap().len(), 1);
    assert_eq!(got["Records"][0]["Data"], data("new"));
    assert_eq!(f.kinesis.sweep_now().unwrap(), 1);
}

#[test]
fn split_and_merge_keep_lineage_and_close_parents() {
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 2}));
    f.ok(
        "PutRecord",
        json!({"StreamName": "s", "PartitionKey": "a", "Data": data("1"), "ExplicitHashKey": "5"}),
    );
    let split_at = (1u128 << 126).to_string();
    f.ok(
        "SplitShard",
        json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": split_at}),
    );
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
    let shards = f.kinesis.shards(arn).unwrap();
    assert_eq!(shards.len(), 4);
    assert!(shards[0].closed);
    assert_eq!(shards[2].parent_shard_id.as_deref(), Some("shardId-000000000000"));
    f.ok(
        "PutRecord",
        json!({"StreamName": "s", "PartitionKey": "a", "Data": data("2"), "ExplicitHashKey": "5"}),
    );
    let parent = f.kinesis.read(arn, "shardId-000000000000", None, 100).unwrap();
    let child = f.kinesis.read(arn, "shardId-000000000002", None, 100).unwrap();
    assert_eq!((parent.len(), child.len()), (1, 1));
    assert!(parent[0].sequence < child[0].sequence);
    // The closed parent, drained: no next iterator, its children named.
    let it = f.ok(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = f.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    assert!(got.get("NextShardIterator").is_none());
    assert_eq!(got["ChildShards"].as_array().unwrap().len(), 2);
    let not_adjacent = f.call("MergeShards", json!({"StreamName": "s", "ShardToMerge": "shardId-000000000002", "AdjacentShardToMerge": "shardId-000000000001"})).unwrap_err();
    assert_eq!(not_adjacent.code, "InvalidArgumentException");
    f.ok("MergeShards", json!({"StreamName": "s", "ShardToMerge": "shardId-000000000003", "AdjacentShardToMerge": "shardId-000000000001"}));
    let merged = f.kinesis.shards(arn).unwrap().pop().unwrap();
    assert_eq!(merged.parent_shard_id.as_deref(), Some("shardId-000000000003"));
    assert_eq!(merged.adjacent_parent_shard_id.as_deref(), Some("shardId-000000000001"));
    let closed = f
        .call(
            "SplitShard",
            json!({"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "9"}),
        )
        .unwrap_err();
    assert_eq!(closed.code, "ResourceInUseException");
}

#[test]
fn poller_api_reads_after_positions_and_wakes() {
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}));
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
    let mut written = f.kinesis.written();
    assert_eq!(f.kinesis.position(arn, "shardId-000000000000", StartAt::Latest).unwrap(), None);
    let (shard, first) = f.kinesis.put_record("s", "k", b"one").unwrap();
    assert_eq!(shard, "shardId-000000000000");
    assert!(written.has_changed().unwrap());
    written.borrow_and_update();
    f.advance(1000);
    let (_, second) = f.kinesis.put_record(arn, "k", b"two").unwrap();
    let all = f.kinesis.read(arn, &shard, None, 10).unwrap();
    assert_eq!(
        all.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    let after = f.kinesis.read(arn, &shard, Some(&first), 10).unwrap();
    assert_eq!(after[0].sequence, second);
    assert_eq!(f.kinesis.position(arn, &shard, StartAt::Latest).unwrap(), Some(second.clone()));
    let at = f.kinesis.position(arn, &shard, StartAt::Timestamp(all[1].arrival_ms)).unwrap();
    assert_eq!(at, Some(first));
    let future = f.kinesis.position(arn, &shard, StartAt::Timestamp(all[1].arrival_ms + 1)).unwrap();
    assert_eq!(future, Some(second.clone()), "nothing since: the shard's end");
    assert!(f.kinesis.read(arn, "shardId-000000000009", None, 1).is_err());
    assert!(f.kinesis.put_record("missing", "k", b"").is_err());
}

#[test]
fn write_limits_fail_records_one_by_one() {
    let f = fixture(true);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 2}));
    let batch = |n: usize, key: &str| {
        Value::Array((0..n).map(|_| json!({"PartitionKey": key, "Data": data("x")})).collect())
    };
    assert_eq!(
        f.ok("PutRecords", json!({"StreamName": "s", "Records": batch(500, "a")}))["FailedRecordCount"],
        0
    );
    assert_eq!(
        f.ok("PutRecords", json!({"StreamName": "s", "Records": batch(500, "a")}))["FailedRecordCount"],
        0
    );
    let mut records = batch(2, "a");
    records.as_array_mut().unwrap().extend(batch(1, "b").as_array().unwrap().clone());
    let third = f.ok("PutRecords", json!({"StreamName": "s", "Records": records}));
    assert_eq!(third["FailedRecordCount"], 2);
    assert_eq!(third["Records"][0]["ErrorCode"], "ProvisionedThroughputExceededException");
    assert!(third["Records"][2]["SequenceNumber"].is_string());
    let over = f.call("PutRecords", json!({"StreamName": "s", "Records": batch(501, "a")})).unwrap_err();
    assert_eq!(over.code, "ValidationException");
}

#[test]
fn update_shard_count_scales_uniformly() {
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}));
    let out = f.ok(
        "UpdateShardCount",
        json!({"StreamName": "s", "TargetShardCount": 8, "ScalingType": "UNIFORM_SCALING"}),
    );
    assert_eq!(out["CurrentShardCount"], 4);
    let listed = f.ok("ListShards", json!({"StreamName": "s", "ShardFilter": {"Type": "AT_LATEST"}}));
    assert_eq!(listed["Shards"].as_array().unwrap().len(), 8);
    let page = f.ok("ListShards", json!({"StreamName": "s", "MaxResults": 5}));
    let rest = f.ok("ListShards", json!({"NextToken": page["NextToken"]}));
    assert_eq!(page["Shards"].as_array().unwrap().len() + rest["Shards"].as_array().unwrap().len(), 12);
    f.advance(300_001);
    let expired = f.call("ListShards", json!({"NextToken": page["NextToken"]})).unwrap_err();
    assert_eq!(expired.code, "ExpiredNextTokenException");
    let too_far = f.call(
        "UpdateShardCount",
        json!({"StreamName": "s", "TargetShardCount": 17, "ScalingType": "UNIFORM_SCALING"}),
    );
    assert_eq!(too_far.unwrap_err().code, "InvalidArgumentException");
}

#[test]
fn get_records_stops_near_ten_mebibytes() {
    use base64::Engine as _;
    let f = fixture(false);
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}));
    let big = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024 * 1024 - 1]);
    for _ in 0..12 {
        f.ok("PutRecord", json!({"StreamName": "s", "PartitionKey": "k", "Data": big}));
    }
    let it = f.ok(
        "GetShardIterator",
        json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    f.advance(2000);
    let got = f.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    assert_eq!(got["Records"].as_array().unwrap().len(), 10);
    assert_eq!(got["MillisBehindLatest"], 2000);
    let rest = f.ok("GetRecords", json!({"ShardIterator": got["NextShardIterator"]}));
    assert_eq!(rest["Records"].as_array().unwrap().len(), 2);
    assert_eq!(rest["MillisBehindLatest"], 0);
}

#[test]
fn uniform_scaling_goes_through_splits_and_merges_with_two_parents_at_most() {
    let f = fixture(false);
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
    f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 5}));
    for (from, to) in [(5, 3), (3, 6), (6, 4), (4, 7)] {
        let out = f.ok(
            "UpdateShardCount",
            json!({"StreamName": "s", "TargetShardCount": to, "ScalingType": "UNIFORM_SCALING"}),
        );
        assert_eq!(out["CurrentShardCount"], from);
        let listed = f.ok("ListShards", json!({"StreamName": "s", "ShardFilter": {"Type": "AT_LATEST"}}));
        let ranges: Vec<(u128, u128)> = listed["Shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let key = |k: &str| s["HashKeyRange"][k].as_str().unwrap().parse::<u128>().unwrap();
                (key("StartingHashKey"), key("EndingHashKey"))
            })
            .collect();
        let mut sorted = ranges.clone();
        sorted.sort();
        assert_eq!(sorted, hash::even_ranges(to), "{from} -> {to}");
    }
    // Every shard's range is covered by its parents', and every closed shard has children.
    let shards = f.kinesis.shards(arn).unwrap();
    let description = f.ok("DescribeStream", json!({"StreamName": "s", "Limit": 10000}));
    let range = |id: &str| {
        let shard = description["StreamDescription"]["Shards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["ShardId"] == id)
            .unwrap();
        let key = |k: &str| shard["HashKeyRange"][k].as_str().unwrap().parse::<u128>().unwrap();
        (key("StartingHashKey"), key("EndingHashKey"))
    };
    for shard in &shards {
        if let Some(parent) = &shard.parent_shard_id {
            let (lo, hi) = range(&shard.shard_id);
            let mut cover = vec![range(parent)];
            cover.extend(shard.adjacent_parent_shard_id.as_deref().map(range));
            let (clo, chi) =
                (cover.iter().map(|c| c.0).min().unwrap(), cover.iter().map(|c| c.1).max().unwrap());
            assert!(clo <= lo && hi <= chi, "{} within its parents", shard.shard_id);
        }
        if shard.closed {
            assert!(shards.iter().any(|c| c.parent_shard_id.as_ref() == Some(&shard.shard_id)
                || c.adjacent_parent_shard_id.as_ref() == Some(&shard.shard_id)));
        }
    }
}

/// Two nodes on one database (SQLite always; PostgreSQL when `NIMBUS_TEST_DATABASE` names one)
/// putting to one shard at once: every sequence number handed out once, and read in their order.
#[test]
fn two_nodes_never_repeat_or_reorder_a_shards_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut databases = vec![Database::sqlite(dir.path())];
    if let Ok(url) = std::env::var("NIMBUS_TEST_DATABASE") {
        databases.push(Database::postgres(&url).expect("NIMBUS_TEST_DATABASE is reachable"));
    }
    for database in databases {
        let nodes: Vec<Arc<Kinesis>> = (0..2)
            .map(|_| Kinesis::open(&database, Identity::default(), Options::default()).unwrap())
            .collect();
        let name = format!("s-{}", uuid::Uuid::new_v4().simple());
        // Outside any runtime: the PostgreSQL client blocks on one of its own.
        nodes[0].create_stream(&json!({"StreamName": name, "ShardCount": 1})).unwrap();
        let sequences: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|i| {
                    let (node, name) = (nodes[i % 2].clone(), name.clone());
                    scope.spawn(move || {
                        (0..50).map(|_| node.put_record(&name, "k", b"x").unwrap().1).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        let mut unique = sequences.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 200);
        let read: Vec<String> = nodes[1]
            .read(&name, "shardId-000000000000", None, 1000)
            .unwrap()
            .into_iter()
            .map(|r| r.sequence)
            .collect();
        assert_eq!(read, unique);
    }
}
