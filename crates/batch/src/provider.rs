//! Batch's CloudFormation resource types, provisioned through Batch's own operations (the same
//! checks and errors as the API): `AWS::Batch::ComputeEnvironment`, `JobQueue`,
//! `JobDefinition` and `SchedulingPolicy`. `Ref` of each is its ARN, as on AWS.

use std::time::{Duration, Instant};

use nimbus_api::provider::{
    camel_keys, ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest,
};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::Batch;

const COMPUTE_ENVIRONMENT: &str = "AWS::Batch::ComputeEnvironment";
const JOB_QUEUE: &str = "AWS::Batch::JobQueue";
const JOB_DEFINITION: &str = "AWS::Batch::JobDefinition";
const SCHEDULING_POLICY: &str = "AWS::Batch::SchedulingPolicy";

pub const RESOURCE_TYPES: &[&str] = &[COMPUTE_ENVIRONMENT, JOB_QUEUE, JOB_DEFINITION, SCHEDULING_POLICY];

/// Properties holding maps of the user's own keys.
const MAPS: &[&str] = &["Tags", "Parameters", "Options", "Labels", "Ec2KeyPair"];

/// How long a create or delete waits for the resource to settle (`VALID`, or gone).
const SETTLE: Duration = Duration::from_secs(60);

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!(
        "{} (Service: {}, Status Code: {})",
        error.message,
        error.code,
        error.status.as_u16()
    ))
}

/// The named properties in Batch's spelling.
fn input(request: &ResourceRequest, names: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for name in names {
        if let Some(value) = request.property(name) {
            let value = if MAPS.contains(name) { value.clone() } else { camel_keys(value, MAPS) };
            let mut chars = name.chars();
            let key =
                chars.next().map(|c| c.to_ascii_lowercase().to_string()).unwrap_or_default() + chars.as_str();
            out.insert(key, value);
        }
    }
    out
}

/// The template's `Tags` (a map) with the stack's own.
fn tags(request: &ResourceRequest) -> Value {
    let mut tags = request.property("Tags").and_then(Value::as_object).cloned().unwrap_or_default();
    for (key, value) in &request.tags {
        tags.entry(key.clone()).or_insert(json!(value));
    }
    Value::Object(tags)
}

fn numbers(value: &mut Value, names: &[&str]) {
    if let Value::Object(map) = value {
        nimbus_api::provider::numbers(map, names);
        for child in map.values_mut() {
            numbers(child, names);
        }
    } else if let Value::Array(items) = value {
        for item in items {
            numbers(item, names);
        }
    }
}

const NUMBERS: &[&str] = &[
    "minvCpus",
    "maxvCpus",
    "desiredvCpus",
    "bidPercentage",
    "priority",
    "order",
    "vcpus",
    "memory",
    "attempts",
    "attemptDurationSeconds",
    "unmanagedvCpus",
    "schedulingPriority",
    "shareDecaySeconds",
    "computeReservation",
];

impl Batch {
    fn run(&self, op: &str, region: &str, mut input: Value) -> Result<Value, ProviderError> {
        numbers(&mut input, NUMBERS);
        tokio::task::block_in_place(|| self.dispatch(op, region, &input)).map_err(fail)
    }

