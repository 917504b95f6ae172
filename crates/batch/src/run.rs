//! One attempt of a job: STARTING on an instance, its process RUNNING inside it (output to
//! CloudWatch Logs), and how it ended — exit code, timeout, TerminateJob, or the instance gone
//! — decided against the retry strategy.

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::AwsError;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::model::Job;
use crate::{Batch, Exit, HostState, JobExec};

/// The host's root, read-only, as an image (other images come from nimbus's image store).
pub const HOST_IMAGE: &str = "nimbus/host";
const LOG_GROUP: &str = "/aws/batch/job";
/// Between SIGTERM and SIGKILL (ECS's stop timeout).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What reaches a running attempt from outside.
#[derive(Debug, Clone)]
pub enum Stop {
    /// TerminateJob: SIGTERM, SIGKILL after the grace.
    Terminate(String),
    /// The spot interruption notice: SIGTERM now; the instance ends later.
    Notice,
    /// The instance is gone.
    HostGone,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Ending {
    pub exit: Option<i32>,
    pub reason: Option<String>,
    pub status_reason: String,
    /// Whether the retry strategy is asked (not after a timeout or TerminateJob).
    pub retry: bool,
}

impl Ending {
    fn failed_to_start(reason: String) -> Ending {
        Ending { exit: None, reason: Some(reason), status_reason: "Task failed to start".into(), retry: true }
    }
}

impl Batch {
    /// RUNNABLE → STARTING, each job on its instance (with its compute environment), all in
    /// one transaction (one disk sync for a turn's placements, not one per job); each attempt
    /// then runs in a task of its own.
    pub(crate) fn start_all(self: &Arc<Self>, starts: Vec<(Job, String, String)>) -> Result<(), AwsError> {
        if starts.is_empty() {
            return Ok(());
        }
        let _guard = self.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
        // RUNNABLE, or SUBMITTED in the store when it became RUNNABLE this very turn; not
        // cancelled meanwhile.
        let ids: Vec<String> = starts.iter().map(|(job, _, _)| job.job_id.clone()).collect();
        let statuses = self.statuses(&ids)?;
        let mut starting = Vec::with_capacity(starts.len());
        for (mut job, instance, ce) in starts {
            if !statuses.get(&job.job_id).is_some_and(|s| s == "RUNNABLE" || s == "SUBMITTED") {
                self.release(&instance, &job);
                continue;
            }
            let task_id = uuid::Uuid::new_v4().simple().to_string();
            let (region, account) = (job.n.region.clone(), self.identity.account.clone());
            let cluster = format!("AWSBatch-{}", ce.rsplit('/').next().unwrap_or_default());
            job.status = "STARTING".into();
            job.status_reason = None;
            job.n.attempt += 1;
            job.n.instance = Some(instance.clone());
            job.n.ce = Some(ce);
            job.n.task_id = Some(task_id.clone());
            job.n.stopping = None;
            job.n.log_stream = None;
            job.container["taskArn"] =
                json!(format!("arn:aws:ecs:{region}:{account}:task/{cluster}/{task_id}"));
            job.container["containerInstanceArn"] = json!(format!(
                "arn:aws:ecs:{region}:{account}:container-instance/{cluster}/{}",
                instance.trim_start_matches("i-")
            ));
            starting.push(job);
        }
        if let Err(error) = self.store.save_jobs(&starting.iter().collect::<Vec<_>>()) {
            for job in &starting {
                self.release(job.n.instance.as_deref().unwrap_or_default(), job);
            }
            return Err(error);
        }
        for job in starting {
            self.emit(&job);
            let (sender, receiver) = watch::channel(None);
            self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job.job_id.clone(), sender);
            tokio::spawn(self.clone().attempt(job, receiver));
        }
        Ok(())
    }

