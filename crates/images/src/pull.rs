//! Pulling from other registries (Docker Hub, public ECR, any OCI distribution registry) when a
//! reference names another registry's host, or a bare name (`busybox`, Docker Hub's
//! `library/busybox`) names no repository of nimbus's own (in nimbus's region).
//!
//! The manifest is fetched by tag or digest; for an index only the platform run (the job's or
//! function's architecture) is fetched, with its config and layers by digest, each checked
//! against its digest and size. Registries that answer `401` with `WWW-Authenticate: Bearer
//! realm=…,service=…,scope=…` get an anonymous token from the realm (nimbus sends no
//! credentials). HTTPS always, except for registries on this machine (`localhost`,
//! `127.0.0.1`, `[::1]`, `*.localhost` with a port other than nimbus's own), which are spoken
//! to in plain HTTP (as `insecure` registries).
//!
//! The cache: pulled images are stored in the image store under the hidden region
//! [`PULLED_REGION`], repository `<registry>/<path>` (`docker.io/library/busybox`), with their
//! tag. An image named by digest is fetched once; a tag is resolved again when its last
//! resolution is older than [`crate::Options::pull_refresh_ms`] (and when the remote cannot be
//! reached then, the cached image is used). `nimbus images pull REF` resolves it now.

use std::fs;
use std::io::{Read, Write};

use nimbus_store::params;
use serde_json::json;

use crate::digest::Hashing;
use crate::oci::{self, Descriptor, Parsed};
use crate::reference::Reference;
use crate::registry_client::{fetch_manifest, Client, Failure};
use crate::{now_ms, ImageError, Images};

/// The image store's region for pulled images (no AWS region: ECR's API never lists them).
pub const PULLED_REGION: &str = "pulled";

/// Image configs larger than this are refused (they are JSON read whole).
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// An image of another registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The registry as its images are named (`docker.io`, `public.ecr.aws`, `127.0.0.1:5001`).
    pub registry: String,
    /// Where its API is (`https://registry-1.docker.io`, `http://127.0.0.1:5001`).
    pub base: String,
    /// The repository's path there (`library/busybox`).
    pub repository: String,
    /// A tag or a digest.
    pub version: String,
}

/// `localhost`, `127.0.0.1`, `[::1]` or `*.localhost`, with its port when given.
pub fn local_host(host: &str) -> (bool, Option<u16>) {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, port.parse().ok()),
        _ => (host, None),
    };
    let local = ["localhost", "127.0.0.1", "[::1]"].contains(&name) || name.ends_with(".localhost");
    (local, port)
}

/// Whether `reference` names another registry than nimbus's own: nimbus's are its ECR hosts
/// (`<account>.dkr.ecr.<region>.…`) and this machine at nimbus's port (or with none given).
pub fn is_remote(reference: &Reference, own_port: Option<u16>) -> bool {
    let Some(host) = &reference.host else { return false };
    let (local, port) = local_host(host);
    let own = port.is_none() || own_port.is_none() || port == own_port;
    match reference.region {
        Some(_) => local && !own,
        None => !(local && own),
    }
}

impl Remote {
    /// Where `reference` is pulled from: its host, or Docker Hub for a bare name.
    pub fn of(reference: &Reference) -> Remote {
        let host = reference.host.as_deref().unwrap_or("docker.io");
        let hub = matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io");
        let repository = if hub && !reference.repository.contains('/') {
            format!("library/{}", reference.repository)
        } else {
            reference.repository.clone()
        };
        let base = match local_host(host) {
            _ if hub => "https://registry-1.docker.io".to_owned(),
            (true, port) => format!("http://127.0.0.1:{}", port.unwrap_or(80)),
            (false, _) => format!("https://{host}"),
        };
        let registry = if hub { "docker.io".to_owned() } else { host.to_owned() };
        Remote { registry, base, repository, version: reference.version().to_owned() }
    }

    /// The repository in the store's pulled region.
    pub fn cache_repository(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `docker.io/library/busybox:latest` (what error messages name).
    pub fn canonical(&self) -> String {
        let separator = if self.version.starts_with("sha256:") { '@' } else { ':' };
        format!("{}/{}{separator}{}", self.registry, self.repository, self.version)
    }
}

fn cannot_pull(remote: &Remote, why: impl std::fmt::Display) -> ImageError {
    let name = remote.canonical();
    ImageError::CannotPull(format!(
        "pull image manifest has been retried 1 time(s): failed to resolve ref {name}: {why}"
    ))
}

impl Images {
    /// Whether a reference's host is another registry (pulled from) rather than nimbus's own.
    pub fn is_remote(&self, reference: &Reference) -> bool {
        is_remote(reference, self.options.port)
    }

