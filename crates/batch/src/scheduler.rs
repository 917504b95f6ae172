//! The scheduler: one turn per event (a submission, a process ending, an instance changing)
//! or deadline (an idle instance to retire). It moves jobs SUBMITTED → PENDING → RUNNABLE as
//! their dependencies allow, places RUNNABLE jobs by queue priority on instances of the
//! queue's compute environments (launching instances when none has room, up to `maxvCpus`),
//! and retires idle instances down to `minvCpus`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::compute::families_of;
use crate::model::{HostDoc, Job};
use crate::{Batch, HostRequest, HostState, HostType};

/// MiB of an instance kept for the agent (AWS's `ECS_RESERVED_MEMORY`).
pub const RESERVED_MIB: u64 = 32;
/// A turn happens at least this often (ms), whatever happens.
const IDLE_TURN_MS: i64 = 30_000;
/// RUNNABLE jobs looked at per queue and turn.
const HEAD: i64 = 200;
/// A launch refused for capacity is tried again after this (ms).
const CAPACITY_RETRY_MS: i64 = 5_000;

pub struct LiveHost {
    pub doc: HostDoc,
    pub state: HostState,
    pub used_vcpus: f64,
    pub used_memory: u64,
    pub jobs: HashSet<String>,
    /// Held this turn for jobs waiting for the instance to boot.
    pub reserved: (f64, u64),
    pub idle_since: i64,
    /// The instance's life, for its jobs' attempts.
    pub life: tokio::sync::watch::Receiver<HostState>,
}

impl LiveHost {
    fn free(&self) -> (f64, u64) {
        let memory = self.doc.memory_mib.saturating_sub(RESERVED_MIB);
        (
            f64::from(self.doc.vcpus) - self.used_vcpus - self.reserved.0,
            memory.saturating_sub(self.used_memory + self.reserved.1),
        )
    }

    fn usable(&self) -> bool {
        matches!(self.state, HostState::Pending | HostState::Running)
    }
}

/// Why a job found no type to launch.
#[derive(Debug, PartialEq)]
pub enum Blocked {
    /// No type of the environment is large enough.
    Requirement,
    /// Types fit, but not within `maxvCpus`.
    Max,
}

/// Types a compute environment may launch (`instanceTypes` entries: types, families, `optimal`).
pub fn candidates<'a>(catalog: &'a [HostType], resources: &Value) -> Vec<&'a HostType> {
    let spot = resources["type"] == "SPOT";
    let bid = resources["bidPercentage"].as_f64().unwrap_or(100.0);
    let entries: Vec<&str> =
        resources["instanceTypes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    catalog
        .iter()
        .filter(|t| {
            entries.iter().any(|e| match families_of(e) {
                Some(families) => families.contains(&t.family.as_str()) && !t.bare_metal,
                None if e.contains('.') => t.name == *e,
                None => t.family == *e && !t.bare_metal,
            })
        })
        .filter(|t| !spot || t.spot_price.is_some_and(|p| p <= t.price * bid / 100.0))
        .collect()
}

/// The type to launch for a job of `vcpus`/`memory` by the allocation strategy, within `room`
/// vCPUs; `demand` is the vCPUs the environment's waiting jobs need together.
pub fn choose_type(
    candidates: &[&HostType],
    resources: &Value,
    vcpus: f64,
    memory: u64,
    demand: f64,
    room: f64,
) -> Result<HostType, Blocked> {
    let spot = resources["type"] == "SPOT";
    let price = |t: &HostType| if spot { t.spot_price.unwrap_or(t.price) } else { t.price };
    let fitting: Vec<&HostType> = candidates
        .iter()
        .copied()
        .filter(|t| f64::from(t.vcpus) >= vcpus && t.memory_mib.saturating_sub(RESERVED_MIB) >= memory)
        .collect();
    if fitting.is_empty() {
        return Err(Blocked::Requirement);
    }
    let within: Vec<&HostType> = fitting.into_iter().filter(|t| f64::from(t.vcpus) <= room).collect();
    if within.is_empty() {
        return Err(Blocked::Max);
    }
    let strategy = resources["allocationStrategy"].as_str().unwrap_or("BEST_FIT");
    let chosen = if strategy == "BEST_FIT" {
        within.iter().min_by(|a, b| price(a).total_cmp(&price(b)).then(a.vcpus.cmp(&b.vcpus))).copied()
    } else {
        // Progressive and spot strategies: the lowest price per vCPU among types no larger than
        // the waiting jobs need together.
        let cap = demand.max(vcpus);
        let sized: Vec<&&HostType> = within.iter().filter(|t| f64::from(t.vcpus) <= cap).collect();
        let pool: Vec<&&HostType> = if sized.is_empty() { within.iter().collect() } else { sized };
        pool.into_iter()
            .min_by(|a, b| {
                (price(a) / f64::from(a.vcpus))
                    .total_cmp(&(price(b) / f64::from(b.vcpus)))
                    .then(b.vcpus.cmp(&a.vcpus))
            })
            .copied()
    };
    chosen.map(|t| (*t).clone()).ok_or(Blocked::Requirement)
}

