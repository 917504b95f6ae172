//! `AWS::Serverless::LayerVersion` → `AWS::Lambda::LayerVersion` under a new logical id: the SAM
//! id and a hash of the resource, so any change publishes a new layer version (and references to
//! the SAM id follow it).

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::function::s3_location;
use crate::hash;
use crate::intrinsics::is_intrinsic;
use crate::model::{check_known, passthrough_attrs, properties, Cfn, Out};

const KNOWN: &[&str] = &[
    "LayerName",
    "Description",
    "PublishLambdaVersion",
    "ContentUri",
    "CompatibleArchitectures",
    "CompatibleRuntimes",
    "LicenseInfo",
    "RetentionPolicy",
];

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::LayerVersion", &props, KNOWN)?;
    if !props.contains_key("ContentUri") {
        return Err(ResourceError::new(id, "Missing required property 'ContentUri'."));
    }
    for key in ["LayerName", "LicenseInfo", "Description", "RetentionPolicy"] {
        let Some(v) = props.get(key) else { continue };
        if !crate::function::truthy(v) {
            continue;
        }
        let resolved = out.params.resolve(v);
        if !resolved.is_string() && !resolved.is_object() {
            return Err(ResourceError::new(
                id,
                format!("Could not resolve parameter for '{key}' or parameter is not a String."),
            ));
        }
        props.insert(key.into(), resolved);
    }
    let options = "['Retain', 'Delete']";
    let retention = match props.get("RetentionPolicy") {
        None => None,
        Some(v) if is_intrinsic(v) => {
            return Err(ResourceError::new(
                id,
                format!("'RetentionPolicy' does not accept intrinsic functions, please use one of the following options: {options}"),
            ))
        }
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "retain" => Some("Retain"),
            "delete" => Some("Delete"),
            _ => {
                return Err(ResourceError::new(
                    id,
                    format!("'RetentionPolicy' must be one of the following options: {options}."),
                ))
            }
        },
        Some(_) => {
            return Err(ResourceError::new(
                id,
                format!("Invalid 'RetentionPolicy' type, please use one of the following options: {options}"),
            ))
        }
    };
    let mut attrs = passthrough_attrs(resource);
    attrs.entry("DeletionPolicy").or_insert_with(|| json!("Retain"));
    if let Some(r) = retention {
        attrs.insert("DeletionPolicy".into(), json!(r));
    }

    // The hash covers the SAM resource as the translator holds it: type, DependsOn, Condition,
    // UpdatePolicy and the (resolved) properties.
    let mut hashed = Map::new();
    hashed.insert("Type".into(), json!("AWS::Serverless::LayerVersion"));
    if let Some(d) = resource.get("DependsOn") {
        hashed.insert("DependsOn".into(), d.clone());
    }
    for key in ["Condition", "UpdatePolicy"] {
        if let Some(v) = resource.get(key) {
            hashed.insert(key.into(), v.clone());
        }
    }
    hashed.insert("Properties".into(), Value::Object(props.clone()));
    let mut wrapper = Map::new();
    wrapper.insert(id.to_string(), Value::Object(hashed));
    let new_id = hash::logical_id(id, &Value::Object(wrapper));

    let mut layer = Cfn::with(new_id.clone(), "AWS::Lambda::LayerVersion", &attrs);
    if let Some(d) = resource.get("DependsOn") {
        layer.attrs.insert("DependsOn".into(), d.clone());
    }
    let name = props.get("LayerName").filter(|v| crate::function::truthy(v)).cloned();
    layer.set("LayerName", name.unwrap_or_else(|| json!(id)));
    layer.set_opt("Description", props.get("Description"));
    let content =
        s3_location(&new_id, &props["ContentUri"], "ContentUri", ("S3Bucket", "S3Key", "S3ObjectVersion"))?;
    layer.set("Content", Value::Object(content));
    layer.set_opt("CompatibleArchitectures", props.get("CompatibleArchitectures"));
    if let Some(Value::Array(archs)) = props.get("CompatibleArchitectures") {
        for a in archs {
            if !is_intrinsic(a) && a != "x86_64" && a != "arm64" {
                return Err(ResourceError::new(
                    &new_id,
                    "CompatibleArchitectures needs to be a list of 'x86_64' or 'arm64'",
                ));
            }
        }
    }
    layer.set_opt("CompatibleRuntimes", props.get("CompatibleRuntimes"));
    layer.set_opt("LicenseInfo", props.get("LicenseInfo"));
    out.changed_ids.insert(id.to_string(), new_id);
    out.add(id, vec![layer])
}