    /// After a restart: an attempt on Slurm goes on where it was (its Slurm job is followed
    /// again).
    pub(crate) fn resume(self: Arc<Self>, job: Job) {
        let (sender, receiver) = watch::channel(None);
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job.job_id.clone(), sender);
        tokio::spawn(self.clone().attempt(job, receiver));
    }

    /// Gives back what a job held on an instance (a Fargate instance ends with its job).
    fn release(&self, instance: &str, job: &Job) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(host) = hosts.get_mut(instance) else { return };
        if host.jobs.remove(&job.job_id) {
            host.used_vcpus = (host.used_vcpus - job.n.vcpus).max(0.0);
            host.used_memory = host.used_memory.saturating_sub(job.n.memory);
        }
        if host.jobs.is_empty() {
            host.idle_since = self.now();
            if host.doc.dedicated.is_some() {
                hosts.remove(instance);
                drop(hosts);
                self.capacity.terminate(instance);
                let _ = self.store.delete("host", instance);
            }
        }
    }

    async fn attempt(self: Arc<Self>, job: Job, mut stop: watch::Receiver<Option<Stop>>) {
        let ending = self.execute(&job, &mut stop).await;
        if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let me = self.clone();
        let id = job.job_id.clone();
        let shown = id.clone();
        let done = tokio::task::spawn_blocking(move || {
            let _guard = me.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
            me.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            me.release(job.n.instance.as_deref().unwrap_or_default(), &job);
            match me.store.job(&id) {
                Ok(Some(fresh)) if matches!(fresh.status.as_str(), "STARTING" | "RUNNING") => {
                    me.end_attempt(fresh, ending)
                }
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await;
        if let Ok(Err(error)) = done {
            eprintln!("nimbus: batch: cannot record the end of job {shown}: {}", error.message);
        }
        self.changed();
    }

    /// The process of the attempt, from image to exit.
    async fn execute(self: &Arc<Self>, job: &Job, stop: &mut watch::Receiver<Option<Stop>>) -> Ending {
        let command: Vec<String> = job.container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let command = crate::retry::substitute(&command, &job.parameters);
        if let Some(reason) = unpullable_secret(&job.container) {
            return Ending::failed_to_start(reason);
        }
        if job.n.slurm.is_some() && job.container["image"] != HOST_IMAGE {
            return Ending::failed_to_start(format!(
                "CannotStartContainerError: compute environment {} runs its jobs on Slurm, where only the image {HOST_IMAGE} (the nodes' own root) runs",
                job.n.ce.as_deref().and_then(|c| c.rsplit('/').next()).unwrap_or_default()
            ));
        }
        let launch = match self.launch_of(job, command).await {
            Ok(launch) => launch,
            Err(reason) => return Ending::failed_to_start(reason),
        };
        // The image's root stays in the store until the attempt ends.
        let _hold = launch.hold;
        let instance = job.n.instance.clone().unwrap_or_default();
        let checkpoint = self.options.data_dir.join("checkpoints").join(&job.job_id);
        // Open to whichever user the sandbox runs the job as; it is the job's alone.
        let made = std::fs::create_dir_all(&checkpoint).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&checkpoint, std::fs::Permissions::from_mode(0o777))
        });
        if let Err(error) = made {
            return Ending::failed_to_start(format!(
                "CannotCreateContainerError: checkpoint directory: {error}"
            ));
        }
        let checkpoint = checkpoint.to_string_lossy().into_owned();
        let mut env = launch.env;
        env.extend([
            ("AWS_BATCH_JOB_ID".to_owned(), job.job_id.clone()),
            ("AWS_BATCH_JOB_ATTEMPT".to_owned(), job.n.attempt.to_string()),
            ("AWS_BATCH_JQ_NAME".to_owned(), job.n.queue_name.clone()),
            (
                "AWS_BATCH_CE_NAME".to_owned(),
                job.n.ce.as_deref().and_then(|c| c.rsplit('/').next()).unwrap_or_default().to_owned(),
            ),
            ("AWS_EXECUTION_ENV".to_owned(), "AWS_ECS_EC2".to_owned()),
            ("NIMBUS_CHECKPOINT_DIR".to_owned(), checkpoint.clone()),
        ]);
        if let (Some(index), Some(size)) = (job.n.index, job.n.size) {
            env.push(("AWS_BATCH_JOB_ARRAY_INDEX".into(), index.to_string()));
            env.push(("AWS_BATCH_JOB_ARRAY_SIZE".into(), size.to_string()));
        }
        if job.is_node() {
            match self.node_variables(job, &instance).await {
                Ok(variables) => env.extend(variables),
                Err(reason) => return Ending::failed_to_start(reason),
            }
        }
        for variable in job.container["environment"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (variable["name"].as_str(), variable["value"].as_str()) {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        let mut mounts = vec![(checkpoint.clone(), checkpoint, true)];
        let volumes = job.container["volumes"].as_array().cloned().unwrap_or_default();
        for point in job.container["mountPoints"].as_array().into_iter().flatten() {
            let volume = volumes.iter().find(|v| v["name"] == point["sourceVolume"]);
            if let (Some(source), Some(target)) =
                (volume.and_then(|v| v["host"]["sourcePath"].as_str()), point["containerPath"].as_str())
            {
                mounts.push((source.to_owned(), target.to_owned(), point["readOnly"] != json!(true)));
            }
        }
        // The definition's user over the image's, resolved in the image's files (the host's).
        let user = match job.container["user"].as_str().filter(|u| !u.is_empty()).or(launch.user.as_deref()) {
            Some(user) => {
                let root = launch.image_root.clone().unwrap_or_else(|| "/".into());
                match crate::limits::resolve_user(user, &root) {
                    Ok(ids) => ids,
                    Err(reason) => return Ending::failed_to_start(reason),
                }
            }
            None => None,
        };
        let ulimits = match crate::limits::ulimits_of(&job.container) {
            Ok(limits) => limits,
            Err(reason) => return Ending::failed_to_start(reason),
        };
        let exec = JobExec {
            program: launch.program,
            args: launch.args,
            env,
            vcpus: job.n.vcpus,
            memory_mib: job.n.memory,
            mounts,
            image_root: launch.image_root,
            cwd: launch.cwd,
            user,
            ulimits,
        };
        let mut terminated: Option<String> = None;
        let (process, mut ran, slurm_end) = if job.n.slurm.is_some() {
            let followed = match self.slurm_attempt(job, &exec).await {
                Ok(followed) => followed,
                Err(reason) => return Ending::failed_to_start(reason),
            };
            // STARTING while Slurm queues the job; TerminateJob meanwhile cancels it there.
            let mut started = followed.started;
            let ran = loop {
                tokio::select! {
                    began = &mut started => break began.is_ok(),
                    changed = stop.changed() => {
                        if changed.is_err() {
                            break (&mut started).await.is_ok();
                        }
                        if let Some(Stop::Terminate(reason)) = stop.borrow_and_update().clone() {
                            terminated = Some(reason);
                            (followed.process.signal)(9);
                        }
                    }
                }
            };
            (followed.process, ran, Some(followed.ended))
        } else {
            match self.capacity.exec(&instance, exec).await {
                Ok(process) => (process, true, None),
                Err(error) => return Ending::failed_to_start(format!("CannotStartContainerError: {error}")),
            }
        };
        // RUNNING, with the log stream.
        let prefix = job.container["logConfiguration"]["options"]["awslogs-stream-prefix"]
            .as_str()
            .map_or_else(|| job.n.definition_name.chars().take(200).collect::<String>(), str::to_owned);
        let group = job.container["logConfiguration"]["options"]["awslogs-group"]
            .as_str()
            .unwrap_or(LOG_GROUP)
            .to_owned();
        let stream = format!("{prefix}/default/{}", job.n.task_id.clone().unwrap_or_default());
        // Followed again after a restart: the attempt's clock started then.
        let started = job.n.attempt_started.filter(|_| job.status == "RUNNING").unwrap_or_else(|| self.now());
        if ran {
            let (me, id, stream) = (self.clone(), job.job_id.clone(), stream.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let _guard = me.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(Some(mut fresh)) = me.store.job(&id) {
                    if fresh.status == "STARTING" {
                        fresh.status = "RUNNING".into();
                        fresh.started_at = Some(started);
                        fresh.n.attempt_started = Some(started);
                        fresh.n.log_stream = Some(stream.clone());
                        fresh.container["logStreamName"] = json!(stream);
                        if me.store.save_jobs(&[&fresh]).is_ok() {
                            me.emit(&fresh);
                            // A main node running lets the other nodes start.
                            if fresh.is_node() {
                                me.wake();
                            }
                        }
                    }
                }
            })
            .await;
        }
        let region = job.n.region.clone();
        let logs = tokio::spawn(forward_logs(self.clone(), process.lines, region, group, stream));
        let timeout_at = job
            .timeout
            .as_ref()
            .and_then(|t| t["attemptDurationSeconds"].as_i64())
            .map(|s| started + s * 1000);
        let life =
            self.hosts.lock().unwrap_or_else(|p| p.into_inner()).get(&instance).map(|h| h.life.clone());
        let (mut exit, signal) = (process.exit, process.signal);
        let mut kill_at: Option<tokio::time::Instant> = None;
        let (mut host_gone, mut timed_out) = (false, false);
        ran &= terminated.is_none();
        let mut noticed = false;
        let clock = self.clock.clone();
        let outcome: Exit = loop {
            let timer = async {
                match timeout_at {
                    Some(at) if !timed_out && ran => nimbus_api::clock::sleep_until(&*clock, at).await,
                    _ => std::future::pending().await,
                }
            };
            let kill = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = &mut exit => break ended.unwrap_or(Exit { code: None, signal: Some(9), oom: false }),
                changed = stop.changed() => {
                    if changed.is_err() { continue; }
                    let now = stop.borrow_and_update().clone();
                    match now {
                        Some(Stop::Notice) => {
                            noticed = true;
                            signal(15);
                        }
                        Some(Stop::Terminate(reason)) => {
                            terminated = Some(reason);
                            signal(15);
                            kill_at.get_or_insert(tokio::time::Instant::now() + STOP_GRACE);
                        }
                        Some(Stop::HostGone) => {
                            host_gone = true;
                            signal(9);
                        }
                        None => {}
                    }
                }
                () = timer => {
                    timed_out = true;
                    signal(15);
                    kill_at.get_or_insert(tokio::time::Instant::now() + STOP_GRACE);
                }
                () = kill => { signal(9); kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600)); }
            }
        };
        // Killed from outside: the instance ending takes its processes with it.
        if !host_gone && outcome.signal == Some(9) && terminated.is_none() && !timed_out {
            if let Some(mut life) = life {
                let gone = tokio::time::timeout(
                    Duration::from_secs(2),
                    life.wait_for(|s| matches!(s, HostState::Ended(_))),
                )
                .await;
                host_gone = matches!(gone, Ok(Ok(_)));
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
        let code = outcome.code.or(outcome.signal.map(|s| 128 + s));
        // Ended after the interruption notice (its SIGTERM): the instance's going is the cause.
        if noticed && code != Some(0) && terminated.is_none() && !timed_out {
            host_gone = true;
        }
        let slurm_end = slurm_end.and_then(|end| end.lock().unwrap_or_else(|p| p.into_inner()).clone());
        if let (Some(state), None, false) = (&slurm_end, &terminated, timed_out) {
            let id = job.n.slurm.as_ref().and_then(|s| s.id).unwrap_or_default();
            match state.as_str() {
                "TIMEOUT" => timed_out = true,
                "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" | "GONE" | "REVOKED" | "DEADLINE" => {
                    let why = if state == "GONE" {
                        "no longer known to the cluster".to_owned()
                    } else {
                        state.clone()
                    };
                    return Ending {
                        exit: None,
                        reason: Some(format!("Slurm job {id}: {why}")),
                        status_reason: format!("Slurm job {id} ended without an exit code ({why})"),
                        retry: true,
                    };
                }
                _ => {}
            }
        }
        if host_gone {
            return Ending {
                exit: None,
                reason: None,
                status_reason: format!("Host EC2 (instance {instance}) terminated."),
                retry: true,
            };
        }
        if let Some(reason) = terminated {
            return Ending { exit: code, reason: None, status_reason: reason, retry: false };
        }
        if timed_out {
            return Ending {
                exit: code,
                reason: None,
                status_reason: "Job attempt duration exceeded timeout".into(),
                retry: false,
            };
        }
        let reason = outcome.oom.then(|| "OutOfMemoryError: Container killed due to memory usage".to_owned());
        Ending {
            exit: if outcome.oom { Some(137) } else { code },
            reason,
            status_reason: "Essential container in task exited".into(),
            retry: true,
        }
    }

    /// Records an ended attempt and decides: SUCCEEDED, RUNNABLE again (retry), or FAILED.
    pub(crate) fn end_attempt(&self, mut job: Job, ending: Ending) -> Result<(), AwsError> {
        let now = self.now();
        let mut container = json!({});
        for key in ["taskArn", "containerInstanceArn", "logStreamName"] {
            if let Some(value) = job.container.get(key) {
                container[key] = value.clone();
            }
        }
        if let Some(code) = ending.exit {
            container["exitCode"] = json!(code);
        }
        if let Some(reason) = &ending.reason {
            container["reason"] = json!(reason);
        }
        job.attempts.push(json!({
            "container": container,
            "startedAt": job.n.attempt_started.unwrap_or(now),
            "stoppedAt": now,
            "statusReason": ending.status_reason,
        }));
        if let Some(map) = job.container.as_object_mut() {
            map.remove("exitCode");
            map.remove("reason");
        }
        if let Some(code) = ending.exit {
            job.container["exitCode"] = json!(code);
        }
        if let Some(reason) = &ending.reason {
            job.container["reason"] = json!(reason);
        }
        let stopping = job.n.stopping.take();
        job.n.slurm = None;
        job.n.instance = None;
        job.n.attempt_started = None;
        if let Some(reason) = stopping {
            job.is_terminated = true;
            return self.finish(&mut job, "FAILED", &reason);
        }
        if ending.exit == Some(0) && ending.status_reason == "Essential container in task exited" {
            return self.finish(&mut job, "SUCCEEDED", &ending.status_reason);
        }
        let retry = ending.retry
            && crate::retry::should_retry(
                job.retry_strategy.as_ref(),
                ending.exit,
                ending.reason.as_deref(),
                &ending.status_reason,
                job.n.attempt,
            );
        if retry {
            job.status = "RUNNABLE".into();
            job.n.runnable_since = Some(self.now());
            job.status_reason = Some(ending.status_reason);
            self.store.save_jobs(&[&job])?;
            self.emit(&job);
            return Ok(());
        }
        self.finish(&mut job, "FAILED", &ending.status_reason)
    }
}

