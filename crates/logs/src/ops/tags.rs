//! Tags on log groups, through both the old (`TagLogGroup`, by name) and the new
//! (`TagResource`, by ARN) operations.

use std::collections::BTreeMap;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use super::input::{self, Input};
use crate::errors::{catalog, constraint, missing};
use crate::Logs;

impl Logs {
    pub(super) fn list_tags_log_group(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let group = self.storage.catalog.group(name).map_err(catalog)?;
        Ok(json!({ "tags": group.tags }))
    }

    pub(super) fn tag_log_group(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let tags = input.string_map("tags")?.ok_or_else(|| missing("tags"))?;
        self.retag(name, tags, &[])
    }

    pub(super) fn untag_log_group(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let keys = input.str_list("tags")?.ok_or_else(|| missing("tags"))?;
        self.retag(name, BTreeMap::new(), &keys)
    }

    pub(super) fn list_tags_for_resource(&self, input: &Input) -> Result<Value, AwsError> {
        let name = self.name_of_arn(input.required_str("resourceArn")?)?;
        let group = self.storage.catalog.group(&name).map_err(catalog)?;
        Ok(json!({ "tags": group.tags }))
    }

    pub(super) fn tag_resource(&self, input: &Input) -> Result<Value, AwsError> {
        let name = self.name_of_arn(input.required_str("resourceArn")?)?;
        let tags = input.string_map("tags")?.ok_or_else(|| missing("tags"))?;
        self.retag(&name, tags, &[])
    }

    pub(super) fn untag_resource(&self, input: &Input) -> Result<Value, AwsError> {
        let name = self.name_of_arn(input.required_str("resourceArn")?)?;
        let keys = input.str_list("tagKeys")?.ok_or_else(|| missing("tagKeys"))?;
        self.retag(&name, BTreeMap::new(), &keys)
    }

    fn retag(&self, name: &str, add: BTreeMap<String, String>, remove: &[String]) -> Result<Value, AwsError> {
        let mut tags = self.storage.catalog.group(name).map_err(catalog)?.tags;
        tags.extend(add);
        tags.retain(|key, _| !remove.contains(key));
        check_tags(&tags)?;
        self.storage.catalog.set_tags(name, tags).map_err(catalog)?;
        Ok(json!({}))
    }

    /// The group a tagging ARN names; other resources have no tags here.
    fn name_of_arn(&self, arn: &str) -> Result<String, AwsError> {
        if !arn.starts_with("arn:") || !arn.contains(":log-group:") {
            let message = format!("The specified resource does not exist: {arn}");
            return Err(AwsError::new(400, "ResourceNotFoundException", message));
        }
        self.name_of_identifier(arn)
    }
}

pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(constraint(tags.len(), "tags", "Member must have length less than or equal to 50"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ops::testing::{code, logs, ok};

    #[tokio::test]
    async fn tags_round_trip_by_name_and_by_arn() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        ok(&logs, "CreateLogGroup", json!({ "logGroupName": "/r", "tags": {"team": "data"} })).await;
        let arn = "arn:aws:logs:us-east-1:000000000000:log-group:/r";
        ok(&logs, "TagResource", json!({ "resourceArn": arn, "tags": {"env": "dev"} })).await;
        ok(&logs, "UntagLogGroup", json!({ "logGroupName": "/r", "tags": ["team"] })).await;
        let tags = ok(&logs, "ListTagsForResource", json!({ "resourceArn": arn })).await;
        assert_eq!(tags, json!({ "tags": {"env": "dev"} }));
        let other = json!({ "resourceArn": "arn:aws:lambda:us-east-1:000000000000:function:f" });
        assert_eq!(code(&logs, "ListTagsForResource", other).await, "ResourceNotFoundException");
    }
}
