//! SNS's state in the storage layer: topics, subscriptions, FIFO deduplication entries and the
//! outbox of HTTP/S deliveries still to make. Every write is committed before the call that
//! made it answers; any node reads the same rows.

use std::collections::BTreeMap;

use nimbus_store::{params, DbError, Migration, Row, Schema, ServiceDb};

pub const SCHEMA: Schema = Schema {
    service: "sns",
    sqlite_file: "sns/sns.db",
    relaxed: false,
    migrations: &[
        Migration::both(
            "CREATE TABLE topics (arn TEXT PRIMARY KEY, name TEXT NOT NULL, attributes TEXT NOT NULL, \
             tags TEXT NOT NULL, seq BIGINT NOT NULL DEFAULT 0, created BIGINT NOT NULL)",
        ),
        Migration::both(
            "CREATE TABLE subscriptions (arn TEXT PRIMARY KEY, topic_arn TEXT NOT NULL, \
             protocol TEXT NOT NULL, endpoint TEXT NOT NULL, attributes TEXT NOT NULL, \
             confirmed BIGINT NOT NULL, token TEXT, created BIGINT NOT NULL)",
        ),
        Migration::both("CREATE INDEX subscriptions_by_topic ON subscriptions (topic_arn)"),
        Migration::both(
            "CREATE TABLE dedup (topic_arn TEXT NOT NULL, dedup_id TEXT NOT NULL, \
             message_id TEXT NOT NULL, seq BIGINT NOT NULL, expires BIGINT NOT NULL, \
             PRIMARY KEY (topic_arn, dedup_id))",
        ),
        Migration::both(
            "CREATE TABLE outbox (id TEXT PRIMARY KEY, subscription_arn TEXT NOT NULL, \
             kind TEXT NOT NULL, body TEXT NOT NULL, attempts BIGINT NOT NULL, due BIGINT NOT NULL, \
             claimed_until BIGINT NOT NULL)",
        ),
        Migration::both("CREATE INDEX outbox_due ON outbox (due)"),
    ],
};

pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub arn: String,
    pub name: String,
    pub attributes: Attributes,
    pub tags: Attributes,
}

impl Topic {
    pub fn fifo(&self) -> bool {
        self.attributes.get("FifoTopic").is_some_and(|v| v == "true")
    }

    pub fn content_dedup(&self) -> bool {
        self.attributes.get("ContentBasedDeduplication").is_some_and(|v| v == "true")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub arn: String,
    pub topic_arn: String,
    pub protocol: String,
    pub endpoint: String,
    pub attributes: Attributes,
    pub confirmed: bool,
    pub token: Option<String>,
}

impl Subscription {
    pub fn raw(&self) -> bool {
        self.attributes.get("RawMessageDelivery").is_some_and(|v| v == "true")
    }
}

/// A delivery to an HTTP/S endpoint not made yet.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub subscription_arn: String,
    /// `Notification` or `SubscriptionConfirmation`.
    pub kind: String,
    pub body: String,
    pub attempts: i64,
}

fn map_text(map: &Attributes) -> String {
    serde_json::to_string(map).unwrap_or_default()
}

fn map_of(text: &str) -> Attributes {
    serde_json::from_str(text).unwrap_or_default()
}

fn topic_of(row: &Row) -> Result<Topic, DbError> {
    Ok(Topic {
        arn: row.get(0)?,
        name: row.get(1)?,
        attributes: map_of(&row.get::<String>(2)?),
        tags: map_of(&row.get::<String>(3)?),
    })
}

fn subscription_of(row: &Row) -> Result<Subscription, DbError> {
    Ok(Subscription {
        arn: row.get(0)?,
        topic_arn: row.get(1)?,
        protocol: row.get(2)?,
        endpoint: row.get(3)?,
        attributes: map_of(&row.get::<String>(4)?),
        confirmed: row.get(5)?,
        token: row.get(6)?,
    })
}

const TOPIC_COLUMNS: &str = "arn, name, attributes, tags";
const SUBSCRIPTION_COLUMNS: &str = "arn, topic_arn, protocol, endpoint, attributes, confirmed, token";

pub struct Store {
    pub db: ServiceDb,
}

/// What a FIFO deduplication check found.
pub enum Dedup {
    /// A new message: its sequence number.
    New(i64),
    /// A duplicate of this message (id, sequence number) within the five minutes.
    Duplicate(String, i64),
}

impl Store {
    pub fn topic(&self, arn: &str) -> Result<Option<Topic>, DbError> {
        let sql = format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE arn = ?1");
        self.db.query_opt(&sql, &params![arn])?.as_ref().map(topic_of).transpose()
    }

