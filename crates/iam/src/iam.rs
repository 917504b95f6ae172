//! IAM actions: roles, users, managed and inline policies, attachments, access keys, instance
//! profiles. Entities are stored as the JSON of their AWS shape.

use nimbus_api::{ApiRequest, AwsError};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::{db_error, Core, Handler, Result};

pub fn handler(action: &str) -> Option<Handler> {
    Some(match action {
        "CreateRole" => create_role,
        "GetRole" => get_role,
        "ListRoles" => list_roles,
        "DeleteRole" => delete_role,
        "UpdateRole" => update_role,
        "UpdateAssumeRolePolicy" => update_assume_role_policy,
        "TagRole" => tag_role,
        "UntagRole" => untag_role,
        "ListRoleTags" => list_role_tags,
        "AttachRolePolicy" => |c, r, i| attach(c, r, i, "role"),
        "DetachRolePolicy" => |c, r, i| detach(c, r, i, "role"),
        "ListAttachedRolePolicies" => |c, r, i| list_attached(c, r, i, "role"),
        "PutRolePolicy" => |c, r, i| put_inline(c, r, i, "role"),
        "GetRolePolicy" => |c, r, i| get_inline(c, r, i, "role"),
        "DeleteRolePolicy" => |c, r, i| delete_inline(c, r, i, "role"),
        "ListRolePolicies" => |c, r, i| list_inline(c, r, i, "role"),
        "CreateUser" => create_user,
        "GetUser" => get_user,
        "ListUsers" => list_users,
        "DeleteUser" => delete_user,
        "AttachUserPolicy" => |c, r, i| attach(c, r, i, "user"),
        "DetachUserPolicy" => |c, r, i| detach(c, r, i, "user"),
        "ListAttachedUserPolicies" => |c, r, i| list_attached(c, r, i, "user"),
        "PutUserPolicy" => |c, r, i| put_inline(c, r, i, "user"),
        "GetUserPolicy" => |c, r, i| get_inline(c, r, i, "user"),
        "DeleteUserPolicy" => |c, r, i| delete_inline(c, r, i, "user"),
        "ListUserPolicies" => |c, r, i| list_inline(c, r, i, "user"),
        "CreatePolicy" => create_policy,
        "GetPolicy" => get_policy,
        "DeletePolicy" => delete_policy,
        "ListPolicies" => list_policies,
        "GetPolicyVersion" => get_policy_version,
        "ListPolicyVersions" => list_policy_versions,
        "CreatePolicyVersion" => create_policy_version,
        "CreateAccessKey" => create_access_key,
        "ListAccessKeys" => list_access_keys,
        "DeleteAccessKey" => delete_access_key,
        "UpdateAccessKey" => update_access_key,
        "CreateInstanceProfile" => create_instance_profile,
        "GetInstanceProfile" => get_instance_profile,
        "DeleteInstanceProfile" => delete_instance_profile,
        "ListInstanceProfiles" => list_instance_profiles,
        "AddRoleToInstanceProfile" => add_role_to_profile,
        "RemoveRoleFromInstanceProfile" => remove_role_from_profile,
        "ListInstanceProfilesForRole" => list_profiles_for_role,
        "CreateGroup" => create_group,
        "GetGroup" => get_group,
        "ListGroups" => list_groups,
        "DeleteGroup" => delete_group,
        "AddUserToGroup" => add_user_to_group,
        "RemoveUserFromGroup" => remove_user_from_group,
        "ListGroupsForUser" => list_groups_for_user,
        "AttachGroupPolicy" => |c, r, i| attach(c, r, i, "group"),
        "DetachGroupPolicy" => |c, r, i| detach(c, r, i, "group"),
        "ListAttachedGroupPolicies" => |c, r, i| list_attached(c, r, i, "group"),
        "PutGroupPolicy" => |c, r, i| put_inline(c, r, i, "group"),
        "GetGroupPolicy" => |c, r, i| get_inline(c, r, i, "group"),
        "DeleteGroupPolicy" => |c, r, i| delete_inline(c, r, i, "group"),
        "ListGroupPolicies" => |c, r, i| list_inline(c, r, i, "group"),
        "TagUser" => |c, _, i| tag(c, i, "user", "UserName"),
        "UntagUser" => |c, _, i| untag(c, i, "user", "UserName"),
        "ListUserTags" => |c, _, i| list_tags(c, i, "user", "UserName"),
        "TagPolicy" => |c, _, i| tag(c, i, "policy", "PolicyArn"),
        "UntagPolicy" => |c, _, i| untag(c, i, "policy", "PolicyArn"),
        "ListPolicyTags" => |c, _, i| list_tags(c, i, "policy", "PolicyArn"),
        "TagInstanceProfile" => |c, _, i| tag(c, i, "profile", "InstanceProfileName"),
        "UntagInstanceProfile" => |c, _, i| untag(c, i, "profile", "InstanceProfileName"),
        "ListInstanceProfileTags" => |c, _, i| list_tags(c, i, "profile", "InstanceProfileName"),
        "ListEntitiesForPolicy" => list_entities_for_policy,
        "DeletePolicyVersion" => delete_policy_version,
        "SetDefaultPolicyVersion" => set_default_policy_version,
        "GetAccountSummary" => get_account_summary,
        "ListAccountAliases" => |_, _, _| Ok(Some(json!({"AccountAliases": [], "IsTruncated": false}))),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers

pub(crate) fn text<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

pub(crate) fn required<'a>(input: &'a Value, name: &str) -> Result<&'a str> {
    text(input, name).ok_or_else(|| {
        let member = format!("{}{}", name[..1].to_ascii_lowercase(), &name[1..]);
        validation(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"))
    })
}

pub(crate) fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

fn no_such(what: &str, name: &str) -> AwsError {
    AwsError::new(404, "NoSuchEntity", format!("The {what} with name {name} cannot be found."))
}

fn exists(what: &str, name: &str) -> AwsError {
    AwsError::new(409, "EntityAlreadyExists", format!("{what} with name {name} already exists."))
}

/// `2024-05-01T12:00:00Z`.
pub(crate) fn now_iso() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

pub(crate) fn iso_at(unix_s: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An AWS-style unique id: a four-letter prefix and 17 uppercase characters.
pub(crate) fn unique_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase();
    format!("{prefix}{}", &hex[..17])
}

fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        return Ok(());
    }
    let member = format!("{}{}", field[..1].to_ascii_lowercase(), &field[1..]);
    Err(validation(format!(
        "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: [\\w+=,.@-]+"
    )))
}

