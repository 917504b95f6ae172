//! CloudFormation's reach into the other services: the providers of services that open on
//! first use (a stack naming a topic opens SNS then, not nimbus's start), and the SAM
//! transform applied wherever a template names it.

use std::sync::Arc;

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::Service;
use serde_json::{Map, Value};

use crate::lazy::Lazy;

/// A provider whose service opens on its first resource.
pub struct LazyProvider<S> {
    lazy: Arc<Lazy<S>>,
    types: &'static [&'static str],
}

impl<S> LazyProvider<S> {
    pub fn new(lazy: Arc<Lazy<S>>, types: &'static [&'static str]) -> Arc<LazyProvider<S>> {
        Arc::new(LazyProvider { lazy, types })
    }
}

impl<S: Service + ResourceProvider> LazyProvider<S> {
    async fn open(&self) -> Result<Arc<S>, ProviderError> {
        self.lazy.get().await.map_err(ProviderError::new)
    }
}

impl<S: Service + ResourceProvider> ResourceProvider for LazyProvider<S> {
    fn resource_types(&self) -> &'static [&'static str] {
        self.types
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        let opened = match self.lazy.opened() {
            Some(service) => Ok(service.clone()),
            None => tokio::task::block_in_place(|| self.lazy.get_blocking()),
        };
        opened.is_ok_and(|service| service.replaces(resource_type, property))
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.open().await?.create(request).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.open().await?.update(request, physical_id, previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.open().await?.delete(request, physical_id).await })
    }
}

/// `AWS::Serverless-2016-10-31`, by nimbus's own transform (crates/sam).
pub struct SamTransform;

impl nimbus_cloudformation::Transforms for SamTransform {
    fn apply(
        &self,
        name: &str,
        template: &Value,
        region: &str,
        account: &str,
        stack: &str,
    ) -> Option<Result<Value, String>> {
        if name != nimbus_sam::TRANSFORM_NAME {
            return None;
        }
        let context = nimbus_sam::Context::new(region, account, stack);
        Some(nimbus_sam::transform(template, &context).map_err(|error| error.to_string()))
    }
}

/// A provider whose definitions may live in S3 (`BodyS3Location` of API Gateway's APIs): the
/// object is read from nimbus's S3 and handed on as `Body`.
pub struct S3Bodies {
    inner: Arc<dyn ResourceProvider>,
    s3: Arc<nimbus_s3::S3>,
}

impl S3Bodies {
    pub fn new(inner: Arc<dyn ResourceProvider>, s3: Arc<nimbus_s3::S3>) -> Arc<S3Bodies> {
        Arc::new(S3Bodies { inner, s3 })
    }

    fn resolve(&self, mut request: ResourceRequest) -> Result<ResourceRequest, ProviderError> {
        if request.property("Body").is_some() {
            return Ok(request);
        }
        let Some(location) = request.property("BodyS3Location").cloned() else { return Ok(request) };
        let field = |name: &str| location.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(bucket), Some(key)) = (field("Bucket"), field("Key")) else {
            return Err(ProviderError::new("BodyS3Location needs Bucket and Key"));
        };
        let bytes = self
            .s3
            .read_object(&bucket, &key, field("Version").as_deref())
            .map_err(|e| ProviderError::new(format!("BodyS3Location s3://{bucket}/{key}: {}", e.message)))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ProviderError::new(format!("BodyS3Location s3://{bucket}/{key} is not UTF-8 text"))
        })?;
        request.properties.insert("Body".into(), Value::String(text));
        Ok(request)
    }
}

impl ResourceProvider for S3Bodies {
    fn resource_types(&self) -> &'static [&'static str] {
        self.inner.resource_types()
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        self.inner.replaces(resource_type, property)
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.inner.create(self.resolve(request)?).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.inner.update(self.resolve(request)?, physical_id, previous).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        self.inner.delete(request, physical_id)
    }
}

/// `AWS::CodeDeploy::Application` and `AWS::CodeDeploy::DeploymentGroup`, as the SAM transform
/// emits them for `DeploymentPreference`. nimbus serves no CodeDeploy: the resources are
/// accepted and kept as the stack's records (names as AWS gives them), and an alias's
/// `CodeDeployLambdaAliasUpdate` shifts all traffic at once (no gradual shifting, hooks or
/// alarms-driven rollback).
pub struct CodeDeployRecords;

pub const CODEDEPLOY_TYPES: &[&str] = &["AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup"];

const CODEDEPLOY_NOTE: &str =
    "accepted and recorded: nimbus serves no CodeDeploy, so an alias update shifts all traffic at once";

impl ResourceProvider for CodeDeployRecords {
    fn resource_types(&self) -> &'static [&'static str] {
        CODEDEPLOY_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            "AWS::CodeDeploy::Application" => matches!(property, "ApplicationName" | "ComputePlatform"),
            _ => matches!(property, "ApplicationName" | "DeploymentGroupName"),
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            let given = if request.resource_type == "AWS::CodeDeploy::Application" {
                "ApplicationName"
            } else {
                "DeploymentGroupName"
            };
            let name = request
                .string(given)
                .map(str::to_owned)
                .unwrap_or_else(|| request.generated_name(100, false));
            Ok(Provisioned { physical_id: name, attributes: Map::new() }.with_note(CODEDEPLOY_NOTE))
        })
    }

    fn update(
        &self,
        _request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { Ok(Provisioned { physical_id, attributes: Map::new() }) })
    }

    fn delete(&self, _request: ResourceRequest, _physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
