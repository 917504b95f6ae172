//! EC2's state in the storage layer: every record (instances, spot requests, key pairs, security
//! groups, VPCs, subnets, reservations, launch templates, Auto Scaling groups) as a JSON document
//! keyed by kind and id, and the meter's ledger of usage segments. Every write is committed
//! before the call that made it answers.

use nimbus_api::AwsError;
use nimbus_store::{params, DbError, Migration, Row, Schema, ServiceDb};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub const SCHEMA: Schema = Schema {
    service: "ec2",
    sqlite_file: "ec2/ec2.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE docs (kind TEXT NOT NULL, id TEXT NOT NULL, region TEXT NOT NULL, \
             body TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (kind, id))",
        ),
        Migration::both(
            "CREATE TABLE usage (id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, region TEXT NOT NULL, \
             instance_type TEXT NOT NULL, zone TEXT NOT NULL, arch TEXT NOT NULL, billing TEXT NOT NULL, \
             rate DOUBLE PRECISION NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT, \
             interrupted BIGINT NOT NULL DEFAULT 0)",
        ),
        Migration::both("CREATE INDEX usage_open ON usage (instance_id, end_ms)"),
        // Which service launched the instance, for the meter's series (`EC2` or `Batch`).
        Migration::both("ALTER TABLE usage ADD COLUMN service TEXT NOT NULL DEFAULT 'EC2'"),
        // Auto Scaling groups' names (and so their policies' and scheduled actions' ids) are
        // unique per region, as on AWS: their ids gain their region (`asg::group_key`).
        Migration::both(
            "UPDATE docs SET id = region || '/' || id \
             WHERE kind IN ('asg', 'scaling-policy', 'scheduled-action')",
        ),
    ],
};

/// A stretch of time an instance ran, billed one way.
/// A document ready to write (see [`Store::put_all`]).
pub struct Doc {
    pub kind: &'static str,
    pub id: String,
    pub region: String,
    pub body: String,
    pub created: i64,
}

impl Doc {
    pub fn of<T: Serialize>(
        kind: &'static str,
        id: &str,
        region: &str,
        doc: &T,
        created: i64,
    ) -> Result<Doc, AwsError> {
        let body = text(doc).map_err(db)?;
        Ok(Doc { kind, id: id.to_owned(), region: region.to_owned(), body, created })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub arch: String,
    /// `on-demand`, `spot`, or `reserved:<reservation id>`.
    pub billing: String,
    /// USD per hour in force when it started.
    pub rate: f64,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// Ended by a spot interruption.
    pub interrupted: bool,
    /// `EC2`, or `Batch` for a compute environment's instance.
    pub service: String,
}

pub struct Store {
    pub db: ServiceDb,
}

fn parse<T: DeserializeOwned>(row: &Row) -> Result<T, DbError> {
    let body: String = row.get(0)?;
    serde_json::from_str(&body).map_err(DbError::other)
}

fn text<T: Serialize>(doc: &T) -> Result<String, DbError> {
    serde_json::to_string(doc).map_err(DbError::other)
}

fn db(error: DbError) -> AwsError {
    AwsError::new(500, "InternalError", format!("nimbus: {error}"))
}

impl Store {
    pub fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>, AwsError> {
        let row = self
            .db
            .query_opt("SELECT body FROM docs WHERE kind = ?1 AND id = ?2", &params![kind, id])
            .map_err(db)?;
        row.as_ref().map(parse).transpose().map_err(db)
    }

    /// Every document of `kind` in `region` (all regions when None), oldest first.
    pub fn all<T: DeserializeOwned>(&self, kind: &str, region: Option<&str>) -> Result<Vec<T>, AwsError> {
        let rows = self
            .db
            .query(
                "SELECT body FROM docs WHERE kind = ?1 AND (?2 = '' OR region = ?2) ORDER BY created, id",
                &params![kind, region.unwrap_or("")],
            )
            .map_err(db)?;
        rows.iter().map(parse).collect::<Result<_, _>>().map_err(db)
    }

