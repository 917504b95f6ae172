//! IAM actions: roles, users, managed and inline policies, attachments, access keys, instance
//! profiles. Entities are stored as the JSON of their AWS shape.

use nimbus_api::{ApiRequest, AwsError};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::{db_error, Core, Handler, Result};

mod attached;
mod groups;
mod policies;
mod profiles;
mod roles;
mod tags;
mod users;

use attached::*;
use groups::*;
use policies::*;
use profiles::*;
use roles::*;
use tags::*;
use users::*;

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
