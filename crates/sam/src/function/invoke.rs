//! `EventInvokeConfig` (with the queue or topic SAM makes when a destination names none) and
//! `FunctionUrlConfig` (the URL and, for `AuthType: NONE`, its public permissions).

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{s3_payload_policy, statement_policy};
use crate::hash;
use crate::intrinsics::{is_if, is_intrinsic, is_no_value};
use crate::model::{passthrough_attrs, resource_attrs, Cfn, Out};

pub(super) fn event_invoke_config(
    out: &mut Out,
    id: &str,
    config: &Value,
    alias_name: &str,
    alias: Option<&Cfn>,
    resource: &Value,
) -> Result<(Vec<Cfn>, Vec<Value>)> {
    let resolved = out.params.resolve(config);
    let config_id = format!("{id}EventInvokeConfig");
    let mut eic = Cfn::with(config_id.clone(), "AWS::Lambda::EventInvokeConfig", &resource_attrs(resource));
    if let Some(a) = alias {
        eic.attrs.insert("DependsOn".into(), json!([a.id]));
    }
    let mut resources = vec![];
    let mut policies = vec![];
    let mut destinations = Map::new();
    if let Some(dest_config) = resolved.get("DestinationConfig").filter(|v| !v.is_null()) {
        if !dest_config.is_object() {
            return Err(ResourceError::new(
                id,
                "Property 'EventInvokeConfig.DestinationConfig' should be a map.",
            ));
        }
        for name in ["OnSuccess", "OnFailure"] {
            let Some(value) = dest_config.get(name).filter(|v| !v.is_null()) else { continue };
            if !value.is_object() {
                return Err(ResourceError::new(
                    id,
                    format!("Property 'EventInvokeConfig.DestinationConfig.{name}' should be a map."),
                ));
            }
            let (generated, destination, policy) = destination(out, id, value, name, &config_id, resource)?;
            destinations.insert(name.into(), json!({"Destination": destination}));
            resources.extend(generated);
            if let Some(p) = policy {
                policies.push(p);
            }
        }
    }
    eic.set("FunctionName", json!({"Ref": id}));
    eic.set("Qualifier", if alias_name.is_empty() { "$LATEST" } else { alias_name });
    eic.set("DestinationConfig", Value::Object(destinations));
    eic.set_opt("MaximumEventAgeInSeconds", resolved.get("MaximumEventAgeInSeconds"));
    eic.set_opt("MaximumRetryAttempts", resolved.get("MaximumRetryAttempts"));
    resources.push(eic);
    Ok((resources, policies))
}

