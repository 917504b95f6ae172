//! Segment files: the events of one stream whose timestamps fall in one hour, in one append-only
//! file `streams/<stream id>/<hour>.seg`. Retention deletes whole files, and a read of a time
//! range opens only the hours it covers.
//!
//! A file is a sequence of records `u32 length | i64 timestamp | i64 ingestion time | message`
//! (little endian, message in UTF-8), in the order they were ingested. A record's byte offset is
//! unique within its file and grows with ingestion, so `(timestamp, offset)` orders a stream's
//! events and names each one. A record cut short by a crash ends the readable part of a file;
//! the writer truncates it before appending again.

use std::io;
use std::path::{Path, PathBuf};

use crate::clock::HOUR_MS;

/// The span of event time one segment file holds.
pub const WINDOW_MS: i64 = HOUR_MS;
const HEADER: usize = 20;
/// Larger than any event we accept; a length beyond it is a damaged record.
const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub timestamp: i64,
    pub ingestion: i64,
    /// Byte offset of the record in its segment file.
    pub offset: u64,
    pub message: String,
}

impl StoredEvent {
    /// The event's position within its stream.
    pub fn key(&self) -> (i64, u64) {
        (self.timestamp, self.offset)
    }
}

pub fn window_of(timestamp: i64) -> i64 {
    timestamp.div_euclid(WINDOW_MS)
}

pub fn stream_dir(root: &Path, stream_id: i64) -> PathBuf {
    root.join("streams").join(stream_id.to_string())
}

pub fn segment_path(root: &Path, stream_id: i64, window: i64) -> PathBuf {
    stream_dir(root, stream_id).join(format!("{window}.seg"))
}

pub fn encode(buffer: &mut Vec<u8>, timestamp: i64, ingestion: i64, message: &str) {
    buffer.extend_from_slice(&(message.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&timestamp.to_le_bytes());
    buffer.extend_from_slice(&ingestion.to_le_bytes());
    buffer.extend_from_slice(message.as_bytes());
}

/// The whole records in `bytes`, and the length they cover.
pub fn decode(bytes: &[u8]) -> (Vec<StoredEvent>, usize) {
    let mut events = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let word = |from: usize, len: usize| &bytes[at + from..at + from + len];
        let length = u32::from_le_bytes(word(0, 4).try_into().unwrap_or_default()) as usize;
        if length > MAX_RECORD || bytes.len() - at - HEADER < length {
            break;
        }
        let timestamp = i64::from_le_bytes(word(4, 8).try_into().unwrap_or_default());
        let ingestion = i64::from_le_bytes(word(12, 8).try_into().unwrap_or_default());
        let message = String::from_utf8_lossy(word(HEADER, length)).into_owned();
        events.push(StoredEvent { timestamp, ingestion, offset: at as u64, message });
        at += HEADER + length;
    }
    (events, at)
}

/// The events of one segment file; a file that is gone (expired, deleted) holds none.
pub fn read(path: &Path) -> io::Result<Vec<StoredEvent>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(decode(&bytes).0),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// The hours a stream has segment files for, ascending.
pub fn windows(root: &Path, stream_id: i64) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(stream_dir(root, stream_id)) else {
        return Vec::new();
    };
    let mut windows: Vec<i64> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    windows.sort_unstable();
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_ignored() {
        let mut buffer = Vec::new();
        encode(&mut buffer, 1_000, 1_005, "first");
        encode(&mut buffer, 1_001, 1_006, "sécond\n");
        let whole = buffer.len();
        encode(&mut buffer, 1_002, 1_007, "cut short");
        buffer.truncate(buffer.len() - 3);
        let (events, valid) = decode(&buffer);
        assert_eq!(valid, whole);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0],
            StoredEvent { timestamp: 1_000, ingestion: 1_005, offset: 0, message: "first".into() }
        );
        assert_eq!(events[1].offset, 25);
        assert_eq!(events[1].message, "sécond\n");
    }

    #[test]
    fn windows_are_hours_and_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for window in [5, -1, 12] {
            let path = segment_path(dir.path(), 7, window);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        assert_eq!(windows(dir.path(), 7), vec![-1, 5, 12]);
        assert!(windows(dir.path(), 8).is_empty());
        assert_eq!(window_of(WINDOW_MS - 1), 0);
        assert_eq!(window_of(-1), -1);
        assert!(read(&segment_path(dir.path(), 9, 0)).unwrap().is_empty());
    }
}
