//! SubmitJob, DescribeJobs, ListJobs, CancelJob and TerminateJob.

use nimbus_store::params;
use serde_json::{json, Map, Value};

use crate::jobdefs::{check_container, check_retry, check_timeout, resources_of};
use crate::model::{status_summary, Internal, Job};
use crate::store::LIVE;
use crate::{client, Batch};
use nimbus_api::AwsError;

fn valid_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Environment lists merged by name, the later winning.
fn merge_env(base: &Value, over: &Value) -> Value {
    let mut merged: Vec<Value> = base.as_array().cloned().unwrap_or_default();
    for variable in over.as_array().into_iter().flatten() {
        merged.retain(|v| v["name"] != variable["name"]);
        merged.push(variable.clone());
    }
    Value::Array(merged)
}

/// Container properties with a submission's `containerOverrides` applied.
pub(crate) fn overridden(base: &Value, overrides: &Value) -> Value {
    let mut container = base.clone();
    if let Some(command) = overrides.get("command") {
        container["command"] = command.clone();
    }
    if overrides.get("environment").is_some() {
        container["environment"] = merge_env(&container["environment"], &overrides["environment"]);
    }
    for key in ["vcpus", "memory", "instanceType"] {
        if let Some(value) = overrides.get(key) {
            container[key] = value.clone();
        }
    }
    if let Some(requirements) = overrides["resourceRequirements"].as_array() {
        let mut merged = container["resourceRequirements"].as_array().cloned().unwrap_or_default();
        for requirement in requirements {
            merged.retain(|r| r["type"] != requirement["type"]);
            merged.push(requirement.clone());
        }
        container["resourceRequirements"] = Value::Array(merged);
    }
    container
}

