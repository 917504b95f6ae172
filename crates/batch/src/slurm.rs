//! Jobs on a Slurm cluster: an UNMANAGED compute environment tagged `nimbus:slurm-partition`
//! (or every UNMANAGED one under `nimbus up --slurm partition=…`) hands its jobs to Slurm. Each
//! attempt is one Slurm batch job submitted with `sbatch` (a script exporting the job's
//! variables and `exec`ing its command, so Slurm's exit code is the command's); one poller runs
//! `squeue` for every job followed, `scontrol show job` (then `sacct`) tells how one ended,
//! `scancel` stops one. The Slurm job id is stored with the Batch job before anything else, so
//! an attempt survives nimbus's restart: the next start follows the same Slurm job on.
//!
//! The command-line tools, not `slurmrestd`: they are on every Slurm submit host, authenticate
//! with munge as the cluster already does, and need no JWT key or REST daemon configured.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::{Exit, JobExec, JobProcess};

/// The compute environment's tag binding it to a Slurm partition (an empty value: the
/// cluster's default partition).
pub const TAG: &str = "nimbus:slurm-partition";
/// What a Slurm attempt's `instance` reads.
pub(crate) const INSTANCE: &str = "slurm";
/// Between two `squeue` calls.
const POLL: Duration = Duration::from_millis(250);
/// Slurm commands at once.
const COMMANDS: usize = 8;

/// How nimbus reaches the cluster (`nimbus up --slurm partition=P,conf=PATH,spool=DIR`).
#[derive(Debug, Clone, Default)]
pub struct SlurmSettings {
    /// The partition of UNMANAGED compute environments without the tag (None: only tagged ones
    /// run on Slurm).
    pub partition: Option<String>,
    /// `SLURM_CONF` for the commands (None: theirs).
    pub conf: Option<PathBuf>,
    /// Where jobs' scripts and output go: a file system the compute nodes share (None: under
    /// Batch's data directory).
    pub spool: Option<PathBuf>,
}

/// A Batch attempt's Slurm job, stored with the Batch job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlurmRef {
    pub partition: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub output: Option<PathBuf>,
}

/// The partition a compute environment runs its jobs on, when it is bound to Slurm.
pub(crate) fn partition_of(ce: &Value, settings: &SlurmSettings) -> Option<String> {
    if ce["type"] != "UNMANAGED" {
        return None;
    }
    match ce["tags"][TAG].as_str() {
        Some(partition) => Some(partition.to_owned()),
        None => settings.partition.clone(),
    }
}

impl crate::Batch {
    /// The Slurm partition a compute environment's jobs go to, when it is bound to Slurm.
    pub(crate) fn slurm_partition(&self, ce: &Value) -> Option<String> {
        partition_of(ce, self.slurm.settings())
    }

    /// The attempt's Slurm job: submitted now (its id stored with the job before anything
    /// else), or the one submitted before nimbus restarted.
    pub(crate) async fn slurm_attempt(
        self: &Arc<Self>,
        job: &crate::model::Job,
        exec: &JobExec,
    ) -> Result<Followed, String> {
        let mut reference = job.n.slurm.clone().unwrap_or_default();
        if let (Some(id), Some(output)) = (reference.id, reference.output.clone()) {
            return Ok(self.slurm.follow(id, output));
        }
        // Submitted before nimbus stopped, its id not stored yet: found by its comment.
        let found = match &reference.output {
            Some(output) => self.slurm.find(output).await,
            None => None,
        };
        let (id, output) = match (found, reference.output.clone()) {
            (Some(id), Some(output)) => (id, output),
            _ => {
                // Where its output goes is stored first, so that a restart finds the job.
                let output = self
                    .slurm
                    .output_for(&job.job_id)
                    .map_err(|why| format!("CannotStartContainerError: {why}"))?;
                reference.output = Some(output.clone());
                if !self.store_slurm(job, reference.clone()).await {
                    return Err(
                        "CannotStartContainerError: the job changed while it was being submitted".into()
                    );
                }
                let timeout = job.timeout.as_ref().and_then(|t| t["attemptDurationSeconds"].as_i64());
                let id = self
                    .slurm
                    .submit(&reference.partition, &job.job_name, &output, exec, timeout)
                    .await
                    .map_err(|why| format!("CannotStartContainerError: sbatch: {why}"))?;
                (id, output)
            }
        };
        reference.id = Some(id);
        let stored = self.store_slurm(job, reference).await;
        let followed = self.slurm.follow(id, output);
        if !stored {
            (followed.process.signal)(9);
        }
        Ok(followed)
    }

