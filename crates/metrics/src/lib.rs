//! Lambda's CloudWatch metrics. The functions engine reports every invocation and throttle
//! through [`MetricsSink`]; they are kept per function version in 1-minute buckets for 15 days
//! and served as CloudWatch's `AWS/Lambda` namespace (`GetMetricStatistics`, `GetMetricData`,
//! `ListMetrics`) over Smithy RPC v2 CBOR, JSON 1.0 and Query. Billed GB-seconds per architecture
//! are nimbus's own metric, [`NIMBUS_NAMESPACE`] [`BILLED_GB_SECONDS`], and [`Metrics::usage`]
//! for the cost meter.

mod bucket;
mod catalog;
mod custom;
mod error;
mod histogram;
mod history;
mod ops;
mod out;
pub mod provider;
mod query;
mod service;
mod snapshot;
mod stats;
mod store;
mod summary;
mod wire;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nimbus_functions::telemetry::{InvocationRecord, MetricsSink, MetricsSummary};
use nimbus_store::{BlobArea, Blobs};

pub use bucket::Architecture;
pub use catalog::{LAMBDA_NAMESPACE, NIMBUS_NAMESPACE};
pub use custom::AlarmSink;
pub use error::{CwError, ErrorKind};
pub use history::{Histories, History, MAX_HISTORY};
pub use summary::{Summary, Usage, SUMMARY_WINDOW};

use bucket::Sample;
use store::Store;

/// The metric of billed GB-seconds (billed duration × memory, as AWS charges), in
/// [`NIMBUS_NAMESPACE`], with dimensions `FunctionName`, `FunctionName`+`Resource`,
/// `Architecture` (`x86_64`, `arm64`) or none.
pub const BILLED_GB_SECONDS: &str = "BilledGBSeconds";

/// Recorded metrics, the CloudWatch service over them, and their snapshot file.
pub struct Metrics {
    store: Store,
    snapshot: Option<SnapshotFile>,
    /// Reads the snapshot in the background, so that a long history does not delay startup.
    restoring: Mutex<Option<JoinHandle<Option<String>>>>,
    restore_error: Mutex<Option<String>>,
}

/// The snapshot: `<node>.cbor` in the blob area `metrics`.
struct SnapshotFile {
    area: BlobArea,
    name: String,
}

impl Metrics {
    /// Metrics kept in memory only.
    pub fn in_memory() -> Arc<Metrics> {
        Metrics::with_snapshot(None)
    }

    /// Metrics kept in memory and snapshotted by [`save`] to `<node>.cbor` in the blob area
    /// `metrics`: each node records the invocations it runs, so each keeps a snapshot of its
    /// own. The snapshot is restored here, in the background: the previous run's data points
    /// appear within milliseconds (a fraction of a second for weeks of busy functions). An
    /// unreadable snapshot is reported on stderr and set aside as `<node>.cbor.unreadable`.
    ///
    /// The memory is authoritative between saves: a process that opens the same area under the
    /// same node name after this one saved (or died) restores what was last saved.
    ///
    /// [`save`]: Metrics::save
    pub fn open(blobs: &Blobs, node: &str) -> io::Result<Arc<Metrics>> {
        let area = blobs.area("metrics")?;
        let name = format!("{node}.cbor");
        adopt_legacy(&area, &name)?;
        Ok(Metrics::with_snapshot(Some(SnapshotFile { area, name })))
    }

    /// As [`open`] for a single node on `dir`, the data directory; in memory only without it.
    ///
    /// [`open`]: Metrics::open
    // Until src/main.rs opens the storage layer itself.
    pub fn new(dir: Option<&Path>) -> Arc<Metrics> {
        let Some(dir) = dir else { return Metrics::in_memory() };
        Metrics::open(&Blobs::new(dir, "local", false), "local").unwrap_or_else(|error| {
            eprintln!("nimbus: metrics will not outlive this run: {error}");
            Metrics::in_memory()
        })
    }

