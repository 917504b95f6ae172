//! Log groups and their streams. All of it lives in memory, where every read is served from,
//! and is written through to the storage layer's `logs` schema (see `schema`). Streams get
//! numeric ids that are never reused; their events live in segment files under
//! `streams/<id>/` (see `segments`).
//!
//! The memory is authoritative: one process serves the logs of a database at a time. Another
//! that opens the same database later (after this one closed or died) loads everything back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use nimbus_store::{params, Database, DbError, ServiceDb};

use super::schema;

#[derive(Debug, Clone)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub created: i64,
    pub retention_days: Option<i64>,
    pub class: String,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub streams: BTreeMap<String, Stream>,
}

impl Group {
    pub fn stored_bytes(&self) -> u64 {
        self.streams.values().map(|s| s.stored_bytes).sum()
    }
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub id: i64,
    pub name: String,
    pub created: i64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    pub stored_bytes: u64,
}

/// What one batch of appends (or an expiry) did to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamUpdate {
    pub id: i64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    pub bytes_delta: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    #[error("The specified log group does not exist.")]
    GroupNotFound,
    #[error("The specified log stream does not exist.")]
    StreamNotFound,
    #[error("The specified log group already exists")]
    GroupExists,
    #[error("The specified log stream already exists")]
    StreamExists,
    #[error("log metadata: {0}")]
    Database(String),
}

impl From<DbError> for CatalogError {
    fn from(error: DbError) -> Self {
        CatalogError::Database(error.to_string())
    }
}

/// A conflict on insert means another process made the same name meanwhile.
fn exists(error: DbError, taken: CatalogError) -> CatalogError {
    match error {
        DbError::Conflict(_) => taken,
        other => other.into(),
    }
}

pub struct NewGroup<'a> {
    pub name: &'a str,
    pub created: i64,
    pub class: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub tags: BTreeMap<String, String>,
}

struct Inner {
    groups: BTreeMap<String, Group>,
    /// Stream id → its group's and its own name.
    owners: HashMap<i64, (String, String)>,
}

/// Writes go to the database under the lock, so that memory and tables change in one order.
pub struct Catalog {
    db: ServiceDb,
    inner: Mutex<Inner>,
}

