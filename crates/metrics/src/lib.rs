//! Lambda's CloudWatch metrics. The functions engine reports every invocation and throttle
//! through [`MetricsSink`]; they are kept per function version in 1-minute buckets for 15 days
//! and served as CloudWatch's `AWS/Lambda` namespace (`GetMetricStatistics`, `GetMetricData`,
//! `ListMetrics`) over Smithy RPC v2 CBOR, JSON 1.0 and Query. Billed GB-seconds per architecture
//! are nimbus's own metric, [`NIMBUS_NAMESPACE`] [`BILLED_GB_SECONDS`], and [`Metrics::usage`]
//! for the cost meter.

mod bucket;
mod catalog;
mod error;
mod histogram;
mod ops;
mod out;
mod query;
mod service;
mod snapshot;
mod stats;
mod store;
mod summary;
mod wire;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nimbus_functions::telemetry::{InvocationRecord, MetricsSink, MetricsSummary};

pub use bucket::Architecture;
pub use catalog::{LAMBDA_NAMESPACE, NIMBUS_NAMESPACE};
pub use error::{CwError, ErrorKind};
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
    snapshot: Option<PathBuf>,
    /// Reads the snapshot in the background, so that a long history does not delay startup.
    restoring: Mutex<Option<JoinHandle<Option<String>>>>,
    restore_error: Mutex<Option<String>>,
}

impl Metrics {
    /// Metrics kept in memory and, with `dir`, snapshotted to `dir/metrics.cbor` by [`save`]
    /// and restored from it here, in the background: the previous run's data points appear
    /// within milliseconds (a fraction of a second for weeks of busy functions). An unreadable
    /// snapshot is reported on stderr and set aside as `metrics.cbor.unreadable`.
    ///
    /// [`save`]: Metrics::save
    pub fn new(dir: Option<&Path>) -> Arc<Metrics> {
        let snapshot = dir.map(|dir| dir.join(snapshot::FILE_NAME));
        let metrics = Arc::new(Metrics {
            store: Store::default(),
            snapshot: snapshot.clone(),
            restoring: Mutex::new(None),
            restore_error: Mutex::new(None),
        });
        if let Some(path) = snapshot.filter(|path| path.exists()) {
            let restoring = metrics.clone();
            let loader = std::thread::spawn(move || restoring.restore(&path));
            *lock(&metrics.restoring) = Some(loader);
        }
        metrics
    }

    fn restore(&self, path: &Path) -> Option<String> {
        let result = snapshot::load(&self.store, path);
        self.store.sweep(minute_of(SystemTime::now()));
        let error = result.err()?;
        let _ = std::fs::rename(path, path.with_extension("cbor.unreadable"));
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

    /// Writes the snapshot now (call it at shutdown); does nothing without a directory.
    /// Blocking: a few milliseconds per busy function-day of history.
    pub fn save(&self) -> io::Result<()> {
        self.restore_error(); // never overwrite a snapshot still being read
        match &self.snapshot {
            Some(path) => snapshot::save(&self.store, path),
            None => Ok(()),
        }
    }

    /// Every `every`: forgets data older than 15 days and saves the snapshot, off the runtime's
    /// worker threads. Abort the handle to stop.
    pub fn spawn_maintenance(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let metrics = metrics.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    metrics.store.sweep(minute_of(SystemTime::now()));
                    metrics.save()
                });
                if let Ok(Err(error)) = saved.await {
                    eprintln!("nimbus: cannot save metrics: {error}");
                }
            }
        })
    }

    fn record(&self, function: &str, version: &str, sample: &Sample) {
        self.store.record(function, version, minute_of(SystemTime::now()), sample);
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
        let metrics = Metrics::new(Some(dir.path()));
        record(&metrics, "f", 10, false, "x86_64");
        metrics.save().unwrap();
        let again = Metrics::new(Some(dir.path()));
        record(&again, "f", 10, false, "x86_64");
        assert_eq!(again.restore_error(), None);
        assert_eq!(again.summary("f").invocations, 2);
    }

    #[test]
    fn an_unreadable_snapshot_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(snapshot::FILE_NAME), b"junk").unwrap();
        let metrics = Metrics::new(Some(dir.path()));
        assert!(metrics.restore_error().is_some());
        assert!(dir.path().join("metrics.cbor.unreadable").exists());
        metrics.save().unwrap();
        assert_eq!(Metrics::new(Some(dir.path())).restore_error(), None);
    }

    #[test]
    fn minutes_since_the_epoch() {
        assert_eq!(minute_of(UNIX_EPOCH + Duration::from_secs(119)), 1);
        assert_eq!(minute_of(UNIX_EPOCH - Duration::from_secs(1)), -1);
    }
}
