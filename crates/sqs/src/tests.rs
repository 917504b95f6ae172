//! In-process tests through the `Service` interface: semantics that need a clock (visibility,
//! delays, retention), FIFO order and deduplication, redrive, both protocols and restarts.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::HeaderMap;
use nimbus_api::{ApiRequest, Service};
use serde_json::{json, Value};

use crate::clock::ManualClock;
use crate::Sqs;

pub(crate) const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path) -> (Arc<Sqs>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (Sqs::open_with_clock(dir, "us-east-1", "000000000000", clock.clone()).unwrap(), clock)
}

pub(crate) async fn call(sqs: &Sqs, operation: &str, input: Value) -> (u16, Value, HeaderMap) {
    let mut headers = HeaderMap::new();
    headers.insert("x-amz-target", format!("AmazonSQS.{operation}").parse().unwrap());
    headers.insert("host", "localhost:4566".parse().unwrap());
    let uri: hyper::Uri = "/".parse().unwrap();
    assert!(sqs.claims(&hyper::Method::POST, &uri, &headers));
    let body = input.to_string().into();
    let request = ApiRequest { method: hyper::Method::POST, uri, headers, body, request_id: "r".into() };
    let response = sqs.call(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), headers)
}

pub(crate) async fn ok(sqs: &Sqs, operation: &str, input: Value) -> Value {
    let (status, body, _) = call(sqs, operation, input).await;
    assert_eq!(status, 200, "{operation}: {body}");
    body
}

pub(crate) async fn create(sqs: &Sqs, name: &str, attributes: Value) -> String {
    let body = ok(sqs, "CreateQueue", json!({"QueueName": name, "Attributes": attributes})).await;
    body["QueueUrl"].as_str().unwrap().to_owned()
}

pub(crate) async fn receive(sqs: &Sqs, url: &str, max: u32) -> Vec<Value> {
    let input = json!({"QueueUrl": url, "MaxNumberOfMessages": max, "MessageSystemAttributeNames": ["All"]});
    let body = ok(sqs, "ReceiveMessage", input).await;
    body["Messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn visibility_timeout_expires_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, clock) = open(dir.path());
    let url = create(&sqs, "jobs", json!({"VisibilityTimeout": "30"})).await;
    assert_eq!(url, "http://localhost:4566/000000000000/jobs");
    let sent = ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "hello"})).await;
    assert_eq!(sent["MD5OfMessageBody"], crate::md5::hex(b"hello"));
    let first = receive(&sqs, &url, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["Attributes"]["ApproximateReceiveCount"], "1");
    assert!(receive(&sqs, &url, 10).await.is_empty());
    clock.advance_ms(29_999);
    assert!(receive(&sqs, &url, 10).await.is_empty());
    clock.advance_ms(1);
    let second = receive(&sqs, &url, 10).await;
    assert_eq!(second[0]["Attributes"]["ApproximateReceiveCount"], "2");
    assert_eq!(second[0]["Attributes"]["ApproximateFirstReceiveTimestamp"], T0.to_string());
    // The first receipt handle is stale: deleting with it succeeds but deletes nothing.
    ok(&sqs, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": first[0]["ReceiptHandle"]})).await;
    let attrs = ok(&sqs, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"], "1");
    ok(&sqs, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": second[0]["ReceiptHandle"]})).await;
    clock.advance_ms(60_000);
    assert!(receive(&sqs, &url, 10).await.is_empty());
    let (status, body, _) =
        call(&sqs, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": "garbage"})).await;
    assert_eq!((status, body["__type"].as_str()), (400, Some("com.amazonaws.sqs#ReceiptHandleIsInvalid")));
}

#[tokio::test]
async fn delays_and_change_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, clock) = open(dir.path());
    let url = create(&sqs, "delayed", json!({})).await;
    ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "later", "DelaySeconds": 5})).await;
    let attrs = ok(&sqs, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"], "1");
    assert!(receive(&sqs, &url, 1).await.is_empty());
    clock.advance_ms(5_000);
    let got = receive(&sqs, &url, 1).await;
    let handle = got[0]["ReceiptHandle"].clone();
    ok(
        &sqs,
        "ChangeMessageVisibility",
        json!({"QueueUrl": url, "ReceiptHandle": handle, "VisibilityTimeout": 0}),
    )
    .await;
    let again = receive(&sqs, &url, 1).await;
    assert_eq!(again[0]["Body"], "later");
    let (_, body, _) = call(
        &sqs,
        "ChangeMessageVisibility",
        json!({"QueueUrl": url, "ReceiptHandle": handle, "VisibilityTimeout": 10}),
    )
    .await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#InvalidParameterValue");
}