    /// Stores the attempt's Slurm job with the Batch job, if it is still started.
    async fn store_slurm(self: &Arc<Self>, job: &crate::model::Job, reference: SlurmRef) -> bool {
        let (me, key) = (self.clone(), job.job_id.clone());
        let stored = tokio::task::spawn_blocking(move || {
            let _guard = me.jobs_lock.lock().unwrap_or_else(|p| p.into_inner());
            match me.store.job(&key)? {
                Some(mut fresh) if matches!(fresh.status.as_str(), "STARTING" | "RUNNING") => {
                    fresh.n.slurm = Some(reference);
                    me.store.save_jobs(&[&fresh])
                }
                _ => Err(crate::client("the job is no longer started")),
            }
        })
        .await;
        matches!(stored, Ok(Ok(())))
    }
}

/// An attempt's Slurm job, followed.
pub(crate) struct Followed {
    pub process: JobProcess,
    /// Fires when Slurm runs the job (dropped unfired when it ends first).
    pub started: oneshot::Receiver<()>,
    /// Slurm's last state of the job once it ended (`COMPLETED`, `NODE_FAIL`, `GONE` …).
    pub ended: Arc<Mutex<Option<String>>>,
}

pub(crate) struct Slurm {
    settings: SlurmSettings,
    spool: PathBuf,
    /// Jobs followed, with their last state seen by `squeue` (None: not seen yet).
    states: Mutex<HashMap<u64, Option<String>>>,
    poller: Mutex<bool>,
    /// Each poll's number: followers wake when it moves.
    polled: watch::Sender<u64>,
    commands: Semaphore,
}

impl Slurm {
    pub(crate) fn new(settings: SlurmSettings, data_dir: &Path) -> Slurm {
        let spool = settings.spool.clone().unwrap_or_else(|| data_dir.join("slurm"));
        Slurm {
            settings,
            spool,
            states: Mutex::new(HashMap::new()),
            poller: Mutex::new(false),
            polled: watch::channel(0).0,
            commands: Semaphore::new(COMMANDS),
        }
    }

    pub(crate) fn settings(&self) -> &SlurmSettings {
        &self.settings
    }

