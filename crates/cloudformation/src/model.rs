//! A stack, its resources, events and change sets, as stored (JSON documents).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Output {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
    pub export: Option<String>,
}

/// What a stack was deployed from: kept whole so that a failed update returns to it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Version {
    /// The template text as submitted (`GetTemplate` Original).
    pub original: String,
    /// After transforms (`GetTemplate` Processed), what the engine works from.
    pub template: Value,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resource {
    pub resource_type: String,
    pub physical_id: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    /// Properties as last provisioned (resolved).
    pub properties: Map<String, Value>,
    pub attributes: Map<String, Value>,
    pub updated_ms: i64,
    /// During an update: the resource as it was before (to return to, or to delete once the
    /// update is done when it was replaced).
    pub before: Option<Box<Resource>>,
    /// The resource was replaced by this update (`before` is the old one).
    #[serde(default)]
    pub replaced: bool,
    /// Created by this update (removed again by a rollback).
    #[serde(default)]
    pub added: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stack {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub updated_ms: Option<i64>,
    pub deleted_ms: Option<i64>,
    pub description: Option<String>,
    pub current: Version,
    /// The version being replaced by an update in progress.
    pub previous: Option<Version>,
    pub tags: Vec<(String, String)>,
    pub capabilities: Vec<String>,
    pub notification_arns: Vec<String>,
    pub role_arn: Option<String>,
    pub disable_rollback: bool,
    /// `OnFailure=DELETE` on create.
    pub delete_on_failure: bool,
    pub termination_protection: bool,
    pub outputs: Vec<Output>,
    pub resources: BTreeMap<String, Resource>,
    pub parent_id: Option<String>,
    pub root_id: Option<String>,
    pub change_set_id: Option<String>,
    pub last_event_ms: i64,
    /// `TimeoutInMinutes` of the create.
    #[serde(default)]
    pub timeout_minutes: Option<u64>,
    /// The node running (or last running) an operation on the stack.
    #[serde(default)]
    pub owner: Option<String>,
    /// Resources kept on delete (`RetainResources`).
    #[serde(default)]
    pub retain: Vec<String>,
}

impl Stack {
    /// A timestamp for the next event: now, and always after the previous one.
    pub fn tick(&mut self) -> i64 {
        let ms = now_ms().max(self.last_event_ms + 1);
        self.last_event_ms = ms;
        ms
    }

    pub fn is_deleted(&self) -> bool {
        self.status == "DELETE_COMPLETE"
    }

    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS") && self.status != "REVIEW_IN_PROGRESS"
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub stack_id: String,
    pub stack_name: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub timestamp_ms: i64,
    pub status: String,
    pub reason: Option<String>,
    pub properties: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChangeSet {
    pub id: String,
    pub name: String,
    pub stack_id: String,
    pub stack_name: String,
    pub change_set_type: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub execution_status: String,
    pub description: Option<String>,
    pub created_ms: i64,
    pub version: Version,
    pub tags: Vec<(String, String)>,
    pub capabilities: Vec<String>,
    pub notification_arns: Vec<String>,
    pub role_arn: Option<String>,
    pub changes: Vec<Value>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `2026-12-07T01:12:58.123Z`.
pub fn iso(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time.format(&format).unwrap_or_default()
}
