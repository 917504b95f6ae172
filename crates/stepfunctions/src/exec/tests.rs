//! The interpreter on a virtual clock with scripted services: retry timing, catch, timeouts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::clock::VirtualClock;
use nimbus_api::Identity;
use nimbus_store::Database;
use serde_json::{json, Value};

use super::{Engine, Start};
use crate::{BoxFuture, CallError, Invoked, Options, Services};

/// Invocations answer from a script, one entry per call (`None`: never answer); each call's
/// time on the clock is kept.
struct Scripted {
    clock: Arc<VirtualClock>,
    script: Mutex<Vec<Option<Result<Value, String>>>>,
    calls: Mutex<Vec<i64>>,
}

impl Services for Scripted {
    fn invoke<'a>(
        &'a self,
        _region: &'a str,
        _function: &'a str,
        _qualifier: Option<&'a str>,
        _payload: Vec<u8>,
        _asynchronous: bool,
    ) -> BoxFuture<'a, Result<Invoked, CallError>> {
        use nimbus_api::clock::Clock;
        self.calls.lock().unwrap().push(self.clock.now_ms());
        let next = self.script.lock().unwrap().remove(0);
        Box::pin(async move {
            let Some(answer) = next else { return std::future::pending().await };
            let (payload, function_error) = match answer {
                Ok(value) => (value.to_string(), None),
                Err(kind) => (
                    json!({"errorType": kind, "errorMessage": "scripted"}).to_string(),
                    Some("Unhandled".into()),
                ),
            };
            Ok(Invoked {
                status: 200,
                payload: payload.into_bytes(),
                function_error,
                executed_version: "$LATEST".into(),
            })
        })
    }

    fn call<'a>(
        &'a self,
        _: &'a str,
        service: &'a str,
        _: &'a str,
        _: Value,
    ) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(
            async move { Err(CallError::new("ResourceNotFoundException", format!("no {service} here"))) },
        )
    }
}

struct Setup {
    engine: Arc<Engine>,
    clock: Arc<VirtualClock>,
    services: Arc<Scripted>,
    _dir: tempfile::TempDir,
}

/// A Batch whose jobs end as told: `fail` makes every job FAILED with a reason.
struct FakeBatch {
    fail: bool,
}

impl crate::BatchJobs for FakeBatch {
    fn submit<'a>(&'a self, _region: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>> {
        Box::pin(async move { Ok(json!({"jobId": "job-1", "jobName": params["JobName"]})) })
    }

    fn watch<'a>(&'a self, _region: &'a str, job_id: &'a str) -> BoxFuture<'a, Result<Value, CallError>> {
        let (status, reason) =
            if self.fail { ("FAILED", "Essential container in task exited") } else { ("SUCCEEDED", "") };
        Box::pin(async move { Ok(json!({"jobId": job_id, "status": status, "statusReason": reason})) })
    }
}

fn setup(script: Vec<Option<Result<Value, String>>>) -> Setup {
    setup_with(script, None)
}

fn setup_with(script: Vec<Option<Result<Value, String>>>, batch: Option<Arc<dyn crate::BatchJobs>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::sqlite(dir.path()).open(&crate::SCHEMA).unwrap();
    let clock = Arc::new(VirtualClock::default());
    let services =
        Arc::new(Scripted { clock: clock.clone(), script: Mutex::new(script), calls: Mutex::default() });
    let options = Options {
        identity: Identity::default(),
        clock: clock.clone(),
        services: services.clone(),
        batch,
        cluster: None,
        node: "local".into(),
    };
    Setup { engine: Engine::new(db, options), clock, services, _dir: dir }
}

fn start(setup: &Setup, definition: Value) -> tokio::sync::oneshot::Receiver<Value> {
    let machine = json!({
        "stateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:m",
        "name": "m", "type": "STANDARD", "definition": definition.to_string(), "roleArn": "arn:aws:iam::000000000000:role/r",
    });
    let start = Start {
        machine_arn: machine["stateMachineArn"].as_str().unwrap().to_owned(),
        machine,
        name: uuid::Uuid::new_v4().to_string(),
        input: json!({"in": 1}),
        region: "us-east-1".into(),
    };
    setup.engine.start(start).unwrap().done.unwrap()
}

