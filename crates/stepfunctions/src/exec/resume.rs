//! Executions left running by a previous process (or by a node that is gone) continue from
//! their last checkpoint: the state that was running is run again (a Wait with its remaining
//! time, a task waiting for a token keeps waiting for the same token).

use std::sync::Arc;
use std::time::Duration;

use nimbus_store::params;
use serde_json::Value;
use tokio::sync::oneshot;

use super::Engine;

const LEASE: &str = "stepfunctions-executions";

/// AWS keeps a closed execution (and its history) for 90 days.
const RETENTION_MS: i64 = 90 * 86_400_000;

/// Every hour of nimbus's clock, executions closed more than 90 days ago go, with their events
/// and tokens (by the lease holder when there are several nodes).
fn sweep_closed(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    let clock = engine.clock.clone();
    tokio::spawn(async move {
        loop {
            let next = clock.now_ms() + 3_600_000;
            nimbus_api::clock::sleep_until(clock.as_ref(), next).await;
            let Some(engine) = weak.upgrade() else { return };
            if let Some(cluster) = &engine.cluster {
                let held = tokio::task::block_in_place(|| cluster.try_lease(LEASE, Duration::from_secs(15)));
                if !held.unwrap_or(false) {
                    continue;
                }
            }
            let before = engine.now() - RETENTION_MS;
            let closed = "SELECT arn FROM executions WHERE status <> 'RUNNING' AND stop_ms < ?1";
            let swept = engine.db.write(|tx| {
                tx.execute(&format!("DELETE FROM events WHERE execution IN ({closed})"), &params![before])?;
                tx.execute(&format!("DELETE FROM tokens WHERE execution IN ({closed})"), &params![before])?;
                tx.execute(&format!("DELETE FROM map_runs WHERE execution IN ({closed})"), &params![before])?;
                tx.execute(
                    "DELETE FROM executions WHERE status <> 'RUNNING' AND stop_ms < ?1",
                    &params![before],
                )
            });
            if let Err(error) = swept {
                eprintln!("nimbus: stepfunctions: cannot sweep closed executions: {error}");
            }
        }
    });
}

/// Resumes now on a node alone; with several nodes, the lease holder adopts the executions of
/// nodes that are gone, every few seconds.
pub fn start(engine: &Arc<Engine>) {
    sweep_closed(engine);
    let Some(cluster) = engine.cluster.clone() else {
        resume_where(engine, None);
        return;
    };
    // This node's own executions from before a restart are its to continue.
    resume_where(engine, Some(vec![engine.node.clone()]));
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let Some(engine) = weak.upgrade() else { return };
            let held = tokio::task::block_in_place(|| cluster.try_lease(LEASE, Duration::from_secs(15)));
            if held.unwrap_or(false) {
                if let Ok(dead) = tokio::task::block_in_place(|| cluster.dead_nodes()) {
                    if !dead.is_empty() {
                        resume_where(&engine, Some(dead));
                    }
                }
            }
        }
    });
}

/// Resumes the RUNNING executions of `nodes` (all when None) not running here.
pub fn resume_where(engine: &Arc<Engine>, nodes: Option<Vec<String>>) {
    let rows =
        engine.db.query("SELECT arn, doc, checkpoint, node FROM executions WHERE status = 'RUNNING'", &[]);
    let Ok(rows) = rows else { return };
    for row in rows {
        let (Ok(arn), Ok(doc)) = (row.get::<String>(0), row.get::<String>(1)) else { continue };
        let node = row.get::<Option<String>>(3).ok().flatten().unwrap_or_default();
        if nodes.as_ref().is_some_and(|n| !n.contains(&node)) || engine.is_running_here(&arn) {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&doc) else { continue };
        let checkpoint =
            row.get::<Option<String>>(2).ok().flatten().and_then(|c| serde_json::from_str::<Value>(&c).ok());
        let _ = engine.db.execute(
            "UPDATE executions SET node = ?2 WHERE arn = ?1",
            &params![arn.as_str(), engine.node.as_str()],
        );
        let last = engine
            .db
            .query_opt("SELECT MAX(id) FROM events WHERE execution = ?1", &params![arn.as_str()])
            .ok()
            .flatten()
            .and_then(|r| r.get::<i64>(0).ok())
            .unwrap_or(0);
        // Map runs it had going died with it; the resumed Map starts a new one.
        let _ = super::map_runs::abort(&engine.db, &arn, engine.now());
        let (run, stop) = engine.new_run(&doc, true, last);
        let input = match &checkpoint {
            Some(c) => c["input"].clone(),
            None => serde_json::from_str(doc["input"].as_str().unwrap_or("{}")).unwrap_or_default(),
        };
        let (sender, _done) = oneshot::channel();
        tokio::spawn(super::start::drive(run, stop, doc, input, checkpoint, sender));
    }
}
