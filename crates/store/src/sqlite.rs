//! The embedded SQLite store: one file under the data directory, WAL journal, synchronous writes,
//! schema migrations numbered by SQLite's `user_version`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, ErrorCode};

use crate::{EventRow, FunctionRow, LayerRow, ResourceRow, Store, StoreError};

/// Each entry moves the schema one version forward; never edit a released entry, append one.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE function_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        config TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE INDEX function_versions_code ON function_versions (code_sha256);",
    "CREATE TABLE layer_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        config TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE INDEX layer_versions_code ON layer_versions (code_sha256);
    CREATE TABLE layer_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);",
    "CREATE TABLE function_resources (
        function TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY (function, kind, name)
    );",
    "CREATE TABLE async_events (
        id TEXT PRIMARY KEY,
        function TEXT NOT NULL,
        payload BLOB NOT NULL,
        attempts INTEGER NOT NULL,
        enqueued_ms INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL
    );",
];

pub struct SqliteStore {
    // One connection: writes are rare (control plane only) and SQLite serialises them anyway.
    connection: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut connection = Connection::open(path).map_err(db)?;
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;").map_err(db)?;
        migrate(&mut connection)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    /// Every row a query returns, each mapped by `row`.
    fn query_all<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|connection| connection.prepare(sql)?.query_map([], row)?.collect())
    }

    /// Runs a change that must touch a row; `NotFound` when it touched none.
    fn change_one(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
        match self.with(|connection| connection.execute(sql, params))? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&connection).map_err(db)
    }
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let current: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(db)?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "database schema version {current} is newer than this nimbus understands ({})",
            MIGRATIONS.len()
        )));
    }
    // All pending migrations in one transaction: one sync to disk, and all or nothing.
    let transaction = connection.transaction().map_err(db)?;
    for migration in &MIGRATIONS[current..] {
        transaction.execute_batch(migration).map_err(db)?;
    }
    transaction.pragma_update(None, "user_version", MIGRATIONS.len()).map_err(db)?;
    transaction.commit().map_err(db)?;
    Ok(())
}

