//! S3 metadata through the storage layer (one SQLite file, or schema `s3` of a PostgreSQL
//! database several nodes share): buckets, objects, multipart uploads and their parts. A row is
//! what makes a file in `objects/` visible.
//!
//! Nothing is cached: every request reads the database, so any node serves any bucket. On
//! PostgreSQL concurrent writers meet on row locks, always taken in the order bucket → upload →
//! part/object so that no two transactions wait for each other (no deadlock).

use std::borrow::Cow;
use std::collections::HashSet;

use nimbus_store::{params, Database, DbError, Migration, Row, Schema, ServiceDb, Tx};

use crate::checksum::Checksum;
use crate::error::{S3Error, S3Result};

/// `s3/s3.sqlite` is where S3 kept its own SQLite file before the storage layer.
pub const SCHEMA: Schema = Schema {
    service: "s3",
    sqlite_file: "s3/s3.sqlite",
    relaxed: false,
    migrations: &[
        Migration {
            // As before the storage layer (`IF NOT EXISTS`): files of that time migrate in place.
            sqlite: "
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,
    region TEXT NOT NULL, notification TEXT);
CREATE TABLE IF NOT EXISTS objects (bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified_ms INTEGER NOT NULL, headers TEXT NOT NULL, metadata TEXT NOT NULL,
    checksum TEXT, parts INTEGER NOT NULL, file TEXT NOT NULL, PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
    initiated_ms INTEGER NOT NULL, headers TEXT NOT NULL, metadata TEXT NOT NULL, algorithm TEXT);
CREATE TABLE IF NOT EXISTS parts (upload TEXT NOT NULL, number INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified_ms INTEGER NOT NULL, checksum TEXT, file TEXT NOT NULL,
    PRIMARY KEY (upload, number)) WITHOUT ROWID;
",
            // Names and keys compare as bytes (`COLLATE "C"`), as S3 lists them and SQLite compares
            // them, whatever the database's locale.
            postgres: r#"
CREATE TABLE buckets (name TEXT COLLATE "C" PRIMARY KEY, created_ms BIGINT NOT NULL,
    region TEXT NOT NULL, notification TEXT);
CREATE TABLE objects (bucket TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL, etag TEXT NOT NULL, modified_ms BIGINT NOT NULL, headers TEXT NOT NULL,
    metadata TEXT NOT NULL, checksum TEXT, parts BIGINT NOT NULL, file TEXT NOT NULL,
    PRIMARY KEY (bucket, key));
CREATE TABLE uploads (id TEXT PRIMARY KEY, bucket TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    initiated_ms BIGINT NOT NULL, headers TEXT NOT NULL, metadata TEXT NOT NULL, algorithm TEXT);
CREATE INDEX uploads_bucket ON uploads (bucket);
CREATE TABLE parts (upload TEXT NOT NULL, number BIGINT NOT NULL, size BIGINT NOT NULL,
    etag TEXT NOT NULL, modified_ms BIGINT NOT NULL, checksum TEXT, file TEXT NOT NULL,
    PRIMARY KEY (upload, number));
"#,
        },
        Migration {
            // Versions, tags, per-object settings (storage class, SSE, ACL, object lock …) and the
            // bucket sub-resources (policy, CORS, lifecycle …) kept as the documents clients sent.
            sqlite: "
ALTER TABLE buckets ADD COLUMN versioning TEXT;
ALTER TABLE objects ADD COLUMN version_id TEXT NOT NULL DEFAULT 'null';
ALTER TABLE objects ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE objects ADD COLUMN extra TEXT NOT NULL DEFAULT '[]';
CREATE TABLE versions (bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL,
    seq INTEGER NOT NULL, marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL, headers TEXT NOT NULL, metadata TEXT NOT NULL, checksum TEXT,
    parts INTEGER NOT NULL, file TEXT NOT NULL, tags TEXT NOT NULL, extra TEXT NOT NULL,
    PRIMARY KEY (bucket, key, version_id)) WITHOUT ROWID;
CREATE TABLE bucket_configs (bucket TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (bucket, name)) WITHOUT ROWID;
",
            postgres: r#"
ALTER TABLE buckets ADD COLUMN versioning TEXT;
ALTER TABLE objects ADD COLUMN version_id TEXT NOT NULL DEFAULT 'null';
ALTER TABLE objects ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE objects ADD COLUMN extra TEXT NOT NULL DEFAULT '[]';
CREATE TABLE versions (bucket TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    version_id TEXT NOT NULL, seq BIGINT NOT NULL, marker BIGINT NOT NULL, size BIGINT NOT NULL,
    etag TEXT NOT NULL, modified_ms BIGINT NOT NULL, headers TEXT NOT NULL, metadata TEXT NOT NULL,
    checksum TEXT, parts BIGINT NOT NULL, file TEXT NOT NULL, tags TEXT NOT NULL, extra TEXT NOT NULL,
    PRIMARY KEY (bucket, key, version_id));
CREATE TABLE bucket_configs (bucket TEXT COLLATE "C" NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (bucket, name));
"#,
        },
    ],
};