    /// Makes sure the image `remote` names (for `architecture`, when an index) is in the
    /// cache, fetching what is missing; `force` resolves a tag again now. Returns the cached
    /// repository and the digest the reference names.
    pub(crate) fn pulled(
        &self,
        remote: &Remote,
        architecture: &str,
        force: bool,
    ) -> Result<(String, String), ImageError> {
        let repo = remote.cache_repository();
        let lock = {
            let mut unpacking = self.unpacking.lock().unwrap_or_else(|p| p.into_inner());
            unpacking.entry(format!("pull {repo}")).or_default().clone()
        };
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let cached = self.cached(&repo, &remote.version, architecture)?;
        if let Some((digest, resolved_ms)) = &cached {
            let fresh = now_ms() - resolved_ms < self.options.pull_refresh_ms;
            if remote.version.starts_with("sha256:") || (fresh && !force) {
                return Ok((repo, digest.clone()));
            }
        }
        match self.fetch(remote, &repo, architecture) {
            Ok(digest) => Ok((repo, digest)),
            Err(error) => match cached {
                Some((digest, _)) if !force && !matches!(error, ImageError::Hostile { .. }) => {
                    eprintln!(
                        "nimbus: cannot resolve {} again, running the cached image: {error}",
                        remote.canonical()
                    );
                    Ok((repo, digest))
                }
                _ => Err(error),
            },
        }
    }

    /// The cached digest of a tag or digest (and when the tag was last resolved), when the
    /// image is complete for `architecture`.
    fn cached(
        &self,
        repo: &str,
        version: &str,
        architecture: &str,
    ) -> Result<Option<(String, i64)>, ImageError> {
        let row = if version.starts_with("sha256:") {
            self.db.query_opt(
                "SELECT digest, pushed_ms FROM manifests WHERE region = ?1 AND repo = ?2 AND digest = ?3",
                &params![PULLED_REGION, repo, version],
            )?
        } else {
            self.db.query_opt(
                "SELECT digest, pushed_ms FROM tags WHERE region = ?1 AND repo = ?2 AND tag = ?3",
                &params![PULLED_REGION, repo, version],
            )?
        };
        let Some(row) = row else { return Ok(None) };
        let (digest, at): (String, i64) = (row.get(0)?, row.get(1)?);
        let Ok(manifest) = self.manifest(PULLED_REGION, repo, &digest) else { return Ok(None) };
        if let Ok(Parsed::Index { manifests, .. }) = oci::parse(&manifest.bytes, Some(&manifest.media_type)) {
            match oci::pick(&manifests, architecture) {
                Some(chosen) if self.manifest_row(PULLED_REGION, repo, &chosen.digest)?.is_some() => {}
                Some(_) => return Ok(None),
                None => {} // the platform error comes from the caller, as for any index
            }
        }
        Ok(Some((digest, at)))
    }

    /// Fetches the manifest `remote` names and what running it on `architecture` needs.
    fn fetch(&self, remote: &Remote, repo: &str, architecture: &str) -> Result<String, ImageError> {
        eprintln!("nimbus: pulling {} ({architecture}) from {}", remote.canonical(), remote.base);
        let mut client = Client::new(remote);
        match self.create_repository(PULLED_REGION, repo, &json!({ "pulledFrom": remote.registry })) {
            Ok(_) | Err(ImageError::RepositoryExists { .. }) => {}
            Err(other) => return Err(other),
        }
        let failed = |failure: Failure| match failure {
            Failure::NotFound => cannot_pull(remote, format!("{}: not found", remote.canonical())),
            Failure::Denied(why) | Failure::Other(why) => cannot_pull(remote, why),
        };
        let (bytes, media_type) = fetch_manifest(&mut client, &remote.version).map_err(failed)?;
        let digest = crate::digest::of(&bytes);
        if remote.version.starts_with("sha256:") && digest != remote.version {
            return Err(cannot_pull(
                remote,
                format!("the manifest's digest is {digest}, not {}", remote.version),
            ));
        }
        let parsed = oci::parse(&bytes, media_type.as_deref()).map_err(|why| cannot_pull(remote, why))?;
        if let Parsed::Index { manifests, .. } = &parsed {
            if let Some(chosen) = oci::pick(manifests, architecture) {
                if self.manifest_row(PULLED_REGION, repo, &chosen.digest)?.is_none() {
                    let (child, child_type) = fetch_manifest(&mut client, &chosen.digest).map_err(failed)?;
                    if crate::digest::of(&child) != chosen.digest {
                        return Err(cannot_pull(
                            remote,
                            format!("the manifest {} does not match its digest", chosen.digest),
                        ));
                    }
                    let document =
                        oci::parse(&child, child_type.as_deref()).map_err(|why| cannot_pull(remote, why))?;
                    self.fetch_blobs(&mut client, remote, repo, &document)?;
                    self.store_manifest(PULLED_REGION, repo, None, &child, child_type.as_deref(), true)?;
                }
            }
        } else {
            self.fetch_blobs(&mut client, remote, repo, &parsed)?;
        }
        let tag = (!remote.version.starts_with("sha256:")).then_some(remote.version.as_str());
        self.store_manifest(PULLED_REGION, repo, tag, &bytes, Some(parsed.media_type()), false)?;
        // The tag's time is when it was last resolved.
        let now = now_ms();
        self.db.execute(
            "UPDATE tags SET pushed_ms = ?4 WHERE region = ?1 AND repo = ?2 AND tag = ?3",
            &params![PULLED_REGION, repo, remote.version, now],
        )?;
        Ok(digest)
    }

