//! Blob uploads of the distribution API: a session started by `POST`, its bytes appended in
//! order by `PATCH` chunks, finished by `PUT ?digest=` which checks the digest of everything
//! uploaded and moves the bytes into place. Sessions live in the database and their bytes in
//! the blob area, so any node (or a restarted one) continues them.

use std::fs::{self, OpenOptions};
use std::io::Write;

use nimbus_store::params;

use crate::{digest, now_ms, ImageError, Images};

impl Images {
    pub fn start_upload(&self, region: &str, repo: &str) -> Result<String, ImageError> {
        self.repository(region, repo)?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        fs::File::create(self.area.path(&format!("uploads/{id}")))?;
        self.db.execute(
            "INSERT INTO uploads (id, region, repo, size, started_ms) VALUES (?1, ?2, ?3, 0, ?4)",
            &params![id, region, repo, now_ms()],
        )?;
        Ok(id)
    }

    /// The bytes received so far by upload `id` of `repo`.
    pub fn upload_size(&self, region: &str, repo: &str, id: &str) -> Result<u64, ImageError> {
        let row = self.db.query_opt(
            "SELECT size FROM uploads WHERE id = ?1 AND region = ?2 AND repo = ?3",
            &params![id, region, repo],
        )?;
        let row = row.ok_or_else(|| ImageError::UploadUnknown(id.to_owned()))?;
        Ok(row.get::<i64>(0)? as u64)
    }

    /// Appends a chunk; `start` (from `Content-Range`) must be where the last one ended.
    /// Returns the size so far.
    pub fn append_upload(
        &self,
        region: &str,
        repo: &str,
        id: &str,
        start: Option<u64>,
        bytes: &[u8],
    ) -> Result<u64, ImageError> {
        let size = self.upload_size(region, repo, id)?;
        if let Some(start) = start {
            if start != size {
                return Err(ImageError::RangeInvalid(format!(
                    "the chunk starts at {start} but the upload holds {size} bytes"
                )));
            }
        }
        if bytes.is_empty() {
            return Ok(size);
        }
        let path = self.area.path(&format!("uploads/{id}"));
        let mut file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(size)?; // a chunk cut short by a crash is dropped
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(size))?;
        file.write_all(bytes)?;
        file.sync_data()?;
        let total = size + bytes.len() as u64;
        self.db.execute("UPDATE uploads SET size = ?2 WHERE id = ?1", &params![id, total as i64])?;
        Ok(total)
    }

    /// Finishes an upload with its last chunk (may be empty), checking `expected`.
    pub fn finish_upload(
        &self,
        region: &str,
        repo: &str,
        id: &str,
        bytes: &[u8],
        expected: &str,
    ) -> Result<String, ImageError> {
        digest::check(expected).map_err(ImageError::DigestInvalid)?;
        let size = self.append_upload(region, repo, id, None, bytes)?;
        let path = self.area.path(&format!("uploads/{id}"));
        let mut file = fs::File::open(&path)?;
        let (actual, _) = digest::of_reader(&mut file)?;
        if actual != expected {
            return Err(ImageError::DigestInvalid(format!("expected {expected}, got {actual}")));
        }
        let target = self.blob_path(&actual)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&path, &target)?;
        if let Some(parent) = target.parent() {
            nimbus_store::blobs::sync_dir(parent)?;
        }
        self.record_blob(region, repo, &actual, size)?;
        self.db.execute("DELETE FROM uploads WHERE id = ?1", &params![id])?;
        Ok(actual)
    }

    pub fn cancel_upload(&self, region: &str, repo: &str, id: &str) -> Result<(), ImageError> {
        self.upload_size(region, repo, id)?;
        self.db.execute("DELETE FROM uploads WHERE id = ?1", &params![id])?;
        let _ = fs::remove_file(self.area.path(&format!("uploads/{id}")));
        Ok(())
    }
}
