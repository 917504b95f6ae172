//! One execution environment: a runtime process for one function version, its Runtime API
//! listener, its output, its private temporary directory, and the invoke protocol over them.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncRead;
use tokio::sync::watch;

use crate::output::Output;
use crate::runtime_api::{self, Event, Handle, InitOutcome, Reply};
use crate::runtimes::Launch;
use crate::{logs, FunctionSpec, Invocation, InvokeResult};

pub struct Environment {
    pub spec: Arc<FunctionSpec>,
    pub pid: u32,
    handle: Handle,
    output: Arc<Output>,
    exited: watch::Receiver<Option<String>>,
    server: tokio::task::JoinHandle<()>,
    tmp_dir: PathBuf,
    init_duration: Duration,
    /// AWS reports the init duration on the first invocation's REPORT line only.
    reported_init: AtomicBool,
    /// Engine clock milliseconds when last released, for idle reaping.
    pub last_used_ms: AtomicU64,
}

/// Everything an environment needs besides its function.
pub struct StartContext<'a> {
    pub launch: Launch,
    pub base_env: Vec<(String, String)>,
    pub tmp_root: &'a Path,
    pub init_timeout: Duration,
    pub echo_output: bool,
    /// The invocation that asked for this environment, named in its error payloads.
    pub request_id: &'a str,
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
        let (address, handle, server) = runtime_api::start().await.map_err(internal)?;
        let stream_name = logs::stream_name(&spec.version);
        let tmp_dir = cx.tmp_root.join(uuid::Uuid::new_v4().simple().to_string());
        if let Err(error) = std::fs::create_dir_all(&tmp_dir) {
            server.abort();
            return Err(internal(error));
        }

        let mut env = cx.base_env;
        env.extend(crate::env::lambda_variables(&spec, &address, &stream_name, &tmp_dir));
        env.extend(cx.launch.env);
        let program = cx.launch.program;
        let sandbox_spec = nimbus_sandbox::Spec {
            program: program.clone(),
            args: cx.launch.args,
            env,
            cwd: spec.code_dir.clone(),
        };
        let mut sandboxed = match nimbus_sandbox::spawn(&sandbox_spec) {
            Ok(sandboxed) => sandboxed,
            Err(error) => {
                server.abort();
                let _ = std::fs::remove_dir_all(&tmp_dir);
                let message =
                    format!("RequestId: {} Error: fork/exec {}: {error}", cx.request_id, program.display());
                return Err(StartError::Failed(InvokeResult::unhandled(
                    "Runtime.InvalidEntrypoint",
                    &message,
                )));
            }
        };
        let mut streams: Vec<(Box<dyn AsyncRead + Send + Unpin>, _)> = Vec::new();
        if let Some(stdout) = sandboxed.child.stdout.take() {
            let fd = stdout.as_fd().try_clone_to_owned().ok();
            streams.push((Box::new(stdout), fd));
        }
        if let Some(stderr) = sandboxed.child.stderr.take() {
            let fd = stderr.as_fd().try_clone_to_owned().ok();
            streams.push((Box::new(stderr), fd));
        }
        let output = Output::watch(format!("[{}] ", spec.name), cx.echo_output, streams);

        let (exit_tx, exited) = watch::channel(None);
        let mut child = sandboxed.child;
        let pid = sandboxed.pid;
        tokio::spawn(async move {
            let description = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => error.to_string(),
            };
            // The whole group goes with the runtime: nothing it started may linger.
            nimbus_sandbox::kill_group(pid);
            let _ = exit_tx.send(Some(description));
        });

        let mut environment = Environment {
            spec,
            pid,
            handle,
            output,
            exited,
            server,
            tmp_dir,
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
        match outcome {
            Some(InitOutcome::Ready) => {
                environment.init_duration = started.elapsed();
                Ok(environment)
            }
            Some(InitOutcome::Failed { error_type, body }) => {
                let error_type = error_type.unwrap_or_else(|| "Runtime.Unknown".into());
                Err(StartError::Failed(InvokeResult::from_runtime_error(&error_type, body)))
            }
            None => {
                let status = environment.exit_description().await;
                let message =
                    format!("RequestId: {} Error: Runtime exited with error: {status}", cx.request_id);
                Err(StartError::Failed(InvokeResult::unhandled("Runtime.ExitError", &message)))
            }
        }
    }

    async fn exit_description(&self) -> String {
        let mut exited = self.exited.clone();
        let description = match exited.wait_for(Option::is_some).await {
            Ok(description) => description.clone().unwrap_or_default(),
            Err(_) => "unknown".into(),
        };
        description
    }

    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Runs one invocation. `Err` carries the result when the environment must not be reused.
    pub async fn invoke(&self, invocation: &Invocation) -> Result<InvokeResult, InvokeResult> {
        let started = Instant::now();
        let request_id = &invocation.request_id;
        if invocation.tail_log {
            self.output.start_capture(logs::start_line(request_id, &self.spec.version));
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
            Outcome::Exited => {
                let status = self.exit_description().await;
                let message = format!("RequestId: {request_id} Error: Runtime exited with error: {status}");
                (InvokeResult::unhandled("Runtime.ExitError", &message), false)
            }
        };
        if invocation.tail_log {
            let mut text = self.output.finish_capture().await;
            if !reusable && result.function_error.is_some() {
                text.push_str(&logs::failure_line(request_id, &result));
            }
            let init = (!self.reported_init.swap(true, Ordering::Relaxed)).then_some(self.init_duration);
            let report = logs::Report {
                request_id,
                duration: started.elapsed(),
                memory_mb: self.spec.memory_mb,
                max_memory_mb: nimbus_sandbox::peak_memory_mib(self.pid).unwrap_or(0),
                init,
            };
            text.push_str(&logs::end_line(request_id));
            text.push_str(&report.line());
            result.log = Some(text);
        } else {
            self.reported_init.store(true, Ordering::Relaxed);
        }
        if reusable {
            Ok(result)
        } else {
            Err(result)
        }
    }
}

enum Outcome {
    Replied(Reply),
    TimedOut,
    Exited,
}

impl Drop for Environment {
    fn drop(&mut self) {
        nimbus_sandbox::kill_group(self.pid);
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.tmp_dir);
    }
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
