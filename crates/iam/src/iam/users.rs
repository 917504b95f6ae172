//! IAM: users and access keys.

use super::*;

pub(super) fn create_user(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "UserName")?;
    check_name("UserName", name, 64)?;
    let path = path_of(input)?;
    let mut doc = json!({
        "Path": path,
        "UserName": name,
        "UserId": unique_id("AIDA"),
        "Arn": format!("arn:aws:iam::{}:user{}{}", crate::sts::caller_account(core, request), path, name),
        "CreateDate": now_iso(),
    });
    let tags = tags_of(input);
    if !tags.is_empty() {
        doc["Tags"] = Value::Array(tags);
    }
    if !db(core.store.create("user", name, &doc))? {
        return Err(exists("User", name));
    }
    Ok(Some(json!({"User": doc})))
}

pub(super) fn get_user(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = match text(input, "UserName") {
        Some(name) => name.to_owned(),
        None => {
            // The caller: the user owning the access key, or the account's root.
            let key = crate::sts::access_key(request).unwrap_or_default();
            match db(core.store.get("key", &key))? {
                Some(key) => key["UserName"].as_str().unwrap_or_default().to_owned(),
                None => {
                    let account = crate::sts::caller_account(core, request);
                    let root = json!({"UserId": account, "Arn": format!("arn:aws:iam::{account}:root"),
                                      "CreateDate": now_iso(), "Path": "/", "UserName": ""});
                    return Ok(Some(json!({"User": root})));
                }
            }
        }
    };
    let doc = db(core.store.get("user", &name))?.ok_or_else(|| no_such("user", &name))?;
    Ok(Some(json!({"User": doc})))
}

pub(super) fn list_users(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    page(input, "Users", with_prefix(input, db(core.store.list("user", ""))?))
}

pub(super) fn delete_user(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = principal(core, "user", input)?;
    let prefix = format!("user/{name}/");
    let keys = db(core.store.list("key", ""))?;
    let has_keys = keys.iter().any(|(_, k)| k["UserName"] == name.as_str())
        || db(core.store.list("member", ""))?.iter().any(|(_, m)| m["UserName"] == name.as_str());
    if has_keys
        || !db(core.store.list("attached", &prefix))?.is_empty()
        || !db(core.store.list("inline", &prefix))?.is_empty()
    {
        return Err(AwsError::new(
            409,
            "DeleteConflict",
            "Cannot delete entity, must delete policies and access keys first.",
        ));
    }
    db(core.store.delete("user", &name))?;
    Ok(None)
}

pub(super) fn create_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    if text(input, "UserName").is_none() {
        return Err(validation("Must specify userName when calling with non-User credentials"));
    }
    let user = principal(core, "user", input)?;
    let secret: String =
        format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())[..40].to_owned();
    let id = unique_id("AKIA")[..20].to_owned();
    let doc = json!({"UserName": user, "AccessKeyId": id, "Status": "Active", "SecretAccessKey": secret, "CreateDate": now_iso()});
    db(core.store.put("key", &id, &doc))?;
    Ok(Some(json!({"AccessKey": doc})))
}

pub(super) fn list_access_keys(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let user = principal(core, "user", input)?;
    let keys = db(core.store.list("key", ""))?
        .into_iter()
        .filter(|(_, k)| k["UserName"] == user.as_str())
        .map(|(id, mut k)| {
            if let Some(o) = k.as_object_mut() {
                o.remove("SecretAccessKey");
            }
            (id, k)
        })
        .collect();
    page(input, "AccessKeyMetadata", keys)
}

pub(super) fn access_key(core: &Core, input: &Value) -> Result<(String, Value)> {
    let id = required(input, "AccessKeyId")?;
    let key = db(core.store.get("key", id))?
        .filter(|k| text(input, "UserName").is_none_or(|u| k["UserName"] == u))
        .ok_or_else(|| {
            AwsError::new(404, "NoSuchEntity", format!("The Access Key with id {id} cannot be found."))
        })?;
    Ok((id.to_owned(), key))
}

pub(super) fn delete_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let (id, _) = access_key(core, input)?;
    db(core.store.delete("key", &id))?;
    Ok(None)
}

pub(super) fn update_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let (id, mut key) = access_key(core, input)?;
    let status = required(input, "Status")?;
    if status != "Active" && status != "Inactive" {
        return Err(validation(format!("1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")));
    }
    key["Status"] = json!(status);
    db(core.store.put("key", &id, &key))?;
    Ok(None)
}
