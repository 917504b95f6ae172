//! `nimbus sync [--watch]`: deploys the template without asking, then (with `--watch`) keeps the
//! stack in step with the files: a change to a function's code goes straight to Lambda's
//! `UpdateFunctionCode` (no change set: the new code serves within milliseconds), a change to
//! the template deploys the stack again.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use notify::Watcher as _;
use serde_json::json;

use crate::deploy::{default_stack_name, deploy};
use crate::http::{Client, Error};
use crate::package::{CodeSource, Packager};
use crate::query::{self, CLOUDFORMATION};
use crate::style::Console;
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(short = 't', long, default_value = "template.yaml")]
    pub template: PathBuf,
    #[arg(long)]
    pub stack_name: Option<String>,
    #[arg(long, num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// Keep watching the template's directory and sync every change.
    #[arg(long)]
    pub watch: bool,
}

/// Changes arriving this close together are one edit (editors write a file in several steps).
const SETTLE: Duration = Duration::from_millis(25);

pub fn run(args: &SyncArgs, client: &Client, console: &Console) -> Result<std::process::ExitCode, Error> {
    let stack = args.stack_name.clone().unwrap_or_else(|| default_stack_name(&args.template));
    let mut deployed =
        deploy(client, console, &args.template, &stack, &args.parameter_overrides, true, false)?;
    crate::write_stderr(&format!(
        "{stack}: {}\n",
        if deployed.status.is_empty() { "up to date" } else { &deployed.status }
    ))?;
    if !args.watch {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let template = std::fs::canonicalize(&args.template)
        .map_err(|error| Error::Usage(format!("{}: {error}", args.template.display())))?;
    let root = template.parent().unwrap_or(Path::new("/")).to_path_buf();
    let (sender, changes) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = sender.send(event.paths);
            }
        }
    })
    .map_err(|error| Error::Usage(format!("cannot watch {}: {error}", root.display())))?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .map_err(|error| Error::Usage(format!("cannot watch {}: {error}", root.display())))?;
    crate::write_stderr(&format!("watching {} (Ctrl-C to stop)\n", root.display()))?;
    while let Ok(first) = changes.recv() {
        let mut paths = first;
        let settle_until = Instant::now() + SETTLE;
        while let Ok(more) = changes.recv_timeout(settle_until.saturating_duration_since(Instant::now())) {
            paths.extend(more);
        }
        let paths: Vec<PathBuf> = paths.into_iter().filter(|p| !ignored(p)).collect();
        if paths.is_empty() {
            continue;
        }
        let outcome = if paths.iter().any(|p| p == &template) {
            deploy(client, console, &args.template, &stack, &args.parameter_overrides, true, false).map(
                |fresh| {
                    deployed = fresh;
                },
            )
        } else {
            sync_code(client, &stack, &deployed.sources, &paths)
        };
        if let Err(error) = outcome {
            crate::write_stderr(&crate::render_error(&error, &console.stderr))?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn ignored(path: &Path) -> bool {
    path.components().any(|part| {
        let part = part.as_os_str().to_string_lossy();
        part == ".aws-sam" || part == "__pycache__" || part == ".git" || part == "node_modules"
    })
}

/// Uploads the code of every function whose directory holds one of `paths`.
fn sync_code(client: &Client, stack: &str, sources: &[CodeSource], paths: &[PathBuf]) -> Result<(), Error> {
    let packager = Packager::new(client);
    for source in sources {
        let directory = std::fs::canonicalize(&source.directory).unwrap_or_else(|_| source.directory.clone());
        if !paths.iter().any(|p| p.starts_with(&directory)) {
            continue;
        }
        let started = Instant::now();
        let zip = packager.zip_code(&source.directory, &source.runtime)?;
        let described = query::call(
            client,
            CLOUDFORMATION,
            "DescribeStackResource",
            &[("StackName".into(), stack.into()), ("LogicalResourceId".into(), source.logical_id.clone())],
        )?;
        let function = described["StackResourceDetail"]["PhysicalResourceId"]
            .as_str()
            .ok_or_else(|| {
                Error::Usage(format!("{stack} has no physical function for {}", source.logical_id))
            })?
            .to_owned();
        let body = json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(&zip)}).to_string();
        let path = format!("/2015-03-31/functions/{function}/code");
        let reply = client.send("PUT", &path, &[("content-type", "application/json")], body.as_bytes())?;
        if let Some(error) = crate::http::aws_error(&reply).filter(|_| reply.status >= 300) {
            return Err(error);
        }
        crate::write_stderr(&format!(
            "synced {} ({function}) in {} ms\n",
            source.logical_id,
            started.elapsed().as_millis()
        ))?;
    }
    Ok(())
}
