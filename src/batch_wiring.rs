//! Batch's place in nimbus: opened lazily (or at start when it holds unfinished work), its
//! capacity EC2's instances, its jobs' output CloudWatch Logs, its state changes EventBridge
//! events; with several nodes, the scheduler's lease and the wake-ups between nodes.

use std::sync::Arc;

use nimbus_api::clock::Clock;
use nimbus_api::Protocol;
use nimbus_eventbridge::EventBridge;
use nimbus_store::{Cluster, Database};
use serde_json::Value;

use crate::lazy::{self, Lazy};
use crate::logs_home;

/// Batch, opened by its first request (or at start when it holds unfinished work), placing jobs
/// on EC2's instances. With several nodes the one holding the `batch` lease schedules; the
/// others wake it when they accept a job.
#[allow(clippy::too_many_arguments)]
pub fn service(
    args: &crate::UpArgs,
    database: &Database,
    cluster: Option<&Arc<Cluster>>,
    clock: Arc<dyn Clock>,
    ec2: &Arc<lazy::Lazy<nimbus_ec2::Ec2>>,
    log_sink: &Arc<logs_home::LogsSink>,
    events: &Arc<crate::regional::Regional<EventBridge>>,
    ecr: &Arc<crate::ecr_accounts::Registries>,
) -> Arc<lazy::Lazy<nimbus_batch::Batch>> {
    let capacity: Arc<dyn nimbus_batch::Capacity> =
        Arc::new(BatchCapacity { ec2: ec2.clone(), clock: clock.clone() });
    let logs: Arc<dyn nimbus_batch::JobLogs> =
        Arc::new(BatchLogs(log_sink.clone(), crate::identity_of(args)));
    let sink: Arc<dyn nimbus_batch::JobEvents> = Arc::new(BatchEvents { events: events.clone() });
    let leader = cluster.cloned().map(|cluster| {
        let expiry = cluster.expiry();
        Arc::new(move || cluster.try_lease("batch", expiry).unwrap_or(false))
            as Arc<dyn Fn() -> bool + Send + Sync>
    });
    let announce = cluster
        .cloned()
        .map(|cluster| Arc::new(move || cluster.notify("batch")) as Arc<dyn Fn() + Send + Sync>);
    let options = nimbus_batch::Options {
        data_dir: args.data_dir.canonicalize().unwrap_or_else(|_| args.data_dir.clone()).join("batch"),
        idle_seconds: args.batch_idle_seconds,
        leader,
        lease_ms: cluster.map_or(0, |cluster| cluster.expiry().as_millis() as i64),
        announce,
        images: Some(Arc::new(BatchImages(ecr.clone())) as Arc<dyn nimbus_batch::JobImages>),
        // Checked at start (`slurm_settings` in main).
        slurm: slurm_settings(args.slurm.as_deref()).unwrap_or_default(),
    };
    let (database, identity) = (database.clone(), crate::identity_of(args));
    let batch = lazy::Lazy::with_paths("batch", Protocol::RestJson, nimbus_batch::ADMIN_PREFIX, move || {
        nimbus_batch::Batch::open(
            &database,
            identity.clone(),
            clock.clone(),
            capacity.clone(),
            logs.clone(),
            sink.clone(),
            options.clone(),
        )
    });
    if let Some(cluster) = cluster {
        let mut changes = cluster.subscribe();
        let woken = batch.clone();
        tokio::spawn(async move {
            loop {
                let announced = match changes.recv().await {
                    Ok(topic) if topic == "batch" => true,
                    Ok(topic) if topic == "*" => false,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => false,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                match woken.opened() {
                    Some(batch) => batch.wake(),
                    // Jobs exist somewhere: this node opens Batch too, so that it can take the
                    // scheduler over should the node holding it stop.
                    None if announced => {
                        if let Err(error) = woken.get().await {
                            eprintln!("nimbus: cannot open Batch: {error}");
                        }
                    }
                    None => {}
                }
            }
        });
    }
    batch
}

/// `--slurm partition=NAME,conf=PATH,spool=DIR`: the Slurm cluster UNMANAGED compute
/// environments run their jobs on (each part optional; `--slurm default` alone enables it with the
/// cluster's default partition).
pub fn slurm_settings(arg: Option<&str>) -> anyhow::Result<nimbus_batch::SlurmSettings> {
    use anyhow::Context;
    let mut settings = nimbus_batch::SlurmSettings::default();
    let Some(arg) = arg else { return Ok(settings) };
    settings.partition = Some(String::new());
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "default") {
        let (key, value) =
            part.split_once('=').context("--slurm takes partition=NAME,conf=PATH,spool=DIR")?;
        match key.trim() {
            "partition" => settings.partition = Some(value.trim().to_owned()),
            "conf" => settings.conf = Some(value.trim().into()),
            "spool" => settings.spool = Some(value.trim().into()),
            other => anyhow::bail!("--slurm knows partition, conf and spool, not {other}"),
        }
    }
    Ok(settings)
}

