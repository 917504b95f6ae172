//! The wire: EC2's Query actions dispatched, nimbus's own paths under `/_nimbus/ec2/`
//! (instance metadata, spot interruptions, the meter, recent events), and the Rust API other
//! engines (Batch) launch capacity through.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{json_response, ApiRequest, ApiResponse, AwsError, Body, Protocol, Service, ServiceFuture};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::catalog_ops as cat;
use crate::instances::Launch;
use crate::model::{Instance, State};
use crate::query::Input;
use crate::runner::{Exec, Process};
use crate::{query, xml, Ec2};

pub const ADMIN_PREFIX: &str = "/_nimbus/ec2/";

/// The region of a signed request (its credential scope), else nimbus's own (served whatever its
/// name). Every region's instances, groups and records live in one store, told apart by region;
/// a region outside EC2's catalog is refused rather than served as another.
pub fn region_of(request: &ApiRequest, default: &str) -> Result<String, AwsError> {
    let signed = nimbus_api::scope::scope_of(&request.headers, &request.uri)
        .map(|scope| scope.region)
        .filter(|region| !region.is_empty());
    match signed {
        Some(region) => served_region(&region, default),
        None => Ok(default.to_owned()),
    }
}

/// `region` if EC2 serves it (its catalog's, or nimbus's own), else why not.
pub(crate) fn served_region(region: &str, default: &str) -> Result<String, AwsError> {
    if region == default || crate::catalog::REGIONS.iter().any(|(name, _)| *name == region) {
        return Ok(region.to_owned());
    }
    if !nimbus_api::scope::is_region(region) {
        return Err(AwsError::new(
            403,
            "SignatureDoesNotMatch",
            format!("Credential should be scoped to a valid region, not '{region}'."),
        ));
    }
    // An AWS region nimbus's EC2 has no zones for: as AWS answers a region not enabled.
    Err(AwsError::new(
        401,
        "AuthFailure",
        format!(
            "AWS was not able to validate the provided access credentials (nimbus's EC2 serves the regions \
             DescribeRegions lists and {default}; {region} is not one of them)"
        ),
    ))
}

/// Operations of the EC2 API outside what nimbus serves are refused by name.
fn unsupported(action: &str) -> AwsError {
    AwsError::new(
        400,
        "InvalidAction",
        format!("nimbus does not implement the EC2 operation {action} (see the README's EC2 section for what is served)"),
    )
}

impl Ec2 {
    pub(crate) fn dispatch(&self, action: &str, region: &str, input: &Value) -> Result<Value, AwsError> {
        if input.bool("DryRun") == Some(true) {
            return Err(AwsError::new(
                412,
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            ));
        }
        match action {
            "DescribeInstanceTypes" => cat::describe_instance_types(input),
            "DescribeInstanceTypeOfferings" => cat::describe_instance_type_offerings(region, input),
            "DescribeRegions" => cat::describe_regions(input),
            "DescribeAvailabilityZones" => cat::describe_availability_zones(region, input),
            "DescribeImages" => cat::describe_images(input),
            "DescribeVpcs" => self.describe_vpcs(region, input),
            "DescribeSubnets" => self.describe_subnets(region, input),
            "CreateSecurityGroup" => self.create_security_group(region, input),
            "DescribeSecurityGroups" => self.describe_security_groups(region, input),
            "DeleteSecurityGroup" => self.delete_security_group(region, input),
            "AuthorizeSecurityGroupIngress" | "AuthorizeSecurityGroupEgress" => Ok(json!({ "return": true })),
            "CreateKeyPair" => self.create_key_pair(region, input, false),
            "ImportKeyPair" => self.create_key_pair(region, input, true),
            "DescribeKeyPairs" => self.describe_key_pairs(region, input),
            "DeleteKeyPair" => self.delete_key_pair(region, input),
            "CreateLaunchTemplate" => self.create_launch_template(region, input),
            "CreateLaunchTemplateVersion" => self.create_launch_template_version(region, input),
            "DescribeLaunchTemplates" => self.describe_launch_templates(region, input),
            "DeleteLaunchTemplate" => self.delete_launch_template(region, input),
            "RunInstances" => {
                let (reservation, instances) = self.run_instances(Launch { region, input: input.clone() })?;
                Ok(self.reservation_xml(&reservation, &instances))
            }
            "DescribeInstances" => self.describe_instances(region, input),
            "StopInstances" => self.stop_instances(region, input),
            "StartInstances" => self.start_instances(region, input),
            "TerminateInstances" => self.terminate_instances(region, input),
            "RebootInstances" => self.reboot_instances(region, input),
            "DescribeInstanceStatus" => self.describe_instance_status(region, input),
            "GetConsoleOutput" => self.console_output(region, input),
            "ModifyInstanceAttribute" => self.modify_instance_attribute(region, input),
            "CreateTags" => self.tags(region, input, false),
            "DeleteTags" => self.tags(region, input, true),
            "DescribeTags" => self.describe_tags(region, input),
            "RequestSpotInstances" => self.request_spot_instances(region, input),
            "DescribeSpotInstanceRequests" => self.describe_spot_instance_requests(region, input),
            "CancelSpotInstanceRequests" => self.cancel_spot_instance_requests(region, input),
            "DescribeSpotPriceHistory" => self.describe_spot_price_history(region, input),
            "DescribeReservedInstancesOfferings" => self.describe_reserved_offerings(input),
            "PurchaseReservedInstancesOffering" => self.purchase_reserved(region, input),
            "DescribeReservedInstances" => self.describe_reserved(region, input),
            "" => Err(AwsError::new(400, "MissingAction", "The request must contain the parameter Action")),
            other => Err(unsupported(other)),
        }
    }

