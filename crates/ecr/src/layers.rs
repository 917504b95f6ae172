//! ECR's own layer operations (what AWS's SDK-based pushers use instead of `/v2/`):
//! `BatchCheckLayerAvailability`, `GetDownloadUrlForLayer`, `InitiateLayerUpload`,
//! `UploadLayerPart`, `CompleteLayerUpload`, over the same upload sessions as the registry; and
//! the small repository settings `PutImageTagMutability`, `PutImageScanningConfiguration`.

use base64::Engine as _;
use nimbus_api::AwsError;
use nimbus_images::ImageError;
use serde_json::{json, Value};

use crate::api::Input;
use crate::errors::{from_store, invalid};
use crate::Ecr;

/// The part size ECR suggests (and nimbus accepts any).
const PART_SIZE: u64 = 10 << 20;

impl Ecr {
    fn upload_not_found(&self, repo: &str, id: &str) -> AwsError {
        AwsError::new(
            400,
            "UploadNotFoundException",
            format!(
                "Upload with id '{id}' is not found in repository with name '{repo}' in registry with id '{}'",
                self.identity.account
            ),
        )
    }

    pub(crate) fn batch_check_layer_availability(
        &self,
        region: &str,
        input: &Input,
    ) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        self.images.repository(region, repo).map_err(from_store)?;
        let digests = input.get("layerDigests").and_then(Value::as_array).ok_or_else(|| {
            invalid("1 validation error detected: Value null at 'layerDigests' failed to satisfy constraint: Member must not be null")
        })?;
        let (mut layers, mut failures) = (Vec::new(), Vec::new());
        for digest in digests {
            let digest = digest.as_str().unwrap_or_default();
            if nimbus_images::digest::check(digest).is_err() {
                failures.push(json!({"layerDigest": digest, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"}));
                continue;
            }
            match self.images.blob_in(region, repo, digest).map_err(from_store)? {
                Some(size) => layers.push(json!({"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": size})),
                None => failures.push(json!({"layerDigest": digest, "failureCode": "MissingLayerDigest", "failureReason": "Requested layer not found"})),
            }
        }
        Ok(json!({ "layers": layers, "failures": failures }))
    }

    pub(crate) fn get_download_url_for_layer(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let digest = input.required_str("layerDigest")?;
        self.images.repository(region, repo).map_err(from_store)?;
        let known = nimbus_images::digest::check(digest).is_ok()
            && self.images.blob_in(region, repo, digest).map_err(from_store)?.is_some();
        if !known {
            return Err(AwsError::new(
                400,
                "LayersNotFoundException",
                format!("The specified layers '[{digest}]' do not exist in the repository with name '{repo}' in the registry with id '{}'", self.identity.account),
            ));
        }
        let url = format!("http://{}/v2/{repo}/blobs/{digest}", self.registry_host(region));
        Ok(json!({ "downloadUrl": url, "layerDigest": digest }))
    }

    pub(crate) fn initiate_layer_upload(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let id = self.images.start_upload(region, repo).map_err(from_store)?;
        Ok(json!({ "uploadId": id, "partSize": PART_SIZE }))
    }

    pub(crate) fn upload_layer_part(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let id = input.required_str("uploadId")?;
        let blob = input.required_str("layerPartBlob")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| AwsError::new(400, "SerializationException", "layerPartBlob is not valid base64"))?;
        let first = input.get("partFirstByte").and_then(Value::as_u64);
        let last = input.get("partLastByte").and_then(Value::as_u64);
        let (Some(first), Some(last)) = (first, last) else {
            return Err(invalid("partFirstByte and partLastByte are required"));
        };
        if last + 1 != first + bytes.len() as u64 {
            return Err(AwsError::new(
                400,
                "InvalidLayerPartException",
                format!("The part spans bytes {first}-{last} but carries {} bytes", bytes.len()),
            ));
        }
        let size =
            self.images.append_upload(region, repo, id, Some(first), &bytes).map_err(
                |error| match error {
                    ImageError::UploadUnknown(_) => self.upload_not_found(repo, id),
                    ImageError::RangeInvalid(why) => AwsError::new(400, "InvalidLayerPartException", why),
                    other => from_store(other),
                },
            )?;
        Ok(json!({
            "registryId": self.identity.account,
            "repositoryName": repo,
            "uploadId": id,
            "lastByteReceived": size.saturating_sub(1),
        }))
    }

    pub(crate) fn complete_layer_upload(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let id = input.required_str("uploadId")?;
        let digest = input
            .get("layerDigests")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("layerDigests must name the layer's digest"))?;
        let size = self.images.upload_size(region, repo, id).map_err(|_| self.upload_not_found(repo, id))?;
        if size == 0 {
            return Err(AwsError::new(
                400,
                "EmptyUploadException",
                format!("The upload with id '{id}' has no layer parts"),
            ));
        }
        let digest =
            self.images.finish_upload(region, repo, id, &[], digest).map_err(|error| match error {
                ImageError::DigestInvalid(why) => AwsError::new(400, "InvalidLayerException", why),
                other => from_store(other),
            })?;
        Ok(json!({
            "registryId": self.identity.account,
            "repositoryName": repo,
            "uploadId": id,
            "layerDigest": digest,
        }))
    }

    /// `PutImageTagMutability` and `PutImageScanningConfiguration`.
    pub(crate) fn put_setting(
        &self,
        region: &str,
        input: &Input,
        member: &'static str,
    ) -> Result<Value, AwsError> {
        let repo = input.repository_name()?;
        let value = input.get(member).cloned().ok_or_else(|| {
            invalid(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"))
        })?;
        if member == "imageTagMutability"
            && !["MUTABLE", "IMMUTABLE"].contains(&value.as_str().unwrap_or_default())
        {
            return Err(invalid(format!(
                "1 validation error detected: Value '{value}' at 'imageTagMutability' failed to satisfy constraint: Member must satisfy enum value set: [MUTABLE, IMMUTABLE]"
            )));
        }
        self.images
            .update_repository(region, repo, |config| {
                config[member] = value.clone();
                Ok(())
            })
            .map_err(from_store)?;
        Ok(json!({ "registryId": self.identity.account, "repositoryName": repo, member: value }))
    }
}
