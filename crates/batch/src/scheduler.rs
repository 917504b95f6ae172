//! The scheduler: one turn per event (a submission, a process ending, an instance changing)
//! or deadline (an idle instance to retire). It moves jobs SUBMITTED → PENDING → RUNNABLE as
//! their dependencies allow, places RUNNABLE jobs by queue priority on instances of the
//! queue's compute environments (launching instances when none has room, up to `maxvCpus`),
//! and retires idle instances down to `minvCpus`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::model::{HostDoc, Job};
use crate::Batch;

/// A turn happens at least this often (ms), whatever happens.
const IDLE_TURN_MS: i64 = 30_000;
/// With several nodes: a turn (and the lease's renewal) at least this often.
const LEASE_TURN_MS: i64 = 2_000;

pub async fn run(batch: Weak<Batch>) {
    // Whether this node held the lease at its last turn: taking it (at start, or over from a
    // node that stopped) settles the jobs that were running where it was held before.
    let mut leading = false;
    loop {
        let Some(me) = batch.upgrade() else { return };
        let (wake, clock) = (me.wake.clone(), me.clock.clone());
        let (clustered, lease_ms) = (me.options.leader.is_some(), me.options.lease_ms);
        let taking_over = !leading;
        let turn = tokio::task::spawn_blocking(move || {
            // With several nodes, the one holding the lease places jobs.
            if !me.options.leader.as_ref().is_none_or(|leader| leader()) {
                return Ok((false, me.now() + LEASE_TURN_MS));
            }
            if taking_over {
                if let Err(error) = me.recover() {
                    eprintln!("nimbus: batch: cannot settle the jobs of the previous run: {}", error.message);
                }
            }
            me.turn().map(|next| (true, next))
        });
        let mut next = match turn.await {
            Ok(Ok((led, next))) => {
                leading = led;
                next
            }
            Ok(Err(error)) => {
                eprintln!("nimbus: batch: scheduler turn failed: {}", error.message);
                clock.now_ms() + 1000
            }
            Err(_) => clock.now_ms() + 1000,
        };
        if clustered {
            // The lease is renewed by turns: often enough that it never lapses while held.
            let every = if lease_ms > 0 { (lease_ms / 3).clamp(100, LEASE_TURN_MS) } else { LEASE_TURN_MS };
            next = next.min(clock.now_ms() + every);
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = nimbus_api::clock::sleep_until(&*clock, next) => {}
        }
    }
}

impl Batch {
    /// After a restart: instances of the previous run are gone (EC2 ended them); jobs that were
    /// After a restart: instances of the previous run are gone (EC2 ended them); jobs that were
    /// starting or running there are found dead and retried by their strategy.
    fn recover(self: &Arc<Self>) -> Result<(), AwsError> {
        for host in self.store.all::<HostDoc>("host")? {
            self.capacity.terminate(&host.instance_id);
            self.store.delete("host", &host.instance_id)?;
        }
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = self.store.jobs_where("status IN ('STARTING','RUNNING')", &[])?;
        for job in started {
            // A multi-node parallel job follows its nodes (settled at the next turn).
            if job.is_multinode_parent() {
                continue;
            }
            // On Slurm: followed on (or, submitted without its id stored, found by its comment).
            if job.n.slurm.as_ref().is_some_and(|s| s.output.is_some()) {
                self.clone().resume(job);
                continue;
            }
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
        self.settle_multinode()?;
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
                let reason = format!("Canceled by JobStateTimeLimit action due to reason: {why}");
                if head.is_multinode_parent() {
                    // With its nodes.
                    self.stop_multinode(head, &reason, false)?;
                    continue;
                }
                head.is_cancelled = true;
                self.finish(&mut head, "FAILED", &reason)?;
            }
        }
        Ok(())
    }

    /// The statuses of jobs by id (dependencies).
    pub(crate) fn statuses(&self, ids: &[String]) -> Result<HashMap<String, String>, AwsError> {
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
                if job.is_multinode_parent() {
                    // Its nodes are made this turn; they are what is placed.
                    self.store.save_jobs(&[&job])?;
                    continue;
                }
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
        // Parents whose children changed here (all of them at the first turn, and now and then
        // for what other nodes changed).
        let mut to_count =
            self.parents_to_count.lock().unwrap_or_else(|p| p.into_inner()).replace(Default::default());
        if self.passes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 50 == 49 {
            to_count = None;
        }
        let wanted: Vec<String> =
            pending.iter().filter(|j| !j.is_array_parent()).flat_map(Self::dependencies).collect();
        let statuses = self.statuses(&wanted)?;
        let mut changed = Vec::new();
        for mut job in pending {
            // A node waits for its main node (see `settle_multinode`), not for dependencies.
            if job.is_node() {
                continue;
            }
            if job.is_array_parent() {
                if to_count.as_ref().is_some_and(|parents| !parents.contains(&job.job_id)) {
                    continue;
                }
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
            changed.iter().filter(|j| j.is_finished()).for_each(|j| self.child_finished(j));
            for job in &changed {
                self.emit(job);
            }
            // A failure may fail more dependants, a success free them: another turn.
            self.finished_since.store(true, std::sync::atomic::Ordering::Release);
            self.wake();
        }
        Ok(())
    }
}