fn path_of(input: &Value) -> Result<String> {
    let path = text(input, "Path").unwrap_or("/");
    if !path.starts_with('/') || !path.ends_with('/') || path.len() > 512 {
        return Err(validation("The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters."));
    }
    Ok(path.to_owned())
}

/// A policy document, checked to be JSON and URL-encoded as IAM returns documents.
fn document(input: &Value, field: &str) -> Result<String> {
    let raw = required(input, field)?;
    if serde_json::from_str::<Value>(raw).map(|v| !v.is_object()).unwrap_or(true) {
        return Err(AwsError::new(400, "MalformedPolicyDocument", "This policy contains invalid Json"));
    }
    Ok(utf8_percent_encode(raw, NON_ALPHANUMERIC).to_string())
}

fn tags_of(input: &Value) -> Vec<Value> {
    input.get("Tags").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn db<T>(result: std::result::Result<T, nimbus_store::DbError>) -> Result<T> {
    result.map_err(db_error)
}

/// One page of `items` (sorted by name) after `Marker`, at most `MaxItems` (default 100).
fn page(input: &Value, list: &str, items: Vec<(String, Value)>) -> Result<Option<Value>> {
    let max = match text(input, "MaxItems") {
        Some(text) => text.parse::<usize>().ok().filter(|m| (1..=1000).contains(m)).ok_or_else(|| {
            validation(format!("1 validation error detected: Value '{text}' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"))
        })?,
        None => 100,
    };
    let marker = text(input, "Marker").unwrap_or("");
    let rest: Vec<(String, Value)> =
        items.into_iter().filter(|(name, _)| marker.is_empty() || name.as_str() > marker).collect();
    let truncated = rest.len() > max;
    let shown: Vec<(String, Value)> = rest.into_iter().take(max).collect();
    let mut out = Map::new();
    if truncated {
        out.insert("Marker".into(), json!(shown.last().map(|(n, _)| n.clone()).unwrap_or_default()));
    }
    out.insert(list.into(), Value::Array(shown.into_iter().map(|(_, v)| v).collect()));
    out.insert("IsTruncated".into(), json!(truncated));
    Ok(Some(Value::Object(out)))
}

fn with_prefix(input: &Value, items: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let prefix = text(input, "PathPrefix").unwrap_or("/");
    items.into_iter().filter(|(_, v)| v["Path"].as_str().unwrap_or("/").starts_with(prefix)).collect()
}

// ---------------------------------------------------------------------------------------------
// Roles

fn role(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("role", name))?.ok_or_else(|| no_such("role", name))
}

