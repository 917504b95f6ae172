//! The OCI distribution API under `/v2/`: blob uploads (monolithic, chunked, cross-repository
//! mounts), blobs and manifests by tag and digest, tag lists, and errors in the spec's
//! `{"errors":[{"code","message","detail"}]}` shape. The repository's region is the one its
//! host names (`<account>.dkr.ecr.<region>.localhost`), or nimbus's.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, StatusCode};
use nimbus_api::{ApiRequest, ApiResponse, Body};
use nimbus_images::{reference, ImageError};
use serde_json::json;

use crate::Ecr;

type Reply = Result<ApiResponse, (u16, &'static str, String)>;

fn response(status: u16, body: Bytes, headers: &[(&str, String)]) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let map = response.headers_mut();
    map.insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::from_str(value)) {
            map.insert(name, value);
        }
    }
    response
}

fn error_response(status: u16, code: &str, message: String) -> ApiResponse {
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": {} }] });
    response(status, Bytes::from(body.to_string()), &[("content-type", "application/json".into())])
}

fn store_error(error: ImageError) -> (u16, &'static str, String) {
    let message = error.to_string();
    match error {
        ImageError::RepositoryNotFound { .. } => (404, "NAME_UNKNOWN", message),
        ImageError::ManifestUnknown(_) => (404, "MANIFEST_UNKNOWN", message),
        ImageError::BlobUnknown(_) => (404, "BLOB_UNKNOWN", message),
        ImageError::ManifestBlobUnknown(_) => (400, "MANIFEST_BLOB_UNKNOWN", message),
        ImageError::ManifestInvalid(_) => (400, "MANIFEST_INVALID", message),
        ImageError::DigestInvalid(_) => (400, "DIGEST_INVALID", message),
        ImageError::UploadUnknown(_) => (404, "BLOB_UPLOAD_UNKNOWN", message),
        ImageError::RangeInvalid(_) => (416, "RANGE_INVALID", message),
        ImageError::TagImmutable { .. } => (400, "TAG_INVALID", message),
        ImageError::Invalid(_) => (400, "TAG_INVALID", message),
        _ => (500, "UNKNOWN", message),
    }
}

impl Ecr {
    pub(crate) fn distribution(&self, request: &ApiRequest) -> ApiResponse {
        match self.route(request) {
            Ok(response) => response,
            Err((status, code, message)) => error_response(status, code, message),
        }
    }

    fn route(&self, request: &ApiRequest) -> Reply {
        let host = request.header("host").unwrap_or_default();
        let region = reference::ecr_region(host).unwrap_or_else(|| self.identity.region.clone());
        let path = request.uri.path().trim_start_matches("/v2").trim_start_matches('/');
        let method = &request.method;
        if path.is_empty() {
            return Ok(response(
                200,
                Bytes::from_static(b"{}"),
                &[("content-type", "application/json".into())],
            ));
        }
        let unsupported = || (405, "UNSUPPORTED", format!("{method} /v2/{path} is not supported"));
        if let Some(name) = path.strip_suffix("/tags/list") {
            self.named(&region, name)?;
            if *method != Method::GET {
                return Err(unsupported());
            }
            return self.tags_list(request, &region, name);
        }
        if let Some((name, rest)) = path.split_once("/blobs/uploads") {
            self.named(&region, name)?;
            let id = rest.trim_start_matches('/');
            return match (method.as_str(), id.is_empty()) {
                ("POST", true) => self.start_upload(request, &region, name),
                ("PATCH", false) => {
                    let start = request
                        .header("content-range")
                        .and_then(|r| r.split('-').next())
                        .and_then(|s| s.trim().parse().ok());
                    let size = self
                        .images
                        .append_upload(&region, name, id, start, &request.body)
                        .map_err(store_error)?;
                    Ok(self.upload_state(202, name, id, size))
                }
                ("PUT", false) => {
                    let digest = request.query("digest").ok_or_else(|| {
                        (400, "DIGEST_INVALID", "the final PUT of an upload needs ?digest=".to_owned())
                    })?;
                    let digest = self
                        .images
                        .finish_upload(&region, name, id, &request.body, &digest)
                        .map_err(store_error)?;
                    Ok(blob_created(name, &digest))
                }
                ("GET", false) => {
                    let size = self.images.upload_size(&region, name, id).map_err(store_error)?;
                    Ok(self.upload_state(204, name, id, size))
                }
                ("DELETE", false) => {
                    self.images.cancel_upload(&region, name, id).map_err(store_error)?;
                    Ok(response(204, Bytes::new(), &[]))
                }
                _ => Err(unsupported()),
            };
        }
        if let Some((name, digest)) = path.rsplit_once("/blobs/") {
            self.named(&region, name)?;
            return match method.as_str() {
                "GET" | "HEAD" => self.blob(&region, name, digest, *method == Method::HEAD),
                _ => Err(unsupported()),
            };
        }
        if let Some((name, reference)) = path.rsplit_once("/manifests/") {
            self.named(&region, name)?;
            return match method.as_str() {
                "GET" | "HEAD" => {
                    let manifest = self.images.manifest(&region, name, reference).map_err(store_error)?;
                    let headers = [
                        ("content-type", manifest.media_type.clone()),
                        ("docker-content-digest", manifest.digest.clone()),
                        ("etag", format!("\"{}\"", manifest.digest)),
                        ("content-length", manifest.bytes.len().to_string()),
                    ];
                    let body =
                        if *method == Method::HEAD { Bytes::new() } else { Bytes::from(manifest.bytes) };
                    Ok(response(200, body, &headers))
                }
                "PUT" => {
                    let by_digest = reference.starts_with("sha256:");
                    if by_digest && nimbus_images::digest::of(&request.body) != reference {
                        return Err((
                            400,
                            "DIGEST_INVALID",
                            format!("the manifest does not hash to {reference}"),
                        ));
                    }
                    let tag = (!by_digest).then_some(reference);
                    if tag.is_some_and(|t| !reference::valid_tag(t)) {
                        return Err((400, "TAG_INVALID", format!("invalid tag {reference:?}")));
                    }
                    let pushed = self
                        .images
                        .put_manifest(&region, name, tag, &request.body, request.header("content-type"))
                        .map_err(store_error)?;
                    Ok(response(
                        201,
                        Bytes::new(),
                        &[
                            ("location", format!("/v2/{name}/manifests/{}", pushed.digest)),
                            ("docker-content-digest", pushed.digest),
                        ],
                    ))
                }
                "DELETE" => {
                    if reference.starts_with("sha256:") {
                        self.images.delete_manifest(&region, name, reference).map_err(store_error)?;
                    } else {
                        self.images.untag(&region, name, reference).map_err(store_error)?;
                    }
                    self.collect_later();
                    Ok(response(202, Bytes::new(), &[]))
                }
                _ => Err(unsupported()),
            };
        }
        Err((404, "NAME_UNKNOWN", format!("/v2/{path} names no repository resource")))
    }

