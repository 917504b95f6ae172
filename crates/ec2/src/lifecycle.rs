//! An instance's way through AWS's states, with real processes under it: pending → running
//! (booted), running → stopping → stopped and → shutting-down → terminated (its processes
//! killed), with AWS's state reasons; and what a restart of nimbus finds.
//!
//! After a restart, instances that were running are reported as AWS reports instances whose host
//! failed: on-demand ones `stopped`, one-time spot ones `terminated`, both with state reason
//! `Server.InternalError`; `StartInstances` boots a stopped one again.

use std::sync::Arc;

use base64::Engine as _;
use nimbus_api::AwsError;
use serde_json::json;

use crate::api::Lifecycle;
use crate::catalog::Catalog;
use crate::model::{Instance, State};
use crate::store::Segment;
use crate::{runner, Ec2};

pub const USER_SHUTDOWN: (&str, &str) =
    ("Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown");
pub const INSTANCE_SHUTDOWN: (&str, &str) =
    ("Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown");
pub const SPOT_TERMINATION: (&str, &str) =
    ("Server.SpotInstanceTermination", "Server.SpotInstanceTermination: Spot instance termination");
pub const SPOT_SHUTDOWN: (&str, &str) =
    ("Server.SpotInstanceShutdown", "Server.SpotInstanceShutdown: Spot instance shutdown");
pub const HOST_LOST: (&str, &str) = (
    "Server.InternalError",
    "Server.InternalError: nimbus stopped while the instance was running; its processes ended",
);
const LAUNCH_FAILED: &str = "Server.InternalError: Internal error on launch";

pub fn reason(pair: (&str, &str)) -> Option<(String, String)> {
    Some((pair.0.to_owned(), pair.1.to_owned()))
}

