//! TransactWriteItems and TransactGetItems: all of a transaction's checks and writes in one
//! database transaction; a failed check cancels everything with AWS's per-item reasons.
//! `ClientRequestToken`s are remembered for ten minutes.

use std::collections::HashSet;

use nimbus_store::params;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{missing, validation, DdbError, Result};
use crate::expr::{apply_update, eval, project, Ctx};
use crate::input::{table_name, Input};
use crate::ops::items::{check_size, check_update_keys, projection_of};
use crate::ops::table_for_items;
use crate::store::{lock_item, read_item, write_item, Actor};
use crate::value::{item_json, parse_item, Item};
use crate::DynamoDb;

const TOKEN_MS: i64 = 10 * 60 * 1000;

enum Op {
    Check,
    Put(Item),
    Delete,
    Update(crate::expr::Update),
}

struct Planned {
    table: String,
    /// The key (Check, Delete, Update) or the item (Put).
    key: Item,
    op: Op,
    cond: Option<crate::expr::Cond>,
    item_on_failure: bool,
}

fn plan(entry: &Value) -> Result<Planned> {
    let kinds = ["ConditionCheck", "Put", "Delete", "Update"];
    let mut found = kinds.iter().filter_map(|k| entry.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)));
    let (Some((kind, body)), None) = (found.next(), found.next()) else {
        return Err(validation("TransactItems can only contain one of Check, Put, Update or Delete"));
    };
    let input = Input::from_value(body);
    let table = table_name(input.required_str("TableName")?, "tableName")?;
    let mut ctx = Ctx::from_request(&input.0)?;
    let cond =
        input.str("ConditionExpression")?.map(|c| ctx.condition("ConditionExpression", c)).transpose()?;
    let item_on_failure =
        input.choice("ReturnValuesOnConditionCheckFailure", &["ALL_OLD", "NONE"])? == Some("ALL_OLD");
    let (key, op) = match kind {
        "ConditionCheck" => {
            if cond.is_none() {
                return Err(missing("transactItems.1.member.conditionCheck.conditionExpression"));
            }
            (parse_item(input.get("Key"), "key")?, Op::Check)
        }
        "Put" => {
            let item = parse_item(input.get("Item"), "item")?;
            check_size(&item)?;
            (item.clone(), Op::Put(item))
        }
        "Delete" => (parse_item(input.get("Key"), "key")?, Op::Delete),
        _ => {
            let text = input.required_str("UpdateExpression")?;
            let update = ctx.update(text)?;
            (parse_item(input.get("Key"), "key")?, Op::Update(update))
        }
    };
    ctx.check_unused()?;
    Ok(Planned { table, key, op, cond, item_on_failure })
}

fn items_of(input: &Input) -> Result<&Vec<Value>> {
    let items = input.array("TransactItems")?.ok_or_else(|| missing("transactItems"))?;
    if items.is_empty() || items.len() > 100 {
        return Err(validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length {} 100",
            if items.is_empty() { "greater than or equal to 1, less than or equal to" } else { "less than or equal to" }
        )));
    }
    Ok(items)
}

