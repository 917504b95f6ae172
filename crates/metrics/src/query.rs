//! Folds the selected series' minutes into the periods a request asks for.

use std::collections::HashMap;
use std::sync::Arc;

use crate::bucket::Stats;
use crate::catalog::{Metric, Selection};
use crate::histogram::Histogram;
use crate::store::Store;

/// `[start, end)` in seconds since the epoch, cut into `period`-second data points. `start` is
/// a whole minute and `period` a multiple of 60: the data has 1-minute resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub period: i64,
}

impl Window {
    /// CloudWatch's rounding: the start down to the minute; periods under a minute (which only
    /// high-resolution metrics have) become a minute.
    pub fn new(start: i64, end: i64, period: i64) -> Window {
        Window { start: start.div_euclid(60) * 60, end, period: div_ceil(period.max(60), 60) * 60 }
    }

    pub fn points(&self) -> i64 {
        div_ceil((self.end - self.start).max(0), self.period)
    }

    fn minutes(&self) -> std::ops::Range<i64> {
        self.start / 60..div_ceil(self.end, 60)
    }

    fn period_of(&self, minute: i64) -> Option<usize> {
        let seconds = minute * 60;
        (seconds >= self.start && seconds < self.end).then(|| ((seconds - self.start) / self.period) as usize)
    }

    pub fn timestamp(&self, period: usize) -> i64 {
        self.start + period as i64 * self.period
    }
}

/// `a / b` rounded up, for a positive `b`.
pub fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// Everything recorded in one period of the selected series.
#[derive(Default, Clone)]
pub struct Agg {
    pub stats: Stats,
    /// Only collected when a percentile of `Duration` was asked for.
    pub durations: Option<Histogram>,
}

/// The periods of `window` holding data, oldest first, as `(timestamp, aggregate)`.
pub fn aggregate(
    store: &Store,
    metric: Metric,
    selection: &Selection,
    window: &Window,
    percentiles: bool,
) -> Vec<(i64, Agg)> {
    let minutes = window.minutes();
    let views = store.views(|f, v| selection.accepts(f, v), minutes.clone());
    let mut periods: Vec<Option<Agg>> = vec![None; window.points() as usize];
    // AWS's account-wide ConcurrentExecutions adds up functions running at once; per minute we
    // have each function's peak, so the account's peak is bounded by their sum.
    let mut peaks: HashMap<(Arc<str>, i64), u32> = HashMap::new();
    for view in &views {
        for bucket in view.buckets(minutes.clone()) {
            let Some(index) = window.period_of(bucket.minute) else { continue };
            let agg = periods[index].get_or_insert_with(Agg::default);
            agg.stats.merge(&bucket.stats);
            if percentiles && metric == Metric::Duration {
                agg.durations.get_or_insert_with(Histogram::default).merge_packed(&bucket.durations);
            }
            if selection.function.is_none() && bucket.stats.invocations > 0 {
                let peak = peaks.entry((view.function.clone(), bucket.minute)).or_default();
                *peak = (*peak).max(bucket.stats.concurrency_max);
            }
        }
    }
    if selection.function.is_none() {
        let mut per_minute: HashMap<i64, u32> = HashMap::new();
        for ((_, minute), peak) in peaks {
            *per_minute.entry(minute).or_default() += peak;
        }
        for agg in periods.iter_mut().flatten() {
            agg.stats.concurrency_max = 0;
        }
        for (minute, peak) in per_minute {
            if let Some(agg) = window.period_of(minute).and_then(|i| periods[i].as_mut()) {
                agg.stats.concurrency_max = agg.stats.concurrency_max.max(peak);
            }
        }
    }
    let filled = periods.into_iter().enumerate().filter_map(|(i, agg)| agg.map(|agg| (i, agg)));
    filled.map(|(i, agg)| (window.timestamp(i), agg)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::bucket::Sample;

    #[test]
    fn window_rounds_like_cloudwatch() {
        let w = Window::new(125, 3600, 300);
        assert_eq!((w.start, w.period, w.points()), (120, 300, 12));
        assert_eq!(Window::new(0, 600, 10).period, 60);
        assert_eq!(Window::new(0, 600, 90).period, 120);
        assert_eq!(w.period_of(2), Some(0));
        assert_eq!(w.period_of(7), Some(1));
        assert_eq!(w.period_of(1), None);
        assert_eq!(w.period_of(60), None);
    }

    #[test]
    fn minutes_fold_into_periods_across_versions() {
        let store = Store::default();
        store.record("f", "1", 0, &invocation(10, false, 1));
        store.record("f", "2", 1, &invocation(20, true, 2));
        store.record("f", "2", 5, &invocation(30, false, 1));
        store.record("g", "1", 1, &invocation(40, false, 1));
        let selection = Selection { function: Some("f".into()), ..Selection::default() };
        let periods = aggregate(&store, Metric::Duration, &selection, &Window::new(0, 600, 300), true);
        assert_eq!(periods.len(), 2);
        let (timestamp, first) = &periods[0];
        assert_eq!((*timestamp, first.stats.invocations, first.stats.errors), (0, 2, 1));
        let (min, max) = (first.stats.duration_min_us, first.stats.duration_max_us);
        assert_eq!(first.durations.as_ref().unwrap().percentile(100.0, min, max), Some(20_000.0));
        assert_eq!(first.durations.as_ref().unwrap().percentile(0.0, min, max), Some(10_000.0));
        assert_eq!(periods[1].0, 300);
    }

    #[test]
    fn account_concurrency_adds_up_functions_running_in_the_same_minute() {
        let store = Store::default();
        store.record("f", "1", 0, &invocation(10, false, 3));
        store.record("f", "2", 0, &invocation(10, false, 2));
        store.record("g", "1", 0, &invocation(10, false, 4));
        store.record("g", "1", 1, &invocation(10, false, 1));
        store.record("h", "1", 0, &Sample::Throttle);
        let all = Selection::default();
        let periods = aggregate(&store, Metric::ConcurrentExecutions, &all, &Window::new(0, 120, 120), false);
        assert_eq!(periods[0].1.stats.concurrency_max, 7);
        let f = Selection { function: Some("f".into()), ..Selection::default() };
        let periods = aggregate(&store, Metric::ConcurrentExecutions, &f, &Window::new(0, 120, 120), false);
        assert_eq!(periods[0].1.stats.concurrency_max, 3);
    }
}
