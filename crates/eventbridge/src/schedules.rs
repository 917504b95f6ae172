//! EventBridge Scheduler (REST-JSON): schedule groups and schedules — `at()`, `rate()` and
//! `cron()` in a time zone, start and end dates, retry policies, dead-letter queues, actions
//! after completion — firing templated targets (Lambda, SQS, SNS, Kinesis, an event bus) and
//! the universal `aws-sdk:` targets of those services.

use nimbus_api::{percent_decode, ApiRequest, AwsError};
use nimbus_store::{params, DbError};
use serde_json::{json, Map, Value};

use crate::expression::{iso_seconds, zone, Expression};
use crate::firing::Delivery;
use crate::input::{check_name, page, validation, Input};
use crate::{db_error, EventBridge};

fn not_found(message: String) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", message)
}

fn conflict(message: String) -> AwsError {
    AwsError::new(409, "ConflictException", message)
}

pub fn dispatch(events: &EventBridge, request: &ApiRequest) -> Result<(u16, Value), AwsError> {
    let path = request.uri.path();
    let query = query_pairs(request.uri.query().unwrap_or(""));
    let query = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let body: Value = if request.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&request.body)
            .map_err(|e| AwsError::new(400, "SerializationException", e.to_string()))?
    };
    let input = Input(&body);
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    let result = match (method, segments.as_slice()) {
        ("POST", ["schedules", name]) => create(events, name, &input, false),
        ("PUT", ["schedules", name]) => create(events, name, &input, true),
        ("GET", ["schedules", name]) => get(events, name, query("groupName")),
        ("DELETE", ["schedules", name]) => delete(events, name, query("groupName")),
        ("GET", ["schedules"]) => list(
            events,
            query("ScheduleGroup"),
            query("NamePrefix"),
            query("State"),
            query("NextToken"),
            query("MaxResults"),
        ),
        ("POST", ["schedule-groups", name]) => create_group(events, name, &input),
        ("GET", ["schedule-groups", name]) => get_group(events, name),
        ("DELETE", ["schedule-groups", name]) => delete_group(events, name),
        ("GET", ["schedule-groups"]) => {
            list_groups(events, query("NamePrefix"), query("NextToken"), query("MaxResults"))
        }
        ("GET", ["tags", arn]) => list_tags(events, arn),
        ("POST", ["tags", arn]) => tag(events, arn, &input),
        ("DELETE", ["tags", arn]) => {
            untag(events, arn, &request.uri.query().map(query_pairs).unwrap_or_default())
        }
        _ => Err(AwsError::new(
            400,
            "UnknownOperationException",
            format!("nimbus does not implement the EventBridge Scheduler operation {method} {path}"),
        )),
    }?;
    Ok((200, result))
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(&key.replace('+', " ")), percent_decode(&value.replace('+', " ")))
        })
        .collect()
}

fn schedule_arn(events: &EventBridge, group: &str, name: &str) -> String {
    events.arn("scheduler", &format!("schedule/{group}/{name}"))
}

fn group_arn(events: &EventBridge, group: &str) -> String {
    events.arn("scheduler", &format!("schedule-group/{group}"))
}

fn group_doc(events: &EventBridge, group: &str) -> Result<Option<Value>, AwsError> {
    if group == "default" {
        return Ok(Some(json!({ "Tags": {} })));
    }
    let row = events
        .db
        .query_opt("SELECT doc FROM schedule_groups WHERE name = ?1", &params![group])
        .map_err(db_error)?;
    Ok(row.and_then(|r| serde_json::from_str(&r.get::<String>(0).ok()?).ok()))
}

fn require_group(events: &EventBridge, group: &str) -> Result<(), AwsError> {
    match group_doc(events, group)? {
        Some(_) => Ok(()),
        None => Err(not_found(format!("Schedule group {group} does not exist."))),
    }
}

/// When the schedule fires next after `after` (None: never again).
pub fn next_fire(schedule: &Value, after: i64) -> Option<i64> {
    if schedule["State"] == "DISABLED" {
        return None;
    }
    let zone = zone(schedule["ScheduleExpressionTimezone"].as_str()).ok()?;
    let expression = Expression::parse(schedule["ScheduleExpression"].as_str()?, zone, true).ok()?;
    let start = schedule["StartDate"].as_f64().map(|s| (s * 1000.0) as i64);
    let anchor = start.unwrap_or_else(|| schedule["CreatedMs"].as_i64().unwrap_or(after));
    let after = match (start, expression.is_one_time()) {
        (Some(start), false) => after.max(start - 1),
        _ => after,
    };
    let next = expression.next_after(after, anchor)?;
    let end = schedule["EndDate"].as_f64().map(|s| (s * 1000.0) as i64);
    match end {
        Some(end) if !expression.is_one_time() && next > end => None,
        _ => Some(next),
    }
}

