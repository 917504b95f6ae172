//! Every function's recent minutes as series, for the console's sparklines
//! (`GET /_nimbus/metrics/functions`): what CloudWatch keeps, so a page opened now shows the
//! hour before it was opened.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::bucket::Stats;
use crate::histogram::Histogram;
use crate::{minute_of, Metrics};

/// The longest history one request may ask for (a day, per minute).
pub const MAX_HISTORY: Duration = Duration::from_secs(24 * 3600);

/// One function's minutes, oldest first, one value per minute of the window (0 or null when it
/// was idle).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    pub invocations: Vec<u64>,
    pub errors: Vec<u64>,
    pub throttles: Vec<u64>,
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
}

/// Every function active in the window (idle ones are left out), by name, and the window's first minute (Unix minutes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histories {
    pub start_minute: i64,
    pub minutes: usize,
    pub functions: BTreeMap<String, History>,
}

impl History {
    fn push(&mut self, stats: &Stats, p50_ms: Option<f64>, p99_ms: Option<f64>) {
        self.invocations.push(stats.invocations);
        self.errors.push(stats.errors);
        self.throttles.push(stats.throttles);
        self.p50_ms.push(p50_ms);
        self.p99_ms.push(p99_ms);
    }
}

impl Metrics {
    /// The last `window` (at most [`MAX_HISTORY`]) of every function, all versions merged, per
    /// minute; the newest minute is the one being recorded.
    pub fn history(&self, window: Duration) -> Histories {
        let minutes = (window.min(MAX_HISTORY).as_secs() / 60).max(1) as usize;
        let now = minute_of(self.now());
        let start = now + 1 - minutes as i64;
        let mut by_function: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for view in self.store.views(|_, _| true, start..now + 1) {
            by_function.entry(view.function.to_string()).or_default().push(view);
        }
        // One function at a time: only its active minutes hold a histogram.
        let functions = by_function
            .into_iter()
            .filter_map(|(name, views)| {
                let mut active: BTreeMap<i64, (Stats, Histogram)> = BTreeMap::new();
                for bucket in views.iter().flat_map(|view| view.buckets(start..now + 1)) {
                    let (stats, durations) = active.entry(bucket.minute).or_default();
                    stats.merge(&bucket.stats);
                    durations.merge_packed(&bucket.durations);
                }
                if active.is_empty() {
                    return None;
                }
                let mut history = History::default();
                for minute in start..=now {
                    let Some((stats, durations)) = active.remove(&minute) else {
                        history.push(&Stats::default(), None, None);
                        continue;
                    };
                    let (min, max) = (stats.duration_min_us, stats.duration_max_us);
                    let ms = |p: f64| durations.percentile(p, min, max).map(|us| (us / 10.0).round() / 100.0);
                    history.push(&stats, ms(50.0), ms(99.0));
                }
                Some((name, history))
            })
            .collect();
        Histories { start_minute: start, minutes, functions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::record;
    use nimbus_functions::telemetry::MetricsSink;

    #[test]
    fn every_function_per_minute_with_idle_minutes_empty() {
        let metrics = Metrics::in_memory();
        for ms in [10, 20, 30] {
            record(&metrics, "f", ms, ms == 30, "x86_64");
        }
        metrics.throttle("g", "$LATEST");
        let history = metrics.history(Duration::from_secs(600));
        assert_eq!(history.minutes, 10);
        let f = &history.functions["f"];
        assert_eq!(f.invocations.len(), 10);
        assert_eq!((f.invocations[9], f.errors[9], f.throttles[9]), (3, 1, 0));
        assert_eq!(f.invocations[..9], [0; 9]);
        assert_eq!(f.p50_ms[0], None);
        assert!(f.p99_ms[9].is_some_and(|p| p > 25.0), "{:?}", f.p99_ms[9]);
        assert_eq!(history.functions["g"].throttles[9], 1);
        assert_eq!(metrics.history(Duration::from_secs(86_400 * 30)).minutes, 1440);
    }
}
