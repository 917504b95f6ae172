//! Amazon ECR on nimbus's port: the `ecr` API (JSON 1.1, `AmazonEC2ContainerRegistry_V20150921`)
//! over the image store, the OCI distribution API under `/v2/` that `skopeo`, `podman`, `crane`
//! and `docker` push to and pull from, and nimbus's own `/_nimbus/images` paths (import, list,
//! garbage collection, unpack) behind `nimbus images`.

mod admin;
mod api;
mod dist;
mod errors;
mod layers;
mod lifecycle;
pub mod provider;
mod repositories;

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, Identity, Protocol, Service, ServiceFuture};
use nimbus_images::Images;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// nimbus's own paths, answered before ECR is opened (they open it).
pub const ADMIN_PREFIX: &str = "/_nimbus/images";

pub struct Ecr {
    images: Arc<Images>,
    identity: Identity,
    /// nimbus's port, for repository URIs (`<account>.dkr.ecr.<region>.localhost:<port>/name`).
    port: u16,
    /// nimbus's clock, which lifecycle policies count days on.
    clock: Arc<dyn nimbus_api::clock::Clock>,
}

impl Ecr {
    /// ECR over `images`; its lifecycle sweep starts on `clock` (when a runtime is there).
    pub fn new(
        images: Arc<Images>,
        identity: Identity,
        port: u16,
        clock: Arc<dyn nimbus_api::clock::Clock>,
    ) -> Arc<Ecr> {
        let ecr = Arc::new(Ecr { images, identity, port, clock });
        lifecycle::run(ecr.clone());
        ecr
    }

    /// The image store, for the services that run images (Lambda, Batch).
    pub fn images(&self) -> &Arc<Images> {
        &self.images
    }

    /// The registry host of a region.
    fn registry_host(&self, region: &str) -> String {
        format!("{}.dkr.ecr.{region}.localhost:{}", self.identity.account, self.port)
    }

    /// Garbage collection after a deletion, off the request (with the store's grace period).
    fn collect_later(&self) {
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = images.gc(None) {
                eprintln!("nimbus: image garbage collection failed: {error}");
            }
        });
    }
}

impl Service for Ecr {
    fn name(&self) -> &'static str {
        "ecr"
    }

    fn claims(&self, _method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        uri.path().starts_with(ADMIN_PREFIX)
            || headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with(TARGET_PREFIX))
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let path = request.uri.path();
            if path.starts_with(ADMIN_PREFIX) {
                return tokio::task::block_in_place(|| self.admin(&request));
            }
            if request.header("x-amz-target").is_none() && (path == "/v2" || path.starts_with("/v2/")) {
                return tokio::task::block_in_place(|| self.distribution(&request));
            }
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            let region = nimbus_region(&request).unwrap_or_else(|| self.identity.region.clone());
            match tokio::task::block_in_place(|| self.dispatch(&operation, &region, &request.body)) {
                Ok(value) => {
                    let mut response = nimbus_api::json_response(value);
                    let json = HeaderValue::from_static("application/x-amz-json-1.1");
                    response.headers_mut().insert(CONTENT_TYPE, json);
                    response
                }
                Err(error) => error.into_response(Protocol::Json),
            }
        })
    }
}

/// The region of a SigV4-signed request's credential scope.
fn nimbus_region(request: &ApiRequest) -> Option<String> {
    nimbus_api::scope::scope_of(&request.headers, &request.uri).map(|s| s.region).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests;
