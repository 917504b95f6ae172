//! One execution environment: a runtime process for one function version, its Runtime API
//! listener, its output, its private temporary directory, and the invoke protocol over them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use nimbus_sandbox::{Child, Filesystem, Isolation, Limits, Mount, Network, NetworkKey, Reach, Sandbox};

use crate::engine::ApiAcceptor;
use crate::output::{LogTarget, Output};
use crate::runtime_api::{self, Event, Handle, InitOutcome, Reply};
use crate::runtimes::Launch;
use crate::telemetry::LogSink;
use crate::{logs, FunctionSpec, Invocation, InvokeResult};

/// Where code and runtime clients appear inside a sandbox, as on AWS.
pub const TASK_ROOT: &str = "/var/task";
pub const RUNTIME_ROOT: &str = "/var/runtime";
/// The Runtime API's address inside an isolated network: AWS's own.
const RUNTIME_API_ADDRESS: &str = "127.0.0.1:9001";
/// AWS's limit on processes and threads per environment.
const MAX_PIDS: u64 = 1024;

pub struct Environment {
    pub spec: Arc<FunctionSpec>,
    pub pid: u32,
    child: Arc<Child>,
    handle: Handle,
    output: Arc<Output>,
    exited: watch::Receiver<Option<Exit>>,
    /// The Runtime API server, and nimbus's API inside an isolated network.
    servers: Vec<tokio::task::JoinHandle<()>>,
    /// The private temporary directory of a plain-process environment.
    tmp_dir: Option<PathBuf>,
    /// The environment's own network (its route outside ends when this is dropped).
    _network: Option<Network>,
    /// A container image's root, held while the environment lives.
    _image: Option<Box<dyn std::any::Any + Send + Sync>>,
    init_duration: Duration,
    /// AWS reports the init duration on the first invocation's REPORT line only.
    reported_init: AtomicBool,
    /// Engine clock milliseconds when last released, for idle reaping.
    pub last_used_ms: AtomicU64,
}

/// How the runtime process ended.
#[derive(Debug, Clone)]
struct Exit {
    description: String,
    out_of_memory: bool,
}

/// Everything an environment needs besides its function.
pub struct StartContext<'a> {
    pub launch: Launch,
    /// A container image function's root (with `launch` from the image).
    pub image: Option<crate::PreparedImage>,
    pub sandbox: &'a Arc<Sandbox>,
    /// Host directory of the runtime clients, seen as `/var/runtime` in a sandbox.
    pub runtime_dir: &'a Path,
    pub tmp_root: &'a Path,
    pub init_timeout: Duration,
    pub echo_output: bool,
    /// Serves nimbus's API on a listener inside an isolated network.
    pub api_acceptor: Option<&'a ApiAcceptor>,
    /// The invocation that asked for this environment, named in its error payloads.
    pub request_id: &'a str,
    /// That invocation wants its log tail, which includes the initialisation's output.
    pub tail_log: bool,
    pub log_sink: Option<&'a Arc<dyn LogSink>>,
}

/// Why an environment did not become ready.
pub enum StartError {
    /// The runtime failed: the triggering invocation gets this as its function error.
    Failed(InvokeResult),
    /// nimbus itself could not set the environment up.
    Internal(String),
}