/// Header pairs kept with an object: system headers (`content-type` …) or user metadata.
pub type Pairs = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct BucketRow {
    pub name: String,
    pub created_ms: i64,
    pub region: String,
    /// `Enabled`, `Suspended`, or never configured.
    pub versioning: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Unquoted: `<md5 hex>` or `<md5 of md5s>-N`.
    pub etag: String,
    pub modified_ms: i64,
    pub headers: Pairs,
    pub metadata: Pairs,
    pub checksum: Option<Checksum>,
    /// Number of parts of a multipart upload; 0 for a single PUT.
    pub parts: u32,
    pub file: String,
    /// `null` unless written while the bucket's versioning was enabled.
    pub version_id: String,
    pub tags: Pairs,
    /// Per-object settings: `storage-class`, `sse`, `acl`, `lock-mode`, `lock-until`, `legal-hold` …
    pub extra: Pairs,
}

impl ObjectRow {
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub headers: Pairs,
    pub metadata: Pairs,
    pub algorithm: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PartRow {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub checksum: Option<Checksum>,
    pub file: String,
}

pub enum BucketDeletion {
    /// Deleted; files of its abandoned multipart uploads are now unreferenced.
    Deleted(Vec<String>),
    Missing,
    NotEmpty,
}

pub struct Db {
    db: ServiceDb,
}

impl Db {
    pub fn open(database: &Database) -> Result<Db, DbError> {
        Db::open_schema(database, &SCHEMA)
    }

    /// Under another schema name: the PostgreSQL tests each use one of their own.
    pub(crate) fn open_schema(database: &Database, schema: &Schema) -> Result<Db, DbError> {
        Ok(Db { db: database.open(schema)? })
    }

    pub fn create_bucket(&self, name: &str, region: &str, now_ms: i64) -> Result<bool, DbError> {
        let sql = "INSERT INTO buckets (name, created_ms, region) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING";
        Ok(self.db.execute(sql, &params![name, now_ms, region])? == 1)
    }

    pub fn bucket(&self, name: &str) -> Result<Option<BucketRow>, DbError> {
        let sql = "SELECT name, created_ms, region, versioning FROM buckets WHERE name = ?1";
        self.db.query_opt(sql, &params![name])?.map(|row| bucket_row(&row)).transpose()
    }

    /// The bucket, or `NoSuchBucket`.
    pub fn require_bucket(&self, name: &str) -> S3Result<BucketRow> {
        self.bucket(name)?.ok_or_else(|| S3Error::no_such_bucket(name))
    }

    pub fn buckets(&self) -> Result<Vec<BucketRow>, DbError> {
        let rows =
            self.db.query("SELECT name, created_ms, region, versioning FROM buckets ORDER BY name", &[])?;
        rows.iter().map(bucket_row).collect()
    }

    pub fn delete_bucket(&self, name: &str) -> Result<BucketDeletion, DbError> {
        self.db.write(|tx| {
            // Waits for puts into the bucket to commit, and makes later ones wait for us.
            let sql = locking(tx, "SELECT 1 FROM buckets WHERE name = ?1", "FOR UPDATE");
            if tx.query_opt(&sql, &params![name])?.is_none() {
                return Ok(BucketDeletion::Missing);
            }
            let any = "SELECT 1 FROM objects WHERE bucket = ?1 UNION ALL SELECT 1 FROM versions WHERE bucket = ?1 LIMIT 1";
            if tx.query_opt(any, &params![name])?.is_some() {
                return Ok(BucketDeletion::NotEmpty);
            }
            tx.execute("DELETE FROM bucket_configs WHERE bucket = ?1", &params![name])?;
            let mut files = Vec::new();
            for upload in tx.query("DELETE FROM uploads WHERE bucket = ?1 RETURNING id", &params![name])? {
                files.extend(delete_parts(tx, &upload.get::<String>(0)?)?);
            }
            tx.execute("DELETE FROM buckets WHERE name = ?1", &params![name])?;
            Ok(BucketDeletion::Deleted(files))
        })
    }

