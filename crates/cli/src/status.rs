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
    /// `sqlite`, or the PostgreSQL URL (without password) several nodes share.
    pub database: Option<String>,
    pub node: Option<String>,
    /// False when this node cannot reach the database (it claims no work then).
    pub database_reachable: Option<bool>,
    /// Every node on the database, as of the last heartbeat (PostgreSQL only).
    #[serde(default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub alive: bool,
    /// Milliseconds since its last heartbeat reached the database.
    pub heartbeat_age_ms: Option<i64>,
    /// What it holds, service by service (`{"lambda": {"async_events": 3}}`).
    #[serde(default)]
    pub work: Value,
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
    let database = health.database.clone().map(|database| match health.database_reachable {
        Some(false) => ("database", format!("{database} — unreachable: this node claims no work")),
        _ => ("database", database),
    });
    let rows = [
        ("services", services),
        ("isolation", health.isolation.clone().unwrap_or_else(|| "-".into())),
        ("network", health.network.clone().unwrap_or_else(|| "-".into())),
        ("environments", environments),
        ("memory", memory),
    ]
    .into_iter()
    .chain(database);
    let mut out = format!(
        "{}{version} at {endpoint}: {}\n",
        style.paint("nimbus", Paint::Bold),
        style.paint(status, status_paint)
    );
    for (label, value) in rows {
        out.push_str(&format!("  {}{value}\n", style.paint(&format!("{label:<14}"), Paint::Dim)));
    }
    for node in &health.nodes {
        out.push_str(&format!(
            "  {}{}\n",
            style.paint(&format!("{:<14}", "node"), Paint::Dim),
            node_line(node, health)
        ));
    }
    out
}

/// `b  http://10.0.0.2:4566  alive (beat 0.4 s ago)  lambda: async_events=3`, `(this one)` marked.
fn node_line(node: &Node, health: &Health) -> String {
    let this = if health.node.as_deref() == Some(node.name.as_str()) { " (this one)" } else { "" };
    let age = node
        .heartbeat_age_ms
        .map(|ms| format!(" (beat {:.1} s ago)", ms as f64 / 1000.0))
        .unwrap_or_default();
    let state = if node.alive { "alive" } else { "gone" };
    let mut work = Vec::new();
    if let Value::Object(services) = &node.work {
        for (service, held) in services {
            let Value::Object(held) = held else { continue };
            let items: Vec<String> = held.iter().map(|(what, count)| format!("{what}={count}")).collect();
            work.push(format!("{service}: {}", items.join(" ")));
        }
    }
    format!("{}{this}  {}  {state}{age}  {}", node.name, node.address, work.join(", ")).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_show_their_state_and_work_and_mark_this_one() {
        let health: Health = serde_json::from_value(serde_json::json!({
            "status": "ready", "database": "postgres://nimbus@db:5432/nimbus", "node": "a",
            "nodes": [
                {"name": "a", "address": "http://10.0.0.1:4566", "alive": true, "heartbeat_age_ms": 400,
                 "work": {"lambda": {"async_events": 3}}},
                {"name": "b", "address": "http://10.0.0.2:4566", "alive": false, "heartbeat_age_ms": 61000, "work": {}},
            ],
        }))
        .unwrap();
        let text = render(&health, "http://10.0.0.1:4566", &Style::PLAIN);
        assert!(text.contains("database      postgres://nimbus@db:5432/nimbus"), "{text}");
        assert!(
            text.contains(
                "a (this one)  http://10.0.0.1:4566  alive (beat 0.4 s ago)  lambda: async_events=3"
            ),
            "{text}"
        );
        assert!(text.contains("b  http://10.0.0.2:4566  gone (beat 61.0 s ago)\n"), "{text}");
    }
}
