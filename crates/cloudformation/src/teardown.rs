//! The engine's second half: what happens after a failure (rollback of a create or of an
//! update), the cleanup after a successful update (resources removed or replaced), and deletes
//! (reverse dependency order, `DeletionPolicy`/`UpdateReplacePolicy: Retain`).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::{Action, Engine};
use crate::graph;
use crate::model::Stack;

impl Engine {
    pub(crate) async fn create_failed(self: &Arc<Self>, stack: &mut Stack, reason: String) {
        if stack.disable_rollback {
            return self.finish(stack, "CREATE_FAILED", Some(reason));
        }
        let event = self.set_status(
            stack,
            "ROLLBACK_IN_PROGRESS",
            Some(format!("{reason}Rollback requested by user.")),
        );
        self.save(stack, &[event]);
        self.rollback_create(stack).await;
    }

    pub(crate) async fn rollback_create(self: &Arc<Self>, stack: &mut Stack) {
        let failures = self.delete_resources(stack, false).await;
        if !failures.is_empty() {
            let reason = format!("The following resource(s) failed to delete: [{}]. ", failures.join(", "));
            return self.finish(stack, "ROLLBACK_FAILED", Some(reason));
        }
        self.finish(stack, "ROLLBACK_COMPLETE", None);
        if stack.delete_on_failure {
            let event = self.set_status(stack, "DELETE_IN_PROGRESS", None);
            self.save(stack, &[event]);
            self.delete_all(stack).await;
        }
    }

    /// Order for deleting: resources not in the template first, then the template's in reverse.
    pub(crate) fn delete_order(stack: &Stack) -> Vec<String> {
        let forward =
            graph::dependencies(&stack.current.template).and_then(|g| graph::order(&g)).unwrap_or_default();
        let mut order: Vec<String> =
            stack.resources.keys().filter(|id| !forward.contains(id)).cloned().collect();
        order.extend(forward.into_iter().rev());
        order
    }

    /// Deletes every resource of the stack that exists; the ids that failed.
    pub(crate) async fn delete_resources(
        self: &Arc<Self>,
        stack: &mut Stack,
        honour_retain_list: bool,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        for id in Self::delete_order(stack) {
            let Some(resource) = stack.resources.get(&id).cloned() else { continue };
            if resource.status == "DELETE_COMPLETE" || resource.status == "DELETE_SKIPPED" {
                continue;
            }
            let kind = resource.resource_type.clone();
            let Some(physical) = resource.physical_id.clone() else {
                let event = self.set_resource(stack, &id, &kind, None, "DELETE_COMPLETE", None);
                self.save(stack, &[event]);
                continue;
            };
            let declared = Self::declared(stack, &id);
            let retain = declared.get("DeletionPolicy").and_then(Value::as_str) == Some("Retain")
                || (honour_retain_list && stack.retain.contains(&id));
            if retain {
                let event = self.set_resource(stack, &id, &kind, None, "DELETE_SKIPPED", None);
                self.save(stack, &[event]);
                continue;
            }
            if let Err(reason) =
                self.delete_one(stack, &id, &kind, &physical, resource.properties.clone(), true).await
            {
                let _ = reason;
                failures.push(id);
            }
        }
        failures
    }

    /// Deletes one resource; `track` false for an old resource whose logical id now names its
    /// replacement (only events tell of it).
    pub(crate) async fn delete_one(
        self: &Arc<Self>,
        stack: &mut Stack,
        id: &str,
        kind: &str,
        physical: &str,
        properties: Map<String, Value>,
        track: bool,
    ) -> Result<(), String> {
        let mark = |engine: &Self, stack: &mut Stack, status: &str, reason: Option<String>| {
            if track {
                engine.set_resource(stack, id, kind, None, status, reason)
            } else {
                engine.event(stack, id, kind, Some(physical.to_owned()), status, reason, None)
            }
        };
        let event = mark(self, stack, "DELETE_IN_PROGRESS", None);
        self.save(stack, &[event]);
        let request = self.request(stack, id, kind, properties);
        let action = Action::Delete { physical: physical.to_owned() };
        let outcome = self.clone().execute(&action, request).await;
        let (status, reason) = match &outcome {
            Ok(_) => ("DELETE_COMPLETE", None),
            Err(reason) => ("DELETE_FAILED", Some(reason.clone())),
        };
        let event = mark(self, stack, status, reason);
        self.save(stack, &[event]);
        outcome.map(|_| ())
    }

