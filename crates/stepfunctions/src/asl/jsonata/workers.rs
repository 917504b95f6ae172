//! JSONata evaluated in worker processes, so that no expression can exhaust the server: a worker
//! is the nimbus binary run as `nimbus __jsonata-worker`, with its address space (RLIMIT_AS) and
//! CPU time (RLIMIT_CPU, per request) bounded and no core dumps. It reads one request per line on
//! stdin (a template and `$states`) and writes one answer per line on stdout. A worker that dies
//! (out of memory, a stack overflow) or overruns its deadline is killed and reaped, the state
//! fails with `States.QueryEvaluationError` and AWS's cause for the limit, and the next request
//! starts a fresh worker. Workers start on first use and stay warm: no process per evaluation.
//!
//! Without [`enable`] (unit tests, tools that embed the crate) expressions are evaluated in
//! process, with the same budgets but without the memory bound.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::eval::{self, MEMORY_LIMIT, STACK_LIMIT};
use super::{expression, States, ERROR};
use crate::asl::Failure;

/// The argument that makes the nimbus binary a worker.
pub const WORKER_ARG: &str = "__jsonata-worker";
/// Address space a worker may add to what it has when it starts.
const MEMORY_BUDGET: u64 = 512 << 20;
/// CPU seconds one request may use before the kernel ends the worker (SIGXCPU).
const CPU_BUDGET_S: u64 = eval::TIMEOUT_MS / 1000 + 2;
/// Wall-clock time one request may take before the worker is killed: jsonata-core's own clock
/// is checked between nodes, so one long builtin call could outrun it.
const DEADLINE: Duration = Duration::from_millis(eval::TIMEOUT_MS + 2_000);
/// The largest answer a worker hands back (JSON bytes): about AWS's memory limit, which refuses
/// `MAX_SEQUENCE` + 1 numbers.
const MAX_ANSWER: usize = eval::MAX_SEQUENCE * 8;
/// What a request no worker could take is reported with.
const NO_WORKER: &str = "U1002: The JSONata worker process could not be started";
/// How long an answer is waited for on the async runtime's own thread.
const QUICK_MS: i32 = 5;
/// What a worker that ran out of time is reported with (jsonata-core's own words for it).
const TIMEOUT: &str = "D1012: Evaluation timeout after 5000 milliseconds. Check for infinite loop";

static POOL: OnceLock<Pool> = OnceLock::new();

/// Evaluates JSONata in workers that run `program` (the nimbus binary) with [`WORKER_ARG`].
pub fn enable(program: PathBuf) {
    let size = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    let _ = POOL.set(Pool::new(program, vec![WORKER_ARG.into()], size, DEADLINE));
}

pub(super) fn fill(template: &Value, states: &States<'_>, field: &str) -> Result<Value, Failure> {
    match POOL.get() {
        Some(pool) => pool.fill(template, states, field),
        None => eval::fill(template, states, field),
    }
}

/// Worker processes, started as needed (the second only while the first is busy).
pub struct Pool {
    program: PathBuf,
    args: Vec<String>,
    deadline: Duration,
    slots: Vec<Mutex<Option<Worker>>>,
    next: AtomicUsize,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Why a worker stopped answering.
enum Ended {
    Died,
    Late,
}

impl Pool {
    pub fn new(program: PathBuf, args: Vec<String>, size: usize, deadline: Duration) -> Pool {
        let slots = (0..size.max(1)).map(|_| Mutex::new(None)).collect();
        Pool { program, args, deadline, slots, next: AtomicUsize::new(0) }
    }