/// The universal targets nimbus serves: `arn:aws:scheduler:::aws-sdk:<service>:<action>`.
const UNIVERSAL: &[&str] =
    &["sqs:sendMessage", "lambda:invoke", "sns:publish", "kinesis:putRecord", "batch:submitJob"];

fn check_target(target: &Value) -> Result<(), AwsError> {
    let arn = target["Arn"].as_str().ok_or_else(|| validation("Target Arn is required."))?;
    if target["RoleArn"].as_str().is_none() {
        return Err(validation("Target RoleArn is required."));
    }
    if let Some(action) = arn.strip_prefix("arn:aws:scheduler:::aws-sdk:") {
        if !UNIVERSAL.contains(&action) {
            return Err(validation(format!(
                "nimbus does not serve the universal target aws-sdk:{action}; it serves {}",
                UNIVERSAL.join(", ")
            )));
        }
        let input = target["Input"].as_str().unwrap_or("{}");
        serde_json::from_str::<Value>(input)
            .map_err(|_| validation("Target Input must be JSON for a universal target."))?;
    } else if !arn.starts_with("arn:") {
        return Err(validation(format!("Invalid target arn {arn}.")));
    }
    let retries = target["RetryPolicy"]["MaximumRetryAttempts"].as_i64().unwrap_or(185);
    let age = target["RetryPolicy"]["MaximumEventAgeInSeconds"].as_i64().unwrap_or(86_400);
    if !(0..=185).contains(&retries) || !(60..=86_400).contains(&age) {
        return Err(validation(
            "RetryPolicy: MaximumRetryAttempts must be 0-185 and MaximumEventAgeInSeconds 60-86400.",
        ));
    }
    Ok(())
}

pub(crate) fn create(
    events: &EventBridge,
    name: &str,
    input: &Input<'_>,
    update: bool,
) -> Result<Value, AwsError> {
    check_name("name", name)?;
    let group = input.str("GroupName")?.unwrap_or("default");
    require_group(events, group)?;
    let expression = input.required("ScheduleExpression")?;
    let timezone = input.str("ScheduleExpressionTimezone")?;
    let tz =
        zone(timezone).map_err(|why| validation(format!("Invalid ScheduleExpressionTimezone: {why}")))?;
    Expression::parse(expression, tz, true)
        .map_err(|_| validation(format!("Invalid Schedule Expression {expression}.")))?;
    let window =
        input.get("FlexibleTimeWindow").ok_or_else(|| validation("FlexibleTimeWindow is required."))?;
    match (window["Mode"].as_str(), window["MaximumWindowInMinutes"].as_i64()) {
        (Some("OFF"), None) => {}
        (Some("FLEXIBLE"), Some(1..=1440)) => {}
        _ => {
            return Err(validation(
                "FlexibleTimeWindow: Mode OFF, or FLEXIBLE with MaximumWindowInMinutes 1-1440.",
            ))
        }
    }
    let target = input.get("Target").ok_or_else(|| validation("Target is required."))?;
    check_target(target)?;
    let state = input.str("State")?.unwrap_or("ENABLED");
    if !matches!(state, "ENABLED" | "DISABLED") {
        return Err(validation(format!("Invalid State {state}.")));
    }
    let after = input.str("ActionAfterCompletion")?.unwrap_or("NONE");
    if !matches!(after, "NONE" | "DELETE") {
        return Err(validation(format!("Invalid ActionAfterCompletion {after}.")));
    }
    let now = events.now();
    let arn = schedule_arn(events, group, name);
    let mut schedule = json!({
        "Name": name,
        "GroupName": group,
        "Arn": arn,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone.unwrap_or("UTC"),
        "FlexibleTimeWindow": window,
        "Target": target,
        "State": state,
        "ActionAfterCompletion": after,
        "CreatedMs": now,
        "CreationDate": now as f64 / 1000.0,
        "LastModificationDate": now as f64 / 1000.0,
    });
    for member in ["Description", "StartDate", "EndDate", "KmsKeyArn"] {
        if let Some(value) = input.get(member) {
            schedule[member] = value.clone();
        }
    }
    let next = next_fire(&schedule, now);
    events
        .db
        .write(|tx| {
            let old = tx.query_opt("SELECT doc FROM schedules WHERE grp = ?1 AND name = ?2", &params![group, name])?;
            match (old, update) {
                (Some(_), false) => return Err(DbError::Conflict("exists".into())),
                (None, true) => return Err(DbError::Other("missing".into())),
                (Some(old), true) => {
                    let old: Value = serde_json::from_str(&old.get::<String>(0)?).unwrap_or_default();
                    schedule["CreationDate"] = old["CreationDate"].clone();
                }
                (None, false) => {}
            }
            tx.execute(
                "INSERT INTO schedules (grp, name, doc, next_fire_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (grp, name) DO UPDATE SET doc = excluded.doc, next_fire_ms = excluded.next_fire_ms",
                &params![group, name, schedule.to_string(), next],
            )
        })
        .map_err(|error| match error {
            DbError::Conflict(_) => conflict(format!("Schedule {name} already exists.")),
            DbError::Other(message) if message == "missing" => not_found(format!("Schedule {name} does not exist.")),
            other => db_error(other),
        })?;
    events.wake.notify_one();
    Ok(json!({ "ScheduleArn": arn }))
}

