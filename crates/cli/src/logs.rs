//! `nimbus logs NAME`: the function's log group through CloudWatch Logs' FilterLogEvents,
//! printed like `aws logs tail --format short` (times in UTC), optionally followed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Function name; its log group is /aws/lambda/NAME.
    pub name: String,
    /// Keep printing new events as they arrive (until interrupted).
    #[arg(long, short)]
    pub follow: bool,
    /// How far back to start: 30s, 10m, 2h, 1d, 1w.
    #[arg(long, default_value = "10m", value_parser = parse_since)]
    pub since: Duration,
    /// A CloudWatch Logs filter pattern, e.g. ERROR or '{ $.level = "error" }'.
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_stream_name: Option<String>,
    pub timestamp: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingestion_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    #[serde(default)]
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Following re-reads this far behind the newest event seen, so that an event written a little
/// late with an earlier timestamp is not skipped; event ids keep it from printing twice.
const LOOKBACK_MS: i64 = 2_000;

/// The paging and de-duplication state of one tail; the I/O lives in [`run`].
pub struct Tail {
    group: String,
    filter: Option<String>,
    start_ms: i64,
    next_token: Option<String>,
    /// Event id → timestamp, for events at or after `start_ms`.
    seen: HashMap<String, i64>,
}

impl Tail {
    pub fn new(function: &str, start_ms: i64, filter: Option<String>) -> Tail {
        Tail {
            group: format!("/aws/lambda/{function}"),
            filter,
            start_ms,
            next_token: None,
            seen: HashMap::new(),
        }
    }

    /// The next FilterLogEvents request body.
    pub fn request(&self) -> Value {
        let mut body = json!({ "logGroupName": self.group, "startTime": self.start_ms });
        if let Some(filter) = &self.filter {
            body["filterPattern"] = json!(filter);
        }
        if let Some(token) = &self.next_token {
            body["nextToken"] = json!(token);
        }
        body
    }

    /// Takes one answer: returns the events not printed before, and whether another page is
    /// waiting now (false: caught up; a follower sleeps and asks again from near the newest).
    pub fn absorb(&mut self, page: Page) -> (Vec<LogEvent>, bool) {
        let stuck = page.events.is_empty() && page.next_token.is_some() && page.next_token == self.next_token;
        let mut fresh = Vec::new();
        for event in page.events {
            let key = event.event_id.clone().unwrap_or_else(|| {
                format!(
                    "{}/{}/{}",
                    event.timestamp,
                    event.log_stream_name.as_deref().unwrap_or(""),
                    event.message
                )
            });
            if self.seen.insert(key, event.timestamp).is_none() {
                fresh.push(event);
            }
        }
        if page.next_token.is_some() && !stuck {
            self.next_token = page.next_token;
            return (fresh, true);
        }
        self.next_token = None;
        if let Some(newest) = self.seen.values().max() {
            self.start_ms = self.start_ms.max(newest - LOOKBACK_MS);
        }
        let start = self.start_ms;
        self.seen.retain(|_, timestamp| *timestamp >= start);
        (fresh, false)
    }
}

pub fn run(args: &LogsArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut tail = Tail::new(&args.name, now_ms - args.since.as_millis() as i64, args.filter.clone());
    loop {
        let page = match fetch_page(client, &tail.request()).map_err(|e| name_missing_group(e, &tail.group)) {
            // A function that has not run yet has no log group: a follower waits for it.
            Err(Error::NoLogGroup { .. }) if args.follow => Page::default(),
            other => other?,
        };
        let (events, more) = tail.absorb(page);
        let mut text = String::new();
        for event in &events {
            if args.common.json {
                text.push_str(&serde_json::to_string(event).unwrap_or_default());
                text.push('\n');
            } else {
                text.push_str(&render_event(event, &console.stdout));
            }
        }
        crate::write_stdout(&text)?;
        match (more, args.follow) {
            (true, _) => {}
            (false, true) => std::thread::sleep(POLL_INTERVAL),
            (false, false) => return Ok(()),
        }
    }
}

