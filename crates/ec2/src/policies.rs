//! Auto Scaling scaling policies: `PutScalingPolicy` (simple, step and target tracking),
//! `DescribePolicies`, `DeletePolicy`, `ExecutePolicy`, and [`Ec2::alarm_triggered`], which
//! CloudWatch alarm actions call. A policy changes the group's desired capacity (clamped to its
//! bounds), and the group's loop launches or retires real instances. Target tracking policies
//! create AWS's `TargetTracking-<group>-AlarmHigh-…`/`AlarmLow-…` alarms on their metric through
//! [`ScalingAlarms`]; the alarms' action is the policy.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::query::Input;
use crate::Ec2;

/// Where target tracking policies create and delete their CloudWatch alarms (the integrator
/// implements it over CloudWatch).
pub trait ScalingAlarms: Send + Sync + 'static {
    /// Creates or replaces a metric alarm from `PutMetricAlarm`'s input in `region`'s CloudWatch
    /// (the group's); answers its ARN.
    fn put_alarm(&self, region: &str, alarm: &Value) -> Result<String, String>;
    fn delete_alarms(&self, region: &str, names: &[String]);
}

const KIND: &str = "scaling-policy";
/// AWS's default cooldown and instance warm-up (seconds).
const DEFAULT_COOLDOWN: u32 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub group: String,
    pub name: String,
    pub region: String,
    pub arn: String,
    /// `SimpleScaling`, `StepScaling` or `TargetTrackingScaling`.
    pub kind: String,
    pub adjustment_type: Option<String>,
    pub scaling_adjustment: Option<i64>,
    pub min_magnitude: Option<i64>,
    pub cooldown: Option<u32>,
    pub steps: Vec<Step>,
    pub aggregation: Option<String>,
    pub warmup: Option<u32>,
    /// `TargetTrackingConfiguration` as given.
    pub target: Option<Value>,
    /// The alarms the policy created: (name, ARN).
    pub alarms: Vec<(String, String)>,
    pub enabled: bool,
    /// When the policy last changed the capacity (ms), for its cooldown.
    pub last_ms: Option<i64>,
}

/// A policy's document id: its group's (see `asg::group_key`) and its name.
fn key(region: &str, group: &str, name: &str) -> String {
    format!("{}/{name}", crate::asg::group_key(region, group))
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

fn float(input: &Value, name: &str) -> Result<Option<f64>, AwsError> {
    match input.str(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| validation(format!("Invalid value '{text}' for {name}: it must be a number"))),
    }
}

/// The change an adjustment makes to `current` (AWS's rounding of percentages: a magnitude
/// below 1 becomes 1, above 1 is truncated; `MinAdjustmentMagnitude` applies to percentages).
pub(crate) fn new_capacity(kind: &str, adjustment: i64, current: u32, min_magnitude: Option<i64>) -> i64 {
    let current = current as i64;
    match kind {
        "ExactCapacity" => adjustment,
        "PercentChangeInCapacity" => {
            let exact = current as f64 * adjustment as f64 / 100.0;
            let mut change = if exact.abs() > 0.0 && exact.abs() < 1.0 {
                exact.signum() as i64
            } else {
                exact.trunc() as i64
            };
            if let Some(least) = min_magnitude.filter(|m| *m > 0) {
                if change != 0 && change.abs() < least {
                    change = change.signum() * least;
                }
            }
            current + change
        }
        _ => current + adjustment,
    }
}

/// The step whose interval (relative to the breach threshold) holds `difference`.
fn step_for(steps: &[Step], difference: f64) -> Option<&Step> {
    steps.iter().find(|s| {
        s.lower.is_none_or(|lower| difference >= lower) && s.upper.is_none_or(|upper| difference < upper)
    })
}

