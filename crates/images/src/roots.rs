//! Root file systems: an image's layers applied in order into one directory, once per distinct
//! layer chain (two images with the same layers share it), unpacked under a temporary name and
//! renamed into place whole. A root handed out is held ([`ImageRoot`]) until dropped, and
//! garbage collection spares held roots.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::oci::{self, ConfigFile, Parsed, RunConfig};
use crate::pull::{Remote, PULLED_REGION};
use crate::reference::Reference;
use crate::unpack::{self, Budget, UnpackError};
use crate::{ImageError, Images};

/// What a function or job runs: a read-only root directory and how the image says to run it.
#[derive(Debug)]
pub struct ImageRoot {
    pub rootfs: PathBuf,
    pub config: RunConfig,
    /// The digest of the platform's image manifest.
    pub digest: String,
    /// `<registry>/<repo>@<digest of what the reference named>` (Lambda's `ResolvedImageUri`).
    pub resolved: String,
    /// The image's architecture in AWS's words (`x86_64`, `arm64`).
    pub architecture: String,
    _hold: Hold,
}

#[derive(Debug)]
struct Hold {
    key: String,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_use.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                in_use.remove(&self.key);
            }
        }
    }
}

fn not_found(text: &str) -> ImageError {
    ImageError::CannotPull(format!(
        "pull image manifest has been retried 1 time(s): failed to resolve ref {text}: {text}: not found"
    ))
}

impl Images {
    /// The root of the image `reference` names for `architecture` (`x86_64` or `arm64`),
    /// unpacked now if it never was. Blocking: call it off the async workers.
    /// A layer refused answers `CannotPullContainerError` with the reason, as every failure here.
    pub fn root_for(&self, reference: &str, architecture: &str) -> Result<ImageRoot, ImageError> {
        self.root_of(reference, architecture).map_err(|error| match error {
            hostile @ ImageError::Hostile { .. } => ImageError::CannotPull(hostile.to_string()),
            other => other,
        })
    }

    /// [`Images::root_for`], resolving a pulled tag again now (`nimbus images pull`).
    pub fn pull(&self, reference: &str, architecture: &str) -> Result<ImageRoot, ImageError> {
        self.root_with(reference, architecture, true).map_err(|error| match error {
            hostile @ ImageError::Hostile { .. } => ImageError::CannotPull(hostile.to_string()),
            other => other,
        })
    }

    pub(crate) fn root_of(&self, reference: &str, architecture: &str) -> Result<ImageRoot, ImageError> {
        self.root_with(reference, architecture, false)
    }

