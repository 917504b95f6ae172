//! The image store: content-addressed blobs (layers, configs, manifests) in the storage layer's
//! blob area `images`, repositories, tags and manifests in its database (schema `images`), and
//! images' root file systems unpacked once per distinct layer chain, read-only and shared by
//! every function or job that runs them, removed by [`Images::gc`] when nothing refers to them.
//!
//! ```ignore
//! let images = nimbus_images::Images::open(&database, &blobs, Options::new("us-east-1"))?;
//! let root = images.root_for("000000000000.dkr.ecr.us-east-1.localhost:4566/app:v1", "x86_64")?;
//! // root.rootfs: a read-only directory; root.config: Entrypoint, Cmd, Env, WorkingDir, User
//! ```

pub mod digest;
mod gc;
mod import;
mod manifests;
pub mod oci;
pub mod pull;
pub mod reference;
mod registry_client;
mod roots;
mod schema;
pub mod unpack;
mod uploads;
pub mod user;
mod zstd;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nimbus_store::{params, BlobArea, Blobs, Database, DbError, ServiceDb};

pub use gc::GcReport;
pub use import::{host_architecture, ImportTarget, Imported};
pub use manifests::{ImageInfo, Manifest, Pushed};
pub use oci::RunConfig;
pub use roots::ImageRoot;
pub use schema::SCHEMA;
pub use unpack::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("The repository with name '{name}' does not exist in the registry with id '{registry}'")]
    RepositoryNotFound { name: String, registry: String },
    #[error("The repository with name '{name}' already exists in the registry with id '{registry}'")]
    RepositoryExists { name: String, registry: String },
    #[error("The repository with name '{name}' in registry with id '{registry}' cannot be deleted because it still contains images")]
    RepositoryNotEmpty { name: String, registry: String },
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("blob unknown to registry: {0} (the manifest refers to it)")]
    ManifestBlobUnknown(String),
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    #[error("blob upload unknown to registry: {0}")]
    UploadUnknown(String),
    #[error("{0}")]
    RangeInvalid(String),
    #[error("The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the repository is immutable.")]
    TagImmutable { tag: String, repository: String },
    #[error("{0}")]
    Invalid(String),
    /// A layer refused while unpacking, with the reason.
    #[error("the image's layer {layer} is refused: {reason}")]
    Hostile { layer: String, reason: String },
    /// What a function or job that cannot get its image reports (AWS's words).
    #[error("CannotPullContainerError: {0}")]
    CannotPull(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

/// What the store is opened with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The region of references without an ECR host.
    pub region: String,
    pub account: String,
    pub limits: Limits,
    /// Blobs nothing refers to survive this long (a push uploads layers before its manifest).
    pub grace_ms: i64,
    /// nimbus's own port: `localhost:<port>` is nimbus's registry, another port another one.
    pub port: Option<u16>,
    /// A pulled tag is resolved again at most this often (`nimbus images pull` forces it).
    pub pull_refresh_ms: i64,
}

impl Options {
    pub fn new(region: &str, account: &str) -> Options {
        Options {
            region: region.to_owned(),
            account: account.to_owned(),
            limits: Limits::default(),
            grace_ms: 3_600_000,
            port: None,
            pull_refresh_ms: 10 * 60_000,
        }
    }
}

