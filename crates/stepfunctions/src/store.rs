//! Step Functions' tables: state machines (with versions and aliases), executions with their
//! checkpoints, history events, and task tokens.

use nimbus_store::{params, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;

pub const SCHEMA: Schema = Schema {
    service: "stepfunctions",
    sqlite_file: "stepfunctions/stepfunctions.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE machines (arn TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL);
         CREATE TABLE versions (arn TEXT PRIMARY KEY, machine TEXT NOT NULL, doc TEXT NOT NULL);
         CREATE TABLE aliases (arn TEXT PRIMARY KEY, machine TEXT NOT NULL, doc TEXT NOT NULL);
         CREATE TABLE executions (arn TEXT PRIMARY KEY, machine TEXT NOT NULL, status TEXT NOT NULL,
             start_ms BIGINT NOT NULL, doc TEXT NOT NULL, checkpoint TEXT, node TEXT, stop_ms BIGINT);
         CREATE INDEX executions_by_stop ON executions (stop_ms);
         CREATE INDEX executions_by_machine ON executions (machine, start_ms);
         CREATE INDEX executions_by_status ON executions (status);
         CREATE TABLE events (execution TEXT NOT NULL, id BIGINT NOT NULL, doc TEXT NOT NULL,
             PRIMARY KEY (execution, id));
         CREATE TABLE tokens (token TEXT PRIMARY KEY, execution TEXT NOT NULL, outcome TEXT,
             heartbeat_ms BIGINT);",
        ),
        Migration::both(
            "CREATE TABLE activities (arn TEXT PRIMARY KEY, doc TEXT NOT NULL);
         CREATE TABLE activity_tasks (token TEXT PRIMARY KEY, activity TEXT NOT NULL,
             execution TEXT NOT NULL, input TEXT NOT NULL, created_ms BIGINT NOT NULL, worker TEXT);
         CREATE INDEX activity_tasks_waiting ON activity_tasks (activity, created_ms);",
        ),
        Migration::both(
            "CREATE TABLE map_runs (arn TEXT PRIMARY KEY, execution TEXT NOT NULL, status TEXT NOT NULL,
             start_ms BIGINT NOT NULL, doc TEXT NOT NULL);
         CREATE INDEX map_runs_by_execution ON map_runs (execution, start_ms);",
        ),
    ],
};

pub fn parse(text: &str) -> Result<Value, DbError> {
    serde_json::from_str(text).map_err(DbError::other)
}

/// The document in column 0 of each row.
pub fn docs(db: &ServiceDb, sql: &str, args: &[nimbus_store::db::Value]) -> Result<Vec<Value>, DbError> {
    db.query(sql, args)?.iter().map(|row| parse(&row.get::<String>(0)?)).collect()
}

pub fn doc(db: &ServiceDb, sql: &str, args: &[nimbus_store::db::Value]) -> Result<Option<Value>, DbError> {
    db.query_opt(sql, args)?.map(|row| parse(&row.get::<String>(0)?)).transpose()
}

pub fn execution(db: &ServiceDb, arn: &str) -> Result<Option<Value>, DbError> {
    doc(db, "SELECT doc FROM executions WHERE arn = ?1", &params![arn])
}

pub fn machine(db: &ServiceDb, arn: &str) -> Result<Option<Value>, DbError> {
    doc(db, "SELECT doc FROM machines WHERE arn = ?1", &params![arn])
}

/// Rewrites an execution's document (status and all); `only_running` leaves a finished one as
/// it is and says so with `false`.
pub fn save_execution(db: &ServiceDb, doc: &Value, only_running: bool) -> Result<bool, DbError> {
    let arn = doc["executionArn"].as_str().unwrap_or_default();
    let status = doc["status"].as_str().unwrap_or("RUNNING");
    let sql = if only_running {
        "UPDATE executions SET doc = ?2, status = ?3, stop_ms = ?4 WHERE arn = ?1 AND status = 'RUNNING'"
    } else {
        "UPDATE executions SET doc = ?2, status = ?3, stop_ms = ?4 WHERE arn = ?1"
    };
    Ok(db.execute(sql, &params![arn, doc.to_string(), status, doc["stopDate"].as_i64()])? > 0)
}
