//! The service called in process on SQLite.

use serde_json::{json, Value};

use crate::{DynamoDb, Options};

fn open(dir: &std::path::Path) -> std::sync::Arc<DynamoDb> {
    DynamoDb::open(&nimbus_store::Database::sqlite(dir), Default::default(), Options::default()).unwrap()
}

fn call(d: &DynamoDb, op: &str, body: Value) -> Result<Value, (String, String)> {
    futures_lite(d.dispatch(op, body.to_string().as_bytes())).map_err(|e| (e.code.to_owned(), e.message))
}

fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn items_queries_and_streams_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    call(&d, "CreateTable", json!({
        "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    })).unwrap();
    let mut changes = d.stream_changes();
    assert!(!changes.has_changed().unwrap());
    for n in [10, -2, 3, 100] {
        call(
            &d,
            "PutItem",
            json!({"TableName": "tbl", "Item": {"pk": {"S": "a"}, "sk": {"N": n.to_string()}}}),
        )
        .unwrap();
    }
    assert!(changes.has_changed().unwrap(), "stream writes tick the watch");
    changes.borrow_and_update();
    let page = call(
        &d,
        "Query",
        json!({"TableName": "tbl", "KeyConditionExpression": "pk = :p AND sk > :z",
        "ExpressionAttributeValues": {":p": {"S": "a"}, ":z": {"N": "0"}}, "Limit": 2}),
    )
    .unwrap();
    let sks: Vec<&str> =
        page["Items"].as_array().unwrap().iter().map(|i| i["sk"]["N"].as_str().unwrap()).collect();
    assert_eq!(sks, ["3", "10"]);
    assert_eq!(page["LastEvaluatedKey"], json!({"pk": {"S": "a"}, "sk": {"N": "10"}}));
    let e = call(
        &d,
        "PutItem",
        json!({"TableName": "tbl", "Item": {"pk": {"S": "a"}, "sk": {"N": "3"}},
        "ConditionExpression": "attribute_not_exists(pk)"}),
    )
    .unwrap_err();
    assert_eq!(e, ("ConditionalCheckFailedException".into(), "The conditional request failed".into()));
    let arn = call(&d, "DescribeTable", json!({"TableName": "tbl"})).unwrap()["Table"]["LatestStreamArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let shards = d.stream_shards(&arn).unwrap();
    let records = d.stream_read(&arn, &shards[0].shard_id, None, 10).unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].record["eventName"], "INSERT");
    assert!(records[0].sequence < records[1].sequence);
    assert_eq!(d.stream_latest(&arn, &shards[0].shard_id).unwrap(), Some(records[3].sequence.clone()));
}
