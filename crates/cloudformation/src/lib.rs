//! CloudFormation (Query protocol, `2010-05-15`): stacks from JSON or YAML templates,
//! provisioned by the services' own resource providers, with change sets, rollback, nested
//! stacks, custom resources, exports and durable events (see `engine`).

pub mod api;
mod builtin;
mod changes;
pub mod engine;
mod events;
mod foreach;
pub mod graph;
pub mod intrinsics;
pub mod model;
pub mod params;
mod render;
mod resolve;
mod rules;
pub mod store;
mod teardown;
pub mod template;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::provider::ResourceProvider;
use nimbus_api::{form, ApiRequest, ApiResponse, AwsError, Protocol, Service, ServiceFuture};
use nimbus_store::Database;
use serde_json::Value;

pub use store::SCHEMA;

/// How long an operation's request waits for a quick operation to end before answering.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

pub const NAMESPACE: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// Template transforms other crates implement (the SAM transform `AWS::Serverless-2016-10-31`);
/// `None` when this one does not know the transform `name`.
pub trait Transforms: Send + Sync {
    fn apply(&self, name: &str, input: &TransformInput<'_>) -> Option<Result<Value, String>>;
}

/// What a transform is given: the template (and the text it was read from, whose key order
/// the SAM transform follows), where the stack lives and its parameters' values.
pub struct TransformInput<'a> {
    pub template: &'a Value,
    pub text: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub stack: &'a str,
    pub parameters: &'a serde_json::Map<String, Value>,
}

/// Objects of nimbus's S3, for `TemplateURL`s.
pub trait Templates: Send + Sync {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String>;
}

pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Lambda, for custom resources: an asynchronous (`Event`) invocation.
pub trait Functions: Send + Sync {
    fn invoke_async(&self, function: &str, payload: Vec<u8>) -> InvokeFuture<'_>;
}

pub type ShiftFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// CodeDeploy, for an alias whose `UpdatePolicy` is `CodeDeployLambdaAliasUpdate`: moves the
/// alias from the version in `previous` to the request's, gradually and with its hooks, as
/// the policy's deployment group says (the stack stays `UPDATE_IN_PROGRESS` meanwhile). An
/// error (the alias then back on its old version) fails the alias's update.
pub trait AliasDeployments: Send + Sync {
    fn shift<'a>(
        &'a self,
        request: &'a nimbus_api::provider::ResourceRequest,
        previous: &'a serde_json::Map<String, Value>,
        policy: &'a Value,
    ) -> ShiftFuture<'a>;
}

pub struct CloudFormation {
    engine: Arc<engine::Engine>,
}

impl CloudFormation {
    /// Opens the stacks (`node`: this node's name, which owns the operations it runs).
    pub fn open(
        database: &Database,
        region: &str,
        account: &str,
        endpoint_url: &str,
        providers: Vec<Arc<dyn ResourceProvider>>,
        node: &str,
    ) -> Result<Arc<CloudFormation>, String> {
        let store = store::Store::open(database).map_err(|e| e.to_string())?;
        let mut engine = engine::Engine::new(store, region, account, endpoint_url, providers);
        engine.node = node.to_owned();
        let engine = Arc::new(engine);
        Ok(Arc::new(CloudFormation { engine }))
    }

    /// Starts the interrupted operations (after the hooks are set).
    pub fn recover(&self) {
        self.engine.recover();
    }

    /// Whether stacks on disk have an operation a stop interrupted (opening at start then).
    pub fn has_unfinished(database: &Database) -> bool {
        store::Store::has_unfinished(database)
    }

    pub fn set_transforms(&self, transforms: Arc<dyn Transforms>) {
        let _ = self.engine.hooks.transforms.set(transforms);
    }

    pub fn set_templates(&self, templates: Arc<dyn Templates>) {
        let _ = self.engine.hooks.templates.set(templates);
    }

    pub fn set_functions(&self, functions: Arc<dyn Functions>) {
        let _ = self.engine.hooks.functions.set(functions);
    }

    pub fn set_deployments(&self, deployments: Arc<dyn AliasDeployments>) {
        let _ = self.engine.hooks.deployments.set(deployments);
    }

    /// A function's (or wait condition's) answer PUT to the URL nimbus handed it.
    fn signal(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.uri.path();
        let token = path
            .strip_prefix(builtin::RESPONSE_PATH)
            .or_else(|| path.strip_prefix(builtin::SIGNAL_PATH))
            .unwrap_or_default();
        if token.is_empty() || token.contains('/') || request.method != Method::PUT {
            return AwsError::new(404, "NotFound", "no such CloudFormation response URL")
                .into_response(Protocol::RestXml);
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(_) => {
                return AwsError::new(400, "MalformedJSON", "the response body is not JSON")
                    .into_response(Protocol::RestXml)
            }
        };
        match tokio::task::block_in_place(|| self.engine.store.signal(token, &body)) {
            Ok(()) => ApiResponse::new(nimbus_api::Body::new(bytes::Bytes::new())),
            Err(error) => {
                AwsError::new(500, "InternalError", error.to_string()).into_response(Protocol::RestXml)
            }
        }
    }
}

impl Service for CloudFormation {
    fn name(&self) -> &'static str {
        "cloudformation"
    }

    fn claims(&self, _: &Method, uri: &Uri, _: &HeaderMap) -> bool {
        uri.path().starts_with("/_nimbus/cloudformation/")
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if request.uri.path().starts_with("/_nimbus/cloudformation/") {
                return self.signal(&request);
            }
            let (action, input) = match form::parse(request.uri.query(), &request.body) {
                Ok(parsed) => parsed,
                Err(message) => {
                    return AwsError::new(400, "ValidationError", message).into_response(Protocol::Query)
                }
            };
            let engine = self.engine.clone();
            let (answer, stack) = tokio::task::block_in_place(|| {
                let stack = api::operated_stack(&engine, &action, &input);
                let answer = api::dispatch(&engine, &action, &input);
                let stack =
                    stack.or_else(|| answer.as_ref().ok()?.get("StackId")?.as_str().map(str::to_owned));
                (answer, stack)
            });
            match answer {
                Ok(result) => {
                    if let Some(stack) = stack.filter(|_| api::STARTS_OPERATIONS.contains(&action.as_str())) {
                        engine.settle(&stack, SETTLE).await;
                    }
                    nimbus_api::xml::query_response(NAMESPACE, &action, Some(&result), &request.request_id)
                }
                Err(error) => error.into_response(Protocol::Query),
            }
        })
    }
}

#[cfg(test)]
mod tests;
