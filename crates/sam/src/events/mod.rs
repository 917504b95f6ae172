//! A function's `Events`: each becomes the resources that make the source call the function
//! (or its alias), and adds what the source needs to the function's execution role.

mod more;
mod pull;
mod push;
mod schedule;

pub(crate) use push::{rule_dlq, target_id};
pub(crate) use schedule::schedule_v2;

use serde_json::{json, Map, Value};

pub(crate) use crate::error::{ResourceError, Result};
use crate::model::{Cfn, Out};

/// What an event invokes: the function, or its alias when `AutoPublishAlias` is set.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `Ref` of the function (its name) or of the alias (its ARN).
    pub name: Value,
    /// `GetAtt Fn.Arn`, or `Ref` of the alias.
    pub arn: Value,
    /// The attributes generated resources inherit (`Condition` …).
    pub attrs: Map<String, Value>,
    /// The id events are named after (the function's).
    pub function_id: String,
    /// True for a state machine (ScheduleV2 and rules then start executions).
    pub state_machine: bool,
}

/// One event of a function: `<FunctionId><EventId>` and its properties.
pub(crate) struct Event<'a> {
    pub id: String,
    pub relative_id: &'a str,
    pub ty: &'a str,
    pub props: Map<String, Value>,
}

impl Event<'_> {
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.props.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn error(&self, message: impl std::fmt::Display) -> ResourceError {
        ResourceError::event(self.relative_id, message)
    }
}

const TYPES: &[&str] = &[
    "S3",
    "SNS",
    "SQS",
    "Kinesis",
    "DynamoDB",
    "Schedule",
    "ScheduleV2",
    "CloudWatchEvent",
    "EventBridgeRule",
    "Api",
    "HttpApi",
    "CloudWatchLogs",
    "IoTRule",
    "AlexaSkill",
    "Cognito",
];

/// SAM event types nimbus's transform does not generate yet: refused by name.
const NOT_YET: &[&str] = &["MSK", "MQ", "SelfManagedKafka", "DocumentDB"];

fn required(ty: &str) -> &'static [&'static str] {
    match ty {
        "S3" => &["Bucket", "Events"],
        "SNS" => &["Topic"],
        "SQS" => &["Queue"],
        "Kinesis" | "DynamoDB" => &["Stream"],
        "Schedule" => &["Schedule"],
        "ScheduleV2" => &["ScheduleExpression"],
        "Api" => &["Path", "Method"],
        "CloudWatchLogs" => &["LogGroupName", "FilterPattern"],
        "IoTRule" => &["Sql"],
        "Cognito" => &["UserPool", "Trigger"],
        _ => &[],
    }
}

/// Parses and checks the events of `owner_id` (the translator checks them before it generates
/// anything for the resource).
pub(crate) fn parse<'a>(
    owner_id: &str,
    events: &'a Map<String, Value>,
    source: &crate::SourceOrder,
) -> Result<Vec<Event<'a>>> {
    let mut out = Vec::new();
    let order = source.keys(&["Resources", owner_id, "Properties", "Events"], events);
    for key in order {
        let (relative_id, event) = events.get_key_value(&key).expect("key of the map");
        let wrap = |m: String| ResourceError::new(owner_id, ResourceError::event(relative_id, m).message());
        let Some(ty) = event.get("Type").and_then(Value::as_str) else {
            return Err(wrap(format!(
                "Resource dict has missing or invalid value for key Type. Event Type is: {}.",
                python_repr(event.get("Type"))
            )));
        };
        if NOT_YET.contains(&ty) {
            return Err(wrap(format!("nimbus's SAM transform does not support {ty} events yet.")));
        }
        if !TYPES.contains(&ty) {
            return Err(wrap(format!("Invalid resource type {ty}")));
        }
        let id = format!("{owner_id}{relative_id}");
        let props = match event.get("Properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(ResourceError::new(&id, "Properties of a resource must be an object.")),
        };
        for key in required(ty) {
            if props.get(*key).is_none_or(Value::is_null) {
                return Err(ResourceError::new(&id, format!("Missing required property '{key}'.")));
            }
        }
        out.push(Event { id, relative_id, ty, props });
    }
    Ok(out)
}

