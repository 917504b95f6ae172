//! AWS Batch (REST-JSON, `2016-08-10`): compute environments that launch real instances
//! through EC2 (on demand or spot), job queues, job definitions and jobs that run as processes
//! inside those instances, with arrays, dependencies, retries, timeouts, spot interruptions and
//! a checkpoint directory that survives attempts.
//!
//! State lives in the storage layer; the scheduler ([`scheduler`]) is woken by events (a
//! submission, a process ending, an instance changing) and runs on one node at a time.

mod capacity;
mod compute;
#[cfg(test)]
mod flow_tests;
mod hosts;
mod image;
mod jobdefs;
mod jobs;
mod limits;
mod model;
mod multinode;
#[cfg(test)]
mod multinode_tests;
mod placement;
pub mod provider;
mod queues;
mod retry;
mod run;
mod scheduler;
mod slurm;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::clock::Clock;
use nimbus_api::{json_response, ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_store::Database;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

pub use crate::capacity::{
    Capacity, ExecFuture, Exit, Host, HostRequest, HostState, HostType, JobEvents, JobExec, JobImage,
    JobImages, JobLogs, JobProcess, NodeNetwork, Nothing, Ulimit,
};
pub use crate::slurm::{SlurmSettings, TAG as SLURM_TAG};
use crate::store::Store;
pub use crate::store::SCHEMA;

/// nimbus's own paths: `GET /_nimbus/batch/jobs` (what `nimbus jobs` shows) and
/// `GET /_nimbus/batch/array?job=<id>` (an array job's children's statuses, one letter each by
/// index, for the console's grid).
pub const ADMIN_PREFIX: &str = "/_nimbus/batch/";

/// How Batch runs here.
#[derive(Clone)]
pub struct Options {
    /// Checkpoint directories live under here.
    pub data_dir: PathBuf,
    /// Seconds (nimbus's clock) an instance stays idle before it is retired (down to
    /// `minvCpus`), unless its compute environment sets `minScaleDownDelayMinutes`.
    pub idle_seconds: u64,
    /// Whether this node places jobs now (takes or renews the scheduler's lease on PostgreSQL);
    /// None: always.
    pub leader: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// The lease's lifetime (ms): turns renew it three times within it.
    pub lease_ms: i64,
    /// Tells the other nodes that jobs changed (their scheduler wakes).
    pub announce: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Container images for jobs whose image is not `nimbus/host`; None: those fail to pull.
    pub images: Option<Arc<dyn JobImages>>,
    /// The Slurm cluster UNMANAGED compute environments may be bound to.
    pub slurm: SlurmSettings,
}

pub struct Batch {
    store: Store,
    identity: Identity,
    clock: Arc<dyn Clock>,
    capacity: Arc<dyn Capacity>,
    logs: Arc<dyn JobLogs>,
    options: Options,
    wake: Arc<Notify>,
    /// The instance types on sale, read once.
    catalog: std::sync::OnceLock<Arc<Vec<HostType>>>,
    /// Instances of this node's scheduler, with what is carved from them.
    hosts: Mutex<HashMap<String, hosts::LiveHost>>,
    /// Jobs whose process runs on this node: a stop request reaches them here.
    running: Mutex<HashMap<String, watch::Sender<Option<run::Stop>>>>,
    /// State-change events on their way to EventBridge, in order (see [`Batch::emit`]).
    outgoing: std::sync::mpsc::SyncSender<(String, Value)>,
    /// nimbus is stopping: attempts cut short now are settled at the next start, not recorded.
    stopping: std::sync::atomic::AtomicBool,
    /// Array parents one of whose children finished since the scheduler last counted them
    /// (None: all, as at start).
    parents_to_count: Mutex<Option<std::collections::HashSet<String>>>,
    /// Passes over PENDING jobs so far.
    passes: std::sync::atomic::AtomicU64,
    /// A job finished since the scheduler last looked at dependencies (set at start).
    finished_since: std::sync::atomic::AtomicBool,
    /// Read-modify-write of environments and queues, one at a time on this node (a request's
    /// change and the scheduler's settling of a status must not overwrite each other).
    docs_lock: Mutex<()>,
    /// Read-modify-write of jobs, one at a time on this node.
    jobs_lock: Mutex<()>,
    /// Jobs of compute environments bound to Slurm.
    slurm: Arc<slurm::Slurm>,
    /// The networks of running multi-node parallel jobs.
    node_nets: multinode::NodeNets,
}

pub(crate) fn client(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ClientException", message.into())
}

impl Batch {
    /// Opens (creating) Batch's tables; jobs left unfinished by a previous run are settled: those
    /// that were running are found dead and retried by their strategy, queued ones run.
    pub fn open(
        database: &Database,
        identity: Identity,
        clock: Arc<dyn Clock>,
        capacity: Arc<dyn Capacity>,
        logs: Arc<dyn JobLogs>,
        events: Arc<dyn JobEvents>,
        options: Options,
    ) -> Result<Arc<Batch>, String> {
        let db = database.open(&SCHEMA).map_err(|e| e.to_string())?;
        let (outgoing, queued) = std::sync::mpsc::sync_channel::<(String, Value)>(4096);
        let sink = events.clone();
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("batch-events".into())
            .spawn(move || {
                // EventBridge may open on the first event, and opening starts its tasks.
                let _entered = runtime.as_ref().map(|r| r.enter());
                for (arn, detail) in queued {
                    sink.put("Batch Job State Change", vec![arn], detail);
                }
            })
            .map_err(|e| e.to_string())?;
        let slurm = Arc::new(slurm::Slurm::new(options.slurm.clone(), &options.data_dir));
        let batch = Arc::new(Batch {
            slurm,
            outgoing,
            store: Store { db },
            identity,
            clock,
            capacity,
            logs,
            options,
            wake: Arc::new(Notify::new()),
            catalog: std::sync::OnceLock::new(),
            hosts: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            jobs_lock: Mutex::new(()),
            docs_lock: Mutex::new(()),
            finished_since: std::sync::atomic::AtomicBool::new(true),
            parents_to_count: Mutex::new(None),
            passes: std::sync::atomic::AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            node_nets: Default::default(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(scheduler::run(Arc::downgrade(&batch)));
        }
        Ok(batch)
    }

    /// Whether Batch has work from the start (unfinished jobs, instances of its own).
    pub fn has_work(database: &Database) -> bool {
        if !database.has_schema(&SCHEMA) {
            return false;
        }
        let Ok(db) = database.open(&SCHEMA) else { return false };
        Store { db }.has_work().unwrap_or(false)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// nimbus is stopping (before EC2 ends the instances): running jobs stay RUNNING in the
    /// store and are found dead, and retried, at the next start — as after a crash.
    pub fn shutdown(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Wakes the scheduler (here, and on the node holding it).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn changed(&self) {
        self.wake();
        if let Some(announce) = &self.options.announce {
            announce();
        }
    }

    fn arn(&self, region: &str, kind: &str, name: &str) -> String {
        format!("arn:aws:batch:{region}:{}:{kind}/{name}", self.identity.account)
    }

    /// SubmitJob for EventBridge rules' and Scheduler's targets: `request` is SubmitJob's input
    /// as the SDKs spell it (`JobName`, `JobDefinition`, `ArrayProperties`, `Parameters` …); the
    /// job goes to `queue` (a queue's ARN). Returns the job's id.
    pub fn submit_from_target(&self, queue: &str, request: &Value) -> Result<String, String> {
        let mut input = camel(request);
        input["jobQueue"] = json!(queue);
        let region = queue.split(':').nth(3).unwrap_or(&self.identity.region).to_owned();
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let submitted = self.submit_job(&region, &input).map_err(|e| format!("{}: {}", e.code, e.message))?;
        Ok(submitted["jobId"].as_str().unwrap_or_default().to_owned())
    }

    /// A job lives in the region it was submitted in: another region's is not found from here.
    fn job_in(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let id = input["jobId"].as_str().unwrap_or_default();
        match self.store.job(id)? {
            Some(job) if job.n.region != region => Err(client(format!("Job {id} does not exist"))),
            _ => Ok(()),
        }
    }

    fn dispatch(&self, op: &str, region: &str, input: &Value) -> Result<Value, AwsError> {
        match op {
            "createcomputeenvironment" => self.create_compute_environment(region, input),
            "describecomputeenvironments" => self.describe_compute_environments(region, input),
            "updatecomputeenvironment" => {
                let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.update_compute_environment(region, input)
            }
            "deletecomputeenvironment" => {
                let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.delete_compute_environment(region, input)
            }
            "createjobqueue" => self.create_job_queue(region, input),
            "describejobqueues" => self.describe_job_queues(region, input),
            "updatejobqueue" => {
                let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.update_job_queue(region, input)
            }
            "deletejobqueue" => {
                let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.delete_job_queue(region, input)
            }
            "createschedulingpolicy" => self.create_scheduling_policy(region, input),
            "describeschedulingpolicies" => self.describe_scheduling_policies(input),
            "listschedulingpolicies" => self.list_scheduling_policies(),
            "updateschedulingpolicy" => self.update_scheduling_policy(input),
            "deleteschedulingpolicy" => self.delete_scheduling_policy(input),
            "registerjobdefinition" => self.register_job_definition(region, input),
            "describejobdefinitions" => self.describe_job_definitions(region, input),
            "deregisterjobdefinition" => self.deregister_job_definition(region, input),
            "submitjob" => {
                let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.submit_job(region, input)
            }
            "describejobs" => self.describe_jobs(input).map(|mut found| {
                let elsewhere =
                    |job: &Value| job["jobArn"].as_str().and_then(|a| a.split(':').nth(3)) != Some(region);
                if let Some(jobs) = found["jobs"].as_array_mut() {
                    jobs.retain(|job| !elsewhere(job));
                }
                found
            }),
            "listjobs" => self.list_jobs(region, input),
            "canceljob" => self.job_in(region, input).and_then(|()| self.cancel_job(input, false)),
            "terminatejob" => self.job_in(region, input).and_then(|()| self.cancel_job(input, true)),
            other => Err(client(format!(
                "nimbus does not implement the Batch operation {other} (see the README's Batch section)"
            ))),
        }
    }

    /// TagResource (POST), UntagResource (DELETE) and ListTagsForResource (GET) on an
    /// environment, queue, definition, scheduling policy or job.
    fn tags(&self, method: &Method, arn: &str, body: &Value, keys: &[String]) -> Result<Value, AwsError> {
        let missing = || client(format!("Resource {arn} does not exist"));
        let kind = match arn.split(':').nth(5).and_then(|r| r.split('/').next()) {
            Some("compute-environment") => Some(compute::KIND),
            Some("job-queue") => Some(queues::KIND),
            Some("job-definition") => Some(jobdefs::KIND),
            Some("scheduling-policy") => Some(queues::POLICY),
            Some("job") => None,
            _ => return Err(missing()),
        };
        let apply = |tags: &mut serde_json::Map<String, Value>| -> Result<(), AwsError> {
            if *method == Method::POST {
                let new = body["tags"].as_object().ok_or_else(|| client("tags is required"))?;
                if tags.len() + new.keys().filter(|k| !tags.contains_key(*k)).count() > 50 {
                    return Err(client("A resource can have at most 50 tags"));
                }
                if new.keys().any(|k| k.starts_with("aws:")) {
                    return Err(client("Tag keys beginning with aws: are reserved"));
                }
                tags.extend(new.clone());
            } else if *method == Method::DELETE {
                keys.iter().for_each(|k| drop(tags.remove(k)));
            }
            Ok(())
        };
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let tags = match kind {
            Some(kind) => {
                let mut doc: Value = self.store.get(kind, arn)?.ok_or_else(missing)?;
                let mut tags = doc["tags"].as_object().cloned().unwrap_or_default();
                apply(&mut tags)?;
                if *method != Method::GET {
                    doc["tags"] = Value::Object(tags.clone());
                    self.store.put(kind, arn, &doc, self.now())?;
                }
                tags
            }
            None => {
                let id = arn.rsplit('/').next().unwrap_or_default();
                let mut job = self.store.job(id)?.filter(|j| j.job_arn == arn).ok_or_else(missing)?;
                let mut tags = job.tags.clone().unwrap_or_default();
                apply(&mut tags)?;
                if *method != Method::GET {
                    job.tags = Some(tags.clone());
                    self.store.save_jobs(&[&job])?;
                }
                tags
            }
        };
        Ok(if *method == Method::GET { json!({ "tags": tags }) } else { json!({}) })
    }

    fn admin(&self, path: &str, job: Option<&str>) -> Result<Value, AwsError> {
        match path {
            "jobs" => self.jobs_overview(),
            "array" => self.array_overview(job.unwrap_or_default()),
            other => Err(AwsError::new(404, "NotFound", format!("{ADMIN_PREFIX}{other} is not served"))),
        }
    }
}

/// An SDK-cased request (`JobName`) as the wire spells it (`jobName`); the keys of
/// `Parameters` and `Tags` are the user's and stay.
fn camel(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let mut chars = key.chars();
                    let name = chars
                        .next()
                        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
                        .unwrap_or_default();
                    let value =
                        if key == "Parameters" || key == "Tags" { value.clone() } else { camel(value) };
                    (name, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel).collect()),
        other => other.clone(),
    }
}

/// The region of a signed request (its credential scope), else nimbus's own; a name that is no
/// AWS region is refused as AWS refuses its signature.
fn region_of(request: &ApiRequest, default: &str) -> Result<String, AwsError> {
    let signed = nimbus_api::scope::scope_of(&request.headers, &request.uri).map(|s| s.region);
    match signed.filter(|r| !r.is_empty()) {
        Some(region) if region != default && !nimbus_api::scope::is_region(&region) => Err(AwsError::new(
            403,
            "InvalidSignatureException",
            format!("Credential should be scoped to a valid region, not '{region}'."),
        )),
        Some(region) => Ok(region),
        None => Ok(default.to_owned()),
    }
}

impl Service for Batch {
    fn name(&self) -> &'static str {
        "batch"
    }

    fn claims(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap) -> bool {
        uri.path().starts_with(ADMIN_PREFIX)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let path = request.uri.path().to_owned();
            if let Some(admin) = path.strip_prefix(ADMIN_PREFIX) {
                let job = request.query("job");
                return match tokio::task::block_in_place(|| self.admin(admin, job.as_deref())) {
                    Ok(value) => json_response(value),
                    Err(error) => error.into_response(Protocol::RestJson),
                };
            }
            let Some(op) = path.strip_prefix("/v1/") else {
                return client(format!("nimbus's Batch serves /v1/<operation>, not {path}"))
                    .into_response(Protocol::RestJson);
            };
            if let Some(arn) = op.strip_prefix("tags/") {
                let arn = nimbus_api::percent_decode(arn);
                let keys: Vec<String> = request
                    .uri
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("tagKeys="))
                    .map(nimbus_api::percent_decode)
                    .collect();
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_else(|_| json!({}));
                let method = request.method.clone();
                return match tokio::task::block_in_place(|| self.tags(&method, &arn, &body, &keys)) {
                    Ok(value) => json_response(value),
                    Err(error) => error.into_response(Protocol::RestJson),
                };
            }
            let op = op.trim_end_matches('/').to_ascii_lowercase();
            let input: Value = if request.body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&request.body) {
                    Ok(value @ Value::Object(_)) => value,
                    _ => {
                        return client("The request body is not a JSON object.")
                            .into_response(Protocol::RestJson)
                    }
                }
            };
            let answer = region_of(&request, &self.identity.region)
                .and_then(|region| tokio::task::block_in_place(|| self.dispatch(&op, &region, &input)));
            match answer {
                Ok(value) => json_response(value),
                Err(error) => error.into_response(Protocol::RestJson),
            }
        })
    }
}
