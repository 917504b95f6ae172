//! CodeDeploy, as much as Lambda traffic shifting needs: the deployments CloudFormation starts
//! for an alias whose update policy is `CodeDeployLambdaAliasUpdate` (see `deploy`), the
//! resources that describe them (`provider`), and the API hooks and users call while one runs —
//! `PutLifecycleEventHookExecutionStatus`, `GetDeployment`, `ListDeployments`,
//! `StopDeployment`. Other operations answer `UnknownOperationException` naming them.
//! JSON 1.1 (`X-Amz-Target: CodeDeploy_20141006.*`) and Smithy RPC v2 CBOR, which botocore
//! prefers.

pub mod deploy;
pub mod provider;
mod store;
mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::clock::Clock;
use nimbus_api::{ApiRequest, AwsError, Service, ServiceFuture};
use nimbus_store::Database;
use serde_json::{json, Value};

pub use deploy::{AliasShift, Routing};
pub use store::SCHEMA;

pub const TARGET_PREFIX: &str = "CodeDeploy_20141006";

pub type TargetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a deployment reaches in other services (Lambda and CloudWatch, through the wiring).
pub trait Targets: Send + Sync {
    /// Points `function:alias` at `version`, with `extra` = (another version, its weight) or
    /// no additional routing.
    fn route<'a>(
        &'a self,
        function: &'a str,
        alias: &'a str,
        version: &'a str,
        extra: Option<(&'a str, f64)>,
    ) -> TargetFuture<'a, Result<(), String>>;

    /// An asynchronous (`Event`) invocation of a hook function.
    fn invoke<'a>(&'a self, function: &'a str, payload: Vec<u8>) -> TargetFuture<'a, Result<(), String>>;

    /// Which of the named CloudWatch alarms are in `ALARM`.
    fn alarms_in_alarm<'a>(&'a self, names: &'a [String]) -> TargetFuture<'a, Vec<String>>;
}

pub struct CodeDeploy {
    store: store::Store,
    clock: Arc<dyn Clock>,
    targets: Arc<dyn Targets>,
}

impl CodeDeploy {
    pub fn open(
        database: &Database,
        clock: Arc<dyn Clock>,
        targets: Arc<dyn Targets>,
    ) -> Result<CodeDeploy, String> {
        let store = store::Store::open(database).map_err(|e| e.to_string())?;
        // A lone node that restarts runs none of the deployments it left in progress (their
        // stack updates roll back): they end `Stopped`. Nodes sharing a database leave them be.
        if !database.is_shared() {
            for (id, mut info) in store.unfinished().map_err(|e| e.to_string())? {
                info["status"] = json!("Stopped");
                info["completeTime"] = json!(clock.now_ms() as f64 / 1000.0);
                info["errorInformation"] =
                    json!({"code": "MANUAL_STOP", "message": "nimbus stopped while the deployment ran"});
                store.save_deployment(&id, &info).map_err(|e| e.to_string())?;
            }
        }
        Ok(CodeDeploy { store, clock, targets })
    }