async fn calls(setup: &Setup, n: usize) {
    for _ in 0..500 {
        if setup.services.calls.lock().unwrap().len() >= n {
            // Let the failure reach its retry's sleep.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} calls");
}

const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_on_the_clock_then_catch() {
    let setup = setup(vec![Some(Err("Flaky".into())), Some(Err("Flaky".into())), Some(Err("Flaky".into()))]);
    let definition = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FUNCTION,
              "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 10, "BackoffRate": 3, "MaxAttempts": 2}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
              "End": true},
        "Caught": {"Type": "Pass", "End": true}}});
    let done = start(&setup, definition);
    calls(&setup, 1).await;
    setup.clock.advance_ms(9_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(setup.services.calls.lock().unwrap().len(), 1, "the first retry waits 10 s");
    setup.clock.advance_ms(1_000);
    calls(&setup, 2).await;
    setup.clock.advance_ms(30_000);
    let doc = tokio::time::timeout(Duration::from_secs(5), done).await.unwrap().unwrap();
    let times = setup.services.calls.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0] + 500) / 1000).collect();
    assert_eq!(gaps, vec![10, 30]);
    assert_eq!(doc["status"], "SUCCEEDED");
    let output: Value = serde_json::from_str(doc["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["in"], 1);
    assert_eq!(output["error"]["Error"], "Flaky");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_timeout_fails_with_states_timeout() {
    let setup = setup(vec![None]);
    let definition = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FUNCTION, "TimeoutSeconds": 5, "End": true}}});
    let done = start(&setup, definition);
    calls(&setup, 1).await;
    setup.clock.advance_ms(5_000);
    let doc = tokio::time::timeout(Duration::from_secs(5), done).await.unwrap().unwrap();
    assert_eq!(doc["status"], "FAILED");
    assert_eq!(doc["error"], "States.Timeout");
    let events = setup.engine.db.query("SELECT doc FROM events ORDER BY id", &[]).unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.get::<String>(0).unwrap()).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionTimedOut",
            "ExecutionFailed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_timeout_and_service_errors() {
    let setup = setup(vec![None]);
    let definition = json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let done = start(&setup, definition);
    tokio::time::sleep(Duration::from_millis(30)).await;
    setup.clock.advance_ms(60_000);
    let doc = tokio::time::timeout(Duration::from_secs(5), done).await.unwrap().unwrap();
    assert_eq!(doc["status"], "TIMED_OUT");
    let definition = json!({"StartAt": "Q", "States": {"Q": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"a": 1}}, "End": true}}});
    let doc = tokio::time::timeout(Duration::from_secs(5), start(&setup, definition)).await.unwrap().unwrap();
    assert_eq!(doc["error"], "SQS.ResourceNotFoundException");
}

#[test]
fn retry_delays_follow_backoff_cap_and_jitter() {
    use super::flow::retry_delay;
    let retriers = vec![
        json!({"ErrorEquals": ["A"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 4, "MaxDelaySeconds": 5}),
        json!({"ErrorEquals": ["States.ALL"], "JitterStrategy": "FULL"}),
    ];
    let mut counts = vec![0, 0];
    let delays: Vec<Option<i64>> = (0..5).map(|_| retry_delay(&retriers, &mut counts, "A")).collect();
    assert_eq!(delays, [Some(2000), Some(4000), Some(5000), Some(5000), None]);
    for _ in 0..3 {
        let jittered = retry_delay(&retriers, &mut counts, "B").unwrap();
        assert!((0..=4000).contains(&jittered));
    }
    assert_eq!(retry_delay(&retriers, &mut counts, "B"), None, "MaxAttempts defaults to 3");
    assert_eq!(
        retry_delay(&retriers, &mut counts, "States.Runtime"),
        None,
        "States.ALL does not retry States.Runtime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_submit_job_sync_waits_for_the_job_and_fails_with_its_reason() {
    let definition = json!({"StartAt": "Job", "States": {"Job": {"Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": "nightly", "JobQueue": "q", "JobDefinition": "d"}, "End": true}}});
    let succeeding = setup_with(vec![], Some(Arc::new(FakeBatch { fail: false })));
    let doc = tokio::time::timeout(Duration::from_secs(5), start(&succeeding, definition.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc["status"], "SUCCEEDED");
    let output: Value = serde_json::from_str(doc["output"].as_str().unwrap()).unwrap();
    assert_eq!((output["jobId"].as_str(), output["status"].as_str()), (Some("job-1"), Some("SUCCEEDED")));
    let failing = setup_with(vec![], Some(Arc::new(FakeBatch { fail: true })));
    let doc = tokio::time::timeout(Duration::from_secs(5), start(&failing, definition.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc["error"], "States.TaskFailed");
    assert!(doc["cause"].as_str().unwrap().contains("Essential container in task exited"));
    let without = setup(vec![]);
    let doc =
        tokio::time::timeout(Duration::from_secs(5), start(&without, definition)).await.unwrap().unwrap();
    assert_eq!(doc["error"], "States.Runtime");
    assert!(doc["cause"].as_str().unwrap().contains("AWS Batch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_past_25000_events_fails_the_execution() {
    let setup = setup(vec![]);
    let definition = json!({"StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Parameters": {"in.$": "States.MathAdd($.in, 1)"}, "Next": "Again"},
        "Again": {"Type": "Choice", "Choices": [{"Variable": "$.in", "NumericLessThan": 1000000, "Next": "Count"}],
                  "Default": "Done"},
        "Done": {"Type": "Succeed"}}});
    let doc =
        tokio::time::timeout(Duration::from_secs(60), start(&setup, definition)).await.unwrap().unwrap();
    assert_eq!(doc["status"], "FAILED");
    assert_eq!(doc["error"], "States.Runtime");
    assert!(doc["cause"].as_str().unwrap().contains("25000"));
    let count = setup.engine.db.query_opt("SELECT COUNT(*) FROM events", &[]).unwrap().unwrap();
    assert!((25_001..=25_003).contains(&count.get::<i64>(0).unwrap()));
}
