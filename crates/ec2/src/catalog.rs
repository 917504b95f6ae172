//! What EC2 offers: the instance types (from `data/instance-types.csv`, projected from
//! DescribeInstanceTypes output), their on-demand prices (`data/on-demand-linux-us-east-1.csv`,
//! us-east-1 Linux, used for every region), regions and Availability Zones, the images nimbus
//! serves, and the spot and reserved price models derived from the on-demand price.

use std::collections::HashMap;
use std::sync::OnceLock;

const TYPES_CSV: &str = include_str!("../data/instance-types.csv");
const PRICES_CSV: &str = include_str!("../data/on-demand-linux-us-east-1.csv");
/// Where and when the prices come from, shown beside every cost figure.
pub const PRICE_SOURCE: &str =
    "on-demand Linux us-east-1 from aws/karpenter-provider-aws zz_generated.pricing_aws.go (generated 2026-07-20)";

#[derive(Debug, Clone)]
pub struct InstanceType {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `x86_64` or `arm64` (i386 types list both i386 and x86_64).
    pub architectures: Vec<String>,
    pub manufacturer: String,
    pub gpus: u32,
    pub burstable: bool,
    pub bare_metal: bool,
    pub current_generation: bool,
    pub usage_classes: Vec<String>,
    pub network: String,
    /// USD per hour, Linux on-demand; None where the price list has no figure.
    pub price: Option<f64>,
}

impl InstanceType {
    /// The architecture programs in an instance of this type are built for.
    pub fn arch(&self) -> &str {
        if self.architectures.iter().any(|a| a == "arm64") {
            "arm64"
        } else {
            "x86_64"
        }
    }

    pub fn family(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    pub fn size(&self) -> &str {
        self.name.split_once('.').map_or("", |(_, size)| size)
    }

    pub fn spot_supported(&self) -> bool {
        self.usage_classes.iter().any(|c| c == "spot")
    }

    pub fn free_tier(&self) -> bool {
        matches!(self.name.as_str(), "t2.micro" | "t3.micro" | "t4g.micro")
    }
}

pub struct Catalog {
    pub types: Vec<InstanceType>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(Catalog::load)
    }

    fn load() -> Catalog {
        let prices: HashMap<&str, f64> = PRICES_CSV
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (name, price) = line.split_once(',')?;
                Some((name, price.trim().parse().ok()?))
            })
            .collect();
        let mut types = Vec::new();
        for line in TYPES_CSV.lines().skip(1) {
            let f: Vec<&str> = line.splitn(11, ',').collect();
            if f.len() < 11 {
                continue;
            }
            let split = |s: &str| s.split('|').filter(|p| !p.is_empty()).map(str::to_owned).collect();
            types.push(InstanceType {
                name: f[0].to_owned(),
                vcpus: f[1].parse().unwrap_or(0),
                memory_mib: f[2].parse().unwrap_or(0),
                architectures: split(f[3]),
                manufacturer: f[4].to_owned(),
                gpus: f[5].parse().unwrap_or(0),
                burstable: f[6] == "True",
                bare_metal: f[7] == "True",
                current_generation: f[8] == "True",
                usage_classes: split(f[9]),
                network: f[10].to_owned(),
                price: prices.get(f[0]).copied(),
            });
        }
        types.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = types.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Catalog { types, by_name }
    }

    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.by_name.get(name).map(|&i| &self.types[i])
    }
}

/// The regions nimbus answers for, with their Availability Zone id prefix.
pub const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "use1"),
    ("us-east-2", "use2"),
    ("us-west-1", "usw1"),
    ("us-west-2", "usw2"),
    ("ca-central-1", "cac1"),
    ("sa-east-1", "sae1"),
    ("eu-west-1", "euw1"),
    ("eu-west-2", "euw2"),
    ("eu-west-3", "euw3"),
    ("eu-central-1", "euc1"),
    ("eu-north-1", "eun1"),
    ("ap-south-1", "aps1"),
    ("ap-southeast-1", "apse1"),
    ("ap-southeast-2", "apse2"),
    ("ap-northeast-1", "apne1"),
    ("ap-northeast-2", "apne2"),
];

