//! `Auth.UsagePlan` of a REST API: a usage plan, an API key and the key's link to the plan,
//! for the API alone (`PER_API`) or shared by every API that asks (`SHARED`).

use serde_json::{json, Map, Value};

use crate::error::{ResourceError, Result};
use crate::model::{Cfn, Out};

const FIELDS: &[&str] = &["CreateUsagePlan", "Description", "Quota", "Tags", "Throttle", "UsagePlanName"];

/// What the `SHARED` plan has gathered from the APIs so far.
#[derive(Default)]
pub(crate) struct Shared {
    stage_keys: Vec<Value>,
    api_stages: Vec<Value>,
    depends_on: Vec<Value>,
    deletion_policy: Option<String>,
    update_replace_policy: Option<String>,
}

impl Shared {
    fn attributes(&mut self, attrs: &Map<String, Value>) -> Result<Map<String, Value>> {
        if let Some(p) = attrs.get("DeletionPolicy").and_then(Value::as_str) {
            if self.deletion_policy.is_none() || p == "Retain" {
                self.deletion_policy = Some(p.to_string());
            }
        }
        if let Some(p) = attrs.get("UpdateReplacePolicy").and_then(Value::as_str) {
            let current = self.update_replace_policy.as_deref();
            if current.is_none() || p == "Retain" || (p == "Snapshot" && current == Some("Delete")) {
                self.update_replace_policy = Some(p.to_string());
            }
        }
        let mut out = Map::new();
        if let Some(p) = &self.deletion_policy {
            out.insert("DeletionPolicy".into(), json!(p));
        }
        if let Some(p) = &self.update_replace_policy {
            out.insert("UpdateReplacePolicy".into(), json!(p));
        }
        Ok(out)
    }
}

pub(crate) fn resources(
    out: &mut Out,
    id: &str,
    auth: &Map<String, Value>,
    stage_id: &str,
    attrs: &Map<String, Value>,
) -> Result<Vec<Cfn>> {
    let Some(plan) = auth.get("UsagePlan").filter(|v| !v.is_null()) else { return Ok(vec![]) };
    let Some(plan) = plan.as_object() else {
        return Err(ResourceError::new(id, "'UsagePlan' must be a dictionary"));
    };
    if plan.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ResourceError::new(id, "Invalid property for 'UsagePlan'"));
    }
    let Some(kind) = plan.get("CreateUsagePlan").filter(|v| !v.is_null()) else {
        return Err(ResourceError::new(id, "'CreateUsagePlan' is a required field for UsagePlan."));
    };
    let kind = match kind.as_str() {
        Some(k @ ("SHARED" | "PER_API" | "NONE")) => k,
        _ => {
            return Err(ResourceError::new(
                id,
                "'CreateUsagePlan' accepts one of ['SHARED', 'PER_API', 'NONE'].",
            ))
        }
    };
    if kind == "NONE" {
        return Ok(vec![]);
    }
    let api_stage = json!({"ApiId": {"Ref": id}, "Stage": {"Ref": stage_id}});
    let stage_key = json!({"RestApiId": {"Ref": id}, "StageName": {"Ref": stage_id}});
    let (plan_id, key_id, link_id, plan_attrs, api_stages, stage_keys, depends_on) = if kind == "PER_API" {
        (
            format!("{id}UsagePlan"),
            format!("{id}ApiKey"),
            format!("{id}UsagePlanKey"),
            attrs.clone(),
            vec![api_stage],
            vec![stage_key],
            vec![json!(id)],
        )
    } else {
        if attrs.contains_key("Condition") {
            return Err(ResourceError::new(
                id,
                "nimbus's SAM transform does not support a SHARED usage plan on conditional APIs yet.",
            ));
        }
        let shared = &mut out.shared_usage_plan;
        if !shared.depends_on.contains(&json!(id)) {
            shared.depends_on.push(json!(id));
        }
        if !shared.api_stages.contains(&api_stage) {
            shared.api_stages.push(api_stage);
        }
        if !shared.stage_keys.contains(&stage_key) {
            shared.stage_keys.push(stage_key);
        }
        let combined = shared.attributes(attrs)?;
        (
            "ServerlessUsagePlan".to_string(),
            "ServerlessApiKey".to_string(),
            "ServerlessUsagePlanKey".to_string(),
            combined,
            shared.api_stages.clone(),
            shared.stage_keys.clone(),
            shared.depends_on.clone(),
        )
    };
    let mut usage_plan = Cfn::with(plan_id.clone(), "AWS::ApiGateway::UsagePlan", &plan_attrs);
    usage_plan.attrs.insert("DependsOn".into(), Value::Array(depends_on));
    usage_plan.set("ApiStages", Value::Array(api_stages));
    for name in ["UsagePlanName", "Description", "Quota", "Tags", "Throttle"] {
        if let Some(v) = plan.get(name).filter(|v| crate::function::truthy(v)) {
            usage_plan.set(name, v.clone());
        }
    }
    let mut api_key = Cfn::with(key_id.clone(), "AWS::ApiGateway::ApiKey", &plan_attrs);
    api_key.attrs.insert("DependsOn".into(), json!([plan_id]));
    api_key.set("Enabled", true);
    api_key.set("StageKeys", Value::Array(stage_keys));
    let mut link = Cfn::with(link_id, "AWS::ApiGateway::UsagePlanKey", &plan_attrs);
    link.attrs.insert("DependsOn".into(), json!([key_id]));
    link.set("KeyId", json!({"Ref": key_id}));
    link.set("KeyType", "API_KEY");
    link.set("UsagePlanId", json!({"Ref": plan_id}));
    Ok(vec![usage_plan, api_key, link])
}
