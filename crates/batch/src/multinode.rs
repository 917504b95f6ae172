//! Multi-node parallel jobs (`type: multinode`): one job whose nodes `<id>#<index>` each run on
//! an instance of their own. The main node starts first; the others once it runs, with its
//! address. The job's status follows the main node's, and when the main node exits the other
//! nodes are stopped; the job then ends as the main node did, or is tried again by its retry
//! strategy (a new attempt of every node). The nodes of one attempt share a private network
//! ([`crate::NodeNetwork`]): each node's instance joins it before the node's process starts.

use std::collections::HashMap;
use std::sync::Arc;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use crate::jobdefs::{check_container, resources_of};
use crate::model::Job;
use crate::{client, Batch, NodeNetwork};

/// AWS's default bound on a job's nodes (the instances of an ECS cluster).
const MAX_NODES: u64 = 1000;
/// AWS's bound on a job's node groups (ranges).
const MAX_RANGES: usize = 5;

fn invalid(message: impl std::fmt::Display) -> AwsError {
    client(format!("Error executing request, Exception : {message}, RequestId: nimbus"))
}

/// `targetNodes` (`a:b`, `a:`, `:b`, `:`, or `n`) as the inclusive range it names among
/// `num_nodes` nodes; None when it is not one.
pub fn node_range(target: &str, num_nodes: u32) -> Option<(u32, u32)> {
    let last = num_nodes.checked_sub(1)?;
    let (start, end) = match target.split_once(':') {
        Some((start, end)) => (start.trim(), end.trim()),
        None => (target.trim(), target.trim()),
    };
    let start: u32 = if start.is_empty() { 0 } else { start.parse().ok()? };
    let end: u32 = if end.is_empty() { last } else { end.parse().ok()? };
    (start <= end && end <= last).then_some((start, end))
}

/// The container of node `index`: the narrowest range naming it wins (nested ranges override
/// the ranges around them); between equals, the later.
pub fn container_of(properties: &Value, index: u32) -> Value {
    let num_nodes = properties["numNodes"].as_u64().unwrap_or(0) as u32;
    let mut best: Option<(u32, &Value)> = None;
    for range in properties["nodeRangeProperties"].as_array().into_iter().flatten() {
        let target = range["targetNodes"].as_str().unwrap_or_default();
        if let Some((start, end)) = node_range(target, num_nodes) {
            if (start..=end).contains(&index) && best.is_none_or(|(width, _)| end - start <= width) {
                best = Some((end - start, &range["container"]));
            }
        }
    }
    best.map_or(Value::Null, |(_, container)| container.clone())
}

/// Checks a definition's `nodeProperties` as RegisterJobDefinition does.
pub fn check_node_properties(properties: &Value) -> Result<(), AwsError> {
    let Some(num_nodes) = properties["numNodes"].as_u64() else {
        return Err(invalid("numNodes is required in nodeProperties"));
    };
    if !(1..=MAX_NODES).contains(&num_nodes) {
        return Err(invalid(format!("numNodes must be between 1 and {MAX_NODES}")));
    }
    let Some(main) = properties["mainNode"].as_u64() else {
        return Err(invalid("mainNode is required in nodeProperties"));
    };
    if main >= num_nodes {
        return Err(invalid("mainNode must be less than numNodes"));
    }
    let ranges = properties["nodeRangeProperties"].as_array().cloned().unwrap_or_default();
    if ranges.is_empty() || ranges.len() > MAX_RANGES {
        return Err(invalid(format!("nodeRangeProperties must hold between 1 and {MAX_RANGES} node ranges")));
    }
    let mut covered = vec![false; num_nodes as usize];
    for range in &ranges {
        let target = range["targetNodes"].as_str().unwrap_or_default();
        let Some((start, end)) = node_range(target, num_nodes as u32) else {
            return Err(invalid(format!(
                "Invalid targetNodes {target}: node ranges must lie within 0:{}",
                num_nodes - 1
            )));
        };
        if range.get("ecsProperties").is_some() || range.get("eksProperties").is_some() {
            return Err(client("nimbus runs container node ranges only (no ecsProperties or eksProperties)"));
        }
        check_container(&range["container"], false)?;
        covered[start as usize..=end as usize].iter_mut().for_each(|c| *c = true);
    }
    if let Some(missing) = covered.iter().position(|c| !c) {
        return Err(invalid(format!(
            "Node ranges must account for all nodes (0:{}); node {missing} is in no range",
            num_nodes - 1
        )));
    }
    Ok(())
}