    /// The bucket's notification configuration (JSON), `NoSuchBucket` if there is no bucket.
    pub fn notification(&self, bucket: &str) -> S3Result<Option<String>> {
        let sql = "SELECT notification FROM buckets WHERE name = ?1";
        match self.db.query_opt(sql, &params![bucket])? {
            Some(row) => Ok(row.get(0)?),
            None => Err(S3Error::no_such_bucket(bucket)),
        }
    }

    /// The bucket's notification configuration (JSON) and region, if it has a configuration.
    pub fn notification_and_region(&self, bucket: &str) -> Result<Option<(String, String)>, DbError> {
        let sql = "SELECT notification, region FROM buckets WHERE name = ?1 AND notification IS NOT NULL";
        self.db.query_opt(sql, &params![bucket])?.map(|row| Ok((row.get(0)?, row.get(1)?))).transpose()
    }

    pub fn set_notification(&self, bucket: &str, config: &str) -> S3Result<()> {
        let sql = "UPDATE buckets SET notification = ?2 WHERE name = ?1";
        match self.db.execute(sql, &params![bucket, config])? {
            0 => Err(S3Error::no_such_bucket(bucket)),
            _ => Ok(()),
        }
    }

    /// Makes the object visible (the current version); returns the files no longer referenced.
    pub fn put_object(&self, object: &ObjectRow) -> S3Result<Vec<String>> {
        self.db.write(|tx| {
            share_bucket(tx, &object.bucket)?;
            insert_object(tx, object)
        })
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRow>, DbError> {
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2");
        self.db.query_opt(&sql, &params![bucket, key])?.map(|row| object_row(&row)).transpose()
    }

    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRow>, DbError> {
        let sql = format!("DELETE FROM objects WHERE bucket = ?1 AND key = ?2 RETURNING {OBJECT_COLUMNS}");
        let deleted = self.db.write(|tx| tx.query_opt(&sql, &params![bucket, key]))?;
        deleted.map(|row| object_row(&row)).transpose()
    }

    /// Up to `limit` objects with keys after `after` and at or after `prefix`, in key order.
    pub fn objects_after(
        &self,
        bucket: &str,
        after: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<ObjectRow>, DbError> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key > ?2 AND key >= ?3 \
             ORDER BY key LIMIT ?4"
        );
        let rows = self.db.query(&sql, &params![bucket, after, prefix, limit])?;
        rows.iter().map(object_row).collect()
    }

    pub fn create_upload(&self, upload: &UploadRow) -> S3Result<()> {
        let sql = "INSERT INTO uploads (id, bucket, key, initiated_ms, headers, metadata, algorithm) \
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
        let values = params![
            upload.id,
            upload.bucket,
            upload.key,
            upload.initiated_ms,
            pairs_json(&upload.headers),
            pairs_json(&upload.metadata),
            upload.algorithm
        ];
        self.db.write(|tx| {
            share_bucket(tx, &upload.bucket)?;
            tx.execute(sql, &values)?;
            Ok(())
        })
    }

    /// The upload of `bucket`/`key` with this id, or `NoSuchUpload`.
    pub fn upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<UploadRow> {
        let sql =
            "SELECT id, bucket, key, initiated_ms, headers, metadata, algorithm FROM uploads WHERE id = ?1";
        let found = self.db.query_opt(sql, &params![id])?.map(|row| upload_row(&row)).transpose()?;
        found.filter(|u| u.bucket == bucket && u.key == key).ok_or_else(|| S3Error::no_such_upload(id))
    }

    pub fn uploads(&self, bucket: &str) -> Result<Vec<UploadRow>, DbError> {
        let sql = "SELECT id, bucket, key, initiated_ms, headers, metadata, algorithm FROM uploads \
                   WHERE bucket = ?1 ORDER BY key, initiated_ms";
        self.db.query(sql, &params![bucket])?.iter().map(upload_row).collect()
    }

