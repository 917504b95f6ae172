//! A log-linear histogram of durations in microseconds: 16 buckets per power of two, so any
//! percentile is within ~3% of the true value, in 2 KiB dense (the minute being recorded) or a
//! few bytes per hit bucket packed (a sealed minute).

/// Buckets per power of two (`2^SUB_BITS`).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values of `2^MAX_EXP` µs (~9.5 h) and more share the last bucket.
const MAX_EXP: u32 = 35;
pub const BUCKETS: usize = (MAX_EXP as usize - SUB_BITS as usize + 1) * SUB + 1;

/// Sealed form: for each bucket that was hit, in index order, the index's distance from the
/// previous one and the count, both as LEB128 varints (2–4 bytes a bucket, typically).
pub type Packed = Box<[u8]>;

/// The bucket a value falls in. Values below 16 µs have a bucket each.
pub fn index(value_us: u64) -> usize {
    if value_us < SUB as u64 {
        return value_us as usize;
    }
    if value_us >= 1 << MAX_EXP {
        return BUCKETS - 1;
    }
    let exp = 63 - value_us.leading_zeros();
    let sub = ((value_us >> (exp - SUB_BITS)) as usize) - SUB;
    (exp - SUB_BITS + 1) as usize * SUB + sub
}

/// The smallest value of bucket `index`.
pub fn lower(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index / SUB) as u32 + SUB_BITS - 1;
    let sub = (index % SUB) as u64;
    (SUB as u64 + sub) << (exp - SUB_BITS)
}

/// Counts per bucket, dense: cheap to add to and to merge into.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u32]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice() }
    }
}

impl Histogram {
    pub fn record(&mut self, value_us: u64) {
        let slot = &mut self.counts[index(value_us)];
        *slot = slot.saturating_add(1);
    }

    pub fn clear(&mut self) {
        self.counts.fill(0);
    }

    pub fn merge_packed(&mut self, packed: &[u8]) {
        for (index, count) in unpack(packed) {
            if let Some(slot) = self.counts.get_mut(index) {
                *slot = slot.saturating_add(count);
            }
        }
    }

    pub fn pack(&self) -> Packed {
        let mut packed = Vec::new();
        let mut previous = 0;
        for (index, &count) in self.counts.iter().enumerate().filter(|(_, &count)| count > 0) {
            put_varint(&mut packed, (index - previous) as u32);
            put_varint(&mut packed, count);
            previous = index;
        }
        packed.into_boxed_slice()
    }

    /// The `p`th percentile (0–100) in µs by nearest rank: the exact `min` or `max` at either
    /// end, else interpolated inside its bucket. `None` when nothing was recorded.
    pub fn percentile(&self, p: f64, min_us: u64, max_us: u64) -> Option<f64> {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        if rank == 1 {
            return Some(min_us as f64);
        }
        if rank == total {
            return Some(max_us as f64);
        }
        let mut before = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            let count = u64::from(count);
            if before + count >= rank {
                let (low, high) = (lower(index) as f64, lower(index + 1) as f64);
                let width = if index < SUB { 0.0 } else { high - low };
                let within = ((rank - before) as f64 - 0.5) / count as f64;
                let value = low + width * within;
                return Some(value.clamp(min_us as f64, max_us as f64));
            }
            before += count;
        }
        Some(max_us as f64)
    }
}

/// The `(index, count)` pairs of a packed histogram; stops at the first malformed byte.
pub fn unpack(packed: &[u8]) -> impl Iterator<Item = (usize, u32)> + '_ {
    let mut rest = packed;
    let mut index = 0usize;
    std::iter::from_fn(move || {
        let delta = take_varint(&mut rest)?;
        let count = take_varint(&mut rest)?;
        index += delta as usize;
        Some((index, count))
    })
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_the_bucket_whose_bounds_hold_it() {
        for value in (0..5000).chain([65_535, 1_000_000, 900_000_000, (1 << 35) - 1]) {
            let i = index(value);
            assert!(lower(i) <= value && value < lower(i + 1), "{value} in bucket {i}");
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(index(1 << 35), BUCKETS - 1);
        assert!(index((1 << 35) - 1) < BUCKETS - 1);
        assert_eq!(lower(BUCKETS - 1), 1 << 35);
    }

    #[test]
    fn buckets_are_at_most_one_sixteenth_of_their_value_wide() {
        for i in SUB..BUCKETS - 1 {
            let (low, high) = (lower(i), lower(i + 1));
            assert!(high > low);
            assert!((high - low) as f64 / low as f64 <= 1.0 / 16.0 + 1e-9, "bucket {i}");
        }
    }

    #[test]
    fn percentiles_are_within_a_few_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(ms * 1000);
        }
        let p50 = h.percentile(50.0, 1000, 1_000_000).unwrap();
        let p99 = h.percentile(99.0, 1000, 1_000_000).unwrap();
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.04, "{p99}");
        assert_eq!(h.percentile(100.0, 1000, 1_000_000), Some(1_000_000.0));
        assert_eq!(h.percentile(0.0, 1000, 1_000_000), Some(1000.0));
    }

    #[test]
    fn one_sample_is_reported_exactly_thanks_to_min_and_max() {
        let mut h = Histogram::default();
        h.record(123_456);
        assert_eq!(h.percentile(50.0, 123_456, 123_456), Some(123_456.0));
        assert_eq!(Histogram::default().percentile(50.0, 0, 0), None);
    }

    #[test]
    fn packed_round_trip_keeps_counts() {
        let mut h = Histogram::default();
        for v in [5, 5, 700, 700, 700, 90_000] {
            h.record(v);
        }
        for _ in 0..300 {
            h.record(1 << 40);
        }
        let packed = h.pack();
        assert_eq!(packed.len(), 2 + 2 + 2 + 4, "{packed:?}");
        let mut back = Histogram::default();
        back.merge_packed(&packed);
        back.merge_packed(&packed);
        let counts: Vec<_> = unpack(&back.pack()).collect();
        assert_eq!(counts, vec![(5, 4), (index(700), 6), (index(90_000), 2), (BUCKETS - 1, 600)]);
        assert!(unpack(&[]).next().is_none());
        assert_eq!(unpack(&[0x80]).count(), 0, "a truncated varint ends the histogram");
    }
}
