//! `AWS::ECR::Repository` for CloudFormation, provisioned through ECR's own operations (the
//! same checks and errors as the API). `Ref` is the repository's name; `Arn` and
//! `RepositoryUri` the attributes.

use nimbus_api::provider::{
    camel_keys, document, tag_map, ProviderError, ProviderFuture, Provisioned, ResourceProvider,
    ResourceRequest,
};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::Ecr;

pub const RESOURCE_TYPES: &[&str] = &["AWS::ECR::Repository"];

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!(
        "{} (Service: {}, Status Code: {})",
        error.message,
        error.code,
        error.status.as_u16()
    ))
}

impl Ecr {
    fn run(&self, operation: &str, region: &str, input: Value) -> Result<Value, ProviderError> {
        let body = input.to_string().into_bytes();
        tokio::task::block_in_place(|| self.dispatch(operation, region, &body)).map_err(fail)
    }

    fn tag_list(request: &ResourceRequest) -> Vec<Value> {
        let mut tags = tag_map(request.property("Tags"));
        for (key, value) in &request.tags {
            tags.entry(key.clone()).or_insert(json!(value));
        }
        tags.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect()
    }

    fn lifecycle(&self, request: &ResourceRequest, name: &str) -> Result<(), ProviderError> {
        let text = request.property("LifecyclePolicy").and_then(|p| p.get("LifecyclePolicyText"));
        if let Some(text) = text {
            let input = json!({"repositoryName": name, "lifecyclePolicyText": document(text)});
            self.run("PutLifecyclePolicy", &request.region, input)?;
        }
        Ok(())
    }

    fn described(&self, region: &str, name: &str) -> Result<Provisioned, ProviderError> {
        let answer = self.run("DescribeRepositories", region, json!({"repositoryNames": [name]}))?;
        let repository = &answer["repositories"][0];
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), repository["repositoryArn"].clone());
        attributes.insert("RepositoryUri".into(), repository["repositoryUri"].clone());
        Ok(Provisioned { physical_id: name.to_owned(), attributes })
    }
}

impl ResourceProvider for Ecr {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, _resource_type: &str, property: &str) -> bool {
        matches!(property, "RepositoryName" | "EncryptionConfiguration")
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            let name = request
                .string("RepositoryName")
                .map(str::to_owned)
                .unwrap_or_else(|| request.generated_name(256, true));
            let mut input = json!({"repositoryName": name, "tags": Self::tag_list(&request)});
            for property in ["ImageTagMutability", "ImageScanningConfiguration", "EncryptionConfiguration"] {
                if let Some(value) = request.property(property) {
                    let mut chars = property.chars();
                    let key = chars.next().map(|c| c.to_ascii_lowercase().to_string()).unwrap_or_default()
                        + chars.as_str();
                    input[key] = camel_keys(value, &[]);
                }
            }
            nimbus_api::provider::booleans(
                input["imageScanningConfiguration"].as_object_mut().unwrap_or(&mut Map::new()),
                &["scanOnPush"],
            );
            self.run("CreateRepository", &request.region, input)?;
            self.lifecycle(&request, &name)?;
            self.described(&request.region, &name)
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            let region = request.region.as_str();
            let mutability = request.string("ImageTagMutability").unwrap_or("MUTABLE");
            let input = json!({"repositoryName": physical_id, "imageTagMutability": mutability});
            self.run("PutImageTagMutability", region, input)?;
            let scan = request
                .property("ImageScanningConfiguration")
                .and_then(|c| c.get("ScanOnPush"))
                .is_some_and(|v| v == true || v == "true");
            let input =
                json!({"repositoryName": physical_id, "imageScanningConfiguration": {"scanOnPush": scan}});
            self.run("PutImageScanningConfiguration", region, input)?;
            self.lifecycle(&request, &physical_id)?;
            self.described(region, &physical_id)
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let force = request.property("EmptyOnDelete").is_some_and(|v| v == true || v == "true");
            let input = json!({"repositoryName": physical_id, "force": force});
            match self.run("DeleteRepository", &request.region, input) {
                Err(error) if error.message.contains("RepositoryNotFoundException") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(properties: Value) -> ResourceRequest {
        ResourceRequest::example("Stack", "Repo", "AWS::ECR::Repository", properties)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn repositories_are_named_created_updated_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let database = nimbus_store::Database::sqlite(dir.path());
        let blobs = nimbus_store::Blobs::new(dir.path(), "local", false);
        let options = nimbus_images::Options::new("us-east-1", "000000000000");
        let images = nimbus_images::Images::open(&database, &blobs, options).unwrap();
        let ecr = Ecr::new(
            images,
            nimbus_api::Identity::default(),
            4566,
            std::sync::Arc::new(nimbus_api::clock::SystemClock),
        );
        let created = ecr.create(request(json!({"ImageTagMutability": "IMMUTABLE"}))).await.unwrap();
        // Generated names are lower case, as ECR wants them.
        assert!(created.physical_id.starts_with("stack-repo-"), "{}", created.physical_id);
        assert!(created.attributes["Arn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("repository/{}", created.physical_id)));
        let name = created.physical_id.clone();
        ecr.update(request(json!({})), name.clone(), Map::new()).await.unwrap();
        let described =
            ecr.run("DescribeRepositories", "us-east-1", json!({"repositoryNames": [name]})).unwrap();
        assert_eq!(described["repositories"][0]["imageTagMutability"], "MUTABLE");
        ecr.delete(request(json!({})), name.clone()).await.unwrap();
        ecr.delete(request(json!({})), name.clone()).await.unwrap();
        assert!(ecr.run("DescribeRepositories", "us-east-1", json!({"repositoryNames": [name]})).is_err());
    }
}
