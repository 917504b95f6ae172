//! The engine: runs a stack's create, update and delete against the resource providers, with
//! rollback, and records every status change and event as it goes (a restart finds where it was).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use nimbus_api::provider::{Provisioned, ResourceProvider, ResourceRequest};
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use crate::model::{Event, Resource, Stack};
use crate::store::Store;
use crate::{graph, resolve, AliasDeployments, Functions, Templates, Transforms};

pub const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

#[derive(Default)]
pub struct Hooks {
    pub transforms: OnceLock<Arc<dyn Transforms>>,
    pub templates: OnceLock<Arc<dyn Templates>>,
    pub functions: OnceLock<Arc<dyn Functions>>,
    pub deployments: OnceLock<Arc<dyn AliasDeployments>>,
}

/// Where `prepare` hands `execute` an alias's resolved `CodeDeployLambdaAliasUpdate` policy
/// (in the request only; never stored with the resource's properties).
const SHIFT_POLICY: &str = "nimbus:CodeDeployLambdaAliasUpdate";

pub struct Engine {
    pub store: Store,
    pub region: String,
    pub account: String,
    pub endpoint_url: String,
    pub providers: HashMap<&'static str, Arc<dyn ResourceProvider>>,
    pub hooks: Hooks,
    /// Stacks with an operation running on this node.
    running: Mutex<HashSet<String>>,
    /// Stacks whose running operation was asked to stop (`true`: deleted afterwards).
    cancels: Mutex<HashMap<String, bool>>,
    /// This node's name: an operation belongs to the node that runs it, and only that node
    /// resumes it after a restart (several nodes may share the database).
    pub node: String,
}

/// What one resource step does.
#[derive(Clone, Debug)]
pub enum Action {
    Create,
    Replace,
    Update { physical: String, previous: Map<String, Value> },
    Delete { physical: String },
}

pub type Outcome = Result<Provisioned, String>;

impl Engine {
    pub fn new(
        store: Store,
        region: &str,
        account: &str,
        endpoint_url: &str,
        providers: Vec<Arc<dyn ResourceProvider>>,
    ) -> Engine {
        let mut by_type = HashMap::new();
        for provider in providers {
            for kind in provider.resource_types() {
                by_type.insert(*kind, provider.clone());
            }
        }
        Engine {
            store,
            region: region.to_owned(),
            account: account.to_owned(),
            endpoint_url: endpoint_url.trim_end_matches('/').to_owned(),
            providers: by_type,
            hooks: Hooks::default(),
            running: Mutex::new(HashSet::new()),
            cancels: Mutex::new(HashMap::new()),
            node: "local".to_owned(),
        }
    }

    pub fn save(&self, stack: &Stack, events: &[Event]) {
        if let Err(error) = tokio::task::block_in_place(|| self.store.save(stack, events)) {
            eprintln!("nimbus: cloudformation: cannot save stack {}: {error}", stack.name);
        }
    }

    pub fn load(&self, id: &str) -> Option<Stack> {
        tokio::task::block_in_place(|| self.store.stack(id)).ok().flatten()
    }