impl Catalog {
    pub fn open(database: &Database) -> Result<Catalog, CatalogError> {
        let db = database.open(&schema::SCHEMA)?;
        let (groups, owners) = schema::load(&db)?;
        Ok(Catalog { db, inner: Mutex::new(Inner { groups, owners }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the groups (briefly holding the lock: copy out what you need).
    pub fn read<R>(&self, f: impl FnOnce(&BTreeMap<String, Group>) -> R) -> R {
        f(&self.lock().groups)
    }

    pub fn group(&self, name: &str) -> Result<Group, CatalogError> {
        self.read(|groups| groups.get(name).cloned()).ok_or(CatalogError::GroupNotFound)
    }

    pub fn stream_exists(&self, id: i64) -> bool {
        self.lock().owners.contains_key(&id)
    }

    pub fn create_group(&self, new: NewGroup<'_>) -> Result<(), CatalogError> {
        let mut inner = self.lock();
        if inner.groups.contains_key(new.name) {
            return Err(CatalogError::GroupExists);
        }
        let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "{}".into());
        let id = self
            .db
            .write(|tx| {
                tx.query_value(
                    "INSERT INTO log_groups (name, created_ms, class, kms_key_id, tags)
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    &params![new.name, new.created, new.class, new.kms_key_id, tags],
                )
            })
            .map_err(|e| exists(e, CatalogError::GroupExists))?
            .ok_or_else(|| CatalogError::Database("no id for the new log group".into()))?;
        let group = Group {
            id,
            name: new.name.to_owned(),
            created: new.created,
            retention_days: None,
            class: new.class.to_owned(),
            kms_key_id: new.kms_key_id.map(str::to_owned),
            tags: new.tags,
            streams: BTreeMap::new(),
        };
        inner.groups.insert(group.name.clone(), group);
        Ok(())
    }

    /// Removes a group; returns the ids of its streams, whose files are now garbage.
    pub fn delete_group(&self, name: &str) -> Result<Vec<i64>, CatalogError> {
        let mut inner = self.lock();
        let id = inner.groups.get(name).ok_or(CatalogError::GroupNotFound)?.id;
        self.db.execute("DELETE FROM log_groups WHERE id = ?1", &params![id])?;
        let group = inner.groups.remove(name).ok_or(CatalogError::GroupNotFound)?;
        let ids: Vec<i64> = group.streams.values().map(|s| s.id).collect();
        for id in &ids {
            inner.owners.remove(id);
        }
        Ok(ids)
    }

    /// Stores a subscription or metric filter of `group` (`kind` `subscription` / `metric`).
    pub fn put_filter(
        &self,
        group: &str,
        kind: &str,
        name: &str,
        doc: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        let sql = "INSERT INTO log_filters (group_name, kind, name, doc) VALUES (?1, ?2, ?3, ?4) \
                   ON CONFLICT (group_name, kind, name) DO UPDATE SET doc = excluded.doc";
        self.db.execute(sql, &params![group, kind, name, doc.to_string()])?;
        Ok(())
    }

    /// Filters of `kind`, of one group or of all, in group then name order.
    pub fn filters(&self, group: Option<&str>, kind: &str) -> Result<Vec<serde_json::Value>, CatalogError> {
        let rows = match group {
            Some(group) => self.db.query(
                "SELECT doc FROM log_filters WHERE group_name = ?1 AND kind = ?2 ORDER BY name",
                &params![group, kind],
            )?,
            None => self.db.query(
                "SELECT doc FROM log_filters WHERE kind = ?1 ORDER BY group_name, name",
                &params![kind],
            )?,
        };
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<String>(0).ok())
            .filter_map(|d| serde_json::from_str(&d).ok())
            .collect())
    }

    /// Removes a filter (all of a group's with `name` None); whether any was there.
    pub fn delete_filters(
        &self,
        group: &str,
        kind: Option<&str>,
        name: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let deleted = match (kind, name) {
            (Some(kind), Some(name)) => self.db.execute(
                "DELETE FROM log_filters WHERE group_name = ?1 AND kind = ?2 AND name = ?3",
                &params![group, kind, name],
            )?,
            _ => self.db.execute("DELETE FROM log_filters WHERE group_name = ?1", &params![group])?,
        };
        Ok(deleted > 0)
    }

    pub fn set_retention(&self, name: &str, days: Option<i64>) -> Result<(), CatalogError> {
        let mut inner = self.lock();
        let id = inner.groups.get(name).ok_or(CatalogError::GroupNotFound)?.id;
        self.db.execute("UPDATE log_groups SET retention_days = ?1 WHERE id = ?2", &params![days, id])?;
        if let Some(group) = inner.groups.get_mut(name) {
            group.retention_days = days;
        }
        Ok(())
    }

    pub fn set_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<(), CatalogError> {
        let mut inner = self.lock();
        let id = inner.groups.get(name).ok_or(CatalogError::GroupNotFound)?.id;
        let text = serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into());
        self.db.execute("UPDATE log_groups SET tags = ?1 WHERE id = ?2", &params![text, id])?;
        if let Some(group) = inner.groups.get_mut(name) {
            group.tags = tags;
        }
        Ok(())
    }

    pub fn create_stream(&self, group: &str, name: &str, now: i64) -> Result<i64, CatalogError> {
        let mut inner = self.lock();
        let existing = inner.groups.get(group).ok_or(CatalogError::GroupNotFound)?;
        if existing.streams.contains_key(name) {
            return Err(CatalogError::StreamExists);
        }
        inner.insert_stream(&self.db, group, name, now)
    }

