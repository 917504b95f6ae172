//! The Lambda service (API version 2015-03-31): operations over the registry of functions, and
//! invokes handed to the functions engine.

mod aliases;
mod concurrency;
mod events;
mod functions;
pub mod images;
mod inline_code;
mod invoke;
mod invoke_config;
mod layer_policy;
mod layers;
mod mappings;
mod model;
mod operations;
mod permissions;
pub mod provider;
mod registry;
mod resolve;
mod routes;
mod streams;
mod urls;
mod validate;
mod versions;

use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{
    json_response, percent_decode, ApiRequest, ApiResponse, AwsError, Body, Identity, Service, ServiceFuture,
};
use nimbus_functions::Engine;
use nimbus_store::code::CodeStore;
use nimbus_store::{Store, StoreError};

use crate::events::EventQueue;
pub use crate::events::Queues;
use crate::invoke::PROTOCOL;
use crate::layers::Layers;
use crate::registry::Registry;
pub use crate::streams::{Shard, StreamRecord, Streams};
pub use crate::urls::{SyncFailure, UrlTarget};

const LAYERS_PATH: &str = "/2018-10-31/layers";
const CODE_PATH: &str = "/_nimbus/code/";
/// nimbus's own inventory of functions with their environments and recent figures.
pub const INVENTORY_PATH: &str = "/_nimbus/functions";
/// `POST /_nimbus/layers/import?arn=ARN` with a zip: `nimbus layers import ARN ZIP`.
const IMPORT_PATH: &str = "/_nimbus/layers/import";

pub struct Lambda {
    /// Ourselves, for background work that outlives a request.
    this: std::sync::Weak<Lambda>,
    store: Arc<dyn Store>,
    /// Layer version policies, keyed `layer:<name>:<version>`.
    layer_policies: std::sync::RwLock<std::collections::HashMap<String, serde_json::Value>>,
    registry: Registry,
    layers: Arc<Layers>,
    engine: Engine,
    identity: Identity,
    endpoint_url: String,
    events: EventQueue,
    queues: Option<Arc<dyn Queues>>,
    retry_delay_scale: f64,
    /// Event source mappings by UUID, and their pollers.
    mappings: std::sync::RwLock<std::collections::BTreeMap<String, serde_json::Value>>,
    pollers: mappings::Pollers,
    objects: std::sync::OnceLock<Arc<dyn Objects>>,
    destinations: std::sync::OnceLock<Arc<dyn Destinations>>,
    /// Kinesis and DynamoDB Streams, for stream event source mappings.
    streams: std::sync::OnceLock<Arc<dyn Streams>>,
    stream_progress: streams::Progress,
}

/// Destinations Lambda cannot reach itself: SNS topics and EventBridge event buses (for
/// asynchronous invocation records and stream mappings' `OnFailure`). Blocking.
pub trait Destinations: Send + Sync + 'static {
    fn deliver(&self, arn: &str, body: &str) -> Result<(), String>;
}

/// Reads objects from S3 (function code and layers given as `S3Bucket`/`S3Key`).
pub trait Objects: Send + Sync + 'static {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String>;
}

/// How the Lambda service is set up.
pub struct LambdaOptions {
    pub identity: Identity,
    /// nimbus's own API, for `AWS_ENDPOINT_URL` inside functions and code locations.
    pub endpoint_url: String,
    /// Where shared file systems (`FileSystemConfigs`) keep their files.
    pub file_systems: std::path::PathBuf,
    /// Multiplies AWS's retry delays for asynchronous invocations (1 = a minute, then two).
    pub retry_delay_scale: f64,
    /// SQS, for destinations and dead-letter queues.
    pub queues: Option<Arc<dyn Queues>>,
}