    /// Records a part; returns the file of the part it replaced.
    pub fn put_part(&self, upload: &str, part: &PartRow) -> S3Result<Option<String>> {
        self.db.write(|tx| {
            // One writer per upload at a time: the part replaced is the one whose file we remove.
            let sql = locking(tx, "SELECT 1 FROM uploads WHERE id = ?1", "FOR UPDATE");
            if tx.query_opt(&sql, &params![upload])?.is_none() {
                return Err(S3Error::no_such_upload(upload));
            }
            let sql = "SELECT file FROM parts WHERE upload = ?1 AND number = ?2";
            let old: Option<String> = tx.query_value(sql, &params![upload, part.number])?;
            let sql = "INSERT INTO parts (upload, number, size, etag, modified_ms, checksum, file) \
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (upload, number) DO UPDATE SET \
                       size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms, \
                       checksum = excluded.checksum, file = excluded.file";
            let checksum = part.checksum.as_ref().map(Checksum::encode);
            tx.execute(
                sql,
                &params![upload, part.number, part.size, part.etag, part.modified_ms, checksum, part.file],
            )?;
            Ok(old)
        })
    }

    pub fn parts(&self, upload: &str) -> Result<Vec<PartRow>, DbError> {
        let sql = "SELECT number, size, etag, modified_ms, checksum, file FROM parts WHERE upload = ?1 ORDER BY number";
        self.db.query(sql, &params![upload])?.iter().map(part_row).collect()
    }

    /// Completes an upload atomically: the object appears and the upload disappears together.
    /// Returns the files now unreferenced (every part, and the replaced object's file).
    pub fn complete_upload(&self, upload: &str, object: &ObjectRow) -> S3Result<Vec<String>> {
        self.db.write(|tx| {
            share_bucket(tx, &object.bucket)?;
            if tx.execute("DELETE FROM uploads WHERE id = ?1", &params![upload])? == 0 {
                return Err(S3Error::no_such_upload(upload));
            }
            let mut files = delete_parts(tx, upload)?;
            files.extend(insert_object(tx, object)?);
            Ok(files)
        })
    }

    /// Aborts an upload; returns its parts' files, `None` if there was no such upload.
    pub fn abort_upload(&self, upload: &str) -> Result<Option<Vec<String>>, DbError> {
        self.db.write(|tx| {
            let deleted = tx.execute("DELETE FROM uploads WHERE id = ?1", &params![upload])?;
            let files = delete_parts(tx, upload)?;
            Ok((deleted > 0).then_some(files))
        })
    }

    /// Every file a row points at (for the start-up sweep).
    pub fn referenced_files(&self) -> Result<HashSet<String>, DbError> {
        let sql = "SELECT file FROM objects UNION ALL SELECT file FROM parts \
                   UNION ALL SELECT file FROM versions WHERE marker = 0";
        let rows = self.db.query(sql, &[])?;
        rows.iter().map(|row| row.get(0)).collect()
    }
}

pub(crate) const OBJECT_COLUMNS: &str =
    "bucket, key, size, etag, modified_ms, headers, metadata, checksum, parts, file, version_id, tags, extra";

/// `sql` with PostgreSQL's row lock `lock` appended. SQLite has no row locks and needs none: a
/// write transaction holds the whole file.
pub(crate) fn locking(tx: &Tx<'_>, sql: &'static str, lock: &str) -> Cow<'static, str> {
    if tx.is_postgres() {
        Cow::Owned(format!("{sql} {lock}"))
    } else {
        Cow::Borrowed(sql)
    }
}

/// `NoSuchBucket` unless the bucket exists; it then cannot be deleted before we commit.
pub(crate) fn share_bucket(tx: &mut Tx<'_>, bucket: &str) -> S3Result<()> {
    let sql = locking(tx, "SELECT 1 FROM buckets WHERE name = ?1", "FOR SHARE");
    match tx.query_opt(&sql, &params![bucket])? {
        Some(_) => Ok(()),
        None => Err(S3Error::no_such_bucket(bucket)),
    }
}

/// Deletes an upload's parts; returns their files.
fn delete_parts(tx: &mut Tx<'_>, upload: &str) -> Result<Vec<String>, DbError> {
    let rows = tx.query("DELETE FROM parts WHERE upload = ?1 RETURNING file", &params![upload])?;
    rows.iter().map(|row| row.get(0)).collect()
}

