//! The one writer: a thread that takes commands from a bounded channel, appends events to segment
//! files in batches (whatever queued up while it was busy, so it writes as soon as events arrive
//! and batches grow only under load), updates stream statistics, deletes the files of removed
//! streams and of expired hours, and syncs written files to disk every second and on close.
//!
//! It owns the segment files it appends to (open handles, torn tails truncated on first open):
//! one writer per logs area at a time. A writer that died mid-append leaves at most a torn
//! record, which the next one truncates; events it had queued but not written are lost.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_functions::telemetry::LogEvent;
use tokio::sync::mpsc::Receiver;
use tokio::sync::oneshot;

use super::catalog::{Catalog, StreamUpdate};
use super::segments::{self, WINDOW_MS};
use crate::clock::{Clock, DAY_MS};

const MAX_BATCH: usize = 512;
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);
/// Segment files kept open; past this all are synced and closed.
const MAX_OPEN: usize = 256;

pub enum Command {
    /// Lines from the functions engine: the group and stream are created on first use.
    Sink { group: String, stream: String, events: Vec<LogEvent>, ingestion: i64 },
    /// A validated `PutLogEvents` batch for a stream that existed when it was validated.
    Put { stream_id: i64, events: Vec<(i64, String)>, ingestion: i64, done: oneshot::Sender<()> },
    /// Deletes the files of streams removed from the catalog.
    Remove { stream_ids: Vec<i64> },
    /// Deletes expired hours now (also done every minute).
    Expire { done: oneshot::Sender<()> },
    /// Syncs everything written so far to disk.
    Flush { done: oneshot::Sender<()> },
    /// Flushes, then stops the writer.
    Close { done: oneshot::Sender<()> },
}

struct Segment {
    file: File,
    dirty: bool,
}

/// Appends staged for one batch.
#[derive(Default)]
struct Staged {
    buffers: BTreeMap<(i64, i64), Vec<u8>>,
    updates: HashMap<i64, StreamUpdate>,
}

impl Staged {
    fn add(&mut self, stream_id: i64, timestamp: i64, ingestion: i64, message: &str) {
        let buffer = self.buffers.entry((stream_id, segments::window_of(timestamp))).or_default();
        let before = buffer.len();
        segments::encode(buffer, timestamp, ingestion, message);
        let added = (buffer.len() - before) as i64;
        let update = self.updates.entry(stream_id).or_insert(StreamUpdate {
            id: stream_id,
            first_event: None,
            last_event: None,
            last_ingestion: None,
            bytes_delta: 0,
        });
        update.first_event = Some(update.first_event.map_or(timestamp, |t| t.min(timestamp)));
        update.last_event = update.last_event.max(Some(timestamp));
        update.last_ingestion = update.last_ingestion.max(Some(ingestion));
        update.bytes_delta += added;
    }
}

pub struct Writer {
    root: PathBuf,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    open: HashMap<(i64, i64), Segment>,
}

impl Writer {
    pub fn new(root: PathBuf, catalog: Arc<Catalog>, clock: Arc<dyn Clock>) -> Writer {
        Writer { root, catalog, clock, open: HashMap::new() }
    }

