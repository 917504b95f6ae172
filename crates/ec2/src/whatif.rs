//! The what-if comparison (`GET /_nimbus/ec2/what-if[?since=<seconds>]`): the workload the meter
//! has seen — functions' billed requests and GB-seconds (from CloudWatch's figures, through
//! [`FunctionUsage`]) and instances' billed seconds (the ledger) — priced as AWS Lambda on x86_64
//! and arm64, and as AWS Batch on EC2 capacity on demand, spot and reserved, on x86_64 and on
//! Graviton, with the price sources and their dates. `nimbus cost --what-if` prints it.

use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::{self, Catalog, InstanceType, PRICE_SOURCE};
use crate::meter::{billing_of, graviton_equivalent};
use crate::Ec2;

/// AWS Lambda's prices, us-east-1, first tier (USD).
pub const LAMBDA_REQUEST_USD: f64 = 0.20 / 1_000_000.0;
pub const LAMBDA_GB_SECOND_X86_USD: f64 = 0.000_016_666_7;
pub const LAMBDA_GB_SECOND_ARM_USD: f64 = 0.000_013_333_4;
const LAMBDA_SOURCE: &str =
    "AWS Lambda pricing page, us-east-1, first tier, as recorded in crates/ec2/data/SOURCE.txt";
const LAMBDA_DATE: &str = "2026-12-06";
const EC2_DATE: &str = "2026-07-20";
/// Lambda runs one invocation for at most 15 minutes: an instance's stretch is that many requests.
const LAMBDA_MAX_SECONDS: f64 = 900.0;
/// The types functions' work is packed onto when priced as Batch jobs (general purpose).
const PACK_X86: &str = "m7i.xlarge";
const PACK_ARM: &str = "m7g.xlarge";
/// The reservation the comparison assumes.
const RESERVED: (i64, &str, &str) = (1, "standard", "No Upfront");

/// Billed compute of functions on one architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionUse {
    /// `x86_64` or `arm64`.
    pub architecture: String,
    pub requests: u64,
    pub gb_seconds: f64,
}

/// Where the meter reads what functions used (the consumer's trait: CloudWatch's figures
/// implement it where nimbus is wired).
pub trait FunctionUsage: Send + Sync + 'static {
    /// Billed use from the minute `since_ms` falls in to the end of the minute `until_ms` falls
    /// in (a minute's boundary ends the span there), per architecture; Err says why it is unknown.
    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<FunctionUse>, String>;
}

const ARCHES: [&str; 2] = ["x86_64", "arm64"];
const MARKETS: [&str; 3] = ["on-demand", "spot", "reserved"];

fn lambda_gb_second(arch: &str) -> f64 {
    if arch == "arm64" {
        LAMBDA_GB_SECOND_ARM_USD
    } else {
        LAMBDA_GB_SECOND_X86_USD
    }
}

/// The x86_64 type of the same size for a Graviton type (`m7g.large` → `m7i.large`,
/// `t4g.micro` → `t3.micro`).
pub fn x86_equivalent(type_name: &str) -> Option<String> {
    let (family, size) = type_name.split_once('.')?;
    let target = match family.chars().next()? {
        't' => "t3".to_owned(),
        class @ ('m' | 'c' | 'r') => format!("{class}7i"),
        _ => return None,
    };
    let candidate = format!("{target}.{size}");
    Catalog::get().instance_type(&candidate).filter(|t| t.arch() == "x86_64").map(|t| t.name.clone())
}

/// The type `kind`'s work would run on with architecture `arch` (itself when it has that
/// architecture or no equivalent).
fn on_arch<'a>(kind: &'a InstanceType, arch: &str) -> &'a InstanceType {
    let other = match (kind.arch(), arch) {
        ("x86_64", "arm64") => graviton_equivalent(&kind.name),
        ("arm64", "x86_64") => x86_equivalent(&kind.name),
        _ => None,
    };
    other.and_then(|name| Catalog::get().instance_type(&name)).unwrap_or(kind)
}