/// Target tracking's metric as `PutMetricAlarm` fields.
fn tracked_metric(group: &str, config: &Value) -> Result<Value, AwsError> {
    if let Some(predefined) = config.get("PredefinedMetricSpecification") {
        let kind = predefined.required("PredefinedMetricType")?;
        let (namespace, name, statistic) = match kind {
            "ASGAverageCPUUtilization" => ("AWS/EC2", "CPUUtilization", "Average"),
            "ASGAverageNetworkIn" => ("AWS/EC2", "NetworkIn", "Average"),
            "ASGAverageNetworkOut" => ("AWS/EC2", "NetworkOut", "Average"),
            other => {
                return Err(validation(format!(
                    "nimbus does not track the predefined metric {other} (ASGAverageCPUUtilization, ASGAverageNetworkIn and ASGAverageNetworkOut are served; use a CustomizedMetricSpecification)"
                )))
            }
        };
        return Ok(json!({
            "Namespace": namespace, "MetricName": name, "Statistic": statistic,
            "Dimensions": [{ "Name": "AutoScalingGroupName", "Value": group }],
        }));
    }
    let Some(custom) = config.get("CustomizedMetricSpecification") else {
        return Err(validation(
            "Either PredefinedMetricSpecification or CustomizedMetricSpecification must be specified.",
        ));
    };
    if custom.get("Metrics").is_some() {
        return Err(validation(
            "nimbus does not serve metric math in target tracking policies (give MetricName, Namespace and Statistic)",
        ));
    }
    let dimensions: Vec<Value> = custom
        .list("Dimensions")
        .into_iter()
        .map(|d| json!({ "Name": d.str("Name"), "Value": d.str("Value") }))
        .collect();
    let mut metric = json!({
        "Namespace": custom.required("Namespace")?,
        "MetricName": custom.required("MetricName")?,
        "Statistic": custom.required("Statistic")?,
        "Dimensions": dimensions,
    });
    if let Some(unit) = custom.str("Unit") {
        metric["Unit"] = json!(unit);
    }
    Ok(metric)
}

impl Ec2 {
    fn policy(&self, group: Option<&str>, name: &str, region: &str) -> Result<Policy, AwsError> {
        let found = match group {
            Some(group) if !name.starts_with("arn:") => {
                self.store.get::<Policy>(KIND, &key(region, group, name))?
            }
            _ => self
                .store
                .all::<Policy>(KIND, Some(region))?
                .into_iter()
                .find(|p| p.arn == name || (p.name == name && group.is_none_or(|g| g == p.group))),
        };
        found.ok_or_else(|| validation(format!("No such policy: {name}")))
    }

    pub(crate) fn put_policy(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let group = input.required("AutoScalingGroupName")?.to_owned();
        let name = input.required("PolicyName")?.to_owned();
        if self.group(region, &group)?.is_none() {
            return Err(validation(format!("AutoScalingGroup name not found - {group}")));
        }
        let kind = input.str("PolicyType").unwrap_or("SimpleScaling").to_owned();
        let adjustment_type = input.str("AdjustmentType").map(str::to_owned);
        if let Some(t) = adjustment_type.as_deref() {
            if !["ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"].contains(&t) {
                return Err(validation(format!("Invalid adjustment type {t}")));
            }
        }
        let steps = input
            .list("StepAdjustments")
            .into_iter()
            .map(|s| {
                Ok(Step {
                    lower: float(s, "MetricIntervalLowerBound")?,
                    upper: float(s, "MetricIntervalUpperBound")?,
                    adjustment: s
                        .int("ScalingAdjustment")?
                        .ok_or_else(|| crate::query::missing("ScalingAdjustment"))?,
                })
            })
            .collect::<Result<Vec<Step>, AwsError>>()?;
        let scaling_adjustment = input.int("ScalingAdjustment")?;
        let target = input.get("TargetTrackingConfiguration").cloned();
        match kind.as_str() {
            "SimpleScaling" => {
                if scaling_adjustment.is_none() {
                    return Err(validation("ScalingAdjustment is required for policy type SimpleScaling"));
                }
                if adjustment_type.is_none() {
                    return Err(validation("AdjustmentType is required for policy type SimpleScaling"));
                }
            }
            "StepScaling" => {
                if steps.is_empty() {
                    return Err(validation("StepAdjustments is required for policy type StepScaling"));
                }
                if adjustment_type.is_none() {
                    return Err(validation("AdjustmentType is required for policy type StepScaling"));
                }
            }
            "TargetTrackingScaling" => {
                let config = target.as_ref().ok_or_else(|| {
                    validation(
                        "TargetTrackingConfiguration is required for policy type TargetTrackingScaling",
                    )
                })?;
                float(config, "TargetValue")?.ok_or_else(|| crate::query::missing("TargetValue"))?;
                tracked_metric(&group, config)?;
            }
            "PredictiveScaling" => {
                return Err(validation("nimbus does not serve PredictiveScaling policies (see the README)"))
            }
            other => return Err(validation(format!("Invalid policy type {other}"))),
        }
        let previous = self.store.get::<Policy>(KIND, &key(region, &group, &name))?;
        let arn = previous.as_ref().map(|p| p.arn.clone()).unwrap_or_else(|| {
            format!(
                "arn:aws:autoscaling:{region}:{}:scalingPolicy:{}:autoScalingGroupName/{group}:policyName/{name}",
                self.identity.account,
                uuid::Uuid::new_v4()
            )
        });
        let mut policy = Policy {
            group: group.clone(),
            name: name.clone(),
            region: region.to_owned(),
            arn,
            kind,
            adjustment_type,
            scaling_adjustment,
            min_magnitude: input.int("MinAdjustmentMagnitude")?,
            cooldown: input.int("Cooldown")?.map(|c| c.clamp(0, u32::MAX as i64) as u32),
            steps,
            aggregation: input.str("MetricAggregationType").map(str::to_owned),
            warmup: input.int("EstimatedInstanceWarmup")?.map(|c| c.clamp(0, u32::MAX as i64) as u32),
            target,
            alarms: previous.as_ref().map(|p| p.alarms.clone()).unwrap_or_default(),
            enabled: input.bool("Enabled").unwrap_or(true),
            last_ms: previous.and_then(|p| p.last_ms),
        };
        if policy.kind == "TargetTrackingScaling" {
            policy.alarms = self.target_alarms(&policy)?;
        }
        self.store.put(KIND, &key(region, &group, &name), region, &policy, self.now())?;
        let alarms: Vec<Value> =
            policy.alarms.iter().map(|(n, a)| json!({ "AlarmName": n, "AlarmARN": a })).collect();
        Ok(json!({ "PolicyARN": policy.arn, "Alarms": alarms }))
    }