    /// After a successful update: the resources it removed or replaced go.
    pub(crate) async fn cleanup(self: &Arc<Self>, stack: &mut Stack) {
        if stack.status != "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" {
            let event = self.set_status(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None);
            self.save(stack, &[event]);
        }
        // The resources the template keeps: declared, and their condition holding.
        let declared =
            stack.current.template.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
        let exports = self.exports();
        let in_template: BTreeSet<String> =
            crate::resolve::with_scope(stack, &self.region, &self.account, &exports, true, |scope| {
                Ok(declared
                    .iter()
                    .filter(|(_, d)| crate::resolve::holds(scope, d).unwrap_or(true))
                    .map(|(id, _)| id.clone())
                    .collect())
            })
            .unwrap_or_else(|_| declared.keys().cloned().collect());
        let previous = stack.previous.clone();
        let old_declared = |id: &str| -> Value {
            previous
                .as_ref()
                .and_then(|v| v.template.get("Resources"))
                .and_then(|r| r.get(id))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let ids: Vec<String> = stack.resources.keys().cloned().collect();
        for id in ids.iter().rev() {
            let resource = stack.resources[id].clone();
            let kept = in_template.contains(id)
                && resource.physical_id.is_some()
                && resource.status != "DELETE_COMPLETE";
            let retained =
                |policy: &str| old_declared(id).get(policy).and_then(Value::as_str) == Some("Retain");
            if resource.replaced {
                if let Some(before) = resource.before.clone() {
                    if let Some(old) = before.physical_id.clone().filter(|_| !retained("UpdateReplacePolicy"))
                    {
                        let (kind, props) = (before.resource_type.clone(), before.properties.clone());
                        let _ = self.delete_one(stack, id, &kind, &old, props, false).await;
                    }
                }
            } else if !kept && stack.resources.get(id).is_some_and(|r| r.status != "DELETE_COMPLETE") {
                match resource.physical_id.clone() {
                    Some(physical) if !retained("DeletionPolicy") => {
                        let _ = self
                            .delete_one(
                                stack,
                                id,
                                &resource.resource_type,
                                &physical,
                                resource.properties.clone(),
                                true,
                            )
                            .await;
                    }
                    Some(_) => {
                        let event = self.set_resource(
                            stack,
                            id,
                            &resource.resource_type,
                            None,
                            "DELETE_SKIPPED",
                            None,
                        );
                        self.save(stack, &[event]);
                    }
                    None => {}
                }
                stack.resources.remove(id);
                continue;
            }
            if let Some(resource) = stack.resources.get_mut(id) {
                resource.before = None;
                resource.replaced = false;
                resource.added = false;
            }
        }
        self.finish(stack, "UPDATE_COMPLETE", None);
    }

    /// Returns every resource an update touched to its state before, then the previous template.
    pub(crate) async fn rollback_update(self: &Arc<Self>, stack: &mut Stack, reason: String) {
        if stack.status != "UPDATE_ROLLBACK_IN_PROGRESS" {
            let event = self.set_status(stack, "UPDATE_ROLLBACK_IN_PROGRESS", Some(reason));
            self.save(stack, &[event]);
        }
        let ids: Vec<String> = stack.resources.keys().cloned().collect();
        let mut failures = Vec::new();
        for id in &ids {
            let resource = stack.resources[id].clone();
            let Some(before) = resource.before.clone().filter(|_| !resource.replaced) else { continue };
            let (Some(physical), kind) = (before.physical_id.clone(), before.resource_type.clone()) else {
                continue;
            };
            let event = self.set_resource(stack, id, &kind, None, "UPDATE_IN_PROGRESS", None);
            self.save(stack, &[event]);
            let request = self.request(stack, id, &kind, before.properties.clone());
            let action = Action::Update { physical: physical.clone(), previous: resource.properties.clone() };
            let outcome = self.clone().execute(&action, request).await;
            let (status, why) = match outcome {
                Ok(provisioned) => {
                    if let Some(r) = stack.resources.get_mut(id) {
                        r.attributes = provisioned.attributes;
                    }
                    ("UPDATE_COMPLETE", None)
                }
                Err(why) => {
                    failures.push(id.clone());
                    ("UPDATE_FAILED", Some(why))
                }
            };
            if let Some(r) = stack.resources.get_mut(id) {
                r.properties = before.properties.clone();
            }
            let event = self.set_resource(stack, id, &kind, None, status, why);
            self.save(stack, &[event]);
        }
        if !failures.is_empty() {
            let reason = format!("The following resource(s) failed to update: [{}]. ", failures.join(", "));
            return self.finish(stack, "UPDATE_ROLLBACK_FAILED", Some(reason));
        }
        if let Some(previous) = stack.previous.take() {
            stack.current = previous;
        }
        let event = self.set_status(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None);
        self.save(stack, &[event]);
        self.rollback_cleanup(stack).await;
    }

    /// Deletes what the failed update created (new resources, replacements).
    pub(crate) async fn rollback_cleanup(self: &Arc<Self>, stack: &mut Stack) {
        let ids: Vec<String> = stack.resources.keys().cloned().collect();
        for id in ids.iter().rev() {
            let resource = stack.resources[id].clone();
            if resource.replaced {
                if let Some(new) = resource.physical_id.clone().filter(|_| resource.before.is_some()) {
                    let (kind, props) = (resource.resource_type.clone(), resource.properties.clone());
                    let _ = self.delete_one(stack, id, &kind, &new, props, false).await;
                }
                if let Some(before) = resource.before.clone() {
                    stack.resources.insert(id.clone(), *before);
                }
            } else if resource.added {
                if let Some(physical) = resource.physical_id.clone() {
                    let _ = self
                        .delete_one(
                            stack,
                            id,
                            &resource.resource_type,
                            &physical,
                            resource.properties.clone(),
                            true,
                        )
                        .await;
                }
                stack.resources.remove(id);
                continue;
            }
            if let Some(r) = stack.resources.get_mut(id) {
                r.before = None;
                r.replaced = false;
                r.added = false;
            }
        }
        stack.previous = None;
        self.finish(stack, "UPDATE_ROLLBACK_COMPLETE", None);
    }

    pub(crate) async fn delete_all(self: &Arc<Self>, stack: &mut Stack) {
        // An export another stack imports keeps its stack.
        let exports: Vec<String> = stack.outputs.iter().filter_map(|o| o.export.clone()).collect();
        for export in exports {
            let importers = crate::api::importers(self, &export);
            if !importers.is_empty() {
                let reason =
                    format!("Export {export} cannot be deleted as it is in use by {}", importers.join(", "));
                return self.finish(stack, "DELETE_FAILED", Some(reason));
            }
        }
        let failures = self.delete_resources(stack, true).await;
        if !failures.is_empty() {
            let reason = format!("The following resource(s) failed to delete: [{}]. ", failures.join(", "));
            return self.finish(stack, "DELETE_FAILED", Some(reason));
        }
        stack.deleted_ms = Some(crate::model::now_ms());
        self.finish(stack, "DELETE_COMPLETE", None);
        let _ = tokio::task::block_in_place(|| self.store.delete_change_sets_of(&stack.id));
    }
}
