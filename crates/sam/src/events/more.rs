//! The smaller push sources: CloudWatch Logs subscription filters, IoT topic rules, Alexa
//! skills and Cognito user pool triggers.

use serde_json::{json, Value};

use super::{permission, Event, Target};
use crate::error::{ResourceError, Result};
use crate::model::{Cfn, Out};

pub(super) fn cloudwatch_logs(out: &Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let group = event.get("LogGroupName").cloned().unwrap_or(Value::Null);
    let source_arn = json!({"Fn::Sub": [
        format!("arn:{}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{__LogGroupName__}}:*", out.ctx.partition),
        {"__LogGroupName__": group}
    ]});
    let perm = permission(&event.id, "", target, "logs.amazonaws.com", Some(source_arn), None);
    let mut filter = Cfn::with(event.id.clone(), "AWS::Logs::SubscriptionFilter", &target.attrs);
    filter.attrs.insert("DependsOn".into(), json!([perm.id]));
    filter.set("LogGroupName", group);
    filter.set_opt("FilterPattern", event.get("FilterPattern"));
    filter.set("DestinationArn", target.arn.clone());
    Ok(vec![perm, filter])
}

pub(super) fn alexa(event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let mut perm = permission(&event.id, "", target, "alexa-appkit.amazon.com", None, None);
    perm.set_opt("EventSourceToken", event.get("SkillId"));
    Ok(vec![perm])
}

pub(super) fn iot_rule(out: &Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let source_arn = json!({"Fn::Sub": [
        format!("arn:{}:iot:${{AWS::Region}}:${{AWS::AccountId}}:rule/${{RuleName}}", out.ctx.partition),
        {"RuleName": {"Ref": event.id}}
    ]});
    let perm = permission(
        &event.id,
        "",
        target,
        "iot.amazonaws.com",
        Some(source_arn),
        Some(json!({"Fn::Sub": "${AWS::AccountId}"})),
    );
    let mut rule = Cfn::with(event.id.clone(), "AWS::IoT::TopicRule", &target.attrs);
    let mut payload = json!({
        "Sql": event.get("Sql").cloned().unwrap_or(Value::Null),
        "RuleDisabled": false,
        "Actions": [{"Lambda": {"FunctionArn": target.arn}}]
    });
    if let Some(v) = event.get("AwsIotSqlVersion").filter(|v| crate::function::truthy(v)) {
        payload["AwsIotSqlVersion"] = v.clone();
    }
    rule.set("TopicRulePayload", payload);
    Ok(vec![perm, rule])
}

/// A Cognito trigger: the user pool's `LambdaConfig` names the function (the pool is rewritten
/// in the output), and Cognito may invoke it.
pub(super) fn cognito(
    out: &mut Out,
    event: &Event<'_>,
    target: &Target,
    invoker_id: &str,
) -> Result<Vec<Cfn>> {
    let pool_id = match event.get("UserPool").and_then(|p| p.get("Ref")) {
        Some(Value::String(id)) if out.resources.contains_key(id) => id.clone(),
        Some(Value::String(_)) | None => {
            return Err(event.error("Cognito events must reference a Cognito UserPool in the same template."))
        }
        Some(_) => return Err(ResourceError::event(&event.id, "Ref in Userpool is not a string.")),
    };
    let perm = permission(
        &format!("{invoker_id}Cognito"),
        "",
        target,
        "cognito-idp.amazonaws.com",
        Some(json!({"Fn::GetAtt": [pool_id, "Arn"]})),
        None,
    );
    let triggers: Vec<Value> = match event.get("Trigger") {
        Some(Value::Array(list)) => list.clone(),
        Some(one) => vec![one.clone()],
        None => vec![],
    };
    let Some(pool) = out.resources.get_mut(&pool_id).and_then(Value::as_object_mut) else {
        return Err(event.error("Cognito events must reference a Cognito UserPool in the same template."));
    };
    let props = pool.entry("Properties").or_insert_with(|| json!({}));
    let config = props.as_object_mut().map(|p| p.entry("LambdaConfig").or_insert_with(|| json!({})));
    let Some(Value::Object(config)) = config else {
        return Err(ResourceError::new(&pool_id, "Property 'LambdaConfig' should be a map."));
    };
    for trigger in triggers {
        let name = trigger.as_str().unwrap_or_default().to_string();
        if config.contains_key(&name) {
            let shown = match event.get("Trigger") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return Err(event.error(format!("Cognito trigger \"{shown}\" defined multiple times.")));
        }
        config.insert(name, target.arn.clone());
    }
    Ok(vec![perm])
}
