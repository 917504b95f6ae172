//! The one task that makes time pass for EventBridge: it fires scheduled rules and schedules
//! when they are due and delivers the outbox — every delivery a row written in the transaction
//! that accepted its event or claimed its firing, deleted only once the target took it (or its
//! dead-letter queue did), so nothing acknowledged is lost and a kill -9 means at least once.
//!
//! Firings are claimed with a compare-and-set on `next_fire_ms`, so several nodes on one
//! database fire each occurrence once. A schedule that came due while nimbus was down fires
//! once when it is back, then keeps its cadence from there.

use std::sync::{Arc, Weak};

use nimbus_api::AwsError;
use nimbus_store::{params, DbError, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::expression::{iso_seconds, Expression};
use crate::{DeliveryOptions, EventBridge};

/// One hand-over to a target, as the outbox keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub arn: String,
    pub payload: String,
    pub message_group_id: Option<String>,
    pub partition_key: Option<String>,
    /// The rule or schedule that sent it, and the target's id (for dead letters).
    pub source_arn: String,
    pub target_id: String,
    /// `rule` or `schedule`: which attribute names a dead letter carries.
    pub kind: String,
    /// Tries in all (the first and the retries).
    pub max_attempts: i64,
    pub max_age_ms: i64,
    pub dead_letter_arn: Option<String>,
    pub first_ms: i64,
}

/// At most this many deliveries are handed over per pass; the rest wait for the next one.
const BATCH: i64 = 200;
/// Looked at again at least this often, in case another node changed something.
const IDLE_MS: i64 = 30_000;

pub fn start(events: Weak<EventBridge>) {
    let Some(strong) = events.upgrade() else { return };
    let (wake, clock) = (strong.wake_handle(), strong.clock.clone());
    drop(strong);
    tokio::spawn(async move {
        loop {
            let next = {
                let Some(events) = events.upgrade() else { return };
                match tokio::task::block_in_place(|| pass(&events)) {
                    Ok(next) => next,
                    Err(error) => {
                        eprintln!("nimbus: EventBridge could not fire or deliver: {error}");
                        Some(events.now() + 1_000)
                    }
                }
            };
            let deadline = next.unwrap_or(i64::MAX).min(clock.now_ms() + IDLE_MS);
            tokio::select! {
                _ = nimbus_api::clock::sleep_until(&*clock, deadline) => {}
                _ = wake.notified() => {}
            }
        }
    });
}

/// Fires what is due, delivers what is waiting; returns when to look again.
fn pass(events: &EventBridge) -> Result<Option<i64>, DbError> {
    let now = events.now();
    fire_rules(events, now)?;
    fire_schedules(events, now)?;
    deliver_due(events, now)?;
    let rows = events.db.query(
        "SELECT MIN(next_fire_ms) FROM rules UNION ALL SELECT MIN(next_fire_ms) FROM schedules
         UNION ALL SELECT MIN(due_ms) FROM outbox WHERE node = ?1",
        &params![events.node.as_str()],
    )?;
    Ok(rows.iter().filter_map(|row| row.get::<Option<i64>>(0).ok().flatten()).min())
}

fn fire_rules(events: &EventBridge, now: i64) -> Result<(), DbError> {
    let due = events
        .db
        .query("SELECT bus, name, doc, next_fire_ms FROM rules WHERE next_fire_ms <= ?1", &params![now])?;
    for row in due {
        let (bus, name, doc, due_ms): (String, String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let rule: Value = serde_json::from_str(&doc).unwrap_or_default();
        let expression = rule["ScheduleExpression"].as_str().unwrap_or_default();
        let next = Expression::parse(expression, crate::expression::Tz::UTC, false)
            .ok()
            .and_then(|e| e.next_after(now.max(due_ms), rule["CreatedMs"].as_i64().unwrap_or(due_ms)));
        let rule_arn = crate::rules::rule_arn(events, &bus, &name);
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": events.identity.account,
            "time": iso_seconds(due_ms),
            "region": events.identity.region,
            "resources": [rule_arn],
            "detail": {},
        });
        events.db.write(|tx| {
            let claimed = tx.execute(
                "UPDATE rules SET next_fire_ms = ?1 WHERE bus = ?2 AND name = ?3 AND next_fire_ms = ?4",
                &params![next, bus.as_str(), name.as_str(), due_ms],
            )?;
            if claimed == 1 {
                crate::rules::enqueue_for_rule(events, tx, &bus, &name, &event, now)?;
            }
            Ok::<_, DbError>(())
        })?;
    }
    Ok(())
}

