//! Repositories: create, describe, delete (`force` with images), lifecycle policies (checked and
//! stored here, enforced by [`crate::lifecycle`]), and tags.

use nimbus_api::AwsError;
use nimbus_images::{reference, Repository};
use serde_json::{json, Value};

use crate::api::{page, Input};
use crate::errors::{from_store, invalid};
use crate::Ecr;

impl Ecr {
    pub(crate) fn arn(&self, region: &str, name: &str) -> String {
        format!("arn:aws:ecr:{region}:{}:repository/{name}", self.identity.account)
    }

    pub(crate) fn repository_json(&self, repository: &Repository) -> Value {
        let config = &repository.config;
        json!({
            "repositoryArn": self.arn(&repository.region, &repository.name),
            "registryId": self.identity.account,
            "repositoryName": repository.name,
            "repositoryUri": format!("{}/{}", self.registry_host(&repository.region), repository.name),
            "createdAt": repository.created_ms as f64 / 1000.0,
            "imageTagMutability": config.get("imageTagMutability").cloned().unwrap_or(json!("MUTABLE")),
            "imageScanningConfiguration": config.get("imageScanningConfiguration").cloned().unwrap_or(json!({"scanOnPush": false})),
            "encryptionConfiguration": config.get("encryptionConfiguration").cloned().unwrap_or(json!({"encryptionType": "AES256"})),
        })
    }

    pub(crate) fn create_repository(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let mutability = input.str("imageTagMutability").unwrap_or("MUTABLE");
        if !["MUTABLE", "IMMUTABLE"].contains(&mutability) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{mutability}' at 'imageTagMutability' failed to satisfy constraint: Member must satisfy enum value set: [MUTABLE, IMMUTABLE]"
            )));
        }
        let tags = input.get("tags").cloned().unwrap_or(json!([]));
        check_tags(&tags)?;
        let config = json!({
            "imageTagMutability": mutability,
            "imageScanningConfiguration": input.get("imageScanningConfiguration").cloned().unwrap_or(json!({"scanOnPush": false})),
            "encryptionConfiguration": input.get("encryptionConfiguration").cloned().unwrap_or(json!({"encryptionType": "AES256"})),
            "tags": tags,
        });
        let repository = self.images.create_repository(region, name, &config).map_err(from_store)?;
        Ok(json!({ "repository": self.repository_json(&repository) }))
    }

    pub(crate) fn describe_repositories(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let repositories = match input.get("repositoryNames").and_then(Value::as_array) {
            Some(names) => names
                .iter()
                .map(|name| self.images.repository(region, name.as_str().unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(from_store)?,
            None => self.images.repositories(region).map_err(from_store)?,
        };
        let rows: Vec<Value> = repositories.iter().map(|r| self.repository_json(r)).collect();
        let (rows, next) = page(rows, input, 1000)?;
        let mut out = json!({ "repositories": rows });
        if let Some(next) = next {
            out["nextToken"] = json!(next);
        }
        Ok(out)
    }

    pub(crate) fn delete_repository(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let force = input.get("force").and_then(Value::as_bool).unwrap_or(false);
        let repository = self.images.delete_repository(region, name, force).map_err(from_store)?;
        self.collect_later();
        Ok(json!({ "repository": self.repository_json(&repository) }))
    }

    pub(crate) fn put_lifecycle_policy(&self, region: &str, input: &Input) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let text = input.required_str("lifecyclePolicyText")?;
        crate::lifecycle::parse(text)?;
        self.images
            .update_repository(region, name, |config| {
                config["lifecyclePolicy"] = json!(text);
                Ok(())
            })
            .map_err(from_store)?;
        Ok(json!({"registryId": self.identity.account, "repositoryName": name, "lifecyclePolicyText": text}))
    }

    pub(crate) fn get_lifecycle_policy(
        &self,
        region: &str,
        input: &Input,
        delete: bool,
    ) -> Result<Value, AwsError> {
        let name = input.repository_name()?;
        let mut text = None;
        self.images
            .update_repository(region, name, |config| {
                text = config.get("lifecyclePolicy").and_then(Value::as_str).map(str::to_owned);
                if delete {
                    if let Some(map) = config.as_object_mut() {
                        map.remove("lifecyclePolicy");
                    }
                }
                Ok(())
            })
            .map_err(from_store)?;
        let text = text.ok_or_else(|| {
            AwsError::new(
                400,
                "LifecyclePolicyNotFoundException",
                format!(
                    "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
                    self.identity.account
                ),
            )
        })?;
        Ok(json!({
            "registryId": self.identity.account,
            "repositoryName": name,
            "lifecyclePolicyText": text,
            "lastEvaluatedAt": 0.0,
        }))
    }

    /// The repository an ARN names, with its region.
    fn by_arn<'a>(&self, arn: &'a str) -> Result<(&'a str, &'a str), AwsError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", "aws", "ecr", region, _, resource] => {
                let name = resource.strip_prefix("repository/").ok_or_else(|| invalid(format!("Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN {arn}'")))?;
                Ok((region, name))
            }
            _ => Err(invalid(format!(
                "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN {arn}'"
            ))),
        }
    }

    pub(crate) fn tags(&self, input: &Input, operation: &str) -> Result<Value, AwsError> {
        let (region, name) = self.by_arn(input.required_str("resourceArn")?)?;
        let mut listed = json!([]);
        self.images
            .update_repository(region, name, |config| {
                let mut tags: Vec<Value> =
                    config.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
                match operation {
                    "TagResource" => {
                        let new = input.get("tags").cloned().unwrap_or(json!([]));
                        check_tags(&new).map_err(|e| nimbus_images::ImageError::Invalid(e.message))?;
                        for tag in new.as_array().into_iter().flatten() {
                            tags.retain(|t| t["Key"] != tag["Key"]);
                            tags.push(tag.clone());
                        }
                    }
                    "UntagResource" => {
                        let keys =
                            input.get("tagKeys").and_then(Value::as_array).cloned().unwrap_or_default();
                        tags.retain(|t| !keys.contains(&t["Key"]));
                    }
                    _ => {}
                }
                listed = json!(tags);
                config["tags"] = listed.clone();
                Ok(())
            })
            .map_err(from_store)?;
        Ok(match operation {
            "ListTagsForResource" => json!({ "tags": listed }),
            _ => json!({}),
        })
    }
}

fn check_tags(tags: &Value) -> Result<(), AwsError> {
    let tags = tags.as_array().ok_or_else(|| invalid("tags must be a list"))?;
    for tag in tags {
        if !tag.get("Key").is_some_and(Value::is_string) || !tag.get("Value").is_some_and(Value::is_string) {
            return Err(AwsError::new(
                400,
                "InvalidTagParameterException",
                "Each tag needs a Key and a Value",
            ));
        }
    }
    Ok(())
}

/// ECR's name rule, in its message.
pub(crate) fn check_name(name: &str) -> Result<(), AwsError> {
    if reference::valid_repository(name) {
        return Ok(());
    }
    Err(invalid(
        "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''",
    ))
}