    fn with_snapshot(snapshot: Option<SnapshotFile>) -> Arc<Metrics> {
        let exists = snapshot.as_ref().is_some_and(|file| {
            file.area.path(&file.name).exists()
                || file.area.path(&format!("{}.custom.json", file.name)).exists()
        });
        let metrics = Arc::new(Metrics {
            store: Store::default(),
            snapshot,
            restoring: Mutex::new(None),
            restore_error: Mutex::new(None),
        });
        if let Some(file) = &metrics.snapshot {
            metrics.store.custom.persist_to(file.area.clone(), format!("{}.custom.json", file.name));
        }
        if exists {
            let restoring = metrics.clone();
            let loader = std::thread::spawn(move || restoring.restore());
            *lock(&metrics.restoring) = Some(loader);
        }
        metrics
    }

    fn restore(&self) -> Option<String> {
        let file = self.snapshot.as_ref()?;
        let path = file.area.path(&file.name);
        let result = snapshot::load(&self.store, &path);
        self.store.sweep(minute_of(self.now()));
        let error = result.err()?;
        // Kept for a look, out of the way of the next save.
        let _ = std::fs::rename(&path, file.area.path(&format!("{}.unreadable", file.name)));
        eprintln!("nimbus: metrics of the previous run not restored: {error}");
        Some(error.to_string())
    }

    /// Waits for the snapshot to be restored; why it could not be, if it could not.
    pub fn restore_error(&self) -> Option<String> {
        if let Some(loader) = lock(&self.restoring).take() {
            *lock(&self.restore_error) = loader.join().unwrap_or_else(|_| Some("the loader panicked".into()));
        }
        lock(&self.restore_error).clone()
    }

    /// Writes the snapshot now (call it at shutdown); does nothing in memory only.
    /// Blocking: a few milliseconds per busy function-day of history.
    pub fn save(&self) -> io::Result<()> {
        self.restore_error(); // never overwrite a snapshot still being read
        match &self.snapshot {
            Some(file) => snapshot::save(&self.store, &file.area, &file.name),
            None => Ok(()),
        }
    }