impl Lambda {
    /// Loads the stored functions, then starts the asynchronous invocations left unfinished.
    pub fn start(
        store: Arc<dyn Store>,
        code: Arc<CodeStore>,
        engine: Engine,
        options: LambdaOptions,
    ) -> Result<Arc<Lambda>, StoreError> {
        let LambdaOptions { identity, endpoint_url, file_systems, .. } = &options;
        let (identity, endpoint_url, file_systems) =
            (identity.clone(), endpoint_url.clone(), file_systems.clone());
        let store_for_events = store.clone();
        let store_for_mappings = store.clone();
        let layer_prefix = format!("arn:aws:lambda:{}:{}:layer:", identity.region, identity.account);
        let layers = Arc::new(Layers::load(store.clone(), code.clone(), layer_prefix)?);
        let layer_policies = Lambda::load_layer_policies(&*store)?;
        let registry = Registry::load(
            store.clone(),
            code,
            identity.clone(),
            endpoint_url.clone(),
            file_systems,
            layers.clone(),
        )?;
        let lambda = Arc::new_cyclic(|weak| Lambda {
            this: weak.clone(),
            store,
            layer_policies: std::sync::RwLock::new(layer_policies),
            registry,
            layers,
            engine,
            identity,
            endpoint_url,
            events: EventQueue::start(store_for_events, weak.clone()),
            queues: options.queues,
            retry_delay_scale: options.retry_delay_scale,
            mappings: std::sync::RwLock::new(Lambda::load_mappings(&*store_for_mappings)),
            pollers: mappings::Pollers::default(),
            objects: std::sync::OnceLock::new(),
            destinations: std::sync::OnceLock::new(),
            streams: std::sync::OnceLock::new(),
            stream_progress: streams::Progress::default(),
        });
        lambda.restore_provisioned();
        lambda.start_all_pollers();
        // Only now: the workers run events through `lambda`, which exists from here on.
        let own = lambda.store.node().to_owned();
        lambda.events.adopt(&[own]);
        Ok(lambda)
    }

    fn load_layer_policies(
        store: &dyn Store,
    ) -> Result<std::collections::HashMap<String, serde_json::Value>, StoreError> {
        Ok(store
            .load_resources()?
            .into_iter()
            .filter(|row| row.kind == "layer-policy")
            .filter_map(|row| Some((row.function, serde_json::from_str(&row.config).ok()?)))
            .collect())
    }

    /// `nimbus layers import ARN ZIP`: the layer version `arn` of another account, from its
    /// zip; functions naming it run with it from their next new environment.
    pub async fn import_layer(&self, arn: &str, zip: Vec<u8>) -> Result<serde_json::Value, AwsError> {
        let shown = self.layers.import(arn, zip, &self.endpoint_url).await?;
        tokio::task::block_in_place(|| self.registry.reload())
            .map_err(|e| AwsError::service(e.to_string()))?;
        Ok(shown)
    }

    /// Reads functions, layers and event source mappings again: another node sharing the
    /// database changed some. Unchanged versions keep their warm environments; pollers follow
    /// the mappings as they now are.
    pub fn reload(&self) -> Result<(), StoreError> {
        self.layers.reload()?;
        let policies = Lambda::load_layer_policies(&*self.store)?;
        *self.layer_policies.write().unwrap_or_else(|p| p.into_inner()) = policies;
        self.registry.reload()?;
        self.reload_mappings();
        Ok(())
    }

    /// Several nodes share the store: functions not known here are looked up in it before they
    /// are called missing (created on another node a moment ago).
    pub fn share_store(&self) {
        self.registry.set_shared();
    }

    /// Runs here the unfinished asynchronous invocations of `nodes` (nodes that stopped);
    /// returns how many were taken over.
    pub fn adopt_events(&self, nodes: &[String]) -> usize {
        self.events.adopt(nodes)
    }

    /// Queues an asynchronous invocation durably before returning (for S3 notifications and
    /// other event sources). Blocking: call it off the async workers or in `block_in_place`.
    pub fn enqueue_event_blocking(&self, function: &str, payload: Vec<u8>) -> Result<(), String> {
        self.events.enqueue_blocking(function, payload, &nimbus_functions::new_request_id())
    }

