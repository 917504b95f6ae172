//! SNS driven in process, request by request, with deliveries recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method};
use nimbus_api::{ApiRequest, Service};
use nimbus_store::Database;
use serde_json::Value;

use crate::http::RetryPolicy;
use crate::{Deliver, Failure, MessageAttribute, QueueMessage, Sns};

#[derive(Default)]
struct Recorder {
    queues: Mutex<Vec<(String, QueueMessage)>>,
    functions: Mutex<Vec<(String, Value)>>,
    /// Failures (transient) left for queues named "flaky".
    flaky: std::sync::atomic::AtomicI64,
}

impl Deliver for Recorder {
    fn to_queue(&self, queue_arn: &str, message: QueueMessage) -> Result<(), Failure> {
        if queue_arn.contains("missing") {
            return Err(Failure::permanent("The specified queue does not exist."));
        }
        if queue_arn.contains("flaky") && self.flaky.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(Failure::transient("ServiceUnavailable"));
        }
        self.queues.lock().unwrap().push((queue_arn.to_owned(), message));
        Ok(())
    }

    fn to_function(&self, function_arn: &str, event: Vec<u8>) -> Result<(), Failure> {
        self.functions
            .lock()
            .unwrap()
            .push((function_arn.to_owned(), serde_json::from_slice(&event).unwrap()));
        Ok(())
    }
}

struct Fixture {
    sns: Arc<Sns>,
    recorder: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let database = Database::sqlite(dir.path());
    let sns =
        Sns::open(&database, "us-east-1", "000000000000", "http://localhost:4566", recorder.clone()).unwrap();
    Fixture { sns, recorder, _dir: dir }
}

/// One Query call; (status, body).
async fn call(sns: &Sns, form: &str) -> (u16, String) {
    let request = ApiRequest {
        method: Method::POST,
        uri: "/".parse().unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::from(format!("{form}&Version=2010-03-31")),
        request_id: "rid".into(),
    };
    let response = sns.call(request).await;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|i| i + open.len()).unwrap_or_else(|| panic!("no {open} in {text}"));
    let end = text[start..].find(close).unwrap() + start;
    &text[start..end]
}