    /// Inserts `topic` unless one of its ARN exists; the stored one either way.
    pub fn create_topic(&self, topic: &Topic, now: i64) -> Result<Topic, DbError> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO topics (arn, name, attributes, tags, seq, created) VALUES (?1, ?2, ?3, ?4, 0, ?5) \
                 ON CONFLICT (arn) DO NOTHING",
                &params![topic.arn, topic.name, map_text(&topic.attributes), map_text(&topic.tags), now],
            )?;
            let sql = format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE arn = ?1");
            let row = tx.query_opt(&sql, &params![topic.arn])?;
            row.as_ref().map(topic_of).transpose()?.ok_or_else(|| DbError::other("topic vanished"))
        })
    }

    pub fn set_topic(&self, topic: &Topic) -> Result<bool, DbError> {
        let changed = self.db.execute(
            "UPDATE topics SET attributes = ?2, tags = ?3 WHERE arn = ?1",
            &params![topic.arn, map_text(&topic.attributes), map_text(&topic.tags)],
        )?;
        Ok(changed > 0)
    }

    pub fn delete_topic(&self, arn: &str) -> Result<(), DbError> {
        self.db.write(|tx| {
            tx.execute(
                "DELETE FROM outbox WHERE subscription_arn IN (SELECT arn FROM subscriptions WHERE topic_arn = ?1)",
                &params![arn],
            )?;
            tx.execute("DELETE FROM subscriptions WHERE topic_arn = ?1", &params![arn])?;
            tx.execute("DELETE FROM dedup WHERE topic_arn = ?1", &params![arn])?;
            tx.execute("DELETE FROM topics WHERE arn = ?1", &params![arn])?;
            Ok(())
        })
    }

    /// Up to `limit` topic ARNs after `after`, in order.
    pub fn topics(&self, after: &str, limit: usize) -> Result<Vec<String>, DbError> {
        let rows = self
            .db
            .query("SELECT arn FROM topics WHERE arn > ?1 ORDER BY arn LIMIT ?2", &params![after, limit])?;
        rows.iter().map(|row| row.get(0)).collect()
    }

    pub fn subscriptions_of(&self, topic_arn: &str) -> Result<Vec<Subscription>, DbError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE topic_arn = ?1 ORDER BY created, arn"
        );
        self.db.query(&sql, &params![topic_arn])?.iter().map(subscription_of).collect()
    }

    pub fn subscription(&self, arn: &str) -> Result<Option<Subscription>, DbError> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE arn = ?1");
        self.db.query_opt(&sql, &params![arn])?.as_ref().map(subscription_of).transpose()
    }

    /// Up to `limit` subscriptions after ARN `after` (of one topic, or all).
    pub fn subscriptions(
        &self,
        topic_arn: Option<&str>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Subscription>, DbError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE arn > ?1 AND (?2 = '' OR topic_arn = ?2) \
             ORDER BY arn LIMIT ?3"
        );
        let rows = self.db.query(&sql, &params![after, topic_arn.unwrap_or(""), limit])?;
        rows.iter().map(subscription_of).collect()
    }

    /// Stores a new subscription (and, for HTTP/S, its confirmation request) in one transaction.
    pub fn add_subscription(
        &self,
        subscription: &Subscription,
        confirmation: Option<&Outgoing>,
        now: i64,
    ) -> Result<(), DbError> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO subscriptions (arn, topic_arn, protocol, endpoint, attributes, confirmed, token, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &params![
                    subscription.arn,
                    subscription.topic_arn,
                    subscription.protocol,
                    subscription.endpoint,
                    map_text(&subscription.attributes),
                    subscription.confirmed,
                    subscription.token,
                    now
                ],
            )?;
            if let Some(outgoing) = confirmation {
                insert_outgoing(tx, outgoing, now)?;
            }
            Ok(())
        })
    }

    pub fn set_subscription(&self, subscription: &Subscription) -> Result<bool, DbError> {
        let changed = self.db.execute(
            "UPDATE subscriptions SET attributes = ?2, confirmed = ?3 WHERE arn = ?1",
            &params![subscription.arn, map_text(&subscription.attributes), subscription.confirmed],
        )?;
        Ok(changed > 0)
    }

    /// Deletes a subscription and its pending deliveries; `farewell` (an HTTP endpoint's
    /// `UnsubscribeConfirmation`) is stored in their place.
    pub fn delete_subscription(
        &self,
        arn: &str,
        farewell: Option<&Outgoing>,
        now: i64,
    ) -> Result<(), DbError> {
        self.db.write(|tx| {
            tx.execute("DELETE FROM outbox WHERE subscription_arn = ?1", &params![arn])?;
            tx.execute("DELETE FROM subscriptions WHERE arn = ?1", &params![arn])?;
            if let Some(outgoing) = farewell {
                insert_outgoing(tx, outgoing, now)?;
            }
            Ok(())
        })
    }

    /// FIFO: the five-minute deduplication window and the topic's next sequence number.
    pub fn dedup(
        &self,
        topic_arn: &str,
        dedup_id: &str,
        message_id: &str,
        now: i64,
    ) -> Result<Dedup, DbError> {
        self.db.write(|tx| {
            tx.execute("DELETE FROM dedup WHERE topic_arn = ?1 AND expires <= ?2", &params![topic_arn, now])?;
            let found = tx.query_opt(
                "SELECT message_id, seq FROM dedup WHERE topic_arn = ?1 AND dedup_id = ?2",
                &params![topic_arn, dedup_id],
            )?;
            if let Some(row) = found {
                return Ok(Dedup::Duplicate(row.get(0)?, row.get(1)?));
            }
            let seq: i64 = tx
                .query_value("UPDATE topics SET seq = seq + 1 WHERE arn = ?1 RETURNING seq", &params![topic_arn])?
                .ok_or_else(|| DbError::other("topic vanished"))?;
            tx.execute(
                "INSERT INTO dedup (topic_arn, dedup_id, message_id, seq, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                &params![topic_arn, dedup_id, message_id, seq, now + 5 * 60 * 1000],
            )?;
            Ok(Dedup::New(seq))
        })
    }

    pub fn enqueue(&self, outgoing: &[Outgoing], now: i64) -> Result<(), DbError> {
        if outgoing.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| outgoing.iter().try_for_each(|o| insert_outgoing(tx, o, now)))
    }

    /// Claims up to `limit` due deliveries for `lease_ms` (so that no other node makes them
    /// meanwhile).
    pub fn claim_due(&self, now: i64, lease_ms: i64, limit: usize) -> Result<Vec<Outgoing>, DbError> {
        // Mostly nothing is due: a read, no transaction to commit.
        let any = self.db.query_opt(
            "SELECT id FROM outbox WHERE due <= ?1 AND claimed_until <= ?1 LIMIT 1",
            &params![now],
        )?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        self.db.write(|tx| {
            let rows = tx.query(
                "SELECT id, subscription_arn, kind, body, attempts FROM outbox \
                 WHERE due <= ?1 AND claimed_until <= ?1 ORDER BY due LIMIT ?2",
                &params![now, limit],
            )?;
            let mut claimed = Vec::new();
            for row in rows {
                let id: String = row.get(0)?;
                let taken = tx.execute(
                    "UPDATE outbox SET claimed_until = ?2 WHERE id = ?1 AND claimed_until <= ?3",
                    &params![id, now + lease_ms, now],
                )?;
                if taken == 1 {
                    claimed.push(Outgoing {
                        id,
                        subscription_arn: row.get(1)?,
                        kind: row.get(2)?,
                        body: row.get(3)?,
                        attempts: row.get(4)?,
                    });
                }
            }
            Ok(claimed)
        })
    }

    pub fn delivered(&self, id: &str) -> Result<(), DbError> {
        self.db.execute("DELETE FROM outbox WHERE id = ?1", &params![id]).map(drop)
    }

    pub fn retry_at(&self, id: &str, attempts: i64, due: i64) -> Result<(), DbError> {
        self.db
            .execute(
                "UPDATE outbox SET attempts = ?2, due = ?3, claimed_until = 0 WHERE id = ?1",
                &params![id, attempts, due],
            )
            .map(drop)
    }

    /// Forgets every claim: for a node alone (SQLite), whose claims from before a restart are
    /// its own and stale.
    pub fn release_claims(&self) -> Result<(), DbError> {
        self.db.execute("UPDATE outbox SET claimed_until = 0 WHERE claimed_until > 0", &[]).map(drop)
    }

    pub fn pending(&self) -> Result<i64, DbError> {
        Ok(self.db.query_opt("SELECT COUNT(*) FROM outbox", &[])?.map(|r| r.get(0)).transpose()?.unwrap_or(0))
    }
}

fn insert_outgoing(tx: &mut nimbus_store::Tx<'_>, outgoing: &Outgoing, now: i64) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO outbox (id, subscription_arn, kind, body, attempts, due, claimed_until) \
         VALUES (?1, ?2, ?3, ?4, 0, ?5, 0)",
        &params![outgoing.id, outgoing.subscription_arn, outgoing.kind, outgoing.body, now],
    )?;
    Ok(())
}