    fn admin(&self, request: &ApiRequest) -> ApiResponse {
        let path = request.uri.path().strip_prefix(ADMIN_PREFIX).unwrap_or_default();
        if let Some(rest) = path.strip_prefix("imds/") {
            let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
            let answer =
                self.imds(id, request.method.as_str(), rest, |name| request.header(name).map(str::to_owned));
            let mut response = ApiResponse::new(Body::new(Bytes::from(answer.body)));
            *response.status_mut() = answer.status;
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return response;
        }
        let result = match (request.method.as_str(), path) {
            ("POST", "interrupt") => match request.query("instance") {
                Some(id) => self.interrupt(&id),
                None => Err(AwsError::new(400, "MissingParameter", "give ?instance=i-…")),
            },
            ("GET", "meter") => {
                let since = request.query("since").and_then(|s| s.parse::<f64>().ok());
                self.meter(since)
            }
            ("GET", "meter/series") => {
                let number = |name: &str| request.query(name).and_then(|s| s.parse::<f64>().ok());
                self.meter_series(number("since"), number("bucket"))
            }
            ("GET", "what-if") => {
                let since = request.query("since").and_then(|s| s.parse::<f64>().ok());
                self.what_if(since)
            }
            ("GET", "events") => {
                let limit = request.query("limit").and_then(|l| l.parse::<i64>().ok()).unwrap_or(200);
                self.store
                    .recent_events(limit.clamp(1, crate::EVENTS_KEPT))
                    .map(|events| json!({ "events": events }))
            }
            ("GET", "instances") => self.instances_summary(),
            (method, path) => {
                Err(AwsError::new(404, "NotFound", format!("{method} {ADMIN_PREFIX}{path} is not served")))
            }
        };
        match result {
            Ok(value) => json_response(value),
            Err(error) => error.into_response(Protocol::RestJson),
        }
    }

