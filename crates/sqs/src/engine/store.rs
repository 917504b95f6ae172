//! Durability through the storage layer: `<data>/sqs/sqs.db` on SQLite (`synchronous = FULL`, so
//! a message is fsynced before `SendMessage` answers and survives power loss as well as kill -9),
//! or the `sqs` schema on PostgreSQL. One writer thread commits whatever has queued up in one
//! transaction (group commit: concurrent senders share an fsync). Reads happen once, at open;
//! afterwards the in-memory state is the truth and the database its write-ahead copy. That copy
//! is complete — visibility deadlines, receipt-handle tokens, deduplication windows, the sequence
//! counter — so another node can open it and carry on where the last holder stopped.

use std::sync::mpsc;

use nimbus_store::{params, Database, DbError, Migration, Schema, ServiceDb, Tx, Value};
use tokio::sync::oneshot;

use crate::engine::message::{Message, Sent};
use crate::engine::queue::QueueMeta;
use crate::error::{Result, SqsError};

const MIGRATIONS: &[Migration] = &[
    // The schema of the rusqlite days, word for word, so that their files migrate as they are.
    Migration {
        sqlite: "
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
);",
        postgres: "
CREATE TABLE queues (name TEXT PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE messages (
    seq BIGINT PRIMARY KEY,
    queue TEXT NOT NULL,
    sent TEXT NOT NULL,
    visible_at BIGINT NOT NULL,
    receive_count BIGINT NOT NULL,
    first_receive BIGINT,
    token BIGINT NOT NULL
);
CREATE INDEX messages_queue ON messages (queue, seq);
CREATE TABLE dedup (
    queue TEXT NOT NULL, key TEXT NOT NULL, message_id TEXT NOT NULL, sequence TEXT,
    expires_ms BIGINT NOT NULL, PRIMARY KEY (queue, key)
);",
    },
    // The next message number, so that numbers (FIFO sequence numbers among them) never go back
    // when the newest messages were deleted before a restart or a takeover.
    Migration::both("CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"),
];

pub const SCHEMA: Schema =
    Schema { service: "sqs", sqlite_file: "sqs/sqs.db", relaxed: false, migrations: MIGRATIONS };
/// The same tables for the old entry point, which is given the SQS directory itself.
pub const SCHEMA_IN_DIR: Schema = Schema { sqlite_file: "sqs.db", ..SCHEMA };

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

/// Everything stored, read at open.
#[derive(Debug, Default)]
pub struct Loaded {
    pub queues: Vec<QueueMeta>,
    pub messages: Vec<(String, Message)>,
    pub dedup: Vec<Dedup>,
    pub next_seq: u64,
}

type Reply = oneshot::Sender<std::result::Result<(), String>>;

enum Job {
    Write(Vec<Write>, Reply),
    /// Answered once every job queued before it is committed; the writer then stops.
    Close(oneshot::Sender<()>),
}

pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    pub fn open(database: &Database, schema: &Schema) -> std::result::Result<(Store, Loaded), OpenError> {
        let db = database.open(schema)?;
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
        self.jobs
            .send(Job::Write(writes, done))
            .map_err(|_| SqsError::internal("the SQS store is closed"))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(SqsError::internal(format!("cannot store: {error}"))),
            Err(_) => Err(SqsError::internal("the SQS store stopped")),
        }
    }

    /// Commits what is queued, then stops the writer (and releases its database). Writes sent
    /// later fail; calling it again returns at once.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the SQS database: {0}")]
    Database(#[from] DbError),
    #[error("cannot start the SQS writer: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt SQS record: {0}")]
    Corrupt(#[from] serde_json::Error),
}

fn load(db: &ServiceDb) -> std::result::Result<Loaded, OpenError> {
    db.read(|tx| {
        let mut loaded = Loaded::default();
        for row in tx.query("SELECT meta FROM queues", &[])? {
            loaded.queues.push(serde_json::from_str(&row.get::<String>(0)?)?);
        }
        let sql =
            "SELECT seq, queue, sent, visible_at, receive_count, first_receive, token FROM messages ORDER BY seq";
        for row in tx.query(sql, &[])? {
            let seq = row.get::<i64>(0)? as u64;
            let sent: Sent = serde_json::from_str(&row.get::<String>(2)?)?;
            let message = Message {
                seq,
                sent,
                visible_at: row.get(3)?,
                receive_count: row.get(4)?,
                first_receive_ms: row.get(5)?,
                // Stored as the i64 with the same bits (tokens use all 64).
                token: row.get::<i64>(6)? as u64,
            };
            loaded.next_seq = loaded.next_seq.max(seq + 1);
            loaded.messages.push((row.get(1)?, message));
        }
        for row in tx.query("SELECT queue, key, message_id, sequence, expires_ms FROM dedup", &[])? {
            loaded.dedup.push(Dedup {
                queue: row.get(0)?,
                key: row.get(1)?,
                message_id: row.get(2)?,
                sequence: row.get(3)?,
                expires_ms: row.get(4)?,
            });
        }
        // Files from before the counter only have their messages and deduplication entries.
        let counter: Option<i64> = tx.query_value("SELECT value FROM counters WHERE name = 'next_seq'", &[])?;
        let max_dedup: Option<Option<i64>> =
            tx.query_value("SELECT MAX(CAST(sequence AS BIGINT)) FROM dedup", &[])?;
        let from_dedup = max_dedup.flatten().map_or(0, |s| s as u64 + 1);
        loaded.next_seq = loaded.next_seq.max(from_dedup).max(counter.unwrap_or(0) as u64).max(1);
        Ok(loaded)
    })
}

fn writer(db: ServiceDb, jobs: mpsc::Receiver<Job>) {
    let mut closing = None;
    while closing.is_none() {
        let Ok(first) = jobs.recv() else { break };
        let mut group = Vec::new();
        let mut count = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(writes, done) => {
                    count += writes.len();
                    group.push((writes, done));
                }
                Job::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if count < MAX_GROUP {
                next = jobs.try_recv().ok();
            }
        }
        if !group.is_empty() {
            commit(&db, group);
        }
    }
    drop(db);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// One transaction for the whole group; every sender gets its outcome.
fn commit(db: &ServiceDb, group: Vec<(Vec<Write>, Reply)>) {
    let result = db.write(|tx| {
        let mut highest = None;
        for write in group.iter().flat_map(|(writes, _)| writes) {
            apply(tx, write)?;
            if let Write::Insert { message, .. } = write {
                highest = highest.max(Some(message.seq));
            }
        }
        if let Some(seq) = highest {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('next_seq', ?1) ON CONFLICT (name) \
                 DO UPDATE SET value = excluded.value WHERE excluded.value > counters.value",
                &params![seq as i64 + 1],
            )?;
        }
        Ok::<_, DbError>(())
    });
    let result = result.map_err(|e| e.to_string());
    for (_, done) in group {
        let _ = done.send(result.clone());
    }
}

fn apply(tx: &mut Tx<'_>, write: &Write) -> std::result::Result<(), DbError> {
    match write {
        Write::PutQueue(meta) => {
            let json = serde_json::to_string(meta).unwrap_or_default();
            tx.execute(
                "INSERT INTO queues (name, meta) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET meta = excluded.meta",
                &[Value::Text(meta.name.clone()), Value::Text(json)],
            )?;
        }
        Write::DropQueue(name) => {
            tx.execute("DELETE FROM queues WHERE name = ?1", &params![name])?;
            tx.execute("DELETE FROM messages WHERE queue = ?1", &params![name])?;
            tx.execute("DELETE FROM dedup WHERE queue = ?1", &params![name])?;
        }
        Write::Insert { queue, message } => {
            // Built by hand: `params!` would copy the body once more.
            let sent = serde_json::to_string(&message.sent).unwrap_or_default();
            tx.execute(
                "INSERT INTO messages (seq, queue, sent, visible_at, receive_count, first_receive, token) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (seq) DO UPDATE SET queue = excluded.queue, \
                 sent = excluded.sent, visible_at = excluded.visible_at, receive_count = excluded.receive_count, \
                 first_receive = excluded.first_receive, token = excluded.token",
                &[
                    Value::Int(message.seq as i64),
                    Value::Text(queue.clone()),
                    Value::Text(sent),
                    Value::Int(message.visible_at),
                    Value::Int(message.receive_count.into()),
                    message.first_receive_ms.map_or(Value::Null, Value::Int),
                    Value::Int(message.token as i64),
                ],
            )?;
        }
        Write::Update { seq, visible_at, receive_count, first_receive_ms, token } => {
            tx.execute(
                "UPDATE messages SET visible_at = ?2, receive_count = ?3, first_receive = ?4, token = ?5 \
                 WHERE seq = ?1",
                &params![*seq as i64, visible_at, receive_count, first_receive_ms, *token as i64],
            )?;
        }
        Write::Delete(seq) => {
            tx.execute("DELETE FROM messages WHERE seq = ?1", &params![*seq as i64])?;
        }
        Write::PutDedup(d) => {
            tx.execute(
                "INSERT INTO dedup (queue, key, message_id, sequence, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (queue, key) DO UPDATE SET message_id = excluded.message_id, \
                 sequence = excluded.sequence, expires_ms = excluded.expires_ms",
                &params![d.queue, d.key, d.message_id, d.sequence, d.expires_ms],
            )?;
        }
        Write::ExpireDedup { before_ms } => {
            tx.execute("DELETE FROM dedup WHERE expires_ms <= ?1", &params![before_ms])?;
        }
    }
    Ok(())
}
