//! Manifests and tags: a manifest is stored as the exact bytes pushed (its digest is theirs),
//! with the blobs it refers to recorded so that they stay while it does.

use nimbus_store::{params, Row};

use crate::oci::{self, Parsed};
use crate::{digest, now_ms, ImageError, Images};

/// A manifest as served.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// One image of a repository (a manifest and its tags).
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub digest: String,
    pub tags: Vec<String>,
    pub media_type: String,
    /// The layers' size (ECR's `imageSizeInBytes`).
    pub size: u64,
    pub pushed_ms: i64,
    pub config_digest: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    /// The manifest (and the tag, when given) were there already.
    pub unchanged: bool,
}

impl Images {
    /// Stores a manifest in `repo`, tagged `tag` when given. Every blob (or, for an index,
    /// manifest) it refers to must be in the repository already.
    pub fn put_manifest(
        &self,
        region: &str,
        repo: &str,
        tag: Option<&str>,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<Pushed, ImageError> {
        self.store_manifest(region, repo, tag, bytes, content_type, true)
    }

    /// [`Images::put_manifest`]; `check_refs: false` keeps an index whose other platforms'
    /// manifests are not here (a pulled index: only the platforms run are fetched).
    pub(crate) fn store_manifest(
        &self,
        region: &str,
        repo: &str,
        tag: Option<&str>,
        bytes: &[u8],
        content_type: Option<&str>,
        check_refs: bool,
    ) -> Result<Pushed, ImageError> {
        let repository = self.repository(region, repo)?;
        if let Some(tag) = tag {
            if !crate::reference::valid_tag(tag) {
                return Err(ImageError::Invalid(format!("invalid tag {tag:?}")));
            }
        }
        let parsed = oci::parse(bytes, content_type).map_err(ImageError::ManifestInvalid)?;
        let digest = digest::of(bytes);
        let (mut root, mut config_digest) = (None, None);
        for reference in parsed.references() {
            let known = match &parsed {
                Parsed::Image { .. } => self.blob_in(region, repo, &reference.digest)?.is_some(),
                Parsed::Index { .. } if !check_refs => true,
                Parsed::Index { .. } => self.manifest_row(region, repo, &reference.digest)?.is_some(),
            };
            if !known {
                return Err(ImageError::ManifestBlobUnknown(reference.digest.clone()));
            }
        }
        let image_size: u64 = match &parsed {
            Parsed::Image { config, layers, .. } => {
                let chain: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
                root = Some(digest::of(chain.join("\n").as_bytes()));
                config_digest = Some(config.digest.clone());
                layers.iter().map(|l| l.size).sum()
            }
            Parsed::Index { manifests, .. } => manifests.iter().map(|m| m.size).sum(),
        };
        let name = Self::blob_name(&digest)?;
        if !self.area.path(&name).exists() {
            self.area.write(&name, bytes)?;
        }
        let immutable = repository.config["imageTagMutability"] == "IMMUTABLE";
        let now = now_ms();
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO blobs (digest, size, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (digest) DO NOTHING",
                &params![digest, bytes.len() as i64, now],
            )?;
            let inserted = tx.execute(
                "INSERT INTO manifests (region, repo, digest, media_type, size, image_size, pushed_ms, root, config_digest) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                &params![
                    region,
                    repo,
                    digest,
                    parsed.media_type(),
                    bytes.len() as i64,
                    image_size as i64,
                    now,
                    root,
                    config_digest
                ],
            )?;
            for reference in parsed.references() {
                tx.execute(
                    "INSERT INTO manifest_refs (region, repo, manifest, digest) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                    &params![region, repo, digest, reference.digest],
                )?;
            }
            let mut unchanged = inserted == 0;
            if let Some(tag) = tag {
                let current: Option<String> = tx.query_value(
                    "SELECT digest FROM tags WHERE region = ?1 AND repo = ?2 AND tag = ?3",
                    &params![region, repo, tag],
                )?;
                match current {
                    Some(current) if current == digest => {}
                    Some(_) if immutable => {
                        return Err(ImageError::TagImmutable { tag: tag.into(), repository: repo.into() })
                    }
                    _ => {
                        unchanged = false;
                        tx.execute(
                            "INSERT INTO tags (region, repo, tag, digest, pushed_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
                             ON CONFLICT (region, repo, tag) DO UPDATE SET digest = ?4, pushed_ms = ?5",
                            &params![region, repo, tag, digest, now],
                        )?;
                    }
                }
            }
            Ok(Pushed { digest: digest.clone(), unchanged })
        })
    }

    pub(crate) fn manifest_row(
        &self,
        region: &str,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Row>, ImageError> {
        Ok(self.db.query_opt(
            "SELECT media_type FROM manifests WHERE region = ?1 AND repo = ?2 AND digest = ?3",
            &params![region, repo, digest],
        )?)
    }

    /// The digest a tag or digest names in `repo`.
    pub fn resolve(&self, region: &str, repo: &str, reference: &str) -> Result<String, ImageError> {
        self.repository(region, repo)?;
        let unknown = || ImageError::ManifestUnknown(format!("{repo}:{reference}"));
        if reference.starts_with("sha256:") {
            return match self.manifest_row(region, repo, reference)? {
                Some(_) => Ok(reference.to_owned()),
                None => Err(unknown()),
            };
        }
        let digest: Option<String> = self
            .db
            .query_opt(
                "SELECT digest FROM tags WHERE region = ?1 AND repo = ?2 AND tag = ?3",
                &params![region, repo, reference],
            )?
            .map(|row| row.get(0))
            .transpose()?;
        digest.ok_or_else(unknown)
    }

    /// A manifest by tag or digest.
    pub fn manifest(&self, region: &str, repo: &str, reference: &str) -> Result<Manifest, ImageError> {
        let digest = self.resolve(region, repo, reference)?;
        let row = self
            .manifest_row(region, repo, &digest)?
            .ok_or_else(|| ImageError::ManifestUnknown(format!("{repo}@{digest}")))?;
        let bytes = std::fs::read(self.blob_path(&digest)?)?;
        Ok(Manifest { digest, media_type: row.get(0)?, bytes })
    }

    /// The repository's images, newest first.
    pub fn images(&self, region: &str, repo: &str) -> Result<Vec<ImageInfo>, ImageError> {
        self.repository(region, repo)?;
        let rows = self.db.query(
            "SELECT digest, media_type, image_size, pushed_ms, config_digest FROM manifests \
             WHERE region = ?1 AND repo = ?2 ORDER BY pushed_ms DESC, digest",
            &params![region, repo],
        )?;
        let tags = self.db.query(
            "SELECT tag, digest FROM tags WHERE region = ?1 AND repo = ?2 ORDER BY tag",
            &params![region, repo],
        )?;
        let tags: Vec<(String, String)> =
            tags.into_iter().map(|row| Ok((row.get(0)?, row.get(1)?))).collect::<Result<_, ImageError>>()?;
        rows.into_iter()
            .map(|row| {
                let digest: String = row.get(0)?;
                Ok(ImageInfo {
                    tags: tags.iter().filter(|(_, d)| *d == digest).map(|(t, _)| t.clone()).collect(),
                    digest,
                    media_type: row.get(1)?,
                    size: row.get::<i64>(2)? as u64,
                    pushed_ms: row.get(3)?,
                    config_digest: row.get(4)?,
                })
            })
            .collect()
    }

    /// The repository's tags, sorted.
    pub fn tags(&self, region: &str, repo: &str) -> Result<Vec<String>, ImageError> {
        Ok(self
            .images(region, repo)?
            .into_iter()
            .flat_map(|image| image.tags)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Deletes a manifest and every tag on it.
    pub fn delete_manifest(&self, region: &str, repo: &str, digest: &str) -> Result<(), ImageError> {
        self.repository(region, repo)?;
        let deleted = self.db.write(|tx| {
            tx.execute(
                "DELETE FROM tags WHERE region = ?1 AND repo = ?2 AND digest = ?3",
                &params![region, repo, digest],
            )?;
            tx.execute(
                "DELETE FROM manifest_refs WHERE region = ?1 AND repo = ?2 AND manifest = ?3",
                &params![region, repo, digest],
            )?;
            tx.execute(
                "DELETE FROM manifests WHERE region = ?1 AND repo = ?2 AND digest = ?3",
                &params![region, repo, digest],
            )
        })?;
        match deleted {
            0 => Err(ImageError::ManifestUnknown(format!("{repo}@{digest}"))),
            _ => Ok(()),
        }
    }

    /// Removes one tag; returns the digest it named and whether that image has tags left.
    pub fn untag(&self, region: &str, repo: &str, tag: &str) -> Result<(String, bool), ImageError> {
        let digest = self.resolve(region, repo, tag)?;
        let left = self.db.write(|tx| {
            tx.execute(
                "DELETE FROM tags WHERE region = ?1 AND repo = ?2 AND tag = ?3",
                &params![region, repo, tag],
            )?;
            tx.query_value::<i64>(
                "SELECT COUNT(*) FROM tags WHERE region = ?1 AND repo = ?2 AND digest = ?3",
                &params![region, repo, digest],
            )
        })?;
        Ok((digest, left.unwrap_or(0) > 0))
    }

    /// The manifests of `repo` an index of it refers to (platforms of a multi-platform image).
    pub fn index_children(
        &self,
        region: &str,
        repo: &str,
    ) -> Result<std::collections::HashSet<String>, ImageError> {
        let rows = self.db.query(
            "SELECT DISTINCT r.digest FROM manifest_refs r JOIN manifests m \
             ON m.region = r.region AND m.repo = r.repo AND m.digest = r.digest \
             WHERE r.region = ?1 AND r.repo = ?2",
            &params![region, repo],
        )?;
        rows.into_iter().map(|row| Ok(row.get(0)?)).collect()
    }

    /// Deletes an image (a manifest and its tags) and, for an index, its platforms' manifests
    /// that nothing else in the repository refers to or tags.
    pub fn delete_image(&self, region: &str, repo: &str, digest: &str) -> Result<(), ImageError> {
        let manifest = self.manifest(region, repo, digest)?;
        self.delete_manifest(region, repo, digest)?;
        if let Ok(Parsed::Index { manifests, .. }) = oci::parse(&manifest.bytes, Some(&manifest.media_type)) {
            let still = self.index_children(region, repo)?;
            for child in manifests {
                let tagged = self.db.query_opt(
                    "SELECT 1 FROM tags WHERE region = ?1 AND repo = ?2 AND digest = ?3",
                    &params![region, repo, child.digest],
                )?;
                if !still.contains(&child.digest) && tagged.is_none() {
                    let _ = self.delete_manifest(region, repo, &child.digest);
                }
            }
        }
        Ok(())
    }
}