/// nimbus has neither Secrets Manager nor SSM Parameter Store: a job whose definition asks for
/// `secrets` fails to start as ECS words a secret it cannot retrieve, never runs without them.
pub(crate) fn unpullable_secret(container: &Value) -> Option<String> {
    let secret = container["secrets"].as_array()?.first()?;
    let from = secret["valueFrom"].as_str().unwrap_or_default();
    let (short, service) = if from.starts_with("arn:") && from.split(':').nth(2) == Some("secretsmanager") {
        ("asm", "AWS Secrets Manager")
    } else {
        ("ssm", "AWS Systems Manager Parameter Store")
    };
    Some(format!(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from {short}: nimbus does not implement {service}, so secret {} ({from}) cannot be injected",
        secret["name"].as_str().unwrap_or_default()
    ))
}

/// Output lines to the job's log stream, in batches.
async fn forward_logs(
    batch: Arc<Batch>,
    mut lines: tokio::sync::mpsc::Receiver<String>,
    region: String,
    group: String,
    stream: String,
) {
    loop {
        let Some(first) = lines.recv().await else { return };
        let now = batch.now();
        let mut events = vec![(now, first)];
        while events.len() < 1000 {
            match lines.try_recv() {
                Ok(line) => events.push((now, line)),
                Err(_) => break,
            }
        }
        let (batch, region, group, stream) = (batch.clone(), region.clone(), group.clone(), stream.clone());
        let _ = tokio::task::spawn_blocking(move || batch.logs.write(&region, &group, &stream, events)).await;
    }
}
