//! Lambda's tables (functions, layers, their resources, asynchronous events) on the storage
//! layer. The file `nimbus.db` keeps its name from before the layer, so old data directories
//! open as they are.

use crate::db::{Database, DbError, Migration, Row, Schema, ServiceDb};
use crate::params;
use crate::{EventRow, FunctionRow, LayerRow, ResourceRow, Store, StoreError};

/// Each entry moves the schema one version forward; never edit a released entry, append one.
pub const SCHEMA: Schema = Schema {
    service: "lambda",
    sqlite_file: "nimbus.db",
    relaxed: false,
    migrations: &[
        Migration {
            sqlite: "CREATE TABLE function_versions (
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                config TEXT NOT NULL,
                code_sha256 TEXT NOT NULL,
                PRIMARY KEY (name, version)
            );
            CREATE INDEX function_versions_code ON function_versions (code_sha256);",
            postgres: "CREATE TABLE function_versions (name TEXT NOT NULL, version TEXT NOT NULL,
                config TEXT NOT NULL, code_sha256 TEXT NOT NULL, PRIMARY KEY (name, version));
            CREATE INDEX function_versions_code ON function_versions (code_sha256);",
        },
        Migration {
            sqlite: "CREATE TABLE layer_versions (
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                config TEXT NOT NULL,
                code_sha256 TEXT NOT NULL,
                PRIMARY KEY (name, version)
            );
            CREATE INDEX layer_versions_code ON layer_versions (code_sha256);
            CREATE TABLE layer_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);",
            postgres: "CREATE TABLE layer_versions (name TEXT NOT NULL, version BIGINT NOT NULL,
                config TEXT NOT NULL, code_sha256 TEXT NOT NULL, PRIMARY KEY (name, version));
            CREATE INDEX layer_versions_code ON layer_versions (code_sha256);
            CREATE TABLE layer_names (name TEXT PRIMARY KEY, last_version BIGINT NOT NULL);",
        },
        Migration::both(
            "CREATE TABLE function_resources (
                function TEXT NOT NULL,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                config TEXT NOT NULL,
                PRIMARY KEY (function, kind, name)
            );",
        ),
        Migration {
            sqlite: "CREATE TABLE async_events (
                id TEXT PRIMARY KEY,
                function TEXT NOT NULL,
                payload BLOB NOT NULL,
                attempts INTEGER NOT NULL,
                enqueued_ms INTEGER NOT NULL,
                next_attempt_ms INTEGER NOT NULL
            );",
            postgres: "CREATE TABLE async_events (id TEXT PRIMARY KEY, function TEXT NOT NULL,
                payload BYTEA NOT NULL, attempts BIGINT NOT NULL, enqueued_ms BIGINT NOT NULL,
                next_attempt_ms BIGINT NOT NULL);",
        },
        // The node running an event; NULL (events of before) is nobody's yet.
        Migration::both(
            "ALTER TABLE async_events ADD COLUMN owner TEXT;
             CREATE INDEX async_events_owner ON async_events (owner);",
        ),
    ],
};

type ChangeHook = Box<dyn Fn() + Send + Sync>;

pub struct LambdaStore {
    db: ServiceDb,
    /// This node: events it accepts are its own to run.
    node: String,
    /// Told after every committed change of functions, resources or layers (not events), so
    /// that other nodes can refresh what they keep in memory.
    on_change: std::sync::OnceLock<ChangeHook>,
}

impl LambdaStore {
    pub fn open(database: &Database, node: &str) -> Result<LambdaStore, StoreError> {
        let db = database.open(&SCHEMA)?;
        Ok(LambdaStore { db, node: node.to_owned(), on_change: std::sync::OnceLock::new() })
    }

    /// Sets what to call after each committed change of functions, resources or layers.
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_change.set(Box::new(hook));
    }

    fn changed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let (Ok(_), Some(hook)) = (&result, self.on_change.get()) {
            hook();
        }
        result
    }

    /// Runs a change that must touch a row; `NotFound` when it touched none.
    fn change_one(&self, sql: &str, params: &[crate::Value]) -> Result<(), StoreError> {
        match self.db.execute(sql, params)? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(_) => StoreError::Conflict,
            DbError::Other(message) | DbError::Unstorable(message) => StoreError::Database(message),
        }
    }
}

