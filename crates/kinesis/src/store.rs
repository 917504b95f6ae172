//! Kinesis's tables: streams, their shards (open and closed), records, consumers and tags. Every
//! node on a shared database answers from here; a shard's row is the lock that orders its
//! sequence numbers.

use nimbus_store::{params, Database, DbError, Migration, Row, Schema, ServiceDb, Tx};

use crate::error::{self, Result};
use crate::hash;

const MIGRATIONS: &[Migration] = &[
    Migration::both(
        "CREATE TABLE streams (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            arn TEXT NOT NULL,
            mode TEXT NOT NULL,
            retention_hours BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            next_shard BIGINT NOT NULL
        )",
    ),
    Migration::both(
        "CREATE TABLE shards (
            stream_id TEXT NOT NULL,
            shard_index BIGINT NOT NULL,
            parent BIGINT,
            adjacent_parent BIGINT,
            start_hash TEXT NOT NULL,
            end_hash TEXT NOT NULL,
            next_seq BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            closed_ms BIGINT,
            PRIMARY KEY (stream_id, shard_index)
        )",
    ),
    Migration {
        sqlite: "CREATE TABLE records (
            stream_id TEXT NOT NULL,
            shard_index BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            partition_key TEXT NOT NULL,
            data BLOB NOT NULL,
            arrival_ms BIGINT NOT NULL,
            PRIMARY KEY (stream_id, shard_index, seq)
        )",
        postgres: "CREATE TABLE records (
            stream_id TEXT NOT NULL,
            shard_index BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            partition_key TEXT NOT NULL,
            data BYTEA NOT NULL,
            arrival_ms BIGINT NOT NULL,
            PRIMARY KEY (stream_id, shard_index, seq)
        )",
    },
    Migration::both(
        "CREATE TABLE consumers (
            stream_id TEXT NOT NULL,
            name TEXT NOT NULL,
            arn TEXT NOT NULL UNIQUE,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (stream_id, name)
        )",
    ),
    Migration::both(
        "CREATE TABLE tags (
            resource_arn TEXT NOT NULL,
            tag_key TEXT NOT NULL,
            tag_value TEXT NOT NULL,
            PRIMARY KEY (resource_arn, tag_key)
        )",
    ),
    // Retention sweeps and AT_TIMESTAMP positions.
    Migration::both("CREATE INDEX records_arrival ON records (stream_id, shard_index, arrival_ms)"),
    Migration::both("ALTER TABLE streams ADD COLUMN shard_metrics TEXT NOT NULL DEFAULT ''"),
    Migration::both("ALTER TABLE streams ADD COLUMN encryption_key TEXT"),
];

pub const SCHEMA: Schema =
    Schema { service: "kinesis", sqlite_file: crate::SQLITE_FILE, relaxed: false, migrations: MIGRATIONS };

pub fn open(database: &Database) -> std::result::Result<ServiceDb, DbError> {
    database.open(&SCHEMA)
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub mode: String,
    pub retention_hours: i64,
    pub created_ms: i64,
    /// Enhanced monitoring's shard-level metrics, comma-separated.
    pub shard_metrics: String,
    /// The KMS key records are encrypted with (`StartStreamEncryption`); none: not encrypted.
    pub encryption_key: Option<String>,
}

impl Stream {
    pub const COLUMNS: &'static str =
        "id, name, arn, mode, retention_hours, created_ms, shard_metrics, encryption_key";

    pub fn from_row(row: &Row) -> std::result::Result<Stream, DbError> {
        Ok(Stream {
            id: row.get(0)?,
            name: row.get(1)?,
            arn: row.get(2)?,
            mode: row.get(3)?,
            retention_hours: row.get(4)?,
            created_ms: row.get(5)?,
            shard_metrics: row.get(6)?,
            encryption_key: row.get(7)?,
        })
    }

    pub fn encryption_type(&self) -> &'static str {
        if self.encryption_key.is_some() {
            "KMS"
        } else {
            "NONE"
        }
    }

    /// Records that arrived before this are gone.
    pub fn horizon_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.retention_hours * 3_600_000
    }
}

#[derive(Debug, Clone)]
pub struct Shard {
    pub index: i64,
    pub parent: Option<i64>,
    pub adjacent_parent: Option<i64>,
    pub start_hash: u128,
    pub end_hash: u128,
    /// The position the next record gets; records hold `1..next_seq`.
    pub next_seq: i64,
    pub created_ms: i64,
    pub closed_ms: Option<i64>,
}

