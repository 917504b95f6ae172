//! Job queues (priority, ordered compute environments, state) and fair-share scheduling
//! policies (stored; a queue with one orders its runnable jobs by share usage and weight).

use serde_json::{json, Value};

use crate::compute::{paginate, valid_name};
use crate::{client, Batch};
use nimbus_api::AwsError;

pub const KIND: &str = "queue";
pub const POLICY: &str = "policy";

impl Batch {
    pub(crate) fn queue_arn(&self, region: &str, name_or_arn: &str) -> String {
        if name_or_arn.starts_with("arn:") {
            name_or_arn.to_owned()
        } else {
            self.arn(region, "job-queue", name_or_arn)
        }
    }

    pub(crate) fn queue(&self, arn: &str) -> Result<Option<Value>, AwsError> {
        self.store.get(KIND, arn)
    }

    /// Checks `computeEnvironmentOrder`: 1–3 entries, distinct orders, existing VALID
    /// environments, not EC2 and Fargate mixed; returns it with ARNs.
    fn ce_order(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let order = input.as_array().cloned().unwrap_or_default();
        if order.is_empty() || order.len() > 3 {
            return Err(client("computeEnvironmentOrder must hold between 1 and 3 compute environments"));
        }
        let mut seen = Vec::new();
        let mut fargate = Vec::new();
        let mut out = Vec::new();
        for entry in &order {
            let position =
                entry["order"].as_i64().ok_or_else(|| client("computeEnvironmentOrder.order is required"))?;
            if seen.contains(&position) {
                return Err(client("computeEnvironmentOrder orders must be unique"));
            }
            seen.push(position);
            let name = entry["computeEnvironment"].as_str().unwrap_or_default();
            let arn = self.ce_arn(region, name);
            let ce = self
                .compute_environment(&arn)?
                .ok_or_else(|| client(format!("computeEnvironment {name} does not exist")))?;
            if ce["status"] == "DELETING" || ce["status"] == "DELETED" {
                return Err(client(format!("computeEnvironment {name} is being deleted")));
            }
            fargate.push(ce["computeResources"]["type"].as_str().is_some_and(|t| t.starts_with("FARGATE")));
            out.push(json!({ "order": position, "computeEnvironment": arn }));
        }
        if fargate.iter().any(|f| *f) && fargate.iter().any(|f| !*f) {
            return Err(client(
                "Compute environments of a job queue must all be EC2/SPOT or all FARGATE/FARGATE_SPOT",
            ));
        }
        out.sort_by_key(|e| e["order"].as_i64());
        Ok(Value::Array(out))
    }

    pub(crate) fn create_job_queue(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        check_time_limits(&input["jobStateTimeLimitActions"])?;
        let name = input["jobQueueName"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(client("jobQueueName must be 1-128 letters, numbers, hyphens and underscores"));
        }
        let priority = input["priority"].as_i64().ok_or_else(|| client("priority is required"))?;
        let state = input["state"].as_str().unwrap_or("ENABLED");
        if !matches!(state, "ENABLED" | "DISABLED") {
            return Err(client("state must be ENABLED or DISABLED"));
        }
        let arn = self.queue_arn(region, name);
        if self.queue(&arn)?.is_some() {
            return Err(client("Object already exists"));
        }
        let order = self.ce_order(region, &input["computeEnvironmentOrder"])?;
        let mut queue = json!({
            "jobQueueName": name, "jobQueueArn": arn, "state": state, "status": "CREATING",
            "statusReason": "Job queue is being created", "priority": priority,
            "computeEnvironmentOrder": order, "jobQueueType": "ECS_EC2",
            "tags": input.get("tags").cloned().unwrap_or_else(|| json!({})),
            "jobStateTimeLimitActions": input.get("jobStateTimeLimitActions").cloned().unwrap_or_else(|| json!([])),
        });
        if let Some(policy) = input["schedulingPolicyArn"].as_str() {
            if self.store.get::<Value>(POLICY, policy)?.is_none() {
                return Err(client(format!("schedulingPolicyArn {policy} does not exist")));
            }
            queue["schedulingPolicyArn"] = json!(policy);
        }
        self.store.put(KIND, &arn, &queue, self.now())?;
        self.wake();
        Ok(json!({ "jobQueueName": name, "jobQueueArn": arn }))
    }

    pub(crate) fn describe_job_queues(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let wanted: Vec<String> = input["jobQueues"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(|n| self.queue_arn(region, n)).collect())
            .unwrap_or_default();
        let mut all: Vec<Value> = self.store.all(KIND)?;
        all.retain(|q| {
            let arn = q["jobQueueArn"].as_str().unwrap_or_default();
            if wanted.is_empty() {
                arn.split(':').nth(3) == Some(region)
            } else {
                wanted.iter().any(|w| w == arn)
            }
        });
        let (page, next) = paginate(all, input)?;
        Ok(json!({ "jobQueues": page, "nextToken": next }))
    }

