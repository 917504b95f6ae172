//! A table's settings besides its shape: TTL, tags, backups; and the account-level answers
//! (limits, endpoints).

use nimbus_store::params;
use serde_json::{json, Value};

use crate::error::{not_found, table_not_found, validation, DdbError, Result};
use crate::input::Input;
use crate::ops::tables::tags;
use crate::store::{load_table, save_table};
use crate::value::{stored_item, Av};
use crate::DynamoDb;

impl DynamoDb {
    pub(crate) fn update_time_to_live(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let spec = input
            .object("TimeToLiveSpecification")?
            .ok_or_else(|| crate::error::missing("timeToLiveSpecification"))?;
        let enabled = spec
            .get("Enabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| crate::error::missing("timeToLiveSpecification.enabled"))?;
        let attribute = spec
            .get("AttributeName")
            .and_then(Value::as_str)
            .ok_or_else(|| crate::error::missing("timeToLiveSpecification.attributeName"))?
            .to_owned();
        self.db.write(|tx| {
            let mut table = load_table(tx, &name)?.ok_or_else(|| table_not_found(&name))?;
            match (enabled, &table.ttl_attribute) {
                (true, Some(_)) => return Err(validation("TimeToLive is already enabled")),
                (false, None) => return Err(validation("TimeToLive is already disabled")),
                (false, Some(current)) if *current != attribute => {
                    return Err(validation(
                        "TimeToLive is active on a different AttributeName: current AttributeName is "
                            .to_owned()
                            + current,
                    ))
                }
                _ => {}
            }
            table.ttl_attribute = enabled.then(|| attribute.clone());
            save_table(tx, &table)?;
            // Expiry times of the items already there.
            if enabled {
                let rows =
                    tx.query("SELECT pk, sk, item FROM ddb_items WHERE tid = ?1", &params![table.id])?;
                for row in rows {
                    let item = stored_item(&row.get::<String>(2)?);
                    if let Some(Av::N(n)) = item.get(&attribute) {
                        tx.execute(
                            "UPDATE ddb_items SET expires = ?4 WHERE tid = ?1 AND pk = ?2 AND sk = ?3",
                            &params![table.id, row.get::<Vec<u8>>(0)?, row.get::<Vec<u8>>(1)?, n.as_i64()],
                        )?;
                    }
                }
            } else {
                tx.execute("UPDATE ddb_items SET expires = NULL WHERE tid = ?1", &params![table.id])?;
            }
            Ok::<_, DdbError>(())
        })?;
        Ok(json!({ "TimeToLiveSpecification": { "Enabled": enabled, "AttributeName": attribute } }))
    }

    pub(crate) fn describe_time_to_live(&self, input: &Input) -> Result<Value> {
        let table = self.existing(&input.table_name()?)?;
        Ok(match table.ttl_attribute {
            Some(attribute) => {
                json!({"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}})
            }
            None => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}),
        })
    }

    fn table_of_arn(&self, input: &Input) -> Result<String> {
        let arn = input.required_str("ResourceArn")?;
        let prefix = format!("arn:aws:dynamodb:{}:", self.region());
        match arn.strip_prefix(&prefix).and_then(|rest| rest.split_once(":table/")) {
            Some((_, name)) if !name.contains('/') => Ok(name.to_owned()),
            _ => Err(validation(format!("Invalid TableArn: Invalid ResourceArn provided as input {arn}"))),
        }
    }

    fn change_tags(
        &self,
        input: &Input,
        change: impl FnOnce(&mut Vec<(String, String)>) -> Result<()>,
    ) -> Result<Value> {
        let name = self.table_of_arn(input)?;
        self.db.write(|tx| {
            let mut table = load_table(tx, &name)?.ok_or_else(not_found)?;
            change(&mut table.tags)?;
            save_table(tx, &table)
        })?;
        Ok(json!({}))
    }

    pub(crate) fn tag_resource(&self, input: &Input) -> Result<Value> {
        let new = tags(input.get("Tags"))?;
        self.change_tags(input, |tags| {
            for (k, v) in new {
                tags.retain(|(key, _)| *key != k);
                tags.push((k, v));
            }
            if tags.len() > 50 {
                return Err(validation("One or more parameter values were invalid: Too many tags"));
            }
            Ok(())
        })
    }

    pub(crate) fn untag_resource(&self, input: &Input) -> Result<Value> {
        let keys: Vec<String> = input
            .array("TagKeys")?
            .ok_or_else(|| crate::error::missing("tagKeys"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        self.change_tags(input, |tags| {
            tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
    }

    pub(crate) fn list_tags_of_resource(&self, input: &Input) -> Result<Value> {
        let name = self.table_of_arn(input)?;
        let table = self.db.read(|tx| load_table(tx, &name))?.ok_or_else(not_found)?;
        let tags: Vec<Value> = table.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
        Ok(json!({ "Tags": tags }))
    }

    pub(crate) fn describe_continuous_backups(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let table = self.db.read(|tx| load_table(tx, &name))?;
        let table = table.ok_or_else(|| {
            DdbError::new(400, "TableNotFoundException", format!("Table not found: {name}"))
        })?;
        Ok(backups(table.point_in_time_recovery))
    }

    /// Records the point-in-time recovery switch (nimbus keeps no backups; see the README).
    pub(crate) fn update_continuous_backups(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let spec = input
            .object("PointInTimeRecoverySpecification")?
            .ok_or_else(|| crate::error::missing("pointInTimeRecoverySpecification"))?;
        let enabled = spec.get("PointInTimeRecoveryEnabled").and_then(Value::as_bool).ok_or_else(|| {
            crate::error::missing("pointInTimeRecoverySpecification.pointInTimeRecoveryEnabled")
        })?;
        self.db.write(|tx| {
            let mut table = load_table(tx, &name)?.ok_or_else(|| {
                DdbError::new(400, "TableNotFoundException", format!("Table not found: {name}"))
            })?;
            table.point_in_time_recovery = enabled;
            save_table(tx, &table)
        })?;
        Ok(backups(enabled))
    }
}

fn backups(point_in_time: bool) -> Value {
    let status = if point_in_time { "ENABLED" } else { "DISABLED" };
    let mut recovery = json!({"PointInTimeRecoveryStatus": status});
    if point_in_time {
        recovery["RecoveryPeriodInDays"] = json!(35);
    }
    json!({"ContinuousBackupsDescription": {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": recovery
    }})
}

pub fn describe_limits() -> Value {
    json!({
        "AccountMaxReadCapacityUnits": 80000,
        "AccountMaxWriteCapacityUnits": 80000,
        "TableMaxReadCapacityUnits": 40000,
        "TableMaxWriteCapacityUnits": 40000
    })
}

pub fn describe_endpoints(region: &str) -> Value {
    json!({"Endpoints": [{"Address": format!("dynamodb.{region}.amazonaws.com"), "CachePeriodInMinutes": 1440}]})
}
