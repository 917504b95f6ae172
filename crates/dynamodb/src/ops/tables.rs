//! Tables: create, describe, list, update (billing, streams, GSIs with backfill), delete; TTL,
//! tags, and the account-level answers (limits, endpoints, backups).

use nimbus_store::params;
use serde_json::{json, Value};

use crate::error::{constraint, in_use, invalid, table_not_found, validation, DdbError, Result};
use crate::input::{table_name, Input};
use crate::store::{load_table, now_seconds, save_table, table_stats};
use crate::table::{Index, KeyAttr, Stream, Table};
use crate::value::stored_item;
use crate::DynamoDb;

const VIEW_TYPES: [&str; 4] = ["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"];

fn key_schema(
    value: Option<&Value>,
    member: &str,
    attributes: &[KeyAttr],
) -> Result<(KeyAttr, Option<KeyAttr>)> {
    let Some(Value::Array(keys)) = value else { return Err(crate::error::missing(member)) };
    if keys.is_empty() || keys.len() > 2 {
        return Err(constraint("[]", member, "Member must have length less than or equal to 2"));
    }
    let mut found = Vec::new();
    for key in keys {
        let name = key["AttributeName"].as_str().unwrap_or_default();
        let kind = key["KeyType"].as_str().unwrap_or_default();
        let attr = attributes.iter().find(|a| a.name == name).ok_or_else(|| {
            let defined: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
            invalid(format!(
                "Some index key attributes are not defined in AttributeDefinitions. Keys: [{name}], AttributeDefinitions: [{}]",
                defined.join(", ")
            ))
        })?;
        found.push((kind.to_owned(), attr.clone()));
    }
    match found.as_slice() {
        [(h, hash)] if h == "HASH" => Ok((hash.clone(), None)),
        [(h, hash), (r, range)] if h == "HASH" && r == "RANGE" => {
            if hash.name == range.name {
                return Err(invalid(
                    "Both the Hash Key and the Range Key element in the KeySchema have the same name",
                ));
            }
            Ok((hash.clone(), Some(range.clone())))
        }
        [(h, _), ..] if h != "HASH" => {
            Err(invalid("Invalid KeySchema: The first KeySchemaElement is not a HASH key type"))
        }
        _ => Err(invalid("Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")),
    }
}

fn throughput(value: Option<&Value>) -> Option<(i64, i64)> {
    let value = value.filter(|v| !v.is_null())?;
    Some((
        value["ReadCapacityUnits"].as_i64().unwrap_or(0),
        value["WriteCapacityUnits"].as_i64().unwrap_or(0),
    ))
}

