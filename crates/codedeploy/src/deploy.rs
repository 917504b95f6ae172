//! One Lambda deployment, as CodeDeploy runs it for an alias whose update policy is
//! `CodeDeployLambdaAliasUpdate`: the `BeforeAllowTraffic` hook, traffic shifted from the old
//! version to the new one by the group's deployment configuration (on nimbus's clock), the
//! `AfterAllowTraffic` hook, then the alias wholly on the new version. A hook reporting `Failed`
//! (or silent for an hour), an alarm of the group in `ALARM`, or `StopDeployment` rolls the
//! alias back to the old version and fails the deployment.

use std::time::Duration;

use nimbus_api::clock::sleep_until;
use serde_json::{json, Value};

use crate::CodeDeploy;

/// How long a hook has to report its status (AWS: one hour).
const HOOK_TIMEOUT_MS: i64 = 3_600_000;
/// How often a running deployment looks at hooks, alarms and stop requests.
const POLL: Duration = Duration::from_millis(200);

/// The alias to move, as the stack's update asks.
#[derive(Clone, Debug)]
pub struct AliasShift {
    pub application: String,
    pub group: String,
    pub function: String,
    pub alias: String,
    /// The version the alias is on now.
    pub from: String,
    /// The version it moves to.
    pub to: String,
    pub before_hook: Option<String>,
    pub after_hook: Option<String>,
}

/// How traffic moves: a first share, then steps of `step` percent every `interval_minutes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// Percentages in force one after another, each held for `interval_ms` (the last is 100).
    pub steps: Vec<f64>,
    pub interval_ms: i64,
}

impl Routing {
    /// From a `TrafficRoutingConfig` (`AllAtOnce`, `TimeBasedCanary`, `TimeBasedLinear`).
    pub fn from_config(config: &Value) -> Result<Routing, String> {
        let number = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        match config["Type"].as_str().unwrap_or("AllAtOnce") {
            "AllAtOnce" => Ok(Routing { steps: vec![100.0], interval_ms: 0 }),
            "TimeBasedCanary" => {
                let c = &config["TimeBasedCanary"];
                let (Some(percent), Some(minutes)) =
                    (number(&c["CanaryPercentage"]), number(&c["CanaryInterval"]))
                else {
                    return Err("TimeBasedCanary needs CanaryPercentage and CanaryInterval".into());
                };
                Ok(Routing { steps: vec![percent, 100.0], interval_ms: (minutes * 60_000.0) as i64 })
            }
            "TimeBasedLinear" => {
                let c = &config["TimeBasedLinear"];
                let (Some(percent), Some(minutes)) =
                    (number(&c["LinearPercentage"]), number(&c["LinearInterval"]))
                else {
                    return Err("TimeBasedLinear needs LinearPercentage and LinearInterval".into());
                };
                if percent <= 0.0 {
                    return Err("LinearPercentage must be more than 0".into());
                }
                let mut steps = Vec::new();
                let mut share = percent;
                while share < 100.0 {
                    steps.push(share);
                    share += percent;
                }
                steps.push(100.0);
                Ok(Routing { steps, interval_ms: (minutes * 60_000.0) as i64 })
            }
            other => Err(format!("Unsupported traffic routing type {other}")),
        }
    }

    /// AWS's predefined Lambda configurations (`CodeDeployDefault.LambdaCanary10Percent5Minutes` …).
    pub fn predefined(name: &str) -> Option<Routing> {
        let rest = name.strip_prefix("CodeDeployDefault.Lambda")?;
        if rest == "AllAtOnce" {
            return Some(Routing { steps: vec![100.0], interval_ms: 0 });
        }
        let minutes = |s: &str| -> Option<f64> {
            s.strip_suffix("Minutes").or_else(|| s.strip_suffix("Minute"))?.parse().ok()
        };
        if let Some(rest) = rest.strip_prefix("Canary") {
            let (percent, rest) = rest.split_once("Percent")?;
            let config = json!({"Type": "TimeBasedCanary", "TimeBasedCanary": {
                "CanaryPercentage": percent.parse::<f64>().ok()?, "CanaryInterval": minutes(rest)?}});
            return Routing::from_config(&config).ok();
        }
        let rest = rest.strip_prefix("Linear")?;
        let (percent, rest) = rest.split_once("PercentEvery")?;
        let config = json!({"Type": "TimeBasedLinear", "TimeBasedLinear": {
            "LinearPercentage": percent.parse::<f64>().ok()?, "LinearInterval": minutes(rest)?}});
        Routing::from_config(&config).ok()
    }
}