fn db(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

impl Store for SqliteStore {
    fn load_functions(&self) -> Result<Vec<FunctionRow>, StoreError> {
        self.query_all(
            "SELECT name, version, config, code_sha256 FROM function_versions ORDER BY name, version",
            |row| {
                Ok(FunctionRow {
                    name: row.get(0)?,
                    version: row.get(1)?,
                    config: row.get(2)?,
                    code_sha256: row.get(3)?,
                })
            },
        )
    }

    fn insert_function(&self, row: &FunctionRow) -> Result<(), StoreError> {
        let connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = connection.execute(
            "INSERT INTO function_versions (name, version, config, code_sha256) VALUES (?1, ?2, ?3, ?4)",
            params![row.name, row.version, row.config, row.code_sha256],
        );
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(db(error)),
        }
    }

    fn update_function(&self, row: &FunctionRow) -> Result<(), StoreError> {
        self.change_one(
            "UPDATE function_versions SET config = ?3, code_sha256 = ?4 WHERE name = ?1 AND version = ?2",
            params![row.name, row.version, row.config, row.code_sha256],
        )
    }

    fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let transaction = connection.transaction().map_err(db)?;
        let changed = transaction
            .execute("DELETE FROM function_versions WHERE name = ?1", params![name])
            .map_err(db)?;
        transaction
            .execute("DELETE FROM function_resources WHERE function = ?1", params![name])
            .map_err(db)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        transaction.commit().map_err(db)
    }

    fn delete_function_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        self.change_one(
            "DELETE FROM function_versions WHERE name = ?1 AND version = ?2",
            params![name, version],
        )
    }

    fn load_resources(&self) -> Result<Vec<ResourceRow>, StoreError> {
        self.query_all(
            "SELECT function, kind, name, config FROM function_resources ORDER BY function, kind, name",
            |row| {
                Ok(ResourceRow {
                    function: row.get(0)?,
                    kind: row.get(1)?,
                    name: row.get(2)?,
                    config: row.get(3)?,
                })
            },
        )
    }

    fn put_resource(&self, row: &ResourceRow) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "INSERT INTO function_resources (function, kind, name, config) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (function, kind, name) DO UPDATE SET config = excluded.config",
                params![row.function, row.kind, row.name, row.config],
            )
        })
        .map(|_| ())
    }

    fn enqueue_events(&self, rows: &[EventRow]) -> Result<(), StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let transaction = connection.transaction().map_err(db)?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO async_events (id, function, payload, attempts, enqueued_ms, next_attempt_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db)?;
            for row in rows {
                insert
                    .execute(params![
                        row.id,
                        row.function,
                        row.payload,
                        row.attempts,
                        row.enqueued_ms,
                        row.next_attempt_ms
                    ])
                    .map_err(db)?;
            }
        }
        transaction.commit().map_err(db)
    }

    fn load_events(&self) -> Result<Vec<EventRow>, StoreError> {
        self.query_all(
            "SELECT id, function, payload, attempts, enqueued_ms, next_attempt_ms FROM async_events ORDER BY enqueued_ms",
            |row| {
                Ok(EventRow {
                    id: row.get(0)?,
                    function: row.get(1)?,
                    payload: row.get(2)?,
                    attempts: row.get(3)?,
                    enqueued_ms: row.get(4)?,
                    next_attempt_ms: row.get(5)?,
                })
            },
        )
    }

    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: i64) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "UPDATE async_events SET attempts = ?2, next_attempt_ms = ?3 WHERE id = ?1",
                params![id, attempts, next_attempt_ms],
            )
        })
        .map(|_| ())
    }

    fn delete_event(&self, id: &str) -> Result<(), StoreError> {
        self.with(|connection| connection.execute("DELETE FROM async_events WHERE id = ?1", params![id]))
            .map(|_| ())
    }

    fn delete_resource(&self, function: &str, kind: &str, name: &str) -> Result<(), StoreError> {
        self.change_one(
            "DELETE FROM function_resources WHERE function = ?1 AND kind = ?2 AND name = ?3",
            params![function, kind, name],
        )
    }

    fn code_in_use(&self, code_sha256: &str) -> Result<bool, StoreError> {
        self.with(|connection| {
            connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM function_versions WHERE code_sha256 = ?1)
                     OR EXISTS (SELECT 1 FROM layer_versions WHERE code_sha256 = ?1)",
                params![code_sha256],
                |row| row.get(0),
            )
        })
    }

    fn load_layers(&self) -> Result<Vec<LayerRow>, StoreError> {
        self.query_all(
            "SELECT name, version, config, code_sha256 FROM layer_versions ORDER BY name, version",
            |row| {
                Ok(LayerRow {
                    name: row.get(0)?,
                    version: row.get(1)?,
                    config: row.get(2)?,
                    code_sha256: row.get(3)?,
                })
            },
        )
    }

    fn insert_layer(
        &self,
        name: &str,
        code_sha256: &str,
        config: &dyn Fn(u64) -> String,
    ) -> Result<LayerRow, StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let transaction = connection.transaction().map_err(db)?;
        let version: u64 = transaction
            .query_row(
                "INSERT INTO layer_names (name, last_version) VALUES (?1, 1)
                 ON CONFLICT (name) DO UPDATE SET last_version = last_version + 1
                 RETURNING last_version",
                params![name],
                |row| row.get(0),
            )
            .map_err(db)?;
        let row = LayerRow {
            name: name.to_owned(),
            version,
            config: config(version),
            code_sha256: code_sha256.to_owned(),
        };
        transaction
            .execute(
                "INSERT INTO layer_versions (name, version, config, code_sha256) VALUES (?1, ?2, ?3, ?4)",
                params![row.name, row.version, row.config, row.code_sha256],
            )
            .map_err(db)?;
        transaction.commit().map_err(db)?;
        Ok(row)
    }

    fn delete_layer(&self, name: &str, version: u64) -> Result<(), StoreError> {
        self.change_one("DELETE FROM layer_versions WHERE name = ?1 AND version = ?2", params![name, version])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let path = dir.path().join("nimbus.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.insert_function(&row("a", "{}")).unwrap();
            store.update_function(&row("a", "{\"x\":1}")).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load_functions().unwrap(), vec![row("a", "{\"x\":1}")]);
        assert!(store.code_in_use("abc").unwrap());
    }

    #[test]
    fn duplicates_conflict_and_missing_rows_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("nimbus.db")).unwrap();
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
        let store = SqliteStore::open(&dir.path().join("nimbus.db")).unwrap();
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
    fn resources_upsert_and_go_with_their_function() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("nimbus.db")).unwrap();
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
        let path = dir.path().join("nimbus.db");
        let event = |id: &str| EventRow {
            id: id.into(),
            function: "f".into(),
            payload: b"{}".to_vec(),
            attempts: 0,
            enqueued_ms: 1,
            next_attempt_ms: 1,
        };
        {
            let store = SqliteStore::open(&path).unwrap();
            store.enqueue_events(&[event("a"), event("b")]).unwrap();
            store.reschedule_event("a", 1, 99).unwrap();
            store.delete_event("b").unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.load_events().unwrap(),
            vec![EventRow { attempts: 1, next_attempt_ms: 99, ..event("a") }]
        );
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nimbus.db");
        SqliteStore::open(&path).unwrap();
        SqliteStore::open(&path).unwrap();
    }
}
