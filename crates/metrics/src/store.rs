//! Every series (one per function version) and its minutes. Recording takes a shared read lock
//! on one shard of the map (functions spread over shards, so invocations of different functions
//! touch no common memory) and the series' own mutex for a few additions; the minute being
//! recorded is dense, finished minutes are sealed packed and grouped by hour, and whole hours are
//! shared with readers by reference, so a query holds a series' lock only to copy its last hour.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::bucket::{Bucket, Live, Sample};

/// CloudWatch keeps 1-minute data points for 15 days.
pub const RETENTION_MINUTES: i64 = 15 * 24 * 60;

const SHARDS: usize = 16;

type Functions = HashMap<Arc<str>, Vec<Arc<Series>>>;

/// A shard on a cache line of its own, so readers of different shards do not share one.
#[derive(Default)]
#[repr(align(128))]
struct Shard(RwLock<Functions>);

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, Functions> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Functions> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
pub struct Store {
    shards: [Shard; SHARDS],
    hasher: RandomState,
    /// Custom namespaces' metrics and the alarms.
    pub custom: crate::custom::Custom,
}

pub struct Series {
    pub function: Arc<str>,
    pub version: Arc<str>,
    data: Mutex<SeriesData>,
}

#[derive(Default)]
struct SeriesData {
    live: Option<Live>,
    /// Sealed minutes of the newest hour.
    hour: Vec<Bucket>,
    /// Older hours, oldest first.
    hours: VecDeque<Arc<[Bucket]>>,
}

/// A series as a query sees it: old hours shared, the newest minutes copied.
pub struct SeriesView {
    pub function: Arc<str>,
    pub version: Arc<str>,
    hours: Vec<Arc<[Bucket]>>,
    recent: Vec<Bucket>,
}

impl SeriesView {
    /// The sealed minutes in `range`, oldest first (a minute may repeat after a restart).
    pub fn buckets(&self, range: Range<i64>) -> impl Iterator<Item = &Bucket> + '_ {
        let hours = self.hours.iter().flat_map(|hour| hour.iter());
        hours.chain(&self.recent).filter(move |b| range.contains(&b.minute))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    fn shard(&self, function: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(function) as usize % SHARDS]
    }

    pub fn record(&self, function: &str, version: &str, minute: i64, sample: &Sample) {
        {
            let functions = self.shard(function).read();
            let found = functions.get(function).and_then(|all| all.iter().find(|s| &*s.version == version));
            if let Some(series) = found {
                lock(&series.data).add(minute, sample);
                return;
            }
        }
        // A new series: added to under the write lock, so that a sweep cannot drop it first.
        let mut functions = self.shard(function).write();
        lock(&series_in(&mut functions, function, version).data).add(minute, sample);
    }

    /// Views of the series `select(function, version)` accepts, holding their minutes in `range`.
    pub fn views(&self, select: impl Fn(&str, &str) -> bool, range: Range<i64>) -> Vec<SeriesView> {
        let mut views = Vec::new();
        for shard in &self.shards {
            let functions = shard.read();
            let chosen = functions.values().flatten().filter(|s| select(&s.function, &s.version));
            views.extend(chosen.map(|series| lock(&series.data).view(series, &range)));
        }
        views
    }

    /// Drops minutes older than the retention and series left without any.
    pub fn sweep(&self, now_minute: i64) {
        let oldest = now_minute - RETENTION_MINUTES;
        for shard in &self.shards {
            shard.write().retain(|_, all| {
                all.retain(|series| !lock(&series.data).evict(oldest));
                !all.is_empty()
            });
        }
    }

    /// Every minute of every series, for a snapshot.
    pub fn export(&self) -> Vec<(Arc<str>, Arc<str>, Vec<Bucket>)> {
        let views = self.views(|_, _| true, i64::MIN..i64::MAX);
        let dump = |view: &SeriesView| view.buckets(i64::MIN..i64::MAX).cloned().collect();
        views.iter().map(|view| (view.function.clone(), view.version.clone(), dump(view))).collect()
    }

    /// Adds minutes read from a snapshot, recording may have started meanwhile.
    pub fn import(&self, function: &str, version: &str, buckets: Vec<Bucket>) {
        let mut functions = self.shard(function).write();
        lock(&series_in(&mut functions, function, version).data).import(buckets);
    }
}

/// The series of `function` `version` in a shard, created if new.
fn series_in(functions: &mut Functions, function: &str, version: &str) -> Arc<Series> {
    let all = functions.entry(Arc::from(function)).or_default();
    if let Some(series) = all.iter().find(|s| &*s.version == version) {
        return series.clone();
    }
    let series = Arc::new(Series {
        function: Arc::from(function),
        version: Arc::from(version),
        data: Mutex::default(),
    });
    all.push(series.clone());
    series
}

impl SeriesData {
    fn add(&mut self, minute: i64, sample: &Sample) {
        match &mut self.live {
            // The same minute, or the clock stepped back: keep adding to the newest minute.
            Some(live) if live.minute >= minute => live.add(sample),
            Some(live) => {
                let sealed = live.seal();
                live.reset(minute);
                live.add(sample);
                self.push_sealed(sealed);
                self.evict(minute - RETENTION_MINUTES);
            }
            None => {
                let mut live = Live::new(minute);
                live.add(sample);
                self.live = Some(live);
            }
        }
    }

    /// Merges older minutes in, keeping the minutes in order (the live one stays live).
    fn import(&mut self, mut buckets: Vec<Bucket>) {
        buckets.extend(self.hours.drain(..).flat_map(|hour| hour.to_vec()));
        buckets.append(&mut self.hour);
        buckets.sort_by_key(|b| b.minute);
        for bucket in buckets {
            self.push_sealed(bucket);
        }
    }