fn function_row(row: &Row) -> Result<FunctionRow, DbError> {
    Ok(FunctionRow { name: row.get(0)?, version: row.get(1)?, config: row.get(2)?, code_sha256: row.get(3)? })
}

fn event_row(row: &Row) -> Result<EventRow, DbError> {
    Ok(EventRow {
        id: row.get(0)?,
        function: row.get(1)?,
        payload: row.get(2)?,
        attempts: row.get(3)?,
        enqueued_ms: row.get(4)?,
        next_attempt_ms: row.get(5)?,
    })
}

impl Store for LambdaStore {
    fn node(&self) -> &str {
        &self.node
    }

    fn load_functions(&self) -> Result<Vec<FunctionRow>, StoreError> {
        let rows = self.db.query(
            "SELECT name, version, config, code_sha256 FROM function_versions ORDER BY name, version",
            &[],
        )?;
        Ok(rows.iter().map(function_row).collect::<Result<_, _>>()?)
    }

    fn insert_function(&self, row: &FunctionRow) -> Result<(), StoreError> {
        let inserted = self.db.execute(
            "INSERT INTO function_versions (name, version, config, code_sha256) VALUES (?1, ?2, ?3, ?4)",
            &params![row.name, row.version, row.config, row.code_sha256],
        );
        self.changed(inserted.map(drop).map_err(StoreError::from))
    }

    fn update_function(&self, row: &FunctionRow) -> Result<(), StoreError> {
        self.changed(self.change_one(
            "UPDATE function_versions SET config = ?3, code_sha256 = ?4 WHERE name = ?1 AND version = ?2",
            &params![row.name, row.version, row.config, row.code_sha256],
        ))
    }

    fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        self.changed(self.db.write(|tx| {
            let changed = tx.execute("DELETE FROM function_versions WHERE name = ?1", &params![name])?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute("DELETE FROM function_resources WHERE function = ?1", &params![name])?;
            Ok(())
        }))
    }

    fn delete_function_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        self.changed(self.change_one(
            "DELETE FROM function_versions WHERE name = ?1 AND version = ?2",
            &params![name, version],
        ))
    }

    fn load_resources(&self) -> Result<Vec<ResourceRow>, StoreError> {
        let rows = self.db.query(
            "SELECT function, kind, name, config FROM function_resources ORDER BY function, kind, name",
            &[],
        )?;
        let resource = |row: &Row| -> Result<ResourceRow, DbError> {
            Ok(ResourceRow {
                function: row.get(0)?,
                kind: row.get(1)?,
                name: row.get(2)?,
                config: row.get(3)?,
            })
        };
        Ok(rows.iter().map(resource).collect::<Result<_, _>>()?)
    }

    fn put_resource(&self, row: &ResourceRow) -> Result<(), StoreError> {
        let put = self.db.execute(
            "INSERT INTO function_resources (function, kind, name, config) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (function, kind, name) DO UPDATE SET config = excluded.config",
            &params![row.function, row.kind, row.name, row.config],
        );
        self.changed(put.map(drop).map_err(StoreError::from))
    }

    fn delete_resource(&self, function: &str, kind: &str, name: &str) -> Result<(), StoreError> {
        self.changed(self.change_one(
            "DELETE FROM function_resources WHERE function = ?1 AND kind = ?2 AND name = ?3",
            &params![function, kind, name],
        ))
    }

    fn enqueue_events(&self, rows: &[EventRow]) -> Result<(), StoreError> {
        self.db.write(|tx| {
            for row in rows {
                tx.execute(
                    "INSERT INTO async_events (id, function, payload, attempts, enqueued_ms, next_attempt_ms, owner)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    &params![
                        row.id,
                        row.function,
                        row.payload,
                        row.attempts,
                        row.enqueued_ms,
                        row.next_attempt_ms,
                        self.node
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn claim_events(&self, from: &[String]) -> Result<Vec<EventRow>, StoreError> {
        let mut params = params![self.node].to_vec();
        let mut owners = "owner IS NULL".to_owned();
        for (index, node) in from.iter().enumerate() {
            owners.push_str(if index == 0 { " OR owner IN (" } else { ", " });
            owners.push_str(&format!("?{}", index + 2));
            params.push(crate::Value::Text(node.clone()));
        }
        if !from.is_empty() {
            owners.push(')');
        }
        // One statement: of two nodes claiming at once, each row goes to exactly one.
        let rows = self.db.write(|tx| {
            tx.query(
                &format!(
                    "UPDATE async_events SET owner = ?1 WHERE {owners}
                     RETURNING id, function, payload, attempts, enqueued_ms, next_attempt_ms"
                ),
                &params,
            )
        })?;
        let mut events: Vec<EventRow> = rows.iter().map(event_row).collect::<Result<_, _>>()?;
        events.sort_by_key(|event| event.enqueued_ms);
        Ok(events)
    }

    fn count_events(&self) -> Result<u64, StoreError> {
        let count: Option<i64> = self.db.read(|tx| {
            tx.query_value("SELECT COUNT(*) FROM async_events WHERE owner = ?1", &params![self.node])
        })?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: i64) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE async_events SET attempts = ?2, next_attempt_ms = ?3 WHERE id = ?1",
            &params![id, attempts, next_attempt_ms],
        )?;
        Ok(())
    }

    fn delete_event(&self, id: &str) -> Result<(), StoreError> {
        self.db.execute("DELETE FROM async_events WHERE id = ?1", &params![id])?;
        Ok(())
    }

    fn code_in_use(&self, code_sha256: &str) -> Result<bool, StoreError> {
        let used: Option<i64> = self.db.read(|tx| {
            tx.query_value(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM function_versions WHERE code_sha256 = ?1)
                     OR EXISTS (SELECT 1 FROM layer_versions WHERE code_sha256 = ?1) THEN 1 ELSE 0 END",
                &params![code_sha256],
            )
        })?;
        Ok(used == Some(1))
    }

    fn load_layers(&self) -> Result<Vec<LayerRow>, StoreError> {
        let rows = self.db.query(
            "SELECT name, version, config, code_sha256 FROM layer_versions ORDER BY name, version",
            &[],
        )?;
        let layer = |row: &Row| -> Result<LayerRow, DbError> {
            Ok(LayerRow {
                name: row.get(0)?,
                version: row.get(1)?,
                config: row.get(2)?,
                code_sha256: row.get(3)?,
            })
        };
        Ok(rows.iter().map(layer).collect::<Result<_, _>>()?)
    }

    fn insert_layer(
        &self,
        name: &str,
        code_sha256: &str,
        config: &dyn Fn(u64) -> String,
    ) -> Result<LayerRow, StoreError> {
        self.changed(self.db.write(|tx| {
            let version: Option<u64> = tx.query_value(
                "INSERT INTO layer_names (name, last_version) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET last_version = layer_names.last_version + 1
                 RETURNING last_version",
                &params![name],
            )?;
            let version = version.ok_or_else(|| StoreError::Database("no layer version allocated".into()))?;
            let row = LayerRow {
                name: name.to_owned(),
                version,
                config: config(version),
                code_sha256: code_sha256.to_owned(),
            };
            tx.execute(
                "INSERT INTO layer_versions (name, version, config, code_sha256) VALUES (?1, ?2, ?3, ?4)",
                &params![row.name, row.version, row.config, row.code_sha256],
            )?;
            Ok(row)
        }))
    }

    fn import_layer(&self, row: &LayerRow) -> Result<(), StoreError> {
        self.changed(self.db.write(|tx| {
            tx.execute(
                "INSERT INTO layer_versions (name, version, config, code_sha256) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, version) DO UPDATE SET config = excluded.config,
                 code_sha256 = excluded.code_sha256",
                &params![row.name, row.version, row.config, row.code_sha256],
            )?;
            Ok(())
        }))
    }

    fn delete_layer(&self, name: &str, version: u64) -> Result<(), StoreError> {
        self.changed(self.change_one(
            "DELETE FROM layer_versions WHERE name = ?1 AND version = ?2",
            &params![name, version],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> LambdaStore {
        LambdaStore::open(&Database::sqlite(dir), "node-a").unwrap()
    }

    fn row(name: &str, config: &str) -> FunctionRow {
        FunctionRow {
            name: name.into(),
            version: "$LATEST".into(),
            config: config.into(),
            code_sha256: "abc".into(),
        }
    }

    #[test]
    fn rows_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.insert_function(&row("a", "{}")).unwrap();
            store.update_function(&row("a", "{\"x\":1}")).unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.load_functions().unwrap(), vec![row("a", "{\"x\":1}")]);
        assert!(store.code_in_use("abc").unwrap());
    }

    #[test]
    fn duplicates_conflict_and_missing_rows_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.insert_function(&row("a", "{}")).unwrap();
        assert!(matches!(store.insert_function(&row("a", "{}")), Err(StoreError::Conflict)));
        assert!(matches!(store.update_function(&row("b", "{}")), Err(StoreError::NotFound)));
        store.delete_function("a").unwrap();
        assert!(matches!(store.delete_function("a"), Err(StoreError::NotFound)));
        assert!(!store.code_in_use("abc").unwrap());
    }

    #[test]
    fn layer_versions_count_up_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = store.insert_layer("deps", "c1", &|v| format!("{{\"Version\":{v}}}")).unwrap();
        let second = store.insert_layer("deps", "c2", &|v| format!("{{\"Version\":{v}}}")).unwrap();
        assert_eq!((first.version, second.version), (1, 2));
        assert_eq!(second.config, "{\"Version\":2}");
        store.delete_layer("deps", 2).unwrap();
        assert!(matches!(store.delete_layer("deps", 2), Err(StoreError::NotFound)));
        assert_eq!(store.insert_layer("deps", "c3", &|_| "{}".into()).unwrap().version, 3);
        assert!(store.code_in_use("c1").unwrap() && !store.code_in_use("c2").unwrap());
        assert_eq!(store.load_layers().unwrap().len(), 2);
    }

    #[test]
    fn imported_layers_keep_their_number_and_replace_on_import_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let name = "arn:aws:lambda:us-east-1:017000801446:layer:Powertools";
        let row = |code: &str| LayerRow {
            name: name.into(),
            version: 7,
            config: "{}".into(),
            code_sha256: code.into(),
        };
        store.import_layer(&row("c1")).unwrap();
        store.import_layer(&row("c2")).unwrap();
        assert_eq!(store.load_layers().unwrap(), vec![row("c2")]);
        assert!(!store.code_in_use("c1").unwrap() && store.code_in_use("c2").unwrap());
    }

    #[test]
    fn resources_upsert_and_go_with_their_function() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.insert_function(&row("f", "{}")).unwrap();
        let alias = |config: &str| ResourceRow {
            function: "f".into(),
            kind: "alias".into(),
            name: "prod".into(),
            config: config.into(),
        };
        store.put_resource(&alias("{\"v\":1}")).unwrap();
        store.put_resource(&alias("{\"v\":2}")).unwrap();
        assert_eq!(store.load_resources().unwrap(), vec![alias("{\"v\":2}")]);
        store.delete_function("f").unwrap();
        assert!(store.load_resources().unwrap().is_empty());
        assert!(matches!(store.delete_resource("f", "alias", "prod"), Err(StoreError::NotFound)));
    }

    #[test]
    fn events_are_durable_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let event = |id: &str| EventRow {
            id: id.into(),
            function: "f".into(),
            payload: b"{}".to_vec(),
            attempts: 0,
            enqueued_ms: 1,
            next_attempt_ms: 1,
        };
        {
            let store = open(dir.path());
            store.enqueue_events(&[event("a"), event("b")]).unwrap();
            store.reschedule_event("a", 1, 99).unwrap();
            store.delete_event("b").unwrap();
        }
        let store = open(dir.path());
        assert_eq!(
            store.claim_events(&["node-a".to_owned()]).unwrap(),
            vec![EventRow { attempts: 1, next_attempt_ms: 99, ..event("a") }]
        );
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path());
        open(dir.path());
    }

    #[test]
    fn each_event_is_claimed_by_exactly_one_node() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        let b = LambdaStore::open(&Database::sqlite(dir.path()), "node-b").unwrap();
        let event = |id: &str| EventRow {
            id: id.into(),
            function: "f".into(),
            payload: vec![],
            attempts: 0,
            enqueued_ms: 1,
            next_attempt_ms: 1,
        };
        a.enqueue_events(&[event("1"), event("2")]).unwrap();
        assert!(b.claim_events(&[]).unwrap().is_empty(), "a live node's events are its own");
        assert_eq!(b.claim_events(&["node-a".into()]).unwrap().len(), 2, "a dead node's are taken over");
        assert!(a.claim_events(&["node-a".into()]).unwrap().is_empty(), "and are no longer its own");
        assert_eq!((a.count_events().unwrap(), b.count_events().unwrap()), (0, 2));
    }
}