    pub fn delete_stream(&self, group: &str, name: &str) -> Result<i64, CatalogError> {
        let mut inner = self.lock();
        let found = inner.groups.get(group).ok_or(CatalogError::GroupNotFound)?;
        let id = found.streams.get(name).ok_or(CatalogError::StreamNotFound)?.id;
        self.db.execute("DELETE FROM log_streams WHERE id = ?1", &params![id])?;
        inner.owners.remove(&id);
        if let Some(found) = inner.groups.get_mut(group) {
            found.streams.remove(name);
        }
        Ok(id)
    }

    /// The stream's id, creating it and its group first if needed (how Lambda's logs arrive).
    pub fn ensure_stream(&self, group: &str, name: &str, now: i64) -> Result<i64, CatalogError> {
        if let Some(id) = self.read(|groups| Some(groups.get(group)?.streams.get(name)?.id)) {
            return Ok(id);
        }
        let created = self.create_group(NewGroup {
            name: group,
            created: now,
            class: "STANDARD",
            kms_key_id: None,
            tags: BTreeMap::new(),
        });
        match created {
            Ok(()) | Err(CatalogError::GroupExists) => {}
            Err(error) => return Err(error),
        }
        match self.create_stream(group, name, now) {
            Err(CatalogError::StreamExists) => self
                .read(|groups| Some(groups.get(group)?.streams.get(name)?.id))
                .ok_or(CatalogError::StreamNotFound),
            other => other,
        }
    }

    /// Applies what appends and expiry did to streams' statistics, in one transaction.
    pub fn record(&self, updates: &[StreamUpdate]) -> Result<(), CatalogError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut changed = Vec::with_capacity(updates.len());
        for update in updates {
            let Some(stream) = inner
                .owners
                .get(&update.id)
                .and_then(|(group, name)| inner.groups.get_mut(group)?.streams.get_mut(name))
            else {
                continue;
            };
            stream.first_event = min_some(stream.first_event, update.first_event);
            stream.last_event = stream.last_event.max(update.last_event);
            stream.last_ingestion = stream.last_ingestion.max(update.last_ingestion);
            stream.stored_bytes = stream.stored_bytes.saturating_add_signed(update.bytes_delta);
            changed.push(params![
                stream.first_event,
                stream.last_event,
                stream.last_ingestion,
                stream.stored_bytes as i64,
                stream.id
            ]);
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            for values in &changed {
                tx.execute(
                    "UPDATE log_streams SET first_event_ms = ?1, last_event_ms = ?2, last_ingestion_ms = ?3,
                     stored_bytes = ?4 WHERE id = ?5",
                    values,
                )?;
            }
            Ok(())
        })
    }

    /// Every stream whose group has a retention policy, with that policy in days.
    pub fn retained_streams(&self) -> Vec<(i64, i64)> {
        self.read(|groups| {
            groups
                .values()
                .filter_map(|g| Some((g, g.retention_days?)))
                .flat_map(|(g, days)| g.streams.values().map(move |s| (s.id, days)))
                .collect()
        })
    }

    pub fn stream_ids(&self) -> Vec<i64> {
        self.lock().owners.keys().copied().collect()
    }
}

impl Inner {
    fn insert_stream(
        &mut self,
        db: &ServiceDb,
        group: &str,
        name: &str,
        now: i64,
    ) -> Result<i64, CatalogError> {
        let group_id = self.groups.get(group).ok_or(CatalogError::GroupNotFound)?.id;
        let id = db
            .write(|tx| {
                tx.query_value(
                    "INSERT INTO log_streams (group_id, name, created_ms) VALUES (?1, ?2, ?3) RETURNING id",
                    &params![group_id, name, now],
                )
            })
            .map_err(|e| exists(e, CatalogError::StreamExists))?
            .ok_or_else(|| CatalogError::Database("no id for the new log stream".into()))?;
        let stream = Stream {
            id,
            name: name.to_owned(),
            created: now,
            first_event: None,
            last_event: None,
            last_ingestion: None,
            stored_bytes: 0,
        };
        if let Some(found) = self.groups.get_mut(group) {
            found.streams.insert(name.to_owned(), stream);
        }
        self.owners.insert(id, (group.to_owned(), name.to_owned()));
        Ok(id)
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::databases;

    fn group(name: &str) -> NewGroup<'_> {
        NewGroup { name, created: 1, class: "STANDARD", kms_key_id: None, tags: BTreeMap::new() }
    }