fn create_role(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let mut doc = role(core, required(input, "RoleName")?)?;
    doc["RoleLastUsed"] = json!({});
    Ok(Some(json!({"Role": doc})))
}

fn list_roles(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn delete_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn update_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn update_assume_role_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    doc["AssumeRolePolicyDocument"] = json!(document(input, "PolicyDocument")?);
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

fn merge_tags(existing: &Value, new: Vec<Value>) -> Value {
    let mut tags: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    for tag in new {
        tags.retain(|t| t["Key"] != tag["Key"]);
        tags.push(tag);
    }
    Value::Array(tags)
}

fn tag_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    doc["Tags"] = merge_tags(&doc["Tags"], tags_of(input));
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

fn untag_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "RoleName")?;
    let mut doc = role(core, name)?;
    let keys = input.get("TagKeys").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(tags) = doc["Tags"].as_array_mut() {
        tags.retain(|t| !keys.contains(&t["Key"]));
    }
    db(core.store.put("role", name, &doc))?;
    Ok(None)
}

fn list_role_tags(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = role(core, required(input, "RoleName")?)?;
    let tags = doc["Tags"].as_array().cloned().unwrap_or_default();
    Ok(Some(json!({"Tags": tags, "IsTruncated": false})))
}

// ---------------------------------------------------------------------------------------------
// Attached and inline policies of roles and users

fn principal_field(kind: &str) -> &'static str {
    match kind {
        "role" => "RoleName",
        "group" => "GroupName",
        _ => "UserName",
    }
}

fn principal(core: &Core, kind: &str, input: &Value) -> Result<String> {
    let field = principal_field(kind);
    let name = required(input, field)?;
    match db(core.store.get(kind, name))? {
        Some(_) => Ok(name.to_owned()),
        None => Err(no_such(kind, name)),
    }
}

/// A managed policy that can be attached: one created here, or any AWS managed policy.
fn attachable(core: &Core, arn: &str) -> Result<Value> {
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

fn attach(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let arn = required(input, "PolicyArn")?;
    let policy = attachable(core, arn)?;
    let doc = json!({"PolicyName": policy["PolicyName"], "PolicyArn": arn});
    db(core.store.put("attached", &format!("{kind}/{name}/{arn}"), &doc))?;
    Ok(None)
}

fn detach(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let arn = required(input, "PolicyArn")?;
    if !db(core.store.delete("attached", &format!("{kind}/{name}/{arn}")))? {
        return Err(AwsError::new(404, "NoSuchEntity", format!("Policy {arn} was not found.")));
    }
    Ok(None)
}

fn list_attached(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let attached = db(core.store.list("attached", &format!("{kind}/{name}/")))?;
    page(input, "AttachedPolicies", attached)
}

fn put_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    check_name("PolicyName", policy, 128)?;
    let document = document(input, "PolicyDocument")?;
    let doc = json!({principal_field(kind): name, "PolicyName": policy, "PolicyDocument": document});
    db(core.store.put("inline", &format!("{kind}/{name}/{policy}"), &doc))?;
    Ok(None)
}

