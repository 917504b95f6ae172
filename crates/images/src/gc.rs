//! Garbage collection: blobs no manifest refers to (and no push still in flight may need: they
//! get a grace period), roots of layer chains no manifest has (unless a running function or job
//! holds one), and uploads abandoned for a day.

use std::collections::HashSet;
use std::fs;

use nimbus_store::params;

use crate::{now_ms, unpack, ImageError, Images};

const UPLOAD_EXPIRY_MS: i64 = 24 * 3_600_000;

/// What one collection removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub blobs: u64,
    pub bytes: u64,
    pub roots: u64,
    pub uploads: u64,
}

impl Images {
    /// Collects with the store's grace period, or `grace_ms` when given.
    pub fn gc(&self, grace_ms: Option<i64>) -> Result<GcReport, ImageError> {
        let now = now_ms();
        let before = now - grace_ms.unwrap_or(self.options.grace_ms);
        let mut report = GcReport::default();
        let expired: Vec<String> = self
            .db
            .query("SELECT id FROM uploads WHERE started_ms < ?1", &params![now - UPLOAD_EXPIRY_MS])?
            .into_iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?;
        for id in &expired {
            self.db.execute("DELETE FROM uploads WHERE id = ?1", &params![id])?;
            let _ = fs::remove_file(self.area.path(&format!("uploads/{id}")));
            report.uploads += 1;
        }
        let doomed = self.db.write(|tx| {
            // Links of blobs pushed long enough ago that no manifest of their repository uses.
            tx.execute(
                "DELETE FROM repo_blobs WHERE created_ms < ?1 AND NOT EXISTS (SELECT 1 FROM manifest_refs r \
                 WHERE r.region = repo_blobs.region AND r.repo = repo_blobs.repo AND r.digest = repo_blobs.digest)",
                &params![before],
            )?;
            let rows = tx.query(
                "SELECT digest, size FROM blobs WHERE created_ms < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = blobs.digest) \
                 AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.digest = blobs.digest) \
                 AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = blobs.digest)",
                &params![before],
            )?;
            let mut doomed = Vec::new();
            for row in rows {
                let (digest, size): (String, i64) = (row.get(0)?, row.get(1)?);
                tx.execute("DELETE FROM blobs WHERE digest = ?1", &params![digest])?;
                doomed.push((digest, size as u64));
            }
            Ok::<_, ImageError>(doomed)
        })?;
        // The rows are gone first: a crash here leaves files no row names, never the reverse.
        // A blob pushed again meanwhile has its row back and keeps its file.
        for (digest, size) in doomed {
            if self.db.query_opt("SELECT 1 FROM blobs WHERE digest = ?1", &params![digest])?.is_some() {
                continue;
            }
            let _ = fs::remove_file(self.blob_path(&digest)?);
            report.blobs += 1;
            report.bytes += size;
        }
        let live: HashSet<String> = self
            .db
            .query("SELECT DISTINCT root FROM manifests WHERE root IS NOT NULL", &[])?
            .into_iter()
            .map(|row| row.get::<String>(0).map(|d| d.trim_start_matches("sha256:").to_owned()))
            .collect::<Result<_, _>>()?;
        let held: HashSet<String> =
            self.in_use.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for entry in fs::read_dir(self.area.path("roots"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || live.contains(&name) || held.contains(&name) {
                continue;
            }
            unpack::make_writable(&entry.path());
            if fs::remove_dir_all(entry.path()).is_ok() {
                report.roots += 1;
            }
        }
        Ok(report)
    }

    /// The roots unpacked now (their layer chains' keys), for status and tests.
    pub fn unpacked_roots(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.area.path("roots")) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }
}
