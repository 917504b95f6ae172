//! Metrics across restarts: every minute of every series written to one CBOR file in the blob
//! area `metrics`, replaced atomically by the area (staged, fsynced, renamed). A minute is a few
//! dozen bytes: counters as integers and the packed histogram as a byte string.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use nimbus_store::BlobArea;
use serde::{Deserialize, Serialize};

use crate::bucket::{Billed, Bucket, Stats};
use crate::store::Store;

/// Where snapshots lived before the blob area: `<data dir>/metrics.cbor`.
pub const LEGACY_FILE_NAME: &str = "metrics.cbor";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    series: Vec<SeriesRecord>,
}

#[derive(Serialize, Deserialize)]
struct SeriesRecord {
    function: String,
    version: String,
    minutes: Vec<MinuteRecord>,
}

/// A minute: its number, its counters in [`counters`]' order, its packed histogram.
type MinuteRecord = (i64, [u64; 13], ByteString);

/// Bytes as one CBOR byte string rather than an array of numbers.
struct ByteString(Vec<u8>);

impl Serialize for ByteString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ByteString, E> {
                Ok(ByteString(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<ByteString, E> {
                Ok(ByteString(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

pub fn save(store: &Store, area: &BlobArea, name: &str) -> io::Result<()> {
    let series = store.export().into_iter().map(|(function, version, buckets)| SeriesRecord {
        function: function.to_string(),
        version: version.to_string(),
        minutes: buckets
            .into_iter()
            .map(|b| (b.minute, counters(&b.stats), ByteString(b.durations.into_vec())))
            .collect(),
    });
    let snapshot = Snapshot { format: FORMAT, series: series.collect() };
    store.custom.save(area, &format!("{name}.custom.json"))?;
    area.write_with(name, |file| {
        let mut writer = BufWriter::new(file);
        ciborium::into_writer(&snapshot, &mut writer).map_err(io::Error::other)?;
        writer.flush()
    })
}

/// Loads a snapshot into `store`; a missing file is an empty one.
pub fn load(store: &Store, path: &Path) -> io::Result<()> {
    store.custom.load(&path.with_extension("cbor.custom.json"))?;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let snapshot: Snapshot = ciborium::from_reader(BufReader::new(file))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    if snapshot.format != FORMAT {
        let message = format!("{}: format {} is not {FORMAT}", path.display(), snapshot.format);
        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
    }
    for series in snapshot.series {
        let buckets = series.minutes.into_iter().map(|(minute, counters, durations)| Bucket {
            minute,
            stats: stats(&counters),
            durations: durations.0.into_boxed_slice(),
        });
        store.import(&series.function, &series.version, buckets.collect());
    }
    Ok(())
}

fn counters(s: &Stats) -> [u64; 13] {
    let [x86, arm] = s.billed;
    [
        s.invocations,
        s.errors,
        s.throttles,
        s.duration_sum_us,
        s.duration_min_us,
        s.duration_max_us,
        s.concurrency_sum,
        u64::from(s.concurrency_min),
        u64::from(s.concurrency_max),
        x86.requests,
        x86.mb_ms,
        arm.requests,
        arm.mb_ms,
    ]
}

fn stats(c: &[u64; 13]) -> Stats {
    let narrow = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    Stats {
        invocations: c[0],
        errors: c[1],
        throttles: c[2],
        duration_sum_us: c[3],
        duration_min_us: c[4],
        duration_max_us: c[5],
        concurrency_sum: c[6],
        concurrency_min: narrow(c[7]),
        concurrency_max: narrow(c[8]),
        billed: [Billed { requests: c[9], mb_ms: c[10] }, Billed { requests: c[11], mb_ms: c[12] }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::tests::invocation;
    use crate::bucket::Sample;

    fn area(dir: &tempfile::TempDir) -> BlobArea {
        nimbus_store::Blobs::new(dir.path(), "n", false).area("metrics").unwrap()
    }

    #[test]
    fn a_saved_store_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let area = area(&dir);
        let path = area.path("n.cbor");
        let store = Store::default();
        store.record("f", "1", 10, &invocation(12, true, 2));
        store.record("f", "1", 11, &invocation(7, false, 1));
        store.record("g", "$LATEST", 70, &Sample::Throttle);
        save(&store, &area, "n.cbor").unwrap();
        let loaded = Store::default();
        load(&loaded, &path).unwrap();
        let dump = |s: &Store| {
            let mut all: Vec<_> = s
                .export()
                .into_iter()
                .flat_map(|(f, v, buckets)| {
                    buckets
                        .into_iter()
                        .map(move |b| (f.to_string(), v.to_string(), b.minute, b.stats, b.durations))
                })
                .collect();
            all.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
            all
        };
        assert_eq!(dump(&loaded), dump(&store));
        assert_eq!(std::fs::read_dir(area.staging()).unwrap().count(), 0, "nothing left staged");
    }

    #[test]
    fn missing_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.cbor");
        load(&Store::default(), &path).unwrap();
        std::fs::write(&path, b"not cbor").unwrap();
        assert_eq!(load(&Store::default(), &path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
