//! The catalog's tables (the `logs` schema of the storage layer; on SQLite the file
//! `logs/logs.db`, where it always was), and loading them into memory at startup.

use std::collections::{BTreeMap, HashMap};

use nimbus_store::{Migration, Schema, ServiceDb};

use super::catalog::{CatalogError, Group, Stream};

/// Stream ids are never reused (AUTOINCREMENT, a PostgreSQL sequence): the files of a deleted
/// stream must not resurface in a new one. Statistics are relaxed (`synchronous = NORMAL`): a
/// power cut may lose the last moment of them, never a group or stream.
pub const SCHEMA: Schema = Schema {
    service: "logs",
    sqlite_file: "logs/logs.db",
    relaxed: true,
    migrations: &[
        Migration {
            // As before the storage layer (IF NOT EXISTS): files of that time migrate as they are.
            sqlite: "
CREATE TABLE IF NOT EXISTS log_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    retention_days INTEGER,
    class TEXT NOT NULL,
    kms_key_id TEXT,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS log_streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES log_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    first_event_ms INTEGER,
    last_event_ms INTEGER,
    last_ingestion_ms INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_id, name)
);",
            postgres: "
CREATE TABLE log_groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    retention_days BIGINT,
    class TEXT NOT NULL,
    kms_key_id TEXT,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE log_streams (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id BIGINT NOT NULL REFERENCES log_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    first_event_ms BIGINT,
    last_event_ms BIGINT,
    last_ingestion_ms BIGINT,
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    UNIQUE (group_id, name)
);",
        },
        Migration::both(
            // Subscription and metric filters of a group, as the JSON DescribeSubscriptionFilters /
            // DescribeMetricFilters answer.
            "CREATE TABLE log_filters (group_name TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
            doc TEXT NOT NULL, PRIMARY KEY (group_name, kind, name));",
        ),
    ],
};

type Loaded = (BTreeMap<String, Group>, HashMap<i64, (String, String)>);

/// Reads every group and stream.
pub fn load(db: &ServiceDb) -> Result<Loaded, CatalogError> {
    let (group_rows, stream_rows) = db.read(|tx| {
        let groups =
            tx.query("SELECT id, name, created_ms, retention_days, class, kms_key_id, tags FROM log_groups", &[])?;
        let streams = tx.query(
            "SELECT id, group_id, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, stored_bytes
             FROM log_streams",
            &[],
        )?;
        Ok::<_, CatalogError>((groups, streams))
    })?;
    let mut groups = BTreeMap::new();
    let mut names = HashMap::new();
    for row in group_rows {
        let tags: String = row.get(6)?;
        let group = Group {
            id: row.get(0)?,
            name: row.get(1)?,
            created: row.get(2)?,
            retention_days: row.get(3)?,
            class: row.get(4)?,
            kms_key_id: row.get(5)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            streams: BTreeMap::new(),
        };
        names.insert(group.id, group.name.clone());
        groups.insert(group.name.clone(), group);
    }
    let mut owners = HashMap::new();
    for row in stream_rows {
        let group_id: i64 = row.get(1)?;
        let stream = Stream {
            id: row.get(0)?,
            name: row.get(2)?,
            created: row.get(3)?,
            first_event: row.get(4)?,
            last_event: row.get(5)?,
            last_ingestion: row.get(6)?,
            stored_bytes: row.get::<i64>(7)?.max(0) as u64,
        };
        let Some(group) = names.get(&group_id).and_then(|name| groups.get_mut(name)) else {
            continue;
        };
        owners.insert(stream.id, (group.name.clone(), stream.name.clone()));
        group.streams.insert(stream.name.clone(), stream);
    }
    Ok((groups, owners))
}
