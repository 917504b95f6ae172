//! Versions: the current version of a key is its `objects` row (absent when the newest version
//! is a delete marker); older versions and every delete marker live in `versions`, ordered by
//! `seq`. Invariant: when a key has no `objects` row, its newest `versions` row (if any) is a
//! delete marker; deleting versions promotes the newest remaining object back.

use nimbus_store::{params, DbError, Row, Tx};

use super::{locking, object_row, share_bucket, Db, ObjectRow, OBJECT_COLUMNS};
use crate::error::{S3Error, S3Result};

/// `ord` of the current version: it sorts before (is newer than) every kept version.
pub const CURRENT: i64 = i64::MAX;

const VERSION_COLUMNS: &str = "bucket, key, size, etag, modified_ms, headers, metadata, checksum, parts, \
                               file, version_id, tags, extra, marker, seq";

/// One version (or delete marker) of a key.
#[derive(Debug, Clone)]
pub struct Listed {
    pub row: ObjectRow,
    pub marker: bool,
    /// [`CURRENT`] for the current object, else its place in the key's stack.
    pub ord: i64,
}

/// What a DeleteObject did.
#[derive(Debug, Default)]
pub struct Deletion {
    /// Files no longer referenced.
    pub files: Vec<String>,
    /// The delete marker created, or the version removed.
    pub removed: Option<Listed>,
}

fn version_row(row: &Row) -> Result<Listed, DbError> {
    Ok(Listed { row: object_row(row)?, marker: row.get::<i64>(13)? != 0, ord: row.get(14)? })
}

fn current_row(row: &Row) -> Result<Listed, DbError> {
    Ok(Listed { row: object_row(row)?, marker: false, ord: CURRENT })
}

fn next_seq(tx: &mut Tx<'_>, bucket: &str, key: &str) -> Result<i64, DbError> {
    let sql = "SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE bucket = ?1 AND key = ?2";
    Ok(tx.query_value::<i64>(sql, &params![bucket, key])?.unwrap_or(1))
}

/// Copies the current object into the kept versions (the caller replaces or deletes its row).
pub(super) fn demote_current(tx: &mut Tx<'_>, bucket: &str, key: &str) -> Result<(), DbError> {
    let seq = next_seq(tx, bucket, key)?;
    let sql = "INSERT INTO versions (bucket, key, version_id, seq, marker, size, etag, modified_ms, headers, \
               metadata, checksum, parts, file, tags, extra) SELECT bucket, key, version_id, ?3, 0, size, etag, \
               modified_ms, headers, metadata, checksum, parts, file, tags, extra FROM objects \
               WHERE bucket = ?1 AND key = ?2";
    tx.execute(sql, &params![bucket, key, seq])?;
    Ok(())
}

/// With no current object, the newest kept version becomes current unless it is a marker.
fn promote(tx: &mut Tx<'_>, bucket: &str, key: &str) -> Result<(), DbError> {
    if tx.query_opt("SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2", &params![bucket, key])?.is_some()
    {
        return Ok(());
    }
    let sql =
        "SELECT version_id, marker FROM versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC LIMIT 1";
    let Some(newest) = tx.query_opt(sql, &params![bucket, key])? else { return Ok(()) };
    let (version, marker): (String, i64) = (newest.get(0)?, newest.get(1)?);
    if marker != 0 {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO objects ({OBJECT_COLUMNS}) SELECT {OBJECT_COLUMNS} FROM versions \
         WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
    );
    tx.execute(&sql, &params![bucket, key, version])?;
    let sql = "DELETE FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3";
    tx.execute(sql, &params![bucket, key, version])?;
    Ok(())
}