    /// (Re)creates a target tracking policy's alarms: high above the target for 3 minutes, low
    /// below 90 % of it for 15 (none when scale-in is disabled), as AWS does.
    fn target_alarms(&self, policy: &Policy) -> Result<Vec<(String, String)>, AwsError> {
        let Some(sink) = self.alarms.get() else {
            return Err(AwsError::new(
                400,
                "ValidationError",
                "target tracking needs CloudWatch, which is not wired in this nimbus",
            ));
        };
        let config = policy.target.clone().unwrap_or_default();
        let target = float(&config, "TargetValue")?.unwrap_or_default();
        let metric = tracked_metric(&policy.group, &config)?;
        let disable_in = config.bool("DisableScaleIn") == Some(true);
        let old: Vec<String> = policy.alarms.iter().map(|(n, _)| n.clone()).collect();
        if !old.is_empty() {
            sink.delete_alarms(&policy.region, &old);
        }
        let mut made = Vec::new();
        let mut wanted = vec![("AlarmHigh", "GreaterThanThreshold", target, 3)];
        if !disable_in {
            wanted.push(("AlarmLow", "LessThanThreshold", target * 0.9, 15));
        }
        for (which, operator, threshold, periods) in wanted {
            let name = format!("TargetTracking-{}-{which}-{}", policy.group, uuid::Uuid::new_v4());
            let mut alarm = metric.clone();
            alarm["AlarmName"] = json!(name);
            alarm["AlarmDescription"] =
                json!(format!("DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {}.", policy.arn));
            alarm["ComparisonOperator"] = json!(operator);
            alarm["Threshold"] = json!(threshold);
            alarm["Period"] = json!(60);
            alarm["EvaluationPeriods"] = json!(periods);
            alarm["AlarmActions"] = json!([policy.arn]);
            let arn = sink
                .put_alarm(&policy.region, &alarm)
                .map_err(|why| AwsError::new(500, "InternalFailure", why))?;
            made.push((name, arn));
        }
        Ok(made)
    }

