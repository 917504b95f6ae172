//! The cloned child: joins its cgroups, assembles its root, drops every privilege, installs the
//! seccomp filter and execs.
//! It runs in a copy of a multi-threaded process, so it only makes system calls on data prepared
//! before the clone: no allocation, no locks.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use crate::os::{self, PreparedOp, RealOs};
use crate::seccomp;

/// Everything the child needs, built by the parent before cloning.
pub struct Setup {
    /// Read one byte from this before anything else (the user namespace's maps are written).
    pub wait_for: Option<RawFd>,
    pub cgroup_procs: Vec<CString>,
    pub netns: Option<RawFd>,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Written with `[step, errno]` if setup fails; closed by a successful exec.
    pub error: RawFd,
    /// `None` runs a plain process (no new root).
    pub root: Option<Root>,
    pub hostname: Option<CString>,
    pub user: Option<(u32, u32)>,
    pub cwd: CString,
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub open_files: u64,
    /// The caller's limits (`RLIMIT_*`, soft, hard), after the two above.
    pub rlimits: Vec<(i32, u64, u64)>,
    /// Compiled once per nimbus (see seccomp.rs); installed last, just before `execve`.
    pub seccomp: &'static [seccompiler::BpfProgram],
    /// A sandbox made ahead: it waits here for its job (see [`Gate`]).
    pub gate: Option<Gate>,
}

/// A sandbox made ahead (spare.rs) stops once its root's common part is built and reads one
/// byte from `fd`; by then the parent has written the job into `handoff`, memory it shares with
/// this child (mapped before the clone, so at the same address in both).
#[derive(Clone, Copy)]
pub struct Gate {
    pub fd: RawFd,
    pub handoff: *const Handoff,
}

// SAFETY: the pointer is only read by the cloned child, after the parent wrote what it points to.
unsafe impl Send for Gate {}

/// The job's own part of a sandbox made ahead, laid out by the parent in the shared memory:
/// every pointer points into it.
#[repr(C)]
pub struct Handoff {
    pub program: *const libc::c_char,
    pub cwd: *const libc::c_char,
    /// NULL-terminated, as `execve` takes them.
    pub argv: *const *const libc::c_char,
    pub envp: *const *const libc::c_char,
    pub user: Option<(u32, u32)>,
    pub rlimits: *const (i32, u64, u64),
    pub rlimit_count: usize,
    /// The job's mounts, applied before `pivot_root` (while the host's tree is still visible).
    pub ops: *const RawOp,
    pub op_count: usize,
}

/// A mount point made (`source` NULL) or a host directory bound (see [`crate::plan::Op`]).
#[repr(C)]
pub struct RawOp {
    pub source: *const libc::c_char,
    pub target: *const libc::c_char,
    pub writable: bool,
}

/// What the child finally runs, as it runs it: from [`Setup`], or from the [`Handoff`].
struct Task<'a> {
    program: *const libc::c_char,
    cwd: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    user: Option<(u32, u32)>,
    rlimits: &'a [(i32, u64, u64)],
}

pub struct Root {
    pub dir: CString,
    pub old: CString,
    pub ops: Vec<PreparedOp>,
}

/// Setup steps, reported to the parent when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    UserNamespace = 17,
    Cgroup = 1,
    Network,
    Stdio,
    Session,
    PrivateMounts,
    RootTmpfs,
    Mounts,
    PivotRoot,
    ReadOnlyRoot,
    Hostname,
    Limits,
    Capabilities,
    User,
    NoNewPrivileges,
    Chdir,
    Exec,
    Seccomp = 18,
    Gate = 19,
}

impl Step {
    pub fn from_u8(value: u8) -> &'static str {
        const NAMES: [&str; 20] = [
            "unknown",
            "joining cgroups",
            "entering the network namespace",
            "redirecting stdio",
            "creating a session",
            "making mounts private",
            "mounting the root tmpfs",
            "mounting",
            "pivot_root",
            "making the root read-only",
            "setting the hostname",
            "setting rlimits",
            "dropping capabilities",
            "switching user",
            "setting no_new_privs",
            "changing directory",
            "exec",
            "waiting for the user namespace",
            "installing the seccomp filter",
            "waiting for its job",
        ];
        NAMES.get(usize::from(value)).copied().unwrap_or("unknown")
    }
}

