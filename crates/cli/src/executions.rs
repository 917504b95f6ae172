//! `nimbus executions`: Step Functions executions with their status and the state each is in;
//! `nimbus executions NAME|ARN` shows one execution's steps, and `--follow` keeps the view live
//! (redrawn in place on a terminal) until the execution ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::functions::milliseconds;
use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct ExecutionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// An execution (its ARN, or its name): show its steps.
    pub execution: Option<String>,
    /// With an execution: keep showing its steps until it ends.
    #[arg(long)]
    pub follow: bool,
}

const POLL: Duration = Duration::from_millis(500);

fn call(client: &Client, operation: &str, input: Value) -> Result<Value, Error> {
    let target = format!("AWSStepFunctions.{operation}");
    let headers = [("X-Amz-Target", target.as_str()), ("Content-Type", "application/x-amz-json-1.0")];
    let reply = client.post("/", &headers, input.to_string().as_bytes())?;
    if reply.status >= 300 {
        return Err(crate::http::aws_error(&reply).unwrap_or(Error::Status {
            url: format!("{}/ ({operation})", client.endpoint()),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }));
    }
    crate::http::parse_json(&format!("{}/ ({operation})", client.endpoint()), &reply.body)
}

/// Every page of a paginated operation's `key` list.
fn all(client: &Client, operation: &str, input: Value, key: &str) -> Result<Vec<Value>, Error> {
    let mut items = Vec::new();
    let mut input = input;
    loop {
        let page = call(client, operation, input.clone())?;
        items.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["nextToken"].as_str() {
            Some(token) => input["nextToken"] = json!(token),
            None => return Ok(items),
        }
    }
}