    pub(crate) fn update_job_queue(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["jobQueue"].as_str().unwrap_or_default();
        let arn = self.queue_arn(region, name);
        let mut queue = self.queue(&arn)?.ok_or_else(|| client(format!("jobQueue {name} does not exist")))?;
        if let Some(state) = input["state"].as_str() {
            if !matches!(state, "ENABLED" | "DISABLED") {
                return Err(client("state must be ENABLED or DISABLED"));
            }
            queue["state"] = json!(state);
        }
        if let Some(priority) = input["priority"].as_i64() {
            queue["priority"] = json!(priority);
        }
        if input.get("computeEnvironmentOrder").is_some() {
            queue["computeEnvironmentOrder"] = self.ce_order(region, &input["computeEnvironmentOrder"])?;
        }
        if let Some(policy) = input["schedulingPolicyArn"].as_str() {
            if queue.get("schedulingPolicyArn").is_none() {
                return Err(client("A FIFO job queue can not be given a scheduling policy"));
            }
            if self.store.get::<Value>(POLICY, policy)?.is_none() {
                return Err(client(format!("schedulingPolicyArn {policy} does not exist")));
            }
            queue["schedulingPolicyArn"] = json!(policy);
        }
        if let Some(actions) = input.get("jobStateTimeLimitActions") {
            check_time_limits(actions)?;
            queue["jobStateTimeLimitActions"] = actions.clone();
        }
        queue["status"] = json!("UPDATING");
        self.store.put(KIND, &arn, &queue, self.now())?;
        self.wake();
        Ok(json!({ "jobQueueName": queue["jobQueueName"], "jobQueueArn": arn }))
    }

    pub(crate) fn delete_job_queue(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["jobQueue"].as_str().unwrap_or_default();
        let arn = self.queue_arn(region, name);
        let Some(mut queue) = self.queue(&arn)? else {
            return Err(client(format!("jobQueue {name} does not exist")));
        };
        if queue["state"] != "DISABLED" {
            return Err(client("Cannot delete, job queue is not DISABLED"));
        }
        queue["status"] = json!("DELETING");
        self.store.put(KIND, &arn, &queue, self.now())?;
        // Its jobs are terminated, as AWS does.
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.store.jobs_where(
            &format!("queue = ?1 AND status IN {}", crate::store::LIVE),
            &nimbus_store::params![arn.as_str()],
        )?;
        for job in live.iter().filter(|j| j.n.parent.is_none()) {
            self.stop_job(job.clone(), "Job queue deleted", true)?;
        }
        self.wake();
        Ok(json!({}))
    }

