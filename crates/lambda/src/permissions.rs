//! Resource-based policies (AddPermission, RemovePermission, GetPolicy) and tags (TagResource,
//! UntagResource, ListTags). Policies are stored and returned as AWS shapes them; nimbus does
//! not evaluate them.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::Lambda;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PermissionInput {
    statement_id: String,
    action: String,
    principal: String,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    revision_id: Option<String>,
}

impl Lambda {
    pub(crate) async fn add_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        body: &[u8],
    ) -> Result<Value, AwsError> {
        let target = self.find(name, qualifier)?;
        let input: PermissionInput = crate::functions::parse(body)?;
        let key = policy_key(qualifier);
        let mut policy = target.function.resource("policy", &key).cloned().unwrap_or_else(empty_policy);
        if input
            .revision_id
            .as_ref()
            .is_some_and(|r| policy["RevisionId"] != *r && !policy["RevisionId"].is_null())
        {
            return Err(AwsError::new(412, "PreconditionFailedException", "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id"));
        }
        let statements = policy["Statement"].as_array_mut().expect("policies hold a statement list");
        if statements.iter().any(|s| s["Sid"] == input.statement_id) {
            return Err(AwsError::conflict(
                "The statement id (sid) provided already exists. Please explicitly specify a new one.",
            ));
        }
        let resource = match qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(target.function.name())),
            None => self.function_arn(target.function.name()),
        };
        let statement = statement(&input, &resource);
        statements.push(statement.clone());
        policy["RevisionId"] = json!(uuid::Uuid::new_v4().hyphenated().to_string());
        self.registry.put_resource(target.function.name(), "policy", &key, policy).await?;
        Ok(json!({ "Statement": statement.to_string() }))
    }

    pub(crate) async fn remove_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        sid: &str,
    ) -> Result<(), AwsError> {
        let target = self.find(name, qualifier)?;
        let key = policy_key(qualifier);
        let Some(mut policy) = target.function.resource("policy", &key).cloned() else {
            return Err(AwsError::not_found("No policy is associated with the given resource."));
        };
        let statements = policy["Statement"].as_array_mut().expect("policies hold a statement list");
        let before = statements.len();
        statements.retain(|s| s["Sid"] != sid);
        if statements.len() == before {
            return Err(AwsError::not_found("Statement not found."));
        }
        if statements.is_empty() {
            self.registry.delete_resource(target.function.name(), "policy", &key).await?;
        } else {
            policy["RevisionId"] = json!(uuid::Uuid::new_v4().hyphenated().to_string());
            self.registry.put_resource(target.function.name(), "policy", &key, policy).await?;
        }
        Ok(())
    }

    pub(crate) fn get_policy(&self, name: &str, qualifier: Option<&str>) -> Result<Value, AwsError> {
        let target = self.find(name, qualifier)?;
        let policy = target
            .function
            .resource("policy", &policy_key(qualifier))
            .ok_or_else(|| AwsError::not_found("No policy is associated with the given resource."))?;
        let document = json!({ "Version": "2012-10-17", "Id": "default", "Statement": policy["Statement"] });
        Ok(json!({ "Policy": document.to_string(), "RevisionId": policy["RevisionId"] }))
    }

    /// Tags live on the function (ARN without qualifier), as on AWS.
    pub(crate) async fn tag_resource(&self, arn: &str, body: &[u8]) -> Result<(), AwsError> {
        let input: Value = crate::functions::parse(body)?;
        let tags: BTreeMap<String, String> = serde_json::from_value(input["Tags"].clone())
            .map_err(|_| AwsError::invalid_parameter("Tags must be a map of strings"))?;
        self.change_tags(arn, |current| current.extend(tags)).await
    }

    pub(crate) async fn untag_resource(&self, arn: &str, keys: Vec<String>) -> Result<(), AwsError> {
        self.change_tags(arn, |current| current.retain(|k, _| !keys.contains(k))).await
    }

    pub(crate) fn list_tags(&self, arn: &str) -> Result<Value, AwsError> {
        let function = self.function(arn)?;
        Ok(json!({ "Tags": function.latest.stored.tags }))
    }

    async fn change_tags(
        &self,
        arn: &str,
        edit: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), AwsError> {
        let function = self.function(arn)?;
        let mut stored = function.latest.stored.clone();
        edit(&mut stored.tags);
        if stored.tags.len() > 50 {
            return Err(AwsError::invalid_parameter("A function can have at most 50 tags"));
        }
        let entry = self.registry.entry(stored, function.latest.code_hex.clone());
        self.registry.save_version(entry, false).await?;
        Ok(())
    }
}

/// Policies are per function or per qualifier (version or alias).
fn policy_key(qualifier: Option<&str>) -> String {
    qualifier.unwrap_or("").to_owned()
}

fn empty_policy() -> Value {
    json!({ "Statement": [] })
}

/// The statement AWS builds from AddPermission's members.
fn statement(input: &PermissionInput, resource: &str) -> Value {
    let principal = if input.principal.contains('.') {
        json!({ "Service": input.principal })
    } else if input.principal.bytes().all(|b| b.is_ascii_digit()) {
        json!({ "AWS": format!("arn:aws:iam::{}:root", input.principal) })
    } else {
        json!({ "AWS": input.principal })
    };
    let mut condition = Map::new();
    if let Some(arn) = &input.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    let mut equals = Map::new();
    if let Some(account) = &input.source_account {
        equals.insert("AWS:SourceAccount".into(), json!(account));
    }
    if let Some(token) = &input.event_source_token {
        equals.insert("lambda:EventSourceToken".into(), json!(token));
    }
    if let Some(org) = &input.principal_org_id {
        equals.insert("aws:PrincipalOrgID".into(), json!(org));
    }
    if let Some(auth) = &input.function_url_auth_type {
        equals.insert("lambda:FunctionUrlAuthType".into(), json!(auth));
    }
    if !equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(equals));
    }
    let mut statement = json!({
        "Sid": input.statement_id,
        "Effect": "Allow",
        "Principal": principal,
        "Action": input.action,
        "Resource": resource,
    });
    if !condition.is_empty() {
        statement["Condition"] = Value::Object(condition);
    }
    statement
}
