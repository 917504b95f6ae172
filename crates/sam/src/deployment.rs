//! `DeploymentPreference`: the CodeDeploy resources SAM emits for gradual traffic shifting on a
//! function's alias — one `ServerlessDeploymentApplication`, a `CodeDeployServiceRole` (unless
//! every preference names a role), a `<Fn>DeploymentGroup` per function, and the
//! `CodeDeployLambdaAliasUpdate` update policy on the alias. (How the stacks engine carries the
//! shift out is the engine's business; the template is SAM's.)

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::{is_if, is_intrinsic, is_no_value};
use crate::model::{tag_list, Cfn, Out};

const APPLICATION_ID: &str = "ServerlessDeploymentApplication";
const SERVICE_ROLE_ID: &str = "CodeDeployServiceRole";
const CONDITION_NAME: &str = "ServerlessCodeDeployCondition";
const PREDEFINED: &[&str] = &[
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
];

#[derive(Clone, Debug)]
struct Preference {
    function_id: String,
    enabled: bool,
    deployment_type: Value,
    pre: Option<Value>,
    post: Option<Value>,
    alarms: Option<Value>,
    role: Option<Value>,
    triggers: Option<Value>,
    condition: Option<Value>,
    tags: Option<Value>,
}

#[derive(Default)]
pub(crate) struct Preferences {
    list: Vec<Preference>,
}

fn parse(out: &Out, id: &str, resource: &Value, props: &Map<String, Value>) -> Result<Preference> {
    let raw = props.get("DeploymentPreference").cloned().unwrap_or(Value::Null);
    let Some(dict) = raw.as_object() else {
        return Err(ResourceError::new(id, "Property 'DeploymentPreference' should be a map."));
    };
    let mut enabled = dict.get("Enabled").map(|e| out.params.resolve(e)).unwrap_or(json!(true));
    if enabled == json!("false") || enabled == json!("False") {
        enabled = json!(false);
    }
    let is_enabled = crate::function::truthy(&enabled);
    let propagate = props.get("PropagateTags").and_then(Value::as_bool) == Some(true);
    let mut pref = Preference {
        function_id: id.to_string(),
        enabled: is_enabled,
        deployment_type: Value::Null,
        pre: None,
        post: None,
        alarms: None,
        role: None,
        triggers: None,
        condition: None,
        tags: None,
    };
    if !is_enabled {
        return Ok(pref);
    }
    let Some(ty) = dict.get("Type") else {
        return Err(ResourceError::new(id, "'DeploymentPreference' is missing required Property 'Type'"));
    };
    pref.deployment_type = out.params.resolve(ty);
    let hooks = dict.get("Hooks").cloned().unwrap_or(json!({}));
    let Some(hooks) = hooks.as_object() else {
        return Err(ResourceError::new(
            id,
            "'Hooks' property of 'DeploymentPreference' must be a dictionary",
        ));
    };
    pref.pre = hooks.get("PreTraffic").filter(|v| !v.is_null()).cloned();
    pref.post = hooks.get("PostTraffic").filter(|v| !v.is_null()).cloned();
    pref.alarms = dict.get("Alarms").filter(|v| !v.is_null()).cloned();
    pref.role = dict.get("Role").filter(|v| !v.is_null()).cloned();
    pref.triggers = dict.get("TriggerConfigurations").filter(|v| !v.is_null()).cloned();
    let passthrough = dict.get("PassthroughCondition").map(|v| out.params.resolve(v));
    let passthrough = match passthrough {
        None => false,
        Some(v) if v == json!(true) || v == json!("true") || v == json!("True") => true,
        Some(v) if v == json!(false) || v == json!("false") || v == json!("False") => false,
        Some(v) if is_intrinsic(&v) => {
            return Err(ResourceError::new(
                id,
                "Unsupported intrinsic: the only intrinsic functions supported for property PassthroughCondition are FindInMap and parameter Refs.",
            ))
        }
        Some(_) => return Err(ResourceError::new(id, "Invalid value for property PassthroughCondition.")),
    };
    if passthrough {
        pref.condition = resource.get("Condition").cloned();
    }
    if propagate {
        pref.tags = props.get("Tags").filter(|t| crate::function::truthy(t)).cloned();
    }
    Ok(pref)
}

