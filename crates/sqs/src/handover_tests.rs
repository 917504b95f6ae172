//! Handing SQS over: one node closes (or dies) and another opens it from the database. Runs on
//! SQLite always and on PostgreSQL when `NIMBUS_TEST_DATABASE` names a server.

use std::sync::Arc;
use std::time::Duration;

use nimbus_store::Database;
use serde_json::json;

use crate::clock::ManualClock;
use crate::engine::store::SCHEMA;
use crate::tests::{call, create, ok, receive, T0};
use crate::Sqs;

fn databases() -> Vec<(Database, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(Database::sqlite(dir.path()), Some(dir))];
    if let Ok(url) = std::env::var("NIMBUS_TEST_DATABASE") {
        let database = Database::postgres(&url).expect("NIMBUS_TEST_DATABASE is reachable");
        // What an earlier run left goes.
        let db = database.open(&SCHEMA).unwrap();
        for table in ["queues", "messages", "dedup", "counters"] {
            db.execute(&format!("DELETE FROM {table}"), &[]).unwrap();
        }
        all.push((database, None));
    }
    all
}

/// Outside the runtime: the `postgres` crate drops its connections with a `block_on` of its own.
fn open(database: &Database, clock: &Arc<ManualClock>) -> Arc<Sqs> {
    tokio::task::block_in_place(|| {
        Sqs::open_with_clock(database, "us-east-1", "000000000000", clock.clone()).unwrap()
    })
}

async fn count(sqs: &Sqs, url: &str, attribute: &str) -> String {
    let attrs = ok(sqs, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    attrs["Attributes"][attribute].as_str().unwrap().to_owned()
}

async fn send_fifo(sqs: &Sqs, url: &str, body: &str) -> (String, String) {
    let sent =
        ok(sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": "g"})).await;
    (sent["MessageId"].as_str().unwrap().to_owned(), sent["SequenceNumber"].as_str().unwrap().to_owned())
}

// Multi-thread: PostgreSQL calls step out of the runtime, which a current-thread one cannot do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_keeps_in_flight_messages_receipt_handles_dedup_and_sequence_numbers() {
    for (database, _dir) in tokio::task::block_in_place(databases) {
        let clock = Arc::new(ManualClock::new(T0));
        // The first holder: one message in flight, one waiting, one FIFO message.
        let first = open(&database, &clock);
        let url = create(&first, "work", json!({"VisibilityTimeout": "30"})).await;
        let fifo =
            create(&first, "orders.fifo", json!({"FifoQueue": "true", "ContentBasedDeduplication": "true"}))
                .await;
        ok(&first, "SendMessage", json!({"QueueUrl": url, "MessageBody": "a"})).await;
        ok(&first, "SendMessage", json!({"QueueUrl": url, "MessageBody": "b"})).await;
        let handle = receive(&first, &url, 1).await[0]["ReceiptHandle"].clone();
        let (id1, seq1) = send_fifo(&first, &fifo, "f1").await;
        // Closing ends a long poll at once and refuses calls after.
        let idle = create(&first, "idle", json!({})).await;
        let poll = {
            let first = first.clone();
            let input = json!({"QueueUrl": idle, "WaitTimeSeconds": 20});
            tokio::spawn(async move { ok(&first, "ReceiveMessage", input).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.close().await;
        let polled =
            tokio::time::timeout(Duration::from_secs(2), poll).await.expect("the poll ended").unwrap();
        assert!(polled.get("Messages").is_none(), "{polled}");
        let (status, body, _) = call(&first, "ListQueues", json!({})).await;
        assert_eq!((status, body["__type"].as_str()), (503, Some("com.amazonaws.sqs#ServiceUnavailable")));
        first.close().await;

        // The next holder sees the message still in flight, until its deadline.
        let second = open(&database, &clock);
        let got = receive(&second, &url, 10).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["Body"], "b");
        clock.advance_ms(29_000);
        assert!(receive(&second, &url, 10).await.is_empty(), "a is still hidden");
        // The handle issued before the takeover still names it (a stale one would delete nothing).
        let change = json!({"QueueUrl": url, "ReceiptHandle": handle, "VisibilityTimeout": 60});
        ok(&second, "ChangeMessageVisibility", change).await;
        ok(&second, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": handle})).await;
        assert_eq!(count(&second, &url, "ApproximateNumberOfMessagesNotVisible").await, "1");
        assert_eq!(count(&second, &url, "ApproximateNumberOfMessages").await, "0");
        // FIFO deduplication and sequence numbers carry on.
        assert_eq!(send_fifo(&second, &fifo, "f1").await, (id1, seq1.clone()));
        let (_, seq2) = send_fifo(&second, &fifo, "f2").await;
        assert!(seq2 > seq1);
        for message in receive(&second, &fifo, 10).await {
            ok(
                &second,
                "DeleteMessage",
                json!({"QueueUrl": fifo, "ReceiptHandle": message["ReceiptHandle"]}),
            )
            .await;
        }
        clock.advance_ms(5 * 60 * 1000);
        second.sweep().await;
        second.close().await;

        // Even with the newest messages and their deduplication entries gone, numbers never go back.
        let third = open(&database, &clock);
        let (_, seq3) = send_fifo(&third, &fifo, "f3").await;
        assert!(seq3 > seq2, "{seq3} after {seq2}");
        third.close().await;
    }
}

#[tokio::test]
async fn the_old_entry_point_and_the_storage_layer_share_one_file() {
    let data = tempfile::tempdir().unwrap();
    let old = Sqs::open(&data.path().join("sqs"), "us-east-1", "000000000000").unwrap();
    let url = create(&old, "kept", json!({})).await;
    ok(&old, "SendMessage", json!({"QueueUrl": url, "MessageBody": "m"})).await;
    old.close().await;
    assert!(data.path().join("sqs/sqs.db").exists());
    let new = Sqs::open(&Database::sqlite(data.path()), "us-east-1", "000000000000").unwrap();
    assert_eq!(receive(&new, &url, 1).await[0]["Body"], "m");
    new.close().await;
}