impl Environment {
    pub async fn start(spec: Arc<FunctionSpec>, cx: StartContext<'_>) -> Result<Environment, StartError> {
        let started = Instant::now();
        let internal = |e: std::io::Error| StartError::Internal(e.to_string());
        let sandboxed = cx.sandbox.isolation() == Isolation::Namespaces;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut servers = Vec::new();
        let (mut netns, mut own) = (None, None);
        let network = if sandboxed { own_network(&spec, cx.sandbox).await } else { None };
        let (address, handle) = match network.transpose().map_err(internal)? {
            Some(mut network) => {
                netns = Some(network.namespace.clone());
                let mut listeners = network.take_listeners().into_iter();
                let (runtime, api) = (listeners.next(), listeners.next());
                let (Some(runtime), Some(api)) = (runtime, api) else {
                    return Err(StartError::Internal("network without its two listeners".into()));
                };
                if let Some(acceptor) = cx.api_acceptor.and_then(|a| a.get()) {
                    servers.push(acceptor(api));
                }
                let (handle, server) = runtime_api::serve(runtime).map_err(internal)?;
                servers.push(server);
                own = Some(network);
                (RUNTIME_API_ADDRESS.to_owned(), handle)
            }
            None => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(internal)?;
                let address = listener.local_addr().map_err(internal)?.to_string();
                let (handle, server) = runtime_api::serve(listener).map_err(internal)?;
                servers.push(server);
                (address, handle)
            }
        };
        let stream_name = logs::stream_name(&spec.version);
        if cx.image.is_some() && !sandboxed {
            servers.iter().for_each(|s| s.abort());
            let message = format!(
                "RequestId: {} Error: container image functions run in nimbus's sandbox, and this nimbus runs plain processes (--isolation process, or no namespaces on this host)",
                cx.request_id
            );
            return Err(StartError::Failed(InvokeResult::unhandled("Runtime.InvalidEntrypoint", &message)));
        }
        let (filesystem, cwd, tmp_dir, tmp_path) = if let Some(image) = &cx.image {
            let mounts = spec
                .shared_mounts
                .iter()
                .map(|(source, target)| Mount {
                    source: source.clone(),
                    target: target.clone(),
                    writable: true,
                })
                .collect();
            let filesystem = Filesystem {
                mounts,
                tmp_size_mb: u64::from(spec.ephemeral_mb),
                resolv_conf: own.as_ref().and_then(|n: &Network| n.resolv_conf.clone()),
                image_root: Some(image.rootfs.clone()),
                ..Filesystem::default()
            };
            (filesystem, image.cwd.clone(), None, PathBuf::from("/tmp"))
        } else if sandboxed {
            let mut mounts = vec![
                Mount { source: spec.code_dir.clone(), target: TASK_ROOT.into(), writable: false },
                Mount { source: cx.runtime_dir.to_owned(), target: RUNTIME_ROOT.into(), writable: false },
            ];
            for (source, target) in &spec.shared_mounts {
                mounts.push(Mount { source: source.clone(), target: target.clone(), writable: true });
            }
            let filesystem = Filesystem {
                host_paths: cx.launch.host_paths.clone(),
                mounts,
                opt_layers: spec.layers.clone(),
                tmp_size_mb: u64::from(spec.ephemeral_mb),
                tmp_volume: None,
                tmp_under: None,
                resolv_conf: own.as_ref().and_then(|n: &Network| n.resolv_conf.clone()),
                image_root: None,
            };
            (filesystem, PathBuf::from(TASK_ROOT), None, PathBuf::from("/tmp"))
        } else {
            let tmp_dir = cx.tmp_root.join(&id);
            std::fs::create_dir_all(&tmp_dir).map_err(internal)?;
            (Filesystem::default(), spec.code_dir.clone(), Some(tmp_dir.clone()), tmp_dir)
        };
        let task_root = if sandboxed { Path::new(TASK_ROOT) } else { spec.code_dir.as_path() };
        let runtime_root = if sandboxed { Path::new(RUNTIME_ROOT) } else { cx.runtime_dir };
        let mut env =
            crate::env::lambda_variables(&spec, &address, &stream_name, task_root, runtime_root, &tmp_path);
        if cx.image.is_some() {
            // The image's own variables, under Lambda's (its PATH wins: its programs live there).
            for (key, value) in cx.launch.env {
                match env.iter_mut().find(|(k, _)| *k == key) {
                    Some(existing) if key == "PATH" => existing.1 = value,
                    Some(_) => {}
                    None => env.push((key, value)),
                }
            }
        } else {
            env.extend(cx.launch.env);
        }
        if !sandboxed {
            layer_paths_for_plain_process(&spec.layers, &mut env);
        }
        let program = cx.launch.program;
        let sandbox_spec = nimbus_sandbox::Spec {
            program: program.clone(),
            args: cx.launch.args,
            env,
            cwd,
            filesystem,
            limits: Limits { memory_mb: u64::from(spec.memory_mb), pids: MAX_PIDS, cpu_millis: 0 },
            netns,
            id: id.clone(),
            user: cx.image.as_ref().and_then(|image| image.user),
            ..Default::default()
        };
        let started_child = match cx.sandbox.spawn(sandbox_spec).await {
            Ok(started) => started,
            Err(error) => {
                servers.iter().for_each(|s| s.abort());
                if let Some(dir) = &tmp_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                let message =
                    format!("RequestId: {} Error: fork/exec {}: {error}", cx.request_id, program.display());
                return Err(StartError::Failed(InvokeResult::unhandled(
                    "Runtime.InvalidEntrypoint",
                    &message,
                )));
            }
        };
        let streams = vec![started_child.stdout, started_child.stderr];
        let log = cx.log_sink.map(|sink| LogTarget {
            sink: sink.clone(),
            group: spec.log_group.clone(),
            stream: stream_name.clone(),
        });
        let output = Output::watch(format!("[{}] ", spec.name), cx.echo_output, cx.tail_log, log, streams);
        for notice in &spec.notices {
            let line = format!("{notice}\n");
            output.log_platform_line(&line);
            if cx.tail_log {
                output.start_capture(&line);
            }
        }

