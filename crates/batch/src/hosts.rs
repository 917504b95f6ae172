//! Batch's instances: what each has carved out for jobs, following each one's life (running,
//! interrupted, gone), keeping `minvCpus` launched and retiring idle ones down to it.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::model::{HostDoc, Job};
use crate::placement::{candidates, choose_type, RESERVED_MIB};
use crate::{Batch, HostState, HostType};

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
    pub(crate) fn free(&self) -> (f64, u64) {
        let memory = self.doc.memory_mib.saturating_sub(RESERVED_MIB);
        (
            f64::from(self.doc.vcpus) - self.used_vcpus - self.reserved.0,
            memory.saturating_sub(self.used_memory + self.reserved.1),
        )
    }

    pub(crate) fn usable(&self) -> bool {
        matches!(self.state, HostState::Pending | HostState::Running)
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

    /// Keeps `minvCpus` launched, retires instances idle past their delay down to it, and
    /// clears reservations of the turn. Returns when the next idle instance is due.
    pub(crate) fn scale(self: &Arc<Self>) -> Result<Option<i64>, AwsError> {
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

    fn signal_jobs(&self, jobs: &[String], stop: crate::run::Stop) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for job in jobs {
            if let Some(sender) = running.get(job) {
                let _ = sender.send(Some(stop.clone()));
            }
        }
    }
}

fn placeholder_job() -> Job {
    serde_json::from_value(json!({
        "jobArn": "", "jobName": "", "jobId": "", "jobQueue": "", "status": "", "createdAt": 0,
        "jobDefinition": "", "_nimbus": { "region": "", "queue_name": "", "definition_name": "", "vcpus": 0.0, "memory": 0 }
    }))
    .expect("a placeholder job parses")
}

/// Follows an instance Batch launched: wakes the scheduler when it runs, warns its jobs at a
/// spot interruption notice, ends them when it is gone.
pub(crate) async fn follow(
    batch: Weak<Batch>,
    instance: String,
    mut state: tokio::sync::watch::Receiver<HostState>,
) {
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
