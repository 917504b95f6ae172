//! `AWS::Serverless::StateMachine` → `AWS::StepFunctions::StateMachine` (an inline `Definition`
//! becomes a pretty-printed `DefinitionString`, its intrinsics moved into
//! `DefinitionSubstitutions`), its role, an optional version and alias, and its events
//! (Schedule, ScheduleV2, CloudWatchEvent/EventBridgeRule rules that start executions).

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::events::{self, Target};
use crate::function::s3_location;
use crate::intrinsics::is_intrinsic;
use crate::model::{
    assume_role, check_known, passthrough_attrs, properties, resource_attrs, tag_list, Cfn, Out,
};
use crate::policies::{self, RoleSpec};

const KNOWN: &[&str] = &[
    "Definition",
    "DefinitionUri",
    "Logging",
    "Role",
    "RolePath",
    "DefinitionSubstitutions",
    "Events",
    "Name",
    "Type",
    "Tags",
    "PropagateTags",
    "Policies",
    "Tracing",
    "PermissionsBoundary",
    "AutoPublishAlias",
    "DeploymentPreference",
    "UseAliasAsEventTarget",
];

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::StateMachine", &props, KNOWN)?;
    let policies = policies::expand_templates(id, policies::policy_list(props.get("Policies")))?;
    let events_map = match props.get("Events") {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ResourceError::new(id, "Property 'Events' should be a map.")),
        None => Map::new(),
    };
    let parsed = events::parse(id, &events_map, &out.ctx.source_order)?;
    let truthy = |k: &str| props.get(k).filter(|v| crate::function::truthy(v));
    let attrs = passthrough_attrs(resource);
    let mut machine = Cfn::with(id, "AWS::StepFunctions::StateMachine", &resource_attrs(resource));
    if let Some(d) = resource.get("DependsOn") {
        machine.attrs.insert("DependsOn".into(), d.clone());
    }
    let mut substitutions = truthy("DefinitionSubstitutions").and_then(Value::as_object).cloned();
    let definition = truthy("Definition").cloned();
    let uri = truthy("DefinitionUri").cloned();
    if definition.is_some() && uri.is_some() {
        return Err(ResourceError::new(
            id,
            "Specify either 'Definition' or 'DefinitionUri' property and not both.",
        ));
    }
    if let Some(mut def) = definition {
        let mut counter = 1;
        let mut found = Map::new();
        move_intrinsics(&mut def, &mut counter, &mut found);
        if !found.is_empty() {
            substitutions.get_or_insert_with(Map::new).extend(found);
        }
        let lines: Vec<Value> = crate::hash::python_json_pretty(&def).split('\n').map(|l| json!(l)).collect();
        machine.set("DefinitionString", json!({"Fn::Join": ["\n", lines]}));
    } else if let Some(uri) = uri {
        machine.set(
            "DefinitionS3Location",
            Value::Object(s3_location(id, &uri, "DefinitionUri", ("Bucket", "Key", "Version"))?),
        );
    } else {
        return Err(ResourceError::new(
            id,
            "Either 'Definition' or 'DefinitionUri' property must be specified.",
        ));
    }
    if let Some(s) = substitutions {
        machine.set("DefinitionSubstitutions", Value::Object(s));
    }
    let tags = tag_list_sfn(props.get("Tags"));
    let mut resources = vec![];
    match truthy("Role") {
        Some(role) if !policies.is_empty() => {
            let _ = role;
            return Err(ResourceError::new(
                id,
                "Specify either 'Role' or 'Policies' (but not both at the same time) or neither of them",
            ));
        }
        Some(role) => {
            machine.set("RoleArn", role.clone());
        }
        None => {
            let mut policies = policies;
            if props.get("Tracing").and_then(|t| t.get("Enabled")) == Some(&json!(true)) {
                policies.push(json!("AWSXrayWriteOnlyAccess"));
            }
            let role = policies::role(RoleSpec {
                sam_id: id,
                attrs: attrs.clone(),
                assume: assume_role("states.amazonaws.com"),
                policies,
                managed: vec![],
                documents: vec![],
                path: props.get("RolePath"),
                boundary: props.get("PermissionsBoundary"),
                tags: Some(tags.clone()),
                partition: &out.ctx.partition,
            })?;
            machine.set("RoleArn", role.arn());
            resources.push(role);
        }
    }
    for (key, prop) in [
        ("Name", "StateMachineName"),
        ("Type", "StateMachineType"),
        ("Logging", "LoggingConfiguration"),
        ("Tracing", "TracingConfiguration"),
    ] {
        machine.set_opt(prop, props.get(key));
    }
    machine.set("Tags", Value::Array(tags));

    let alias_name = props.get("AutoPublishAlias").cloned();
    let use_alias = props.get("UseAliasAsEventTarget").and_then(Value::as_bool) == Some(true);
    let mut alias_ref = None;
    if alias_name.is_none() && use_alias {
        return Err(ResourceError::new(
            id,
            "'UseAliasAsEventTarget' requires 'AutoPublishAlias' property to be specified.",
        ));
    }
    if alias_name.is_none() && props.get("DeploymentPreference").is_some() {
        return Err(ResourceError::new(
            id,
            "'DeploymentPreference' requires 'AutoPublishAlias' property to be specified.",
        ));
    }
    if let Some(name) = alias_name {
        let mut version_attrs = attrs.clone();
        version_attrs.entry("DeletionPolicy").or_insert_with(|| json!("Retain"));
        version_attrs.entry("UpdateReplacePolicy").or_insert_with(|| json!("Retain"));
        let mut version =
            Cfn::with(format!("{id}Version"), "AWS::StepFunctions::StateMachineVersion", &version_attrs);
        version.set("StateMachineArn", json!({"Ref": id}));
        version.set("StateMachineRevisionId", json!({"Fn::GetAtt": [id, "StateMachineRevisionId"]}));
        let name_text = name.as_str().map(str::to_string).unwrap_or_else(|| name.to_string());
        let mut alias =
            Cfn::with(format!("{id}Alias{name_text}"), "AWS::StepFunctions::StateMachineAlias", &attrs);
        alias.set("Name", name.clone());
        let mut pref =
            props.get("DeploymentPreference").and_then(Value::as_object).cloned().unwrap_or_else(|| {
                let mut m = Map::new();
                m.insert("Type".into(), json!("ALL_AT_ONCE"));
                m
            });
        pref.insert("StateMachineVersionArn".into(), json!({"Ref": version.id}));
        alias.set("DeploymentPreference", Value::Object(pref));
        alias_ref = Some(alias.reference());
        resources.push(version);
        resources.push(alias);
    }

    let target_arn = match (&alias_ref, use_alias) {
        (Some(a), true) => a.clone(),
        _ => json!({"Ref": id}),
    };
    let target = Target {
        name: target_arn.clone(),
        arn: target_arn,
        attrs: attrs.clone(),
        function_id: id.to_string(),
        state_machine: true,
    };
    let boundary = props.get("PermissionsBoundary").cloned();
    for event in &parsed {
        let generated = match event.ty {
            "Schedule" | "CloudWatchEvent" | "EventBridgeRule" => rule(event, &target, boundary.as_ref()),
            "ScheduleV2" => events::schedule_v2(event, &target),
            "Api" => crate::sfn_api::api_event(out, event, &target, boundary.as_ref()),
            other => Err(ResourceError::event(event.relative_id, format!("Invalid resource type {other}"))),
        };
        resources.extend(generated.map_err(|e| ResourceError::new(id, e.message()))?);
    }
    let mut all = vec![machine];
    all.extend(resources);
    if props.get("PropagateTags").and_then(Value::as_bool) == Some(true) {
        crate::model::propagate_tags(&mut all, props.get("Tags"));
    }
    out.add(id, all)
}