    fn push_sealed(&mut self, bucket: Bucket) {
        if self.hour.first().is_some_and(|first| first.minute.div_euclid(60) != bucket.minute.div_euclid(60))
        {
            self.hours.push_back(Arc::from(std::mem::take(&mut self.hour)));
        }
        self.hour.push(bucket);
    }

    /// Forgets minutes before `oldest`; `true` when nothing is left.
    fn evict(&mut self, oldest: i64) -> bool {
        while self.hours.front().and_then(|hour| hour.last()).is_some_and(|last| last.minute < oldest) {
            self.hours.pop_front();
        }
        self.hour.retain(|b| b.minute >= oldest);
        if self.live.as_ref().is_some_and(|live| live.minute < oldest) {
            self.live = None;
        }
        self.live.is_none() && self.hour.is_empty() && self.hours.is_empty()
    }

    fn view(&self, series: &Series, range: &Range<i64>) -> SeriesView {
        let overlaps = |hour: &&Arc<[Bucket]>| {
            let (first, last) = (hour.first().map_or(0, |b| b.minute), hour.last().map_or(0, |b| b.minute));
            first < range.end && last >= range.start
        };
        let mut recent: Vec<Bucket> =
            self.hour.iter().filter(|b| range.contains(&b.minute)).cloned().collect();
        recent.extend(self.live.as_ref().filter(|live| range.contains(&live.minute)).map(Live::seal));
        SeriesView {
            function: series.function.clone(),
            version: series.version.clone(),
            hours: self.hours.iter().filter(overlaps).cloned().collect(),
            recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;

    fn minutes(store: &Store, function: &str) -> Vec<(i64, u64)> {
        let views = store.views(|f, _| f == function, i64::MIN..i64::MAX);
        let mut all: Vec<_> = views
            .iter()
            .flat_map(|v| v.buckets(i64::MIN..i64::MAX).map(|b| (b.minute, b.stats.invocations)))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn minutes_are_sealed_grouped_by_hour_and_all_visible() {
        let store = Store::default();
        for minute in [0, 0, 1, 59, 60, 61, 125] {
            store.record("f", "$LATEST", minute, &invocation(5, false, 1));
        }
        assert_eq!(minutes(&store, "f"), vec![(0, 2), (1, 1), (59, 1), (60, 1), (61, 1), (125, 1)]);
        let views = store.views(|_, _| true, 1..61);
        let seen: Vec<i64> = views[0].buckets(1..61).map(|b| b.minute).collect();
        assert_eq!(seen, vec![1, 59, 60]);
        assert_eq!(views[0].hours.len(), 1, "the finished hour is shared");
        assert_eq!(views[0].recent.len(), 1, "of the newest hour, minute 60 is copied");
        assert!(store.views(|_, _| true, 60..62)[0].hours.is_empty(), "hours outside the range are left out");
    }

    #[test]
    fn versions_are_separate_series() {
        let store = Store::default();
        store.record("f", "1", 10, &invocation(5, false, 1));
        store.record("f", "2", 10, &invocation(5, true, 1));
        store.record("g", "1", 10, &Sample::Throttle);
        let views = store.views(|f, v| f == "f" && v == "2", 0..100);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].buckets(0..100).next().unwrap().stats.errors, 1);
        assert_eq!(store.views(|_, _| true, 0..100).len(), 3);
    }

    #[test]
    fn old_minutes_and_idle_series_are_evicted() {
        let store = Store::default();
        store.record("old", "1", 0, &invocation(5, false, 1));
        store.record("new", "1", 0, &invocation(5, false, 1));
        store.record("new", "1", RETENTION_MINUTES + 120, &invocation(5, false, 1));
        assert_eq!(minutes(&store, "new"), vec![(RETENTION_MINUTES + 120, 1)], "evicted while recording");
        store.sweep(RETENTION_MINUTES + 121);
        assert!(minutes(&store, "old").is_empty());
        assert_eq!(store.views(|_, _| true, i64::MIN..i64::MAX).len(), 1, "the idle series is gone");
    }

    #[test]
    fn importing_under_newer_minutes_keeps_them_in_order() {
        let store = Store::default();
        for minute in [120, 121, 200] {
            store.record("f", "1", minute, &invocation(5, false, 1));
        }
        let old = Store::default();
        for minute in [3, 4, 70, 121] {
            old.record("f", "1", minute, &invocation(5, false, 1));
        }
        let (_, _, buckets) = old.export().pop().unwrap();
        store.import("f", "1", buckets);
        let all = minutes(&store, "f");
        assert_eq!(all, vec![(3, 1), (4, 1), (70, 1), (120, 1), (121, 1), (121, 1), (200, 1)]);
        let views = store.views(|_, _| true, 60..130);
        let seen: Vec<i64> = views[0].buckets(60..130).map(|b| b.minute).collect();
        assert_eq!(seen, vec![70, 120, 121, 121], "hours stay sorted after the import");
        store.record("f", "1", 201, &invocation(5, false, 1));
        assert_eq!(minutes(&store, "f").len(), 8);
    }

    #[test]
    fn export_then_import_restores_every_minute() {
        let store = Store::default();
        for minute in [3, 4, 70] {
            store.record("f", "1", minute, &invocation(5, false, 1));
        }
        let restored = Store::default();
        for (function, version, buckets) in store.export() {
            restored.import(&function, &version, buckets);
        }
        assert_eq!(minutes(&restored, "f"), minutes(&store, "f"));
    }
}