pub fn run(args: &ExecutionsArgs, client: &Client, console: &Console) -> Result<(), Error> {
    match &args.execution {
        None => {
            let listing = list(client)?;
            let text = if args.common.json {
                crate::pretty(&listing)
            } else {
                render_list(&listing, &console.stdout)
            };
            crate::write_stdout(&text)
        }
        Some(execution) => {
            let arn = resolve(client, execution)?;
            loop {
                let described = call(client, "DescribeExecution", json!({"executionArn": arn}))?;
                let events = all(
                    client,
                    "GetExecutionHistory",
                    json!({"executionArn": arn, "maxResults": 1000}),
                    "events",
                )?;
                let running = described["status"] == "RUNNING";
                let live = args.follow && console.stdout_is_terminal && !args.common.json;
                if !args.follow || !running || live {
                    let text = if args.common.json {
                        crate::pretty(&json!({"execution": described, "steps": steps(&events)}))
                    } else {
                        render_steps(&described, &events, &console.stdout)
                    };
                    // Redrawn in place: home, clear, the view.
                    let text = if live { format!("\x1b[H\x1b[2J{text}") } else { text };
                    crate::write_stdout(&text)?;
                }
                if !args.follow || !running {
                    return Ok(());
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// An execution's ARN from its ARN or its name (searched in every standard machine).
fn resolve(client: &Client, execution: &str) -> Result<String, Error> {
    if execution.starts_with("arn:") {
        return Ok(execution.to_owned());
    }
    for machine in all(client, "ListStateMachines", json!({}), "stateMachines")? {
        if machine["type"] != "STANDARD" {
            continue;
        }
        let input = json!({"stateMachineArn": machine["stateMachineArn"]});
        for found in all(client, "ListExecutions", input, "executions")? {
            if found["name"] == execution {
                return Ok(found["executionArn"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    Err(Error::Usage(format!("no execution named {execution}")))
}

/// The executions of every standard machine, newest first (20 per machine), with the state
/// each running one is in.
pub fn list(client: &Client) -> Result<Value, Error> {
    let mut rows = Vec::new();
    for machine in all(client, "ListStateMachines", json!({}), "stateMachines")? {
        if machine["type"] != "STANDARD" {
            continue;
        }
        let page = call(
            client,
            "ListExecutions",
            json!({"stateMachineArn": machine["stateMachineArn"], "maxResults": 20}),
        )?;
        for execution in page["executions"].as_array().into_iter().flatten() {
            let mut row = json!({
                "machine": machine["name"],
                "name": execution["name"],
                "arn": execution["executionArn"],
                "status": execution["status"],
                "start": execution["startDate"],
                "stop": execution["stopDate"],
            });
            if execution["status"] == "RUNNING" {
                let input = json!({"executionArn": execution["executionArn"], "reverseOrder": true, "maxResults": 50});
                let recent = call(client, "GetExecutionHistory", input)?;
                row["state"] = current_state(recent["events"].as_array().map_or(&[][..], Vec::as_slice));
            }
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| {
        b["start"].as_f64().partial_cmp(&a["start"].as_f64()).unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(json!({"executions": rows}))
}

/// The state most recently entered, from events newest first.
fn current_state(events: &[Value]) -> Value {
    events
        .iter()
        .find_map(|e| e["stateEnteredEventDetails"]["name"].as_str())
        .map_or(Value::Null, |name| json!(name))
}

fn seconds_text(start: &Value, stop: &Value) -> String {
    match (start.as_f64(), stop.as_f64()) {
        (Some(a), Some(b)) => milliseconds((b - a) * 1000.0),
        _ => "-".into(),
    }
}

fn status_paint(status: &str) -> Option<Paint> {
    match status {
        "SUCCEEDED" | "succeeded" => Some(Paint::Green),
        "FAILED" | "TIMED_OUT" | "failed" | "timed out" => Some(Paint::Red),
        "ABORTED" | "caught" => Some(Paint::Yellow),
        "RUNNING" | "running" => Some(Paint::Bold),
        _ => None,
    }
}

pub fn render_list(listing: &Value, style: &Style) -> String {
    let rows = listing["executions"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no executions (start one with `aws stepfunctions start-execution`)\n".into();
    }
    let mut table = Table::new(&[
        ("MACHINE", Align::Left),
        ("EXECUTION", Align::Left),
        ("STATUS", Align::Left),
        ("STATE", Align::Left),
        ("DURATION", Align::Right),
    ]);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    for row in rows {
        let status = text(&row["status"]);
        table.push(vec![
            Cell::painted(text(&row["machine"]), Some(Paint::Bold)),
            Cell::new(text(&row["name"])),
            Cell::painted(status.clone(), status_paint(&status)),
            Cell::new(text(&row["state"])),
            Cell::new(seconds_text(&row["start"], &row["stop"])),
        ]);
    }
    table.render(style)
}

/// Each state entered, with how it ended and how long it took (events oldest first).
pub fn steps(events: &[Value]) -> Vec<Value> {
    let mut steps: Vec<Value> = Vec::new();
    let start = events.first().and_then(|e| e["timestamp"].as_f64()).unwrap_or(0.0);
    for event in events {
        let kind = event["type"].as_str().unwrap_or_default();
        let at = event["timestamp"].as_f64().unwrap_or(start);
        if let Some(name) = event["stateEnteredEventDetails"]["name"].as_str() {
            let state_type = kind.trim_end_matches("StateEntered");
            let status = if state_type == "Fail" { "failed" } else { "running" };
            steps.push(json!({"name": name, "type": state_type, "status": status, "entered": at - start}));
        } else if let Some(name) = event["stateExitedEventDetails"]["name"].as_str() {
            if let Some(step) = steps.iter_mut().rev().find(|s| s["name"] == name && s["status"] == "running")
            {
                step["status"] = json!("succeeded");
                step["duration"] = json!(at - start - step["entered"].as_f64().unwrap_or(0.0));
            }
        } else if kind.ends_with("Failed") || kind.ends_with("TimedOut") {
            let failed = if kind.ends_with("TimedOut") { "timed out" } else { "failed" };
            if let Some(step) = steps.iter_mut().rev().find(|s| s["status"] == "running") {
                step["status"] = json!(failed);
                step["duration"] = json!(at - start - step["entered"].as_f64().unwrap_or(0.0));
            }
        }
    }
    steps
}

pub fn render_steps(described: &Value, events: &[Value], style: &Style) -> String {
    let status = described["status"].as_str().unwrap_or("-");
    let mut text = format!(
        "{} {}  {}\n",
        style.paint(described["name"].as_str().unwrap_or("-"), Paint::Bold),
        style.paint(status, status_paint(status).unwrap_or(Paint::Dim)),
        seconds_text(&described["startDate"], &described["stopDate"]),
    );
    let mut table = Table::new(&[
        ("STEP", Align::Left),
        ("TYPE", Align::Left),
        ("STATUS", Align::Left),
        ("AT", Align::Right),
        ("DURATION", Align::Right),
    ]);
    for step in steps(events) {
        let step_status = step["status"].as_str().unwrap_or("-").to_owned();
        let duration = step["duration"].as_f64().map_or("-".into(), |d| milliseconds(d * 1000.0));
        table.push(vec![
            Cell::new(step["name"].as_str().unwrap_or("-")),
            Cell::new(step["type"].as_str().unwrap_or("-")),
            Cell::painted(step_status.clone(), status_paint(&step_status)),
            Cell::new(milliseconds(step["entered"].as_f64().unwrap_or(0.0) * 1000.0)),
            Cell::new(duration),
        ]);
    }
    text.push_str(&table.render(style));
    if let (Some(error), cause) = (described["error"].as_str(), described["cause"].as_str().unwrap_or("")) {
        text.push_str(&format!("{} {error}: {cause}\n", style.paint("error:", Paint::Red)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_with_their_outcomes() {
        let events = vec![
            json!({"timestamp": 100.0, "type": "ExecutionStarted"}),
            json!({"timestamp": 100.0, "type": "PassStateEntered", "stateEnteredEventDetails": {"name": "Prepare"}}),
            json!({"timestamp": 100.5, "type": "PassStateExited", "stateExitedEventDetails": {"name": "Prepare"}}),
            json!({"timestamp": 100.5, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Work"}}),
            json!({"timestamp": 102.0, "type": "TaskFailed"}),
            json!({"timestamp": 102.0, "type": "ExecutionFailed"}),
        ];
        let described = json!({"name": "run-1", "status": "FAILED", "startDate": 100.0, "stopDate": 102.0,
                               "error": "Boom", "cause": "no"});
        let text = render_steps(&described, &events, &Style::PLAIN);
        assert!(text.starts_with("run-1 FAILED  2.00 s\n"), "{text}");
        assert!(text.contains("Prepare") && text.contains("succeeded") && text.contains("500 ms"), "{text}");
        assert!(text.contains("Work") && text.contains("failed") && text.contains("1.50 s"), "{text}");
        assert!(text.ends_with("error: Boom: no\n"), "{text}");
        let listing = json!({"executions": [{"machine": "m", "name": "e", "status": "RUNNING", "state": "Wait",
                                             "start": 1.0}]});
        let text = render_list(&listing, &Style::PLAIN);
        assert!(text.contains("Wait") && text.contains("RUNNING"), "{text}");
        assert_eq!(
            current_state(&[json!({"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "W"}})]),
            json!("W")
        );
    }
}