    fn dispatch(&self, operation: &str, input: &Value) -> Result<Value, AwsError> {
        match operation {
            "PutLifecycleEventHookExecutionStatus" => self.put_hook_status(input),
            "GetDeployment" => {
                let (info, _) = self.find(input)?;
                Ok(json!({ "deploymentInfo": info }))
            }
            "ListDeployments" => self.list_deployments(input),
            "StopDeployment" => self.stop_deployment(input),
            other => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("nimbus's CodeDeploy does not implement {other}: it serves the Lambda deployments of stacks (PutLifecycleEventHookExecutionStatus, GetDeployment, ListDeployments, StopDeployment)"),
            )),
        }
    }

    fn find(&self, input: &Value) -> Result<(Value, bool), AwsError> {
        let Some(id) = input["deploymentId"].as_str().filter(|s| !s.is_empty()) else {
            return Err(error("DeploymentIdRequiredException", "Deployment Id is required"));
        };
        if !valid_deployment_id(id) {
            return Err(error(
                "InvalidDeploymentIdException",
                format!("Specified DeploymentId is not in the valid format: {id}"),
            ));
        }
        match self.store.deployment(id).map_err(internal)? {
            Some(found) => Ok(found),
            None => Err(error(
                "DeploymentDoesNotExistException",
                format!("The deployment {id} could not be found."),
            )),
        }
    }

    fn put_hook_status(&self, input: &Value) -> Result<Value, AwsError> {
        let (info, _) = self.find(input)?;
        let deployment = info["deploymentId"].as_str().unwrap_or_default().to_owned();
        let execution = input["lifecycleEventHookExecutionId"].as_str().unwrap_or_default();
        let status = input["status"].as_str().unwrap_or_default();
        if !matches!(status, "Succeeded" | "Failed") {
            return Err(error(
                "InvalidLifecycleEventHookExecutionStatusException",
                format!("Invalid status {status}: a hook reports Succeeded or Failed"),
            ));
        }
        match self.store.hook(execution).map_err(internal)? {
            Some((owner, _)) if owner == deployment => {}
            _ => {
                return Err(error(
                    "InvalidLifecycleEventHookExecutionIdException",
                    format!(
                    "Lifecycle event hook execution {execution} does not belong to deployment {deployment}"
                ),
                ))
            }
        }
        if !self.store.complete_hook(execution, status).map_err(internal)? {
            return Err(error(
                "LifecycleEventAlreadyCompletedException",
                format!("The lifecycle event hook execution {execution} has already completed"),
            ));
        }
        Ok(json!({ "lifecycleEventHookExecutionId": execution }))
    }

    fn list_deployments(&self, input: &Value) -> Result<Value, AwsError> {
        let application = input["applicationName"].as_str();
        let group = input["deploymentGroupName"].as_str();
        match (application, group) {
            (None, Some(_)) => {
                return Err(error(
                    "ApplicationNameRequiredException",
                    "The minimum number of required application names was not specified",
                ))
            }
            (Some(app), None) => {
                return Err(error(
                    "DeploymentGroupNameRequiredException",
                    format!("Deployment group name is required when application name {app} is given"),
                ))
            }
            (Some(app), Some(_)) if !self.store.has_application(app).map_err(internal)? => {
                return Err(error(
                    "ApplicationDoesNotExistException",
                    format!("No application found for name: {app}"),
                ))
            }
            (Some(app), Some(group)) if self.store.group(app, group).map_err(internal)?.is_none() => {
                return Err(error(
                    "DeploymentGroupDoesNotExistException",
                    format!("No Deployment Group found for name: {group}"),
                ))
            }
            _ => {}
        }
        let statuses: Vec<&str> = input["includeOnlyStatuses"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ids: Vec<String> = self
            .store
            .deployments(application, group)
            .map_err(internal)?
            .into_iter()
            .filter(|(_, status)| statuses.is_empty() || statuses.contains(&status.as_str()))
            .map(|(id, _)| id)
            .collect();
        Ok(json!({ "deployments": ids }))
    }

    fn stop_deployment(&self, input: &Value) -> Result<Value, AwsError> {
        let (info, _) = self.find(input)?;
        if !matches!(info["status"].as_str(), Some("Created" | "Queued" | "InProgress" | "Baking" | "Ready"))
        {
            return Err(error("DeploymentAlreadyCompletedException", "Deployment already completed"));
        }
        let id = info["deploymentId"].as_str().unwrap_or_default();
        self.store.request_stop(id).map_err(internal)?;
        Ok(
            json!({"status": "Pending", "statusMessage": "Stop request is pending; traffic moves back to the previous version"}),
        )
    }
}

fn error(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, code, message)
}

fn internal(e: nimbus_store::DbError) -> AwsError {
    AwsError::new(500, "InternalFailure", e.to_string())
}

/// `d-` and nine upper-case letters and digits, as AWS gives them.
fn new_deployment_id() -> String {
    let raw = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("d-{}", &raw[..9])
}

fn valid_deployment_id(id: &str) -> bool {
    id.strip_prefix("d-")
        .is_some_and(|rest| rest.len() == 9 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn new_execution_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Service for CodeDeploy {
    fn name(&self) -> &'static str {
        "codedeploy"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let call = wire::decode(&request);
            let wire = call.wire;
            match call
                .input
                .and_then(|input| tokio::task::block_in_place(|| self.dispatch(&call.operation, &input)))
            {
                Ok(value) => wire::respond(wire, value),
                Err(error) => wire::error(wire, error),
            }
        })
    }
}

/// Whether a request is CodeDeploy's (JSON target or CBOR path).
pub fn claims(_method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    target.is_some_and(|t| t.starts_with(TARGET_PREFIX))
        || uri.path().starts_with(&format!("/service/{TARGET_PREFIX}/operation/"))
}

#[cfg(test)]
mod tests;
