//! The background sweep: items whose TTL attribute (epoch seconds) has passed are deleted, each
//! with a REMOVE stream record made by the service (`userIdentity` dynamodb.amazonaws.com), and
//! stream records older than 24 hours are trimmed. Until the sweep reaches an expired item,
//! reads still return it, as on AWS.

use std::sync::{Arc, Weak};
use std::time::Duration;

use nimbus_store::params;

use crate::error::{DdbError, Result};
use crate::store::{load_table, lock_item, read_item, write_item, Actor};
use crate::table::RowKey;
use crate::value::Av;
use crate::DynamoDb;

const RETENTION_MS: i64 = 24 * 3600 * 1000;
/// AWS leaves items whose TTL is more than five years in the past alone.
const FIVE_YEARS: i64 = 5 * 365 * 24 * 3600;
const BATCH: i64 = 500;

pub fn start(dynamodb: Weak<DynamoDb>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(dynamodb) = dynamodb.upgrade() else { break };
            let swept = tokio::task::spawn_blocking(move || dynamodb.sweep_once()).await;
            if let Ok(Err(error)) = swept {
                eprintln!("nimbus: DynamoDB TTL sweep: {}", error.message);
            }
        }
    })
}

impl DynamoDb {
    /// One pass: expired items of every table with TTL, then old stream records.
    pub fn sweep_once(self: &Arc<Self>) -> Result<usize> {
        let now_ms = nimbus_store::cluster::now_ms();
        let now = now_ms / 1000;
        let tables: Vec<String> = self
            .db
            .query("SELECT name FROM ddb_tables WHERE ttl = 1", &[])?
            .iter()
            .filter_map(|r| r.get(0).ok())
            .collect();
        let mut deleted = 0;
        let mut streamed = false;
        for name in tables {
            let Some(table) = self.db.read(|tx| load_table(tx, &name))? else { continue };
            let rows = self.db.query(
                &format!("SELECT pk, sk FROM ddb_items WHERE tid = ?1 AND expires IS NOT NULL AND expires <= ?2 AND expires >= ?3 LIMIT {BATCH}"),
                &params![table.id, now, now - FIVE_YEARS],
            )?;
            for row in rows {
                let key = RowKey { pk: row.get(0)?, sk: row.get(1)? };
                let region = self.region().to_owned();
                let done = self.db.write(|tx| {
                    let Some(table) = load_table(tx, &name)? else { return Ok::<_, DdbError>(None) };
                    let Some(attr) = &table.ttl_attribute else { return Ok(None) };
                    lock_item(tx, &table, &key)?;
                    let Some(old) = read_item(tx, &table, &key)? else { return Ok(None) };
                    let expired =
                        matches!(old.get(attr), Some(Av::N(n)) if n.as_i64().is_some_and(|t| t <= now));
                    if !expired {
                        return Ok(None);
                    }
                    Ok(Some(write_item(tx, &table, &key, Some(&old), None, Actor::Ttl, &region)?))
                })?;
                if let Some(s) = done {
                    deleted += 1;
                    streamed |= s;
                }
            }
        }
        if streamed {
            self.streams_written();
        }
        self.db.execute(
            "DELETE FROM ddb_stream_records WHERE created_ms < ?1",
            &params![now_ms - RETENTION_MS],
        )?;
        self.db.execute(
            "DELETE FROM ddb_streams WHERE closed_ms IS NOT NULL AND closed_ms < ?1",
            &params![now_ms - RETENTION_MS],
        )?;
        Ok(deleted)
    }
}
