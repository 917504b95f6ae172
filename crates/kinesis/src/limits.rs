//! Per-shard limits (`--kinesis-limits`): writes 1 MiB/s and 1,000 records/s, reads 5
//! `GetRecords` calls/s, counted in one-second windows on this node.

use std::collections::HashMap;
use std::sync::Mutex;

const RECORDS_PER_SECOND: u32 = 1000;
const BYTES_PER_SECOND: u64 = 1024 * 1024;
const READS_PER_SECOND: u32 = 5;
/// Windows kept before old ones are dropped (bounds the map).
const MAX_WINDOWS: usize = 4096;

#[derive(Default)]
pub struct Limits {
    windows: Mutex<HashMap<(String, i64), Window>>,
    reads: Mutex<HashMap<(String, i64), Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    second: i64,
    records: u32,
    bytes: u64,
}

impl Limits {
    /// Counts a record of `bytes` against shard `index` of stream `stream_id`; `false` (and
    /// nothing counted) when it would exceed the shard's limits this second.
    pub fn admit(&self, stream_id: &str, index: i64, bytes: u64, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_WINDOWS {
            windows.retain(|_, w| w.second == second);
        }
        let window =
            windows.entry((stream_id.to_owned(), index)).or_insert(Window { second, records: 0, bytes: 0 });
        if window.second != second {
            *window = Window { second, records: 0, bytes: 0 };
        }
        if window.records + 1 > RECORDS_PER_SECOND || window.bytes + bytes > BYTES_PER_SECOND {
            return false;
        }
        window.records += 1;
        window.bytes += bytes;
        true
    }

    /// Counts a `GetRecords` call on shard `index`; `false` past five this second.
    pub fn admit_read(&self, stream_id: &str, index: i64, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        if reads.len() >= MAX_WINDOWS {
            reads.retain(|_, w| w.second == second);
        }
        let window =
            reads.entry((stream_id.to_owned(), index)).or_insert(Window { second, records: 0, bytes: 0 });
        if window.second != second {
            *window = Window { second, records: 0, bytes: 0 };
        }
        window.records += 1;
        window.records <= READS_PER_SECOND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_records_or_a_mebibyte_per_second() {
        let limits = Limits::default();
        assert!((0..1000).all(|_| limits.admit("s", 0, 1, 5_000)));
        assert!(!limits.admit("s", 0, 1, 5_999));
        assert!(limits.admit("s", 1, 1, 5_999), "other shards have their own");
        assert!(limits.admit("s", 0, 1, 6_000), "a new second");
        assert!(limits.admit("s", 2, BYTES_PER_SECOND, 6_000));
        assert!(!limits.admit("s", 2, 1, 6_000));
        assert!((0..5).all(|_| limits.admit_read("s", 0, 7_000)));
        assert!(!limits.admit_read("s", 0, 7_500));
        assert!(limits.admit_read("s", 0, 8_000));
    }
}
