//! A connector profile applied: its `%{…}` variables replaced (by a value, or inside a string
//! by `Fn::Sub`), its access categories checked, and the resources it grants access with.

use serde_json::{json, Map, Value};

use super::{profiles, truthy, Reference};
use crate::error::{ResourceError, Result};
use crate::model::{resource_attrs, Cfn, Out};

/// The translator's `profile_replace`: every string of `value` with `%{name}` variables
/// replaced; a variable whose value is missing is an error ("Source.Arn is missing.").
pub(super) fn replace(value: &Value, vars: &[(&str, Option<Value>)]) -> std::result::Result<Value, String> {
    Ok(match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), replace(v, vars)?);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace(v, vars)).collect::<std::result::Result<_, _>>()?)
        }
        Value::String(s) => replace_str(s, vars)?,
        other => other.clone(),
    })
}

fn replace_str(text: &str, vars: &[(&str, Option<Value>)]) -> std::result::Result<Value, String> {
    let mut s = text.to_string();
    let mut subs = Map::new();
    for (name, value) in vars {
        let pattern = format!("%{{{name}}}");
        let sanitized: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
        let found = s.contains(&pattern);
        let Some(value) = value.as_ref().filter(|_| found) else {
            if found {
                return Err(format!("{name} is missing."));
            }
            continue;
        };
        if s == pattern {
            return Ok(value.clone());
        }
        s = s.replace(&pattern, &format!("${{{sanitized}}}"));
        subs.insert(sanitized, value.clone());
    }
    if has_sub_variable(&s) {
        if subs.is_empty() {
            return Ok(json!({"Fn::Sub": s}));
        }
        return Ok(json!({"Fn::Sub": [s, subs]}));
    }
    Ok(Value::String(s))
}

/// Python's `re.search(r"\${.+}", s)`: `${`, at least one character, then `}` on that line.
fn has_sub_variable(s: &str) -> bool {
    s.split('\n').any(|line| {
        line.match_indices("${").any(|(at, _)| line[at + 2..].char_indices().any(|(i, c)| i > 0 && c == '}'))
    })
}

/// Access categories in the profile file's order (serde_json's maps are sorted; two profiles
/// list Write before Read).
fn categories(source: &str, destination: &str, profile: &Value) -> Vec<String> {
    let mut keys: Vec<String> = profile
        .pointer("/Properties/AccessCategories")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let write_first = matches!(
        (source, destination),
        ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine")
            | ("AWS::SQS::Queue", "AWS::Lambda::Function")
    );
    if write_first {
        keys.reverse();
    }
    keys
}