/// A submission's `nodeProperties`: the definition's with `nodeOverrides` applied.
pub fn submitted(definition: &Value, input: &Value) -> Result<Value, AwsError> {
    if input.get("containerOverrides").is_some() {
        return Err(client(
            "containerOverrides cannot be used with a multi-node parallel job; use nodeOverrides",
        ));
    }
    if input.get("arrayProperties").is_some() {
        return Err(client("Array jobs are not supported for multi-node parallel jobs"));
    }
    let mut properties = definition["nodeProperties"].clone();
    let overrides = &input["nodeOverrides"];
    if let Some(num_nodes) = overrides.get("numNodes") {
        let num_nodes = num_nodes.as_u64().unwrap_or(0);
        let ranges = properties["nodeRangeProperties"].as_array().cloned().unwrap_or_default();
        let open: Vec<u64> = ranges
            .iter()
            .filter_map(|r| r["targetNodes"].as_str())
            .filter(|t| t.ends_with(':'))
            .map(|t| t.trim_end_matches(':').parse().unwrap_or(0))
            .collect();
        if open.is_empty() {
            return Err(client(
                "numNodes can be overridden only when a node range of the job definition has an open upper bound (n:)",
            ));
        }
        if open.iter().any(|start| *start >= num_nodes)
            || properties["mainNode"].as_u64().is_some_and(|m| m >= num_nodes)
        {
            return Err(client(
                "The numNodes override must be greater than the main node's index and the lower bound of every open node range",
            ));
        }
        properties["numNodes"] = json!(num_nodes);
    }
    for over in overrides["nodePropertyOverrides"].as_array().into_iter().flatten() {
        let target = over["targetNodes"].as_str().unwrap_or_default();
        let ranges = properties["nodeRangeProperties"].as_array_mut();
        let range = ranges.into_iter().flatten().find(|r| r["targetNodes"] == json!(target));
        let Some(range) = range else {
            return Err(client(format!(
                "NodeOverride targets should match job definition. Non matching targets - {target}"
            )));
        };
        range["container"] = crate::jobs::overridden(&range["container"], &over["containerOverrides"]);
    }
    check_node_properties(&properties)?;
    Ok(properties)
}

/// The private network of one attempt of a multi-node parallel job, while it runs.
pub(crate) struct NodeNet {
    attempt: u32,
    network: Arc<dyn NodeNetwork>,
    main_address: Option<String>,
}

/// Running multi-node parallel jobs' networks, by job id.
pub(crate) type NodeNets = std::sync::Mutex<HashMap<String, NodeNet>>;

impl Batch {
    /// A new attempt of a multi-node parallel job: its nodes (made, or reset for the attempt),
    /// the main node RUNNABLE and the others PENDING until it runs. The job is RUNNABLE.
    fn start_nodes(&self, mut parent: Job, existing: Vec<Job>) -> Result<(), AwsError> {
        let properties = parent.node_properties.clone().unwrap_or_default();
        let num_nodes = properties["numNodes"].as_u64().unwrap_or(0) as u32;
        let main = properties["mainNode"].as_u64().unwrap_or(0) as u32;
        let now = self.now();
        parent.n.attempt += 1;
        parent.status = "RUNNABLE".into();
        parent.n.runnable_since = Some(now);
        parent.n.stopping = None;
        let mut existing: HashMap<u32, Job> =
            existing.into_iter().filter_map(|node| Some((node.n.index?, node))).collect();
        let mut nodes = Vec::with_capacity(num_nodes as usize);
        for index in 0..num_nodes {
            let mut node = existing.remove(&index).unwrap_or_else(|| {
                let mut node = parent.clone();
                node.job_id = format!("{}#{index}", parent.job_id);
                node.job_arn = format!("{}#{index}", parent.job_arn);
                node.created_at = now;
                node.attempts = Vec::new();
                node.node_properties = None;
                node.node_details = Some(json!({ "nodeIndex": index, "isMainNode": index == main }));
                node.retry_strategy = None;
                node.depends_on = Vec::new();
                node.n.parent = Some(parent.job_id.clone());
                node.n.index = Some(index);
                node
            });
            (node.n.num_nodes, node.n.main_node) = (Some(num_nodes), Some(main));
            node.container = container_of(&properties, index);
            let (vcpus, memory) = resources_of(&node.container);
            (node.n.vcpus, node.n.memory) = (vcpus.unwrap_or(1.0), memory.unwrap_or(2048));
            // Started once per attempt of the job: AWS_BATCH_JOB_ATTEMPT is the job's.
            node.n.attempt = parent.n.attempt - 1;
            node.status = if index == main { "RUNNABLE".into() } else { "PENDING".into() };
            node.status_reason = None;
            node.n.runnable_since = Some(now);
            (node.started_at, node.stopped_at, node.n.stopping) = (None, None, None);
            (node.is_cancelled, node.is_terminated) = (false, false);
            nodes.push(node);
        }
        let mut all: Vec<&Job> = nodes.iter().collect();
        all.push(&parent);
        self.store.save_jobs(&all)?;
        all.iter().for_each(|job| self.emit(job));
        Ok(())
    }

