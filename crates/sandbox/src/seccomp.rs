//! The seccomp filter every sandboxed process runs under, in the spirit of Docker's default
//! profile: everything is allowed except the system calls that open kernel attack surface or
//! reach outside the environment (namespaces, mounts, keyrings, BPF, tracing, modules, the
//! clock, rebooting …). Those fail with `EPERM`, so programs see an ordinary permission error.
//!
//! Two stacked programs, because a seccompiler filter has one action for every match:
//! the deny list (`EPERM`), and `clone3` answered `ENOSYS`. Its flags live in a struct a filter
//! cannot read, and `ENOSYS` makes glibc (and Go, Rust, libuv) fall back to `clone`, whose flags
//! argument the deny list checks.
//!
//! The programs are compiled once per process; a spawn pays only the two `seccomp` calls in the
//! child (~0.25 ms: the kernel checks and JIT-compiles each program as it is installed). They allow only the native architecture: a 32-bit x86 (`int 0x80`) system call, which
//! would bypass the numbers below, kills the process, as seccompiler's programs do.

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// Denied whatever their arguments.
#[rustfmt::skip]
pub const DENIED: &[(&str, libc::c_long)] = &[
    // New namespaces and joining others (`clone` is checked by its flags below).
    ("unshare", libc::SYS_unshare), ("setns", libc::SYS_setns),
    // Mounts, old and new API, and changing the root.
    ("mount", libc::SYS_mount), ("umount2", libc::SYS_umount2), ("pivot_root", libc::SYS_pivot_root),
    ("move_mount", libc::SYS_move_mount), ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen), ("fsconfig", libc::SYS_fsconfig), ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick), ("mount_setattr", libc::SYS_mount_setattr), ("chroot", libc::SYS_chroot),
    // Kernel keyrings.
    ("keyctl", libc::SYS_keyctl), ("add_key", libc::SYS_add_key), ("request_key", libc::SYS_request_key),
    // BPF programs, performance counters, io_uring: large kernel surfaces.
    ("bpf", libc::SYS_bpf), ("perf_event_open", libc::SYS_perf_event_open),
    ("io_uring_setup", libc::SYS_io_uring_setup), ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd), ("fanotify_init", libc::SYS_fanotify_init),
    // Reading or changing other processes.
    ("ptrace", libc::SYS_ptrace), ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev), ("kcmp", libc::SYS_kcmp),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    // Kernel modules and kexec.
    ("init_module", libc::SYS_init_module), ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module), ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    // The machine: power, swap, accounting, clocks, names, quotas, the kernel log, terminals.
    ("reboot", libc::SYS_reboot), ("swapon", libc::SYS_swapon), ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct), ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime), ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex), ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname), ("quotactl", libc::SYS_quotactl),
    ("quotactl_fd", libc::SYS_quotactl_fd), ("nfsservctl", libc::SYS_nfsservctl),
    ("syslog", libc::SYS_syslog), ("vhangup", libc::SYS_vhangup),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    // File handles bypass the directory permissions on the way to a file.
    ("open_by_handle_at", libc::SYS_open_by_handle_at), ("name_to_handle_at", libc::SYS_name_to_handle_at),
];

/// x86_64's own: port I/O and obsolete calls.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const DENIED_ARCH: &[(&str, libc::c_long)] = &[
    ("iopl", libc::SYS_iopl), ("ioperm", libc::SYS_ioperm), ("uselib", libc::SYS_uselib),
    ("ustat", libc::SYS_ustat), ("sysfs", libc::SYS_sysfs), ("_sysctl", libc::SYS__sysctl),
];
#[cfg(not(target_arch = "x86_64"))]
pub const DENIED_ARCH: &[(&str, libc::c_long)] = &[];

/// `clone` is denied with any of these flags.
const NEW_NAMESPACES: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// The personalities Docker allows: Linux, 32-bit Linux, the 2.6-uname flag, and the query.
/// Others (`ADDR_NO_RANDOMIZE`, `READ_IMPLIES_EXEC` …) weaken the process's own hardening.
const PERSONALITIES: [u64; 5] = [0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// On x86_64 the x32 ABI reaches the same calls with this bit set, plus a few of its own numbers
/// (ptrace 521, kexec_load 528, process_vm_readv/writev 539/540). Most kernels leave x32 out;
/// only those that run it get the entries (installing costs ~0.6 µs per BPF instruction).
#[cfg(target_arch = "x86_64")]
fn x32() -> Option<(libc::c_long, &'static [libc::c_long])> {
    const BIT: libc::c_long = 0x4000_0000;
    // SAFETY: getpid through the x32 entry point: no arguments, no effect; ENOSYS without x32.
    let enabled = unsafe { libc::syscall(BIT | libc::SYS_getpid) } >= 0;
    enabled.then_some((BIT, &[521, 528, 539, 540]))
}
#[cfg(not(target_arch = "x86_64"))]
fn x32() -> Option<(libc::c_long, &'static [libc::c_long])> {
    None
}

/// The compiled programs, built on first use: install them in order.
pub fn programs() -> io::Result<&'static [BpfProgram]> {
    static PROGRAMS: OnceLock<Result<Vec<BpfProgram>, String>> = OnceLock::new();
    match PROGRAMS.get_or_init(|| compile().map_err(|e| e.to_string())) {
        Ok(programs) => Ok(programs),
        Err(error) => Err(io::Error::other(format!("cannot build the seccomp filter: {error}"))),
    }
}