    pub(crate) fn describe_policies(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let group = input.str("AutoScalingGroupName");
        let names = input.strings("PolicyNames");
        let types = input.strings("PolicyTypes");
        let list: Vec<Value> = self
            .store
            .all::<Policy>(KIND, Some(region))?
            .into_iter()
            .filter(|p| group.is_none_or(|g| g == p.group))
            .filter(|p| names.is_empty() || names.iter().any(|n| *n == p.name || *n == p.arn))
            .filter(|p| types.is_empty() || types.contains(&p.kind))
            .map(|p| {
                let steps: Vec<Value> = p
                    .steps
                    .iter()
                    .map(|s| json!({ "MetricIntervalLowerBound": s.lower, "MetricIntervalUpperBound": s.upper, "ScalingAdjustment": s.adjustment }))
                    .collect();
                let alarms: Vec<Value> =
                    p.alarms.iter().map(|(n, a)| json!({ "AlarmName": n, "AlarmARN": a })).collect();
                json!({
                    "AutoScalingGroupName": p.group, "PolicyName": p.name, "PolicyARN": p.arn,
                    "PolicyType": p.kind, "AdjustmentType": p.adjustment_type,
                    "ScalingAdjustment": p.scaling_adjustment, "MinAdjustmentMagnitude": p.min_magnitude,
                    "Cooldown": p.cooldown, "StepAdjustments": steps, "MetricAggregationType": p.aggregation,
                    "EstimatedInstanceWarmup": p.warmup, "Alarms": alarms,
                    "TargetTrackingConfiguration": p.target, "Enabled": p.enabled,
                })
            })
            .collect();
        let paged = json!({ "MaxRecords": input.str("MaxRecords"), "NextToken": input.str("NextToken") });
        let (page, next) = crate::query::page(&paged, list, 1, 100)?;
        Ok(json!({ "ScalingPolicies": page, "NextToken": next }))
    }

    pub(crate) fn delete_policy(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let policy = self.policy(input.str("AutoScalingGroupName"), input.required("PolicyName")?, region)?;
        if !policy.alarms.is_empty() {
            if let Some(sink) = self.alarms.get() {
                sink.delete_alarms(
                    &policy.region,
                    &policy.alarms.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                );
            }
        }
        self.store.delete(KIND, &key(&policy.region, &policy.group, &policy.name))?;
        Ok(())
    }

    pub(crate) fn execute_policy(&self, region: &str, input: &Value) -> Result<(), AwsError> {
        let policy = self.policy(input.str("AutoScalingGroupName"), input.required("PolicyName")?, region)?;
        let metric = float(input, "MetricValue")?;
        let threshold = float(input, "BreachThreshold")?;
        if policy.kind == "StepScaling" && (metric.is_none() || threshold.is_none()) {
            return Err(validation("MetricValue and BreachThreshold are required for a StepScaling policy"));
        }
        if policy.kind == "TargetTrackingScaling" {
            return Err(validation("ExecutePolicy is not supported for a TargetTrackingScaling policy"));
        }
        let honor = input.bool("HonorCooldown") == Some(true);
        let cause = |from: u32, to: u32| {
            format!(
                "a user request executed policy {} changing the desired capacity from {from} to {to}.",
                policy.name
            )
        };
        let ran =
            self.run_policy(policy.clone(), metric.zip(threshold).map(|(m, t)| m - t), None, honor, &cause)?;
        if !ran && honor {
            return Err(AwsError::new(
                400,
                "ScalingActivityInProgress",
                format!("You cannot execute policy {} while a scaling activity is in progress or the cooldown has not expired.", policy.name),
            ));
        }
        Ok(())
    }

    /// A CloudWatch alarm in ALARM took its action `policy_arn`: `metric` is the alarm's latest
    /// data point, `threshold` its threshold.
    pub fn alarm_triggered(
        &self,
        policy_arn: &str,
        alarm: &str,
        metric: Option<f64>,
        threshold: Option<f64>,
    ) -> Result<(), String> {
        let region = policy_arn.split(':').nth(3).unwrap_or(&self.identity.region).to_owned();
        let policy = self.policy(None, policy_arn, &region).map_err(|e| e.message)?;
        if !policy.enabled {
            return Ok(());
        }
        let cause = |from: u32, to: u32| {
            format!(
                "a monitor alarm {alarm} in state ALARM triggered policy {} changing the desired capacity from {from} to {to}.",
                policy.name
            )
        };
        let difference = metric.zip(threshold).map(|(m, t)| m - t);
        self.run_policy(policy.clone(), difference, metric, true, &cause).map(drop).map_err(|e| e.message)
    }