pub fn fetch_page(client: &Client, request: &Value) -> Result<Page, Error> {
    let headers =
        [("X-Amz-Target", "Logs_20140328.FilterLogEvents"), ("Content-Type", "application/x-amz-json-1.1")];
    let reply = client.post("/", &headers, request.to_string().as_bytes())?;
    serde_json::from_slice(&reply.body).map_err(|error| Error::Unexpected {
        url: format!("{}/ (FilterLogEvents)", client.endpoint()),
        reason: error.to_string(),
    })
}

/// AWS says only "The specified log group does not exist."; the user needs to know which.
fn name_missing_group(error: Error, group: &str) -> Error {
    match error {
        Error::Aws { error_type, .. } if error_type == "ResourceNotFoundException" => {
            Error::NoLogGroup { group: group.to_owned() }
        }
        other => other,
    }
}

/// `HH:MM:SS message`, the time in UTC and green on a terminal, one newline at the end.
pub fn render_event(event: &LogEvent, style: &Style) -> String {
    let seconds = event.timestamp.div_euclid(1000).rem_euclid(86_400);
    let time = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    format!("{} {}\n", style.paint(&time, Paint::Green), event.message.trim_end())
}

/// `30s`, `10m`, `2h`, `1d`, `1w`, as `aws logs tail --since` reads them.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let unit_at = text.len().saturating_sub(1);
    let (amount, unit) = text.split_at(unit_at);
    let amount: u64 = amount.parse().map_err(|_| format!("`{text}` is not like 30s, 10m, 2h, 1d or 1w"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}` is not like 30s, 10m, 2h, 1d or 1w")),
    };
    Ok(Duration::from_secs(amount * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, timestamp: i64) -> LogEvent {
        LogEvent {
            timestamp,
            message: format!("line {id}\n"),
            event_id: Some(id.into()),
            ..LogEvent::default()
        }
    }

    fn ids(events: &[LogEvent]) -> Vec<&str> {
        events.iter().filter_map(|e| e.event_id.as_deref()).collect()
    }

    #[test]
    fn since_takes_aws_units() {
        assert_eq!(parse_since("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_since("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_since("10").is_err() && parse_since("m").is_err() && parse_since("5y").is_err());
    }

    #[test]
    fn pages_then_follows_from_near_the_newest_without_repeats() {
        let mut tail = Tail::new("fn", 1_000, Some("ERROR".into()));
        assert_eq!(
            tail.request(),
            json!({"logGroupName":"/aws/lambda/fn","startTime":1000,"filterPattern":"ERROR"})
        );

        let (events, more) =
            tail.absorb(Page { events: vec![event("a", 5_000)], next_token: Some("t1".into()) });
        assert_eq!((ids(&events), more), (vec!["a"], true));
        assert_eq!(tail.request()["nextToken"], "t1");

        let (events, more) = tail.absorb(Page { events: vec![event("b", 9_000)], next_token: None });
        assert_eq!((ids(&events), more), (vec!["b"], false));
        assert_eq!(
            tail.request(),
            json!({"logGroupName":"/aws/lambda/fn","startTime":7000,"filterPattern":"ERROR"})
        );

        // The next poll sees b again plus a late event with an earlier timestamp, and a new one.
        let page = Page {
            events: vec![event("late", 8_500), event("b", 9_000), event("c", 9_000)],
            next_token: None,
        };
        let (events, _) = tail.absorb(page);
        assert_eq!(ids(&events), vec!["late", "c"]);
    }

    #[test]
    fn a_missing_group_is_named() {
        let aws = |error_type: &str| Error::Aws {
            error_type: error_type.into(),
            message: "The specified log group does not exist.".into(),
        };
        let named = name_missing_group(aws("ResourceNotFoundException"), "/aws/lambda/nope");
        assert_eq!(
            named.to_string(),
            "log group /aws/lambda/nope does not exist (a function's group appears when it first runs)"
        );
        let other = name_missing_group(aws("ThrottlingException"), "/aws/lambda/nope");
        assert!(matches!(other, Error::Aws { .. }));
    }

    #[test]
    fn a_repeated_token_on_an_empty_page_ends_the_pass() {
        let mut tail = Tail::new("fn", 0, None);
        assert!(tail.absorb(Page { events: vec![], next_token: Some("t".into()) }).1);
        assert!(!tail.absorb(Page { events: vec![], next_token: Some("t".into()) }).1);
        assert!(tail.request().get("nextToken").is_none());
    }
}
