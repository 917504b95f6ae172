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
