//! `ScheduleV2`: an EventBridge Scheduler schedule, with a role allowed to invoke the target.

use serde_json::{json, Map, Value};

use super::{statement_policy, Event, Target};
use crate::error::Result;
use crate::model::{assume_role, Cfn};

pub(crate) fn schedule_v2(event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let mut schedule = Cfn::with(event.id.clone(), "AWS::Scheduler::Schedule", &target.attrs);
    schedule.set_opt("ScheduleExpression", event.get("ScheduleExpression"));
    if let Some(state) = event.get("State").filter(|s| s.as_str() != Some("")) {
        schedule.set("State", state.clone());
    }
    if event.get("OmitName").and_then(Value::as_bool) == Some(true) {
        if event.get("Name").is_some() {
            return Err(crate::error::ResourceError::event(
                &event.id,
                "Name cannot be set when OmitName is True",
            ));
        }
    } else {
        let name = event.get("Name").filter(|n| n.as_str() != Some("")).cloned();
        schedule.set("Name", name.unwrap_or_else(|| json!(event.id)));
    }
    schedule.set_opt("Description", event.get("Description"));
    let window = event
        .get("FlexibleTimeWindow")
        .filter(|w| w.as_object().is_none_or(|m| !m.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!({"Mode": "OFF"}));
    schedule.set("FlexibleTimeWindow", window);
    for key in ["StartDate", "EndDate", "ScheduleExpressionTimezone", "GroupName", "KmsKeyArn"] {
        schedule.set_opt(key, event.get(key));
    }
    let mut resources = vec![];
    let mut dlq = None;
    if let Some(config) = event.get("DeadLetterConfig") {
        super::push::validate_dlq(&event.id, config)?;
        if let Some(arn) = config.get("Arn") {
            dlq = Some(arn.clone());
        } else {
            let queue_id = match config.get("QueueLogicalId") {
                None => format!("{}Queue", event.id),
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(crate::error::ResourceError::event(
                        &event.id,
                        "QueueLogicalId must be a string",
                    ))
                }
            };
            let queue = Cfn::with(queue_id, "AWS::SQS::Queue", &target.attrs);
            dlq = Some(queue.arn());
            resources.push(queue);
        }
    }
    let role_arn = match event.get("RoleArn").filter(|r| r.as_str() != Some("")) {
        Some(arn) => arn.clone(),
        None => {
            let mut role = Cfn::with(format!("{}Role", event.id), "AWS::IAM::Role", &target.attrs);
            role.set("AssumeRolePolicyDocument", assume_role("scheduler.amazonaws.com"));
            let mut policies = vec![if target.state_machine {
                statement_policy(
                    format!("{}StartExecutionPolicy", event.id),
                    "states:StartExecution",
                    target.arn.clone(),
                )
            } else {
                statement_policy(
                    format!("{}LambdaPolicy", event.id),
                    "lambda:InvokeFunction",
                    target.arn.clone(),
                )
            }];
            if let Some(arn) = &dlq {
                policies.push(statement_policy(
                    format!("{}SQSPolicy", event.id),
                    "sqs:SendMessage",
                    arn.clone(),
                ));
            }
            role.set("Policies", Value::Array(policies));
            if let Some(b) = event.get("PermissionsBoundary").filter(|b| b.as_str() != Some("")) {
                role.set("PermissionsBoundary", b.clone());
            }
            let arn = role.arn();
            resources.push(role);
            arn
        }
    };
    let mut t = Map::new();
    t.insert("Arn".into(), target.arn.clone());
    t.insert("RoleArn".into(), role_arn);
    for key in ["Input"] {
        if let Some(v) = event.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    if let Some(arn) = dlq {
        t.insert("DeadLetterConfig".into(), json!({"Arn": arn}));
    }
    if let Some(v) = event.get("RetryPolicy") {
        t.insert("RetryPolicy".into(), v.clone());
    }
    schedule.set("Target", Value::Object(t));
    resources.insert(0, schedule);
    Ok(resources)
}
