//! Routes invocations to warm environments, starts new ones within the concurrency and memory
//! limits, retires stale ones and reaps idle ones. The warm path is an idle-stack pop and push:
//! no disk, no database, no lock held across an await.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nimbus_sandbox::{Isolation, Sandbox};

use crate::environment::{Environment, StartContext, StartError, RUNTIME_ROOT, TASK_ROOT};
use crate::pool::{reap_idle, Live, Pool};
use crate::runtimes::{Places, Runtimes};
use crate::telemetry::{InvocationRecord, LogSink, MetricsSink};
use crate::{EngineError, FunctionSpec, Invocation, InvokeResult};

/// Serves nimbus's API on a listener (inside an isolated network); set once the API exists.
pub type ApiAcceptor =
    Arc<std::sync::OnceLock<Box<dyn Fn(std::net::TcpListener) -> tokio::task::JoinHandle<()> + Send + Sync>>>;

#[derive(Clone)]
pub struct EngineConfig {
    /// Where the embedded runtime clients are written.
    pub runtime_dir: PathBuf,
    /// Parent of each environment's private temporary directory.
    pub tmp_root: PathBuf,
    /// Idle environments are stopped after this long.
    pub keep_alive: Duration,
    /// Invocations running at once, across all functions (AWS's account concurrency).
    pub max_concurrency: usize,
    /// Sum of live environments' `MemorySize` allowed, in MB.
    pub memory_budget_mb: u64,
    pub init_timeout: Duration,
    /// Echo functions' output on nimbus's stderr.
    pub echo_output: bool,
    pub api_acceptor: ApiAcceptor,
    pub log_sink: Option<Arc<dyn LogSink>>,
    pub metrics: Option<Arc<dyn MetricsSink>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineStats {
    pub environments: usize,
    pub busy: usize,
    pub memory_mb: u64,
    pub isolation: &'static str,
}

/// One function's environments across its versions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FunctionStats {
    pub warm: usize,
    pub busy: usize,
}

/// A handle on the engine for one region and account's functions: its environments are keyed
/// apart from another region's function of the same name, and their output and figures go to
/// that region's logs and metrics. Handles share one engine (one concurrency and memory budget).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    /// Prefixes function names in the engine's keys: empty for nimbus's own region and account.
    scope: Arc<str>,
    log_sink: Option<Arc<dyn LogSink>>,
    metrics: Option<Arc<dyn MetricsSink>>,
}

pub(crate) struct Inner {
    pub(crate) config: EngineConfig,
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) runtimes: Runtimes,
    pub(crate) pools: RwLock<HashMap<(String, String), Arc<Pool>>>,
    pub(crate) busy: AtomicUsize,
    /// Invocations running per function, for reserved concurrency and ConcurrentExecutions.
    pub(crate) function_busy: RwLock<HashMap<String, Arc<AtomicUsize>>>,
    pub(crate) environments: AtomicUsize,
    pub(crate) memory_mb: AtomicU64,
    pub(crate) live_pids: Mutex<HashSet<u32>>,
    pub(crate) draining: AtomicBool,
    pub(crate) idle_changed: tokio::sync::Notify,
    pub(crate) clock: Instant,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Releases one unit of concurrency when an invocation ends, however it ends.
