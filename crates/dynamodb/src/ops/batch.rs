//! BatchGetItem (up to 100 keys) and BatchWriteItem (up to 25 puts and deletes), each in one
//! database transaction; nothing is ever throttled here, so `UnprocessedKeys` and
//! `UnprocessedItems` come back empty (or hold what passed the 16 MB response limit).

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::error::{missing, validation, DdbError, Result};
use crate::expr::{project, Ctx};
use crate::input::{table_name, Input};
use crate::ops::items::{check_size, projection_of};
use crate::ops::table_for_items;
use crate::store::{lock_item, read_item, write_item, Actor};
use crate::value::{item_json, item_size, parse_item};
use crate::DynamoDb;

const RESPONSE_BYTES: usize = 16 * 1024 * 1024;

fn request_items(input: &Input) -> Result<&Map<String, Value>> {
    let items = input.object("RequestItems")?.ok_or_else(|| missing("requestItems"))?;
    if items.is_empty() {
        return Err(validation("1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1"));
    }
    Ok(items)
}

impl DynamoDb {
    pub(crate) fn batch_get_item(&self, input: &Input) -> Result<Value> {
        let requests = request_items(input)?;
        let total: usize = requests.values().map(|r| r["Keys"].as_array().map_or(0, Vec::len)).sum();
        if total > 100 {
            return Err(validation("Too many items requested for the BatchGetItem call"));
        }
        let mut plans = Vec::new();
        for (name, request) in requests {
            let name = table_name(name, "requestItems.key")?;
            let request = Input::from_value(request);
            let mut ctx = Ctx::from_request(&request.0)?;
            let projection = projection_of(&request, &mut ctx)?;
            ctx.check_unused()?;
            let keys = request.array("Keys")?.ok_or_else(|| missing("requestItems.keys"))?;
            if keys.is_empty() {
                return Err(validation("1 validation error detected: Value '[]' at 'requestItems.1.member.keys' failed to satisfy constraint: Member must have length greater than or equal to 1"));
            }
            let keys = keys.iter().map(|k| parse_item(Some(k), "keys")).collect::<Result<Vec<_>>>()?;
            plans.push((name, projection, keys, request));
        }
        let (responses, unprocessed) = self.db.read(|tx| {
            let mut responses = Map::new();
            let mut unprocessed = Map::new();
            let mut bytes = 0usize;
            for (name, projection, keys, request) in &plans {
                let table = table_for_items(tx, name)?;
                let mut seen = HashSet::new();
                let mut found = Vec::new();
                let mut left = Vec::new();
                for key in keys {
                    let row_key = table.key_of(key)?;
                    if !seen.insert(row_key.clone()) {
                        return Err(validation("Provided list of item keys contains duplicates"));
                    }
                    if bytes > RESPONSE_BYTES {
                        left.push(item_json(key));
                        continue;
                    }
                    if let Some(item) = read_item(tx, &table, &row_key)? {
                        bytes += item_size(&item);
                        let item = match projection {
                            Some(paths) => project(&item, paths),
                            None => item,
                        };
                        found.push(item_json(&item));
                    }
                }
                responses.insert(name.clone(), Value::Array(found));
                if !left.is_empty() {
                    let mut again = request.0.clone();
                    again.insert("Keys".into(), Value::Array(left));
                    unprocessed.insert(name.clone(), Value::Object(again));
                }
            }
            Ok::<_, DdbError>((responses, unprocessed))
        })?;
        Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
    }

    pub(crate) fn batch_write_item(&self, input: &Input) -> Result<Value> {
        let requests = request_items(input)?;
        let total: usize = requests.values().map(|r| r.as_array().map_or(0, Vec::len)).sum();
        if total > 25 {
            return Err(validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]",
            ));
        }
        enum Write {
            Put(crate::value::Item),
            Delete(crate::value::Item),
        }
        let mut plans = Vec::new();
        for (name, writes) in requests {
            let name = table_name(name, "requestItems.key")?;
            let writes = writes
                .as_array()
                .ok_or_else(|| crate::error::serialization("Unexpected value type for RequestItems"))?;
            if writes.is_empty() {
                return Err(validation("1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]"));
            }
            let mut parsed = Vec::new();
            for write in writes {
                let put = write.get("PutRequest").filter(|v| !v.is_null());
                let delete = write.get("DeleteRequest").filter(|v| !v.is_null());
                parsed.push(match (put, delete) {
                    (Some(put), None) => {
                        let item = parse_item(put.get("Item"), "item")?;
                        check_size(&item)?;
                        Write::Put(item)
                    }
                    (None, Some(delete)) => Write::Delete(parse_item(delete.get("Key"), "key")?),
                    _ => return Err(validation("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes")),
                });
            }
            plans.push((name, parsed));
        }
        let region = self.region().to_owned();
        let streamed = self.db.write(|tx| {
            let mut streamed = false;
            for (name, writes) in &plans {
                let table = table_for_items(tx, name)?;
                let mut seen = HashSet::new();
                for write in writes {
                    let (key, new) = match write {
                        Write::Put(item) => (table.item_key(item)?, Some(item)),
                        Write::Delete(key) => (table.key_of(key)?, None),
                    };
                    if !seen.insert(key.clone()) {
                        return Err(validation("Provided list of item keys contains duplicates"));
                    }
                    lock_item(tx, &table, &key)?;
                    let old = if table.indexes.is_empty() && table.stream.is_none() {
                        None
                    } else {
                        read_item(tx, &table, &key)?
                    };
                    if new.is_none() && old.is_none() && (!table.indexes.is_empty() || table.stream.is_some())
                    {
                        continue;
                    }
                    streamed |= write_item(tx, &table, &key, old.as_ref(), new, Actor::User, &region)?;
                }
            }
            Ok::<_, DdbError>(streamed)
        })?;
        if streamed {
            self.streams_written();
        }
        Ok(json!({ "UnprocessedItems": {} }))
    }
}
