//! Push sources: S3 notifications, SNS subscriptions, EventBridge rules (Schedule,
//! CloudWatchEvent, EventBridgeRule), each with the permission that lets the service invoke.

use serde_json::{json, Map, Value};

use super::{permission, Event, Target};
use crate::error::{ResourceError, Result};
use crate::model::{Cfn, Out};

const MAX_TARGET_ID: usize = 64;

pub(crate) fn target_id(id: &str, suffix: &str) -> String {
    if id.len() + suffix.len() <= MAX_TARGET_ID {
        format!("{id}{suffix}")
    } else {
        format!("{}{suffix}", id.chars().take(MAX_TARGET_ID - suffix.len()).collect::<String>())
    }
}

pub(super) fn s3(out: &mut Out, event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let bucket_id = match event.get("Bucket").and_then(|b| b.get("Ref")) {
        Some(Value::String(id)) if out.resources.contains_key(id) => id.clone(),
        Some(Value::String(_)) | None => {
            return Err(event.error("S3 events must reference an S3 bucket in the same template."))
        }
        Some(_) => return Err(event.error("'Ref' value in S3 events is not a valid string.")),
    };
    let perm =
        permission(&event.id, "", target, "s3.amazonaws.com", None, Some(json!({"Ref": "AWS::AccountId"})));
    let condition = target.attrs.get("Condition").cloned();
    let Some(bucket) = out.resources.get_mut(&bucket_id).and_then(Value::as_object_mut) else {
        return Err(event.error("S3 events must reference an S3 bucket in the same template."));
    };
    if let Some(cond) = &condition {
        let props = bucket.entry("Properties").or_insert_with(|| json!({}));
        let tags = props.as_object_mut().map(|p| p.entry("Tags").or_insert_with(|| json!([])));
        match tags {
            Some(Value::Array(tags)) => tags.push(json!({
                "Key": format!("sam:ConditionalDependsOn:{}", perm.id),
                "Value": {"Fn::If": [cond, {"Ref": perm.id}, "no dependency"]}
            })),
            _ => return Err(ResourceError::new(&bucket_id, "Property 'Tags' should be a list.")),
        }
    } else {
        let mut deps: Vec<Value> = match bucket.get("DependsOn") {
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            Some(Value::Array(items)) => items.clone(),
            _ => vec![],
        };
        if !deps.contains(&Value::String(perm.id.clone())) {
            deps.push(Value::String(perm.id.clone()));
        }
        bucket.insert("DependsOn".into(), Value::Array(deps));
    }
    let mut base = Map::new();
    base.insert("Function".into(), target.arn.clone());
    if let Some(filter) = event.get("Filter") {
        base.insert("Filter".into(), filter.clone());
    }
    let types: Vec<Value> = match event.get("Events") {
        Some(Value::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => vec![],
    };
    let props = bucket.entry("Properties").or_insert_with(|| json!({}));
    let Some(props) = props.as_object_mut() else {
        return Err(ResourceError::new(&bucket_id, "Properties should be a map."));
    };
    let config = props.entry("NotificationConfiguration").or_insert_with(|| json!({}));
    let Some(config) = config.as_object_mut() else {
        return Err(ResourceError::new(&bucket_id, "Property 'NotificationConfiguration' should be a map."));
    };
    let lambdas = config.entry("LambdaConfigurations").or_insert_with(|| json!([]));
    let Some(lambdas) = lambdas.as_array_mut() else {
        return Err(ResourceError::new(&bucket_id, "Invalid type for LambdaConfigurations. Must be a list."));
    };
    for ty in types {
        let mut mapping = base.clone();
        mapping.insert("Event".into(), ty);
        let mut mapping = Value::Object(mapping);
        if let Some(cond) = &condition {
            mapping = json!({"Fn::If": [cond, mapping, {"Ref": "AWS::NoValue"}]});
        }
        if !lambdas.contains(&mapping) {
            lambdas.push(mapping);
        }
    }
    Ok(vec![perm])
}

pub(super) fn sns(event: &Event<'_>, target: &Target, role: Option<&mut Cfn>, out: &Out) -> Result<Vec<Cfn>> {
    let topic = event.get("Topic").cloned().unwrap_or(Value::Null);
    let subscription = |protocol: &str, endpoint: Value| {
        let mut s = Cfn::with(event.id.clone(), "AWS::SNS::Subscription", &target.attrs);
        s.set("Protocol", protocol);
        s.set("Endpoint", endpoint);
        s.set("TopicArn", topic.clone());
        for key in ["Region", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy"] {
            s.set_opt(key, event.get(key));
        }
        s
    };
    let sqs = event.get("SqsSubscription");
    let queue_policy = |id: String, queue_arn: &Value, queue_url: &Value| {
        let mut p = Cfn::with(id, "AWS::SQS::QueuePolicy", &target.attrs);
        p.set(
            "PolicyDocument",
            json!({"Version": "2012-10-17", "Statement": [{
                "Action": "sqs:SendMessage", "Effect": "Allow", "Principal": "*",
                "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic}}
            }]}),
        );
        p.set("Queues", json!([queue_url]));
        p
    };
    match sqs {
        None | Some(Value::Bool(false)) => Ok(vec![
            permission(&event.id, "", target, "sns.amazonaws.com", Some(topic.clone()), None),
            subscription("lambda", target.arn.clone()),
        ]),
        Some(Value::Bool(true)) => {
            let mut queue = Cfn::with(format!("{}Queue", event.id), "AWS::SQS::Queue", &target.attrs);
            if fifo_topic(out, &topic) {
                queue.set("FifoQueue", true);
            }
            let arn = queue.arn();
            let url = queue.reference();
            let mut resources = super::pull::sqs_mapping(
                format!("{}EventSourceMapping", event.id),
                &arn,
                json!(10),
                json!(true),
                target,
                role,
            );
            resources.push(queue_policy(format!("{}QueuePolicy", event.id), &arn, &url));
            resources.push(subscription("sqs", arn.clone()));
            resources.insert(resources.len() - 2, queue);
            Ok(resources)
        }
        Some(Value::Object(config)) => {
            let (Some(arn), Some(url)) = (
                config.get("QueueArn").filter(|v| !v.is_null()),
                config.get("QueueUrl").filter(|v| !v.is_null()),
            ) else {
                return Err(event.error("No QueueARN or QueueURL provided."));
            };
            let policy_id = match config.get("QueuePolicyLogicalId") {
                Some(Value::String(id)) => id.clone(),
                _ => format!("{}QueuePolicy", event.id),
            };
            let batch = config.get("BatchSize").filter(|v| !v.is_null()).cloned().unwrap_or(json!(10));
            // The translator sets Enabled: true whatever the subscription says.
            let enabled = json!(true);
            let mut resources = super::pull::sqs_mapping(
                format!("{}EventSourceMapping", event.id),
                arn,
                batch,
                enabled,
                target,
                role,
            );
            resources.push(queue_policy(policy_id, arn, url));
            resources.push(subscription("sqs", arn.clone()));
            Ok(resources)
        }
        Some(_) => Err(event.error("Property 'SqsSubscription' should be a map.")),
    }
}

fn fifo_topic(out: &Out, topic: &Value) -> bool {
    let Some(id) = crate::intrinsics::referenced_id(topic) else { return false };
    let fifo = out
        .original
        .get(&id)
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get("FifoTopic"))
        .cloned()
        .unwrap_or(Value::Bool(false));
    matches!(out.params.resolve(&fifo), Value::Bool(true))
}

