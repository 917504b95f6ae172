//! The functions engine: execution environments for function versions, the Lambda Runtime API
//! they speak, warm reuse, concurrency and memory limits, timeouts and idle reaping.

pub mod arch;
mod engine;
pub mod env;
mod environment;
pub mod logs;
mod output;
mod pool;
mod runtime_api;
pub mod runtimes;
pub mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

pub use engine::{ApiAcceptor, Engine, EngineConfig, EngineStats, FunctionStats};

/// A request id in AWS's format.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}
pub use runtime_api::MAX_RESPONSE_BYTES;

/// An immutable snapshot of what an environment runs. A new `revision` (any code or
/// configuration change) retires the environments of the old one.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub version: String,
    pub revision: String,
    pub runtime: String,
    pub handler: String,
    pub code_dir: PathBuf,
    pub memory_mb: u32,
    pub ephemeral_mb: u32,
    pub timeout: Duration,
    pub environment: Vec<(String, String)>,
    pub log_group: String,
    pub region: String,
    /// The account the function belongs to: SDKs inside it sign as that account.
    pub account: String,
    /// nimbus's own API, for SDKs inside the function.
    pub endpoint_url: String,
    /// Shared directories (the function's `FileSystemConfigs`): host directory, mount path.
    pub shared_mounts: Vec<(PathBuf, PathBuf)>,
    /// Layer contents merged at `/opt`, in the function's order (later ones win).
    pub layers: Vec<PathBuf>,
    /// Lines each new environment logs first (a layer the function names that nimbus lacks).
    pub notices: Vec<String>,
    /// No network but nimbus's API and the Runtime API (a function in a VPC without NAT).
    pub isolated_network: bool,
    /// `x86_64` or `arm64`, for billing.
    pub architecture: String,
    /// The function's reserved concurrency, shared by all its specs: at most this many of its
    /// invocations at once (across versions); 0 throttles every invocation; negative: none.
    pub reserved_concurrency: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// A container image function (`PackageType: Image`): it runs in the image's root, started
    /// as the image says, instead of `runtime` with `code_dir`.
    pub image: Option<std::sync::Arc<dyn ImageSource>>,
}

/// Where a container image function's root comes from (the image store, through the service).
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// The image's root and how to start it; blocking (it may unpack the image).
    fn prepare(&self) -> Result<PreparedImage, String>;
}

/// An image ready to run: its root directory (bound read-only as the sandbox's `/`), the
/// program with its arguments, the image's environment and working directory.
pub struct PreparedImage {
    pub rootfs: PathBuf,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The image's `User` as uid and gid (None: Lambda's own `sbx_user1051`).
    pub user: Option<(u32, u32)>,
    /// Keeps the root from garbage collection while the environment lives.
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

/// One request to run a function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub client_context: Option<String>,
    /// Capture the invocation's log lines (`LogType: Tail`).
    pub tail_log: bool,
}

/// What the function answered.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub payload: Bytes,
    /// `Unhandled` when the payload is an error document (`X-Amz-Function-Error`).
    pub function_error: Option<&'static str>,
    /// The invocation's log text when a tail was asked for.
    pub log: Option<String>,
    /// From the event handed over to the answer (the REPORT line's Duration).
    pub duration: std::time::Duration,
}

impl InvokeResult {
    pub fn ok(payload: Bytes) -> InvokeResult {
        InvokeResult { payload, function_error: None, log: None, duration: Default::default() }
    }

    /// An error nimbus reports on the function's behalf (timeout, crash …).
    pub fn unhandled(error_type: &str, message: &str) -> InvokeResult {
        let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
        InvokeResult {
            payload: Bytes::from(body.to_string()),
            function_error: Some("Unhandled"),
            log: None,
            duration: Default::default(),
        }
    }

    /// An error the runtime posted: its JSON document as is, or one built from the header.
    pub fn from_runtime_error(error_type: &str, body: Bytes) -> InvokeResult {
        if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object()) {
            let duration = Default::default();
            return InvokeResult { payload: body, function_error: Some("Unhandled"), log: None, duration };
        }
        InvokeResult::unhandled(error_type, String::from_utf8_lossy(&body).trim())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Concurrency or memory exhausted; `reason` is AWS's `TooManyRequestsException` reason.
    #[error("Rate Exceeded.")]
    Throttled { reason: &'static str },
    #[error("nimbus is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
}