impl Batch {
    pub(crate) fn submit_job(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let name = input["jobName"].as_str().unwrap_or_default();
        if !valid_job_name(name) {
            return Err(client("jobName must be 1-128 letters, numbers, hyphens and underscores, starting with a letter or number"));
        }
        let queue_ref = input["jobQueue"].as_str().unwrap_or_default();
        let queue_arn = self.queue_arn(region, queue_ref);
        let queue =
            self.queue(&queue_arn)?.ok_or_else(|| client(format!("Job Queue {queue_ref} does not exist")))?;
        if queue["state"] != "ENABLED" || queue["status"] == "DELETING" {
            return Err(client(format!("Job Queue {queue_ref} is not ENABLED")));
        }
        let def_ref = input["jobDefinition"].as_str().unwrap_or_default();
        let definition = self
            .job_definition(region, def_ref)?
            .filter(|d| d["status"] == "ACTIVE")
            .ok_or_else(|| client(format!("Job definition {def_ref} does not exist or is not ACTIVE")))?;
        if queue.get("schedulingPolicyArn").is_some() && input["shareIdentifier"].as_str().is_none() {
            return Err(client(
                "Share identifier must be specified for a job submitted to a fair share job queue",
            ));
        }
        if queue.get("schedulingPolicyArn").is_none() && input.get("shareIdentifier").is_some() {
            return Err(client(
                "Share identifier can only be specified for a job submitted to a fair share job queue",
            ));
        }
        let size = match input["arrayProperties"]["size"].as_u64() {
            Some(size) if !(2..=10_000).contains(&size) => {
                return Err(client(
                    "Error executing request, Exception : Array job size must be between 2 and 10,000",
                ))
            }
            size => size.map(|s| s as u32),
        };
        let depends_on = input["dependsOn"].as_array().cloned().unwrap_or_default();
        if depends_on.len() > 20 {
            return Err(client("A job can depend on at most 20 jobs"));
        }
        for dependency in &depends_on {
            let kind = dependency["type"].as_str().unwrap_or("");
            match (dependency["jobId"].as_str(), kind) {
                (None, "SEQUENTIAL") if size.is_some() => {}
                (None, "SEQUENTIAL") => {
                    return Err(client("SEQUENTIAL dependencies are for array jobs only"))
                }
                (None, _) => return Err(client("dependsOn entries need a jobId")),
                (Some(id), _) => {
                    let other = self
                        .store
                        .job(id)?
                        .ok_or_else(|| client(format!("Dependent job {id} does not exist")))?;
                    if kind == "N_TO_N" && (size.is_none() || other.n.size != size || other.n.index.is_some())
                    {
                        return Err(client("N_TO_N dependencies are between array jobs of the same size"));
                    }
                }
            }
        }
        let fargate =
            definition["platformCapabilities"].as_array().is_some_and(|c| c.iter().any(|c| c == "FARGATE"));
        // A multi-node parallel job has no container of its own: its nodes have theirs.
        let (container, node_properties) = if definition["type"] == "multinode" {
            (Value::Null, Some(crate::multinode::submitted(&definition, input)?))
        } else {
            if input.get("nodeOverrides").is_some() {
                return Err(client(
                    "nodeOverrides can be used only with a multi-node parallel job definition",
                ));
            }
            let container = overridden(&definition["containerProperties"], &input["containerOverrides"]);
            check_container(&container, fargate)?;
            (container, None)
        };
        let (vcpus, memory) = resources_of(&container);
        let retry = input.get("retryStrategy").or(definition.get("retryStrategy")).cloned();
        if let Some(retry) = &retry {
            check_retry(retry)?;
        }
        let timeout = input.get("timeout").or(definition.get("timeout")).cloned();
        if let Some(timeout) = &timeout {
            check_timeout(timeout)?;
        }
        let mut parameters: Map<String, Value> =
            definition["parameters"].as_object().cloned().unwrap_or_default();
        for (key, value) in input["parameters"].as_object().into_iter().flatten() {
            parameters.insert(key.clone(), value.clone());
        }
        let propagate = input["propagateTags"]
            .as_bool()
            .unwrap_or(definition["propagateTags"].as_bool().unwrap_or(false));
        let mut tags: Map<String, Value> = Map::new();
        if propagate {
            tags.extend(definition["tags"].as_object().cloned().unwrap_or_default());
        }
        tags.extend(input["tags"].as_object().cloned().unwrap_or_default());
        let id = uuid::Uuid::new_v4().to_string();
        let job = Job {
            job_arn: self.arn(region, "job", &id),
            job_name: name.to_owned(),
            job_id: id.clone(),
            job_queue: queue_arn,
            status: "SUBMITTED".into(),
            share_identifier: input["shareIdentifier"].as_str().map(str::to_owned),
            scheduling_priority: input["schedulingPriorityOverride"]
                .as_i64()
                .or(definition["schedulingPriority"].as_i64()),
            attempts: Vec::new(),
            status_reason: None,
            created_at: self.now(),
            retry_strategy: retry,
            started_at: None,
            stopped_at: None,
            depends_on,
            job_definition: definition["jobDefinitionArn"].as_str().unwrap_or_default().to_owned(),
            parameters,
            container,
            node_properties,
            node_details: None,
            array_properties: size.map(|s| json!({ "size": s })),
            timeout,
            tags: (!tags.is_empty()).then_some(tags),
            propagate_tags: propagate,
            platform_capabilities: definition["platformCapabilities"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            is_cancelled: false,
            is_terminated: false,
            n: Internal {
                region: region.to_owned(),
                queue_name: queue["jobQueueName"].as_str().unwrap_or_default().to_owned(),
                definition_name: definition["jobDefinitionName"].as_str().unwrap_or_default().to_owned(),
                size,
                vcpus: vcpus.unwrap_or(1.0),
                memory: memory.unwrap_or(2048),
                ..Internal::default()
            },
        };
        self.store.save_jobs(&[&job])?;
        self.changed();
        Ok(json!({ "jobArn": job.job_arn, "jobName": name, "jobId": id }))
    }

    /// A job as DescribeJobs shows it: an array parent with its children's counts.
    fn described(&self, job: &Job) -> Result<Value, AwsError> {
        let mut detail = job.detail();
        if job.is_array_parent() {
            let counts = self.store.child_counts(&job.job_id)?;
            detail["arrayProperties"]["statusSummary"] = status_summary(&counts);
            detail["arrayProperties"]["statusSummaryLastUpdatedAt"] = json!(self.now());
        }
        Ok(detail)
    }

    pub(crate) fn describe_jobs(&self, input: &Value) -> Result<Value, AwsError> {
        let ids = input["jobs"].as_array().cloned().ok_or_else(|| client("jobs is required"))?;
        if ids.len() > 100 {
            return Err(client("Error executing request, Exception : Too many job IDs; a maximum of 100 job IDs can be specified."));
        }
        let mut jobs = Vec::new();
        for id in ids.iter().filter_map(Value::as_str) {
            let id = id.rsplit('/').next().unwrap_or(id);
            if let Some(job) = self.store.job(id)? {
                jobs.push(self.described(&job)?);
            }
        }
        Ok(json!({ "jobs": jobs }))
    }

    pub(crate) fn list_jobs(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let filters = input["filters"].as_array().cloned().unwrap_or_default();
        let status = input["jobStatus"].as_str().unwrap_or("RUNNING");
        if !crate::model::STATUSES.contains(&status) {
            return Err(client(format!("jobStatus {status} is not valid")));
        }
        let mut jobs = if let Some(parent) = input["arrayJobId"].as_str() {
            self.store.jobs_where("parent = ?1", &params![parent])?
        } else if let Some(queue) = input["jobQueue"].as_str() {
            let arn = self.queue_arn(region, queue);
            if self.queue(&arn)?.is_none() {
                return Err(client(format!("Job Queue {queue} does not exist")));
            }
            if filters.is_empty() {
                self.store.jobs_where(
                    "queue = ?1 AND status = ?2 AND parent = ''",
                    &params![arn.as_str(), status],
                )?
            } else {
                self.store.jobs_where("queue = ?1 AND parent = ''", &params![arn.as_str()])?
            }
        } else if let Some(parent) = input["multiNodeJobId"].as_str() {
            let mut nodes = self.store.jobs_where("parent = ?1", &params![parent])?;
            if input.get("jobStatus").is_some() {
                nodes.retain(|j| j.status == status);
            }
            nodes.sort_by_key(|j| j.n.index);
            nodes
        } else {
            return Err(client(
                "Error executing request, Exception : A jobQueue, arrayJobId or multiNodeJobId is required",
            ));
        };
        if input["arrayJobId"].is_string() && filters.is_empty() && input.get("jobStatus").is_some() {
            jobs.retain(|j| j.status == status);
        }
        for filter in &filters {
            let values: Vec<String> = filter["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let value = values.first().cloned().unwrap_or_default();
            match filter["name"].as_str().unwrap_or_default() {
                "JOB_NAME" => {
                    let wanted = value.to_lowercase();
                    jobs.retain(|j| match wanted.strip_suffix('*') {
                        Some(prefix) => j.job_name.to_lowercase().starts_with(prefix),
                        None => j.job_name.to_lowercase() == wanted,
                    })
                }
                "JOB_DEFINITION" => jobs.retain(|j| {
                    j.job_definition == value
                        || j.n.definition_name == value
                        || j.job_definition.ends_with(&format!("/{value}"))
                }),
                "BEFORE_CREATED_AT" => {
                    let at: i64 =
                        value.parse().map_err(|_| client("BEFORE_CREATED_AT takes epoch milliseconds"))?;
                    jobs.retain(|j| j.created_at < at)
                }
                "AFTER_CREATED_AT" => {
                    let at: i64 =
                        value.parse().map_err(|_| client("AFTER_CREATED_AT takes epoch milliseconds"))?;
                    jobs.retain(|j| j.created_at > at)
                }
                "SHARE_IDENTIFIER" => {
                    jobs.retain(|j| j.share_identifier.as_deref() == Some(&value) && j.status == status)
                }
                other => return Err(client(format!("Filter name {other} is not valid"))),
            }
        }
        if !filters.is_empty() {
            jobs.reverse();
        }
        let summaries: Vec<Value> = jobs
            .iter()
            .map(|j| {
                let mut summary = j.summary();
                if j.is_array_parent() {
                    let counts = self.store.child_counts(&j.job_id).unwrap_or_default();
                    summary["arrayProperties"]["statusSummary"] = status_summary(&counts);
                }
                summary
            })
            .collect();
        let (page, next) = crate::compute::paginate(summaries, input)?;
        Ok(json!({ "jobSummaryList": page, "nextToken": next }))
    }

    pub(crate) fn cancel_job(&self, input: &Value, terminate: bool) -> Result<Value, AwsError> {
        let id = input["jobId"].as_str().unwrap_or_default();
        let reason = input["reason"].as_str().ok_or_else(|| client("reason is required"))?;
        if reason.len() > 1024 {
            return Err(client("reason can be at most 1024 characters"));
        }
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        let job = self.store.job(id)?.ok_or_else(|| client(format!("Job {id} does not exist")))?;
        if job.is_array_parent() {
            let children =
                self.store.jobs_where(&format!("parent = ?1 AND status IN {LIVE}"), &params![id])?;
            for child in children {
                self.stop_job(child, reason, terminate)?;
            }
            if job.status == "SUBMITTED" || job.status == "PENDING" && self.store.child_counts(id)?.is_empty()
            {
                self.stop_job(job, reason, terminate)?;
            }
        } else if job.is_multinode_parent() {
            self.stop_multinode(job, reason, terminate)?;
        } else {
            self.stop_job(job, reason, terminate)?;
        }
        self.changed();
        Ok(json!({}))
    }

    /// Cancels a queued job (FAILED now), or with `terminate` stops a started one (FAILED when
    /// its process has ended). Finished jobs, and started ones on cancel, are left alone.
    pub(crate) fn stop_job(&self, mut job: Job, reason: &str, terminate: bool) -> Result<(), AwsError> {
        match job.status.as_str() {
            "SUBMITTED" | "PENDING" | "RUNNABLE" => {
                job.is_cancelled = !terminate;
                job.is_terminated = terminate;
                self.finish(&mut job, "FAILED", reason)?;
            }
            "STARTING" | "RUNNING" if terminate => {
                job.n.stopping = Some(reason.to_owned());
                self.store.save_jobs(&[&job])?;
                let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(stop) = running.get(&job.job_id) {
                    let _ = stop.send(Some(crate::run::Stop::Terminate(reason.to_owned())));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets a job's status (and reason), stores it and sends its state-change event.
    pub(crate) fn finish(&self, job: &mut Job, status: &str, reason: &str) -> Result<(), AwsError> {
        job.status = status.to_owned();
        job.status_reason = Some(reason.to_owned());
        if job.stopped_at.is_none() && job.is_finished() {
            job.stopped_at = Some(self.now());
        }
        self.store.save_jobs(&[job])?;
        self.emit(job);
        if job.is_finished() {
            self.child_finished(job);
            self.finished_since.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(())
    }

    /// Notes that an array child finished: its parent is counted at the next turn.
    pub(crate) fn child_finished(&self, job: &Job) {
        if let Some(parent) = &job.n.parent {
            if let Some(parents) = self.parents_to_count.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                parents.insert(parent.clone());
            }
        }
    }

    /// "Batch Job State Change" on the default bus.
    pub(crate) fn emit(&self, job: &Job) {
        // In order, through one bounded queue: a burst (an array's thousands of children) waits
        // here rather than piling up threads.
        let _ = self.outgoing.send((job.job_arn.clone(), job.detail()));
    }

    /// What `nimbus jobs` shows: per queue the jobs by status, and the latest jobs.
    pub(crate) fn jobs_overview(&self) -> Result<Value, AwsError> {
        let rows = self
            .store
            .db
            .query("SELECT queue, status, COUNT(*) FROM jobs WHERE parent = '' GROUP BY queue, status", &[])
            .map_err(crate::store::db)?;
        let mut queues: Map<String, Value> = Map::new();
        for row in &rows {
            let (queue, status, n): (String, String, i64) = (
                row.get(0).unwrap_or_default(),
                row.get(1).unwrap_or_default(),
                row.get(2).unwrap_or_default(),
            );
            let name = queue.rsplit('/').next().unwrap_or_default().to_owned();
            queues.entry(name).or_insert_with(|| json!({}))[status] = json!(n);
        }
        let recent = self.store.jobs_where(
            "parent = '' AND created >= (SELECT COALESCE(MAX(created), 0) - 86400000 FROM jobs)",
            &[],
        )?;
        let recent: Vec<Value> = recent
            .iter()
            .rev()
            .take(50)
            .map(|j| {
                let mut row = j.summary();
                row["jobQueue"] = json!(j.n.queue_name);
                if !j.depends_on.is_empty() {
                    row["dependsOn"] = json!(j.depends_on);
                }
                if j.is_array_parent() {
                    row["arrayProperties"]["statusSummary"] =
                        status_summary(&self.store.child_counts(&j.job_id).unwrap_or_default());
                }
                row["logStreamName"] = json!(j
                    .n
                    .log_stream
                    .clone()
                    .or_else(|| j.container["logStreamName"].as_str().map(str::to_owned)));
                row
            })
            .collect();
        let hosts: Vec<Value> = self.hosts_overview();
        Ok(json!({ "queues": queues, "jobs": recent, "instances": hosts }))
    }

    /// `GET /_nimbus/batch/array?job=<id>`: the children's statuses as one letter each by index
    /// (S submitted, P pending, R runnable, T starting, U running, D succeeded, F failed; `.`
    /// for an index with no child yet), with counts by status.
    pub(crate) fn array_overview(&self, parent: &str) -> Result<Value, AwsError> {
        let children = self.store.child_statuses(parent)?;
        let size = children.iter().map(|(index, _)| index + 1).max().unwrap_or(0);
        let mut letters = vec![b'.'; size];
        let mut counts: Map<String, Value> = Map::new();
        for (index, status) in &children {
            letters[*index] = match status.as_str() {
                "SUBMITTED" => b'S',
                "PENDING" => b'P',
                "RUNNABLE" => b'R',
                "STARTING" => b'T',
                "RUNNING" => b'U',
                "SUCCEEDED" => b'D',
                "FAILED" => b'F',
                _ => b'?',
            };
            let n = counts.get(status).and_then(Value::as_i64).unwrap_or(0);
            counts.insert(status.clone(), json!(n + 1));
        }
        let statuses = String::from_utf8(letters).unwrap_or_default();
        Ok(json!({ "job": parent, "size": size, "statuses": statuses, "counts": counts }))
    }
}