pub async fn run(batch: Weak<Batch>) {
    let mut recovered = false;
    loop {
        let Some(me) = batch.upgrade() else { return };
        let (wake, clock) = (me.wake.clone(), me.clock.clone());
        let first = !recovered;
        let turn = tokio::task::spawn_blocking(move || {
            // With several nodes, the one holding the lease places jobs.
            if !me.options.leader.as_ref().is_none_or(|leader| leader()) {
                return Ok((false, me.now() + 2000));
            }
            if first {
                if let Err(error) = me.recover() {
                    eprintln!("nimbus: batch: cannot settle the jobs of the previous run: {}", error.message);
                }
            }
            me.turn().map(|next| (true, next))
        });
        let next = match turn.await {
            Ok(Ok((led, next))) => {
                recovered |= led;
                next
            }
            Ok(Err(error)) => {
                eprintln!("nimbus: batch: scheduler turn failed: {}", error.message);
                clock.now_ms() + 1000
            }
            Err(_) => clock.now_ms() + 1000,
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = nimbus_api::clock::sleep_until(&*clock, next) => {}
        }
    }
}

impl Batch {
    pub(crate) fn catalog(&self) -> Arc<Vec<HostType>> {
        self.catalog.get_or_init(|| Arc::new(self.capacity.catalog())).clone()
    }

    /// vCPUs of the instances a compute environment holds (launching or running).
    pub(crate) fn held_vcpus(&self, ce: &str) -> i64 {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .filter(|h| h.doc.ce == ce && !matches!(h.state, HostState::Ended(_)))
            .map(|h| i64::from(h.doc.vcpus))
            .sum()
    }

