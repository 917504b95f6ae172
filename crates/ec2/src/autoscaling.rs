//! EC2 Auto Scaling (Query, `Version=2011-01-01`): groups over launch templates with min, max
//! and desired capacity, a mixed instances policy (on-demand base and percentage, instance type
//! overrides), activities with AWS's cause strings, and replacement of members that were
//! interrupted, terminated or stopped (see [`crate::asg`]).

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use serde_json::{json, Value};

use crate::asg::{healthy, lifecycle_state, Activity, Group, GROUP_TAG};
use crate::lifecycle::USER_SHUTDOWN;
use crate::model::{Instance, State};
use crate::query::{page, Input};
use crate::{xml, Ec2};

/// The `autoscaling` service, over EC2's state.
pub struct AutoScaling(pub Arc<Ec2>);

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

fn check_bounds(min: u32, max: u32, desired: u32) -> Result<(), AwsError> {
    if min > max {
        return Err(validation(format!(
            "Max bound, {max}, must be greater than or equal to min bound, {min}"
        )));
    }
    if desired < min || desired > max {
        return Err(validation(format!(
            "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
        )));
    }
    Ok(())
}

/// AWS's own ceiling on group sizes is a quota far below this; anything larger is refused.
const MAX_SIZE: i64 = 10_000;

pub(crate) fn uint(input: &Value, name: &str) -> Result<Option<u32>, AwsError> {
    match input.int(name)? {
        Some(n) if n < 0 => Err(validation(format!("{name} must be greater than or equal to 0"))),
        Some(n) if n > MAX_SIZE => Err(validation(format!("{name} must be at most {MAX_SIZE}"))),
        other => Ok(other.map(|n| n as u32)),
    }
}

impl AutoScaling {
    pub(crate) fn dispatch(
        &self,
        action: &str,
        region: &str,
        input: &Value,
    ) -> Result<Option<Value>, AwsError> {
        let ec2 = &self.0;
        match action {
            "CreateAutoScalingGroup" => self.create(region, input).map(|()| None),
            "DescribeAutoScalingGroups" => self.describe(region, input).map(Some),
            "UpdateAutoScalingGroup" => self.update(region, input).map(|()| None),
            "SetDesiredCapacity" => self.set_desired(region, input).map(|()| None),
            "DeleteAutoScalingGroup" => self.delete(region, input).map(|()| None),
            "DescribeAutoScalingInstances" => self.instances(region, input).map(Some),
            "DescribeScalingActivities" => self.activities(region, input).map(Some),
            "TerminateInstanceInAutoScalingGroup" => self.terminate(region, input).map(Some),
            "PutScheduledUpdateGroupAction" => ec2.put_scheduled(region, input).map(|()| None),
            "DescribeScheduledActions" => ec2.describe_scheduled(region, input).map(Some),
            "DeleteScheduledAction" => ec2.delete_scheduled(region, input).map(|()| None),
            "PutScalingPolicy" => ec2.put_policy(region, input).map(Some),
            "DescribePolicies" => ec2.describe_policies(region, input).map(Some),
            "DeletePolicy" => ec2.delete_policy(region, input).map(|()| None),
            "ExecutePolicy" => ec2.execute_policy(region, input).map(|()| None),
            "" => Err(AwsError::new(400, "MissingAction", "The request must contain the parameter Action")),
            other => {
                let _ = ec2;
                Err(AwsError::new(
                    400,
                    "InvalidAction",
                    format!("nimbus does not implement the Auto Scaling operation {other} (see the README's EC2 section)"),
                ))
            }
        }
    }

    fn named(&self, region: &str, input: &Value) -> Result<Group, AwsError> {
        let name = input.required("AutoScalingGroupName")?;
        self.0.group(region, name)?.ok_or_else(|| {
            validation(format!("AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"))
        })
    }

