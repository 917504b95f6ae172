//! CloudFormation's `AWS::StepFunctions::StateMachine` and `AWS::StepFunctions::Activity`,
//! created, updated and deleted through the same code as the API.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::api;
use crate::StepFunctions;

const MACHINE: &str = "AWS::StepFunctions::StateMachine";
const ACTIVITY: &str = "AWS::StepFunctions::Activity";

fn failed(error: AwsError) -> ProviderError {
    ProviderError::new(format!("{}: {}", error.code, error.message))
}

/// The definition's text: `DefinitionString` or `Definition`, `${name}` replaced by
/// `DefinitionSubstitutions`.
fn definition(request: &ResourceRequest) -> Result<String, ProviderError> {
    let mut text = match (request.string("DefinitionString"), request.property("Definition")) {
        (Some(text), _) => text.to_owned(),
        (None, Some(definition)) => definition.to_string(),
        (None, None) if request.property("DefinitionS3Location").is_some() => {
            return Err(ProviderError::new(
                "nimbus does not read DefinitionS3Location yet: inline the Definition",
            ))
        }
        (None, None) => {
            return Err(ProviderError::new("Property Definition or DefinitionString is required"))
        }
    };
    for (name, value) in
        request.property("DefinitionSubstitutions").and_then(Value::as_object).into_iter().flatten()
    {
        let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        text = text.replace(&format!("${{{name}}}"), &value);
    }
    Ok(text)
}

/// CloudFormation's PascalCase logging configuration in the API's camelCase.
fn logging(request: &ResourceRequest) -> Value {
    let Some(config) = request.property("LoggingConfiguration") else { return Value::Null };
    let destinations: Vec<Value> = config["Destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| json!({"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}))
        .collect();
    json!({
        "level": config["Level"].as_str().unwrap_or("OFF"),
        "includeExecutionData": config["IncludeExecutionData"].as_bool().unwrap_or(false),
        "destinations": destinations,
    })
}

fn tags(request: &ResourceRequest) -> Vec<Value> {
    let mut tags: Vec<Value> = request.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
        tags.push(json!({"key": tag["Key"], "value": tag["Value"]}));
    }
    tags
}

fn machine_input(request: &ResourceRequest, name: &str) -> Result<Map<String, Value>, ProviderError> {
    let mut input = Map::new();
    input.insert("name".into(), json!(name));
    input.insert("definition".into(), json!(definition(request)?));
    input.insert("roleArn".into(), json!(request.string("RoleArn").unwrap_or_default()));
    input.insert("type".into(), json!(request.string("StateMachineType").unwrap_or("STANDARD")));
    input.insert("loggingConfiguration".into(), logging(request));
    if let Some(enabled) = request.property("TracingConfiguration").and_then(|t| t["Enabled"].as_bool()) {
        input.insert("tracingConfiguration".into(), json!({"enabled": enabled}));
    }
    input.insert("tags".into(), Value::Array(tags(request)));
    Ok(input)
}

impl StepFunctions {
    fn provision_machine(&self, request: &ResourceRequest, arn: &str) -> Result<Provisioned, ProviderError> {
        let described = api::dispatch_blocking(
            &self.engine,
            &request.region,
            "DescribeStateMachine",
            &json!({"stateMachineArn": arn}),
        )
        .map_err(failed)?;
        let mut attributes = Map::new();
        attributes.insert("Arn".into(), json!(arn));
        attributes.insert("Name".into(), described["name"].clone());
        attributes.insert("StateMachineRevisionId".into(), described["revisionId"].clone());
        Ok(Provisioned { physical_id: arn.to_owned(), attributes })
    }
}

/// The CloudFormation types this service provisions (known before the service opens).
pub const RESOURCE_TYPES: &[&str] = &[MACHINE, ACTIVITY];

