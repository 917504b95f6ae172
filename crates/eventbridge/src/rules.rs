//! The `events` API: event buses, rules (an event pattern or a schedule), their targets, and
//! `PutEvents`, which matches each event against the bus's enabled rules and writes one outbox
//! delivery per matching target in the same transaction that accepts it.

use nimbus_api::AwsError;
use nimbus_events::Pattern;
use nimbus_store::{params, DbError, Tx};
use serde_json::{json, Map, Value};

use crate::expression::{iso_seconds, Expression};
use crate::firing::{enqueue, Delivery};
use crate::input::{check_name, not_found, page, validation, Input};
use crate::transform::{check_path, fill, select, Reserved};
use crate::{db_error, EventBridge};

/// AWS's quotas: targets per rule, entries per PutEvents, bytes per PutEvents.
const MAX_TARGETS: usize = 5;
const MAX_ENTRIES: usize = 10;
const MAX_EVENTS_BYTES: usize = 256 * 1024;

pub fn dispatch(events: &EventBridge, operation: &str, input: &Input<'_>) -> Result<Value, AwsError> {
    match operation {
        "CreateEventBus" => create_bus(events, input),
        "DeleteEventBus" => delete_bus(events, input),
        "DescribeEventBus" => describe_bus(events, input),
        "ListEventBuses" => list_buses(events, input),
        "PutRule" => put_rule(events, input),
        "DescribeRule" => describe_rule(events, input),
        "ListRules" => list_rules(events, input),
        "EnableRule" => set_state(events, input, "ENABLED"),
        "DisableRule" => set_state(events, input, "DISABLED"),
        "DeleteRule" => delete_rule(events, input),
        "PutTargets" => put_targets(events, input),
        "RemoveTargets" => remove_targets(events, input),
        "ListTargetsByRule" => list_targets(events, input),
        "ListRuleNamesByTarget" => rule_names_by_target(events, input),
        "PutEvents" => put_events(events, input),
        "TestEventPattern" => test_event_pattern(input),
        "TagResource" => tag_resource(events, input, true),
        "UntagResource" => tag_resource(events, input, false),
        "ListTagsForResource" => list_tags(events, input),
        _ => Err(AwsError::new(
            400,
            "UnknownOperationException",
            format!("nimbus does not implement the EventBridge operation {operation}"),
        )),
    }
}

pub fn rule_arn(events: &EventBridge, bus: &str, name: &str) -> String {
    match bus {
        "default" => events.arn("events", &format!("rule/{name}")),
        bus => events.arn("events", &format!("rule/{bus}/{name}")),
    }
}

fn bus_arn(events: &EventBridge, bus: &str) -> String {
    events.arn("events", &format!("event-bus/{bus}"))
}

/// The bus an ARN names when it is one of this account's (a target on another bus).
pub fn local_bus(events: &EventBridge, arn: &str) -> Option<String> {
    arn.strip_prefix(&bus_arn(events, "")).map(str::to_owned)
}

/// `EventBusName` (a name or an ARN), `default` when absent.
fn bus_of(events: &EventBridge, input: &Input<'_>, member: &str) -> Result<String, AwsError> {
    let name = input.str(member)?.unwrap_or("default");
    let name = local_bus(events, name).unwrap_or_else(|| name.to_owned());
    let exists = events
        .db
        .query_opt("SELECT 1 FROM buses WHERE name = ?1", &params![name.as_str()])
        .map_err(db_error)?;
    match exists {
        Some(_) => Ok(name),
        None => Err(not_found(format!("Event bus {name} does not exist."))),
    }
}

fn tags_of(input: &Input<'_>) -> Result<Map<String, Value>, AwsError> {
    let mut tags = Map::new();
    for tag in input.array("Tags")? {
        let key = tag["Key"].as_str().ok_or_else(|| validation("Tag keys must be strings."))?;
        tags.insert(key.to_owned(), tag.get("Value").cloned().unwrap_or(json!("")));
    }
    Ok(tags)
}

