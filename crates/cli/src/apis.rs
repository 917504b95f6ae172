//! `nimbus apis`: every API Gateway stage and Lambda function URL with the local URL that
//! reaches it, so a person can open it.

use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct ApisArgs {
    #[command(flatten)]
    pub common: Common,
}

pub const PATH: &str = "/_nimbus/apis";

pub fn run(args: &ApisArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let raw = client.get_json(PATH)?;
    let text = if args.common.json { crate::pretty(&raw) } else { render(&raw, &console.stdout) };
    crate::write_stdout(&text)
}

pub fn render(listing: &Value, style: &Style) -> String {
    let rows = listing["apis"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "no APIs or function URLs (make one with `aws apigatewayv2 create-api --target …` or `aws lambda create-function-url-config`)\n".into();
    }
    let mut table = Table::new(&[
        ("KIND", Align::Left),
        ("NAME", Align::Left),
        ("ID", Align::Left),
        ("STAGE", Align::Left),
        ("REGION", Align::Left),
        ("URL", Align::Left),
    ]);
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    for row in rows {
        table.push(vec![
            Cell::new(text(&row["kind"])),
            Cell::painted(text(&row["name"]), Some(Paint::Bold)),
            Cell::new(text(&row["id"])),
            Cell::new(text(&row["stage"])),
            Cell::new(text(&row["region"])),
            Cell::new(text(&row["url"])),
        ]);
    }
    table.render(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_apis_and_urls() {
        let listing = serde_json::json!({ "apis": [
            { "kind": "HTTP API", "name": "shop", "id": "abc123", "stage": "$default", "region": "eu-west-1", "url": "http://abc123.execute-api.localhost:4566/" },
            { "kind": "function URL", "name": "fn", "id": null, "stage": null, "url": "http://u.lambda-url.us-east-1.localhost:4566/" },
        ] });
        let text = render(&listing, &Style::PLAIN);
        assert!(text.contains("http://abc123.execute-api.localhost:4566/"));
        assert!(text.lines().nth(1).unwrap().contains("eu-west-1"));
        assert!(text.lines().nth(2).unwrap().starts_with("function URL"));
        assert!(render(&serde_json::json!({ "apis": [] }), &Style::PLAIN).starts_with("no APIs"));
    }
}