fn state(event: &Event<'_>) -> Result<Option<Value>> {
    let state = event.get("State");
    let enabled = event.get("Enabled");
    if state.is_some_and(|s| s.as_str() != Some("")) && enabled.is_some() {
        return Err(event.error("State and Enabled Properties cannot both be specified."));
    }
    if let Some(enabled) = enabled {
        return Ok(Some(json!(if enabled.as_bool().unwrap_or(false) { "ENABLED" } else { "DISABLED" })));
    }
    Ok(state.cloned())
}

/// The rule's dead-letter queue: a given ARN, or a queue (and its policy) made for it.
pub(crate) fn rule_dlq(
    event: &Event<'_>,
    rule: &Cfn,
    attrs: &Map<String, Value>,
) -> Result<(Option<Value>, Vec<Cfn>)> {
    let Some(config) = event.get("DeadLetterConfig") else { return Ok((None, vec![])) };
    validate_dlq(&event.id, config)?;
    if let Some(arn) = config.get("Arn") {
        return Ok((Some(arn.clone()), vec![]));
    }
    let queue_id = match config.get("QueueLogicalId") {
        None => format!("{}Queue", rule.id),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ResourceError::event(&event.id, "QueueLogicalId must be a string")),
    };
    let queue = Cfn::with(queue_id, "AWS::SQS::Queue", attrs);
    let mut policy = Cfn::with(format!("{}QueuePolicy", rule.id), "AWS::SQS::QueuePolicy", attrs);
    policy.set(
        "PolicyDocument",
        json!({"Version": "2012-10-17", "Statement": [{
            "Action": "sqs:SendMessage", "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"}, "Resource": queue.arn(),
            "Condition": {"ArnEquals": {"aws:SourceArn": rule.arn()}}
        }]}),
    );
    policy.set("Queues", json!([queue.reference()]));
    Ok((Some(queue.arn()), vec![queue, policy]))
}