fn create_bus(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    if name.contains('/') || name.len() > 256 || name.is_empty() {
        return Err(validation(format!("Event bus name {name} is not valid.")));
    }
    let doc = json!({
        "Description": input.get("Description"),
        "Tags": tags_of(input)?,
        "CreatedMs": events.now(),
    });
    let inserted = events
        .db
        .execute(
            "INSERT INTO buses (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            &params![name, doc.to_string()],
        )
        .map_err(db_error)?;
    if inserted == 0 {
        return Err(AwsError::new(
            400,
            "ResourceAlreadyExistsException",
            format!("Event bus {name} already exists."),
        ));
    }
    let mut out = json!({ "EventBusArn": bus_arn(events, name) });
    if let Some(description) = input.get("Description") {
        out["Description"] = description.clone();
    }
    Ok(out)
}

fn delete_bus(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    if name == "default" {
        return Err(validation("Cannot delete event bus default."));
    }
    events
        .db
        .write(|tx| {
            tx.execute("DELETE FROM targets WHERE bus = ?1", &params![name])?;
            tx.execute("DELETE FROM rules WHERE bus = ?1", &params![name])?;
            tx.execute("DELETE FROM buses WHERE name = ?1", &params![name])
        })
        .map_err(db_error)?;
    Ok(json!({}))
}

fn bus_json(events: &EventBridge, name: &str, doc: &str) -> Value {
    let doc: Value = serde_json::from_str(doc).unwrap_or_default();
    let created = doc["CreatedMs"].as_i64().unwrap_or_default() as f64 / 1000.0;
    let mut out = json!({ "Name": name, "Arn": bus_arn(events, name), "CreationTime": created, "LastModifiedTime": created });
    if let Some(description) = doc.get("Description").filter(|d| !d.is_null()) {
        out["Description"] = description.clone();
    }
    out
}

fn describe_bus(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = bus_of(events, input, "Name")?;
    let row = events
        .db
        .query_opt("SELECT doc FROM buses WHERE name = ?1", &params![name.as_str()])
        .map_err(db_error)?;
    let doc: String = row.and_then(|r| r.get(0).ok()).unwrap_or_default();
    Ok(bus_json(events, &name, &doc))
}

fn list_buses(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let prefix = input.str("NamePrefix")?.unwrap_or("");
    let rows = events.db.query("SELECT name, doc FROM buses ORDER BY name", &[]).map_err(db_error)?;
    let buses = rows
        .iter()
        .filter_map(|row| Some((row.get::<String>(0).ok()?, row.get::<String>(1).ok()?)))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, doc)| bus_json(events, &name, &doc))
        .collect();
    page(buses, input.str("NextToken")?, input.int("Limit")?, "EventBuses")
}

/// A stored rule: its document, as DescribeRule answers it.
fn load_rule(events: &EventBridge, bus: &str, name: &str) -> Result<Value, AwsError> {
    let row = events
        .db
        .query_opt("SELECT doc FROM rules WHERE bus = ?1 AND name = ?2", &params![bus, name])
        .map_err(db_error)?;
    let doc: String = row
        .and_then(|r| r.get(0).ok())
        .ok_or_else(|| not_found(format!("Rule {name} does not exist on EventBus {bus}.")))?;
    Ok(serde_json::from_str(&doc).unwrap_or_default())
}

/// When an enabled scheduled rule fires next (None: it does not).
fn next_fire(rule: &Value, now: i64) -> Option<i64> {
    if rule["State"] == "DISABLED" {
        return None;
    }
    let expression =
        Expression::parse(rule["ScheduleExpression"].as_str()?, crate::expression::Tz::UTC, false).ok()?;
    expression.next_after(now, rule["CreatedMs"].as_i64().unwrap_or(now))
}

