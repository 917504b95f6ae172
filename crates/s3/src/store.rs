//! S3 metadata in its own SQLite file (WAL, `synchronous = FULL`): buckets, objects, multipart
//! uploads and their parts. A row is what makes a file in `objects/` visible.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::checksum::Checksum;
use crate::error::{S3Error, S3Result};

const SCHEMA: &str = "
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
";

/// Header pairs kept with an object: system headers (`content-type` …) or user metadata.
pub type Pairs = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct BucketRow {
    pub name: String,
    pub created_ms: i64,
    pub region: String,
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
    connection: Mutex<Connection>,
}

impl Db {
    pub fn open(path: &Path) -> rusqlite::Result<Db> {
        let connection = Connection::open(path)?;
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        connection.execute_batch(SCHEMA)?;
        Ok(Db { connection: Mutex::new(connection) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn create_bucket(&self, name: &str, region: &str, now_ms: i64) -> rusqlite::Result<bool> {
        let sql = "INSERT OR IGNORE INTO buckets (name, created_ms, region) VALUES (?1, ?2, ?3)";
        Ok(self.lock().execute(sql, params![name, now_ms, region])? == 1)
    }

    pub fn bucket(&self, name: &str) -> rusqlite::Result<Option<BucketRow>> {
        let sql = "SELECT name, created_ms, region FROM buckets WHERE name = ?1";
        self.lock().query_row(sql, [name], bucket_row).optional()
    }

    /// The bucket, or `NoSuchBucket`.
    pub fn require_bucket(&self, name: &str) -> S3Result<BucketRow> {
        self.bucket(name)?.ok_or_else(|| S3Error::no_such_bucket(name))
    }

    pub fn buckets(&self) -> rusqlite::Result<Vec<BucketRow>> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT name, created_ms, region FROM buckets ORDER BY name")?;
        let rows = statement.query_map([], bucket_row)?;
        rows.collect()
    }

    pub fn delete_bucket(&self, name: &str) -> rusqlite::Result<BucketDeletion> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        if tx.query_row("SELECT 1 FROM buckets WHERE name = ?1", [name], |_| Ok(())).optional()?.is_none() {
            return Ok(BucketDeletion::Missing);
        }
        if tx
            .query_row("SELECT 1 FROM objects WHERE bucket = ?1 LIMIT 1", [name], |_| Ok(()))
            .optional()?
            .is_some()
        {
            return Ok(BucketDeletion::NotEmpty);
        }
        let files = {
            let sql = "SELECT p.file FROM parts p JOIN uploads u ON u.id = p.upload WHERE u.bucket = ?1";
            let mut statement = tx.prepare(sql)?;
            let files =
                statement.query_map([name], |row| row.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            files
        };
        tx.execute("DELETE FROM parts WHERE upload IN (SELECT id FROM uploads WHERE bucket = ?1)", [name])?;
        tx.execute("DELETE FROM uploads WHERE bucket = ?1", [name])?;
        tx.execute("DELETE FROM buckets WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(BucketDeletion::Deleted(files))
    }

    /// The bucket's notification configuration (JSON), `NoSuchBucket` if there is no bucket.
    pub fn notification(&self, bucket: &str) -> S3Result<Option<String>> {
        let sql = "SELECT notification FROM buckets WHERE name = ?1";
        let found: Option<Option<String>> =
            self.lock().query_row(sql, [bucket], |row| row.get(0)).optional()?;
        found.ok_or_else(|| S3Error::no_such_bucket(bucket))
    }

    pub fn set_notification(&self, bucket: &str, config: &str) -> S3Result<()> {
        let sql = "UPDATE buckets SET notification = ?2 WHERE name = ?1";
        match self.lock().execute(sql, params![bucket, config])? {
            0 => Err(S3Error::no_such_bucket(bucket)),
            _ => Ok(()),
        }
    }

    /// Makes the object visible; returns the file of the object it replaced.
    pub fn put_object(&self, object: &ObjectRow) -> S3Result<Option<String>> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let old = insert_object(&tx, object)?;
        tx.commit()?;
        Ok(old)
    }

    pub fn object(&self, bucket: &str, key: &str) -> rusqlite::Result<Option<ObjectRow>> {
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2");
        self.lock().query_row(&sql, [bucket, key], object_row).optional()
    }

    pub fn delete_object(&self, bucket: &str, key: &str) -> rusqlite::Result<Option<ObjectRow>> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2");
        let found = tx.query_row(&sql, [bucket, key], object_row).optional()?;
        if found.is_some() {
            tx.execute("DELETE FROM objects WHERE bucket = ?1 AND key = ?2", [bucket, key])?;
        }
        tx.commit()?;
        Ok(found)
    }

    /// Up to `limit` objects with keys after `after` and at or after `prefix`, in key order.
    pub fn objects_after(
        &self,
        bucket: &str,
        after: &str,
        prefix: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<ObjectRow>> {
        let connection = self.lock();
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key > ?2 AND key >= ?3 \
             ORDER BY key LIMIT ?4"
        );
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params![bucket, after, prefix, limit as i64], object_row)?;
        rows.collect()
    }

