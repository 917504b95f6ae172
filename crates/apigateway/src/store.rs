//! API Gateway's state: one table of JSON documents keyed (api, kind, id) — REST and HTTP APIs,
//! resources, routes, integrations, stages, deployments, keys, usage plans, authorizers —
//! mirrored in memory so the data plane reads no disk. Every write commits before the call
//! answers and bumps a generation number; with several nodes, a node re-reads everything when
//! it sees the generation moved (checked at most once a second).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use nimbus_api::AwsError;
use nimbus_store::{params, Database, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;

pub const SCHEMA: Schema = Schema {
    service: "apigateway",
    sqlite_file: "apigateway/apigateway.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE docs (api TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, \
             body TEXT NOT NULL, PRIMARY KEY (api, kind, id))",
        ),
        Migration::both("CREATE TABLE generation (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)"),
    ],
};

/// Milliseconds between two checks of the generation when several nodes share the database.
const RECHECK_MS: i64 = 1000;

pub type Key = (String, String, String);

pub struct Docs {
    db: ServiceDb,
    shared: bool,
    docs: RwLock<BTreeMap<Key, Value>>,
    generation: AtomicI64,
    checked_ms: AtomicI64,
    /// Bumped on every change seen here: compiled routes older than it are stale.
    pub epoch: AtomicU64,
}

/// One change in a write: put a document, or delete one (or all of an API's).
pub enum Change {
    Put(&'static str, String, String, Value),
    Delete(&'static str, String, String),
    DeleteApi(String),
}

impl Docs {
    pub fn open(database: &Database) -> Result<Docs, DbError> {
        let db = database.open(&SCHEMA)?;
        let docs = Docs {
            db,
            shared: database.is_shared(),
            docs: RwLock::new(BTreeMap::new()),
            generation: AtomicI64::new(-1),
            checked_ms: AtomicI64::new(now_ms()),
            epoch: AtomicU64::new(0),
        };
        docs.reload()?;
        Ok(docs)
    }

    fn reload(&self) -> Result<(), DbError> {
        let (generation, rows) = self.db.read(|tx| {
            let generation: Option<i64> =
                tx.query_value("SELECT n FROM generation WHERE id = 1", &params![])?;
            let rows = tx.query("SELECT api, kind, id, body FROM docs", &params![])?;
            Ok::<_, DbError>((generation.unwrap_or(0), rows))
        })?;
        let mut docs = BTreeMap::new();
        for row in rows {
            let body: String = row.get(3)?;
            let value = serde_json::from_str(&body).unwrap_or(Value::Null);
            docs.insert((row.get(0)?, row.get(1)?, row.get(2)?), value);
        }
        *self.docs.write().unwrap_or_else(|p| p.into_inner()) = docs;
        self.generation.store(generation, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// With several nodes: re-reads when another node changed something (at most one check a
    /// second). Alone, memory is always current.
    pub fn refresh(&self) {
        if !self.shared {
            return;
        }
        let now = now_ms();
        let last = self.checked_ms.load(Ordering::Acquire);
        if now - last < RECHECK_MS
            || self.checked_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return;
        }
        let current: Result<Option<i64>, DbError> =
            blocking(|| self.db.query_opt("SELECT n FROM generation WHERE id = 1", &params![]))
                .and_then(|row| row.map(|r| r.get(0)).transpose());
        if let Ok(Some(n)) = current {
            if n != self.generation.load(Ordering::Acquire) {
                let _ = blocking(|| self.reload());
            }
        }
    }

    pub fn get(&self, api: &str, kind: &str, id: &str) -> Option<Value> {
        let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
        docs.get(&(api.to_owned(), kind.to_owned(), id.to_owned())).cloned()
    }

    pub fn contains(&self, api: &str, kind: &str, id: &str) -> bool {
        let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
        docs.contains_key(&(api.to_owned(), kind.to_owned(), id.to_owned()))
    }

    /// Every document of `kind` under `api`, in id order.
    pub fn list(&self, api: &str, kind: &str) -> Vec<Value> {
        let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
        let start = (api.to_owned(), kind.to_owned(), String::new());
        docs.range(start..)
            .take_while(|((a, k, _), _)| a == api && k == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Applies `changes` in one transaction, durable before it returns, then in memory.
    pub fn write(&self, changes: Vec<Change>) -> Result<(), AwsError> {
        let result = blocking(|| {
            self.db.write(|tx| {
                for change in &changes {
                    match change {
                        Change::Put(kind, api, id, value) => {
                            tx.execute(
                                "INSERT INTO docs (api, kind, id, body) VALUES (?1, ?2, ?3, ?4) \
                                 ON CONFLICT (api, kind, id) DO UPDATE SET body = excluded.body",
                                &params![api, *kind, id, value.to_string()],
                            )?;
                        }
                        Change::Delete(kind, api, id) => {
                            tx.execute(
                                "DELETE FROM docs WHERE api = ?1 AND kind = ?2 AND id = ?3",
                                &params![api, *kind, id],
                            )?;
                        }
                        Change::DeleteApi(api) => {
                            tx.execute("DELETE FROM docs WHERE api = ?1", &params![api])?;
                        }
                    }
                }
                let n: Option<i64> = tx.query_value(
                    "INSERT INTO generation (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE \
                     SET n = generation.n + 1 RETURNING n",
                    &params![],
                )?;
                Ok::<_, DbError>(n.unwrap_or(0))
            })
        });
        let generation = result.map_err(|e| AwsError::service(format!("cannot store the change: {e}")))?;
        let mut docs = self.docs.write().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            match change {
                Change::Put(kind, api, id, value) => {
                    docs.insert((api, kind.to_owned(), id), value);
                }
                Change::Delete(kind, api, id) => {
                    docs.remove(&(api, kind.to_owned(), id));
                }
                Change::DeleteApi(api) => docs.retain(|(a, _, _), _| *a != api),
            }
        }
        self.generation.store(generation, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// Database work from an async handler: off the worker's other tasks when on a runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id as API Gateway makes them: ten lower-case letters and digits.
pub fn new_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let more = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .chain(more.iter())
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
