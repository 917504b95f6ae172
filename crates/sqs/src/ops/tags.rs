//! TagQueue, UntagQueue, ListQueueTags.

use serde_json::{json, Value};

use crate::engine::store::Write;
use crate::error::{Result, SqsError};
use crate::protocol::input::{queue_name, string, string_map, strings};
use crate::Sqs;

pub async fn call(sqs: &Sqs, operation: &str, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let meta = {
        let mut state = sqs.lock();
        let queue = state.queue_mut(name)?;
        match operation {
            "ListQueueTags" => {
                if queue.meta.tags.is_empty() {
                    return Ok(json!({}));
                }
                return Ok(json!({ "Tags": queue.meta.tags }));
            }
            "TagQueue" => {
                let tags = string_map(input, "Tags")?;
                if tags.is_empty() {
                    return Err(SqsError::missing("Tags"));
                }
                let mut merged = queue.meta.tags.clone();
                merged.extend(tags);
                if merged.len() > 50 {
                    return Err(SqsError::invalid(
                        "Too many tags added for queue. A queue can have at most 50 tags.",
                    ));
                }
                queue.meta.tags = merged;
            }
            _ => {
                let keys = strings(input, "TagKeys");
                if keys.is_empty() {
                    return Err(SqsError::missing("TagKeys"));
                }
                for key in keys {
                    queue.meta.tags.remove(&key);
                }
            }
        }
        queue.meta.clone()
    };
    sqs.store.write(vec![Write::PutQueue(meta)]).await?;
    Ok(json!({}))
}