impl Shard {
    pub const COLUMNS: &'static str =
        "shard_index, parent, adjacent_parent, start_hash, end_hash, next_seq, created_ms, closed_ms";

    pub fn from_row(row: &Row) -> std::result::Result<Shard, DbError> {
        let hash = |i: usize| -> std::result::Result<u128, DbError> {
            let text: String = row.get(i)?;
            hash::parse(&text).ok_or_else(|| DbError::other(format!("bad hash key {text}")))
        };
        Ok(Shard {
            index: row.get(0)?,
            parent: row.get(1)?,
            adjacent_parent: row.get(2)?,
            start_hash: hash(3)?,
            end_hash: hash(4)?,
            next_seq: row.get(5)?,
            created_ms: row.get(6)?,
            closed_ms: row.get(7)?,
        })
    }

    pub fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }

    pub fn id(&self) -> String {
        crate::seq::shard_id(self.index)
    }

    /// The last position written, 0 when none was.
    pub fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }
}

pub fn stream_by_name(tx: &mut Tx<'_>, name: &str) -> std::result::Result<Option<Stream>, DbError> {
    let sql = format!("SELECT {} FROM streams WHERE name = ?1", Stream::COLUMNS);
    tx.query_opt(&sql, &params![name])?.map(|row| Stream::from_row(&row)).transpose()
}

pub fn stream_by_id(tx: &mut Tx<'_>, id: &str) -> std::result::Result<Option<Stream>, DbError> {
    let sql = format!("SELECT {} FROM streams WHERE id = ?1", Stream::COLUMNS);
    tx.query_opt(&sql, &params![id])?.map(|row| Stream::from_row(&row)).transpose()
}

pub fn shards(tx: &mut Tx<'_>, stream_id: &str) -> std::result::Result<Vec<Shard>, DbError> {
    let sql = format!("SELECT {} FROM shards WHERE stream_id = ?1 ORDER BY shard_index", Shard::COLUMNS);
    tx.query(&sql, &params![stream_id])?.iter().map(Shard::from_row).collect()
}

pub fn shard(tx: &mut Tx<'_>, stream_id: &str, index: i64) -> std::result::Result<Option<Shard>, DbError> {
    let sql = format!("SELECT {} FROM shards WHERE stream_id = ?1 AND shard_index = ?2", Shard::COLUMNS);
    tx.query_opt(&sql, &params![stream_id, index])?.map(|row| Shard::from_row(&row)).transpose()
}

/// A new open shard (the stream's `next_shard` counter is the caller's to advance).
pub struct NewShard {
    pub index: i64,
    pub parent: Option<i64>,
    pub adjacent_parent: Option<i64>,
    pub range: (u128, u128),
}

pub fn insert_shard(tx: &mut Tx<'_>, stream_id: &str, shard: &NewShard, now_ms: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO shards (stream_id, shard_index, parent, adjacent_parent, start_hash, end_hash, next_seq, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
        &params![
            stream_id,
            shard.index,
            shard.parent,
            shard.adjacent_parent,
            shard.range.0.to_string(),
            shard.range.1.to_string(),
            now_ms
        ],
    )
    .map_err(error::db)?;
    Ok(())
}

/// Closes shard `index` (no record is written to it after this transaction commits).
pub fn close_shard(tx: &mut Tx<'_>, stream_id: &str, index: i64, now_ms: i64) -> Result<()> {
    tx.execute(
        "UPDATE shards SET closed_ms = ?3 WHERE stream_id = ?1 AND shard_index = ?2 AND closed_ms IS NULL",
        &params![stream_id, index, now_ms],
    )
    .map_err(error::db)?;
    Ok(())
}

/// Hands out the next `count` shard indexes of a stream; returns the first.
pub fn take_shard_indexes(tx: &mut Tx<'_>, stream_id: &str, count: i64) -> Result<i64> {
    let next: Option<i64> = tx
        .query_value(
            "UPDATE streams SET next_shard = next_shard + ?2 WHERE id = ?1 RETURNING next_shard",
            &params![stream_id, count],
        )
        .map_err(error::db)?;
    next.map(|next| next - count).ok_or_else(|| error::internal("stream vanished"))
}

pub fn open_shard_count(tx: &mut Tx<'_>) -> Result<i64> {
    let count: Option<i64> =
        tx.query_value("SELECT COUNT(*) FROM shards WHERE closed_ms IS NULL", &[]).map_err(error::db)?;
    Ok(count.unwrap_or(0))
}