/// USD per hour of `kind` on `market` in `zone` at `at_ms`.
fn hourly(kind: &InstanceType, market: &str, zone: &str, at_ms: i64) -> f64 {
    let on_demand = kind.price.unwrap_or(0.0);
    match market {
        "spot" => catalog::spot_price(kind, zone, at_ms).unwrap_or(on_demand),
        "reserved" => on_demand * (1.0 - crate::reserved::discount(RESERVED.0, RESERVED.1, RESERVED.2)),
        _ => on_demand,
    }
}

impl Ec2 {
    /// Where the what-if comparison reads functions' use (set by the integrator).
    pub fn set_function_usage(&self, usage: Arc<dyn FunctionUsage>) {
        let _ = self.function_usage.set(usage);
    }

    /// The comparison over the last `since_seconds` (everything metered when None).
    pub fn what_if(&self, since_seconds: Option<f64>) -> Result<Value, AwsError> {
        let now = self.now();
        let since = since_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(0, |s| now.saturating_sub((s * 1000.0) as i64).max(0));
        let functions = match self.function_usage.get() {
            Some(source) => source.usage(since, now),
            None => Err("nimbus's CloudWatch figures are not wired to the meter".to_owned()),
        };
        let (functions, functions_note) = match functions {
            Ok(list) => (list, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        let catalog = Catalog::get();
        let zone = catalog::zones(&self.identity.region).first().map(|(z, _)| z.clone()).unwrap_or_default();
        let pack = |arch: &str| catalog.instance_type(if arch == "arm64" { PACK_ARM } else { PACK_X86 });

        // What was used, and what it cost as it ran.
        let requests: u64 = functions.iter().map(|f| f.requests).sum();
        let gb_seconds: f64 = functions.iter().map(|f| f.gb_seconds).sum();
        let functions_metered: f64 = functions
            .iter()
            .map(|f| {
                f.requests as f64 * LAMBDA_REQUEST_USD + f.gb_seconds * lambda_gb_second(&f.architecture)
            })
            .sum();
        let segments = self.store.segments(since, None)?;
        let (mut billed_seconds, mut gib_seconds, mut vcpu_seconds, mut stretches) = (0.0, 0.0, 0.0, 0.0);
        let mut instances_metered = 0.0;
        // options[arch][market]: the instances' seconds priced on that capacity.
        let mut on_capacity = [[0.0f64; 3]; 2];
        let mut instances_as_lambda = [0.0f64; 2];
        for segment in &segments {
            let billing = billing_of(segment, since, now);
            let Some(kind) = catalog.instance_type(&segment.instance_type) else { continue };
            let free = segment.billing.starts_with("spot") && segment.interrupted && billing.whole < 3600.0;
            if !free {
                instances_metered += billing.billed / 3600.0 * segment.rate;
            }
            billed_seconds += billing.billed;
            let gib = kind.memory_mib as f64 / 1024.0;
            gib_seconds += billing.billed * gib;
            vcpu_seconds += billing.billed * f64::from(kind.vcpus);
            let requests = (billing.billed / LAMBDA_MAX_SECONDS).ceil().max(1.0);
            stretches += requests;
            for (a, arch) in ARCHES.iter().enumerate() {
                let target = on_arch(kind, arch);
                for (m, market) in MARKETS.iter().enumerate() {
                    on_capacity[a][m] +=
                        billing.billed / 3600.0 * hourly(target, market, &segment.zone, segment.start_ms);
                }
                instances_as_lambda[a] +=
                    requests * LAMBDA_REQUEST_USD + billing.billed * gib * lambda_gb_second(arch);
            }
        }
        // Nano-dollars: a test workload costs fractions of a micro-dollar.
        let round = |v: f64| (v * 1e9).round() / 1e9;
        let mut options = Vec::new();
        for (a, arch) in ARCHES.iter().enumerate() {
            let functions_usd = requests as f64 * LAMBDA_REQUEST_USD + gb_seconds * lambda_gb_second(arch);
            let instances_usd = instances_as_lambda[a];
            options.push(json!({
                "service": "Lambda", "architecture": arch, "market": "on-demand",
                "functions_usd": round(functions_usd), "instances_usd": round(instances_usd),
                "usd": round(functions_usd + instances_usd),
            }));
        }
        for (a, arch) in ARCHES.iter().enumerate() {
            for (m, market) in MARKETS.iter().enumerate() {
                // Functions' GB-seconds packed onto general purpose instances, priced by memory.
                let functions_usd = pack(arch).map_or(0.0, |kind| {
                    let per_gib_hour = hourly(kind, market, &zone, now) / (kind.memory_mib as f64 / 1024.0);
                    gb_seconds / 3600.0 * per_gib_hour
                });
                let instances_usd = on_capacity[a][m];
                options.push(json!({
                    "service": "Batch", "architecture": arch, "market": market,
                    "functions_usd": round(functions_usd), "instances_usd": round(instances_usd),
                    "usd": round(functions_usd + instances_usd),
                }));
            }
        }
        let (x86, arm) = (pack("x86_64"), pack("arm64"));
        let reserved = crate::reserved::discount(RESERVED.0, RESERVED.1, RESERVED.2);
        Ok(json!({
            "since": crate::iso8601(since),
            "until": crate::iso8601(now),
            "currency": "USD",
            "workload": {
                "functions": {
                    "requests": requests,
                    "gb_seconds": round(gb_seconds),
                    "by_architecture": functions.iter().map(|f| json!({
                        "architecture": f.architecture, "requests": f.requests, "gb_seconds": round(f.gb_seconds),
                    })).collect::<Vec<_>>(),
                    "unknown": functions_note,
                },
                "instances": {
                    "stretches": segments.len(),
                    "as_lambda_requests": stretches,
                    "billed_seconds": round(billed_seconds),
                    "vcpu_seconds": round(vcpu_seconds),
                    "gib_seconds": round(gib_seconds),
                },
            },
            "as_metered": {
                "functions_usd": round(functions_metered),
                "instances_usd": round(instances_metered),
                "usd": round(functions_metered + instances_metered),
            },
            "options": options,
            "assumptions": [
                "Lambda: requests and GB-seconds as billed; an instance's work as functions with the instance's memory for the seconds it ran, one request per 15 minutes (Lambda's longest run).",
                format!("Batch (no charge of its own) on EC2: instances' billed seconds on their own type or its equivalent on the other architecture (m/c/r → 7th-generation Graviton or Intel, t3 ↔ t4g); functions' GB-seconds packed onto {} / {} by memory, with no idle capacity.", x86.map_or(PACK_X86, |k| &k.name), arm.map_or(PACK_ARM, |k| &k.name)),
                format!("Spot: nimbus's spot price model at each stretch's start; reserved: a {}-year {} {} reservation, {:.0} % below on-demand, fully used.", RESERVED.0, RESERVED.1, RESERVED.2, reserved * 100.0),
            ],
            "sources": [
                { "prices": "EC2 on-demand (Linux)", "source": PRICE_SOURCE, "date": EC2_DATE },
                { "prices": "EC2 spot", "source": "nimbus's model: 60-80 % below on-demand by type, ±8 % per zone and six hours", "date": EC2_DATE },
                { "prices": "EC2 reserved", "source": "nimbus's discount table off on-demand (crates/ec2/src/reserved.rs)", "date": EC2_DATE },
                { "prices": "Lambda (requests, GB-seconds x86_64 / arm64)", "source": LAMBDA_SOURCE, "date": LAMBDA_DATE },
            ],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalents_across_architectures() {
        assert_eq!(x86_equivalent("m7g.large").as_deref(), Some("m7i.large"));
        assert_eq!(x86_equivalent("t4g.micro").as_deref(), Some("t3.micro"));
        assert_eq!(x86_equivalent("g5g.xlarge"), None);
        let m5 = Catalog::get().instance_type("m5.large").unwrap();
        assert_eq!(on_arch(m5, "arm64").name, "m7g.large");
        assert_eq!(on_arch(m5, "x86_64").name, "m5.large");
    }

    #[test]
    fn prices_per_market() {
        let kind = Catalog::get().instance_type("m7i.xlarge").unwrap();
        let on_demand = hourly(kind, "on-demand", "us-east-1a", 0);
        assert_eq!(Some(on_demand), kind.price);
        assert!(hourly(kind, "spot", "us-east-1a", 0) < on_demand * 0.5);
        assert!((hourly(kind, "reserved", "us-east-1a", 0) - on_demand * 0.64).abs() < 1e-9);
        assert!(lambda_gb_second("arm64") < lambda_gb_second("x86_64"));
    }
}
