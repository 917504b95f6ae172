//! Shards: `ListShards`, and resharding (`SplitShard`, `MergeShards`, `UpdateShardCount`):
//! the parents are closed (their last sequence number becomes `EndingSequenceNumber`) and the
//! children open in the same transaction, so no record lands in a parent after a child exists.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::{opt_int, opt_str, opt_time_ms, req_str};
use crate::store::{self, NewShard, Shard};
use crate::streams::shard_json;
use crate::{hash, seq, Kinesis};

/// How long a `ListShards` token may be used.
const TOKEN_TTL_MS: i64 = 300_000;

/// Pagination tokens: opaque to callers, `<operation>|<position>` inside.
pub(crate) fn encode_token(position: &str, operation: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{operation}|{position}"))
}

pub(crate) fn decode_token(token: &str, operation: &str) -> Result<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).unwrap_or_default();
    let text = String::from_utf8(bytes).unwrap_or_default();
    match text.split_once('|') {
        Some((op, position)) if op == operation => Ok(position.to_owned()),
        _ => Err(error::invalid(format!("Invalid NextToken: {token}"))),
    }
}

impl Kinesis {
    pub(crate) fn list_shards(&self, input: &Value) -> Result<Value> {
        let max = opt_int(input, "MaxResults", 1, 10_000)?.unwrap_or(1000) as usize;
        let (input, after) = match opt_str(input, "NextToken") {
            Some(token) => {
                if input.get("StreamName").is_some() || input.get("StreamARN").is_some() {
                    return Err(error::invalid("NextToken and StreamName cannot be provided together."));
                }
                let position = decode_token(token, "ListShards")?;
                let mut parts = position.split('|');
                let (name, index, made) = (parts.next(), parts.next(), parts.next());
                let made = made.and_then(|ms| ms.parse::<i64>().ok());
                let (Some(name), Some(index), Some(made)) = (name, index, made) else {
                    return Err(error::invalid(format!("Invalid NextToken: {token}")));
                };
                if self.now() - made > TOKEN_TTL_MS {
                    return Err(error::expired_token(format!(
                        "The NextToken {token} has expired: pagination tokens are valid for 300 seconds."
                    )));
                }
                (json!({"StreamName": name}), index.parse::<i64>().ok())
            }
            None => {
                let after =
                    opt_str(input, "ExclusiveStartShardId").map(|id| seq::shard_index(id).unwrap_or(-1));
                (input.clone(), after)
            }
        };
        let (stream, shards) = self.tx_read(|tx| {
            let stream = self.stream(tx, &input)?;
            let shards = store::shards(tx, &stream.id).map_err(error::db)?;
            Ok::<_, nimbus_api::AwsError>((stream, shards))
        })?;
        let horizon = stream.horizon_ms(self.now());
        let kept: Vec<&Shard> = shards.iter().filter(|s| s.closed_ms.is_none_or(|c| c >= horizon)).collect();
        let filter = input.get("ShardFilter");
        let kept = match filter {
            Some(filter) => filtered(&kept, filter)?,
            None => kept,
        };
        let listed: Vec<&Shard> =
            kept.into_iter().filter(|s| after.is_none_or(|after| s.index > after)).collect();
        let page: Vec<Value> = listed.iter().take(max).map(|s| shard_json(s)).collect();
        let mut output = json!({ "Shards": page });
        if listed.len() > max {
            let last = listed[max - 1].index;
            let position = format!("{}|{last}|{}", stream.name, self.now());
            output["NextToken"] = json!(encode_token(&position, "ListShards"));
        }
        Ok(output)
    }