pub struct Images {
    db: ServiceDb,
    area: BlobArea,
    options: Options,
    /// One lock per root being unpacked: two callers of one image unpack it once.
    unpacking: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Roots handed out and not yet dropped, which garbage collection spares.
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

/// One repository's row.
#[derive(Debug, Clone)]
pub struct Repository {
    pub region: String,
    pub name: String,
    pub created_ms: i64,
    /// The service's own settings (tag mutability, scanning, tags, lifecycle policy …).
    pub config: serde_json::Value,
}

impl Images {
    pub fn open(database: &Database, blobs: &Blobs, options: Options) -> Result<Arc<Images>, ImageError> {
        let db = database.open(&SCHEMA)?;
        let area = blobs.area("images")?;
        std::fs::create_dir_all(area.path("uploads"))?;
        std::fs::create_dir_all(area.path("roots"))?;
        Ok(Arc::new(Images { db, area, options, unpacking: Mutex::default(), in_use: Arc::default() }))
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn not_found(&self, name: &str) -> ImageError {
        ImageError::RepositoryNotFound { name: name.to_owned(), registry: self.options.account.clone() }
    }

    pub fn create_repository(
        &self,
        region: &str,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<Repository, ImageError> {
        let now = now_ms();
        let inserted = self.db.execute(
            "INSERT INTO repositories (region, name, created_ms, config) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
            &params![region, name, now, config.to_string()],
        )?;
        if inserted == 0 {
            return Err(ImageError::RepositoryExists {
                name: name.to_owned(),
                registry: self.options.account.clone(),
            });
        }
        Ok(Repository { region: region.into(), name: name.into(), created_ms: now, config: config.clone() })
    }

    pub fn repository(&self, region: &str, name: &str) -> Result<Repository, ImageError> {
        let row = self.db.query_opt(
            "SELECT created_ms, config FROM repositories WHERE region = ?1 AND name = ?2",
            &params![region, name],
        )?;
        let row = row.ok_or_else(|| self.not_found(name))?;
        let config: String = row.get(1)?;
        Ok(Repository {
            region: region.into(),
            name: name.into(),
            created_ms: row.get(0)?,
            config: serde_json::from_str(&config).unwrap_or_default(),
        })
    }

    /// Every repository of a region, by name.
    pub fn repositories(&self, region: &str) -> Result<Vec<Repository>, ImageError> {
        let rows = self.db.query(
            "SELECT name, created_ms, config FROM repositories WHERE region = ?1 ORDER BY name",
            &params![region],
        )?;
        rows.into_iter()
            .map(|row| {
                let config: String = row.get(2)?;
                Ok(Repository {
                    region: region.into(),
                    name: row.get(0)?,
                    created_ms: row.get(1)?,
                    config: serde_json::from_str(&config).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Every repository of every region (pulled images' cache aside).
    pub fn all_repositories(&self) -> Result<Vec<Repository>, ImageError> {
        let rows = self.db.query(
            "SELECT region, name, created_ms, config FROM repositories WHERE region <> ?1 ORDER BY region, name",
            &params![pull::PULLED_REGION],
        )?;
        rows.into_iter()
            .map(|row| {
                let config: String = row.get(3)?;
                Ok(Repository {
                    region: row.get(0)?,
                    name: row.get(1)?,
                    created_ms: row.get(2)?,
                    config: serde_json::from_str(&config).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Replaces a repository's settings with what `change` makes of them.
    pub fn update_repository(
        &self,
        region: &str,
        name: &str,
        change: impl FnOnce(&mut serde_json::Value) -> Result<(), ImageError>,
    ) -> Result<Repository, ImageError> {
        self.db.write(|tx| {
            let row = tx.query_opt(
                "SELECT created_ms, config FROM repositories WHERE region = ?1 AND name = ?2",
                &params![region, name],
            )?;
            let row = row.ok_or_else(|| self.not_found(name))?;
            let text: String = row.get(1)?;
            let mut config: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            change(&mut config)?;
            tx.execute(
                "UPDATE repositories SET config = ?3 WHERE region = ?1 AND name = ?2",
                &params![region, name, config.to_string()],
            )?;
            Ok(Repository { region: region.into(), name: name.into(), created_ms: row.get(0)?, config })
        })
    }

    /// Deletes a repository; with images in it only when `force`. Its blobs go at the next
    /// garbage collection.
    pub fn delete_repository(&self, region: &str, name: &str, force: bool) -> Result<Repository, ImageError> {
        let repository = self.repository(region, name)?;
        self.db.write(|tx| {
            let images: i64 = tx
                .query_value(
                    "SELECT COUNT(*) FROM manifests WHERE region = ?1 AND repo = ?2",
                    &params![region, name],
                )?
                .unwrap_or(0);
            if images > 0 && !force {
                return Err(ImageError::RepositoryNotEmpty {
                    name: name.to_owned(),
                    registry: self.options.account.clone(),
                });
            }
            for table in ["tags", "manifest_refs", "manifests", "repo_blobs", "uploads", "repositories"] {
                let column = if table == "repositories" { "name" } else { "repo" };
                tx.execute(
                    &format!("DELETE FROM {table} WHERE region = ?1 AND {column} = ?2"),
                    &params![region, name],
                )?;
            }
            Ok::<_, ImageError>(())
        })?;
        Ok(repository)
    }

    fn blob_name(digest: &str) -> Result<String, ImageError> {
        let hex = digest::check(digest).map_err(ImageError::DigestInvalid)?;
        Ok(format!("blobs/sha256/{hex}"))
    }

    /// Where a stored blob's bytes are.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.area.path(&Self::blob_name(digest)?))
    }

    /// The size of a blob a repository holds (pushed or mounted into it, or referred to by one
    /// of its manifests); `None` when it holds no such blob.
    pub fn blob_in(&self, region: &str, repo: &str, digest: &str) -> Result<Option<u64>, ImageError> {
        let row = self.db.query_opt(
            "SELECT b.size FROM blobs b WHERE b.digest = ?3 AND (\
               EXISTS (SELECT 1 FROM repo_blobs l WHERE l.region = ?1 AND l.repo = ?2 AND l.digest = ?3) \
               OR EXISTS (SELECT 1 FROM manifest_refs r WHERE r.region = ?1 AND r.repo = ?2 AND r.digest = ?3))",
            &params![region, repo, digest],
        )?;
        Ok(row.map(|row| row.get::<i64>(0)).transpose()?.map(|size| size as u64))
    }

    /// Stores `bytes` as a blob of `repo` (checked against `expected` when given).
    pub fn put_blob(
        &self,
        region: &str,
        repo: &str,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<String, ImageError> {
        let digest = digest::of(bytes);
        if let Some(expected) = expected {
            digest::check(expected).map_err(ImageError::DigestInvalid)?;
            if expected != digest {
                return Err(ImageError::DigestInvalid(format!("expected {expected}, got {digest}")));
            }
        }
        let name = Self::blob_name(&digest)?;
        if !self.area.path(&name).exists() {
            self.area.write(&name, bytes)?;
        }
        self.record_blob(region, repo, &digest, bytes.len() as u64)?;
        Ok(digest)
    }

    /// Records a blob whose bytes are in place, linked to `repo`.
    fn record_blob(&self, region: &str, repo: &str, digest: &str, size: u64) -> Result<(), ImageError> {
        let now = now_ms();
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO blobs (digest, size, created_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (digest) DO UPDATE SET created_ms = ?3",
                &params![digest, size as i64, now],
            )?;
            tx.execute(
                "INSERT INTO repo_blobs (region, repo, digest, created_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (region, repo, digest) DO UPDATE SET created_ms = ?4",
                &params![region, repo, digest, now],
            )?;
            Ok::<_, ImageError>(())
        })
    }

    /// Cross-repository mount: links a blob `from` holds into `repo`; false when `from` does
    /// not hold it (the client then uploads it).
    pub fn mount(&self, region: &str, repo: &str, from: &str, digest: &str) -> Result<bool, ImageError> {
        match self.blob_in(region, from, digest)? {
            Some(size) => {
                self.record_blob(region, repo, digest, size)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