fn put_rule(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    check_name("name", name)?;
    let bus = bus_of(events, input, "EventBusName")?;
    let pattern = input.str("EventPattern")?;
    let schedule = input.str("ScheduleExpression")?;
    if pattern.is_none() && schedule.is_none() {
        return Err(validation("Parameter(s) EventPattern or ScheduleExpression must be specified."));
    }
    if let Some(pattern) = pattern {
        Pattern::parse(pattern).map_err(|e| {
            AwsError::new(
                400,
                "InvalidEventPatternException",
                format!("Event pattern is not valid. Reason: {e}"),
            )
        })?;
    }
    if let Some(schedule) = schedule {
        if bus != "default" {
            return Err(validation("ScheduleExpression is supported only on the default event bus."));
        }
        Expression::parse(schedule, crate::expression::Tz::UTC, false)
            .map_err(|_| validation("Parameter ScheduleExpression is not valid."))?;
    }
    let state = input.str("State")?.unwrap_or("ENABLED");
    if !matches!(state, "ENABLED" | "DISABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS") {
        return Err(validation(format!(
            "1 validation error detected: Value '{state}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [DISABLED, ENABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]"
        )));
    }
    let now = events.now();
    let arn = rule_arn(events, &bus, name);
    let mut rule = json!({
        "Name": name,
        "Arn": arn,
        "State": state,
        "EventBusName": bus,
        "CreatedBy": events.identity.account,
        "CreatedMs": now,
    });
    for member in ["EventPattern", "ScheduleExpression", "Description", "RoleArn"] {
        if let Some(value) = input.get(member) {
            rule[member] = value.clone();
        }
    }
    let tags = tags_of(input)?;
    let next = next_fire(&rule, now);
    events
        .db
        .write(|tx| {
            let old = tx.query_opt("SELECT doc FROM rules WHERE bus = ?1 AND name = ?2", &params![bus.as_str(), name])?;
            // An update keeps the rule's tags unless new ones are given.
            let old: Value = old.and_then(|r| r.get::<String>(0).ok()).and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
            rule["Tags"] = if tags.is_empty() { old.get("Tags").cloned().unwrap_or(json!({})) } else { Value::Object(tags) };
            tx.execute(
                "INSERT INTO rules (bus, name, doc, next_fire_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (bus, name) DO UPDATE SET doc = excluded.doc, next_fire_ms = excluded.next_fire_ms",
                &params![bus.as_str(), name, rule.to_string(), next],
            )
        })
        .map_err(db_error)?;
    events.wake.notify_one();
    Ok(json!({ "RuleArn": arn }))
}

fn rule_json(rule: &Value) -> Value {
    let mut out = rule.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("CreatedMs");
        map.remove("Tags");
    }
    out
}

fn describe_rule(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    let bus = bus_of(events, input, "EventBusName")?;
    Ok(rule_json(&load_rule(events, &bus, name)?))
}

fn list_rules(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let bus = bus_of(events, input, "EventBusName")?;
    let prefix = input.str("NamePrefix")?.unwrap_or("");
    let rows = events
        .db
        .query("SELECT name, doc FROM rules WHERE bus = ?1 ORDER BY name", &params![bus.as_str()])
        .map_err(db_error)?;
    let rules = rows
        .iter()
        .filter_map(|row| Some((row.get::<String>(0).ok()?, row.get::<String>(1).ok()?)))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, doc)| rule_json(&serde_json::from_str(&doc).unwrap_or_default()))
        .collect();
    page(rules, input.str("NextToken")?, input.int("Limit")?, "Rules")
}

fn set_state(events: &EventBridge, input: &Input<'_>, state: &str) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    let bus = bus_of(events, input, "EventBusName")?;
    let mut rule = load_rule(events, &bus, name)?;
    rule["State"] = json!(state);
    let next = next_fire(&rule, events.now());
    events
        .db
        .execute(
            "UPDATE rules SET doc = ?1, next_fire_ms = ?2 WHERE bus = ?3 AND name = ?4",
            &params![rule.to_string(), next, bus.as_str(), name],
        )
        .map_err(db_error)?;
    events.wake.notify_one();
    Ok(json!({}))
}

fn delete_rule(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let name = input.required("Name")?;
    let bus = bus_of(events, input, "EventBusName")?;
    let targets = events
        .db
        .query_opt("SELECT 1 FROM targets WHERE bus = ?1 AND rule = ?2", &params![bus.as_str(), name])
        .map_err(db_error)?;
    if targets.is_some() {
        return Err(validation("Rule can't be deleted since it has targets."));
    }
    events
        .db
        .execute("DELETE FROM rules WHERE bus = ?1 AND name = ?2", &params![bus.as_str(), name])
        .map_err(db_error)?;
    Ok(json!({}))
}

