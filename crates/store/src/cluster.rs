//! Several nimbus nodes on one database: who is alive, who holds which lease, and a wake-up call
//! between them. There is no protocol of our own: the database is the arbiter. On SQLite there
//! is one node, and the same code runs with nobody to disagree with.
//!
//! A node is alive while its heartbeat is younger than the expiry. Work a service hands out per
//! row (asynchronous events, say) names its owner node; other nodes take such rows over once the
//! owner is dead ([`Cluster::dead_nodes`]). Coarse work (one poller, one schedule) is held by a
//! named lease that its holder renews and anyone may take once it has expired.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use tokio::sync::broadcast;

use crate::db::{Database, DbError, Migration, Schema, ServiceDb};
use crate::params;

const SCHEMA: Schema = Schema {
    service: "cluster",
    sqlite_file: "cluster.db",
    relaxed: true,
    migrations: &[
        Migration::both(
            "CREATE TABLE nodes (name TEXT PRIMARY KEY, address TEXT NOT NULL, started_ms BIGINT NOT NULL,
                heartbeat_ms BIGINT NOT NULL, work TEXT NOT NULL);
             CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL);",
        ),
        // Which data directory a node runs on: the same name restarting on the same directory
        // (whose lock proves the old process gone) is the same node back from a crash.
        Migration::both("ALTER TABLE nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';"),
        // A secret only the nodes know (they read it from the database), for their calls to
        // each other on the public port.
        Migration::both("CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);"),
    ],
};

/// The one PostgreSQL channel nodes wake each other on; payloads are `topic` or `topic:detail`,
/// and `*` (from this node, after its connection was lost: anything may have changed).
const CHANNEL: &str = "nimbus";

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub address: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
    pub alive: bool,
    pub work: Json,
}

type WorkReport = Box<dyn Fn() -> Json + Send + Sync>;

pub struct Cluster {
    db: ServiceDb,
    database: Database,
    node: String,
    /// Shared by every node of this database; proves a call on the public port came from one.
    secret: String,
    instance: String,
    address: String,
    expiry: Duration,
    started_ms: i64,
    /// When the last heartbeat reached the database (0: never).
    last_beat_ms: AtomicI64,
    reports: Mutex<BTreeMap<String, WorkReport>>,
    wake: broadcast::Sender<String>,
}

