//! Log groups: create, delete, describe, and retention policies.

use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use super::input::{self, Input};
use crate::errors::{bad_token, catalog, constraint, invalid};
use crate::store::catalog::{Group, NewGroup};
use crate::tokens;
use crate::Logs;

/// The values `retentionInDays` may take.
pub const RETENTION_DAYS: [i64; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const CLASSES: [&str; 3] = ["STANDARD", "INFREQUENT_ACCESS", "DELIVERY"];

impl Logs {
    pub(super) fn create_log_group(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        if name.starts_with("aws/") {
            return Err(invalid("Log group names can't start with the string aws/"));
        }
        let class = input.str("logGroupClass")?.unwrap_or("STANDARD");
        if !CLASSES.contains(&class) {
            let rule = format!("Member must satisfy enum value set: [{}]", CLASSES.join(", "));
            return Err(constraint(class, "logGroupClass", &rule));
        }
        let tags = input.string_map("tags")?.unwrap_or_default();
        super::tags::check_tags(&tags)?;
        let kms_key_id = input.str("kmsKeyId")?;
        let created = self.storage.now();
        let new = NewGroup { name, created, class, kms_key_id, tags };
        self.storage.catalog.create_group(new).map_err(catalog)?;
        Ok(json!({}))
    }

    pub(super) fn delete_log_group(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let streams = self.storage.catalog.delete_group(name).map_err(catalog)?;
        self.storage.catalog.delete_filters(name, None, None).map_err(catalog)?;
        self.storage.remove(streams);
        Ok(json!({}))
    }

    pub(super) fn describe_log_groups(&self, input: &Input) -> Result<Value, AwsError> {
        let prefix = input.str("logGroupNamePrefix")?;
        let pattern = input.str("logGroupNamePattern")?;
        let identifiers = input.str_list("logGroupIdentifiers")?;
        if prefix.is_some() && pattern.is_some() {
            return Err(invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        if identifiers.is_some() && (prefix.is_some() || pattern.is_some()) {
            return Err(invalid("logGroupIdentifiers cannot be combined with a name prefix or pattern."));
        }
        let wanted = identifiers
            .map(|ids| ids.iter().map(|id| self.name_of_identifier(id)).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let class = input.str("logGroupClass")?;
        let limit = input.bounded("limit", 1, 50)?.unwrap_or(50) as usize;
        let after =
            input.str("nextToken")?.map(|t| tokens::decode_page(t).ok_or_else(bad_token)).transpose()?;
        let (page, more) = self.storage.catalog.read(|groups| {
            let mut matching = groups
                .values()
                .filter(|g| prefix.is_none_or(|p| g.name.starts_with(p)))
                .filter(|g| pattern.is_none_or(|p| g.name.contains(p)))
                .filter(|g| wanted.as_ref().is_none_or(|names| names.contains(&g.name)))
                .filter(|g| class.is_none_or(|c| g.class == c))
                .filter(|g| after.as_ref().is_none_or(|after| g.name.as_str() > after.as_str()));
            let page: Vec<Value> =
                matching.by_ref().take(limit).map(|g| self.group_json(g, pattern.is_some())).collect();
            (page, matching.next().is_some())
        });
        let mut output = json!({ "logGroups": page });
        if more {
            if let Some(last) = page_last_name(&output) {
                output["nextToken"] = tokens::encode_page(&last).into();
            }
        }
        Ok(output)
    }

    pub(super) fn put_retention_policy(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let days = input.i64("retentionInDays")?.ok_or_else(|| crate::errors::missing("retentionInDays"))?;
        if !RETENTION_DAYS.contains(&days) {
            let allowed: Vec<String> = RETENTION_DAYS.iter().map(i64::to_string).collect();
            let rule = format!("Member must satisfy enum value set: [{}]", allowed.join(", "));
            return Err(constraint(days, "retentionInDays", &rule));
        }
        self.storage.catalog.set_retention(name, Some(days)).map_err(catalog)?;
        self.storage.expire_soon();
        Ok(json!({}))
    }

    pub(super) fn delete_retention_policy(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        self.storage.catalog.set_retention(name, None).map_err(catalog)?;
        Ok(json!({}))
    }

    /// A group as `DescribeLogGroups` shows it; `brief` when a name pattern was given.
    fn group_json(&self, group: &Group, brief: bool) -> Value {
        let arn = self.group_arn(&group.name);
        let mut out = Map::new();
        out.insert("logGroupName".into(), group.name.clone().into());
        out.insert("creationTime".into(), group.created.into());
        out.insert("arn".into(), format!("{arn}:*").into());
        if !brief {
            if let Some(days) = group.retention_days {
                out.insert("retentionInDays".into(), days.into());
            }
            out.insert("metricFilterCount".into(), 0.into());
            out.insert("storedBytes".into(), group.stored_bytes().into());
            if let Some(key) = &group.kms_key_id {
                out.insert("kmsKeyId".into(), key.clone().into());
            }
            out.insert("logGroupClass".into(), group.class.clone().into());
            out.insert("logGroupArn".into(), arn.into());
        }
        Value::Object(out)
    }
}

fn page_last_name(output: &Value) -> Option<String> {
    output["logGroups"].as_array()?.last()?["logGroupName"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ops::testing::{code, logs, ok};

    #[tokio::test]
    async fn groups_are_created_once_described_in_pages_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        for name in ["/b", "/a", "/c/x", "/c/y"] {
            ok(&logs, "CreateLogGroup", json!({ "logGroupName": name })).await;
        }
        assert_eq!(
            code(&logs, "CreateLogGroup", json!({"logGroupName": "/a"})).await,
            "ResourceAlreadyExistsException"
        );
        assert_eq!(
            code(&logs, "CreateLogGroup", json!({"logGroupName": "a b"})).await,
            "InvalidParameterException"
        );
        let page = ok(&logs, "DescribeLogGroups", json!({ "limit": 3 })).await;
        let names: Vec<&str> = page["logGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["logGroupName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["/a", "/b", "/c/x"]);
        assert_eq!(page["logGroups"][0]["arn"], "arn:aws:logs:us-east-1:000000000000:log-group:/a:*");
        assert_eq!(page["logGroups"][0]["storedBytes"], 0);
        let token = page["nextToken"].as_str().unwrap();
        let rest = ok(&logs, "DescribeLogGroups", json!({ "limit": 3, "nextToken": token })).await;
        assert_eq!(rest["logGroups"][0]["logGroupName"], "/c/y");
        assert!(rest.get("nextToken").is_none());
        let prefixed = ok(&logs, "DescribeLogGroups", json!({ "logGroupNamePrefix": "/c/" })).await;
        assert_eq!(prefixed["logGroups"].as_array().unwrap().len(), 2);
        let pattern = ok(&logs, "DescribeLogGroups", json!({ "logGroupNamePattern": "y" })).await;
        assert_eq!(
            pattern["logGroups"][0],
            json!({"logGroupName": "/c/y", "creationTime": crate::ops::testing::NOW,
            "arn": "arn:aws:logs:us-east-1:000000000000:log-group:/c/y:*"})
        );
        let both = json!({ "logGroupNamePrefix": "/c", "logGroupNamePattern": "y" });
        assert_eq!(code(&logs, "DescribeLogGroups", both).await, "InvalidParameterException");
        assert_eq!(
            code(&logs, "DescribeLogGroups", json!({ "nextToken": "nope" })).await,
            "InvalidParameterException"
        );
        ok(&logs, "DeleteLogGroup", json!({ "logGroupName": "/a" })).await;
        assert_eq!(
            code(&logs, "DeleteLogGroup", json!({"logGroupName": "/a"})).await,
            "ResourceNotFoundException"
        );
    }

    #[tokio::test]
    async fn retention_takes_aws_values() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        ok(&logs, "CreateLogGroup", json!({ "logGroupName": "/r" })).await;
        let bad = json!({ "logGroupName": "/r", "retentionInDays": 2 });
        assert_eq!(code(&logs, "PutRetentionPolicy", bad).await, "InvalidParameterException");
        ok(&logs, "PutRetentionPolicy", json!({ "logGroupName": "/r", "retentionInDays": 14 })).await;
        let described = ok(&logs, "DescribeLogGroups", json!({})).await;
        assert_eq!(described["logGroups"][0]["retentionInDays"], 14);
        ok(&logs, "DeleteRetentionPolicy", json!({ "logGroupName": "/r" })).await;
        let described = ok(&logs, "DescribeLogGroups", json!({})).await;
        assert!(described["logGroups"][0].get("retentionInDays").is_none());
        let missing = json!({ "logGroupName": "/nope", "retentionInDays": 1 });
        assert_eq!(code(&logs, "PutRetentionPolicy", missing).await, "ResourceNotFoundException");
        assert_eq!(code(&logs, "Nope", json!({})).await, "UnknownOperationException");
    }
}
