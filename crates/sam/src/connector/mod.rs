//! `AWS::Serverless::Connector` and the `Connectors` attribute: permissions between two
//! resources from the translator's connector profiles (data/connector_profiles.json, from
//! aws-sam-translator, Apache-2.0): an IAM managed policy on a role, an SQS queue policy, an SNS
//! topic policy or Lambda permissions. Connectors are translated last, against the resources
//! every other SAM resource has become.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::model::{check_known, properties, Cfn, Out};
use crate::SourceOrder;

const TYPE: &str = "AWS::Serverless::Connector";

fn profiles() -> &'static Value {
    static PROFILES: OnceLock<Value> = OnceLock::new();
    PROFILES.get_or_init(|| {
        serde_json::from_str(include_str!("../data/connector_profiles.json")).expect("connector profiles")
    })
}

/// The `Connectors` attributes become connector resources named `<source><key>`; the
/// attributes are removed. Errors are the translator's, reported with the others.
pub(crate) fn embed(resources: &mut Map<String, Value>, order: &mut SourceOrder, errors: &mut Vec<String>) {
    let mut generated = Vec::new();
    let ids = order.keys(&["Resources"], resources);
    for source in &ids {
        let resource = &resources[source];
        let Some(connectors) = resource.get("Connectors") else { continue };
        let Some(connectors) = connectors.as_object() else {
            errors.push(
                ResourceError::new(source, format!("Attribute '{source}.Connectors' should be a map."))
                    .message(),
            );
            continue;
        };
        for key in order.keys(&["Resources", source, "Connectors"], connectors) {
            let connector = &connectors[&key];
            let id = format!("{source}{key}");
            match embedded(resources, source, &key, &id, connector) {
                Ok(c) => generated.push((id, c)),
                Err(e) => errors.push(e.message()),
            }
        }
    }
    for resource in resources.values_mut() {
        if let Some(map) = resource.as_object_mut() {
            map.remove("Connectors");
        }
    }
    // The generated connectors come after every resource of the template, in the order made.
    let mut keys = ids;
    keys.extend(generated.iter().map(|(id, _)| id.clone()).filter(|id| !resources.contains_key(id)));
    order.insert(vec!["Resources".into()], keys);
    resources.extend(generated);
}

fn embedded(
    resources: &Map<String, Value>,
    source: &str,
    key: &str,
    id: &str,
    connector: &Value,
) -> Result<Value> {
    let Some(connector) = connector.as_object() else {
        return Err(ResourceError::new(id, format!("{source}.{id} should be a map.")));
    };
    let mut connector = connector.clone();
    connector.insert("Type".into(), json!(TYPE));
    let Some(props) = connector.get_mut("Properties").and_then(Value::as_object_mut) else {
        return Err(ResourceError::new(
            source,
            format!("Attribute 'Connectors.{key}.Properties' should be a map."),
        ));
    };
    let mut source_ref = Map::new();
    source_ref.insert("Id".into(), json!(source));
    if let Some(reference) = props.remove("SourceReference") {
        let Some(reference) = reference.as_object() else {
            return Err(ResourceError::new(
                source,
                format!("Property 'Connectors.{key}.Properties.SourceReference' should be a map."),
            ));
        };
        if reference.contains_key("Id") {
            return Err(ResourceError::new(key, "'Id' shouldn't be defined in 'SourceReference'."));
        }
        source_ref.extend(reference.clone());
    }
    props.insert("Source".into(), Value::Object(source_ref));
    if resources.contains_key(id) {
        return Err(ResourceError::raw(format!(
            "Transforming resource with id [{source}] attempts to create a new resource with id \
             [{id}] and type \"{TYPE}\". A resource with that id already exists within this \
             template. Please use a different id for that resource."
        )));
    }
    Ok(Value::Object(connector))
}