fn compile() -> Result<Vec<BpfProgram>, seccompiler::BackendError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let masked = |arg: u8, bit: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit), bit)
    };
    let clone_rules = NEW_NAMESPACES
        .iter()
        .map(|&flag| SeccompRule::new(vec![masked(0, flag as u64)?]))
        .collect::<Result<Vec<_>, _>>()?;
    let other_personality = SeccompRule::new(
        PERSONALITIES
            .iter()
            .map(|&p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, p))
            .collect::<Result<_, _>>()?,
    )?;

    let mut denied: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().chain(DENIED_ARCH).map(|&(_, nr)| (nr, vec![])).collect();
    denied.insert(libc::SYS_clone, clone_rules);
    denied.insert(libc::SYS_personality, vec![other_personality]);
    let mut fallback: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, vec![])].into();
    if let Some((bit, own)) = x32() {
        let x32: Vec<_> = denied.iter().map(|(nr, rules)| (nr | bit, rules.clone())).collect();
        denied.extend(x32);
        denied.extend(own.iter().map(|nr| (nr | bit, vec![])));
        fallback.insert(libc::SYS_clone3 | bit, vec![]);
    }

    let deny =
        SeccompFilter::new(denied, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)?;
    let enosys =
        SeccompFilter::new(fallback, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch)?;
    Ok(vec![deny.try_into()?, enosys.try_into()?])
}

/// Installs the programs on the calling thread. Runs in the cloned child after `no_new_privs`:
/// no allocation, and the errno on failure.
pub fn install(programs: &[BpfProgram]) -> Result<(), i32> {
    for program in programs {
        if let Err(error) = seccompiler::apply_filter(program) {
            return Err(match error {
                seccompiler::Error::Seccomp(e) | seccompiler::Error::Prctl(e) => {
                    e.raw_os_error().unwrap_or(0)
                }
                _ => libc::EINVAL,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(result: libc::c_long) -> i32 {
        if result < 0 {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    }

    /// Installs the filter on a fresh thread (filters are per thread without TSYNC, so the test
    /// harness is untouched) and runs `probe` there.
    fn filtered<T: Send + 'static>(probe: impl FnOnce() -> T + Send + 'static) -> T {
        let programs = programs().unwrap();
        std::thread::spawn(move || {
            // SAFETY: integer arguments only; no_new_privs lets an unprivileged thread filter itself.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, 0);
            install(programs).unwrap();
            probe()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn compiles_once_for_this_architecture_and_fits() {
        let first = programs().unwrap();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|p| !p.is_empty() && p.len() < 4096));
        assert!(std::ptr::eq(first, programs().unwrap()));
        let names: Vec<_> = DENIED.iter().chain(DENIED_ARCH).map(|(name, _)| *name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "a call listed twice");
    }

    #[test]
    fn denied_calls_fail_with_eperm_and_clone3_with_enosys() {
        let results = filtered(|| {
            // SAFETY: each call is refused by the filter before the kernel reads an argument;
            // without it, unshare(0) and the invalid clone flag mixes change nothing.
            unsafe {
                [
                    errno(libc::syscall(libc::SYS_unshare, 0)),
                    errno(libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0)),
                    errno(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
                    // CLONE_FS with a new user or mount namespace is EINVAL to the kernel itself.
                    errno(libc::syscall(libc::SYS_clone, libc::CLONE_NEWUSER | libc::CLONE_FS, 0, 0, 0, 0)),
                    errno(libc::syscall(libc::SYS_clone, libc::CLONE_NEWNS | libc::CLONE_FS, 0, 0, 0, 0)),
                    errno(libc::syscall(libc::SYS_personality, 0x0004_0000)),
                    errno(libc::syscall(libc::SYS_clone3, 0, 0)),
                ]
            }
        });
        let eperm = libc::EPERM;
        assert_eq!(results, [eperm, eperm, eperm, eperm, eperm, eperm, libc::ENOSYS]);
    }

    #[test]
    fn ordinary_work_still_runs_under_the_filter() {
        let (personality, child, thread) = filtered(|| {
            // SAFETY: the query form of personality changes nothing.
            let personality = unsafe { libc::personality(0xffff_ffff) };
            // Spawning goes through clone3 → ENOSYS → clone without namespace flags.
            let child = std::process::Command::new("/bin/sh").args(["-c", "exit 7"]).status().unwrap();
            let thread = std::thread::spawn(|| 42).join().unwrap();
            (personality, child.code(), thread)
        });
        assert!(personality >= 0);
        assert_eq!(child, Some(7));
        assert_eq!(thread, 42);
    }
}
