//! AWS Step Functions (`stepfunctions`, JSON 1.0 `AWSStepFunctions`): state machines in the
//! Amazon States Language (JSONPath), their executions run by an interpreter that records every
//! transition through the storage layer (and resumes running executions after a restart), and
//! the service integrations (Lambda, SQS, SNS, DynamoDB, EventBridge, Step Functions, Batch,
//! `aws-sdk:*`) reached through the [`Services`] and [`BatchJobs`] traits the binary implements.

mod api;
pub mod asl;
mod exec;
pub mod provider;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::clock::Clock;
use nimbus_api::{ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_store::{Cluster, Database, DbError};
use serde_json::Value;

pub use store::SCHEMA;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An AWS error from another service: its code (`ResourceNotFoundException`) and message.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    pub code: String,
    pub message: String,
}

impl CallError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> CallError {
        CallError { code: code.into(), message: message.into() }
    }
}

/// A synchronous Lambda invocation's answer.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub status: u16,
    pub payload: Vec<u8>,
    /// `X-Amz-Function-Error` (`Unhandled`) when the function failed.
    pub function_error: Option<String>,
    pub executed_version: String,
}

/// The other services of this nimbus, as state machines reach them (the binary implements it).
pub trait Services: Send + Sync + 'static {
    /// Invokes a function (`RequestResponse`, or `Event` when `asynchronous`).
    fn invoke<'a>(
        &'a self,
        region: &'a str,
        function: &'a str,
        qualifier: Option<&'a str>,
        payload: Vec<u8>,
        asynchronous: bool,
    ) -> BoxFuture<'a, Result<Invoked, CallError>>;

    /// Calls operation `operation` (`SendMessage`) of service `service` (botocore's client
    /// name: `sqs`, `dynamodb`, `sns`, `events`, `logs` …) with its JSON input, in process.
    fn call<'a>(
        &'a self,
        region: &'a str,
        service: &'a str,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, CallError>>;

    /// An S3 object's bytes (distributed Map's `ItemReader`, `aws-sdk:s3:getObject`).
    fn s3_get<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        let _ = (region, bucket, key);
        Box::pin(async { Err(CallError::new("ServiceUnavailable", "S3 is not served here")) })
    }

    /// Writes an S3 object (distributed Map's `ResultWriter`, `aws-sdk:s3:putObject`); answers its ETag.
    fn s3_put<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        key: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        let _ = (region, bucket, key, body);
        Box::pin(async { Err(CallError::new("ServiceUnavailable", "S3 is not served here")) })
    }

    /// Every object under `prefix`, as ListObjectsV2's `Contents` entries (`Key`, `Size`,
    /// `ETag`, `LastModified`, `StorageClass`).
    fn s3_list<'a>(
        &'a self,
        region: &'a str,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, CallError>> {
        let _ = (region, bucket, prefix);
        Box::pin(async { Err(CallError::new("ServiceUnavailable", "S3 is not served here")) })
    }
}

/// AWS Batch as `batch:submitJob(.sync)` needs it (the binary implements it once Batch is
/// served).
pub trait BatchJobs: Send + Sync + 'static {
    /// SubmitJob with its JSON parameters; answers SubmitJob's output (`jobId`, `jobName` …).
    fn submit<'a>(&'a self, region: &'a str, params: Value) -> BoxFuture<'a, Result<Value, CallError>>;
    /// Resolves when the job is SUCCEEDED or FAILED, with its DescribeJobs document.
    fn watch<'a>(&'a self, region: &'a str, job_id: &'a str) -> BoxFuture<'a, Result<Value, CallError>>;
}

/// What Step Functions is opened with.
pub struct Options {
    pub identity: Identity,
    pub clock: Arc<dyn Clock>,
    pub services: Arc<dyn Services>,
    pub batch: Option<Arc<dyn BatchJobs>>,
    pub cluster: Option<Arc<Cluster>>,
    pub node: String,
}

pub struct StepFunctions {
    engine: Arc<exec::Engine>,
}

/// Whether executions were left running here (nimbus opens Step Functions at start to resume
/// them); asked cheaply, without opening the service when it was never used.
pub fn has_unfinished(database: &Database) -> bool {
    if !database.has_schema(&SCHEMA) {
        return false;
    }
    database
        .open(&SCHEMA)
        .and_then(|db| db.query_opt("SELECT 1 FROM executions WHERE status = 'RUNNING' LIMIT 1", &[]))
        .is_ok_and(|row| row.is_some())
}

impl StepFunctions {
    /// Opens the state and resumes the executions left running (they run as long as the
    /// returned value lives).
    pub fn open(database: &Database, options: Options) -> Result<Arc<StepFunctions>, DbError> {
        let db = database.open(&SCHEMA)?;
        let engine = exec::Engine::new(db, options);
        exec::resume::start(&engine);
        Ok(Arc::new(StepFunctions { engine }))
    }
}

impl StepFunctions {
    /// Starts an execution of the machine (or version, or alias) `arn` with `input` (JSON
    /// text), as EventBridge rules and Scheduler schedules do; answers its ARN.
    pub fn start_execution(&self, arn: &str, input: &str) -> Result<String, String> {
        let (machine, qualified) = api::resolve_machine(&self.engine, arn).map_err(|e| e.message)?;
        let input: Value =
            serde_json::from_str(input).map_err(|e| format!("Invalid Execution Input: {e}"))?;
        let region = arn.split(':').nth(3).unwrap_or(&self.engine.identity.region).to_owned();
        let name = uuid::Uuid::new_v4().to_string();
        let start = exec::Start { machine, machine_arn: qualified, name, input, region };
        self.engine.start(start).map(|started| started.arn).map_err(|e| e.message)
    }
}

const TARGET_PREFIX: &str = "AWSStepFunctions.";

impl Service for StepFunctions {
    fn name(&self) -> &'static str {
        "stepfunctions"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            let region = region_of(&request).unwrap_or_else(|| self.engine.identity.region.clone());
            let result = match serde_json::from_slice::<Value>(&request.body) {
                Ok(body) if body.is_object() => api::dispatch(&self.engine, &region, &operation, &body).await,
                _ => Err(AwsError::new(
                    400,
                    "SerializationException",
                    "Start of structure or map found where not expected.",
                )),
            };
            match result {
                Ok(value) => {
                    let mut response = nimbus_api::json_response(value);
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.0"));
                    response
                }
                Err(error) => error.into_response(Protocol::Json),
            }
        })
    }
}

/// The region of the request's SigV4 credential scope.
fn region_of(request: &ApiRequest) -> Option<String> {
    nimbus_api::scope::scope_of(&request.headers, &request.uri).map(|s| s.region).filter(|r| !r.is_empty())
}
