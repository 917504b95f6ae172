//! nimbus's own image paths: `GET /_nimbus/images` (every image of every repository, what
//! `nimbus images` prints), `POST /_nimbus/images/import` (a `docker save` or OCI layout tar
//! as the body; `?repository=&tag=` override the names inside), `POST /_nimbus/images/gc`
//! (`?grace=SECONDS`), `POST /_nimbus/images/unpack?reference=&architecture=` (the root a
//! function or job would get) and `POST /_nimbus/images/pull?reference=&architecture=` (the
//! same, resolving a tag of another registry again now).

use nimbus_api::{json_response, ApiRequest, ApiResponse, AwsError, Protocol};
use nimbus_images::pull::PULLED_REGION;
use nimbus_images::{ImageError, ImportTarget};
use serde_json::{json, Value};

use crate::{Ecr, ADMIN_PREFIX};

fn failed(error: ImageError) -> AwsError {
    let status = match error {
        ImageError::Db(_) | ImageError::Io(_) => 500,
        _ => 400,
    };
    let code = match error {
        ImageError::Hostile { .. } => "LayerRefused",
        ImageError::CannotPull(_) => "CannotPullContainerError",
        _ => "InvalidImage",
    };
    AwsError::new(status, code, error.to_string())
}

impl Ecr {
    pub(crate) fn admin(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.uri.path().trim_start_matches(ADMIN_PREFIX);
        let region = request.query("region").unwrap_or_else(|| self.identity.region.clone());
        let answer = match (request.method.as_str(), path) {
            ("GET", "" | "/") => self.inventory(&region),
            ("POST", "/import") => {
                let (repository, tag) = (request.query("repository"), request.query("tag"));
                let target =
                    ImportTarget { region: &region, repository: repository.as_deref(), tag: tag.as_deref() };
                self.images
                    .import(&request.body[..], &target)
                    .map(|imported| json!({ "imported": imported }))
                    .map_err(failed)
            }
            ("POST", "/gc") => {
                let grace =
                    request.query("grace").and_then(|g| g.parse::<f64>().ok()).map(|s| (s * 1000.0) as i64);
                self.images.gc(grace).map(|report| json!(report)).map_err(failed)
            }
            ("POST", path @ ("/unpack" | "/pull")) => {
                let reference = request.query("reference").unwrap_or_default();
                let architecture = request
                    .query("architecture")
                    .unwrap_or_else(|| nimbus_images::host_architecture().into());
                let root = match path {
                    "/pull" => self.images.pull(&reference, &architecture),
                    _ => self.images.root_for(&reference, &architecture),
                };
                root.map(|root| {
                    json!({
                        "rootfs": root.rootfs,
                        "digest": root.digest,
                        "resolved": root.resolved,
                        "architecture": root.architecture,
                        "config": root.config,
                    })
                })
                .map_err(failed)
            }
            (method, path) => Err(AwsError::new(
                405,
                "MethodNotAllowed",
                format!("{method} {ADMIN_PREFIX}{path} is not served"),
            )),
        };
        match answer {
            Ok(value) => json_response(value),
            Err(error) => error.into_response(Protocol::RestJson),
        }
    }

    /// The region's images, then those pulled from other registries (named as pulled).
    fn inventory(&self, region: &str) -> Result<Value, AwsError> {
        let mut rows = Vec::new();
        for (region, pulled) in [(region, false), (PULLED_REGION, true)] {
            for repository in self.images.repositories(region).map_err(failed)? {
                let uri = match pulled {
                    true => repository.name.clone(),
                    false => format!("{}/{}", self.registry_host(region), repository.name),
                };
                self.inventory_of(region, &repository.name, &uri, &mut rows)?;
            }
        }
        Ok(json!({ "images": rows, "roots": self.images.unpacked_roots() }))
    }

    fn inventory_of(
        &self,
        region: &str,
        name: &str,
        uri: &str,
        rows: &mut Vec<Value>,
    ) -> Result<(), AwsError> {
        for image in self.images.images(region, name).map_err(failed)? {
            rows.push(json!({
                "repository": name,
                "uri": uri,
                "tags": image.tags,
                "digest": image.digest,
                "media_type": image.media_type,
                "size": image.size,
                "pushed_ms": image.pushed_ms,
            }));
        }
        Ok(())
    }
}