    /// Whether `arn` names a function of this region and account (and its version or alias,
    /// when qualified): S3 checks its notification destinations with it.
    pub fn function_exists(&self, arn: &str) -> bool {
        arn.starts_with(&self.function_arn("")) && self.find(arn, None).is_ok()
    }

    /// SNS topics and event buses as destinations.
    pub fn set_destinations(&self, destinations: Arc<dyn Destinations>) {
        let _ = self.destinations.set(destinations);
    }

    /// Kinesis and DynamoDB Streams as event sources: their mappings start polling now.
    pub fn set_streams(&self, streams: Arc<dyn Streams>) {
        if self.streams.set(streams).is_ok() {
            self.start_stream_pollers();
        }
    }

    /// Stream mappings with their shards' checkpoints and iterator ages (blocking).
    pub fn stream_report(&self) -> Vec<serde_json::Value> {
        streams::report(self)
    }

    /// Lets `CreateFunction` and friends read `Code.S3Bucket`/`S3Key` from nimbus's S3.
    /// The image store container image functions run from (set once, by the binary).
    pub fn set_images(&self, images: Arc<dyn images::ImageStore>) {
        let _ = self.registry.images.set(images);
    }

    pub fn set_objects(&self, objects: Arc<dyn Objects>) {
        let _ = self.objects.set(objects);
    }

    /// The region and account this instance serves.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn function_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{name}", self.identity.region, self.identity.account)
    }

    /// The bare name from a name, a full ARN or a partial ARN (`123456789012:function:name`),
    /// with any `:qualifier` suffix removed.
    fn function_name_of(&self, reference: &str) -> Result<String, AwsError> {
        let (name, _) = split_reference(reference);
        validate::function_name(name)?;
        Ok(name.to_owned())
    }

    pub(crate) async fn route_layers(
        &self,
        request: &ApiRequest,
        rest: &str,
    ) -> Result<ApiResponse, AwsError> {
        let segments: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let runtime = request.query("CompatibleRuntime");
        let architecture = request.query("CompatibleArchitecture");
        let endpoint = &self.endpoint_url;
        let layers = &self.layers;
        match (&request.method, segments.as_slice()) {
            (&Method::GET, []) if request.query("find").as_deref() == Some("LayerVersion") => {
                Ok(json_response(layers.get_by_arn(request.query("Arn").as_deref(), endpoint)?))
            }
            (&Method::GET, []) => Ok(json_response(layers.list(runtime.as_deref(), architecture.as_deref()))),
            (&Method::POST, [name, "versions"]) => {
                let input: serde_json::Value = functions::parse(&request.body)?;
                let content: model::CodeInput =
                    serde_json::from_value(input["Content"].clone()).unwrap_or_default();
                let zip = self.code_bytes(&content).await?;
                let mut response = json_response(layers.publish(name, &request.body, zip, endpoint).await?);
                *response.status_mut() = hyper::StatusCode::CREATED;
                Ok(response)
            }
            (&Method::GET, [name, "versions"]) => {
                Ok(json_response(layers.list_versions(name, runtime.as_deref(), architecture.as_deref())))
            }
            (&Method::GET, [name, "versions", number]) => {
                Ok(json_response(layers.get(name, number, endpoint)?))
            }
            (&Method::POST, [name, "versions", number, "policy"]) => {
                let mut response =
                    json_response(self.add_layer_permission(name, number, &request.body).await?);
                *response.status_mut() = hyper::StatusCode::CREATED;
                Ok(response)
            }
            (&Method::GET, [name, "versions", number, "policy"]) => {
                Ok(json_response(self.get_layer_policy(name, number)?))
            }
            (&Method::DELETE, [name, "versions", number, "policy", sid]) => {
                self.remove_layer_permission(name, number, sid).await?;
                Ok(crate::routes::no_content())
            }
            (&Method::DELETE, [name, "versions", number]) => {
                layers.delete(name, number).await?;
                let mut response = ApiResponse::new(Body::new(Bytes::new()));
                *response.status_mut() = hyper::StatusCode::NO_CONTENT;
                Ok(response)
            }
            _ => Err(AwsError::new(
                404,
                "UnknownOperationException",
                format!("nimbus does not implement {} {LAYERS_PATH}{rest} yet", request.method),
            )),
        }
    }

    /// `GET /_nimbus/functions`: every function of this region and account with its
    /// environments and recent figures (nimbus's front joins every region's).
    pub fn inventory(&self) -> serde_json::Value {
        let functions: Vec<serde_json::Value> = self
            .registry
            .all()
            .iter()
            .map(|function| {
                let config = &function.latest.stored.configuration;
                let stats = self.engine.function_stats(function.name());
                let figures = self.engine.metrics_summary(function.name());
                serde_json::json!({
                    "name": config.function_name,
                    "region": self.identity.region,
                    "account": self.identity.account,
                    "arn": self.function_arn(function.name()),
                    // Container image functions have no runtime: `nimbus functions` says image.
                    "runtime": if config.package_type == "Image" { "image" } else { config.runtime.as_str() },
                    "memory": config.memory_size,
                    "state": config.state,
                    "warm": stats.warm,
                    "busy": stats.busy,
                    "invocations": figures.as_ref().map(|f| f.invocations),
                    "errors": figures.as_ref().map(|f| f.errors),
                    "throttles": figures.as_ref().map(|f| f.throttles),
                    "p50_ms": figures.as_ref().and_then(|f| f.p50_ms),
                    "p99_ms": figures.as_ref().and_then(|f| f.p99_ms),
                })
            })
            .collect();
        serde_json::json!({ "functions": functions })
    }

    /// The zip behind `GetFunction`'s `Code.Location`.
    pub(crate) async fn code_package(&self, file: &str) -> Result<ApiResponse, AwsError> {
        let hex = file.trim_end_matches(".zip");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AwsError::not_found("No such code package"));
        }
        let path = self.registry.code.zip_path(hex);
        let bytes = tokio::fs::read(path).await.map_err(|_| AwsError::not_found("No such code package"))?;
        Ok(ApiResponse::new(Body::new(Bytes::from(bytes))))
    }
}

