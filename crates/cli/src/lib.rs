//! The `nimbus` binary's client commands: they talk to a running nimbus over its HTTP API.
//!
//! Each command has one file: its clap arguments, the request it makes, and pure `render`
//! functions from the answer to text (snapshot-tested in `tests/render.rs`). [`run`] is the
//! only place that decides colour, prints errors and picks the exit code.

pub mod apis;
pub mod capacity;
pub mod deploy;
pub mod executions;
pub mod functions;
pub mod http;
pub mod images;
pub mod invoke;
pub mod jobs;
pub mod json;
pub mod layers;
pub mod logs;
pub mod package;
pub mod query;
pub mod schedules;
pub mod status;
pub mod streams;
pub mod style;
pub mod sync;
pub mod table;

use std::io::Write;
use std::process::ExitCode;

pub use http::{Client, Error};
pub use style::{Console, Style};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// Exit code when nimbus cannot be reached (1 is every other failure).
pub const NOT_RUNNING_EXIT: u8 = 2;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// List functions: runtime, memory, state, warm/busy environments, invocations, p50.
    Functions(functions::FunctionsArgs),
    /// Invoke a function and print what it returned (its log tail goes to stderr).
    Invoke(invoke::InvokeArgs),
    /// Print a function's log events; --follow keeps printing new ones.
    Logs(logs::LogsArgs),
    /// Show the running nimbus: services, isolation, environments, memory in use.
    Status(status::StatusArgs),
    /// Kinesis and DynamoDB Streams event source mappings: shards and iterator ages.
    Streams(streams::StreamsArgs),
    /// EventBridge scheduled rules and Scheduler schedules with their next fire times.
    Schedules(schedules::SchedulesArgs),
    /// `nimbus layers import ARN ZIP`: a layer version of another account, from its zip.
    Layers(layers::LayersArgs),
    /// Images in nimbus's registry; `import FILE` brings in a docker save or OCI layout.
    Images(images::ImagesArgs),
    /// Print nimbus's clock; `nimbus clock advance 1h` moves a virtual one (`up --clock virtual`).
    Clock(schedules::ClockArgs),
    /// API Gateway stages and Lambda function URLs with their local URLs.
    Apis(apis::ApisArgs),
    /// Step Functions executions and the state each is in; `nimbus executions NAME --follow`
    /// shows one's steps live.
    Executions(executions::ExecutionsArgs),
    /// EC2 instances: id, type, market, state, zone, vCPUs, memory, price per hour.
    Instances(capacity::InstancesArgs),
    /// What the instance time so far would cost on AWS, and on the other purchase options.
    Cost(capacity::CostArgs),
    /// `nimbus spot interrupt i-…`: a spot interruption with its two-minute notice.
    Spot(capacity::SpotArgs),
    /// Deploy a SAM or CloudFormation template: package local code, show the change set, apply.
    Deploy(deploy::DeployArgs),
    /// Deploy without asking; `--watch` then syncs code changes in milliseconds.
    Sync(sync::SyncArgs),
    /// CloudFormation stacks; `nimbus stacks NAME` shows one's resources and outputs.
    Stacks(deploy::StacksArgs),
    /// Delete a stack and wait until it is gone.
    Delete(deploy::DeleteArgs),
    /// Batch queues with their jobs by state and the latest jobs; `nimbus jobs logs JOB` prints
    /// a job's output.
    Jobs(jobs::JobsArgs),
}

/// The options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The nimbus to talk to.
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ClientCommand {
    pub fn common(&self) -> &Common {
        match self {
            ClientCommand::Functions(args) => &args.common,
            ClientCommand::Invoke(args) => &args.common,
            ClientCommand::Logs(args) => &args.common,
            ClientCommand::Status(args) => &args.common,
            ClientCommand::Schedules(args) => &args.common,
            ClientCommand::Streams(args) => &args.common,
            ClientCommand::Clock(args) => &args.common,
            ClientCommand::Images(args) => &args.common,
            ClientCommand::Layers(args) => &args.common,
            ClientCommand::Apis(args) => &args.common,
            ClientCommand::Executions(args) => &args.common,
            ClientCommand::Instances(args) => &args.common,
            ClientCommand::Cost(args) => &args.common,
            ClientCommand::Spot(args) => &args.common,
            ClientCommand::Deploy(args) => &args.common,
            ClientCommand::Sync(args) => &args.common,
            ClientCommand::Stacks(args) => &args.common,
            ClientCommand::Delete(args) => &args.common,
            ClientCommand::Jobs(args) => &args.common,
        }
    }
}

/// Runs one client command to completion, printing its output and any error.
pub fn run(command: ClientCommand) -> ExitCode {
    let console = Console::detect();
    let client = Client::new(&command.common().endpoint);
    let outcome = match &command {
        ClientCommand::Functions(args) => functions::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Invoke(args) => invoke::run(args, &client, &console),
        ClientCommand::Logs(args) => logs::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Status(args) => status::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Streams(args) => streams::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Schedules(args) => schedules::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Clock(args) => {
            schedules::run_clock(args, &client, &console).map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Images(args) => images::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Layers(args) => layers::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Apis(args) => apis::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Executions(args) => {
            executions::run(args, &client, &console).map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Instances(args) => {
            capacity::run_instances(args, &client, &console).map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Cost(args) => capacity::run_cost(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Spot(args) => capacity::run_spot(args, &client, &console).map(|()| ExitCode::SUCCESS),
        ClientCommand::Deploy(args) => deploy::run(args, &client, &console),
        ClientCommand::Sync(args) => sync::run(args, &client, &console),
        ClientCommand::Stacks(args) => {
            deploy::run_stacks(args, &client, &console).map(|()| ExitCode::SUCCESS)
        }
        ClientCommand::Delete(args) => deploy::run_delete(args, &client, &console),
        ClientCommand::Jobs(args) => jobs::run(args, &client, &console).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        // Output piped into `head` and closed: nothing left to say.
        Err(Error::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let _ = write_stderr(&render_error(&error, &console.stderr));
            exit_code(&error)
        }
    }
}

pub fn exit_code(error: &Error) -> ExitCode {
    match error {
        Error::NotRunning { .. } => ExitCode::from(NOT_RUNNING_EXIT),
        _ => ExitCode::FAILURE,
    }
}

/// `error: …` on one line, the prefix in red on a terminal.
pub fn render_error(error: &Error, style: &Style) -> String {
    format!("{} {error}\n", style.paint("error:", style::Paint::Red))
}

pub(crate) fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

pub(crate) fn write_stdout(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}

pub(crate) fn write_stderr(text: &str) -> Result<(), Error> {
    Ok(std::io::stderr().lock().write_all(text.as_bytes())?)
}