fn check(result: libc::c_long) -> Result<(), i32> {
    if result < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// The child's entry point. Returns only on failure, after reporting it.
pub fn run(setup: &Setup, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> isize {
    let task = Task {
        program: setup.program.as_ptr(),
        cwd: setup.cwd.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        user: setup.user,
        rlimits: &setup.rlimits,
    };
    let (step, errno) = match prepare(setup, task) {
        Ok(task) => {
            // SAFETY: program, argv and envp are NUL-terminated strings and NULL-terminated
            // pointer arrays built by the parent, alive in this (copied or shared) memory.
            unsafe { libc::execve(task.program, task.argv, task.envp) };
            (Step::Exec, std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
        Err(failure) => failure,
    };
    let mut report = [0u8; 5];
    report[0] = step as u8;
    report[1..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writes a local buffer to a descriptor the parent gave us, then exits without
    // running any of the parent's atexit handlers.
    unsafe {
        libc::write(setup.error, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    }
}

fn prepare<'a>(setup: &'a Setup, mut task: Task<'a>) -> Result<Task<'a>, (Step, i32)> {
    let at = |step: Step| move |errno: i32| (step, errno);
    if let Some(fd) = setup.wait_for {
        let mut byte = [0u8; 1];
        // SAFETY: reads one byte into a local buffer from a pipe the parent gave us.
        let read = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
        if read != 1 {
            return Err((Step::UserNamespace, libc::EPERM));
        }
    }
    for procs in &setup.cgroup_procs {
        write_file(procs, b"0").map_err(at(Step::Cgroup))?;
    }
    if let Some(netns) = setup.netns {
        // SAFETY: `netns` is an open namespace descriptor owned by the parent.
        check(unsafe { libc::setns(netns, libc::CLONE_NEWNET) }.into()).map_err(at(Step::Network))?;
    }
    for (from, to) in [(setup.stdin, 0), (setup.stdout, 1), (setup.stderr, 2)] {
        // SAFETY: dup2 on descriptors we own; the duplicates lose close-on-exec, as intended.
        check(unsafe { libc::dup2(from, to) }.into()).map_err(at(Step::Stdio))?;
    }
    // SAFETY: plain system calls with no pointer arguments.
    unsafe {
        // Its own session: the whole tree can be signalled as a group in process mode.
        check(libc::setsid().into()).map_err(at(Step::Session))?;
        // Dies with nimbus even if nimbus is killed with SIGKILL.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Some(gate) = setup.gate {
        keep_only(&[gate.fd, setup.error]);
    }
    if let Some(root) = &setup.root {
        assemble_root(root)?;
    }
    if let Some(gate) = setup.gate {
        task = take_job(gate)?;
    }
    if let Some(root) = &setup.root {
        enter_root(root)?;
    }
    if let Some(hostname) = &setup.hostname {
        // SAFETY: a valid string and its length.
        check(unsafe { libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()) }.into())
            .map_err(at(Step::Hostname))?;
    }
    let files = libc::rlimit { rlim_cur: setup.open_files, rlim_max: setup.open_files };
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: pointers to live locals.
    unsafe {
        // The caller's own in their place: a hard limit lowered here could not be raised again
        // (that needs CAP_SYS_RESOURCE outside any user namespace).
        let given = |resource: libc::c_int| task.rlimits.iter().any(|&(r, _, _)| r == resource);
        if !given(libc::RLIMIT_NOFILE as _) {
            check(libc::setrlimit(libc::RLIMIT_NOFILE, &files).into()).map_err(at(Step::Limits))?;
        }
        if !given(libc::RLIMIT_CORE as _) {
            check(libc::setrlimit(libc::RLIMIT_CORE, &no_core).into()).map_err(at(Step::Limits))?;
        }
        for &(resource, soft, hard) in task.rlimits {
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            check(libc::setrlimit(resource as _, &limit).into()).map_err(at(Step::Limits))?;
        }
    }
    if let Some((uid, gid)) = task.user {
        // SAFETY: prctl and raw set*id system calls with integer arguments; setgroups with an
        // empty list. Raw syscalls on purpose: glibc's wrappers would try to change the IDs of
        // every thread of the parent it still believes exist here, and wait for them forever.
        unsafe {
            for capability in 0..64 {
                // EINVAL past the last capability the kernel knows: nothing to drop there.
                libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
            }
            check(libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()))
                .map_err(at(Step::User))?;
            check(libc::syscall(libc::SYS_setresgid, gid, gid, gid)).map_err(at(Step::User))?;
            // Leaving uid 0 clears the permitted, effective and ambient capability sets.
            check(libc::syscall(libc::SYS_setresuid, uid, uid, uid)).map_err(at(Step::User))?;
        }
        let _ = Step::Capabilities;
    }
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())
        .map_err(at(Step::NoNewPrivileges))?;
    // SAFETY: a valid string.
    check(unsafe { libc::chdir(task.cwd) }.into()).map_err(at(Step::Chdir))?;
    // Last: the setup above needs calls the filter denies (mount, pivot_root, setns, sethostname).
    seccomp::install(setup.seccomp).map_err(at(Step::Seccomp))?;
    Ok(task)
}

/// A sandbox made ahead holds no descriptor of nimbus's but its own while it waits (a copy of a
/// pipe's write end or of a listener would keep it open): closes all from 3 up but `keep`.
fn keep_only(keep: &[RawFd; 2]) {
    let (low, high) = (keep[0].min(keep[1]) as u32, keep[0].max(keep[1]) as u32);
    for (first, last) in [(3, low.wrapping_sub(1)), (low + 1, high.wrapping_sub(1)), (high + 1, u32::MAX)] {
        if first <= last {
            // SAFETY: closes descriptor ranges of this (copied) process; none is used below.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    }
}

/// Waits for the job, then mounts its directories (see [`Gate`]).
/// A child made ahead keeps a copy of nimbus's memory (copy-on-write, growing as nimbus's
/// changes): one no job came for within this long ends, and frees it. The parent stops
/// handing jobs to a spare well before (`spawn::spare::FRESH`).
pub const GATE_WAIT_MS: i32 = 30_000;

fn take_job<'a>(gate: Gate) -> Result<Task<'a>, (Step, i32)> {
    let mut byte = [0u8; 1];
    let mut waiting = libc::pollfd { fd: gate.fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: polls one descriptor of this process described by a local struct.
    if unsafe { libc::poll(&mut waiting, 1, GATE_WAIT_MS) } != 1 {
        return Err((Step::Gate, libc::ETIMEDOUT));
    }
    // SAFETY: reads one byte into a local buffer from the gate's pipe.
    if unsafe { libc::read(gate.fd, byte.as_mut_ptr().cast(), 1) } != 1 {
        return Err((Step::Gate, libc::ECANCELED));
    }
    // SAFETY: the parent wrote the handoff, and everything it points to, before the byte.
    let handoff = unsafe { &*gate.handoff };
    // SAFETY: `op_count` entries written by the parent in the shared memory.
    let ops = unsafe { std::slice::from_raw_parts(handoff.ops, handoff.op_count) };
    let mut real = RealOs;
    use os::Os;
    for op in ops {
        // SAFETY: NUL-terminated strings in the shared memory.
        let target = unsafe { CStr::from_ptr(op.target) };
        let done = if op.source.is_null() {
            match real.mkdir(target, 0o755) {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        } else {
            // SAFETY: as above.
            let source = unsafe { CStr::from_ptr(op.source) };
            os::bind(&mut real, source, target, op.writable)
        };
        done.map_err(errno).map_err(|errno| (Step::Mounts, errno))?;
    }
    Ok(Task {
        program: handoff.program,
        cwd: handoff.cwd,
        argv: handoff.argv,
        envp: handoff.envp,
        user: handoff.user,
        // SAFETY: `rlimit_count` entries written by the parent in the shared memory.
        rlimits: unsafe { std::slice::from_raw_parts(handoff.rlimits, handoff.rlimit_count) },
    })
}

/// The root's common part, on the tmpfs at `root.dir`.
fn assemble_root(root: &Root) -> Result<(), (Step, i32)> {
    let at = |step: Step| move |errno: i32| (step, errno);
    let mut real = RealOs;
    use os::Os;
    let private = libc::MS_REC | libc::MS_PRIVATE;
    real.mount(c"", c"/", c"", private, c"").map_err(errno).map_err(at(Step::PrivateMounts))?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    real.mount(c"tmpfs", &root.dir, c"tmpfs", nosuid, c"size=4m,mode=755")
        .map_err(errno)
        .map_err(at(Step::RootTmpfs))?;
    os::apply(&root.ops, &mut real)
        .map_err(|(_, error)| (Step::Mounts, error.raw_os_error().unwrap_or(0)))?;
    Ok(())
}

/// Into the assembled root, the host's tree left behind, the root made read-only.
fn enter_root(root: &Root) -> Result<(), (Step, i32)> {
    let at = |step: Step| move |errno: i32| (step, errno);
    let mut real = RealOs;
    use os::Os;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    real.mkdir(&root.old, 0o700).map_err(errno).map_err(at(Step::PivotRoot))?;
    // SAFETY: valid strings; pivot_root has no libc wrapper, hence the raw syscall.
    unsafe {
        check(libc::syscall(libc::SYS_pivot_root, root.dir.as_ptr(), root.old.as_ptr()))
            .map_err(at(Step::PivotRoot))?;
        check(libc::chdir(c"/".as_ptr()).into()).map_err(at(Step::PivotRoot))?;
        check(libc::umount2(c"/.old".as_ptr(), libc::MNT_DETACH).into()).map_err(at(Step::PivotRoot))?;
        libc::rmdir(c"/.old".as_ptr());
    }
    let read_only = (libc::MS_REMOUNT | libc::MS_RDONLY) | nosuid;
    real.mount(c"", c"/", c"", read_only, c"").map_err(errno).map_err(at(Step::ReadOnlyRoot))?;
    Ok(())
}

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(0)
}

fn write_file(path: &CStr, content: &[u8]) -> Result<(), i32> {
    // SAFETY: a valid path; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check(fd.into())?;
        let written = libc::write(fd, content.as_ptr().cast(), content.len());
        libc::close(fd);
        check(written as libc::c_long)
    }
}