    /// Serves commands until closed (or until every sender is gone). Runs on its own thread, so
    /// the disk work below blocks nobody. A small runtime of its own provides the timed wait for
    /// the next command, and only that: the catalog's database calls run outside any runtime
    /// (PostgreSQL's client blocks on a runtime of its own, which it may not do inside another).
    pub fn run(mut self, mut commands: Receiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(error) => return eprintln!("nimbus logs: cannot start the writer: {error}"),
        };
        self.collect_garbage();
        self.expire();
        let mut next_sync = Instant::now() + SYNC_INTERVAL;
        let mut next_expiry = Instant::now() + EXPIRY_INTERVAL;
        loop {
            let wait = next_sync.min(next_expiry).saturating_duration_since(Instant::now());
            // In an async block: the timer must be made inside the runtime.
            let next = runtime.block_on(async { tokio::time::timeout(wait, commands.recv()).await });
            match next {
                Ok(Some(first)) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match commands.try_recv() {
                            Ok(command) => batch.push(command),
                            Err(_) => break,
                        }
                    }
                    if !self.apply(batch) {
                        return;
                    }
                }
                Ok(None) => return self.sync(),
                Err(_) => {}
            }
            let now = Instant::now();
            if now >= next_sync {
                self.sync();
                next_sync = now + SYNC_INTERVAL;
            }
            if now >= next_expiry {
                self.expire();
                self.collect_garbage();
                next_expiry = now + EXPIRY_INTERVAL;
            }
        }
    }

    /// Carries out a batch in order; `false` once closed.
    fn apply(&mut self, batch: Vec<Command>) -> bool {
        let mut staged = Staged::default();
        let mut acks = Vec::new();
        let mut open = true;
        for command in batch {
            match command {
                Command::Sink { group, stream, events, ingestion } => {
                    match self.catalog.ensure_stream(&group, &stream, ingestion) {
                        Ok(id) => {
                            for event in &events {
                                staged.add(id, event.timestamp_ms, ingestion, &event.message);
                            }
                        }
                        Err(error) => eprintln!("nimbus logs: cannot create {group} / {stream}: {error}"),
                    }
                }
                Command::Put { stream_id, events, ingestion, done } => {
                    if self.catalog.stream_exists(stream_id) {
                        for (timestamp, message) in &events {
                            staged.add(stream_id, *timestamp, ingestion, message);
                        }
                    }
                    acks.push(done);
                }
                Command::Remove { stream_ids } => {
                    self.commit(std::mem::take(&mut staged));
                    for id in stream_ids {
                        self.open.retain(|(stream, _), _| *stream != id);
                        let _ = std::fs::remove_dir_all(segments::stream_dir(&self.root, id));
                    }
                }
                Command::Expire { done } => {
                    self.commit(std::mem::take(&mut staged));
                    self.expire();
                    acks.push(done);
                }
                Command::Flush { done } => {
                    self.commit(std::mem::take(&mut staged));
                    self.sync();
                    acks.push(done);
                }
                Command::Close { done } => {
                    self.commit(std::mem::take(&mut staged));
                    self.sync();
                    acks.push(done);
                    open = false;
                    break;
                }
            }
        }
        self.commit(staged);
        for done in acks {
            let _ = done.send(());
        }
        open
    }

    fn commit(&mut self, staged: Staged) {
        if staged.buffers.is_empty() {
            return;
        }
        for ((stream_id, window), buffer) in staged.buffers {
            if let Err(error) = self.append(stream_id, window, &buffer) {
                eprintln!("nimbus logs: cannot write stream {stream_id}: {error}");
            }
        }
        let updates: Vec<StreamUpdate> = staged.updates.into_values().collect();
        if let Err(error) = self.catalog.record(&updates) {
            eprintln!("nimbus logs: {error}");
        }
    }

    fn append(&mut self, stream_id: i64, window: i64, buffer: &[u8]) -> std::io::Result<()> {
        if !self.open.contains_key(&(stream_id, window)) {
            if self.open.len() >= MAX_OPEN {
                self.sync();
                self.open.clear();
            }
            let path = segments::segment_path(&self.root, stream_id, window);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
            // A record cut short by a crash would swallow the records appended after it.
            let bytes = std::fs::read(&path)?;
            let (_, valid) = segments::decode(&bytes);
            if valid < bytes.len() {
                file.set_len(valid as u64)?;
            }
            self.open.insert((stream_id, window), Segment { file, dirty: false });
        }
        let Some(segment) = self.open.get_mut(&(stream_id, window)) else {
            return Ok(());
        };
        segment.dirty = true;
        segment.file.write_all(buffer)
    }

    fn sync(&mut self) {
        for segment in self.open.values_mut().filter(|s| s.dirty) {
            let _ = segment.file.sync_data();
            segment.dirty = false;
        }
    }

    /// Deletes the hours of streams wholly older than their group's retention. Readers hide the
    /// expired events of the hour that straddles the cutoff.
    fn expire(&mut self) {
        let now = self.clock.now_ms();
        let mut updates = Vec::new();
        for (stream_id, days) in self.catalog.retained_streams() {
            let cutoff = now - days * DAY_MS;
            let mut freed = 0;
            for window in segments::windows(&self.root, stream_id) {
                if (window + 1) * WINDOW_MS > cutoff {
                    break;
                }
                let path = segments::segment_path(&self.root, stream_id, window);
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                self.open.remove(&(stream_id, window));
                if std::fs::remove_file(&path).is_ok() {
                    freed += size as i64;
                }
            }
            if freed > 0 {
                updates.push(StreamUpdate {
                    id: stream_id,
                    first_event: None,
                    last_event: None,
                    last_ingestion: None,
                    bytes_delta: -freed,
                });
            }
        }
        if let Err(error) = self.catalog.record(&updates) {
            eprintln!("nimbus logs: {error}");
        }
    }

    /// Removes directories of streams that no longer exist (a removal lost to a full queue or a
    /// crash).
    fn collect_garbage(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("streams")) else {
            return;
        };
        let live: std::collections::HashSet<i64> = self.catalog.stream_ids().into_iter().collect();
        for entry in entries.flatten() {
            let id = entry.file_name().to_str().and_then(|name| name.parse::<i64>().ok());
            if id.is_some_and(|id| !live.contains(&id)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