        let child = Arc::new(started_child.child);
        let pid = child.pid;
        let (exit_tx, exited) = watch::channel(None);
        let watched = child.clone();
        tokio::spawn(async move {
            let description = match watched.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => error.to_string(),
            };
            // Nothing the runtime started may linger; then its cgroup can go.
            watched.kill();
            let out_of_memory = watched.oom_killed();
            watched.release();
            let _ = exit_tx.send(Some(Exit { description, out_of_memory }));
        });

        let mut environment = Environment {
            spec,
            pid,
            child,
            handle,
            output,
            exited,
            servers,
            tmp_dir,
            _network: own,
            _image: cx.image.map(|image| image.hold),
            init_duration: Duration::ZERO,
            reported_init: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(0),
        };
        let outcome = {
            let init = &mut environment.handle.init;
            let mut exited = environment.exited.clone();
            tokio::select! {
                outcome = init => outcome.ok(),
                _ = exited.wait_for(Option::is_some) => None,
                _ = tokio::time::sleep(cx.init_timeout) => {
                    let message = format!(
                        "RequestId: {} Error: Init timed out after {:.2} seconds",
                        cx.request_id,
                        cx.init_timeout.as_secs_f64()
                    );
                    return Err(StartError::Failed(InvokeResult::unhandled("Sandbox.Timedout", &message)));
                }
            }
        };
        let mut failed = match outcome {
            Some(InitOutcome::Ready) => {
                environment.init_duration = started.elapsed();
                return Ok(environment);
            }
            Some(InitOutcome::Failed { error_type, body }) => {
                let error_type = error_type.unwrap_or_else(|| "Runtime.Unknown".into());
                InvokeResult::from_runtime_error(&error_type, body)
            }
            None => environment.exit_error(cx.request_id).await,
        };
        failed.duration = started.elapsed();
        let invocation = Invocation {
            request_id: cx.request_id.to_owned(),
            payload: Default::default(),
            invoked_arn: String::new(),
            client_context: None,
            tail_log: cx.tail_log,
        };
        environment.reported_init.store(true, Ordering::Relaxed);
        environment.close_out(&invocation, &mut failed, false).await;
        Err(StartError::Failed(failed))
    }

    /// The error an invocation gets when the runtime died under it.
    async fn exit_error(&self, request_id: &str) -> InvokeResult {
        let exit = self.exit().await;
        let message =
            format!("RequestId: {request_id} Error: Runtime exited with error: {}", exit.description);
        let error_type = if exit.out_of_memory { "Runtime.OutOfMemory" } else { "Runtime.ExitError" };
        InvokeResult::unhandled(error_type, &message)
    }

    async fn exit(&self) -> Exit {
        let mut exited = self.exited.clone();
        let exit = match exited.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone(),
            Err(_) => None,
        };
        exit.unwrap_or(Exit { description: "unknown".into(), out_of_memory: false })
    }

    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Runs one invocation. `Err` carries the result when the environment must not be reused.
    pub async fn invoke(&self, invocation: &Invocation) -> Result<InvokeResult, InvokeResult> {
        let started = Instant::now();
        let request_id = &invocation.request_id;
        let start_line = logs::start_line(request_id, &self.spec.version);
        self.output.log_platform_line(&start_line);
        if invocation.tail_log {
            self.output.start_capture(&start_line);
        }
        let reply = self.handle.expect(request_id);
        let timeout = self.spec.timeout;
        let deadline = SystemTime::now() + timeout;
        let event = Event {
            request_id: request_id.clone(),
            payload: invocation.payload.clone(),
            deadline_ms: deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis(),
            invoked_arn: invocation.invoked_arn.clone(),
            trace_id: logs::trace_id(),
            client_context: invocation.client_context.clone(),
            cognito_identity: None,
        };
        let mut exited = self.exited.clone();
        let outcome = if self.handle.events.send(event).await.is_err() {
            Outcome::Exited
        } else {
            tokio::select! {
                reply = reply => reply.map_or(Outcome::Exited, Outcome::Replied),
                _ = exited.wait_for(Option::is_some) => Outcome::Exited,
                _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
            }
        };
        let (mut result, reusable) = match outcome {
            Outcome::Replied(Reply::Response(payload)) => (InvokeResult::ok(payload), true),
            Outcome::Replied(Reply::Error { error_type, body }) => {
                let error_type = error_type.unwrap_or_else(|| "Unhandled".into());
                (InvokeResult::from_runtime_error(&error_type, body), true)
            }
            Outcome::Replied(Reply::TooLarge) => (
                InvokeResult::unhandled(
                    "Function.ResponseSizeTooLarge",
                    "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                ),
                true,
            ),
            Outcome::TimedOut => {
                let seconds = timeout.as_secs_f64();
                let message =
                    format!("RequestId: {request_id} Error: Task timed out after {seconds:.2} seconds");
                (InvokeResult::unhandled("Sandbox.Timedout", &message), false)
            }
            Outcome::Exited => (self.exit_error(request_id).await, false),
        };
        result.duration = started.elapsed();
        self.close_out(invocation, &mut result, reusable).await;
        if reusable {
            Ok(result)
        } else {
            Err(result)
        }
    }
}