/// A function with an alias: records its preference and puts the update policy on the alias.
pub(crate) fn add(
    out: &mut Out,
    id: &str,
    resource: &Value,
    props: &Map<String, Value>,
    alias: &mut Cfn,
) -> Result<()> {
    let pref = parse(out, id, resource, props)?;
    if pref.enabled {
        let mut update = Map::new();
        update.insert("ApplicationName".into(), json!({"Ref": APPLICATION_ID}));
        update.insert("DeploymentGroupName".into(), json!({"Ref": format!("{id}DeploymentGroup")}));
        if let Some(pre) = &pref.pre {
            update.insert("BeforeAllowTrafficHook".into(), pre.clone());
        }
        if let Some(post) = &pref.post {
            update.insert("AfterAllowTrafficHook".into(), post.clone());
        }
        alias.attrs.insert("UpdatePolicy".into(), json!({"CodeDeployLambdaAliasUpdate": update}));
    }
    out.deployments.list.push(pref);
    Ok(())
}

/// A preference on a function without `AutoPublishAlias`: refused when enabled, as SAM does.
pub(crate) fn add_without_alias(
    out: &mut Out,
    id: &str,
    resource: &Value,
    props: &Map<String, Value>,
) -> Result<()> {
    let pref = parse(out, id, resource, props)?;
    if pref.enabled {
        return Err(ResourceError::new(
            id,
            "'DeploymentPreference' requires AutoPublishAlias property to be specified.",
        ));
    }
    out.deployments.list.push(pref);
    Ok(())
}

/// After every resource: the shared CodeDeploy application and role, and a group per function.
pub(crate) fn finish(out: &mut Out) -> Result<()> {
    let prefs = out.deployments.list.clone();
    if !prefs.iter().any(|p| p.enabled) {
        return Ok(());
    }
    let mut conditions: Vec<String> = prefs
        .iter()
        .filter_map(|p| p.condition.as_ref().and_then(Value::as_str).map(str::to_string))
        .collect();
    conditions.sort();
    conditions.dedup();
    let needs_condition = !prefs.iter().any(|p| p.condition.is_none() && p.enabled);
    let shared_condition = needs_condition.then(|| {
        if conditions.len() <= 1 {
            json!(conditions.first().cloned().unwrap_or_default())
        } else {
            json!(CONDITION_NAME)
        }
    });
    if needs_condition && conditions.len() > 1 {
        for (name, cond) in combined_condition(&conditions, CONDITION_NAME) {
            out.conditions.insert(name, cond);
        }
    }
    let mut merged_tags = Map::new();
    for p in prefs.iter().filter(|p| p.enabled) {
        if let Some(Value::Object(t)) = &p.tags {
            merged_tags.extend(t.clone());
        }
    }
    let mut generated = vec![];
    let mut app = Cfn::new(APPLICATION_ID, "AWS::CodeDeploy::Application");
    app.set("ComputePlatform", "Lambda");
    if !merged_tags.is_empty() {
        app.set("Tags", Value::Array(tag_list(Some(&Value::Object(merged_tags.clone())), false)));
    }
    if let Some(c) = &shared_condition {
        app.attrs.insert("Condition".into(), c.clone());
    }
    generated.push(app);
    if !prefs.iter().all(|p| p.role.is_some() || !p.enabled) {
        let mut role = Cfn::new(SERVICE_ROLE_ID, "AWS::IAM::Role");
        role.set("AssumeRolePolicyDocument", crate::model::assume_role("codedeploy.amazonaws.com"));
        let policy = if matches!(out.ctx.partition.as_str(), "aws-iso" | "aws-iso-b") {
            "service-role/AWSCodeDeployRoleForLambdaLimited"
        } else {
            "service-role/AWSCodeDeployRoleForLambda"
        };
        role.set("ManagedPolicyArns", json!([crate::policies::aws_policy(&out.ctx.partition, policy)]));
        if let Some(c) = &shared_condition {
            role.attrs.insert("Condition".into(), c.clone());
        }
        if !merged_tags.is_empty() {
            role.set("Tags", Value::Array(tag_list(Some(&Value::Object(merged_tags)), false)));
        }
        generated.push(role);
    }
    for p in prefs.iter().filter(|p| p.enabled) {
        generated.push(group(p)?);
    }
    for r in generated {
        out.resources.insert(r.id.clone(), r.to_value());
    }
    Ok(())
}

