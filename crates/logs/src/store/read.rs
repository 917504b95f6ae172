//! Reads over segment files: a stream forwards or backwards from a position (`GetLogEvents`),
//! and many streams of a group merged in time order (`FilterLogEvents`). Only the hours a
//! request's time range covers are opened.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::segments::{self, StoredEvent};

/// A response holds at most this many bytes of events, each counted as its message plus 26 bytes
/// (AWS's own accounting).
pub const PAGE_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;

/// Events with `from <= timestamp < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub until: i64,
}

impl Range {
    pub fn contains(&self, timestamp: i64) -> bool {
        self.from <= timestamp && timestamp < self.until
    }

    fn windows(&self) -> (i64, i64) {
        (segments::window_of(self.from), segments::window_of(self.until.saturating_sub(1)))
    }
}

/// Counts events and bytes against a page's limits; the first event always fits.
struct Budget {
    left: usize,
    bytes: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { left: limit, bytes: 0 }
    }

    fn take(&mut self, message: &str) -> bool {
        let size = message.len() + EVENT_OVERHEAD;
        if self.left == 0 || (self.bytes > 0 && self.bytes + size > PAGE_BYTES) {
            return false;
        }
        self.left -= 1;
        self.bytes += size;
        true
    }
}

/// Up to `limit` events of a stream at or after `from` (a `(timestamp, offset)` position).
pub fn forward(
    root: &Path,
    stream_id: i64,
    range: Range,
    from: (i64, u64),
    limit: usize,
) -> io::Result<Vec<StoredEvent>> {
    let (first, last) = range.windows();
    let first = first.max(segments::window_of(from.0));
    let mut budget = Budget::new(limit);
    let mut out = Vec::new();
    for window in segments::windows(root, stream_id).into_iter().filter(|w| (first..=last).contains(w)) {
        let mut events = segments::read(&segments::segment_path(root, stream_id, window))?;
        events.retain(|e| range.contains(e.timestamp) && e.key() >= from);
        events.sort_unstable_by_key(StoredEvent::key);
        for event in events {
            if !budget.take(&event.message) {
                return Ok(out);
            }
            out.push(event);
        }
    }
    Ok(out)
}

/// The last `limit` events of a stream before `before` (or its end), oldest first.
pub fn backward(
    root: &Path,
    stream_id: i64,
    range: Range,
    before: Option<(i64, u64)>,
    limit: usize,
) -> io::Result<Vec<StoredEvent>> {
    let (first, last) = range.windows();
    let last = before.map_or(last, |(timestamp, _)| last.min(segments::window_of(timestamp)));
    let mut budget = Budget::new(limit);
    let mut out = Vec::new();
    let windows = segments::windows(root, stream_id);
    'windows: for window in windows.into_iter().rev().filter(|w| (first..=last).contains(w)) {
        let mut events = segments::read(&segments::segment_path(root, stream_id, window))?;
        events.retain(|e| range.contains(e.timestamp) && before.is_none_or(|b| e.key() < b));
        events.sort_unstable_by_key(|e| std::cmp::Reverse(e.key()));
        for event in events {
            if !budget.take(&event.message) {
                break 'windows;
            }
            out.push(event);
        }
    }
    out.reverse();
    Ok(out)
}

/// Where an event stands in a group's merged order: AWS sorts by timestamp, then ingestion time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FilterKey {
    pub timestamp: i64,
    pub ingestion: i64,
    pub stream_id: i64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub key: FilterKey,
    /// Index into the `streams` the search was given.
    pub stream: usize,
    pub message: String,
}

/// Up to `limit` matching events of `streams` after `after`, merged in time order, and whether
/// more match beyond them.
pub fn filter(
    root: &Path,
    streams: &[i64],
    range: Range,
    after: Option<FilterKey>,
    matches: impl Fn(&str) -> bool,
    limit: usize,
) -> io::Result<(Vec<Found>, bool)> {
    let (first, last) = range.windows();
    let first = after.map_or(first, |key| first.max(segments::window_of(key.timestamp)));
    let mut hours: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (index, stream_id) in streams.iter().enumerate() {
        for window in segments::windows(root, *stream_id).into_iter().filter(|w| (first..=last).contains(w)) {
            hours.entry(window).or_default().push(index);
        }
    }
    let mut budget = Budget::new(limit);
    let mut out = Vec::new();
    for (window, indexes) in hours {
        let mut found = Vec::new();
        for index in indexes {
            let stream_id = streams[index];
            for event in segments::read(&segments::segment_path(root, stream_id, window))? {
                let key = FilterKey {
                    timestamp: event.timestamp,
                    ingestion: event.ingestion,
                    stream_id,
                    offset: event.offset,
                };
                if range.contains(event.timestamp)
                    && after.is_none_or(|after| key > after)
                    && matches(&event.message)
                {
                    found.push(Found { key, stream: index, message: event.message });
                }
            }
        }
        found.sort_unstable_by_key(|f| f.key);
        for event in found {
            if !budget.take(&event.message) {
                return Ok((out, true));
            }
            out.push(event);
        }
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::segments::{encode, segment_path, WINDOW_MS};

    fn write(root: &Path, stream_id: i64, events: &[(i64, &str)]) {
        for (timestamp, message) in events {
            let path = segment_path(root, stream_id, segments::window_of(*timestamp));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            encode(&mut bytes, *timestamp, 0, message);
            std::fs::write(&path, bytes).unwrap();
        }
    }

    const ALL: Range = Range { from: 0, until: i64::MAX };

    #[test]
    fn a_stream_reads_in_time_order_across_hours_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let late = WINDOW_MS * 3 + 5;
        write(dir.path(), 1, &[(late, "c"), (10, "a2"), (5, "a1"), (late + 1, "d")]);
        let messages = |events: Vec<StoredEvent>| events.into_iter().map(|e| e.message).collect::<Vec<_>>();
        assert_eq!(messages(forward(dir.path(), 1, ALL, (0, 0), 10).unwrap()), ["a1", "a2", "c", "d"]);
        let page = forward(dir.path(), 1, ALL, (0, 0), 3).unwrap();
        let next = (page[2].timestamp, page[2].offset + 1);
        assert_eq!(messages(forward(dir.path(), 1, ALL, next, 3).unwrap()), ["d"]);
        assert_eq!(messages(backward(dir.path(), 1, ALL, None, 2).unwrap()), ["c", "d"]);
        assert_eq!(messages(backward(dir.path(), 1, ALL, Some((late, 0)), 5).unwrap()), ["a1", "a2"]);
        let range = Range { from: 6, until: late + 1 };
        assert_eq!(messages(forward(dir.path(), 1, range, (0, 0), 10).unwrap()), ["a2", "c"]);
    }

    #[test]
    fn streams_merge_by_timestamp_and_report_whether_more_match() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, &[(1, "one ERROR"), (4, "four"), (WINDOW_MS, "late ERROR")]);
        write(dir.path(), 2, &[(2, "two ERROR"), (3, "three ERROR")]);
        let errors = |m: &str| m.contains("ERROR");
        let (page, more) = filter(dir.path(), &[1, 2], ALL, None, errors, 2).unwrap();
        assert!(more);
        assert_eq!(page.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(), ["one ERROR", "two ERROR"]);
        assert_eq!(page[1].stream, 1);
        let (page, more) = filter(dir.path(), &[1, 2], ALL, Some(page[1].key), errors, 2).unwrap();
        assert!(!more);
        assert_eq!(
            page.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
            ["three ERROR", "late ERROR"]
        );
    }
}
