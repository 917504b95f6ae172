//! The documents of the OCI image spec and Docker's v2 schema 2 that nimbus reads: manifests,
//! indexes (manifest lists) and image configs. Only the members nimbus uses are typed; a
//! document is stored and served as the exact bytes it was pushed with.

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types nimbus stores (schema 1 is long deprecated and refused).
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A manifest or an index, told apart by `mediaType` or, when absent (OCI allows that), by
/// which list it carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Image { media_type: String, config: Descriptor, layers: Vec<Descriptor> },
    Index { media_type: String, manifests: Vec<Descriptor> },
}

impl Parsed {
    pub fn media_type(&self) -> &str {
        match self {
            Parsed::Image { media_type, .. } | Parsed::Index { media_type, .. } => media_type,
        }
    }

    /// Every digest the document refers to (config and layers, or the manifests of an index).
    pub fn references(&self) -> Vec<&Descriptor> {
        match self {
            Parsed::Image { config, layers, .. } => std::iter::once(config).chain(layers).collect(),
            Parsed::Index { manifests, .. } => manifests.iter().collect(),
        }
    }
}

/// Reads a manifest or index; `declared` is the Content-Type it came with, if any.
pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Parsed, String> {
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    if document.schema_version != 2 {
        return Err(format!(
            "schemaVersion {} is not supported: only image manifest schema 2 and OCI manifests are",
            document.schema_version
        ));
    }
    let declared = declared
        .map(|t| t.split(';').next().unwrap_or(t).trim())
        .filter(|t| !t.is_empty() && *t != "application/json" && *t != "application/octet-stream");
    let media_type = match (&document.media_type, declared) {
        (Some(inner), _) => inner.clone(),
        (None, Some(declared)) => declared.to_owned(),
        (None, None) if document.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    if !MANIFEST_TYPES.contains(&media_type.as_str()) {
        return Err(format!("unsupported manifest media type {media_type}"));
    }
    for descriptor in document
        .config
        .iter()
        .chain(document.layers.iter().flatten())
        .chain(document.manifests.iter().flatten())
    {
        crate::digest::check(&descriptor.digest)?;
    }
    match (media_type.as_str(), document.config, document.layers, document.manifests) {
        (OCI_INDEX | DOCKER_LIST, _, _, Some(manifests)) => Ok(Parsed::Index { media_type, manifests }),
        (OCI_MANIFEST | DOCKER_MANIFEST, Some(config), layers, _) => {
            Ok(Parsed::Image { media_type, config, layers: layers.unwrap_or_default() })
        }
        (kind, ..) => Err(format!("the {kind} document lacks its required members")),
    }
}

/// The platform AWS's architectures run: Lambda and Batch say `x86_64` or `arm64`.
pub fn platform_of(architecture: &str) -> &str {
    match architecture {
        "x86_64" | "amd64" => "amd64",
        "arm64" | "aarch64" => "arm64",
        other => other,
    }
}

/// The manifest of an index made for linux on `architecture`.
pub fn pick<'a>(manifests: &'a [Descriptor], architecture: &str) -> Option<&'a Descriptor> {
    let wanted = platform_of(architecture);
    manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == wanted)
            && MANIFEST_TYPES.contains(&d.media_type.as_str())
    })
}

/// What an image's config says about running it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn tells_manifests_from_indexes_and_picks_platforms() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D}","size":2}},"layers":[]}}"#
        );
        let parsed = parse(manifest.as_bytes(), None).unwrap();
        assert_eq!(parsed.media_type(), OCI_MANIFEST);
        assert_eq!(parsed.references().len(), 1);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        );
        let Parsed::Index { manifests, .. } = parse(index.as_bytes(), None).unwrap() else { panic!() };
        assert!(pick(&manifests, "arm64").is_some());
        assert!(pick(&manifests, "x86_64").is_none());
        assert!(parse(br#"{"schemaVersion":1}"#, None).unwrap_err().contains("schemaVersion 1"));
        let bad = manifest.replace(D, "sha256:zz");
        assert!(parse(bad.as_bytes(), None).is_err());
    }
}
