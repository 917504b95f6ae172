//! Durable log storage: the catalog of groups and streams (`catalog`), events in per-hour segment
//! files (`segments`), one writer thread fed by a bounded queue (`writer`) and the reads
//! (`read`). Appends never wait for the disk: they are queued, and the writer picks them up at
//! once, so a read a moment later sees them.
//!
//! Segment files live in the blob area `logs` (`<data dir>/logs/streams/<id>/`, where they always
//! were). They are appended to, so they are not written with the area's `write` (which stages a
//! whole file and renames it into place): the writer appends under `area.dir()` itself and
//! syncs every second and on close, as before the storage layer. Only one process writes an
//! area's segments at a time (see `writer`).

pub mod catalog;
pub mod read;
mod schema;
pub mod segments;
#[cfg(test)]
pub mod testing;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nimbus_functions::telemetry::LogEvent;
use nimbus_store::{BlobArea, Database};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use catalog::{Catalog, CatalogError};
use writer::{Command, Writer};

/// Commands the writer may have queued (memory is taken only as the queue fills); beyond it
/// appends from the engine are dropped (and counted) and `PutLogEvents` waits, then answers
/// `ServiceUnavailableException`.
const QUEUE: usize = 65_536;
/// How long an API call waits for room in a full queue.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the logs directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("cannot open the logs' blob area: {0}")]
    Area(std::io::Error),
    #[error("cannot open the log catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
}

/// The writer is gone or overloaded.
#[derive(Debug)]
pub struct Busy;

