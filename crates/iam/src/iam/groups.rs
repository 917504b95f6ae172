//! IAM: groups.

use super::*;

pub(super) fn group(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("group", name))?.ok_or_else(|| no_such("group", name))
}

pub(super) fn create_group(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    check_name("GroupName", name, 128)?;
    let path = path_of(input)?;
    let doc = json!({
        "Path": path, "GroupName": name, "GroupId": unique_id("AGPA"),
        "Arn": format!("arn:aws:iam::{}:group{}{}", crate::sts::caller_account(core, request), path, name), "CreateDate": now_iso(),
    });
    if !db(core.store.create("group", name, &doc))? {
        return Err(exists("Group", name));
    }
    Ok(Some(json!({"Group": doc})))
}

pub(super) fn members(core: &Core, group: &str) -> Result<Vec<String>> {
    let rows = db(core.store.list("member", &format!("{group}/")))?;
    Ok(rows.into_iter().filter_map(|(_, v)| v["UserName"].as_str().map(str::to_owned)).collect())
}

pub(super) fn get_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    let doc = group(core, name)?;
    let mut users = Vec::new();
    for user in members(core, name)? {
        if let Some(user) = db(core.store.get("user", &user))? {
            users.push(user);
        }
    }
    Ok(Some(json!({"Group": doc, "Users": users, "IsTruncated": false})))
}

pub(super) fn list_groups(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    page(input, "Groups", with_prefix(input, db(core.store.list("group", ""))?))
}

pub(super) fn delete_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    group(core, name)?;
    let prefix = format!("group/{name}/");
    if !members(core, name)?.is_empty()
        || !db(core.store.list("attached", &prefix))?.is_empty()
        || !db(core.store.list("inline", &prefix))?.is_empty()
    {
        return Err(AwsError::new(
            409,
            "DeleteConflict",
            "Cannot delete entity, must remove users and policies from group first.",
        ));
    }
    db(core.store.delete("group", name))?;
    Ok(None)
}

pub(super) fn add_user_to_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    group(core, name)?;
    let user = principal(core, "user", input)?;
    db(core.store.put("member", &format!("{name}/{user}"), &json!({"GroupName": name, "UserName": user})))?;
    Ok(None)
}

pub(super) fn remove_user_from_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    group(core, name)?;
    let user = principal(core, "user", input)?;
    if !db(core.store.delete("member", &format!("{name}/{user}")))? {
        return Err(no_such("user", &user));
    }
    Ok(None)
}

pub(super) fn list_groups_for_user(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let user = principal(core, "user", input)?;
    let mut groups = Vec::new();
    for (key, member) in db(core.store.list("member", ""))? {
        if member["UserName"] == user.as_str() {
            if let Some(doc) = db(core.store.get("group", member["GroupName"].as_str().unwrap_or_default()))?
            {
                groups.push((key, doc));
            }
        }
    }
    page(input, "Groups", groups)
}