impl Db {
    /// DeleteObject without a version id in a versioned bucket: the current object is kept (or,
    /// suspended, a null version removed) and a delete marker `marker_id` becomes current.
    pub fn delete_current(
        &self,
        bucket: &str,
        key: &str,
        marker_id: &str,
        now_ms: i64,
    ) -> S3Result<Deletion> {
        self.db.write(|tx| {
            share_bucket(tx, bucket)?;
            let mut files = Vec::new();
            let sql = locking(tx, "SELECT version_id, file FROM objects WHERE bucket = ?1 AND key = ?2", "FOR UPDATE");
            if let Some(current) = tx.query_opt(&sql, &params![bucket, key])? {
                let (version, file): (String, String) = (current.get(0)?, current.get(1)?);
                if version == "null" && marker_id == "null" {
                    files.push(file);
                } else {
                    demote_current(tx, bucket, key)?;
                }
                tx.execute("DELETE FROM objects WHERE bucket = ?1 AND key = ?2", &params![bucket, key])?;
            }
            if marker_id == "null" {
                let sql = "DELETE FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = 'null' RETURNING file";
                for row in tx.query(sql, &params![bucket, key])? {
                    files.push(row.get(0)?);
                }
            }
            files.retain(|f: &String| !f.is_empty());
            let seq = next_seq(tx, bucket, key)?;
            let sql = "INSERT INTO versions (bucket, key, version_id, seq, marker, size, etag, modified_ms, \
                       headers, metadata, checksum, parts, file, tags, extra) \
                       VALUES (?1, ?2, ?3, ?4, 1, 0, '', ?5, '[]', '[]', NULL, 0, '', '[]', '[]')";
            tx.execute(sql, &params![bucket, key, marker_id, seq, now_ms])?;
            let row = ObjectRow {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: 0,
                etag: String::new(),
                modified_ms: now_ms,
                headers: Vec::new(),
                metadata: Vec::new(),
                checksum: None,
                parts: 0,
                file: String::new(),
                version_id: marker_id.to_owned(),
                tags: Vec::new(),
                extra: Vec::new(),
            };
            Ok(Deletion { files, removed: Some(Listed { row, marker: true, ord: seq }) })
        })
    }

