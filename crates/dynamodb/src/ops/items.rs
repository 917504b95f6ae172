//! PutItem, GetItem, UpdateItem, DeleteItem: each one transaction that reads the item (when a
//! condition, return values, indexes or a stream need it), checks the condition and writes.

use serde_json::{json, Value};

use crate::error::{condition_failed, invalid, validation, DdbError, Result};
use crate::expr::{apply_update, eval, project, Cond, Ctx, Elem, Path, Update};
use crate::input::Input;
use crate::ops::table_for_items;
use crate::store::{lock_item, read_item, write_item, Actor};
use crate::table::Table;
use crate::value::{item_json, item_size, parse_item, Item, MAX_ITEM_BYTES};
use crate::DynamoDb;

/// What a write asks for besides the write itself.
pub struct WriteOptions {
    pub cond: Option<Cond>,
    pub return_values: String,
    /// Put the old item in ConditionalCheckFailedException.
    pub item_on_failure: bool,
}

pub fn write_options(input: &Input, ctx: &mut Ctx, allowed: &[&str]) -> Result<WriteOptions> {
    let cond =
        input.str("ConditionExpression")?.map(|c| ctx.condition("ConditionExpression", c)).transpose()?;
    let return_values = input.str("ReturnValues")?.unwrap_or("NONE").to_owned();
    if !allowed.contains(&return_values.as_str()) {
        return Err(validation("Return values set to invalid value"));
    }
    let on_failure = input.choice("ReturnValuesOnConditionCheckFailure", &["ALL_OLD", "NONE"])?;
    if input.get("Expected").is_some() {
        if cond.is_some() {
            return Err(validation("Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}"));
        }
        return Ok(WriteOptions {
            cond: crate::ops::legacy::expected(input)?,
            return_values,
            item_on_failure: on_failure == Some("ALL_OLD"),
        });
    }
    Ok(WriteOptions { cond, return_values, item_on_failure: on_failure == Some("ALL_OLD") })
}

/// The condition against the item as it is (absent: an empty item).
pub fn check_condition(options: &WriteOptions, old: Option<&Item>) -> Result<()> {
    let Some(cond) = &options.cond else { return Ok(()) };
    let empty = Item::new();
    if eval(cond, old.unwrap_or(&empty)) {
        return Ok(());
    }
    let mut error = condition_failed();
    if options.item_on_failure {
        if let Some(old) = old {
            error = error.with("Item", item_json(old));
        }
    }
    Err(error)
}

pub fn check_size(item: &Item) -> Result<()> {
    if item_size(item) > MAX_ITEM_BYTES {
        return Err(validation("Item size has exceeded the maximum allowed size"));
    }
    Ok(())
}

pub fn consumed(input: &Input, table: &str, units: f64) -> Option<Value> {
    match input.str("ReturnConsumedCapacity").ok().flatten() {
        Some("TOTAL") | Some("INDEXES") => Some(json!({"TableName": table, "CapacityUnits": units})),
        _ => None,
    }
}

fn with_consumed(mut out: Value, input: &Input, table: &str, units: f64) -> Value {
    if let Some(c) = consumed(input, table, units) {
        out["ConsumedCapacity"] = c;
    }
    out
}

/// Paths an update writes, for UPDATED_OLD / UPDATED_NEW.
fn updated_paths(update: &Update) -> Vec<Path> {
    update.targets().cloned().collect()
}

/// Refuses updates of key attributes.
pub fn check_update_keys(table: &Table, update: &Update) -> Result<()> {
    for path in update.targets() {
        if let Some(Elem::Name(name)) = path.first() {
            if table.key_attrs().any(|a| &a.name == name) {
                return Err(invalid(format!(
                    "Cannot update attribute {name}. This attribute is part of the key"
                )));
            }
        }
    }
    Ok(())
}

impl DynamoDb {
    pub(crate) fn put_item(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let item = parse_item(input.get("Item"), "item")?;
        let mut ctx = Ctx::from_request(&input.0)?;
        let options = write_options(input, &mut ctx, &["NONE", "ALL_OLD"])?;
        ctx.check_unused()?;
        check_size(&item)?;
        let region = self.region().to_owned();
        let (old, streamed) = self.db.write(|tx| {
            let table = table_for_items(tx, &name)?;
            let key = table.item_key(&item)?;
            let blind = options.cond.is_none()
                && options.return_values == "NONE"
                && table.indexes.is_empty()
                && table.stream.is_none();
            if blind {
                write_item(tx, &table, &key, None, Some(&item), Actor::User, &region)?;
                return Ok::<_, DdbError>((None, false));
            }
            lock_item(tx, &table, &key)?;
            let old = read_item(tx, &table, &key)?;
            check_condition(&options, old.as_ref())?;
            let streamed = write_item(tx, &table, &key, old.as_ref(), Some(&item), Actor::User, &region)?;
            Ok((old, streamed))
        })?;
        if streamed {
            self.streams_written();
        }
        let mut out = json!({});
        if let (Some(old), "ALL_OLD") = (&old, options.return_values.as_str()) {
            out["Attributes"] = item_json(old);
        }
        Ok(with_consumed(out, input, &name, 1.0))
    }