impl ResourceProvider for StepFunctions {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            MACHINE => matches!(property, "StateMachineName" | "StateMachineType"),
            _ => matches!(property, "Name"),
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                if request.resource_type == ACTIVITY {
                    let name = request
                        .string("Name")
                        .ok_or_else(|| ProviderError::new("Property Name is required"))?;
                    let input = json!({"name": name, "tags": tags(&request)});
                    let created =
                        api::dispatch_blocking(&self.engine, &request.region, "CreateActivity", &input)
                            .map_err(failed)?;
                    let arn = created["activityArn"].as_str().unwrap_or_default().to_owned();
                    let attributes =
                        Map::from_iter([("Arn".to_owned(), json!(arn)), ("Name".to_owned(), json!(name))]);
                    return Ok(Provisioned { physical_id: arn, attributes });
                }
                let name = request
                    .string("StateMachineName")
                    .map_or_else(|| request.generated_name(80, false), str::to_owned);
                let input = Value::Object(machine_input(&request, &name)?);
                let created =
                    api::dispatch_blocking(&self.engine, &request.region, "CreateStateMachine", &input)
                        .map_err(failed)?;
                self.provision_machine(&request, created["stateMachineArn"].as_str().unwrap_or_default())
            })
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                if request.resource_type == ACTIVITY {
                    let name = request.string("Name").unwrap_or_default();
                    let attributes = Map::from_iter([
                        ("Arn".to_owned(), json!(physical_id)),
                        ("Name".to_owned(), json!(name)),
                    ]);
                    return Ok(Provisioned { physical_id, attributes });
                }
                let name = physical_id.rsplit(':').next().unwrap_or_default().to_owned();
                let mut input = machine_input(&request, &name)?;
                input.remove("name");
                input.remove("type");
                input.remove("tags");
                input.insert("stateMachineArn".into(), json!(physical_id));
                api::dispatch_blocking(
                    &self.engine,
                    &request.region,
                    "UpdateStateMachine",
                    &Value::Object(input),
                )
                .map_err(failed)?;
                self.provision_machine(&request, &physical_id)
            })
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let (operation, key) = match request.resource_type.as_str() {
                ACTIVITY => ("DeleteActivity", "activityArn"),
                _ => ("DeleteStateMachine", "stateMachineArn"),
            };
            let input = json!({ key: physical_id });
            tokio::task::block_in_place(|| {
                api::dispatch_blocking(&self.engine, &request.region, operation, &input)
            })
            .map(drop)
            .map_err(failed)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nimbus_api::clock::SystemClock;
    use nimbus_store::Database;

    use super::*;
    use crate::{BoxFuture, CallError, Invoked, Options, Services};

    struct Nothing;

    impl Services for Nothing {
        fn invoke<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Option<&'a str>,
            _: Vec<u8>,
            _: bool,
        ) -> BoxFuture<'a, Result<Invoked, CallError>> {
            Box::pin(async { Err(CallError::new("ServiceUnavailable", "none")) })
        }

        fn call<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
            _: Value,
        ) -> BoxFuture<'a, Result<Value, CallError>> {
            Box::pin(async { Err(CallError::new("ServiceUnavailable", "none")) })
        }
    }

    fn request(resource_type: &str, properties: Value) -> ResourceRequest {
        ResourceRequest::example("app", "Flow", resource_type, properties)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn state_machines_and_activities_from_templates() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            identity: Default::default(),
            clock: Arc::new(SystemClock),
            services: Arc::new(Nothing),
            batch: None,
            cluster: None,
            node: "local".into(),
        };
        let sfn = StepFunctions::open(&Database::sqlite(dir.path()), options).unwrap();
        let properties = json!({
            "RoleArn": "arn:aws:iam::000000000000:role/r",
            "DefinitionString": "{\"StartAt\":\"P\",\"States\":{\"P\":{\"Type\":\"Pass\",\"Result\":\"${Greeting}\",\"End\":true}}}",
            "DefinitionSubstitutions": {"Greeting": "hello"},
        });
        let made = sfn.create(request(MACHINE, properties.clone())).await.unwrap();
        assert!(made.physical_id.starts_with("arn:aws:states:us-east-1:000000000000:stateMachine:app-Flow-"));
        assert_eq!(made.attributes["Arn"], json!(made.physical_id));
        let described = api::dispatch_blocking(
            &sfn.engine,
            "us-east-1",
            "DescribeStateMachine",
            &json!({"stateMachineArn": made.physical_id}),
        )
        .unwrap();
        assert!(described["definition"].as_str().unwrap().contains("\"hello\""));
        let mut changed = properties.clone();
        changed["Definition"] = json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}});
        changed.as_object_mut().unwrap().remove("DefinitionString");
        let updated =
            sfn.update(request(MACHINE, changed), made.physical_id.clone(), Map::new()).await.unwrap();
        assert_ne!(updated.attributes["StateMachineRevisionId"], made.attributes["StateMachineRevisionId"]);
        assert!(sfn.replaces(MACHINE, "StateMachineName") && !sfn.replaces(MACHINE, "Definition"));
        let bad = sfn
            .create(request(MACHINE, json!({"RoleArn": "r", "Definition": {"States": {}}})))
            .await
            .unwrap_err();
        assert!(bad.message.starts_with("InvalidDefinition: Invalid State Machine Definition"), "{bad}");
        sfn.delete(request(MACHINE, json!({})), made.physical_id.clone()).await.unwrap();
        let activity = sfn.create(request(ACTIVITY, json!({"Name": "work"}))).await.unwrap();
        assert_eq!(activity.physical_id, "arn:aws:states:us-east-1:000000000000:activity:work");
        sfn.delete(request(ACTIVITY, json!({})), activity.physical_id).await.unwrap();
    }
}