fn load(events: &EventBridge, group: &str, name: &str) -> Result<Value, AwsError> {
    let row = events
        .db
        .query_opt("SELECT doc FROM schedules WHERE grp = ?1 AND name = ?2", &params![group, name])
        .map_err(db_error)?;
    row.and_then(|r| serde_json::from_str(&r.get::<String>(0).ok()?).ok())
        .ok_or_else(|| not_found(format!("Schedule {name} does not exist.")))
}

fn public(schedule: &Value) -> Value {
    let mut out = schedule.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("CreatedMs");
    }
    out
}

pub(crate) fn get(events: &EventBridge, name: &str, group: Option<&str>) -> Result<Value, AwsError> {
    let group = group.unwrap_or("default");
    require_group(events, group)?;
    Ok(public(&load(events, group, name)?))
}

pub(crate) fn delete(events: &EventBridge, name: &str, group: Option<&str>) -> Result<Value, AwsError> {
    let group = group.unwrap_or("default");
    require_group(events, group)?;
    let deleted = events
        .db
        .execute("DELETE FROM schedules WHERE grp = ?1 AND name = ?2", &params![group, name])
        .map_err(db_error)?;
    if deleted == 0 {
        return Err(not_found(format!("Schedule {name} does not exist.")));
    }
    Ok(json!({}))
}

fn max_results(text: Option<&str>) -> Result<Option<i64>, AwsError> {
    text.map(|t| t.parse::<i64>().map_err(|_| validation("MaxResults must be a number."))).transpose()
}

fn list(
    events: &EventBridge,
    group: Option<&str>,
    prefix: Option<&str>,
    state: Option<&str>,
    token: Option<&str>,
    limit: Option<&str>,
) -> Result<Value, AwsError> {
    let rows = events.db.query("SELECT doc FROM schedules ORDER BY grp, name", &[]).map_err(db_error)?;
    let schedules = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.get::<String>(0).ok()?).ok())
        .filter(|s| group.is_none_or(|g| s["GroupName"] == g))
        .filter(|s| prefix.is_none_or(|p| s["Name"].as_str().unwrap_or_default().starts_with(p)))
        .filter(|s| state.is_none_or(|st| s["State"] == st))
        .map(|s| {
            json!({
                "Arn": s["Arn"], "Name": s["Name"], "GroupName": s["GroupName"], "State": s["State"],
                "CreationDate": s["CreationDate"], "LastModificationDate": s["LastModificationDate"],
                "Target": { "Arn": s["Target"]["Arn"] },
            })
        })
        .collect();
    page(schedules, token, max_results(limit)?, "Schedules")
}

pub(crate) fn create_group(events: &EventBridge, name: &str, input: &Input<'_>) -> Result<Value, AwsError> {
    check_name("name", name)?;
    let mut tags = Map::new();
    for tag in input.array("Tags")? {
        tags.insert(tag["Key"].as_str().unwrap_or_default().to_owned(), tag["Value"].clone());
    }
    let now = events.now() as f64 / 1000.0;
    let doc = json!({ "Tags": tags, "CreationDate": now });
    let inserted = if name == "default" {
        0
    } else {
        events
            .db
            .execute(
                "INSERT INTO schedule_groups (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                &params![name, doc.to_string()],
            )
            .map_err(db_error)?
    };
    if inserted == 0 {
        return Err(conflict(format!("Schedule group {name} already exists.")));
    }
    Ok(json!({ "ScheduleGroupArn": group_arn(events, name) }))
}

