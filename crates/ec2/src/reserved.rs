//! Reserved Instances: offerings for every type (1 and 3 years, standard and convertible, no,
//! partial and all upfront) priced from the on-demand price by a documented discount table,
//! purchases stored, and the coverage the meter applies (regional scope, size-flexible within a
//! family by normalisation factor, as AWS applies Linux regional reservations).

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::{hash, normalization_factor, round6, Catalog, InstanceType};
use crate::model::Instance;
use crate::query::{any_matches, filters, invalid, page_iter, Input};
use crate::Ec2;

const YEAR: i64 = 31_536_000;
const CLASSES: [&str; 2] = ["standard", "convertible"];
const PAYMENTS: [&str; 3] = ["No Upfront", "Partial Upfront", "All Upfront"];

/// The discount off on-demand of an offering (close to AWS's typical published figures).
pub fn discount(years: i64, class: &str, payment: &str) -> f64 {
    let base = match (years, class) {
        (1, "standard") => 0.36,
        (3, "standard") => 0.55,
        (1, _) => 0.25,
        _ => 0.45,
    };
    base + match payment {
        "Partial Upfront" => 0.03,
        "All Upfront" => 0.05,
        _ => 0.0,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offering {
    pub id: String,
    pub instance_type: String,
    pub duration: i64,
    pub class: String,
    pub payment: String,
    /// Effective USD per hour (upfront spread over the term).
    pub hourly: f64,
    pub fixed: f64,
    pub recurring: f64,
}

impl Offering {
    fn of(kind: &InstanceType, years: i64, class: &str, payment: &str) -> Option<Offering> {
        let on_demand = kind.price?;
        let hourly = on_demand * (1.0 - discount(years, class, payment));
        let hours = (years * YEAR / 3600) as f64;
        let (fixed, recurring) = match payment {
            "All Upfront" => (hourly * hours, 0.0),
            "Partial Upfront" => (hourly * hours / 2.0, hourly / 2.0),
            _ => (0.0, hourly),
        };
        let h1 = hash(&[&kind.name, &years.to_string(), class, payment]);
        let h2 = hash(&[payment, class, &kind.name]);
        let id = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            h1 >> 32,
            (h1 >> 16) & 0xffff,
            h1 & 0xffff,
            h2 >> 48,
            h2 & 0xffff_ffff_ffff
        );
        Some(Offering {
            id,
            instance_type: kind.name.clone(),
            duration: years * YEAR,
            class: class.to_owned(),
            payment: payment.to_owned(),
            hourly: round6(hourly),
            fixed: (fixed * 100.0).round() / 100.0,
            recurring: round6(recurring),
        })
    }

    fn all_for(kind: &InstanceType) -> Vec<Offering> {
        let mut all = Vec::new();
        for years in [1, 3] {
            for class in CLASSES {
                for payment in PAYMENTS {
                    all.extend(Offering::of(kind, years, class, payment));
                }
            }
        }
        all
    }

    fn xml(&self) -> Value {
        json!({
            "reservedInstancesOfferingId": self.id, "instanceType": self.instance_type, "duration": self.duration,
            "fixedPrice": self.fixed, "usagePrice": 0.0, "productDescription": "Linux/UNIX", "instanceTenancy": "default",
            "currencyCode": "USD", "offeringType": self.payment, "offeringClass": self.class, "marketplace": false,
            "scope": "Region", "pricingDetailsSet": [],
            "recurringCharges": if self.recurring > 0.0 { json!([{ "frequency": "Hourly", "amount": self.recurring }]) } else { json!([]) },
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub region: String,
    pub offering: Offering,
    pub count: u32,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Reservation {
    fn state(&self, now: i64) -> &'static str {
        if now >= self.end_ms {
            "retired"
        } else {
            "active"
        }
    }
}

impl Ec2 {
    pub(crate) fn describe_reserved_offerings(&self, input: &Value) -> Result<Value, AwsError> {
        let catalog = Catalog::get();
        let type_name = input.str("InstanceType");
        if let Some(name) = type_name {
            if catalog.instance_type(name).is_none() {
                return Err(invalid(format!("Invalid value '{name}' for InstanceType.")));
            }
        }
        let ids = input.strings("ReservedInstancesOfferingId");
        let class = input.str("OfferingClass");
        let payment = input.str("OfferingType");
        let (min, max) =
            (input.int("MinDuration")?.unwrap_or(0), input.int("MaxDuration")?.unwrap_or(i64::MAX));
        let products = input.str("ProductDescription");
        let filters = filters(input);
        let linux = products.is_none_or(|p| p.starts_with("Linux/UNIX"));
        let offerings = catalog
            .types
            .iter()
            .filter(|t| linux && type_name.is_none_or(|n| n == t.name))
            .flat_map(Offering::all_for)
            .filter(|offering| {
                (ids.is_empty() || ids.contains(&offering.id))
                    && class.is_none_or(|c| c == offering.class)
                    && payment.is_none_or(|p| p == offering.payment)
                    && (min..=max).contains(&offering.duration)
                    && filters.iter().all(|(n, v)| match n.as_str() {
                        "instance-type" => any_matches(v, std::slice::from_ref(&offering.instance_type)),
                        "duration" => any_matches(v, &[offering.duration.to_string()]),
                        "scope" => any_matches(v, &["Region".to_owned()]),
                        "product-description" => any_matches(v, &["Linux/UNIX".to_owned()]),
                        _ => true,
                    })
            })
            .map(|offering| offering.xml());
        let (page, next) = page_iter(input, offerings, 5, 100)?;
        Ok(json!({ "reservedInstancesOfferingsSet": page, "nextToken": next }))
    }

    pub(crate) fn purchase_reserved(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let id = input.required("ReservedInstancesOfferingId")?;
        let count = input.int("InstanceCount")?.ok_or_else(|| crate::query::missing("InstanceCount"))?;
        if count < 1 {
            return Err(invalid(format!("Invalid value '{count}' for InstanceCount.")));
        }
        let offering =
            Catalog::get().types.iter().flat_map(Offering::all_for).find(|o| o.id == id).ok_or_else(
                || {
                    AwsError::new(
                        400,
                        "InvalidReservedInstancesOfferingId",
                        format!("The Reserved Instances offering '{id}' does not exist."),
                    )
                },
            )?;
        let now = self.now();
        let reservation = Reservation {
            id: uuid::Uuid::new_v4().to_string(),
            region: region.to_owned(),
            end_ms: now + offering.duration * 1000,
            offering,
            count: count as u32,
            start_ms: now,
        };
        self.store.put("reservation", &reservation.id, region, &reservation, now)?;
        Ok(json!({ "reservedInstancesId": reservation.id }))
    }

    pub(crate) fn describe_reserved(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("ReservedInstancesId");
        let filters = filters(input);
        let now = self.now();
        let set: Vec<Value> = self
            .store
            .all::<Reservation>("reservation", Some(region))?
            .iter()
            .filter(|r| ids.is_empty() || ids.contains(&r.id))
            .filter(|r| input.str("OfferingClass").is_none_or(|c| c == r.offering.class))
            .filter(|r| input.str("OfferingType").is_none_or(|c| c == r.offering.payment))
            .filter(|r| {
                filters.iter().all(|(n, v)| match n.as_str() {
                    "instance-type" => any_matches(v, std::slice::from_ref(&r.offering.instance_type)),
                    "state" => any_matches(v, &[r.state(now).to_owned()]),
                    "reserved-instances-id" => any_matches(v, std::slice::from_ref(&r.id)),
                    _ => true,
                })
            })
            .map(|r| {
                let o = &r.offering;
                json!({
                    "reservedInstancesId": r.id, "instanceType": o.instance_type, "instanceCount": r.count,
                    "start": crate::iso8601(r.start_ms), "end": crate::iso8601(r.end_ms), "duration": o.duration,
                    "fixedPrice": o.fixed, "usagePrice": 0.0, "productDescription": "Linux/UNIX", "state": r.state(now),
                    "instanceTenancy": "default", "currencyCode": "USD", "offeringType": o.payment,
                    "offeringClass": o.class, "scope": "Region", "tagSet": [],
                    "recurringCharges": if o.recurring > 0.0 { json!([{ "frequency": "Hourly", "amount": o.recurring }]) } else { json!([]) },
                })
            })
            .collect();
        Ok(json!({ "reservedInstancesSet": set }))
    }

    /// A reservation with room for `instance` now (its family, normalised units not yet used by
    /// running instances it covers): its id and the instance's rate under it.
    pub(crate) fn covering_reservation(
        &self,
        instance: &Instance,
        now: i64,
    ) -> Result<Option<(String, f64)>, AwsError> {
        let catalog = Catalog::get();
        let Some(kind) = catalog.instance_type(&instance.instance_type) else { return Ok(None) };
        let reservations: Vec<Reservation> = self
            .store
            .all::<Reservation>("reservation", Some(&instance.region))?
            .into_iter()
            .filter(|r| r.state(now) == "active")
            .filter(|r| {
                catalog.instance_type(&r.offering.instance_type).is_some_and(|t| t.family() == kind.family())
            })
            .collect();
        if reservations.is_empty() {
            return Ok(None);
        }
        let open: Vec<_> = self
            .store
            .segments(now, Some(&instance.region))?
            .into_iter()
            .filter(|s| s.end_ms.is_none())
            .collect();
        let needed = normalization_factor(kind.size());
        for reservation in reservations {
            let Some(reserved_kind) = catalog.instance_type(&reservation.offering.instance_type) else {
                continue;
            };
            let unit = normalization_factor(reserved_kind.size());
            let total = unit * f64::from(reservation.count);
            let used: f64 = open
                .iter()
                .filter(|s| s.billing == format!("reserved:{}", reservation.id))
                .filter_map(|s| catalog.instance_type(&s.instance_type))
                .map(|t| normalization_factor(t.size()))
                .sum();
            if total - used >= needed {
                let rate = round6(reservation.offering.hourly * needed / unit);
                return Ok(Some((reservation.id, rate)));
            }
        }
        Ok(None)
    }
}