    /// Every `every`: forgets data older than 15 days and saves the snapshot, off the runtime's
    /// worker threads. Abort the handle to stop.
    pub fn spawn_maintenance(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            // The first evaluation one period from now: nothing to evaluate at start.
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let metrics = metrics.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    metrics.store.sweep(minute_of(metrics.now()));
                    metrics.store.custom.sweep(minute_of(metrics.now()) * 60);
                    metrics.save()
                });
                if let Ok(Err(error)) = saved.await {
                    eprintln!("nimbus: cannot save metrics: {error}");
                }
            }
        })
    }

    /// Metrics follow nimbus's clock from now on (`--clock virtual` moves alarms along).
    pub fn set_clock(&self, clock: Arc<dyn nimbus_api::clock::Clock>) {
        let _ = self.store.custom.clock.set(clock);
    }

    /// Now, on nimbus's clock once set.
    pub(crate) fn now(&self) -> SystemTime {
        match self.store.custom.clock.get() {
            Some(clock) => UNIX_EPOCH + Duration::from_millis(clock.now_ms().max(0) as u64),
            None => SystemTime::now(),
        }
    }

    /// nimbus's region and account, for alarm and dashboard ARNs.
    pub fn set_identity(&self, region: &str, account: &str) {
        let _ = self.store.custom.identity.set((region.to_owned(), account.to_owned()));
    }

    /// Where alarm actions go; starts evaluating alarms every `every` (call inside the runtime).
    pub fn set_alarm_sink(self: &Arc<Self>, sink: Arc<dyn AlarmSink>, every: Duration) {
        if self.store.custom.sink.set(sink).is_err() {
            return;
        }
        let mut jumps = self.store.custom.clock.get().and_then(|clock| clock.jumps());
        let metrics = Arc::downgrade(self);
        tokio::spawn(async move {
            // The first evaluation one period from now: nothing to evaluate at start.
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                // Every `every`, and at once when a virtual clock jumps.
                match jumps.as_mut() {
                    Some(jumps) => {
                        tokio::select! {
                            _ = ticks.tick() => {}
                            changed = jumps.changed() => if changed.is_err() { return },
                        }
                    }
                    None => {
                        ticks.tick().await;
                    }
                }
                let Some(metrics) = metrics.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || {
                    if metrics.store.custom.has_alarms() {
                        let now = metrics.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                        ops::custom::evaluated(&ops::Context { store: &metrics.store, now });
                    }
                })
                .await;
            }
        });
    }

    /// Creates or replaces a metric alarm from `PutMetricAlarm`'s JSON input (Auto Scaling's
    /// target tracking alarms); answers its ARN.
    pub fn put_alarm(&self, document: &serde_json::Value) -> Result<String, String> {
        let now = self.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let context = ops::Context { store: &self.store, now };
        ops::custom::put_metric_alarm(&context, document).map_err(|e| e.message)?;
        let name = document["AlarmName"].as_str().unwrap_or_default();
        let alarm = self.store.custom.alarms().remove(name).unwrap_or_default();
        Ok(alarm["AlarmArn"].as_str().unwrap_or_default().to_owned())
    }

    /// Deletes the named alarms (those that exist).
    pub fn delete_alarms(&self, names: &[String]) {
        for name in names {
            self.store.custom.delete_alarm(name);
        }
    }

    /// Adds `count` samples summing to `sum` to a custom metric (CloudWatch Logs' metric filters).
    pub fn put_custom(
        &self,
        namespace: &str,
        name: &str,
        unit: Option<&str>,
        at_s: i64,
        sum: f64,
        count: f64,
    ) {
        let (min, max) = if count > 0.0 { (sum / count, sum / count) } else { (0.0, 0.0) };
        let point = custom::Point { count, sum, min, max };
        self.store.custom.record(namespace, name, Vec::new(), unit, at_s, point);
    }

    fn record(&self, function: &str, version: &str, sample: &Sample) {
        self.store.record(function, version, minute_of(self.now()), sample);
    }
}

impl MetricsSink for Metrics {
    fn invocation(&self, record: &InvocationRecord<'_>) {
        let sample = Sample::Invocation {
            duration_us: u64::try_from(record.duration.as_micros()).unwrap_or(u64::MAX),
            billed_ms: record.billed_ms,
            memory_mb: record.memory_mb,
            architecture: Architecture::parse(record.architecture),
            error: record.error,
            concurrent: u32::try_from(record.concurrent).unwrap_or(u32::MAX),
        };
        self.record(record.function, record.version, &sample);
    }

    fn throttle(&self, function: &str, version: &str) {
        self.record(function, version, &Sample::Throttle);
    }

    /// The last hour of `function`, for `/_nimbus/functions` (zeros when it was idle).
    fn summary(&self, function: &str) -> Option<MetricsSummary> {
        let summary = Metrics::summary(self, function);
        Some(MetricsSummary {
            invocations: summary.invocations,
            errors: summary.errors,
            throttles: summary.throttles,
            p50_ms: summary.p50_ms,
            p99_ms: summary.p99_ms,
        })
    }
}

/// Whether a request is CloudWatch's ([`Service::claims`]), for fronts that serve CloudWatch
/// without holding a [`Metrics`] (a node forwarding to the one that serves it).
pub fn claims(method: &hyper::Method, uri: &hyper::Uri, headers: &hyper::HeaderMap) -> bool {
    wire::detect(method, uri, headers).is_some()
}

/// As [`claims`], with the body.
pub fn claims_body(
    method: &hyper::Method,
    uri: &hyper::Uri,
    _headers: &hyper::HeaderMap,
    body: &[u8],
) -> bool {
    wire::claims_body(method, uri, body)
}

