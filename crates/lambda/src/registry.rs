//! The functions nimbus knows — each with its `$LATEST`, published versions and attached
//! resources (aliases, policy, concurrency …) — durable in the store and mirrored in memory, so
//! that invokes read nothing from disk. Changes replace a function's snapshot (copy on write).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use nimbus_api::AwsError;
use nimbus_functions::FunctionSpec;
use nimbus_store::code::CodeStore;
use nimbus_store::{FunctionRow, ResourceRow, Store, StoreError};
use serde_json::Value;

use crate::layers::Layers;
use crate::model::StoredFunction;
use crate::validate;

pub const LATEST: &str = "$LATEST";
/// Milliseconds between two re-reads of the store for names not known here.
const MISS_REFRESH_MS: i64 = 100;

/// One function version, ready to invoke.
/// Ends the spec revision of a version that names a layer nimbus does not hold.
const MISSING_LAYERS: &str = "+missing-layers";

pub struct Entry {
    pub stored: StoredFunction,
    pub code_hex: String,
    pub spec: Arc<FunctionSpec>,
}

/// A function: `$LATEST`, its published versions and its resources, keyed (kind, name).
#[derive(Clone)]
pub struct Function {
    pub latest: Arc<Entry>,
    pub versions: BTreeMap<u64, Arc<Entry>>,
    pub resources: BTreeMap<(String, String), Value>,
}

impl Function {
    pub fn name(&self) -> &str {
        &self.latest.stored.configuration.function_name
    }

    pub fn resource(&self, kind: &str, name: &str) -> Option<&Value> {
        self.resources.get(&(kind.to_owned(), name.to_owned()))
    }

    pub fn resources_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |((k, _), _)| k == kind)
            .map(|((_, name), value)| (name.as_str(), value))
    }
}

pub struct Registry {
    store: Arc<dyn Store>,
    pub code: Arc<CodeStore>,
    functions: RwLock<BTreeMap<String, Arc<Function>>>,
    /// The region and account the functions live in.
    identity: nimbus_api::Identity,
    endpoint_url: String,
    /// Shared file systems' directories, one per access point.
    file_systems: PathBuf,
    pub layers: Arc<Layers>,
    /// Set when several nodes share the store (see `get`), and when a miss last re-read it.
    shared: AtomicBool,
    refreshed_ms: AtomicI64,
    /// Reserved concurrency per function, shared with every spec of the function so that a
    /// change applies at once without retiring environments (negative: none).
    reserved: Mutex<HashMap<String, Arc<AtomicI64>>>,
    /// The image store, for container image functions (set by the binary).
    pub images: crate::images::ImageCell,
}

impl Registry {
    /// Loads every stored function. A function whose code cannot be found is still listed;
    /// invoking it reports the problem.
    pub fn load(
        store: Arc<dyn Store>,
        code: Arc<CodeStore>,
        identity: nimbus_api::Identity,
        endpoint_url: String,
        file_systems: PathBuf,
        layers: Arc<Layers>,
    ) -> Result<Registry, StoreError> {
        code.add_user(&store);
        let registry = Registry {
            store,
            code,
            functions: RwLock::new(BTreeMap::new()),
            identity,
            endpoint_url,
            file_systems,
            layers,
            reserved: Mutex::new(HashMap::new()),
            images: Default::default(),
            shared: AtomicBool::new(false),
            refreshed_ms: AtomicI64::new(0),
        };
        registry.reload()?;
        Ok(registry)
    }

