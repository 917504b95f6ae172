//! Starting sandboxed processes: the host's capabilities probed once, every clone made on one
//! long-lived thread (a child's death signal is tied to the thread that created it), and the
//! child's exit watched through a pidfd. The thread only clones: each child's set-up (its
//! mounts, ~10-100 ms by the host's load) is waited for by its caller, so children set up side
//! by side instead of one after the other.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use nix::sched::CloneFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::cgroup::{self, Cgroups, Group};
use crate::child::{self, Root, Setup, Step};
use crate::network::{Network, NetworkKey, Networks};
use crate::os::{cstring, prepare};
use crate::plan::{self, HostView};
use crate::scratch::{ScratchPool, Volume};
use crate::{Isolation, Spec};

mod spare;
pub use spare::Spare;

/// AWS runs functions as `sbx_user1051`: uid 993, gid 990.
const SANDBOX_USER: (u32, u32) = (993, 990);
/// AWS's limit on open files per environment.
const OPEN_FILES: u64 = 1024;
const CHILD_STACK_BYTES: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send>;

pub struct Sandbox {
    isolation: Isolation,
    /// On cgroup v1: the next environment's group, with the spawner thread already inside it.
    /// Moving a task into a v1 memory group waits ~7-15 ms for an RCU grace period; the spawner
    /// pays that between spawns, and each child is born in its group instead.
    slot: Mutex<Option<Group>>,
    /// Not root: namespaces inside a user namespace that maps nimbus's own user to root.
    user_namespace: Option<(u32, u32)>,
    /// Disk-backed `/tmp` volumes, where the host can loop-mount them.
    scratch: Option<Arc<ScratchPool>>,
    /// Each environment's own network namespace, where the host allows making them.
    networks: Option<Networks>,
    /// Children not yet reaped and released.
    live: Arc<AtomicUsize>,
    cgroups: Cgroups,
    root_dir: PathBuf,
    /// Amazon Linux 2023's `/etc/os-release`, shown in sandboxes on the host's root.
    os_release: PathBuf,
    spawner: mpsc::Sender<Job>,
}

/// A sandboxed process.
pub struct Child {
    pub pid: u32,
    live: Arc<AtomicUsize>,
    released: AtomicBool,
    /// The group's peak memory, kept when the group is removed.
    final_peak_mib: AtomicU64,
    /// The `/tmp` volume, destroyed on release.
    volume: Mutex<Option<Volume>>,
    pidfd: AsyncFd<OwnedFd>,
    group: Option<Group>,
    isolation: Isolation,
}