    async fn command(&self, program: &str, args: &[String]) -> Result<String, String> {
        let _permit = self.commands.acquire().await.map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(program);
        command.args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
        if let Some(conf) = &self.settings.conf {
            command.env("SLURM_CONF", conf);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .map_err(|_| format!("{program} did not answer within 60 s"))?
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(if text.is_empty() { format!("{program} failed ({})", output.status) } else { text });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A fresh output file for an attempt of job `key` (its script beside it).
    pub(crate) fn output_for(&self, key: &str) -> Result<PathBuf, String> {
        let dir = self.spool.join(key.replace([':', '/'], "-"));
        // Slurm writes the output as the job's user (its definition's `user`, or nimbus's).
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            })
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir.join(format!("{}.log", uuid::Uuid::new_v4().simple())))
    }

    /// The Slurm job submitted with `output` (by the comment naming it), if the cluster has it.
    pub(crate) async fn find(&self, output: &Path) -> Option<u64> {
        let comment = comment_of(output);
        let args = ["-h", "-t", "all", "-o", "%A|%k"].map(str::to_owned);
        let listed = self.command("squeue", &args).await.ok()?;
        listed.lines().find_map(|l| {
            let (id, k) = l.trim().split_once('|')?;
            (k == comment).then(|| id.parse().ok()).flatten()
        })
    }

    /// Submits an attempt whose output goes to `output`: its script (the job's variables, then
    /// `exec` of its command) and Slurm's options from the job's vCPUs, memory and timeout.
    pub(crate) async fn submit(
        &self,
        partition: &str,
        name: &str,
        output: &Path,
        exec: &JobExec,
        timeout_seconds: Option<i64>,
    ) -> Result<u64, String> {
        let script = output.with_extension("sh");
        std::fs::write(&script, script_of(exec)).map_err(|e| format!("{}: {e}", script.display()))?;
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", name.chars().take(128).collect::<String>()),
            format!("--output={}", output.display()),
            format!("--error={}", output.display()),
            "--export=NONE".into(),
            "--no-requeue".into(),
            format!("--chdir={}", exec.cwd.as_deref().unwrap_or("/")),
            format!("--cpus-per-task={}", exec.vcpus.ceil().max(1.0) as u64),
            format!("--comment={}", comment_of(output)),
        ];
        if let Some((uid, gid)) = exec.user {
            // Root's privilege (nimbus submits as root): the job runs as its definition's user.
            args.push(format!("--uid={uid}"));
            args.push(format!("--gid={gid}"));
        }
        if exec.memory_mib > 0 {
            args.push(format!("--mem={}M", exec.memory_mib));
        }
        if let Some(seconds) = timeout_seconds {
            // A backstop: nimbus stops the attempt at the second; Slurm counts minutes.
            args.push(format!("--time={}", (seconds + 59) / 60 + 1));
        }
        if !partition.is_empty() {
            args.push(format!("--partition={partition}"));
        }
        args.push(script.to_string_lossy().into_owned());
        let out = self.command("sbatch", &args).await?;
        let id = out.trim().split(';').next().unwrap_or_default();
        id.parse().map_err(|_| format!("sbatch answered {out:?}, not a job id"))
    }

    /// Follows Slurm job `id` (just submitted, or found again after a restart): its output from
    /// where it was last read, its start, its end.
    pub(crate) fn follow(self: &Arc<Self>, id: u64, output: PathBuf) -> Followed {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_insert(None);
        self.start_poller();
        let (lines_tx, lines) = mpsc::channel(1024);
        let (exit_tx, exit) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        let ended = Arc::new(Mutex::new(None));
        tokio::spawn(self.clone().watch(id, output, lines_tx, started_tx, exit_tx, ended.clone()));
        let me = self.clone();
        let signal = Box::new(move |_signal: i32| {
            let me = me.clone();
            tokio::spawn(async move {
                // Any stop cancels the job: Slurm's own SIGTERM, then SIGKILL after its
                // `KillWait` (`scancel --signal=TERM` does not reliably reach a batch step's
                // children: a shell's child outlived it in the tests).
                if let Err(error) = me.command("scancel", &[id.to_string()]).await {
                    eprintln!("nimbus: batch: scancel {id}: {error}");
                }
            });
        });
        Followed { process: JobProcess { lines, exit, signal }, started, ended }
    }

    fn start_poller(self: &Arc<Self>) {
        let mut running = self.poller.lock().unwrap_or_else(|p| p.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(poll(Arc::downgrade(self)));
        }
    }

    fn state(&self, id: u64) -> Option<String> {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned().flatten()
    }

    async fn watch(
        self: Arc<Self>,
        id: u64,
        output: PathBuf,
        lines: mpsc::Sender<String>,
        started: oneshot::Sender<()>,
        exit: oneshot::Sender<Exit>,
        ended: Arc<Mutex<Option<String>>>,
    ) {
        let mut started = Some(started);
        let mut tail = Tail::open(output);
        let mut polls = self.polled.subscribe();
        loop {
            let _ = tokio::time::timeout(Duration::from_secs(2), polls.changed()).await;
            tail.read(&lines).await;
            let state = self.state(id);
            let Some(state) = state else { continue };
            if matches!(state.as_str(), "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED")
                || is_final(&state)
            {
                if let Some(started) = started.take() {
                    if state != "GONE" && !state.starts_with("CANCELLED") || state == "COMPLETING" {
                        let _ = started.send(());
                    }
                }
            }
            if !is_final(&state) {
                continue;
            }
            let (final_state, outcome) = self.outcome(id, &state).await;
            tail.read(&lines).await;
            tail.finish(&lines).await;
            self.states.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            *ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(final_state);
            let _ = exit.send(outcome);
            return;
        }
    }

    /// How job `id` ended: `scontrol show job` while slurmctld remembers it, else `sacct`.
    async fn outcome(&self, id: u64, seen: &str) -> (String, Exit) {
        let shown =
            self.command("scontrol", &["show".into(), "job".into(), "-o".into(), id.to_string()]).await;
        let fields: HashMap<String, String> = match shown {
            Ok(text) => text
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(_) => {
                let args =
                    ["-n", "-P", "-X", "-o", "State,ExitCode", "-j", &id.to_string()].map(str::to_owned);
                match self.command("sacct", &args).await {
                    Ok(text) => text
                        .lines()
                        .next()
                        .and_then(|l| l.split_once('|'))
                        .map(|(state, code)| {
                            HashMap::from([
                                ("JobState".into(), state.into()),
                                ("ExitCode".into(), code.into()),
                            ])
                        })
                        .unwrap_or_default(),
                    Err(_) => HashMap::new(),
                }
            }
        };
        let state = fields
            .get("JobState")
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| seen.to_owned());
        let (code, signal) = fields
            .get("ExitCode")
            .and_then(|c| c.split_once(':'))
            .map(|(c, s)| (c.parse::<i32>().ok(), s.parse::<i32>().ok().filter(|s| *s > 0)))
            .unwrap_or((None, None));
        let exit = match (state.as_str(), signal) {
            (_, Some(signal)) => Exit { code: None, signal: Some(signal), oom: false },
            ("OUT_OF_MEMORY", _) => Exit { code: Some(137), signal: None, oom: true },
            ("CANCELLED", _) if code.unwrap_or(0) == 0 => Exit { code: None, signal: Some(9), oom: false },
            _ => Exit { code, signal: None, oom: false },
        };
        (state, exit)
    }
}

