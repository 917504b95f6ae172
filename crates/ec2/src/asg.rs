//! Auto Scaling groups as EC2 keeps them, and the one loop that keeps a group at its desired
//! capacity: launching when short (on-demand or spot per the mixed instances policy), retiring
//! the instances closest to their next billing hour when over, replacing members that were
//! interrupted, terminated or stopped — each step an activity with AWS's cause wording.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::instances::Launch;
use crate::lifecycle::USER_SHUTDOWN;
use crate::model::{Instance, State};
use crate::Ec2;

/// The tag EC2 Auto Scaling puts on every instance it launches.
pub const GROUP_TAG: &str = "aws:autoscaling:groupName";
/// Activities kept per group (newest first).
const MAX_ACTIVITIES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub description: String,
    pub cause: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub status: String,
    pub message: Option<String>,
    pub zone: Option<String>,
    pub subnet: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub region: String,
    pub arn: String,
    /// `{LaunchTemplateId, LaunchTemplateName, Version}` as given.
    pub template: Value,
    /// Instance type overrides of a mixed instances policy (the first is used).
    pub overrides: Vec<String>,
    pub on_demand_base: u32,
    pub on_demand_percent: u32,
    pub mixed: bool,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub zones: Vec<String>,
    pub subnets: Vec<String>,
    pub health_check_type: String,
    pub grace: u32,
    pub cooldown: u32,
    pub capacity_rebalance: bool,
    pub tags: Vec<(String, String, bool)>,
    pub created_ms: i64,
    pub activities: Vec<Activity>,
}

impl Group {
    pub fn members<'i>(&self, all: &'i [Instance]) -> Vec<&'i Instance> {
        all.iter()
            .filter(|i| {
                i.region == self.region && i.tags.iter().any(|(k, v)| k == GROUP_TAG && *v == self.name)
            })
            .filter(|i| !matches!(i.state, State::Terminated))
            .collect()
    }

    pub fn record(&mut self, activity: Activity) {
        self.activities.insert(0, activity);
        self.activities.truncate(MAX_ACTIVITIES);
    }

    pub fn launch_template_xml(&self) -> Value {
        json!({
            "LaunchTemplateId": self.template.get("LaunchTemplateId"),
            "LaunchTemplateName": self.template.get("LaunchTemplateName"),
            "Version": self.template.get("Version").cloned().unwrap_or_else(|| json!("$Default")),
        })
    }
}

pub fn lifecycle_state(instance: &Instance) -> &'static str {
    match instance.state {
        State::Pending => "Pending",
        State::Running => "InService",
        State::Stopping | State::Stopped | State::ShuttingDown => "Terminating",
        State::Terminated => "Terminated",
    }
}

pub fn healthy(instance: &Instance) -> bool {
    matches!(instance.state, State::Pending | State::Running)
}

/// Counts toward the group's capacity: healthy, and — with capacity rebalancing — not under an
/// interruption notice (its replacement starts at the notice).
fn counts(group: &Group, instance: &Instance) -> bool {
    healthy(instance) && !(group.capacity_rebalance && instance.interruption.is_some())
}

/// The document id of a group (its region's: a name is unique per region). Stored ids were the
/// name alone before groups lived per region: see the store's migration.
pub(crate) fn group_key(region: &str, name: &str) -> String {
    format!("{region}/{name}")
}

fn at(ms: i64) -> String {
    crate::iso_seconds(ms)
}

impl Ec2 {
    /// Group `name` of `region`: names are unique per region, as on AWS.
    pub(crate) fn group(&self, region: &str, name: &str) -> Result<Option<Group>, AwsError> {
        self.store.get::<Group>("asg", &group_key(region, name))
    }

    pub(crate) fn save_group(&self, group: &Group) -> Result<(), AwsError> {
        self.store.put("asg", &group_key(&group.region, &group.name), &group.region, group, group.created_ms)
    }