fn destination(
    out: &mut Out,
    id: &str,
    config: &Value,
    event: &str,
    config_id: &str,
    resource: &Value,
) -> Result<(Vec<Cfn>, Value, Option<Value>)> {
    const ACCEPTED: &str = "['SQS', 'SNS', 'EventBridge', 'Lambda', 'S3Bucket']";
    let ty = config.get("Type").and_then(Value::as_str).unwrap_or("");
    if !["SQS", "SNS", "EventBridge", "Lambda", "S3Bucket"].contains(&ty) {
        let shown = match config.get("Type") {
            None | Some(Value::Null) => "None".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        return Err(ResourceError::new(id, format!("'Type: {shown}' must be one of {ACCEPTED}")));
    }
    let resource_id = format!("{config_id}{event}");
    let given = config.get("Destination").filter(|v| !v.is_null()).cloned();
    let attrs = passthrough_attrs(resource);
    let (condition, dest_arn) = match &given {
        Some(d) if is_if(d) => if_condition(out, d, config_id)?,
        _ => (None, None),
    };
    let mut generated = vec![];
    let mut destination = given.clone().unwrap_or(Value::Null);
    let mut policy = None;
    if given.is_none() || condition.is_some() {
        let combined = and_conditions(out, id, attrs.get("Condition"), condition.as_ref());
        let made = match ty {
            "SQS" => Some(Cfn::with(format!("{resource_id}Queue"), "AWS::SQS::Queue", &attrs)),
            "SNS" => Some(Cfn::with(format!("{resource_id}Topic"), "AWS::SNS::Topic", &attrs)),
            _ => return Err(ResourceError::new(id, "Destination is required if Type is not ['SQS', 'SNS']")),
        };
        if let Some(mut made) = made {
            if let Some(c) = combined {
                made.attrs.insert("Condition".into(), c);
            }
            let arn = if ty == "SQS" { made.arn() } else { made.reference() };
            destination = match &condition {
                Some(c) => json!({"Fn::If": [c, arn, dest_arn.clone().unwrap_or(Value::Null)]}),
                None => arn,
            };
            generated.push(made);
        }
        policy = invoke_policy(ty, &resource_id, destination.clone());
    }
    if given.is_some() && condition.is_none() {
        policy = invoke_policy(ty, &resource_id, given.clone().unwrap_or(Value::Null));
    }
    Ok((generated, destination, policy))
}

fn invoke_policy(ty: &str, id: &str, arn: Value) -> Option<Value> {
    Some(match ty {
        "SQS" => statement_policy(format!("{id}SQSPolicy"), "sqs:SendMessage", arn),
        "SNS" => statement_policy(format!("{id}SNSPolicy"), "sns:publish", arn),
        "EventBridge" => statement_policy(format!("{id}EventBridgePolicy"), "events:PutEvents", arn),
        "Lambda" => statement_policy(format!("{id}LambdaPolicy"), "lambda:InvokeFunction", arn),
        "S3Bucket" => s3_payload_policy(format!("{id}S3Policy"), arn),
        _ => return None,
    })
}

/// A destination `!If [Cond, !Ref AWS::NoValue, arn]` makes the queue/topic only under the
/// condition (or its negation).
fn if_condition(out: &mut Out, dest: &Value, logical_id: &str) -> Result<(Option<Value>, Option<Value>)> {
    let items = dest["Fn::If"].as_array().cloned().unwrap_or_default();
    if items.len() != 3 {
        return Err(ResourceError::new(
            logical_id,
            "Malformed 'Destination' property: Fn::If requires 3 arguments.",
        ));
    }
    if is_no_value(&items[1]) && is_no_value(&items[2]) {
        return Ok((None, None));
    }
    if is_no_value(&items[1]) {
        return Ok((Some(items[0].clone()), Some(items[2].clone())));
    }
    if is_no_value(&items[2]) {
        let cond = items[0].as_str().unwrap_or_default();
        let name = condition_name(&format!("NOT{cond}"), logical_id);
        out.conditions.insert(name.clone(), json!({"Fn::Not": [{"Condition": cond}]}));
        return Ok((Some(json!(name)), Some(items[1].clone())));
    }
    Ok((None, None))
}

fn and_conditions(
    out: &mut Out,
    id: &str,
    resource: Option<&Value>,
    property: Option<&Value>,
) -> Option<Value> {
    match (resource, property) {
        (None, p) => p.cloned(),
        (r, None) => r.cloned(),
        (Some(r), Some(p)) => {
            let (r, p) = (r.as_str().unwrap_or_default(), p.as_str().unwrap_or_default());
            let name = condition_name(&format!("{r}AND{p}"), id);
            // The translator wraps each condition twice ({"Condition": {"Condition": name}}), a
            // template CloudFormation itself refuses; kept, as the translator's output.
            let wrap = |c: &str| json!({"Condition": {"Condition": c}});
            out.conditions.insert(name.clone(), json!({"Fn::And": [wrap(r), wrap(p)]}));
            Some(json!(name))
        }
    }
}

fn condition_name(name: &str, hash_input: &str) -> String {
    let full = format!("{name}{}", hash::data_hash(&json!(hash_input), 10));
    full.chars().take(255).collect()
}

pub(super) fn function_url(
    id: &str,
    config: &Value,
    alias: Option<&Cfn>,
    attrs: &Map<String, Value>,
) -> Result<Vec<Cfn>> {
    if !is_intrinsic(config) {
        let auth = config.get("AuthType");
        let ok = match auth {
            Some(a) if is_intrinsic(a) => true,
            Some(Value::String(s)) => s == "AWS_IAM" || s == "NONE",
            _ => false,
        };
        if !ok {
            return Err(ResourceError::new(
                id,
                "AuthType is required to configure function property `FunctionUrlConfig`. Please provide either AWS_IAM or NONE.",
            ));
        }
        if let Some(cors) = config.get("Cors").filter(|c| !c.is_null() && !is_intrinsic(c)) {
            let Some(cors) = cors.as_object() else {
                return Err(ResourceError::new(id, "Property 'FunctionUrlConfig.Cors' should be a map."));
            };
            for (name, value) in cors {
                let expected = match name.as_str() {
                    "AllowOrigins" | "AllowMethods" | "AllowHeaders" | "ExposeHeaders" => "list",
                    "AllowCredentials" => "bool",
                    "MaxAge" => "int",
                    _ => {
                        return Err(ResourceError::new(
                            id,
                            format!("{name} is not a valid property for configuring Cors."),
                        ))
                    }
                };
                let fits = is_intrinsic(value)
                    || match expected {
                        "list" => value.is_array(),
                        "bool" => value.is_boolean(),
                        _ => value.is_i64() || value.is_u64() || value.is_boolean(),
                    };
                if !fits {
                    return Err(ResourceError::new(id, format!("{name} must be of type {expected}.")));
                }
            }
        }
    }
    let target = match alias {
        Some(a) => a.reference(),
        None => json!({"Ref": id}),
    };
    let mut url = Cfn::with(format!("{id}Url"), "AWS::Lambda::Url", attrs);
    if let Some(cors) = config.get("Cors").filter(|c| crate::function::code::truthy(c)) {
        url.set("Cors", cors.clone());
    }
    url.set_opt("AuthType", config.get("AuthType"));
    url.set("TargetFunctionArn", target.clone());
    url.set_opt("InvokeMode", config.get("InvokeMode"));
    let mut resources = vec![url];
    if config.get("AuthType").and_then(Value::as_str) == Some("NONE") && !is_intrinsic(config) {
        let mut public = Cfn::with(format!("{id}UrlPublicPermissions"), "AWS::Lambda::Permission", attrs);
        public.set("Action", "lambda:InvokeFunctionUrl");
        public.set("FunctionName", target.clone());
        public.set("Principal", "*");
        public.set("FunctionUrlAuthType", "NONE");
        let mut invoke =
            Cfn::with(format!("{id}URLInvokeAllowPublicAccess"), "AWS::Lambda::Permission", attrs);
        invoke.set("Action", "lambda:InvokeFunction");
        invoke.set("Principal", "*");
        invoke.set("FunctionName", target);
        invoke.set("InvokedViaFunctionUrl", true);
        resources.push(public);
        resources.push(invoke);
    }
    Ok(resources)
}