/// Three zones per region: `(name, id)`, e.g. `("us-east-1a", "use1-az1")`.
pub fn zones(region: &str) -> Vec<(String, String)> {
    let prefix = REGIONS.iter().find(|(name, _)| *name == region).map_or("use1", |(_, p)| p);
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("{region}{l}"), format!("{prefix}-az{}", i + 1)))
        .collect()
}

/// An image nimbus serves: the host's own root file system, read-only.
pub struct Image {
    pub id: &'static str,
    pub name: &'static str,
    pub arch: &'static str,
}

/// Amazon's owner id for Amazon Linux images.
pub const AMAZON_OWNER: &str = "137112412989";

pub const IMAGES: &[Image] = &[
    Image { id: "ami-0a1b2c3d4e5f60001", name: "al2023-ami-nimbus-host-x86_64", arch: "x86_64" },
    Image { id: "ami-0a1b2c3d4e5f60002", name: "al2023-ami-nimbus-host-arm64", arch: "arm64" },
];

pub fn image(id: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|image| image.id == id)
}

/// FNV-1a: the seed of every derived price (stable across builds and machines).
pub fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Spot prices change every six hours.
pub const SPOT_PERIOD_MS: i64 = 6 * 3600 * 1000;

/// The spot price of `type_name` in `zone` during the six-hour period holding `at_ms`: the type's
/// long-run discount (60-80 % below on-demand, seeded by the type's name) times a factor within
/// ±8 % drawn per (type, zone, period) — a series that always returns to its mean; never above
/// on-demand. None when the type has no on-demand price.
pub fn spot_price(kind: &InstanceType, zone: &str, at_ms: i64) -> Option<f64> {
    let on_demand = kind.price?;
    let discount = 0.60 + (hash(&[&kind.name]) % 21) as f64 / 100.0;
    let period = at_ms.div_euclid(SPOT_PERIOD_MS).to_string();
    let wobble = (hash(&[&kind.name, zone, &period]) % 1601) as f64 / 10_000.0 - 0.08;
    let price = on_demand * (1.0 - discount) * (1.0 + wobble);
    Some(round6(price.min(on_demand)))
}

pub fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// Normalisation factor of a size (AWS's table; `Nxlarge` = 8·N; `metal` counted as 192).
pub fn normalization_factor(size: &str) -> f64 {
    match size {
        "nano" => 0.25,
        "micro" => 0.5,
        "small" => 1.0,
        "medium" => 2.0,
        "large" => 4.0,
        "xlarge" => 8.0,
        s if s.starts_with("metal") => 192.0,
        s => s.strip_suffix("xlarge").and_then(|n| n.parse::<f64>().ok()).map_or(1.0, |n| 8.0 * n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_carries_types_and_prices() {
        let catalog = Catalog::get();
        assert!(catalog.types.len() > 1000);
        let m7g = catalog.instance_type("m7g.large").unwrap();
        assert_eq!((m7g.vcpus, m7g.memory_mib, m7g.arch()), (2, 8192, "arm64"));
        assert_eq!(m7g.price, Some(0.0816));
        assert_eq!(catalog.instance_type("c5.large").unwrap().arch(), "x86_64");
    }

    #[test]
    fn spot_prices_stay_below_on_demand_and_move_by_period() {
        let kind = Catalog::get().instance_type("c5.large").unwrap();
        let prices: Vec<f64> =
            (0..20).map(|p| spot_price(kind, "us-east-1a", p * SPOT_PERIOD_MS).unwrap()).collect();
        assert!(prices.iter().all(|p| *p < 0.085 * 0.45 && *p > 0.085 * 0.15), "{prices:?}");
        assert!(prices.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(spot_price(kind, "us-east-1a", 5), spot_price(kind, "us-east-1a", 6));
    }

    #[test]
    fn normalisation_follows_aws() {
        assert_eq!(normalization_factor("large"), 4.0);
        assert_eq!(normalization_factor("2xlarge"), 16.0);
        assert_eq!(normalization_factor("48xlarge"), 384.0);
    }
}