    /// Applies `policy` to its group; false when its cooldown (or warm-up) held it back.
    /// `difference` is the metric's distance above the breach threshold (step policies), `metric`
    /// the metric itself (target tracking).
    fn run_policy(
        &self,
        mut policy: Policy,
        difference: Option<f64>,
        metric: Option<f64>,
        honor_cooldown: bool,
        cause: &dyn Fn(u32, u32) -> String,
    ) -> Result<bool, AwsError> {
        let Some(mut group) = self.group(&policy.region, &policy.group)? else { return Ok(false) };
        let now = self.now();
        let wait = match policy.kind.as_str() {
            "SimpleScaling" => policy.cooldown.unwrap_or(group.cooldown),
            _ => policy.warmup.unwrap_or(DEFAULT_COOLDOWN),
        };
        if honor_cooldown && policy.last_ms.is_some_and(|last| now - last < wait as i64 * 1000) {
            return Ok(false);
        }
        let current = group.desired;
        let wanted = match policy.kind.as_str() {
            "TargetTrackingScaling" => {
                let config = policy.target.clone().unwrap_or_default();
                let target = float(&config, "TargetValue")?.unwrap_or_default();
                let Some(metric) = metric.filter(|_| target > 0.0) else { return Ok(false) };
                let proposed = (current.max(1) as f64 * metric / target).ceil() as i64;
                if proposed < current as i64 && config.bool("DisableScaleIn") == Some(true) {
                    current as i64
                } else {
                    proposed
                }
            }
            "StepScaling" => {
                let Some(step) = difference.and_then(|d| step_for(&policy.steps, d)) else {
                    return Ok(false);
                };
                let kind = policy.adjustment_type.as_deref().unwrap_or("ChangeInCapacity");
                new_capacity(kind, step.adjustment, current, policy.min_magnitude)
            }
            _ => {
                let kind = policy.adjustment_type.as_deref().unwrap_or("ChangeInCapacity");
                new_capacity(kind, policy.scaling_adjustment.unwrap_or(0), current, policy.min_magnitude)
            }
        };
        let desired = wanted.clamp(group.min as i64, group.max as i64) as u32;
        if desired == current {
            return Ok(true);
        }
        group.desired = desired;
        self.save_group(&group)?;
        policy.last_ms = Some(now);
        self.store.put(
            KIND,
            &key(&policy.region, &policy.group, &policy.name),
            &policy.region.clone(),
            &policy,
            now,
        )?;
        self.reconcile(&group.region, &group.name, Some(cause(current, desired)))?;
        Ok(true)
    }

    /// A group's policies go with it (and their alarms).
    pub(crate) fn delete_group_policies(&self, region: &str, group: &str) {
        let Ok(all) = self.store.all::<Policy>(KIND, Some(region)) else { return };
        for policy in all.into_iter().filter(|p| p.group == group) {
            if let (Some(sink), false) = (self.alarms.get(), policy.alarms.is_empty()) {
                sink.delete_alarms(
                    &policy.region,
                    &policy.alarms.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                );
            }
            let _ = self.store.delete(KIND, &key(&policy.region, &policy.group, &policy.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_follow_aws_rounding() {
        assert_eq!(new_capacity("ChangeInCapacity", 2, 3, None), 5);
        assert_eq!(new_capacity("ChangeInCapacity", -1, 3, None), 2);
        assert_eq!(new_capacity("ExactCapacity", 7, 3, None), 7);
        // 10 % of 3 is 0.3: rounded up to one instance.
        assert_eq!(new_capacity("PercentChangeInCapacity", 10, 3, None), 4);
        // 50 % of 5 is 2.5: truncated to 2.
        assert_eq!(new_capacity("PercentChangeInCapacity", 50, 5, None), 7);
        assert_eq!(new_capacity("PercentChangeInCapacity", -50, 5, None), 3);
        assert_eq!(new_capacity("PercentChangeInCapacity", 50, 5, Some(4)), 9);
    }

    #[test]
    fn steps_are_chosen_by_distance_from_the_threshold() {
        let steps = vec![
            Step { lower: Some(0.0), upper: Some(10.0), adjustment: 1 },
            Step { lower: Some(10.0), upper: None, adjustment: 3 },
        ];
        assert_eq!(step_for(&steps, 5.0).map(|s| s.adjustment), Some(1));
        assert_eq!(step_for(&steps, 10.0).map(|s| s.adjustment), Some(3));
        assert_eq!(step_for(&steps, 500.0).map(|s| s.adjustment), Some(3));
        assert!(step_for(&steps, -1.0).is_none());
    }
}