fn python_repr(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Generates the resources of every event, in the translator's order (by `Path`, else id).
pub(crate) fn translate(
    out: &mut Out,
    owner_id: &str,
    mut events: Vec<Event<'_>>,
    target: &Target,
    mut role: Option<&mut Cfn>,
) -> Result<Vec<Cfn>> {
    events.sort_by_key(sort_key);
    let mut resources = Vec::new();
    for event in &events {
        let generated = match event.ty {
            "S3" => push::s3(out, event, target),
            "SNS" => push::sns(event, target, role.as_deref_mut(), out),
            "Schedule" => push::schedule(event, target),
            "CloudWatchEvent" | "EventBridgeRule" => push::rule(event, target),
            "ScheduleV2" => schedule::schedule_v2(event, target),
            "SQS" | "Kinesis" | "DynamoDB" => pull::mapping(event, target, role.as_deref_mut()),
            "Api" => crate::api_event::event(out, event, target),
            "HttpApi" => crate::http_api::event(out, event, target),
            "CloudWatchLogs" => more::cloudwatch_logs(out, event, target),
            "IoTRule" => more::iot_rule(out, event, target),
            "AlexaSkill" => more::alexa(event, target),
            "Cognito" => {
                let invoker = target.name.get("Ref").and_then(Value::as_str).unwrap_or(owner_id).to_string();
                more::cognito(out, event, target, &invoker)
            }
            _ => unreachable!("checked in parse"),
        };
        let generated = generated.map_err(|e| ResourceError::new(owner_id, e.message()))?;
        resources.extend(generated);
    }
    Ok(resources)
}

fn sort_key(event: &Event<'_>) -> String {
    match event.props.get("Path") {
        Some(Value::String(p)) => p.clone(),
        _ => event.relative_id.to_string(),
    }
}

/// `<Id>Permission<suffix>`: lets a service principal invoke the target.
pub(crate) fn permission(
    prefix: &str,
    suffix: &str,
    target: &Target,
    principal: &str,
    source_arn: Option<Value>,
    source_account: Option<Value>,
) -> Cfn {
    let id = if suffix.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("{prefix}Permission{suffix}")
    } else {
        crate::hash::logical_id(&format!("{prefix}Permission"), &Value::String(suffix.into()))
    };
    let mut p = Cfn::with(id, "AWS::Lambda::Permission", &target.attrs);
    p.set("Action", "lambda:InvokeFunction");
    p.set("FunctionName", target.name.clone());
    p.set("Principal", principal);
    if let Some(arn) = source_arn {
        p.set("SourceArn", arn);
    }
    if let Some(account) = source_account {
        p.set("SourceAccount", account);
    }
    p
}

/// Adds an inline policy to the role unless one with the same document is there.
pub(crate) fn add_role_policy(role: &mut Cfn, policy: Value) {
    let policies = role.props.entry("Policies").or_insert_with(|| json!([]));
    if let Some(list) = policies.as_array_mut() {
        let doc = policy.get("PolicyDocument");
        if !list.contains(&policy) && !list.iter().any(|p| p.get("PolicyDocument") == doc) {
            list.push(policy);
        }
    }
}

/// Adds a managed policy ARN to the role unless it is there.
pub(crate) fn add_managed_policy(role: &mut Cfn, arn: Value) {
    let list = role.props.entry("ManagedPolicyArns").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.contains(&arn) {
            list.push(arn);
        }
    }
}

/// `<Id>LambdaPolicy`-style inline policy names for destinations.
pub(crate) fn statement_policy(name: String, action: &str, resource: Value) -> Value {
    json!({
        "PolicyName": name,
        "PolicyDocument": {"Statement": [{"Action": action, "Effect": "Allow", "Resource": resource}]}
    })
}

pub(crate) fn s3_payload_policy(name: String, arn: Value) -> Value {
    json!({
        "PolicyName": name,
        "PolicyDocument": {"Statement": [
            {"Action": "s3:PutObject", "Effect": "Allow", "Resource": {"Fn::Join": ["/", [arn, "*"]]}},
            {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": arn}
        ]}
    })
}