    pub(crate) fn split_shard(&self, input: &Value) -> Result<Value> {
        let shard_id = req_str(input, "ShardToSplit")?;
        let key_text = req_str(input, "NewStartingHashKey")?;
        let key = hash::parse(key_text).ok_or_else(|| {
            error::invalid(format!("NewStartingHashKey {key_text} is not a valid hash key."))
        })?;
        let now = self.now();
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let parent = self.open_shard(tx, &stream, shard_id)?;
            if key <= parent.start_hash || key > parent.end_hash {
                return Err(error::invalid(format!(
                    "NewStartingHashKey {key} used in SplitShard() on shard {shard_id} in stream {} under account {} \
                     is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    stream.name, self.identity.account, parent.start_hash, parent.end_hash
                )));
            }
            if store::open_shard_count(tx)? + 1 > self.shard_limit() {
                return Err(error::limit(format!(
                    "This request would exceed the shard limit for the account {} in {}.",
                    self.identity.account, self.identity.region
                )));
            }
            store::close_shard(tx, &stream.id, parent.index, now)?;
            let first = store::take_shard_indexes(tx, &stream.id, 2)?;
            let ranges = [(parent.start_hash, key - 1), (key, parent.end_hash)];
            for (offset, range) in ranges.into_iter().enumerate() {
                let child = NewShard { index: first + offset as i64, parent: Some(parent.index), adjacent_parent: None, range };
                store::insert_shard(tx, &stream.id, &child, now)?;
            }
            Ok(json!({}))
        })
    }

    pub(crate) fn merge_shards(&self, input: &Value) -> Result<Value> {
        let first_id = req_str(input, "ShardToMerge")?;
        let second_id = req_str(input, "AdjacentShardToMerge")?;
        let now = self.now();
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let first = self.open_shard(tx, &stream, first_id)?;
            let second = self.open_shard(tx, &stream, second_id)?;
            let adjacent = first.end_hash.checked_add(1) == Some(second.start_hash)
                || second.end_hash.checked_add(1) == Some(first.start_hash);
            if !adjacent {
                return Err(error::invalid(format!(
                    "Shards {first_id} and {second_id} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                    stream.name, self.identity.account
                )));
            }
            store::close_shard(tx, &stream.id, first.index, now)?;
            store::close_shard(tx, &stream.id, second.index, now)?;
            let index = store::take_shard_indexes(tx, &stream.id, 1)?;
            let range = (first.start_hash.min(second.start_hash), first.end_hash.max(second.end_hash));
            let child = NewShard { index, parent: Some(first.index), adjacent_parent: Some(second.index), range };
            store::insert_shard(tx, &stream.id, &child, now)?;
            Ok(json!({}))
        })
    }

    /// `UNIFORM_SCALING` to `TargetShardCount` even shards, by splits then merges as AWS does
    /// it (see [`reshard_uniformly`]).
    pub(crate) fn update_shard_count(&self, input: &Value) -> Result<Value> {
        let target = opt_int(input, "TargetShardCount", 1, 100_000)?
            .ok_or_else(|| error::missing("targetShardCount"))?;
        let scaling = req_str(input, "ScalingType")?;
        if scaling != "UNIFORM_SCALING" {
            let constraint = "Member must satisfy enum value set: [UNIFORM_SCALING]";
            return Err(error::validation(scaling, "scalingType", constraint));
        }
        let now = self.now();
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let open: Vec<Shard> = store::shards(tx, &stream.id).map_err(error::db)?.into_iter().filter(Shard::is_open).collect();
            let current = open.len() as i64;
            if target > current * 2 || target * 2 < current {
                return Err(error::invalid(format!(
                    "UpdateShardCount cannot scale to {target} shards from {current}: the target must be between half and double the current open shard count."
                )));
            }
            if store::open_shard_count(tx)? - current + target > self.shard_limit() {
                return Err(error::limit(format!(
                    "This request would exceed the shard limit for the account {} in {}.",
                    self.identity.account, self.identity.region
                )));
            }
            if target != current {
                let mut open = open;
                open.sort_by_key(|s| s.start_hash);
                reshard_uniformly(tx, &stream.id, &open, target as u32, now)?;
            }
            Ok(json!({
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "CurrentShardCount": current,
                "TargetShardCount": target,
            }))
        })
    }

    fn open_shard(
        &self,
        tx: &mut nimbus_store::Tx<'_>,
        stream: &store::Stream,
        shard_id: &str,
    ) -> Result<Shard> {
        let shard = match seq::shard_index(shard_id) {
            Some(index) => store::shard(tx, &stream.id, index).map_err(error::db)?,
            None => None,
        };
        let shard = shard.ok_or_else(|| {
            error::not_found(format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                stream.name, self.identity.account
            ))
        })?;
        if !shard.is_open() {
            return Err(error::in_use(format!(
                "Shard {shard_id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                stream.name, self.identity.account
            )));
        }
        Ok(shard)
    }
}