impl Cluster {
    /// Registers this node. Refuses a name another live node uses; `instance` names the data
    /// directory, so that the same node restarting after a crash is not taken for another.
    pub fn join(
        database: &Database,
        node: &str,
        instance: &str,
        address: &str,
        expiry: Duration,
    ) -> Result<Arc<Cluster>, DbError> {
        let db = database.open(&SCHEMA)?;
        let now = now_ms();
        let expiry_ms = expiry.as_millis() as i64;
        db.write(|tx| {
            let row = tx.query_opt("SELECT heartbeat_ms, instance FROM nodes WHERE name = ?1", &params![node])?;
            if let Some(row) = row {
                let (beat, owner): (i64, String) = (row.get(0)?, row.get(1)?);
                // A fresh heartbeat from another data directory is another process using the name.
                if now - beat < expiry_ms && owner != instance && database.is_shared() {
                    return Err(DbError::Conflict(format!(
                        "node {node} is already running (heartbeat {} ms ago); give each node its own --node",
                        now - beat
                    )));
                }
            }
            tx.execute(
                "INSERT INTO nodes (name, address, started_ms, heartbeat_ms, work, instance)
                 VALUES (?1, ?2, ?3, ?3, '{}', ?4)
                 ON CONFLICT (name) DO UPDATE SET address = excluded.address, started_ms = excluded.started_ms,
                 heartbeat_ms = excluded.heartbeat_ms, work = '{}', instance = excluded.instance",
                &params![node, address, now, instance],
            )?;
            Ok(())
        })?;
        let secret = db.write(|tx| {
            let fresh = uuid::Uuid::new_v4().simple().to_string();
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES ('nodes', ?1) ON CONFLICT (name) DO NOTHING",
                &params![fresh],
            )?;
            tx.query_value::<String>("SELECT value FROM secrets WHERE name = 'nodes'", &[])?
                .ok_or_else(|| DbError::other("the nodes' secret is missing"))
        })?;
        let (wake, _) = broadcast::channel(256);
        let cluster = Arc::new(Cluster {
            db,
            database: database.clone(),
            node: node.to_owned(),
            secret,
            instance: instance.to_owned(),
            address: address.to_owned(),
            expiry,
            started_ms: now,
            last_beat_ms: AtomicI64::new(now),
            reports: Mutex::new(BTreeMap::new()),
            wake,
        });
        if let Database::Postgres(server) = database {
            crate::db::listen(server.clone(), CHANNEL, cluster.wake.clone());
        }
        Ok(cluster)
    }

    /// The nodes' shared secret (see `secrets`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    pub fn is_shared(&self) -> bool {
        self.database.is_shared()
    }

    /// A service says what work this node holds, for `nimbus status` (called at each heartbeat).
    pub fn report(&self, what: &str, report: impl Fn() -> Json + Send + Sync + 'static) {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).insert(what.to_owned(), Box::new(report));
    }

    /// Proves this node alive. Call every expiry/4 or so.
    pub fn heartbeat(&self) -> Result<(), DbError> {
        let work: serde_json::Map<String, Json> = {
            let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
            reports.iter().map(|(name, report)| (name.clone(), report())).collect()
        };
        let now = now_ms();
        let changed = self.db.execute(
            "UPDATE nodes SET heartbeat_ms = ?2, work = ?3, address = ?4 WHERE name = ?1",
            &params![self.node, now, Json::Object(work).to_string(), self.address],
        )?;
        if changed == 0 {
            // Removed by someone who thought us dead: come back.
            self.db.execute(
                "INSERT INTO nodes (name, address, started_ms, heartbeat_ms, work, instance)
                 VALUES (?1, ?2, ?3, ?4, '{}', ?5)",
                &params![self.node, self.address, self.started_ms, now, self.instance],
            )?;
        }
        self.last_beat_ms.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this node may claim work: its last heartbeat reached the database within the
    /// expiry. A node cut off from the database stops claiming before others take its work.
    pub fn healthy(&self) -> bool {
        now_ms() - self.last_beat_ms.load(Ordering::Relaxed) < self.expiry.as_millis() as i64
    }

    pub fn nodes(&self) -> Result<Vec<NodeInfo>, DbError> {
        let now = now_ms();
        let rows = self
            .db
            .query("SELECT name, address, started_ms, heartbeat_ms, work FROM nodes ORDER BY name", &[])?;
        rows.into_iter()
            .map(|row| {
                let heartbeat_ms: i64 = row.get(3)?;
                Ok(NodeInfo {
                    name: row.get(0)?,
                    address: row.get(1)?,
                    started_ms: row.get(2)?,
                    heartbeat_ms,
                    alive: now - heartbeat_ms < self.expiry.as_millis() as i64,
                    work: serde_json::from_str(&row.get::<String>(4)?).unwrap_or(Json::Null),
                })
            })
            .collect()
    }

    /// Nodes whose heartbeat has expired: their per-row work is anyone's.
    pub fn dead_nodes(&self) -> Result<Vec<String>, DbError> {
        let cutoff = now_ms() - self.expiry.as_millis() as i64;
        let rows = self.db.query("SELECT name FROM nodes WHERE heartbeat_ms < ?1", &params![cutoff])?;
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// Takes or renews the lease `name` for `ttl`; false while another node holds it.
    pub fn try_lease(&self, name: &str, ttl: Duration) -> Result<bool, DbError> {
        if !self.healthy() {
            return Ok(false);
        }
        let now = now_ms();
        let changed = self.db.execute(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
             WHERE leases.holder = excluded.holder OR leases.expires_ms < ?4",
            &params![name, self.node, now + ttl.as_millis() as i64, now],
        )?;
        Ok(changed == 1)
    }

    /// Who holds the lease `name` now (unexpired), and where that node listens.
    pub fn lease_holder(&self, name: &str) -> Result<Option<(String, String)>, DbError> {
        let row = self.db.query_opt(
            "SELECT leases.holder, nodes.address FROM leases JOIN nodes ON nodes.name = leases.holder
             WHERE leases.name = ?1 AND leases.expires_ms > ?2",
            &params![name, now_ms()],
        )?;
        row.map(|row| Ok((row.get(0)?, row.get(1)?))).transpose()
    }

    /// Gives a lease up at once (a clean stop), so that another node need not wait it out.
    pub fn release(&self, name: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM leases WHERE name = ?1 AND holder = ?2", &params![name, self.node])?;
        Ok(())
    }

    /// Leaves the cluster on a clean stop: leases released, and the node marked gone at once
    /// (its row stays, heartbeat 0), so that others take over what it leaves unfinished
    /// without waiting out the expiry.
    pub fn leave(&self) {
        let _ = self.db.execute("DELETE FROM leases WHERE holder = ?1", &params![self.node]);
        let _ = self.db.execute("UPDATE nodes SET heartbeat_ms = 0 WHERE name = ?1", &params![self.node]);
    }

    /// Wakes every node's subscribers of `topic` (this node's included).
    pub fn notify(&self, topic: &str) {
        match &self.database {
            Database::Postgres(_) => {
                let _ = self.db.execute("SELECT pg_notify(?1, ?2)", &params![CHANNEL, topic]);
            }
            Database::Sqlite { .. } => {
                let _ = self.wake.send(topic.to_owned());
            }
        }
    }

    /// Topics notified by any node, as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.wake.subscribe()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::databases;

    fn name(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    #[test]
    fn a_live_name_is_refused_to_another_data_directory_but_not_to_its_own() {
        for (database, _dir) in databases() {
            let node = name("n");
            let secret =
                Cluster::join(&database, &name("s"), "dir-0", "http://s", Duration::from_secs(30)).unwrap();
            let first =
                Cluster::join(&database, &node, "dir-1", "http://a", Duration::from_secs(30)).unwrap();
            // Back from a crash on the same data directory: welcome at once.
            let again =
                Cluster::join(&database, &node, "dir-1", "http://a", Duration::from_secs(30)).unwrap();
            assert_eq!(
                (first.secret(), again.secret()),
                (secret.secret(), secret.secret()),
                "one secret per database"
            );
            assert_eq!(first.secret().len(), 32);
            let other = Cluster::join(&database, &node, "dir-2", "http://b", Duration::from_secs(30));
            match database.is_shared() {
                true => assert!(matches!(other, Err(DbError::Conflict(_))), "{:?}", other.err()),
                // SQLite: one node; the data directory's lock is the guard.
                false => assert!(other.is_ok()),
            }
            first.leave();
        }
    }

    #[test]
    fn a_node_that_leaves_is_gone_at_once_and_leases_have_one_holder() {
        for (database, _dir) in databases() {
            let (a, b) = (name("a"), name("b"));
            let expiry = Duration::from_secs(30);
            let node_a = Cluster::join(&database, &a, "dir-a", "http://a", expiry).unwrap();
            let node_b = Cluster::join(&database, &b, "dir-b", "http://b", expiry).unwrap();
            let lease = name("lease");
            assert!(node_a.try_lease(&lease, Duration::from_secs(30)).unwrap());
            assert!(!node_b.try_lease(&lease, Duration::from_secs(30)).unwrap(), "held by a");
            assert!(node_a.try_lease(&lease, Duration::from_secs(30)).unwrap(), "renewed by its holder");
            assert_eq!(node_b.lease_holder(&lease).unwrap(), Some((a.clone(), "http://a".to_owned())));
            assert!(!node_b.dead_nodes().unwrap().contains(&a));
            node_a.leave();
            assert!(node_b.dead_nodes().unwrap().contains(&a), "left: others take its work now");
            assert_eq!(node_b.lease_holder(&lease).unwrap(), None, "released on leave");
            assert!(node_b.try_lease(&lease, Duration::from_secs(30)).unwrap());
            let seen = node_b.nodes().unwrap();
            assert!(
                seen.iter().any(|n| n.name == a && !n.alive) && seen.iter().any(|n| n.name == b && n.alive)
            );
            // Its heartbeat brings it back.
            node_a.heartbeat().unwrap();
            assert!(!node_b.dead_nodes().unwrap().contains(&a));
            node_a.leave();
            node_b.leave();
        }
    }
}
