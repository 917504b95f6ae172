//! CreateQueue, DeleteQueue, GetQueueUrl, ListQueues, PurgeQueue, ListDeadLetterSourceQueues.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::engine::queue::{self, QueueMeta};
use crate::engine::state::QueueState;
use crate::engine::store::Write;
use crate::error::{Result, SqsError};
use crate::protocol::input::{int_in, opt_string, queue_name, string, string_map};
use crate::protocol::Ctx;
use crate::Sqs;

const PURGE_INTERVAL_MS: i64 = 60_000;

pub async fn create(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let name = string(input, "QueueName")?;
    let attributes = string_map(input, "Attributes")?;
    let tags = string_map(input, "tags")?;
    let fifo_attr = attributes.iter().find(|(k, _)| k == "FifoQueue").map(|(_, v)| v.as_str());
    let fifo = fifo_attr == Some("true");
    if !queue::valid_name(name, fifo) {
        let message = if fifo {
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, \
             must end with .fifo suffix and be 1 to 80 in length."
        } else {
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        };
        return Err(SqsError::invalid(message));
    }
    let mut validated = std::collections::BTreeMap::new();
    for (key, value) in &attributes {
        if key == "FifoQueue" && value == "false" && !fifo {
            continue;
        }
        validated.insert(key.clone(), queue::validate(key, value, fifo)?);
    }
    let url = ctx.queue_url(&sqs.account, name);
    let now = sqs.now();
    let meta = {
        let mut state = sqs.lock();
        if let Some(existing) = state.queues.get(name) {
            for (key, value) in &validated {
                if existing.meta.attribute(key).as_deref() != Some(value.as_str()) {
                    let message = format!(
                        "A queue already exists with the same name and a different value for attribute {key}"
                    );
                    return Err(SqsError::queue_exists(message));
                }
            }
            return Ok(json!({ "QueueUrl": url }));
        }
        let arn = sqs.arn(name);
        if let Some(policy) = validated.get("RedrivePolicy") {
            state.check_redrive(&arn, fifo, policy)?;
        }
        let meta = QueueMeta {
            name: name.to_owned(),
            fifo,
            attributes: validated,
            tags: tags.into_iter().collect(),
            created_s: now / 1000,
            modified_s: now / 1000,
        };
        state.queues.insert(name.to_owned(), QueueState::new(meta.clone(), arn));
        meta
    };
    sqs.store.write(vec![Write::PutQueue(meta)]).await?;
    Ok(json!({ "QueueUrl": url }))
}

pub async fn delete(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?).to_owned();
    let removed = sqs.lock().queues.remove(&name).ok_or_else(SqsError::queue_missing)?;
    removed.notify.notify_waiters();
    sqs.store.write(vec![Write::DropQueue(name)]).await?;
    Ok(json!({}))
}

pub fn get_url(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let name = string(input, "QueueName")?;
    sqs.lock().queue(name)?;
    Ok(json!({ "QueueUrl": ctx.queue_url(&sqs.account, name) }))
}

/// Pages of names after `NextToken` (the last name returned, base64), `MaxResults` at a time.
fn page(input: &Value, names: Vec<String>) -> Result<(Vec<String>, Option<String>)> {
    let reason = "MaxResults must be an integer between 1 and 1000.";
    let max = int_in(input, "MaxResults", 1, 1000, reason)?;
    let after = match opt_string(input, "NextToken")? {
        Some(token) => {
            let decoded = B64.decode(token).ok().and_then(|b| String::from_utf8(b).ok());
            Some(decoded.ok_or_else(|| SqsError::invalid("Invalid NextToken value."))?)
        }
        None => None,
    };
    let mut rest: Vec<String> = names.into_iter().filter(|n| after.as_ref().is_none_or(|a| n > a)).collect();
    let limit = max.unwrap_or(1000) as usize;
    let more = rest.len() > limit;
    rest.truncate(limit);
    let token = (more && max.is_some()).then(|| rest.last().map(|n| B64.encode(n))).flatten();
    Ok((rest, token))
}

fn page_output(sqs: &Sqs, ctx: &Ctx, member: &str, names: Vec<String>, token: Option<String>) -> Value {
    let mut output = json!({});
    if !names.is_empty() {
        let urls: Vec<String> = names.iter().map(|n| ctx.queue_url(&sqs.account, n)).collect();
        output[member] = json!(urls);
    }
    if let Some(token) = token {
        output["NextToken"] = token.into();
    }
    output
}

pub fn list(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let prefix = opt_string(input, "QueueNamePrefix")?.unwrap_or_default();
    let names: Vec<String> = sqs.lock().queues.keys().filter(|n| n.starts_with(prefix)).cloned().collect();
    let (names, token) = page(input, names)?;
    Ok(page_output(sqs, ctx, "QueueUrls", names, token))
}

pub fn dead_letter_sources(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let names: Vec<String> = {
        let state = sqs.lock();
        let arn = state.queue(name)?.arn.clone();
        let sources =
            state.queues.values().filter(|q| q.config.redrive.as_ref().is_some_and(|r| r.target_arn == arn));
        sources.map(|q| q.meta.name.clone()).collect()
    };
    let (names, token) = page(input, names)?;
    let mut output = page_output(sqs, ctx, "queueUrls", names, token);
    if output.get("queueUrls").is_none() {
        output["queueUrls"] = json!([]);
    }
    Ok(output)
}

pub async fn purge(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let now = sqs.now();
    let writes = {
        let mut state = sqs.lock();
        let queue = state.queue_mut(name)?;
        if queue.last_purge_ms.is_some_and(|at| now - at < PURGE_INTERVAL_MS) {
            return Err(SqsError::purge_in_progress(&queue.meta.name));
        }
        queue.last_purge_ms = Some(now);
        let seqs: Vec<u64> = queue.messages.keys().copied().collect();
        seqs.into_iter().filter_map(|seq| queue.remove(seq)).map(|m| Write::Delete(m.seq)).collect()
    };
    sqs.store.write(writes).await?;
    Ok(json!({}))
}
