//! Spot: requests (RequestSpotInstances and `InstanceMarketOptions` of RunInstances), the price
//! history, and interruptions with AWS's two-minute notice — after which the instance's processes
//! really end.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::{self, Catalog, InstanceType, SPOT_PERIOD_MS};
use crate::instances::Launch;
use crate::model::{new_id, tags_xml, Instance};
use crate::query::{any_matches, filters, invalid, page, page_iter, tags_for, Input};
use crate::Ec2;

/// How far back DescribeSpotPriceHistory goes (AWS: 90 days).
const HISTORY_MS: i64 = 90 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpotRequest {
    pub id: String,
    pub region: String,
    pub instance_id: Option<String>,
    /// open, active, closed, cancelled, failed.
    pub state: String,
    pub status_code: String,
    pub status_message: String,
    pub status_ms: i64,
    /// one-time or persistent.
    pub kind: String,
    pub max_price: String,
    pub instance_type: String,
    pub image_id: String,
    pub zone: Option<String>,
    pub interruption_behavior: String,
    pub created_ms: i64,
    pub tags: Vec<(String, String)>,
    /// What a persistent request launches again after an interruption (RunInstances' input).
    #[serde(default)]
    pub launch: Value,
}

fn status_message(code: &str) -> &'static str {
    match code {
        "fulfilled" => "Your spot request is fulfilled.",
        "marked-for-termination" => "Spot Instance is marked for termination.",
        "marked-for-stop" => "Spot Instance is marked for stop.",
        "instance-terminated-no-capacity" => "Spot Instance terminated due to no available capacity.",
        "instance-stopped-no-capacity" => "Spot Instance stopped due to no available capacity.",
        "instance-terminated-by-user" => "Spot Instance terminated by user.",
        "request-canceled-and-instance-running" => {
            "Spot Instance Request canceled but the Spot Instance is still running."
        }
        "canceled-before-fulfillment" => "Request was canceled by the user.",
        "capacity-not-available" => "There is no capacity available that matches your request.",
        "price-too-low" => {
            "Your Spot request price is lower than the minimum required Spot request fulfillment price."
        }
        _ => "",
    }
}

impl SpotRequest {
    pub(crate) fn set_status(&mut self, code: &str, now: i64) {
        self.status_code = code.to_owned();
        self.status_message = status_message(code).to_owned();
        self.status_ms = now;
    }

    fn xml(&self) -> Value {
        json!({
            "spotInstanceRequestId": self.id,
            "spotPrice": self.max_price,
            "type": self.kind,
            "state": self.state,
            "status": { "code": self.status_code, "message": self.status_message, "updateTime": crate::iso8601(self.status_ms) },
            "launchSpecification": { "imageId": self.image_id, "instanceType": self.instance_type, "placement": { "availabilityZone": self.zone } },
            "instanceId": self.instance_id,
            "createTime": crate::iso8601(self.created_ms),
            "productDescription": "Linux/UNIX",
            "launchedAvailabilityZone": self.zone,
            "instanceInterruptionBehavior": self.interruption_behavior,
            "tagSet": tags_xml(&self.tags),
        })
    }
}