#[tokio::test]
async fn fifo_orders_per_group_and_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, clock) = open(dir.path());
    let url =
        create(&sqs, "orders.fifo", json!({"FifoQueue": "true", "ContentBasedDeduplication": "true"})).await;
    let mut ids = Vec::new();
    for (group, body) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("b", "b2")] {
        let sent =
            ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": body, "MessageGroupId": group}))
                .await;
        ids.push(sent["MessageId"].as_str().unwrap().to_owned());
        assert_eq!(sent["SequenceNumber"].as_str().unwrap().len(), 20);
    }
    let dup =
        ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "a1", "MessageGroupId": "a"})).await;
    assert_eq!(dup["MessageId"], ids[0].as_str());
    let first = receive(&sqs, &url, 2).await;
    let bodies: Vec<&str> = first.iter().map(|m| m["Body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["a1", "b1"]);
    // Both groups have a message in flight: nothing else comes out.
    assert!(receive(&sqs, &url, 10).await.is_empty());
    ok(&sqs, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": first[0]["ReceiptHandle"]})).await;
    let next: Vec<String> =
        receive(&sqs, &url, 10).await.iter().map(|m| m["Body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(next, ["a2", "a3"]);
    // Without a deduplication id and content-based deduplication: refused.
    let plain = create(&sqs, "plain.fifo", json!({"FifoQueue": "true"})).await;
    let (_, body, headers) =
        call(&sqs, "SendMessage", json!({"QueueUrl": plain, "MessageBody": "x", "MessageGroupId": "g"}))
            .await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#InvalidParameterValue");
    assert_eq!(headers["x-amzn-query-error"], "InvalidParameterValue;Sender");
    // The window is five minutes.
    let explicit =
        json!({"QueueUrl": plain, "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"});
    let one = ok(&sqs, "SendMessage", explicit.clone()).await;
    assert_eq!(ok(&sqs, "SendMessage", explicit.clone()).await["MessageId"], one["MessageId"]);
    clock.advance_ms(5 * 60 * 1000);
    assert_ne!(ok(&sqs, "SendMessage", explicit).await["MessageId"], one["MessageId"]);
}

#[tokio::test]
async fn redrive_moves_on_the_receive_that_exceeds_max_receive_count() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, clock) = open(dir.path());
    let dlq = create(&sqs, "dead", json!({})).await;
    let dlq_arn = "arn:aws:sqs:us-east-1:000000000000:dead";
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string();
    let url = create(&sqs, "work", json!({"RedrivePolicy": policy, "VisibilityTimeout": "1"})).await;
    ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "poison"})).await;
    for _ in 0..2 {
        assert_eq!(receive(&sqs, &url, 1).await.len(), 1);
        clock.advance_ms(1_000);
    }
    assert!(receive(&sqs, &url, 1).await.is_empty());
    let dead = receive(&sqs, &dlq, 1).await;
    assert_eq!(dead[0]["Body"], "poison");
    assert_eq!(dead[0]["Attributes"]["DeadLetterQueueSourceArn"], "arn:aws:sqs:us-east-1:000000000000:work");
    let sources = ok(&sqs, "ListDeadLetterSourceQueues", json!({"QueueUrl": dlq})).await;
    assert_eq!(sources["queueUrls"], json!([url]));
    let missing =
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:nope", "maxReceiveCount": 1});
    let (_, body, _) = call(
        &sqs,
        "SetQueueAttributes",
        json!({"QueueUrl": url, "Attributes": {"RedrivePolicy": missing.to_string()}}),
    )
    .await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#InvalidParameterValue");
}