    pub fn fill(&self, template: &Value, states: &States<'_>, field: &str) -> Result<Value, Failure> {
        let answer =
            self.exchange(&request(template, states, field)).map_err(|why| limit(template, field, why))?;
        let Ok(mut answer) = serde_json::from_slice::<Value>(&answer) else {
            // serde_json refuses JSON nested deeper than 128 levels: the server never holds one.
            return Err(limit(template, field, STACK_LIMIT));
        };
        match answer.get_mut("ok") {
            Some(value) => Ok(value.take()),
            None => Err(Failure::new(
                answer["error"].as_str().unwrap_or(ERROR),
                answer["cause"].as_str().unwrap_or_default(),
            )),
        }
    }

    /// One request and its answer; `Err` holds AWS's cause for the limit the worker hit.
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, &'static str> {
        let mut slot = self.slot();
        // A worker found dead when written to (nothing ends an idle one) is replaced once.
        for _ in 0..2 {
            let worker = match slot.as_mut() {
                Some(worker) => worker,
                None => slot.insert(self.spawn().map_err(|_| NO_WORKER)?),
            };
            if worker.stdin.write_all(request).and_then(|()| worker.stdin.flush()).is_err() {
                stop(slot.take(), Ended::Died);
                continue;
            }
            return match worker.answer(self.deadline) {
                Ok(answer) => Ok(answer),
                Err(ended) => Err(stop(slot.take(), ended)),
            };
        }
        Err(NO_WORKER)
    }

    /// A free worker's slot, else (waiting off the async runtime) the next one in turn.
    fn slot(&self) -> MutexGuard<'_, Option<Worker>> {
        for slot in &self.slots {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        blocking(|| slot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the worker has no pipes"));
        };
        Ok(Worker { child, stdin, stdout: BufReader::new(stdout) })
    }
}

impl Worker {
    fn answer(&mut self, deadline: Duration) -> Result<Vec<u8>, Ended> {
        let until = Instant::now() + deadline;
        let fd = self.stdout.get_ref().as_raw_fd();
        // Most answers come within a millisecond, a few more on a busy machine; a longer wait
        // leaves the async runtime's thread (handing it over costs more than that wait).
        if self.stdout.buffer().is_empty() && !readable(fd, QUICK_MS) && !blocking(|| wait(fd, until)) {
            return Err(Ended::Late);
        }
        let mut line = Vec::new();
        match self.stdout.read_until(b'\n', &mut line) {
            Ok(_) if line.ends_with(b"\n") => Ok(line),
            _ => Err(Ended::Died),
        }
    }
}

/// Kills and reaps a worker; AWS's cause for what ended it.
fn stop(worker: Option<Worker>, ended: Ended) -> &'static str {
    let Some(mut worker) = worker else { return MEMORY_LIMIT };
    let _ = worker.child.kill();
    let signal = worker.child.wait().ok().and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    match (ended, signal) {
        (Ended::Late, _) | (_, Some(libc::SIGXCPU)) => TIMEOUT,
        (_, Some(libc::SIGSEGV)) => STACK_LIMIT,
        // An allocation past RLIMIT_AS aborts the worker.
        _ => MEMORY_LIMIT,
    }
}

/// Runs `f`, which blocks, without holding up the async runtime's other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn readable(fd: i32, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `poll` is one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, timeout_ms) > 0 }
}

fn wait(fd: i32, until: Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if readable(fd, left.as_millis().min(i32::MAX as u128) as i32 + 1) {
            return true;
        }
    }
}

/// The failure for a limit a worker hit. The worker does not say which of the template's
/// expressions was running when it died, so only a lone expression is named.
fn limit(template: &Value, field: &str, why: &str) -> Failure {
    let mut found = Vec::new();
    expressions(template, field.to_owned(), &mut found);
    match found.as_slice() {
        [(expr, field)] => eval::threw(expr, field, why),
        _ => Failure::new(
            ERROR,
            format!("A JSONata expression specified for the field '{field}' threw an error during evaluation: {why}"),
        ),
    }
}

