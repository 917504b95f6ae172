//! The storage layer every service keeps its state through: one [`Database`] per nimbus (SQLite
//! files under the data directory, the default, or one PostgreSQL database shared by several
//! nodes), and per service a [`ServiceDb`] over the service's own tables.
//!
//! Services own their schema ([`Migration`]s, applied once, in order) and their queries. They
//! write SQL both backends run: positional parameters as `?1`, `?2` … (rewritten to `$1` for
//! PostgreSQL), `INSERT … ON CONFLICT … DO UPDATE`/`DO NOTHING` for upserts, `BIGINT` for integers
//! in new tables. Where the dialects cannot agree (DDL mostly), a migration carries one text per
//! backend.
//!
//! Calls are synchronous: SQLite answers in microseconds; PostgreSQL calls made on a runtime
//! worker step out of it with `block_in_place`, so the other tasks keep running.

mod postgres;
mod sqlite;
mod value;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use postgres::listen;
pub use value::{FromValue, Param, Row, Value};

/// Bind parameters: `params![name, 3, Some(7)]` → `[Value; N]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Param::to_value(&$value)),*]
    };
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// A unique or primary key constraint refused the write.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A value the backend cannot hold (text with U+0000 on PostgreSQL): the caller's input,
    /// refused before it reached the database.
    #[error("{0}")]
    Unstorable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    pub fn other(message: impl std::fmt::Display) -> DbError {
        DbError::Other(message.to_string())
    }
}

/// One step of a service's schema. Never edit a released step; append one.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    /// A step both backends run as written.
    pub const fn both(sql: &'static str) -> Migration {
        Migration { sqlite: sql, postgres: sql }
    }
}

/// How a service's state is kept: its name (its PostgreSQL schema), its SQLite file (relative to
/// the data directory; existing files keep their places so that upgrades find their state), and
/// its migrations.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub service: &'static str,
    pub sqlite_file: &'static str,
    /// `synchronous = NORMAL` instead of `FULL` on SQLite: a power cut may lose the last moment
    /// of writes (never a kill -9). For state that is statistics, not acknowledgements.
    pub relaxed: bool,
    pub migrations: &'static [Migration],
}

/// Where state lives, chosen once at start.
#[derive(Clone)]
pub enum Database {
    Sqlite { data_dir: PathBuf },
    Postgres(Arc<postgres::Server>),
}

impl Database {
    /// The embedded default: SQLite files under `data_dir`.
    pub fn sqlite(data_dir: &Path) -> Database {
        Database::Sqlite { data_dir: data_dir.to_path_buf() }
    }

    /// A PostgreSQL database (`postgres://user@host:port/db`); fails with the server's own
    /// words when it cannot be reached or refuses us.
    pub fn postgres(url: &str) -> Result<Database, DbError> {
        Ok(Database::Postgres(Arc::new(postgres::Server::connect(url)?)))
    }

    /// Opens (creating or migrating) one service's tables.
    pub fn open(&self, schema: &Schema) -> Result<ServiceDb, DbError> {
        let backend = match self {
            Database::Sqlite { data_dir } => Backend::Sqlite(sqlite::SqliteDb::open(data_dir, schema)?),
            Database::Postgres(server) => Backend::Postgres(server.open(schema)?),
        };
        Ok(ServiceDb { backend })
    }

    /// Whether a service's tables were ever made here, asked without opening them (services
    /// that cost nothing until used open at start only when they hold state).
    pub fn has_schema(&self, schema: &Schema) -> bool {
        match self {
            Database::Sqlite { data_dir } => data_dir.join(schema.sqlite_file).exists(),
            Database::Postgres(server) => server.has_schema(schema.service),
        }
    }

    /// The same storage for another region's or account's instance of every service: SQLite
    /// files under `data_dir/<dir>/`, PostgreSQL schemas named `<service>_<dir with _>`.
    pub fn scoped(&self, dir: &str) -> Database {
        match self {
            Database::Sqlite { data_dir } => Database::Sqlite { data_dir: data_dir.join(dir) },
            Database::Postgres(server) => Database::Postgres(Arc::new(server.scoped(dir))),
        }
    }

    /// On PostgreSQL, the names of the schemas there (one query): which scopes were ever used.
    /// Empty on SQLite, whose scopes are directories.
    pub fn schema_names(&self) -> Vec<String> {
        match self {
            Database::Sqlite { .. } => Vec::new(),
            Database::Postgres(server) => server.schema_names(),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// What `nimbus status` shows: `sqlite` or the URL without its password.
    pub fn label(&self) -> String {
        match self {
            Database::Sqlite { .. } => "sqlite".to_owned(),
            Database::Postgres(server) => server.label(),
        }
    }
}

/// One service's tables.
pub struct ServiceDb {
    backend: Backend,
}

enum Backend {
    Sqlite(sqlite::SqliteDb),
    Postgres(postgres::PostgresDb),
}

impl ServiceDb {
    /// Runs `work` in one transaction: committed (durably) when it returns `Ok`, rolled back
    /// otherwise.
    pub fn write<T, E: From<DbError>>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(db) => db.transaction(work),
            Backend::Postgres(db) => db.transaction(work),
        }
    }

    /// Runs reads that need no transaction of their own.
    pub fn read<T, E: From<DbError>>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(work),
            Backend::Postgres(db) => db.transaction(work),
        }
    }

    /// One statement in a transaction of its own; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.write(|tx| tx.execute(sql, params))
    }

    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.read(|tx| tx.query(sql, params))
    }

    pub fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        self.read(|tx| tx.query_opt(sql, params))
    }
}

/// Statements inside one transaction (or, for [`ServiceDb::read`] on SQLite, on the connection).
pub struct Tx<'a> {
    inner: TxInner<'a>,
}

enum TxInner<'a> {
    Sqlite(&'a rusqlite::Connection),
    // Owned: the backend takes it back to commit once the work is done.
    Postgres(::postgres::Transaction<'a>),
}

impl Tx<'_> {
    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(connection) => sqlite::execute(connection, sql, params),
            TxInner::Postgres(tx) => postgres::execute(tx, sql, params),
        }
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(connection) => sqlite::query(connection, sql, params),
            TxInner::Postgres(tx) => postgres::query(tx, sql, params),
        }
    }

    /// The first row, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The one value of the first row (`SELECT COUNT(*) …`); `None` when there is no row.
    pub fn query_value<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<Option<T>, DbError> {
        self.query_opt(sql, params)?.map(|row| row.get(0)).transpose()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.inner, TxInner::Postgres(_))
    }
}

#[cfg(test)]
pub(crate) mod tests;
