//! Spot: requests (RequestSpotInstances and `InstanceMarketOptions` of RunInstances), the price
//! history, and interruptions with AWS's two-minute notice — after which the instance's processes
//! really end.

use nimbus_api::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog::{self, Catalog, InstanceType, SPOT_PERIOD_MS};
use crate::instances::Launch;
use crate::lifecycle::{SPOT_SHUTDOWN, SPOT_TERMINATION};
use crate::model::{new_id, tags_xml, Instance, Interruption, State};
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
    fn set_status(&mut self, code: &str, now: i64) {
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
    ) -> Result<(), AwsError> {
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
        self.store.put("spot-request", request_id, &instance.region, &request, now)?;
        Ok(())
    }

    /// Sets a request's state and status code.
    fn set_request(&self, id: &str, state: &str, code: &str) {
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

    /// Interrupts a running spot instance: the notice now (instance metadata, the "EC2 Spot
    /// Instance Interruption Warning" event), the action `spot_notice_seconds` later on nimbus's
    /// clock. AWS FIS's `aws:ec2:send-spot-instance-interruptions`, for tests.
    pub fn interrupt(&self, id: &str) -> Result<Value, AwsError> {
        self.interrupt_for(id, "capacity")
    }

    fn interrupt_for(&self, id: &str, cause: &str) -> Result<Value, AwsError> {
        let instance = self.instance(id)?.ok_or_else(|| crate::instances::not_found(&[id.to_owned()]))?;
        if !instance.is_spot() {
            return Err(AwsError::new(
                400,
                "UnsupportedOperation",
                format!("The instance '{id}' is not a Spot Instance."),
            ));
        }
        if instance.state != State::Running {
            return Err(AwsError::new(
                400,
                "IncorrectInstanceState",
                format!("The instance '{id}' is not running (it is {}).", instance.state.name()),
            ));
        }
        if let Some(pending) = &instance.interruption {
            return Ok(
                json!({ "instance-id": id, "instance-action": pending.action, "time": crate::iso_seconds(pending.time_ms) }),
            );
        }
        let now = self.now();
        let action = instance.interruption_behavior.clone();
        let time_ms = now + self.config.spot_notice_seconds as i64 * 1000;
        let interruption =
            Interruption { action: action.clone(), time_ms, noticed_ms: now, cause: cause.to_owned() };
        self.update(id, |i| i.interruption = Some(interruption))?;
        if let Some(request_id) = &instance.spot_request_id {
            if let Some(mut request) = self.store.get::<SpotRequest>("spot-request", request_id)? {
                request.set_status(
                    if action == "terminate" { "marked-for-termination" } else { "marked-for-stop" },
                    now,
                );
                self.store.put("spot-request", request_id, &request.region, &request, request.created_ms)?;
            }
        }
        self.emit(
            "EC2 Instance Rebalance Recommendation",
            vec![instance.arn()],
            json!({ "instance-id": id }),
        );
        self.emit(
            "EC2 Spot Instance Interruption Warning",
            vec![instance.arn()],
            json!({ "instance-id": id, "instance-action": action }),
        );
        if let Some((_, group)) = instance.tags.iter().find(|(k, _)| k == crate::asg::GROUP_TAG) {
            // A group that rebalances capacity launches the replacement at the notice.
            self.asg_member_ended(group);
        }
        let ec2 = self.arc();
        let id = id.to_owned();
        let answer = json!({ "instance-id": instance.id, "instance-action": action, "time": crate::iso_seconds(time_ms) });
        tokio::spawn(async move {
            nimbus_api::clock::sleep_until(ec2.clock.as_ref(), time_ms).await;
            let Ok(Some(now)) = ec2.instance(&id) else { return };
            if now.state != State::Running || now.interruption.is_none() {
                return;
            }
            let (target, why) = if action == "terminate" {
                (State::Terminated, SPOT_TERMINATION)
            } else {
                (State::Stopped, SPOT_SHUTDOWN)
            };
            if let Err(error) = ec2.start_end(&id, target, why, true) {
                eprintln!("nimbus: ec2: interrupting {id}: {}", error.message);
            }
        });
        Ok(answer)
    }
}