/// A started child and the read ends of its output.
pub struct Started {
    pub child: Child,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

impl Sandbox {
    /// Probes what this host allows, unless `forced`. `data_dir` holds the mount point that
    /// every sandbox's private root is assembled on.
    pub fn new(data_dir: &Path, forced: Option<Isolation>) -> io::Result<Sandbox> {
        let root_dir = data_dir.join("sandbox-root");
        std::fs::create_dir_all(&root_dir)?;
        let os_release = data_dir.join("sandbox-os-release");
        std::fs::write(&os_release, plan::AL2023_OS_RELEASE)?;
        let (spawner, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("nimbus-spawner".into()).spawn(move || {
            for job in jobs {
                job();
            }
        })?;
        let mut sandbox = Sandbox {
            isolation: Isolation::Process,
            slot: Mutex::new(None),
            user_namespace: None,
            scratch: None,
            networks: None,
            live: Arc::new(AtomicUsize::new(0)),
            cgroups: Cgroups::default(),
            root_dir,
            os_release,
            spawner,
        };
        if forced == Some(Isolation::Process) {
            return Ok(sandbox);
        }
        sandbox.isolation = Isolation::Namespaces;
        // SAFETY: getuid/getgid/geteuid cannot fail and have no arguments.
        let (root, uid, gid) = unsafe { (libc::geteuid() == 0, libc::getuid(), libc::getgid()) };
        if !root {
            sandbox.user_namespace = Some((uid, gid));
        }
        match sandbox.probe() {
            Ok(()) if !root => Ok(sandbox), // no cgroups or loop devices without root
            Ok(()) => {
                // Unique per sandbox, and led by our pid so a later nimbus can tell it is stale.
                static SANDBOXES: AtomicUsize = AtomicUsize::new(0);
                let instance = SANDBOXES.fetch_add(1, Ordering::Relaxed);
                sandbox.cgroups = Cgroups::detect(&format!("nimbus-{}-{instance}", std::process::id()));
                sandbox.scratch = ScratchPool::new(data_dir.join("scratch"));
                sandbox.networks = Some(Networks::new(false, &data_dir.join("network")));
                Ok(sandbox)
            }
            Err(error) if forced == Some(Isolation::Namespaces) => Err(error),
            Err(error) => {
                eprintln!("nimbus: namespaces unavailable ({error}); functions run as plain processes");
                sandbox.isolation = Isolation::Process;
                Ok(sandbox)
            }
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Lets environments reach the host's loopback services at
    /// [`crate::HOST_ADDRESS_INSIDE`] (a database on the developer's machine, say).
    pub fn with_host_loopback(mut self, allow: bool) -> Sandbox {
        // Made once at start; remade only when the default (no host loopback) changes.
        if allow && self.networks.is_some() {
            self.networks = Some(Networks::new(allow, &self.root_dir.with_file_name("network")));
        }
        self
    }

    /// What environments' networks are, for health and the startup line: `own` (each its own
    /// namespace, the outside reached through slirp4netns), `own, no outside` (slirp4netns is
    /// not installed), or `shared` (with the host and with each other: said plainly).
    pub fn network_label(&self) -> &'static str {
        match &self.networks {
            Some(networks) if networks.reaches_outside() => "own",
            Some(_) => "own, no outside (slirp4netns missing or failing: see the log)",
            None => "shared with the host and other environments (not isolated)",
        }
    }

    /// A fresh network of `key`'s kind for one environment, or `None` where environments share
    /// the host's network. Blocking (usually a ready one is taken).
    pub fn network(&self, key: &NetworkKey) -> Option<io::Result<Network>> {
        self.networks.as_ref().map(|networks| networks.take(key))
    }

    /// `namespaces+cgroups`, `namespaces` or `process`.
    pub fn label(&self) -> &'static str {
        self.isolation.label(!self.cgroups.is_empty())
    }

    /// Starts `/bin/true` fully isolated and waits for it.
    fn probe(&self) -> io::Result<()> {
        let spec =
            Spec { program: "/bin/true".into(), cwd: "/".into(), id: "probe".into(), ..Spec::default() };
        let started = self.start_blocking(&spec, None)?;
        let pid = nix::unistd::Pid::from_raw(started.pid as i32);
        let mut report = [0u8; 5];
        let read = nix::unistd::read(started.error.as_raw_fd(), &mut report).unwrap_or(0);
        let status = nix::sys::wait::waitpid(pid, None).map_err(io::Error::from)?;
        if read > 0 {
            return Err(setup_failure(&report));
        }
        match status {
            nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
            other => Err(io::Error::other(format!("probe ended with {other:?}"))),
        }
    }

    /// Starts `spec`; resolves once the program has been exec'd (or setup failed).
    pub async fn spawn(self: &Arc<Self>, mut spec: Spec) -> io::Result<Started> {
        let isolated = self.isolation == Isolation::Namespaces;
        let volume = match (&self.scratch, spec.filesystem.tmp_under.clone()) {
            (_, Some(parent)) if isolated => {
                let name = spec.id.replace('/', "_");
                let volume = tokio::task::spawn_blocking(move || Volume::directory(&parent, &name))
                    .await
                    .map_err(io::Error::other)??;
                spec.filesystem.tmp_volume = Some(volume.dir.clone());
                Some(volume)
            }
            (Some(pool), None) if isolated && spec.filesystem.tmp_size_mb > 0 => {
                let (pool, size) = (pool.clone(), spec.filesystem.tmp_size_mb);
                let volume =
                    tokio::task::spawn_blocking(move || pool.take(size)).await.map_err(io::Error::other)?;
                spec.filesystem.tmp_volume = volume.as_ref().map(|v| v.dir.clone());
                volume
            }
            _ => None,
        };
        match self.spawn_with(spec).await {
            Ok(mut started) => {
                started.child.volume = Mutex::new(volume);
                Ok(started)
            }
            Err(error) => {
                if let Some(volume) = volume {
                    tokio::task::spawn_blocking(move || volume.destroy());
                }
                Err(error)
            }
        }
    }

    async fn spawn_with(self: &Arc<Self>, spec: Spec) -> io::Result<Started> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sandbox = self.clone();
        let job: Job = Box::new(move || {
            let _ = reply.send(sandbox.start_blocking(&spec, None));
            // After answering: the next environment's group is prepared while this one starts.
            sandbox.refill_slot();
        });
        self.spawner.send(job).map_err(|_| io::Error::other("spawner thread is gone"))?;
        let raw = answer.await.map_err(|_| io::Error::other("spawner thread is gone"))??;
        self.live.fetch_add(1, Ordering::AcqRel);
        self.adopt(raw).await
    }