    /// An image manifest's config and layers, each fetched unless the store holds it.
    fn fetch_blobs(
        &self,
        client: &mut Client<'_>,
        remote: &Remote,
        repo: &str,
        document: &Parsed,
    ) -> Result<(), ImageError> {
        let Parsed::Image { config, layers, .. } = document else {
            return Err(cannot_pull(remote, "an index inside an index is not supported"));
        };
        if config.size > MAX_CONFIG_BYTES {
            return Err(cannot_pull(
                remote,
                format!("the image's config of {} bytes is too large", config.size),
            ));
        }
        let total: u64 = layers.iter().map(|l| l.size).sum();
        if total > self.options.limits.max_total_bytes {
            return Err(cannot_pull(
                remote,
                format!(
                    "the image's layers hold {total} bytes, over nimbus's limit of {}",
                    self.options.limits.max_total_bytes
                ),
            ));
        }
        for descriptor in document.references() {
            self.fetch_blob(client, remote, repo, descriptor)?;
        }
        Ok(())
    }

    fn fetch_blob(
        &self,
        client: &mut Client<'_>,
        remote: &Remote,
        repo: &str,
        descriptor: &Descriptor,
    ) -> Result<(), ImageError> {
        let target = self.blob_path(&descriptor.digest)?;
        let known: Option<i64> = self
            .db
            .query_opt("SELECT size FROM blobs WHERE digest = ?1", &params![descriptor.digest])?
            .map(|row| row.get(0))
            .transpose()?;
        if let Some(size) = known.filter(|_| target.is_file()) {
            return self.record_blob(PULLED_REGION, repo, &descriptor.digest, size as u64);
        }
        let response =
            client.get(&format!("blobs/{}", descriptor.digest), None).map_err(|failure| match failure {
                Failure::NotFound => cannot_pull(remote, format!("blob {} not found", descriptor.digest)),
                Failure::Denied(why) | Failure::Other(why) => cannot_pull(remote, why),
            })?;
        let partial = self.area.path(&format!("uploads/pull-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut reader = response.into_body().into_reader().take(descriptor.size + 1);
            let mut hashing = Hashing::new(fs::File::create(&partial)?);
            std::io::copy(&mut reader, &mut hashing)
                .map_err(|e| cannot_pull(remote, format!("failed to copy {}: {e}", descriptor.digest)))?;
            let written = hashing.written;
            let (mut file, actual) = hashing.finish();
            file.flush()?;
            file.sync_data()?;
            if written != descriptor.size || actual != descriptor.digest {
                return Err(cannot_pull(
                    remote,
                    format!(
                        "failed to copy {}: got {written} bytes hashing to {actual}, expected {} bytes",
                        descriptor.digest, descriptor.size
                    ),
                ));
            }
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&partial, &target)?;
            if let Some(parent) = target.parent() {
                nimbus_store::blobs::sync_dir(parent)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        result?;
        self.record_blob(PULLED_REGION, repo, &descriptor.digest, descriptor.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str) -> Remote {
        Remote::of(&Reference::parse(text).unwrap())
    }

    #[test]
    fn names_registries_as_docker_does() {
        let hub = remote("busybox");
        assert_eq!(
            (hub.base.as_str(), hub.repository.as_str()),
            ("https://registry-1.docker.io", "library/busybox")
        );
        assert_eq!(hub.canonical(), "docker.io/library/busybox:latest");
        assert_eq!(remote("docker.io/bitnami/redis:7").cache_repository(), "docker.io/bitnami/redis");
        let ecr = remote("public.ecr.aws/lambda/python:3.12");
        assert_eq!((ecr.base.as_str(), ecr.version.as_str()), ("https://public.ecr.aws", "3.12"));
        let local = remote("127.0.0.1:5001/team/app:v1");
        assert_eq!(
            (local.base.as_str(), local.cache_repository().as_str()),
            ("http://127.0.0.1:5001", "127.0.0.1:5001/team/app")
        );
        assert_eq!(local_host("000000000000.dkr.ecr.us-east-1.localhost:4566"), (true, Some(4566)));
        assert_eq!(local_host("ghcr.io"), (false, None));
    }

    #[test]
    fn tells_nimbus_from_other_registries() {
        let remote = |text: &str| is_remote(&Reference::parse(text).unwrap(), Some(4566));
        assert!(!remote("app:v1") && !remote("localhost/app") && !remote("127.0.0.1:4566/app"));
        assert!(!remote("000000000000.dkr.ecr.us-east-1.localhost:4566/app"));
        assert!(!remote("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"), "ECR is nimbus");
        assert!(remote("127.0.0.1:5001/app") && remote("000000000000.dkr.ecr.us-east-1.localhost:5001/app"));
        assert!(remote("docker.io/library/busybox") && remote("public.ecr.aws/lambda/python:3.12"));
    }
}