    /// Brings the group to its desired capacity; `cause` opens the first activity's cause
    /// (e.g. "a user request created an AutoScalingGroup changing the desired capacity from 0 to 2.").
    pub(crate) fn reconcile(&self, region: &str, name: &str, cause: Option<String>) -> Result<(), AwsError> {
        let _held = self.scaling.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut group) = self.group(region, name)? else { return Ok(()) };
        let first_before = group.activities.first().map(|a| a.id.clone());
        let all = self.store.all::<Instance>("instance", Some(&group.region))?;
        let now = self.now();
        let opening = cause.map(|c| format!("At {} {c}  ", at(now))).unwrap_or_default();
        // Members that stopped or are ending no longer count: EC2 health checks fail them.
        for member in group.members(&all).into_iter().filter(|i| !healthy(i)) {
            if member.state == State::Stopped {
                self.start_end(&member.id, State::Terminated, USER_SHUTDOWN, false)?;
                group.record(Activity {
                    id: uuid::Uuid::new_v4().to_string(),
                    description: format!("Terminating EC2 instance: {}", member.id),
                    cause: format!(
                        "At {} an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.",
                        at(now)
                    ),
                    start_ms: now,
                    end_ms: now,
                    status: "Successful".into(),
                    message: None,
                    zone: Some(member.zone.clone()),
                    subnet: Some(member.subnet_id.clone()),
                });
            }
        }
        let live: Vec<&Instance> = group.members(&all).into_iter().filter(|i| counts(&group, i)).collect();
        let count = live.len() as u32;
        if count < group.desired {
            let replacing = opening.is_empty();
            let mut on_demand = live.iter().filter(|i| !i.is_spot()).count() as u32;
            for n in count..group.desired {
                let spot = group.mixed && !self.wants_on_demand(&group, n, on_demand);
                let why = if replacing {
                    format!("{opening}At {} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {n} to {}.", at(now), n + 1)
                } else {
                    format!("{opening}At {} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from {count} to {}.", at(now), group.desired)
                };
                let activity = match self.launch_member(&group, spot) {
                    Ok(instance) => {
                        if !spot {
                            on_demand += 1;
                        }
                        Activity {
                            id: uuid::Uuid::new_v4().to_string(),
                            description: format!("Launching a new EC2 instance: {}", instance.id),
                            cause: why,
                            start_ms: now,
                            end_ms: now,
                            status: "Successful".into(),
                            message: None,
                            zone: Some(instance.zone.clone()),
                            subnet: Some(instance.subnet_id.clone()),
                        }
                    }
                    Err(error) => Activity {
                        id: uuid::Uuid::new_v4().to_string(),
                        description: "Launching a new EC2 instance.  Status Reason: ".to_owned()
                            + &error.message,
                        cause: why,
                        start_ms: now,
                        end_ms: now,
                        status: "Failed".into(),
                        message: Some(error.message.clone()),
                        zone: None,
                        subnet: None,
                    },
                };
                let failed = activity.status == "Failed";
                group.record(activity);
                if failed {
                    break;
                }
            }
        } else if count > group.desired {
            // Default termination policy, simplified: closest to the next billing hour first.
            let mut victims = live.clone();
            victims.sort_by_key(|i| std::cmp::Reverse((now - i.launch_ms).rem_euclid(3_600_000)));
            for victim in victims.into_iter().take((count - group.desired) as usize) {
                self.start_end(&victim.id, State::Terminated, USER_SHUTDOWN, false)?;
                group.record(Activity {
                    id: uuid::Uuid::new_v4().to_string(),
                    description: format!("Terminating EC2 instance: {}", victim.id),
                    cause: format!(
                        "{opening}At {} an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from {count} to {}.  At {} instance {} was selected for termination.",
                        at(now), group.desired, at(now), victim.id
                    ),
                    start_ms: now,
                    end_ms: now,
                    status: "Successful".into(),
                    message: None,
                    zone: Some(victim.zone.clone()),
                    subnet: Some(victim.subnet_id.clone()),
                });
            }
        }
        let fresh: Vec<Activity> =
            group.activities.iter().take_while(|a| Some(&a.id) != first_before.as_ref()).cloned().collect();
        self.save_group(&group)?;
        self.announce(&group, &fresh);
        Ok(())
    }

    /// `aws.autoscaling` events for the activities of one pass (newest last).
    fn announce(&self, group: &Group, fresh: &[Activity]) {
        for activity in fresh.iter().rev() {
            let launching = activity.description.starts_with("Launching");
            let detail_type = match (launching, activity.status.as_str()) {
                (true, "Successful") => "EC2 Instance Launch Successful",
                (true, _) => "EC2 Instance Launch Unsuccessful",
                (false, "Failed") => "EC2 Instance Terminate Unsuccessful",
                (false, _) => "EC2 Instance Terminate Successful",
            };
            let instance =
                activity.description.rsplit(": ").next().filter(|id| id.starts_with("i-")).unwrap_or("");
            let mut resources = vec![group.arn.clone()];
            if !instance.is_empty() {
                resources.push(format!(
                    "arn:aws:ec2:{}:{}:instance/{instance}",
                    group.region, self.identity.account
                ));
            }
            let detail = json!({
                "StatusCode": activity.status, "AutoScalingGroupName": group.name, "ActivityId": activity.id,
                "Details": { "Availability Zone": activity.zone, "Subnet ID": activity.subnet },
                "RequestId": activity.id, "StatusMessage": activity.message.clone().unwrap_or_default(),
                "EndTime": crate::iso8601(activity.end_ms), "EC2InstanceId": instance,
                "StartTime": crate::iso8601(activity.start_ms), "Cause": activity.cause, "Description": activity.description,
            });
            self.emit_from("aws.autoscaling", detail_type, resources, detail);
        }
    }

    /// On-demand for the `n`th unit when the base or the on-demand share above it is not met
    /// (fractions round in favour of on-demand, as AWS).
    fn wants_on_demand(&self, group: &Group, n: u32, on_demand_now: u32) -> bool {
        if n < group.on_demand_base {
            return true;
        }
        let above = (n + 1).saturating_sub(group.on_demand_base);
        let wanted = group.on_demand_base + (above * group.on_demand_percent).div_ceil(100);
        on_demand_now < wanted
    }

    fn launch_member(&self, group: &Group, spot: bool) -> Result<Instance, AwsError> {
        let mut input = json!({ "MinCount": "1", "MaxCount": "1", "LaunchTemplate": group.template });
        if let Some(kind) = group.overrides.first() {
            input["InstanceType"] = json!(kind);
        }
        if spot {
            input["InstanceMarketOptions"] = json!({ "MarketType": "spot" });
        }
        let index = group.activities.len();
        if let Some(subnet) = group.subnets.get(index % group.subnets.len().max(1)) {
            input["SubnetId"] = json!(subnet);
        } else if let Some(zone) = group.zones.get(index % group.zones.len().max(1)) {
            input["Placement"] = json!({ "AvailabilityZone": zone });
        }
        let mut tags = vec![json!({"Key": GROUP_TAG, "Value": group.name})];
        for (key, value, propagate) in &group.tags {
            if *propagate {
                tags.push(json!({"Key": key, "Value": value}));
            }
        }
        // The template's own tag specifications would be replaced by these: merge them in.
        let template = self.with_launch_template(&group.region, input.clone())?;
        for spec in template.get("TagSpecification").and_then(Value::as_array).into_iter().flatten() {
            if spec.get("ResourceType").and_then(Value::as_str).is_none_or(|t| t == "instance") {
                tags.extend(spec.get("Tag").and_then(Value::as_array).cloned().unwrap_or_default());
            }
        }
        input["TagSpecification"] = json!([{ "ResourceType": "instance", "Tag": tags }]);
        let (_, mut launched) = self.run_instances(Launch { region: &group.region, input })?;
        launched.pop().ok_or_else(|| crate::internal("no instance launched"))
    }

    /// A member of group `name` (of the member's `region`) ended: the group launches a
    /// replacement if it is short.
    pub(crate) fn asg_member_ended(&self, region: &str, name: &str) {
        let ec2 = self.arc();
        let (region, name) = (region.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            if let Err(error) = ec2.reconcile(&region, &name, None) {
                eprintln!("nimbus: autoscaling {name}: {}", error.message);
            }
        });
    }

    /// After a restart: every group back to its desired capacity.
    pub(crate) fn reconcile_all(&self) -> Result<(), AwsError> {
        for group in self.store.all::<Group>("asg", None)? {
            self.reconcile(&group.region, &group.name, None)?;
        }
        Ok(())
    }
}
