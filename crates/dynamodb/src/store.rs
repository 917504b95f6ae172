//! The tables behind DynamoDB: table definitions, items keyed by ordered key bytes (so that
//! queries and pagination are index range scans), secondary index entries, stream records and
//! transaction tokens. Every change to an item — its index entries and its stream record
//! included — is one database transaction.

use nimbus_store::{params, Migration, Schema, Tx};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::table::{RowKey, Table};
use crate::value::{item_json, item_size, stored_item, Av, Item};

pub const SCHEMA: Schema = Schema {
    service: "dynamodb",
    sqlite_file: "dynamodb/dynamodb.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE ddb_tables (name TEXT PRIMARY KEY, id TEXT NOT NULL, spec TEXT NOT NULL,
                 ttl BIGINT NOT NULL DEFAULT 0, stream_seq BIGINT NOT NULL DEFAULT 0)",
        ),
        Migration {
            sqlite: "CREATE TABLE ddb_items (tid TEXT NOT NULL, pk BLOB NOT NULL, sk BLOB NOT NULL,
                 item TEXT NOT NULL, size BIGINT NOT NULL, seg BIGINT NOT NULL, expires BIGINT,
                 PRIMARY KEY (tid, pk, sk));
                 CREATE INDEX ddb_items_expiry ON ddb_items (tid, expires) WHERE expires IS NOT NULL;
                 CREATE TABLE ddb_index_items (tid TEXT NOT NULL, idx TEXT NOT NULL, pk BLOB NOT NULL,
                 sk BLOB NOT NULL, tpk BLOB NOT NULL, tsk BLOB NOT NULL, seg BIGINT NOT NULL,
                 PRIMARY KEY (tid, idx, pk, sk, tpk, tsk));",
            postgres: "CREATE TABLE ddb_items (tid TEXT NOT NULL, pk BYTEA NOT NULL, sk BYTEA NOT NULL,
                 item TEXT NOT NULL, size BIGINT NOT NULL, seg BIGINT NOT NULL, expires BIGINT,
                 PRIMARY KEY (tid, pk, sk));
                 CREATE INDEX ddb_items_expiry ON ddb_items (tid, expires) WHERE expires IS NOT NULL;
                 CREATE TABLE ddb_index_items (tid TEXT NOT NULL, idx TEXT NOT NULL, pk BYTEA NOT NULL,
                 sk BYTEA NOT NULL, tpk BYTEA NOT NULL, tsk BYTEA NOT NULL, seg BIGINT NOT NULL,
                 PRIMARY KEY (tid, idx, pk, sk, tpk, tsk));",
        },
        Migration::both(
            "CREATE TABLE ddb_streams (arn TEXT PRIMARY KEY, tid TEXT NOT NULL, table_name TEXT NOT NULL,
                 label TEXT NOT NULL, view_type TEXT NOT NULL, key_schema TEXT NOT NULL,
                 created_ms BIGINT NOT NULL, closed_ms BIGINT);
             CREATE TABLE ddb_stream_records (arn TEXT NOT NULL, seq BIGINT NOT NULL,
                 created_ms BIGINT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (arn, seq));
             CREATE TABLE ddb_tokens (token TEXT PRIMARY KEY, digest TEXT NOT NULL,
                 response TEXT NOT NULL, created_ms BIGINT NOT NULL);",
        ),
        // Scans in hash-segment order: a parallel scan's segment is a range.
        Migration::both(
            "CREATE INDEX ddb_items_segments ON ddb_items (tid, seg, pk, sk);
             CREATE INDEX ddb_index_items_segments ON ddb_index_items (tid, idx, seg, pk, sk, tpk, tsk);",
        ),
    ],
};

/// Hash segments for parallel scans: `seg` is in `0..SEGMENTS`.
pub const SEGMENTS: i64 = 1 << 32;

pub fn segment_of(pk: &[u8]) -> i64 {
    let digest = Sha256::digest(pk);
    i64::from(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]))
}

pub fn load_table(tx: &mut Tx<'_>, name: &str) -> Result<Option<Table>> {
    let row = tx.query_opt("SELECT spec FROM ddb_tables WHERE name = ?1", &params![name])?;
    Ok(match row {
        Some(row) => Some(
            serde_json::from_str(&row.get::<String>(0)?)
                .map_err(|e| crate::error::DdbError::new(500, "InternalServerError", e.to_string()))?,
        ),
        None => None,
    })
}

pub fn save_table(tx: &mut Tx<'_>, table: &Table) -> Result<()> {
    let spec = serde_json::to_string(table).unwrap_or_default();
    tx.execute(
        "UPDATE ddb_tables SET spec = ?2, ttl = ?3 WHERE name = ?1",
        &params![table.name, spec, table.ttl_attribute.is_some()],
    )?;
    Ok(())
}

/// Serialises writers of one item across nodes (PostgreSQL); SQLite's writers are serial anyway.
pub fn lock_item(tx: &mut Tx<'_>, table: &Table, key: &RowKey) -> Result<()> {
    if tx.is_postgres() {
        let mut hasher = Sha256::new();
        hasher.update(table.id.as_bytes());
        hasher.update(&key.pk);
        hasher.update([0xFF]);
        hasher.update(&key.sk);
        let digest = hasher.finalize();
        let lock = i64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        tx.execute("SELECT pg_advisory_xact_lock(?1)", &params![lock])?;
    }
    Ok(())
}

pub fn read_item(tx: &mut Tx<'_>, table: &Table, key: &RowKey) -> Result<Option<Item>> {
    let row = tx.query_opt(
        "SELECT item FROM ddb_items WHERE tid = ?1 AND pk = ?2 AND sk = ?3",
        &params![table.id, key.pk, key.sk],
    )?;
    Ok(row.map(|row| row.get::<String>(0).map(|text| stored_item(&text))).transpose()?)
}

