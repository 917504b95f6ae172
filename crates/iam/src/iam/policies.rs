//! IAM: managed policies.

use super::*;

pub(super) fn policy(core: &Core, arn: &str) -> Result<Value> {
    db(core.store.get("policy", arn))?
        .ok_or_else(|| AwsError::new(404, "NoSuchEntity", format!("Policy {arn} was not found.")))
}

/// The policy as GetPolicy shows it: without its versions, with its attachment count.
pub(super) fn shown(core: &Core, mut doc: Value) -> Result<Value> {
    let arn = doc["Arn"].as_str().unwrap_or_default().to_owned();
    let count = db(core.store.list("attached", ""))?
        .iter()
        .filter(|(name, _)| name.ends_with(&format!("/{arn}")))
        .count();
    if let Some(o) = doc.as_object_mut() {
        o.remove("Versions");
        o.insert("AttachmentCount".into(), json!(count));
    }
    Ok(doc)
}

pub(super) fn create_policy(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "PolicyName")?;
    check_name("PolicyName", name, 128)?;
    let path = path_of(input)?;
    let document = document(input, "PolicyDocument")?;
    let arn = format!("arn:aws:iam::{}:policy{}{}", crate::sts::caller_account(core, request), path, name);
    let now = now_iso();
    let mut doc = json!({
        "PolicyName": name, "PolicyId": unique_id("ANPA"), "Arn": arn, "Path": path, "DefaultVersionId": "v1",
        "AttachmentCount": 0, "PermissionsBoundaryUsageCount": 0, "IsAttachable": true,
        "CreateDate": now, "UpdateDate": now,
        "Versions": [{"VersionId": "v1", "Document": document, "IsDefaultVersion": true, "CreateDate": now}],
    });
    if let Some(description) = text(input, "Description") {
        doc["Description"] = json!(description);
    }
    let tags = tags_of(input);
    if !tags.is_empty() {
        doc["Tags"] = Value::Array(tags);
    }
    if !db(core.store.create("policy", &arn, &doc))? {
        return Err(AwsError::new(
            409,
            "EntityAlreadyExists",
            format!("A policy called {name} already exists. Duplicate names are not allowed."),
        ));
    }
    Ok(Some(json!({"Policy": shown(core, doc)?})))
}

pub(super) fn get_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = policy(core, required(input, "PolicyArn")?)?;
    Ok(Some(json!({"Policy": shown(core, doc)?})))
}

pub(super) fn delete_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    let doc = shown(core, policy(core, arn)?)?;
    if doc["AttachmentCount"].as_u64().unwrap_or(0) > 0 {
        return Err(AwsError::new(409, "DeleteConflict", "Cannot delete a policy attached to entities."));
    }
    db(core.store.delete("policy", arn))?;
    Ok(None)
}

pub(super) fn list_policies(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let policies =
        if text(input, "Scope") == Some("AWS") { Vec::new() } else { db(core.store.list("policy", ""))? };
    let attached_only = text(input, "OnlyAttached") == Some("true");
    let mut shown_policies = Vec::new();
    for (arn, doc) in with_prefix(input, policies) {
        let doc = shown(core, doc)?;
        if !attached_only || doc["AttachmentCount"].as_u64().unwrap_or(0) > 0 {
            shown_policies.push((arn, doc));
        }
    }
    page(input, "Policies", shown_policies)
}

pub(super) fn get_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = policy(core, required(input, "PolicyArn")?)?;
    let id = required(input, "VersionId")?;
    let version = doc["Versions"].as_array().and_then(|v| v.iter().find(|v| v["VersionId"] == id)).cloned();
    let version = version
        .ok_or_else(|| AwsError::new(404, "NoSuchEntity", format!("Policy version {id} does not exist.")))?;
    Ok(Some(json!({"PolicyVersion": version})))
}

pub(super) fn list_policy_versions(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = policy(core, required(input, "PolicyArn")?)?;
    let versions: Vec<Value> = doc["Versions"].as_array().cloned().unwrap_or_default();
    let versions = versions
        .into_iter()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("Document");
            }
            v
        })
        .collect::<Vec<_>>();
    Ok(Some(json!({"Versions": versions, "IsTruncated": false})))
}

pub(super) fn create_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    let mut doc = policy(core, arn)?;
    let document = document(input, "PolicyDocument")?;
    let versions = doc["Versions"].as_array_mut().ok_or_else(|| validation("policy has no versions"))?;
    if versions.len() >= 5 {
        return Err(AwsError::new(409, "LimitExceeded", "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version."));
    }
    let next = versions
        .iter()
        .filter_map(|v| v["VersionId"].as_str()?.trim_start_matches('v').parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let default = text(input, "SetAsDefault") == Some("true");
    if default {
        versions.iter_mut().for_each(|v| v["IsDefaultVersion"] = json!(false));
    }
    let version = json!({"VersionId": format!("v{next}"), "Document": document, "IsDefaultVersion": default, "CreateDate": now_iso()});
    versions.push(version.clone());
    if default {
        doc["DefaultVersionId"] = json!(format!("v{next}"));
    }
    db(core.store.put("policy", arn, &doc))?;
    let mut shown_version = version;
    if let Some(o) = shown_version.as_object_mut() {
        o.remove("Document");
    }
    Ok(Some(json!({"PolicyVersion": shown_version})))
}