/// A fault in the request's protocol (SDKs retry it), for a front that knows no node serving
/// CloudWatch right now.
pub fn unavailable(request: &nimbus_api::ApiRequest) -> nimbus_api::ApiResponse {
    let wire = wire::detect(&request.method, &request.uri, &request.headers).unwrap_or(wire::Wire::Query);
    let error = error::CwError::new(
        error::ErrorKind::InternalServiceError,
        "CloudWatch is not served here right now.",
    );
    wire::error(wire, &error, &request.request_id)
}

/// Moves a snapshot from where it lived before the blob area (`<data dir>/metrics.cbor`, the
/// area's parent) into the area, unless the area has one already.
fn adopt_legacy(area: &BlobArea, name: &str) -> io::Result<()> {
    let target = area.path(name);
    let Some(legacy) = area.dir().parent().map(|root| root.join(snapshot::LEGACY_FILE_NAME)) else {
        return Ok(());
    };
    if target.exists() || !legacy.exists() {
        return Ok(());
    }
    std::fs::rename(&legacy, &target)?;
    nimbus_store::blobs::sync_dir(area.dir())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Minutes since the Unix epoch.
fn minute_of(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => (since.as_secs() / 60) as i64,
        Err(before) => -(before.duration().as_secs().div_ceil(60) as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(metrics: &Metrics, function: &str, ms: u64, error: bool, architecture: &str) {
        metrics.invocation(&InvocationRecord {
            function,
            version: "$LATEST",
            duration: Duration::from_micros(ms * 1000 - 300),
            billed_ms: ms,
            memory_mb: 1024,
            architecture,
            error,
            concurrent: 1,
        });
    }

    #[test]
    fn snapshot_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path(), "a", true);
        let metrics = Metrics::open(&blobs, "a").unwrap();
        record(&metrics, "f", 10, false, "x86_64");
        metrics.save().unwrap();
        assert!(dir.path().join("metrics/a.cbor").exists());
        // Another node keeps its own.
        let b = Metrics::open(&Blobs::new(dir.path(), "b", true), "b").unwrap();
        assert_eq!(b.summary("f").invocations, 0);
        let again = Metrics::open(&blobs, "a").unwrap();
        record(&again, "f", 10, false, "x86_64");
        assert_eq!(again.restore_error(), None);
        assert_eq!(again.summary("f").invocations, 2);
    }

    #[test]
    fn a_snapshot_from_before_the_blob_area_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let old = Metrics::in_memory();
        record(&old, "f", 10, false, "x86_64");
        let area = Blobs::new(dir.path(), "local", false).area("metrics").unwrap();
        snapshot::save(&old.store, &area, "x").unwrap();
        std::fs::rename(area.path("x"), dir.path().join("metrics.cbor")).unwrap();
        let metrics = Metrics::new(Some(dir.path()));
        assert_eq!(metrics.restore_error(), None);
        assert_eq!(metrics.summary("f").invocations, 1);
        assert!(!dir.path().join("metrics.cbor").exists());
        assert!(dir.path().join("metrics/local.cbor").exists());
    }

    #[test]
    fn an_unreadable_snapshot_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path(), "n", false);
        std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
        std::fs::write(dir.path().join("metrics/n.cbor"), b"junk").unwrap();
        let metrics = Metrics::open(&blobs, "n").unwrap();
        assert!(metrics.restore_error().is_some());
        assert!(dir.path().join("metrics/n.cbor.unreadable").exists());
        metrics.save().unwrap();
        assert_eq!(Metrics::open(&blobs, "n").unwrap().restore_error(), None);
    }

    #[test]
    fn minutes_since_the_epoch() {
        assert_eq!(minute_of(UNIX_EPOCH + Duration::from_secs(119)), 1);
        assert_eq!(minute_of(UNIX_EPOCH - Duration::from_secs(1)), -1);
    }
}
