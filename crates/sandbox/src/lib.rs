//! Runs a process under an isolation spec. Today the isolation is a plain process in its own
//! session, tied to nimbus's life (it dies when nimbus dies) and killed as a whole process group;
//! namespaces, mounts and cgroups arrive with the sandbox issue behind the same [`Spec`].

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment: nothing of nimbus's own environment leaks in.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// A started process: its pid doubles as its process-group id.
pub struct Sandboxed {
    pub child: tokio::process::Child,
    pub pid: u32,
}

/// Starts `spec` with piped stdout and stderr and a closed stdin.
pub fn spawn(spec: &Spec) -> io::Result<Sandboxed> {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, prctl); it allocates nothing and touches no locks.
    unsafe {
        command.pre_exec(|| {
            // Its own session and process group, so the whole tree can be signalled at once.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Die with nimbus even if nimbus is killed with SIGKILL.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id().ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    Ok(Sandboxed { child, pid })
}

/// Kills every process in the group led by `pid` (the runtime and anything it started).
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Peak resident memory of a process in MiB (`VmHWM`), for the REPORT line.
pub fn peak_memory_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn runs_with_only_the_given_environment() {
        let spec = Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo $ONLY:$HOME".into()],
            env: vec![("ONLY".into(), "yes".into())],
            cwd: "/".into(),
        };
        let mut sandboxed = spawn(&spec).unwrap();
        let mut out = String::new();
        sandboxed.child.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "yes:\n");
        assert!(sandboxed.child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn kill_group_stops_grandchildren_too() {
        let spec = Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 30 & echo $!; wait".into()],
            env: vec![],
            cwd: "/".into(),
        };
        let mut sandboxed = spawn(&spec).unwrap();
        let mut stdout = sandboxed.child.stdout.take().unwrap();
        let mut buf = [0u8; 32];
        let n = stdout.read(&mut buf).await.unwrap();
        let grandchild: i32 = std::str::from_utf8(&buf[..n]).unwrap().trim().parse().unwrap();
        kill_group(sandboxed.pid);
        sandboxed.child.wait().await.unwrap();
        // The grandchild is gone (or a zombie about to be reaped by init): signal 0 fails or it
        // is no longer in our group.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "grandchild still running: {state}");
    }

    #[test]
    fn reads_peak_memory_of_ourselves() {
        assert!(peak_memory_mib(std::process::id()).unwrap() > 0);
    }
}