    /// The repository must exist (ECR does not make repositories on push).
    fn named(&self, region: &str, name: &str) -> Result<(), (u16, &'static str, String)> {
        if !reference::valid_repository(name) {
            return Err((400, "NAME_INVALID", format!("invalid repository name {name:?}")));
        }
        self.images.repository(region, name).map(drop).map_err(|_| {
            (
                404,
                "NAME_UNKNOWN",
                format!(
                    "The repository with name '{name}' does not exist in the registry with id '{}'",
                    self.identity.account
                ),
            )
        })
    }

    fn tags_list(&self, request: &ApiRequest, region: &str, name: &str) -> Reply {
        let mut tags = self.images.tags(region, name).map_err(store_error)?;
        if let Some(last) = request.query("last") {
            tags.retain(|t| *t > last);
        }
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(n) = request.query("n").and_then(|n| n.parse::<usize>().ok()) {
            if tags.len() > n {
                tags.truncate(n);
                if let Some(last) = tags.last() {
                    headers.push(("link", format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\"")));
                }
            }
        }
        let body = json!({ "name": name, "tags": tags });
        Ok(response(200, Bytes::from(body.to_string()), &headers))
    }

    fn start_upload(&self, request: &ApiRequest, region: &str, name: &str) -> Reply {
        if let (Some(digest), Some(from)) = (request.query("mount"), request.query("from")) {
            let mounted = reference::valid_repository(&from)
                && self.images.mount(region, name, &from, &digest).map_err(store_error)?;
            if mounted {
                return Ok(blob_created(name, &digest));
            }
        }
        if let Some(digest) = request.query("digest") {
            let digest =
                self.images.put_blob(region, name, &request.body, Some(&digest)).map_err(store_error)?;
            return Ok(blob_created(name, &digest));
        }
        let id = self.images.start_upload(region, name).map_err(store_error)?;
        Ok(self.upload_state(202, name, &id, 0))
    }

    fn upload_state(&self, status: u16, name: &str, id: &str, size: u64) -> ApiResponse {
        response(
            status,
            Bytes::new(),
            &[
                ("location", format!("/v2/{name}/blobs/uploads/{id}")),
                ("range", format!("0-{}", size.saturating_sub(1))),
                ("docker-upload-uuid", id.to_owned()),
                ("content-length", "0".to_owned()),
            ],
        )
    }

    fn blob(&self, region: &str, name: &str, digest: &str, head: bool) -> Reply {
        nimbus_images::digest::check(digest).map_err(|why| (400, "DIGEST_INVALID", why))?;
        let size = self
            .images
            .blob_in(region, name, digest)
            .map_err(store_error)?
            .ok_or_else(|| (404, "BLOB_UNKNOWN", format!("blob unknown to registry: {digest}")))?;
        let body = if head {
            Bytes::new()
        } else {
            let path = self.images.blob_path(digest).map_err(store_error)?;
            Bytes::from(std::fs::read(path).map_err(|e| store_error(e.into()))?)
        };
        let headers = [
            (CONTENT_TYPE.as_str(), "application/octet-stream".to_owned()),
            (CONTENT_LENGTH.as_str(), size.to_string()),
            ("docker-content-digest", digest.to_owned()),
            ("etag", format!("\"{digest}\"")),
        ];
        Ok(response(200, body, &headers))
    }
}

fn blob_created(name: &str, digest: &str) -> ApiResponse {
    response(
        201,
        Bytes::new(),
        &[
            (LOCATION.as_str(), format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_owned()),
            ("content-length", "0".to_owned()),
        ],
    )
}
