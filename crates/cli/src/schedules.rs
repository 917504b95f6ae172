//! `nimbus schedules`: EventBridge scheduled rules and Scheduler schedules, soonest first; and
//! `nimbus clock`: the clock they follow, moved forward under `nimbus up --clock virtual`.

use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct SchedulesArgs {
    #[command(flatten)]
    pub common: Common,
}

pub const PATH: &str = "/_nimbus/schedules";

pub fn run(args: &SchedulesArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw = client.get_json(PATH)?;
    let text = if args.common.json { crate::pretty(&raw) } else { render(&raw, &console.stdout) };
    crate::write_stdout(&text)
}

pub fn render(listing: &Value, style: &Style) -> String {
    let rows = listing["schedules"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no schedules (make one with `aws events put-rule --schedule-expression` or `aws scheduler create-schedule`)\n".into();
    }
    let mut table = Table::new(&[
        ("NEXT FIRE (UTC)", Align::Left),
        ("KIND", Align::Left),
        ("GROUP/BUS", Align::Left),
        ("NAME", Align::Left),
        ("EXPRESSION", Align::Left),
        ("TIME ZONE", Align::Left),
    ]);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    for row in rows {
        table.push(vec![
            Cell::painted(text(&row["next_fire"]), Some(Paint::Bold)),
            Cell::new(text(&row["kind"])),
            Cell::new(text(&row["group"])),
            Cell::new(text(&row["name"])),
            Cell::new(text(&row["expression"])),
            Cell::new(text(&row["timezone"])),
        ]);
    }
    table.render(style)
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClockArgs {
    #[command(flatten)]
    pub common: Common,
    /// `advance 1h` (or 90s, 15m, 2d) moves a virtual clock forward; without it, print the time.
    #[arg(num_args = 0..=2, value_names = ["advance", "DURATION"])]
    pub action: Vec<String>,
}

/// `90`, `90s`, `15m`, `1h`, `2d` in seconds.
pub fn seconds(text: &str) -> Option<f64> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let scale = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    number.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0).map(|n| n * scale)
}

pub fn run_clock(args: &ClockArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw = match args.action.as_slice() {
        [] => client.get_json("/_nimbus/clock")?,
        [verb, duration] if verb == "advance" => {
            let seconds = seconds(duration)
                .ok_or_else(|| Error::Usage(format!("not a duration: {duration} (try 90s, 15m, 1h, 2d)")))?;
            let reply = client.post(&format!("/_nimbus/clock/advance?seconds={seconds}"), &[], b"")?;
            crate::http::parse_json("/_nimbus/clock/advance", &reply.body)?
        }
        _ => return Err(Error::Usage("nimbus clock [advance DURATION]".into())),
    };
    let text = if args.common.json {
        crate::pretty(&raw)
    } else {
        let now = raw["now_ms"].as_i64().unwrap_or_default();
        let kind = if raw["virtual"] == true { "virtual" } else { "real" };
        let offset = raw["offset_ms"].as_i64().unwrap_or_default() as f64 / 1000.0;
        let line = format!("{} ({kind} clock, {offset:.0} s ahead of real time)\n", iso(now));
        console.stdout.paint(&line, Paint::Bold)
    };
    crate::write_stdout(&text)
}

fn iso(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(seconds("90"), Some(90.0));
        assert_eq!(seconds("15m"), Some(900.0));
        assert_eq!(seconds("1h"), Some(3600.0));
        assert_eq!(seconds("2d"), Some(172_800.0));
        assert_eq!(seconds("1w"), None);
        assert_eq!(seconds("-5s"), None);
    }

    #[test]
    fn listing_renders_soonest_first_as_given() {
        let listing = serde_json::json!({"schedules": [
            {"kind": "rule", "group": "default", "name": "tick", "expression": "rate(5 minutes)", "timezone": "UTC", "next_fire": "2026-12-06T10:05:00Z"}
        ]});
        let text = render(&listing, &Style::PLAIN);
        assert!(text.contains("2026-12-06T10:05:00Z") && text.contains("rate(5 minutes)"), "{text}");
        assert!(render(&serde_json::json!({"schedules": []}), &Style::PLAIN).starts_with("no schedules"));
    }
}
