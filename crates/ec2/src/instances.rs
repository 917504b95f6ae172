//! RunInstances, DescribeInstances, Start/Stop/Reboot/TerminateInstances, DescribeInstanceStatus,
//! GetConsoleOutput, ModifyInstanceAttribute and tags on instances.

use std::collections::BTreeMap;

use base64::Engine as _;
use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::{self, Catalog};
use crate::lifecycle::{reason, USER_SHUTDOWN};
use crate::model::{new_id, Instance, State};
use crate::query::{any_matches, filters, invalid, missing, page, tags_for, Input};
use crate::store::Doc;
use crate::Ec2;

/// Set (internally) when a persistent spot request launches its next instance.
pub const RELAUNCH_OF: &str = "nimbus:SpotInstanceRequestId";
/// AWS's limit on user data: 16 KiB before base64.
const MAX_USER_DATA: usize = 16 * 1024;
/// Terminated instances stay visible this long, as on AWS (about an hour).
const TERMINATED_VISIBLE_MS: i64 = 3600 * 1000;

pub fn not_found(ids: &[String]) -> AwsError {
    let message = if ids.len() == 1 {
        format!("The instance ID '{}' does not exist", ids[0])
    } else {
        format!("The instance IDs '{}' do not exist", ids.join(", "))
    };
    AwsError::new(400, "InvalidInstanceID.NotFound", message)
}

fn malformed(id: &str) -> AwsError {
    AwsError::new(400, "InvalidInstanceID.Malformed", format!("Invalid id: \"{id}\""))
}

/// What a launch asks for, after the launch template (if any) and defaults.
pub struct Launch<'a> {
    pub region: &'a str,
    pub input: Value,
}

impl Ec2 {
    /// The instances named (all must exist in `region`), in the order given.
    pub(crate) fn named_instances(&self, region: &str, ids: &[String]) -> Result<Vec<Instance>, AwsError> {
        if ids.is_empty() {
            return Err(missing("InstanceId"));
        }
        let mut found = Vec::new();
        let mut missing_ids = Vec::new();
        for id in ids {
            if !id.starts_with("i-") || id.len() < 10 {
                return Err(malformed(id));
            }
            match self.instance(id)? {
                Some(instance) if instance.region == region => found.push(instance),
                _ => missing_ids.push(id.clone()),
            }
        }
        if !missing_ids.is_empty() {
            return Err(not_found(&missing_ids));
        }
        Ok(found)
    }

    /// vCPUs and MiB held by this node's instances now (each node lends its own host).
    fn capacity_in_use(&self) -> Result<(f64, u64), AwsError> {
        let catalog = Catalog::get();
        let mut used = (0.0, 0u64);
        for instance in self.store.all::<Instance>("instance", None)? {
            if instance.state.holds_capacity() && instance.node == self.config.node {
                if let Some(kind) = catalog.instance_type(&instance.instance_type) {
                    let (vcpus, memory) = self.config.footprint(kind);
                    used.0 += vcpus;
                    used.1 += memory;
                }
            }
        }
        Ok(used)
    }

    /// How many instances of `kind` fit in what the host lends, up to `wanted`; the error AWS
    /// gives when fewer than `at_least` do.
    fn fit(
        &self,
        kind: &catalog::InstanceType,
        zone: &str,
        wanted: u32,
        at_least: u32,
    ) -> Result<u32, AwsError> {
        let (vcpus, memory) = self.capacity_in_use()?;
        let (need_vcpus, need_memory) = self.config.footprint(kind);
        let free_vcpus = (f64::from(self.config.vcpus) - vcpus).max(0.0);
        let free_memory = self.config.memory_mib.saturating_sub(memory);
        let by_cpu = (free_vcpus / need_vcpus.max(0.001) + 1e-9).floor() as u32;
        let by_memory = (free_memory / need_memory.max(1)) as u32;
        let fits = by_cpu.min(by_memory).min(wanted);
        if fits < at_least {
            return Err(AwsError::new(
                500,
                "InsufficientInstanceCapacity",
                format!(
                    "We currently do not have sufficient {} capacity in the Availability Zone you requested ({zone}). \
                     Our system will be working on provisioning additional capacity. (nimbus lends {} vCPUs and {} MiB \
                     to instances; {vcpus} vCPUs and {memory} MiB are in use)",
                    kind.name, self.config.vcpus, self.config.memory_mib
                ),
            ));
        }
        Ok(fits)
    }