    #[test]
    fn groups_and_streams_survive_a_reopen_on_every_backend() {
        for (database, _dir) in databases("logs_catalog") {
            let id;
            {
                let catalog = Catalog::open(&database).unwrap();
                catalog.create_group(group("/app")).unwrap();
                assert_eq!(catalog.create_group(group("/app")), Err(CatalogError::GroupExists));
                id = catalog.create_stream("/app", "s1", 5).unwrap();
                assert_eq!(catalog.create_stream("/app", "s1", 5), Err(CatalogError::StreamExists));
                assert_eq!(catalog.create_stream("/nope", "s1", 5), Err(CatalogError::GroupNotFound));
                catalog.set_retention("/app", Some(7)).unwrap();
                catalog.set_tags("/app", BTreeMap::from([("team".into(), "a".into())])).unwrap();
                let update = StreamUpdate {
                    id,
                    first_event: Some(10),
                    last_event: Some(20),
                    last_ingestion: Some(30),
                    bytes_delta: 100,
                };
                catalog.record(&[update]).unwrap();
                assert_eq!(catalog.ensure_stream("/aws/lambda/f", "x", 9).unwrap(), id + 1);
            }
            let catalog = Catalog::open(&database).unwrap();
            let app = catalog.group("/app").unwrap();
            assert_eq!(app.retention_days, Some(7));
            assert_eq!(app.tags["team"], "a");
            let stream = &app.streams["s1"];
            assert_eq!(
                (stream.first_event, stream.last_event, stream.last_ingestion),
                (Some(10), Some(20), Some(30))
            );
            assert_eq!(app.stored_bytes(), 100);
            assert!(catalog.group("/aws/lambda/f").unwrap().streams.contains_key("x"));
            assert_eq!(catalog.retained_streams(), vec![(stream.id, 7)]);
            assert_eq!(catalog.delete_group("/app").unwrap(), vec![stream.id]);
            assert!(!catalog.stream_exists(stream.id));
            // The group's streams went with it (ON DELETE CASCADE).
            let left: Option<i64> =
                catalog.db.read(|tx| tx.query_value("SELECT COUNT(*) FROM log_streams", &[])).unwrap();
            assert_eq!(left, Some(1));
            // Ids are never reused, so files of a deleted stream cannot resurface in a new one.
            assert_eq!(catalog.ensure_stream("/app2", "y", 9).unwrap(), id + 2);
            assert_eq!(catalog.delete_stream("/app2", "y").unwrap(), id + 2);
            assert_eq!(catalog.ensure_stream("/app2", "y", 9).unwrap(), id + 3);
        }
    }

    #[test]
    fn a_catalog_from_before_the_storage_layer_is_found_and_kept() {
        // As nimbus left it: its tables in logs/logs.db, no schema version (user_version 0).
        let dir = tempfile::tempdir().unwrap();
        let database = Database::sqlite(dir.path());
        let unversioned = nimbus_store::Schema { migrations: &[], ..schema::SCHEMA };
        let old = database.open(&unversioned).unwrap();
        old.write(|tx| {
            for table in schema::SCHEMA.migrations[0].sqlite.split(';').filter(|s| !s.trim().is_empty()) {
                tx.execute(table, &[])?;
            }
            tx.execute("INSERT INTO log_groups (name, created_ms, class) VALUES ('/old', 1, 'STANDARD')", &[])
        })
        .unwrap();
        drop(old);
        assert!(dir.path().join("logs/logs.db").exists());
        let catalog = Catalog::open(&database).unwrap();
        assert_eq!(catalog.group("/old").unwrap().id, 1);
        catalog.create_group(group("/new")).unwrap();
        assert_eq!(catalog.group("/new").unwrap().id, 2);
    }
}
