//! Tags on streams and consumers, kept by resource ARN.

use nimbus_store::{params, Tx};
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::{opt_int, opt_str, req_str};
use crate::Kinesis;

const MAX_TAGS: i64 = 50;

pub(crate) fn parse_tags(tags: Option<&Value>) -> Result<Vec<(String, String)>> {
    let Some(tags) = tags else { return Ok(Vec::new()) };
    let map = tags.as_object().ok_or_else(|| error::invalid("Tags must be a map."))?;
    map.iter()
        .map(|(key, value)| {
            if key.is_empty() || key.chars().count() > 128 {
                return Err(error::invalid(format!("Tag key {key} must be 1 to 128 characters.")));
            }
            let value = value.as_str().unwrap_or_default();
            if value.chars().count() > 256 {
                return Err(error::invalid(format!(
                    "Tag value of key {key} must be at most 256 characters."
                )));
            }
            Ok((key.clone(), value.to_owned()))
        })
        .collect()
}

pub(crate) fn put(tx: &mut Tx<'_>, arn: &str, tags: &[(String, String)]) -> Result<()> {
    for (key, value) in tags {
        tx.execute(
            "INSERT INTO tags (resource_arn, tag_key, tag_value) VALUES (?1, ?2, ?3)
             ON CONFLICT (resource_arn, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            &params![arn, key, value],
        )
        .map_err(error::db)?;
    }
    let count: Option<i64> = tx
        .query_value("SELECT COUNT(*) FROM tags WHERE resource_arn = ?1", &params![arn])
        .map_err(error::db)?;
    if count.unwrap_or(0) > MAX_TAGS {
        return Err(error::limit(format!(
            "Failed to add tags to {arn}: a resource can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

fn tag_keys(input: &Value) -> Result<Vec<String>> {
    let keys = input.get("TagKeys").and_then(Value::as_array).ok_or_else(|| error::missing("tagKeys"))?;
    Ok(keys.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

fn remove(tx: &mut Tx<'_>, arn: &str, keys: &[String]) -> Result<()> {
    for key in keys {
        tx.execute("DELETE FROM tags WHERE resource_arn = ?1 AND tag_key = ?2", &params![arn, key])
            .map_err(error::db)?;
    }
    Ok(())
}

fn list(tx: &mut Tx<'_>, arn: &str) -> Result<Vec<(String, String)>> {
    let rows = tx
        .query("SELECT tag_key, tag_value FROM tags WHERE resource_arn = ?1 ORDER BY tag_key", &params![arn])
        .map_err(error::db)?;
    rows.iter().map(|row| Ok((row.get(0).map_err(error::db)?, row.get(1).map_err(error::db)?))).collect()
}

fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect())
}

impl Kinesis {
    pub(crate) fn add_tags_to_stream(&self, input: &Value) -> Result<Value> {
        let tags = parse_tags(Some(input.get("Tags").ok_or_else(|| error::missing("tags"))?))?;
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            put(tx, &stream.arn, &tags)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn remove_tags_from_stream(&self, input: &Value) -> Result<Value> {
        let keys = tag_keys(input)?;
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            remove(tx, &stream.arn, &keys)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn list_tags_for_stream(&self, input: &Value) -> Result<Value> {
        let limit = opt_int(input, "Limit", 1, 50)?.unwrap_or(50) as usize;
        let after = opt_str(input, "ExclusiveStartTagKey").unwrap_or_default().to_owned();
        let tags = self.tx_read(|tx| {
            let stream = self.stream(tx, input)?;
            list(tx, &stream.arn)
        })?;
        let tags: Vec<_> = tags.into_iter().filter(|(k, _)| *k > after).collect();
        let more = tags.len() > limit;
        Ok(json!({"Tags": tag_list(&tags[..tags.len().min(limit)]), "HasMoreTags": more}))
    }

    /// A stream's or consumer's ARN, checked to exist.
    fn resource(&self, tx: &mut Tx<'_>, input: &Value) -> Result<String> {
        let arn = req_str(input, "ResourceARN")?;
        if arn.contains("/consumer/") {
            let found: Option<String> = tx
                .query_value("SELECT arn FROM consumers WHERE arn = ?1", &params![arn])
                .map_err(error::db)?;
            return found.ok_or_else(|| error::not_found(format!("Consumer {arn} not found.")));
        }
        let stream = self.stream(tx, &json!({"StreamARN": arn}))?;
        Ok(stream.arn)
    }

    pub(crate) fn tag_resource(&self, input: &Value) -> Result<Value> {
        let tags = parse_tags(Some(input.get("Tags").ok_or_else(|| error::missing("tags"))?))?;
        self.tx_write(|tx| {
            let arn = self.resource(tx, input)?;
            put(tx, &arn, &tags)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn untag_resource(&self, input: &Value) -> Result<Value> {
        let keys = tag_keys(input)?;
        self.tx_write(|tx| {
            let arn = self.resource(tx, input)?;
            remove(tx, &arn, &keys)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn list_tags_for_resource(&self, input: &Value) -> Result<Value> {
        let tags = self.tx_read(|tx| {
            let arn = self.resource(tx, input)?;
            list(tx, &arn)
        })?;
        Ok(json!({"Tags": tag_list(&tags)}))
    }
}