/// Makes `object` the current version of its key (its bucket already checked): the version it
/// replaces is kept when it has a version id (versioning enabled or suspended), otherwise
/// overwritten. Returns the files no longer referenced.
fn insert_object(tx: &mut Tx<'_>, object: &ObjectRow) -> S3Result<Vec<String>> {
    let values = params![
        object.bucket,
        object.key,
        object.size,
        object.etag,
        object.modified_ms,
        pairs_json(&object.headers),
        pairs_json(&object.metadata),
        object.checksum.as_ref().map(Checksum::encode),
        object.parts,
        object.file,
        object.version_id,
        pairs_json(&object.tags),
        pairs_json(&object.extra)
    ];
    let mut files = Vec::new();
    if object.version_id == "null" {
        // A null version elsewhere in the stack is replaced by this one.
        let sql =
            "DELETE FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = 'null' RETURNING file";
        for row in tx.query(sql, &values[..2])? {
            files.push(row.get::<String>(0)?);
        }
        files.retain(|f| !f.is_empty());
    }
    let select =
        locking(tx, "SELECT file, version_id FROM objects WHERE bucket = ?1 AND key = ?2", "FOR UPDATE");
    let update = "UPDATE objects SET size = ?3, etag = ?4, modified_ms = ?5, headers = ?6, metadata = ?7, \
                  checksum = ?8, parts = ?9, file = ?10, version_id = ?11, tags = ?12, extra = ?13 \
                  WHERE bucket = ?1 AND key = ?2";
    let insert = format!(
        "INSERT INTO objects ({OBJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (bucket, key) DO NOTHING"
    );
    // Not an upsert: the replaced file must be known to be removed. Repeats only on PostgreSQL,
    // when another node inserted the same key between our two statements.
    loop {
        if let Some(old) = tx.query_opt(&select, &values[..2])? {
            let (file, version): (String, String) = (old.get(0)?, old.get(1)?);
            if version == "null" && object.version_id == "null" {
                files.push(file);
            } else {
                versions::demote_current(tx, &object.bucket, &object.key)?;
            }
            tx.execute(update, &values)?;
            return Ok(files);
        }
        if tx.execute(&insert, &values)? == 1 {
            return Ok(files);
        }
    }
}

pub(crate) fn pairs_json(pairs: &Pairs) -> String {
    serde_json::Value::Array(pairs.iter().map(|(k, v)| serde_json::json!([k, v])).collect()).to_string()
}

pub(crate) fn pairs_from(text: String) -> Pairs {
    let parsed: Vec<(String, String)> = serde_json::from_str::<Vec<[String; 2]>>(&text)
        .map(|pairs| pairs.into_iter().map(|[k, v]| (k, v)).collect())
        .unwrap_or_default();
    parsed
}

fn bucket_row(row: &Row) -> Result<BucketRow, DbError> {
    Ok(BucketRow { name: row.get(0)?, created_ms: row.get(1)?, region: row.get(2)?, versioning: row.get(3)? })
}

pub(crate) fn object_row(row: &Row) -> Result<ObjectRow, DbError> {
    Ok(ObjectRow {
        bucket: row.get(0)?,
        key: row.get(1)?,
        size: row.get(2)?,
        etag: row.get(3)?,
        modified_ms: row.get(4)?,
        headers: pairs_from(row.get(5)?),
        metadata: pairs_from(row.get(6)?),
        checksum: row.get::<Option<String>>(7)?.as_deref().and_then(Checksum::decode),
        parts: row.get(8)?,
        file: row.get(9)?,
        version_id: row.get(10)?,
        tags: pairs_from(row.get(11)?),
        extra: pairs_from(row.get(12)?),
    })
}

fn upload_row(row: &Row) -> Result<UploadRow, DbError> {
    Ok(UploadRow {
        id: row.get(0)?,
        bucket: row.get(1)?,
        key: row.get(2)?,
        initiated_ms: row.get(3)?,
        headers: pairs_from(row.get(4)?),
        metadata: pairs_from(row.get(5)?),
        algorithm: row.get(6)?,
    })
}

fn part_row(row: &Row) -> Result<PartRow, DbError> {
    Ok(PartRow {
        number: row.get(0)?,
        size: row.get(1)?,
        etag: row.get(2)?,
        modified_ms: row.get(3)?,
        checksum: row.get::<Option<String>>(4)?.as_deref().and_then(Checksum::decode),
        file: row.get(5)?,
    })
}

mod versions;

pub use versions::{Deletion, Listed};

#[cfg(test)]
pub(crate) mod tests;