    pub fn put<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        region: &str,
        doc: &T,
        now: i64,
    ) -> Result<(), AwsError> {
        let body = text(doc).map_err(db)?;
        self.db
            .execute(
                "INSERT INTO docs (kind, id, region, body, created) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                &params![kind, id, region, body, now],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Several documents written in one transaction (all or none).
    pub fn put_all(&self, docs: &[Doc]) -> Result<(), AwsError> {
        self.db
            .write(|tx| {
                for doc in docs {
                    tx.execute(
                        "INSERT INTO docs (kind, id, region, body, created) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                        &params![doc.kind, doc.id, doc.region, doc.body, doc.created],
                    )?;
                }
                Ok::<(), DbError>(())
            })
            .map_err(db)
    }

    /// Claims `(kind, id)` for this caller: true for exactly one of the nodes that try (the
    /// insert that wins); claims of `kind` older than `expire_before` are dropped.
    pub fn claim(&self, kind: &str, id: &str, now: i64, expire_before: i64) -> Result<bool, AwsError> {
        self.db
            .execute("DELETE FROM docs WHERE kind = ?1 AND created < ?2", &params![kind, expire_before])
            .map_err(db)?;
        let claimed = self
            .db
            .execute(
                "INSERT INTO docs (kind, id, region, body, created) VALUES (?1, ?2, '', '{}', ?3) \
                 ON CONFLICT (kind, id) DO NOTHING",
                &params![kind, id, now],
            )
            .map_err(db)?;
        Ok(claimed > 0)
    }

    pub fn delete(&self, kind: &str, id: &str) -> Result<bool, AwsError> {
        Ok(self.db.execute("DELETE FROM docs WHERE kind = ?1 AND id = ?2", &params![kind, id]).map_err(db)?
            > 0)
    }

    /// Keeps an event sent (`aws.ec2`, `aws.autoscaling`) for the capacity timeline: the history
    /// outlives a restart and is the same on every node.
    pub fn record_event(&self, region: &str, event: &serde_json::Value, now: i64) -> Result<(), AwsError> {
        let id = format!("{now:013}-{}", uuid::Uuid::new_v4().simple());
        self.put("event", &id, region, event, now)
    }

    /// The newest `limit` events kept, oldest first.
    pub fn recent_events(&self, limit: i64) -> Result<Vec<serde_json::Value>, AwsError> {
        let rows = self
            .db
            .query(
                "SELECT body FROM docs WHERE kind = 'event' ORDER BY created DESC, id DESC LIMIT ?1",
                &params![limit],
            )
            .map_err(db)?;
        let mut events = rows.iter().map(parse).collect::<Result<Vec<_>, _>>().map_err(db)?;
        events.reverse();
        Ok(events)
    }

    /// Drops all but the newest `keep` events.
    pub fn prune_events(&self, keep: i64) -> Result<(), AwsError> {
        self.db
            .execute(
                "DELETE FROM docs WHERE kind = 'event' AND id NOT IN \
                 (SELECT id FROM docs WHERE kind = 'event' ORDER BY created DESC, id DESC LIMIT ?1)",
                &params![keep],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Records that need EC2 open from the start: instances whose processes were running (or
    /// about to), Auto Scaling groups and scheduled actions, open spot requests — counted
    /// without parsing every document.
    pub fn count_live(&self) -> Result<i64, AwsError> {
        let row = self
            .db
            .query_opt(
                "SELECT COUNT(*) FROM docs WHERE (kind = 'instance' AND (body LIKE '%\"state\":\"running\"%' \
                 OR body LIKE '%\"state\":\"pending\"%' OR body LIKE '%\"state\":\"stopping\"%' \
                 OR body LIKE '%\"state\":\"shutting-down\"%')) OR kind IN ('asg', 'scheduled-action') \
                 OR (kind = 'spot-request' AND body LIKE '%\"state\":\"open\"%')",
                &[],
            )
            .map_err(db)?;
        row.map_or(Ok(0), |row| row.get(0)).map_err(db)
    }

    /// Opens a usage segment (the instance entered `running`).
    pub fn open_segment(&self, region: &str, segment: &Segment) -> Result<(), AwsError> {
        self.db.execute(
            "INSERT INTO usage (id, instance_id, region, instance_type, zone, arch, billing, rate, start_ms, end_ms, interrupted, service) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, 0, ?10)",
            &params![
                uuid::Uuid::new_v4().to_string(),
                segment.instance_id,
                region,
                segment.instance_type,
                segment.zone,
                segment.arch,
                segment.billing,
                segment.rate,
                segment.start_ms,
                segment.service
            ],
        ).map_err(db)?;
        Ok(())
    }

    /// Closes the instance's open segment (it left `running`).
    pub fn close_segment(&self, instance_id: &str, end_ms: i64, interrupted: bool) -> Result<(), AwsError> {
        self.db
            .execute(
                "UPDATE usage SET end_ms = ?2, interrupted = ?3 WHERE instance_id = ?1 AND end_ms IS NULL",
                &params![instance_id, end_ms, i64::from(interrupted)],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Segments that overlap `[since_ms, ∞)`, of one region (all when None).
    pub fn segments(&self, since_ms: i64, region: Option<&str>) -> Result<Vec<Segment>, AwsError> {
        let rows = self.db.query(
            "SELECT instance_id, instance_type, zone, arch, billing, rate, start_ms, end_ms, interrupted, service FROM usage \
             WHERE (end_ms IS NULL OR end_ms >= ?1) AND (?2 = '' OR region = ?2) ORDER BY start_ms",
            &params![since_ms, region.unwrap_or("")],
        ).map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(Segment {
                    instance_id: row.get(0)?,
                    instance_type: row.get(1)?,
                    zone: row.get(2)?,
                    arch: row.get(3)?,
                    billing: row.get(4)?,
                    rate: row.get(5)?,
                    start_ms: row.get(6)?,
                    end_ms: row.get(7)?,
                    interrupted: row.get::<i64>(8)? != 0,
                    service: row.get(9)?,
                })
            })
            .collect::<Result<_, DbError>>()
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Groups stored before they lived per region (their ids their names alone) are found in
    /// their region after the migration, with their policies and scheduled actions.
    #[test]
    fn group_ids_gain_their_region() {
        let dir = std::env::temp_dir().join(format!("nimbus-ec2-group-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let database = nimbus_store::Database::sqlite(&dir);
        let before = Schema { migrations: &SCHEMA.migrations[..3], ..SCHEMA };
        let old = Store { db: database.open(&before).unwrap() };
        for (kind, id) in [
            ("asg", "web"),
            ("scaling-policy", "web/cpu"),
            ("scheduled-action", "web/night"),
            ("instance", "i-0a"),
        ] {
            old.put(kind, id, "eu-west-1", &json!({ "id": id }), 1).unwrap();
        }
        drop(old);
        let store = Store { db: database.open(&SCHEMA).unwrap() };
        let found = |kind: &str, id: &str| store.get::<Value>(kind, id).unwrap().is_some();
        assert!(found("asg", &crate::asg::group_key("eu-west-1", "web")) && !found("asg", "web"));
        assert!(found("scaling-policy", "eu-west-1/web/cpu"));
        assert!(found("scheduled-action", &crate::schedule::key("eu-west-1", "web", "night")));
        assert!(found("instance", "i-0a"), "ids unique in every region keep theirs");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
