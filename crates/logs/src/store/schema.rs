//! The catalog's tables in `logs.db`, and loading them into memory at startup.

use std::collections::{BTreeMap, HashMap};
#[cfg(test)]
use std::path::Path;

use rusqlite::Connection;

use super::catalog::{CatalogError, Group, Stream};

const SCHEMA: &str = "
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
);";

type Loaded = (BTreeMap<String, Group>, HashMap<i64, (String, String)>);

/// Creates the tables if needed and reads every group and stream.
pub fn load(db: &Connection) -> Result<Loaded, CatalogError> {
    db.execute_batch(SCHEMA)?;
    let mut groups = BTreeMap::new();
    let mut names = HashMap::new();
    let mut statement =
        db.prepare("SELECT id, name, created_ms, retention_days, class, kms_key_id, tags FROM log_groups")?;
    let rows = statement.query_map([], |row| {
        let tags: String = row.get(6)?;
        Ok(Group {
            id: row.get(0)?,
            name: row.get(1)?,
            created: row.get(2)?,
            retention_days: row.get(3)?,
            class: row.get(4)?,
            kms_key_id: row.get(5)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            streams: BTreeMap::new(),
        })
    })?;
    for group in rows {
        let group = group?;
        names.insert(group.id, group.name.clone());
        groups.insert(group.name.clone(), group);
    }
    let mut owners = HashMap::new();
    let mut statement = db.prepare(
        "SELECT id, group_id, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, stored_bytes
         FROM log_streams",
    )?;
    let rows = statement.query_map([], |row| {
        let stream = Stream {
            id: row.get(0)?,
            name: row.get(2)?,
            created: row.get(3)?,
            first_event: row.get(4)?,
            last_event: row.get(5)?,
            last_ingestion: row.get(6)?,
            stored_bytes: row.get::<_, i64>(7)?.max(0) as u64,
        };
        Ok((row.get::<_, i64>(1)?, stream))
    })?;
    for row in rows {
        let (group_id, stream) = row?;
        let Some(group) = names.get(&group_id).and_then(|name| groups.get_mut(name)) else {
            continue;
        };
        owners.insert(stream.id, (group.name.clone(), stream.name.clone()));
        group.streams.insert(stream.name.clone(), stream);
    }
    Ok((groups, owners))
}

/// How many streams the file holds (tests check durability with it).
#[cfg(test)]
pub fn stored_stream_count(path: &Path) -> i64 {
    let db = Connection::open(path).unwrap();
    db.query_row("SELECT count(*) FROM log_streams", [], |row| row.get(0)).unwrap()
}