/// The template's expressions with their fields (up to two: enough to tell a lone one).
fn expressions(template: &Value, field: String, found: &mut Vec<(String, String)>) {
    match template {
        Value::String(text) => found.extend(expression(text).map(|e| (e.to_owned(), field))),
        Value::Object(fields) => {
            for (key, value) in fields {
                if found.len() < 2 {
                    expressions(value, format!("{field}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if found.len() < 2 {
                    expressions(item, format!("{field}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// A request: one JSON object on one line (serde_json escapes newlines inside strings).
fn request(template: &Value, states: &States<'_>, field: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"field\":");
    let _ = serde_json::to_writer(&mut out, field);
    let parts = [
        ("template", Some(template)),
        ("input", Some(states.input)),
        ("result", states.result),
        ("errorOutput", states.error_output),
        ("context", Some(states.context)),
    ];
    for (name, value) in parts {
        if let Some(value) = value {
            let _ = write!(out, ",\"{name}\":");
            let _ = serde_json::to_writer(&mut out, value);
        }
    }
    out.extend_from_slice(b"}\n");
    out
}

/// The worker: limits itself, then answers requests until stdin closes (nimbus stopped).
pub fn serve() -> ExitCode {
    limit_memory();
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        if !matches!(input.read_line(&mut line), Ok(n) if n > 0) {
            return ExitCode::SUCCESS;
        }
        limit_cpu();
        if output.write_all(&answer(&line)).and_then(|()| output.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

/// A worker's answer to one request line: `{"ok": value}` or `{"error", "cause"}`.
pub fn answer(line: &str) -> Vec<u8> {
    let outcome = match serde_json::from_str::<Value>(line) {
        Ok(request) => {
            let field = request["field"].as_str().unwrap_or_default();
            let states = States {
                input: &request["input"],
                result: request.get("result"),
                error_output: request.get("errorOutput"),
                context: &request["context"],
            };
            let template = &request["template"];
            // A panic in the library fails this evaluation, not the worker.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| eval::fill(template, &states, field)))
                .unwrap_or_else(|_| Err(limit(template, field, "U1000: The evaluation failed")))
                .and_then(|value| {
                    let mut out = b"{\"ok\":".to_vec();
                    let _ = serde_json::to_writer(&mut out, &value);
                    out.extend_from_slice(b"}\n");
                    if out.len() > MAX_ANSWER {
                        return Err(limit(template, field, MEMORY_LIMIT));
                    }
                    Ok(out)
                })
        }
        Err(e) => Err(Failure::runtime(format!("The JSONata worker could not read its request: {e}"))),
    };
    outcome.unwrap_or_else(|failure| {
        let mut out =
            serde_json::to_vec(&serde_json::json!({"error": failure.error, "cause": failure.cause}))
                .unwrap_or_default();
        out.push(b'\n');
        out
    })
}

/// The address space the worker has at start, plus [`MEMORY_BUDGET`]; no core files.
fn limit_memory() {
    // SAFETY: sysconf has no memory arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(0);
    set_limit(libc::RLIMIT_AS, pages * page + MEMORY_BUDGET, true);
    set_limit(libc::RLIMIT_CORE, 0, true);
}

/// The CPU time used so far plus [`CPU_BUDGET_S`]: past it the kernel sends SIGXCPU.
fn limit_cpu() {
    // SAFETY: getrusage writes one rusage into memory we own.
    let used = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1) as u64
    };
    set_limit(libc::RLIMIT_CPU, used + CPU_BUDGET_S, false);
}

/// Sets a soft limit (and the hard one with it when `hard`, for limits never raised again).
fn set_limit(resource: libc::__rlimit_resource_t, value: u64, hard: bool) {
    // SAFETY: getrlimit and setrlimit read and write one rlimit we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(resource, &mut limit) != 0 {
            return;
        }
        limit.rlim_cur = value.min(limit.rlim_max);
        if hard {
            limit.rlim_max = limit.rlim_cur;
        }
        libc::setrlimit(resource, &limit);
    }
}

#[cfg(test)]
mod tests;
