//! IAM: tags of users, policies and instance profiles; policy versions and the entities a
//! policy is attached to; the account summary.

use super::*;

pub(super) fn tagged(core: &Core, input: &Value, kind: &str, field: &str) -> Result<(String, Value)> {
    let name = required(input, field)?;
    let what = match kind {
        "policy" => return Ok((name.to_owned(), policy(core, name)?)),
        "profile" => "instance profile",
        other => other,
    };
    let doc = db(core.store.get(kind, name))?.ok_or_else(|| no_such(what, name))?;
    Ok((name.to_owned(), doc))
}

pub(super) fn tag(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (name, mut doc) = tagged(core, input, kind, field)?;
    doc["Tags"] = merge_tags(&doc["Tags"], tags_of(input));
    db(core.store.put(kind, &name, &doc))?;
    Ok(None)
}

pub(super) fn untag(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (name, mut doc) = tagged(core, input, kind, field)?;
    let keys = input.get("TagKeys").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(tags) = doc["Tags"].as_array_mut() {
        tags.retain(|t| !keys.contains(&t["Key"]));
    }
    db(core.store.put(kind, &name, &doc))?;
    Ok(None)
}

pub(super) fn list_tags(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (_, doc) = tagged(core, input, kind, field)?;
    Ok(Some(json!({"Tags": doc["Tags"].as_array().cloned().unwrap_or_default(), "IsTruncated": false})))
}

pub(super) fn list_entities_for_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    attachable(core, arn)?;
    let (mut roles, mut users, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for (key, _) in db(core.store.list("attached", ""))? {
        let mut parts = key.splitn(3, '/');
        let (Some(kind), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if rest != arn {
            continue;
        }
        let id_field = match kind {
            "role" => "RoleId",
            "user" => "UserId",
            _ => "GroupId",
        };
        let id = db(core.store.get(kind, name))?.map(|d| d[id_field].clone()).unwrap_or(Value::Null);
        let entry = |name_field: &str| json!({name_field: name, id_field: id});
        match kind {
            "role" => roles.push(entry("RoleName")),
            "user" => users.push(entry("UserName")),
            _ => groups.push(entry("GroupName")),
        }
    }
    Ok(Some(
        json!({"PolicyRoles": roles, "PolicyUsers": users, "PolicyGroups": groups, "IsTruncated": false}),
    ))
}

pub(super) fn delete_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    let id = required(input, "VersionId")?;
    let mut doc = policy(core, arn)?;
    if doc["DefaultVersionId"] == id {
        return Err(AwsError::new(409, "DeleteConflict", "Cannot delete the default version of a policy."));
    }
    let versions = doc["Versions"].as_array_mut().ok_or_else(|| validation("policy has no versions"))?;
    let before = versions.len();
    versions.retain(|v| v["VersionId"] != id);
    if versions.len() == before {
        return Err(AwsError::new(404, "NoSuchEntity", format!("Policy version {id} does not exist.")));
    }
    db(core.store.put("policy", arn, &doc))?;
    Ok(None)
}

pub(super) fn set_default_policy_version(
    core: &Core,
    _: &ApiRequest,
    input: &Value,
) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    let id = required(input, "VersionId")?;
    let mut doc = policy(core, arn)?;
    let versions = doc["Versions"].as_array_mut().ok_or_else(|| validation("policy has no versions"))?;
    if !versions.iter().any(|v| v["VersionId"] == id) {
        return Err(AwsError::new(404, "NoSuchEntity", format!("Policy version {id} does not exist.")));
    }
    versions.iter_mut().for_each(|v| {
        let is_default = v["VersionId"] == id;
        v["IsDefaultVersion"] = json!(is_default);
    });
    doc["DefaultVersionId"] = json!(id);
    db(core.store.put("policy", arn, &doc))?;
    Ok(None)
}

pub(super) fn get_account_summary(core: &Core, _: &ApiRequest, _: &Value) -> Result<Option<Value>> {
    let count = |kind: &str| -> Result<usize> { Ok(db(core.store.list(kind, ""))?.len()) };
    let mut summary = serde_json::Map::new();
    for (name, value) in [
        ("Users", count("user")?),
        ("Roles", count("role")?),
        ("Groups", count("group")?),
        ("Policies", count("policy")?),
        ("InstanceProfiles", count("profile")?),
        ("UsersQuota", 5000),
        ("RolesQuota", 1000),
        ("GroupsQuota", 300),
        ("PoliciesQuota", 1500),
        ("AccessKeysPerUserQuota", 2),
        ("AttachedPoliciesPerRoleQuota", 10),
    ] {
        summary.insert(name.into(), json!(value));
    }
    // A map shape: `<entry><key/><value/></entry>` in the Query protocol.
    let entries: Vec<Value> = summary.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    Ok(Some(json!({"SummaryMap": {"entry": entries}})))
}
