//! Images brought in without a registry: a `docker save` tarball (`manifest.json` with
//! `RepoTags`, each layer a tar) or an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) as skopeo, buildah, `podman save --format oci-archive` and
//! `docker buildx --output type=oci` write it, as a tar. Each image is stored in a repository
//! (made if missing) and unpacked once for this host's architecture, which also checks that
//! its layers are acceptable: a refused layer undoes that image's import.

use std::collections::HashMap;
use std::io::Read;

use serde::Deserialize;
use serde_json::json;

use crate::oci::{self, Descriptor, Parsed};
use crate::{digest, ImageError, Images};

/// One image imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    /// Whether it was unpacked for this host (false for an index without this architecture).
    pub unpacked: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What a request asks: where to put the images.
#[derive(Debug, Clone, Default)]
pub struct ImportTarget<'a> {
    pub region: &'a str,
    /// The repository for every image (default: from each image's own name).
    pub repository: Option<&'a str>,
    /// The tag for the (single) image (default: its own).
    pub tag: Option<&'a str>,
}

/// The host's architecture in AWS's words.
pub fn host_architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

impl Images {
    /// Imports every image of an archive (a tar of either format).
    pub fn import(&self, archive: impl Read, target: &ImportTarget<'_>) -> Result<Vec<Imported>, ImageError> {
        let files = read_archive(archive)?;
        let found = if files.contains_key("manifest.json") {
            self.import_docker(&files, target)?
        } else if files.contains_key("index.json") {
            self.import_oci(&files, target)?
        } else {
            return Err(ImageError::Invalid(
                "neither a docker save archive (manifest.json) nor an OCI image layout (index.json)".into(),
            ));
        };
        let mut imported = Vec::new();
        for mut image in found {
            let reference = format!("{}@{}", image.repository, image.digest);
            match self.root_of(&reference, host_architecture()) {
                Ok(_) => image.unpacked = true,
                Err(hostile @ ImageError::Hostile { .. }) => {
                    let _ = self.delete_manifest(target.region, &image.repository, &image.digest);
                    return Err(hostile);
                }
                Err(ImageError::CannotPull(_)) => {} // no manifest for this host's platform
                Err(other) => return Err(other),
            }
            imported.push(image);
        }
        Ok(imported)
    }

