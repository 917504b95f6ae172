//! `Policies` of functions and state machines: AWS managed policy names (looked up in the map the
//! translator bundles), ARNs, inline documents and SAM's policy templates (`S3ReadPolicy:
//! {BucketName: …}`), and the execution role built from them.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::intrinsics::{is_if, is_intrinsic, is_no_value};
use crate::model::Cfn;

/// SAM's policy templates (from aws-sam-translator's `policy_templates.json`, Apache-2.0):
/// name → {Parameters: [names], Definition: {Statement: …}}.
static TEMPLATES: &str = include_str!("data/policy_templates.json");
/// AWS managed policies as `path/Name` lines (aws-sam-translator's bundled map, partition aws).
static MANAGED: &str = include_str!("data/managed_policies.txt");

fn templates() -> &'static Map<String, Value> {
    static PARSED: OnceLock<Map<String, Value>> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(TEMPLATES).unwrap_or_default())
}

/// The ARN of an AWS managed policy by name; an ARN or an unknown name stays as it is.
pub(crate) fn managed_arn(name: &str, partition: &str) -> String {
    for line in MANAGED.lines() {
        let short = line.rsplit('/').next().unwrap_or(line);
        if short == name {
            return format!("arn:{partition}:iam::aws:policy/{line}");
        }
    }
    name.to_string()
}

/// `arn:PARTITION:iam::aws:policy/PATH` for policies the transform adds itself.
pub(crate) fn aws_policy(partition: &str, path: &str) -> Value {
    Value::String(format!("arn:{partition}:iam::aws:policy/{path}"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Managed,
    Statement,
    Template,
    Unknown,
}

fn kind(policy: &Value) -> std::result::Result<Kind, String> {
    if policy.is_string() {
        return Ok(Kind::Managed);
    }
    if is_if(policy) {
        let items = policy["Fn::If"].as_array().cloned().unwrap_or_default();
        if items.len() != 3 {
            return Err("Fn::If requires 3 arguments".into());
        }
        let (a, b) = (kind(&items[1])?, kind(&items[2])?);
        if a == b {
            return Ok(a);
        }
        if is_no_value(&items[1]) {
            return Ok(b);
        }
        if is_no_value(&items[2]) {
            return Ok(a);
        }
        return Err("Different policy types within the same Fn::If statement is unsupported. \
                    Separate different policy types into different Fn::If statements"
            .into());
    }
    if is_intrinsic(policy) {
        return Ok(Kind::Managed);
    }
    if let Some(map) = policy.as_object() {
        if map.contains_key("Statement") {
            return Ok(Kind::Statement);
        }
        if map.len() == 1 && map.keys().all(|k| templates().contains_key(k)) {
            return Ok(Kind::Template);
        }
    }
    Ok(Kind::Unknown)
}

/// The `Policies` value as a list (one entry becomes a list of one).
pub(crate) fn policy_list(policies: Option<&Value>) -> Vec<Value> {
    match policies {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) if s.is_empty() => vec![],
        Some(Value::Object(m)) if m.is_empty() => vec![],
        Some(other) => vec![other.clone()],
    }
}

/// Replaces each policy template with the statement it stands for.
pub(crate) fn expand_templates(id: &str, policies: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for policy in policies {
        let k = kind(&policy).map_err(|m| ResourceError::template(&m))?;
        if k != Kind::Template {
            out.push(policy);
            continue;
        }
        if is_if(&policy) {
            let items = policy["Fn::If"].as_array().cloned().unwrap_or_default();
            let mut new = vec![items[0].clone()];
            for branch in &items[1..] {
                new.push(if is_no_value(branch) { branch.clone() } else { template(id, branch)? });
            }
            out.push(json!({"Fn::If": new}));
        } else {
            out.push(template(id, &policy)?);
        }
    }
    Ok(out)
}

fn template(id: &str, policy: &Value) -> Result<Value> {
    let (name, values) = policy.as_object().and_then(|m| m.iter().next()).expect("template entry");
    let def = &templates()[name];
    let Some(values) = values.as_object() else {
        return Err(ResourceError::new(
            id,
            format!("Must specify valid parameter values for policy template '{name}'"),
        ));
    };
    let wanted: Vec<&str> =
        def["Parameters"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let missing: Vec<String> =
        wanted.iter().filter(|p| !values.contains_key(**p)).map(|p| format!("'{p}'")).collect();
    if !missing.is_empty() {
        return Err(ResourceError::new(
            id,
            format!(
                "Following required parameters of template '{name}' don't have values: [{}]",
                missing.join(", ")
            ),
        ));
    }
    // The template's own Refs name its parameters; resolve those only (one level, as the
    // translator renames them first so values holding a Ref to the same name stay).
    Ok(resolve_template_refs(&def["Definition"], values, &wanted))
}

fn resolve_template_refs(def: &Value, values: &Map<String, Value>, names: &[&str]) -> Value {
    match def {
        Value::Object(map) if map.len() == 1 && map.get("Ref").is_some_and(Value::is_string) => {
            let name = map["Ref"].as_str().unwrap_or_default();
            if names.contains(&name) {
                if let Some(v) = values.get(name) {
                    return v.clone();
                }
            }
            def.clone()
        }
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| (k.clone(), resolve_template_refs(v, values, names))).collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve_template_refs(v, values, names)).collect())
        }
        other => other.clone(),
    }
}

