//! Starting and reliably stopping nimbus.
//!
//! Every nimbus the bench starts:
//! - runs in its own process group, with `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the bench;
//! - is registered in a global list that the SIGINT/SIGTERM handler drains (see
//!   [`install_signal_handler`]);
//! - is stopped on `Drop`: SIGTERM, a grace period, then SIGKILL of the process, its group and
//!   every descendant seen before the stop (function environments may live in their own groups).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http;

/// Processes (pid) and temporary directories to clean up on a signal.
static LIVE: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());
static SEQ: AtomicUsize = AtomicUsize::new(0);

fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid at worst yields ESRCH.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// `(ppid, state, starttime)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(i32, char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    Some((ppid, state, start))
}

/// Whether `pid` still runs (exists and is not a zombie).
fn running(pid: i32) -> bool {
    matches!(stat(pid), Some((_, st, _)) if st != 'Z' && st != 'X')
}

/// All descendants of `root` with their start times (to guard against pid reuse).
pub fn descendants(root: i32) -> Vec<(i32, u64)> {
    let mut children: HashMap<i32, Vec<(i32, u64)>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((ppid, _, start)) = stat(pid) {
                children.entry(ppid).or_default().push((pid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &(c, start) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push((c, start));
            stack.push(c);
        }
    }
    out
}

/// What happened when a nimbus was stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shutdown {
    /// It exited by itself within the grace period after SIGTERM.
    pub graceful: bool,
    /// SIGTERM to exit.
    pub elapsed: Duration,
    /// Descendants still running after nimbus exited (killed by the bench).
    pub leaked_children: usize,
}