    pub fn create_upload(&self, upload: &UploadRow) -> rusqlite::Result<()> {
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
        self.lock().execute(sql, values).map(|_| ())
    }

    /// The upload of `bucket`/`key` with this id, or `NoSuchUpload`.
    pub fn upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<UploadRow> {
        let sql =
            "SELECT id, bucket, key, initiated_ms, headers, metadata, algorithm FROM uploads WHERE id = ?1";
        let found = self.lock().query_row(sql, [id], upload_row).optional()?;
        found.filter(|u| u.bucket == bucket && u.key == key).ok_or_else(|| S3Error::no_such_upload(id))
    }

    pub fn uploads(&self, bucket: &str) -> rusqlite::Result<Vec<UploadRow>> {
        let connection = self.lock();
        let sql = "SELECT id, bucket, key, initiated_ms, headers, metadata, algorithm FROM uploads \
                   WHERE bucket = ?1 ORDER BY key, initiated_ms";
        let mut statement = connection.prepare(sql)?;
        let rows = statement.query_map([bucket], upload_row)?;
        rows.collect()
    }

    /// Records a part; returns the file of the part it replaced.
    pub fn put_part(&self, upload: &str, part: &PartRow) -> S3Result<Option<String>> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        if tx.query_row("SELECT 1 FROM uploads WHERE id = ?1", [upload], |_| Ok(())).optional()?.is_none() {
            return Err(S3Error::no_such_upload(upload));
        }
        let sql = "SELECT file FROM parts WHERE upload = ?1 AND number = ?2";
        let old: Option<String> = tx.query_row(sql, params![upload, part.number], |r| r.get(0)).optional()?;
        let sql = "INSERT OR REPLACE INTO parts (upload, number, size, etag, modified_ms, checksum, file) \
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
        let checksum = part.checksum.as_ref().map(Checksum::encode);
        tx.execute(
            sql,
            params![upload, part.number, part.size as i64, part.etag, part.modified_ms, checksum, part.file],
        )?;
        tx.commit()?;
        Ok(old)
    }

    pub fn parts(&self, upload: &str) -> rusqlite::Result<Vec<PartRow>> {
        let connection = self.lock();
        let sql = "SELECT number, size, etag, modified_ms, checksum, file FROM parts WHERE upload = ?1 ORDER BY number";
        let mut statement = connection.prepare(sql)?;
        let rows = statement.query_map([upload], part_row)?;
        rows.collect()
    }

    /// Completes an upload atomically: the object appears and the upload disappears together.
    /// Returns the files now unreferenced (every part, and the replaced object's file).
    pub fn complete_upload(&self, upload: &str, object: &ObjectRow) -> S3Result<Vec<String>> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let mut files: Vec<String> = {
            let mut statement = tx.prepare("SELECT file FROM parts WHERE upload = ?1")?;
            let files = statement.query_map([upload], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
            files
        };
        if tx.execute("DELETE FROM uploads WHERE id = ?1", [upload])? == 0 {
            return Err(S3Error::no_such_upload(upload));
        }
        tx.execute("DELETE FROM parts WHERE upload = ?1", [upload])?;
        files.extend(insert_object(&tx, object)?);
        tx.commit()?;
        Ok(files)
    }

    /// Aborts an upload; returns its parts' files, `None` if there was no such upload.
    pub fn abort_upload(&self, upload: &str) -> rusqlite::Result<Option<Vec<String>>> {
        let mut connection = self.lock();
        let tx = connection.transaction()?;
        let files: Vec<String> = {
            let mut statement = tx.prepare("SELECT file FROM parts WHERE upload = ?1")?;
            let files = statement.query_map([upload], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
            files
        };
        let deleted = tx.execute("DELETE FROM uploads WHERE id = ?1", [upload])?;
        tx.execute("DELETE FROM parts WHERE upload = ?1", [upload])?;
        tx.commit()?;
        Ok((deleted > 0).then_some(files))
    }

    /// Every file a row points at (for the start-up sweep).
    pub fn referenced_files(&self) -> rusqlite::Result<HashSet<String>> {
        let connection = self.lock();
        let mut statement =
            connection.prepare("SELECT file FROM objects UNION ALL SELECT file FROM parts")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect()
    }
}

