//! What Batch needs from the engines beneath it, as small traits the integrator implements:
//! instances to place jobs on (EC2), a place for jobs' output (CloudWatch Logs) and for their
//! state changes (EventBridge). Batch imports no other service.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

/// An instance type Batch may launch.
#[derive(Debug, Clone)]
pub struct HostType {
    pub name: String,
    pub family: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub arch: String,
    /// On-demand USD per hour.
    pub price: f64,
    /// Spot USD per hour now; None when the type is not sold as spot.
    pub spot_price: Option<f64>,
    pub bare_metal: bool,
}

/// What Batch asks for: a named type, on demand or spot.
#[derive(Debug, Clone)]
pub struct HostRequest {
    pub instance_type: String,
    pub spot: bool,
    pub tags: Vec<(String, String)>,
    pub region: String,
}

/// The life of a launched instance, as Batch hears it.
#[derive(Debug, Clone, PartialEq)]
pub enum HostState {
    Pending,
    Running,
    /// The two-minute notice of a spot interruption.
    Interrupting,
    /// Gone (terminated, stopped, interrupted), with EC2's state reason code.
    Ended(String),
}

pub struct Host {
    pub instance_id: String,
    pub state: watch::Receiver<HostState>,
}

/// A job's process inside an instance.
#[derive(Debug, Clone, Default)]
pub struct JobExec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The job's own limits (its definition's vCPUs and MiB).
    pub vcpus: f64,
    pub memory_mib: u64,
    /// (host path, path inside, writable).
    pub mounts: Vec<(String, String, bool)>,
    /// A container image's root file system, the job's `/` (None: the host's, `nimbus/host`).
    pub image_root: Option<std::path::PathBuf>,
    /// The working directory inside (None: `/`).
    pub cwd: Option<String>,
    /// The user and group the process runs as (None: nimbus's sandbox user).
    pub user: Option<(u32, u32)>,
    /// Resource limits (setrlimit) from the job definition's `ulimits`.
    pub ulimits: Vec<Ulimit>,
}

/// One of a job definition's `ulimits`, named as ECS and prlimit(1) name them (`nofile`,
/// `nproc`, `core`, `stack`, `memlock` …), in their units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub oom: bool,
}

pub struct JobProcess {
    /// Output lines (stdout and stderr), closed when both end.
    pub lines: mpsc::Receiver<String>,
    pub exit: oneshot::Receiver<Exit>,
    /// Sends a signal (15: SIGTERM, 9: SIGKILL) to the process.
    pub signal: Box<dyn Fn(i32) + Send + Sync>,
}

pub type ExecFuture<'a> = Pin<Box<dyn Future<Output = Result<JobProcess, String>> + Send + 'a>>;

pub trait Capacity: Send + Sync + 'static {
    /// The instance types on sale.
    fn catalog(&self) -> Vec<HostType>;
    /// Launches one instance (stored pending when this returns).
    fn launch(&self, request: &HostRequest) -> Result<Host, String>;
    /// Starts a job's process in a running instance.
    fn exec<'a>(&'a self, instance_id: &'a str, exec: JobExec) -> ExecFuture<'a>;
    /// Terminates an instance (ignores one already gone).
    fn terminate(&self, instance_id: &str);
    /// A new private network for the nodes of one multi-node parallel job; dropping it takes
    /// it apart. Blocking.
    fn node_network(&self) -> Result<Box<dyn NodeNetwork>, String> {
        Err("this nimbus makes no network between instances".into())
    }
}

/// The private network of one multi-node parallel job's nodes: they reach each other at the
/// addresses [`NodeNetwork::join`] gives, and nothing else reaches them through it.
pub trait NodeNetwork: Send + Sync {
    /// Puts a running instance on the network; returns its private IPv4 address there.
    /// Blocking.
    fn join(&self, instance_id: &str) -> Result<String, String>;
}

/// A job's container image, resolved in nimbus's image store: its root file system (held
/// while `hold` lives) and its config.
pub struct JobImage {
    pub root: std::path::PathBuf,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` as the image config writes them.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// Keeps the root from the store's garbage collection while the job runs.
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

/// Container images (ECR's store): `image` as users write it (`repo:tag`, `repo@sha256:…`,
/// `<account>.dkr.ecr.<region>.amazonaws.com/repo:tag`) for an architecture (`x86_64`,
/// `arm64`). Blocking. Errors read `CannotPullContainerError: …`.
pub trait JobImages: Send + Sync + 'static {
    fn resolve(&self, image: &str, arch: &str) -> Result<JobImage, String>;
}

/// Jobs' output: CloudWatch Logs `/aws/batch/job` of the job's region.
pub trait JobLogs: Send + Sync + 'static {
    fn write(&self, region: &str, group: &str, stream: &str, events: Vec<(i64, String)>);
}

/// "Batch Job State Change" events for EventBridge's default bus.
pub trait JobEvents: Send + Sync + 'static {
    fn put(&self, detail_type: &str, resources: Vec<String>, detail: Value);
}

/// Nothing beneath (unit tests): no instances, no logs, no events.
pub struct Nothing;

impl JobLogs for Nothing {
    fn write(&self, _: &str, _: &str, _: &str, _: Vec<(i64, String)>) {}
}

impl JobEvents for Nothing {
    fn put(&self, _: &str, _: Vec<String>, _: Value) {}
}