    /// One turn's work for running multi-node parallel jobs: nodes made for jobs that became
    /// RUNNABLE, the job's status following its main node's, the other nodes started once the
    /// main node runs and stopped when it has exited, and the attempt settled once every node
    /// has ended.
    pub(crate) fn settle_multinode(&self) -> Result<(), AwsError> {
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let parents = self.store.jobs_where(
            "parent = '' AND status IN ('RUNNABLE','STARTING','RUNNING') AND body LIKE ?1",
            &params!["%\"nodeProperties\":%"],
        )?;
        for mut parent in parents {
            let nodes = self.store.jobs_where("parent = ?1", &params![parent.job_id.as_str()])?;
            let main_index = parent.node_properties.as_ref().and_then(|p| p["mainNode"].as_u64());
            let main = nodes.iter().find(|n| n.n.index.map(u64::from) == main_index).cloned();
            let Some(main) = main.filter(|_| parent.n.attempt > 0) else {
                self.start_nodes(parent, nodes)?;
                continue;
            };
            if !main.is_finished() {
                let mut changed = Vec::new();
                // Why the main node waits (no room, an environment refusing nodes) is the job's.
                let reason = main.status_reason.clone().filter(|_| main.status == "RUNNABLE");
                if parent.status != main.status || reason.is_some() && parent.status_reason != reason {
                    parent.status = main.status.clone();
                    parent.status_reason = reason.or(parent.status_reason.take());
                    parent.started_at = main.started_at.or(parent.started_at);
                    changed.push(parent.clone());
                }
                if main.status == "RUNNING" {
                    for mut node in nodes.into_iter().filter(|n| n.status == "PENDING") {
                        node.status = "RUNNABLE".into();
                        node.n.runnable_since = Some(self.now());
                        changed.push(node);
                    }
                }
                self.store.save_jobs(&changed.iter().collect::<Vec<_>>())?;
                changed.iter().for_each(|job| self.emit(job));
                if changed.iter().any(|job| job.status == "RUNNABLE") {
                    self.wake();
                }
                continue;
            }
            // The main node has exited: the others are stopped, then the attempt is settled.
            let reason =
                format!("Main node {} of the multi-node parallel job exited", main_index.unwrap_or(0));
            let live: Vec<Job> = nodes.iter().filter(|n| !n.is_finished()).cloned().collect();
            if !live.is_empty() {
                let unstopped: Vec<Job> = live.into_iter().filter(|n| n.n.stopping.is_none()).collect();
                // Queued ones end at once: the attempt is settled at the next turn.
                if !unstopped.is_empty() {
                    self.wake();
                }
                for node in unstopped {
                    self.stop_job(node, &reason, true)?;
                }
                continue;
            }
            self.node_nets.lock().unwrap_or_else(|p| p.into_inner()).remove(&parent.job_id);
            self.end_multinode_attempt(parent, main, nodes)?;
        }
        Ok(())
    }

    /// Every node has ended: the job ends as its main node did, or starts its next attempt.
    fn end_multinode_attempt(&self, mut parent: Job, main: Job, nodes: Vec<Job>) -> Result<(), AwsError> {
        if let Some(attempt) = main.attempts.last() {
            parent.attempts.push(attempt.clone());
        }
        let mut container = json!({});
        for key in ["exitCode", "reason", "logStreamName"] {
            if let Some(value) = main.container.get(key) {
                container[key] = value.clone();
            }
        }
        parent.container = container;
        parent.started_at = main.started_at.or(parent.started_at);
        let reason = main.status_reason.clone().unwrap_or_default();
        if main.status == "SUCCEEDED" {
            return self.finish(&mut parent, "SUCCEEDED", &reason);
        }
        if let Some(stopping) = parent.n.stopping.take() {
            parent.is_terminated = true;
            return self.finish(&mut parent, "FAILED", &stopping);
        }
        let attempt = main.attempts.last().cloned().unwrap_or_default();
        let retry = !main.is_terminated
            && crate::retry::should_retry(
                parent.retry_strategy.as_ref(),
                attempt["container"]["exitCode"].as_i64().map(|c| c as i32),
                attempt["container"]["reason"].as_str(),
                attempt["statusReason"].as_str().unwrap_or_default(),
                parent.n.attempt,
            );
        if retry {
            parent.status_reason = Some(reason);
            return self.start_nodes(parent, nodes);
        }
        self.finish(&mut parent, "FAILED", &reason)
    }

