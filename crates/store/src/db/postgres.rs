//! The shared backend: one PostgreSQL database, a schema per service (its tables side by side
//! with no chance of a name clash), a small pool of connections per service. Schema versions
//! live in `public.nimbus_schema`; migrations run under an advisory lock, so nodes starting
//! together migrate once.
//!
//! The `postgres` crate is synchronous (it drives its own small runtime per connection); calls
//! from a runtime worker step aside with `block_in_place` so the worker's other tasks move on.

use std::sync::Arc;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use ::postgres::{Config, NoTls};
use bytes::BytesMut;
use r2d2_postgres::PostgresConnectionManager;

use super::{DbError, Row, Schema, Tx, TxInner, Value};

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// Connections per service and node: enough for concurrent requests, few enough that a handful
/// of nodes stays far below PostgreSQL's default of 100 connections.
const POOL_SIZE: u32 = 6;
/// Any lock held by a migration: one number, shared by every nimbus.
const MIGRATION_LOCK: i64 = 0x6e696d627573; // "nimbus"

pub struct Server {
    config: Config,
    label: String,
    /// Appended to every schema name (`sqs_us_west_2`): one region's or account's state beside
    /// the default one's.
    scope: Option<String>,
}

impl Server {
    pub fn connect(url: &str) -> Result<Server, DbError> {
        let config: Config =
            url.parse().map_err(|e| DbError::other(format!("not a PostgreSQL URL ({url}): {e}")))?;
        let label = label(&config);
        // One connection now, so that a wrong URL fails at start with the server's own words.
        // The client is dropped inside `blocking` too: it owns a runtime of its own.
        blocking(|| {
            let mut client = config
                .connect(NoTls)
                .map_err(|e| DbError::other(format!("cannot connect to PostgreSQL at {label}: {e}")))?;
            client.simple_query("SELECT 1").map_err(error).map(drop)
        })?;
        Ok(Server { config, label, scope: None })
    }

    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// The same server, with every schema name suffixed by `scope` (letters, digits, `_`).
    pub fn scoped(&self, scope: &str) -> Server {
        let scope = scope.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        Server { config: self.config.clone(), label: self.label.clone(), scope: Some(scope) }
    }

    /// A service's schema name under this server's scope.
    fn schema_name(&self, service: &str) -> String {
        match &self.scope {
            Some(scope) => format!("{service}_{scope}"),
            None => service.to_owned(),
        }
    }

    /// Whether the schema exists; an unreachable server counts as yes (the service then opens
    /// and says why it cannot).
    pub fn has_schema(&self, service: &str) -> bool {
        let service = self.schema_name(service);
        blocking(|| {
            let mut client = self.config.connect(NoTls).map_err(error)?;
            let sql = "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1";
            client.query_opt(sql, &[&service]).map_err(error).map(|row| row.is_some())
        })
        .unwrap_or(true)
    }

    /// Every schema's name (one query; empty when the server cannot be reached).
    pub fn schema_names(&self) -> Vec<String> {
        blocking(|| {
            let mut client = self.config.connect(NoTls).map_err(error)?;
            let rows = client
                .query("SELECT schema_name::text FROM information_schema.schemata", &[])
                .map_err(error)?;
            Ok::<_, DbError>(rows.iter().map(|row| row.get::<_, String>(0)).collect())
        })
        .unwrap_or_default()
    }

    /// A plain connection of its own (for LISTEN, which holds a connection).
    pub fn connection(&self) -> Result<::postgres::Client, DbError> {
        blocking(|| self.config.connect(NoTls)).map_err(error)
    }

    pub fn open(&self, schema: &Schema) -> Result<PostgresDb, DbError> {
        let name = self.schema_name(schema.service);
        blocking(|| migrate(&mut self.config.connect(NoTls).map_err(error)?, &name, schema))?;
        let manager = PostgresConnectionManager::new(self.config.clone(), NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            // A service keeps only the connections it used in the last half minute: a node has
            // a dozen services, and a server's connection slots are shared by every node.
            .idle_timeout(Some(Duration::from_secs(30)))
            // `is_closed` is checked on return; a round trip per checkout would double latency.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SearchPath(name)))
            .build_unchecked(manager);
        Ok(PostgresDb { pool: Some(pool) })
    }
}

fn label(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(host)) => host.clone(),
        Some(::postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}@{host}:{port}/{db}")
}

fn migrate(client: &mut ::postgres::Client, name: &str, schema: &Schema) -> Result<(), DbError> {
    let mut tx = client.transaction().map_err(error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(error)?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS public.nimbus_schema (service TEXT PRIMARY KEY, version BIGINT NOT NULL);
         CREATE SCHEMA IF NOT EXISTS {service};
         SET LOCAL search_path TO {service};",
        service = name
    ))
    .map_err(error)?;
    let current = tx
        .query_opt("SELECT version FROM public.nimbus_schema WHERE service = $1", &[&name])
        .map_err(error)?
        .map_or(0, |row| row.get::<_, i64>(0)) as usize;
    let known = schema.migrations.len();
    if current > known {
        return Err(DbError::other(format!(
            "{}'s schema version {current} is newer than this nimbus understands ({known})",
            name
        )));
    }
    for migration in &schema.migrations[current..] {
        tx.batch_execute(migration.postgres).map_err(error)?;
    }
    tx.execute(
        "INSERT INTO public.nimbus_schema (service, version) VALUES ($1, $2)
         ON CONFLICT (service) DO UPDATE SET version = EXCLUDED.version",
        &[&name, &(known as i64)],
    )
    .map_err(error)?;
    tx.commit().map_err(error)
}

