//! IAM: roles.

use super::*;

pub(super) fn role(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("role", name))?.ok_or_else(|| no_such("role", name))
}

pub(super) fn create_role(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    check_name("RoleName", name, 64)?;
    let path = path_of(input)?;
    let policy = document(input, "AssumeRolePolicyDocument")?;
    let max_session: i64 = text(input, "MaxSessionDuration").and_then(|m| m.parse().ok()).unwrap_or(3600);
    if !(3600..=43200).contains(&max_session) {
        return Err(validation(
            "The requested MaxSessionDuration is invalid: it must be between 3600 and 43200 seconds.",
        ));
    }
    let mut doc = json!({
        "Path": path,
        "RoleName": name,
        "RoleId": unique_id("AROA"),
        "Arn": format!("arn:aws:iam::{}:role{}{}", crate::sts::caller_account(core, request), path, name),
        "CreateDate": now_iso(),
        "AssumeRolePolicyDocument": policy,
        "MaxSessionDuration": max_session,
    });
    if let Some(description) = text(input, "Description") {
        doc["Description"] = json!(description);
    }
    if let Some(boundary) = text(input, "PermissionsBoundary") {
        doc["PermissionsBoundary"] =
            json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary});
    }
    let tags = tags_of(input);
    if !tags.is_empty() {
        doc["Tags"] = Value::Array(tags);
    }
    if !db(core.store.create("role", name, &doc))? {
        return Err(exists("Role", name));
    }
    Ok(Some(json!({"Role": doc})))
}

pub(super) fn get_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let mut doc = role(core, required(input, "RoleName")?)?;
    doc["RoleLastUsed"] = json!({});
    Ok(Some(json!({"Role": doc})))
}

pub(super) fn list_roles(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let roles = with_prefix(input, db(core.store.list("role", ""))?);
    let roles = roles
        .into_iter()
        .map(|(n, mut v)| {
            if let Some(o) = v.as_object_mut() {
                o.remove("Tags");
            }
            (n, v)
        })
        .collect();
    page(input, "Roles", roles)
}

pub(super) fn delete_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    role(core, name)?;
    let prefix = format!("role/{name}/");
    let attached = !db(core.store.list("attached", &prefix))?.is_empty();
    let inline = !db(core.store.list("inline", &prefix))?.is_empty();
    if attached || inline {
        let what = if attached { "detach all policies" } else { "delete all inline policies" };
        return Err(AwsError::new(
            409,
            "DeleteConflict",
            format!("Cannot delete entity, must {what} first."),
        ));
    }
    let profiles = db(core.store.list("profile", ""))?;
    if profiles.iter().any(|(_, p)| p["Roles"].as_array().is_some_and(|r| r.iter().any(|r| r == name))) {
        return Err(AwsError::new(
            409,
            "DeleteConflict",
            "Cannot delete entity, must remove roles from instance profile first.",
        ));
    }
    db(core.store.delete("role", name))?;
    Ok(None)
}

pub(super) fn update_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    if let Some(description) = text(input, "Description") {
        doc["Description"] = json!(description);
    }
    if let Some(max) = text(input, "MaxSessionDuration").and_then(|m| m.parse::<i64>().ok()) {
        doc["MaxSessionDuration"] = json!(max);
    }
    db(core.store.put("role", name, &doc))?;
    Ok(Some(json!({})))
}

pub(super) fn update_assume_role_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    doc["AssumeRolePolicyDocument"] = json!(document(input, "PolicyDocument")?);
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

pub(super) fn merge_tags(existing: &Value, new: Vec<Value>) -> Value {
    let mut tags: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    for tag in new {
        tags.retain(|t| t["Key"] != tag["Key"]);
        tags.push(tag);
    }
    Value::Array(tags)
}

pub(super) fn tag_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    doc["Tags"] = merge_tags(&doc["Tags"], tags_of(input));
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

pub(super) fn untag_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    let keys = input.get("TagKeys").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(tags) = doc["Tags"].as_array_mut() {
        tags.retain(|t| !keys.contains(&t["Key"]));
    }
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

pub(super) fn list_role_tags(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = role(core, required(input, "RoleName")?)?;
    let tags = doc["Tags"].as_array().cloned().unwrap_or_default();
    Ok(Some(json!({"Tags": tags, "IsTruncated": false})))
}
