//! `nimbus instances` (EC2 instances with their type, market, state and price), `nimbus cost`
//! (what the instance time so far would cost on AWS, and on the other purchase options; with
//! `--over-time`, per bucket of time by service and purchase option) and
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
    /// The workload (functions and instances) priced as Lambda and as Batch on on-demand, spot
    /// and reserved capacity, x86_64 and Graviton (`GET /_nimbus/ec2/what-if`).
    #[arg(long, conflicts_with = "over_time")]
    pub what_if: bool,
    /// What the meter charged per bucket of time, by service and by purchase option
    /// (`GET /_nimbus/ec2/meter/series`).
    #[arg(long)]
    pub over_time: bool,
    /// With --over-time: the bucket's width (60s, 5m, 1h); default: chosen from the window.
    #[arg(long, value_name = "DURATION", requires = "over_time")]
    pub bucket: Option<String>,
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
    let base = match (args.what_if, args.over_time) {
        (true, _) => "/_nimbus/ec2/what-if",
        (_, true) => "/_nimbus/ec2/meter/series",
        _ => "/_nimbus/ec2/meter",
    };
    let duration = |text: &String| {
        crate::schedules::seconds(text)
            .ok_or_else(|| Error::Usage(format!("not a duration: {text} (try 90s, 15m, 1h, 2d)")))
    };
    let mut query = Vec::new();
    if let Some(since) = &args.since {
        query.push(format!("since={}", duration(since)?));
    }
    if let Some(bucket) = &args.bucket {
        query.push(format!("bucket={}", duration(bucket)?));
    }
    let path = if query.is_empty() { base.to_owned() } else { format!("{base}?{}", query.join("&")) };
    let raw = client.get_json(&path)?;
    let out = match (args.common.json, args.what_if, args.over_time) {
        (true, _, _) => crate::pretty(&raw),
        (false, true, _) => render_what_if(&raw, &console.stdout),
        (false, _, true) => render_series(&raw, &console.stdout),
        (false, false, false) => render_cost(&raw, &console.stdout),
    };
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

/// The meter over time: one row per bucket that charged anything, by service and purchase option.
pub fn render_series(series: &Value, style: &Style) -> String {
    // A sum of rounded figures can be a hair below zero: it prints as 0, not -0.000000.
    let usd =
        |v: Option<f64>| v.map_or("-".into(), |p| format!("{:.6}", if p.abs() < 5e-7 { 0.0 } else { p }));
    let at = |column: &Value, n: usize| column.as_array().and_then(|c| c.get(n)).and_then(Value::as_f64);
    let services = ["EC2", "Batch", "Lambda"];
    let markets = ["on-demand", "spot", "reserved"];
    let mut table = Table::new(&[
        ("BUCKET", Align::Left),
        ("EC2", Align::Right),
        ("BATCH", Align::Right),
        ("LAMBDA", Align::Right),
        ("ON-DEMAND", Align::Right),
        ("SPOT", Align::Right),
        ("RESERVED", Align::Right),
        ("TOTAL", Align::Right),
    ]);
    let buckets = series["buckets"].as_array().cloned().unwrap_or_default();
    let mut quiet = 0;
    for (n, start) in buckets.iter().enumerate() {
        let by_service: Vec<Option<f64>> = services.iter().map(|s| at(&series["by_service"][s], n)).collect();
        let total: f64 = by_service.iter().flatten().sum();
        if total == 0.0 {
            quiet += 1;
            continue;
        }
        let mut row = vec![Cell::new(text(start))];
        row.extend(by_service.into_iter().map(|v| Cell::new(usd(v))));
        row.extend(markets.iter().map(|m| Cell::new(usd(at(&series["by_market"][m], n)))));
        row.push(Cell::painted(usd(Some(total)), Some(Paint::Bold)));
        table.push(row);
    }
    let mut out = if buckets.len() == quiet {
        "nothing charged in this window\n".to_owned()
    } else {
        table.render(style)
    };
    let totals = &series["totals"];
    out.push_str(&format!(
        "{} buckets of {} s ({quiet} charged nothing, not shown) since {}\ntotal {} USD: instances {} USD, Lambda {} USD\n",
        buckets.len(),
        text(&series["bucket_seconds"]),
        text(&series["since"]),
        usd(totals["total_usd"].as_f64()),
        usd(totals["instances_usd"].as_f64()),
        usd(totals["lambda_usd"].as_f64()),
    ));
    if series["lambda"]["known"] == false {
        out.push_str(&format!("Lambda unknown: {}\n", text(&series["lambda"]["why"])));
    }
    out
}