pub(super) fn validate_dlq(id: &str, config: &Value) -> Result<()> {
    let has_arn = config.get("Arn").is_some();
    let has_type = config.get("Type").is_some();
    if has_arn && has_type {
        return Err(ResourceError::event(
            id,
            "You can either define 'Arn' or 'Type' property of DeadLetterConfig.",
        ));
    }
    if has_type && config.get("Type").and_then(Value::as_str) != Some("SQS") {
        return Err(ResourceError::event(
            id,
            "The only valid value for 'Type' property of DeadLetterConfig is 'SQS'.",
        ));
    }
    if !has_arn && !has_type {
        return Err(ResourceError::event(id, "No 'Arn' or 'Type' property provided for DeadLetterConfig."));
    }
    Ok(())
}

pub(super) fn schedule(event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let mut rule = Cfn::with(event.id.clone(), "AWS::Events::Rule", &target.attrs);
    rule.set_opt("ScheduleExpression", event.get("Schedule"));
    if let Some(state) = state(event)? {
        rule.set("State", state);
    }
    rule.set_opt("Name", event.get("Name"));
    rule.set_opt("Description", event.get("Description"));
    let (dlq, mut extra) = rule_dlq(event, &rule, &target.attrs)?;
    let mut t = Map::new();
    t.insert("Arn".into(), target.arn.clone());
    t.insert("Id".into(), json!(target_id(&event.id, "LambdaTarget")));
    finish_target(&mut t, event, dlq, &["Input", "RetryPolicy"]);
    rule.set("Targets", json!([t]));
    let perm = permission(&event.id, "", target, "events.amazonaws.com", Some(rule.arn()), None);
    let mut resources = vec![rule];
    resources.append(&mut extra);
    resources.push(perm);
    Ok(resources)
}

fn finish_target(t: &mut Map<String, Value>, event: &Event<'_>, dlq: Option<Value>, keys: &[&str]) {
    for key in keys {
        if let Some(v) = event.get(key) {
            t.insert(key.to_string(), v.clone());
        }
    }
    if let Some(arn) = dlq {
        t.insert("DeadLetterConfig".into(), json!({"Arn": arn}));
    }
}

pub(super) fn rule(event: &Event<'_>, target: &Target) -> Result<Vec<Cfn>> {
    let mut rule = Cfn::with(event.id.clone(), "AWS::Events::Rule", &target.attrs);
    rule.set_opt("EventBusName", event.get("EventBusName"));
    rule.set_opt("EventPattern", event.get("Pattern"));
    rule.set_opt("Name", event.get("RuleName"));
    let (dlq, extra) = rule_dlq(event, &rule, &target.attrs)?;
    if let Some(state) = state(event)? {
        rule.set("State", state);
    }
    let id = match event.get("Target").and_then(|t| t.get("Id")) {
        Some(id) => id.clone(),
        None => json!(target_id(&event.id, "LambdaTarget")),
    };
    let mut t = Map::new();
    t.insert("Arn".into(), target.arn.clone());
    t.insert("Id".into(), id);
    for key in ["Input", "InputPath"] {
        if let Some(v) = event.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    if let Some(arn) = dlq {
        t.insert("DeadLetterConfig".into(), json!({"Arn": arn}));
    }
    for key in ["RetryPolicy", "InputTransformer"] {
        if let Some(v) = event.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    rule.set("Targets", json!([t]));
    let perm = permission(&event.id, "", target, "events.amazonaws.com", Some(rule.arn()), None);
    let mut resources = extra;
    resources.push(rule);
    resources.push(perm);
    Ok(resources)
}