impl Ec2 {
    /// Refuses a spot launch AWS would refuse: a type without spot, a max price below the
    /// current price, stop/hibernate on a one-time request.
    pub(crate) fn check_spot(
        &self,
        kind: &InstanceType,
        zone: &str,
        options: Option<&Value>,
        spot_type: &str,
        behavior: &str,
    ) -> Result<(), AwsError> {
        if !kind.spot_supported() {
            return Err(AwsError::new(
                400,
                "Unsupported",
                format!(
                    "The requested configuration is currently not supported: {} is not offered as Spot.",
                    kind.name
                ),
            ));
        }
        if !matches!(spot_type, "one-time" | "persistent") {
            return Err(invalid(format!("Invalid value '{spot_type}' for SpotInstanceType.")));
        }
        if !matches!(behavior, "terminate" | "stop" | "hibernate") {
            return Err(invalid(format!("Invalid value '{behavior}' for InstanceInterruptionBehavior.")));
        }
        if behavior != "terminate" && spot_type != "persistent" {
            return Err(AwsError::new(
                400,
                "InvalidParameterCombination",
                "You must specify a persistent Spot Instance request type when the interruption behavior is stop or hibernate.",
            ));
        }
        let price = catalog::spot_price(kind, zone, self.now()).unwrap_or(0.0);
        if let Some(max) = options.and_then(|o| o.str("MaxPrice")) {
            let max_value: f64 =
                max.parse().map_err(|_| invalid(format!("Invalid value '{max}' for MaxPrice.")))?;
            if max_value < price {
                return Err(AwsError::new(
                    400,
                    "SpotMaxPriceTooLow",
                    format!(
                        "Your Spot request price of {max} is lower than the minimum required Spot request fulfillment price of {price:.6}."
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn record_spot_request_for(
        &self,
        instance: &Instance,
        request_id: &str,
        options: Option<&Value>,
        spot_type: &str,
        input: &Value,
    ) -> Result<crate::store::Doc, AwsError> {
        let now = self.now();
        let on_demand =
            Catalog::get().instance_type(&instance.instance_type).and_then(|k| k.price).unwrap_or(0.0);
        let earlier = self.store.get::<SpotRequest>("spot-request", request_id)?;
        let mut launch = input.clone();
        if let Value::Object(fields) = &mut launch {
            fields.remove("ClientToken");
            fields.remove(crate::instances::RELAUNCH_OF);
            fields.insert("MinCount".into(), json!("1"));
            fields.insert("MaxCount".into(), json!("1"));
        }
        let mut request = SpotRequest {
            id: request_id.to_owned(),
            region: instance.region.clone(),
            instance_id: Some(instance.id.clone()),
            state: "active".into(),
            status_code: String::new(),
            status_message: String::new(),
            status_ms: now,
            kind: spot_type.to_owned(),
            max_price: options
                .and_then(|o| o.str("MaxPrice"))
                .map_or_else(|| format!("{on_demand:.6}"), str::to_owned),
            instance_type: instance.instance_type.clone(),
            image_id: instance.image_id.clone(),
            zone: Some(instance.zone.clone()),
            interruption_behavior: instance.interruption_behavior.clone(),
            created_ms: earlier.as_ref().map_or(now, |r| r.created_ms),
            tags: earlier.map_or_else(|| tags_for(input, "spot-instances-request"), |r| r.tags),
            launch,
        };
        request.set_status("fulfilled", now);
        crate::store::Doc::of("spot-request", request_id, &instance.region, &request, now)
    }

    /// Sets a request's state and status code.
    pub(crate) fn set_request(&self, id: &str, state: &str, code: &str) {
        let Ok(Some(mut request)) = self.store.get::<SpotRequest>("spot-request", id) else { return };
        request.state = state.to_owned();
        request.set_status(code, self.now());
        let _ = self.store.put("spot-request", id, &request.region, &request, request.created_ms);
    }

    /// A persistent request's instance was stopped by an interruption: the request waits
    /// (`disabled`) until EC2 starts the instance again.
    pub(crate) fn spot_instance_stopped(&self, instance: &Instance) {
        if let Some(id) = &instance.spot_request_id {
            self.set_request(id, "disabled", "instance-stopped-no-capacity");
        }
    }

    pub(crate) fn spot_request_type(&self, instance: &Instance) -> String {
        let request = instance
            .spot_request_id
            .as_deref()
            .and_then(|id| self.store.get::<SpotRequest>("spot-request", id).ok().flatten());
        request.map_or_else(|| "one-time".to_owned(), |r| r.kind)
    }

    /// A spot instance ended: its one-time request closes.
    pub(crate) fn spot_instance_ended(&self, instance: &Instance, interrupted: Option<&str>) {
        let Some(id) = &instance.spot_request_id else { return };
        let Ok(Some(mut request)) = self.store.get::<SpotRequest>("spot-request", id) else { return };
        let now = self.now();
        let code = match interrupted {
            Some("price") => "instance-terminated-by-price",
            Some(_) => "instance-terminated-no-capacity",
            None => "instance-terminated-by-user",
        };
        if request.state != "cancelled" {
            // A persistent request opens again after an interruption and launches anew.
            let reopens = request.kind == "persistent" && interrupted.is_some();
            request.state = if reopens { "open" } else { "closed" }.into();
        }
        request.set_status(code, now);
        let _ = self.store.put("spot-request", id, &request.region, &request, request.created_ms);
    }

    pub(crate) fn request_spot_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let count = input.int("InstanceCount")?.unwrap_or(1);
        if !(1..=20).contains(&count) {
            return Err(invalid(format!("Invalid value '{count}' for InstanceCount.")));
        }
        let spec = input.get("LaunchSpecification").cloned().unwrap_or_else(|| json!({}));
        let mut launch = spec.clone();
        launch["MinCount"] = json!("1");
        launch["MaxCount"] = json!("1");
        let mut options = json!({
            "SpotInstanceType": input.str("Type").unwrap_or("one-time"),
            "InstanceInterruptionBehavior": input.str("InstanceInterruptionBehavior").unwrap_or("terminate"),
        });
        if let Some(price) = input.str("SpotPrice") {
            options["MaxPrice"] = json!(price);
        }
        launch["InstanceMarketOptions"] = json!({ "MarketType": "spot", "SpotOptions": options });
        if let Some(tags) = input.get("TagSpecification") {
            launch["TagSpecification"] = tags.clone();
        }
        let mut requests = Vec::new();
        for _ in 0..count {
            match self.run_instances(Launch { region, input: launch.clone() }) {
                Ok((_, instances)) => {
                    for instance in instances {
                        let id = instance.spot_request_id.clone().unwrap_or_default();
                        if let Some(request) = self.store.get::<SpotRequest>("spot-request", &id)? {
                            requests.push(request.xml());
                        }
                    }
                }
                // Not fulfilled: the request stays open with AWS's status, as on AWS.
                Err(error) if matches!(error.code, "InsufficientInstanceCapacity" | "SpotMaxPriceTooLow") => {
                    let now = self.now();
                    let status = if error.code == "SpotMaxPriceTooLow" {
                        "price-too-low"
                    } else {
                        "capacity-not-available"
                    };
                    let mut request = SpotRequest {
                        id: new_id("sir"),
                        region: region.to_owned(),
                        instance_id: None,
                        state: "open".into(),
                        status_code: String::new(),
                        status_message: String::new(),
                        status_ms: now,
                        kind: input.str("Type").unwrap_or("one-time").to_owned(),
                        max_price: input.str("SpotPrice").unwrap_or("").to_owned(),
                        instance_type: spec.str("InstanceType").unwrap_or("m1.small").to_owned(),
                        image_id: spec.str("ImageId").unwrap_or("").to_owned(),
                        zone: None,
                        interruption_behavior: input
                            .str("InstanceInterruptionBehavior")
                            .unwrap_or("terminate")
                            .to_owned(),
                        created_ms: now,
                        tags: tags_for(input, "spot-instances-request"),
                        launch: launch.clone(),
                    };
                    request.set_status(status, now);
                    self.store.put("spot-request", &request.id, region, &request, now)?;
                    requests.push(request.xml());
                }
                Err(error) => return Err(error),
            }
        }
        Ok(json!({ "spotInstanceRequestSet": requests }))
    }

    pub(crate) fn describe_spot_instance_requests(
        &self,
        region: &str,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let ids = input.strings("SpotInstanceRequestId");
        let filters = filters(input);
        let all = self.store.all::<SpotRequest>("spot-request", Some(region))?;
        for id in &ids {
            if !all.iter().any(|r| &r.id == id) {
                return Err(AwsError::new(
                    400,
                    "InvalidSpotInstanceRequestID.NotFound",
                    format!("The spot instance request ID '{id}' does not exist"),
                ));
            }
        }
        let set: Vec<Value> = all
            .iter()
            .filter(|r| ids.is_empty() || ids.contains(&r.id))
            .filter(|r| {
                filters.iter().all(|(n, v)| match n.as_str() {
                    "state" => any_matches(v, std::slice::from_ref(&r.state)),
                    "status-code" => any_matches(v, std::slice::from_ref(&r.status_code)),
                    "instance-id" => any_matches(v, &[r.instance_id.clone().unwrap_or_default()]),
                    "spot-instance-request-id" => any_matches(v, std::slice::from_ref(&r.id)),
                    "type" => any_matches(v, std::slice::from_ref(&r.kind)),
                    "launch.instance-type" => any_matches(v, std::slice::from_ref(&r.instance_type)),
                    _ => n.strip_prefix("tag:").is_none_or(|key| {
                        r.tags.iter().any(|(k, val)| k == key && any_matches(v, std::slice::from_ref(val)))
                    }),
                })
            })
            .map(SpotRequest::xml)
            .collect();
        let (page, next) = page(input, set, 5, 1000)?;
        Ok(json!({ "spotInstanceRequestSet": page, "nextToken": next }))
    }

    pub(crate) fn cancel_spot_instance_requests(
        &self,
        region: &str,
        input: &Value,
    ) -> Result<Value, AwsError> {
        let ids = input.strings("SpotInstanceRequestId");
        let mut set = Vec::new();
        let now = self.now();
        for id in &ids {
            let mut request = match self.store.get::<SpotRequest>("spot-request", id)? {
                Some(r) if r.region == region => r,
                _ => {
                    return Err(AwsError::new(
                        400,
                        "InvalidSpotInstanceRequestID.NotFound",
                        format!("The spot instance request ID '{id}' does not exist"),
                    ))
                }
            };
            // Canceling a request does not terminate the instance it launched.
            if matches!(request.state.as_str(), "open" | "active") {
                let code = if request.state == "active" {
                    "request-canceled-and-instance-running"
                } else {
                    "canceled-before-fulfillment"
                };
                request.state = "cancelled".into();
                request.set_status(code, now);
                self.store.put("spot-request", id, region, &request, request.created_ms)?;
            }
            set.push(json!({ "spotInstanceRequestId": id, "state": request.state }));
        }
        Ok(json!({ "spotInstanceRequestSet": set }))
    }

    pub(crate) fn describe_spot_price_history(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let now = self.now();
        let end = input.str("EndTime").and_then(crate::parse_time).unwrap_or(now).min(now);
        let start = input.str("StartTime").and_then(crate::parse_time).unwrap_or(end - 24 * 3600 * 1000);
        if start > end {
            return Err(invalid("The start time must be before the end time."));
        }
        let catalog = Catalog::get();
        let names = input.strings("InstanceType");
        for name in &names {
            if catalog.instance_type(name).is_none() {
                return Err(invalid(format!("Invalid value '{name}' for InstanceType.")));
            }
        }
        let products = input.strings("ProductDescription");
        if !products.is_empty() && !products.iter().any(|p| p.starts_with("Linux/UNIX")) {
            return Ok(json!({ "spotPriceHistorySet": [], "nextToken": "" }));
        }
        let zone_filter = input.str("AvailabilityZone");
        let filters = filters(input);
        let zones: Vec<(String, String)> =
            catalog::zones(region).into_iter().filter(|(z, _)| zone_filter.is_none_or(|f| f == z)).collect();
        // Each period's price is in force from its start; the one in force at `start` counts too.
        let first = start.max(end - HISTORY_MS).div_euclid(SPOT_PERIOD_MS);
        let last = end.div_euclid(SPOT_PERIOD_MS);
        let kinds: Vec<&InstanceType> = catalog
            .types
            .iter()
            .filter(|t| t.spot_supported() && (names.is_empty() || names.contains(&t.name)))
            .collect();
        let rows = (first..=last).rev().flat_map(|period| {
            let at = period * SPOT_PERIOD_MS;
            let (kinds, zones, filters) = (&kinds, &zones, &filters);
            kinds.iter().flat_map(move |kind| {
                zones.iter().filter_map(move |(zone, zone_id)| {
                    let price = format!("{:.6}", catalog::spot_price(kind, zone, at)?);
                    let ok = filters.iter().all(|(n, v)| match n.as_str() {
                        "instance-type" => any_matches(v, std::slice::from_ref(&kind.name)),
                        "availability-zone" => any_matches(v, std::slice::from_ref(zone)),
                        "product-description" => any_matches(v, &["Linux/UNIX".to_owned()]),
                        "spot-price" => any_matches(v, std::slice::from_ref(&price)),
                        _ => true,
                    });
                    ok.then(|| {
                        json!({
                            "availabilityZone": zone, "availabilityZoneId": zone_id, "instanceType": kind.name,
                            "productDescription": "Linux/UNIX", "spotPrice": price, "timestamp": crate::iso8601(at),
                        })
                    })
                })
            })
        });
        let (page, next) = page_iter(input, rows, 5, 1000)?;
        Ok(json!({ "spotPriceHistorySet": page, "nextToken": next.unwrap_or_default() }))
    }
}
