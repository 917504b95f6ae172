//! Layers: PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn, ListLayers,
//! ListLayerVersions and DeleteLayerVersion. A function's layers are merged read-only at `/opt`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nimbus_api::AwsError;
use nimbus_store::code::{CodeError, CodeStore};
use nimbus_store::{LayerRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::validate;

/// AWS's limits: layers per function, runtimes and architectures per layer version.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;
const MAX_COMPATIBLE_RUNTIMES: usize = 15;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerVersion {
    pub layer_arn: String,
    pub layer_version_arn: String,
    #[serde(default)]
    pub description: String,
    pub created_date: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible_runtimes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_info: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible_architectures: Vec<String>,
    /// Not part of AWS's shape: kept for `Content` and the 250 MB budget.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub code_sha256: String,
    #[serde(default)]
    pub code_size: u64,
    #[serde(default)]
    pub unzipped_size: u64,
}

pub struct Layer {
    pub version: LayerVersion,
    pub code_hex: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    description: Option<String>,
    #[serde(default)]
    compatible_runtimes: Vec<String>,
    license_info: Option<String>,
    #[serde(default)]
    compatible_architectures: Vec<String>,
}

pub struct Layers {
    store: Arc<dyn Store>,
    code: Arc<CodeStore>,
    versions: RwLock<BTreeMap<(String, u64), Arc<Layer>>>,
    arn_prefix: String,
}

impl Layers {
    pub fn load(
        store: Arc<dyn Store>,
        code: Arc<CodeStore>,
        arn_prefix: String,
    ) -> Result<Layers, StoreError> {
        let layers = Layers { store, code, versions: RwLock::default(), arn_prefix };
        layers.reload()?;
        Ok(layers)
    }

    /// Reads every layer version again (at start, and when another node changed some).
    pub fn reload(&self) -> Result<(), StoreError> {
        let mut versions = BTreeMap::new();
        for row in self.store.load_layers()? {
            if let Ok(version) = serde_json::from_str::<LayerVersion>(&row.config) {
                let layer = Layer { version, code_hex: row.code_sha256 };
                versions.insert((row.name, row.version), Arc::new(layer));
            }
        }
        *self.versions.write().unwrap_or_else(|p| p.into_inner()) = versions;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, u64), Arc<Layer>>> {
        self.versions.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A layer version by its ARN (`arn:aws:lambda:<region>:<account>:layer:<name>:<version>`);
    /// layers of other accounts are found when they were imported.
    pub fn by_arn(&self, arn: &str) -> Option<Arc<Layer>> {
        let (name, version) = match arn.strip_prefix(&self.arn_prefix) {
            Some(rest) => rest.rsplit_once(':')?,
            None => foreign(arn)?,
        };
        self.read().get(&(name.to_owned(), version.parse().ok()?)).cloned()
    }

    /// Whether `arn` names a layer version published in another account (or region) that
    /// nimbus does not hold: a function may name it, and runs without it until it is imported.
    pub fn is_missing_foreign(&self, arn: &str) -> bool {
        !arn.starts_with(&self.arn_prefix) && foreign(arn).is_some() && self.by_arn(arn).is_none()
    }

    /// Stores `zip` as the layer version `arn` of another account (`nimbus layers import`), so
    /// that functions naming it find it at `/opt`.
    pub async fn import(&self, arn: &str, zip: Vec<u8>, endpoint: &str) -> Result<Value, AwsError> {
        let Some((name, number)) = foreign(arn).filter(|_| !arn.starts_with(&self.arn_prefix)) else {
            return Err(AwsError::invalid_parameter(format!(
                "{arn} is not the ARN of a layer version of another account (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION); publish layers of this account with PublishLayerVersion"
            )));
        };
        let number: u64 = number.parse().map_err(|_| not_found(arn))?;
        let code = self.code.clone();
        let package = match tokio::task::spawn_blocking(move || code.put_zip(&zip)).await {
            Ok(Ok(package)) => package,
            Ok(Err(CodeError::Io(error))) => return Err(AwsError::service(error.to_string())),
            Ok(Err(error)) => return Err(AwsError::invalid_parameter(error.to_string())),
            Err(join) => return Err(AwsError::service(join.to_string())),
        };
        let version = LayerVersion {
            layer_version_arn: arn.to_owned(),
            layer_arn: name.to_owned(),
            description: "imported into nimbus".into(),
            created_date: crate::functions::now(),
            version: number,
            compatible_runtimes: Vec::new(),
            license_info: None,
            compatible_architectures: Vec::new(),
            code_sha256: package.sha256_base64.clone(),
            code_size: package.size,
            unzipped_size: package.unzipped_size,
        };
        let row = LayerRow {
            name: name.to_owned(),
            version: number,
            config: serde_json::to_string(&version).unwrap_or_default(),
            code_sha256: package.sha256_hex.clone(),
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.import_layer(&row))
            .await
            .map_err(|e| AwsError::service(e.to_string()))?
            .map_err(|e| AwsError::service(e.to_string()))?;
        let layer = Arc::new(Layer { version, code_hex: package.sha256_hex });
        self.versions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((name.to_owned(), number), layer.clone());
        Ok(shown(&layer, endpoint))
    }

    pub fn extracted_dir(&self, layer: &Layer) -> Option<std::path::PathBuf> {
        self.code.extracted_dir(&layer.code_hex).ok()
    }

    /// `zip` is the content already fetched (inline or from S3) by the service.
    pub async fn publish(
        &self,
        name: &str,
        body: &[u8],
        zip: Vec<u8>,
        endpoint: &str,
    ) -> Result<Value, AwsError> {
        validate::code_request_size(body, "PublishLayerVersion")?;
        layer_name(name)?;
        let input: PublishInput = crate::functions::parse(body)?;
        for runtime in &input.compatible_runtimes {
            validate::runtime_name(runtime)?;
        }
        if input.compatible_runtimes.len() > MAX_COMPATIBLE_RUNTIMES {
            return Err(validate::constraint(
                format!("[{}]", input.compatible_runtimes.join(", ")),
                "compatibleRuntimes",
                "Member must have length less than or equal to 15",
            ));
        }
        if input.compatible_architectures.len() > 2
            || input.compatible_architectures.iter().any(|a| a != "x86_64" && a != "arm64")
        {
            return Err(validate::constraint(
                format!("[{}]", input.compatible_architectures.join(", ")),
                "compatibleArchitectures",
                "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
            ));
        }
        let code = self.code.clone();
        let package = match tokio::task::spawn_blocking(move || code.put_zip(&zip)).await {
            Ok(Ok(package)) => package,
            Ok(Err(CodeError::Io(error))) => return Err(AwsError::service(error.to_string())),
            Ok(Err(error)) => return Err(AwsError::invalid_parameter(error.to_string())),
            Err(join) => return Err(AwsError::service(join.to_string())),
        };
        let layer_arn = format!("{}{name}", self.arn_prefix);
        let template = LayerVersion {
            layer_version_arn: String::new(),
            layer_arn: layer_arn.clone(),
            description: input.description.unwrap_or_default(),
            created_date: crate::functions::now(),
            version: 0,
            compatible_runtimes: input.compatible_runtimes,
            license_info: input.license_info,
            compatible_architectures: input.compatible_architectures,
            code_sha256: package.sha256_base64.clone(),
            code_size: package.size,
            unzipped_size: package.unzipped_size,
        };
        let store = self.store.clone();
        let name_owned = name.to_owned();
        let hex = package.sha256_hex.clone();
        let stored_template = template.clone();
        let row = tokio::task::spawn_blocking(move || {
            store.insert_layer(&name_owned, &hex, &|number| {
                let mut version = stored_template.clone();
                version.version = number;
                version.layer_version_arn = format!("{}:{number}", version.layer_arn);
                serde_json::to_string(&version).unwrap_or_default()
            })
        })
        .await
        .map_err(|e| AwsError::service(e.to_string()))?
        .map_err(|e| AwsError::service(e.to_string()))?;
        let LayerRow { version: number, config, code_sha256, .. } = row;
        let version: LayerVersion =
            serde_json::from_str(&config).map_err(|e| AwsError::service(e.to_string()))?;
        let layer = Arc::new(Layer { version, code_hex: code_sha256 });
        self.versions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((name.to_owned(), number), layer.clone());
        Ok(shown(&layer, endpoint))
    }

    pub fn get(&self, name: &str, number: &str, endpoint: &str) -> Result<Value, AwsError> {
        let layer = self.find(name, number)?;
        Ok(shown(&layer, endpoint))
    }

    pub fn get_by_arn(&self, arn: Option<&str>, endpoint: &str) -> Result<Value, AwsError> {
        let arn = arn.ok_or_else(|| AwsError::invalid_parameter("Arn is required"))?;
        let layer = self.by_arn(arn).ok_or_else(|| not_found(arn))?;
        Ok(shown(&layer, endpoint))
    }

    fn find(&self, name: &str, number: &str) -> Result<Arc<Layer>, AwsError> {
        let arn = format!("{}{name}:{number}", self.arn_prefix);
        let number: u64 = number.parse().map_err(|_| not_found(&arn))?;
        self.read().get(&(name.to_owned(), number)).cloned().ok_or_else(|| not_found(&arn))
    }

    /// Every version of `name`, newest first, as AWS lists them.
    pub fn list_versions(&self, name: &str, runtime: Option<&str>, architecture: Option<&str>) -> Value {
        let versions: Vec<Value> = self
            .read()
            .range((name.to_owned(), 0)..=(name.to_owned(), u64::MAX))
            .rev()
            .filter(|(_, layer)| matches(layer, runtime, architecture))
            .map(|(_, layer)| list_item(layer))
            .collect();
        json!({ "LayerVersions": versions })
    }

    /// Each layer with its newest matching version.
    pub fn list(&self, runtime: Option<&str>, architecture: Option<&str>) -> Value {
        let mut latest: BTreeMap<String, Arc<Layer>> = BTreeMap::new();
        for ((name, _), layer) in self.read().iter() {
            if matches(layer, runtime, architecture) && !name.starts_with("arn:") {
                latest.insert(name.clone(), layer.clone());
            }
        }
        let layers: Vec<Value> = latest
            .iter()
            .map(|(name, layer)| {
                json!({
                    "LayerName": name,
                    "LayerArn": layer.version.layer_arn,
                    "LatestMatchingVersion": list_item(layer),
                })
            })
            .collect();
        json!({ "Layers": layers })
    }

    /// Deleting a version that does not exist succeeds, as on AWS. Functions already using
    /// it keep their copy: the content goes only when nothing references it.
    pub async fn delete(&self, name: &str, number: &str) -> Result<(), AwsError> {
        let Ok(number) = number.parse::<u64>() else { return Ok(()) };
        let removed =
            self.versions.write().unwrap_or_else(|p| p.into_inner()).remove(&(name.to_owned(), number));
        let Some(layer) = removed else { return Ok(()) };
        let store = self.store.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || match store.delete_layer(&name, number) {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(error) => Err(error),
        })
        .await
        .map_err(|e| AwsError::service(e.to_string()))?
        .map_err(|e| AwsError::service(e.to_string()))?;
        drop(layer);
        Ok(())
    }
}

fn matches(layer: &Layer, runtime: Option<&str>, architecture: Option<&str>) -> bool {
    let version = &layer.version;
    runtime.is_none_or(|r| version.compatible_runtimes.iter().any(|c| c == r))
        && architecture.is_none_or(|a| version.compatible_architectures.iter().any(|c| c == a))
}

fn list_item(layer: &Layer) -> Value {
    let mut item = serde_json::to_value(&layer.version).unwrap_or(Value::Null);
    if let Some(object) = item.as_object_mut() {
        for internal in ["LayerArn", "CodeSha256", "CodeSize", "UnzippedSize"] {
            object.remove(internal);
        }
    }
    item
}

/// AWS's output shape, with `Content` built from the stored package.
fn shown(layer: &Layer, endpoint: &str) -> Value {
    let mut out = serde_json::to_value(&layer.version).unwrap_or(Value::Null);
    if let Some(object) = out.as_object_mut() {
        for internal in ["CodeSha256", "CodeSize", "UnzippedSize"] {
            object.remove(internal);
        }
        object.insert(
            "Content".into(),
            json!({
                "Location": format!("{endpoint}/_nimbus/code/{}.zip", layer.code_hex),
                "CodeSha256": layer.version.code_sha256,
                "CodeSize": layer.version.code_size,
            }),
        );
    }
    out
}

/// A layer version ARN of any account: (the ARN without its version, the version).
fn foreign(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.split(':').collect();
    let shaped = parts.len() == 8 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "layer";
    shaped.then(|| arn.rsplit_once(':')).flatten()
}

fn not_found(arn: &str) -> AwsError {
    AwsError::not_found(format!("The resource you requested does not exist. (Layer version {arn})"))
}

fn layer_name(name: &str) -> Result<(), AwsError> {
    let valid = !name.is_empty()
        && name.len() <= 140
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(validate::constraint(
            name,
            "layerName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+",
        ))
    }
}