pub struct Storage {
    /// The blob area's directory, which segment reads open files under.
    pub root: PathBuf,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    queue: mpsc::Sender<Command>,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl Storage {
    pub fn open(database: &Database, area: &BlobArea, clock: Arc<dyn Clock>) -> Result<Storage, OpenError> {
        let root = area.dir();
        std::fs::create_dir_all(root.join("streams"))
            .map_err(|source| OpenError::Directory { path: root.to_owned(), source })?;
        let catalog = Arc::new(Catalog::open(database)?);
        let (queue, commands) = mpsc::channel(QUEUE);
        let writer = Writer::new(root.to_owned(), catalog.clone(), clock.clone());
        std::thread::Builder::new()
            .name("nimbus-logs".into())
            .spawn(move || writer.run(commands))
            .map_err(OpenError::Thread)?;
        Ok(Storage {
            root: root.to_owned(),
            catalog,
            clock,
            queue,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Queues events without waiting; drops and counts them when the queue is full.
    pub fn sink(&self, group: &str, stream: &str, events: Vec<LogEvent>) {
        if events.is_empty() {
            return;
        }
        let count = events.len() as u64;
        if self.closed.load(Ordering::Relaxed) {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            return;
        }
        let command =
            Command::Sink { group: group.into(), stream: stream.into(), events, ingestion: self.now() };
        if self.queue.try_send(command).is_err() {
            self.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Appends a validated batch and waits until readers can see it.
    pub async fn put(&self, stream_id: i64, events: Vec<(i64, String)>, ingestion: i64) -> Result<(), Busy> {
        self.call(|done| Command::Put { stream_id, events, ingestion, done }).await
    }

    /// Deletes the files of removed streams (in the background; leftovers are collected later).
    pub fn remove(&self, stream_ids: Vec<i64>) {
        if !stream_ids.is_empty() {
            let _ = self.queue.try_send(Command::Remove { stream_ids });
        }
    }

    /// Asks the writer for an expiry pass without waiting for it (after a retention change).
    pub fn expire_soon(&self) {
        let (done, _) = oneshot::channel();
        let _ = self.queue.try_send(Command::Expire { done });
    }

    pub async fn expire_now(&self) -> Result<(), Busy> {
        self.call(|done| Command::Expire { done }).await
    }

    pub async fn flush(&self) -> Result<(), Busy> {
        self.call(|done| Command::Flush { done }).await
    }

    /// Writes out everything queued and stops the writer; later appends are dropped.
    pub async fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.call(|done| Command::Close { done }).await;
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    async fn call(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) -> Result<(), Busy> {
        let (done, finished) = oneshot::channel();
        let mut command = command(done);
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        loop {
            match self.queue.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if tokio::time::Instant::now() < deadline => {
                    command = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(_) => return Err(Busy),
            }
        }
        finished.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nimbus_functions::telemetry::LogEvent;

    use super::read::{self, Range};
    use super::segments;
    use super::testing::{blobs, databases};
    use super::Storage;
    use crate::clock::{ManualClock, DAY_MS, HOUR_MS};

    const NOW: i64 = 1_700_000_000_000;
    const ALL: Range = Range { from: i64::MIN, until: i64::MAX };

    fn event(timestamp_ms: i64, message: &str) -> LogEvent {
        LogEvent { timestamp_ms, message: message.into() }
    }

    fn messages(storage: &Storage, stream_id: i64) -> Vec<String> {
        let events = read::forward(&storage.root, stream_id, ALL, (i64::MIN, 0), 100).unwrap();
        events.into_iter().map(|e| e.message).collect()
    }

    fn open(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Storage {
        let database = nimbus_store::Database::sqlite(dir.path());
        Storage::open(&database, &blobs(dir).area("logs").unwrap(), clock).unwrap()
    }

    /// Open and drop outside the runtime: PostgreSQL's client may not be made or dropped on its
    /// workers (it blocks on a runtime of its own).
    #[test]
    fn sink_events_create_their_stream_are_readable_at_once_and_survive_a_restart() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        for (database, dir) in databases("logs_storage") {
            let clock = Arc::new(ManualClock::new(NOW));
            let area = blobs(&dir).area("logs").unwrap();
            let storage = Storage::open(&database, &area, clock.clone()).unwrap();
            assert_eq!(storage.root, dir.path().join("logs"), "segments stay where they always were");
            storage.sink(
                "/aws/lambda/f",
                "2024/01/01/[$LATEST]abc",
                vec![event(NOW, "START\n"), event(NOW + 1, "hi\n")],
            );
            // No flush: the writer picks events up as they arrive.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let id = loop {
                let found = storage
                    .catalog
                    .group("/aws/lambda/f")
                    .ok()
                    .and_then(|g| g.streams.values().next().cloned());
                if let Some(stream) = found.filter(|s| s.last_event.is_some()) {
                    break stream.id;
                }
                assert!(std::time::Instant::now() < deadline, "sink events never arrived");
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            assert_eq!(messages(&storage, id), ["START\n", "hi\n"]);
            runtime.block_on(storage.close());
            storage.sink("/aws/lambda/f", "late", vec![event(NOW, "dropped")]);
            assert_eq!(storage.dropped(), 1);
            drop(storage);

            // Another process, as it were: everything comes back from the database and the area.
            let area = blobs(&dir).area("logs").unwrap();
            let reopened = Storage::open(&database, &area, clock).unwrap();
            let group = reopened.catalog.group("/aws/lambda/f").unwrap();
            let stream = group.streams.values().next().unwrap();
            assert_eq!(
                (stream.first_event, stream.last_event, stream.last_ingestion),
                (Some(NOW), Some(NOW + 1), Some(NOW))
            );
            assert!(group.stored_bytes() > 0);
            assert_eq!(messages(&reopened, id), ["START\n", "hi\n"]);
            assert!(!group.streams.contains_key("late"));
            runtime.block_on(reopened.close());
        }
    }

    #[tokio::test]
    async fn retention_deletes_expired_hours_with_an_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW));
        let storage = open(&dir, clock.clone());
        let id = storage.catalog.ensure_stream("/g", "s", NOW).unwrap();
        storage.put(id, vec![(NOW - 3 * HOUR_MS, "old".into()), (NOW, "new".into())], NOW).await.unwrap();
        let before = storage.catalog.group("/g").unwrap().stored_bytes();
        storage.catalog.set_retention("/g", Some(1)).unwrap();
        storage.expire_now().await.unwrap();
        assert_eq!(segments::windows(&storage.root, id).len(), 2, "nothing is a day old yet");

        clock.advance_ms(DAY_MS - HOUR_MS);
        storage.expire_now().await.unwrap();
        assert_eq!(segments::windows(&storage.root, id), [segments::window_of(NOW)]);
        assert_eq!(messages(&storage, id), ["new"]);
        let after = storage.catalog.group("/g").unwrap().stored_bytes();
        assert!(after < before && after > 0, "{before} -> {after}");

        clock.advance_ms(2 * DAY_MS);
        storage.expire_now().await.unwrap();
        assert!(segments::windows(&storage.root, id).is_empty());
        assert_eq!(storage.catalog.group("/g").unwrap().stored_bytes(), 0);
    }

    #[tokio::test]
    async fn removed_streams_lose_their_files_and_late_puts_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(&dir, Arc::new(ManualClock::new(NOW)));
        let id = storage.catalog.ensure_stream("/g", "s", NOW).unwrap();
        storage.put(id, vec![(NOW, "x".into())], NOW).await.unwrap();
        assert!(segments::stream_dir(&storage.root, id).exists());
        let ids = storage.catalog.delete_group("/g").unwrap();
        storage.put(id, vec![(NOW, "late".into())], NOW).await.unwrap();
        storage.remove(ids);
        storage.flush().await.unwrap();
        assert!(!segments::stream_dir(&storage.root, id).exists());
    }
}