impl Environment {
    /// Lambda's closing lines for an invocation (a failure line when the environment died, END,
    /// REPORT), after the function's own output: into the log stream and the tail.
    async fn close_out(&self, invocation: &Invocation, result: &mut InvokeResult, reusable: bool) {
        let init = (!self.reported_init.swap(true, Ordering::Relaxed)).then_some(self.init_duration);
        if !invocation.tail_log && !self.output.logs_enabled() {
            return;
        }
        let request_id = &invocation.request_id;
        let report = logs::Report {
            request_id,
            duration: result.duration,
            memory_mb: self.spec.memory_mb,
            max_memory_mb: self.child.peak_memory_mib().unwrap_or(0),
            init,
        };
        let mut lines = Vec::with_capacity(3);
        if !reusable && result.function_error.is_some() {
            lines.push(logs::failure_line(request_id, result));
        }
        lines.push(logs::end_line(request_id));
        lines.push(report.line());
        let mut text = if invocation.tail_log {
            self.output.finish_capture().await
        } else {
            self.output.settle().await;
            String::new()
        };
        for line in &lines {
            self.output.log_platform_line(line);
            if invocation.tail_log {
                text.push_str(line);
            }
        }
        if invocation.tail_log {
            result.log = Some(text);
        }
    }

    /// Counts the initialisation as reported: a provisioned environment's first invocation is
    /// warm, and its REPORT line has no Init Duration.
    pub fn mark_initialised(&self) {
        self.reported_init.store(true, Ordering::Relaxed);
    }
}

enum Outcome {
    Replied(Reply),
    TimedOut,
    Exited,
}

impl Drop for Environment {
    fn drop(&mut self) {
        // The exit watcher then reaps the process and removes its cgroup.
        self.child.kill();
        self.servers.iter().for_each(|server| server.abort());
        if let Some(dir) = &self.tmp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The environment's own network namespace (its Runtime API and nimbus's API bound inside), or
/// `None` where environments share the host's network.
async fn own_network(spec: &FunctionSpec, sandbox: &Arc<Sandbox>) -> Option<std::io::Result<Network>> {
    let api_port = spec.endpoint_url.rsplit(':').next().unwrap_or("4566").trim_end_matches('/');
    let key = NetworkKey {
        addresses: vec![RUNTIME_API_ADDRESS.to_owned(), format!("127.0.0.1:{api_port}")],
        // A function in a VPC has no NAT gateway: nothing outside answers, as on AWS.
        reach: if spec.isolated_network { Reach::Nothing } else { Reach::Outside },
    };
    let sandbox = sandbox.clone();
    tokio::task::spawn_blocking(move || sandbox.network(&key))
        .await
        .unwrap_or_else(|e| Some(Err(std::io::Error::other(e))))
}

/// Without a private root there is no `/opt`: point the runtimes at the layers where they are,
/// later layers first (they win, as at `/opt`).
fn layer_paths_for_plain_process(layers: &[PathBuf], env: &mut Vec<(String, String)>) {
    let prepend = |env: &mut Vec<(String, String)>, key: &str, dirs: Vec<PathBuf>| {
        let dirs: Vec<String> =
            dirs.iter().filter(|d| d.is_dir()).map(|d| d.to_string_lossy().into_owned()).collect();
        if dirs.is_empty() {
            return;
        }
        match env.iter_mut().find(|(k, _)| k == key) {
            Some((_, value)) if !value.is_empty() => *value = format!("{}:{value}", dirs.join(":")),
            Some((_, value)) => *value = dirs.join(":"),
            None => env.push((key.to_owned(), dirs.join(":"))),
        }
    };
    let newest_first: Vec<&PathBuf> = layers.iter().rev().collect();
    let under = |sub: &str| newest_first.iter().map(|layer| layer.join(sub)).collect::<Vec<_>>();
    prepend(env, "NIMBUS_PYTHON_PATH", under("python"));
    prepend(env, "PATH", under("bin"));
    prepend(env, "NODE_PATH", under("nodejs/node_modules"));
}

/// Go's wording, which is what AWS's Runtime.ExitError messages use.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".into(),
        (None, Some(signal)) => format!("signal: {signal}"),
        _ => "unknown".into(),
    }
}