impl DynamoDb {
    pub(crate) fn transact_write_items(&self, input: &Input) -> Result<Value> {
        let planned = items_of(input)?.iter().map(plan).collect::<Result<Vec<_>>>()?;
        let token = input.str("ClientRequestToken")?.map(str::to_owned);
        let digest = {
            let mut body = input.0.clone();
            body.remove("ClientRequestToken");
            format!("{:x}", Sha256::digest(Value::Object(body).to_string().as_bytes()))
        };
        let region = self.region().to_owned();
        let streamed = self.db.write(|tx| {
            let now = nimbus_store::cluster::now_ms();
            if let Some(token) = &token {
                tx.execute("DELETE FROM ddb_tokens WHERE created_ms < ?1", &params![now - TOKEN_MS])?;
                let known = tx.query_opt("SELECT digest FROM ddb_tokens WHERE token = ?1", &params![token])?;
                if let Some(row) = known {
                    if row.get::<String>(0)? != digest {
                        return Err(DdbError::new(400, "IdempotentParameterMismatchException", "Specified idempotency token has been used with different parameters"));
                    }
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO ddb_tokens (token, digest, response, created_ms) VALUES (?1, ?2, '{}', ?3)",
                    &params![token, digest, now],
                )?;
            }
            let mut seen = HashSet::new();
            let mut targets = Vec::new();
            for p in &planned {
                let table = table_for_items(tx, &p.table)?;
                let key = match &p.op {
                    Op::Put(item) => table.item_key(item)?,
                    _ => table.key_of(&p.key)?,
                };
                if !seen.insert((table.id.clone(), key.clone())) {
                    return Err(validation("Transaction request cannot include multiple operations on one item"));
                }
                targets.push((table, key));
            }
            // Items locked in one order whatever the request's, so that transactions never
            // wait on each other in a cycle.
            let mut order: Vec<usize> = (0..targets.len()).collect();
            order.sort_by(|a, b| (&targets[*a].0.id, &targets[*a].1).cmp(&(&targets[*b].0.id, &targets[*b].1)));
            for i in &order {
                lock_item(tx, &targets[*i].0, &targets[*i].1)?;
            }
            let mut staged = Vec::new();
            let mut reasons = Vec::new();
            let mut failed = false;
            for (p, (table, key)) in planned.iter().zip(targets) {
                let old = read_item(tx, &table, &key)?;
                let empty = Item::new();
                let passed = p.cond.as_ref().is_none_or(|c| eval(c, old.as_ref().unwrap_or(&empty)));
                if passed {
                    reasons.push(json!({"Code": "None"}));
                } else {
                    failed = true;
                    let mut reason = json!({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"});
                    if let (true, Some(old)) = (p.item_on_failure, &old) {
                        reason["Item"] = item_json(old);
                    }
                    reasons.push(reason);
                }
                staged.push((table, key, old));
            }
            if failed {
                let codes: Vec<&str> = reasons.iter().map(|r| r["Code"].as_str().unwrap_or("None")).collect();
                return Err(DdbError::new(
                    400,
                    "TransactionCanceledException",
                    format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
                )
                .with("CancellationReasons", Value::Array(reasons)));
            }
            let mut streamed = false;
            // Written in the same order, for the same reason (a stream's sequence is a row lock).
            for i in order {
                let (p, (table, key, old)) = (&planned[i], &staged[i]);
                let new = match &p.op {
                    Op::Check => continue,
                    Op::Put(item) => Some(item.clone()),
                    Op::Delete if old.is_none() => continue,
                    Op::Delete => None,
                    Op::Update(update) if old.is_none() && update.only_removes() => continue,
                    Op::Update(update) => {
                        check_update_keys(table, update)?;
                        let new = apply_update(old.as_ref().unwrap_or(&p.key), update)?;
                        check_size(&new)?;
                        table.item_key(&new)?;
                        Some(new)
                    }
                };
                streamed |= write_item(tx, table, key, old.as_ref(), new.as_ref(), Actor::User, &region)?;
            }
            Ok(streamed)
        })?;
        if streamed {
            self.streams_written();
        }
        Ok(json!({}))
    }

    pub(crate) fn transact_get_items(&self, input: &Input) -> Result<Value> {
        let mut gets = Vec::new();
        for entry in items_of(input)? {
            let get = entry
                .get("Get")
                .filter(|v| !v.is_null())
                .ok_or_else(|| missing("transactItems.1.member.get"))?;
            let get = Input::from_value(get);
            let name = table_name(get.required_str("TableName")?, "tableName")?;
            let mut ctx = Ctx::from_request(&get.0)?;
            let projection = projection_of(&get, &mut ctx)?;
            ctx.check_unused()?;
            gets.push((name, parse_item(get.get("Key"), "key")?, projection));
        }
        let responses = self.db.read(|tx| {
            let mut out = Vec::new();
            for (name, key, projection) in &gets {
                let table = table_for_items(tx, name)?;
                let row_key = table.key_of(key)?;
                out.push(match read_item(tx, &table, &row_key)? {
                    Some(item) => {
                        let item = match projection {
                            Some(paths) => project(&item, paths),
                            None => item,
                        };
                        json!({ "Item": item_json(&item) })
                    }
                    None => json!({}),
                });
            }
            Ok::<_, DdbError>(out)
        })?;
        Ok(json!({ "Responses": responses }))
    }
}
