//! Batch's state in the storage layer: compute environments, queues, job definitions,
//! scheduling policies and Batch's instances as JSON documents keyed by kind and id; jobs in a
//! table of their own with the columns the scheduler selects on. Every write is committed
//! before the call that made it answers.

use nimbus_api::AwsError;
use nimbus_store::{params, DbError, Migration, Row, Schema, ServiceDb};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::Job;

pub const SCHEMA: Schema = Schema {
    service: "batch",
    sqlite_file: "batch/batch.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE docs (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, \
             created BIGINT NOT NULL, PRIMARY KEY (kind, id))",
        ),
        Migration::both(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, queue TEXT NOT NULL, status TEXT NOT NULL, \
             parent TEXT NOT NULL, name TEXT NOT NULL, created BIGINT NOT NULL, body TEXT NOT NULL)",
        ),
        Migration::both("CREATE INDEX jobs_status ON jobs (status, created)"),
        Migration::both("CREATE INDEX jobs_parent ON jobs (parent)"),
        Migration::both("CREATE INDEX jobs_queue ON jobs (queue, status, created)"),
    ],
};

pub struct Store {
    pub db: ServiceDb,
}

pub fn db(error: DbError) -> AwsError {
    AwsError::new(500, "ServerException", format!("nimbus: {error}"))
}

fn parse<T: DeserializeOwned>(row: &Row, column: usize) -> Result<T, DbError> {
    let body: String = row.get(column)?;
    serde_json::from_str(&body).map_err(DbError::other)
}

pub fn text<T: Serialize>(doc: &T) -> Result<String, DbError> {
    serde_json::to_string(doc).map_err(DbError::other)
}

/// The statuses a job is not finished in.
pub const LIVE: &str = "('SUBMITTED','PENDING','RUNNABLE','STARTING','RUNNING')";

impl Store {
    pub fn get<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>, AwsError> {
        let row = self
            .db
            .query_opt("SELECT body FROM docs WHERE kind = ?1 AND id = ?2", &params![kind, id])
            .map_err(db)?;
        row.as_ref().map(|r| parse(r, 0)).transpose().map_err(db)
    }

    /// Every document of `kind`, oldest first.
    pub fn all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, AwsError> {
        let rows = self
            .db
            .query("SELECT body FROM docs WHERE kind = ?1 ORDER BY created, id", &params![kind])
            .map_err(db)?;
        rows.iter().map(|r| parse(r, 0)).collect::<Result<_, _>>().map_err(db)
    }

    pub fn put<T: Serialize>(&self, kind: &str, id: &str, doc: &T, now: i64) -> Result<(), AwsError> {
        let body = text(doc).map_err(db)?;
        self.db
            .execute(
                "INSERT INTO docs (kind, id, body, created) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                &params![kind, id, body, now],
            )
            .map_err(db)?;
        Ok(())
    }

    pub fn delete(&self, kind: &str, id: &str) -> Result<bool, AwsError> {
        let n = self
            .db
            .execute("DELETE FROM docs WHERE kind = ?1 AND id = ?2", &params![kind, id])
            .map_err(db)?;
        Ok(n > 0)
    }

    pub fn job(&self, id: &str) -> Result<Option<Job>, AwsError> {
        let row = self.db.query_opt("SELECT body FROM jobs WHERE id = ?1", &params![id]).map_err(db)?;
        row.as_ref().map(|r| parse(r, 0)).transpose().map_err(db)
    }

    /// Jobs selected by a WHERE clause (with `?1`… parameters), in creation order.
    pub fn jobs_where(&self, clause: &str, args: &[nimbus_store::Value]) -> Result<Vec<Job>, AwsError> {
        let sql = format!("SELECT body FROM jobs WHERE {clause} ORDER BY created, id");
        let rows = self.db.query(&sql, args).map_err(db)?;
        rows.iter().map(|r| parse(r, 0)).collect::<Result<_, _>>().map_err(db)
    }

    /// The oldest `limit` RUNNABLE jobs of a queue.
    pub fn runnable(&self, queue: &str, limit: i64) -> Result<Vec<Job>, AwsError> {
        let rows = self
            .db
            .query(
                "SELECT body FROM jobs WHERE queue = ?1 AND status = 'RUNNABLE' ORDER BY created, id LIMIT ?2",
                &params![queue, limit],
            )
            .map_err(db)?;
        rows.iter().map(|r| parse(r, 0)).collect::<Result<_, _>>().map_err(db)
    }

    /// Writes jobs (new or changed) in one transaction.
    pub fn save_jobs(&self, jobs: &[&Job]) -> Result<(), AwsError> {
        let rows: Vec<(String, String)> = jobs
            .iter()
            .map(|j| Ok((j.job_id.clone(), text(j)?)))
            .collect::<Result<_, DbError>>()
            .map_err(db)?;
        self.db
            .write(|tx| {
                for (job, (id, body)) in jobs.iter().zip(&rows) {
                    tx.execute(
                        "INSERT INTO jobs (id, queue, status, parent, name, created, body) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET \
                         queue = excluded.queue, status = excluded.status, body = excluded.body",
                        &params![
                            id.as_str(),
                            job.job_queue.as_str(),
                            job.status.as_str(),
                            job.n.parent.clone().unwrap_or_default(),
                            job.job_name.as_str(),
                            job.created_at,
                            body.as_str()
                        ],
                    )?;
                }
                Ok::<(), DbError>(())
            })
            .map_err(db)
    }

    /// Counts of a parent's children by status.
    pub fn child_counts(&self, parent: &str) -> Result<Vec<(String, i64)>, AwsError> {
        let rows = self
            .db
            .query("SELECT status, COUNT(*) FROM jobs WHERE parent = ?1 GROUP BY status", &params![parent])
            .map_err(db)?;
        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect::<Result<_, DbError>>().map_err(db)
    }

    /// Each child of an array job by index (`<parent>:<index>`) with its status.
    pub fn child_statuses(&self, parent: &str) -> Result<Vec<(usize, String)>, AwsError> {
        let rows =
            self.db.query("SELECT id, status FROM jobs WHERE parent = ?1", &params![parent]).map_err(db)?;
        let mut children = Vec::with_capacity(rows.len());
        for row in &rows {
            let (id, status): (String, String) = (row.get(0).map_err(db)?, row.get(1).map_err(db)?);
            if let Some(index) = id.rsplit(':').next().and_then(|i| i.parse().ok()) {
                children.push((index, status));
            }
        }
        Ok(children)
    }

    /// Whether any job is unfinished or any instance is Batch's (work from the start).
    pub fn has_work(&self) -> Result<bool, AwsError> {
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status IN {LIVE}) + \
             (SELECT COUNT(*) FROM docs WHERE kind = 'host')"
        );
        let row = self.db.query_opt(&sql, &[]).map_err(db)?;
        let n: i64 = row.map_or(Ok(0), |r| r.get(0)).map_err(db)?;
        Ok(n > 0)
    }
}