/// One end of a connector, as the translator's `ConnectorResourceReference`.
#[derive(Default, Clone)]
struct Reference {
    logical_id: Option<String>,
    ty: String,
    arn: Option<Value>,
    role_name: Option<Value>,
    queue_url: Option<Value>,
    resource_id: Option<Value>,
    name: Option<Value>,
    qualifier: Option<Value>,
}

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let props = properties(resource);
    check_known(id, TYPE, &props, &["Source", "Destination", "Permissions"])?;
    let source = match props.get("Source") {
        None | Some(Value::Null) => {
            return Err(ResourceError::new(id, "Missing required property 'Source'."))
        }
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ResourceError::new(id, "Type of property 'Source' is invalid.")),
    };
    let (destinations, multi) = match props.get("Destination") {
        None | Some(Value::Null) => {
            return Err(ResourceError::new(id, "Missing required property 'Destination'."))
        }
        Some(Value::Object(m)) => (vec![m.clone()], false),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            (items.iter().filter_map(|v| v.as_object().cloned()).collect(), true)
        }
        Some(_) => return Err(ResourceError::new(id, "Type of property 'Destination' is invalid.")),
    };
    let permissions: Vec<String> = match props.get("Permissions") {
        None | Some(Value::Null) => {
            return Err(ResourceError::new(id, "Missing required property 'Permissions'."))
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            let mut p: Vec<String> = items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
            p.sort();
            p.dedup();
            p
        }
        Some(_) => return Err(ResourceError::new(id, "Type of property 'Permissions' is invalid.")),
    };
    let mut generated: Vec<Cfn> = Vec::new();
    for (index, dest) in destinations.iter().enumerate() {
        let destination = reference(out, dest, &source).map_err(|e| ResourceError::new(id, e))?;
        let src = reference(out, &source, dest).map_err(|e| ResourceError::new(id, e))?;
        let mut made = generate(out, id, resource, &src, &destination, &permissions, multi.then_some(index))?;
        let metadata = json!({"aws:sam:connectors": {id: {
            "Source": {"Type": original_type(out, &src)},
            "Destination": {"Type": original_type(out, &destination)},
        }}});
        for cfn in &mut made {
            let mut merged =
                cfn.attrs.get("Metadata").and_then(Value::as_object).cloned().unwrap_or_default();
            merged.extend(metadata.as_object().cloned().unwrap_or_default());
            cfn.attrs.insert("Metadata".into(), Value::Object(merged));
        }
        generated.extend(made);
    }
    let ids: Vec<Value> = generated.iter().map(|c| json!(c.id)).collect();
    for other in out.resources.values_mut() {
        let Some(map) = other.as_object_mut() else { continue };
        let mut deps = match map.get("DependsOn") {
            Some(Value::Array(items)) => items.clone(),
            Some(v) => vec![v.clone()],
            None => continue,
        };
        if let Some(at) = deps.iter().position(|d| d.as_str() == Some(id)) {
            deps.remove(at);
            insert_unique(&mut deps, &ids);
            map.insert("DependsOn".into(), Value::Array(deps));
        }
    }
    if generated.is_empty() {
        return Err(ResourceError::new(id, "'Destination' is an empty list"));
    }
    out.add(id, generated)
}

fn insert_unique(deps: &mut Vec<Value>, ids: &[Value]) {
    for v in ids {
        if !deps.contains(v) {
            deps.push(v.clone());
        }
    }
}

fn original_type(out: &Out, reference: &Reference) -> Value {
    reference
        .logical_id
        .as_ref()
        .and_then(|id| out.original.get(id))
        .and_then(|r| r.get("Type"))
        .filter(|t| !t.is_null())
        .cloned()
        .unwrap_or_else(|| json!(reference.ty))
}