    /// RunInstances: stores the instances `pending` and boots them in the background.
    pub(crate) fn run_instances(&self, launch: Launch<'_>) -> Result<(String, Vec<Instance>), AwsError> {
        let region = launch.region;
        let input = self.with_launch_template(region, launch.input)?;
        let min = input.int("MinCount")?.ok_or_else(|| missing("MinCount"))?;
        let max = input.int("MaxCount")?.ok_or_else(|| missing("MaxCount"))?;
        if min < 1 {
            return Err(invalid(format!("Instance count must be greater than zero: MinCount {min}")));
        }
        if max < min {
            return Err(invalid("MinCount must be less than or equal to MaxCount"));
        }
        let image_id = input.str("ImageId").ok_or_else(|| missing("ImageId"))?;
        let image = catalog::image(image_id).ok_or_else(|| {
            AwsError::new(400, "InvalidAMIID.NotFound", format!("The image id '[{image_id}]' does not exist"))
        })?;
        let type_name = input.str("InstanceType").unwrap_or("m1.small");
        let kind = Catalog::get()
            .instance_type(type_name)
            .ok_or_else(|| invalid(format!("Invalid value '{type_name}' for InstanceType.")))?;
        if kind.arch() != image.arch && !kind.architectures.iter().any(|a| a == image.arch) {
            return Err(invalid(format!(
                "The architecture '{}' of the specified instance type does not match the architecture '{}' of the specified AMI. \
                 Specify an instance type and an AMI that have matching architectures, and try again.",
                kind.arch(),
                image.arch
            )));
        }
        let user_data = input.str("UserData").map(str::to_owned);
        if let Some(data) = &user_data {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|_| invalid("Invalid BASE64 encoding of user data."))?;
            if decoded.len() > MAX_USER_DATA {
                return Err(invalid("User data is limited to 16384 bytes"));
            }
        }
        let shutdown_behavior = input.str("InstanceInitiatedShutdownBehavior").unwrap_or("stop").to_owned();
        if !matches!(shutdown_behavior.as_str(), "stop" | "terminate") {
            return Err(invalid(format!(
                "Invalid value '{shutdown_behavior}' for InstanceInitiatedShutdownBehavior."
            )));
        }
        let placement = self.placement(region, &input)?;
        let market = input.get("InstanceMarketOptions");
        let spot = market.and_then(|m| m.str("MarketType")) == Some("spot");
        let spot_options = market.and_then(|m| m.get("SpotOptions"));
        let interruption_behavior = spot_options
            .and_then(|o| o.str("InstanceInterruptionBehavior"))
            .unwrap_or("terminate")
            .to_owned();
        let spot_type = spot_options.and_then(|o| o.str("SpotInstanceType")).unwrap_or("one-time").to_owned();
        if spot {
            self.check_spot(kind, &placement.zone, spot_options, &spot_type, &interruption_behavior)?;
        }
        let metadata = input.get("MetadataOptions");
        let http_tokens = metadata.and_then(|m| m.str("HttpTokens")).unwrap_or("optional").to_owned();
        let metadata_tags = metadata.and_then(|m| m.str("InstanceMetadataTags")) == Some("enabled");
        let tags = tags_for(&input, "instance");
        let key_name = input.str("KeyName").map(str::to_owned);
        if let Some(key) = &key_name {
            if !self.key_exists(region, key)? {
                return Err(AwsError::new(
                    400,
                    "InvalidKeyPair.NotFound",
                    format!("The key pair '{key}' does not exist"),
                ));
            }
        }
        let client_token = input.str("ClientToken").map(str::to_owned);
        if let Some(token) = &client_token {
            let earlier: Vec<Instance> = self
                .store
                .all::<Instance>("instance", Some(region))?
                .into_iter()
                .filter(|i| i.client_token.as_deref() == Some(token))
                .collect();
            if let Some(first) = earlier.first() {
                return Ok((first.reservation_id.clone(), earlier));
            }
        }