    /// Polls `describe` for the first item under `list` until `done` says it settled.
    async fn settle(
        &self,
        region: &str,
        op: &str,
        query: Value,
        list: &str,
        done: impl Fn(Option<&Value>) -> Result<bool, ProviderError>,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let answer = self.run(op, region, query.clone())?;
            if done(answer[list].as_array().and_then(|items| items.first()))? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProviderError::new(format!(
                    "{op} did not settle within {} seconds",
                    SETTLE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn valid(item: Option<&Value>) -> Result<bool, ProviderError> {
        match item.and_then(|i| i["status"].as_str()) {
            Some("VALID") => Ok(true),
            Some("INVALID") => Err(ProviderError::new(format!(
                "the resource is INVALID: {}",
                item.and_then(|i| i["statusReason"].as_str()).unwrap_or_default()
            ))),
            _ => Ok(false),
        }
    }

    async fn cfn_create(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let region = request.region.as_str();
        match request.resource_type.as_str() {
            COMPUTE_ENVIRONMENT => {
                let mut body = input(
                    request,
                    &["Type", "State", "ServiceRole", "ComputeResources", "UnmanagedvCpus", "Context"],
                );
                let name = request
                    .string("ComputeEnvironmentName")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(128, false));
                body.insert("computeEnvironmentName".into(), json!(name));
                body.insert("tags".into(), tags(request));
                let answer = self.run("createcomputeenvironment", region, Value::Object(body))?;
                let arn = answer["computeEnvironmentArn"].as_str().unwrap_or_default().to_owned();
                let query = json!({"computeEnvironments": [arn]});
                self.settle(region, "describecomputeenvironments", query, "computeEnvironments", Self::valid)
                    .await?;
                Ok(provisioned(arn, &[("ComputeEnvironmentArn", None)]))
            }
            JOB_QUEUE => {
                let mut body =
                    input(request, &["Priority", "State", "ComputeEnvironmentOrder", "SchedulingPolicyArn"]);
                let name = request
                    .string("JobQueueName")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(128, false));
                body.insert("jobQueueName".into(), json!(name));
                body.insert("tags".into(), tags(request));
                let answer = self.run("createjobqueue", region, Value::Object(body))?;
                let arn = answer["jobQueueArn"].as_str().unwrap_or_default().to_owned();
                let query = json!({"jobQueues": [arn]});
                self.settle(region, "describejobqueues", query, "jobQueues", Self::valid).await?;
                Ok(provisioned(arn, &[("JobQueueArn", None)]))
            }
            JOB_DEFINITION => {
                let mut body = input(
                    request,
                    &[
                        "Type",
                        "Parameters",
                        "ContainerProperties",
                        "NodeProperties",
                        "RetryStrategy",
                        "Timeout",
                        "PlatformCapabilities",
                        "PropagateTags",
                        "SchedulingPriority",
                        "EcsProperties",
                    ],
                );
                let name = request
                    .string("JobDefinitionName")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(128, false));
                body.insert("jobDefinitionName".into(), json!(name));
                body.insert("tags".into(), tags(request));
                let answer = self.run("registerjobdefinition", region, Value::Object(body))?;
                let arn = answer["jobDefinitionArn"].as_str().unwrap_or_default().to_owned();
                Ok(provisioned(arn, &[("JobDefinitionArn", None)]))
            }
            _ => {
                let mut body = input(request, &["FairsharePolicy"]);
                let name = request
                    .string("Name")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request.generated_name(128, false));
                body.insert("name".into(), json!(name));
                body.insert("tags".into(), tags(request));
                let answer = self.run("createschedulingpolicy", region, Value::Object(body))?;
                let arn = answer["arn"].as_str().unwrap_or_default().to_owned();
                Ok(provisioned(arn, &[("Arn", None)]))
            }
        }
    }

    async fn cfn_update(&self, request: &ResourceRequest, arn: String) -> Result<Provisioned, ProviderError> {
        let region = request.region.as_str();
        match request.resource_type.as_str() {
            COMPUTE_ENVIRONMENT => {
                let mut body =
                    input(request, &["State", "ServiceRole", "ComputeResources", "UnmanagedvCpus"]);
                body.insert("computeEnvironment".into(), json!(arn));
                self.run("updatecomputeenvironment", region, Value::Object(body))?;
                let query = json!({"computeEnvironments": [arn]});
                self.settle(region, "describecomputeenvironments", query, "computeEnvironments", Self::valid)
                    .await?;
                Ok(provisioned(arn, &[("ComputeEnvironmentArn", None)]))
            }
            JOB_QUEUE => {
                let mut body =
                    input(request, &["Priority", "State", "ComputeEnvironmentOrder", "SchedulingPolicyArn"]);
                body.insert("jobQueue".into(), json!(arn));
                self.run("updatejobqueue", region, Value::Object(body))?;
                Ok(provisioned(arn, &[("JobQueueArn", None)]))
            }
            SCHEDULING_POLICY => {
                let mut body = input(request, &["FairsharePolicy"]);
                body.insert("arn".into(), json!(arn));
                self.run("updateschedulingpolicy", region, Value::Object(body))?;
                Ok(provisioned(arn, &[("Arn", None)]))
            }
            // Every property of a job definition replaces it (a new revision).
            _ => Ok(provisioned(arn, &[("JobDefinitionArn", None)])),
        }
    }

    async fn cfn_delete(&self, request: &ResourceRequest, arn: &str) -> Result<(), ProviderError> {
        let region = request.region.as_str();
        let missing = |error: &ProviderError| error.message.contains("does not exist");
        let result = match request.resource_type.as_str() {
            COMPUTE_ENVIRONMENT => {
                let disable = json!({"computeEnvironment": arn, "state": "DISABLED"});
                match self.run("updatecomputeenvironment", region, disable) {
                    Err(error) if missing(&error) => return Ok(()),
                    other => other?,
                };
                self.run("deletecomputeenvironment", region, json!({"computeEnvironment": arn})).map(|_| ())
            }
            JOB_QUEUE => {
                match self.run("updatejobqueue", region, json!({"jobQueue": arn, "state": "DISABLED"})) {
                    Err(error) if missing(&error) => return Ok(()),
                    other => other?,
                };
                self.run("deletejobqueue", region, json!({"jobQueue": arn}))?;
                // Its compute environments can go once the queue is gone.
                let query = json!({"jobQueues": [arn]});
                self.settle(region, "describejobqueues", query, "jobQueues", |item| Ok(item.is_none())).await
            }
            JOB_DEFINITION => {
                self.run("deregisterjobdefinition", region, json!({"jobDefinition": arn})).map(|_| ())
            }
            _ => self.run("deleteschedulingpolicy", region, json!({"arn": arn})).map(|_| ()),
        };
        match result {
            Err(error) if missing(&error) => Ok(()),
            other => other,
        }
    }
}

