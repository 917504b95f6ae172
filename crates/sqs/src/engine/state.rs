//! The queues in memory: every message with an index by visibility time, FIFO deduplication
//! windows, and the state transitions of send, receive, delete and visibility changes. Each
//! transition returns the [`Write`]s that make it durable; callers apply them before answering.
//! Bound: messages live in memory (and on disk) until deleted or expired by their queue's
//! `MessageRetentionPeriod` (at most 14 days), as on AWS.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::engine::message::{parse_receipt_handle, Message, Sent};
use crate::engine::queue::{Config, QueueMeta};
use crate::engine::store::{Dedup, Write};
use crate::error::{Result, SqsError};

pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

pub struct QueueState {
    pub meta: QueueMeta,
    pub config: Config,
    pub arn: String,
    pub messages: BTreeMap<u64, Message>,
    /// `(visible_at, seq)` of every message: receivable ones sort first.
    pub by_visibility: BTreeSet<(i64, u64)>,
    pub dedup: HashMap<String, Dedup>,
    pub notify: Arc<Notify>,
    pub last_purge_ms: Option<i64>,
}

impl QueueState {
    pub fn new(meta: QueueMeta, arn: String) -> QueueState {
        QueueState {
            config: meta.config(),
            meta,
            arn,
            messages: BTreeMap::new(),
            by_visibility: BTreeSet::new(),
            dedup: HashMap::new(),
            notify: Arc::new(Notify::new()),
            last_purge_ms: None,
        }
    }

    pub fn insert(&mut self, message: Message) {
        self.by_visibility.insert((message.visible_at, message.seq));
        self.messages.insert(message.seq, message);
    }

    pub fn remove(&mut self, seq: u64) -> Option<Message> {
        let message = self.messages.remove(&seq)?;
        self.by_visibility.remove(&(message.visible_at, seq));
        Some(message)
    }

    fn set_visible_at(&mut self, seq: u64, visible_at: i64) {
        if let Some(message) = self.messages.get_mut(&seq) {
            self.by_visibility.remove(&(message.visible_at, seq));
            message.visible_at = visible_at;
            self.by_visibility.insert((visible_at, seq));
        }
    }

    /// (visible, in flight, delayed) as `ApproximateNumberOfMessages*` report them.
    pub fn counts(&self, now: i64) -> (usize, usize, usize) {
        let visible = self.by_visibility.range(..(now + 1, 0)).count();
        let in_flight = self.messages.values().filter(|m| m.in_flight(now)).count();
        (visible, in_flight, self.messages.len() - visible - in_flight)
    }

    /// When the next message not receivable now becomes receivable.
    pub fn next_visible_ms(&self, now: i64) -> Option<i64> {
        self.by_visibility.range((now + 1, 0)..).next().map(|(at, _)| *at)
    }

    fn expired(&self, message: &Message, now: i64) -> bool {
        message.sent.sent_ms + self.config.retention_ms <= now
    }

    /// Messages receivable now, in delivery order, with FIFO's one-batch-per-group rule.
    fn candidates(&self, now: i64) -> Vec<u64> {
        if !self.meta.fifo {
            return self.by_visibility.range(..(now + 1, 0)).map(|(_, seq)| *seq).collect();
        }
        let mut blocked = BTreeSet::new();
        let mut ready = Vec::new();
        for message in self.messages.values() {
            let group = message.sent.group.as_deref().unwrap_or_default();
            if blocked.contains(group) {
                continue;
            }
            if message.visible_at > now {
                blocked.insert(group);
            } else {
                ready.push(message.seq);
            }
        }
        ready
    }

    /// Drops messages past retention and deduplication entries past their window.
    pub fn expire(&mut self, now: i64, writes: &mut Vec<Write>) {
        let old: Vec<u64> = self.messages.values().filter(|m| self.expired(m, now)).map(|m| m.seq).collect();
        for seq in old {
            self.remove(seq);
            writes.push(Write::Delete(seq));
        }
        self.dedup.retain(|_, d| d.expires_ms > now);
    }
}

/// One delivered message: a snapshot after the receive.
pub type Delivered = Message;