const TOPIC: &str = "arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3At";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fans_out_to_queues_and_functions_in_aws_shapes() {
    let f = fixture();
    let (status, body) = call(&f.sns, "Action=CreateTopic&Name=t").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<CreateTopicResult><TopicArn>arn:aws:sns:us-east-1:000000000000:t</TopicArn>"),
        "{body}"
    );
    assert!(body.contains("<RequestId>rid</RequestId>"));
    let queue = "arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Aq";
    let function = "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af";
    call(&f.sns, &format!("Action=Subscribe&TopicArn={TOPIC}&Protocol=sqs&Endpoint={queue}")).await;
    call(&f.sns, &format!("Action=Subscribe&TopicArn={TOPIC}&Protocol=lambda&Endpoint={function}")).await;
    let (status, body) = call(
        &f.sns,
        &format!(
            "Action=Publish&TopicArn={TOPIC}&Message=hi&MessageAttributes.entry.1.Name=n\
             &MessageAttributes.entry.1.Value.DataType=Number&MessageAttributes.entry.1.Value.StringValue=5"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let message_id = between(&body, "<MessageId>", "</MessageId>").to_owned();

    let queues = f.recorder.queues.lock().unwrap().clone();
    assert_eq!(queues.len(), 1);
    let envelope: Value = serde_json::from_str(&queues[0].1.body).unwrap();
    assert_eq!(envelope["MessageId"], message_id.as_str());
    assert_eq!(envelope["Message"], "hi");
    assert_eq!(envelope["MessageAttributes"]["n"], serde_json::json!({"Type": "Number", "Value": "5"}));
    assert!(envelope.get("Subject").is_none());

    let functions = f.recorder.functions.lock().unwrap().clone();
    let record = &functions[0].1["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    assert_eq!(record["Sns"]["Subject"], Value::Null);
    assert_eq!(record["Sns"]["MessageId"], message_id.as_str());
    assert!(record["EventSubscriptionArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:sns:us-east-1:000000000000:t:"));

    let (_, listed) = call(&f.sns, "Action=ListTopics").await;
    assert!(listed.contains(
        "<Topics><member><TopicArn>arn:aws:sns:us-east-1:000000000000:t</TopicArn></member></Topics>"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_query_shaped() {
    let f = fixture();
    let (status, body) = call(&f.sns, &format!("Action=GetTopicAttributes&TopicArn={TOPIC}")).await;
    assert_eq!(status, 404);
    assert!(body.contains("<Code>NotFound</Code><Message>Topic does not exist</Message>"), "{body}");
    let (status, body) = call(&f.sns, "Action=CreatePlatformApplication&Name=x").await;
    assert_eq!(status, 400);
    assert!(body.contains("CreatePlatformApplication"), "{body}");
    let (_, body) = call(&f.sns, "Action=CreateTopic&Name=a%20b").await;
    assert!(body.contains("<Message>Invalid parameter: Topic Name</Message>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_deduplicates_for_five_minutes_and_delivers_once() {
    let f = fixture();
    let (_, body) = call(
        &f.sns,
        "Action=CreateTopic&Name=o.fifo&Attributes.entry.1.key=FifoTopic&Attributes.entry.1.value=true\
        &Attributes.entry.2.key=ContentBasedDeduplication&Attributes.entry.2.value=true",
    )
    .await;
    assert!(body.contains("o.fifo"), "{body}");
    let topic = "arn:aws:sns:us-east-1:000000000000:o.fifo";
    call(&f.sns, "Action=Subscribe&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Ao.fifo&Protocol=sqs&Endpoint=arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Aq.fifo").await;
    let none = BTreeMap::new();
    let first = f.sns.publish(topic, "same", None, &none, Some("g"), None).unwrap();
    let again = f.sns.publish(topic, "same", None, &none, Some("g"), None).unwrap();
    assert_eq!(first, again);
    let other = f.sns.publish(topic, "other", None, &none, Some("g"), None).unwrap();
    assert_ne!(first, other);
    let queues = f.recorder.queues.lock().unwrap().clone();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0].1.group_id.as_deref(), Some("g"));
    assert!(queues[0].1.dedup_id.is_some());
    let error = f.sns.publish(topic, "x", None, &none, None, None).unwrap_err();
    assert_eq!(error.code, "InvalidParameter");
    assert!(f.sns.topic_exists(topic));
    assert!(!f.sns.topic_exists("arn:aws:sns:us-east-1:000000000000:nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_messages_go_to_the_dead_letter_queue_with_raw_attributes() {
    let f = fixture();
    call(&f.sns, "Action=CreateTopic&Name=t").await;
    let (_, body) = call(&f.sns, &format!("Action=Subscribe&TopicArn={TOPIC}&Protocol=sqs\
        &Endpoint=arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Amissing&ReturnSubscriptionArn=true\
        &Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true\
        &Attributes.entry.2.key=RedrivePolicy&Attributes.entry.2.value=%7B%22deadLetterTargetArn%22%3A%22arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Adlq%22%7D")).await;
    assert!(body.contains("<SubscriptionArn>arn:aws:sns"), "{body}");
    let attributes = BTreeMap::from([("k".to_owned(), MessageAttribute::string("v"))]);
    f.sns.publish("arn:aws:sns:us-east-1:000000000000:t", "m", Some("s"), &attributes, None, None).unwrap();
    let queues = f.recorder.queues.lock().unwrap().clone();
    assert_eq!(queues.len(), 1);
    let (dlq, message) = &queues[0];
    assert!(dlq.ends_with(":dlq"));
    assert_eq!(message.body, "m");
    assert_eq!(message.attributes["k"].string.as_deref(), Some("v"));
    assert!(message.attributes["ErrorMessage"].string.as_deref().unwrap().contains("does not exist"));
}

#[test]
fn retry_policy_phases() {
    let policy = RetryPolicy::of(&serde_json::json!({
        "minDelayTarget": 1, "maxDelayTarget": 9, "numRetries": 6, "numNoDelayRetries": 1,
        "numMinDelayRetries": 1, "numMaxDelayRetries": 1, "backoffFunction": "linear"
    }));
    let delays: Vec<f64> = (1..=6).map(|attempt| policy.delay_s(attempt)).collect();
    assert_eq!(delays, vec![0.0, 1.0, 1.0 + 8.0 / 3.0, 1.0 + 16.0 / 3.0, 9.0, 9.0]);
    let default = RetryPolicy::of(&Value::Null);
    assert_eq!((default.num_retries, default.delay_s(1)), (3, 20.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_queue_failures_are_retried_from_the_outbox() {
    let f = fixture();
    f.recorder.flaky.store(2, std::sync::atomic::Ordering::SeqCst);
    call(&f.sns, "Action=CreateTopic&Name=t").await;
    call(&f.sns, &format!("Action=Subscribe&TopicArn={TOPIC}&Protocol=sqs&Endpoint=arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Aflaky")).await;
    let attributes = BTreeMap::from([(
        "b".to_owned(),
        MessageAttribute { data_type: "Binary".into(), string: None, binary: Some(vec![0, 1]) },
    )]);
    f.sns.publish("arn:aws:sns:us-east-1:000000000000:t", "m", None, &attributes, None, None).unwrap();
    assert!(f.recorder.queues.lock().unwrap().is_empty());
    assert_eq!(f.sns.store.pending().unwrap(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.recorder.queues.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "not retried");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let queues = f.recorder.queues.lock().unwrap().clone();
    assert!(queues[0].1.body.contains("\"Message\":\"m\""));
    assert_eq!(f.sns.store.pending().unwrap(), 0);
}
