//! Stack and resource statuses with the events that tell of them (every event a strictly later
//! millisecond than the one before), and recovery after a stop: resources left in progress are
//! marked failed and the interrupted operation rolled back (or finished).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::{Engine, STACK_TYPE};
use crate::model::{Event, Stack};

impl Engine {
    /// Marks resources a stop left in progress as failed, then resumes or rolls back.
    pub fn recover(self: &Arc<Self>) {
        let stacks = tokio::task::block_in_place(|| self.store.unfinished()).unwrap_or_default();
        let own = stacks.into_iter().filter(|s| s.owner.as_deref().is_none_or(|owner| owner == self.node));
        for mut stack in own {
            let why = "nimbus stopped while this resource was in progress";
            let mut events = Vec::new();
            let ids: Vec<String> = stack.resources.keys().cloned().collect();
            for id in ids {
                let resource = &stack.resources[&id];
                if !resource.status.ends_with("_IN_PROGRESS") {
                    continue;
                }
                let failed = resource.status.replace("_IN_PROGRESS", "_FAILED");
                let (kind, physical) = (resource.resource_type.clone(), resource.physical_id.clone());
                events.push(self.set_resource(&mut stack, &id, &kind, physical, &failed, Some(why.into())));
            }
            let reason = "nimbus stopped during the operation".to_owned();
            let next = match stack.status.as_str() {
                "CREATE_IN_PROGRESS" if stack.disable_rollback => Some("CREATE_FAILED"),
                "CREATE_IN_PROGRESS" => Some("ROLLBACK_IN_PROGRESS"),
                "UPDATE_IN_PROGRESS" if stack.disable_rollback => Some("UPDATE_FAILED"),
                "UPDATE_IN_PROGRESS" => Some("UPDATE_ROLLBACK_IN_PROGRESS"),
                _ => None,
            };
            if let Some(next) = next {
                events.push(self.set_status(&mut stack, next, Some(reason)));
            }
            self.save(&stack, &events);
            if stack.in_progress() {
                self.start(stack.id.clone());
            }
        }
    }

    pub fn root_event(&self, stack: &mut Stack, status: &str, reason: Option<String>) -> Event {
        let ts = stack.tick();
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            stack_id: stack.id.clone(),
            stack_name: stack.name.clone(),
            logical_id: stack.name.clone(),
            physical_id: Some(stack.id.clone()),
            resource_type: STACK_TYPE.into(),
            timestamp_ms: ts,
            status: status.into(),
            reason,
            properties: None,
        }
    }

    pub fn set_status(&self, stack: &mut Stack, status: &str, reason: Option<String>) -> Event {
        if stack.in_progress() || status.ends_with("_IN_PROGRESS") {
            stack.owner = Some(self.node.clone());
        }
        stack.status = status.into();
        stack.reason = reason.clone();
        self.root_event(stack, status, reason)
    }

    pub(crate) fn finish(&self, stack: &mut Stack, status: &str, reason: Option<String>) {
        if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
            stack.previous = None;
        }
        let event = self.set_status(stack, status, reason);
        self.save(stack, &[event]);
    }

    /// Sets a resource's status and returns the event saying so.
    pub fn set_resource(
        &self,
        stack: &mut Stack,
        id: &str,
        kind: &str,
        physical: Option<String>,
        status: &str,
        reason: Option<String>,
    ) -> Event {
        let resource = stack.resources.entry(id.to_owned()).or_default();
        resource.resource_type = kind.to_owned();
        resource.status = status.to_owned();
        resource.reason = reason.clone();
        resource.updated_ms = crate::model::now_ms();
        if physical.is_some() {
            resource.physical_id = physical;
        }
        let (physical, properties) = (resource.physical_id.clone(), resource.properties.clone());
        self.event(stack, id, kind, physical, status, reason, Some(&properties))
    }

    /// An event about a resource, its state unchanged (an old resource deleted after its
    /// replacement, say).
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &self,
        stack: &mut Stack,
        id: &str,
        kind: &str,
        physical: Option<String>,
        status: &str,
        reason: Option<String>,
        properties: Option<&Map<String, Value>>,
    ) -> Event {
        let ts = stack.tick();
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            stack_id: stack.id.clone(),
            stack_name: stack.name.clone(),
            logical_id: id.to_owned(),
            physical_id: physical.or(Some(String::new())),
            resource_type: kind.to_owned(),
            timestamp_ms: ts,
            status: status.to_owned(),
            reason,
            properties: properties.map(|p| Value::Object(p.clone()).to_string()),
        }
    }
}