/// Done: `physical_id` the ARN, and the named attributes holding it too (`None`) .
fn provisioned(arn: String, attributes: &[(&str, Option<Value>)]) -> Provisioned {
    let attributes = attributes
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone().unwrap_or_else(|| json!(arn))))
        .collect();
    Provisioned { physical_id: arn, attributes }
}

impl ResourceProvider for Batch {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            COMPUTE_ENVIRONMENT => {
                matches!(property, "ComputeEnvironmentName" | "Type" | "Tags" | "EksConfiguration")
            }
            JOB_QUEUE => matches!(property, "JobQueueName" | "Tags"),
            SCHEDULING_POLICY => matches!(property, "Name" | "Tags"),
            _ => true,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.cfn_create(&request).await })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move { self.cfn_update(&request, physical_id).await })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move { self.cfn_delete(&request, &physical_id).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: &str, properties: Value) -> ResourceRequest {
        ResourceRequest::example("stack", "Res", kind, properties)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn environments_and_queues_settle_and_go_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let batch = crate::flow_tests::open(dir.path(), std::sync::Arc::default());
        let resources = json!({"Type": "EC2", "MaxvCpus": "8", "InstanceTypes": ["c6i"]});
        let env = request(COMPUTE_ENVIRONMENT, json!({"Type": "MANAGED", "ComputeResources": resources}));
        let env = batch.create(env).await.unwrap();
        assert!(env.physical_id.contains(":compute-environment/stack-Res-"), "{}", env.physical_id);
        let order = json!([{"Order": 1, "ComputeEnvironment": env.physical_id}]);
        let queue = request(JOB_QUEUE, json!({"Priority": "1", "ComputeEnvironmentOrder": order}));
        let queue_arn = batch.create(queue.clone()).await.unwrap().physical_id;
        let described =
            batch.run("describejobqueues", "us-east-1", json!({"jobQueues": [queue_arn]})).unwrap();
        assert_eq!(described["jobQueues"][0]["tags"]["aws:cloudformation:stack-name"], "stack");
        // The queue is gone before its environment is deleted: no relationship left to refuse it.
        batch.delete(queue.clone(), queue_arn.clone()).await.unwrap();
        batch.delete(request(COMPUTE_ENVIRONMENT, json!({})), env.physical_id.clone()).await.unwrap();
        batch.delete(queue, queue_arn).await.unwrap();
    }

    #[test]
    fn template_numbers_become_numbers_anywhere() {
        let mut value = json!({"computeResources": {"maxvCpus": "16", "type": "EC2"}, "priority": "1"});
        numbers(&mut value, NUMBERS);
        assert_eq!(value, json!({"computeResources": {"maxvCpus": 16, "type": "EC2"}, "priority": 1}));
    }
}