/// The what-if comparison: one row per service, architecture and purchase option.
pub fn render_what_if(answer: &Value, style: &Style) -> String {
    let usd = |v: &Value| v.as_f64().map_or("-".into(), |p| format!("{p:.6}"));
    let mut table = Table::new(&[
        ("AS", Align::Left),
        ("ARCH", Align::Left),
        ("MARKET", Align::Left),
        ("FUNCTIONS USD", Align::Right),
        ("INSTANCES USD", Align::Right),
        ("USD", Align::Right),
    ]);
    for row in answer["options"].as_array().into_iter().flatten() {
        table.push(vec![
            Cell::new(text(&row["service"])),
            Cell::new(text(&row["architecture"])),
            Cell::new(text(&row["market"])),
            Cell::new(usd(&row["functions_usd"])),
            Cell::new(usd(&row["instances_usd"])),
            Cell::painted(usd(&row["usd"]), Some(Paint::Bold)),
        ]);
    }
    let workload = &answer["workload"];
    let mut out = format!(
        "functions: {} requests, {} GB-s; instances: {} billed s; as metered {} USD, since {}\n",
        text(&workload["functions"]["requests"]),
        text(&workload["functions"]["gb_seconds"]),
        text(&workload["instances"]["billed_seconds"]),
        usd(&answer["as_metered"]["usd"]),
        text(&answer["since"]),
    );
    out.push_str(&table.render(style));
    for source in answer["sources"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {} ({})\n",
            text(&source["prices"]),
            text(&source["source"]),
            text(&source["date"])
        ));
    }
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

    #[test]
    fn series_renders_the_buckets_that_charged_and_the_totals() {
        let series = serde_json::json!({"buckets": ["2026-12-07T10:00:00.000Z", "2026-12-07T10:01:00.000Z"],
            "bucket_seconds": 60.0, "since": "2026-12-07T10:00:30.000Z",
            "by_service": {"EC2": [0.0, 0.002], "Batch": [0.0, 0.001], "Lambda": [0.0, 0.0]},
            "by_market": {"on-demand": [0.0, 0.002], "spot": [0.0, 0.001], "reserved": [0.0, 0.0]},
            "totals": {"total_usd": 0.003, "instances_usd": 0.003, "lambda_usd": 0.0}, "lambda": {"known": true}});
        let out = render_series(&series, &Style::PLAIN);
        assert!(!out.contains("10:00:00") && out.contains("2026-12-07T10:01:00.000Z"), "{out}");
        assert!(out.contains("0.003000") && out.contains("2 buckets of 60.0 s (1 charged nothing"), "{out}");
    }

    #[test]
    fn what_if_renders_each_option_and_the_sources() {
        let answer = serde_json::json!({"options": [{"service": "Batch", "architecture": "arm64", "market": "spot",
            "functions_usd": 0.0001, "instances_usd": 0.002, "usd": 0.0021}],
            "workload": {"functions": {"requests": 3, "gb_seconds": 1.5}, "instances": {"billed_seconds": 60.0}},
            "as_metered": {"usd": 0.01}, "since": "1970-01-01T00:00:00.000Z",
            "sources": [{"prices": "EC2 on-demand", "source": "karpenter", "date": "2026-07-20"}]});
        let out = render_what_if(&answer, &Style::PLAIN);
        assert!(
            out.contains("Batch") && out.contains("0.002100") && out.contains("karpenter (2026-07-20)"),
            "{out}"
        );
    }
}