#[tokio::test]
async fn errors_carry_query_codes_and_batches_validate() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, _) = open(dir.path());
    let (status, body, headers) = call(&sqs, "GetQueueUrl", json!({"QueueName": "nope"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(headers["x-amzn-query-error"], "AWS.SimpleQueueService.NonExistentQueue;Sender");
    let url = create(&sqs, "b", json!({"VisibilityTimeout": "10"})).await;
    assert_eq!(create(&sqs, "b", json!({"VisibilityTimeout": "10"})).await, url);
    let (_, body, headers) =
        call(&sqs, "CreateQueue", json!({"QueueName": "b", "Attributes": {"VisibilityTimeout": "11"}})).await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#QueueNameExists");
    assert_eq!(headers["x-amzn-query-error"], "QueueAlreadyExists;Sender");
    let entries: Vec<Value> = (0..11).map(|i| json!({"Id": format!("m{i}"), "MessageBody": "x"})).collect();
    let (_, body, _) = call(&sqs, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#TooManyEntriesInBatchRequest");
    let entries = json!([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]);
    let (_, body, _) = call(&sqs, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#BatchEntryIdsNotDistinct");
    let big = "x".repeat(1_048_577);
    let entries = json!([{"Id": "ok", "MessageBody": "fine"}, {"Id": "big", "MessageBody": big}]);
    let (status, body, _) =
        call(&sqs, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
    assert_eq!((status, body["__type"].as_str()), (400, Some("com.amazonaws.sqs#BatchRequestTooLong")));
    let (_, body, _) =
        call(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "x".repeat(1_048_577)})).await;
    assert_eq!(
        body["message"],
        "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes."
    );
    let (_, body, _) = call(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "bad \u{1}"})).await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#InvalidMessageContents");
    let (_, body, _) =
        call(&sqs, "ReceiveMessage", json!({"QueueUrl": url, "MaxNumberOfMessages": 11})).await;
    assert_eq!(body["__type"], "com.amazonaws.sqs#InvalidParameterValue");
    ok(&sqs, "PurgeQueue", json!({"QueueUrl": url})).await;
    let (status, body, _) = call(&sqs, "PurgeQueue", json!({"QueueUrl": url})).await;
    assert_eq!((status, body["__type"].as_str()), (403, Some("com.amazonaws.sqs#PurgeQueueInProgress")));
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = {
        let (sqs, _) = open(dir.path());
        let url = create(&sqs, "durable", json!({"VisibilityTimeout": "30"})).await;
        let attributes = json!({"k": {"DataType": "String", "StringValue": "v"}});
        ok(
            &sqs,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "a", "MessageAttributes": attributes}),
        )
        .await;
        ok(&sqs, "SendMessage", json!({"QueueUrl": url, "MessageBody": "b"})).await;
        assert_eq!(receive(&sqs, &url, 1).await[0]["Body"], "a");
        url
    };
    let (sqs, clock) = open(dir.path());
    let got = receive(&sqs, &url, 10).await;
    assert_eq!(got.len(), 1, "the in-flight message stays hidden across the restart");
    assert_eq!(got[0]["Body"], "b");
    clock.advance_ms(30_000);
    let input = json!({"QueueUrl": url, "MessageAttributeNames": ["All"], "AttributeNames": ["ApproximateReceiveCount"]});
    let again = ok(&sqs, "ReceiveMessage", input).await;
    let message = &again["Messages"][0];
    assert_eq!(message["Body"], "a");
    assert_eq!(message["Attributes"]["ApproximateReceiveCount"], "2");
    assert_eq!(message["MessageAttributes"]["k"]["StringValue"], "v");
}

