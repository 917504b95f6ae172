//! Durability: `sqs.db`, a SQLite file of our own (WAL, `synchronous = FULL`, so a message is
//! on disk, fsynced, before `SendMessage` answers, and survives power loss as well as kill -9).
//! One writer thread owns the connection and commits whatever has queued up in one transaction
//! (group commit: concurrent senders share an fsync). Reads happen once, at open; afterwards the
//! in-memory state is the truth and this file its write-ahead copy.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use crate::engine::message::{Message, Sent};
use crate::engine::queue::QueueMeta;
use crate::error::{Result, SqsError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    sent TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    first_receive INTEGER,
    token INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (queue, seq);
CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT NOT NULL, key TEXT NOT NULL, message_id TEXT NOT NULL, sequence TEXT,
    expires_ms INTEGER NOT NULL, PRIMARY KEY (queue, key)
);";

/// Writes batch this many changes at most into one transaction.
const MAX_GROUP: usize = 4096;

#[derive(Debug, Clone)]
pub enum Write {
    PutQueue(QueueMeta),
    DropQueue(String),
    Insert { queue: String, message: Box<Message> },
    Update { seq: u64, visible_at: i64, receive_count: u32, first_receive_ms: Option<i64>, token: u64 },
    Delete(u64),
    PutDedup(Dedup),
    ExpireDedup { before_ms: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    pub queue: String,
    pub key: String,
    pub message_id: String,
    pub sequence: Option<String>,
    pub expires_ms: i64,
}

/// Everything on disk, read at open.
#[derive(Debug, Default)]
pub struct Loaded {
    pub queues: Vec<QueueMeta>,
    pub messages: Vec<(String, Message)>,
    pub dedup: Vec<Dedup>,
    pub next_seq: u64,
}

type Job = (Vec<Write>, oneshot::Sender<std::result::Result<(), String>>);

pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    pub fn open(dir: &Path) -> std::result::Result<(Store, Loaded), OpenError> {
        std::fs::create_dir_all(dir)?;
        let db = Connection::open(dir.join("sqs.db"))?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        db.execute_batch(SCHEMA)?;
        let loaded = load(&db)?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("sqs-writer".into()).spawn(move || writer(db, receiver))?;
        Ok((Store { jobs }, loaded))
    }

    /// Applies `writes` in one transaction; resolves once they are durable.
    pub async fn write(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.jobs.send((writes, done)).map_err(|_| SqsError::internal("the SQS store is closed"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(SqsError::internal(format!("cannot store: {error}"))),
            Err(_) => Err(SqsError::internal("the SQS store stopped")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the SQS database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot create the SQS directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt SQS record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

fn load(db: &Connection) -> std::result::Result<Loaded, OpenError> {
    let mut loaded = Loaded::default();
    let mut queues = db.prepare("SELECT meta FROM queues")?;
    for meta in queues.query_map([], |row| row.get::<_, String>(0))? {
        loaded.queues.push(serde_json::from_str(&meta?)?);
    }
    let mut messages = db.prepare(
        "SELECT seq, queue, sent, visible_at, receive_count, first_receive, token FROM messages ORDER BY seq",
    )?;
    let rows = messages.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i64>>(5)?,
            row.get::<_, i64>(6)?,
        ))
    })?;
    for row in rows {
        let (seq, queue, sent, visible_at, receive_count, first_receive_ms, token) = row?;
        let sent: Sent = serde_json::from_str(&sent)?;
        let message = Message {
            seq: seq as u64,
            sent,
            visible_at,
            receive_count: receive_count as u32,
            first_receive_ms,
            token: token as u64,
        };
        loaded.next_seq = loaded.next_seq.max(seq as u64 + 1);
        loaded.messages.push((queue, message));
    }
    let mut dedup = db.prepare("SELECT queue, key, message_id, sequence, expires_ms FROM dedup")?;
    let rows = dedup.query_map([], |row| {
        Ok(Dedup {
            queue: row.get(0)?,
            key: row.get(1)?,
            message_id: row.get(2)?,
            sequence: row.get(3)?,
            expires_ms: row.get(4)?,
        })
    })?;
    for row in rows {
        loaded.dedup.push(row?);
    }
    // Sequence numbers keep growing across restarts even when the newest messages were deleted.
    let max_dedup: Option<i64> =
        db.query_row("SELECT MAX(CAST(sequence AS INTEGER)) FROM dedup", [], |r| r.get(0))?;
    loaded.next_seq = loaded.next_seq.max(max_dedup.unwrap_or(0) as u64 + 1).max(1);
    Ok(loaded)
}

fn writer(mut db: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let mut count = group[0].0.len();
        while count < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.0.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let result = apply(&mut db, group.iter().flat_map(|(writes, _)| writes)).map_err(|e| e.to_string());
        for (_, done) in group {
            let _ = done.send(result.clone());
        }
    }
}

fn apply<'a>(db: &mut Connection, writes: impl Iterator<Item = &'a Write>) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    for write in writes {
        match write {
            Write::PutQueue(meta) => {
                let json = serde_json::to_string(meta).unwrap_or_default();
                tx.prepare_cached("INSERT OR REPLACE INTO queues (name, meta) VALUES (?1, ?2)")?
                    .execute(params![meta.name, json])?;
            }
            Write::DropQueue(name) => {
                tx.execute("DELETE FROM queues WHERE name = ?1", [name])?;
                tx.execute("DELETE FROM messages WHERE queue = ?1", [name])?;
                tx.execute("DELETE FROM dedup WHERE queue = ?1", [name])?;
            }
            Write::Insert { queue, message } => {
                let sent = serde_json::to_string(&message.sent).unwrap_or_default();
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO messages (seq, queue, sent, visible_at, receive_count, \
                     first_receive, token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    message.seq as i64,
                    queue,
                    sent,
                    message.visible_at,
                    message.receive_count,
                    message.first_receive_ms,
                    message.token as i64
                ])?;
            }
            Write::Update { seq, visible_at, receive_count, first_receive_ms, token } => {
                tx.prepare_cached(
                    "UPDATE messages SET visible_at = ?2, receive_count = ?3, first_receive = ?4, token = ?5 \
                     WHERE seq = ?1",
                )?
                .execute(params![*seq as i64, visible_at, receive_count, first_receive_ms, *token as i64])?;
            }
            Write::Delete(seq) => {
                tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")?.execute([*seq as i64])?;
            }
            Write::PutDedup(d) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO dedup (queue, key, message_id, sequence, expires_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![d.queue, d.key, d.message_id, d.sequence, d.expires_ms])?;
            }
            Write::ExpireDedup { before_ms } => {
                tx.execute("DELETE FROM dedup WHERE expires_ms <= ?1", [before_ms])?;
            }
        }
    }
    tx.commit()
}