fn tag_list_sfn(tags: Option<&Value>) -> Vec<Value> {
    let mut list = vec![json!({"Key": "stateMachine:createdBy", "Value": "SAM"})];
    list.extend(tag_list(tags, false));
    list
}

/// Replaces each intrinsic (and `{{resolve:…}}` reference) in the definition with
/// `${definition_substitution_N}`, in the translator's order (keys sorted, depth first).
fn move_intrinsics(value: &mut Value, counter: &mut usize, found: &mut Map<String, Value>) {
    let dynamic = |v: &Value| {
        v.as_str().is_some_and(|s| s.starts_with("{{resolve:") && s.ends_with("}}") && s[10..].contains(':'))
    };
    let visit = |child: &mut Value, counter: &mut usize, found: &mut Map<String, Value>| {
        if is_intrinsic(child) || dynamic(child) {
            found.insert(format!("definition_substitution_{counter}"), child.clone());
            *child = json!(format!("${{definition_substitution_{counter}}}"));
            *counter += 1;
        } else if child.is_object() || child.is_array() {
            move_intrinsics(child, counter, found);
        }
    };
    match value {
        Value::Object(map) => {
            for (_, child) in map.iter_mut() {
                visit(child, counter, found);
            }
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                visit(child, counter, found);
            }
        }
        _ => {}
    }
}