const OBJECT_COLUMNS: &str = "bucket, key, size, etag, modified_ms, headers, metadata, checksum, parts, file";

fn insert_object(tx: &rusqlite::Transaction<'_>, object: &ObjectRow) -> S3Result<Option<String>> {
    let bucket = &object.bucket;
    if tx.query_row("SELECT 1 FROM buckets WHERE name = ?1", [bucket], |_| Ok(())).optional()?.is_none() {
        return Err(S3Error::no_such_bucket(bucket));
    }
    let sql = "SELECT file FROM objects WHERE bucket = ?1 AND key = ?2";
    let old: Option<String> = tx.query_row(sql, [bucket, &object.key], |row| row.get(0)).optional()?;
    let sql = format!(
        "INSERT OR REPLACE INTO objects ({OBJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    tx.execute(
        &sql,
        params![
            object.bucket,
            object.key,
            object.size as i64,
            object.etag,
            object.modified_ms,
            pairs_json(&object.headers),
            pairs_json(&object.metadata),
            object.checksum.as_ref().map(Checksum::encode),
            object.parts,
            object.file
        ],
    )?;
    Ok(old)
}

fn pairs_json(pairs: &Pairs) -> String {
    serde_json::Value::Array(pairs.iter().map(|(k, v)| serde_json::json!([k, v])).collect()).to_string()
}

fn pairs_from(text: String) -> Pairs {
    let parsed: Vec<(String, String)> = serde_json::from_str::<Vec<[String; 2]>>(&text)
        .map(|pairs| pairs.into_iter().map(|[k, v]| (k, v)).collect())
        .unwrap_or_default();
    parsed
}

fn bucket_row(row: &Row<'_>) -> rusqlite::Result<BucketRow> {
    Ok(BucketRow { name: row.get(0)?, created_ms: row.get(1)?, region: row.get(2)? })
}

fn object_row(row: &Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        bucket: row.get(0)?,
        key: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        etag: row.get(3)?,
        modified_ms: row.get(4)?,
        headers: pairs_from(row.get(5)?),
        metadata: pairs_from(row.get(6)?),
        checksum: row.get::<_, Option<String>>(7)?.as_deref().and_then(Checksum::decode),
        parts: row.get(8)?,
        file: row.get(9)?,
    })
}

fn upload_row(row: &Row<'_>) -> rusqlite::Result<UploadRow> {
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

fn part_row(row: &Row<'_>) -> rusqlite::Result<PartRow> {
    Ok(PartRow {
        number: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        etag: row.get(2)?,
        modified_ms: row.get(3)?,
        checksum: row.get::<_, Option<String>>(4)?.as_deref().and_then(Checksum::decode),
        file: row.get(5)?,
    })
}
