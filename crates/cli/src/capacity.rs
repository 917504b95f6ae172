//! `nimbus instances` (EC2 instances with their type, market, state and price), `nimbus cost`
//! (what the instance time so far would cost on AWS, and on the other purchase options) and
//! `nimbus spot interrupt i-…` (a spot interruption, with its two-minute notice).

use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only the last DURATION (90s, 15m, 1h, 2d); default: everything metered.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SpotArgs {
    #[command(flatten)]
    pub common: Common,
    /// `interrupt i-…`.
    #[arg(num_args = 2, value_names = ["interrupt", "INSTANCE_ID"])]
    pub action: Vec<String>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn run_instances(args: &InstancesArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw = client.get_json("/_nimbus/ec2/instances")?;
    let out = if args.common.json { crate::pretty(&raw) } else { render_instances(&raw, &console.stdout) };
    crate::write_stdout(&out)
}

pub fn render_instances(listing: &Value, style: &Style) -> String {
    let rows = listing["instances"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no instances (launch one with `aws ec2 run-instances`)\n".into();
    }
    let mut table = Table::new(&[
        ("INSTANCE", Align::Left),
        ("TYPE", Align::Left),
        ("MARKET", Align::Left),
        ("STATE", Align::Left),
        ("ZONE", Align::Left),
        ("VCPUS", Align::Right),
        ("MEMORY MIB", Align::Right),
        ("PEAK MIB", Align::Right),
        ("USD/HOUR", Align::Right),
    ]);
    for row in rows {
        let price = row["usd_per_hour"].as_f64().map_or("-".into(), |p| format!("{p:.6}"));
        table.push(vec![
            Cell::painted(text(&row["instance_id"]), Some(Paint::Bold)),
            Cell::new(text(&row["instance_type"])),
            Cell::new(text(&row["market"])),
            Cell::new(text(&row["state"])),
            Cell::new(text(&row["availability_zone"])),
            Cell::new(text(&row["vcpus"])),
            Cell::new(text(&row["memory_mib"])),
            Cell::new(text(&row["memory_peak_mib"])),
            Cell::new(price),
        ]);
    }
    table.render(style)
}

pub fn run_cost(args: &CostArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let path = match &args.since {
        None => "/_nimbus/ec2/meter".to_owned(),
        Some(since) => {
            let seconds = crate::schedules::seconds(since)
                .ok_or_else(|| Error::Usage(format!("not a duration: {since} (try 90s, 15m, 1h, 2d)")))?;
            format!("/_nimbus/ec2/meter?since={seconds}")
        }
    };
    let raw = client.get_json(&path)?;
    let out = if args.common.json { crate::pretty(&raw) } else { render_cost(&raw, &console.stdout) };
    crate::write_stdout(&out)
}

pub fn render_cost(meter: &Value, style: &Style) -> String {
    let rows = meter["lines"].as_array().cloned().unwrap_or_default();
    let usd = |v: &Value| v.as_f64().map_or("-".into(), |p| format!("{p:.6}"));
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("no instance time metered yet\n");
    } else {
        let mut table = Table::new(&[
            ("TYPE", Align::Left),
            ("MARKET", Align::Left),
            ("ZONE", Align::Left),
            ("INSTANCES", Align::Right),
            ("BILLED S", Align::Right),
            ("USD", Align::Right),
            ("ON-DEMAND", Align::Right),
            ("SPOT", Align::Right),
            ("GRAVITON", Align::Left),
        ]);
        for row in rows {
            let graviton = match row["graviton_type"].as_str() {
                Some(kind) => format!("{kind} {}", usd(&row["graviton_usd"])),
                None => "-".into(),
            };
            table.push(vec![
                Cell::new(text(&row["instance_type"])),
                Cell::new(text(&row["market"])),
                Cell::new(text(&row["availability_zone"])),
                Cell::new(text(&row["instances"])),
                Cell::new(format!("{:.0}", row["billed_seconds"].as_f64().unwrap_or(0.0))),
                Cell::painted(usd(&row["usd"]), Some(Paint::Bold)),
                Cell::new(usd(&row["on_demand_usd"])),
                Cell::new(usd(&row["spot_usd"])),
                Cell::new(graviton),
            ]);
        }
        out.push_str(&table.render(style));
    }
    out.push_str(&format!(
        "total {} USD (on demand: {} USD) since {}\nprices: {}\n",
        usd(&meter["total_usd"]),
        usd(&meter["on_demand_usd"]),
        text(&meter["since"]),
        text(&meter["source"])
    ));
    out
}

pub fn run_spot(args: &SpotArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let [verb, id] = args.action.as_slice() else {
        return Err(Error::Usage("nimbus spot interrupt i-…".into()));
    };
    if verb != "interrupt" {
        return Err(Error::Usage("nimbus spot interrupt i-…".into()));
    }
    let path = format!("/_nimbus/ec2/interrupt?instance={id}");
    let reply = client.post(&path, &[], b"")?;
    let raw = crate::http::parse_json(&path, &reply.body)?;
    let out = if args.common.json {
        crate::pretty(&raw)
    } else {
        let line = format!("{id}: {} at {}\n", text(&raw["instance-action"]), text(&raw["time"]));
        console.stdout.paint(&line, Paint::Bold)
    };
    crate::write_stdout(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_renders_lines_and_the_total() {
        let meter = serde_json::json!({"lines": [{"instance_type": "m5.large", "market": "on-demand",
            "availability_zone": "us-east-1a", "instances": 1, "billed_seconds": 60.0, "usd": 0.0016,
            "on_demand_usd": 0.0016, "spot_usd": 0.0005, "graviton_type": "m7g.large", "graviton_usd": 0.00136}],
            "total_usd": 0.0016, "on_demand_usd": 0.0016, "since": "1970-01-01T00:00:00.000Z", "source": "karpenter"});
        let out = render_cost(&meter, &Style::PLAIN);
        assert!(out.contains("m5.large") && out.contains("m7g.large 0.001360"), "{out}");
        assert!(out.contains("total 0.001600 USD"), "{out}");
    }
}