/// The spot market's minute: running spot instances of this node whose max price the current
/// price passed are interrupted, and each other one with the chance `--spot-interruption-rate`
/// gives it per hour (evaluated once a minute of nimbus's clock).
pub(crate) async fn market(ec2: std::sync::Weak<Ec2>) {
    loop {
        let (clock, wake) = {
            let Some(ec2) = ec2.upgrade() else { return };
            let now = ec2.now();
            (ec2.clock.clone(), now - now.rem_euclid(60_000) + 60_000)
        };
        nimbus_api::clock::sleep_until(clock.as_ref(), wake).await;
        let Some(ec2) = ec2.upgrade() else { return };
        let ec2_ = ec2.clone();
        let _ = tokio::task::spawn_blocking(move || ec2_.market_minute()).await;
    }
}

impl Ec2 {
    pub(crate) fn market_minute(&self) {
        self.fulfil_persistent();
        self.run_schedules();
        let Ok(instances) = self.store.all::<Instance>("instance", None) else { return };
        let now = self.now();
        let rate = self.config.spot_interruption_rate.clamp(0.0, 1.0);
        let per_minute = 1.0 - (1.0 - rate).powf(1.0 / 60.0);
        for instance in instances {
            if !instance.is_spot() || instance.state != State::Running || instance.interruption.is_some() {
                continue;
            }
            if instance.node != self.config.node {
                continue;
            }
            let max = instance
                .spot_request_id
                .as_deref()
                .and_then(|id| self.store.get::<SpotRequest>("spot-request", id).ok().flatten())
                .and_then(|r| r.max_price.parse::<f64>().ok());
            let price = Catalog::get()
                .instance_type(&instance.instance_type)
                .and_then(|k| catalog::spot_price(k, &instance.zone, now));
            let cause = if matches!((max, price), (Some(max), Some(price)) if price > max) {
                "price"
            } else if per_minute > 0.0
                && (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1e6 < per_minute
            {
                "capacity"
            } else {
                continue;
            };
            if let Err(error) = self.interrupt_for(&instance.id, cause) {
                eprintln!("nimbus: ec2: spot market: {}", error.message);
            }
        }
    }
}

impl Ec2 {
    /// Persistent requests whose instance was interrupted: an open one launches a new instance,
    /// one whose instance was stopped starts it again, when the price is within the max price
    /// and the capacity allows (as EC2 does "when capacity becomes available").
    fn fulfil_persistent(&self) {
        let Ok(requests) = self.store.all::<SpotRequest>("spot-request", None) else { return };
        let now = self.now();
        for request in requests.into_iter().filter(|r| r.kind == "persistent") {
            let stopped = request
                .instance_id
                .as_deref()
                .and_then(|id| self.instance(id).ok().flatten())
                .filter(|i| i.state == State::Stopped && request.state == "disabled");
            let price = Catalog::get().instance_type(&request.instance_type).and_then(|k| {
                catalog::spot_price(
                    k,
                    request.zone.as_deref().unwrap_or(&format!("{}a", request.region)),
                    now,
                )
            });
            let within = match (request.max_price.parse::<f64>(), price) {
                (Ok(max), Some(price)) => price <= max,
                _ => true,
            };
            if !within {
                continue;
            }
            if let Some(instance) = stopped {
                if instance.state_reason.as_ref().is_some_and(|r| r.0 == "Server.SpotInstanceShutdown") {
                    let input = json!({ "InstanceId": [instance.id] });
                    match self.start_instances(&instance.region, &input) {
                        Ok(_) => self.set_request(&request.id, "active", "fulfilled"),
                        Err(error) if error.code == "InsufficientInstanceCapacity" => {}
                        Err(error) => eprintln!("nimbus: ec2: restarting {}: {}", instance.id, error.message),
                    }
                }
                continue;
            }
            if request.state != "open" || request.launch.is_null() {
                continue;
            }
            let mut input = request.launch.clone();
            input[crate::instances::RELAUNCH_OF] = json!(request.id);
            if let Err(error) = self.run_instances(Launch { region: &request.region, input }) {
                if error.code != "InsufficientInstanceCapacity" {
                    eprintln!("nimbus: ec2: persistent spot request {}: {}", request.id, error.message);
                }
            }
        }
    }
}