impl Ec2 {
    pub(crate) fn instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        self.store.get::<Instance>("instance", id)
    }

    /// Changes a stored instance under the document lock; None when it does not exist. Watchers
    /// hear of state changes.
    pub(crate) fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Instance),
    ) -> Result<Option<Instance>, AwsError> {
        let _held = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut instance) = self.instance(id)? else { return Ok(None) };
        let before = (instance.state, instance.interruption.clone());
        change(&mut instance);
        self.store.put("instance", id, &instance.region, &instance, instance.launch_ms)?;
        if before != (instance.state, instance.interruption.clone()) {
            self.tell(&instance);
        }
        Ok(Some(instance))
    }

    fn tell(&self, instance: &Instance) {
        let lifecycle = Lifecycle::of(instance);
        let watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = watchers.get(&instance.id) {
            sender.send_replace(lifecycle);
        }
    }

    fn state_event(&self, instance: &Instance) {
        self.emit(
            "EC2 Instance State-change Notification",
            vec![instance.arn()],
            json!({ "instance-id": instance.id, "state": instance.state.name() }),
        );
    }

    /// Boots a pending instance in the background.
    pub(crate) fn start_boot(&self, id: String) {
        let ec2 = self.arc();
        tokio::spawn(async move { ec2.boot(id).await });
    }

    async fn boot(self: Arc<Self>, id: String) {
        let Ok(Some(instance)) = self.instance(&id) else { return };
        if instance.state != State::Pending {
            return;
        }
        if instance.node != self.config.node {
            let _ = self.update(&id, |i| i.node = self.config.node.clone());
        }
        let kind = Catalog::get().instance_type(&instance.instance_type);
        let (vcpus, memory_mib) = kind.map_or((1.0, 512), |t| self.config.footprint(t));
        let user_data = instance.user_data.as_deref().map(|data| {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .unwrap_or_else(|_| data.as_bytes().to_vec())
        });
        let boot = runner::Boot {
            instance_id: id.clone(),
            instance_type: instance.instance_type.clone(),
            arch: instance.arch.clone(),
            memory_mib,
            vcpus,
            region: instance.region.clone(),
            user_data,
        };
        let weak = Arc::downgrade(&self);
        let exited_id = id.clone();
        let on_exit: runner::OnExit = Box::new(move |why| {
            if let Some(ec2) = weak.upgrade() {
                tokio::spawn(async move { ec2.exited_on_its_own(&exited_id, &why).await });
            }
        });
        match self.runner.boot(boot, on_exit).await {
            Ok(()) => {
                let now = self.now();
                let updated = self.update(&id, |i| {
                    if i.state == State::Pending {
                        i.state = State::Running;
                        i.boots += 1;
                    }
                });
                match updated {
                    Ok(Some(instance)) if instance.state == State::Running => {
                        if let Err(error) = self.open_segment(&instance, now) {
                            eprintln!("nimbus: ec2 meter: {}", error.message);
                        }
                        self.state_event(&instance);
                    }
                    // Stopped or terminated while booting: nothing may keep running.
                    _ => self.runner.kill(&id).await,
                }
            }
            // nimbus is stopping: the instance stays pending, settled at the next start.
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                eprintln!("nimbus: ec2: cannot boot {id}: {error}");
                let now = self.now();
                let _ = self.update(&id, |i| {
                    i.state = State::Terminated;
                    i.state_reason = Some(("Server.InternalError".into(), LAUNCH_FAILED.into()));
                    i.transition_reason = format!("Server initiated ({})", crate::gmt(now));
                });
            }
        }
    }

    /// The meter's segment for an instance that entered `running`: spot at the spot price,
    /// reserved when a reservation covers it, on-demand otherwise.
    fn open_segment(&self, instance: &Instance, now: i64) -> Result<(), AwsError> {
        let kind = Catalog::get().instance_type(&instance.instance_type);
        let on_demand = kind.and_then(|k| k.price).unwrap_or(0.0);
        let (billing, rate) = if instance.is_spot() {
            (
                "spot".to_owned(),
                kind.and_then(|k| crate::catalog::spot_price(k, &instance.zone, now)).unwrap_or(0.0),
            )
        } else {
            match self.covering_reservation(instance, now)? {
                Some((id, rate)) => (format!("reserved:{id}"), rate),
                None => ("on-demand".to_owned(), on_demand),
            }
        };
        let segment = Segment {
            instance_id: instance.id.clone(),
            instance_type: instance.instance_type.clone(),
            zone: instance.zone.clone(),
            arch: instance.arch.clone(),
            billing,
            rate,
            start_ms: now,
            end_ms: None,
            interrupted: false,
            service: crate::series::service_of(instance).to_owned(),
        };
        self.store.open_segment(&instance.region, &segment)
    }

    /// Moves the instance to `stopping`/`shutting-down` now and to `target` once its processes are
    /// gone (in the background).
    pub(crate) fn start_end(
        &self,
        id: &str,
        target: State,
        why: (&str, &str),
        interrupted: bool,
    ) -> Result<Option<Instance>, AwsError> {
        let now = self.now();
        let (code, message) = (why.0.to_owned(), why.1.to_owned());
        let updated = self.update(id, |i| {
            i.state = if target == State::Terminated { State::ShuttingDown } else { State::Stopping };
            i.state_reason = Some((code.clone(), message.clone()));
            i.transition_reason = if code.starts_with("Client.User") {
                format!("User initiated ({})", crate::gmt(now))
            } else {
                format!("Service initiated ({})", crate::gmt(now))
            };
        })?;
        if let Some(instance) = &updated {
            self.state_event(instance);
            let ec2 = self.arc();
            let id = id.to_owned();
            tokio::spawn(async move { ec2.finish_end(&id, target, interrupted).await });
        }
        Ok(updated)
    }

    async fn finish_end(&self, id: &str, target: State, interrupted: bool) {
        self.runner.kill(id).await;
        let now = self.now();
        if let Err(error) = self.store.close_segment(id, now, interrupted) {
            eprintln!("nimbus: ec2 meter: {error}");
        }
        // The spot request first: whoever sees the instance ended sees its request settled.
        if let Ok(Some(ending)) = self.instance(id) {
            if matches!(ending.state, State::Stopping | State::ShuttingDown) {
                let cause =
                    ending
                        .interruption
                        .as_ref()
                        .map(|i| if i.cause.is_empty() { "capacity" } else { &i.cause });
                if target == State::Terminated {
                    self.spot_instance_ended(&ending, cause.filter(|_| interrupted));
                } else if interrupted {
                    self.spot_instance_stopped(&ending);
                }
            }
        }
        let updated = self.update(id, |i| {
            if matches!(i.state, State::Stopping | State::ShuttingDown) {
                i.state = target;
                i.ended_ms = Some(now);
                i.interruption = None;
            }
        });
        if let Ok(Some(instance)) = updated {
            self.state_event(&instance);
            if let Some(asg) = instance.tags.iter().find(|(k, _)| k == "aws:autoscaling:groupName") {
                self.asg_member_ended(&instance.region, &asg.1);
            }
        }
    }

    /// The instance's main process ended without nimbus ending it: a shutdown from inside (AWS:
    /// stop or terminate per `InstanceInitiatedShutdownBehavior`).
    async fn exited_on_its_own(&self, id: &str, why: &str) {
        let Ok(Some(instance)) = self.instance(id) else { return };
        if instance.state != State::Running {
            return;
        }
        eprintln!("nimbus: ec2: {id} ended on its own ({why})");
        let target = if instance.shutdown_behavior == "terminate" || instance.is_spot() {
            State::Terminated
        } else {
            State::Stopped
        };
        let _ = self.start_end(id, target, INSTANCE_SHUTDOWN, false);
    }

    /// After a restart: instances whose processes ended with the previous nimbus.
    pub(crate) fn recover(&self) -> Result<(), AwsError> {
        let now = self.now();
        for instance in self.store.all::<Instance>("instance", None)? {
            // Another node's instances are that node's to recover.
            if !instance.state.holds_capacity() || instance.node != self.config.node {
                continue;
            }
            self.runner.remove_leftover_tmp(&instance.id);
            let target = if instance.is_spot() && instance.interruption_behavior == "terminate" {
                State::Terminated
            } else {
                State::Stopped
            };
            let ended = self.update(&instance.id, |i| {
                i.state = target;
                i.state_reason = reason(HOST_LOST);
                i.transition_reason = format!("Server initiated ({})", crate::gmt(now));
                i.interruption = None;
                i.ended_ms = Some(now);
            })?;
            self.store.close_segment(&instance.id, now, false)?;
            if let (Some(instance), State::Terminated) = (ended, target) {
                self.spot_instance_ended(&instance, None);
            }
        }
        Ok(())
    }
}