pub(super) fn generate(
    out: &mut Out,
    id: &str,
    connector: &Value,
    source: &Reference,
    destination: &Reference,
    permissions: &[String],
    index: Option<usize>,
) -> Result<Vec<Cfn>> {
    let (s, d) = (source.ty.as_str(), destination.ty.as_str());
    let Some(profile) = profiles().pointer("/Permissions").and_then(|p| p.get(s)).and_then(|p| p.get(d))
    else {
        return Err(ResourceError::new(
            id,
            format!(
                "Unable to create connector from {s} to {d}; it's not supported or the template is invalid."
            ),
        ));
    };
    let names = categories(s, d, profile);
    let valid = names.join(", ");
    if permissions.is_empty() {
        return Err(ResourceError::new(
            id,
            format!("'Permissions' cannot be empty; valid values are: {valid}."),
        ));
    }
    if permissions.iter().any(|p| !names.contains(p)) {
        return Err(ResourceError::new(
            id,
            format!("Unsupported 'Permissions' provided for connector from {s} to {d}; valid values are: {valid}."),
        ));
    }
    if let Some(combos) = profile.pointer("/Properties/ValidAccessCategories").and_then(Value::as_array) {
        let combos: Vec<Vec<String>> = combos
            .iter()
            .map(|c| {
                let mut c: Vec<String> = c
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                c.sort();
                c
            })
            .collect();
        if !combos.iter().any(|c| c == permissions) {
            let text: Vec<String> = combos.iter().map(|c| c.join(" + ")).collect();
            return Err(ResourceError::new(
                id,
                format!(
                    "Unsupported 'Permissions' provided for connector from {s} to {d}; valid combinations are: {}.",
                    text.join(", ")
                ),
            ));
        }
    }
    let vars = [
        ("Source.Arn", source.arn.clone()),
        ("Destination.Arn", destination.arn.clone()),
        ("Source.ResourceId", source.resource_id.clone()),
        ("Destination.ResourceId", destination.resource_id.clone()),
        ("Source.Name", source.name.clone()),
        ("Destination.Name", destination.name.clone()),
        ("Source.Qualifier", source.qualifier.clone()),
        ("Destination.Qualifier", destination.qualifier.clone()),
    ];
    let props = replace(&profile["Properties"], &vars).map_err(|e| ResourceError::new(id, e))?;
    let source_policy = props.get("SourcePolicy").and_then(Value::as_bool).unwrap_or(false);
    let (end, end_name) = if source_policy { (source, "Source") } else { (destination, "Destination") };
    let suffix = |kind: &str| match index {
        Some(i) => format!("{id}{kind}Destination{i}"),
        None => format!("{id}{kind}"),
    };
    let attrs = {
        let mut attrs = resource_attrs(connector);
        if let Some(deps) = connector.get("DependsOn") {
            attrs.insert("DependsOn".into(), deps.clone());
        }
        attrs
    };
    let statements = || {
        let mut list = Vec::new();
        for name in &names {
            if permissions.contains(name) {
                if let Some(s) =
                    props.pointer(&format!("/AccessCategories/{name}/Statement")).and_then(Value::as_array)
                {
                    list.extend(s.iter().cloned());
                }
            }
        }
        json!({"Version": "2012-10-17", "Statement": list})
    };
    let kind = profile.get("Type").and_then(Value::as_str).unwrap_or("");
    let given = |v: &Option<Value>| v.clone().filter(truthy);
    match kind {
        "AWS_IAM_ROLE_MANAGED_POLICY" => {
            let Some(role) = given(&end.role_name) else {
                return Err(ResourceError::new(
                    id,
                    format!("Unable to get IAM role name from '{end_name}' resource."),
                ));
            };
            let mut policy = Cfn::with(suffix("Policy"), "AWS::IAM::ManagedPolicy", &attrs);
            policy.set("PolicyDocument", statements()).set("Roles", json!([role]));
            let depended_by = props.get("DependedBy").and_then(Value::as_str);
            if let (Some("DESTINATION_EVENT_SOURCE_MAPPING"), Some(src), Some(dst)) =
                (depended_by, &source.logical_id, &destination.logical_id)
            {
                let mappings = event_source_mappings(out, src, dst);
                if mappings.len() == 1 {
                    add_depends_on(out, &mappings[0], &policy.id);
                }
            }
            if let (Some("SOURCE"), Some(src)) = (depended_by, &source.logical_id) {
                add_depends_on(out, src, &policy.id);
            }
            Ok(vec![policy])
        }
        "AWS_LAMBDA_PERMISSION" => {
            let Some(arn) = given(&end.arn) else {
                return Err(ResourceError::new(
                    id,
                    format!("Unable to get Lambda function ARN from '{end_name}' resource."),
                ));
            };
            let mut made = Vec::new();
            for name in names.iter().filter(|n| permissions.contains(n)) {
                let category =
                    props.pointer(&format!("/AccessCategories/{name}")).cloned().unwrap_or(json!({}));
                let mut permission =
                    Cfn::with(suffix(&format!("{name}LambdaPermission")), "AWS::Lambda::Permission", &attrs);
                permission
                    .set_opt("Action", category.get("Action"))
                    .set("FunctionName", arn.clone())
                    .set_opt("Principal", category.get("Principal"))
                    .set_opt("SourceArn", category.get("SourceArn"))
                    .set_opt("SourceAccount", category.get("SourceAccount"));
                made.push(permission);
            }
            Ok(made)
        }
        "AWS_SNS_TOPIC_POLICY" => {
            let Some(arn) = given(&end.arn) else {
                return Err(ResourceError::new(
                    id,
                    format!("Unable to get SNS topic ARN from '{end_name}' resource."),
                ));
            };
            let mut policy = Cfn::with(suffix("TopicPolicy"), "AWS::SNS::TopicPolicy", &attrs);
            policy.set("Topics", json!([arn])).set("PolicyDocument", statements());
            Ok(vec![policy])
        }
        "AWS_SQS_QUEUE_POLICY" => {
            let Some(url) = given(&end.queue_url) else {
                return Err(ResourceError::new(
                    id,
                    format!("Unable to get SQS queue URL from '{end_name}' resource."),
                ));
            };
            let mut policy = Cfn::with(suffix("QueuePolicy"), "AWS::SQS::QueuePolicy", &attrs);
            policy.set("PolicyDocument", statements()).set("Queues", json!([url]));
            Ok(vec![policy])
        }
        other => Err(ResourceError::new(id, format!("Profile type {other} is not supported"))),
    }
}

/// Event source mappings from `source` to the function `function`.
fn event_source_mappings(out: &Out, source: &str, function: &str) -> Vec<String> {
    out.resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Lambda::EventSourceMapping"))
        .filter(|(_, r)| {
            let props = r.get("Properties");
            let f = super::logical_id_of(props.and_then(|p| p.get("FunctionName")));
            let s = super::logical_id_of(props.and_then(|p| p.get("EventSourceArn")));
            f.as_deref() == Some(function) && s.as_deref() == Some(source)
        })
        .map(|(id, _)| id.clone())
        .collect()
}

fn add_depends_on(out: &mut Out, id: &str, dependency: &str) {
    let Some(map) = out.resources.get_mut(id).and_then(Value::as_object_mut) else { return };
    let mut deps = match map.get("DependsOn") {
        Some(Value::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    };
    super::insert_unique(&mut deps, &[json!(dependency)]);
    map.insert("DependsOn".into(), Value::Array(deps));
}