    fn root_with(&self, reference: &str, architecture: &str, force: bool) -> Result<ImageRoot, ImageError> {
        let parsed = Reference::parse(reference)
            .map_err(|why| ImageError::CannotPull(format!("invalid reference format: {why}")))?;
        let from_hub = |parsed: &Reference| -> Result<(String, String, String, String), ImageError> {
            let remote = Remote::of(parsed);
            let (repo, digest) = self.pulled(&remote, architecture, force)?;
            let named = format!("{}/{}", remote.registry, remote.repository);
            Ok((PULLED_REGION.to_owned(), repo, digest, named))
        };
        let (region, repo, asked, named) = if self.is_remote(&parsed) {
            from_hub(&parsed)?
        } else {
            let region = parsed.region.clone().unwrap_or_else(|| self.options.region.clone());
            let named = match &parsed.host {
                Some(host) => format!("{host}/{}", parsed.repository),
                None => parsed.repository.clone(),
            };
            match self.resolve(&region, &parsed.repository, parsed.version()) {
                Ok(digest) => (region, parsed.repository.clone(), digest, named),
                // A bare name no repository of nimbus's has is Docker Hub's (`busybox`).
                Err(ImageError::RepositoryNotFound { .. }) if parsed.host.is_none() => from_hub(&parsed)?,
                Err(ImageError::ManifestUnknown(_) | ImageError::RepositoryNotFound { .. }) => {
                    return Err(not_found(reference))
                }
                Err(other) => return Err(other),
            }
        };
        let repo = &repo;
        let platform = oci::platform_of(architecture);
        let mut manifest = self.manifest(&region, repo, &asked)?;
        let mut document =
            oci::parse(&manifest.bytes, Some(&manifest.media_type)).map_err(ImageError::ManifestInvalid)?;
        if let Parsed::Index { manifests, .. } = &document {
            let chosen = oci::pick(manifests, architecture).ok_or_else(|| {
                ImageError::CannotPull(format!(
                    "image {reference} has no manifest for platform linux/{platform}"
                ))
            })?;
            manifest = self.manifest(&region, repo, &chosen.digest)?;
            document = oci::parse(&manifest.bytes, Some(&manifest.media_type))
                .map_err(ImageError::ManifestInvalid)?;
        }
        let Parsed::Image { config, layers, .. } = document else {
            return Err(ImageError::CannotPull(format!(
                "image {reference}: an index inside an index is not supported"
            )));
        };
        let config_bytes = fs::read(self.blob_path(&config.digest)?)?;
        let config_file: ConfigFile = serde_json::from_slice(&config_bytes).map_err(|e| {
            ImageError::CannotPull(format!("image {reference}: its config is not valid JSON: {e}"))
        })?;
        if !config_file.architecture.is_empty() && oci::platform_of(&config_file.architecture) != platform {
            return Err(ImageError::CannotPull(format!(
                "image {reference} is built for linux/{}, not linux/{platform}",
                config_file.architecture
            )));
        }
        let chain: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        let key = crate::digest::of(chain.join("\n").as_bytes()).trim_start_matches("sha256:").to_owned();
        let rootfs = self.unpacked(&key, &layers)?;
        *self.in_use.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default() += 1;
        let resolved = format!("{named}@{asked}");
        let architecture = match oci::platform_of(&config_file.architecture) {
            "arm64" => "arm64",
            _ => "x86_64",
        };
        Ok(ImageRoot {
            rootfs,
            config: config_file.config.unwrap_or_default(),
            digest: manifest.digest,
            resolved,
            architecture: architecture.to_owned(),
            _hold: Hold { key, in_use: self.in_use.clone() },
        })
    }

    /// The root of a layer chain, unpacked now if it is not yet.
    fn unpacked(&self, key: &str, layers: &[oci::Descriptor]) -> Result<PathBuf, ImageError> {
        let target = self.area.path(&format!("roots/{key}"));
        if target.is_dir() {
            return Ok(target);
        }
        let lock = {
            let mut unpacking = self.unpacking.lock().unwrap_or_else(|p| p.into_inner());
            unpacking.entry(key.to_owned()).or_default().clone()
        };
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if target.is_dir() {
            return Ok(target);
        }
        let work = self.area.path(&format!("roots/.unpacking-{key}-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&work)?;
        let result = (|| {
            let mut budget = Budget::default();
            for layer in layers {
                let file = fs::File::open(self.blob_path(&layer.digest)?).map_err(|_| {
                    ImageError::CannotPull(format!("the image's layer {} is not in the store", layer.digest))
                })?;
                unpack::apply(&work, file, &self.options.limits, &mut budget).map_err(
                    |error| match error {
                        UnpackError::Hostile(reason) => {
                            ImageError::Hostile { layer: layer.digest.clone(), reason }
                        }
                        UnpackError::Io(error) => ImageError::Io(error),
                    },
                )?;
            }
            fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            fs::rename(&work, &target)?;
            Ok(())
        })();
        // Another node sharing the blob directory may have unpacked the same chain first.
        let raced = result.is_err() && target.is_dir();
        if result.is_err() {
            unpack::make_writable(&work);
            let _ = fs::remove_dir_all(&work);
        }
        self.unpacking.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        if raced {
            return Ok(target);
        }
        result.map(|()| target)
    }
}
