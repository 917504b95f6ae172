//! PublishVersion, ListVersionsByFunction and deleting a version: immutable snapshots of
//! `$LATEST`'s code and configuration, numbered without ever reusing a number.

use nimbus_api::AwsError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::registry::Function;
use crate::Lambda;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

impl Lambda {
    pub(crate) async fn publish_version(&self, name: &str, body: &[u8]) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let input: PublishInput = crate::functions::parse(body)?;
        let latest = &function.latest.stored;
        if let Some(expected) = &input.code_sha256 {
            if *expected != latest.configuration.code_sha256 {
                return Err(AwsError::invalid_parameter(format!(
                    "CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the current CodeSHA256.",
                    latest.configuration.code_sha256
                )));
            }
        }
        crate::functions::check_revision(&function.latest, input.revision_id.as_deref())?;
        // Nothing changed since the newest version: AWS answers with that version.
        if let Some(newest) = function.versions.values().next_back() {
            let unchanged = newest.code_hex == function.latest.code_hex
                && comparable(&newest.stored.configuration) == comparable(&latest.configuration)
                && input.description.as_ref().is_none_or(|d| *d == newest.stored.configuration.description);
            if unchanged {
                return Ok(to_value(&newest.stored.configuration));
            }
        }
        let last = function.resource("counter", "versions").and_then(Value::as_u64).unwrap_or(0);
        let number = last.max(function.versions.keys().next_back().copied().unwrap_or(0)) + 1;
        self.registry.put_resource(function.name(), "counter", "versions", json!(number)).await?;
        let mut stored = latest.clone();
        let config = &mut stored.configuration;
        config.version = number.to_string();
        config.function_arn = format!("{}:{number}", self.function_arn(function.name()));
        if let Some(description) = input.description {
            config.description = description;
        }
        config.revision_id = uuid::Uuid::new_v4().hyphenated().to_string();
        config.last_update_status = "Successful".into();
        let entry = self.registry.entry(stored, function.latest.code_hex.clone());
        let saved = self.registry.save_version(entry, true).await?;
        Ok(to_value(&saved.stored.configuration))
    }

    pub(crate) fn list_versions(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let limit = crate::functions::page_size(max_items)?;
        let all: Vec<Value> = std::iter::once(&function.latest)
            .chain(function.versions.values())
            .map(|entry| to_value(&entry.stored.configuration))
            .collect();
        let start = marker.and_then(|m| m.parse::<usize>().ok()).unwrap_or(0).min(all.len());
        let end = (start + limit).min(all.len());
        let mut out = json!({ "Versions": all[start..end] });
        if end < all.len() {
            out["NextMarker"] = json!(end.to_string());
        }
        Ok(out)
    }

    /// Deletes one published version, unless an alias still points at it.
    pub(crate) async fn delete_version(&self, function: &Function, version: &str) -> Result<(), AwsError> {
        let Ok(number) = version.parse::<u64>() else {
            return Err(self.not_found(function.name(), Some(version)));
        };
        if !function.versions.contains_key(&number) {
            // Deleting a version that does not exist succeeds on AWS.
            return Ok(());
        }
        let referencing: Vec<&str> = function
            .resources_of("alias")
            .filter(|(_, alias)| {
                alias["FunctionVersion"] == version
                    || alias["RoutingConfig"]["AdditionalVersionWeights"].get(version).is_some()
            })
            .map(|(name, _)| name)
            .collect();
        if !referencing.is_empty() {
            return Err(AwsError::conflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                referencing.join(", ")
            )));
        }
        self.registry.remove_version(function.name(), number).await?;
        self.engine.retire_version(function.name(), version);
        Ok(())
    }
}

/// The configuration without what always differs between `$LATEST` and a version.
fn comparable(config: &crate::model::FunctionConfiguration) -> Value {
    let mut value = to_value(config);
    if let Some(object) = value.as_object_mut() {
        for key in ["Version", "FunctionArn", "RevisionId", "LastModified", "Description", "LastUpdateStatus"]
        {
            object.remove(key);
        }
    }
    value
}

fn to_value(config: &crate::model::FunctionConfiguration) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}