/// Forwards every notification on `channel` to `wake`, from a thread of its own holding one
/// connection; reconnects (after a second) whenever the connection drops.
pub fn listen(server: Arc<Server>, channel: &'static str, wake: tokio::sync::broadcast::Sender<String>) {
    let spawned = std::thread::Builder::new().name("db-listen".into()).spawn(move || {
        // Said once per outage, not at every reconnection attempt.
        let mut lost = false;
        loop {
            let listening = (|| -> Result<(), ::postgres::Error> {
                let mut client = server.config.connect(NoTls)?;
                client.batch_execute(&format!("LISTEN {channel}"))?;
                if std::mem::replace(&mut lost, false) {
                    // What was announced meanwhile was missed: "*" says anything may have changed.
                    let _ = wake.send("*".to_owned());
                }
                let mut notifications = client.notifications();
                let mut arriving = notifications.blocking_iter();
                while let Some(notification) = fallible_iterator::FallibleIterator::next(&mut arriving)? {
                    let _ = wake.send(notification.payload().to_owned());
                }
                Ok(())
            })();
            if let Err(error) = listening {
                if !std::mem::replace(&mut lost, true) {
                    eprintln!("nimbus: lost the database's notifications ({error}); reconnecting");
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    if let Err(error) = spawned {
        eprintln!("nimbus: cannot listen for the database's notifications: {error}");
    }
}

#[derive(Debug)]
struct SearchPath(String);

impl r2d2::CustomizeConnection<::postgres::Client, ::postgres::Error> for SearchPath {
    fn on_acquire(&self, client: &mut ::postgres::Client) -> Result<(), ::postgres::Error> {
        client.batch_execute(&format!("SET search_path TO {}", self.0))
    }
}

pub struct PostgresDb {
    /// Taken on drop: pooled clients own runtimes, which must not be dropped on a runtime's
    /// worker.
    pool: Option<Pool>,
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let pool = self.pool.take();
        blocking(|| drop(pool));
    }
}

impl PostgresDb {
    pub fn transaction<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        blocking(|| {
            let pool = self.pool.as_ref().expect("the pool lives until drop");
            let mut client = pool.get().map_err(|e| DbError::other(format!("PostgreSQL: {e}")))?;
            let transaction = client.transaction().map_err(error)?;
            let mut tx = Tx { inner: TxInner::Postgres(transaction) };
            let value = work(&mut tx)?;
            if let TxInner::Postgres(transaction) = tx.inner {
                transaction.commit().map_err(error)?;
            }
            Ok(value)
        })
    }
}

/// Runs blocking PostgreSQL work; on a multi-thread runtime's worker, outside the runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// PostgreSQL's text cannot hold U+0000 (SQLite's can): refused as the caller's input, the same
/// way for every statement, rather than failing inside the database.
fn storable(params: &[Value]) -> Result<(), DbError> {
    match params.iter().any(|value| matches!(value, Value::Text(text) if text.contains('\0'))) {
        true => Err(DbError::Unstorable("text containing the character U+0000 cannot be stored".into())),
        false => Ok(()),
    }
}

pub fn execute(tx: &mut ::postgres::Transaction<'_>, sql: &str, params: &[Value]) -> Result<u64, DbError> {
    storable(params)?;
    let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    tx.execute(dollar_parameters(sql).as_str(), &refs).map_err(error)
}

pub fn query(tx: &mut ::postgres::Transaction<'_>, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
    storable(params)?;
    let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    let rows = tx.query(dollar_parameters(sql).as_str(), &refs).map_err(error)?;
    rows.iter().map(row).collect()
}

fn row(row: &::postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(index).map(|v| v.map(Value::Int)),
            Type::INT4 => row.try_get::<_, Option<i32>>(index).map(|v| v.map(|n| Value::Int(n.into()))),
            Type::INT2 => row.try_get::<_, Option<i16>>(index).map(|v| v.map(|n| Value::Int(n.into()))),
            Type::BOOL => row.try_get::<_, Option<bool>>(index).map(|v| v.map(|b| Value::Int(b.into()))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(index).map(|v| v.map(Value::Real)),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(index).map(|v| v.map(|x| Value::Real(x.into()))),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index).map(|v| v.map(Value::Blob)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(index).map(|v| v.map(Value::Text))
            }
            _ => {
                return Err(DbError::other(format!(
                "column {} has type {ty}, which the storage layer does not read (cast it to BIGINT or TEXT)",
                column.name()
            )))
            }
        };
        values.push(value.map_err(error)?.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// `?1` → `$1`, outside quoted strings and identifiers.
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

#[derive(Debug)]
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                _ => n.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                _ => x.to_sql(ty, out),
            },
            Value::Text(text) => text.as_str().to_sql(ty, out),
            Value::Blob(bytes) => bytes.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn error(error: ::postgres::Error) -> DbError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        DbError::Conflict(error.to_string())
    } else {
        match error.as_db_error() {
            Some(db) => DbError::Other(format!("PostgreSQL: {}", db.message())),
            None => DbError::Other(format!("PostgreSQL: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dollar_parameters;

    #[test]
    fn parameters_are_renumbered_outside_quotes() {
        assert_eq!(
            dollar_parameters("SELECT ?1, '?2', \"a?\" FROM t WHERE x = ?2"),
            "SELECT $1, '?2', \"a?\" FROM t WHERE x = $2"
        );
    }
}
