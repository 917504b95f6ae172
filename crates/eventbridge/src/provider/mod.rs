//! EventBridge's and Scheduler's CloudFormation resource types, provisioned through their own
//! operations: `AWS::Events::Rule` (with its targets), `AWS::Events::EventBus`,
//! `AWS::Scheduler::Schedule` and `AWS::Scheduler::ScheduleGroup`.

use nimbus_api::provider::{ProviderError, ProviderFuture, Provisioned, ResourceProvider, ResourceRequest};
use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::input::Input;
use crate::{rules, schedules, EventBridge};

const RULE: &str = "AWS::Events::Rule";
const BUS: &str = "AWS::Events::EventBus";
const SCHEDULE: &str = "AWS::Scheduler::Schedule";
const GROUP: &str = "AWS::Scheduler::ScheduleGroup";

/// Schedule properties passed to `CreateSchedule`/`UpdateSchedule` as they are.
const SCHEDULE_MEMBERS: &[&str] = &[
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "FlexibleTimeWindow",
    "Target",
    "State",
    "Description",
    "KmsKeyArn",
    "ActionAfterCompletion",
];

fn fail(error: AwsError) -> ProviderError {
    ProviderError::new(format!("{} ({})", error.message, error.code))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn attributes(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn tags(request: &ResourceRequest) -> Vec<Value> {
    let mut list: Vec<Value> = request.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
    for tag in request.property("Tags").and_then(Value::as_array).into_iter().flatten() {
        list.push(json!({"Key": tag["Key"], "Value": tag["Value"]}));
    }
    list
}

/// The rule's bus as a name (the property may be an ARN).
fn bus_name(request_or_previous: Option<&Value>) -> String {
    match request_or_previous.and_then(Value::as_str) {
        Some(bus) => bus.rsplit('/').next().unwrap_or(bus).to_string(),
        None => "default".to_string(),
    }
}

/// A rule's physical id, as CloudFormation's: the name, or `bus|name` on another bus.
fn rule_id(bus: &str, name: &str) -> String {
    if bus == "default" {
        name.to_string()
    } else {
        format!("{bus}|{name}")
    }
}

fn split_rule_id(id: &str) -> (String, String) {
    match id.split_once('|') {
        Some((bus, name)) => (bus.to_string(), name.to_string()),
        None => ("default".to_string(), id.to_string()),
    }
}

impl EventBridge {
    fn events_op(&self, operation: &str, input: Value) -> Result<Value, ProviderError> {
        tokio::task::block_in_place(|| rules::dispatch(self, operation, &Input(&input))).map_err(fail)
    }

    fn blocking<T>(&self, work: impl FnOnce() -> Result<T, AwsError>) -> Result<T, ProviderError> {
        tokio::task::block_in_place(work).map_err(fail)
    }

    fn put_rule_resource(
        &self,
        request: &ResourceRequest,
        name: &str,
        old_targets: &[String],
    ) -> Result<Provisioned, ProviderError> {
        let bus = bus_name(request.property("EventBusName"));
        let mut input = json!({"Name": name, "EventBusName": bus});
        if let Some(pattern) = request.property("EventPattern") {
            input["EventPattern"] =
                json!(if pattern.is_string() { text(pattern) } else { pattern.to_string() });
        }
        for member in ["ScheduleExpression", "State", "Description", "RoleArn"] {
            if let Some(v) = request.property(member) {
                input[member] = json!(text(v));
            }
        }
        let tags = tags(request);
        if !tags.is_empty() && old_targets.is_empty() {
            input["Tags"] = Value::Array(tags);
        }
        let output = self.events_op("PutRule", input)?;
        let targets: Vec<Value> =
            request.property("Targets").and_then(Value::as_array).cloned().unwrap_or_default();
        let ids: Vec<String> = targets.iter().map(|t| text(&t["Id"])).collect();
        let gone: Vec<&String> = old_targets.iter().filter(|id| !ids.contains(id)).collect();
        if !gone.is_empty() {
            self.events_op("RemoveTargets", json!({"Rule": name, "EventBusName": bus, "Ids": gone}))?;
        }
        if !targets.is_empty() {
            let answer =
                self.events_op("PutTargets", json!({"Rule": name, "EventBusName": bus, "Targets": targets}))?;
            if answer["FailedEntryCount"].as_i64().unwrap_or(0) > 0 {
                let reason = &answer["FailedEntries"][0];
                return Err(ProviderError::new(format!(
                    "Target {} could not be put: {} ({})",
                    text(&reason["TargetId"]),
                    text(&reason["ErrorMessage"]),
                    text(&reason["ErrorCode"])
                )));
            }
        }
        Ok(Provisioned {
            physical_id: rule_id(&bus, name),
            attributes: attributes(&[("Arn", output["RuleArn"].clone())]),
        })
    }

    fn rule_target_ids(&self, bus: &str, name: &str) -> Result<Vec<String>, ProviderError> {
        let listed = self.events_op("ListTargetsByRule", json!({"Rule": name, "EventBusName": bus}))?;
        Ok(listed["Targets"].as_array().into_iter().flatten().map(|t| text(&t["Id"])).collect())
    }

    fn delete_rule_resource(&self, physical_id: &str) -> Result<(), ProviderError> {
        let (bus, name) = split_rule_id(physical_id);
        let ids = match self.rule_target_ids(&bus, &name) {
            Ok(ids) => ids,
            Err(e) if e.message.contains("ResourceNotFoundException") => return Ok(()),
            Err(e) => return Err(e),
        };
        if !ids.is_empty() {
            self.events_op("RemoveTargets", json!({"Rule": name, "EventBusName": bus, "Ids": ids}))?;
        }
        self.events_op("DeleteRule", json!({"Name": name, "EventBusName": bus})).map(|_| ())
    }

    fn create_bus_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let name = request.string("Name").unwrap_or_default().to_string();
        let mut input = json!({"Name": name, "Tags": tags(request)});
        for member in ["EventSourceName", "Description", "KmsKeyIdentifier", "DeadLetterConfig"] {
            if let Some(v) = request.property(member) {
                input[member] = v.clone();
            }
        }
        let output = self.events_op("CreateEventBus", input)?;
        let arn = output["EventBusArn"].clone();
        Ok(Provisioned {
            physical_id: name.clone(),
            attributes: attributes(&[("Arn", arn), ("Name", json!(name))]),
        })
    }

    fn put_schedule_resource(
        &self,
        request: &ResourceRequest,
        name: &str,
        update: bool,
    ) -> Result<Provisioned, ProviderError> {
        let mut input = Map::new();
        for member in SCHEDULE_MEMBERS {
            if let Some(v) = request.property(member) {
                input.insert(member.to_string(), v.clone());
            }
        }
        let input = Value::Object(input);
        let output = self.blocking(|| schedules::create(self, name, &Input(&input), update))?;
        Ok(Provisioned {
            physical_id: name.to_string(),
            attributes: attributes(&[("Arn", output["ScheduleArn"].clone())]),
        })
    }

    fn create_group_resource(&self, request: &ResourceRequest) -> Result<Provisioned, ProviderError> {
        let name = match request.string("Name") {
            Some(n) => n.to_string(),
            None => request.generated_name(64, false),
        };
        let input = json!({"Tags": tags(request)});
        self.blocking(|| schedules::create_group(self, &name, &Input(&input)))?;
        let group = self.blocking(|| schedules::get_group(self, &name))?;
        let attrs = attributes(&[
            ("Arn", group["Arn"].clone()),
            ("CreationDate", group["CreationDate"].clone()),
            ("LastModificationDate", group["LastModificationDate"].clone()),
            ("State", group["State"].clone()),
        ]);
        Ok(Provisioned { physical_id: name, attributes: attrs })
    }
}

fn gone(result: Result<(), ProviderError>) -> Result<(), ProviderError> {
    match result {
        Err(e) if e.message.contains("ResourceNotFoundException") => Ok(()),
        other => other,
    }
}

/// The CloudFormation types this service provisions (known before the service opens).
pub const RESOURCE_TYPES: &[&str] = &[RULE, BUS, SCHEDULE, GROUP];

impl ResourceProvider for EventBridge {
    fn resource_types(&self) -> &'static [&'static str] {
        RESOURCE_TYPES
    }

    fn replaces(&self, resource_type: &str, property: &str) -> bool {
        match resource_type {
            RULE => matches!(property, "Name" | "EventBusName"),
            BUS => matches!(property, "Name" | "EventSourceName"),
            SCHEDULE => matches!(property, "Name" | "GroupName"),
            GROUP => property == "Name",
            _ => false,
        }
    }

    fn create(&self, request: ResourceRequest) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                RULE => {
                    let name = match request.string("Name") {
                        Some(n) => n.to_string(),
                        None => request.generated_name(64, false),
                    };
                    self.put_rule_resource(&request, &name, &[])
                }
                BUS => self.create_bus_resource(&request),
                SCHEDULE => {
                    let name = match request.string("Name") {
                        Some(n) => n.to_string(),
                        None => request.generated_name(64, false),
                    };
                    self.put_schedule_resource(&request, &name, false)
                }
                GROUP => self.create_group_resource(&request),
                other => Err(ProviderError::new(format!("EventBridge does not provision {other}"))),
            }
        })
    }

    fn update(
        &self,
        request: ResourceRequest,
        physical_id: String,
        _previous: Map<String, Value>,
    ) -> ProviderFuture<'_, Provisioned> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                RULE => {
                    let (bus, name) = split_rule_id(&physical_id);
                    let old = self.rule_target_ids(&bus, &name)?;
                    self.put_rule_resource(&request, &name, &old)
                }
                BUS => {
                    let arn = self.arn("events", &format!("event-bus/{physical_id}"));
                    let tags = tags(&request);
                    if !tags.is_empty() {
                        self.events_op("TagResource", json!({"ResourceARN": arn, "Tags": tags}))?;
                    }
                    Ok(Provisioned {
                        attributes: attributes(&[("Arn", json!(arn)), ("Name", json!(physical_id))]),
                        physical_id,
                    })
                }
                SCHEDULE => self.put_schedule_resource(&request, &physical_id, true),
                GROUP => {
                    let group = self.blocking(|| schedules::get_group(self, &physical_id))?;
                    Ok(Provisioned { attributes: attributes(&[("Arn", group["Arn"].clone())]), physical_id })
                }
                other => Err(ProviderError::new(format!("EventBridge does not provision {other}"))),
            }
        })
    }

    fn delete(&self, request: ResourceRequest, physical_id: String) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            match request.resource_type.as_str() {
                RULE => self.delete_rule_resource(&physical_id),
                BUS => gone(self.events_op("DeleteEventBus", json!({"Name": physical_id})).map(|_| ())),
                SCHEDULE => {
                    let group = request.string("GroupName").map(str::to_string);
                    gone(
                        self.blocking(|| schedules::delete(self, &physical_id, group.as_deref())).map(|_| ()),
                    )
                }
                GROUP => gone(self.blocking(|| schedules::delete_group(self, &physical_id)).map(|_| ())),
                other => Err(ProviderError::new(format!("EventBridge does not provision {other}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests;