    /// Reads every function again (another node changed some). Versions whose stored row is
    /// unchanged keep their entry, so their warm environments stay.
    pub fn reload(&self) -> Result<(), StoreError> {
        let known = self.functions.read().unwrap_or_else(|p| p.into_inner()).clone();
        let unchanged = |name: &str, version: &str, row: &FunctionRow| -> Option<Arc<Entry>> {
            let function = known.get(name)?;
            let entry = match version.parse::<u64>() {
                Ok(number) => function.versions.get(&number)?,
                Err(_) => &function.latest,
            };
            // A version missing a layer is built again: the layer may have been imported since.
            let same = entry.code_hex == row.code_sha256
                && !entry.spec.revision.ends_with(MISSING_LAYERS)
                && serde_json::to_string(&entry.stored).is_ok_and(|config| config == row.config);
            same.then(|| entry.clone())
        };
        let mut latest = BTreeMap::new();
        let mut versions: BTreeMap<String, BTreeMap<u64, Arc<Entry>>> = BTreeMap::new();
        for row in self.store.load_functions()? {
            if let Some(entry) = unchanged(&row.name, &row.version, &row) {
                match row.version.parse::<u64>() {
                    Ok(number) => versions.entry(row.name).or_default().insert(number, entry),
                    Err(_) => latest.insert(row.name, entry),
                };
                continue;
            }
            let stored = match serde_json::from_str::<StoredFunction>(&row.config) {
                Ok(stored) => stored,
                Err(error) => {
                    eprintln!("nimbus: skipping unreadable stored function {}: {error}", row.name);
                    continue;
                }
            };
            let entry = Arc::new(self.entry(stored, row.code_sha256));
            match row.version.parse::<u64>() {
                Ok(number) => {
                    versions.entry(row.name).or_default().insert(number, entry);
                }
                Err(_) => {
                    latest.insert(row.name, entry);
                }
            }
        }
        let mut resources: BTreeMap<String, BTreeMap<(String, String), Value>> = BTreeMap::new();
        for row in self.store.load_resources()? {
            if let Ok(value) = serde_json::from_str(&row.config) {
                resources.entry(row.function).or_default().insert((row.kind, row.name), value);
            }
        }
        let mut functions = BTreeMap::new();
        for (name, latest) in latest {
            let function = Function {
                latest,
                versions: versions.remove(&name).unwrap_or_default(),
                resources: resources.remove(&name).unwrap_or_default(),
            };
            let reserved = function.resource("concurrency", "").and_then(Value::as_i64).unwrap_or(-1);
            self.reserved_cell(&name).store(reserved, std::sync::atomic::Ordering::Release);
            functions.insert(name, Arc::new(function));
        }
        *self.functions.write().unwrap_or_else(|p| p.into_inner()) = functions;
        Ok(())
    }

    pub fn reserved_cell(&self, function: &str) -> Arc<AtomicI64> {
        let mut cells = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry(function.to_owned()).or_insert_with(|| Arc::new(AtomicI64::new(-1))).clone()
    }

    pub fn entry(&self, stored: StoredFunction, code_hex: String) -> Entry {
        let config = &stored.configuration;
        let spec = FunctionSpec {
            name: config.function_name.clone(),
            version: config.version.clone(),
            // A layer imported later changes what the environments run: new ones take it.
            revision: if config.layers.iter().any(|l| self.layers.by_arn(&l.arn).is_none()) {
                format!("{}{MISSING_LAYERS}", config.revision_id)
            } else {
                config.revision_id.clone()
            },
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
            region: self.identity.region.clone(),
            account: self.identity.account.clone(),
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
            notices: config
                .layers
                .iter()
                .filter(|reference| self.layers.by_arn(&reference.arn).is_none())
                .map(|reference| {
                    format!(
                        "nimbus: layer {} is not in nimbus (published in another account): running without it; `nimbus layers import {} LAYER.zip` brings it",
                        reference.arn, reference.arn
                    )
                })
                .collect(),
            architecture: config.architectures.first().cloned().unwrap_or_else(|| "x86_64".into()),
            reserved_concurrency: self.reserved_cell(&config.function_name),
            image: None,
            isolated_network: config
                .vpc_config
                .as_ref()
                .and_then(|vpc| vpc.get("SubnetIds")?.as_array().map(|ids| !ids.is_empty()))
                .unwrap_or(false),
        };
        let image = stored.image.as_ref().map(|image| {
            Arc::new(crate::images::FunctionImage {
                cell: self.images.clone(),
                stored: image.clone(),
                architecture: spec.architecture.clone(),
            }) as Arc<dyn nimbus_functions::ImageSource>
        });
        let spec = FunctionSpec { image, ..spec };
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

    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        let found = self.functions.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
        if found.is_some() || !self.shared.load(Ordering::Relaxed) {
            return found;
        }
        // Another node may have created it a moment ago, before its announcement arrived: read
        // the store again, at most every MISS_REFRESH so that unknown names cannot flood it.
        let now = crate::events::now_ms();
        let last = self.refreshed_ms.load(Ordering::Relaxed);
        if now - last < MISS_REFRESH_MS
            || self.refreshed_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return None;
        }
        if let Err(error) = self.reload() {
            eprintln!("nimbus: cannot read functions from the database: {error}");
        }
        self.functions.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Several nodes share the store: a name not known here is looked up there before it is
    /// called missing.
    pub fn set_shared(&self) {
        self.shared.store(true, Ordering::Relaxed);
    }