        let _launching = self.launching.lock().unwrap_or_else(|p| p.into_inner());
        let count = self.fit(kind, &placement.zone, max as u32, min as u32)?;
        let reservation_id = new_id("r");
        let now = self.now();
        let mut launched = Vec::new();
        let mut docs = Vec::new();
        for index in 0..count {
            let id = new_id("i");
            // A persistent request relaunching keeps its id.
            let spot_request_id =
                spot.then(|| input.str(RELAUNCH_OF).map_or_else(|| new_id("sir"), str::to_owned));
            let instance = Instance {
                id: id.clone(),
                region: region.to_owned(),
                account: self.identity.account.clone(),
                reservation_id: reservation_id.clone(),
                image_id: image.id.to_owned(),
                instance_type: kind.name.clone(),
                arch: image.arch.to_owned(),
                state: State::Pending,
                launch_ms: now,
                zone: placement.zone.clone(),
                zone_id: placement.zone_id.clone(),
                subnet_id: placement.subnet_id.clone(),
                vpc_id: placement.vpc_id.clone(),
                private_ip: placement.private_ip(),
                security_groups: placement.groups.clone(),
                key_name: key_name.clone(),
                tags: tags.clone(),
                user_data: user_data.clone(),
                launch_index: index,
                lifecycle: spot.then(|| "spot".to_owned()),
                spot_request_id: spot_request_id.clone(),
                interruption_behavior: interruption_behavior.clone(),
                shutdown_behavior: shutdown_behavior.clone(),
                state_reason: reason(("pending", "pending")),
                transition_reason: String::new(),
                interruption: None,
                client_token: client_token.clone(),
                http_tokens: http_tokens.clone(),
                metadata_tags,
                boots: 0,
                ended_ms: None,
                node: self.config.node.clone(),
            };
            docs.push(Doc::of("instance", &id, region, &instance, now)?);
            if let Some(request_id) = &spot_request_id {
                docs.push(self.record_spot_request_for(
                    &instance,
                    request_id,
                    spot_options,
                    &spot_type,
                    &input,
                )?);
            }
            launched.push(instance);
        }
        // The whole launch in one transaction: all of it is acknowledged, or none.
        self.store.put_all(&docs)?;
        drop(_launching);
        for instance in &launched {
            self.start_boot(instance.id.clone());
        }
        Ok((reservation_id, launched))
    }

    pub(crate) fn reservation_xml(&self, reservation_id: &str, instances: &[Instance]) -> Value {
        let groups: Vec<Value> = instances
            .first()
            .map(|i| {
                i.security_groups.iter().map(|(id, name)| json!({"groupId": id, "groupName": name})).collect()
            })
            .unwrap_or_default();
        json!({
            "reservationId": reservation_id,
            "ownerId": self.identity.account,
            "groupSet": groups,
            "instancesSet": instances.iter().map(Instance::xml).collect::<Vec<_>>(),
        })
    }

    pub(crate) fn describe_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let ids = input.strings("InstanceId");
        let filters = filters(input);
        let now = self.now();
        let instances: Vec<Instance> = if ids.is_empty() {
            self.store
                .all::<Instance>("instance", Some(region))?
                .into_iter()
                .filter(|i| {
                    i.state != State::Terminated || i.ended_ms.is_none_or(|t| now - t < TERMINATED_VISIBLE_MS)
                })
                .collect()
        } else {
            self.named_instances(region, &ids)?
        };
        for (name, _) in &filters {
            if !known_filter(name) {
                return Err(AwsError::new(
                    400,
                    "InvalidParameterValue",
                    format!("The filter '{name}' is invalid"),
                ));
            }
        }
        let matching: Vec<Instance> =
            instances.into_iter().filter(|i| filters.iter().all(|(n, v)| matches(i, n, v))).collect();
        let (page, next) = if input.str("MaxResults").is_some() || input.str("NextToken").is_some() {
            page(input, matching, 5, 1000)?
        } else {
            (matching, None)
        };
        let mut reservations: BTreeMap<(i64, String), Vec<Instance>> = BTreeMap::new();
        for instance in page {
            reservations
                .entry((instance.launch_ms, instance.reservation_id.clone()))
                .or_default()
                .push(instance);
        }
        let set: Vec<Value> =
            reservations.iter().map(|((_, id), list)| self.reservation_xml(id, list)).collect();
        Ok(json!({ "reservationSet": set, "nextToken": next }))
    }

    pub(crate) fn stop_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let instances = self.named_instances(region, &input.strings("InstanceId"))?;
        for instance in &instances {
            if instance.is_spot() && self.spot_request_type(instance) != "persistent" {
                return Err(AwsError::new(
                    400,
                    "UnsupportedOperation",
                    format!(
                        "You can't stop the Spot Instance '{}' because it is associated with a one-time Spot Instance request. \
                         You can only stop Spot Instances associated with persistent Spot Instance requests.",
                        instance.id
                    ),
                ));
            }
            if matches!(instance.state, State::Terminated | State::ShuttingDown) {
                return Err(AwsError::new(
                    400,
                    "IncorrectInstanceState",
                    format!(
                        "This instance '{}' is not in a state from which it can be stopped.",
                        instance.id
                    ),
                ));
            }
        }
        let mut changes = Vec::new();
        for instance in instances {
            let current = match instance.state {
                State::Pending | State::Running => self
                    .start_end(&instance.id, State::Stopped, USER_SHUTDOWN, false)?
                    .map_or(instance.state, |i| i.state),
                other => other,
            };
            changes.push(change(&instance.id, instance.state, current));
        }
        Ok(json!({ "instancesSet": changes }))
    }

    pub(crate) fn start_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let instances = self.named_instances(region, &input.strings("InstanceId"))?;
        for instance in &instances {
            if matches!(instance.state, State::Terminated | State::ShuttingDown | State::Stopping) {
                return Err(AwsError::new(
                    400,
                    "IncorrectInstanceState",
                    format!("The instance '{}' is not in a state from which it can be started.", instance.id),
                ));
            }
        }
        let catalog = Catalog::get();
        let mut changes = Vec::new();
        for instance in instances {
            if instance.state != State::Stopped {
                changes.push(change(&instance.id, instance.state, instance.state));
                continue;
            }
            let kind = catalog
                .instance_type(&instance.instance_type)
                .ok_or_else(|| invalid("unknown instance type"))?;
            let _launching = self.launching.lock().unwrap_or_else(|p| p.into_inner());
            self.fit(kind, &instance.zone, 1, 1)?;
            self.update(&instance.id, |i| {
                i.state = State::Pending;
                i.state_reason = reason(("pending", "pending"));
                i.transition_reason = String::new();
            })?;
            drop(_launching);
            self.start_boot(instance.id.clone());
            changes.push(change(&instance.id, State::Stopped, State::Pending));
        }
        Ok(json!({ "instancesSet": changes }))
    }

    pub(crate) fn terminate_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let instances = self.named_instances(region, &input.strings("InstanceId"))?;
        let mut changes = Vec::new();
        for instance in instances {
            let current = match instance.state {
                State::Terminated | State::ShuttingDown => instance.state,
                _ => self
                    .start_end(&instance.id, State::Terminated, USER_SHUTDOWN, false)?
                    .map_or(instance.state, |i| i.state),
            };
            changes.push(change(&instance.id, instance.state, current));
        }
        Ok(json!({ "instancesSet": changes }))
    }

    /// RebootInstances: the instance's processes end and it boots again (user data runs again).
    pub(crate) fn reboot_instances(&self, region: &str, input: &Value) -> Result<Value, AwsError> {
        let instances = self.named_instances(region, &input.strings("InstanceId"))?;
        for instance in instances.into_iter().filter(|i| i.state == State::Running) {
            let ec2 = self.arc();
            tokio::spawn(async move {
                ec2.runner.kill(&instance.id).await;
                let _ = ec2.update(&instance.id, |i| {
                    if i.state == State::Running {
                        i.state = State::Pending;
                    }
                });
                let _ = ec2.store.close_segment(&instance.id, ec2.now(), false);
                ec2.start_boot(instance.id.clone());
            });
        }
        Ok(json!({ "return": true }))
    }
}