#[tokio::test]
async fn long_poll_wakes_on_send_and_rust_api_gives_lambda_records() {
    let dir = tempfile::tempdir().unwrap();
    let sqs = Sqs::open(dir.path(), "us-east-1", "000000000000").unwrap();
    create(&sqs, "events", json!({})).await;
    let arn = "arn:aws:sqs:us-east-1:000000000000:events";
    let receiver = {
        let sqs = sqs.clone();
        tokio::spawn(async move { sqs.receive(arn, 10, Duration::from_secs(10), None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let attributes = std::collections::BTreeMap::from([(
        "color".to_string(),
        crate::AttributeValue { data_type: "String".into(), string: Some("red".into()), binary: None },
    )]);
    let id = sqs.send(arn, "hi".into(), attributes).await.unwrap();
    let got = receiver.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let record = got[0].to_lambda_record();
    assert_eq!(record["messageId"], id.as_str());
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(record["eventSourceARN"], arn);
    assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(record["messageAttributes"]["color"]["stringValue"], "red");
    assert_eq!(record["messageAttributes"]["color"]["stringListValues"], json!([]));
    assert_eq!(record["md5OfBody"], crate::md5::hex(b"hi"));
    sqs.change_visibility(arn, &got[0].receipt_handle, Duration::ZERO).await.unwrap();
    let again = sqs.receive(arn, 1, Duration::ZERO, None).await.unwrap();
    sqs.delete(arn, &again[0].receipt_handle).await.unwrap();
    assert_eq!(sqs.queue_attributes(arn).unwrap().visible_messages, 0);
    assert_eq!(
        sqs.send(&arn.replace("events", "none"), "x".into(), Default::default()).await.unwrap_err().shape,
        "QueueDoesNotExist"
    );
}

#[tokio::test]
async fn query_protocol_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (sqs, _) = open(dir.path());
    let post = |path: &str, body: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:4566".parse().unwrap());
        headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        let uri: hyper::Uri = path.parse().unwrap();
        assert!(!sqs.claims(&hyper::Method::POST, &uri, &headers));
        assert!(sqs.claims_body(&hyper::Method::POST, &uri, &headers, body.as_bytes()));
        ApiRequest {
            method: hyper::Method::POST,
            uri,
            headers,
            body: body.to_owned().into(),
            request_id: "rid".into(),
        }
    };
    let text = |response: nimbus_api::ApiResponse| async move {
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    };
    let create =
        "Action=CreateQueue&Version=2012-11-05&QueueName=q&Attribute.1.Name=DelaySeconds&Attribute.1.Value=0";
    let (status, body) = text(sqs.call(post("/", create)).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<QueueUrl>http://localhost:4566/000000000000/q</QueueUrl>"));
    let send = "Action=SendMessage&Version=2012-11-05&MessageBody=hi+there";
    let (_, body) = text(sqs.call(post("/000000000000/q", send)).await).await;
    assert!(body.contains("<SendMessageResponse"), "{body}");
    let receive = "Action=ReceiveMessage&Version=2012-11-05&AttributeName.1=All";
    let (_, body) = text(sqs.call(post("/000000000000/q", receive)).await).await;
    assert!(body.contains("<Body>hi there</Body>"), "{body}");
    assert!(body.contains("<Name>ApproximateReceiveCount</Name><Value>1</Value>"), "{body}");
    let missing = "Action=GetQueueUrl&Version=2012-11-05&QueueName=none";
    let (status, body) = text(sqs.call(post("/", missing)).await).await;
    assert_eq!(status, 400);
    assert!(body.contains("<Code>AWS.SimpleQueueService.NonExistentQueue</Code>"), "{body}");
}
