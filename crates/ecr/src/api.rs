//! The `ecr` API's operations on images, and the dispatch of every operation.

use base64::Engine as _;
use nimbus_api::AwsError;
use nimbus_images::{oci, ImageError, ImageInfo};
use serde_json::{json, Map, Value};

use crate::errors::{from_store, invalid};
use crate::repositories::check_name;
use crate::Ecr;

/// A JSON 1.1 request body.
pub(crate) struct Input(Map<String, Value>);

impl Input {
    pub fn parse(body: &[u8]) -> Result<Input, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Input(map)),
            _ => Err(AwsError::new(400, "SerializationException", "The request body is not a JSON object")),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn required_str(&self, name: &str) -> Result<&str, AwsError> {
        self.str(name).ok_or_else(|| {
            invalid(format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    pub fn repository_name(&self) -> Result<&str, AwsError> {
        let name = self.required_str("repositoryName")?;
        check_name(name)?;
        Ok(name)
    }
}

/// One page of `rows` after `nextToken` (an offset), at most `maxResults` (≤ `limit`).
pub(crate) fn page(
    rows: Vec<Value>,
    input: &Input,
    limit: u64,
) -> Result<(Vec<Value>, Option<String>), AwsError> {
    let max = input.get("maxResults").and_then(Value::as_u64).unwrap_or(limit);
    if max == 0 || max > limit {
        return Err(invalid(format!(
            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {limit}"
        )));
    }
    let start = match input.str("nextToken") {
        Some(token) => token.parse::<usize>().map_err(|_| {
            invalid(
                "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid pagination token'",
            )
        })?,
        None => 0,
    };
    let end = (start + max as usize).min(rows.len());
    let next = (end < rows.len()).then(|| end.to_string());
    Ok((rows.into_iter().skip(start).take(end.saturating_sub(start)).collect(), next))
}

impl Ecr {
    pub(crate) fn dispatch(&self, operation: &str, region: &str, body: &[u8]) -> Result<Value, AwsError> {
        let input = Input::parse(body)?;
        match operation {
            "CreateRepository" => self.create_repository(region, &input),
            "DescribeRepositories" => self.describe_repositories(region, &input),
            "DeleteRepository" => self.delete_repository(region, &input),
            "DescribeImages" => self.describe_images(region, &input),
            "ListImages" => self.list_images(region, &input),
            "BatchGetImage" => self.batch_get_image(region, &input),
            "BatchDeleteImage" => self.batch_delete_image(region, &input),
            "PutImage" => self.put_image(region, &input),
            "GetAuthorizationToken" => Ok(self.authorization_token(region)),
            "PutLifecyclePolicy" => self.put_lifecycle_policy(region, &input),
            "GetLifecyclePolicy" => self.get_lifecycle_policy(region, &input, false),
            "DeleteLifecyclePolicy" => self.get_lifecycle_policy(region, &input, true),
            "StartLifecyclePolicyPreview" => self.start_lifecycle_policy_preview(region, &input),
            "GetLifecyclePolicyPreview" => self.get_lifecycle_policy_preview(region, &input),
            "TagResource" | "UntagResource" | "ListTagsForResource" => self.tags(&input, operation),
            "BatchCheckLayerAvailability" => self.batch_check_layer_availability(region, &input),
            "GetDownloadUrlForLayer" => self.get_download_url_for_layer(region, &input),
            "InitiateLayerUpload" => self.initiate_layer_upload(region, &input),
            "UploadLayerPart" => self.upload_layer_part(region, &input),
            "CompleteLayerUpload" => self.complete_layer_upload(region, &input),
            "PutImageTagMutability" => self.put_setting(region, &input, "imageTagMutability"),
            "PutImageScanningConfiguration" => self.put_setting(region, &input, "imageScanningConfiguration"),
            "DescribeRegistry" => Ok(json!({
                "registryId": self.identity.account,
                "replicationConfiguration": { "rules": [] },
            })),
            _ => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("nimbus does not implement the Amazon ECR operation {operation} yet"),
            )),
        }
    }

    fn not_found(&self, repo: &str, id: &Value) -> AwsError {
        let digest = id.get("imageDigest").and_then(Value::as_str).unwrap_or("null");
        let tag = id.get("imageTag").and_then(Value::as_str).unwrap_or("null");
        AwsError::new(
            400,
            "ImageNotFoundException",
            format!(
                "The image with imageId {{imageDigest:'{digest}', imageTag:'{tag}'}} does not exist within the repository with name '{repo}' in the registry with id '{}'",
                self.identity.account
            ),
        )
    }

    /// The image an `imageId` names, or `None`.
    fn find<'a>(&self, images: &'a [ImageInfo], id: &Value) -> Option<&'a ImageInfo> {
        let digest = id.get("imageDigest").and_then(Value::as_str);
        let tag = id.get("imageTag").and_then(Value::as_str);
        images
            .iter()
            .find(|image| {
                digest.is_none_or(|d| image.digest == d)
                    && tag.is_none_or(|t| image.tags.iter().any(|x| x == t))
            })
            .filter(|_| digest.is_some() || tag.is_some())
    }

    fn detail(&self, repo: &str, image: &ImageInfo) -> Value {
        let mut detail = json!({
            "registryId": self.identity.account,
            "repositoryName": repo,
            "imageDigest": image.digest,
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_ms as f64 / 1000.0,
            "imageManifestMediaType": image.media_type,
            "imageStatus": "ACTIVE",
        });
        if !image.tags.is_empty() {
            detail["imageTags"] = json!(image.tags);
        }
        if image.config_digest.is_some() {
            detail["artifactMediaType"] = json!(if image.media_type == oci::DOCKER_MANIFEST {
                "application/vnd.docker.container.image.v1+json"
            } else {
                oci::OCI_CONFIG
            });
        }
        detail
    }

    fn tag_status_filter(input: &Input) -> Result<&str, AwsError> {
        let status =
            input.get("filter").and_then(|f| f.get("tagStatus")).and_then(Value::as_str).unwrap_or("ANY");
        match status {
            "TAGGED" | "UNTAGGED" | "ANY" => Ok(status),
            other => Err(invalid(format!("Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' ({other})"))),
        }
    }

    fn describe_images(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let images = self.images.images(region, repo).map_err(from_store)?;
        let rows: Vec<Value> = match input.get("imageIds").and_then(Value::as_array) {
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.find(&images, id)
                        .map(|image| self.detail(repo, image))
                        .ok_or_else(|| self.not_found(repo, id))
                })
                .collect::<Result<_, _>>()?,
            None => {
                let status = Self::tag_status_filter(input)?;
                images
                    .iter()
                    .filter(|i| match status {
                        "TAGGED" => !i.tags.is_empty(),
                        "UNTAGGED" => i.tags.is_empty(),
                        _ => true,
                    })
                    .map(|image| self.detail(repo, image))
                    .collect()
            }
        };
        let (rows, next) = page(rows, input, 1000)?;
        let mut out = json!({ "imageDetails": rows });
        if let Some(next) = next {
            out["nextToken"] = json!(next);
        }
        Ok(out)
    }

    fn list_images(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let status = Self::tag_status_filter(input)?;
        let images = self.images.images(region, repo).map_err(from_store)?;
        let mut ids = Vec::new();
        for image in &images {
            if image.tags.is_empty() && status != "TAGGED" {
                ids.push(json!({ "imageDigest": image.digest }));
            }
            if status != "UNTAGGED" {
                for tag in &image.tags {
                    ids.push(json!({ "imageDigest": image.digest, "imageTag": tag }));
                }
            }
        }
        let (ids, next) = page(ids, input, 1000)?;
        let mut out = json!({ "imageIds": ids });
        if let Some(next) = next {
            out["nextToken"] = json!(next);
        }
        Ok(out)
    }

    fn image_ids(input: &Input) -> Result<&Vec<Value>, AwsError> {
        input.get("imageIds").and_then(Value::as_array).ok_or_else(|| {
            invalid("1 validation error detected: Value null at 'imageIds' failed to satisfy constraint: Member must not be null")
        })
    }

    fn failure(id: &Value, code: &str, reason: &str) -> Value {
        json!({ "imageId": id, "failureCode": code, "failureReason": reason })
    }

    fn batch_get_image(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let images = self.images.images(region, repo).map_err(from_store)?;
        let (mut found, mut failures) = (Vec::new(), Vec::new());
        for id in Self::image_ids(input)? {
            match self.find(&images, id) {
                Some(image) => {
                    let manifest = self.images.manifest(region, repo, &image.digest).map_err(from_store)?;
                    let mut image_id = json!({ "imageDigest": manifest.digest });
                    if let Some(tag) = id.get("imageTag") {
                        image_id["imageTag"] = tag.clone();
                    }
                    found.push(json!({
                        "registryId": self.identity.account,
                        "repositoryName": repo,
                        "imageId": image_id,
                        "imageManifest": String::from_utf8_lossy(&manifest.bytes),
                        "imageManifestMediaType": manifest.media_type,
                    }));
                }
                None => failures.push(Self::failure(id, "ImageNotFound", "Requested image not found")),
            }
        }
        Ok(json!({ "images": found, "failures": failures }))
    }

    fn batch_delete_image(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let (mut deleted, mut failures) = (Vec::new(), Vec::new());
        for id in Self::image_ids(input)? {
            let images = self.images.images(region, repo).map_err(from_store)?;
            let Some(image) = self.find(&images, id) else {
                failures.push(Self::failure(id, "ImageNotFound", "Requested image not found"));
                continue;
            };
            match id.get("imageTag").and_then(Value::as_str) {
                // A tag alone: the tag goes, and the image with its last tag.
                Some(tag) if id.get("imageDigest").is_none() => {
                    let (digest, left) = self.images.untag(region, repo, tag).map_err(from_store)?;
                    if !left {
                        self.images.delete_manifest(region, repo, &digest).map_err(from_store)?;
                    }
                    deleted.push(json!({ "imageDigest": digest, "imageTag": tag }));
                }
                _ => {
                    self.images.delete_manifest(region, repo, &image.digest).map_err(from_store)?;
                    if image.tags.is_empty() {
                        deleted.push(json!({ "imageDigest": image.digest }));
                    }
                    for tag in &image.tags {
                        deleted.push(json!({ "imageDigest": image.digest, "imageTag": tag }));
                    }
                }
            }
        }
        if !deleted.is_empty() {
            self.collect_later();
        }
        Ok(json!({ "imageIds": deleted, "failures": failures }))
    }

    fn put_image(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let manifest = input.required_str("imageManifest")?;
        let media_type = input.str("imageManifestMediaType");
        let tag = input.str("imageTag");
        if let Some(expected) = input.str("imageDigest") {
            if nimbus_images::digest::of(manifest.as_bytes()) != expected {
                return Err(AwsError::new(
                    400,
                    "ImageDigestDoesNotMatchException",
                    format!(
                        "Provided image digest '{expected}' does not match actual image digest '{}'.",
                        nimbus_images::digest::of(manifest.as_bytes())
                    ),
                ));
            }
        }
        let pushed = self.images.put_manifest(region, repo, tag, manifest.as_bytes(), media_type).map_err(|error| match error {
            ImageError::ManifestBlobUnknown(digest) => {
                let parsed = oci::parse(manifest.as_bytes(), media_type);
                if matches!(parsed, Ok(oci::Parsed::Index { .. })) {
                    AwsError::new(400, "ReferencedImagesNotFoundException", format!("Some of the referenced images could not be found: [{digest}]"))
                } else {
                    AwsError::new(400, "LayersNotFoundException", format!("Layers with digests '[{digest}]' required for pushing image into repository with name '{repo}' in the registry with id '{}' do not exist", self.identity.account))
                }
            }
            other => from_store(other),
        })?;
        if pushed.unchanged {
            return Err(AwsError::new(400, "ImageAlreadyExistsException", format!(
                "Image with digest '{}' and tag '{}' already exists in the repository with name '{repo}' in registry with id '{}'",
                pushed.digest,
                tag.unwrap_or("null"),
                self.identity.account
            )));
        }
        let mut image_id = json!({ "imageDigest": pushed.digest });
        if let Some(tag) = tag {
            image_id["imageTag"] = json!(tag);
        }
        let stored = self.images.manifest(region, repo, &pushed.digest).map_err(from_store)?;
        Ok(json!({ "image": {
            "registryId": self.identity.account,
            "repositoryName": repo,
            "imageId": image_id,
            "imageManifest": manifest,
            "imageManifestMediaType": stored.media_type,
        }}))
    }

    /// A token good for twelve hours, as AWS's; nimbus's registry accepts any credentials.
    fn authorization_token(&self, region: &str) -> Value {
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{secret}"));
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 12 * 3600;
        json!({ "authorizationData": [{
            "authorizationToken": token,
            "expiresAt": expires,
            "proxyEndpoint": format!("http://{}", self.registry_host(region)),
        }]})
    }
}
