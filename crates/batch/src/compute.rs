//! Compute environments: MANAGED (`EC2`, `SPOT`, `FARGATE`, `FARGATE_SPOT`) and UNMANAGED,
//! their vCPU bounds, instance types and allocation strategies, states and AWS's rules for
//! updating and deleting them. They become VALID (or INVALID, with the reason) at the
//! scheduler's next turn, as AWS's pass through CREATING.

use serde_json::{json, Value};

use crate::{client, Batch};
use nimbus_api::AwsError;

pub const KIND: &str = "ce";

const STRATEGIES: [&str; 4] =
    ["BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"];

/// `optimal` and the `default_*` sets: the families they stand for (AWS, from 2025-11).
pub fn families_of(entry: &str) -> Option<&'static [&'static str]> {
    match entry {
        "optimal" | "default_x86_64" => Some(&["m6i", "c6i", "r6i", "c7i"]),
        "default_arm64" => Some(&["m6g", "c6g", "r6g", "c7g"]),
        _ => None,
    }
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Batch {
    pub(crate) fn ce_arn(&self, region: &str, name_or_arn: &str) -> String {
        if name_or_arn.starts_with("arn:") {
            name_or_arn.to_owned()
        } else {
            self.arn(region, "compute-environment", name_or_arn)
        }
    }

    pub(crate) fn compute_environment(&self, arn: &str) -> Result<Option<Value>, AwsError> {
        self.store.get(KIND, arn)
    }

    pub(crate) fn create_compute_environment(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["computeEnvironmentName"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(client(
                "computeEnvironmentName must be 1-128 letters, numbers, hyphens and underscores",
            ));
        }
        let kind = input["type"].as_str().unwrap_or_default();
        if !matches!(kind, "MANAGED" | "UNMANAGED") {
            return Err(client("type must be MANAGED or UNMANAGED"));
        }
        let state = input["state"].as_str().unwrap_or("ENABLED");
        if !matches!(state, "ENABLED" | "DISABLED") {
            return Err(client("state must be ENABLED or DISABLED"));
        }
        let arn = self.ce_arn(region, name);
        if self.compute_environment(&arn)?.is_some() {
            return Err(client("Object already exists"));
        }
        let mut ce = json!({
            "computeEnvironmentName": name,
            "computeEnvironmentArn": arn,
            "ecsClusterArn": format!("arn:aws:ecs:{region}:{}:cluster/AWSBatch-{name}-{}", self.identity.account, uuid::Uuid::new_v4()),
            "type": kind,
            "state": state,
            "status": "CREATING",
            "statusReason": "Compute environment is being created",
            "uuid": uuid::Uuid::new_v4().to_string(),
            "containerOrchestrationType": "ECS",
            "tags": input.get("tags").cloned().unwrap_or_else(|| json!({})),
        });
        for key in ["serviceRole", "updatePolicy", "context"] {
            if let Some(value) = input.get(key) {
                ce[key] = value.clone();
            }
        }
        if kind == "UNMANAGED" {
            if input.get("computeResources").is_some() {
                return Err(client(
                    "computeResources can not be specified for an UNMANAGED compute environment",
                ));
            }
            ce["unmanagedvCpus"] = json!(input["unmanagedvCpus"].as_i64().unwrap_or(0));
        } else {
            ce["computeResources"] = compute_resources(&input["computeResources"])?;
        }
        self.store.put(KIND, &arn, &ce, self.now())?;
        self.wake();
        Ok(json!({ "computeEnvironmentName": name, "computeEnvironmentArn": arn }))
    }

    pub(crate) fn describe_compute_environments(
        &self,
        region: &str,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let wanted: Vec<String> = input["computeEnvironments"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(|n| self.ce_arn(region, n)).collect())
            .unwrap_or_default();
        let mut all: Vec<Value> = self.store.all(KIND)?;
        all.retain(|ce| {
            let arn = ce["computeEnvironmentArn"].as_str().unwrap_or_default();
            if wanted.is_empty() {
                arn.split(':').nth(3) == Some(region)
            } else {
                wanted.iter().any(|w| w == arn)
            }
        });
        for ce in &mut all {
            self.with_desired(ce);
        }
        let (page, next) = paginate(all, input)?;
        Ok(json!({ "computeEnvironments": page, "nextToken": next }))
    }

    /// `desiredvCpus` as the scheduler has it now (the vCPUs of the instances it holds).
    fn with_desired(&self, ce: &mut Value) {
        if ce["type"] != "MANAGED"
            || ce["computeResources"]["type"].as_str().is_some_and(|t| t.starts_with("FARGATE"))
        {
            return;
        }
        let arn = ce["computeEnvironmentArn"].as_str().unwrap_or_default();
        let held = self.held_vcpus(arn);
        let min = ce["computeResources"]["minvCpus"].as_i64().unwrap_or(0);
        ce["computeResources"]["desiredvCpus"] = json!(held.max(min));
    }

    pub(crate) fn update_compute_environment(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["computeEnvironment"].as_str().unwrap_or_default();
        let arn = self.ce_arn(region, name);
        let mut ce = self
            .compute_environment(&arn)?
            .ok_or_else(|| client(format!("computeEnvironment {name} does not exist")))?;
        if ce["status"] == "DELETING" || ce["status"] == "DELETED" {
            return Err(client(format!("computeEnvironment {name} is being deleted")));
        }
        if let Some(state) = input["state"].as_str() {
            if !matches!(state, "ENABLED" | "DISABLED") {
                return Err(client("state must be ENABLED or DISABLED"));
            }
            ce["state"] = json!(state);
        }
        if let Some(vcpus) = input["unmanagedvCpus"].as_i64() {
            ce["unmanagedvCpus"] = json!(vcpus);
        }
        for key in ["serviceRole", "updatePolicy", "context"] {
            if let Some(value) = input.get(key) {
                ce[key] = value.clone();
            }
        }
        if let Some(update) = input["computeResources"].as_object() {
            if ce["type"] != "MANAGED" {
                return Err(client("computeResources can only be updated for a MANAGED compute environment"));
            }
            let mut resources = ce["computeResources"].clone();
            let held = self.held_vcpus(&arn);
            for (key, value) in update {
                resources[key] = value.clone();
            }
            if update.contains_key("desiredvCpus") {
                let desired = update["desiredvCpus"].as_i64().unwrap_or(0);
                if desired < held {
                    return Err(client(format!(
                        "Manually scaling down compute environment is not supported. Current desiredvCpus: {held}, requested: {desired}"
                    )));
                }
            }
            ce["computeResources"] = compute_resources(&resources)?;
        }
        ce["status"] = json!("UPDATING");
        ce["statusReason"] = json!("Compute environment is being updated");
        self.store.put(KIND, &arn, &ce, self.now())?;
        self.wake();
        Ok(json!({ "computeEnvironmentName": ce["computeEnvironmentName"], "computeEnvironmentArn": arn }))
    }

    pub(crate) fn delete_compute_environment(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["computeEnvironment"].as_str().unwrap_or_default();
        let arn = self.ce_arn(region, name);
        let Some(mut ce) = self.compute_environment(&arn)? else {
            return Err(client(format!("computeEnvironment {name} does not exist")));
        };
        if ce["state"] != "DISABLED" {
            return Err(client("Cannot delete, resource is being modified or is not DISABLED"));
        }
        let queues: Vec<Value> = self.store.all(crate::queues::KIND)?;
        let used = queues.iter().any(|q| {
            q["computeEnvironmentOrder"]
                .as_array()
                .is_some_and(|order| order.iter().any(|o| o["computeEnvironment"] == json!(arn)))
        });
        if used {
            return Err(client("Cannot delete, found existing JobQueue relationship"));
        }
        ce["status"] = json!("DELETING");
        ce["statusReason"] = json!("Compute environment is being deleted");
        self.store.put(KIND, &arn, &ce, self.now())?;
        self.wake();
        Ok(json!({}))
    }

    /// CREATING/UPDATING become VALID (or INVALID with the reason), DELETING disappears once its
    /// instances are gone.
    pub(crate) fn settle_compute_environments(&self) -> Result<(), AwsError> {
        let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
        for mut ce in self.store.all::<Value>(KIND)? {
            let arn = ce["computeEnvironmentArn"].as_str().unwrap_or_default().to_owned();
            match ce["status"].as_str().unwrap_or_default() {
                "CREATING" | "UPDATING" => {
                    let problem = validate_types(&ce, &self.catalog());
                    let (status, reason) = match problem {
                        None => ("VALID", "ComputeEnvironment Healthy".to_owned()),
                        Some(why) => ("INVALID", format!("CLIENT_ERROR - {why}")),
                    };
                    ce["status"] = json!(status);
                    ce["statusReason"] = json!(reason);
                    self.store.put(KIND, &arn, &ce, self.now())?;
                }
                "DELETING" if self.held_vcpus(&arn) == 0 => {
                    self.store.delete(KIND, &arn)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks and completes `computeResources` (defaults, bounds, strategies).
fn compute_resources(input: &Value) -> Result<Value, AwsError> {
    let mut resources = input.clone();
    if !resources.is_object() {
        return Err(client("computeResources is required for a MANAGED compute environment"));
    }
    let kind = resources["type"].as_str().unwrap_or_default().to_owned();
    if !matches!(kind.as_str(), "EC2" | "SPOT" | "FARGATE" | "FARGATE_SPOT") {
        return Err(client("computeResources.type must be one of EC2, SPOT, FARGATE, FARGATE_SPOT"));
    }
    let fargate = kind.starts_with("FARGATE");
    let max =
        resources["maxvCpus"].as_i64().ok_or_else(|| client("computeResources.maxvCpus is required"))?;
    let min = resources["minvCpus"].as_i64().unwrap_or(0);
    if fargate {
        for key in ["minvCpus", "desiredvCpus", "instanceTypes", "allocationStrategy", "bidPercentage"] {
            if resources.get(key).is_some_and(|v| !v.is_null()) {
                return Err(client(format!("{key} is not applicable for Fargate compute resources")));
            }
        }
    } else {
        resources["minvCpus"] = json!(min);
        let types = resources["instanceTypes"].as_array().cloned().unwrap_or_default();
        if types.is_empty() {
            return Err(client(
                "computeResources.instanceTypes is required for EC2 and SPOT compute resources",
            ));
        }
        let strategy = resources["allocationStrategy"].as_str().unwrap_or("BEST_FIT").to_owned();
        if !STRATEGIES.contains(&strategy.as_str()) {
            return Err(client(format!("allocationStrategy {strategy} is not valid")));
        }
        if strategy.starts_with("SPOT_") && kind != "SPOT" {
            return Err(client(format!(
                "allocationStrategy {strategy} is only supported for SPOT compute resources"
            )));
        }
        resources["allocationStrategy"] = json!(strategy);
        if let Some(bid) = resources.get("bidPercentage").and_then(Value::as_i64) {
            if !(0..=100).contains(&bid) {
                return Err(client("bidPercentage must be between 0 and 100"));
            }
        } else if kind == "SPOT" {
            resources["bidPercentage"] = json!(100);
        }
        let desired = resources["desiredvCpus"].as_i64().unwrap_or(min);
        if min < 0 || max < min {
            return Err(client("minvCpus must be between 0 and maxvCpus"));
        }
        if desired < min || desired > max {
            return Err(client("desiredvCpus must be between minvCpus and maxvCpus"));
        }
        resources["desiredvCpus"] = json!(desired);
    }
    if max < 0 {
        return Err(client("maxvCpus must be positive"));
    }
    Ok(resources)
}

/// Why the instance types of a compute environment cannot be launched, if they cannot.
fn validate_types(ce: &Value, catalog: &[crate::HostType]) -> Option<String> {
    let resources = &ce["computeResources"];
    let types = resources["instanceTypes"].as_array()?;
    let spot = resources["type"] == "SPOT";
    let mut arches = std::collections::BTreeSet::new();
    for entry in types.iter().filter_map(Value::as_str) {
        let matching: Vec<&crate::HostType> = match families_of(entry) {
            Some(families) => catalog.iter().filter(|t| families.contains(&t.family.as_str())).collect(),
            None if entry.contains('.') => catalog.iter().filter(|t| t.name == entry).collect(),
            None => catalog.iter().filter(|t| t.family == entry && !t.bare_metal).collect(),
        };
        if matching.is_empty() {
            return Some(format!("Instance type {entry} is not supported"));
        }
        if spot && matching.iter().all(|t| t.spot_price.is_none()) {
            return Some(format!("Instance type {entry} is not available as Spot"));
        }
        arches.extend(matching.iter().map(|t| t.arch.clone()));
    }
    (arches.len() > 1)
        .then(|| "Instance types of more than one architecture in one compute environment".to_owned())
}

/// `maxResults`/`nextToken` over a listing (the token is the offset).
pub fn paginate(items: Vec<Value>, input: &Value) -> Result<(Vec<Value>, Value), AwsError> {
    let start = match input["nextToken"].as_str() {
        Some(token) => token.parse::<usize>().map_err(|_| client("Invalid nextToken"))?,
        None => 0,
    };
    let max = input["maxResults"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(max).collect();
    let next = if start + max < total { json!((start + max).to_string()) } else { Value::Null };
    Ok((page, next))
}
