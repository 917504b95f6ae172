//! DescribeInstanceStatus, GetConsoleOutput, ModifyInstanceAttribute and tags on instances.

use base64::Engine as _;
use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::model::{Instance, State};
use crate::query::{any_matches, filters, invalid, missing, page, Input};
use crate::Ec2;

impl Ec2 {
    pub(crate) fn describe_instance_status(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("InstanceId");
        let all = input.bool("IncludeAllInstances").unwrap_or(false);
        let instances = if ids.is_empty() {
            self.store.all::<Instance>("instance", Some(region))?
        } else {
            self.named_instances(region, &ids)?
        };
        let filters = filters(input);
        let statuses: Vec<Value> = instances
            .into_iter()
            .filter(|i| all || i.state == State::Running)
            .filter(|i| {
                filters.iter().all(|(name, values)| match name.as_str() {
                    "instance-state-name" => any_matches(values, &[i.state.name().to_owned()]),
                    "availability-zone" => any_matches(values, std::slice::from_ref(&i.zone)),
                    _ => true,
                })
            })
            .map(|i| {
                let status = if i.state == State::Running { "ok" } else { "not-applicable" };
                let details = json!([{ "name": "reachability", "status": if status == "ok" { "passed" } else { "not-applicable" } }]);
                json!({
                    "instanceId": i.id,
                    "availabilityZone": i.zone,
                    "availabilityZoneId": i.zone_id,
                    "instanceState": i.state.xml(),
                    "instanceStatus": { "status": status, "details": details },
                    "systemStatus": { "status": status, "details": details },
                    "eventsSet": [],
                })
            })
            .collect();
        let (page, next) = page(input, statuses, 5, 1000)?;
        Ok(json!({ "instanceStatusSet": page, "nextToken": next }))
    }

    pub(crate) fn console_output(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let id = input.required("InstanceId")?.to_owned();
        self.named_instances(region, std::slice::from_ref(&id))?;
        let bytes = self.runner.console(&id);
        let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
        let output = base64::engine::general_purpose::STANDARD.encode(tail);
        Ok(json!({ "instanceId": id, "timestamp": crate::iso8601(self.now()), "output": output }))
    }

    pub(crate) fn modify_instance_attribute(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let id = input.required("InstanceId")?.to_owned();
        let instance = self.named_instances(region, std::slice::from_ref(&id))?.remove(0);
        let value_of = |name: &str| input.get(name).and_then(|v| v.str("Value")).map(str::to_owned);
        let attribute = input.str("Attribute");
        let value = input.str("Value").map(str::to_owned);
        let pick = |name: &str, attr: &str| {
            value_of(name).or_else(|| (attribute == Some(attr)).then(|| value.clone()).flatten())
        };
        if let Some(new_type) = pick("InstanceType", "instanceType") {
            let kind = Catalog::get()
                .instance_type(&new_type)
                .ok_or_else(|| invalid(format!("Invalid value '{new_type}' for InstanceType.")))?;
            if instance.state != State::Stopped {
                return Err(AwsError::new(
                    400,
                    "IncorrectInstanceState",
                    format!("The instance '{id}' is not in the 'stopped' state."),
                ));
            }
            if !kind.architectures.contains(&instance.arch) {
                return Err(invalid(format!(
                    "The instance type '{new_type}' does not support the architecture of the instance's image ('{}').",
                    instance.arch
                )));
            }
            let name = kind.name.clone();
            self.update(&id, |i| i.instance_type = name)?;
        }
        if let Some(data) = pick("UserData", "userData") {
            if instance.state != State::Stopped {
                return Err(AwsError::new(
                    400,
                    "IncorrectInstanceState",
                    format!("The instance '{id}' is not in the 'stopped' state."),
                ));
            }
            self.update(&id, |i| i.user_data = Some(data))?;
        }
        if let Some(behavior) = pick("InstanceInitiatedShutdownBehavior", "instanceInitiatedShutdownBehavior")
        {
            if !matches!(behavior.as_str(), "stop" | "terminate") {
                return Err(invalid(format!(
                    "Invalid value '{behavior}' for InstanceInitiatedShutdownBehavior."
                )));
            }
            self.update(&id, |i| i.shutdown_behavior = behavior)?;
        }
        Ok(json!({ "return": true }))
    }

    /// CreateTags / DeleteTags on instances.
    pub(crate) fn tags(&self, region: &str, input: &Value, delete: bool) -> Result<Value, AwsError> {
        let ids = input.strings("ResourceId");
        if ids.is_empty() {
            return Err(missing("ResourceId"));
        }
        let tags: Vec<(String, Option<String>)> = input
            .list("Tag")
            .into_iter()
            .filter_map(|t| Some((t.str("Key")?.to_owned(), t.str("Value").map(str::to_owned))))
            .collect();
        for id in &ids {
            if !id.starts_with("i-") {
                return Err(AwsError::new(
                    400,
                    "InvalidID",
                    format!("The ID '{id}' is not valid (nimbus keeps tags on instances)"),
                ));
            }
        }
        self.named_instances(region, &ids)?;
        for id in &ids {
            self.update(id, |i| {
                for (key, value) in &tags {
                    if delete {
                        i.tags.retain(|(k, v)| k != key || value.as_ref().is_some_and(|want| want != v));
                    } else {
                        i.tags.retain(|(k, _)| k != key);
                        i.tags.push((key.clone(), value.clone().unwrap_or_default()));
                    }
                }
            })?;
        }
        Ok(json!({ "return": true }))
    }

    pub(crate) fn describe_tags(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let filters = filters(input);
        let mut set = Vec::new();
        for instance in self.store.all::<Instance>("instance", Some(region))? {
            for (key, value) in &instance.tags {
                let ok = filters.iter().all(|(name, values)| match name.as_str() {
                    "resource-id" => any_matches(values, std::slice::from_ref(&instance.id)),
                    "resource-type" => values.iter().any(|v| v == "instance"),
                    "key" => any_matches(values, std::slice::from_ref(key)),
                    "value" => any_matches(values, std::slice::from_ref(value)),
                    _ => true,
                });
                if ok {
                    set.push(json!({"resourceId": instance.id, "resourceType": "instance", "key": key, "value": value}));
                }
            }
        }
        Ok(json!({ "tagSet": set }))
    }
}