    pub(crate) fn get_item(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let key = parse_item(input.get("Key"), "key")?;
        let mut ctx = Ctx::from_request(&input.0)?;
        let projection = projection_of(input, &mut ctx)?;
        ctx.check_unused()?;
        let item = self.db.read(|tx| {
            let table = table_for_items(tx, &name)?;
            let row_key = table.key_of(&key)?;
            read_item(tx, &table, &row_key)
        })?;
        let mut out = json!({});
        if let Some(item) = item {
            let item = match &projection {
                Some(paths) => project(&item, paths),
                None => item,
            };
            out["Item"] = item_json(&item);
        }
        Ok(with_consumed(out, input, &name, 0.5))
    }

    pub(crate) fn delete_item(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let key = parse_item(input.get("Key"), "key")?;
        let mut ctx = Ctx::from_request(&input.0)?;
        let options = write_options(input, &mut ctx, &["NONE", "ALL_OLD"])?;
        ctx.check_unused()?;
        let region = self.region().to_owned();
        let (old, streamed) = self.db.write(|tx| {
            let table = table_for_items(tx, &name)?;
            let row_key = table.key_of(&key)?;
            lock_item(tx, &table, &row_key)?;
            let old = read_item(tx, &table, &row_key)?;
            check_condition(&options, old.as_ref())?;
            let streamed = match &old {
                Some(old) => write_item(tx, &table, &row_key, Some(old), None, Actor::User, &region)?,
                None => false,
            };
            Ok::<_, DdbError>((old, streamed))
        })?;
        if streamed {
            self.streams_written();
        }
        let mut out = json!({});
        if let (Some(old), "ALL_OLD") = (&old, options.return_values.as_str()) {
            out["Attributes"] = item_json(old);
        }
        Ok(with_consumed(out, input, &name, 1.0))
    }

    pub(crate) fn update_item(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let key = parse_item(input.get("Key"), "key")?;
        let mut ctx = Ctx::from_request(&input.0)?;
        let update = match input.str("UpdateExpression")? {
            Some(text) => ctx.update(text)?,
            None => crate::ops::legacy::attribute_updates(input)?,
        };
        let options =
            write_options(input, &mut ctx, &["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])?;
        ctx.check_unused()?;
        let region = self.region().to_owned();
        let (old, new, streamed) = self.db.write(|tx| {
            let table = table_for_items(tx, &name)?;
            let row_key = table.key_of(&key)?;
            check_update_keys(&table, &update)?;
            lock_item(tx, &table, &row_key)?;
            let old = read_item(tx, &table, &row_key)?;
            check_condition(&options, old.as_ref())?;
            let new = apply_update(old.as_ref().unwrap_or(&key), &update)?;
            check_size(&new)?;
            table.item_key(&new)?;
            if old.is_none() && update.only_removes() {
                return Ok((old, None, false));
            }
            let streamed = write_item(tx, &table, &row_key, old.as_ref(), Some(&new), Actor::User, &region)?;
            Ok::<_, DdbError>((old, Some(new), streamed))
        })?;
        if streamed {
            self.streams_written();
        }
        let paths = updated_paths(&update);
        let attributes = match options.return_values.as_str() {
            "ALL_OLD" => old.clone(),
            "ALL_NEW" => new,
            "UPDATED_OLD" => old.as_ref().map(|old| project(old, &paths)).filter(|i| !i.is_empty()),
            "UPDATED_NEW" => new.map(|new| project(&new, &paths)).filter(|i| !i.is_empty()),
            _ => None,
        };
        let mut out = json!({});
        if let Some(attributes) = attributes {
            out["Attributes"] = item_json(&attributes);
        }
        Ok(with_consumed(out, input, &name, 1.0))
    }
}

/// `ProjectionExpression`, or the legacy `AttributesToGet`.
pub fn projection_of(input: &Input, ctx: &mut Ctx) -> Result<Option<Vec<Path>>> {
    if let Some(text) = input.str("ProjectionExpression")? {
        if input.get("AttributesToGet").is_some() {
            return Err(validation("Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}"));
        }
        return Ok(Some(ctx.projection(text)?));
    }
    Ok(input.array("AttributesToGet")?.map(|names| {
        names.iter().filter_map(|n| n.as_str()).map(|n| vec![Elem::Name(n.to_owned())]).collect()
    }))
}