/// Batch's capacity is EC2's: instance types from its catalog, instances launched and
/// followed through its Rust API, a job's process started inside its instance with the job's
/// own limits (scaled as the instance is).
pub struct BatchCapacity {
    pub ec2: Arc<Lazy<nimbus_ec2::Ec2>>,
    pub clock: Arc<dyn nimbus_api::clock::Clock>,
}

/// A multi-node parallel job's network: its instances' own network namespaces joined by a
/// switch of their own (`nimbus_sandbox::Switch`), each at its EC2 private address within the
/// VPC's /16. Instances that run plain processes share the host's network: there the nodes
/// reach each other on the host's loopback.
struct NodeSwitch {
    ec2: Arc<nimbus_ec2::Ec2>,
    switch: std::sync::OnceLock<nimbus_sandbox::Switch>,
}

impl nimbus_batch::NodeNetwork for NodeSwitch {
    fn join(&self, instance_id: &str) -> Result<String, String> {
        let (netns, address) = self
            .ec2
            .network_of(instance_id)
            .ok_or_else(|| format!("instance {instance_id} is not running"))?;
        let Some(netns) = netns else { return Ok("127.0.0.1".into()) };
        let switch = match self.switch.get() {
            Some(switch) => switch,
            None => {
                let made = nimbus_sandbox::Switch::new().map_err(|e| e.to_string())?;
                self.switch.get_or_init(|| made)
            }
        };
        switch.join(&netns, &format!("{address}/16")).map_err(|e| e.to_string())?;
        Ok(address)
    }
}

fn host_state(lifecycle: &nimbus_ec2::Lifecycle) -> nimbus_batch::HostState {
    match lifecycle {
        nimbus_ec2::Lifecycle::Pending => nimbus_batch::HostState::Pending,
        nimbus_ec2::Lifecycle::Running => nimbus_batch::HostState::Running,
        nimbus_ec2::Lifecycle::Interrupting { .. } => nimbus_batch::HostState::Interrupting,
        nimbus_ec2::Lifecycle::Ended { reason, .. } => nimbus_batch::HostState::Ended(reason.clone()),
    }
}

impl nimbus_batch::Capacity for BatchCapacity {
    fn catalog(&self) -> Vec<nimbus_batch::HostType> {
        let now = self.clock.now_ms();
        nimbus_ec2::Catalog::get()
            .types
            .iter()
            .filter_map(|t| {
                Some(nimbus_batch::HostType {
                    name: t.name.clone(),
                    family: t.family().to_owned(),
                    vcpus: t.vcpus,
                    memory_mib: t.memory_mib,
                    arch: t.arch().to_owned(),
                    price: t.price?,
                    spot_price: t
                        .spot_supported()
                        .then(|| nimbus_ec2::spot_price(t, "us-east-1a", now))
                        .flatten(),
                    bare_metal: t.bare_metal,
                })
            })
            .collect()
    }

