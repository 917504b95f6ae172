//! The meter: instance-seconds by type, zone, architecture and purchase option from the usage
//! ledger, priced as AWS bills Linux instances — per second with a 60-second minimum per running
//! stretch, spot at the spot price in force at launch (nothing for a spot instance EC2
//! interrupted within its first hour), reserved coverage at the reservation's effective rate —
//! and what the same seconds would cost on demand, on spot and on the Graviton equivalent.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::{self, Catalog, PRICE_SOURCE};
use crate::store::Segment;
use crate::Ec2;

/// AWS's minimum charge per running stretch of a Linux instance.
const MINIMUM_SECONDS: f64 = 60.0;

/// The Graviton (arm64) type of the same size in the matching current family: `m5.large` →
/// `m7g.large`, `c6i.xlarge` → `c7g.xlarge`, `t3.micro` → `t4g.micro`.
pub fn graviton_equivalent(type_name: &str) -> Option<String> {
    let (family, size) = type_name.split_once('.')?;
    let class = family.chars().next()?;
    let target = match class {
        't' => "t4g".to_owned(),
        'm' | 'c' | 'r' => format!("{class}7g"),
        _ => return None,
    };
    let candidate = format!("{target}.{size}");
    Catalog::get().instance_type(&candidate).filter(|t| t.arch() == "arm64").map(|t| t.name.clone())
}

/// A segment's time inside a window.
pub(crate) struct Billing {
    /// Seconds it ran inside the window.
    pub seconds: f64,
    /// Seconds billed: with the minimum, once, for a stretch that began inside the window.
    pub billed: f64,
    /// Seconds of the whole stretch (inside the window or not).
    pub whole: f64,
}

pub(crate) fn billing_of(segment: &Segment, since: i64, now: i64) -> Billing {
    let end = segment.end_ms.unwrap_or(now).min(now);
    let start = segment.start_ms.max(since);
    let seconds = ((end - start).max(0)) as f64 / 1000.0;
    let whole = ((end - segment.start_ms).max(0)) as f64 / 1000.0;
    let billed = if segment.start_ms >= since && segment.end_ms.is_some() {
        seconds.max(MINIMUM_SECONDS)
    } else {
        seconds
    };
    Billing { seconds, billed, whole }
}

#[derive(Default)]
struct Line {
    instances: std::collections::BTreeSet<String>,
    seconds: f64,
    billed_seconds: f64,
    usd: f64,
    on_demand_usd: f64,
    spot_usd: f64,
    graviton_usd: Option<f64>,
}

impl Ec2 {
    /// The meter over the last `since_seconds` (everything when None).
    pub fn meter(&self, since_seconds: Option<f64>) -> Result<Value, AwsError> {
        let now = self.now();
        let since = since_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(0, |s| now.saturating_sub((s * 1000.0) as i64).max(0));
        let segments = self.store.segments(since, None)?;
        let mut lines: BTreeMap<(String, String, String, String), Line> = BTreeMap::new();
        let catalog = Catalog::get();
        for segment in &segments {
            let Segment { instance_type, zone, arch, billing, rate, start_ms, interrupted, .. } = segment;
            let Billing { seconds, billed, whole } = billing_of(segment, since, now);
            let market = billing.split(':').next().unwrap_or(billing).to_owned();
            let free = market == "spot" && *interrupted && whole < 3600.0;
            let usd = if free { 0.0 } else { billed / 3600.0 * rate };
            let kind = catalog.instance_type(instance_type);
            let on_demand = kind.and_then(|k| k.price).unwrap_or(0.0);
            let spot = kind.and_then(|k| catalog::spot_price(k, zone, *start_ms)).unwrap_or(0.0);
            let graviton = graviton_equivalent(instance_type)
                .and_then(|g| catalog.instance_type(&g).and_then(|k| k.price))
                .filter(|_| arch != "arm64");
            let line = lines.entry((instance_type.clone(), market, zone.clone(), arch.clone())).or_default();
            line.instances.insert(segment.instance_id.clone());
            line.seconds += seconds;
            line.billed_seconds += billed;
            line.usd += usd;
            line.on_demand_usd += billed / 3600.0 * on_demand;
            line.spot_usd += billed / 3600.0 * spot;
            if let Some(price) = graviton {
                *line.graviton_usd.get_or_insert(0.0) += billed / 3600.0 * price;
            }
        }
        let round = |v: f64| (v * 1e6).round() / 1e6;
        let mut total = 0.0;
        let mut on_demand_total = 0.0;
        let rows: Vec<Value> = lines
            .into_iter()
            .map(|((instance_type, market, zone, arch), line)| {
                total += line.usd;
                on_demand_total += line.on_demand_usd;
                json!({
                    "instance_type": instance_type,
                    "market": market,
                    "availability_zone": zone,
                    "architecture": arch,
                    "instances": line.instances.len(),
                    "seconds": round(line.seconds),
                    "billed_seconds": round(line.billed_seconds),
                    "usd": round(line.usd),
                    "on_demand_usd": round(line.on_demand_usd),
                    "spot_usd": round(line.spot_usd),
                    "graviton_type": graviton_equivalent(&instance_type).filter(|_| arch != "arm64"),
                    "graviton_usd": line.graviton_usd.map(round),
                })
            })
            .collect();
        Ok(json!({
            "since": crate::iso8601(since),
            "until": crate::iso8601(now),
            "currency": "USD",
            "source": PRICE_SOURCE,
            "spot_model": "6-hourly price per type and zone: 60-80 % below on-demand (seeded by type) ±8 %",
            "total_usd": round(total),
            "on_demand_usd": round(on_demand_total),
            "lines": rows,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::graviton_equivalent;

    #[test]
    fn graviton_equivalents() {
        assert_eq!(graviton_equivalent("m5.large").as_deref(), Some("m7g.large"));
        assert_eq!(graviton_equivalent("t3.micro").as_deref(), Some("t4g.micro"));
        assert_eq!(graviton_equivalent("p3.2xlarge"), None);
    }
}
