//! IAM: attached (managed) and inline policies of roles, users and groups.

use super::*;

pub(super) fn principal_field(kind: &str) -> &'static str {
    match kind {
        "role" => "RoleName",
        "group" => "GroupName",
        _ => "UserName",
    }
}

pub(super) fn principal(core: &Core, kind: &str, input: &Value) -> Result<String> {
    let field = principal_field(kind);
    let name = required(input, field)?;
    match db(core.store.get(kind, name))? {
        Some(_) => Ok(name.to_owned()),
        None => Err(no_such(kind, name)),
    }
}

/// A managed policy that can be attached: one created here, or any AWS managed policy.
pub(super) fn attachable(core: &Core, arn: &str) -> Result<Value> {
    if let Some(policy) = db(core.store.get("policy", arn))? {
        return Ok(policy);
    }
    match arn.strip_prefix("arn:aws:iam::aws:policy/") {
        Some(rest) => Ok(json!({"PolicyName": rest.rsplit('/').next().unwrap_or(rest), "Arn": arn})),
        None if arn.starts_with("arn:aws:iam::") => Err(AwsError::new(
            404,
            "NoSuchEntity",
            format!("Policy {arn} does not exist or is not attachable."),
        )),
        None => Err(AwsError::new(400, "InvalidInput", format!("ARN {arn} is not valid."))),
    }
}

pub(super) fn attach(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let arn = required(input, "PolicyArn")?;
    let policy = attachable(core, arn)?;
    let doc = json!({"PolicyName": policy["PolicyName"], "PolicyArn": arn});
    db(core.store.put("attached", &format!("{kind}/{name}/{arn}"), &doc))?;
    Ok(None)
}

pub(super) fn detach(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let arn = required(input, "PolicyArn")?;
    if !db(core.store.delete("attached", &format!("{kind}/{name}/{arn}")))? {
        return Err(AwsError::new(404, "NoSuchEntity", format!("Policy {arn} was not found.")));
    }
    Ok(None)
}

pub(super) fn list_attached(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let attached = db(core.store.list("attached", &format!("{kind}/{name}/")))?;
    page(input, "AttachedPolicies", attached)
}

pub(super) fn put_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    check_name("PolicyName", policy, 128)?;
    let document = document(input, "PolicyDocument")?;
    let doc = json!({principal_field(kind): name, "PolicyName": policy, "PolicyDocument": document});
    db(core.store.put("inline", &format!("{kind}/{name}/{policy}"), &doc))?;
    Ok(None)
}

pub(super) fn get_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    let doc = db(core.store.get("inline", &format!("{kind}/{name}/{policy}")))?;
    doc.map(Some).ok_or_else(|| no_such(&format!("{kind} policy"), policy))
}

pub(super) fn delete_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    if !db(core.store.delete("inline", &format!("{kind}/{name}/{policy}")))? {
        return Err(no_such(&format!("{kind} policy"), policy));
    }
    Ok(None)
}

pub(super) fn list_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let names = db(core.store.list("inline", &format!("{kind}/{name}/")))?
        .into_iter()
        .map(|(key, doc)| (key, doc["PolicyName"].clone()))
        .collect();
    page(input, "PolicyNames", names)
}
