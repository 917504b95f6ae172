//! The functions nimbus knows: durable in the store, mirrored in memory so that invokes read
//! nothing from disk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nimbus_api::AwsError;
use nimbus_functions::FunctionSpec;
use nimbus_store::code::CodeStore;
use nimbus_store::{FunctionRow, Store, StoreError};

use crate::layers::Layers;
use crate::model::StoredFunction;
use crate::validate;

pub const LATEST: &str = "$LATEST";

/// One function version, ready to invoke.
pub struct Entry {
    pub stored: StoredFunction,
    pub code_hex: String,
    pub spec: Arc<FunctionSpec>,
}

pub struct Registry {
    store: Arc<dyn Store>,
    pub code: Arc<CodeStore>,
    functions: RwLock<BTreeMap<String, Arc<Entry>>>,
    region: String,
    endpoint_url: String,
    /// Shared file systems' directories, one per access point.
    file_systems: PathBuf,
    pub layers: Arc<Layers>,
}

impl Registry {
    /// Loads every stored function. A function whose code cannot be found is still listed;
    /// invoking it reports the problem.
    pub fn load(
        store: Arc<dyn Store>,
        code: Arc<CodeStore>,
        region: String,
        endpoint_url: String,
        file_systems: PathBuf,
        layers: Arc<Layers>,
    ) -> Result<Registry, StoreError> {
        let functions = RwLock::new(BTreeMap::new());
        let registry = Registry { store, code, functions, region, endpoint_url, file_systems, layers };
        let rows = registry.store.load_functions()?;
        let mut functions = BTreeMap::new();
        for row in rows.into_iter().filter(|row| row.version == LATEST) {
            match serde_json::from_str::<StoredFunction>(&row.config) {
                Ok(stored) => {
                    functions.insert(row.name.clone(), Arc::new(registry.entry(stored, row.code_sha256)));
                }
                Err(error) => eprintln!("nimbus: skipping unreadable stored function {}: {error}", row.name),
            }
        }
        *registry.functions.write().unwrap_or_else(|p| p.into_inner()) = functions;
        Ok(registry)
    }

    pub fn entry(&self, stored: StoredFunction, code_hex: String) -> Entry {
        let config = &stored.configuration;
        let spec = FunctionSpec {
            name: config.function_name.clone(),
            version: config.version.clone(),
            revision: config.revision_id.clone(),
            runtime: config.runtime.clone(),
            handler: config.handler.clone(),
            code_dir: self.code.extracted_dir(&code_hex).unwrap_or_else(|_| self.code.zip_path(&code_hex)),
            memory_mb: config.memory_size,
            timeout: Duration::from_secs(u64::from(config.timeout)),
            environment: config
                .environment
                .as_ref()
                .map(|env| env.variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            log_group: config.logging_config.log_group.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            ephemeral_mb: config.ephemeral_storage.size,
            shared_mounts: config
                .file_system_configs
                .iter()
                .filter_map(|fs| {
                    let dir = self.file_system_dir(validate::access_point_id(&fs.arn)?);
                    Some((dir, PathBuf::from(&fs.local_mount_path)))
                })
                .collect(),
            layers: config
                .layers
                .iter()
                .filter_map(|reference| self.layers.extracted_dir(&*self.layers.by_arn(&reference.arn)?))
                .collect(),
            architecture: config.architectures.first().cloned().unwrap_or_else(|| "x86_64".into()),
            reserved_concurrency: None,
            isolated_network: config
                .vpc_config
                .as_ref()
                .and_then(|vpc| vpc.get("SubnetIds")?.as_array().map(|ids| !ids.is_empty()))
                .unwrap_or(false),
        };
        Entry { stored, code_hex, spec: Arc::new(spec) }
    }

    /// The durable directory behind an access point, created on first use and writable by the
    /// sandbox's user.
    fn file_system_dir(&self, access_point: &str) -> PathBuf {
        let dir = self.file_systems.join(access_point);
        if !dir.exists() && std::fs::create_dir_all(&dir).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        }
        dir
    }

    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.functions.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Up to `limit` functions named after `marker`, in name order, and whether more follow.
    pub fn page(&self, marker: Option<&str>, limit: usize) -> (Vec<Arc<Entry>>, bool) {
        let functions = self.functions.read().unwrap_or_else(|p| p.into_inner());
        let mut after = functions
            .iter()
            .filter(|(name, _)| marker.is_none_or(|m| name.as_str() > m))
            .map(|(_, entry)| entry.clone());
        let page: Vec<_> = after.by_ref().take(limit).collect();
        let more = after.next().is_some();
        (page, more)
    }

    /// Persists a new function, then makes it visible.
    pub async fn insert(&self, entry: Entry) -> Result<Arc<Entry>, AwsError> {
        let row = row_of(&entry)?;
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.insert_function(&row)).await {
            Ok(Ok(())) => {}
            Ok(Err(StoreError::Conflict)) => {
                let name = &entry.stored.configuration.function_name;
                return Err(AwsError::conflict(format!("Function already exist: {name}")));
            }
            Ok(Err(error)) => return Err(AwsError::service(error.to_string())),
            Err(join) => return Err(AwsError::service(join.to_string())),
        }
        let entry = Arc::new(entry);
        let name = entry.stored.configuration.function_name.clone();
        self.functions.write().unwrap_or_else(|p| p.into_inner()).insert(name, entry.clone());
        Ok(entry)
    }

    /// Persists a changed function, then makes the change visible.
    pub async fn replace(&self, entry: Entry) -> Result<Arc<Entry>, AwsError> {
        let row = row_of(&entry)?;
        let store = self.store.clone();
        blocking(move || store.update_function(&row)).await?;
        let entry = Arc::new(entry);
        let name = entry.stored.configuration.function_name.clone();
        self.functions.write().unwrap_or_else(|p| p.into_inner()).insert(name, entry.clone());
        Ok(entry)
    }

    /// Deletes a function durably, and its code package when nothing else uses it.
    pub async fn remove(&self, entry: &Entry) -> Result<(), AwsError> {
        let name = entry.stored.configuration.function_name.clone();
        let store = self.store.clone();
        let code = self.code.clone();
        let code_hex = entry.code_hex.clone();
        self.functions.write().unwrap_or_else(|p| p.into_inner()).remove(&name);
        blocking(move || {
            store.delete_function(&name)?;
            if !store.code_in_use(&code_hex)? {
                let _ = code.remove(&code_hex);
            }
            Ok(())
        })
        .await
    }
}

fn row_of(entry: &Entry) -> Result<FunctionRow, AwsError> {
    let config = serde_json::to_string(&entry.stored).map_err(|e| AwsError::service(e.to_string()))?;
    Ok(FunctionRow {
        name: entry.stored.configuration.function_name.clone(),
        version: entry.stored.configuration.version.clone(),
        config,
        code_sha256: entry.code_hex.clone(),
    })
}

async fn blocking(work: impl FnOnce() -> Result<(), StoreError> + Send + 'static) -> Result<(), AwsError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(AwsError::service(error.to_string())),
        Err(join) => Err(AwsError::service(join.to_string())),
    }
}
