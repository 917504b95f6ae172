//! `nimbus streams`: Kinesis and DynamoDB Streams event source mappings, shard by shard, with
//! how far behind the newest record each is (its iterator age).

use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub common: Common,
}

pub const PATH: &str = "/_nimbus/streams";

pub fn run(args: &StreamsArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw = client.get_json(PATH)?;
    let text = if args.common.json { crate::pretty(&raw) } else { render(&raw, &console.stdout) };
    crate::write_stdout(&text)
}

pub fn render(listing: &Value, style: &Style) -> String {
    let mappings = listing["mappings"].as_array().cloned().unwrap_or_default();
    if mappings.is_empty() {
        return "no stream event source mappings (make one with `aws lambda create-event-source-mapping`)\n"
            .into();
    }
    let mut table = Table::new(&[
        ("SOURCE", Align::Left),
        ("FUNCTION", Align::Left),
        ("SHARD", Align::Left),
        ("ITERATOR AGE", Align::Right),
        ("STATE", Align::Left),
        ("LAST RESULT", Align::Left),
    ]);
    let last =
        |text: &Value| text.as_str().unwrap_or("-").rsplit([':', '/']).next().unwrap_or("-").to_owned();
    for mapping in &mappings {
        let result = mapping["last_result"].as_str().unwrap_or("-").to_owned();
        let paint = result.starts_with("PROBLEM").then_some(Paint::Red);
        for shard in mapping["shards"].as_array().into_iter().flatten() {
            let age = shard["iterator_age_ms"].as_i64().unwrap_or(0);
            let state = if shard["done"] == true {
                "drained".to_owned()
            } else {
                mapping["state"].as_str().unwrap_or("-").to_owned()
            };
            table.push(vec![
                Cell::painted(last(&mapping["source"]), Some(Paint::Bold)),
                Cell::new(last(&mapping["function"])),
                Cell::new(shard["shard"].as_str().unwrap_or("-")),
                Cell::painted(
                    crate::functions::milliseconds(age as f64),
                    (age > 60_000).then_some(Paint::Yellow),
                ),
                Cell::new(state),
                Cell::painted(result.clone(), paint),
            ]);
        }
    }
    table.render(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_shard_with_its_age() {
        let listing = serde_json::json!({"mappings": [{
            "source": "arn:aws:kinesis:us-east-1:0:stream/clicks", "function": "arn:aws:lambda:us-east-1:0:function:f",
            "state": "Enabled", "last_result": "OK",
            "shards": [{"shard": "shardId-000000000000", "iterator_age_ms": 1500, "done": false},
                       {"shard": "shardId-000000000001", "iterator_age_ms": 0, "done": true}]}]});
        let text = render(&listing, &Style::PLAIN);
        assert!(
            text.contains("clicks") && text.contains("shardId-000000000001") && text.contains("drained"),
            "{text}"
        );
        assert!(text.contains("1.50 s"), "{text}");
        assert!(render(&serde_json::json!({"mappings": []}), &Style::PLAIN).starts_with("no stream"));
    }
}