fn group_json(events: &EventBridge, name: &str, doc: &Value) -> Value {
    let created = doc["CreationDate"].as_f64().unwrap_or_default();
    json!({ "Arn": group_arn(events, name), "Name": name, "State": "ACTIVE", "CreationDate": created, "LastModificationDate": created })
}

pub(crate) fn get_group(events: &EventBridge, name: &str) -> Result<Value, AwsError> {
    let doc = group_doc(events, name)?
        .ok_or_else(|| not_found(format!("Schedule group {name} does not exist.")))?;
    Ok(group_json(events, name, &doc))
}

pub(crate) fn delete_group(events: &EventBridge, name: &str) -> Result<Value, AwsError> {
    if name == "default" {
        return Err(validation("The default schedule group cannot be deleted."));
    }
    require_group(events, name)?;
    events
        .db
        .write(|tx| {
            tx.execute("DELETE FROM schedules WHERE grp = ?1", &params![name])?;
            tx.execute("DELETE FROM schedule_groups WHERE name = ?1", &params![name])
        })
        .map_err(db_error)?;
    Ok(json!({}))
}

fn list_groups(
    events: &EventBridge,
    prefix: Option<&str>,
    token: Option<&str>,
    limit: Option<&str>,
) -> Result<Value, AwsError> {
    let rows =
        events.db.query("SELECT name, doc FROM schedule_groups ORDER BY name", &[]).map_err(db_error)?;
    let mut groups = vec![group_json(events, "default", &json!({}))];
    groups.extend(rows.iter().filter_map(|r| {
        let name: String = r.get(0).ok()?;
        let doc: Value = serde_json::from_str(&r.get::<String>(1).ok()?).ok()?;
        Some(group_json(events, &name, &doc))
    }));
    let groups = groups
        .into_iter()
        .filter(|g| prefix.is_none_or(|p| g["Name"].as_str().unwrap_or_default().starts_with(p)))
        .collect();
    page(groups, token, max_results(limit)?, "ScheduleGroups")
}

/// Tags live on schedule groups (the only taggable Scheduler resource).
fn group_of_arn(events: &EventBridge, arn: &str) -> Result<String, AwsError> {
    let name = arn
        .strip_prefix(&group_arn(events, ""))
        .ok_or_else(|| not_found(format!("Resource {arn} does not exist.")))?;
    require_group(events, name)?;
    if name == "default" {
        return Err(validation("The default schedule group cannot be tagged."));
    }
    Ok(name.to_owned())
}

fn update_tags(
    events: &EventBridge,
    arn: &str,
    change: impl FnOnce(&mut Map<String, Value>),
) -> Result<Value, AwsError> {
    let name = group_of_arn(events, arn)?;
    let mut doc = group_doc(events, &name)?.unwrap_or_default();
    let mut tags = doc["Tags"].as_object().cloned().unwrap_or_default();
    change(&mut tags);
    doc["Tags"] = Value::Object(tags);
    events
        .db
        .execute(
            "UPDATE schedule_groups SET doc = ?1 WHERE name = ?2",
            &params![doc.to_string(), name.as_str()],
        )
        .map_err(db_error)?;
    Ok(json!({}))
}

fn tag(events: &EventBridge, arn: &str, input: &Input<'_>) -> Result<Value, AwsError> {
    let tags = input.array("Tags")?.to_vec();
    update_tags(events, arn, |all| {
        for tag in tags {
            all.insert(tag["Key"].as_str().unwrap_or_default().to_owned(), tag["Value"].clone());
        }
    })
}

fn untag(events: &EventBridge, arn: &str, query: &[(String, String)]) -> Result<Value, AwsError> {
    update_tags(events, arn, |all| {
        for (key, value) in query {
            if key == "TagKeys" {
                all.remove(value);
            }
        }
    })
}

fn list_tags(events: &EventBridge, arn: &str) -> Result<Value, AwsError> {
    let name = group_of_arn(events, arn)?;
    let doc = group_doc(events, &name)?.unwrap_or_default();
    let tags: Vec<Value> = doc["Tags"]
        .as_object()
        .map(|t| t.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect())
        .unwrap_or_default();
    Ok(json!({ "Tags": tags }))
}