    fn ensure_repository(&self, region: &str, name: &str) -> Result<(), ImageError> {
        if !crate::reference::valid_repository(name) {
            return Err(ImageError::Invalid(format!(
                "{name:?} is no valid repository name (lower-case letters, digits, . _ - and /): give one"
            )));
        }
        match self.create_repository(region, name, &json!({"imageTagMutability": "MUTABLE"})) {
            Ok(_) | Err(ImageError::RepositoryExists { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    fn import_docker(
        &self,
        files: &HashMap<String, Vec<u8>>,
        target: &ImportTarget<'_>,
    ) -> Result<Vec<Imported>, ImageError> {
        let entries: Vec<DockerEntry> = serde_json::from_slice(&files["manifest.json"])
            .map_err(|e| ImageError::Invalid(format!("manifest.json: {e}")))?;
        let mut imported = Vec::new();
        for entry in entries {
            let own = entry.repo_tags.unwrap_or_default().into_iter().next().map(|t| split_name(&t));
            let repository = target
                .repository
                .map(str::to_owned)
                .or_else(|| own.as_ref().map(|(r, _)| r.clone()))
                .ok_or_else(|| ImageError::Invalid("the image has no name: give a repository".into()))?;
            let tag = target.tag.map(str::to_owned).or_else(|| own.and_then(|(_, t)| t));
            self.ensure_repository(target.region, &repository)?;
            let config = member(files, &entry.config)?;
            let config_digest = self.put_blob(target.region, &repository, config, None)?;
            let mut layers = Vec::new();
            for path in &entry.layers {
                let bytes = member(files, path)?;
                let digest = self.put_blob(target.region, &repository, bytes, None)?;
                let media_type = if bytes.starts_with(&[0x1f, 0x8b]) {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    oci::OCI_LAYER
                };
                layers.push(json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}));
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": oci::OCI_MANIFEST,
                "config": {"mediaType": oci::OCI_CONFIG, "digest": config_digest, "size": config.len()},
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
            let pushed = self.put_manifest(target.region, &repository, tag.as_deref(), &bytes, None)?;
            imported.push(Imported {
                repository,
                tag,
                digest: pushed.digest,
                media_type: oci::OCI_MANIFEST.into(),
                unpacked: false,
            });
        }
        Ok(imported)
    }

    fn import_oci(
        &self,
        files: &HashMap<String, Vec<u8>>,
        target: &ImportTarget<'_>,
    ) -> Result<Vec<Imported>, ImageError> {
        #[derive(Deserialize)]
        struct Index {
            manifests: Vec<Descriptor>,
        }
        let index: Index = serde_json::from_slice(&files["index.json"])
            .map_err(|e| ImageError::Invalid(format!("index.json: {e}")))?;
        let mut imported = Vec::new();
        for descriptor in index.manifests {
            let annotation = |key: &str| {
                descriptor
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(key))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let named = annotation("io.containerd.image.name")
                .or_else(|| annotation("org.opencontainers.image.ref.name"));
            let (own_repo, own_tag) = match named.as_deref() {
                Some(name) if name.contains(':') || name.contains('/') => {
                    let (repo, tag) = split_name(name);
                    (Some(repo), tag)
                }
                Some(tag) => (None, Some(tag.to_owned())),
                None => (None, None),
            };
            let repository = target.repository.map(str::to_owned).or(own_repo).ok_or_else(|| {
                ImageError::Invalid("the image layout names no repository: give one".into())
            })?;
            let tag = target.tag.map(str::to_owned).or(own_tag);
            self.ensure_repository(target.region, &repository)?;
            let (digest, media_type) =
                self.import_manifest(files, target.region, &repository, &descriptor, tag.as_deref())?;
            imported.push(Imported { repository, tag, digest, media_type, unpacked: false });
        }
        Ok(imported)
    }

    /// Stores one manifest of a layout with everything it refers to (an index's manifests first).
    fn import_manifest(
        &self,
        files: &HashMap<String, Vec<u8>>,
        region: &str,
        repository: &str,
        descriptor: &Descriptor,
        tag: Option<&str>,
    ) -> Result<(String, String), ImageError> {
        let bytes = blob(files, &descriptor.digest)?;
        let declared = (!descriptor.media_type.is_empty()).then_some(descriptor.media_type.as_str());
        let parsed = oci::parse(bytes, declared).map_err(ImageError::ManifestInvalid)?;
        for reference in parsed.references() {
            match &parsed {
                Parsed::Index { .. } => {
                    if files.contains_key(&blob_path(&reference.digest)?) {
                        self.import_manifest(files, region, repository, reference, None)?;
                    }
                }
                Parsed::Image { .. } => {
                    self.put_blob(
                        region,
                        repository,
                        blob(files, &reference.digest)?,
                        Some(&reference.digest),
                    )?;
                }
            }
        }
        if let Parsed::Index { manifests, .. } = &parsed {
            // A layout may hold only some platforms of an index: keep those it holds.
            if manifests.iter().any(|m| !files.contains_key(&blob_path(&m.digest).unwrap_or_default())) {
                return Err(ImageError::Invalid(format!(
                    "the index {} refers to manifests the layout does not hold",
                    descriptor.digest
                )));
            }
        }
        let pushed = self.put_manifest(region, repository, tag, bytes, Some(parsed.media_type()))?;
        Ok((pushed.digest, parsed.media_type().to_owned()))
    }
}

/// `registry/path/name:tag` → (`path/name`, tag); Docker Hub's `docker.io/library/` dropped.
fn split_name(text: &str) -> (String, Option<String>) {
    let (name, tag) = match text.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_owned())),
        _ => (text, None),
    };
    let name = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => name,
    };
    (name.trim_start_matches("library/").to_owned(), tag)
}

fn blob_path(digest: &str) -> Result<String, ImageError> {
    let hex = digest::check(digest).map_err(ImageError::DigestInvalid)?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, digest: &str) -> Result<&'a [u8], ImageError> {
    let path = blob_path(digest)?;
    let bytes =
        files.get(&path).ok_or_else(|| ImageError::BlobUnknown(format!("{digest} is not in the layout")))?;
    if digest::of(bytes) != digest {
        return Err(ImageError::DigestInvalid(format!("{path} does not hash to its name")));
    }
    Ok(bytes)
}

fn member<'a>(files: &'a HashMap<String, Vec<u8>>, path: &str) -> Result<&'a [u8], ImageError> {
    let key = path.trim_start_matches("./");
    files.get(key).map(Vec::as_slice).ok_or_else(|| ImageError::Invalid(format!("the archive lacks {path}")))
}

/// Every regular file of the archive by its path (`./` dropped).
fn read_archive(reader: impl Read) -> Result<HashMap<String, Vec<u8>>, ImageError> {
    let invalid = |e: std::io::Error| ImageError::Invalid(format!("not a tar archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    for entry in archive.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(invalid)?.to_string_lossy().trim_start_matches("./").to_owned();
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry.read_to_end(&mut bytes).map_err(invalid)?;
        files.insert(path, bytes);
    }
    Ok(files)
}