/// Why a deployment stopped short: its error code and message.
struct Failure(&'static str, String);

impl CodeDeploy {
    /// Runs the deployment to its end; its id, or why it failed (the alias then back on `from`).
    pub async fn shift_alias(&self, shift: AliasShift) -> Result<String, String> {
        let db = |e: nimbus_store::DbError| e.to_string();
        let Some(group) = self.store.group(&shift.application, &shift.group).map_err(db)? else {
            return Err(format!(
                "No Deployment Group found for name: {} (application {})",
                shift.group, shift.application
            ));
        };
        let config_name =
            group["DeploymentConfigName"].as_str().unwrap_or("CodeDeployDefault.LambdaAllAtOnce").to_owned();
        let routing = match Routing::predefined(&config_name) {
            Some(routing) => routing,
            None => match self.store.config(&config_name).map_err(db)? {
                Some(config) => Routing::from_config(&config)?,
                None => return Err(format!("No deployment configuration found for name: {config_name}")),
            },
        };
        let alarms: Vec<String> = if group["AlarmConfiguration"]["Enabled"] == json!(true)
            || group["AlarmConfiguration"]["Enabled"] == json!("true")
        {
            let list = group["AlarmConfiguration"]["Alarms"].as_array().cloned().unwrap_or_default();
            list.iter().filter_map(|a| a["Name"].as_str().map(str::to_owned)).collect()
        } else {
            Vec::new()
        };
        let id = crate::new_deployment_id();
        let now = self.clock.now_ms();
        let mut info = json!({
            "applicationName": shift.application,
            "deploymentGroupName": shift.group,
            "deploymentConfigName": config_name,
            "deploymentId": id,
            "status": "InProgress",
            "createTime": now as f64 / 1000.0,
            "startTime": now as f64 / 1000.0,
            "creator": "user",
            "description": format!("{}:{} from version {} to {}", shift.function, shift.alias, shift.from, shift.to),
            "computePlatform": "Lambda",
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]},
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec(&shift)}},
        });
        self.store.insert_deployment(&id, &info, now).map_err(db)?;
        let mut pending = Pending { cd: self, info: info.clone(), done: false };
        let outcome = self.run(&id, &shift, &routing, &alarms).await;
        pending.done = true;
        let done = self.clock.now_ms();
        info["completeTime"] = json!(done as f64 / 1000.0);
        match outcome {
            Ok(()) => {
                info["status"] = json!("Succeeded");
                self.store.save_deployment(&id, &info).map_err(db)?;
                Ok(id)
            }
            Err(Failure(code, message)) => {
                // Back to where it was (AutoRollbackConfiguration, always on for SAM's groups).
                let restored = self.targets.route(&shift.function, &shift.alias, &shift.from, None).await;
                info["status"] = json!(if code == "MANUAL_STOP" { "Stopped" } else { "Failed" });
                info["errorInformation"] = json!({"code": code, "message": message});
                info["rollbackInfo"] = json!({"rollbackMessage": match &restored {
                    Ok(()) => format!("Traffic moved back to version {}", shift.from),
                    Err(e) => format!("Traffic could not be moved back to version {}: {e}", shift.from),
                }});
                self.store.save_deployment(&id, &info).map_err(db)?;
                Err(format!("CodeDeploy deployment {id} failed ({code}): {message}"))
            }
        }
    }

    async fn run(
        &self,
        id: &str,
        shift: &AliasShift,
        routing: &Routing,
        alarms: &[String],
    ) -> Result<(), Failure> {
        if let Some(hook) = &shift.before_hook {
            self.hook(id, hook, "BeforeAllowTraffic", alarms).await?;
        }
        // Steps keep their schedule from the shift's start (a clock moved past several of them
        // takes them all).
        let started = self.clock.now_ms();
        for (index, percent) in routing.steps.iter().enumerate() {
            self.check(id, alarms).await?;
            let moved = if *percent >= 100.0 {
                self.targets.route(&shift.function, &shift.alias, &shift.to, None).await
            } else {
                let weight = (percent / 100.0 * 1e6).round() / 1e6;
                self.targets
                    .route(&shift.function, &shift.alias, &shift.from, Some((shift.to.as_str(), weight)))
                    .await
            };
            moved.map_err(|e| Failure("INVALID_LAMBDA_CONFIGURATION", e))?;
            if index + 1 < routing.steps.len() {
                let until = started + routing.interval_ms * (index as i64 + 1);
                self.wait(id, alarms, until, None).await?;
            }
        }
        if let Some(hook) = &shift.after_hook {
            self.hook(id, hook, "AfterAllowTraffic", alarms).await?;
        }
        self.check(id, alarms).await
    }

    /// Invokes a hook function and waits for it to report through
    /// `PutLifecycleEventHookExecutionStatus`.
    async fn hook(&self, id: &str, function: &str, event: &str, alarms: &[String]) -> Result<(), Failure> {
        let execution = crate::new_execution_id();
        self.store.insert_hook(&execution, id).map_err(|e| Failure("INTERNAL_ERROR", e.to_string()))?;
        let payload = json!({"DeploymentId": id, "LifecycleEventHookExecutionId": execution});
        if let Err(error) = self.targets.invoke(function, payload.to_string().into_bytes()).await {
            return Err(Failure(
                "HOOK_EXECUTION_FAILURE",
                format!("The {event} hook function {function} could not be invoked: {error}"),
            ));
        }
        let until = self.clock.now_ms() + HOOK_TIMEOUT_MS;
        match self.wait(id, alarms, until, Some(&execution)).await? {
            Some(status) if status == "Succeeded" => Ok(()),
            Some(status) => Err(Failure(
                "HOOK_EXECUTION_FAILURE",
                format!("The {event} hook {function} reported {status}; traffic rolled back"),
            )),
            None => Err(Failure(
                "HOOK_EXECUTION_FAILURE",
                format!("The {event} hook {function} did not report its status within an hour"),
            )),
        }
    }

    /// Waits until `until` on the clock (or, for a hook, its status), failing on an alarm or a
    /// stop request. The hook's status when it reported one.
    async fn wait(
        &self,
        id: &str,
        alarms: &[String],
        until: i64,
        hook: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        loop {
            self.check(id, alarms).await?;
            if let Some(hook) = hook {
                let status = self.store.hook(hook).map_err(|e| Failure("INTERNAL_ERROR", e.to_string()))?;
                if let Some((_, status)) = status.filter(|(_, s)| s == "Succeeded" || s == "Failed") {
                    return Ok(Some(status));
                }
            }
            if self.clock.now_ms() >= until {
                return Ok(None);
            }
            tokio::select! {
                () = sleep_until(self.clock.as_ref(), until) => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Fails the deployment when it was asked to stop or one of its alarms is in `ALARM`.
    async fn check(&self, id: &str, alarms: &[String]) -> Result<(), Failure> {
        let stop = self.store.deployment(id).ok().flatten().is_some_and(|(_, stop)| stop);
        if stop {
            return Err(Failure("MANUAL_STOP", "The deployment was stopped by StopDeployment".into()));
        }
        if !alarms.is_empty() {
            let firing = self.targets.alarms_in_alarm(alarms).await;
            if !firing.is_empty() {
                return Err(Failure(
                    "ALARM_ACTIVE",
                    format!("One or more alarms have been activated: [{}]", firing.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// A running deployment: when the stack operation waiting for it is cancelled (the future
/// dropped), it is recorded `Stopped` (the stack's rollback puts the alias back).
struct Pending<'a> {
    cd: &'a CodeDeploy,
    info: Value,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.info["deploymentId"].as_str().unwrap_or_default().to_owned();
        self.info["status"] = json!("Stopped");
        self.info["completeTime"] = json!(self.cd.clock.now_ms() as f64 / 1000.0);
        self.info["errorInformation"] = json!({"code": "MANUAL_STOP", "message": "The stack operation that started the deployment was cancelled"});
        let _ = self.cd.store.save_deployment(&id, &self.info);
    }
}

/// The AppSpec CodeDeploy records for a Lambda deployment.
fn appspec(shift: &AliasShift) -> String {
    let mut hooks = Vec::new();
    if let Some(hook) = &shift.before_hook {
        hooks.push(json!({"BeforeAllowTraffic": hook}));
    }
    if let Some(hook) = &shift.after_hook {
        hooks.push(json!({"AfterAllowTraffic": hook}));
    }
    json!({
        "version": 0.0,
        "Resources": [{"target": {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": shift.function, "Alias": shift.alias,
            "CurrentVersion": shift.from, "TargetVersion": shift.to}}}],
        "Hooks": hooks,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::Routing;

    #[test]
    fn predefined_configurations() {
        let canary = Routing::predefined("CodeDeployDefault.LambdaCanary10Percent5Minutes").unwrap();
        assert_eq!(canary, Routing { steps: vec![10.0, 100.0], interval_ms: 300_000 });
        let linear = Routing::predefined("CodeDeployDefault.LambdaLinear10PercentEvery1Minute").unwrap();
        assert_eq!(linear.steps.len(), 10);
        assert_eq!(linear.interval_ms, 60_000);
        let all = Routing::predefined("CodeDeployDefault.LambdaAllAtOnce").unwrap();
        assert_eq!(all.steps, vec![100.0]);
        assert!(Routing::predefined("Custom").is_none());
    }

    #[test]
    fn custom_linear_ends_at_one_hundred() {
        let config = serde_json::json!({"Type": "TimeBasedLinear",
            "TimeBasedLinear": {"LinearPercentage": 30, "LinearInterval": 2}});
        let routing = Routing::from_config(&config).unwrap();
        assert_eq!(routing.steps, vec![30.0, 60.0, 90.0, 100.0]);
    }
}