fn nonblank(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn logical_id_of(value: Option<&Value>) -> Option<String> {
    let map = value?.as_object()?;
    if map.len() != 1 {
        return None;
    }
    if let Some(Value::String(id)) = map.get("Ref") {
        return Some(id.clone());
    }
    match map.get("Fn::GetAtt") {
        Some(Value::Array(a)) if a.len() == 2 => a[0].as_str().map(str::to_string),
        Some(Value::String(s)) => {
            let parts: Vec<&str> = s.split('.').collect();
            (parts.len() == 2).then(|| parts[0].to_string())
        }
        _ => None,
    }
}

fn reference(
    out: &Out,
    obj: &Map<String, Value>,
    other: &Map<String, Value>,
) -> std::result::Result<Reference, String> {
    let has_id = obj.contains_key("Id");
    let others = obj.keys().any(|k| k != "Id" && k != "Qualifier");
    if has_id == others {
        return Err(
            "Must provide 'Id' (with optional 'Qualifier') or a supported combination of other properties."
                .into(),
        );
    }
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
    let Some(logical_id) = obj.get("Id").filter(|v| truthy(v)) else {
        let Some(ty) = nonblank(obj.get("Type")) else {
            return Err("'Type' is missing or not a string.".into());
        };
        return Ok(Reference {
            logical_id: None,
            ty: sam_to_cfn(ty).to_string(),
            arn: get("Arn"),
            role_name: get("RoleName"),
            queue_url: get("QueueUrl"),
            resource_id: get("ResourceId"),
            name: get("Name"),
            qualifier: get("Qualifier"),
        });
    };
    let Some(logical_id) = nonblank(Some(logical_id)) else {
        return Err("'Id' is missing or not a string.".into());
    };
    let Some(resource) = out.resources.get(logical_id).filter(|r| r.is_object()) else {
        return Err(format!("Unable to find resource with logical ID '{logical_id}'."));
    };
    let Some(ty) = nonblank(resource.get("Type")) else {
        return Err("'Type' is missing or not a string.".into());
    };
    let cfn = profiles()["CfnResourceProperties"].get(ty).cloned().unwrap_or(json!({}));
    let cfn = replace(&cfn, &[("logicalId", Some(json!(logical_id)))]).map_err(|e| e.to_string())?;
    let outputs = cfn.get("Outputs").cloned().unwrap_or(json!({}));
    let output = |k: &str| outputs.get(k).filter(|v| !v.is_null()).cloned();
    let props = resource.get("Properties").cloned().unwrap_or(json!({}));
    let role = match cfn.pointer("/Inputs/Role") {
        Some(Value::String(p)) => props.get(p).cloned(),
        Some(Value::Object(f)) if f.get("Function").and_then(Value::as_str) == Some("GetEventsRuleRole") => {
            events_rule_role(other, &props)
        }
        _ => None,
    };
    let role_name = role.filter(truthy).and_then(|r| logical_id_of(Some(&r))).map(|id| json!({"Ref": id}));
    let qualifier = if obj.contains_key("Qualifier") { get("Qualifier") } else { output("Qualifier") };
    Ok(Reference {
        logical_id: Some(logical_id.to_string()),
        ty: ty.to_string(),
        arn: output("Arn"),
        role_name,
        queue_url: output("Url"),
        resource_id: output("Id"),
        name: output("Name"),
        qualifier,
    })
}

fn events_rule_role(other: &Map<String, Value>, props: &Value) -> Option<Value> {
    let other_id = other.get("Id").and_then(Value::as_str);
    let other_arn = other.get("Arn").filter(|v| truthy(v));
    for target in props.get("Targets").and_then(Value::as_array).into_iter().flatten() {
        let arn = target.get("Arn");
        let target_id = logical_id_of(arn);
        if (target_id.is_some() && target_id.as_deref() == other_id)
            || (other_arn.is_some() && arn == other_arn)
        {
            return target.get("RoleArn").cloned();
        }
    }
    None
}

fn truthy(v: &Value) -> bool {
    crate::function::truthy(v)
}

fn sam_to_cfn(ty: &str) -> &str {
    match ty {
        "AWS::Serverless::Function" => "AWS::Lambda::Function",
        "AWS::Serverless::StateMachine" => "AWS::StepFunctions::StateMachine",
        "AWS::Serverless::Api" => "AWS::ApiGateway::RestApi",
        "AWS::Serverless::HttpApi" => "AWS::ApiGatewayV2::Api",
        "AWS::Serverless::SimpleTable" => "AWS::DynamoDB::Table",
        other => other,
    }
}

mod profile;
use profile::{generate, replace};