/// Who made a change, for stream records (TTL deletes are the service's).
#[derive(Clone, Copy, PartialEq)]
pub enum Actor {
    User,
    Ttl,
}

/// Writes `new` (or deletes the item when None) in place of `old`: the row, its index entries
/// and, when the table has a stream, the stream record. Returns true when a stream record was
/// written.
pub fn write_item(
    tx: &mut Tx<'_>,
    table: &Table,
    key: &RowKey,
    old: Option<&Item>,
    new: Option<&Item>,
    actor: Actor,
    region: &str,
) -> Result<bool> {
    // A write that changes nothing writes nothing, and (as on AWS) no stream record.
    if let (Some(old), Some(new)) = (old, new) {
        if crate::expr::same_item(old, new) {
            return Ok(false);
        }
    }
    match new {
        Some(item) => {
            let text = item_json(item).to_string();
            let expires = table.ttl_attribute.as_ref().and_then(|attr| match item.get(attr) {
                Some(Av::N(n)) => n.as_i64(),
                _ => None,
            });
            tx.execute(
                "INSERT INTO ddb_items (tid, pk, sk, item, size, seg, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (tid, pk, sk) DO UPDATE SET item = excluded.item, size = excluded.size,
                 expires = excluded.expires",
                &params![table.id, key.pk, key.sk, text, item_size(item) as i64, segment_of(&key.pk), expires],
            )?;
        }
        None => {
            tx.execute(
                "DELETE FROM ddb_items WHERE tid = ?1 AND pk = ?2 AND sk = ?3",
                &params![table.id, key.pk, key.sk],
            )?;
        }
    }
    for index in &table.indexes {
        let before = old.and_then(|item| table.index_key(index, item));
        let after = new.and_then(|item| table.index_key(index, item));
        if before == after {
            continue;
        }
        if let Some(before) = before {
            tx.execute(
                "DELETE FROM ddb_index_items WHERE tid = ?1 AND idx = ?2 AND pk = ?3 AND sk = ?4 AND tpk = ?5 AND tsk = ?6",
                &params![table.id, index.name, before.pk, before.sk, key.pk, key.sk],
            )?;
        }
        if let Some(after) = after {
            tx.execute(
                "INSERT INTO ddb_index_items (tid, idx, pk, sk, tpk, tsk, seg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING",
                &params![table.id, index.name, after.pk, after.sk, key.pk, key.sk, segment_of(&after.pk)],
            )?;
        }
    }
    let Some(stream) = &table.stream else { return Ok(false) };
    if old.is_none() && new.is_none() {
        return Ok(false);
    }
    let seq: i64 = tx
        .query_value(
            "UPDATE ddb_tables SET stream_seq = stream_seq + 1 WHERE name = ?1 RETURNING stream_seq",
            &params![table.name],
        )?
        .unwrap_or(0);
    let now = nimbus_store::cluster::now_ms();
    let keys = table.key_item(new.or(old).unwrap_or(&Item::new()));
    let mut body = json!({
        "ApproximateCreationDateTime": now / 1000,
        "Keys": item_json(&keys),
        "SequenceNumber": sequence_text(seq),
        "StreamViewType": stream.view_type,
    });
    let mut size = crate::value::item_size(&keys);
    if matches!(stream.view_type.as_str(), "NEW_IMAGE" | "NEW_AND_OLD_IMAGES") {
        if let Some(new) = new {
            body["NewImage"] = item_json(new);
            size += item_size(new);
        }
    }
    if matches!(stream.view_type.as_str(), "OLD_IMAGE" | "NEW_AND_OLD_IMAGES") {
        if let Some(old) = old {
            body["OldImage"] = item_json(old);
            size += item_size(old);
        }
    }
    body["SizeBytes"] = json!(size);
    let name = match (old, new) {
        (None, _) => "INSERT",
        (Some(_), Some(_)) => "MODIFY",
        (Some(_), None) => "REMOVE",
    };
    let mut record = json!({
        "eventID": uuid::Uuid::new_v4().simple().to_string(),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
    });
    if actor == Actor::Ttl {
        // As GetRecords shows it; Lambda's event spells the members in lower camel case.
        record["userIdentity"] = json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"});
    }
    tx.execute(
        "INSERT INTO ddb_stream_records (arn, seq, created_ms, record) VALUES (?1, ?2, ?3, ?4)",
        &params![stream.arn, seq, now, record.to_string()],
    )?;
    Ok(true)
}

/// Sequence numbers as AWS shows them: decimal strings; zero-padded to 21 digits here, so that
/// they compare the same as strings and as numbers.
pub fn sequence_text(seq: i64) -> String {
    format!("{seq:021}")
}

pub fn parse_sequence(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.trim_start_matches('0').parse::<i64>().ok().or(if text.bytes().all(|b| b == b'0') {
        Some(0)
    } else {
        None
    })
}

/// Items and bytes of a table (DescribeTable).
pub fn table_stats(tx: &mut Tx<'_>, table: &Table) -> Result<(i64, i64)> {
    let row = tx.query_opt(
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ddb_items WHERE tid = ?1",
        &params![table.id],
    )?;
    Ok(match row {
        Some(row) => (row.get::<i64>(0).unwrap_or(0), row.get::<i64>(1).unwrap_or(0)),
        None => (0, 0),
    })
}

pub fn now_seconds() -> f64 {
    nimbus_store::cluster::now_ms() as f64 / 1000.0
}