fn group(p: &Preference) -> Result<Cfn> {
    let mut g = Cfn::new(format!("{}DeploymentGroup", p.function_id), "AWS::CodeDeploy::DeploymentGroup");
    if let Some(alarms) =
        alarm_configuration(p.alarms.as_ref()).map_err(|m| ResourceError::new(&p.function_id, m))?
    {
        g.set("AlarmConfiguration", alarms);
    }
    g.set("ApplicationName", json!({"Ref": APPLICATION_ID}));
    g.set(
        "AutoRollbackConfiguration",
        json!({"Enabled": true, "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]}),
    );
    g.set("DeploymentConfigName", replace_types(&p.deployment_type, None));
    g.set(
        "DeploymentStyle",
        json!({"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}),
    );
    g.set(
        "ServiceRoleArn",
        p.role.clone().unwrap_or_else(|| json!({"Fn::GetAtt": [SERVICE_ROLE_ID, "Arn"]})),
    );
    if let Some(t) = &p.triggers {
        g.set("TriggerConfigurations", t.clone());
    }
    if let Some(tags) = &p.tags {
        g.set("Tags", Value::Array(tag_list(Some(tags), false)));
    }
    if let Some(c) = &p.condition {
        g.attrs.insert("Condition".into(), c.clone());
    }
    Ok(g)
}

fn alarm_configuration(alarms: Option<&Value>) -> std::result::Result<Option<Value>, String> {
    let Some(alarms) = alarms.filter(|a| crate::function::truthy(a) && !is_no_value(a)) else {
        return Ok(None);
    };
    let build = |list: &Value| -> std::result::Result<Value, String> {
        let Some(items) = list.as_array() else { return Err("Alarms must be a list".into()) };
        if items.is_empty() || is_no_value(&items[0]) {
            return Ok(json!({}));
        }
        let names: Vec<Value> = items.iter().map(|a| json!({"Name": a})).collect();
        Ok(json!({"Enabled": true, "Alarms": names}))
    };
    if is_if(alarms) {
        let mut items = alarms["Fn::If"].as_array().cloned().unwrap_or_default();
        if items.len() != 3 {
            return Err("Fn::If requires 3 arguments".into());
        }
        items[1] = build(&items[1])?;
        items[2] = build(&items[2])?;
        return Ok(Some(json!({"Fn::If": items})));
    }
    build(alarms).map(Some)
}

/// Predefined configuration names become `CodeDeployDefault.Lambda<Name>` (through Fn::Sub).
fn replace_types(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| replace_types(v, None)).collect()),
        v if is_intrinsic(v) => {
            let map = v.as_object().cloned().unwrap_or_default();
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let new = replace_types(&v, Some(&k));
                        (k, new)
                    })
                    .collect(),
            )
        }
        Value::String(s) if PREDEFINED.contains(&s.as_str()) => {
            let args = json!(["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": s}]);
            if key == Some("Fn::Sub") {
                args
            } else {
                json!({"Fn::Sub": args})
            }
        }
        other => other.clone(),
    }
}

/// `Fn::Or` of conditions, ten at a time (Fn::Or's limit), as the translator combines them.
pub(crate) fn combined_condition(conditions: &[String], name: &str) -> Vec<(String, Value)> {
    let mut list: Vec<String> = conditions.to_vec();
    if list.len() < 2 {
        return vec![];
    }
    let max = 10;
    let mut count = calculate_conditions(list.len(), max) as i64 - 1;
    let mut out = vec![];
    while list.len() > 1 {
        let mut new_name = name.to_string();
        if count > 0 {
            new_name = format!("{name}{count}");
            count -= 1;
        }
        let chunk: Vec<Value> = list.iter().take(max).map(|c| json!({"Condition": c})).collect();
        list = list.split_off(list.len().min(max));
        list.push(new_name.clone());
        out.push((new_name, json!({"Fn::Or": chunk})));
    }
    out
}

fn calculate_conditions(num_conditions: usize, max: usize) -> usize {
    1 + (num_conditions.saturating_sub(2)) / (max - 1)
}