/// Splits `name`, `name:qualifier`, `arn:aws:lambda:region:account:function:name[:qualifier]`
/// and `account:function:name[:qualifier]` into the name and the qualifier.
pub(crate) fn split_reference(reference: &str) -> (&str, Option<&str>) {
    let parts: Vec<&str> = reference.split(':').collect();
    let after_function = parts.iter().position(|p| *p == "function").map(|i| &parts[i + 1..]);
    match after_function.unwrap_or(&parts[..]) {
        [name] => (name, None),
        [name, qualifier] => (name, Some(qualifier)),
        _ => (reference, None),
    }
}

impl Service for Lambda {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn claims(&self, method: &Method, uri: &Uri, _headers: &HeaderMap) -> bool {
        let path = uri.path();
        path.starts_with(CODE_PATH)
            || path == INVENTORY_PATH
            || path == IMPORT_PATH
            || operations::operation_for(method.as_str(), path).is_some()
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            match self.route(request).await {
                Ok(response) => response,
                Err(error) => error.into_response(PROTOCOL),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_name_functions_in_every_aws_form() {
        assert_eq!(split_reference("fn"), ("fn", None));
        assert_eq!(split_reference("fn:$LATEST"), ("fn", Some("$LATEST")));
        assert_eq!(split_reference("arn:aws:lambda:us-east-1:000000000000:function:fn"), ("fn", None));
        assert_eq!(split_reference("000000000000:function:fn:prod"), ("fn", Some("prod")));
    }
}
