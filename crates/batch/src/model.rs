//! The records: a job as AWS's `JobDetail` (so DescribeJobs is the stored document) plus what
//! only nimbus needs under `_nimbus`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const STATUSES: [&str; 7] =
    ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_arn: String,
    pub job_name: String,
    pub job_id: String,
    pub job_queue: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_priority: Option<i64>,
    #[serde(default)]
    pub attempts: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<i64>,
    #[serde(default)]
    pub depends_on: Vec<Value>,
    pub job_definition: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Null for a multi-node parallel job (its nodes have containers).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub container: Value,
    /// A multi-node parallel job's `nodeProperties` (as submitted, overrides applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_properties: Option<Value>,
    /// A node's `nodeDetails` (`nodeIndex`, `isMainNode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_properties: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default)]
    pub propagate_tags: bool,
    #[serde(default)]
    pub platform_capabilities: Vec<String>,
    #[serde(default)]
    pub is_cancelled: bool,
    #[serde(default)]
    pub is_terminated: bool,
    #[serde(rename = "_nimbus")]
    pub n: Internal,
}

/// What nimbus keeps beside AWS's fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Internal {
    pub region: String,
    pub queue_name: String,
    pub definition_name: String,
    /// An array child's parent, or a node's multi-node parallel job.
    #[serde(default)]
    pub parent: Option<String>,
    /// An array child's index, or a node's.
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub size: Option<u32>,
    /// A node's: how many nodes its job has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_nodes: Option<u32>,
    /// A node's: its job's main node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_node: Option<u32>,
    pub vcpus: f64,
    pub memory: u64,
    /// The attempt under way (1-based), or the number made when none is.
    #[serde(default)]
    pub attempt: u32,
    /// Where the attempt under way runs.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub ce: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub log_stream: Option<String>,
    #[serde(default)]
    pub attempt_started: Option<i64>,
    /// Fargate: the instance is the job's alone and ends with it.
    #[serde(default)]
    pub dedicated: bool,
    /// Why the job is being stopped (TerminateJob), waiting for the process to end.
    #[serde(default)]
    pub stopping: Option<String>,
    /// When it last became RUNNABLE (`jobStateTimeLimitActions`).
    #[serde(default)]
    pub runnable_since: Option<i64>,
    /// The attempt under way runs on Slurm: its partition and, once submitted, its job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::slurm::SlurmRef>,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "SUCCEEDED" | "FAILED")
    }

    pub fn is_array_parent(&self) -> bool {
        self.n.size.is_some() && self.n.index.is_none()
    }

    /// A multi-node parallel job (its nodes are jobs `<id>#<index>`).
    pub fn is_multinode_parent(&self) -> bool {
        self.node_properties.is_some()
    }

    /// A node of a multi-node parallel job.
    pub fn is_node(&self) -> bool {
        self.node_details.is_some()
    }

    /// AWS's `JobDetail`.
    pub fn detail(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("_nimbus");
        }
        value
    }

    /// AWS's `JobSummary` (ListJobs).
    pub fn summary(&self) -> Value {
        let mut summary = json!({
            "jobArn": self.job_arn, "jobId": self.job_id, "jobName": self.job_name,
            "createdAt": self.created_at, "status": self.status, "jobDefinition": self.job_definition,
        });
        for (key, value) in [
            ("statusReason", self.status_reason.as_ref().map(|r| json!(r))),
            ("startedAt", self.started_at.map(|t| json!(t))),
            ("stoppedAt", self.stopped_at.map(|t| json!(t))),
            ("shareIdentifier", self.share_identifier.as_ref().map(|s| json!(s))),
            ("arrayProperties", self.array_properties.clone()),
            ("nodeProperties", self.node_summary()),
        ] {
            if let Some(value) = value {
                summary[key] = value;
            }
        }
        let mut container = Map::new();
        for key in ["exitCode", "reason"] {
            if let Some(value) = self.container.get(key) {
                container.insert(key.into(), value.clone());
            }
        }
        if !container.is_empty() {
            summary["container"] = Value::Object(container);
        }
        summary
    }
}

impl Job {
    /// AWS's `NodePropertiesSummary`: the job's number of nodes, and a node's index.
    fn node_summary(&self) -> Option<Value> {
        if let Some(properties) = &self.node_properties {
            return Some(json!({ "numNodes": properties["numNodes"] }));
        }
        let details = self.node_details.as_ref()?;
        Some(json!({
            "isMainNode": details["isMainNode"], "nodeIndex": details["nodeIndex"],
            "numNodes": self.n.num_nodes,
        }))
    }
}

/// The seven statuses with a count each, as a parent's `statusSummary`.
pub fn status_summary(counts: &[(String, i64)]) -> Value {
    let mut summary = Map::new();
    for status in STATUSES {
        let n = counts.iter().filter(|(s, _)| s == status).map(|(_, n)| n).sum::<i64>();
        summary.insert(status.into(), json!(n));
    }
    Value::Object(summary)
}

/// A launched instance of a managed compute environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostDoc {
    pub instance_id: String,
    pub ce: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub spot: bool,
    pub launched_ms: i64,
    #[serde(default)]
    pub dedicated: Option<String>,
}
