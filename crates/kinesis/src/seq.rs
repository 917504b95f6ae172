//! Sequence numbers: 56 decimal digits like AWS's, `49` + the shard's index (12 digits) + the
//! record's position in its shard (42 digits). Every one has the same length, so they compare as
//! numbers and as text alike; a child shard's numbers are above its parents'.

pub fn format(shard_index: i64, position: i64) -> String {
    format!("49{shard_index:012}{position:042}")
}

/// `(shard index, position)` of a sequence number nimbus handed out.
pub fn parse(text: &str) -> Option<(i64, i64)> {
    if text.len() != 56 || !text.starts_with("49") || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = text[2..14].parse().ok()?;
    let position = text[14..].parse::<u128>().ok()?;
    Some((index, i64::try_from(position).ok()?))
}

pub fn shard_id(index: i64) -> String {
    format!("shardId-{index:012}")
}

pub fn shard_index(shard_id: &str) -> Option<i64> {
    let digits = shard_id.strip_prefix("shardId-")?;
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let a = format(3, 9);
        assert_eq!(a.len(), 56);
        assert_eq!(parse(&a), Some((3, 9)));
        assert!(format(3, 10) > a);
        assert!(format(4, 1) > format(3, 1_000_000));
        assert_eq!(parse("12"), None);
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(shard_index("shardId-000000000007"), Some(7));
        assert_eq!(shard_index("shard-7"), None);
    }
}
