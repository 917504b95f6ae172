//! DynamoDB and DynamoDB Streams: two services on one state, each behind a [`Lazy`] so that
//! neither costs anything until first used; whichever is called first opens the state for both.
//! At start the state is opened only when a table has TTL enabled (its sweep must run without
//! a request), and that check runs after the port is ready.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::{Identity, Protocol};
use nimbus_dynamodb::{DynamoDb, StreamsService};
use nimbus_store::Database;

use crate::lazy::Lazy;

/// The two services; `ttl_sweep` is the time between TTL sweeps.
pub fn services(
    database: &Database,
    identity: Identity,
    ttl_sweep: Duration,
) -> (Arc<Lazy<DynamoDb>>, Arc<Lazy<StreamsService>>) {
    let database = database.clone();
    let options = nimbus_dynamodb::Options { ttl_sweep };
    let opened: Arc<Mutex<Option<Arc<DynamoDb>>>> = Arc::default();
    let open = move || -> Result<Arc<DynamoDb>, String> {
        let mut slot = opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dynamodb) = &*slot {
            return Ok(dynamodb.clone());
        }
        let dynamodb =
            DynamoDb::open(&database, identity.clone(), options.clone()).map_err(|e| e.to_string())?;
        *slot = Some(dynamodb.clone());
        Ok(dynamodb)
    };
    let open = Arc::new(open);
    let for_streams = open.clone();
    let dynamodb = Lazy::new("dynamodb", Protocol::Json, move || open());
    let streams = Lazy::new("dynamodbstreams", Protocol::Json, move || {
        for_streams().map(|dynamodb| Arc::new(dynamodb.streams_service()))
    });
    (dynamodb, streams)
}

/// Opens DynamoDB in the background when its state has TTL work to resume.
pub fn resume_background(database: &Database, dynamodb: Arc<Lazy<DynamoDb>>) {
    // Never used here (no SQLite file): nothing to ask, and no thread to start for asking.
    if !database.is_shared() && !database.has_schema(&nimbus_dynamodb::SCHEMA) {
        return;
    }
    let database = database.clone();
    tokio::spawn(async move {
        let needed = tokio::task::spawn_blocking(move || DynamoDb::needs_background(&database)).await;
        if needed.unwrap_or(false) {
            if let Err(error) = dynamodb.get().await {
                eprintln!("nimbus: cannot open DynamoDB for its TTL sweep: {error}");
            }
        }
    });
}