fn index(value: &Value, global: bool, attributes: &[KeyAttr], billing: &str) -> Result<Index> {
    let name = value["IndexName"].as_str().ok_or_else(|| crate::error::missing("indexName"))?;
    table_name(name, "indexName")?;
    let (hash, range) = key_schema(value.get("KeySchema"), "keySchema", attributes)?;
    let projection = &value["Projection"];
    let kind = projection["ProjectionType"].as_str().unwrap_or("ALL").to_owned();
    let non_key: Vec<String> = projection["NonKeyAttributes"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if kind != "INCLUDE" && !non_key.is_empty() {
        return Err(invalid(format!("ProjectionType is {kind}, but NonKeyAttributes is specified")));
    }
    let units = throughput(value.get("ProvisionedThroughput"));
    if global && billing == "PROVISIONED" && units.is_none() {
        return Err(invalid(format!("ProvisionedThroughput is not specified for index: {name}")));
    }
    let (read_units, write_units) = units.unwrap_or((0, 0));
    Ok(Index {
        name: name.to_owned(),
        global,
        hash,
        range,
        projection: kind,
        non_key,
        read_units,
        write_units,
    })
}

fn new_stream(table_arn: &str, view_type: &str) -> Stream {
    let now = time::OffsetDateTime::now_utc();
    let label = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    Stream { arn: format!("{table_arn}/stream/{label}"), label, view_type: view_type.to_owned() }
}

fn stream_spec(input: &Input) -> Result<Option<Option<String>>> {
    let Some(spec) = input.object("StreamSpecification")? else { return Ok(None) };
    let enabled = spec
        .get("StreamEnabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| crate::error::missing("streamSpecification.streamEnabled"))?;
    if !enabled {
        return Ok(Some(None));
    }
    let view = spec.get("StreamViewType").and_then(Value::as_str).ok_or_else(|| {
        validation("One or more parameter values were invalid: StreamViewType is required when StreamEnabled is true")
    })?;
    if !VIEW_TYPES.contains(&view) {
        return Err(constraint(
            view,
            "streamSpecification.streamViewType",
            "Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]",
        ));
    }
    Ok(Some(Some(view.to_owned())))
}

pub(crate) fn tags(value: Option<&Value>) -> Result<Vec<(String, String)>> {
    let Some(Value::Array(tags)) = value else { return Ok(Vec::new()) };
    tags.iter()
        .map(|t| {
            let key = t["Key"].as_str().ok_or_else(|| crate::error::missing("tags.member.key"))?;
            Ok((key.to_owned(), t["Value"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

fn insert_stream_row(tx: &mut nimbus_store::Tx<'_>, table: &Table, stream: &Stream) -> Result<()> {
    let keys = json!(std::iter::once(json!({"AttributeName": table.hash.name, "KeyType": "HASH"}))
        .chain(table.range.iter().map(|r| json!({"AttributeName": r.name, "KeyType": "RANGE"})))
        .collect::<Vec<_>>());
    tx.execute(
        "INSERT INTO ddb_streams (arn, tid, table_name, label, view_type, key_schema, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &params![stream.arn, table.id, table.name, stream.label, stream.view_type, keys.to_string(), nimbus_store::cluster::now_ms()],
    )?;
    Ok(())
}

fn close_stream(tx: &mut nimbus_store::Tx<'_>, stream: &Stream) -> Result<()> {
    tx.execute(
        "UPDATE ddb_streams SET closed_ms = ?2 WHERE arn = ?1",
        &params![stream.arn, nimbus_store::cluster::now_ms()],
    )?;
    Ok(())
}

impl DynamoDb {
    pub(crate) fn create_table(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let attributes: Vec<KeyAttr> = input
            .array("AttributeDefinitions")?
            .ok_or_else(|| crate::error::missing("attributeDefinitions"))?
            .iter()
            .map(|a| {
                let kind = a["AttributeType"].as_str().unwrap_or_default();
                if !["S", "N", "B"].contains(&kind) {
                    return Err(constraint(
                        kind,
                        "attributeDefinitions.member.attributeType",
                        "Member must satisfy enum value set: [B, N, S]",
                    ));
                }
                Ok(KeyAttr {
                    name: a["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    kind: kind.to_owned(),
                })
            })
            .collect::<Result<_>>()?;
        let (hash, range) = key_schema(input.get("KeySchema"), "keySchema", &attributes)?;
        let billing = input
            .choice("BillingMode", &["PROVISIONED", "PAY_PER_REQUEST"])?
            .unwrap_or("PROVISIONED")
            .to_owned();
        let units = throughput(input.get("ProvisionedThroughput"));
        let (read_units, write_units) = match (billing.as_str(), units) {
            ("PROVISIONED", None) => {
                return Err(invalid("ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"))
            }
            ("PAY_PER_REQUEST", Some(_)) => {
                return Err(invalid("Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"))
            }
            (_, units) => units.unwrap_or((0, 0)),
        };
        let mut indexes = Vec::new();
        for value in input.array("GlobalSecondaryIndexes")?.into_iter().flatten() {
            indexes.push(index(value, true, &attributes, &billing)?);
        }
        for value in input.array("LocalSecondaryIndexes")?.into_iter().flatten() {
            let lsi = index(value, false, &attributes, &billing)?;
            if range.is_none() {
                return Err(invalid("Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex"));
            }
            if lsi.hash != hash {
                return Err(invalid(format!("Index KeySchema does not have the same leading hash key as table KeySchema for index: {}. index hash key: {}, table hash key: {}", lsi.name, lsi.hash.name, hash.name)));
            }
            indexes.push(lsi);
        }
        let mut seen = std::collections::HashSet::new();
        for i in &indexes {
            if !seen.insert(i.name.clone()) {
                return Err(invalid(format!("Duplicate index name: {}", i.name)));
            }
        }
        // Every defined attribute must be a key of the table or an index.
        let used: std::collections::HashSet<&str> = std::iter::once(&hash)
            .chain(range.as_ref())
            .chain(indexes.iter().flat_map(|i| std::iter::once(&i.hash).chain(i.range.as_ref())))
            .map(|a| a.name.as_str())
            .collect();
        if attributes.iter().any(|a| !used.contains(a.name.as_str())) || attributes.len() != used.len() {
            return Err(invalid("Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions"));
        }
        let arn = self.table_arn(&name);
        let stream = stream_spec(input)?.flatten().map(|view| new_stream(&arn, &view));
        let table = Table {
            name: name.clone(),
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            arn,
            created: now_seconds(),
            hash,
            range,
            attributes,
            billing,
            read_units,
            write_units,
            indexes,
            latest_stream: stream.clone(),
            stream,
            ttl_attribute: None,
            tags: tags(input.get("Tags"))?,
            deletion_protection: input.bool("DeletionProtectionEnabled")?.unwrap_or(false),
            point_in_time_recovery: false,
            table_class: input
                .choice("TableClass", &["STANDARD", "STANDARD_INFREQUENT_ACCESS"])?
                .unwrap_or("STANDARD")
                .to_owned(),
        };
        self.db.write(|tx| {
            let spec = serde_json::to_string(&table).unwrap_or_default();
            let inserted = tx.execute(
                "INSERT INTO ddb_tables (name, id, spec) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                &params![table.name, table.id, spec],
            )?;
            if inserted == 0 {
                return Err(in_use(format!("Table already exists: {}", table.name)));
            }
            if let Some(stream) = &table.stream {
                insert_stream_row(tx, &table, stream)?;
            }
            Ok::<_, DdbError>(())
        })?;
        let mut description = table.describe(0, 0);
        description["TableStatus"] = json!("CREATING");
        Ok(json!({ "TableDescription": description }))
    }

    pub(crate) fn existing(&self, name: &str) -> Result<Table> {
        self.db.read(|tx| load_table(tx, name))?.ok_or_else(|| table_not_found(name))
    }

    pub(crate) fn describe_table(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let (table, (count, size)) = self.db.read(|tx| {
            let table = load_table(tx, &name)?.ok_or_else(|| table_not_found(&name))?;
            let stats = table_stats(tx, &table)?;
            Ok::<_, DdbError>((table, stats))
        })?;
        Ok(json!({ "Table": table.describe(count, size) }))
    }

    pub(crate) fn list_tables(&self, input: &Input) -> Result<Value> {
        let limit = input.int("Limit")?.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(constraint(limit, "limit", "Member must have value less than or equal to 100"));
        }
        let start = input.str("ExclusiveStartTableName")?.unwrap_or("").to_owned();
        let rows = self.db.query(
            "SELECT name FROM ddb_tables WHERE name > ?1 ORDER BY name LIMIT ?2",
            &params![start, limit + 1],
        )?;
        let mut names: Vec<String> = rows.iter().filter_map(|r| r.get(0).ok()).collect();
        let more = names.len() as i64 > limit;
        names.truncate(limit as usize);
        let mut out = json!({ "TableNames": names });
        if more {
            out["LastEvaluatedTableName"] = json!(names.last());
        }
        Ok(out)
    }

    pub(crate) fn delete_table(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let table = self.db.write(|tx| {
            let table = load_table(tx, &name)?.ok_or_else(|| table_not_found(&name))?;
            if table.deletion_protection {
                return Err(validation(
                    "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
                ));
            }
            tx.execute("DELETE FROM ddb_tables WHERE name = ?1", &params![name])?;
            tx.execute("DELETE FROM ddb_items WHERE tid = ?1", &params![table.id])?;
            tx.execute("DELETE FROM ddb_index_items WHERE tid = ?1", &params![table.id])?;
            if let Some(stream) = &table.stream {
                close_stream(tx, stream)?;
            }
            Ok::<_, DdbError>(table)
        })?;
        let mut description = table.describe(0, 0);
        description["TableStatus"] = json!("DELETING");
        Ok(json!({ "TableDescription": description }))
    }

    pub(crate) fn update_table(&self, input: &Input) -> Result<Value> {
        let name = input.table_name()?;
        let stream = stream_spec(input)?;
        let region = self.region().to_owned();
        let table = self.db.write(|tx| {
            let mut table = load_table(tx, &name)?.ok_or_else(|| table_not_found(&name))?;
            if let Some(billing) = input.choice("BillingMode", &["PROVISIONED", "PAY_PER_REQUEST"])? {
                table.billing = billing.to_owned();
            }
            if let Some((read, write)) = throughput(input.get("ProvisionedThroughput")) {
                if table.billing == "PAY_PER_REQUEST" {
                    return Err(invalid("Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"));
                }
                table.read_units = read;
                table.write_units = write;
            }
            if let Some(protect) = input.bool("DeletionProtectionEnabled")? {
                table.deletion_protection = protect;
            }
            if let Some(class) = input.choice("TableClass", &["STANDARD", "STANDARD_INFREQUENT_ACCESS"])? {
                table.table_class = class.to_owned();
            }
            match stream {
                Some(Some(view)) => {
                    if table.stream.is_some() {
                        return Err(validation(format!("Table already has an enabled stream: {}", table.arn)));
                    }
                    let fresh = new_stream(&table.arn, &view);
                    insert_stream_row(tx, &table, &fresh)?;
                    table.latest_stream = Some(fresh.clone());
                    table.stream = Some(fresh);
                }
                Some(None) => {
                    let Some(old) = table.stream.take() else {
                        return Err(validation("Table already has no stream enabled"));
                    };
                    close_stream(tx, &old)?;
                }
                None => {}
            }
            let mut attributes = table.attributes.clone();
            for a in input.array("AttributeDefinitions")?.into_iter().flatten() {
                let attr = KeyAttr {
                    name: a["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    kind: a["AttributeType"].as_str().unwrap_or_default().to_owned(),
                };
                if !attributes.iter().any(|x| x.name == attr.name) {
                    attributes.push(attr);
                }
            }
            for update in input.array("GlobalSecondaryIndexUpdates")?.into_iter().flatten() {
                if let Some(create) = update.get("Create") {
                    let gsi = index(create, true, &attributes, &table.billing)?;
                    if table.index(&gsi.name).is_some() {
                        return Err(invalid(format!("Index already exists: {}", gsi.name)));
                    }
                    for a in [&gsi.hash].into_iter().chain(gsi.range.as_ref()) {
                        if !table.attributes.contains(a) {
                            table.attributes.push(a.clone());
                        }
                    }
                    backfill(tx, &table, &gsi)?;
                    table.indexes.push(gsi);
                } else if let Some(delete) = update.get("Delete") {
                    let index_name = delete["IndexName"].as_str().unwrap_or_default();
                    let before = table.indexes.len();
                    table.indexes.retain(|i| !(i.global && i.name == index_name));
                    if before == table.indexes.len() {
                        return Err(DdbError::new(400, "ResourceNotFoundException", format!("Requested resource not found: Index: {index_name} not found")));
                    }
                    tx.execute("DELETE FROM ddb_index_items WHERE tid = ?1 AND idx = ?2", &params![table.id, index_name])?;
                } else if let Some(change) = update.get("Update") {
                    let index_name = change["IndexName"].as_str().unwrap_or_default();
                    let Some(found) = table.indexes.iter_mut().find(|i| i.global && i.name == index_name) else {
                        return Err(DdbError::new(400, "ResourceNotFoundException", format!("Requested resource not found: Index: {index_name} not found")));
                    };
                    if let Some((read, write)) = throughput(change.get("ProvisionedThroughput")) {
                        found.read_units = read;
                        found.write_units = write;
                    }
                }
            }
            save_table(tx, &table)?;
            let _ = &region;
            Ok::<_, DdbError>(table)
        })?;
        let (count, size) = self.db.read(|tx| table_stats(tx, &table))?;
        Ok(json!({ "TableDescription": table.describe(count, size) }))
    }
}

/// Index entries for the items already in the table (a GSI added by UpdateTable).
fn backfill(tx: &mut nimbus_store::Tx<'_>, table: &Table, index: &Index) -> Result<()> {
    let rows = tx.query("SELECT pk, sk, item FROM ddb_items WHERE tid = ?1", &params![table.id])?;
    for row in rows {
        let item = stored_item(&row.get::<String>(2)?);
        if let Some(key) = table.index_key(index, &item) {
            tx.execute(
                "INSERT INTO ddb_index_items (tid, idx, pk, sk, tpk, tsk, seg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                &params![table.id, index.name, key.pk, key.sk, row.get::<Vec<u8>>(0)?, row.get::<Vec<u8>>(1)?, crate::store::segment_of(&key.pk)],
            )?;
        }
    }
    Ok(())
}
