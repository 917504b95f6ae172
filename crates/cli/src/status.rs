//! `nimbus status`: what the running nimbus serves and how busy it is.

use serde::Deserialize;
use serde_json::Value;

use crate::http::{Client, Error};
use crate::style::{Console, Paint, Style};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
}

/// `GET /_nimbus/health`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Health {
    pub status: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    pub isolation: Option<String>,
    /// Whether each environment has a network of its own (`own`) or shares one.
    pub network: Option<String>,
    pub environments: Option<Environments>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Environments {
    /// Live execution environments, busy ones included.
    pub environments: Option<u64>,
    pub busy: Option<u64>,
    /// The MemorySize of the live environments, added up.
    pub memory_mb: Option<u64>,
}

pub const PATH: &str = "/_nimbus/health";

pub fn fetch(client: &Client) -> Result<(Value, Health), Error> {
    let raw = client.get_json(PATH)?;
    let health = Health::deserialize(&raw).map_err(|error| Error::Unexpected {
        url: format!("{}{PATH}", client.endpoint()),
        reason: error.to_string(),
    })?;
    Ok((raw, health))
}

pub fn run(args: &StatusArgs, client: &Client, console: &Console) -> Result<(), Error> {
    let (raw, health) = fetch(client)?;
    let text = if args.common.json {
        crate::pretty(&raw)
    } else {
        render(&health, client.endpoint(), &console.stdout)
    };
    crate::write_stdout(&text)
}

pub fn render(health: &Health, endpoint: &str, style: &Style) -> String {
    let status = health.status.as_deref().unwrap_or("unknown");
    let status_paint = if status == "ready" { Paint::Green } else { Paint::Yellow };
    let version = health.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    let services = if health.services.is_empty() { "-".to_string() } else { health.services.join(", ") };
    let stats = health.environments.clone().unwrap_or_default();
    let environments = match (stats.environments, stats.busy) {
        (Some(warm), Some(busy)) => format!("{warm} warm ({busy} busy)"),
        (Some(warm), None) => format!("{warm} warm"),
        _ => "-".to_string(),
    };
    let memory = stats.memory_mb.map_or_else(|| "-".to_string(), |mb| format!("{mb} MB in use"));
    let rows = [
        ("services", services),
        ("isolation", health.isolation.clone().unwrap_or_else(|| "-".into())),
        ("network", health.network.clone().unwrap_or_else(|| "-".into())),
        ("environments", environments),
        ("memory", memory),
    ];
    let mut out = format!(
        "{}{version} at {endpoint}: {}\n",
        style.paint("nimbus", Paint::Bold),
        style.paint(status, status_paint)
    );
    for (label, value) in rows {
        out.push_str(&format!("  {}{value}\n", style.paint(&format!("{label:<14}"), Paint::Dim)));
    }
    out
}