    /// DeleteObject with a version id: removes that version (or marker) for good, after `guard`
    /// (object lock) accepts it.
    pub fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        guard: &dyn Fn(&ObjectRow) -> S3Result<()>,
    ) -> S3Result<Deletion> {
        self.db.write(|tx| {
            share_bucket(tx, bucket)?;
            let select = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
            let found = match tx.query_opt(&select, &params![bucket, key, version])? {
                Some(row) => Some((current_row(&row)?, "objects")),
                None => {
                    let select =
                        format!("SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
                    tx.query_opt(&select, &params![bucket, key, version])?
                        .map(|row| version_row(&row))
                        .transpose()?
                        .map(|listed| (listed, "versions"))
                }
            };
            let Some((listed, table)) = found else { return Ok(Deletion::default()) };
            if !listed.marker {
                guard(&listed.row)?;
            }
            let sql = format!("DELETE FROM {table} WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
            tx.execute(&sql, &params![bucket, key, version])?;
            promote(tx, bucket, key)?;
            let files = if listed.marker { Vec::new() } else { vec![listed.row.file.clone()] };
            Ok(Deletion { files, removed: Some(listed) })
        })
    }

    /// A version by id (the current object or a kept one).
    pub fn object_version(&self, bucket: &str, key: &str, version: &str) -> Result<Option<Listed>, DbError> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
        );
        if let Some(row) = self.db.query_opt(&sql, &params![bucket, key, version])? {
            return Ok(Some(current_row(&row)?));
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
        );
        self.db.query_opt(&sql, &params![bucket, key, version])?.map(|row| version_row(&row)).transpose()
    }

    /// The delete marker that is the newest version of a key without a current object.
    pub fn latest_marker(&self, bucket: &str, key: &str) -> Result<Option<String>, DbError> {
        let sql = "SELECT version_id, marker FROM versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC LIMIT 1";
        let Some(row) = self.db.query_opt(sql, &params![bucket, key])? else { return Ok(None) };
        (row.get::<i64>(1)? != 0).then(|| row.get(0)).transpose()
    }

    /// Up to `limit` versions after (`after_key`, `after_ord`) with keys at or after `prefix`, in
    /// key order, newest first within a key.
    pub fn versions_after(
        &self,
        bucket: &str,
        after_key: &str,
        after_ord: i64,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<Listed>, DbError> {
        // Each side reads its own first `limit` rows along its primary key; the page is the first
        // `limit` of the two merged.
        let sql = format!(
            "SELECT * FROM (\
             SELECT * FROM (SELECT {OBJECT_COLUMNS}, 0 AS marker, {CURRENT} AS ord FROM objects \
                 WHERE bucket = ?1 AND key >= ?2 AND key >= ?4 AND (key > ?2 OR {CURRENT} < ?3) \
                 ORDER BY key LIMIT ?5) o \
             UNION ALL \
             SELECT * FROM (SELECT {VERSION_COLUMNS} FROM versions \
                 WHERE bucket = ?1 AND key >= ?2 AND key >= ?4 AND (key > ?2 OR seq < ?3) \
                 ORDER BY key, seq DESC LIMIT ?5) w\
             ) v ORDER BY key, ord DESC LIMIT ?5"
        );
        let rows = self.db.query(&sql, &params![bucket, after_key, after_ord, prefix, limit])?;
        rows.iter().map(version_row).collect()
    }

    /// Sets `tags` or `extra` (JSON) of the current object, or of one version.
    pub fn set_object_field(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        column: &str,
        value: &str,
    ) -> S3Result<()> {
        debug_assert!(column == "tags" || column == "extra");
        self.db.write(|tx| {
            share_bucket(tx, bucket)?;
            let changed = match version {
                None => {
                    let sql = format!("UPDATE objects SET {column} = ?3 WHERE bucket = ?1 AND key = ?2");
                    tx.execute(&sql, &params![bucket, key, value])?
                }
                Some(version) => {
                    let sql = format!("UPDATE objects SET {column} = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
                    let mut changed = tx.execute(&sql, &params![bucket, key, version, value])?;
                    if changed == 0 {
                        let sql = format!(
                            "UPDATE versions SET {column} = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3 AND marker = 0"
                        );
                        changed = tx.execute(&sql, &params![bucket, key, version, value])?;
                    }
                    if changed == 0 {
                        return Err(S3Error::no_such_version(key, version));
                    }
                    changed
                }
            };
            if changed == 0 {
                return Err(S3Error::no_such_key(key));
            }
            Ok(())
        })
    }

    pub fn set_versioning(&self, bucket: &str, status: &str) -> S3Result<()> {
        let sql = "UPDATE buckets SET versioning = ?2 WHERE name = ?1";
        match self.db.execute(sql, &params![bucket, status])? {
            0 => Err(S3Error::no_such_bucket(bucket)),
            _ => Ok(()),
        }
    }

    /// A bucket sub-resource document (`policy`, `cors` …), `NoSuchBucket` without the bucket.
    pub fn config(&self, bucket: &str, name: &str) -> S3Result<Option<String>> {
        let sql = "SELECT b.name, c.value FROM buckets b LEFT JOIN bucket_configs c \
                   ON c.bucket = b.name AND c.name = ?2 WHERE b.name = ?1";
        match self.db.query_opt(sql, &params![bucket, name])? {
            Some(row) => Ok(row.get(1)?),
            None => Err(S3Error::no_such_bucket(bucket)),
        }
    }

    /// Every sub-resource document of a bucket whose name starts with `prefix`, in name order.
    pub fn configs_prefixed(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows = self.db.query(
            "SELECT name, value FROM bucket_configs WHERE bucket = ?1 ORDER BY name",
            &params![bucket],
        )?;
        let all: Vec<(String, String)> =
            rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect::<Result<_, DbError>>()?;
        Ok(all.into_iter().filter(|(n, _)| n.starts_with(prefix)).collect())
    }

    /// Several sub-resource documents of a bucket in one read (absent ones left out).
    pub fn configs(&self, bucket: &str, names: &[&str]) -> Result<Vec<(String, String)>, DbError> {
        let rows =
            self.db.query("SELECT name, value FROM bucket_configs WHERE bucket = ?1", &params![bucket])?;
        let all: Vec<(String, String)> =
            rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect::<Result<_, DbError>>()?;
        Ok(all.into_iter().filter(|(n, _)| names.contains(&n.as_str())).collect())
    }

    pub fn set_config(&self, bucket: &str, name: &str, value: &str) -> S3Result<()> {
        self.db.write(|tx| {
            share_bucket(tx, bucket)?;
            let sql = "INSERT INTO bucket_configs (bucket, name, value) VALUES (?1, ?2, ?3) \
                       ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value";
            tx.execute(sql, &params![bucket, name, value])?;
            Ok(())
        })
    }

    pub fn delete_config(&self, bucket: &str, name: &str) -> S3Result<()> {
        self.db.write(|tx| {
            share_bucket(tx, bucket)?;
            tx.execute("DELETE FROM bucket_configs WHERE bucket = ?1 AND name = ?2", &params![bucket, name])?;
            Ok(())
        })
    }

    /// Every bucket with a configuration `name` (the lifecycle sweep).
    pub fn configs_named(&self, name: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows =
            self.db.query("SELECT bucket, value FROM bucket_configs WHERE name = ?1", &params![name])?;
        rows.iter().map(|row| Ok((row.get(0)?, row.get(1)?))).collect()
    }
}
