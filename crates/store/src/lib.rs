//! Durable state: the metadata database behind the [`Store`] trait (SQLite embedded today,
//! PostgreSQL later) and the content-addressed code package store ([`code::CodeStore`]).

pub mod blobs;
pub mod cluster;
pub mod code;
pub mod db;
mod lambda;

pub use blobs::{BlobArea, Blobs};
pub use cluster::Cluster;
pub use db::{Database, DbError, Migration, Row, Schema, ServiceDb, Tx, Value};

pub use lambda::{LambdaStore, SCHEMA as LAMBDA_SCHEMA};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(String),
}

/// One version of one function as the service persists it. The configuration is the service's
/// own JSON document, so the store needs no change when the service grows a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    pub version: String,
    pub config: String,
    pub code_sha256: String,
}

/// One version of one Lambda layer; the version number is the store's to allocate (an imported
/// layer of another account keeps its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    pub name: String,
    pub version: u64,
    pub config: String,
    pub code_sha256: String,
}

/// A small configuration document attached to a function: an alias, a policy statement, an
/// event invoke config … (`kind` says which; `name` tells them apart within a kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub function: String,
    pub kind: String,
    pub name: String,
    pub config: String,
}

/// An asynchronous invocation waiting to run (or to run again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    /// The function reference as invoked (`name` or `name:qualifier`).
    pub function: String,
    pub payload: Vec<u8>,
    /// Invocations made so far.
    pub attempts: u32,
    /// Milliseconds since the epoch: when it was accepted, and when it may run next.
    pub enqueued_ms: i64,
    pub next_attempt_ms: i64,
}

/// Durable metadata. Implementations must make a write durable before returning `Ok`.
pub trait Store: Send + Sync + 'static {
    /// The node this store accepts events for.
    fn node(&self) -> &str;
    /// Every stored function version, for the services' in-memory caches at startup.
    fn load_functions(&self) -> Result<Vec<FunctionRow>, StoreError>;
    /// Inserts a new row; `Conflict` when that name and version exist.
    fn insert_function(&self, row: &FunctionRow) -> Result<(), StoreError>;
    /// Replaces an existing row; `NotFound` when there is none.
    fn update_function(&self, row: &FunctionRow) -> Result<(), StoreError>;
    /// Deletes every version of a function and all its resources; `NotFound` when there is none.
    fn delete_function(&self, name: &str) -> Result<(), StoreError>;
    /// Deletes one published version; `NotFound` when it does not exist.
    fn delete_function_version(&self, name: &str, version: &str) -> Result<(), StoreError>;

    fn load_resources(&self) -> Result<Vec<ResourceRow>, StoreError>;
    /// Inserts or replaces.
    fn put_resource(&self, row: &ResourceRow) -> Result<(), StoreError>;
    /// `NotFound` when it does not exist.
    fn delete_resource(&self, function: &str, kind: &str, name: &str) -> Result<(), StoreError>;

    /// Accepts asynchronous invocations durably (all or none).
    fn enqueue_events(&self, rows: &[EventRow]) -> Result<(), StoreError>;
    /// Takes the events nobody runs (accepted before nodes had names) and those of the nodes in
    /// `from` (this node's own after a restart, dead nodes' later), makes them this node's, and
    /// returns them oldest first. Each event goes to exactly one claimant.
    fn claim_events(&self, from: &[String]) -> Result<Vec<EventRow>, StoreError>;
    /// Events this node holds, for status.
    fn count_events(&self) -> Result<u64, StoreError>;
    /// Records another attempt and when the next may start.
    fn reschedule_event(&self, id: &str, attempts: u32, next_attempt_ms: i64) -> Result<(), StoreError>;
    /// The event is done (succeeded, or handed to its failure destination).
    fn delete_event(&self, id: &str) -> Result<(), StoreError>;
    /// Whether any stored function version or layer version still uses a code package.
    fn code_in_use(&self, code_sha256: &str) -> Result<bool, StoreError>;

    fn load_layers(&self) -> Result<Vec<LayerRow>, StoreError>;
    /// Stores a new layer version under the next number, never reusing a deleted one (as AWS),
    /// and returns that number. `config` receives the number to embed it.
    fn insert_layer(
        &self,
        name: &str,
        code_sha256: &str,
        config: &dyn Fn(u64) -> String,
    ) -> Result<LayerRow, StoreError>;
    /// `NotFound` when that version does not exist.
    fn delete_layer(&self, name: &str, version: u64) -> Result<(), StoreError>;
    /// Stores (or replaces) a layer version under the number it already has: a layer published
    /// in another account, imported under its own ARN (`name` is that ARN without the version).
    fn import_layer(&self, row: &LayerRow) -> Result<(), StoreError>;
}
