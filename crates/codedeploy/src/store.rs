//! CodeDeploy's records: applications, deployment groups and configurations (as stacks create
//! them), deployments and their lifecycle hook executions.

use nimbus_store::{params, Database, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;

pub const SCHEMA: Schema = Schema {
    service: "codedeploy",
    sqlite_file: "codedeploy/codedeploy.db",
    relaxed: false,
    migrations: &[Migration::both(
        "CREATE TABLE applications (name TEXT PRIMARY KEY, platform TEXT NOT NULL);
         CREATE TABLE groups (application TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, \
           PRIMARY KEY (application, name));
         CREATE TABLE configs (name TEXT PRIMARY KEY, routing TEXT NOT NULL);
         CREATE TABLE deployments (id TEXT PRIMARY KEY, application TEXT NOT NULL, grp TEXT NOT NULL, \
           created_ms BIGINT NOT NULL, status TEXT NOT NULL, stop INTEGER NOT NULL, info TEXT NOT NULL);
         CREATE TABLE hooks (id TEXT PRIMARY KEY, deployment TEXT NOT NULL, status TEXT NOT NULL);",
    )],
};

pub struct Store {
    db: ServiceDb,
}

fn json(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl Store {
    pub fn open(database: &Database) -> Result<Store, DbError> {
        Ok(Store { db: database.open(&SCHEMA)? })
    }

    pub fn put_application(&self, name: &str, platform: &str) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO applications (name, platform) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET platform = excluded.platform",
            &params![name, platform],
        )?;
        Ok(())
    }

    pub fn has_application(&self, name: &str) -> Result<bool, DbError> {
        Ok(self.db.query_opt("SELECT 1 FROM applications WHERE name = ?1", &params![name])?.is_some())
    }

    pub fn delete_application(&self, name: &str) -> Result<(), DbError> {
        self.db.write(|tx| {
            tx.execute("DELETE FROM groups WHERE application = ?1", &params![name])?;
            tx.execute("DELETE FROM applications WHERE name = ?1", &params![name])?;
            Ok(())
        })
    }

    /// A deployment group's definition (the resource's properties).
    pub fn put_group(&self, application: &str, name: &str, config: &Value) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO groups (application, name, config) VALUES (?1, ?2, ?3) \
             ON CONFLICT (application, name) DO UPDATE SET config = excluded.config",
            &params![application, name, config.to_string()],
        )?;
        Ok(())
    }

    pub fn group(&self, application: &str, name: &str) -> Result<Option<Value>, DbError> {
        let row = self.db.query_opt(
            "SELECT config FROM groups WHERE application = ?1 AND name = ?2",
            &params![application, name],
        )?;
        row.map(|r| r.get::<String>(0).map(json)).transpose()
    }

    pub fn delete_group(&self, application: &str, name: &str) -> Result<(), DbError> {
        self.db.execute(
            "DELETE FROM groups WHERE application = ?1 AND name = ?2",
            &params![application, name],
        )?;
        Ok(())
    }

    pub fn put_config(&self, name: &str, routing: &Value) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO configs (name, routing) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET routing = excluded.routing",
            &params![name, routing.to_string()],
        )?;
        Ok(())
    }

    pub fn config(&self, name: &str) -> Result<Option<Value>, DbError> {
        let row = self.db.query_opt("SELECT routing FROM configs WHERE name = ?1", &params![name])?;
        row.map(|r| r.get::<String>(0).map(json)).transpose()
    }

    pub fn delete_config(&self, name: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM configs WHERE name = ?1", &params![name])?;
        Ok(())
    }

    pub fn insert_deployment(&self, id: &str, info: &Value, created_ms: i64) -> Result<(), DbError> {
        let field = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
        self.db.execute(
            "INSERT INTO deployments (id, application, grp, created_ms, status, stop, info) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
            &params![
                id,
                field("applicationName"),
                field("deploymentGroupName"),
                created_ms,
                field("status"),
                info.to_string()
            ],
        )?;
        Ok(())
    }

    pub fn save_deployment(&self, id: &str, info: &Value) -> Result<(), DbError> {
        let status = info["status"].as_str().unwrap_or_default();
        self.db.execute(
            "UPDATE deployments SET status = ?2, info = ?3 WHERE id = ?1",
            &params![id, status, info.to_string()],
        )?;
        Ok(())
    }

    pub fn deployment(&self, id: &str) -> Result<Option<(Value, bool)>, DbError> {
        let row = self.db.query_opt("SELECT info, stop FROM deployments WHERE id = ?1", &params![id])?;
        row.map(|r| Ok((json(r.get::<String>(0)?), r.get::<i64>(1)? != 0))).transpose()
    }

    /// Deployment ids, newest first, filtered by application, group and statuses.
    pub fn deployments(
        &self,
        application: Option<&str>,
        group: Option<&str>,
    ) -> Result<Vec<(String, String)>, DbError> {
        let rows = self.db.query(
            "SELECT id, status FROM deployments WHERE (CAST(?1 AS TEXT) IS NULL OR application = ?1) \
             AND (CAST(?2 AS TEXT) IS NULL OR grp = ?2) ORDER BY created_ms DESC, id",
            &params![application, group],
        )?;
        rows.iter().map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?))).collect()
    }

    /// Deployments still `InProgress`: after a restart of a lone node, ones nothing runs.
    pub fn unfinished(&self) -> Result<Vec<(String, Value)>, DbError> {
        let rows = self.db.query("SELECT id, info FROM deployments WHERE status = 'InProgress'", &[])?;
        rows.iter().map(|r| Ok((r.get::<String>(0)?, json(r.get::<String>(1)?)))).collect()
    }

    pub fn request_stop(&self, id: &str) -> Result<(), DbError> {
        self.db.execute("UPDATE deployments SET stop = 1 WHERE id = ?1", &params![id])?;
        Ok(())
    }

    pub fn insert_hook(&self, id: &str, deployment: &str) -> Result<(), DbError> {
        self.db.execute(
            "INSERT INTO hooks (id, deployment, status) VALUES (?1, ?2, 'Pending')",
            &params![id, deployment],
        )?;
        Ok(())
    }

    /// The hook execution's deployment and status.
    pub fn hook(&self, id: &str) -> Result<Option<(String, String)>, DbError> {
        let row = self.db.query_opt("SELECT deployment, status FROM hooks WHERE id = ?1", &params![id])?;
        row.map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?))).transpose()
    }

    /// Sets a pending hook's status; false when it was no longer pending.
    pub fn complete_hook(&self, id: &str, status: &str) -> Result<bool, DbError> {
        let changed = self.db.execute(
            "UPDATE hooks SET status = ?2 WHERE id = ?1 AND status IN ('Pending', 'InProgress')",
            &params![id, status],
        )?;
        Ok(changed > 0)
    }
}
