//! The processes of running instances. An instance boots as one long-lived sandboxed process
//! (its own PID namespace, cgroup with the type's memory, network namespace with nimbus's API
//! bound inside) whose first act is to run the user data; everything the user data starts lives
//! in that namespace and ends with the instance. Output goes to the console log that
//! `GetConsoleOutput` reads.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nimbus_sandbox::{
    Child, Filesystem, Isolation, Limits, Mount, Network, NetworkKey, Reach, Sandbox, Spare,
};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Serves nimbus's API on a listener inside an instance's network (the same hook Lambda uses).
pub type ApiAcceptor =
    Arc<std::sync::OnceLock<Box<dyn Fn(std::net::TcpListener) -> tokio::task::JoinHandle<()> + Send + Sync>>>;

/// Where the instance's own files (user data) appear inside it.
const CLOUD_DIR: &str = "/var/lib/cloud/instance";
/// The console log keeps at most this much (AWS returns the last 64 KiB).
const CONSOLE_BYTES: u64 = 64 * 1024;
const MAX_PIDS: u64 = 4096;
const TMP_MB: u64 = 1024;

/// What an instance boots with.
#[derive(Debug, Clone)]
pub struct Boot {
    pub instance_id: String,
    pub instance_type: String,
    pub arch: String,
    pub memory_mib: u64,
    /// The CPU quota (the type's vCPUs, scaled).
    pub vcpus: f64,
    pub region: String,
    /// Decoded user data, if any.
    pub user_data: Option<Vec<u8>>,
}

/// A process to start inside a running instance.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Limits of the process's own cgroup, below the instance's (a Batch job's memory and
    /// vCPUs, already scaled as the instance is); None: the instance's.
    pub memory_mib: Option<u64>,
    pub cpu_millis: Option<u64>,
    /// Host directories shown inside (only with namespaces; plain processes see the host).
    pub mounts: Vec<Mount>,
    /// A container image's root file system as the process's `/` instead of the host's
    /// (needs namespaces); `program` is a path inside it.
    pub image_root: Option<PathBuf>,
    /// Working directory (inside the image's root when there is one); None: `/`.
    pub cwd: Option<PathBuf>,
    /// The user and group to run as (honoured when nimbus is root); None: the sandbox's.
    pub user: Option<(u32, u32)>,
    /// Resource limits (`RLIMIT_*`, soft, hard).
    pub rlimits: Vec<(i32, u64, u64)>,
}

/// A process started inside an instance: wait on `child` (then `release` it), read its output.
pub struct Process {
    pub child: Arc<Child>,
    pub stdout: tokio::net::unix::pipe::Receiver,
    pub stderr: tokio::net::unix::pipe::Receiver,
}

struct Live {
    child: Arc<Child>,
    memory_mib: u64,
    cpu_millis: u64,
    netns: Option<Arc<std::os::fd::OwnedFd>>,
    base_env: Vec<(String, String)>,
    /// Processes started later with [`Runner::exec`]: killed with the instance.
    extra: Mutex<Vec<Arc<Child>>>,
    /// The sandbox of the next process started in it, made ahead (gone with the instance).
    spare: Arc<Spare>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    _network: Option<Network>,
    /// Set when nimbus ends the instance (stop, terminate, interruption).
    stopping: Arc<AtomicBool>,
    exited: watch::Receiver<bool>,
    /// The last CPU reading: when, the CPU seconds, and the share of a CPU since the one before.
    sampled: Mutex<Option<(Instant, f64, f64)>>,
}

/// What a running instance uses now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceUsage {
    /// CPU seconds of the processes running in it now (what ended has left the count).
    pub cpu_seconds: f64,
    /// CPUs busy since the previous reading (1.0 = one CPU), averaged over at least a second.
    pub cpus: f64,
    pub memory_mib: u64,
}

pub struct Runner {
    sandbox: Arc<Sandbox>,
    dir: PathBuf,
    endpoint_url: String,
    acceptor: ApiAcceptor,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Set by [`Runner::shutdown`]: no instance boots after it (a boot in flight is undone).
    closed: AtomicBool,
}

/// How an instance's main process ended on its own (not by nimbus).
pub type OnExit = Box<dyn FnOnce(String) + Send>;

impl Runner {
    pub fn new(sandbox: Arc<Sandbox>, dir: PathBuf, endpoint_url: String, acceptor: ApiAcceptor) -> Runner {
        Runner {
            sandbox,
            dir,
            endpoint_url,
            acceptor,
            live: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }
    }

    fn instance_dir(&self, id: &str) -> PathBuf {
        self.dir.join("instances").join(id)
    }

