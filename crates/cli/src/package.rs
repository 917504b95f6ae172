//! `nimbus deploy`'s packaging: every local path a template names (a function's code, a layer's
//! content, an API definition, a nested template) becomes an object in nimbus's own S3, named by
//! the hash of its bytes, so an unchanged package is neither uploaded nor deployed again.
//! Python and Node dependencies are installed with the host's pip/npm into a cache keyed by the
//! hash of the requirements file, and zipped beside the code.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::{Client, Error};

/// The bucket `nimbus deploy` keeps packages in (made on first use).
pub const BUCKET: &str = "nimbus-deploy-artifacts";

/// A local directory a deployed function's code came from (what `nimbus sync --watch` watches).
#[derive(Clone, Debug)]
pub struct CodeSource {
    pub logical_id: String,
    pub directory: PathBuf,
    pub runtime: String,
}

pub struct Packager<'a> {
    client: &'a Client,
    /// Where dependencies installed by pip/npm are kept between deploys.
    cache: PathBuf,
    pub sources: Vec<CodeSource>,
}

impl<'a> Packager<'a> {
    pub fn new(client: &'a Client) -> Packager<'a> {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("nimbus/deps");
        Packager { client, cache, sources: Vec::new() }
    }

    /// Rewrites every local path in `template` (read from `base`) to the uploaded object.
    pub fn package(&mut self, template: &mut Value, base: &Path) -> Result<(), Error> {
        self.ensure_bucket()?;
        let globals_runtime =
            template["Globals"]["Function"]["Runtime"].as_str().unwrap_or_default().to_owned();
        if let Some(uri) = local(&template["Globals"]["Function"]["CodeUri"]) {
            let key = self.upload_code(&base.join(uri), &globals_runtime)?;
            template["Globals"]["Function"]["CodeUri"] = Value::String(format!("s3://{BUCKET}/{key}"));
        }
        let Some(resources) = template.get_mut("Resources").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        for (logical_id, resource) in resources.iter_mut() {
            let kind = resource["Type"].as_str().unwrap_or_default().to_owned();
            let Some(properties) = resource.get_mut("Properties").filter(|p| p.is_object()) else { continue };
            let runtime = properties["Runtime"].as_str().unwrap_or(&globals_runtime).to_owned();
            match kind.as_str() {
                "AWS::Serverless::Function" => {
                    if let Some(uri) = local(&properties["CodeUri"]) {
                        let directory = base.join(uri);
                        let key = self.upload_code(&directory, &runtime)?;
                        properties["CodeUri"] = Value::String(format!("s3://{BUCKET}/{key}"));
                        self.sources.push(CodeSource { logical_id: logical_id.clone(), directory, runtime });
                    }
                }
                "AWS::Lambda::Function" => {
                    if let Some(uri) = local(&properties["Code"]) {
                        let directory = base.join(uri);
                        let key = self.upload_code(&directory, &runtime)?;
                        properties["Code"] = json!({"S3Bucket": BUCKET, "S3Key": key});
                        self.sources.push(CodeSource { logical_id: logical_id.clone(), directory, runtime });
                    }
                }
                "AWS::Serverless::LayerVersion" => {
                    if let Some(uri) = local(&properties["ContentUri"]) {
                        let key = self.upload_code(&base.join(uri), "")?;
                        properties["ContentUri"] = Value::String(format!("s3://{BUCKET}/{key}"));
                    }
                }
                "AWS::Lambda::LayerVersion" => {
                    if let Some(uri) = local(&properties["Content"]) {
                        let key = self.upload_code(&base.join(uri), "")?;
                        properties["Content"] = json!({"S3Bucket": BUCKET, "S3Key": key});
                    }
                }
                "AWS::Serverless::Api" | "AWS::Serverless::HttpApi" | "AWS::Serverless::StateMachine" => {
                    if let Some(uri) = local(&properties["DefinitionUri"]) {
                        let key = self.upload_file(&base.join(uri))?;
                        properties["DefinitionUri"] = json!({"Bucket": BUCKET, "Key": key});
                    }
                }
                "AWS::CloudFormation::Stack" | "AWS::Serverless::Application" => {
                    let field = if kind == "AWS::CloudFormation::Stack" { "TemplateURL" } else { "Location" };
                    if let Some(uri) = local(&properties[field]) {
                        let url = self.upload_template(&base.join(uri))?;
                        properties[field] = Value::String(url);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn ensure_bucket(&self) -> Result<(), Error> {
        let head = self.client.send("HEAD", &format!("/{BUCKET}"), &[], b"")?;
        if head.status == 200 {
            return Ok(());
        }
        let made = self.client.send("PUT", &format!("/{BUCKET}"), &[], b"")?;
        match made.status {
            200 | 409 => Ok(()),
            status => Err(Error::Status {
                url: format!("{}/{BUCKET}", self.client.endpoint()),
                status,
                body: String::from_utf8_lossy(&made.body).chars().take(200).collect(),
            }),
        }
    }

    /// Uploads `bytes` under their hash unless already there; returns the key.
    fn upload(&self, bytes: &[u8], extension: &str) -> Result<String, Error> {
        let key = format!("{}.{extension}", hex(&Sha256::digest(bytes)));
        let path = format!("/{BUCKET}/{key}");
        if self.client.send("HEAD", &path, &[], b"")?.status == 200 {
            return Ok(key);
        }
        let put = self.client.send("PUT", &path, &[], bytes)?;
        if put.status != 200 {
            return Err(Error::Status {
                url: format!("{}{path}", self.client.endpoint()),
                status: put.status,
                body: String::from_utf8_lossy(&put.body).chars().take(200).collect(),
            });
        }
        Ok(key)
    }

    fn upload_code(&self, path: &Path, runtime: &str) -> Result<String, Error> {
        let zip = self.zip_code(path, runtime)?;
        self.upload(&zip, "zip")
    }

    fn upload_file(&self, path: &Path) -> Result<String, Error> {
        let bytes = std::fs::read(path).map_err(|error| usage(path, error))?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
        self.upload(&bytes, extension)
    }

    /// A nested template is packaged like its parent, then stored as JSON.
    fn upload_template(&mut self, path: &Path) -> Result<String, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| usage(path, error))?;
        let mut child = nimbus_template::parse(&text)
            .map_err(|error| Error::Usage(format!("{}: {error}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let sources_before = self.sources.len();
        self.package(&mut child, base)?;
        // A nested stack's functions are synced through their own stack, not this one.
        self.sources.truncate(sources_before);
        let key = self.upload(child.to_string().as_bytes(), "json")?;
        Ok(format!("{}/{BUCKET}/{key}", self.client.endpoint()))
    }

    /// The zip a function or layer is deployed from: a `.zip` file as it is, a directory's
    /// files (with its installed dependencies), or a single file.
    pub fn zip_code(&self, path: &Path, runtime: &str) -> Result<Vec<u8>, Error> {
        if path.is_file() {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
                return std::fs::read(path).map_err(|error| usage(path, error));
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_owned();
            return zip_entries(BTreeMap::from([(name, path.to_path_buf())]));
        }
        if !path.is_dir() {
            return Err(Error::Usage(format!(
                "{}: no such file or directory (a CodeUri in the template)",
                path.display()
            )));
        }
        let mut entries = BTreeMap::new();
        if let Some(dependencies) = self.dependencies(path, runtime)? {
            collect(&dependencies, &dependencies, &mut entries)?;
        }
        collect(path, path, &mut entries)?;
        zip_entries(entries)
    }

    /// The directory of installed dependencies for a function's requirements, made once per
    /// requirements file (by hash) with the host's pip or npm.
    fn dependencies(&self, code: &Path, runtime: &str) -> Result<Option<PathBuf>, Error> {
        let (manifest, tool) = if runtime.starts_with("python") {
            (code.join("requirements.txt"), "pip")
        } else if runtime.starts_with("nodejs") && !code.join("node_modules").exists() {
            (code.join("package.json"), "npm")
        } else {
            return Ok(None);
        };
        let Ok(text) = std::fs::read(&manifest) else { return Ok(None) };
        if tool == "npm" {
            let declared: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            if declared["dependencies"].as_object().is_none_or(|d| d.is_empty()) {
                return Ok(None);
            }
        }
        let mut hash = Sha256::new();
        hash.update(runtime.as_bytes());
        hash.update(&text);
        let target = self.cache.join(format!("{tool}-{}", &hex(&hash.finalize())[..32]));
        if target.join(".complete").exists() {
            return Ok(Some(target));
        }
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&target).map_err(|error| usage(&target, error))?;
        let mut command = if tool == "pip" {
            let mut pip = Command::new("python3");
            pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&manifest)
                .arg("-t")
                .arg(&target);
            pip
        } else {
            std::fs::copy(&manifest, target.join("package.json")).map_err(|error| usage(&target, error))?;
            let lock = code.join("package-lock.json");
            if lock.exists() {
                std::fs::copy(&lock, target.join("package-lock.json"))
                    .map_err(|error| usage(&target, error))?;
            }
            let mut npm = Command::new("npm");
            npm.args(["install", "--omit=dev", "--no-audit", "--no-fund", "--silent"]).current_dir(&target);
            npm
        };
        let output = command.output().map_err(|error| Error::Usage(format!("cannot run {tool}: {error}")))?;
        if !output.status.success() {
            return Err(Error::Usage(format!(
                "{tool} could not install {}: {}",
                manifest.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        // npm's own files are not the function's.
        let _ = std::fs::remove_file(target.join("package.json"));
        let _ = std::fs::remove_file(target.join("package-lock.json"));
        std::fs::write(target.join(".complete"), b"").map_err(|error| usage(&target, error))?;
        Ok(Some(target))
    }
}

/// A template value naming a local path (not `s3://…`, not a URL, not an object).
fn local(value: &Value) -> Option<&str> {
    let text = value.as_str()?;
    let remote = ["s3://", "http://", "https://"].iter().any(|scheme| text.starts_with(scheme));
    (!remote && !text.is_empty()).then_some(text)
}

fn usage(path: &Path, error: std::io::Error) -> Error {
    Error::Usage(format!("{}: {error}", path.display()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Directories that are never part of a package.
const SKIPPED: &[&str] = &[".aws-sam", ".git", "__pycache__", ".complete"];

fn collect(root: &Path, directory: &Path, entries: &mut BTreeMap<String, PathBuf>) -> Result<(), Error> {
    let listing = std::fs::read_dir(directory).map_err(|error| usage(directory, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| usage(directory, error))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if SKIPPED.contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, entries)?;
        } else if path.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            entries.insert(relative, path);
        }
    }
    Ok(())
}

/// A zip of `entries` (name → file), in name order with fixed timestamps, so the same files
/// always give the same bytes (and the same key).
fn zip_entries(entries: BTreeMap<String, PathBuf>) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::PermissionsExt;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, path) in entries {
        let bytes = std::fs::read(&path).map_err(|error| usage(&path, error))?;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode()).unwrap_or(0o644);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode & 0o777);
        writer.start_file(name, options).map_err(|error| Error::Usage(format!("cannot zip: {error}")))?;
        writer.write_all(&bytes).map_err(Error::Output)?;
    }
    let cursor = writer.finish().map_err(|error| Error::Usage(format!("cannot zip: {error}")))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_files_zip_to_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("nimbus-package-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib/__pycache__")).unwrap();
        std::fs::write(dir.join("app.py"), "def handler(e, c): return 1\n").unwrap();
        std::fs::write(dir.join("lib/util.py"), "X = 1\n").unwrap();
        std::fs::write(dir.join("lib/__pycache__/util.pyc"), "junk").unwrap();
        let client = Client::new("http://127.0.0.1:9");
        let packager = Packager::new(&client);
        let first = packager.zip_code(&dir, "python3.12").unwrap();
        let second = packager.zip_code(&dir, "python3.12").unwrap();
        assert_eq!(first, second);
        let archive = zip::ZipArchive::new(std::io::Cursor::new(first)).unwrap();
        let names: Vec<&str> = archive.file_names().collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"app.py") && names.contains(&"lib/util.py"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_local_paths_are_packaged() {
        assert_eq!(local(&json!("src/")), Some("src/"));
        assert_eq!(local(&json!("s3://b/k.zip")), None);
        assert_eq!(local(&json!({"Bucket": "b", "Key": "k"})), None);
    }
}