    /// Exports of every live stack: name → (exporting stack id, value).
    pub fn exports(&self) -> BTreeMap<String, (String, String)> {
        let stacks = tokio::task::block_in_place(|| self.store.live()).unwrap_or_default();
        let mut out = BTreeMap::new();
        for stack in stacks {
            for output in &stack.outputs {
                if let Some(name) = &output.export {
                    out.insert(name.clone(), (stack.id.clone(), output.value.clone()));
                }
            }
        }
        out
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Runs the operation the stack's status names, in the background (marked running at once,
    /// so that a caller may wait for it).
    pub fn start(self: &Arc<Self>, stack_id: String) {
        let engine = self.clone();
        if self.claim(&stack_id) {
            tokio::spawn(async move { engine.run_claimed(stack_id).await });
            return;
        }
        // The previous operation has saved its end but not yet let go of the stack.
        tokio::spawn(async move {
            engine.wait_idle(&stack_id).await;
            if engine.claim(&stack_id) {
                engine.run_claimed(stack_id).await;
            }
        });
    }

    /// Runs the stack's pending operation to its end (a nested stack is driven inline).
    pub fn drive(
        self: Arc<Self>,
        stack_id: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            if self.claim(&stack_id) {
                self.run_claimed(stack_id).await;
            }
        })
    }

    fn claim(&self, stack_id: &str) -> bool {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(stack_id);
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(stack_id.to_owned())
    }

    /// Asks the stack's running create or update to stop (`CancelUpdateStack`, or `DeleteStack`
    /// during a create): steps under way are abandoned and the operation rolls back.
    pub fn cancel(&self, stack_id: &str, then_delete: bool) {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(stack_id.to_owned(), then_delete);
    }

    async fn until_cancelled(&self, stack_id: &str) {
        while !self.cancels.lock().unwrap_or_else(|p| p.into_inner()).contains_key(stack_id) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Marks the steps a cancel abandoned as failed; the operation's failure reason.
    fn cancel_steps(&self, stack: &mut Stack, started: &BTreeSet<String>, done: &BTreeSet<String>) -> String {
        if self.cancels.lock().unwrap_or_else(|p| p.into_inner()).get(&stack.id) == Some(&true) {
            stack.delete_on_failure = true;
            stack.disable_rollback = false;
        }
        let mut events = Vec::new();
        for id in started.difference(done) {
            let Some(resource) = stack.resources.get(id) else { continue };
            if !resource.status.ends_with("_IN_PROGRESS") {
                continue;
            }
            let (kind, creating) = (resource.resource_type.clone(), resource.status.starts_with("CREATE"));
            let (status, why) = if creating {
                ("CREATE_FAILED", "Resource creation cancelled")
            } else {
                ("UPDATE_FAILED", "Resource update cancelled")
            };
            events.push(self.set_resource(stack, id, &kind, None, status, Some(why.into())));
        }
        self.save(stack, &events);
        if stack.status.starts_with("CREATE") {
            "Resource creation cancelled. ".into()
        } else {
            "Resource update cancelled. ".into()
        }
    }

    async fn run_claimed(self: Arc<Self>, stack_id: String) {
        if let Some(stack) = self.load(&stack_id) {
            self.clone().run(stack).await;
        }
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&stack_id);
    }

    /// Waits up to `limit` for the stack's operation to end: a quick operation is answered
    /// finished, and clients' first poll (15 or 30 s away for SAM CLI's waiters) finds it done.
    pub async fn settle(&self, stack_id: &str, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.is_running(stack_id) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn run(self: Arc<Self>, mut stack: Stack) {
        match stack.status.as_str() {
            "CREATE_IN_PROGRESS" => {
                // `TimeoutInMinutes`: a create still running then is cancelled (and rolled back).
                let timer = stack.timeout_minutes.map(|minutes| {
                    let (engine, id) = (self.clone(), stack.id.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(minutes * 60)).await;
                        engine.cancel(&id, false);
                    })
                });
                let deployed = self.clone().deploy(&mut stack).await;
                if let Some(timer) = timer {
                    timer.abort();
                }
                match deployed {
                    Ok(()) => self.finish(&mut stack, "CREATE_COMPLETE", None),
                    Err(reason) => self.create_failed(&mut stack, reason).await,
                }
            }
            "ROLLBACK_IN_PROGRESS" => self.rollback_create(&mut stack).await,
            "UPDATE_IN_PROGRESS" => match self.clone().deploy(&mut stack).await {
                Ok(()) => self.cleanup(&mut stack).await,
                Err(reason) if stack.disable_rollback => {
                    self.finish(&mut stack, "UPDATE_FAILED", Some(reason))
                }
                Err(reason) => self.rollback_update(&mut stack, reason).await,
            },
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS" => self.cleanup(&mut stack).await,
            "UPDATE_ROLLBACK_IN_PROGRESS" => {
                let reason = stack.reason.clone().unwrap_or_default();
                self.rollback_update(&mut stack, reason).await
            }
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS" => self.rollback_cleanup(&mut stack).await,
            "DELETE_IN_PROGRESS" => self.delete_all(&mut stack).await,
            _ => {}
        }
    }

    pub fn request(
        &self,
        stack: &Stack,
        id: &str,
        kind: &str,
        properties: Map<String, Value>,
    ) -> ResourceRequest {
        let mut tags = vec![
            ("aws:cloudformation:stack-name".to_owned(), stack.name.clone()),
            ("aws:cloudformation:stack-id".to_owned(), stack.id.clone()),
            ("aws:cloudformation:logical-id".to_owned(), id.to_owned()),
        ];
        tags.extend(stack.tags.iter().cloned());
        ResourceRequest {
            resource_type: kind.to_owned(),
            logical_id: id.to_owned(),
            stack_name: stack.name.clone(),
            stack_id: stack.id.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            properties,
            tags,
        }
    }

    pub(crate) fn declared(stack: &Stack, id: &str) -> Value {
        stack.current.template.get("Resources").and_then(|r| r.get(id)).cloned().unwrap_or(Value::Null)
    }

    /// Brings every resource of the current template to its declared state, independent ones
    /// in parallel. Returns the first failure's reason.
    async fn deploy(self: Arc<Self>, stack: &mut Stack) -> Result<(), String> {
        let graph = graph::dependencies(&stack.current.template)?;
        let exports = self.exports();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut failed: Vec<String> = Vec::new();
        let mut first_reason: Option<String> = None;
        let mut tasks: JoinSet<(String, Action, Outcome)> = JoinSet::new();
        loop {
            let mut progressed = false;
            if failed.is_empty() {
                let ready: Vec<String> = graph
                    .iter()
                    .filter(|(id, deps)| !started.contains(*id) && deps.iter().all(|d| done.contains(d)))
                    .map(|(id, _)| id.clone())
                    .collect();
                // Every step of the wave is recorded (one commit) before any provider is asked.
                let mut wave_events = Vec::new();
                let mut jobs = Vec::new();
                for id in ready {
                    progressed = true;
                    started.insert(id.clone());
                    match self.prepare(stack, &id, &exports, &mut wave_events) {
                        Ok(None) => {
                            done.insert(id);
                        }
                        Ok(Some(job)) => jobs.push((id, job)),
                        Err(reason) => {
                            let kind =
                                Self::declared(stack, &id)["Type"].as_str().unwrap_or_default().to_owned();
                            let status = if stack.resources.get(&id).is_some_and(|r| r.physical_id.is_some())
                            {
                                "UPDATE_FAILED"
                            } else {
                                "CREATE_FAILED"
                            };
                            wave_events.push(self.set_resource(
                                stack,
                                &id,
                                &kind,
                                None,
                                status,
                                Some(reason.clone()),
                            ));
                            first_reason.get_or_insert(reason);
                            failed.push(id);
                        }
                    }
                }
                if !wave_events.is_empty() {
                    self.save(stack, &wave_events);
                }
                for (id, (action, request)) in jobs {
                    let engine = self.clone();
                    let step = action.clone();
                    tasks.spawn(async move {
                        // A provider that panics fails its resource, not the engine.
                        let run = tokio::spawn(async move { engine.execute(&step, request).await });
                        let outcome = run.await.unwrap_or_else(|_| {
                            Err("Internal failure: the resource provider stopped unexpectedly".to_owned())
                        });
                        (id, action, outcome)
                    });
                }
            }
            if tasks.is_empty() && progressed {
                continue; // resources that needed nothing may have readied others
            }
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                () = self.until_cancelled(&stack.id) => {
                    tasks.abort_all();
                    return Err(self.cancel_steps(stack, &started, &done));
                }
            };
            let Some(joined) = joined else { break };
            let Ok((id, action, outcome)) = joined else { continue };
            match self.apply(stack, &id, &action, outcome) {
                Ok(()) => {
                    done.insert(id);
                }
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                    failed.push(id);
                }
            }
        }
        if failed.is_empty() && done.len() < graph.len() {
            let left: Vec<&String> = graph.keys().filter(|id| !done.contains(*id)).collect();
            let left: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
            return Err(format!("Internal failure: resources left unprovisioned: [{}]. ", left.join(", ")));
        }
        if !failed.is_empty() {
            let verb = if stack.status.starts_with("CREATE") { "create" } else { "update" };
            let _ = first_reason;
            return Err(format!("The following resource(s) failed to {verb}: [{}]. ", failed.join(", ")));
        }
        // Outputs (and their exports) once every resource is in place.
        let outputs =
            resolve::with_scope(stack, &self.region, &self.account, &exports, false, resolve::outputs)?;
        for output in &outputs {
            let Some(name) = &output.export else { continue };
            if let Some((owner, _)) = exports.get(name).filter(|(owner, _)| owner != &stack.id) {
                let owner = self.load(owner).map_or(owner.clone(), |s| s.name);
                return Err(format!("Export with name {name} is already exported by stack {owner}"));
            }
        }
        // An export another stack imports may not change or go.
        for old in &stack.outputs {
            let Some(name) = &old.export else { continue };
            let kept = outputs.iter().any(|o| o.export.as_ref() == Some(name) && o.value == old.value);
            if !kept {
                let importers = crate::api::importers(&self, name);
                if !importers.is_empty() {
                    return Err(format!(
                        "Cannot update export {name} as it is in use by {}",
                        importers.join(", ")
                    ));
                }
            }
        }
        stack.outputs = outputs;
        Ok(())
    }

    /// What to do with one resource now; `None` when nothing changes.
    fn prepare(
        &self,
        stack: &mut Stack,
        id: &str,
        exports: &BTreeMap<String, (String, String)>,
        events: &mut Vec<Event>,
    ) -> Result<Option<(Action, ResourceRequest)>, String> {
        let declared = Self::declared(stack, id);
        let kind = declared["Type"].as_str().unwrap_or_default().to_owned();
        let resolved = resolve::with_scope(stack, &self.region, &self.account, exports, false, |scope| {
            if !resolve::holds(scope, &declared)? {
                return Ok(None);
            }
            let policy = match declared.get("UpdatePolicy").and_then(|p| p.get("CodeDeployLambdaAliasUpdate"))
            {
                Some(policy) if kind == "AWS::Lambda::Alias" => Some(scope.value(policy)?),
                _ => None,
            };
            Ok(Some((resolve::properties(scope, &declared)?, policy)))
        })?;
        let Some((properties, policy)) = resolved else { return Ok(None) };
        let existing = stack.resources.get(id).filter(|r| r.physical_id.is_some()).cloned();
        let mut request = self.request(stack, id, &kind, properties.clone());
        let Some(existing) = existing else {
            let event = self.set_resource(stack, id, &kind, None, "CREATE_IN_PROGRESS", None);
            let resource = stack.resources.get_mut(id).expect("just set");
            resource.properties = properties;
            resource.added = stack.status.starts_with("UPDATE");
            events.push(event);
            return Ok(Some((Action::Create, request)));
        };
        if existing.resource_type == kind
            && existing.properties == properties
            && existing.status != "UPDATE_FAILED"
        {
            return Ok(None);
        }
        let replace =
            existing.resource_type != kind || self.replaces(&kind, &existing.properties, &properties);
        let reason = replace.then(|| {
            "Requested update requires the creation of a new physical resource; hence creating one."
                .to_owned()
        });
        let event = self.set_resource(stack, id, &kind, None, "UPDATE_IN_PROGRESS", reason);
        let resource = stack.resources.get_mut(id).expect("present");
        if resource.before.is_none() {
            resource.before = Some(Box::new(existing.clone()));
        }
        resource.properties = properties;
        resource.replaced = replace;
        events.push(event);
        let physical = existing.physical_id.clone().unwrap_or_default();
        let version = |props: &Map<String, Value>| props.get("FunctionVersion").cloned();
        let moves = version(&existing.properties) != version(&request.properties);
        if let Some(policy) = policy.filter(|_| !replace && moves) {
            request.properties.insert(SHIFT_POLICY.into(), policy);
        }
        Ok(Some(if replace {
            (Action::Replace, request)
        } else {
            (Action::Update { physical, previous: existing.properties }, request)
        }))
    }

    fn replaces(&self, kind: &str, before: &Map<String, Value>, after: &Map<String, Value>) -> bool {
        let changed = before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k));
        let provider = self.providers.get(kind);
        let builtin = crate::builtin::replaces(kind);
        changed.into_iter().any(|key| match provider {
            Some(provider) => provider.replaces(kind, key),
            None => builtin(key),
        })
    }

    /// Records a step's outcome; a failure's reason as `Err`.
    fn apply(&self, stack: &mut Stack, id: &str, action: &Action, outcome: Outcome) -> Result<(), String> {
        let kind = stack.resources.get(id).map(|r| r.resource_type.clone()).unwrap_or_default();
        let (progress, complete, failed) = match action {
            Action::Create => ("CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_FAILED"),
            _ => ("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_FAILED"),
        };
        match outcome {
            Ok(mut provisioned) => {
                let mut events = Vec::new();
                let physical = Some(provisioned.physical_id.clone());
                if !matches!(action, Action::Update { .. }) {
                    let initiated = Some("Resource creation Initiated".to_owned());
                    events.push(self.set_resource(stack, id, &kind, physical.clone(), progress, initiated));
                }
                let note = provisioned.take_note();
                events.push(self.set_resource(stack, id, &kind, physical, complete, note));
                if let Some(resource) = stack.resources.get_mut(id) {
                    // An update in place keeps what it was not told again (a key's secret).
                    if matches!(action, Action::Update { .. }) {
                        resource.attributes.extend(provisioned.attributes);
                    } else {
                        resource.attributes = provisioned.attributes;
                    }
                    // An update that answered with a new physical id (a custom resource's
                    // handler may) replaced the resource: the old one goes in cleanup.
                    if let Action::Update { physical, .. } = action {
                        if *physical != provisioned.physical_id {
                            resource.replaced = true;
                        }
                    }
                }
                self.save(stack, &events);
                Ok(())
            }
            Err(reason) => {
                let event = self.set_resource(stack, id, &kind, None, failed, Some(reason.clone()));
                if let (Action::Replace, Some(resource)) = (action, stack.resources.get_mut(id)) {
                    // The new one was never made: the old one stays.
                    if let Some(before) = resource.before.take() {
                        let (status, reason) = (resource.status.clone(), resource.reason.clone());
                        *resource = *before;
                        resource.status = status;
                        resource.reason = reason;
                    }
                }
                self.save(stack, &[event]);
                Err(reason)
            }
        }
    }

    /// Runs one step with the type's provider (or the engine's own types).
    pub async fn execute(self: Arc<Self>, action: &Action, request: ResourceRequest) -> Outcome {
        let kind = request.resource_type.clone();
        if crate::builtin::owns(&kind) {
            return crate::builtin::execute(self, action, request).await;
        }
        let Some(provider) = self.providers.get(kind.as_str()).cloned() else {
            return Err(format!(
                "nimbus does not provision resources of type {kind} (unsupported resource type)"
            ));
        };
        let result = match action {
            Action::Create | Action::Replace => provider.create(request).await,
            Action::Update { physical, previous } => {
                let mut request = request;
                if let Some(policy) = request.properties.remove(SHIFT_POLICY) {
                    if let Some(deployments) = self.hooks.deployments.get() {
                        // A cancelled update stops the deployment (its rollback puts the alias
                        // back); abandoned, it would go on moving the alias.
                        tokio::select! {
                            shifted = deployments.shift(&request, previous, &policy) => shifted?,
                            () = self.until_cancelled(&request.stack_id) => {
                                return Err("Resource update cancelled".into());
                            }
                        }
                    }
                }
                provider.update(request, physical.clone(), previous.clone()).await
            }
            Action::Delete { physical } => {
                provider.delete(request, physical.clone()).await.map(|()| Provisioned::default())
            }
        };
        result.map_err(|e| e.message)
    }

    /// Waits until no operation runs on the stack (a nested stack driven elsewhere).
    pub async fn wait_idle(&self, id: &str) {
        while self.is_running(id) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The resources an operation left for `DescribeStackResources` (skipping deleted ones).
pub fn visible(resource: &Resource) -> bool {
    resource.status != "DELETE_COMPLETE"
}