/// What a receive did: the messages delivered and the ones redriven to a dead-letter queue.
#[derive(Debug, Default)]
pub struct Receipt {
    pub delivered: Vec<Delivered>,
    pub dead_lettered: Vec<(String, Message)>,
}

/// Takes up to `max` messages from `queue`, hiding them for `visibility_ms`. Messages whose
/// receive count already reached the redrive policy's `maxReceiveCount` are removed and returned
/// for the caller to put on the dead-letter queue instead of being delivered.
pub fn receive(
    queue: &mut QueueState,
    max: usize,
    visibility_ms: i64,
    now: i64,
    writes: &mut Vec<Write>,
) -> Receipt {
    let mut receipt = Receipt::default();
    for seq in queue.candidates(now) {
        if receipt.delivered.len() >= max {
            break;
        }
        let Some(message) = queue.messages.get(&seq) else { continue };
        if queue.expired(message, now) {
            queue.remove(seq);
            writes.push(Write::Delete(seq));
            continue;
        }
        if let Some(redrive) = &queue.config.redrive {
            if message.receive_count >= redrive.max_receive_count {
                let target = redrive.target_arn.clone();
                if let Some(message) = queue.remove(seq) {
                    writes.push(Write::Delete(seq));
                    receipt.dead_lettered.push((target, message));
                }
                continue;
            }
        }
        queue.set_visible_at(seq, now + visibility_ms);
        let Some(message) = queue.messages.get_mut(&seq) else { continue };
        message.receive_count += 1;
        message.first_receive_ms.get_or_insert(now);
        message.token = new_token();
        writes.push(Write::Update {
            seq,
            visible_at: message.visible_at,
            receive_count: message.receive_count,
            first_receive_ms: message.first_receive_ms,
            token: message.token,
        });
        receipt.delivered.push(message.clone());
    }
    receipt
}

/// Resolves a receipt handle to a message of `queue` that it still names.
fn handle_target(queue: &QueueState, handle: &str) -> Result<Option<u64>> {
    let Some((name, seq, token)) = parse_receipt_handle(handle) else {
        return Err(SqsError::receipt_invalid(handle));
    };
    if name != queue.meta.name {
        return Err(SqsError::receipt_invalid(handle));
    }
    Ok(queue.messages.get(&seq).filter(|m| m.token == token).map(|m| m.seq))
}

/// Deletes the message `handle` names. A handle from an earlier receive succeeds without
/// deleting (as AWS documents); a malformed one is `ReceiptHandleIsInvalid`.
pub fn delete(queue: &mut QueueState, handle: &str, writes: &mut Vec<Write>) -> Result<()> {
    if let Some(seq) = handle_target(queue, handle)? {
        queue.remove(seq);
        writes.push(Write::Delete(seq));
    }
    Ok(())
}

pub fn change_visibility(
    queue: &mut QueueState,
    handle: &str,
    timeout_ms: i64,
    now: i64,
    writes: &mut Vec<Write>,
) -> Result<()> {
    let Some(seq) = handle_target(queue, handle)? else {
        let reason = "Message does not exist or is not available for visibility timeout change.";
        return Err(SqsError::bad_value(handle, "ReceiptHandle", reason));
    };
    if !queue.messages[&seq].in_flight(now) {
        return Err(SqsError::not_inflight());
    }
    queue.set_visible_at(seq, now + timeout_ms);
    let message = &queue.messages[&seq];
    writes.push(Write::Update {
        seq,
        visible_at: message.visible_at,
        receive_count: message.receive_count,
        first_receive_ms: message.first_receive_ms,
        token: message.token,
    });
    if timeout_ms == 0 {
        queue.notify.notify_waiters();
    }
    Ok(())
}

/// A fresh message for `queue`, visible after `delay_ms`.
pub fn enqueue(queue: &mut QueueState, seq: u64, sent: Sent, delay_ms: i64, writes: &mut Vec<Write>) {
    let message = Message {
        seq,
        visible_at: sent.sent_ms + delay_ms,
        sent,
        receive_count: 0,
        first_receive_ms: None,
        token: 0,
    };
    writes.push(Write::Insert { queue: queue.meta.name.clone(), message: Box::new(message.clone()) });
    queue.insert(message);
    if delay_ms == 0 {
        queue.notify.notify_waiters();
    }
}

fn new_token() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 | 1
}