fn get_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    let doc = db(core.store.get("inline", &format!("{kind}/{name}/{policy}")))?;
    doc.map(Some).ok_or_else(|| no_such(&format!("{kind} policy"), policy))
}

fn delete_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let policy = required(input, "PolicyName")?;
    if !db(core.store.delete("inline", &format!("{kind}/{name}/{policy}")))? {
        return Err(no_such(&format!("{kind} policy"), policy));
    }
    Ok(None)
}

fn list_inline(core: &Core, _: &ApiRequest, input: &Value, kind: &str) -> Result<Option<Value>> {
    let name = principal(core, kind, input)?;
    let names = db(core.store.list("inline", &format!("{kind}/{name}/")))?
        .into_iter()
        .map(|(key, doc)| (key, doc["PolicyName"].clone()))
        .collect();
    page(input, "PolicyNames", names)
}

// ---------------------------------------------------------------------------------------------
// Users and access keys

fn create_user(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_user(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn list_users(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    page(input, "Users", with_prefix(input, db(core.store.list("user", ""))?))
}

fn delete_user(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn create_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn list_access_keys(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn access_key(core: &Core, input: &Value) -> Result<(String, Value)> {
    let id = required(input, "AccessKeyId")?;
    let key = db(core.store.get("key", id))?
        .filter(|k| text(input, "UserName").is_none_or(|u| k["UserName"] == u))
        .ok_or_else(|| {
            AwsError::new(404, "NoSuchEntity", format!("The Access Key with id {id} cannot be found."))
        })?;
    Ok((id.to_owned(), key))
}

fn delete_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let (id, _) = access_key(core, input)?;
    db(core.store.delete("key", &id))?;
    Ok(None)
}

fn update_access_key(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let (id, mut key) = access_key(core, input)?;
    let status = required(input, "Status")?;
    if status != "Active" && status != "Inactive" {
        return Err(validation(format!("1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")));
    }
    key["Status"] = json!(status);
    db(core.store.put("key", &id, &key))?;
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Managed policies

fn policy(core: &Core, arn: &str) -> Result<Value> {
    db(core.store.get("policy", arn))?
        .ok_or_else(|| AwsError::new(404, "NoSuchEntity", format!("Policy {arn} was not found.")))
}

/// The policy as GetPolicy shows it: without its versions, with its attachment count.
fn shown(core: &Core, mut doc: Value) -> Result<Value> {
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

fn create_policy(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = policy(core, required(input, "PolicyArn")?)?;
    Ok(Some(json!({"Policy": shown(core, doc)?})))
}

fn delete_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let arn = required(input, "PolicyArn")?;
    let doc = shown(core, policy(core, arn)?)?;
    if doc["AttachmentCount"].as_u64().unwrap_or(0) > 0 {
        return Err(AwsError::new(409, "DeleteConflict", "Cannot delete a policy attached to entities."));
    }
    db(core.store.delete("policy", arn))?;
    Ok(None)
}

fn list_policies(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = policy(core, required(input, "PolicyArn")?)?;
    let id = required(input, "VersionId")?;
    let version = doc["Versions"].as_array().and_then(|v| v.iter().find(|v| v["VersionId"] == id)).cloned();
    let version = version
        .ok_or_else(|| AwsError::new(404, "NoSuchEntity", format!("Policy version {id} does not exist.")))?;
    Ok(Some(json!({"PolicyVersion": version})))
}

fn list_policy_versions(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn create_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

// ---------------------------------------------------------------------------------------------
// Instance profiles

fn profile(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("profile", name))?.ok_or_else(|| no_such("instance profile", name))
}

/// The profile as AWS shows it: its roles in full.
fn profile_shown(core: &Core, mut doc: Value) -> Result<Value> {
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

fn create_instance_profile(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_instance_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let doc = profile(core, required(input, "InstanceProfileName")?)?;
    Ok(Some(json!({"InstanceProfile": profile_shown(core, doc)?})))
}

fn delete_instance_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn list_instance_profiles(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let mut profiles = Vec::new();
    for (name, doc) in with_prefix(input, db(core.store.list("profile", ""))?) {
        profiles.push((name, profile_shown(core, doc)?));
    }
    page(input, "InstanceProfiles", profiles)
}

fn add_role_to_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn remove_role_from_profile(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn list_profiles_for_role(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

// ---------------------------------------------------------------------------------------------
// Groups

fn group(core: &Core, name: &str) -> Result<Value> {
    db(core.store.get("group", name))?.ok_or_else(|| no_such("group", name))
}

fn create_group(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn members(core: &Core, group: &str) -> Result<Vec<String>> {
    let rows = db(core.store.list("member", &format!("{group}/")))?;
    Ok(rows.into_iter().filter_map(|(_, v)| v["UserName"].as_str().map(str::to_owned)).collect())
}

fn get_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn list_groups(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    page(input, "Groups", with_prefix(input, db(core.store.list("group", ""))?))
}

fn delete_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn add_user_to_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    group(core, name)?;
    let user = principal(core, "user", input)?;
    db(core.store.put("member", &format!("{name}/{user}"), &json!({"GroupName": name, "UserName": user})))?;
    Ok(None)
}

fn remove_user_from_group(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let name = required(input, "GroupName")?;
    group(core, name)?;
    let user = principal(core, "user", input)?;
    if !db(core.store.delete("member", &format!("{name}/{user}")))? {
        return Err(no_such("user", &user));
    }
    Ok(None)
}

fn list_groups_for_user(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

// ---------------------------------------------------------------------------------------------
// Tags of users, policies and instance profiles; policy versions and entities; the summary

fn tagged(core: &Core, input: &Value, kind: &str, field: &str) -> Result<(String, Value)> {
    let name = required(input, field)?;
    let what = match kind {
        "policy" => return Ok((name.to_owned(), policy(core, name)?)),
        "profile" => "instance profile",
        other => other,
    };
    let doc = db(core.store.get(kind, name))?.ok_or_else(|| no_such(what, name))?;
    Ok((name.to_owned(), doc))
}

fn tag(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (name, mut doc) = tagged(core, input, kind, field)?;
    doc["Tags"] = merge_tags(&doc["Tags"], tags_of(input));
    db(core.store.put(kind, &name, &doc))?;
    Ok(None)
}

fn untag(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (name, mut doc) = tagged(core, input, kind, field)?;
    let keys = input.get("TagKeys").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(tags) = doc["Tags"].as_array_mut() {
        tags.retain(|t| !keys.contains(&t["Key"]));
    }
    db(core.store.put(kind, &name, &doc))?;
    Ok(None)
}

fn list_tags(core: &Core, input: &Value, kind: &str, field: &str) -> Result<Option<Value>> {
    let (_, doc) = tagged(core, input, kind, field)?;
    Ok(Some(json!({"Tags": doc["Tags"].as_array().cloned().unwrap_or_default(), "IsTruncated": false})))
}

fn list_entities_for_policy(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn delete_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn set_default_policy_version(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
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

fn get_account_summary(core: &Core, _: &ApiRequest, _: &Value) -> Result<Option<Value>> {
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