    pub fn all(&self) -> Vec<Arc<Function>> {
        self.functions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Up to `limit` functions named after `marker`, in name order, and whether more follow.
    pub fn page(&self, marker: Option<&str>, limit: usize) -> (Vec<Arc<Function>>, bool) {
        let functions = self.functions.read().unwrap_or_else(|p| p.into_inner());
        let mut after = functions
            .iter()
            .filter(|(name, _)| marker.is_none_or(|m| name.as_str() > m))
            .map(|(_, function)| function.clone());
        let page: Vec<_> = after.by_ref().take(limit).collect();
        let more = after.next().is_some();
        (page, more)
    }

    /// Persists a new function, then makes it visible.
    pub async fn insert(&self, entry: Entry) -> Result<Arc<Entry>, AwsError> {
        let row = row_of(&entry)?;
        let name = entry.stored.configuration.function_name.clone();
        let store = self.store.clone();
        match blocking(move || store.insert_function(&row)).await {
            Err(StoreError::Conflict) => {
                return Err(AwsError::conflict(format!("Function already exist: {name}")));
            }
            other => other.map_err(service)?,
        }
        let entry = Arc::new(entry);
        let function =
            Function { latest: entry.clone(), versions: BTreeMap::new(), resources: BTreeMap::new() };
        self.functions.write().unwrap_or_else(|p| p.into_inner()).insert(name, Arc::new(function));
        Ok(entry)
    }

    /// Persists a changed `$LATEST` or a new published version, then makes it visible.
    pub async fn save_version(&self, entry: Entry, new: bool) -> Result<Arc<Entry>, AwsError> {
        let row = row_of(&entry)?;
        let store = self.store.clone();
        blocking(move || if new { store.insert_function(&row) } else { store.update_function(&row) })
            .await
            .map_err(service)?;
        let entry = Arc::new(entry);
        let name = entry.stored.configuration.function_name.clone();
        let number = entry.stored.configuration.version.parse::<u64>().ok();
        let saved = entry.clone();
        self.change(&name, move |function| match number {
            Some(number) => {
                function.versions.insert(number, saved);
            }
            None => function.latest = saved,
        });
        Ok(entry)
    }

    pub async fn remove_version(&self, name: &str, number: u64) -> Result<(), AwsError> {
        let (store, owned) = (self.store.clone(), name.to_owned());
        blocking(move || store.delete_function_version(&owned, &number.to_string()))
            .await
            .map_err(service)?;
        self.change(name, |function| {
            function.versions.remove(&number);
        });
        Ok(())
    }

    /// Stores a resource document of a function (replacing one of the same kind and name).
    pub async fn put_resource(
        &self,
        function: &str,
        kind: &str,
        name: &str,
        value: Value,
    ) -> Result<(), AwsError> {
        let row = ResourceRow {
            function: function.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            config: value.to_string(),
        };
        let store = self.store.clone();
        blocking(move || store.put_resource(&row)).await.map_err(service)?;
        let key = (kind.to_owned(), name.to_owned());
        self.change(function, move |f| {
            f.resources.insert(key, value);
        });
        Ok(())
    }

    /// Deletes a resource document; false when there was none.
    pub async fn delete_resource(&self, function: &str, kind: &str, name: &str) -> Result<bool, AwsError> {
        let (store, f, k, n) = (self.store.clone(), function.to_owned(), kind.to_owned(), name.to_owned());
        match blocking(move || store.delete_resource(&f, &k, &n)).await {
            Err(StoreError::NotFound) => return Ok(false),
            other => other.map_err(service)?,
        }
        let key = (kind.to_owned(), name.to_owned());
        self.change(function, move |f| {
            f.resources.remove(&key);
        });
        Ok(true)
    }

    fn change(&self, name: &str, edit: impl FnOnce(&mut Function)) {
        let mut functions = self.functions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = functions.get(name) {
            let mut changed = Function::clone(current);
            edit(&mut changed);
            functions.insert(name.to_owned(), Arc::new(changed));
        }
    }

    /// Deletes a function durably with its versions and resources, and the code packages
    /// nothing else uses.
    pub async fn remove(&self, function: &Function) -> Result<(), AwsError> {
        let name = function.name().to_owned();
        self.functions.write().unwrap_or_else(|p| p.into_inner()).remove(&name);
        let store = self.store.clone();
        let code = self.code.clone();
        let packages: Vec<String> = std::iter::once(&function.latest)
            .chain(function.versions.values())
            .map(|entry| entry.code_hex.clone())
            .collect();
        blocking(move || {
            store.delete_function(&name)?;
            for package in packages {
                // Another region's functions may run from it too.
                if !store.code_in_use(&package)? && !code.in_use(&package)? {
                    let _ = code.remove(&package);
                }
            }
            Ok(())
        })
        .await
        .map_err(service)
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

fn service(error: StoreError) -> AwsError {
    AwsError::service(error.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Database(e.to_string()))?
}