fn check_target(target: &Value) -> Result<(), String> {
    let id = target["Id"].as_str().unwrap_or_default();
    if check_name("id", id).is_err() {
        return Err(format!("Target Id {id} is not valid."));
    }
    let arn = target["Arn"].as_str().unwrap_or_default();
    if !arn.starts_with("arn:") {
        return Err(format!("Parameter {arn} is not valid."));
    }
    if target.get("Input").is_some_and(|i| !i.is_null()) {
        let text = target["Input"].as_str().unwrap_or_default();
        serde_json::from_str::<Value>(text).map_err(|_| "Input is not valid JSON text.".to_owned())?;
    }
    if let Some(path) = target["InputPath"].as_str() {
        check_path(path, "InputPath").map_err(|e| e.message)?;
    }
    let retries = target["RetryPolicy"]["MaximumRetryAttempts"].as_i64().unwrap_or(185);
    let age = target["RetryPolicy"]["MaximumEventAgeInSeconds"].as_i64().unwrap_or(86_400);
    if !(0..=185).contains(&retries) || !(60..=86_400).contains(&age) {
        return Err(
            "RetryPolicy is not valid: MaximumRetryAttempts 0-185, MaximumEventAgeInSeconds 60-86400.".into(),
        );
    }
    Ok(())
}

fn put_targets(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let rule = input.required("Rule")?;
    let bus = bus_of(events, input, "EventBusName")?;
    load_rule(events, &bus, rule)?;
    let targets = input.array("Targets")?;
    if targets.is_empty() || targets.len() > 10 {
        return Err(validation("1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length between 1 and 10"));
    }
    let mut failed = Vec::new();
    events
        .db
        .write(|tx| {
            for target in targets {
                let id = target["Id"].as_str().unwrap_or_default();
                if let Err(message) = check_target(target) {
                    failed.push(json!({ "TargetId": id, "ErrorCode": "ValidationException", "ErrorMessage": message }));
                    continue;
                }
                tx.execute(
                    "INSERT INTO targets (bus, rule, id, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (bus, rule, id) DO UPDATE SET doc = excluded.doc",
                    &params![bus.as_str(), rule, id, target.to_string()],
                )?;
            }
            let count: i64 = tx
                .query_value("SELECT COUNT(*) FROM targets WHERE bus = ?1 AND rule = ?2", &params![bus.as_str(), rule])?
                .unwrap_or_default();
            if count as usize > MAX_TARGETS {
                return Err(DbError::Conflict("targets".into()));
            }
            Ok(())
        })
        .map_err(|error| match error {
            DbError::Conflict(_) => AwsError::new(
                400,
                "LimitExceededException",
                format!("The requested resource exceeds the maximum number allowed. A rule can have at most {MAX_TARGETS} targets."),
            ),
            other => db_error(other),
        })?;
    Ok(json!({ "FailedEntryCount": failed.len(), "FailedEntries": failed }))
}