    /// A cloned child (counted live) watched from here on; resolves once it exec'd.
    async fn adopt(&self, raw: Raw) -> io::Result<Started> {
        // Registering with the reactor needs the runtime, which the spawner thread is not in.
        // SAFETY: the pidfd is owned by the AsyncFd from here on and never replaced.
        let pidfd = unsafe { AsyncFd::register(raw.pidfd) };
        let child = Child {
            pid: raw.pid,
            live: self.live.clone(),
            released: AtomicBool::new(false),
            final_peak_mib: AtomicU64::new(0),
            volume: Mutex::new(None),
            pidfd: match pidfd {
                Ok(pidfd) => pidfd,
                Err(error) => {
                    // Unwatchable: killed and reaped here, its group removed.
                    let pid = nix::unistd::Pid::from_raw(raw.pid as i32);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    if let Some(group) = &raw.group {
                        group.remove();
                    }
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(error.into_parts().1);
                }
            },
            group: raw.group,
            isolation: self.isolation,
        };
        // The child closes its copy of the error pipe by exec'ing; anything read is a failure.
        let mut report = [0u8; 5];
        let mut read = 0;
        let mut error = pipe::Receiver::from_owned_fd(raw.error)?;
        while read < report.len() {
            match error.read(&mut report[read..]).await {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if read > 0 {
            // The child exits right after reporting.
            let _ = child.wait().await;
            child.release();
            return Err(setup_failure(&report));
        }
        Ok(Started {
            child,
            stdout: pipe::Receiver::from_owned_fd(raw.stdout)?,
            stderr: pipe::Receiver::from_owned_fd(raw.stderr)?,
        })
    }

    fn start_blocking(&self, spec: &Spec, gate: Option<child::Gate>) -> io::Result<Raw> {
        let isolated = self.isolation == Isolation::Namespaces;
        let wants_group = isolated && !self.cgroups.is_empty() && spec.limits.memory_mb > 0;
        let slot =
            if wants_group { self.slot.lock().unwrap_or_else(|p| p.into_inner()).take() } else { None };
        // A slot's child is born in the group (this thread is in it); otherwise it joins itself.
        let (group, joins) = match slot {
            Some(mut slot) => {
                self.cgroups.set_limits(&mut slot, spec.limits)?;
                (Some(slot), false)
            }
            None if wants_group => (Some(self.cgroups.create(&spec.id, spec.limits)?), true),
            None => (None, false),
        };
        let joining = if joins { group.as_ref() } else { None };
        match self.clone_child(spec, joining, gate) {
            Ok((pid, pidfd, stdout, stderr, error)) => Ok(Raw { pid, pidfd, stdout, stderr, error, group }),
            Err(error) => {
                if let Some(group) = group {
                    group.remove();
                }
                Err(error)
            }
        }
    }

    fn clone_child(
        &self,
        spec: &Spec,
        group: Option<&Group>,
        gate: Option<child::Gate>,
    ) -> io::Result<(u32, OwnedFd, OwnedFd, OwnedFd, OwnedFd)> {
        let isolated = self.isolation == Isolation::Namespaces;
        let (stdout_r, stdout_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (stderr_r, stderr_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (error_r, error_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let stdin = std::fs::File::open("/dev/null")?;
        // In a user namespace the child waits until its uid and gid maps are written.
        let (user_ready_r, user_ready_w) = match (isolated, self.user_namespace) {
            (true, Some(_)) => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                (Some(r), Some(w))
            }
            _ => (None, None),
        };
        let root = isolated.then(|| {
            let mut ops = plan::plan(&self.root_dir, &spec.filesystem, &RealHost);
            ops.extend(plan::os_release(&self.root_dir, &spec.filesystem, &self.os_release, &RealHost));
            Root {
                dir: cstring(&self.root_dir),
                old: cstring(&self.root_dir.join(".old")),
                ops: prepare(&ops),
            }
        });
        let setup = Setup {
            cgroup_procs: group
                .map(|g| g.procs_files().iter().map(|p| cstring(p)).collect())
                .unwrap_or_default(),
            netns: spec.netns.as_ref().map(|fd| fd.as_raw_fd()),
            stdin: stdin.as_raw_fd(),
            stdout: stdout_w.as_raw_fd(),
            stderr: stderr_w.as_raw_fd(),
            error: error_w.as_raw_fd(),
            root,
            hostname: isolated.then(|| CString::new("nimbus").unwrap_or_default()),
            user: self.user_of(spec),
            wait_for: user_ready_r.as_ref().map(|fd| fd.as_raw_fd()),
            cwd: cstring(&spec.cwd),
            program: cstring(&spec.program),
            argv: std::iter::once(cstring(&spec.program))
                .chain(spec.args.iter().map(|a| CString::new(a.as_bytes()).unwrap_or_default()))
                .collect(),
            envp: spec
                .env
                .iter()
                .map(|(k, v)| CString::new(format!("{k}={v}")).unwrap_or_default())
                .collect(),
            open_files: OPEN_FILES,
            rlimits: spec.rlimits.clone(),
            seccomp: crate::seccomp::programs()?,
            gate,
        };
        let argv = pointers(&setup.argv);
        let envp = pointers(&setup.envp);
        let mut flags = CloneFlags::empty();
        if isolated {
            flags = CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS;
            if self.user_namespace.is_some() {
                flags |= CloneFlags::CLONE_NEWUSER;
            }
        }
        let mut stack = vec![0u8; CHILD_STACK_BYTES];
        // SAFETY: without CLONE_VM the child runs on a copy of this address space; its callback
        // only makes system calls on data prepared above (see child.rs) and never returns into
        // the parent's frames: it execs or exits.
        let pid = unsafe {
            nix::sched::clone(
                Box::new(|| child::run(&setup, &argv, &envp)),
                &mut stack,
                flags,
                Some(libc::SIGCHLD),
            )
        }?;
        drop((stdout_w, stderr_w, error_w, stdin, user_ready_r));
        let pid_u32 = pid.as_raw() as u32;
        if let (Some((uid, gid)), Some(ready)) = (self.user_namespace, user_ready_w) {
            let mapped = map_user(pid_u32, uid, gid);
            if mapped.is_ok() {
                let _ = nix::unistd::write(&ready, b"1");
            }
            drop(ready); // a child whose maps failed reads end-of-file and stops
            if let Err(error) = mapped {
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(io::Error::new(error.kind(), format!("cannot map the user namespace: {error}")));
            }
        }
        // SAFETY: pidfd_open returns a new descriptor we own, or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if pidfd < 0 {
            let error = io::Error::last_os_error();
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(error);
        }
        // SAFETY: a fresh descriptor from pidfd_open, owned from here on.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        // The child's set-up goes on without this thread: the caller reads `error_r`.
        Ok((pid_u32, pidfd, stdout_r, stderr_r, error_r))
    }
}

impl Sandbox {
    /// The user a spec's process runs as. In a user namespace only nimbus's own user exists:
    /// it is root in there. As root: the caller's user, else the sandbox's own when isolated.
    fn user_of(&self, spec: &Spec) -> Option<(u32, u32)> {
        let isolated = self.isolation == Isolation::Namespaces;
        match (spec.user, self.user_namespace.is_none() && is_root()) {
            (Some(user), true) => Some(user),
            _ => (isolated && self.user_namespace.is_none()).then_some(SANDBOX_USER),
        }
    }

    /// Prepares the first environment's cgroup in the background (see [`Sandbox::refill_slot`]).
    pub fn prepare_ahead(self: &Arc<Self>) {
        let sandbox = self.clone();
        let _ = self.spawner.send(Box::new(move || sandbox.refill_slot()));
    }

    /// On the spawner thread: moves it into a fresh group for the next environment (v1 only).
    fn refill_slot(&self) {
        if self.isolation != Isolation::Namespaces || !self.cgroups.all_v1() {
            return;
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        static SLOTS: AtomicUsize = AtomicUsize::new(0);
        let name = format!("slot-{}", SLOTS.fetch_add(1, Ordering::Relaxed));
        let prepared = self
            .cgroups
            .create(&name, crate::Limits { memory_mb: 128, pids: 1024, cpu_millis: 0 })
            .and_then(|group| group.enter_with_this_thread().map(|()| group));
        match prepared {
            Ok(group) => *slot = Some(group),
            Err(error) => {
                eprintln!("nimbus: cannot prepare a cgroup ahead ({error}); environments join theirs")
            }
        }
    }

    /// On the spawner thread: back to nimbus's own groups, and the unused slot removed.
    fn drop_slot(&self) {
        if let Some(group) = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = self.cgroups.leave_with_this_thread();
            group.remove();
        }
    }

    /// Waits (up to `limit`) for every child to be reaped, then removes nimbus's cgroups.
    pub async fn close(self: &Arc<Self>, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.live.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        let sandbox = self.clone();
        let job: Job = Box::new(move || {
            sandbox.drop_slot();
            let _ = done.send(());
        });
        if self.spawner.send(job).is_ok() {
            let _ = finished.await;
        }
        cgroup::remove_base(&self.cgroups);
        if let Some(scratch) = &self.scratch {
            let scratch = scratch.clone();
            let _ = tokio::task::spawn_blocking(move || scratch.close()).await;
        }
        if let Some(networks) = self.networks.clone() {
            let _ = tokio::task::spawn_blocking(move || networks.close()).await;
        }
    }
}

/// A cloned child before its descriptors are registered with the runtime, still setting up.
struct Raw {
    pid: u32,
    pidfd: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Closed by the child's exec; `[step, errno]` if its set-up failed.
    error: OwnedFd,
    group: Option<Group>,
}

/// The error of a child whose set-up failed, from its `[step, errno]` report.
fn setup_failure(report: &[u8; 5]) -> io::Error {
    let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
    let cause = io::Error::from_raw_os_error(errno);
    io::Error::new(cause.kind(), format!("sandbox setup failed while {}: {cause}", Step::from_u8(report[0])))
}

/// NULL-terminated pointer array over `strings` (which must outlive it).
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

struct RealHost;

impl HostView for RealHost {
    fn symlink(&self, path: &Path) -> Option<PathBuf> {
        std::fs::read_link(path).ok()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }
    fn entries(&self, dir: &Path) -> Vec<(std::ffi::OsString, bool)> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
            .collect();
        entries.sort();
        entries
    }
}

impl Child {
    /// Waits for the process to end and reaps it.
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        loop {
            let mut ready = self.pidfd.readable().await?;
            match nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(self.pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            ) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                    return Ok(ExitStatus::from_raw(code << 8))
                }
                Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => {
                    return Ok(ExitStatus::from_raw(signal as i32))
                }
                Ok(_) => ready.clear_ready(),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Kills the process and everything it started: its PID namespace, or its process group.
    pub fn kill(&self) {
        // SAFETY: signals the process through our own pidfd, which cannot name a reused pid.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_fd().as_raw_fd(), libc::SIGKILL, 0, 0);
        }
        if self.isolation == Isolation::Process {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    pub fn peak_memory_mib(&self) -> Option<u64> {
        if self.released.load(Ordering::Acquire) {
            return Some(self.final_peak_mib.load(Ordering::Acquire));
        }
        self.group.as_ref().and_then(Group::peak_memory_mib).or_else(|| crate::peak_memory_mib(self.pid))
    }

    /// What the process (and what it started) uses now; zero once released.
    pub fn usage(&self) -> crate::Usage {
        if self.released.load(Ordering::Acquire) {
            return crate::Usage::default();
        }
        self.group.as_ref().and_then(Group::usage).unwrap_or_else(|| crate::usage::tree_usage(self.pid))
    }

    pub fn oom_killed(&self) -> bool {
        self.group.as_ref().is_some_and(Group::oom_killed)
    }

    /// Whether [`Child::release`] was called (the process is gone and reaped).
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Removes the child's cgroup; call after [`Child::wait`] returned.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(group) = &self.group {
            self.final_peak_mib.store(group.peak_memory_mib().unwrap_or(0), Ordering::Release);
            group.remove();
        }
        if let Some(volume) = self.volume.lock().unwrap_or_else(|p| p.into_inner()).take() {
            tokio::task::spawn_blocking(move || volume.destroy());
        }
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Maps nimbus's user and group to root inside the child's user namespace (the one mapping an
/// unprivileged process may write).
fn map_user(pid: u32, uid: u32, gid: u32) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
    std::fs::write(format!("/proc/{pid}/uid_map"), format!("0 {uid} 1"))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), format!("0 {gid} 1"))
}

/// Whether nimbus runs as root (may take any user for its children).
fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no arguments.
    unsafe { libc::geteuid() == 0 }
}
