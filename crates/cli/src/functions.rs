//! `nimbus functions`: every function with its environments and invocation numbers.

use serde::Deserialize;
use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct FunctionsArgs {
    #[command(flatten)]
    pub common: Common,
}

/// One row of `GET /_nimbus/functions`; anything nimbus does not know is null or absent.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct FunctionRow {
    pub name: String,
    /// The function's region (nimbus lists every region's functions).
    pub region: Option<String>,
    pub runtime: Option<String>,
    pub memory: Option<u64>,
    pub state: Option<String>,
    pub warm: Option<u64>,
    pub busy: Option<u64>,
    pub invocations: Option<u64>,
    pub errors: Option<u64>,
    pub p50_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Listing {
    functions: Vec<FunctionRow>,
}

pub const PATH: &str = "/_nimbus/functions";

/// The listing as nimbus sent it (printed by `--json`) and its typed rows.
pub fn fetch(client: &Client) -> Result<(Value, Vec<FunctionRow>), Error> {
    let raw = client.get_json(PATH)?;
    let listing = Listing::deserialize(&raw).map_err(|error| Error::Unexpected {
        url: format!("{}{PATH}", client.endpoint()),
        reason: error.to_string(),
    })?;
    Ok((raw, listing.functions))
}

pub fn run(args: &FunctionsArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let (raw, rows) = fetch(client)?;
    let text = if args.common.json { crate::pretty(&raw) } else { render(&rows, &console.stdout) };
    crate::write_stdout(&text)
}

/// The table, sorted by name (by region, then name, when there are several regions).
pub fn render(rows: &[FunctionRow], style: &Style) -> String {
    if rows.is_empty() {
        return "no functions yet (create one with `aws lambda create-function` or `sam deploy`)\n".into();
    }
    // A region column only when the functions live in more than one region.
    let regions: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r.region.as_deref()).collect();
    let by_region = regions.len() > 1;
    let mut columns = vec![("NAME", Align::Left)];
    if by_region {
        columns.push(("REGION", Align::Left));
    }
    columns.extend([
        ("RUNTIME", Align::Left),
        ("MEMORY", Align::Right),
        ("STATE", Align::Left),
        ("WARM", Align::Right),
        ("BUSY", Align::Right),
        ("INVOKES", Align::Right),
        ("ERRORS", Align::Right),
        ("P50", Align::Right),
    ]);
    let mut table = Table::new(&columns);
    let mut rows: Vec<&FunctionRow> = rows.iter().collect();
    let key = |row: &&FunctionRow| (if by_region { row.region.clone() } else { None }, row.name.clone());
    rows.sort_by_key(key);
    for row in rows {
        let state_paint = match row.state.as_deref() {
            Some("Active") => Some(Paint::Green),
            Some("Pending") => Some(Paint::Yellow),
            Some("Failed") => Some(Paint::Red),
            Some("Inactive") => Some(Paint::Dim),
            _ => None,
        };
        let error_paint = row.errors.filter(|&errors| errors > 0).map(|_| Paint::Red);
        let mut cells = vec![Cell::painted(&row.name, Some(Paint::Bold))];
        if by_region {
            cells.push(Cell::new(or_dash(row.region.clone())));
        }
        cells.extend([
            Cell::new(or_dash(row.runtime.clone())),
            Cell::new(or_dash(row.memory.map(|mb| format!("{mb} MB")))),
            Cell::painted(or_dash(row.state.clone()), state_paint),
            Cell::new(or_dash(row.warm)),
            Cell::new(or_dash(row.busy)),
            Cell::new(or_dash(row.invocations)),
            Cell::painted(or_dash(row.errors), error_paint),
            Cell::new(or_dash(row.p50_ms.map(milliseconds))),
        ]);
        table.push(cells);
    }
    table.render(style)
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

/// Durations with about three significant digits: `0.42 ms`, `12.3 ms`, `250 ms`, `1.25 s`.
pub fn milliseconds(ms: f64) -> String {
    match ms {
        ms if ms < 10.0 => format!("{ms:.2} ms"),
        ms if ms < 100.0 => format!("{ms:.1} ms"),
        ms if ms < 1000.0 => format!("{ms:.0} ms"),
        ms => format!("{:.2} s", ms / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_absent_fields_read_as_unknown() {
        let listing: Listing =
            serde_json::from_str(r#"{"functions":[{"name":"f","runtime":null,"p50_ms":null}]}"#).unwrap();
        assert_eq!(listing.functions, vec![FunctionRow { name: "f".into(), ..FunctionRow::default() }]);
    }

    #[test]
    fn a_region_column_only_when_functions_span_regions() {
        let row = |name: &str, region: &str| FunctionRow {
            name: name.into(),
            region: Some(region.into()),
            ..FunctionRow::default()
        };
        let plain = Style::PLAIN;
        let one = render(&[row("a", "us-east-1"), row("b", "us-east-1")], &plain);
        assert!(!one.contains("REGION"), "{one}");
        let two = render(&[row("b", "us-east-1"), row("a", "eu-west-1")], &plain);
        let lines: Vec<&str> = two.lines().collect();
        assert!(lines[0].starts_with("NAME  REGION"), "{two}");
        assert!(lines[1].starts_with("a     eu-west-1"), "{two}");
        assert!(lines[2].starts_with("b     us-east-1"), "{two}");
    }

    #[test]
    fn durations_keep_three_digits() {
        assert_eq!(milliseconds(0.421), "0.42 ms");
        assert_eq!(milliseconds(12.34), "12.3 ms");
        assert_eq!(milliseconds(250.4), "250 ms");
        assert_eq!(milliseconds(1250.0), "1.25 s");
    }
}
