//! Container image functions (`PackageType: Image`): the image is resolved in nimbus's image
//! store (through [`ImageStore`], which the binary wires to the ECR service's store) when the
//! function is created or its code updated, pinned by digest (`ResolvedImageUri`), and unpacked
//! into a read-only root the function's environments run in, started as the image says unless
//! `ImageConfig` overrides `EntryPoint`, `Command` or `WorkingDirectory`, as the image's `User`
//! (Lambda's own `sbx_user1051` when it names none).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use nimbus_api::AwsError;
use nimbus_functions::{ImageSource, PreparedImage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the image store answers for an image reference.
pub struct ResolvedImage {
    pub rootfs: PathBuf,
    /// `<registry>/<repo>@sha256:…` of what the reference named.
    pub resolved_uri: String,
    /// The manifest digest (`sha256:…`) for the function's architecture.
    pub digest: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// The image's architecture in AWS's words.
    pub architecture: String,
    /// The image config's `User` as uid and gid (names resolved in the image's /etc/passwd).
    pub user: Option<(u32, u32)>,
    /// Keeps the root while held.
    pub hold: Box<dyn std::any::Any + Send + Sync>,
}

/// The image store as Lambda needs it; blocking (it may unpack an image).
pub trait ImageStore: Send + Sync {
    /// `Err` carries the store's reason (`CannotPullContainerError: …`).
    fn resolve(&self, uri: &str, architecture: &str) -> Result<ResolvedImage, String>;
}

/// Shared by the registry and every image function's spec; set by the binary.
pub type ImageCell = Arc<OnceLock<Arc<dyn ImageStore>>>;

/// What a stored image function remembers of its image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct StoredImage {
    pub image_uri: String,
    pub resolved_image_uri: String,
    /// `ImageConfig` as given (`EntryPoint`, `Command`, `WorkingDirectory`).
    #[serde(default)]
    pub image_config: Option<Value>,
}

/// Resolves `uri` now, for CreateFunction and UpdateFunctionCode, in AWS's words on failure.
pub fn resolve(cell: &ImageCell, uri: &str, architecture: &str) -> Result<ResolvedImage, AwsError> {
    let store = cell.get().ok_or_else(|| {
        AwsError::invalid_parameter("nimbus's image store is not available to Lambda in this nimbus")
    })?;
    let resolved = tokio::task::block_in_place(|| store.resolve(uri, architecture)).map_err(|why| {
        if why.contains("is built for") || why.contains("has no manifest for platform") {
            AwsError::invalid_parameter(format!(
                "The image manifest, config or layer media type for the source image {uri} is not supported: {}",
                why.trim_start_matches("CannotPullContainerError: ")
            ))
        } else if why.contains("not found") || why.contains("pull access denied") {
            AwsError::invalid_parameter(format!(
                "Source image {uri} does not exist. Provide a valid source image."
            ))
        } else {
            AwsError::invalid_parameter(format!("Source image {uri} cannot be used: {why}"))
        }
    })?;
    Ok(resolved)
}

/// `ImageConfig` checked as AWS does (lists of strings, a string), returned as stored.
pub fn image_config(value: Option<&Value>) -> Result<Option<Value>, AwsError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let object =
        value.as_object().ok_or_else(|| AwsError::invalid_parameter("ImageConfig must be an object"))?;
    for (key, member) in object {
        let valid = match key.as_str() {
            "EntryPoint" | "Command" => member.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "WorkingDirectory" => member.is_string(),
            _ => false,
        };
        if !valid {
            return Err(AwsError::invalid_parameter(format!("ImageConfig.{key} is not valid")));
        }
    }
    Ok(Some(value.clone()))
}

/// The environments' image: resolved again (from the store's cache of unpacked roots) by digest
/// each time an environment starts.
#[derive(Clone)]
pub struct FunctionImage {
    pub cell: ImageCell,
    pub stored: StoredImage,
    pub architecture: String,
}

impl std::fmt::Debug for FunctionImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionImage({})", self.stored.resolved_image_uri)
    }
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

impl ImageSource for FunctionImage {
    fn prepare(&self) -> Result<PreparedImage, String> {
        let store = self.cell.get().ok_or("nimbus's image store is not available")?;
        let image = store.resolve(&self.stored.resolved_image_uri, &self.architecture)?;
        let config = self.stored.image_config.as_ref();
        let entrypoint = strings(config.and_then(|c| c.get("EntryPoint"))).unwrap_or(image.entrypoint);
        let cmd = strings(config.and_then(|c| c.get("Command"))).unwrap_or(image.cmd);
        let mut argv = entrypoint.into_iter().chain(cmd);
        let program = argv.next().ok_or("the image names no entrypoint or command to run")?;
        let env: Vec<(String, String)> = image
            .env
            .iter()
            .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let path = env.iter().find(|(k, _)| k == "PATH").map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v);
        let cwd = config
            .and_then(|c| c.get("WorkingDirectory"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(image.working_dir)
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(PreparedImage {
            program: find_program(&image.rootfs, &program, path),
            args: argv.collect(),
            env,
            cwd: PathBuf::from(cwd),
            user: image.user,
            rootfs: image.rootfs,
            hold: image.hold,
        })
    }
}

/// A program named without a `/` is looked up in the image's `PATH`, inside its root.
fn find_program(rootfs: &Path, program: &str, path: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            rootfs.join(candidate.strip_prefix("/").unwrap_or(candidate)).symlink_metadata().is_ok()
        })
        .unwrap_or_else(|| PathBuf::from(program))
}