    fn create(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let ec2 = &self.0;
        let name = input.required("AutoScalingGroupName")?.to_owned();
        if ec2.group(region, &name)?.is_some() {
            return Err(AwsError::new(
                400,
                "AlreadyExists",
                format!("AutoScalingGroup by this name already exists - A group with the name {name} already exists"),
            ));
        }
        let mixed = input.get("MixedInstancesPolicy");
        let template = input
            .get("LaunchTemplate")
            .or_else(|| mixed.and_then(|m| m.get("LaunchTemplate")).and_then(|l| l.get("LaunchTemplateSpecification")))
            .cloned()
            .ok_or_else(|| {
                validation("Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
            })?;
        ec2.template(region, &template).map_err(|_| {
            let named = template.str("LaunchTemplateId").or(template.str("LaunchTemplateName")).unwrap_or_default();
            validation(format!(
                "You must use a valid fully-formed launch template. The specified launch template, with template ID or name {named}, does not exist."
            ))
        })?;
        let overrides: Vec<String> = mixed
            .and_then(|m| m.get("LaunchTemplate"))
            .map(|l| {
                l.list("Overrides")
                    .into_iter()
                    .filter_map(|o| o.str("InstanceType").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let distribution = mixed.and_then(|m| m.get("InstancesDistribution"));
        let min = uint(input, "MinSize")?.ok_or_else(|| crate::query::missing("MinSize"))?;
        let max = uint(input, "MaxSize")?.ok_or_else(|| crate::query::missing("MaxSize"))?;
        let desired = uint(input, "DesiredCapacity")?.unwrap_or(min);
        check_bounds(min, max, desired)?;
        let subnets: Vec<String> = input
            .str("VPCZoneIdentifier")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let tags = input
            .list("Tags")
            .into_iter()
            .filter_map(|t| {
                Some((
                    t.str("Key")?.to_owned(),
                    t.str("Value").unwrap_or("").to_owned(),
                    t.bool("PropagateAtLaunch").unwrap_or(true),
                ))
            })
            .collect();
        let group = Group {
            arn: format!(
                "arn:aws:autoscaling:{region}:{}:autoScalingGroup:{}:autoScalingGroupName/{name}",
                ec2.identity.account,
                uuid::Uuid::new_v4()
            ),
            name: name.clone(),
            region: region.to_owned(),
            template,
            overrides,
            on_demand_base: distribution
                .map(|d| uint(d, "OnDemandBaseCapacity"))
                .transpose()?
                .flatten()
                .unwrap_or(0),
            on_demand_percent: distribution
                .map(|d| uint(d, "OnDemandPercentageAboveBaseCapacity"))
                .transpose()?
                .flatten()
                .unwrap_or(100),
            mixed: mixed.is_some(),
            min,
            max,
            desired,
            zones: input.strings("AvailabilityZones"),
            subnets,
            health_check_type: input.str("HealthCheckType").unwrap_or("EC2").to_owned(),
            grace: uint(input, "HealthCheckGracePeriod")?.unwrap_or(0),
            cooldown: uint(input, "DefaultCooldown")?.unwrap_or(300),
            capacity_rebalance: input.bool("CapacityRebalance").unwrap_or(false),
            tags,
            created_ms: ec2.now(),
            activities: Vec::new(),
        };
        ec2.save_group(&group)?;
        ec2.reconcile(
            region,
            &name,
            Some(format!("a user request created an AutoScalingGroup changing the desired capacity from 0 to {desired}.")),
        )
    }

    fn describe(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let names = input.strings("AutoScalingGroupNames");
        let groups: Vec<Group> = self
            .0
            .store
            .all::<Group>("asg", Some(region))?
            .into_iter()
            .filter(|g| names.is_empty() || names.contains(&g.name))
            .collect();
        let all = self.0.store.all::<Instance>("instance", Some(region))?;
        let rendered: Vec<Value> = groups.iter().map(|g| self.group_xml(g, &all)).collect();
        let paged = json!({ "MaxRecords": input.str("MaxRecords"), "NextToken": input.str("NextToken") });
        let (page, next) = page(&paged, rendered, 1, 100)?;
        Ok(json!({ "AutoScalingGroups": page, "NextToken": next }))
    }

    fn group_xml(&self, g: &Group, all: &[Instance]) -> Value {
        let instances: Vec<Value> = g
            .members(all)
            .iter()
            .map(|i| {
                json!({
                    "InstanceId": i.id, "InstanceType": i.instance_type, "AvailabilityZone": i.zone,
                    "LifecycleState": lifecycle_state(i), "HealthStatus": if healthy(i) { "Healthy" } else { "Unhealthy" },
                    "LaunchTemplate": g.launch_template_xml(), "ProtectedFromScaleIn": false,
                })
            })
            .collect();
        let mut zones = g.zones.clone();
        if zones.is_empty() {
            zones =
                instances.iter().filter_map(|i| i["AvailabilityZone"].as_str().map(str::to_owned)).collect();
            zones.sort();
            zones.dedup();
        }
        let mut value = json!({
            "AutoScalingGroupName": g.name, "AutoScalingGroupARN": g.arn, "MinSize": g.min, "MaxSize": g.max,
            "DesiredCapacity": g.desired, "DefaultCooldown": g.cooldown, "AvailabilityZones": zones,
            "HealthCheckType": g.health_check_type, "HealthCheckGracePeriod": g.grace, "Instances": instances,
            "CreatedTime": crate::iso8601(g.created_ms), "VPCZoneIdentifier": g.subnets.join(","),
            "Tags": g.tags.iter().map(|(k, v, p)| json!({"Key": k, "Value": v, "PropagateAtLaunch": p, "ResourceId": g.name, "ResourceType": "auto-scaling-group"})).collect::<Vec<_>>(),
            "TerminationPolicies": ["Default"], "NewInstancesProtectedFromScaleIn": false,
            "CapacityRebalance": g.capacity_rebalance, "SuspendedProcesses": [], "EnabledMetrics": [],
            "LoadBalancerNames": [], "TargetGroupARNs": [],
            "ServiceLinkedRoleARN": format!("arn:aws:iam::{}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", self.0.identity.account),
        });
        if g.mixed {
            value["MixedInstancesPolicy"] = json!({
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": g.launch_template_xml(),
                    "Overrides": g.overrides.iter().map(|t| json!({"InstanceType": t})).collect::<Vec<_>>(),
                },
                "InstancesDistribution": {
                    "OnDemandBaseCapacity": g.on_demand_base,
                    "OnDemandPercentageAboveBaseCapacity": g.on_demand_percent,
                    "OnDemandAllocationStrategy": "prioritized",
                    "SpotAllocationStrategy": "lowest-price",
                },
            });
        } else {
            value["LaunchTemplate"] = g.launch_template_xml();
        }
        value
    }

    fn update(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let mut group = self.named(region, input)?;
        let before = group.desired;
        let min = uint(input, "MinSize")?.unwrap_or(group.min);
        let max = uint(input, "MaxSize")?.unwrap_or(group.max);
        let desired = match uint(input, "DesiredCapacity")? {
            Some(d) => d,
            None => group.desired.clamp(min, max.max(min)),
        };
        check_bounds(min, max, desired)?;
        if let Some(template) = input.get("LaunchTemplate") {
            self.0.template(&group.region, template)?;
            group.template = template.clone();
        }
        (group.min, group.max, group.desired) = (min, max, desired);
        self.0.save_group(&group)?;
        let cause = (before != desired).then(|| {
            format!("a user request update of AutoScalingGroup constraints to min: {min}, max: {max}, desired: {desired} changing the desired capacity from {before} to {desired}.")
        });
        self.0.reconcile(region, &group.name, cause)
    }

    fn set_desired(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let mut group = self.named(region, input)?;
        let desired =
            uint(input, "DesiredCapacity")?.ok_or_else(|| crate::query::missing("DesiredCapacity"))?;
        if desired > group.max {
            return Err(validation(format!(
                "New SetDesiredCapacity value {desired} is above max value {} for the AutoScalingGroup.",
                group.max
            )));
        }
        if desired < group.min {
            return Err(validation(format!(
                "New SetDesiredCapacity value {desired} is below min value {} for the AutoScalingGroup.",
                group.min
            )));
        }
        let before = group.desired;
        group.desired = desired;
        self.0.save_group(&group)?;
        let cause = format!("a user request explicitly set group desired capacity changing the desired capacity from {before} to {desired}.");
        self.0.reconcile(region, &group.name, (before != desired).then_some(cause))
    }

    fn delete(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let group = self.named(region, input)?;
        let all = self.0.store.all::<Instance>("instance", Some(&group.region))?;
        let members: Vec<String> = group.members(&all).iter().map(|i| i.id.clone()).collect();
        if !members.is_empty() && input.bool("ForceDelete") != Some(true) {
            return Err(AwsError::new(
                400,
                "ResourceInUse",
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.",
            ));
        }
        self.0.store.delete("asg", &crate::asg::group_key(region, &group.name))?;
        for action in
            self.0.store.all::<crate::schedule::Scheduled>("scheduled-action", Some(&group.region))?
        {
            if action.group == group.name {
                self.0
                    .store
                    .delete("scheduled-action", &crate::schedule::key(region, &action.group, &action.name))?;
            }
        }
        self.0.delete_group_policies(region, &group.name);
        for id in members {
            self.0.start_end(&id, State::Terminated, USER_SHUTDOWN, false)?;
        }
        Ok(())
    }

    fn instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("InstanceIds");
        let groups = self.0.store.all::<Group>("asg", Some(region))?;
        let all = self.0.store.all::<Instance>("instance", Some(region))?;
        let mut set = Vec::new();
        for group in &groups {
            for i in group.members(&all) {
                if ids.is_empty() || ids.contains(&i.id) {
                    set.push(json!({
                        "InstanceId": i.id, "InstanceType": i.instance_type, "AutoScalingGroupName": group.name,
                        "AvailabilityZone": i.zone, "LifecycleState": lifecycle_state(i),
                        "HealthStatus": if healthy(i) { "HEALTHY" } else { "UNHEALTHY" },
                        "LaunchTemplate": group.launch_template_xml(), "ProtectedFromScaleIn": false,
                    }));
                }
            }
        }
        Ok(json!({ "AutoScalingInstances": set }))
    }

    fn activities(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let group = self.named(region, input)?;
        let list: Vec<Value> = group.activities.iter().map(|a| activity_xml(&group, a)).collect();
        let paged = json!({ "MaxRecords": input.str("MaxRecords"), "NextToken": input.str("NextToken") });
        let (page, next) = page(&paged, list, 1, 100)?;
        Ok(json!({ "Activities": page, "NextToken": next }))
    }

    fn terminate(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let id = input.required("InstanceId")?.to_owned();
        let decrement = input
            .bool("ShouldDecrementDesiredCapacity")
            .ok_or_else(|| crate::query::missing("ShouldDecrementDesiredCapacity"))?;
        let instance = self.0.instance(&id)?.filter(|i| i.region == region);
        let group_name = instance
            .as_ref()
            .and_then(|i| i.tags.iter().find(|(k, _)| k == GROUP_TAG).map(|(_, v)| v.clone()));
        let (Some(instance), Some(group_name)) = (instance, group_name) else {
            return Err(validation(format!(
                "Instance Id not found - No managed instance found for instance ID: {id}"
            )));
        };
        let mut group =
            self.0.group(region, &group_name)?.ok_or_else(|| validation("AutoScalingGroup not found"))?;
        let now = self.0.now();
        let before = group.desired;
        if decrement {
            if group.desired <= group.min {
                return Err(validation(format!(
                    "Currently, desiredSize equals minSize ({}). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.",
                    group.min
                )));
            }
            group.desired -= 1;
        }
        let cause = if decrement {
            format!("At {} instance {id} was taken out of service in response to a user request, shrinking the capacity from {before} to {}.", crate::iso_seconds(now), group.desired)
        } else {
            format!(
                "At {} instance {id} was taken out of service in response to a user request.",
                crate::iso_seconds(now)
            )
        };
        let activity = Activity {
            id: uuid::Uuid::new_v4().to_string(),
            description: format!("Terminating EC2 instance: {id}"),
            cause,
            start_ms: now,
            end_ms: now,
            status: "InProgress".into(),
            message: None,
            zone: Some(instance.zone.clone()),
            subnet: Some(instance.subnet_id.clone()),
        };
        group.record(activity.clone());
        self.0.save_group(&group)?;
        self.0.start_end(&id, State::Terminated, USER_SHUTDOWN, false)?;
        Ok(json!({ "Activity": activity_xml(&group, &activity) }))
    }
}

fn activity_xml(group: &Group, a: &Activity) -> Value {
    let details = json!({ "Subnet ID": a.subnet, "Availability Zone": a.zone }).to_string();
    json!({
        "ActivityId": a.id, "AutoScalingGroupName": group.name, "AutoScalingGroupARN": group.arn,
        "Description": a.description, "Cause": a.cause, "StartTime": crate::iso8601(a.start_ms),
        "EndTime": (a.status != "InProgress").then(|| crate::iso8601(a.end_ms)), "StatusCode": a.status,
        "StatusMessage": a.message, "Progress": if a.status == "InProgress" { 50 } else { 100 }, "Details": details,
    })
}

impl Service for AutoScaling {
    fn name(&self) -> &'static str {
        "autoscaling"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let (action, input) = match crate::query::parse(request.uri.query(), &request.body) {
                Ok(parsed) => parsed,
                Err(error) => return error.into_response(Protocol::Query),
            };
            let answer = crate::api::region_of(&request, &self.0.identity.region)
                .and_then(|region| tokio::task::block_in_place(|| self.dispatch(&action, &region, &input)));
            match answer {
                Ok(result) => xml::query(&action, result.as_ref(), &request.request_id),
                Err(error) => error.into_response(Protocol::Query),
            }
        })
    }
}
