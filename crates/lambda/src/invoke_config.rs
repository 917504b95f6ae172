//! Put/Update/Get/Delete/ListFunctionEventInvokeConfig (retries, event age and destinations of
//! asynchronous invocations; stored now, obeyed once the durable event queue arrives) and the
//! recursion configuration.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::Lambda;

impl Lambda {
    /// `merge`: UpdateFunctionEventInvokeConfig keeps members the request leaves out.
    pub(crate) async fn put_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        body: &[u8],
        merge: bool,
    ) -> Result<Value, AwsError> {
        let target = self.find(name, qualifier)?;
        let input: Value = crate::functions::parse(body)?;
        let key = qualifier.unwrap_or("$LATEST").to_owned();
        let mut config = match (merge, target.function.resource("invoke-config", &key)) {
            (true, Some(existing)) => existing.clone(),
            _ => json!({}),
        };
        if let Some(retries) = input.get("MaximumRetryAttempts").filter(|v| !v.is_null()) {
            let retries = retries.as_i64().unwrap_or(-1);
            crate::validate::range(retries, "maximumRetryAttempts", 0, 2)?;
            config["MaximumRetryAttempts"] = json!(retries);
        }
        if let Some(age) = input.get("MaximumEventAgeInSeconds").filter(|v| !v.is_null()) {
            let age = age.as_i64().unwrap_or(-1);
            crate::validate::range(age, "maximumEventAgeInSeconds", 60, 21_600)?;
            config["MaximumEventAgeInSeconds"] = json!(age);
        }
        if let Some(destinations) = input.get("DestinationConfig").filter(|v| !v.is_null()) {
            for side in ["OnSuccess", "OnFailure"] {
                if let Some(arn) = destinations[side]["Destination"].as_str() {
                    let known =
                        [":sqs:", ":sns:", ":lambda:", ":events:", ":s3:"].iter().any(|s| arn.contains(s));
                    if !arn.starts_with("arn:") || !known {
                        return Err(AwsError::invalid_parameter(format!(
                            "The destination ARN {arn} is invalid."
                        )));
                    }
                }
            }
            config["DestinationConfig"] = destinations.clone();
        }
        let arn = format!("{}:{key}", self.function_arn(target.function.name()));
        config["FunctionArn"] = json!(arn);
        config["LastModified"] = json!(epoch_seconds());
        if config.get("DestinationConfig").is_none() {
            config["DestinationConfig"] = json!({ "OnSuccess": {}, "OnFailure": {} });
        }
        self.registry.put_resource(target.function.name(), "invoke-config", &key, config.clone()).await?;
        Ok(config)
    }

    pub(crate) fn get_invoke_config(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        let target = self.find(name, qualifier)?;
        let key = qualifier.unwrap_or("$LATEST");
        target.function.resource("invoke-config", key).cloned().ok_or_else(|| {
            let arn = format!("{}:{key}", self.function_arn(target.function.name()));
            AwsError::not_found(format!("The function {arn} doesn't have an EventInvokeConfig"))
        })
    }

    pub(crate) async fn delete_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), AwsError> {
        let target = self.find(name, qualifier)?;
        let key = qualifier.unwrap_or("$LATEST");
        if !self.registry.delete_resource(target.function.name(), "invoke-config", key).await? {
            let arn = format!("{}:{key}", self.function_arn(target.function.name()));
            return Err(AwsError::not_found(format!("The function {arn} doesn't have an EventInvokeConfig")));
        }
        Ok(())
    }

    pub(crate) fn list_invoke_configs(&self, name: &str) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let configs: Vec<&Value> = function.resources_of("invoke-config").map(|(_, config)| config).collect();
        Ok(json!({ "FunctionEventInvokeConfigs": configs }))
    }

    pub(crate) async fn put_recursion(&self, name: &str, body: &[u8]) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let input: Value = crate::functions::parse(body)?;
        let mode = input["RecursiveLoop"].as_str().unwrap_or_default();
        if mode != "Allow" && mode != "Terminate" {
            return Err(crate::validate::constraint(
                mode,
                "recursiveLoop",
                "Member must satisfy enum value set: [Allow, Terminate]",
            ));
        }
        self.registry.put_resource(function.name(), "recursion", "", json!(mode)).await?;
        Ok(json!({ "RecursiveLoop": mode }))
    }

    pub(crate) fn get_recursion(&self, name: &str) -> Result<Value, AwsError> {
        let function = self.function(name)?;
        let mode = function.resource("recursion", "").cloned().unwrap_or_else(|| json!("Terminate"));
        Ok(json!({ "RecursiveLoop": mode }))
    }
}

/// AWS's `LastModified` of event invoke configs: seconds since the epoch, as a number.
fn epoch_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