    fn launch(&self, request: &nimbus_batch::HostRequest) -> Result<nimbus_batch::Host, String> {
        let ec2 = self.ec2.get_blocking()?;
        let launched = ec2
            .launch(nimbus_ec2::Capacity {
                instance_type: Some(request.instance_type.clone()),
                spot: request.spot,
                tags: request.tags.clone(),
                region: Some(request.region.clone()),
                ..Default::default()
            })
            .map_err(|e| format!("{}: {}", e.code, e.message))?;
        let mut lifecycle = launched.lifecycle;
        let (sender, state) = tokio::sync::watch::channel(host_state(&lifecycle.borrow()));
        tokio::spawn(async move {
            loop {
                let now = host_state(&lifecycle.borrow_and_update());
                let ended = matches!(now, nimbus_batch::HostState::Ended(_));
                sender.send_replace(now);
                if ended || lifecycle.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(nimbus_batch::Host { instance_id: launched.instance_id, state })
    }

    fn exec<'a>(&'a self, instance_id: &'a str, exec: nimbus_batch::JobExec) -> nimbus_batch::ExecFuture<'a> {
        Box::pin(async move {
            let ec2 = self.ec2.get().await?;
            let scale = ec2.scale();
            let mounts = exec
                .mounts
                .into_iter()
                .map(|(source, target, writable)| nimbus_sandbox::Mount {
                    source: source.into(),
                    target: target.into(),
                    writable,
                })
                .collect();
            let process = ec2
                .exec(
                    instance_id,
                    nimbus_ec2::Exec {
                        program: exec.program.into(),
                        args: exec.args,
                        env: exec.env,
                        memory_mib: Some(((exec.memory_mib as f64) / scale).ceil() as u64),
                        cpu_millis: Some(((exec.vcpus * 1000.0) / scale).round() as u64),
                        mounts,
                        image_root: exec.image_root,
                        cwd: exec.cwd.map(Into::into),
                        user: exec.user,
                        rlimits: exec
                            .ulimits
                            .iter()
                            .map(|u| Ok((rlimit_of(&u.name)?, u.soft, u.hard)))
                            .collect::<Result<_, String>>()?,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let (lines_tx, lines) = tokio::sync::mpsc::channel(1024);
            for stream in [process.stdout, process.stderr] {
                tokio::spawn(read_lines(stream, lines_tx.clone()));
            }
            let (exit_tx, exit) = tokio::sync::oneshot::channel();
            let child = process.child;
            let waiting = child.clone();
            tokio::spawn(async move {
                use std::os::unix::process::ExitStatusExt;
                let status = waiting.wait().await;
                let oom = waiting.oom_killed();
                waiting.kill();
                waiting.release();
                let exit = match status {
                    Ok(status) => nimbus_batch::Exit { code: status.code(), signal: status.signal(), oom },
                    Err(_) => nimbus_batch::Exit { code: None, signal: Some(9), oom },
                };
                let _ = exit_tx.send(exit);
            });
            let signal = Box::new(move |signal: i32| {
                if signal == libc::SIGKILL {
                    child.kill();
                } else {
                    // SAFETY: kill(2) on the job's own process id; no memory is touched.
                    unsafe {
                        libc::kill(child.pid as i32, signal);
                    }
                }
            });
            Ok(nimbus_batch::JobProcess { lines, exit, signal })
        })
    }

    fn node_network(&self) -> Result<Box<dyn nimbus_batch::NodeNetwork>, String> {
        let ec2 = self.ec2.get_blocking()?;
        Ok(Box::new(NodeSwitch { ec2, switch: std::sync::OnceLock::new() }))
    }

    fn terminate(&self, instance_id: &str) {
        let ec2 = match self.ec2.get_blocking() {
            Ok(ec2) => ec2,
            Err(_) => return,
        };
        if let Err(error) = ec2.terminate(instance_id) {
            if error.code != "InvalidInstanceID.NotFound" {
                eprintln!("nimbus: batch: cannot terminate {instance_id}: {}", error.message);
            }
        }
    }
}

/// The `RLIMIT_*` resource of a ulimit as ECS names it.
fn rlimit_of(name: &str) -> Result<i32, String> {
    Ok(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        other => return Err(format!("unknown ulimit {other}")),
    } as i32)
}

/// Jobs' container images come from ECR's image store (what is pushed to nimbus's registry or
/// imported), unpacked once and shared.
pub struct BatchImages(pub Arc<crate::ecr_accounts::Registries>);

impl nimbus_batch::JobImages for BatchImages {
    fn resolve(&self, image: &str, arch: &str) -> Result<nimbus_batch::JobImage, String> {
        let ecr = self.0.for_image(image)?;
        let root = ecr.images().root_for(image, arch).map_err(|e| e.to_string())?;
        let config = root.config.clone();
        Ok(nimbus_batch::JobImage {
            root: root.rootfs.clone(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            workdir: config.working_dir,
            user: config.user.filter(|u| !u.is_empty()),
            hold: Box::new(root),
        })
    }
}

/// Batch jobs' output goes to CloudWatch Logs like functions' output: the job's region's (and
/// `--account`'s, Batch's).
pub struct BatchLogs(pub Arc<crate::logs_home::LogsSink>, pub nimbus_api::Identity);

impl nimbus_batch::JobLogs for BatchLogs {
    fn write(&self, region: &str, group: &str, stream: &str, events: Vec<(i64, String)>) {
        use nimbus_functions::telemetry::{LogEvent, LogSink};
        let events =
            events.into_iter().map(|(timestamp_ms, message)| LogEvent { timestamp_ms, message }).collect();
        match region == self.1.region || region.is_empty() {
            true => self.0.append(group, stream, events),
            false => self.0.scoped(region, &self.1.account).append(group, stream, events),
        }
    }
}

/// "Batch Job State Change" events on the default bus of the job's region (source `aws.batch`).
pub struct BatchEvents {
    pub events: Arc<crate::regional::Regional<nimbus_eventbridge::EventBridge>>,
}

impl nimbus_batch::JobEvents for BatchEvents {
    fn put(&self, detail_type: &str, resources: Vec<String>, detail: Value) {
        let put = self
            .events
            .for_arn(resources.first().map_or("", String::as_str))
            .and_then(|events| events.get_blocking())
            .and_then(|events| events.put_event("default", "aws.batch", detail_type, detail, resources));
        if let Err(error) = put {
            eprintln!("nimbus: batch: event {detail_type} not delivered to EventBridge: {error}");
        }
    }
}

/// A CloudWatch Logs event holds at most 256 KiB with its 26 bytes of overhead: longer lines
/// are cut there.
const MAX_LINE: usize = 256 * 1024 - 26;

/// A job's output as lines (bytes that are not UTF-8 replaced, long lines cut), read to the end
/// whatever it holds, so that the job never blocks on a full pipe.
async fn read_lines(mut stream: tokio::net::unix::pipe::Receiver, lines: tokio::sync::mpsc::Sender<String>) {
    use tokio::io::AsyncReadExt;
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        while let Some(end) =
            pending.iter().position(|b| *b == b'\n').or((pending.len() >= MAX_LINE).then_some(MAX_LINE))
        {
            let line: Vec<u8> = pending.drain(..end.min(pending.len())).collect();
            if pending.first() == Some(&b'\n') {
                pending.remove(0);
            }
            // A receiver gone (the attempt is over): keep draining, drop the text.
            let _ = lines.send(String::from_utf8_lossy(&line).into_owned()).await;
        }
    }
    if !pending.is_empty() {
        let _ = lines.send(String::from_utf8_lossy(&pending).into_owned()).await;
    }
}
