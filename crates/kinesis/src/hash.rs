//! Partition keys to hash keys (MD5 as a 128-bit big-endian integer) and the hash-key ranges of
//! evenly split shards, exactly as AWS computes them: shard i of n covers
//! `[i·2¹²⁸/n, (i+1)·2¹²⁸/n − 1]`.

use md5::{Digest, Md5};

pub fn of_partition_key(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// `floor(i · 2¹²⁸ / n)` for `i ≤ n ≤ 2⁶⁴`, without 129-bit arithmetic.
fn boundary(i: u128, n: u128) -> Option<u128> {
    if i == n {
        return None; // 2¹²⁸
    }
    let (q, r) = (u128::MAX / n, u128::MAX % n); // 2¹²⁸ = q·n + r + 1
    Some(i * q + i * (r + 1) / n)
}

/// The `[start, end]` ranges of `n` shards covering the whole key space.
pub fn even_ranges(n: u32) -> Vec<(u128, u128)> {
    even_ranges_within(0, u128::MAX, n)
}

/// `n` ranges splitting `[start, end]` as AWS splits the whole space (used by
/// `UpdateShardCount`, whose shards always cover it all).
pub fn even_ranges_within(start: u128, end: u128, n: u32) -> Vec<(u128, u128)> {
    let n = u128::from(n.max(1));
    if start == 0 && end == u128::MAX {
        return (0..n)
            .map(|i| {
                let from = boundary(i, n).unwrap_or(u128::MAX);
                let to = boundary(i + 1, n).map_or(u128::MAX, |b| b - 1);
                (from, to)
            })
            .collect();
    }
    let width = end - start;
    (0..n)
        .map(|i| {
            let from = start + width / n * i;
            let to = if i + 1 == n { end } else { start + width / n * (i + 1) - 1 };
            (from, to)
        })
        .collect()
}

/// A hash key as the decimal text the API carries; `None` for anything else.
pub fn parse(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_shards_split_as_aws_does() {
        let ranges = even_ranges(4);
        assert_eq!(ranges[0], (0, 85070591730234615865843651857942052863));
        assert_eq!(ranges[1].0, 85070591730234615865843651857942052864);
        assert_eq!(ranges[3].1, u128::MAX);
        let three = even_ranges(3);
        assert_eq!(three[0].1, 113427455640312821154458202477256070484);
        assert_eq!(three[1].0, 113427455640312821154458202477256070485);
        assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
        for n in 1..50 {
            let ranges = even_ranges(n);
            assert_eq!(ranges.len(), n as usize);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }

    #[test]
    fn partition_keys_hash_with_md5() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(of_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(parse("340282366920938463463374607431768211455"), Some(u128::MAX));
        assert_eq!(parse("340282366920938463463374607431768211456"), None);
        assert_eq!(parse("-1"), None);
    }
}
