//! The embedded backend: one SQLite file per service (WAL journal), one connection each — SQLite
//! serialises writers anyway, and a service's statements are microseconds. Schema steps are
//! numbered by the file's `user_version`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::{DbError, Row, Schema, Tx, TxInner, Value};

pub struct SqliteDb {
    connection: Mutex<Connection>,
}

impl SqliteDb {
    pub fn open(data_dir: &Path, schema: &Schema) -> Result<SqliteDb, DbError> {
        let path = data_dir.join(schema.sqlite_file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| DbError::other(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut connection = Connection::open(&path).map_err(error)?;
        let synchronous = if schema.relaxed { "NORMAL" } else { "FULL" };
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
            ))
            .map_err(error)?;
        migrate(&mut connection, schema)?;
        Ok(SqliteDb { connection: Mutex::new(connection) })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = self.lock();
        // IMMEDIATE: the write lock up front, so a read-then-write never fails half way.
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(error)?;
        let result = work(&mut Tx { inner: TxInner::Sqlite(&transaction) });
        match result {
            Ok(value) => {
                transaction.commit().map_err(error)?;
                Ok(value)
            }
            Err(failure) => Err(failure), // dropped: rolled back
        }
    }

    pub fn read<T, E: From<DbError>>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let connection = self.lock();
        let mut tx = Tx { inner: TxInner::Sqlite(&connection) };
        work(&mut tx)
    }
}

fn migrate(connection: &mut Connection, schema: &Schema) -> Result<(), DbError> {
    let current: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(error)?;
    let known = schema.migrations.len();
    if current > known {
        return Err(DbError::other(format!(
            "{}'s schema version {current} is newer than this nimbus understands ({known})",
            schema.service
        )));
    }
    if current == known {
        return Ok(());
    }
    // All pending steps in one transaction: one sync to disk, and all or nothing.
    let transaction = connection.transaction().map_err(error)?;
    for migration in &schema.migrations[current..] {
        transaction.execute_batch(migration.sqlite).map_err(error)?;
    }
    transaction.pragma_update(None, "user_version", known).map_err(error)?;
    transaction.commit().map_err(error)
}

pub fn execute(connection: &Connection, sql: &str, params: &[Value]) -> Result<u64, DbError> {
    let mut statement = connection.prepare_cached(sql).map_err(error)?;
    let changed = statement.execute(rusqlite::params_from_iter(params.iter().map(Bind))).map_err(error)?;
    Ok(changed as u64)
}

pub fn query(connection: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
    let mut statement = connection.prepare_cached(sql).map_err(error)?;
    let columns = statement.column_count();
    let mut rows = statement.query(rusqlite::params_from_iter(params.iter().map(Bind))).map_err(error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        let mut values = Vec::with_capacity(columns);
        for index in 0..columns {
            values.push(match row.get_ref(index).map_err(error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Real(x) => Value::Real(x),
                ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
                ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
            });
        }
        out.push(Row(values));
    }
    Ok(out)
}

struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Real(x) => ToSqlOutput::Borrowed(ValueRef::Real(*x)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

fn error(error: rusqlite::Error) -> DbError {
    // Unique and primary keys only: a NOT NULL or foreign key failure is a bug, not a conflict.
    let conflict = matches!(&error, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation
            && matches!(e.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY));
    if conflict {
        DbError::Conflict(error.to_string())
    } else {
        DbError::Other(error.to_string())
    }
}