struct BusyGuard<'a>(&'a Inner);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_changed.notify_waiters();
        }
    }
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Engine {
    pub fn new(config: EngineConfig, sandbox: Arc<Sandbox>) -> std::io::Result<Engine> {
        std::fs::create_dir_all(&config.tmp_root)?;
        let runtimes = Runtimes::install(&config.runtime_dir)?;
        let inner = Arc::new(Inner {
            config,
            sandbox,
            runtimes,
            pools: RwLock::new(HashMap::new()),
            busy: AtomicUsize::new(0),
            function_busy: RwLock::new(HashMap::new()),
            environments: AtomicUsize::new(0),
            memory_mb: AtomicU64::new(0),
            live_pids: Mutex::new(HashSet::new()),
            draining: AtomicBool::new(false),
            idle_changed: tokio::sync::Notify::new(),
            clock: Instant::now(),
        });
        inner.sandbox.prepare_ahead();
        tokio::spawn(reap_idle(Arc::downgrade(&inner)));
        let (log_sink, metrics) = (inner.config.log_sink.clone(), inner.config.metrics.clone());
        Ok(Engine { inner, scope: Arc::from(""), log_sink, metrics })
    }

    /// The same engine for the functions of another region and account (`scope`, such as
    /// `eu-west-1/000000000000/`), reporting to their own sinks.
    pub fn scoped(
        &self,
        scope: &str,
        log_sink: Option<Arc<dyn LogSink>>,
        metrics: Option<Arc<dyn MetricsSink>>,
    ) -> Engine {
        Engine { inner: self.inner.clone(), scope: Arc::from(scope), log_sink, metrics }
    }

    /// A function's name as the engine keys it (borrowed for nimbus's own region: the warm
    /// path allocates nothing more for it than before regions).
    fn key<'a>(&self, function_name: &'a str) -> std::borrow::Cow<'a, str> {
        match self.scope.is_empty() {
            true => std::borrow::Cow::Borrowed(function_name),
            false => std::borrow::Cow::Owned(format!("{}{function_name}", self.scope)),
        }
    }

    /// Checks that the host can run `runtime`, resolving its interpreter once (blocking work
    /// runs off the async workers). The error says why not.
    pub async fn check_runtime(&self, runtime: &str) -> Result<(), String> {
        let inner = self.inner.clone();
        let runtime = runtime.to_owned();
        tokio::task::spawn_blocking(move || inner.runtimes.interpreter(&runtime).map(|_| ()))
            .await
            .map_err(|e| e.to_string())?
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            environments: self.inner.environments.load(Ordering::Relaxed),
            busy: self.inner.busy.load(Ordering::Relaxed),
            memory_mb: self.inner.memory_mb.load(Ordering::Relaxed),
            isolation: self.inner.sandbox.label(),
        }
    }

    pub async fn invoke(
        &self,
        spec: &Arc<FunctionSpec>,
        invocation: &Invocation,
    ) -> Result<InvokeResult, EngineError> {
        let inner = &self.inner;
        if inner.draining.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        let function_busy = self.function_counter(&self.key(&spec.name));
        let concurrent = function_busy.fetch_add(1, Ordering::AcqRel) + 1;
        let _function_busy = CountGuard(&function_busy);
        let reserved = spec.reserved_concurrency.load(Ordering::Acquire);
        if reserved >= 0 && concurrent as i64 > reserved {
            return Err(self.throttled(spec, "ReservedFunctionConcurrentInvocationLimitExceeded"));
        }
        if inner.busy.fetch_add(1, Ordering::AcqRel) >= inner.config.max_concurrency {
            inner.busy.fetch_sub(1, Ordering::AcqRel);
            return Err(self.throttled(spec, "ConcurrentInvocationLimitExceeded"));
        }
        let _busy = BusyGuard(inner);
        let pool = self.pool_for(spec);
        pool.busy.fetch_add(1, Ordering::AcqRel);
        let _pool_busy = CountGuard(&pool.busy);
        let live = match pool.pop_idle() {
            Some(live) => live,
            None => match self.start(&pool, invocation).await {
                Ok(Ok(live)) => live,
                Ok(Err(failed)) => {
                    self.record(spec, &failed, concurrent);
                    return Ok(failed);
                }
                Err(EngineError::Throttled { reason }) => return Err(self.throttled(spec, reason)),
                Err(error) => return Err(error),
            },
        };
        let result = match live.environment.invoke(invocation).await {
            Ok(result) => {
                if pool.retired.load(Ordering::Acquire) || inner.draining.load(Ordering::Acquire) {
                    drop(live);
                } else {
                    live.environment.last_used_ms.store(inner.now_ms(), Ordering::Relaxed);
                    lock(&pool.idle).push(live);
                }
                result
            }
            Err(result) => result, // the environment is dropped: killed and cleaned
        };
        self.record(spec, &result, concurrent);
        Ok(result)
    }

    fn function_counter(&self, key: &str) -> Arc<AtomicUsize> {
        if let Some(counter) = self.inner.function_busy.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return counter.clone();
        }
        let mut counters = self.inner.function_busy.write().unwrap_or_else(|p| p.into_inner());
        counters.entry(key.to_owned()).or_default().clone()
    }

    fn throttled(&self, spec: &FunctionSpec, reason: &'static str) -> EngineError {
        if let Some(metrics) = &self.metrics {
            metrics.throttle(&spec.name, &spec.version);
        }
        EngineError::Throttled { reason }
    }

    fn record(&self, spec: &FunctionSpec, result: &InvokeResult, concurrent: usize) {
        let Some(metrics) = &self.metrics else { return };
        metrics.invocation(&InvocationRecord {
            function: &spec.name,
            version: &spec.version,
            duration: result.duration,
            billed_ms: result.duration.as_nanos().div_ceil(1_000_000).max(1) as u64,
            memory_mb: spec.memory_mb,
            architecture: &spec.architecture,
            error: result.function_error.is_some(),
            concurrent,
        });
    }

    /// Keeps `count` initialised environments of `spec` warm (provisioned concurrency): starts
    /// the missing ones now; the reaper leaves that many idle ones alone.
    pub async fn provision(&self, spec: &Arc<FunctionSpec>, count: usize) -> Result<(), EngineError> {
        let pool = self.pool_for(spec);
        pool.keep_warm.store(count, Ordering::Release);
        let missing = count.saturating_sub(lock(&pool.idle).len() + pool.busy.load(Ordering::Acquire));
        for _ in 0..missing {
            let request_id = crate::new_request_id();
            let invocation = Invocation {
                request_id,
                payload: Default::default(),
                invoked_arn: String::new(),
                client_context: None,
                tail_log: false,
            };
            match self.start(&pool, &invocation).await? {
                Ok(live) => {
                    live.environment.mark_initialised();
                    live.environment.last_used_ms.store(self.inner.now_ms(), Ordering::Relaxed);
                    lock(&pool.idle).push(live);
                }
                Err(failed) => {
                    let text = String::from_utf8_lossy(&failed.payload).into_owned();
                    return Err(EngineError::Internal(text));
                }
            }
        }
        Ok(())
    }

    /// Stops keeping environments of a function version warm.
    pub fn unprovision(&self, function_name: &str, version: &str) {
        let pools = self.inner.pools.read().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&(self.key(function_name).into_owned(), version.to_owned())) {
            pool.keep_warm.store(0, Ordering::Release);
        }
    }

    /// Warm and busy environments of a function, across its versions.
    pub fn function_stats(&self, function_name: &str) -> FunctionStats {
        let key = self.key(function_name);
        let pools = self.inner.pools.read().unwrap_or_else(|p| p.into_inner());
        pools.iter().filter(|((name, _), _)| *name == *key).fold(
            FunctionStats::default(),
            |acc, (_, pool)| FunctionStats {
                warm: acc.warm + lock(&pool.idle).len(),
                busy: acc.busy + pool.busy.load(Ordering::Relaxed),
            },
        )
    }

    /// Stops a function's environments: idle ones now, busy ones when their invocation ends.
    pub fn retire(&self, function_name: &str) {
        let key = self.key(function_name);
        let retired: Vec<Arc<Pool>> = {
            let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<_> = pools.keys().filter(|(name, _)| *name == *key).cloned().collect();
            keys.iter().filter_map(|key| pools.remove(key)).collect()
        };
        for pool in retired {
            pool.retire();
        }
    }

    /// Recent invocation figures of a function, where metrics are kept.
    pub fn metrics_summary(&self, function_name: &str) -> Option<crate::telemetry::MetricsSummary> {
        self.metrics.as_ref()?.summary(function_name)
    }

    /// The account concurrency limit (`--max-concurrency`).
    pub fn max_concurrency(&self) -> usize {
        self.inner.config.max_concurrency
    }

    /// Stops one version's environments (the version was deleted).
    pub fn retire_version(&self, function_name: &str, version: &str) {
        let removed = {
            let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
            pools.remove(&(self.key(function_name).into_owned(), version.to_owned()))
        };
        if let Some(pool) = removed {
            pool.retire();
        }
    }

    /// Refuses new invocations, lets running ones finish within `grace`, then stops every
    /// environment. Returns how many invocations were cut.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = inner.idle_changed.notified();
            if inner.busy.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let cut = inner.busy.load(Ordering::Acquire);
        let pools: Vec<Arc<Pool>> = {
            let mut pools = inner.pools.write().unwrap_or_else(|p| p.into_inner());
            pools.drain().map(|(_, pool)| pool).collect()
        };
        for pool in pools {
            pool.retire();
        }
        // Busy environments' invocations see their runtime die and report it.
        for pid in lock(&inner.live_pids).iter() {
            let _ = nix_kill(*pid);
        }
        inner.sandbox.close(Duration::from_secs(2)).await;
        cut
    }

    fn pool_for(&self, spec: &Arc<FunctionSpec>) -> Arc<Pool> {
        let key = (self.key(&spec.name).into_owned(), spec.version.clone());
        {
            let pools = self.inner.pools.read().unwrap_or_else(|p| p.into_inner());
            if let Some(pool) = pools.get(&key) {
                if pool.spec.revision == spec.revision {
                    return pool.clone();
                }
            }
        }
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&key) {
            if pool.spec.revision == spec.revision {
                return pool.clone();
            }
        }
        let pool = Arc::new(Pool {
            spec: spec.clone(),
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            keep_warm: AtomicUsize::new(0),
        });
        if let Some(stale) = pools.insert(key, pool.clone()) {
            stale.retire();
        }
        pool
    }

    /// Starts an environment for `pool`. The inner `Err` is the invocation's failed result.
    async fn start(
        &self,
        pool: &Pool,
        invocation: &Invocation,
    ) -> Result<Result<Live, InvokeResult>, EngineError> {
        let inner = &self.inner;
        let memory = u64::from(pool.spec.memory_mb);
        self.reserve_memory(memory)?;
        // From here the reservation belongs to `Live` (or is returned on failure below).
        let release = |inner: &Inner| {
            inner.memory_mb.fetch_sub(memory, Ordering::AcqRel);
        };
        let runtime = pool.spec.runtime.clone();
        let code_dir = pool.spec.code_dir.clone();
        let launch_inner = inner.clone();
        let image = pool.spec.image.clone();
        let launch = tokio::task::spawn_blocking(move || {
            if let Some(image) = image {
                let prepared = image.prepare()?;
                let launch = crate::runtimes::Launch {
                    program: prepared.program.clone(),
                    args: prepared.args.iter().map(Into::into).collect(),
                    env: prepared.env.clone(),
                    host_paths: Vec::new(),
                };
                return Ok((launch, Some(prepared)));
            }
            let sandboxed = launch_inner.sandbox.isolation() == Isolation::Namespaces;
            let runtime_dir = &launch_inner.config.runtime_dir;
            let places = Places {
                code_dir: &code_dir,
                task_root: if sandboxed { std::path::Path::new(TASK_ROOT) } else { &code_dir },
                runtime_root: if sandboxed { std::path::Path::new(RUNTIME_ROOT) } else { runtime_dir },
            };
            launch_inner.runtimes.launch(&runtime, &places).map(|launch| (launch, None))
        })
        .await;
        let (launch, image) = match launch {
            Ok(Ok(launch)) => launch,
            Ok(Err(why)) => {
                release(inner);
                let message = format!("RequestId: {} Error: {why}", invocation.request_id);
                return Ok(Err(InvokeResult::unhandled("Runtime.InvalidEntrypoint", &message)));
            }
            Err(join) => {
                release(inner);
                return Err(EngineError::Internal(join.to_string()));
            }
        };
        let cx = StartContext {
            launch,
            image,
            sandbox: &inner.sandbox,
            runtime_dir: &inner.config.runtime_dir,
            api_acceptor: Some(&inner.config.api_acceptor),
            tmp_root: &inner.config.tmp_root,
            init_timeout: inner.config.init_timeout,
            echo_output: inner.config.echo_output,
            request_id: &invocation.request_id,
            tail_log: invocation.tail_log,
            log_sink: self.log_sink.as_ref(),
        };
        match Environment::start(pool.spec.clone(), cx).await {
            Ok(environment) => {
                inner.environments.fetch_add(1, Ordering::AcqRel);
                lock(&inner.live_pids).insert(environment.pid);
                Ok(Ok(Live { environment, inner: inner.clone() }))
            }
            Err(StartError::Failed(result)) => {
                release(inner);
                Ok(Err(result))
            }
            Err(StartError::Internal(why)) => {
                release(inner);
                Err(EngineError::Internal(why))
            }
        }
    }

    /// Takes `memory` MB of the budget, stopping idle environments of any function to make room.
    fn reserve_memory(&self, memory: u64) -> Result<(), EngineError> {
        let inner = &self.inner;
        loop {
            let before = inner.memory_mb.fetch_add(memory, Ordering::AcqRel);
            if before + memory <= inner.config.memory_budget_mb {
                return Ok(());
            }
            inner.memory_mb.fetch_sub(memory, Ordering::AcqRel);
            if !self.evict_one_idle() {
                return Err(EngineError::Throttled { reason: "ConcurrentInvocationLimitExceeded" });
            }
        }
    }

    /// Stops the least recently used idle environment; false when there is none.
    fn evict_one_idle(&self) -> bool {
        let pools: Vec<Arc<Pool>> =
            self.inner.pools.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let oldest = pools
            .iter()
            .filter_map(|pool| {
                let idle = lock(&pool.idle);
                idle.first().map(|live| (live.environment.last_used_ms.load(Ordering::Relaxed), pool))
            })
            .min_by_key(|(used, _)| *used);
        match oldest {
            Some((_, pool)) => {
                let evicted = {
                    let mut idle = lock(&pool.idle);
                    (!idle.is_empty()).then(|| idle.remove(0))
                };
                evicted.is_some()
            }
            None => false,
        }
    }
}

/// SIGKILL by pid, for environments still busy at shutdown.
fn nix_kill(pid: u32) -> std::io::Result<()> {
    // SAFETY: kill with an integer pid and signal; a stale pid at worst signals nothing.
    if unsafe { libc::kill(pid as i32, libc::SIGKILL) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Inner {
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }
}