    /// What `nimbus instances` shows: id, type, market, state, price per hour.
    fn instances_summary(&self) -> Result<Value, AwsError> {
        let catalog = Catalog::get();
        let now = self.now();
        let list: Vec<Value> = self
            .store
            .all::<Instance>("instance", None)?
            .into_iter()
            .filter(|i| i.state != State::Terminated)
            .map(|i| {
                let kind = catalog.instance_type(&i.instance_type);
                let price = if i.is_spot() {
                    kind.and_then(|k| crate::catalog::spot_price(k, &i.zone, now))
                } else {
                    kind.and_then(|k| k.price)
                };
                json!({
                    "instance_id": i.id, "instance_type": i.instance_type, "market": i.lifecycle.as_deref().unwrap_or("on-demand"),
                    "state": i.state.name(), "region": i.region, "availability_zone": i.zone,
                    "vcpus": kind.map(|k| k.vcpus), "memory_mib": kind.map(|k| k.memory_mib), "usd_per_hour": price,
                    "live": self.runner.is_live(&i.id),
                    "memory_peak_mib": self.runner.peak_memory_mib(&i.id),
                    // What the instance holds on this host (its type's, scaled by `--capacity`).
                    "host_share": kind.map(|k| {
                        let (vcpus, memory_mib) = self.config.footprint(k);
                        json!({ "vcpus": vcpus, "memory_mib": memory_mib })
                    }),
                    "usage": self.runner.usage(&i.id).map(|u| json!({
                        "cpu_seconds": (u.cpu_seconds * 100.0).round() / 100.0,
                        "cpus": (u.cpus * 1000.0).round() / 1000.0,
                        "memory_mib": u.memory_mib,
                    })),
                })
            })
            .collect();
        Ok(
            json!({ "instances": list, "capacity": { "vcpus": self.config.vcpus, "memory_mib": self.config.memory_mib } }),
        )
    }
}

impl Service for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn claims(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap) -> bool {
        uri.path().starts_with(ADMIN_PREFIX)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if request.uri.path().starts_with(ADMIN_PREFIX) {
                return tokio::task::block_in_place(|| self.admin(&request));
            }
            let (action, input) = match query::parse(request.uri.query(), &request.body) {
                Ok(parsed) => parsed,
                Err(error) => return error.into_response(Protocol::Ec2),
            };
            let answer = region_of(&request, &self.identity.region)
                .and_then(|region| tokio::task::block_in_place(|| self.dispatch(&action, &region, &input)));
            match answer {
                Ok(result) => xml::ec2(&action, &result, &request.request_id),
                Err(error) => error.into_response(Protocol::Ec2),
            }
        })
    }
}

/// Capacity to launch for another engine: a named type, or the cheapest type of the
/// architecture with at least `vcpus` and `memory_mib`.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub instance_type: Option<String>,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `x86_64` (default) or `arm64`.
    pub arch: Option<String>,
    pub spot: bool,
    /// Run at boot, as user data.
    pub user_data: Option<Vec<u8>>,
    pub tags: Vec<(String, String)>,
    pub region: Option<String>,
}

/// A launched instance and its life from here on.
pub struct Launched {
    pub instance_id: String,
    pub instance_type: String,
    pub lifecycle: watch::Receiver<Lifecycle>,
}

/// What an engine hears about an instance it launched.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    Pending,
    Running,
    /// The two-minute notice: the instance will be `action`ed (terminate, stop) at `at_ms`.
    Interrupting {
        action: String,
        at_ms: i64,
    },
    /// Stopping, stopped, shutting down or terminated, with the state reason code.
    Ended {
        state: State,
        reason: String,
    },
}

impl Lifecycle {
    pub fn of(instance: &Instance) -> Lifecycle {
        match (instance.state, &instance.interruption) {
            (State::Running, Some(i)) => {
                Lifecycle::Interrupting { action: i.action.clone(), at_ms: i.time_ms }
            }
            (State::Running, None) => Lifecycle::Running,
            (State::Pending, _) => Lifecycle::Pending,
            (state, _) => Lifecycle::Ended {
                state,
                reason: instance.state_reason.as_ref().map(|r| r.0.clone()).unwrap_or_default(),
            },
        }
    }
}