    /// CancelJob and TerminateJob of a multi-node parallel job: every node that has not ended,
    /// then the job itself.
    pub(crate) fn stop_multinode(&self, parent: Job, reason: &str, terminate: bool) -> Result<(), AwsError> {
        // CancelJob leaves a started job alone, as AWS does (its queued nodes too).
        if !terminate && matches!(parent.status.as_str(), "STARTING" | "RUNNING") {
            return Ok(());
        }
        let nodes = self.store.jobs_where("parent = ?1", &params![parent.job_id.as_str()])?;
        for node in nodes.into_iter().filter(|n| !n.is_finished()) {
            // A queued node of a cancelled job ends now; a started one only by TerminateJob.
            self.stop_job(node, reason, terminate)?;
        }
        match parent.status.as_str() {
            "SUBMITTED" | "PENDING" | "RUNNABLE" => {
                self.node_nets.lock().unwrap_or_else(|p| p.into_inner()).remove(&parent.job_id);
                self.stop_job(parent, reason, terminate)
            }
            "STARTING" | "RUNNING" if terminate => {
                let mut parent = parent;
                parent.n.stopping = Some(reason.to_owned());
                self.store.save_jobs(&[&parent])
            }
            _ => Ok(()),
        }
    }

    /// A node's address as DescribeJobs shows it (`container.networkInterfaces`, as for AWS's
    /// `awsvpc` tasks).
    fn show_interface(&self, node_id: &str, address: &str) {
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(Some(mut node)) = self.store.job(node_id) {
            node.container["networkInterfaces"] = json!([{ "privateIpv4Address": address }]);
            let _ = self.store.save_jobs(&[&node]);
        }
    }

    /// A node's own variables (AWS's), its instance joined to its job's network first.
    pub(crate) async fn node_variables(
        self: &Arc<Self>,
        node: &Job,
        instance: &str,
    ) -> Result<Vec<(String, String)>, String> {
        let parent = node.n.parent.clone().unwrap_or_default();
        let index = node.n.index.unwrap_or(0);
        let is_main = node.node_details.as_ref().is_some_and(|d| d["isMainNode"] == json!(true));
        let (me, id, instance) = (self.clone(), parent.clone(), instance.to_owned());
        let (attempt, node_id) = (node.n.attempt, node.job_id.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let network = {
                let mut nets = me.node_nets.lock().unwrap_or_else(|p| p.into_inner());
                match nets.get(&id).filter(|net| net.attempt == attempt) {
                    Some(net) => net.network.clone(),
                    None => {
                        let network: Arc<dyn NodeNetwork> = me.capacity.node_network()?.into();
                        let net = NodeNet { attempt, network: network.clone(), main_address: None };
                        nets.insert(id.clone(), net);
                        network
                    }
                }
            };
            let address = network.join(&instance)?;
            me.show_interface(&node_id, &address);
            let mut nets = me.node_nets.lock().unwrap_or_else(|p| p.into_inner());
            let net = nets.get_mut(&id).ok_or("the job's network is gone")?;
            if is_main {
                net.main_address = Some(address.clone());
            }
            Ok::<_, String>(net.main_address.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        let main_address =
            joined.map_err(|e| format!("CannotStartContainerError: multi-node parallel network: {e}"))?;
        let mut variables = vec![
            ("AWS_BATCH_JOB_NODE_INDEX".to_owned(), index.to_string()),
            ("AWS_BATCH_JOB_NUM_NODES".to_owned(), node.n.num_nodes.unwrap_or(1).to_string()),
            ("AWS_BATCH_JOB_MAIN_NODE_INDEX".to_owned(), node.n.main_node.unwrap_or(0).to_string()),
        ];
        if !is_main {
            let address = main_address.ok_or_else(|| {
                "CannotStartContainerError: the main node's address is not known (it has not started)"
                    .to_owned()
            })?;
            variables.push(("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS".to_owned(), address));
        }
        Ok(variables)
    }
}
