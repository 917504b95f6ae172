//! IAM's and STS's state: one table of entities (roles, users, managed policies, instance
//! profiles, access keys, STS sessions, attachments, inline policies), each a JSON document
//! keyed by its kind and name. Nothing is cached: any node answers any call.

use nimbus_store::{params, Database, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;

pub const SCHEMA: Schema = Schema {
    service: "iam",
    sqlite_file: "iam/iam.sqlite",
    relaxed: false,
    migrations: &[Migration {
        sqlite: "CREATE TABLE entities (kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
            PRIMARY KEY (kind, name)) WITHOUT ROWID;",
        postgres: r#"CREATE TABLE entities (kind TEXT NOT NULL, name TEXT COLLATE "C" NOT NULL,
            doc TEXT NOT NULL, PRIMARY KEY (kind, name));"#,
    }],
};

pub struct Store {
    db: ServiceDb,
}

impl Store {
    pub fn open(database: &Database) -> Result<Store, DbError> {
        Ok(Store { db: database.open(&SCHEMA)? })
    }

    /// Inserts unless present; false when the name is taken.
    pub fn create(&self, kind: &str, name: &str, doc: &Value) -> Result<bool, DbError> {
        let sql =
            "INSERT INTO entities (kind, name, doc) VALUES (?1, ?2, ?3) ON CONFLICT (kind, name) DO NOTHING";
        Ok(self.db.execute(sql, &params![kind, name, doc.to_string()])? == 1)
    }

    pub fn put(&self, kind: &str, name: &str, doc: &Value) -> Result<(), DbError> {
        let sql = "INSERT INTO entities (kind, name, doc) VALUES (?1, ?2, ?3) \
                   ON CONFLICT (kind, name) DO UPDATE SET doc = excluded.doc";
        self.db.execute(sql, &params![kind, name, doc.to_string()])?;
        Ok(())
    }

    pub fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, DbError> {
        let sql = "SELECT doc FROM entities WHERE kind = ?1 AND name = ?2";
        let row = self.db.query_opt(sql, &params![kind, name])?;
        Ok(row.map(|r| r.get::<String>(0)).transpose()?.and_then(|d| serde_json::from_str(&d).ok()))
    }

    pub fn delete(&self, kind: &str, name: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM entities WHERE kind = ?1 AND name = ?2";
        Ok(self.db.execute(sql, &params![kind, name])? == 1)
    }

    /// Every entity of a kind whose name starts with `prefix`, in name order.
    pub fn list(&self, kind: &str, prefix: &str) -> Result<Vec<(String, Value)>, DbError> {
        let sql = "SELECT name, doc FROM entities WHERE kind = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name";
        let rows = self.db.query(sql, &params![kind, prefix])?;
        rows.iter()
            .map(|r| {
                Ok((r.get::<String>(0)?, serde_json::from_str(&r.get::<String>(1)?).unwrap_or(Value::Null)))
            })
            .collect()
    }
}
