//! Figures for nimbus's own views: a function's last hour for `nimbus functions`, and billed
//! usage per function and architecture for the cost meter.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::bucket::{Architecture, Stats};
use crate::histogram::Histogram;
use crate::{minute_of, Metrics};

/// One function's recent activity, for `nimbus functions` and `/_nimbus/functions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub average_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The most invocations of the function running at once.
    pub max_concurrency: u32,
    pub gb_seconds: f64,
}

/// Billed compute of one function on one architecture, for the cost meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub function: String,
    pub architecture: Architecture,
    pub requests: u64,
    pub gb_seconds: f64,
}

/// The window of [`Metrics::summary`].
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(3600);

impl Metrics {
    /// `function`'s activity over the last hour (all versions).
    pub fn summary(&self, function: &str) -> Summary {
        self.summary_over(function, SUMMARY_WINDOW)
    }

    pub fn summary_over(&self, function: &str, window: Duration) -> Summary {
        self.summaries_of(window, Some(function)).remove(function).unwrap_or_default()
    }

    /// Every function active in the last `window`, by name.
    pub fn summaries(&self, window: Duration) -> BTreeMap<String, Summary> {
        self.summaries_of(window, None)
    }

    fn summaries_of(&self, window: Duration, only: Option<&str>) -> BTreeMap<String, Summary> {
        let now = minute_of(self.now());
        let minutes = now + 1 - (window.as_secs() / 60).max(1) as i64..now + 1;
        let views = self.store.views(|f, _| only.is_none_or(|o| o == f), minutes.clone());
        let mut merged: BTreeMap<String, (Stats, Histogram)> = BTreeMap::new();
        for view in &views {
            for bucket in view.buckets(minutes.clone()) {
                let (stats, durations) = merged.entry(view.function.to_string()).or_default();
                stats.merge(&bucket.stats);
                durations.merge_packed(&bucket.durations);
            }
        }
        merged
            .into_iter()
            .map(|(function, (stats, durations))| (function, summarise(&stats, &durations)))
            .collect()
    }

    /// Billed requests and GB-seconds per function and architecture in `[from, to)`, at
    /// 1-minute resolution.
    pub fn usage(&self, from: SystemTime, to: SystemTime) -> Vec<Usage> {
        let minutes = minute_of(from)..minute_of(to);
        let mut totals: BTreeMap<(String, Architecture), Stats> = BTreeMap::new();
        for view in self.store.views(|_, _| true, minutes.clone()) {
            for bucket in view.buckets(minutes.clone()) {
                for architecture in Architecture::ALL {
                    if bucket.stats.billed(architecture).requests > 0 {
                        totals
                            .entry((view.function.to_string(), architecture))
                            .or_default()
                            .merge(&bucket.stats);
                    }
                }
            }
        }
        let usage = |((function, architecture), stats): ((String, Architecture), Stats)| {
            let billed = stats.billed(architecture);
            Usage { function, architecture, requests: billed.requests, gb_seconds: billed.gb_seconds() }
        };
        totals.into_iter().map(usage).collect()
    }
}

fn summarise(stats: &Stats, durations: &Histogram) -> Summary {
    let ms = |us: f64| us / 1000.0;
    let (min, max) = (stats.duration_min_us, stats.duration_max_us);
    let invoked = stats.invocations > 0;
    Summary {
        invocations: stats.invocations,
        errors: stats.errors,
        throttles: stats.throttles,
        p50_ms: durations.percentile(50.0, min, max).map(ms),
        p99_ms: durations.percentile(99.0, min, max).map(ms),
        average_ms: invoked.then(|| ms(stats.duration_sum_us as f64 / stats.invocations as f64)),
        max_ms: invoked.then(|| ms(max as f64)),
        max_concurrency: stats.concurrency_max,
        gb_seconds: stats.billed.iter().map(|b| b.gb_seconds()).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::record;
    use nimbus_functions::telemetry::MetricsSink;

    #[test]
    fn summary_of_the_last_hour() {
        let metrics = Metrics::in_memory();
        for ms in [10, 20, 30, 40] {
            record(&metrics, "f", ms, ms == 40, "x86_64");
        }
        metrics.throttle("f", "$LATEST");
        let summary = metrics.summary("f");
        assert_eq!((summary.invocations, summary.errors, summary.throttles), (4, 1, 1));
        assert_eq!(summary.max_ms, Some(39.7));
        assert_eq!(summary.average_ms, Some(24.7));
        let p50 = summary.p50_ms.unwrap();
        assert!((p50 - 19.7).abs() < 19.7 * 0.04, "{p50}");
        assert_eq!(summary.p99_ms, Some(39.7));
        assert_eq!(summary.gb_seconds, 0.1);
        assert_eq!(metrics.summary("nobody"), Summary::default());
        assert_eq!(metrics.summaries(SUMMARY_WINDOW).len(), 1);
        let sink: &dyn MetricsSink = &*metrics;
        let figures = sink.summary("f").unwrap();
        assert_eq!((figures.invocations, figures.errors, figures.p99_ms), (4, 1, Some(39.7)));
    }

    #[test]
    fn usage_by_function_and_architecture() {
        let metrics = Metrics::in_memory();
        record(&metrics, "a", 1000, false, "arm64");
        record(&metrics, "a", 1000, false, "x86_64");
        record(&metrics, "b", 500, false, "arm64");
        let now = SystemTime::now();
        let usage = metrics.usage(now - Duration::from_secs(120), now + Duration::from_secs(120));
        assert_eq!(
            usage,
            vec![
                Usage {
                    function: "a".into(),
                    architecture: Architecture::X86_64,
                    requests: 1,
                    gb_seconds: 1.0
                },
                Usage {
                    function: "a".into(),
                    architecture: Architecture::Arm64,
                    requests: 1,
                    gb_seconds: 1.0
                },
                Usage {
                    function: "b".into(),
                    architecture: Architecture::Arm64,
                    requests: 1,
                    gb_seconds: 0.5
                },
            ]
        );
    }
}