/// Reaches `target` even shards from `open` (sorted by hash range) by splits and merges, so that
/// every shard has at most two parents and readers that finish parents before children keep
/// each key's order. First each old shard is split at every new boundary inside it (a chain of
/// splits: the right half of one split is split again); then the pieces inside each new range
/// are merged pairwise from the left. Intermediate shards are closed at once, holding no
/// records; an old shard that is already a new range stays open.
fn reshard_uniformly(
    tx: &mut nimbus_store::Tx<'_>,
    stream_id: &str,
    open: &[Shard],
    target: u32,
    now: i64,
) -> Result<()> {
    let ranges = hash::even_ranges(target);
    let add = |tx: &mut nimbus_store::Tx<'_>,
               parent: i64,
               adjacent: Option<i64>,
               range: (u128, u128)|
     -> Result<i64> {
        let index = store::take_shard_indexes(tx, stream_id, 1)?;
        let shard = NewShard { index, parent: Some(parent), adjacent_parent: adjacent, range };
        store::insert_shard(tx, stream_id, &shard, now)?;
        Ok(index)
    };
    // (index, start, end) of the open pieces after the splits.
    let mut pieces: Vec<(i64, u128, u128)> = Vec::new();
    for shard in open {
        let cuts: Vec<u128> =
            ranges.iter().map(|r| r.0).filter(|b| *b > shard.start_hash && *b <= shard.end_hash).collect();
        let (mut current, mut low) = (shard.index, shard.start_hash);
        for cut in cuts {
            store::close_shard(tx, stream_id, current, now)?;
            let left = add(tx, current, None, (low, cut - 1))?;
            pieces.push((left, low, cut - 1));
            current = add(tx, current, None, (cut, shard.end_hash))?;
            low = cut;
        }
        pieces.push((current, low, shard.end_hash));
    }
    for (start, end) in ranges {
        let inside: Vec<(i64, u128, u128)> =
            pieces.iter().copied().filter(|(_, lo, hi)| *lo >= start && *hi <= end).collect();
        let Some(&(mut merged, lo, _)) = inside.first() else { continue };
        for &(next, _, hi) in &inside[1..] {
            store::close_shard(tx, stream_id, merged, now)?;
            store::close_shard(tx, stream_id, next, now)?;
            merged = add(tx, merged, Some(next), (lo, hi))?;
        }
    }
    Ok(())
}

/// `ShardFilter`: which shards a caller starting at a position needs.
fn filtered<'a>(shards: &[&'a Shard], filter: &Value) -> Result<Vec<&'a Shard>> {
    let kind =
        filter.get("Type").and_then(Value::as_str).ok_or_else(|| error::missing("shardFilter.type"))?;
    let listed = |index: Option<i64>| index.is_some_and(|i| shards.iter().any(|s| s.index == i));
    Ok(match kind {
        "AFTER_SHARD_ID" => {
            let id = filter.get("ShardId").and_then(Value::as_str).ok_or_else(|| {
                error::invalid("ShardId must be specified when ShardFilter type is AFTER_SHARD_ID.")
            })?;
            let after = seq::shard_index(id).unwrap_or(-1);
            shards.iter().copied().filter(|s| s.index > after).collect()
        }
        "AT_TRIM_HORIZON" => {
            shards.iter().copied().filter(|s| !listed(s.parent) && !listed(s.adjacent_parent)).collect()
        }
        "FROM_TRIM_HORIZON" => shards.to_vec(),
        "AT_LATEST" => shards.iter().copied().filter(|s| s.is_open()).collect(),
        "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
            let at = opt_time_ms(filter, "Timestamp").ok_or_else(|| {
                error::invalid(format!("Timestamp must be specified when ShardFilter type is {kind}."))
            })?;
            let open_then = |s: &Shard| s.closed_ms.is_none_or(|closed| closed > at);
            let from = kind == "FROM_TIMESTAMP";
            shards
                .iter()
                .copied()
                .filter(|s| open_then(s) && (from || s.created_ms <= at || !listed(s.parent)))
                .collect()
        }
        other => {
            let constraint = "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]";
            return Err(error::validation(other, "shardFilter.type", constraint));
        }
    })
}