/// Fills Scheduler's context attributes (`<aws.scheduler.scheduled-time>` …) into an input.
fn with_context(input: &str, schedule: &Value, scheduled_ms: i64) -> String {
    input
        .replace("<aws.scheduler.scheduled-time>", &iso_seconds(scheduled_ms))
        .replace("<aws.scheduler.schedule-arn>", schedule["Arn"].as_str().unwrap_or_default())
        .replace("<aws.scheduler.execution-id>", &uuid::Uuid::new_v4().to_string())
        .replace("<aws.scheduler.attempt-number>", "1")
}

/// What one firing hands to the outbox: a templated target as it is, a universal target turned
/// into the resource and payload its API call names, an event bus target as an event.
pub fn delivery(events: &EventBridge, schedule: &Value, scheduled_ms: i64, now: i64) -> Delivery {
    let target = &schedule["Target"];
    let input = with_context(target["Input"].as_str().unwrap_or("{}"), schedule, scheduled_ms);
    let mut arn = target["Arn"].as_str().unwrap_or_default().to_owned();
    let mut payload = input.clone();
    let mut group_id = target["SqsParameters"]["MessageGroupId"].as_str().map(str::to_owned);
    let mut partition_key = target["KinesisParameters"]["PartitionKey"].as_str().map(str::to_owned);
    if let Some(action) = arn.strip_prefix("arn:aws:scheduler:::aws-sdk:").map(str::to_owned) {
        let call: Value = serde_json::from_str(&input).unwrap_or_default();
        let text = |member: &str| call[member].as_str().map(str::to_owned);
        let json_text = |member: &str| text(member).unwrap_or_else(|| call[member].to_string());
        let region_account = format!("{}:{}", events.identity.region, events.identity.account);
        (arn, payload) = match action.as_str() {
            "sqs:sendMessage" => {
                let url = text("QueueUrl").unwrap_or_default();
                let queue = url.rsplit('/').next().unwrap_or_default();
                group_id = text("MessageGroupId");
                (format!("arn:aws:sqs:{region_account}:{queue}"), json_text("MessageBody"))
            }
            "lambda:invoke" => {
                let name = text("FunctionName").unwrap_or_default();
                let function = if name.starts_with("arn:") {
                    name
                } else {
                    format!("arn:aws:lambda:{region_account}:function:{name}")
                };
                (function, call.get("Payload").map_or("{}".to_owned(), |_| json_text("Payload")))
            }
            "sns:publish" => (text("TopicArn").unwrap_or_default(), json_text("Message")),
            "batch:submitJob" => {
                let queue = text("JobQueue").unwrap_or_default();
                let queue = if queue.starts_with("arn:") {
                    queue
                } else {
                    format!("arn:aws:batch:{region_account}:job-queue/{queue}")
                };
                (queue, json!({ "submitJob": call }).to_string())
            }
            _ => {
                partition_key = text("PartitionKey");
                let stream = text("StreamARN").unwrap_or_else(|| {
                    format!(
                        "arn:aws:kinesis:{region_account}:stream/{}",
                        text("StreamName").unwrap_or_default()
                    )
                });
                (stream, json_text("Data"))
            }
        };
    }
    if arn.contains(":event-bus/") {
        let parameters = &target["EventBridgeParameters"];
        let detail: Value = serde_json::from_str(&input).unwrap_or(json!({}));
        payload = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": parameters["DetailType"].as_str().unwrap_or("Scheduled Event"),
            "source": parameters["Source"].as_str().unwrap_or("aws.scheduler"),
            "account": events.identity.account,
            "time": iso_seconds(scheduled_ms),
            "region": events.identity.region,
            "resources": [schedule["Arn"]],
            "detail": detail,
        })
        .to_string();
    }
    Delivery {
        arn,
        payload,
        message_group_id: group_id,
        partition_key,
        source_arn: schedule["Arn"].as_str().unwrap_or_default().to_owned(),
        target_id: String::new(),
        kind: "schedule".into(),
        max_attempts: target["RetryPolicy"]["MaximumRetryAttempts"].as_i64().unwrap_or(185) + 1,
        max_age_ms: target["RetryPolicy"]["MaximumEventAgeInSeconds"].as_i64().unwrap_or(86_400) * 1000,
        dead_letter_arn: target["DeadLetterConfig"]["Arn"].as_str().map(str::to_owned),
        first_ms: now,
    }
}
