//! STS: who the caller is (from the access key that signed the request), and temporary
//! credentials for a role (`AssumeRole`, `AssumeRoleWithWebIdentity`) or the caller
//! (`GetSessionToken`). Sessions are stored so `GetCallerIdentity` with their keys answers the
//! assumed role.

use nimbus_api::{ApiRequest, AwsError};
use serde_json::{json, Value};

use crate::iam::{iso_at, required, text, unique_id, validation};
use crate::{db_error, Core, Handler, Result};

pub fn handler(action: &str) -> Option<Handler> {
    Some(match action {
        "GetCallerIdentity" => get_caller_identity,
        "AssumeRole" => |c, r, i| assume_role(c, r, i, "RoleSessionName"),
        "AssumeRoleWithWebIdentity" => |c, r, i| assume_role(c, r, i, "RoleSessionName"),
        "AssumeRoleWithSAML" => |c, r, i| assume_role(c, r, i, ""),
        "GetSessionToken" => get_session_token,
        "GetAccessKeyInfo" => get_access_key_info,
        _ => return None,
    })
}

/// The access key id that signed the request (header or presigned query).
pub fn access_key(request: &ApiRequest) -> Option<String> {
    nimbus_api::scope::scope_of(&request.headers, &request.uri).map(|scope| scope.access_key)
}

/// An access key id of twelve digits names its account (as LocalStack does); else `--account`.
/// The account of the request's access key (see [`account_of`]).
pub fn caller_account(core: &Core, request: &ApiRequest) -> String {
    account_of(core, &access_key(request).unwrap_or_default())
}

fn account_of(core: &Core, key: &str) -> String {
    if nimbus_api::scope::is_account_id(key) {
        key.to_owned()
    } else {
        core.account.clone()
    }
}

fn get_caller_identity(core: &Core, request: &ApiRequest, _: &Value) -> Result<Option<Value>> {
    let key = access_key(request).unwrap_or_default();
    if let Some(session) = core.store.get("session", &key).map_err(db_error)? {
        return Ok(Some(
            json!({"UserId": session["UserId"], "Account": session["Account"], "Arn": session["Arn"]}),
        ));
    }
    if let Some(owner) = core.store.get("key", &key).map_err(db_error)? {
        let user = owner["UserName"].as_str().unwrap_or_default();
        if let Some(user) = core.store.get("user", user).map_err(db_error)? {
            return Ok(Some(json!({"UserId": user["UserId"], "Account": core.account, "Arn": user["Arn"]})));
        }
    }
    let account = account_of(core, &key);
    Ok(Some(json!({"UserId": account, "Account": account, "Arn": format!("arn:aws:iam::{account}:root")})))
}

fn duration(input: &Value, max: i64) -> Result<i64> {
    let seconds = match text(input, "DurationSeconds") {
        Some(text) => text.parse::<i64>().map_err(|_| validation("DurationSeconds must be a number"))?,
        None => 3600,
    };
    if seconds < 900 || seconds > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must \
             have value {} {}",
            if seconds < 900 { "greater than or equal to" } else { "less than or equal to" },
            if seconds < 900 { 900 } else { max }
        )));
    }
    Ok(seconds)
}

/// Stores a session and answers its credentials.
fn issue(core: &Core, seconds: i64, identity: Value) -> Result<Value> {
    let key = unique_id("ASIA")[..20].to_owned();
    let secret =
        format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())[..40].to_owned();
    let token = format!("FwoGZXIvYXdzE{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + seconds;
    core.store.put("session", &key, &identity).map_err(db_error)?;
    Ok(
        json!({"AccessKeyId": key, "SecretAccessKey": secret, "SessionToken": token, "Expiration": iso_at(expires)}),
    )
}

fn assume_role(core: &Core, _: &ApiRequest, input: &Value, session_field: &str) -> Result<Option<Value>> {
    let arn = required(input, "RoleArn")?;
    let session = if session_field.is_empty() { "saml-session" } else { required(input, session_field)? };
    let valid_session = (2..=64).contains(&session.len())
        && session.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !valid_session {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (account, resource) = match parts.as_slice() {
        ["arn", _, "iam", "", account, resource] if resource.starts_with("role/") => (*account, *resource),
        _ => return Err(validation(format!("{arn} is invalid"))),
    };
    let role_name = resource.rsplit('/').next().unwrap_or_default();
    // A role created here keeps its id and session limit; any other role ARN is accepted as is.
    let role = core.store.get("role", role_name).map_err(db_error)?.filter(|r| r["Arn"] == arn);
    let max = role.as_ref().and_then(|r| r["MaxSessionDuration"].as_i64()).unwrap_or(43200);
    let seconds = duration(input, max)?;
    let role_id = role
        .as_ref()
        .and_then(|r| r["RoleId"].as_str().map(str::to_owned))
        .unwrap_or_else(|| unique_id("AROA"));
    let assumed_id = format!("{role_id}:{session}");
    let assumed_arn = format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}");
    let credentials =
        issue(core, seconds, json!({"UserId": assumed_id, "Account": account, "Arn": assumed_arn}))?;
    let mut result = json!({
        "Credentials": credentials,
        "AssumedRoleUser": {"AssumedRoleId": assumed_id, "Arn": assumed_arn},
        "PackedPolicySize": 0,
    });
    if session_field.is_empty() || text(input, "WebIdentityToken").is_some() {
        result["SubjectFromWebIdentityToken"] = json!(session);
    }
    Ok(Some(result))
}

fn get_session_token(core: &Core, request: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let seconds = if text(input, "DurationSeconds").is_some() { duration(input, 129_600)? } else { 43200 };
    let caller = get_caller_identity(core, request, input)?.unwrap_or_default();
    if caller["Arn"].as_str().is_some_and(|a| a.contains(":assumed-role/")) {
        return Err(AwsError::new(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    Ok(Some(json!({"Credentials": issue(core, seconds, caller)?})))
}

fn get_access_key_info(core: &Core, _: &ApiRequest, input: &Value) -> Result<Option<Value>> {
    let key = required(input, "AccessKeyId")?;
    Ok(Some(json!({"Account": account_of(core, key)})))
}
