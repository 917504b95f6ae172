//! `AWS::Serverless::SimpleTable` → `AWS::DynamoDB::Table` with one hash key (`id`, a string,
//! unless `PrimaryKey` says otherwise), on demand unless `ProvisionedThroughput` is given.

use serde_json::{json, Value};

use crate::error::{ResourceError, Result};
use crate::model::{check_known, properties, resource_attrs, Cfn, Out};

const KNOWN: &[&str] = &[
    "PointInTimeRecoverySpecification",
    "PrimaryKey",
    "ProvisionedThroughput",
    "TableName",
    "Tags",
    "SSESpecification",
];

pub(crate) fn translate(out: &mut Out, id: &str, resource: &Value) -> Result<()> {
    let mut props = properties(resource);
    props.retain(|_, v| !v.is_null());
    check_known(id, "AWS::Serverless::SimpleTable", &props, KNOWN)?;
    let truthy = |k: &str| props.get(k).filter(|v| crate::function::truthy(v));
    let mut table = Cfn::with(id, "AWS::DynamoDB::Table", &resource_attrs(resource));
    if let Some(d) = resource.get("DependsOn") {
        table.attrs.insert("DependsOn".into(), d.clone());
    }
    let key = match truthy("PrimaryKey") {
        Some(pk) => {
            let name = pk
                .get("Name")
                .filter(|v| !v.is_null())
                .ok_or_else(|| ResourceError::new(id, "Property 'PrimaryKey.Name' is required."))?;
            let ty = pk
                .get("Type")
                .filter(|v| !v.is_null())
                .ok_or_else(|| ResourceError::new(id, "Property 'PrimaryKey.Type' is required."))?;
            let short = match ty.as_str() {
                Some("String") => "S",
                Some("Number") => "N",
                Some("Binary") => "B",
                _ => {
                    let shown = ty.as_str().map(str::to_string).unwrap_or_else(|| ty.to_string());
                    return Err(ResourceError::new(id, format!("Invalid 'Type' \"{shown}\".")));
                }
            };
            json!({"AttributeName": name, "AttributeType": short})
        }
        None => json!({"AttributeName": "id", "AttributeType": "S"}),
    };
    table.set("KeySchema", json!([{"AttributeName": key["AttributeName"], "KeyType": "HASH"}]));
    table.set("AttributeDefinitions", json!([key]));
    if let Some(p) = truthy("PointInTimeRecoverySpecification") {
        table.set("PointInTimeRecoverySpecification", p.clone());
    }
    match truthy("ProvisionedThroughput") {
        Some(p) => table.set("ProvisionedThroughput", p.clone()),
        None => table.set("BillingMode", "PAY_PER_REQUEST"),
    };
    if let Some(s) = truthy("SSESpecification") {
        table.set("SSESpecification", s.clone());
    }
    if let Some(n) = truthy("TableName") {
        table.set("TableName", n.clone());
    }
    if let Some(tags) = truthy("Tags") {
        table.set("Tags", Value::Array(crate::model::tag_list(Some(tags), false)));
    }
    out.add(id, vec![table])
}