fn remove_targets(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let rule = input.required("Rule")?;
    let bus = bus_of(events, input, "EventBusName")?;
    load_rule(events, &bus, rule)?;
    let ids = input.array("Ids")?;
    events
        .db
        .write(|tx| {
            for id in ids {
                let id = id.as_str().unwrap_or_default();
                tx.execute(
                    "DELETE FROM targets WHERE bus = ?1 AND rule = ?2 AND id = ?3",
                    &params![bus.as_str(), rule, id],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .map_err(db_error)?;
    Ok(json!({ "FailedEntryCount": 0, "FailedEntries": [] }))
}

fn targets_of(tx: &mut Tx<'_>, bus: &str, rule: &str) -> Result<Vec<Value>, DbError> {
    let rows =
        tx.query("SELECT doc FROM targets WHERE bus = ?1 AND rule = ?2 ORDER BY id", &params![bus, rule])?;
    Ok(rows.iter().filter_map(|r| serde_json::from_str(&r.get::<String>(0).ok()?).ok()).collect())
}

fn list_targets(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let rule = input.required("Rule")?;
    let bus = bus_of(events, input, "EventBusName")?;
    load_rule(events, &bus, rule)?;
    let targets = events.db.read(|tx| targets_of(tx, &bus, rule)).map_err(db_error)?;
    page(targets, input.str("NextToken")?, input.int("Limit")?, "Targets")
}

fn rule_names_by_target(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let arn = input.required("TargetArn")?;
    let bus = bus_of(events, input, "EventBusName")?;
    let rows = events
        .db
        .query("SELECT DISTINCT rule, doc FROM targets WHERE bus = ?1 ORDER BY rule", &params![bus.as_str()])
        .map_err(db_error)?;
    let mut names: Vec<Value> = rows
        .iter()
        .filter_map(|row| {
            let doc: Value = serde_json::from_str(&row.get::<String>(1).ok()?).ok()?;
            let name: String = row.get(0).ok()?;
            (doc["Arn"] == arn).then(|| json!(name))
        })
        .collect();
    names.dedup();
    page(names, input.str("NextToken")?, input.int("Limit")?, "RuleNames")
}

/// The payload a target receives for `event` (see `transform`).
fn payload(target: &Value, event: &Value, rule_arn: &str, rule_name: &str) -> String {
    if let Some(constant) = target["Input"].as_str() {
        return constant.to_owned();
    }
    if let Some(path) = target["InputPath"].as_str() {
        return select(event, path).cloned().unwrap_or(Value::Null).to_string();
    }
    if let Some(transformer) = target.get("InputTransformer").filter(|t| t.is_object()) {
        let empty = Map::new();
        let paths = transformer["InputPathsMap"].as_object().unwrap_or(&empty);
        let time = event["time"].as_str().unwrap_or_default();
        let reserved = Reserved { rule_arn, rule_name, ingestion_time: time };
        return fill(transformer["InputTemplate"].as_str().unwrap_or_default(), paths, event, &reserved);
    }
    event.to_string()
}

/// A Batch job queue target: its `BatchParameters` travel with the payload (the event, or the
/// target's input, whose `Parameters` and `ContainerOverrides` the job takes).
fn batch_payload(target: &Value, payload: String) -> String {
    if !target["Arn"].as_str().is_some_and(|arn| arn.contains(":job-queue/")) {
        return payload;
    }
    let input: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
    serde_json::json!({ "batchParameters": target["BatchParameters"], "input": input }).to_string()
}

/// One outbox delivery per target of the rule, for `event`.
pub fn enqueue_for_rule(
    events: &EventBridge,
    tx: &mut Tx<'_>,
    bus: &str,
    rule: &str,
    event: &Value,
    now: i64,
) -> Result<(), DbError> {
    let arn = rule_arn(events, bus, rule);
    for target in targets_of(tx, bus, rule)? {
        let partition_key = target["KinesisParameters"]["PartitionKeyPath"]
            .as_str()
            .and_then(|path| select(event, path))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .or_else(|| event["id"].as_str().map(str::to_owned));
        let delivery = Delivery {
            arn: target["Arn"].as_str().unwrap_or_default().to_owned(),
            payload: batch_payload(&target, payload(&target, event, &arn, rule)),
            message_group_id: target["SqsParameters"]["MessageGroupId"].as_str().map(str::to_owned),
            partition_key,
            source_arn: arn.clone(),
            target_id: target["Id"].as_str().unwrap_or_default().to_owned(),
            kind: "rule".into(),
            max_attempts: target["RetryPolicy"]["MaximumRetryAttempts"].as_i64().unwrap_or(185) + 1,
            max_age_ms: target["RetryPolicy"]["MaximumEventAgeInSeconds"].as_i64().unwrap_or(86_400) * 1000,
            dead_letter_arn: target["DeadLetterConfig"]["Arn"].as_str().map(str::to_owned),
            first_ms: now,
        };
        enqueue(tx, &events.node, &delivery, now)?;
    }
    Ok(())
}

/// Matches `event` against the bus's enabled pattern rules and queues their deliveries.
fn route(events: &EventBridge, tx: &mut Tx<'_>, bus: &str, event: &Value, now: i64) -> Result<(), DbError> {
    let rules =
        tx.query("SELECT name, doc FROM rules WHERE bus = ?1 AND next_fire_ms IS NULL", &params![bus])?;
    for row in rules {
        let (name, doc): (String, String) = (row.get(0)?, row.get(1)?);
        let rule: Value = serde_json::from_str(&doc).unwrap_or_default();
        if rule["State"] == "DISABLED" {
            continue;
        }
        let Some(pattern) = rule["EventPattern"].as_str().and_then(|p| Pattern::parse(p).ok()) else {
            continue;
        };
        if pattern.matches(event) {
            enqueue_for_rule(events, tx, bus, &name, event, now)?;
        }
    }
    Ok(())
}

/// An event forwarded from another bus's rule (its target was this bus).
pub fn put_event_json(events: &EventBridge, bus: &str, payload: &str) -> Result<(), String> {
    let event: Value = serde_json::from_str(payload).map_err(|e| format!("not an event: {e}"))?;
    let now = events.now();
    events.db.write(|tx| route(events, tx, bus, &event, now)).map_err(|e| e.to_string())?;
    events.wake.notify_one();
    Ok(())
}

fn entry_error(code: &str, message: &str) -> Value {
    json!({ "ErrorCode": code, "ErrorMessage": message })
}

/// The event an entry makes, or the entry's error.
fn event_of(events: &EventBridge, entry: &Value, now: i64) -> Result<(String, Value), Value> {
    let entry = Input(entry);
    let text = |member: &str| entry.str(member).ok().flatten().filter(|s| !s.is_empty());
    let (Some(source), Some(detail_type), Some(detail)) =
        (text("Source"), text("DetailType"), text("Detail"))
    else {
        return Err(entry_error("InvalidArgument", "Parameters Source, DetailType and Detail are required."));
    };
    let detail: Value = match serde_json::from_str(detail) {
        Ok(detail @ Value::Object(_)) => detail,
        _ => return Err(entry_error("MalformedDetail", "Detail is malformed.")),
    };
    let bus = text("EventBusName").unwrap_or("default");
    let bus = local_bus(events, bus).unwrap_or_else(|| bus.to_owned());
    let time = entry.get("Time").and_then(Value::as_f64).map_or(now, |seconds| (seconds * 1000.0) as i64);
    let event = json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": detail_type,
        "source": source,
        "account": events.identity.account,
        "time": iso_seconds(time),
        "region": events.identity.region,
        "resources": entry.get("Resources").cloned().unwrap_or(json!([])),
        "detail": detail,
    });
    Ok((bus, event))
}

fn put_events(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let entries = input.array("Entries")?;
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(validation(format!(
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and {MAX_ENTRIES}"
        )));
    }
    let size: usize = entries.iter().map(|e| e.to_string().len()).sum();
    if size > MAX_EVENTS_BYTES {
        return Err(validation("Total size of the entries in the request is over the limit."));
    }
    let now = events.now();
    let buses = events.db.query("SELECT name FROM buses", &[]).map_err(db_error)?;
    let buses: Vec<String> = buses.iter().filter_map(|r| r.get(0).ok()).collect();
    let mut results = Vec::new();
    let mut accepted = Vec::new();
    for entry in entries {
        match event_of(events, entry, now) {
            Ok((bus, _)) if !buses.contains(&bus) => results
                .push(entry_error("ResourceNotFoundException", &format!("Event bus {bus} does not exist."))),
            Ok((bus, event)) => {
                results.push(json!({ "EventId": event["id"] }));
                accepted.push((bus, event));
            }
            Err(error) => results.push(error),
        }
    }
    events
        .db
        .write(|tx| accepted.iter().try_for_each(|(bus, event)| route(events, tx, bus, event, now)))
        .map_err(db_error)?;
    events.wake.notify_one();
    let failed = entries.len() - accepted.len();
    Ok(json!({ "FailedEntryCount": failed, "Entries": results }))
}

fn test_event_pattern(input: &Input<'_>) -> Result<Value, AwsError> {
    let pattern = Pattern::parse(input.required("EventPattern")?).map_err(|e| {
        AwsError::new(400, "InvalidEventPatternException", format!("Event pattern is not valid. Reason: {e}"))
    })?;
    let event: Value = serde_json::from_str(input.required("Event")?)
        .map_err(|e| validation(format!("Parameter Event is not valid. Reason: {e}")))?;
    for member in ["id", "account", "source", "time", "region", "detail-type"] {
        if event.get(member).is_none() {
            return Err(validation(format!(
                "Parameter Event is not valid. Reason: Provided Event is missing required field: {member}"
            )));
        }
    }
    Ok(json!({ "Result": pattern.matches(&event) }))
}

/// The table and key a resource ARN names (a bus or a rule), for tags.
fn tagged(events: &EventBridge, arn: &str) -> Result<(&'static str, String, String), AwsError> {
    let resource = arn
        .strip_prefix(&events.arn("events", ""))
        .ok_or_else(|| not_found(format!("Resource {arn} does not exist.")))?;
    if let Some(bus) = resource.strip_prefix("event-bus/") {
        return Ok(("buses", bus.to_owned(), String::new()));
    }
    let rule =
        resource.strip_prefix("rule/").ok_or_else(|| not_found(format!("Resource {arn} does not exist.")))?;
    Ok(match rule.split_once('/') {
        Some((bus, name)) => ("rules", bus.to_owned(), name.to_owned()),
        None => ("rules", "default".to_owned(), rule.to_owned()),
    })
}

fn tag_resource(events: &EventBridge, input: &Input<'_>, add: bool) -> Result<Value, AwsError> {
    let arn = input.required("ResourceARN")?;
    let (table, first, second) = tagged(events, arn)?;
    let (select_sql, update_sql) = match table {
        "buses" => ("SELECT doc FROM buses WHERE name = ?1", "UPDATE buses SET doc = ?1 WHERE name = ?2"),
        _ => (
            "SELECT doc FROM rules WHERE bus = ?1 AND name = ?2",
            "UPDATE rules SET doc = ?1 WHERE bus = ?2 AND name = ?3",
        ),
    };
    let keys: Vec<nimbus_store::Value> = if table == "buses" {
        params![first.as_str()].to_vec()
    } else {
        params![first.as_str(), second.as_str()].to_vec()
    };
    let row = events.db.query_opt(select_sql, &keys).map_err(db_error)?;
    let doc: String = row
        .and_then(|r| r.get(0).ok())
        .ok_or_else(|| not_found(format!("Resource {arn} does not exist.")))?;
    let mut doc: Value = serde_json::from_str(&doc).unwrap_or_default();
    let mut tags = doc["Tags"].as_object().cloned().unwrap_or_default();
    if add {
        tags.extend(tags_of(input)?);
    } else {
        for key in input.array("TagKeys")? {
            tags.remove(key.as_str().unwrap_or_default());
        }
    }
    doc["Tags"] = Value::Object(tags);
    let mut update = params![doc.to_string()].to_vec();
    update.extend(keys);
    events.db.execute(update_sql, &update).map_err(db_error)?;
    Ok(json!({}))
}

fn list_tags(events: &EventBridge, input: &Input<'_>) -> Result<Value, AwsError> {
    let arn = input.required("ResourceARN")?;
    let (table, first, second) = tagged(events, arn)?;
    let row = match table {
        "buses" => events.db.query_opt("SELECT doc FROM buses WHERE name = ?1", &params![first.as_str()]),
        _ => events.db.query_opt(
            "SELECT doc FROM rules WHERE bus = ?1 AND name = ?2",
            &params![first.as_str(), second.as_str()],
        ),
    }
    .map_err(db_error)?;
    let doc: String = row
        .and_then(|r| r.get(0).ok())
        .ok_or_else(|| not_found(format!("Resource {arn} does not exist.")))?;
    let doc: Value = serde_json::from_str(&doc).unwrap_or_default();
    let tags: Vec<Value> = doc["Tags"]
        .as_object()
        .map(|tags| tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect())
        .unwrap_or_default();
    Ok(json!({ "Tags": tags }))
}
