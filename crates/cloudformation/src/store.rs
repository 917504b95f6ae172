//! Stacks, their events, change sets and the signals functions send back (custom resource
//! responses, wait condition signals), in the storage layer: every state change and its events
//! are one transaction, committed before anything is acknowledged.

use nimbus_store::{params, Database, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;

use crate::model::{ChangeSet, Event, Stack};

pub const SCHEMA: Schema = Schema {
    service: "cloudformation",
    sqlite_file: "cloudformation/cloudformation.sqlite",
    relaxed: false,
    migrations: &[Migration::both(
        "CREATE TABLE stacks (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
         CREATE INDEX stacks_name ON stacks (name);
         CREATE TABLE events (stack_id TEXT NOT NULL, ts BIGINT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
             PRIMARY KEY (stack_id, ts, id));
         CREATE TABLE change_sets (id TEXT PRIMARY KEY, stack_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL);
         CREATE TABLE signals (token TEXT NOT NULL, seq BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (token, seq));",
    )],
};

pub struct Store {
    db: ServiceDb,
}

fn doc<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DbError> {
    serde_json::from_str(text).map_err(DbError::other)
}

fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Store {
    pub fn open(database: &Database) -> Result<Store, DbError> {
        Ok(Store { db: database.open(&SCHEMA)? })
    }

    /// Whether any stack has an operation that a stop interrupted.
    pub fn has_unfinished(database: &Database) -> bool {
        if !database.has_schema(&SCHEMA) {
            return false;
        }
        let Ok(store) = Store::open(database) else { return false };
        !store.unfinished().unwrap_or_default().is_empty()
    }

    pub fn unfinished(&self) -> Result<Vec<Stack>, DbError> {
        let rows = self.db.query(
            "SELECT doc FROM stacks WHERE status LIKE '%IN_PROGRESS' AND status <> 'REVIEW_IN_PROGRESS'",
            &params![],
        )?;
        rows.iter().map(|r| doc(&r.get::<String>(0)?)).collect()
    }

    /// Saves the stack and its new events together.
    pub fn save(&self, stack: &Stack, events: &[Event]) -> Result<(), DbError> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO stacks (id, name, status, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status, doc = excluded.doc",
                &params![stack.id.clone(), stack.name.clone(), stack.status.clone(), text(stack)],
            )?;
            for event in events {
                tx.execute(
                    "INSERT INTO events (stack_id, ts, id, doc) VALUES (?1, ?2, ?3, ?4)",
                    &params![event.stack_id.clone(), event.timestamp_ms, event.id.clone(), text(event)],
                )?;
            }
            Ok(())
        })
    }

    pub fn stack(&self, id: &str) -> Result<Option<Stack>, DbError> {
        let row = self.db.query_opt("SELECT doc FROM stacks WHERE id = ?1", &params![id])?;
        row.map(|r| doc(&r.get::<String>(0)?)).transpose()
    }

    /// The live stack of that name (not deleted), or the stack of that ARN (even deleted).
    pub fn find(&self, name_or_id: &str) -> Result<Option<Stack>, DbError> {
        if name_or_id.starts_with("arn:") {
            return self.stack(name_or_id);
        }
        let rows = self.db.query(
            "SELECT doc FROM stacks WHERE name = ?1 AND status <> 'DELETE_COMPLETE'",
            &params![name_or_id],
        )?;
        rows.first().map(|r| doc(&r.get::<String>(0)?)).transpose()
    }

    pub fn all(&self) -> Result<Vec<Stack>, DbError> {
        let rows = self.db.query("SELECT doc FROM stacks ORDER BY id", &params![])?;
        rows.iter().map(|r| doc(&r.get::<String>(0)?)).collect()
    }

    pub fn live(&self) -> Result<Vec<Stack>, DbError> {
        let rows = self
            .db
            .query("SELECT doc FROM stacks WHERE status <> 'DELETE_COMPLETE' ORDER BY id", &params![])?;
        rows.iter().map(|r| doc(&r.get::<String>(0)?)).collect()
    }

    /// Newest first.
    pub fn events(&self, stack_id: &str) -> Result<Vec<Event>, DbError> {
        let rows = self.db.query(
            "SELECT doc FROM events WHERE stack_id = ?1 ORDER BY ts DESC, id DESC",
            &params![stack_id],
        )?;
        rows.iter().map(|r| doc(&r.get::<String>(0)?)).collect()
    }

    pub fn put_change_set(&self, change_set: &ChangeSet) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO change_sets (id, stack_id, name, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            &params![
                change_set.id.clone(),
                change_set.stack_id.clone(),
                change_set.name.clone(),
                text(change_set)
            ],
        )?;
        Ok(())
    }

    pub fn change_sets(&self, stack_id: &str) -> Result<Vec<ChangeSet>, DbError> {
        let rows = self
            .db
            .query("SELECT doc FROM change_sets WHERE stack_id = ?1 ORDER BY id", &params![stack_id])?;
        rows.iter().map(|r| doc(&r.get::<String>(0)?)).collect()
    }

    pub fn change_set(&self, id: &str) -> Result<Option<ChangeSet>, DbError> {
        let row = self.db.query_opt("SELECT doc FROM change_sets WHERE id = ?1", &params![id])?;
        row.map(|r| doc(&r.get::<String>(0)?)).transpose()
    }

    pub fn delete_change_set(&self, id: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM change_sets WHERE id = ?1", &params![id])?;
        Ok(())
    }

    pub fn delete_change_sets_of(&self, stack_id: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM change_sets WHERE stack_id = ?1", &params![stack_id])?;
        Ok(())
    }

    /// Records a signal sent to `token` (a custom resource's response, a wait condition's signal).
    pub fn signal(&self, token: &str, body: &Value) -> Result<(), DbError> {
        self.db.write(|tx| {
            let next: i64 = tx
                .query_value(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM signals WHERE token = ?1",
                    &params![token],
                )?
                .unwrap_or(1);
            tx.execute(
                "INSERT INTO signals (token, seq, doc) VALUES (?1, ?2, ?3)",
                &params![token, next, body.to_string()],
            )?;
            Ok(())
        })
    }

    pub fn signals(&self, token: &str) -> Result<Vec<Value>, DbError> {
        let rows = self.db.query("SELECT doc FROM signals WHERE token = ?1 ORDER BY seq", &params![token])?;
        rows.iter().map(|r| Ok(serde_json::from_str(&r.get::<String>(0)?).unwrap_or(Value::Null))).collect()
    }

    pub fn forget_signals(&self, token: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM signals WHERE token = ?1", &params![token])?;
        Ok(())
    }
}