/// What goes into an execution role besides the `Policies` entries.
pub(crate) struct RoleSpec<'a> {
    pub sam_id: &'a str,
    pub attrs: Map<String, Value>,
    pub assume: Value,
    pub policies: Vec<Value>,
    pub managed: Vec<Value>,
    pub documents: Vec<Value>,
    pub path: Option<&'a Value>,
    pub boundary: Option<&'a Value>,
    pub tags: Option<Vec<Value>>,
    pub partition: &'a str,
}

/// `<Id>Role`: the policies of a function or state machine.
pub(crate) fn role(spec: RoleSpec<'_>) -> Result<Cfn> {
    let role_id = format!("{}Role", spec.sam_id);
    let mut managed = spec.managed;
    let mut documents = spec.documents;
    for (index, policy) in spec.policies.iter().enumerate() {
        let k = kind(policy).map_err(|m| ResourceError::template(&m))?;
        match k {
            Kind::Statement => {
                let named = |doc: &Value| json!({"PolicyName": format!("{role_id}Policy{index}"), "PolicyDocument": doc});
                if is_if(policy) {
                    documents.push(map_if(policy, &|v| !is_no_value(v), &named));
                } else {
                    documents.push(named(policy));
                }
            }
            Kind::Managed => {
                let partition = spec.partition;
                let arn = match policy {
                    Value::String(name) => Value::String(managed_arn(name, partition)),
                    p if is_if(p) => map_if(p, &|v| !is_no_value(v) && v.is_string(), &|v| {
                        Value::String(managed_arn(v.as_str().unwrap_or_default(), partition))
                    }),
                    p => p.clone(),
                };
                if !managed.contains(&arn) {
                    managed.push(arn);
                }
            }
            _ => {
                return Err(ResourceError::new(
                    spec.sam_id,
                    format!("Policy at index {index} in the 'Policies' property is not valid"),
                ))
            }
        }
    }
    let mut cfn = Cfn::with(role_id, "AWS::IAM::Role", &spec.attrs);
    cfn.set("AssumeRolePolicyDocument", spec.assume);
    cfn.set("ManagedPolicyArns", Value::Array(managed));
    if !documents.is_empty() {
        cfn.set("Policies", Value::Array(documents));
    }
    cfn.set_opt("Path", spec.path);
    cfn.set_opt("PermissionsBoundary", spec.boundary);
    if let Some(tags) = spec.tags {
        cfn.set("Tags", Value::Array(tags));
    }
    Ok(cfn)
}

fn map_if(value: &Value, convertible: &dyn Fn(&Value) -> bool, f: &dyn Fn(&Value) -> Value) -> Value {
    let mut items = value["Fn::If"].as_array().cloned().unwrap_or_default();
    for item in items.iter_mut().skip(1) {
        if convertible(item) {
            *item = f(item);
        }
    }
    json!({"Fn::If": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_names_resolve_to_their_paths() {
        assert_eq!(
            managed_arn("AWSLambdaBasicExecutionRole", "aws"),
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        );
        assert_eq!(
            managed_arn("AmazonS3ReadOnlyAccess", "aws"),
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
        );
        assert_eq!(managed_arn("NotAPolicy", "aws"), "NotAPolicy");
    }

    #[test]
    fn a_template_becomes_its_statement_and_missing_values_are_named() {
        let out = expand_templates("F", vec![json!({"SQSSendMessagePolicy": {"QueueName": "q"}})]).unwrap();
        assert_eq!(out[0]["Statement"][0]["Action"], json!(["sqs:SendMessage*"]));
        assert_eq!(out[0]["Statement"][0]["Resource"]["Fn::Sub"][1]["queueName"], json!("q"));
        let err = expand_templates("F", vec![json!({"S3ReadPolicy": {}})]).unwrap_err();
        assert_eq!(
            err.message(),
            "Resource with id [F] is invalid. Following required parameters of template 'S3ReadPolicy' don't have values: ['BucketName']"
        );
    }
}