fn change(id: &str, previous: State, current: State) -> Value {
    json!({ "instanceId": id, "previousState": previous.xml(), "currentState": current.xml() })
}

const FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "instance-lifecycle",
    "availability-zone",
    "image-id",
    "reservation-id",
    "subnet-id",
    "vpc-id",
    "architecture",
    "spot-instance-request-id",
    "private-ip-address",
    "key-name",
    "tag-key",
    "tag-value",
];

fn known_filter(name: &str) -> bool {
    FILTERS.contains(&name) || name.starts_with("tag:")
}

fn matches(i: &Instance, name: &str, values: &[String]) -> bool {
    let one = |v: &str| any_matches(values, &[v.to_owned()]);
    match name {
        "instance-id" => one(&i.id),
        "instance-state-name" => one(i.state.name()),
        "instance-state-code" => one(&i.state.code().to_string()),
        "instance-type" => one(&i.instance_type),
        "instance-lifecycle" => one(i.lifecycle.as_deref().unwrap_or("")),
        "availability-zone" => one(&i.zone),
        "image-id" => one(&i.image_id),
        "reservation-id" => one(&i.reservation_id),
        "subnet-id" => one(&i.subnet_id),
        "vpc-id" => one(&i.vpc_id),
        "architecture" => one(&i.arch),
        "spot-instance-request-id" => one(i.spot_request_id.as_deref().unwrap_or("")),
        "private-ip-address" => one(&i.private_ip),
        "key-name" => one(i.key_name.as_deref().unwrap_or("")),
        "tag-key" => i.tags.iter().any(|(k, _)| one(k)),
        "tag-value" => i.tags.iter().any(|(_, v)| one(v)),
        _ => match name.strip_prefix("tag:") {
            Some(key) => i.tags.iter().any(|(k, v)| k == key && one(v)),
            None => false,
        },
    }
}
