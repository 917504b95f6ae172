//! Runs a process under an isolation spec: new PID, mount, IPC and UTS namespaces, a root
//! assembled from read-only binds with a sized `/tmp`, cgroup limits, a non-root user with no
//! capabilities — or, where the host allows none of that, a plain process that says so.
//! One sandbox serves functions, batch jobs and instances alike.

mod cgroup;
mod child;
mod network;
mod os;
pub mod plan;
mod pool;
mod scratch;
mod seccomp;
mod spawn;
mod switch;
mod usage;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use cgroup::{Cgroups, Limits};
pub use network::{Network, NetworkKey, Reach, HOST_ADDRESS_INSIDE};
pub use plan::{Filesystem, Mount};
pub use spawn::{Child, Sandbox, Spare, Started};
pub use switch::{Switch, MEMBER_INTERFACE};
pub use usage::Usage;

/// How strongly environments are isolated on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, a private root, and (where available) cgroup limits.
    Namespaces,
    /// A plain process in its own session with rlimits; nothing else is enforced.
    Process,
}

impl Isolation {
    pub fn label(self, cgroups: bool) -> &'static str {
        match (self, cgroups) {
            (Isolation::Namespaces, true) => "namespaces+cgroups",
            (Isolation::Namespaces, false) => "namespaces",
            (Isolation::Process, _) => "process",
        }
    }
}

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment: nothing of nimbus's own environment leaks in.
    pub env: Vec<(String, String)>,
    /// Working directory, inside the sandbox's root when isolated.
    pub cwd: PathBuf,
    pub filesystem: Filesystem,
    pub limits: Limits,
    /// A network namespace to join (see [`Sandbox::network`]).
    pub netns: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    /// Unique name, used for the cgroup.
    pub id: String,
    /// The user and group to run as instead of the sandbox's own (a Batch job's `user`, a
    /// container image's `User`);
    /// honoured when nimbus is root, ignored in a user namespace (only nimbus's user exists).
    pub user: Option<(u32, u32)>,
    /// Resource limits (`RLIMIT_*`, soft, hard) set after the sandbox's own.
    pub rlimits: Vec<(i32, u64, u64)>,
}

/// Peak resident memory of a process in MiB (`VmHWM`), where no cgroup measures it.
pub fn peak_memory_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}

/// The installation prefix of an interpreter binary (`/x/bin/python3` → `/x`), which a sandbox
/// must see for the interpreter to find its standard library.
pub fn install_prefix(executable: &Path) -> Option<PathBuf> {
    let bin = executable.parent()?;
    (bin.file_name()? == "bin").then(|| bin.parent().map(Path::to_path_buf)).flatten()
}

/// Moves nimbus (as root) into a mount namespace of its own that receives the host's mounts but
/// sends none back, so the scratch volumes and sandbox roots it mounts vanish with it — even
/// after kill -9 — instead of lingering on the host. Call before any thread is started:
/// `unshare(CLONE_NEWNS)` refuses a process whose threads share its file-system context.
pub fn own_mount_namespace() -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)?;
    Ok(())
}
