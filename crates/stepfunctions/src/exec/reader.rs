//! Distributed Map's S3 ends: `ItemReader` (objects listed under a prefix, or one JSON, JSON
//! Lines or CSV object), `ItemBatcher`, and `ResultWriter` (the map run's results and manifest
//! written back to S3, as AWS lays them out).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{seconds, Run};
use crate::asl::{path, Failure};

fn reader_failed(cause: impl Into<String>) -> Failure {
    Failure::new("States.ItemReaderFailed", cause)
}

pub async fn read(
    run: &Arc<Run>,
    state: &Value,
    reader: &Value,
    input: &Value,
    context: &Value,
) -> Result<Vec<Value>, Failure> {
    let t = reader.get("Parameters").or_else(|| reader.get("Arguments")).cloned().unwrap_or(json!({}));
    let params = super::query::payload(state, &t, input, context, "ItemReader/Arguments")?;
    let config = reader.get("ReaderConfig").cloned().unwrap_or_default();
    let resource = reader["Resource"].as_str().unwrap_or_default();
    let bucket = params["Bucket"].as_str().unwrap_or_default();
    let services = &run.engine.services;
    let mut items = match resource.rsplit(':').next().unwrap_or_default() {
        "listObjectsV2" => {
            let prefix = params["Prefix"].as_str().unwrap_or_default();
            services.s3_list(&run.region, bucket, prefix).await.map_err(|e| reader_failed(e.message))?
        }
        "getObject" => {
            let key = params["Key"].as_str().unwrap_or_default();
            let bytes =
                services.s3_get(&run.region, bucket, key).await.map_err(|e| reader_failed(e.message))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| reader_failed(format!("s3://{bucket}/{key} is not UTF-8 text")))?;
            parse(&text, &config)?
        }
        other => return Err(reader_failed(format!("nimbus does not read Map items with '{other}'"))),
    };
    let max = match config.get("MaxItemsPath").and_then(Value::as_str) {
        Some(p) => path::select(input, p).ok().and_then(|v| v.as_u64()),
        None => config["MaxItems"].as_u64(),
    };
    if let Some(max) = max.filter(|m| *m > 0) {
        items.truncate(max as usize);
    }
    Ok(items)
}

fn parse(text: &str, config: &Value) -> Result<Vec<Value>, Failure> {
    match config["InputType"].as_str().unwrap_or("JSON") {
        "JSON" => match serde_json::from_str(text) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(reader_failed("The object is not a JSON array")),
        },
        "JSONL" => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| reader_failed(format!("A JSON Lines line is not JSON: {e}")))
            })
            .collect(),
        "CSV" => {
            let mut rows = text.lines().filter(|l| !l.is_empty()).map(csv_row);
            let headers: Vec<String> = match config["CSVHeaderLocation"].as_str().unwrap_or("FIRST_ROW") {
                "GIVEN" => config["CSVHeaders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect(),
                _ => rows.next().unwrap_or_default(),
            };
            Ok(rows
                .map(|row| {
                    let fields = headers.iter().cloned().zip(row.into_iter().map(Value::String));
                    Value::Object(fields.collect())
                })
                .collect())
        }
        other => Err(reader_failed(format!("nimbus does not read Map items of InputType '{other}'"))),
    }
}