/// A rule that starts an execution, with a role events.amazonaws.com assumes to do it.
fn rule(event: &events::Event<'_>, target: &Target, boundary: Option<&Value>) -> Result<Vec<Cfn>> {
    let mut rule = Cfn::with(event.id.clone(), "AWS::Events::Rule", &target.attrs);
    let schedule = event.ty == "Schedule";
    if schedule {
        rule.set_opt("ScheduleExpression", event.get("Schedule"));
        let state = event.get("State").filter(|s| crate::function::truthy(s));
        if state.is_some() && event.get("Enabled").is_some() {
            return Err(event.error("State and Enabled Properties cannot both be specified."));
        }
        if let Some(s) = state {
            rule.set("State", s.clone());
        }
        if let Some(enabled) = event.get("Enabled") {
            rule.set("State", if enabled.as_bool() == Some(true) { "ENABLED" } else { "DISABLED" });
        }
        rule.set_opt("Name", event.get("Name"));
        rule.set_opt("Description", event.get("Description"));
    } else {
        rule.set_opt("EventBusName", event.get("EventBusName"));
        rule.set_opt("EventPattern", event.get("Pattern"));
        rule.set_opt("Name", event.get("RuleName"));
        if let Some(s) = event.get("State").filter(|s| crate::function::truthy(s)) {
            rule.set("State", s.clone());
        }
    }
    let mut resources = vec![];
    let role_arn = match event.get("RoleArn").filter(|_| schedule) {
        Some(arn) => arn.clone(),
        None => {
            let role_id = format!("{}Role", event.id);
            let mut role = Cfn::with(role_id.clone(), "AWS::IAM::Role", &target.attrs);
            role.set("AssumeRolePolicyDocument", assume_role("events.amazonaws.com"));
            role.set("Policies", json!([{
                "PolicyName": format!("{role_id}StartExecutionPolicy"),
                "PolicyDocument": {"Statement": [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": target.arn}]}
            }]));
            if let Some(b) = boundary.filter(|b| crate::function::truthy(b)) {
                role.set("PermissionsBoundary", b.clone());
            }
            let arn = role.arn();
            resources.push(role);
            arn
        }
    };
    let (dlq, extra) = events::rule_dlq(event, &rule, &target.attrs)?;
    let id = match event.get("Target").and_then(|t| t.get("Id")) {
        Some(id) => id.clone(),
        None => json!(events::target_id(&event.id, "StepFunctionsTarget")),
    };
    let mut t = Map::new();
    t.insert("Arn".into(), target.arn.clone());
    t.insert("Id".into(), id);
    t.insert("RoleArn".into(), role_arn);
    let keys: &[&str] = if schedule { &["Input"] } else { &["Input", "InputPath"] };
    for key in keys {
        if let Some(v) = event.get(key) {
            t.insert(key.to_string(), v.clone());
        }
    }
    if let Some(arn) = dlq {
        t.insert("DeadLetterConfig".into(), json!({"Arn": arn}));
    }
    for key in ["RetryPolicy", "InputTransformer"] {
        if let Some(v) = event.get(key).filter(|_| key == "RetryPolicy" || !schedule) {
            t.insert(key.to_string(), v.clone());
        }
    }
    rule.set("Targets", json!([t]));
    let mut all = vec![rule];
    all.extend(resources);
    all.extend(extra);
    Ok(all)
}