    /// CREATING/UPDATING queues become VALID; DELETING ones disappear once their jobs are done.
    pub(crate) fn settle_queues(&self) -> Result<(), AwsError> {
        let _guard = self.docs_lock.lock().unwrap_or_else(|p| p.into_inner());
        for mut queue in self.store.all::<Value>(KIND)? {
            let arn = queue["jobQueueArn"].as_str().unwrap_or_default().to_owned();
            match queue["status"].as_str().unwrap_or_default() {
                "CREATING" | "UPDATING" => {
                    queue["status"] = json!("VALID");
                    queue["statusReason"] = json!("JobQueue Healthy");
                    self.store.put(KIND, &arn, &queue, self.now())?;
                }
                "DELETING" => {
                    let live = self.store.jobs_where(
                        &format!("queue = ?1 AND status IN {}", crate::store::LIVE),
                        &nimbus_store::params![arn.as_str()],
                    )?;
                    if live.is_empty() {
                        self.store.delete(KIND, &arn)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn create_scheduling_policy(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["name"].as_str().unwrap_or_default();
        if !valid_name(name) {
            return Err(client("name must be 1-128 letters, numbers, hyphens and underscores"));
        }
        let arn = self.arn(region, "scheduling-policy", name);
        if self.store.get::<Value>(POLICY, &arn)?.is_some() {
            return Err(client("Object already exists"));
        }
        let policy = json!({
            "name": name, "arn": arn,
            "fairsharePolicy": fairshare(&input["fairsharePolicy"])?,
            "tags": input.get("tags").cloned().unwrap_or_else(|| json!({})),
        });
        self.store.put(POLICY, &arn, &policy, self.now())?;
        Ok(json!({ "name": name, "arn": arn }))
    }

    pub(crate) fn describe_scheduling_policies(&self, input: &Value) -> Result<Value, AwsError> {
        let arns = input["arns"].as_array().cloned().unwrap_or_default();
        let mut found = Vec::new();
        for arn in arns.iter().filter_map(Value::as_str) {
            if let Some(policy) = self.store.get::<Value>(POLICY, arn)? {
                found.push(policy);
            }
        }
        Ok(json!({ "schedulingPolicies": found }))
    }

    pub(crate) fn list_scheduling_policies(&self) -> Result<Value, AwsError> {
        let all: Vec<Value> = self.store.all(POLICY)?;
        let arns: Vec<Value> = all.iter().map(|p| json!({ "arn": p["arn"] })).collect();
        Ok(json!({ "schedulingPolicies": arns }))
    }

    pub(crate) fn update_scheduling_policy(&self, input: &Value) -> Result<Value, AwsError> {
        let arn = input["arn"].as_str().unwrap_or_default();
        let mut policy: Value = self
            .store
            .get(POLICY, arn)?
            .ok_or_else(|| client(format!("schedulingPolicy {arn} does not exist")))?;
        policy["fairsharePolicy"] = fairshare(&input["fairsharePolicy"])?;
        self.store.put(POLICY, arn, &policy, self.now())?;
        Ok(json!({}))
    }

    pub(crate) fn delete_scheduling_policy(&self, input: &Value) -> Result<Value, AwsError> {
        let arn = input["arn"].as_str().unwrap_or_default();
        let queues: Vec<Value> = self.store.all(KIND)?;
        if queues.iter().any(|q| q["schedulingPolicyArn"] == json!(arn)) {
            return Err(client("Cannot delete, found existing JobQueue relationship"));
        }
        if !self.store.delete(POLICY, arn)? {
            return Err(client(format!("schedulingPolicy {arn} does not exist")));
        }
        Ok(json!({}))
    }
}

/// Checks `jobStateTimeLimitActions`: RUNNABLE, CANCEL, a reason, 600–86400 seconds.
fn check_time_limits(actions: &Value) -> Result<(), AwsError> {
    for action in actions.as_array().into_iter().flatten() {
        let seconds = action["maxTimeSeconds"].as_i64().unwrap_or(0);
        if action["state"] != "RUNNABLE"
            || action["action"] != "CANCEL"
            || action["reason"].as_str().is_none()
        {
            return Err(client("jobStateTimeLimitActions take state RUNNABLE, action CANCEL and a reason"));
        }
        if !(600..=86_400).contains(&seconds) {
            return Err(client("jobStateTimeLimitActions maxTimeSeconds must be between 600 and 86400"));
        }
    }
    Ok(())
}

/// Checks a `fairsharePolicy`: decay 0–604800, reservation 0–99, weights 0.0001–999.9999.
fn fairshare(input: &Value) -> Result<Value, AwsError> {
    let mut policy = if input.is_object() { input.clone() } else { json!({}) };
    let decay = policy["shareDecaySeconds"].as_i64().unwrap_or(0);
    if !(0..=604_800).contains(&decay) {
        return Err(client("shareDecaySeconds must be between 0 and 604800"));
    }
    let reservation = policy["computeReservation"].as_i64().unwrap_or(0);
    if !(0..=99).contains(&reservation) {
        return Err(client("computeReservation must be between 0 and 99"));
    }
    let shares = policy["shareDistribution"].as_array().cloned().unwrap_or_default();
    for share in &shares {
        let weight = share["weightFactor"].as_f64().unwrap_or(1.0);
        if !(0.0001..=999.9999).contains(&weight) {
            return Err(client("weightFactor must be between 0.0001 and 999.9999"));
        }
        if share["shareIdentifier"].as_str().is_none_or(str::is_empty) {
            return Err(client("shareIdentifier is required"));
        }
    }
    policy["shareDecaySeconds"] = json!(decay);
    policy["computeReservation"] = json!(reservation);
    policy["shareDistribution"] = json!(shares);
    Ok(policy)
}

/// A share's weight in a policy (exact identifier, else the longest matching `prefix*`).
pub fn weight_of(policy: &Value, share: &str) -> f64 {
    let shares = policy["fairsharePolicy"]["shareDistribution"].as_array().cloned().unwrap_or_default();
    let mut best: Option<(usize, f64)> = None;
    for entry in &shares {
        let id = entry["shareIdentifier"].as_str().unwrap_or_default();
        let weight = entry["weightFactor"].as_f64().unwrap_or(1.0);
        let len = match id.strip_suffix('*') {
            Some(prefix) if share.starts_with(prefix) => prefix.len(),
            None if id == share => usize::MAX,
            _ => continue,
        };
        if best.is_none_or(|(l, _)| len > l) {
            best = Some((len, weight));
        }
    }
    best.map_or(1.0, |(_, w)| w)
}