/// One CSV line's fields (RFC 4180 quoting within the line).
fn csv_row(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Items grouped as `{"BatchInput": …, "Items": […]}` by `MaxItemsPerBatch` and
/// `MaxInputBytesPerBatch`.
pub fn batch(
    items: Vec<Value>,
    state: &Value,
    batcher: &Value,
    input: &Value,
    context: &Value,
) -> Result<Vec<Value>, Failure> {
    let max_items = batcher["MaxItemsPerBatch"].as_u64().unwrap_or(u64::MAX).max(1) as usize;
    let max_bytes = batcher["MaxInputBytesPerBatch"].as_u64().unwrap_or(256 * 1024) as usize;
    let batch_input = batcher
        .get("BatchInput")
        .map(|t| super::query::payload(state, t, input, context, "ItemBatcher/BatchInput"))
        .transpose()?;
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = item.to_string().len();
        if !current.is_empty() && (current.len() >= max_items || bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches
        .into_iter()
        .map(|items| {
            let mut batch = json!({"Items": items});
            if let Some(b) = &batch_input {
                batch["BatchInput"] = b.clone();
            }
            batch
        })
        .collect())
}

/// Writes the map run's results under `<Prefix>/<map run id>/` (`SUCCEEDED_0.json`,
/// `FAILED_0.json`, `manifest.json`); the Map's output names them.
pub async fn write(
    run: &Arc<Run>,
    state: &Value,
    writer: &Value,
    map_run: &str,
    outcomes: &[(usize, Value, Result<Value, Failure>)],
    input: &Value,
    context: &Value,
) -> Result<Value, Failure> {
    let t = writer.get("Parameters").or_else(|| writer.get("Arguments")).cloned().unwrap_or(json!({}));
    let params = super::query::payload(state, &t, input, context, "ResultWriter/Arguments")?;
    let bucket = params["Bucket"].as_str().unwrap_or_default().to_owned();
    let prefix = params["Prefix"].as_str().unwrap_or_default().trim_end_matches('/').to_owned();
    let id = map_run.rsplit(':').next().unwrap_or("run");
    let base = if prefix.is_empty() { id.to_owned() } else { format!("{prefix}/{id}") };
    let now = seconds(run.engine.now());
    let entry = |index: usize, item: &Value, result: &Result<Value, Failure>| {
        let mut entry = json!({
            "ExecutionArn": format!("{map_run}:{index}"),
            "Input": item.to_string(),
            "InputDetails": {"Included": true},
            "Name": index.to_string(),
            "StartDate": now,
            "StateMachineArn": run.context["StateMachine"]["Id"],
            "StopDate": now,
        });
        match result {
            Ok(output) => {
                entry["Status"] = json!("SUCCEEDED");
                entry["Output"] = json!(output.to_string());
                entry["OutputDetails"] = json!({"Included": true});
            }
            Err(failure) => {
                entry["Status"] = json!("FAILED");
                entry["Error"] = json!(failure.error);
                entry["Cause"] = json!(failure.cause);
            }
        }
        entry
    };
    let mut files = json!({"FAILED": [], "PENDING": [], "SUCCEEDED": []});
    for (status, wanted) in [("SUCCEEDED", true), ("FAILED", false)] {
        let entries: Vec<Value> = outcomes
            .iter()
            .filter(|(_, _, r)| r.is_ok() == wanted)
            .map(|(i, item, r)| entry(*i, item, r))
            .collect();
        if entries.is_empty() {
            continue;
        }
        let key = format!("{base}/{status}_0.json");
        let body = Value::Array(entries).to_string().into_bytes();
        let size = body.len();
        put(run, &bucket, &key, body).await?;
        files[status] = json!([{"Key": key, "Size": size}]);
    }
    let manifest = json!({"DestinationBucket": bucket, "MapRunArn": map_run, "ResultFiles": files});
    let key = format!("{base}/manifest.json");
    put(run, &bucket, &key, manifest.to_string().into_bytes()).await?;
    Ok(json!({"MapRunArn": map_run, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}))
}

async fn put(run: &Arc<Run>, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), Failure> {
    run.engine
        .services
        .s3_put(&run.region, bucket, key, body)
        .await
        .map(drop)
        .map_err(|e| Failure::new("States.ResultWriterFailed", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_json_lines_and_batches() {
        let csv = "id,name\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n";
        let items = parse(csv, &json!({"InputType": "CSV"})).unwrap();
        assert_eq!(items, vec![json!({"id": "1", "name": "a, b"}), json!({"id": "2", "name": "say \"hi\""})]);
        let given = parse(
            "1,x\n",
            &json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["n", "v"]}),
        )
        .unwrap();
        assert_eq!(given, vec![json!({"n": "1", "v": "x"})]);
        assert_eq!(parse("{\"a\":1}\n\n{\"a\":2}\n", &json!({"InputType": "JSONL"})).unwrap().len(), 2);
        assert!(parse("{}", &json!({})).is_err());
        let batches = batch(
            (0..5).map(|i| json!(i)).collect(),
            &json!({}),
            &json!({"MaxItemsPerBatch": 2, "BatchInput": {"k": 1}}),
            &json!({}),
            &json!({}),
        )
        .unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2], json!({"Items": [4], "BatchInput": {"k": 1}}));
    }
}
