//! Placement: which RUNNABLE jobs go first (queue priority, fair share, age), which running
//! instance has room for a job, and which instance type to launch when none has (the allocation
//! strategies over the compute environment's types, within `maxvCpus`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::compute::families_of;
use crate::hosts::{follow, LiveHost};
use crate::model::{HostDoc, Job};
use crate::{Batch, HostRequest, HostState, HostType};

/// MiB of an instance kept for the agent (AWS's `ECS_RESERVED_MEMORY`).
pub const RESERVED_MIB: u64 = 32;
/// RUNNABLE jobs looked at per queue and turn.
const HEAD: i64 = 200;
/// A launch refused for capacity is tried again after this (ms).
const CAPACITY_RETRY_MS: i64 = 5_000;

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

impl Batch {
    /// Places RUNNABLE jobs, highest queue priority first; launches instances for those that
    /// find no room. Returns when to look again for jobs blocked on capacity.
    pub(crate) fn place(self: &Arc<Self>, fresh: Vec<Job>) -> Result<Option<i64>, AwsError> {
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
                    ce["status"] == "VALID"
                        && ce["state"] == "ENABLED"
                        && (ce["type"] == "MANAGED" || self.slurm_partition(ce).is_some())
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
        // Stored STARTING together at the end of the placements.
        let mut starts: Vec<(Job, String, String)> = Vec::new();
        for job in ordered {
            let Some(queue) = queues.get(&job.job_queue) else { continue };
            // A multi-node parallel job is placed node by node.
            if job.is_multinode_parent() {
                continue;
            }
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
                if job.is_node() {
                    if let Some(why) = refuses_nodes(ce) {
                        reason.get_or_insert(why);
                        continue;
                    }
                }
                // Bound to Slurm: the job goes to the cluster, whose own queue holds it.
                let partition = self.slurm_partition(ce);
                if let (Some(partition), "VALID", "ENABLED") =
                    (&partition, ce["status"].as_str().unwrap_or(""), ce["state"].as_str().unwrap_or(""))
                {
                    let mut job = job.clone();
                    job.n.slurm =
                        Some(crate::slurm::SlurmRef { partition: partition.clone(), ..Default::default() });
                    starts.push((job, crate::slurm::INSTANCE.to_owned(), ce_arn.clone()));
                    placed = true;
                    started = true;
                    break;
                }
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
                    starts.push((job.clone(), instance, ce_arn.clone()));
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
                let mut pool =
                    if fargate { fargate_types(&catalog) } else { candidates(&catalog, resources) };
                // A node range may name its instance type.
                if let Some(wanted) = job.container["instanceType"].as_str().filter(|_| job.is_node()) {
                    pool.retain(|t| t.name == wanted);
                }
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
                        // Fargate tasks and multi-node parallel jobs' nodes are single-tenant.
                        let dedicated = (fargate || job.is_node()).then(|| job.job_id.clone());
                        match self.launch(ce_arn, &kind, spot, dedicated, &job) {
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
                    // A main node's reason is its job's, shown at the next turn.
                    if fresh.is_node() {
                        self.wake();
                    }
                }
            }
        }
        self.start_all(starts)?;
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
            .filter(|h| match &h.doc.dedicated {
                Some(owner) => *owner == job.job_id,
                None => !job.is_node(),
            })
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
                && match &h.doc.dedicated {
                    Some(owner) => *owner == job.job_id,
                    None => !job.is_node(),
                }
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
    pub(crate) fn launch(
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
}

/// Why a compute environment cannot run multi-node parallel jobs' nodes (AWS runs them on
/// on-demand EC2 only: not on Spot, Fargate or unmanaged environments).
fn refuses_nodes(ce: &Value) -> Option<String> {
    let kind = ce["computeResources"]["type"].as_str().unwrap_or_default();
    let refused = if ce["type"] != "MANAGED" {
        "UNMANAGED compute environments"
    } else if kind == "SPOT" {
        "compute environments that use Spot Instances"
    } else if kind.starts_with("FARGATE") {
        "Fargate compute environments"
    } else {
        return None;
    };
    Some(format!(
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - Multi-node parallel jobs aren't supported on {refused}."
    ))
}

/// Fargate's sizes: the cheapest current x86_64 types stand in for tasks.
fn fargate_types(catalog: &[HostType]) -> Vec<&HostType> {
    catalog
        .iter()
        .filter(|t| ["m6i", "c6i", "r6i", "t3"].contains(&t.family.as_str()) && !t.bare_metal)
        .collect()
}