/// The comment an attempt's Slurm job carries: its output file's name, unique per attempt.
fn comment_of(output: &Path) -> String {
    format!("nimbus-batch-{}", output.file_stem().unwrap_or_default().to_string_lossy())
}

/// Slurm states after which the job does not run again (`GONE`: no longer known).
fn is_final(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "REVOKED"
            | "GONE"
    )
}

/// One `squeue` for every job followed, while any is.
async fn poll(slurm: std::sync::Weak<Slurm>) {
    let mut missing: HashMap<u64, u32> = HashMap::new();
    loop {
        tokio::time::sleep(POLL).await;
        let Some(me) = slurm.upgrade() else { return };
        let wanted: HashSet<u64> =
            me.states.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        if wanted.is_empty() {
            *me.poller.lock().unwrap_or_else(|p| p.into_inner()) = false;
            // A job followed meanwhile started no poller: look once more.
            if me.states.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                return;
            }
            *me.poller.lock().unwrap_or_else(|p| p.into_inner()) = true;
            continue;
        }
        let args = ["-h", "-t", "all", "-o", "%A|%T"].map(str::to_owned);
        let listed = match me.command("squeue", &args).await {
            Ok(text) => text,
            Err(error) => {
                eprintln!("nimbus: batch: squeue: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let seen: HashMap<u64, String> = listed
            .lines()
            .filter_map(|l| l.trim().split_once('|'))
            .filter_map(|(id, state)| Some((id.parse().ok()?, state.to_owned())))
            .filter(|(id, _)| wanted.contains(id))
            .collect();
        {
            let mut states = me.states.lock().unwrap_or_else(|p| p.into_inner());
            for id in &wanted {
                let Some(entry) = states.get_mut(id) else { continue };
                match seen.get(id) {
                    Some(state) => {
                        missing.remove(id);
                        *entry = Some(state.clone());
                    }
                    // Absent from three polls in a row: slurmctld no longer holds it.
                    None => {
                        let n = missing.entry(*id).or_default();
                        *n += 1;
                        if *n >= 3 {
                            *entry = Some("GONE".into());
                            missing.remove(id);
                        }
                    }
                }
            }
        }
        me.polled.send_modify(|n| *n += 1);
    }
}

/// The script Slurm runs: the job's variables, then its command in its place.
fn script_of(exec: &JobExec) -> String {
    let mut script = String::from("#!/bin/sh\n");
    for (name, value) in &exec.env {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            script.push_str(&format!("export {name}={}\n", quote(value)));
        }
    }
    if !exec.env.iter().any(|(n, _)| n == "PATH") {
        script.push_str(&format!("export PATH={}\n", quote(crate::image::PATH)));
    }
    script.push_str("exec");
    // The definition's ulimits, as ECS names them (prlimit(1) takes the same names and units).
    if !exec.ulimits.is_empty() {
        script.push_str(" prlimit");
        for limit in &exec.ulimits {
            let value = |v: u64| if v == u64::MAX { "unlimited".to_owned() } else { v.to_string() };
            script.push_str(&format!(" --{}={}:{}", limit.name, value(limit.soft), value(limit.hard)));
        }
        script.push_str(" --");
    }
    for word in std::iter::once(&exec.program).chain(&exec.args) {
        script.push(' ');
        script.push_str(&quote(word));
    }
    script.push('\n');
    script
}

/// A word for sh, single-quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A job's output file, read as it grows; how far it was read is kept beside it (`.sent`), so
/// that a restart of nimbus forwards what is new only.
struct Tail {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

impl Tail {
    fn open(path: PathBuf) -> Tail {
        let offset = std::fs::read_to_string(path.with_extension("sent"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Tail { path, offset, pending: Vec::new() }
    }

    async fn read(&mut self, lines: &mpsc::Sender<String>) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        if file.take(4 << 20).read_to_end(&mut fresh).is_err() || fresh.is_empty() {
            return;
        }
        self.offset += fresh.len() as u64;
        self.pending.extend_from_slice(&fresh);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let _ = lines.send(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()).await;
        }
        let kept = self.offset - self.pending.len() as u64;
        let _ = std::fs::write(self.path.with_extension("sent"), kept.to_string());
    }

    async fn finish(&mut self, lines: &mpsc::Sender<String>) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            let _ = lines.send(String::from_utf8_lossy(&line).into_owned()).await;
            let _ = std::fs::write(self.path.with_extension("sent"), self.offset.to_string());
        }
    }
}

#[cfg(test)]
#[path = "slurm_tests.rs"]
mod tests;