fn fire_schedules(events: &EventBridge, now: i64) -> Result<(), DbError> {
    let due = events.db.query(
        "SELECT grp, name, doc, next_fire_ms FROM schedules WHERE next_fire_ms <= ?1",
        &params![now],
    )?;
    for row in due {
        let (group, name, doc, due_ms): (String, String, String, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let schedule: Value = serde_json::from_str(&doc).unwrap_or_default();
        let next = crate::schedules::next_fire(&schedule, now.max(due_ms));
        let delete = next.is_none() && schedule["ActionAfterCompletion"] == "DELETE";
        events.db.write(|tx| {
            let claimed = if delete {
                tx.execute(
                    "DELETE FROM schedules WHERE grp = ?1 AND name = ?2 AND next_fire_ms = ?3",
                    &params![group.as_str(), name.as_str(), due_ms],
                )?
            } else {
                tx.execute(
                    "UPDATE schedules SET next_fire_ms = ?1 WHERE grp = ?2 AND name = ?3 AND next_fire_ms = ?4",
                    &params![next, group.as_str(), name.as_str(), due_ms],
                )?
            };
            if claimed == 1 {
                let delivery = crate::schedules::delivery(events, &schedule, due_ms, now);
                enqueue(tx, &events.node, &delivery, now)?;
            }
            Ok::<_, DbError>(())
        })?;
    }
    Ok(())
}

/// Writes a delivery into the outbox, due at once.
pub fn enqueue(tx: &mut Tx<'_>, node: &str, delivery: &Delivery, now: i64) -> Result<(), DbError> {
    let doc = serde_json::to_string(delivery).unwrap_or_default();
    tx.execute(
        "INSERT INTO outbox (id, node, doc, due_ms, attempts) VALUES (?1, ?2, ?3, ?4, 0)",
        &params![uuid::Uuid::new_v4().to_string(), node, doc, now],
    )
    .map(drop)
}

fn deliver_due(events: &EventBridge, now: i64) -> Result<(), DbError> {
    let due = events.db.query(
        "SELECT id, doc, attempts FROM outbox WHERE node = ?1 AND due_ms <= ?2 ORDER BY due_ms LIMIT ?3",
        &params![events.node.as_str(), now, BATCH],
    )?;
    for row in due {
        let (id, doc, attempts): (String, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let Ok(delivery) = serde_json::from_str::<Delivery>(&doc) else {
            events.db.execute("DELETE FROM outbox WHERE id = ?1", &params![id.as_str()])?;
            continue;
        };
        let outcome = deliver(events, &delivery.arn, &delivery.payload, &options(&delivery));
        let attempts = attempts + 1;
        let done = match outcome {
            Ok(()) => true,
            Err(why) => {
                let now = events.now();
                let spent =
                    attempts >= delivery.max_attempts || now - delivery.first_ms >= delivery.max_age_ms;
                if spent {
                    dead_letter(events, &delivery, &why, attempts);
                } else {
                    // Exponential back-off, as EventBridge retries: 1 s, 2 s, 4 s … up to 5 minutes.
                    let delay = 1_000i64 << (attempts - 1).min(8);
                    events.db.execute(
                        "UPDATE outbox SET attempts = ?1, due_ms = ?2 WHERE id = ?3",
                        &params![attempts, now + delay.min(300_000), id.as_str()],
                    )?;
                }
                spent
            }
        };
        if done {
            events.db.execute("DELETE FROM outbox WHERE id = ?1", &params![id.as_str()])?;
        }
    }
    Ok(())
}

fn options(delivery: &Delivery) -> DeliveryOptions {
    DeliveryOptions {
        message_group_id: delivery.message_group_id.clone(),
        partition_key: delivery.partition_key.clone(),
        attributes: Vec::new(),
    }
}

/// To the target, or — for an event bus of this account — into that bus's rules.
fn deliver(events: &EventBridge, arn: &str, payload: &str, options: &DeliveryOptions) -> Result<(), String> {
    match crate::rules::local_bus(events, arn) {
        Some(bus) => crate::rules::put_event_json(events, &bus, payload),
        None => events.targets.deliver(arn, payload, options),
    }
}

/// The payload, with AWS's attributes saying why, to the target's dead-letter queue; without
/// one the delivery is dropped, as AWS drops it, and said on stderr.
fn dead_letter(events: &EventBridge, delivery: &Delivery, why: &str, attempts: i64) {
    let Some(queue) = &delivery.dead_letter_arn else {
        eprintln!("nimbus: EventBridge gave up delivering to {} after {attempts} tries: {why}", delivery.arn);
        return;
    };
    let attributes = if delivery.kind == "schedule" {
        vec![
            ("X-Amz-Scheduler-Attempt".to_owned(), attempts.to_string()),
            ("X-Amz-Scheduler-Schedule-Arn".to_owned(), delivery.source_arn.clone()),
            ("X-Amz-Scheduler-Target-Arn".to_owned(), delivery.arn.clone()),
            ("X-Amz-Scheduler-Error-Code".to_owned(), "TargetDeliveryFailed".to_owned()),
            ("X-Amz-Scheduler-Error-Message".to_owned(), why.to_owned()),
        ]
    } else {
        vec![
            ("RULE_ARN".to_owned(), delivery.source_arn.clone()),
            ("TARGET_ARN".to_owned(), delivery.arn.clone()),
            ("ERROR_CODE".to_owned(), error_code(why).to_owned()),
            ("ERROR_MESSAGE".to_owned(), why.to_owned()),
        ]
    };
    let options = DeliveryOptions { attributes, ..DeliveryOptions::default() };
    if let Err(error) = events.targets.deliver(queue, &delivery.payload, &options) {
        eprintln!("nimbus: EventBridge could not reach the dead-letter queue {queue} either: {error}");
    }
}

/// AWS's dead-letter `ERROR_CODE` for why a delivery failed.
fn error_code(why: &str) -> &'static str {
    if why.starts_with("ResourceNotFoundException") || why.contains("does not exist") {
        "RESOURCE_NOT_FOUND"
    } else {
        "SDK_CLIENT_ERROR"
    }
}

pub fn upcoming(events: &EventBridge) -> Result<Vec<Value>, AwsError> {
    let rules = events
        .db
        .query("SELECT bus, name, doc, next_fire_ms FROM rules WHERE next_fire_ms IS NOT NULL", &[])
        .map_err(crate::db_error)?;
    let schedules = events
        .db
        .query("SELECT grp, name, doc, next_fire_ms FROM schedules WHERE next_fire_ms IS NOT NULL", &[])
        .map_err(crate::db_error)?;
    let mut out = Vec::new();
    for (kind, rows) in [("rule", rules), ("schedule", schedules)] {
        for row in rows {
            let (owner, name, doc, next): (String, String, String, i64) = (
                row.get(0).unwrap_or_default(),
                row.get(1).unwrap_or_default(),
                row.get(2).unwrap_or_default(),
                row.get(3).unwrap_or_default(),
            );
            let doc: Value = serde_json::from_str(&doc).unwrap_or_default();
            out.push(json!({
                "kind": kind,
                "name": name,
                "group": owner,
                "expression": doc["ScheduleExpression"],
                "timezone": doc.get("ScheduleExpressionTimezone").cloned().unwrap_or(json!("UTC")),
                "next_fire": iso_seconds(next),
                "next_fire_ms": next,
            }));
        }
    }
    out.sort_by_key(|v| v["next_fire_ms"].as_i64());
    Ok(out)
}

impl EventBridge {
    fn wake_handle(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}
