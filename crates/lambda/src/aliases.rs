//! CreateAlias, GetAlias, UpdateAlias, DeleteAlias and ListAliases. An alias names a version,
//! optionally sending a share of invocations to a second one (`RoutingConfig`).

use nimbus_api::AwsError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::registry::{Function, LATEST};
use crate::resolve::version_entry;
use crate::{validate, Lambda};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<Value>,
    revision_id: Option<String>,
}

impl Lambda {
    pub(crate) async fn create_alias(&self, function: &str, body: &[u8]) -> Result<Value, AwsError> {
        let function = self.function(function)?;
        let input: AliasInput = crate::functions::parse(body)?;
        let name = input.name.clone().ok_or_else(|| missing("name"))?;
        alias_name(&name)?;
        if function.resource("alias", &name).is_some() {
            return Err(AwsError::conflict(format!(
                "Alias already exists: {}",
                self.alias_arn(&function, &name)
            )));
        }
        let version = input.function_version.clone().ok_or_else(|| missing("functionVersion"))?;
        let alias = json!({
            "AliasArn": self.alias_arn(&function, &name),
            "Name": name,
            "FunctionVersion": version,
            "Description": input.description.unwrap_or_default(),
            "RevisionId": uuid::Uuid::new_v4().hyphenated().to_string(),
        });
        self.save_alias(&function, alias, input.routing_config).await
    }

    pub(crate) fn get_alias(&self, function: &str, name: &str) -> Result<Value, AwsError> {
        let function = self.function(function)?;
        function.resource("alias", name).cloned().ok_or_else(|| self.alias_not_found(&function, name))
    }

    pub(crate) async fn update_alias(
        &self,
        function: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let function = self.function(function)?;
        let mut alias =
            function.resource("alias", name).cloned().ok_or_else(|| self.alias_not_found(&function, name))?;
        let input: AliasInput = crate::functions::parse(body)?;
        if input.revision_id.as_ref().is_some_and(|r| alias["RevisionId"] != *r) {
            return Err(AwsError::new(
                412,
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            ));
        }
        if let Some(version) = input.function_version {
            alias["FunctionVersion"] = json!(version);
        }
        if let Some(description) = input.description {
            alias["Description"] = json!(description);
        }
        alias["RevisionId"] = json!(uuid::Uuid::new_v4().hyphenated().to_string());
        let routing = input.routing_config.or_else(|| alias.get("RoutingConfig").cloned());
        self.save_alias(&function, alias, routing).await
    }

    pub(crate) async fn delete_alias(&self, function: &str, name: &str) -> Result<(), AwsError> {
        let function = self.function(function)?;
        // Deleting an alias that does not exist succeeds on AWS.
        self.registry.delete_resource(function.name(), "alias", name).await?;
        Ok(())
    }

    pub(crate) fn list_aliases(
        &self,
        function: &str,
        version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<Value, AwsError> {
        let function = self.function(function)?;
        let limit = crate::functions::page_size(max_items)?;
        let matching: Vec<&Value> = function
            .resources_of("alias")
            .filter(|(name, alias)| {
                version.is_none_or(|v| alias["FunctionVersion"] == v) && marker.is_none_or(|m| *name > m)
            })
            .map(|(_, alias)| alias)
            .collect();
        let page: Vec<&Value> = matching.iter().take(limit).copied().collect();
        let mut out = json!({ "Aliases": page });
        if matching.len() > limit {
            out["NextMarker"] = page.last().map(|a| a["Name"].clone()).unwrap_or_default();
        }
        Ok(out)
    }

    /// Validates the version and routing, then stores the alias.
    async fn save_alias(
        &self,
        function: &Function,
        mut alias: Value,
        routing: Option<Value>,
    ) -> Result<Value, AwsError> {
        let version = alias["FunctionVersion"].as_str().unwrap_or_default().to_owned();
        if version_entry(function, &version).is_none() {
            return Err(self.not_found(function.name(), Some(&version)));
        }
        let weights =
            routing.as_ref().and_then(|r| r.get("AdditionalVersionWeights")).and_then(Value::as_object);
        match weights {
            Some(weights) if !weights.is_empty() => {
                check_routing(function, &version, weights)?;
                alias["RoutingConfig"] = json!({ "AdditionalVersionWeights": weights });
            }
            _ => {
                if let Some(object) = alias.as_object_mut() {
                    object.remove("RoutingConfig");
                }
            }
        }
        let name = alias["Name"].as_str().unwrap_or_default().to_owned();
        self.registry.put_resource(function.name(), "alias", &name, alias.clone()).await?;
        Ok(alias)
    }

    fn alias_arn(&self, function: &Function, name: &str) -> String {
        format!("{}:{name}", self.function_arn(function.name()))
    }

    fn alias_not_found(&self, function: &Function, name: &str) -> AwsError {
        AwsError::not_found(format!("Alias not found: {}", self.alias_arn(function, name)))
    }
}

/// AWS's rules for weighted aliases: one additional published version, not the primary, with a
/// weight in [0, 1], and a published primary.
fn check_routing(function: &Function, primary: &str, weights: &Map<String, Value>) -> Result<(), AwsError> {
    if weights.len() > 1 {
        return Err(validate::constraint(
            Value::Object(weights.clone()),
            "routingConfig.additionalVersionWeights",
            "Member must have length less than or equal to 1",
        ));
    }
    if primary == LATEST {
        return Err(AwsError::invalid_parameter(
            "$LATEST is not supported for an alias pointing to more than 1 version",
        ));
    }
    for (version, weight) in weights {
        let weight = weight.as_f64().unwrap_or(-1.0);
        if !(0.0..=1.0).contains(&weight) {
            return Err(validate::constraint(
                weight,
                "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]",
            ));
        }
        if version == primary {
            return Err(AwsError::invalid_parameter(format!(
                "Invalid function version {version}. Function version {version} is already included in routing configuration."
            )));
        }
        if version == LATEST || version_entry(function, version).is_none() {
            return Err(AwsError::invalid_parameter(format!("Invalid function version {version}.")));
        }
    }
    Ok(())
}

fn alias_name(name: &str) -> Result<(), AwsError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.bytes().all(|b| b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(validate::constraint(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ))
    }
}

fn missing(member: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}