impl Ec2 {
    /// Launches one instance for another engine, as RunInstances would (same checks, capacity
    /// refusal, meter); resolves once it is stored `pending`.
    pub fn launch(&self, capacity: Capacity) -> Result<Launched, AwsError> {
        let arch = capacity.arch.clone().unwrap_or_else(|| "x86_64".into());
        let kind = match &capacity.instance_type {
            Some(name) => Catalog::get()
                .instance_type(name)
                .ok_or_else(|| query::invalid(format!("Invalid value '{name}' for InstanceType.")))?,
            None => Catalog::get()
                .types
                .iter()
                .filter(|t| {
                    t.arch() == arch && t.vcpus >= capacity.vcpus && t.memory_mib >= capacity.memory_mib
                })
                .filter(|t| t.price.is_some() && !t.bare_metal && (!capacity.spot || t.spot_supported()))
                .min_by(|a, b| a.price.partial_cmp(&b.price).unwrap_or(std::cmp::Ordering::Equal))
                .ok_or_else(|| {
                    query::invalid(format!(
                        "No {arch} instance type has {} vCPUs and {} MiB",
                        capacity.vcpus, capacity.memory_mib
                    ))
                })?,
        };
        let image = crate::catalog::IMAGES.iter().find(|i| i.arch == kind.arch()).map_or("", |i| i.id);
        let mut input =
            json!({ "MinCount": "1", "MaxCount": "1", "InstanceType": kind.name, "ImageId": image });
        if let Some(data) = &capacity.user_data {
            input["UserData"] =
                json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data));
        }
        if capacity.spot {
            input["InstanceMarketOptions"] = json!({ "MarketType": "spot" });
        }
        if !capacity.tags.is_empty() {
            let tags: Vec<Value> = capacity.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
            input["TagSpecification"] = json!([{ "ResourceType": "instance", "Tag": tags }]);
        }
        let region = capacity.region.clone().unwrap_or_else(|| self.identity.region.clone());
        let region = served_region(&region, &self.identity.region)?;
        let (_, mut instances) = self.run_instances(Launch { region: &region, input })?;
        let instance = instances.pop().ok_or_else(|| crate::internal("no instance launched"))?;
        Ok(Launched {
            lifecycle: self.watch(&instance.id),
            instance_id: instance.id,
            instance_type: instance.instance_type,
        })
    }

    /// Follows an instance's life (pending, running, interrupting, ended).
    pub fn watch(&self, id: &str) -> watch::Receiver<Lifecycle> {
        let current = self.instance(id).ok().flatten().map_or(Lifecycle::Pending, |i| Lifecycle::of(&i));
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        watchers.retain(|_, sender| sender.receiver_count() > 0);
        watchers.entry(id.to_owned()).or_insert_with(|| watch::Sender::new(current)).subscribe()
    }

    /// Starts a process inside a running instance (its network, its memory limit); it ends with
    /// the instance. The caller waits on the child and reads its output.
    pub async fn exec(&self, id: &str, exec: Exec) -> std::io::Result<Process> {
        self.runner.exec(id, exec).await
    }

    /// A running instance's network namespace (None inside: it runs plain processes on the
    /// host's network) and its private IPv4 address.
    pub fn network_of(&self, id: &str) -> Option<(Option<std::sync::Arc<std::os::fd::OwnedFd>>, String)> {
        let netns = self.runner.netns(id)?;
        let instance = self.instance(id).ok().flatten()?;
        Some((netns, instance.private_ip))
    }

    /// How much of its type an instance holds on this host (`--capacity scale=F`): a process's
    /// own limits are divided by it as the instance's are.
    pub fn scale(&self) -> f64 {
        self.config.scale.max(1.0)
    }

    /// A CloudWatch alarm's EC2 action on the instance of its `InstanceId` dimension
    /// (`arn:aws:automate:<region>:ec2:stop|terminate|reboot`), as the matching EC2 call.
    pub fn alarm_instance_action(&self, region: &str, action: &str, id: &str) -> Result<(), AwsError> {
        let input = json!({ "InstanceId": [id] });
        match action {
            "stop" => self.stop_instances(region, &input).map(drop),
            "terminate" => self.terminate_instances(region, &input).map(drop),
            "reboot" => self.reboot_instances(region, &input).map(drop),
            other => Err(AwsError::new(
                400,
                "ValidationError",
                format!("nimbus does not take the EC2 alarm action {other}"),
            )),
        }
    }

    /// Terminates an instance (as TerminateInstances).
    pub fn terminate(&self, id: &str) -> Result<(), AwsError> {
        let instance = self.instance(id)?.ok_or_else(|| crate::instances::not_found(&[id.to_owned()]))?;
        if !matches!(instance.state, State::Terminated | State::ShuttingDown) {
            self.start_end(id, State::Terminated, crate::lifecycle::USER_SHUTDOWN, false)?;
        }
        Ok(())
    }
}