    pub fn console_path(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("console.log")
    }

    /// Removes a forgotten instance's files (user data, console log).
    pub fn forget(&self, id: &str) {
        if !id.is_empty() && !id.contains('/') {
            let _ = std::fs::remove_dir_all(self.instance_dir(id));
        }
    }

    /// Removes the `/tmp` directories its processes left behind when nimbus was killed -9
    /// (none of them runs any more: they ended with that nimbus).
    pub fn remove_leftover_tmp(&self, id: &str) {
        if !id.is_empty() && !id.contains('/') {
            let _ = std::fs::remove_dir_all(self.instance_dir(id).join("tmp"));
        }
    }

    /// The last 64 KiB of the instance's console output.
    pub fn console(&self, id: &str) -> Vec<u8> {
        std::fs::read(self.console_path(id)).unwrap_or_default()
    }

    /// The instance's peak memory so far (its main process's cgroup), in MiB.
    pub fn peak_memory_mib(&self, id: &str) -> Option<u64> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        live.and_then(|live| live.child.peak_memory_mib())
    }

    /// What the instance's processes (its main one and those started in it) use now, from their
    /// cgroups; None when it does not run on this node.
    pub fn usage(&self, id: &str) -> Option<InstanceUsage> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()?;
        let mut total = live.child.usage();
        for extra in live.extra.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let usage = extra.usage();
            total.cpu_seconds += usage.cpu_seconds;
            total.memory_mib += usage.memory_mib;
        }
        let now = Instant::now();
        let mut sampled = live.sampled.lock().unwrap_or_else(|p| p.into_inner());
        let cpus = match *sampled {
            // Readings closer than a second apart keep the last share (several viewers at once).
            Some((at, _, cpus)) if now.duration_since(at) < Duration::from_secs(1) => cpus,
            Some((at, before, _)) => {
                let share = (total.cpu_seconds - before).max(0.0) / now.duration_since(at).as_secs_f64();
                *sampled = Some((now, total.cpu_seconds, share));
                share
            }
            None => {
                *sampled = Some((now, total.cpu_seconds, 0.0));
                0.0
            }
        };
        Some(InstanceUsage { cpu_seconds: total.cpu_seconds, cpus, memory_mib: total.memory_mib })
    }

    /// The instances whose processes run on this node.
    pub fn live_ids(&self) -> Vec<String> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    pub fn is_live(&self, id: &str) -> bool {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(id)
    }

    /// The environment of every process in an instance.
    fn environment(&self, boot: &Boot, api: &str) -> Vec<(String, String)> {
        let imds = format!("{api}/_nimbus/ec2/imds/{}", boot.instance_id);
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("HOME".into(), "/tmp".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("AWS_ENDPOINT_URL".into(), api.to_owned()),
            ("AWS_REGION".into(), boot.region.clone()),
            ("AWS_DEFAULT_REGION".into(), boot.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "nimbus".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "nimbus".into()),
            // botocore and the AWS SDKs read instance metadata from here instead of 169.254.169.254.
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.clone()),
            ("NIMBUS_IMDS".into(), imds),
            ("NIMBUS_INSTANCE_ID".into(), boot.instance_id.clone()),
            ("NIMBUS_INSTANCE_TYPE".into(), boot.instance_type.clone()),
            ("NIMBUS_ARCH".into(), boot.arch.clone()),
        ];
        env.sort();
        env
    }

    /// Boots the instance: resolves once its main process runs. `on_exit` is called if that
    /// process ends on its own (a shutdown from inside, or the memory limit).
    /// Fails with [`std::io::ErrorKind::Interrupted`] when nimbus is stopping.
    pub async fn boot(self: &Arc<Self>, boot: Boot, on_exit: OnExit) -> std::io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(nimbus_stopping());
        }
        let dir = self.instance_dir(&boot.instance_id);
        std::fs::create_dir_all(&dir)?;
        let sandboxed = self.sandbox.isolation() == Isolation::Namespaces;
        let user_data = dir.join("user-data");
        let _ = std::fs::remove_file(&user_data);
        let mut program_line = String::new();
        if let Some(data) = &boot.user_data {
            std::fs::write(&user_data, data)?;
            set_mode(&user_data, 0o755)?;
            let inside = if sandboxed { Path::new(CLOUD_DIR).join("user-data") } else { user_data.clone() };
            let inside = inside.to_string_lossy().into_owned();
            if data.starts_with(b"\x7fELF") {
                // A binary for the instance's architecture; through qemu-user when foreign.
                let emulator =
                    nimbus_functions::arch::emulator_for(&user_data).map_err(std::io::Error::other)?;
                program_line = match emulator {
                    Some(qemu) => format!("{} {inside}", qemu.display()),
                    None => inside,
                };
            } else if data.starts_with(b"#!") {
                program_line = inside;
            }
        }
        let script = if program_line.is_empty() {
            "exec sleep infinity".to_owned()
        } else {
            format!("{program_line}; echo \"nimbus: user data exited with status $?\"; exec sleep infinity")
        };
        let api_port =
            self.endpoint_url.rsplit(':').next().unwrap_or("4566").trim_end_matches('/').to_owned();
        let mut servers = Vec::new();
        let mut network = if sandboxed {
            let key = NetworkKey { addresses: vec![format!("127.0.0.1:{api_port}")], reach: Reach::Outside };
            let sandbox = self.sandbox.clone();
            tokio::task::spawn_blocking(move || sandbox.network(&key))
                .await
                .map_err(std::io::Error::other)?
                .transpose()?
        } else {
            None
        };
        if let Some(network) = &mut network {
            if let (Some(listener), Some(acceptor)) =
                (network.take_listeners().into_iter().next(), self.acceptor.get())
            {
                servers.push(acceptor(listener));
            }
        }
        let api = if network.is_some() {
            format!("http://127.0.0.1:{api_port}")
        } else {
            self.endpoint_url.clone()
        };
        let env = self.environment(&boot, &api);
        let netns = network.as_ref().map(|n| n.namespace.clone());
        let filesystem = if sandboxed {
            Filesystem {
                mounts: vec![Mount { source: dir.clone(), target: CLOUD_DIR.into(), writable: false }],
                tmp_size_mb: TMP_MB,
                resolv_conf: network.as_ref().and_then(|n| n.resolv_conf.clone()),
                ..Filesystem::default()
            }
        } else {
            Filesystem::default()
        };
        let spec = nimbus_sandbox::Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: env.clone(),
            cwd: "/".into(),
            filesystem,
            limits: Limits {
                memory_mb: boot.memory_mib,
                pids: MAX_PIDS,
                cpu_millis: (boot.vcpus * 1000.0).round() as u64,
            },
            netns: netns.clone(),
            id: format!("ec2-{}-{}", boot.instance_id, uuid::Uuid::new_v4().simple()),
            ..Default::default()
        };
        let started =
            self.sandbox.spawn(spec).await.inspect_err(|_| servers.iter().for_each(|s| s.abort()))?;
        let console = self.console_path(&boot.instance_id);
        for stream in [started.stdout, started.stderr] {
            tokio::spawn(copy_to_console(stream, console.clone()));
        }
        let child = Arc::new(started.child);
        let stopping = Arc::new(AtomicBool::new(false));
        let (exit_tx, exited) = watch::channel(false);
        let live = Arc::new(Live {
            child: child.clone(),
            memory_mib: boot.memory_mib,
            cpu_millis: (boot.vcpus * 1000.0).round() as u64,
            netns,
            base_env: env,
            extra: Mutex::new(Vec::new()),
            spare: Arc::default(),
            servers,
            _network: network,
            stopping: stopping.clone(),
            exited,
            sampled: Mutex::new(None),
        });
        {
            let mut all = self.live.lock().unwrap_or_else(|p| p.into_inner());
            // Checked under the lock `shutdown` reads the live instances through: either this
            // instance is among them, or it is undone here.
            if !self.closed.load(Ordering::Acquire) {
                all.insert(boot.instance_id.clone(), live);
            } else {
                drop(all);
                live.servers.iter().for_each(|s| s.abort());
                child.kill();
                let _ = child.wait().await;
                child.release();
                return Err(nimbus_stopping());
            }
        }
        let runner = self.clone();
        let id = boot.instance_id.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            child.kill();
            let oom = child.oom_killed();
            child.release();
            let _ = exit_tx.send(true);
            if !stopping.load(Ordering::Acquire) {
                if let Some(live) = runner.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                    live.end_extras();
                }
                let why = if oom {
                    "out of memory".to_owned()
                } else {
                    status.map_or_else(|e| e.to_string(), |s| format!("{s}"))
                };
                on_exit(why);
            }
        });
        Ok(())
    }

    /// Ends every process of the instance and waits (a few seconds at most) until they are gone.
    pub async fn kill(&self, id: &str) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        let Some(live) = live else { return };
        live.stopping.store(true, Ordering::Release);
        live.child.kill();
        live.end_extras();
        let mut exited = live.exited.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|gone| *gone)).await;
        live.servers.iter().for_each(|s| s.abort());
    }

    /// Starts `exec` inside the running instance `id`: same network, the instance's memory limit,
    /// its environment under `exec.env`. The process ends with the instance.
    pub async fn exec(&self, id: &str, exec: Exec) -> std::io::Result<Process> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let live = live.ok_or_else(|| std::io::Error::other(format!("instance {id} is not running")))?;
        let mut env = live.base_env.clone();
        for (key, value) in exec.env {
            env.retain(|(k, _)| *k != key);
            env.push((key, value));
        }
        let sandboxed = self.sandbox.isolation() == Isolation::Namespaces;
        if exec.image_root.is_some() && !sandboxed {
            return Err(std::io::Error::other(
                "container images run in nimbus's sandbox, and this nimbus runs plain processes (--isolation process, or no namespaces on this host)",
            ));
        }
        // An image's programs are its own: no emulator from the host is shown inside it.
        let emulator = match &exec.image_root {
            Some(_) => Ok(None),
            None => nimbus_functions::arch::emulator_for(&exec.program),
        };
        let (program, mut args) = match emulator {
            Ok(Some(qemu)) => (qemu, vec![exec.program.to_string_lossy().into_owned()]),
            Ok(None) => (exec.program.clone(), Vec::new()),
            Err(why) => return Err(std::io::Error::other(why)),
        };
        args.extend(exec.args);
        let spec = nimbus_sandbox::Spec {
            program,
            args: args.into_iter().map(Into::into).collect(),
            env,
            cwd: exec.cwd.unwrap_or_else(|| "/".into()),
            filesystem: Filesystem {
                // On the instance's disk, as a container's writable layer is on an ECS
                // instance's volume: a loop-mounted volume of its own per process (a mkfs and
                // a mount, 0.2-0.7 s on a busy host) bounded a queue's jobs to ~6/s.
                tmp_under: sandboxed.then(|| self.instance_dir(id).join("tmp")),
                mounts: if sandboxed { exec.mounts } else { Vec::new() },
                image_root: exec.image_root,
                ..Filesystem::default()
            },
            limits: Limits {
                memory_mb: exec.memory_mib.map_or(live.memory_mib, |m| m.clamp(16, live.memory_mib)),
                pids: MAX_PIDS,
                cpu_millis: exec.cpu_millis.map_or(live.cpu_millis, |c| c.clamp(10, live.cpu_millis.max(10))),
            },
            netns: live.netns.clone(),
            id: format!("ec2-{id}-exec-{}", uuid::Uuid::new_v4().simple()),
            user: exec.user,
            rlimits: exec.rlimits,
        };
        let started = self.sandbox.spawn_in(&live.spare, spec).await?;
        let child = Arc::new(started.child);
        self.adopt(id, child.clone());
        Ok(Process { child, stdout: started.stdout, stderr: started.stderr })
    }

    /// The network namespace of the running instance `id` (None inside: plain processes on the
    /// host's network); None when it is not running.
    pub fn netns(&self, id: &str) -> Option<Option<Arc<std::os::fd::OwnedFd>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|live| live.netns.clone())
    }

    /// Registers a process started by [`Runner::exec`] so that it ends with the instance.
    fn adopt(&self, id: &str, child: Arc<Child>) {
        if let Some(live) = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            let mut extra = live.extra.lock().unwrap_or_else(|p| p.into_inner());
            // Those already ended go (each holds a pidfd: a long-lived instance running
            // thousands of jobs would otherwise keep a descriptor per job).
            extra.retain(|c| !c.is_released());
            extra.push(child);
        } else {
            child.kill();
        }
    }

    /// Ends every instance's processes (nimbus is stopping).
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let ids: Vec<String> = self.live.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for id in ids {
            self.kill(&id).await;
        }
    }
}

impl Live {
    fn end_extras(&self) {
        for child in self.extra.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            child.kill();
        }
    }
}

fn nimbus_stopping() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "nimbus is stopping")
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Appends a stream to the console log, keeping only its last [`CONSOLE_BYTES`].
async fn copy_to_console(mut stream: tokio::net::unix::pipe::Receiver, path: PathBuf) {
    let mut buffer = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = buffer[..n].to_vec();
        let path = path.clone();
        let _ = tokio::task::spawn_blocking(move || append_bounded(&path, &chunk)).await;
    }
}

fn append_bounded(path: &Path, chunk: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(chunk)?;
    if file.metadata()?.len() > 2 * CONSOLE_BYTES {
        let all = std::fs::read(path)?;
        let tail = &all[all.len() - CONSOLE_BYTES as usize..];
        std::fs::write(path, tail)?;
    }
    Ok(())
}
