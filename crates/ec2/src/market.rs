//! Spot interruptions and the spot market's minute: the two-minute notice (instance metadata,
//! events) and, after it, the end of the instance's processes; interruptions when the price
//! passes an instance's max price or at `--spot-interruption-rate`; persistent requests that
//! launch again (or start their stopped instance) after an interruption.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::{self, Catalog};
use crate::instances::Launch;
use crate::lifecycle::{SPOT_SHUTDOWN, SPOT_TERMINATION};
use crate::model::{Instance, Interruption, State};
use crate::spot::SpotRequest;
use crate::Ec2;

impl Ec2 {
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
            self.asg_member_ended(&instance.region, group);
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
    /// Processes of this node whose instance another node stopped or terminated end here.
    fn reap(&self) {
        for id in self.runner.live_ids() {
            let ended = match self.instance(&id) {
                Ok(Some(instance)) => !instance.state.holds_capacity() || instance.node != self.config.node,
                Ok(None) => true,
                Err(_) => false,
            };
            if ended {
                let runner = self.runner.clone();
                tokio::runtime::Handle::current().spawn(async move { runner.kill(&id).await });
            }
        }
    }

    /// One minute of the market (run on the clock when [`crate::Config::market`] is set).
    pub fn market_minute(&self) {
        self.reap();
        // Work for the whole nimbus (relaunches, scheduled actions): one node per minute.
        let now = self.now();
        let minute = now.div_euclid(60_000).to_string();
        if self.store.claim("market-minute", &minute, now, now - 3_600_000).unwrap_or(false) {
            self.fulfil_persistent();
            self.run_schedules();
            self.forget_terminated(now);
            if let Err(error) = self.store.prune_events(crate::EVENTS_KEPT) {
                eprintln!("nimbus: ec2: cannot prune the timeline's events: {}", error.message);
            }
        }
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
        // Persistent requests, and one-time ones never fulfilled (no capacity or too low a price then).
        for request in requests.into_iter().filter(|r| r.kind == "persistent" || r.instance_id.is_none()) {
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

/// Terminated instances are forgotten this long after they ended (AWS lists them about an hour).
const TERMINATED_KEPT_MS: i64 = 3600 * 1000;

impl Ec2 {
    /// Drops instances terminated more than an hour ago, with their files (the meter's ledger
    /// keeps their usage).
    fn forget_terminated(&self, now: i64) {
        let Ok(instances) = self.store.all::<Instance>("instance", None) else { return };
        for instance in instances {
            let old = instance.state == State::Terminated
                && instance.ended_ms.is_some_and(|t| now - t > TERMINATED_KEPT_MS);
            if old && self.store.delete("instance", &instance.id).unwrap_or(false) {
                self.runner.forget(&instance.id);
            }
        }
    }
}