    pub(crate) fn hosts_overview(&self) -> Vec<Value> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .map(|h| {
                json!({
                    "instanceId": h.doc.instance_id, "instanceType": h.doc.instance_type,
                    "computeEnvironment": h.doc.ce.rsplit('/').next(), "spot": h.doc.spot,
                    "state": format!("{:?}", h.state), "vcpus": h.doc.vcpus, "usedVcpus": h.used_vcpus,
                    "memoryMib": h.doc.memory_mib, "usedMemoryMib": h.used_memory, "jobs": h.jobs.len(),
                })
            })
            .collect()
    }

    /// After a restart: instances of the previous run are gone (EC2 ended them); jobs that were
    /// starting or running there are found dead and retried by their strategy.
    fn recover(&self) -> Result<(), AwsError> {
        for host in self.store.all::<HostDoc>("host")? {
            self.capacity.terminate(&host.instance_id);
            self.store.delete("host", &host.instance_id)?;
        }
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = self.store.jobs_where("status IN ('STARTING','RUNNING')", &[])?;
        for job in started {
            let instance = job.n.instance.clone().unwrap_or_default();
            let reason = format!("Host EC2 (instance {instance}) terminated.");
            self.end_attempt(
                job,
                crate::run::Ending { exit: None, reason: None, status_reason: reason, retry: true },
            )?;
        }
        Ok(())
    }

    /// One turn; returns when the next must happen at the latest (ms on the clock).
    fn turn(self: Arc<Self>) -> Result<i64, AwsError> {
        let now = self.now();
        self.settle_compute_environments()?;
        self.settle_queues()?;
        let mut next = now + IDLE_TURN_MS;
        let fresh = {
            let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = self.advance_submitted()?;
            // Dependencies and arrays change only when jobs finish.
            if self.finished_since.swap(false, std::sync::atomic::Ordering::AcqRel) {
                self.advance_pending()?;
            }
            fresh
        };
        self.pass_on_stops()?;
        self.apply_time_limits(now)?;
        if let Some(at) = self.place(fresh)? {
            next = next.min(at);
        }
        if let Some(at) = self.scale()? {
            next = next.min(at);
        }
        Ok(next)
    }

    /// TerminateJob accepted by another node (or before the process started): the stop reaches
    /// the job's process here.
    fn pass_on_stops(&self) -> Result<(), AwsError> {
        let unstopped: Vec<String> = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.iter().filter(|(_, stop)| stop.borrow().is_none()).map(|(id, _)| id.clone()).collect()
        };
        for chunk in unstopped.chunks(200) {
            let marks: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("?{i}")).collect();
            let mut args = vec![nimbus_store::Value::Text("%\"stopping\":\"%".into())];
            args.extend(chunk.iter().map(|id| nimbus_store::Value::Text(id.clone())));
            let clause = format!("id IN ({}) AND body LIKE ?1", marks.join(","));
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            for job in self.store.jobs_where(&clause, &args)? {
                if let (Some(reason), Some(sender)) = (&job.n.stopping, running.get(&job.job_id)) {
                    let _ = sender.send(Some(crate::run::Stop::Terminate(reason.clone())));
                }
            }
        }
        Ok(())
    }

    /// A queue's `jobStateTimeLimitActions`: a job at the head of its queue RUNNABLE with the
    /// action's reason for longer than `maxTimeSeconds` is cancelled, as AWS words it.
    fn apply_time_limits(&self, now: i64) -> Result<(), AwsError> {
        let queues: Vec<Value> = self.store.all(crate::queues::KIND)?;
        for queue in queues {
            let actions = queue["jobStateTimeLimitActions"].as_array().cloned().unwrap_or_default();
            if actions.is_empty() {
                continue;
            }
            let arn = queue["jobQueueArn"].as_str().unwrap_or_default();
            let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
            let Some(mut head) = self.store.runnable(arn, 1)?.pop() else { continue };
            let Some(reason) = head.status_reason.clone() else { continue };
            let since = head.n.runnable_since.unwrap_or(head.created_at);
            let due = actions.iter().find(|a| {
                a["state"] == "RUNNABLE"
                    && a["action"] == "CANCEL"
                    && a["reason"].as_str().is_some_and(|r| reason.starts_with(r))
                    && now - since > a["maxTimeSeconds"].as_i64().unwrap_or(i64::MAX / 2000) * 1000
            });
            if let Some(action) = due {
                let why = action["reason"].as_str().unwrap_or_default();
                head.is_cancelled = true;
                self.finish(
                    &mut head,
                    "FAILED",
                    &format!("Canceled by JobStateTimeLimit action due to reason: {why}"),
                )?;
            }
        }
        Ok(())
    }

    /// The statuses of jobs by id (dependencies).
    fn statuses(&self, ids: &[String]) -> Result<HashMap<String, String>, AwsError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(200) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let sql = format!("SELECT id, status FROM jobs WHERE id IN ({})", marks.join(","));
            let args: Vec<nimbus_store::Value> =
                chunk.iter().map(|id| nimbus_store::Value::Text(id.clone())).collect();
            for row in self.store.db.query(&sql, &args).map_err(crate::store::db)? {
                found.insert(
                    row.get::<String>(0).map_err(crate::store::db)?,
                    row.get::<String>(1).map_err(crate::store::db)?,
                );
            }
        }
        Ok(found)
    }

    /// The jobs a job waits for.
    fn dependencies(job: &Job) -> Vec<String> {
        job.depends_on.iter().filter_map(|d| d["jobId"].as_str().map(str::to_owned)).collect()
    }

    /// SUBMITTED: to PENDING (dependencies, or an array's children made), RUNNABLE, or FAILED.
    /// Returns the jobs that became RUNNABLE, not yet stored: placed at once, they are stored
    /// STARTING (one write); left waiting, RUNNABLE at the end of the turn.
    fn advance_submitted(&self) -> Result<Vec<Job>, AwsError> {
        let submitted = self.store.jobs_where("status = 'SUBMITTED'", &[])?;
        let mut fresh = Vec::new();
        for mut job in submitted {
            if job.is_array_parent() {
                // Plain dependencies hold the whole array; N_TO_N and SEQUENTIAL its children.
                let plain: Vec<String> = job
                    .depends_on
                    .iter()
                    .filter(|d| d["type"].as_str().unwrap_or("") != "N_TO_N")
                    .filter_map(|d| d["jobId"].as_str().map(str::to_owned))
                    .collect();
                match self.dependency_outcome(&plain)? {
                    Some(false) => self.finish(&mut job, "FAILED", "Dependent Job failed")?,
                    Some(true) => self.expand(job)?,
                    None => {
                        job.status = "PENDING".into();
                        self.store.save_jobs(&[&job])?;
                        self.emit(&job);
                    }
                }
                // New PENDING jobs may wait for jobs already done.
                self.finished_since.store(true, std::sync::atomic::Ordering::Release);
                continue;
            }
            if Self::dependencies(&job).is_empty() {
                job.status = "RUNNABLE".into();
                job.n.runnable_since = Some(self.now());
                self.emit(&job);
                fresh.push(job);
            } else {
                job.status = "PENDING".into();
                self.store.save_jobs(&[&job])?;
                self.emit(&job);
                self.finished_since.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        Ok(fresh)
    }

    /// Some(true) when every dependency succeeded, Some(false) when one failed, None meanwhile.
    fn dependency_outcome(&self, deps: &[String]) -> Result<Option<bool>, AwsError> {
        if deps.is_empty() {
            return Ok(Some(true));
        }
        let statuses = self.statuses(deps)?;
        if deps.iter().any(|d| statuses.get(d).is_some_and(|s| s == "FAILED")) {
            return Ok(Some(false));
        }
        Ok(deps.iter().all(|d| statuses.get(d).is_some_and(|s| s == "SUCCEEDED")).then_some(true))
    }

    /// Makes an array's children (`parent:index`), each with its own dependencies.
    fn expand(&self, mut parent: Job) -> Result<(), AwsError> {
        let size = parent.n.size.unwrap_or(0);
        let now = self.now();
        let sequential = parent.depends_on.iter().any(|d| d["type"] == "SEQUENTIAL");
        let n_to_n: Vec<String> = parent
            .depends_on
            .iter()
            .filter(|d| d["type"] == "N_TO_N")
            .filter_map(|d| d["jobId"].as_str().map(str::to_owned))
            .collect();
        let mut children = Vec::with_capacity(size as usize);
        for index in 0..size {
            let mut child = parent.clone();
            child.job_id = format!("{}:{index}", parent.job_id);
            child.job_arn = format!("{}:{index}", parent.job_arn);
            child.created_at = now;
            child.array_properties = Some(json!({ "index": index }));
            child.n.parent = Some(parent.job_id.clone());
            child.n.index = Some(index);
            let mut deps: Vec<Value> =
                n_to_n.iter().map(|d| json!({ "jobId": format!("{d}:{index}"), "type": "N_TO_N" })).collect();
            if sequential && index > 0 {
                deps.push(
                    json!({ "jobId": format!("{}:{}", parent.job_id, index - 1), "type": "SEQUENTIAL" }),
                );
            }
            child.status = if deps.is_empty() { "RUNNABLE".into() } else { "PENDING".into() };
            child.depends_on = deps;
            children.push(child);
        }
        parent.status = "PENDING".into();
        let mut all: Vec<&Job> = children.iter().collect();
        all.push(&parent);
        self.store.save_jobs(&all)?;
        self.emit(&parent);
        Ok(())
    }

    /// PENDING: RUNNABLE once every dependency succeeded, FAILED when one failed; array parents
    /// end when all their children have.
    fn advance_pending(&self) -> Result<(), AwsError> {
        let pending = self.store.jobs_where("status = 'PENDING'", &[])?;
        let wanted: Vec<String> =
            pending.iter().filter(|j| !j.is_array_parent()).flat_map(Self::dependencies).collect();
        let statuses = self.statuses(&wanted)?;
        let mut changed = Vec::new();
        for mut job in pending {
            if job.is_array_parent() {
                let counts = self.store.child_counts(&job.job_id)?;
                let total: i64 = counts.iter().map(|(_, n)| n).sum();
                let done = |s: &str| counts.iter().filter(|(st, _)| st == s).map(|(_, n)| n).sum::<i64>();
                if total > 0 && done("SUCCEEDED") + done("FAILED") == total {
                    let outcome = if done("FAILED") > 0 {
                        ("FAILED", "Array Child Job failed")
                    } else {
                        ("SUCCEEDED", "")
                    };
                    job.status = outcome.0.into();
                    job.status_reason = (!outcome.1.is_empty()).then(|| outcome.1.to_owned());
                    job.stopped_at = Some(self.now());
                    changed.push(job);
                }
                continue;
            }
            let deps = Self::dependencies(&job);
            if deps.iter().any(|d| statuses.get(d).is_some_and(|s| s == "FAILED")) {
                job.status = "FAILED".into();
                job.status_reason = Some("Dependent Job failed".into());
                job.stopped_at = Some(self.now());
                changed.push(job);
            } else if deps.iter().all(|d| statuses.get(d).is_some_and(|s| s == "SUCCEEDED")) {
                job.status = "RUNNABLE".into();
                job.n.runnable_since = Some(self.now());
                changed.push(job);
            }
        }
        if !changed.is_empty() {
            self.store.save_jobs(&changed.iter().collect::<Vec<_>>())?;
            for job in &changed {
                self.emit(job);
            }
            // A failure may fail more dependants, a success free them: another turn.
            self.finished_since.store(true, std::sync::atomic::Ordering::Release);
            self.wake();
        }
        Ok(())
    }

    /// Places RUNNABLE jobs, highest queue priority first; launches instances for those that
    /// find no room. Returns when to look again for jobs blocked on capacity.
    fn place(self: &Arc<Self>, fresh: Vec<Job>) -> Result<Option<i64>, AwsError> {
        let queues: HashMap<String, Value> = self
            .store
            .all::<Value>(crate::queues::KIND)?
            .into_iter()
            .map(|q| (q["jobQueueArn"].as_str().unwrap_or_default().to_owned(), q))
            .collect();
        let ces: HashMap<String, Value> = self
            .store
            .all::<Value>(crate::compute::KIND)?
            .into_iter()
            .map(|c| (c["computeEnvironmentArn"].as_str().unwrap_or_default().to_owned(), c))
            .collect();
        // The head of each queue that can place anything: a deep backlog costs a turn no more
        // than its head does, and holds back no other queue. A full head asks for another turn.
        let mut runnable = Vec::new();
        let mut more = false;
        for (arn, queue) in &queues {
            let usable = queue["computeEnvironmentOrder"].as_array().into_iter().flatten().any(|o| {
                o["computeEnvironment"].as_str().and_then(|c| ces.get(c)).is_some_and(|ce| {
                    ce["status"] == "VALID" && ce["state"] == "ENABLED" && ce["type"] == "MANAGED"
                })
            });
            if !usable {
                continue;
            }
            let limit = if queue.get("schedulingPolicyArn").is_some() { 1000 } else { HEAD };
            let head = self.store.runnable(arn, limit)?;
            more |= head.len() as i64 == limit;
            runnable.extend(head);
        }
        let fresh_ids: HashSet<String> = fresh.iter().map(|j| j.job_id.clone()).collect();
        runnable.extend(fresh);
        if runnable.is_empty() {
            return Ok(None);
        }
        // Fresh jobs not placed this turn, stored RUNNABLE at its end.
        let mut waiting: Vec<Job> = Vec::new();
        let ordered = self.order(runnable, &queues)?;
        let catalog = self.catalog();
        // What waiting jobs need per environment (sizes progressive launches).
        let mut demand: HashMap<String, f64> = HashMap::new();
        let mut retry_at = None;
        let mut placed_any = false;
        for job in ordered {
            let Some(queue) = queues.get(&job.job_queue) else { continue };
            let order: Vec<String> = queue["computeEnvironmentOrder"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["computeEnvironment"].as_str().map(str::to_owned))
                .collect();
            let mut reason: Option<String> = None;
            let mut placed = false;
            let mut started = false;
            for ce_arn in &order {
                let Some(ce) = ces.get(ce_arn) else { continue };
                if ce["status"] != "VALID" || ce["state"] != "ENABLED" || ce["type"] != "MANAGED" {
                    reason.get_or_insert_with(|| {
                        "ACTIVE_REQUIRED - CE(s) associated with the job queue are invalid or disabled."
                            .into()
                    });
                    continue;
                }
                let resources = &ce["computeResources"];
                let fargate = resources["type"].as_str().is_some_and(|t| t.starts_with("FARGATE"));
                if let Some(instance) = self.room_on(ce_arn, &job) {
                    self.clone().start(job.clone(), instance, ce_arn.clone())?;
                    placed = true;
                    started = true;
                    break;
                }
                if self.reserve_pending(ce_arn, &job) {
                    placed = true; // waits for that instance to boot
                    break;
                }
                let held = self.held_vcpus(ce_arn) as f64;
                let max = resources["maxvCpus"].as_f64().unwrap_or(0.0);
                let pool = if fargate { fargate_types(&catalog) } else { candidates(&catalog, resources) };
                *demand.entry(ce_arn.clone()).or_default() += job.n.vcpus;
                let mut fit_resources = resources.clone();
                if fargate {
                    fit_resources["allocationStrategy"] = json!("BEST_FIT");
                }
                match choose_type(
                    &pool,
                    &fit_resources,
                    job.n.vcpus,
                    job.n.memory,
                    demand[ce_arn],
                    max - held,
                ) {
                    Ok(kind) => {
                        let spot = matches!(resources["type"].as_str(), Some("SPOT" | "FARGATE_SPOT"));
                        match self.launch(ce_arn, &kind, spot, fargate.then(|| job.job_id.clone()), &job) {
                            Ok(()) => {
                                placed = true;
                                break;
                            }
                            Err(why) => {
                                let _ = why;
                                reason = Some(format!(
                                    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type [{}]",
                                    kind.name
                                ));
                                retry_at = Some(self.now() + CAPACITY_RETRY_MS);
                            }
                        }
                    }
                    Err(Blocked::Requirement) => {
                        reason.get_or_insert_with(|| "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue.".into());
                    }
                    Err(Blocked::Max) => {
                        if max < job.n.vcpus {
                            reason.get_or_insert_with(|| "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet the CPU requirement of the job.".into());
                        }
                    }
                }
            }
            placed_any |= placed;
            if !started && fresh_ids.contains(&job.job_id) {
                let mut job = job;
                job.status_reason = reason;
                waiting.push(job);
            } else if !placed && reason.is_some() && job.status_reason != reason {
                let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(mut fresh) = self.store.job(&job.job_id)?.filter(|j| j.status == "RUNNABLE") {
                    fresh.status_reason = reason;
                    self.store.save_jobs(&[&fresh])?;
                }
            }
        }
        if !waiting.is_empty() {
            let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
            // Unless cancelled meanwhile.
            let ids: Vec<String> = waiting.iter().map(|j| j.job_id.clone()).collect();
            let statuses = self.statuses(&ids)?;
            let still: Vec<&Job> = waiting
                .iter()
                .filter(|j| statuses.get(&j.job_id).is_some_and(|s| s == "SUBMITTED"))
                .collect();
            self.store.save_jobs(&still)?;
        }
        if more && placed_any {
            self.wake();
        }
        Ok(retry_at)
    }

    /// Orders runnable jobs: queue priority (higher first), then within a fair-share queue the
    /// share with the least weighted usage and the job's scheduling priority, else FIFO.
    fn order(&self, jobs: Vec<Job>, queues: &HashMap<String, Value>) -> Result<Vec<Job>, AwsError> {
        // Each share's usage: vCPU-seconds of its jobs running now or within the policy's decay
        // window (600 s when it says 0, as AWS's minimum window).
        let mut usage: HashMap<(String, String), f64> = HashMap::new();
        let mut policies: HashMap<String, Value> = HashMap::new();
        let now = self.now();
        for (arn, queue) in queues {
            let Some(policy_arn) = queue["schedulingPolicyArn"].as_str() else { continue };
            let Some(policy) = self.store.get::<Value>(crate::queues::POLICY, policy_arn)? else { continue };
            let decay = match policy["fairsharePolicy"]["shareDecaySeconds"].as_i64() {
                Some(seconds) if seconds > 0 => seconds * 1000,
                _ => 600_000,
            };
            let recent = self.store.jobs_where(
                "queue = ?1 AND (status IN ('STARTING','RUNNING') OR (status IN ('SUCCEEDED','FAILED') AND created >= ?2))",
                &nimbus_store::params![arn.as_str(), now - decay],
            )?;
            for job in recent {
                let (Some(share), Some(started)) = (&job.share_identifier, job.started_at) else { continue };
                let seconds = (job.stopped_at.unwrap_or(now) - started).max(0) as f64 / 1000.0;
                *usage.entry((arn.clone(), share.clone())).or_default() += job.n.vcpus * seconds.max(0.001);
            }
            policies.insert(policy_arn.to_owned(), policy);
        }
        let mut keyed: Vec<(i64, f64, i64, i64, Job)> = Vec::with_capacity(jobs.len());
        let mut sorted_jobs = jobs;
        sorted_jobs.sort_by_key(|j| (-j.scheduling_priority.unwrap_or(0), j.created_at));
        let mut rank: HashMap<(String, String), f64> = HashMap::new();
        for job in sorted_jobs {
            let queue = queues.get(&job.job_queue);
            let priority = queue.and_then(|q| q["priority"].as_i64()).unwrap_or(0);
            let share_key =
                match (queue.and_then(|q| q["schedulingPolicyArn"].as_str()), &job.share_identifier) {
                    (Some(policy), Some(share)) => {
                        let weight = policies.get(policy).map_or(1.0, |p| crate::queues::weight_of(p, share));
                        let key = (job.job_queue.clone(), share.clone());
                        let ahead = rank.entry(key.clone()).or_default();
                        *ahead += job.n.vcpus;
                        (usage.get(&key).copied().unwrap_or(0.0) + *ahead) * weight
                    }
                    _ => 0.0,
                };
            keyed.push((-priority, share_key, -job.scheduling_priority.unwrap_or(0), job.created_at, job));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        Ok(keyed.into_iter().map(|k| k.4).collect())
    }

    /// A running instance of `ce` with room for the job (the fullest that fits), carved now.
    fn room_on(&self, ce: &str, job: &Job) -> Option<String> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let best = hosts
            .values_mut()
            .filter(|h| h.doc.ce == ce && h.state == HostState::Running)
            .filter(|h| h.doc.dedicated.as_ref().is_none_or(|d| *d == job.job_id))
            .filter(|h| {
                let (vcpus, memory) = h.free();
                vcpus >= job.n.vcpus && memory >= job.n.memory
            })
            .min_by(|a, b| a.free().0.total_cmp(&b.free().0))?;
        best.used_vcpus += job.n.vcpus;
        best.used_memory += job.n.memory;
        best.jobs.insert(job.job_id.clone());
        Some(best.doc.instance_id.clone())
    }

    /// Whether an instance of `ce` still booting will have room for the job (counted for this
    /// turn only: the job is placed when it runs).
    fn reserve_pending(&self, ce: &str, job: &Job) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let host = hosts.values_mut().find(|h| {
            let (vcpus, memory) = h.free();
            h.doc.ce == ce
                && h.state == HostState::Pending
                && vcpus >= job.n.vcpus
                && memory >= job.n.memory
                && h.doc.dedicated.as_ref().is_none_or(|d| *d == job.job_id)
        });
        match host {
            Some(host) => {
                host.reserved.0 += job.n.vcpus;
                host.reserved.1 += job.n.memory;
                true
            }
            None => false,
        }
    }

    /// Launches an instance for a compute environment and follows its life.
    fn launch(
        self: &Arc<Self>,
        ce: &str,
        kind: &HostType,
        spot: bool,
        dedicated: Option<String>,
        job: &Job,
    ) -> Result<(), String> {
        let ce_name = ce.rsplit('/').next().unwrap_or_default();
        let request = HostRequest {
            instance_type: kind.name.clone(),
            spot,
            tags: vec![("aws:batch:compute-environment".into(), ce_name.to_owned())],
            region: job.n.region.clone(),
        };
        let host = self.capacity.launch(&request)?;
        let doc = HostDoc {
            instance_id: host.instance_id.clone(),
            ce: ce.to_owned(),
            instance_type: kind.name.clone(),
            vcpus: kind.vcpus,
            memory_mib: kind.memory_mib,
            spot,
            launched_ms: self.now(),
            dedicated,
        };
        self.store.put("host", &doc.instance_id, &doc, self.now()).map_err(|e| e.message)?;
        let live = LiveHost {
            doc,
            state: HostState::Pending,
            used_vcpus: 0.0,
            used_memory: 0,
            jobs: HashSet::new(),
            reserved: (job.n.vcpus, job.n.memory),
            idle_since: self.now(),
            life: host.state.clone(),
        };
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).insert(host.instance_id.clone(), live);
        tokio::spawn(follow(Arc::downgrade(self), host.instance_id, host.state));
        Ok(())
    }

    /// Keeps `minvCpus` launched, retires instances idle past their delay down to it, and
    /// clears reservations of the turn. Returns when the next idle instance is due.
    fn scale(self: &Arc<Self>) -> Result<Option<i64>, AwsError> {
        let now = self.now();
        let ces: Vec<Value> = self.store.all(crate::compute::KIND)?;
        let mut next: Option<i64> = None;
        for ce in &ces {
            let arn = ce["computeEnvironmentArn"].as_str().unwrap_or_default().to_owned();
            let resources = &ce["computeResources"];
            if ce["type"] != "MANAGED" || resources["type"].as_str().is_some_and(|t| t.starts_with("FARGATE"))
            {
                continue;
            }
            let deleting = ce["status"] == "DELETING";
            let min = if deleting { 0 } else { resources["minvCpus"].as_i64().unwrap_or(0) };
            let delay_ms = match resources["scalingPolicy"]["minScaleDownDelayMinutes"].as_i64() {
                Some(minutes) if minutes > 0 => minutes * 60_000,
                _ => self.options.idle_seconds as i64 * 1000,
            };
            // Idle instances past their delay, oldest idle first, while above minvCpus.
            let mut retire = Vec::new();
            {
                let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
                for host in hosts.values_mut() {
                    host.reserved = (0.0, 0);
                }
                let mut held: i64 = hosts
                    .values()
                    .filter(|h| h.doc.ce == arn && h.usable())
                    .map(|h| i64::from(h.doc.vcpus))
                    .sum();
                let mut idle: Vec<&LiveHost> = hosts
                    .values()
                    .filter(|h| h.doc.ce == arn && h.state == HostState::Running && h.jobs.is_empty())
                    .collect();
                idle.sort_by_key(|h| h.idle_since);
                for host in idle {
                    let due = host.idle_since + if deleting { 0 } else { delay_ms };
                    if held - i64::from(host.doc.vcpus) < min {
                        continue;
                    }
                    if due <= now {
                        held -= i64::from(host.doc.vcpus);
                        retire.push(host.doc.instance_id.clone());
                    } else {
                        next = Some(next.map_or(due, |n: i64| n.min(due)));
                    }
                }
                for id in &retire {
                    hosts.remove(id);
                }
            }
            for id in retire {
                self.capacity.terminate(&id);
                self.store.delete("host", &id)?;
            }
            if ce["status"] == "VALID" && min > self.held_vcpus(&arn) {
                let catalog = self.catalog();
                let pool = candidates(&catalog, resources);
                let room = resources["maxvCpus"].as_f64().unwrap_or(0.0) - self.held_vcpus(&arn) as f64;
                let mut best_fit = resources.clone();
                best_fit["allocationStrategy"] = json!("BEST_FIT");
                if let Ok(kind) = choose_type(&pool, &best_fit, 1.0, 0, 1.0, room) {
                    let spot = resources["type"] == "SPOT";
                    let placeholder = Job {
                        n: crate::model::Internal {
                            region: arn.split(':').nth(3).unwrap_or_default().to_owned(),
                            ..Default::default()
                        },
                        ..placeholder_job()
                    };
                    if self.launch(&arn, &kind, spot, None, &placeholder).is_ok() {
                        self.wake();
                    }
                }
            }
        }
        Ok(next)
    }
}

