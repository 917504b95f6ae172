//! The scheduler and state machine over a fake capacity: instances run at once, a job's
//! "process" ends with the exit code its command names (`exit N`), or at a signal (`hang`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nimbus_api::clock::SystemClock;
use nimbus_api::Identity;
use nimbus_store::Database;
use serde_json::{json, Value};

use crate::{
    Batch, Capacity, ExecFuture, Exit, Host, HostRequest, HostState, HostType, JobExec, JobProcess, Nothing,
};

#[derive(Default)]
pub(crate) struct Fake {
    launched: AtomicUsize,
    /// Each process's variables, in the order they started.
    pub(crate) started: std::sync::Mutex<Vec<Vec<(String, String)>>>,
}

/// A network whose members get 10.0.0.1, 10.0.0.2 …
struct FakeNetwork(AtomicUsize);

impl crate::NodeNetwork for FakeNetwork {
    fn join(&self, _: &str) -> Result<String, String> {
        Ok(format!("10.0.0.{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

impl Capacity for Fake {
    fn catalog(&self) -> Vec<HostType> {
        vec![HostType {
            name: "c6i.large".into(),
            family: "c6i".into(),
            vcpus: 2,
            memory_mib: 4096,
            arch: "x86_64".into(),
            price: 0.085,
            spot_price: Some(0.03),
            bare_metal: false,
        }]
    }

    fn launch(&self, _: &HostRequest) -> Result<Host, String> {
        let n = self.launched.fetch_add(1, Ordering::SeqCst);
        let (_sender, state) = tokio::sync::watch::channel(HostState::Running);
        std::mem::forget(_sender);
        Ok(Host { instance_id: format!("i-{n:017x}"), state })
    }

    fn exec<'a>(&'a self, _: &'a str, exec: JobExec) -> ExecFuture<'a> {
        Box::pin(async move {
            let script = exec.args.last().cloned().unwrap_or_default();
            let (_lines_tx, lines) = tokio::sync::mpsc::channel(1);
            let (exit_tx, exit) = tokio::sync::oneshot::channel();
            let attempt: u32 = exec
                .env
                .iter()
                .find(|(k, _)| k == "AWS_BATCH_JOB_ATTEMPT")
                .map_or(1, |(_, v)| v.parse().unwrap_or(1));
            // `exit N`, `exit N then 0` (N on the first attempt only), or `hang`.
            let code = match script.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["exit", n] => Some(n.parse().unwrap_or(1)),
                ["exit", n, "then", m] => {
                    Some(if attempt == 1 { n.parse().unwrap_or(1) } else { m.parse().unwrap_or(0) })
                }
                _ => None,
            };
            self.started.lock().unwrap().push(exec.env.clone());
            let exit_tx = std::sync::Mutex::new(Some(exit_tx));
            if let Some(code) = code {
                let _ = exit_tx.lock().unwrap().take().unwrap().send(Exit {
                    code: Some(code),
                    signal: None,
                    oom: false,
                });
            }
            drop(_lines_tx);
            let signal = Box::new(move |signal: i32| {
                if let Some(exit) = exit_tx.lock().unwrap().take() {
                    let _ = exit.send(Exit { code: None, signal: Some(signal), oom: false });
                }
            });
            Ok(JobProcess { lines, exit, signal })
        })
    }

    fn terminate(&self, _: &str) {}

    fn node_network(&self) -> Result<Box<dyn crate::NodeNetwork>, String> {
        Ok(Box::new(FakeNetwork(AtomicUsize::new(0))))
    }
}

pub(crate) fn open(dir: &std::path::Path, capacity: Arc<Fake>) -> Arc<Batch> {
    let options = crate::Options {
        data_dir: dir.join("batch"),
        idle_seconds: 300,
        leader: None,
        lease_ms: 0,
        announce: None,
        images: None,
        slurm: Default::default(),
    };
    Batch::open(
        &Database::sqlite(dir),
        Identity::default(),
        Arc::new(SystemClock),
        capacity,
        Arc::new(Nothing),
        Arc::new(Nothing),
        options,
    )
    .unwrap()
}

pub(crate) fn call(batch: &Batch, op: &str, input: Value) -> Value {
    tokio::task::block_in_place(|| batch.dispatch(op, "us-east-1", &input))
        .unwrap_or_else(|e| panic!("{op}: {}", e.message))
}

pub(crate) async fn setup(batch: &Batch) {
    call(
        batch,
        "createcomputeenvironment",
        json!({"computeEnvironmentName": "ce", "type": "MANAGED",
        "computeResources": {"type": "EC2", "maxvCpus": 8, "instanceTypes": ["c6i"]}}),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    call(
        batch,
        "createjobqueue",
        json!({"jobQueueName": "q", "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}]}),
    );
    call(
        batch,
        "registerjobdefinition",
        json!({"jobDefinitionName": "d", "type": "container",
        "containerProperties": {"image": "nimbus/host", "command": ["sh", "-c", "exit 0"], "vcpus": 1, "memory": 128}}),
    );
}

fn submit(batch: &Batch, script: &str, extra: Value) -> String {
    let mut input = json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "d",
        "containerOverrides": {"command": ["sh", "-c", script]}});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        input[key] = value;
    }
    call(batch, "submitjob", input)["jobId"].as_str().unwrap().to_owned()
}

pub(crate) async fn settled(batch: &Batch, id: &str, wanted: &[&str]) -> Value {
    let mut job = Value::Null;
    for _ in 0..400 {
        job = call(batch, "describejobs", json!({"jobs": [id]}))["jobs"][0].clone();
        if wanted.contains(&job["status"].as_str().unwrap_or_default()) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {wanted:?}: {job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_arrays_and_retries_follow_aws() {
    let dir = tempfile::tempdir().unwrap();
    let batch = open(dir.path(), Arc::new(Fake::default()));
    setup(&batch).await;
    let failed = submit(&batch, "exit 2", json!({}));
    let after = submit(&batch, "exit 0", json!({"dependsOn": [{"jobId": failed}]}));
    let done = settled(&batch, &after, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["statusReason"], "Dependent Job failed");
    let retried = submit(&batch, "exit 3 then 0", json!({"retryStrategy": {"attempts": 2}}));
    let done = settled(&batch, &retried, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 2);
    let array = submit(
        &batch,
        "exit 0",
        json!({"arrayProperties": {"size": 3}, "dependsOn": [{"type": "SEQUENTIAL"}]}),
    );
    let done = settled(&batch, &array, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["arrayProperties"]["statusSummary"]["SUCCEEDED"], 3);
    let children = call(&batch, "listjobs", json!({"arrayJobId": array, "jobStatus": "SUCCEEDED"}));
    assert_eq!(children["jobSummaryList"].as_array().unwrap().len(), 3);
    let broken = submit(
        &batch,
        "exit 0",
        json!({"arrayProperties": {"size": 3}, "dependsOn": [{"type": "SEQUENTIAL"}],
        "containerOverrides": {"command": ["sh", "-c", "exit 1"]}}),
    );
    let done = settled(&batch, &broken, &["FAILED", "SUCCEEDED"]).await;
    assert_eq!(done["status"], "FAILED");
    let last = settled(&batch, &format!("{broken}:2"), &["FAILED"]).await;
    assert_eq!(last["statusReason"], "Dependent Job failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finds_running_jobs_dead_and_retries_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), Arc::new(Fake::default()));
    setup(&first).await;
    let id = submit(&first, "hang", json!({"retryStrategy": {"attempts": 2}}));
    settled(&first, &id, &["RUNNING"]).await;
    first.shutdown();
    drop(first);
    assert!(Batch::has_work(&Database::sqlite(dir.path())));
    // The second life runs the same command, which still hangs: the job is RUNNING again on
    // its second attempt, the first found dead.
    let second = open(dir.path(), Arc::new(Fake::default()));
    for _ in 0..400 {
        let job = call(&second, "describejobs", json!({"jobs": [id]}))["jobs"][0].clone();
        if job["attempts"].as_array().is_some_and(|a| !a.is_empty()) && job["status"] == "RUNNING" {
            let reason = job["attempts"][0]["statusReason"].as_str().unwrap().to_owned();
            assert!(
                reason.starts_with("Host EC2 (instance i-") && reason.ends_with(") terminated."),
                "{reason}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not retried");
}
