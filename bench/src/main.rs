//! `nimbus-bench`: measures nimbus against the budgets in ARCHITECTURE.md.
//!
//! See `bench/README.md` for what each figure means. Progress goes to stderr, the report
//! (Markdown, or JSON with `--json`) to stdout.

mod fixtures;
mod http;
mod proc;
mod report;
mod stats;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use proc::Nimbus;
use report::{Figures, Target};
use stats::{median, ns_to_ms, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Section {
    Ready,
    Warm,
    Throughput,
    Cold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Rt {
    Provided,
    Python,
    Node,
}

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Provided => "provided",
            Rt::Python => "python",
            Rt::Node => "node",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColdMode {
    /// UpdateFunctionConfiguration (a new environment variable) before each cold invoke:
    /// every existing environment becomes stale, as on AWS.
    Update,
    /// A fresh function for each cold invoke (created, invoked twice, deleted).
    Create,
}

/// Benchmarks nimbus: time to ready, idle memory, warm invoke latency, throughput, cold start.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The nimbus binary [default: <workspace>/target/release/nimbus].
    #[arg(long)]
    nimbus: Option<PathBuf>,
    /// Extra argument passed to `nimbus up` (repeatable).
    #[arg(long = "nimbus-arg", allow_hyphen_values = true)]
    nimbus_args: Vec<String>,
    /// The workspace root (for the default binary, the rust echo fixture and target/fixtures).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    root: PathBuf,
    /// Sections to run.
    #[arg(long, value_delimiter = ',', default_values = ["ready", "warm", "throughput", "cold"])]
    sections: Vec<Section>,
    /// Runtimes for the warm and cold sections.
    #[arg(long, value_delimiter = ',', default_values = ["provided", "python", "node"])]
    runtimes: Vec<Rt>,
    /// Runtimes for the throughput section.
    #[arg(long, value_delimiter = ',', default_values = ["provided", "python"])]
    throughput_runtimes: Vec<Rt>,
    /// Repeat everything this many times; each figure is the median over the passes.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Starts of nimbus for time-to-ready (after one untimed start).
    #[arg(long, default_value_t = 20)]
    ready_runs: usize,
    /// Health poll interval, microseconds.
    #[arg(long, default_value_t = 200)]
    poll_us: u64,
    /// Idle time after ready before reading RSS, seconds.
    #[arg(long, default_value_t = 1.0)]
    idle_secs: f64,
    /// Untimed invokes before the warm measurement.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Sequential invokes measured per runtime.
    #[arg(long, default_value_t = 5000)]
    invokes: usize,
    /// Concurrent keep-alive connections for the throughput section.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    concurrency: Vec<usize>,
    /// Measured seconds per throughput level.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Untimed seconds before each throughput level (lets environments start).
    #[arg(long, default_value_t = 1.0)]
    tput_warmup: f64,
    /// Cold invokes per runtime.
    #[arg(long, default_value_t = 20)]
    cold_runs: usize,
    /// How to force a new environment for each cold invoke.
    #[arg(long, value_enum, default_value_t = ColdMode::Update)]
    cold_mode: ColdMode,
    /// Runs of each interpreter start (`python3 -S -c pass`, `node -e 0`, `/bin/true`).
    #[arg(long, default_value_t = 20)]
    interp_runs: usize,
    /// A prebuilt `bootstrap` for the provided runtime (else the rust echo fixture is built).
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    #[arg(long, default_value = "python3.11")]
    python_runtime: String,
    #[arg(long, default_value = "nodejs20.x")]
    node_runtime: String,
    #[arg(long, default_value = "provided.al2023")]
    provided_runtime: String,
    /// MemorySize of the benchmark functions, MB.
    #[arg(long, default_value_t = 128)]
    memory_size: u32,
    /// JSON instead of Markdown on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

const PAYLOAD: &[u8] = br#"{"bench":"nimbus","n":42,"ok":true}"#;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let args = Args::parse();
    if let Err(e) = proc::install_signal_handler() {
        eprintln!("nimbus-bench: warning: no signal handler: {e:#}");
    }
    match run(args) {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("nimbus-bench: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(mut args: Args) -> Result<String> {
    args.root = args.root.canonicalize().unwrap_or(args.root.clone());
    args.sections.sort();
    args.sections.dedup();
    args.runtimes.sort();
    args.runtimes.dedup();
    let bin = args.nimbus.clone().unwrap_or_else(|| args.root.join("target/release/nimbus"));
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bin nimbus` or pass --nimbus",
            bin.display()
        );
    }
    let mut machine = report::Machine::detect(&args.root);
    // Run a private copy, so that a rebuild of target/release/nimbus during a run cannot mix
    // two builds in one report.
    let bin_dir = proc::TempDir::new("bin")?;
    let bin_copy = bin_dir.0.join("nimbus");
    std::fs::copy(&bin, &bin_copy).with_context(|| format!("copy {}", bin.display()))?;
    let bin = bin_copy;

    let needs_provided = (args.sections.contains(&Section::Warm) || args.sections.contains(&Section::Cold))
        && args.runtimes.contains(&Rt::Provided)
        || args.sections.contains(&Section::Throughput) && args.throughput_runtimes.contains(&Rt::Provided);
    let bootstrap = match (&args.bootstrap, needs_provided) {
        (Some(b), _) => Some(b.clone()),
        (None, true) => {
            let manifest = fixtures::rust_echo_manifest(&args.root).context(
                "no rust echo fixture (tests/fixtures/rust-echo or bench/fixtures/rust-echo); \
                 pass --bootstrap or leave out the provided runtime",
            )?;
            Some(fixtures::build_rust_echo(&args.root, &manifest)?)
        }
        (None, false) => None,
    };

    let mut passes = Vec::new();
    for pass in 0..args.repeat.max(1) {
        eprintln!("nimbus-bench: pass {}/{}", pass + 1, args.repeat.max(1));
        passes.push(run_pass(&args, &bin, bootstrap.as_deref(), pass));
    }
    let figures = report::aggregate(passes);
    machine.loadavg_end = report::loadavg();
    let has = |s: Section| args.sections.contains(&s);
    let mut config = Vec::new();
    if has(Section::Ready) {
        config.push(format!(
            "{} starts (after 1 untimed), health polled every {} µs",
            args.ready_runs, args.poll_us
        ));
    }
    if has(Section::Warm) {
        config.push(format!("{} warm-up + {} sequential invokes per runtime", args.warmup, args.invokes));
    }
    if has(Section::Throughput) {
        config.push(format!(
            "throughput {} s per level (after {} s warm-up) at {:?} connections",
            args.duration, args.tput_warmup, args.concurrency
        ));
    }
    if has(Section::Cold) {
        config.push(format!(
            "{} cold invokes per runtime ({:?} mode), {} runs of each interpreter start",
            args.cold_runs, args.cold_mode, args.interp_runs
        ));
    }
    if has(Section::Warm) || has(Section::Throughput) || has(Section::Cold) {
        config.push(format!(
            "payload {} bytes, MemorySize {} MB, runtimes {}, {}, {}",
            PAYLOAD.len(),
            args.memory_size,
            args.provided_runtime,
            args.python_runtime,
            args.node_runtime
        ));
    }
    let config = config.join("; ");
    let passes = args.repeat.max(1);
    if let Some(p) = &args.json_out {
        std::fs::write(p, report::json(&machine, &figures, passes, &config))
            .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(if args.json {
        report::json(&machine, &figures, passes, &config)
    } else {
        report::markdown(&machine, &figures, passes, &config)
    })
}

fn run_pass(args: &Args, bin: &Path, bootstrap: Option<&Path>, pass: usize) -> Figures {
    let mut f = Figures::default();
    if args.sections.contains(&Section::Ready) {
        if let Err(e) = ready_section(args, bin, pass, &mut f) {
            f.note(format!("ready section failed: {e:#}"));
        }
    }
    let invoke_sections = [Section::Warm, Section::Throughput, Section::Cold];
    if args.sections.iter().any(|s| invoke_sections.contains(s)) {
        if let Err(e) = invoke_sections_run(args, bin, bootstrap, pass, &mut f) {
            f.note(format!("invoke sections failed: {e:#}"));
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Time to ready and idle memory

fn ready_section(args: &Args, bin: &Path, pass: usize, f: &mut Figures) -> Result<()> {
    const S: &str = "Start-up and memory";
    let poll = Duration::from_micros(args.poll_us);
    let mut health = Vec::new();
    let mut line = Vec::new();
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    let mut runq = Vec::new();
    let mut shutdown = Vec::new();
    let mut leaked = 0;
    let mut not_graceful = 0;
    let mut first_line_text = None;
    // One untimed start first (page cache, dynamic loader).
    for i in 0..=args.ready_runs {
        let mut n = Nimbus::spawn(bin, &args.nimbus_args)?;
        let t = n.wait_ready(Duration::from_secs(10), poll)?;
        if i == 0 {
            n.stop();
            continue;
        }
        health.push(t.as_secs_f64() * 1e3);
        if let Some((on_cpu, waiting)) = n.sched_ms() {
            cpu.push(on_cpu);
            runq.push(waiting);
        }
        // The listening line may trail the first health answer by a hair; give it a moment.
        let t0 = Instant::now();
        while n.first_line.get().is_none() && t0.elapsed() < Duration::from_millis(200) {
            std::thread::sleep(Duration::from_micros(100));
        }
        if let Some((d, text)) = n.first_line_after_spawn() {
            line.push(d.as_secs_f64() * 1e3);
            first_line_text.get_or_insert(text);
        }
        std::thread::sleep(Duration::from_secs_f64(args.idle_secs));
        rss.push(n.rss_kib()? as f64 / 1024.0);
        let s = n.stop();
        shutdown.push(s.elapsed.as_secs_f64() * 1e3);
        leaked += s.leaked_children;
        not_graceful += usize::from(!s.graceful);
        eprintln!(
            "nimbus-bench: start {i}/{}: ready {:.2} ms, rss {:.1} MiB",
            args.ready_runs,
            health.last().copied().unwrap_or(f64::NAN),
            rss.last().copied().unwrap_or(f64::NAN)
        );
    }
    let h = Summary::of(&health);
    f.add(
        "ready.health_p50_ms",
        S,
        "`nimbus up` → first 200 from `/_nimbus/health`, median",
        "ms",
        h.p50,
        Target::le(20.0),
    );
    f.add("ready.health_p90_ms", S, "`nimbus up` → first 200 from `/_nimbus/health`, p90", "ms", h.p90, None);
    f.add(
        "ready.cpu_p50_ms",
        S,
        "CPU time nimbus used until ready (all its threads), median",
        "ms",
        median(&cpu),
        None,
    );
    f.add(
        "ready.runq_p50_ms",
        S,
        "time nimbus's threads waited for a CPU until ready (machine contention), median",
        "ms",
        median(&runq),
        None,
    );
    if line.is_empty() {
        f.note("nimbus printed no stdout line while starting");
    } else {
        f.add(
            "ready.line_p50_ms",
            S,
            "`nimbus up` → its \"listening\" stdout line, median",
            "ms",
            median(&line),
            None,
        );
    }
    if let (Some(t), 0) = (first_line_text, pass) {
        f.note(format!("nimbus's first stdout line: `{t}`"));
    }
    f.add(
        "ready.idle_rss_mib",
        S,
        format!("idle RSS ({} s after ready), median", fmt_secs(args.idle_secs)),
        "MiB",
        median(&rss),
        Target::le(12.0),
    );
    f.add("ready.shutdown_p50_ms", S, "SIGTERM → exit (idle), median", "ms", median(&shutdown), None);
    if leaked > 0 || not_graceful > 0 {
        f.note(format!(
            "start-up runs: {not_graceful} nimbus did not exit within 5 s of SIGTERM, \
             {leaked} child processes outlived nimbus (killed by the bench)"
        ));
    }
    Ok(())
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

// ---------------------------------------------------------------------------------------------
// Control plane

struct Api {
    client: http::Client,
}

impl Api {
    fn new(addr: SocketAddr) -> Result<Api> {
        Ok(Api { client: http::Client::connect(addr, IO_TIMEOUT)? })
    }

    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let r = self.client.request(method, path, &bytes)?;
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json().unwrap_or_else(|_| Value::String(r.body_str()))
        };
        Ok((r.status(), v))
    }

    fn create_function(
        &mut self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        memory: u32,
    ) -> Result<()> {
        let body = json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Role": "arn:aws:iam::000000000000:role/bench",
            "Handler": handler,
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
            "MemorySize": memory,
            "Timeout": 30,
        });
        let (status, v) = self.call("POST", "/2015-03-31/functions", Some(&body))?;
        if status != 201 && status != 200 {
            bail!("CreateFunction {name} ({runtime}) answered {status}: {v}");
        }
        self.wait_config(name, |c| match c["State"].as_str() {
            Some("Active") | None => Ok(true),
            Some("Failed") => bail!("function {name} failed: {}", c["StateReason"]),
            _ => Ok(false),
        })
    }

    fn update_env(&mut self, name: &str, value: &str) -> Result<()> {
        let body = json!({ "Environment": { "Variables": { "BENCH_ROUND": value } } });
        let path = format!("/2015-03-31/functions/{name}/configuration");
        let (status, v) = self.call("PUT", &path, Some(&body))?;
        if status != 200 {
            bail!("UpdateFunctionConfiguration {name} answered {status}: {v}");
        }
        self.wait_config(name, |c| match c["LastUpdateStatus"].as_str() {
            Some("Successful") | None => Ok(true),
            Some("Failed") => bail!("update of {name} failed: {}", c["LastUpdateStatusReason"]),
            _ => Ok(false),
        })
    }

    fn delete_function(&mut self, name: &str) -> Result<()> {
        let (status, v) = self.call("DELETE", &format!("/2015-03-31/functions/{name}"), None)?;
        if status != 204 && status != 200 {
            bail!("DeleteFunction {name} answered {status}: {v}");
        }
        Ok(())
    }

    fn wait_config(&mut self, name: &str, done: impl Fn(&Value) -> Result<bool>) -> Result<()> {
        let path = format!("/2015-03-31/functions/{name}/configuration");
        let t0 = Instant::now();
        loop {
            let (status, v) = self.call("GET", &path, None)?;
            if status != 200 {
                bail!("GetFunctionConfiguration {name} answered {status}: {v}");
            }
            if done(&v)? {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("{name} not settled after 60 s: {v}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn invoke_request(addr: SocketAddr, name: &str) -> Vec<u8> {
    http::request_bytes(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &addr.to_string(),
        &[],
        PAYLOAD,
    )
}

/// Sends one invoke and checks that it succeeded.
fn invoke(c: &mut http::Client, req: &[u8]) -> Result<http::Response> {
    let r = c.send(req)?;
    if r.status() != 200 {
        bail!("invoke answered {}: {}", r.status(), r.body_str());
    }
    if let Some(e) = r.head.header("x-amz-function-error") {
        bail!("function error {e}: {}", r.body_str());
    }
    Ok(r)
}

fn check_echo(r: &http::Response) -> Result<()> {
    let got = r.json()?;
    let want: Value = serde_json::from_slice(PAYLOAD)?;
    if got != want {
        bail!("echo returned {got}, sent {want}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Invoke sections: one nimbus for warm, throughput and cold

struct EchoFn {
    rt: Rt,
    runtime: String,
    handler: &'static str,
    zip: Vec<u8>,
}

fn function_specs(args: &Args, bootstrap: Option<&Path>, rts: &[Rt]) -> Result<Vec<EchoFn>> {
    rts.iter()
        .map(|&rt| {
            Ok(match rt {
                Rt::Python => EchoFn {
                    rt,
                    runtime: args.python_runtime.clone(),
                    handler: "lambda_function.handler",
                    zip: fixtures::python_echo_zip()?,
                },
                Rt::Node => EchoFn {
                    rt,
                    runtime: args.node_runtime.clone(),
                    handler: "index.handler",
                    zip: fixtures::node_echo_zip()?,
                },
                Rt::Provided => EchoFn {
                    rt,
                    runtime: args.provided_runtime.clone(),
                    handler: "bootstrap",
                    zip: fixtures::provided_echo_zip(
                        bootstrap.context("no bootstrap for the provided runtime")?,
                    )?,
                },
            })
        })
        .collect()
}

fn warm_name(rt: Rt) -> String {
    format!("bench-echo-{}", rt.name())
}

fn invoke_sections_run(
    args: &Args,
    bin: &Path,
    bootstrap: Option<&Path>,
    pass: usize,
    f: &mut Figures,
) -> Result<()> {
    let mut rts: Vec<Rt> = Vec::new();
    if args.sections.contains(&Section::Warm) || args.sections.contains(&Section::Cold) {
        rts.extend(&args.runtimes);
    }
    if args.sections.contains(&Section::Throughput) {
        rts.extend(&args.throughput_runtimes);
    }
    rts.sort();
    rts.dedup();
    let specs = function_specs(args, bootstrap, &rts)?;

    let mut n = Nimbus::spawn(bin, &args.nimbus_args)?;
    n.wait_ready(Duration::from_secs(10), Duration::from_millis(1))?;
    let addr = n.addr;
    let mut api = Api::new(addr)?;
    let mut ok_rts = Vec::new();
    for s in &specs {
        let name = warm_name(s.rt);
        let res =
            api.create_function(&name, &s.runtime, s.handler, &s.zip, args.memory_size).and_then(|()| {
                let mut c = http::Client::connect(addr, IO_TIMEOUT)?;
                let r = invoke(&mut c, &invoke_request(addr, &name))?;
                check_echo(&r)
            });
        match res {
            Ok(()) => ok_rts.push(s.rt),
            Err(e) => {
                f.note(format!("{} echo function unusable, skipped: {e:#}\n{}", s.rt.name(), n.log_tail()))
            }
        }
    }

    if args.sections.contains(&Section::Warm) {
        if let Err(e) = warm_section(args, addr, &ok_rts, f) {
            f.note(format!("warm section failed: {e:#}"));
        }
    }
    if args.sections.contains(&Section::Throughput) {
        let rts: Vec<Rt> = args.throughput_runtimes.iter().copied().filter(|r| ok_rts.contains(r)).collect();
        if let Err(e) = throughput_section(args, addr, &rts, f) {
            f.note(format!("throughput section failed: {e:#}"));
        }
    }
    if args.sections.contains(&Section::Cold) {
        let rts: Vec<Rt> = args.runtimes.iter().copied().filter(|r| ok_rts.contains(r)).collect();
        let specs: Vec<&EchoFn> = specs.iter().filter(|s| rts.contains(&s.rt)).collect();
        if let Err(e) = cold_section(args, &mut api, addr, &specs, pass, f) {
            f.note(format!("cold section failed: {e:#}"));
        }
    }
    if let Ok(kib) = n.rss_kib() {
        f.add(
            "after.rss_mib",
            "Memory under load",
            "nimbus RSS after the invoke sections (its own process, functions excluded)",
            "MiB",
            kib as f64 / 1024.0,
            None,
        );
    }
    let s = n.stop();
    if !s.graceful || s.leaked_children > 0 {
        f.note(format!(
            "invoke-section nimbus: exited gracefully: {}, in {:.0} ms; {} child processes \
             outlived it (killed by the bench)",
            s.graceful,
            s.elapsed.as_secs_f64() * 1e3,
            s.leaked_children
        ));
    }
    Ok(())
}

/// `count` sequential invokes on one connection; latencies in ns.
fn sequential(c: &mut http::Client, req: &[u8], count: usize) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        let r = c.send(req)?;
        let dt = t0.elapsed();
        if r.status() != 200 || r.head.header("x-amz-function-error").is_some() {
            bail!("invoke answered {}: {}", r.status(), r.body_str());
        }
        out.push(dt.as_nanos() as u64);
    }
    Ok(out)
}

fn warm_section(args: &Args, addr: SocketAddr, rts: &[Rt], f: &mut Figures) -> Result<()> {
    const S: &str = "Warm invoke latency (sequential, one keep-alive connection)";
    // The floor: the same client and request against an in-process echo server.
    {
        let server = http::EchoServer::start()?;
        let mut c = http::Client::connect(server.addr, IO_TIMEOUT)?;
        let req = invoke_request(server.addr, "floor");
        sequential(&mut c, &req, args.warmup)?;
        let ms: Vec<f64> = sequential(&mut c, &req, args.invokes)?.into_iter().map(ns_to_ms).collect();
        let s = Summary::of(&ms);
        f.add(
            "warm.floor.p50_ms",
            S,
            "client + loopback floor (in-process echo server), p50",
            "ms",
            s.p50,
            None,
        );
        f.add(
            "warm.floor.p99_ms",
            S,
            "client + loopback floor (in-process echo server), p99",
            "ms",
            s.p99,
            None,
        );
    }
    for &rt in rts {
        let name = warm_name(rt);
        let req = invoke_request(addr, &name);
        let mut c = http::Client::connect(addr, IO_TIMEOUT)?;
        eprintln!("nimbus-bench: warm {}: {} invokes …", rt.name(), args.invokes);
        sequential(&mut c, &req, args.warmup)?;
        let ms: Vec<f64> = sequential(&mut c, &req, args.invokes)?.into_iter().map(ns_to_ms).collect();
        let s = Summary::of(&ms);
        let (t50, t99) = match rt {
            Rt::Provided => (Target::le(0.3), Target::le(1.0)),
            Rt::Python => (Target::le(0.6), None),
            Rt::Node => (None, None),
        };
        let r = rt.name();
        f.add(format!("warm.{r}.p50_ms"), S, format!("{r}: p50"), "ms", s.p50, t50);
        f.add(format!("warm.{r}.p90_ms"), S, format!("{r}: p90"), "ms", s.p90, None);
        f.add(format!("warm.{r}.p99_ms"), S, format!("{r}: p99"), "ms", s.p99, t99);
        f.add(format!("warm.{r}.max_ms"), S, format!("{r}: max"), "ms", s.max, None);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Throughput

struct Level {
    completed: usize,
    errors: usize,
    first_error: Option<String>,
    latencies_ms: Vec<f64>,
}

/// `conc` connections invoking back to back; completions within the measured window count.
fn throughput(
    addr: SocketAddr,
    req: &[u8],
    conc: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Level> {
    let barrier = Arc::new(Barrier::new(conc + 1));
    let results = std::thread::scope(|scope| -> Result<Vec<Level>> {
        let mut handles = Vec::new();
        for _ in 0..conc {
            let barrier = barrier.clone();
            handles.push(scope.spawn(move || -> Result<Level> {
                let mut c = http::Client::connect(addr, IO_TIMEOUT);
                barrier.wait();
                let start = Instant::now();
                let mut lv = Level {
                    completed: 0,
                    errors: 0,
                    first_error: None,
                    latencies_ms: Vec::with_capacity(16 * 1024),
                };
                let c = c.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
                let (w_end, m_end) = (start + warmup, start + warmup + measure);
                loop {
                    let t0 = Instant::now();
                    if t0 >= m_end {
                        break;
                    }
                    let r = c.send(req);
                    let t1 = Instant::now();
                    let ok = match &r {
                        Ok(r) => r.status() == 200 && r.head.header("x-amz-function-error").is_none(),
                        Err(_) => false,
                    };
                    if t1 > w_end && t1 <= m_end {
                        if ok {
                            lv.completed += 1;
                            lv.latencies_ms.push((t1 - t0).as_secs_f64() * 1e3);
                        } else {
                            lv.errors += 1;
                            if lv.first_error.is_none() {
                                lv.first_error = Some(match &r {
                                    Ok(r) => format!("{}: {}", r.status(), r.body_str()),
                                    Err(e) => format!("{e:#}"),
                                });
                            }
                        }
                    }
                    if r.is_err() {
                        // Back off briefly rather than spin on a broken connection.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Ok(lv)
            }));
        }
        barrier.wait();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("client thread panicked"))?)
            .collect()
    })?;
    let mut all = Level { completed: 0, errors: 0, first_error: None, latencies_ms: Vec::new() };
    for lv in results {
        all.completed += lv.completed;
        all.errors += lv.errors;
        all.first_error = all.first_error.or(lv.first_error);
        all.latencies_ms.extend(lv.latencies_ms);
    }
    Ok(all)
}

fn throughput_section(args: &Args, addr: SocketAddr, rts: &[Rt], f: &mut Figures) -> Result<()> {
    const S: &str = "Throughput (closed loop, N keep-alive connections)";
    let warmup = Duration::from_secs_f64(args.tput_warmup);
    let measure = Duration::from_secs_f64(args.duration);
    // What the client alone can drive on this machine (in-process echo server, 1 s per level).
    {
        let server = http::EchoServer::start()?;
        let req = invoke_request(server.addr, "floor");
        for &conc in &args.concurrency {
            let m = Duration::from_secs(1);
            let lv = throughput(server.addr, &req, conc, Duration::from_millis(200), m)?;
            f.add(
                format!("tput.floor.c{conc}.rps"),
                S,
                format!("client ceiling, {conc} conn (in-process echo server): invokes/s"),
                "/s",
                lv.completed as f64 / m.as_secs_f64(),
                None,
            );
        }
    }
    for &rt in rts {
        let r = rt.name();
        let req = invoke_request(addr, &warm_name(rt));
        for &conc in &args.concurrency {
            eprintln!("nimbus-bench: throughput {r} × {conc} …");
            let cpu0 = proc::self_cpu_secs();
            let t0 = Instant::now();
            let lv = throughput(addr, &req, conc, warmup, measure)?;
            let client_cores = (proc::self_cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
            let rps = lv.completed as f64 / measure.as_secs_f64();
            let s = Summary::of(&lv.latencies_ms);
            let target = if conc == 8 { Target::ge(5000.0) } else { None };
            f.add(
                format!("tput.{r}.c{conc}.rps"),
                S,
                format!("{r}, {conc} conn: invokes/s"),
                "/s",
                rps,
                target,
            );
            f.add(format!("tput.{r}.c{conc}.p50_ms"), S, format!("{r}, {conc} conn: p50"), "ms", s.p50, None);
            f.add(format!("tput.{r}.c{conc}.p99_ms"), S, format!("{r}, {conc} conn: p99"), "ms", s.p99, None);
            f.add(
                format!("tput.{r}.c{conc}.client_cores"),
                S,
                format!("{r}, {conc} conn: CPU used by the bench client itself"),
                "cores",
                client_cores,
                None,
            );
            if lv.errors > 0 {
                f.note(format!(
                    "throughput {r} × {conc}: {} failed invokes ({:.2} %), first: {}",
                    lv.errors,
                    100.0 * lv.errors as f64 / (lv.errors + lv.completed) as f64,
                    lv.first_error.unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cold start

fn cold_section(
    args: &Args,
    api: &mut Api,
    addr: SocketAddr,
    specs: &[&EchoFn],
    pass: usize,
    f: &mut Figures,
) -> Result<()> {
    const S: &str = "Cold start (invoke that starts a new environment)";
    let runs = args.interp_runs;
    // The runtimes' own start on this machine: spawn → first output (the start proper) and
    // spawn → exit (what `time python3 -S -c pass` shows), with a clean environment.
    let mut own: Vec<(Rt, f64)> = Vec::new();
    let add_own = |f: &mut Figures, key: &str, label: String, t: &[proc::StartTiming]| {
        let first = median(&t.iter().map(|t| t.first_output_ms).collect::<Vec<_>>());
        let exit = median(&t.iter().map(|t| t.exit_ms).collect::<Vec<_>>());
        f.add(
            format!("own.{key}.first_output_ms"),
            S,
            format!("{label}: spawn → first output, median"),
            "ms",
            first,
            None,
        );
        f.add(format!("own.{key}.exit_ms"), S, format!("{label}: spawn → exit, median"), "ms", exit, None);
        first
    };
    let t = proc::time_start(Path::new("/bin/echo"), &["x"], 2, runs)?;
    own.push((Rt::Provided, add_own(f, "exec", "`/bin/echo x` (fork+exec)".into(), &t)));
    if specs.iter().any(|s| s.rt == Rt::Python) {
        let py = fixtures::real_python()?;
        let t = proc::time_start(&py, &["-S", "-c", "import os;os.write(1,b'x')"], 2, runs)?;
        let label = format!("`{} -S -c …`", py.display());
        own.push((Rt::Python, add_own(f, "python", label, &t)));
        // For context: with `site` (and so the site-packages `.pth` files) as AWS runs it.
        let t = proc::time_start(&py, &["-c", "import os;os.write(1,b'x')"], 2, runs)?;
        let first = median(&t.iter().map(|t| t.first_output_ms).collect::<Vec<_>>());
        f.add(
            "own.python_site.first_output_ms",
            S,
            "the same without `-S` (site, `.pth` files): spawn → first output, median",
            "ms",
            first,
            None,
        );
    }
    if specs.iter().any(|s| s.rt == Rt::Node) {
        let node = fixtures::real_node()?;
        let t = proc::time_start(&node, &["-e", "process.stdout.write('x')"], 2, runs)?;
        let label = format!("`{} -e …`", node.display());
        own.push((Rt::Node, add_own(f, "node", label, &t)));
    }

    for spec in specs {
        let r = spec.rt.name();
        eprintln!("nimbus-bench: cold {r}: {} invokes …", args.cold_runs);
        let mut cold = Vec::new();
        let mut warm_after = Vec::new();
        let base = format!("bench-cold-{r}");
        if args.cold_mode == ColdMode::Update {
            api.create_function(&base, &spec.runtime, spec.handler, &spec.zip, args.memory_size)?;
        }
        for i in 0..args.cold_runs {
            let name = match args.cold_mode {
                ColdMode::Update => {
                    if i > 0 {
                        api.update_env(&base, &format!("{pass}-{i}"))?;
                    }
                    base.clone()
                }
                ColdMode::Create => {
                    let name = format!("{base}-{pass}-{i}");
                    api.create_function(&name, &spec.runtime, spec.handler, &spec.zip, args.memory_size)?;
                    name
                }
            };
            // Let environments made stale by the update wind down.
            std::thread::sleep(Duration::from_millis(20));
            let req = invoke_request(addr, &name);
            let mut c = http::Client::connect(addr, IO_TIMEOUT)?;
            let t0 = Instant::now();
            let resp = invoke(&mut c, &req)?;
            cold.push(t0.elapsed().as_secs_f64() * 1e3);
            check_echo(&resp)?;
            let t1 = Instant::now();
            invoke(&mut c, &req)?;
            warm_after.push(t1.elapsed().as_secs_f64() * 1e3);
            if args.cold_mode == ColdMode::Create {
                api.delete_function(&name)?;
            }
        }
        if args.cold_mode == ColdMode::Update {
            api.delete_function(&base)?;
        }
        let c = Summary::of(&cold);
        let warm = median(&warm_after);
        f.add(format!("cold.{r}.p50_ms"), S, format!("{r}: cold invoke, median"), "ms", c.p50, None);
        f.add(format!("cold.{r}.p90_ms"), S, format!("{r}: cold invoke, p90"), "ms", c.p90, None);
        if let Some(&(_, own_ms)) = own.iter().find(|(rt, _)| *rt == spec.rt) {
            let (label, target) = match spec.rt {
                Rt::Provided => ("over fork+exec to first output", None),
                Rt::Python => ("over `python3 -S` to first output", Target::le(10.0)),
                Rt::Node => ("over `node` to first output", Target::le(10.0)),
            };
            f.add(
                format!("cold.{r}.over_own_ms"),
                S,
                format!("{r}: cold median {label}"),
                "ms",
                c.p50 - own_ms,
                target,
            );
        }
        if c.p50 < 3.0 * warm {
            f.note(format!(
                "cold {r}: median {:.2} ms is less than 3× the next (warm) invoke's {:.2} ms; \
                 nimbus may not have started a new environment",
                c.p50, warm
            ));
        }
    }
    Ok(())
}