fn placeholder_job() -> Job {
    serde_json::from_value(json!({
        "jobArn": "", "jobName": "", "jobId": "", "jobQueue": "", "status": "", "createdAt": 0,
        "jobDefinition": "", "_nimbus": { "region": "", "queue_name": "", "definition_name": "", "vcpus": 0.0, "memory": 0 }
    }))
    .expect("a placeholder job parses")
}

/// Fargate's sizes: the cheapest current x86_64 types stand in for tasks.
fn fargate_types(catalog: &[HostType]) -> Vec<&HostType> {
    catalog
        .iter()
        .filter(|t| ["m6i", "c6i", "r6i", "t3"].contains(&t.family.as_str()) && !t.bare_metal)
        .collect()
}

/// Follows an instance Batch launched: wakes the scheduler when it runs, warns its jobs at a
/// spot interruption notice, ends them when it is gone.
async fn follow(batch: Weak<Batch>, instance: String, mut state: tokio::sync::watch::Receiver<HostState>) {
    loop {
        let now = state.borrow_and_update().clone();
        let Some(me) = batch.upgrade() else { return };
        let jobs: Vec<String> = {
            let mut hosts = me.hosts.lock().unwrap_or_else(|p| p.into_inner());
            match hosts.get_mut(&instance) {
                Some(host) => {
                    host.state = now.clone();
                    host.jobs.iter().cloned().collect()
                }
                None if matches!(now, HostState::Ended(_)) => Vec::new(),
                None => Vec::new(),
            }
        };
        match &now {
            HostState::Interrupting => me.signal_jobs(&jobs, crate::run::Stop::Notice),
            HostState::Ended(_) => {
                me.signal_jobs(&jobs, crate::run::Stop::HostGone);
                me.hosts.lock().unwrap_or_else(|p| p.into_inner()).remove(&instance);
                let _ = me.store.delete("host", &instance);
                me.wake();
                return;
            }
            _ => {}
        }
        me.wake();
        drop(me);
        if state.changed().await.is_err() {
            if let Some(me) = batch.upgrade() {
                me.signal_jobs(&[], crate::run::Stop::HostGone);
            }
            return;
        }
    }
}

impl Batch {
    fn signal_jobs(&self, jobs: &[String], stop: crate::run::Stop) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for job in jobs {
            if let Some(sender) = running.get(job) {
                let _ = sender.send(Some(stop.clone()));
            }
        }
    }
}
