//! `nimbus jobs` (Batch queues with their jobs by state, the latest jobs with an array's
//! progress, Batch's instances) and `nimbus jobs logs JOB` (a job's output, attempt by attempt,
//! from CloudWatch Logs).

use serde_json::{json, Value};

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Redraw every second (arrays' progress live) until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Nothing, or `logs JOB_ID`.
    #[arg(num_args = 0..=2, value_names = ["logs", "JOB_ID"])]
    pub action: Vec<String>,
}

const STATES: [&str; 7] = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"];

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn run(args: &JobsArgs, client: &Client, console: &Console) -> Result<(), Error> {
    match args.action.as_slice() {
        [] => loop {
            let raw = client.get_json("/_nimbus/batch/jobs")?;
            let out = if args.common.json { crate::pretty(&raw) } else { render(&raw, &console.stdout) };
            if !args.watch {
                return crate::write_stdout(&out);
            }
            // Home and clear, then the table: a live view on a terminal.
            crate::write_stdout(&format!("\x1b[H\x1b[2J{out}"))?;
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        [verb, id] if verb == "logs" => logs(args, client, id),
        _ => Err(Error::Usage("nimbus jobs [logs JOB_ID]".into())),
    }
}

/// Progress of an array: `37/100 ✓ 2 ✗` from its status summary.
fn progress(summary: &Value) -> String {
    let count = |s: &str| summary[s].as_i64().unwrap_or(0);
    let total: i64 = STATES.iter().map(|s| count(s)).sum();
    let done = count("SUCCEEDED");
    let failed = count("FAILED");
    let running = count("RUNNING") + count("STARTING");
    format!("{done}/{total} done, {running} running, {failed} failed")
}

pub fn render(overview: &Value, style: &Style) -> String {
    let mut out = String::new();
    let queues = overview["queues"].as_object().cloned().unwrap_or_default();
    if queues.is_empty() {
        return "no Batch jobs (submit one with `aws batch submit-job`)\n".into();
    }
    let mut columns = vec![("QUEUE", Align::Left)];
    columns.extend(STATES.iter().map(|s| (*s, Align::Right)));
    let mut table = Table::new(&columns);
    for (name, counts) in &queues {
        let mut row = vec![Cell::painted(name.clone(), Some(Paint::Bold))];
        row.extend(STATES.iter().map(|s| Cell::new(counts[s].as_i64().unwrap_or(0).to_string())));
        table.push(row);
    }
    out.push_str(&table.render(style));
    let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
    if !jobs.is_empty() {
        out.push('\n');
        let mut table = Table::new(&[
            ("JOB ID", Align::Left),
            ("NAME", Align::Left),
            ("QUEUE", Align::Left),
            ("STATUS", Align::Left),
            ("EXIT", Align::Right),
            ("DETAIL", Align::Left),
        ]);
        for job in jobs {
            let status = text(&job["status"]);
            let paint = match status.as_str() {
                "SUCCEEDED" => Some(Paint::Green),
                "FAILED" => Some(Paint::Red),
                _ => None,
            };
            let detail = match job["arrayProperties"].get("statusSummary") {
                Some(summary) => progress(summary),
                None => job["statusReason"].as_str().unwrap_or("").to_owned(),
            };
            table.push(vec![
                Cell::new(text(&job["jobId"])),
                Cell::new(text(&job["jobName"])),
                Cell::new(text(&job["jobQueue"])),
                Cell::painted(status, paint),
                Cell::new(text(&job["container"]["exitCode"])),
                Cell::new(detail),
            ]);
        }
        out.push_str(&table.render(style));
    }
    let instances = overview["instances"].as_array().cloned().unwrap_or_default();
    if !instances.is_empty() {
        out.push_str(&format!("\n{} instance(s):", instances.len()));
        for host in instances {
            out.push_str(&format!(
                " {} {} ({}/{} vCPUs used)",
                text(&host["instanceId"]),
                text(&host["instanceType"]),
                text(&host["usedVcpus"]),
                text(&host["vcpus"])
            ));
        }
        out.push('\n');
    }
    out
}

fn logs(args: &JobsArgs, client: &Client, id: &str) -> Result<(), Error> {
    let headers = |op: &'static str| [("X-Amz-Target", op), ("Content-Type", "application/x-amz-json-1.1")];
    let reply = client.post(
        "/v1/describejobs",
        &[("Content-Type", "application/json")],
        json!({ "jobs": [id] }).to_string().as_bytes(),
    )?;
    let described = crate::http::parse_json(&format!("{}/v1/describejobs", client.endpoint()), &reply.body)?;
    let Some(job) = described["jobs"].as_array().and_then(|j| j.first()).cloned() else {
        return Err(Error::Usage(format!("no Batch job {id}")));
    };
    let group = job["container"]["logConfiguration"]["options"]["awslogs-group"]
        .as_str()
        .unwrap_or("/aws/batch/job")
        .to_owned();
    let mut streams: Vec<String> = job["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["container"]["logStreamName"].as_str().map(str::to_owned))
        .collect();
    if let Some(current) = job["container"]["logStreamName"].as_str() {
        if !streams.iter().any(|s| s == current) {
            streams.push(current.to_owned());
        }
    }
    let mut out = String::new();
    for (attempt, stream) in streams.iter().enumerate() {
        let mut token: Option<String> = None;
        if !args.common.json && streams.len() > 1 {
            out.push_str(&format!("--- attempt {} ({stream})\n", attempt + 1));
        }
        loop {
            let mut request =
                json!({ "logGroupName": group, "logStreamName": stream, "startFromHead": true });
            if let Some(token) = &token {
                request["nextToken"] = json!(token);
            }
            let reply =
                client.post("/", &headers("Logs_20140328.GetLogEvents"), request.to_string().as_bytes())?;
            let page =
                crate::http::parse_json(&format!("{}/ (GetLogEvents)", client.endpoint()), &reply.body)?;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            for event in &events {
                if args.common.json {
                    out.push_str(&event.to_string());
                } else {
                    out.push_str(event["message"].as_str().unwrap_or_default());
                }
                out.push('\n');
            }
            let next = page["nextForwardToken"].as_str().map(str::to_owned);
            if events.is_empty() || next == token {
                break;
            }
            token = next;
        }
    }
    crate::write_stdout(&out)
}