/// SIGTERM, wait up to `grace`, SIGKILL; then SIGKILL the group and leftover descendants.
/// `reap` is called while waiting so that a `Child` can be reaped (pass a no-op otherwise).
fn terminate(pid: i32, grace: Duration, mut reap: impl FnMut() -> bool) -> Shutdown {
    let desc = descendants(pid);
    let t0 = Instant::now();
    send_signal(pid, libc::SIGTERM);
    let mut graceful = false;
    while t0.elapsed() < grace {
        if reap() || !running(pid) {
            graceful = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed();
    if !graceful {
        send_signal(pid, libc::SIGKILL);
    }
    // Descendants that outlived nimbus (allowing a moment for ones already dying).
    let alive = |desc: &[(i32, u64)]| -> Vec<i32> {
        desc.iter()
            .filter(
                |(c, start)| matches!(stat(*c), Some((_, st, s)) if s == *start && st != 'Z' && st != 'X'),
            )
            .map(|(c, _)| *c)
            .collect()
    };
    let t1 = Instant::now();
    let mut leaked = alive(&desc);
    while !leaked.is_empty() && t1.elapsed() < Duration::from_millis(100) {
        std::thread::sleep(Duration::from_millis(5));
        leaked = alive(&desc);
    }
    // The process group (children that did not move elsewhere), then the rest.
    send_signal(-pid, libc::SIGKILL);
    for &c in &leaked {
        send_signal(c, libc::SIGKILL);
    }
    let _ = reap();
    Shutdown { graceful, elapsed, leaked_children: leaked.len() }
}

/// On SIGINT/SIGTERM/SIGHUP: stop every registered nimbus, remove temporary directories, exit 130.
pub fn install_signal_handler() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                eprintln!("nimbus-bench: could not install signal handlers");
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        eprintln!("\nnimbus-bench: interrupted, stopping nimbus …");
        let live: Vec<(i32, PathBuf)> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        for (pid, dir) in live {
            terminate(pid, Duration::from_secs(3), || false);
            let _ = fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    })?;
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound and released; the window for a race is tiny).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!(
            "nimbus-bench-{}-{tag}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running `nimbus up`.
pub struct Nimbus {
    child: Child,
    pub pid: i32,
    pub addr: SocketAddr,
    pub spawned_at: Instant,
    /// When the first stdout line arrived, and the line.
    pub first_line: Arc<OnceLock<(Instant, String)>>,
    dir: TempDir,
    stopped: Option<Shutdown>,
}

impl Nimbus {
    /// Spawns `bin up --host 127.0.0.1 --port P --data-dir <tmp>/data`.
    pub fn spawn(bin: &Path, extra_args: &[String]) -> Result<Nimbus> {
        let dir = TempDir::new("nimbus")?;
        let data = dir.0.join("data");
        let port = free_port()?;
        let stderr = File::create(dir.0.join("stderr.log"))?;
        let mut stdout_log = File::create(dir.0.join("stdout.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("up")
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--data-dir"])
            .arg(&data)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec; it only calls prctl(2),
        // which is async-signal-safe, and touches no memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // Hold the lock across spawn so a signal cannot slip between spawn and registration.
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        let pid = child.id() as i32;
        live.push((pid, dir.0.clone()));
        drop(live);

        let first_line: Arc<OnceLock<(Instant, String)>> = Arc::new(OnceLock::new());
        let fl = first_line.clone();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        // Drain stdout for the whole life of the process so that nimbus never blocks on a full
        // pipe; remember when the first line ("listening on …") arrived.
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let now = Instant::now();
                        let _ = fl.set((now, line.trim_end().to_string()));
                        let _ = stdout_log.write_all(line.as_bytes());
                    }
                }
            }
        });
        Ok(Nimbus {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            spawned_at,
            first_line,
            dir,
            stopped: None,
        })
    }

    /// Polls `GET /_nimbus/health` every `interval` until it answers 200 with status "ready".
    /// Returns the time from spawn to that answer.
    pub fn wait_ready(&mut self, timeout: Duration, interval: Duration) -> Result<Duration> {
        let req = http::request_bytes("GET", "/_nimbus/health", &self.addr.to_string(), &[], b"");
        let deadline = self.spawned_at + timeout;
        let mut last_err = String::from("no answer");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("nimbus exited with {status} before it was ready: {}\n{}", last_err, self.log_tail());
            }
            if let Ok(s) = TcpStream::connect(self.addr) {
                let _ = s.set_nodelay(true);
                match health_once(s, &req) {
                    Ok(()) => return Ok(self.spawned_at.elapsed()),
                    Err(e) => last_err = format!("{e:#}"),
                }
            }
            if Instant::now() > deadline {
                bail!("nimbus not ready after {timeout:?}: {last_err}\n{}", self.log_tail());
            }
            std::thread::sleep(interval);
        }
    }

    /// Time from spawn to the first stdout line, if one has arrived.
    pub fn first_line_after_spawn(&self) -> Option<(Duration, String)> {
        self.first_line.get().map(|(t, l)| (t.saturating_duration_since(self.spawned_at), l.clone()))
    }

    /// Resident set size in KiB (`VmRSS` from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        read_status_kib(self.pid, "VmRSS:")
    }

    /// Time nimbus's live threads have spent on a CPU and waiting for one (run-queue), in ms,
    /// summed from `/proc/<pid>/task/*/schedstat`.
    pub fn sched_ms(&self) -> Option<(f64, f64)> {
        sched_ms(self.pid)
    }

    /// The last lines of nimbus's stdout and stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "stderr.log"] {
            let tail = tail_file(&self.dir.0.join(name), 3000);
            if !tail.trim().is_empty() {
                out.push_str(&format!("--- nimbus {name} (tail) ---\n{tail}\n"));
            }
        }
        out
    }

    /// Stops nimbus (idempotent).
    pub fn stop(&mut self) -> Shutdown {
        if let Some(s) = self.stopped {
            return s;
        }
        let child = &mut self.child;
        let s = terminate(self.pid, Duration::from_secs(5), || matches!(child.try_wait(), Ok(Some(_))));
        let _ = self.child.wait();
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|(p, _)| *p != self.pid);
        }
        self.stopped = Some(s);
        s
    }
}

impl Drop for Nimbus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn health_once(mut s: TcpStream, req: &[u8]) -> Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(req)?;
    let mut buf = Vec::new();
    let mut scratch = [0u8; 4096];
    let (head, hlen) = loop {
        if let Some(h) = http::parse_head(&buf)? {
            break h;
        }
        let n = s.read(&mut scratch)?;
        if n == 0 {
            bail!("health: connection closed");
        }
        buf.extend_from_slice(&scratch[..n]);
    };
    if head.status != 200 {
        bail!("health answered {}", head.status);
    }
    let want = head.content_length.unwrap_or(0);
    while buf.len() < hlen + want {
        let n = s.read(&mut scratch)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&scratch[..n]);
    }
    let v: serde_json::Value = serde_json::from_slice(&buf[hlen..]).context("health body is not JSON")?;
    match v.get("status").and_then(|s| s.as_str()) {
        Some("ready") => Ok(()),
        other => bail!("health status {other:?}"),
    }
}

