//! IAM: instance profiles.

use super::*;

pub(super) fn profile(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("profile", name))?.ok_or_else(|| no_such("instance profile", name))
}

/// The profile as AWS shows it: its roles in full.
pub(super) fn profile_shown(core: &Core, mut doc: Value) -> Result<Value> {
    let names: Vec<Value> = doc["Roles"].as_array().cloned().unwrap_or_default();
    let mut roles = Vec::new();
    for name in names {
        if let Some(role) = db(core.store.get("role", name.as_str().unwrap_or_default()))? {
            roles.push(role);
        }
    }
    doc["Roles"] = Value::Array(roles);
    Ok(doc)
}

pub(super) fn create_instance_profile(
    core: &Core,
    request: &ApiRequest,
    input: &Value,
) -> Result<Option<Value>> {
    let name = required(input, "InstanceProfileName")?;
    check_name("InstanceProfileName", name, 128)?;
    let path = path_of(input)?;
    let doc = json!({
        "Path": path, "InstanceProfileName": name, "InstanceProfileId": unique_id("AIPA"),
        "Arn": format!("arn:aws:iam::{}:instance-profile{}{}", crate::sts::caller_account(core, request), path, name),
        "CreateDate": now_iso(), "Roles": [],
    });
    if !db(core.store.create("profile", name, &doc))? {
        return Err(exists("Instance Profile", name));
    }
    Ok(Some(json!({"InstanceProfile": doc})))
}

pub(super) fn get_instance_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = profile(core, required(input, "InstanceProfileName")?)?;
    Ok(Some(json!({"InstanceProfile": profile_shown(core, doc)?})))
}

pub(super) fn delete_instance_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "InstanceProfileName")?;
    let doc = profile(core, name)?;
    if doc["Roles"].as_array().is_some_and(|r| !r.is_empty()) {
        return Err(AwsError::new(
            409,
            "DeleteConflict",
            "Cannot delete entity, must remove roles from instance profile first.",
        ));
    }
    db(core.store.delete("profile", name))?;
    Ok(None)
}

pub(super) fn list_instance_profiles(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let mut profiles = Vec::new();
    for (name, doc) in with_prefix(input, db(core.store.list("profile", ""))?) {
        profiles.push((name, profile_shown(core, doc)?));
    }
    page(input, "InstanceProfiles", profiles)
}

pub(super) fn add_role_to_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "InstanceProfileName")?;
    let mut doc = profile(core, name)?;
    let role_name = required(input, "RoleName")?;
    role(core, role_name)?;
    let roles = doc["Roles"].as_array_mut().ok_or_else(|| validation("bad profile"))?;
    if !roles.is_empty() {
        return Err(AwsError::new(
            409,
            "LimitExceeded",
            "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
        ));
    }
    roles.push(json!(role_name));
    db(core.store.put("profile", name, &doc))?;
    Ok(None)
}

pub(super) fn remove_role_from_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "InstanceProfileName")?;
    let mut doc = profile(core, name)?;
    let role_name = required(input, "RoleName")?;
    let roles = doc["Roles"].as_array_mut().ok_or_else(|| validation("bad profile"))?;
    let before = roles.len();
    roles.retain(|r| r != role_name);
    if roles.len() == before {
        return Err(no_such("role", role_name));
    }
    db(core.store.put("profile", name, &doc))?;
    Ok(None)
}

pub(super) fn list_profiles_for_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let role_name = required(input, "RoleName")?;
    role(core, role_name)?;
    let mut profiles = Vec::new();
    for (name, doc) in db(core.store.list("profile", ""))? {
        if doc["Roles"].as_array().is_some_and(|r| r.iter().any(|r| r == role_name)) {
            profiles.push((name, profile_shown(core, doc)?));
        }
    }
    page(input, "InstanceProfiles", profiles)
}