fn sched_ms(pid: i32) -> Option<(f64, f64)> {
    let mut on_cpu = 0u64;
    let mut waiting = 0u64;
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(s) = fs::read_to_string(e.path().join("schedstat")) else {
            continue;
        };
        let mut f = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        on_cpu += f.next().unwrap_or(0);
        waiting += f.next().unwrap_or(0);
    }
    Some((on_cpu as f64 / 1e6, waiting as f64 / 1e6))
}

fn read_status_kib(pid: i32, key: &str) -> Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} missing in /proc/{pid}/status"))
}

fn tail_file(p: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(p) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// CPU time (user + system) this process has used so far, in seconds.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: sysconf(3) has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let s = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    (ticks(11) + ticks(12)) as f64 / hz
}

/// Spawn → first byte on stdout, and spawn → exit, of one run, in ms.
#[derive(Debug, Clone, Copy)]
pub struct StartTiming {
    pub first_output_ms: f64,
    pub exit_ms: f64,
}

/// Times `program args…` `runs` times after `warmup` untimed runs. The environment is cleared
/// (only `PATH` is kept) because nimbus starts function processes with a clean environment, and
/// variables such as `NODE_EXTRA_CA_CERTS` change an interpreter's start by tens of ms.
pub fn time_start(program: &Path, args: &[&str], warmup: usize, runs: usize) -> Result<Vec<StartTiming>> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t0 = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("run {}", program.display()))?;
        let mut stdout = child.stdout.take().context("no stdout pipe")?;
        let mut byte = [0u8; 1];
        let got = stdout.read(&mut byte)?;
        let first = t0.elapsed();
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        let status = child.wait()?;
        let exit = t0.elapsed();
        if !status.success() || got == 0 {
            bail!("{} {:?} exited with {status} (output: {got} bytes)", program.display(), args);
        }
        if i >= warmup {
            out.push(StartTiming {
                first_output_ms: first.as_secs_f64() * 1e3,
                exit_ms: exit.as_secs_f64() * 1e3,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_self() {
        let me = std::process::id() as i32;
        let (ppid, state, start) = stat(me).unwrap();
        assert!(ppid > 0);
        assert!(state == 'R' || state == 'S');
        assert!(start > 0);
        assert!(running(me));
        assert!(read_status_kib(me, "VmRSS:").unwrap() > 0);
        let t0 = Instant::now();
        let c0 = self_cpu_secs();
        while t0.elapsed() < Duration::from_millis(50) {}
        assert!(self_cpu_secs() > c0);
        let (cpu, wait) = sched_ms(me).unwrap();
        assert!(cpu > 0.0 && wait >= 0.0);
    }

    #[test]
    fn finds_and_kills_descendants() {
        let mut child =
            Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]).process_group(0).spawn().unwrap();
        let pid = child.id() as i32;
        let t0 = Instant::now();
        while descendants(pid).len() < 2 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let desc = descendants(pid);
        assert_eq!(desc.len(), 2, "{desc:?}");
        let s = terminate(pid, Duration::from_millis(500), || matches!(child.try_wait(), Ok(Some(_))));
        let _ = child.wait();
        // sh dies on SIGTERM; its sleeps outlive it and get SIGKILL.
        assert!(s.graceful);
        assert_eq!(s.leaked_children, 2);
        std::thread::sleep(Duration::from_millis(50));
        for (c, _) in desc {
            assert!(!running(c), "descendant {c} survived");
        }
    }

    #[test]
    fn times_a_process() {
        let v = time_start(Path::new("/bin/echo"), &["x"], 1, 3).unwrap();
        assert_eq!(v.len(), 3);
        assert!(v
            .iter()
            .all(|t| t.first_output_ms > 0.0 && t.first_output_ms <= t.exit_ms && t.exit_ms < 1000.0));
        assert!(time_start(Path::new("/bin/false"), &[], 0, 1).is_err());
        // No output is an error too: the first-output time would be meaningless.
        assert!(time_start(Path::new("/bin/true"), &[], 0, 1).is_err());
    }
}
