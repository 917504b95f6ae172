//! `Range: bytes=…` as S3 reads it: one range; a malformed header or several ranges are ignored
//! (the whole object is returned), an unsatisfiable one is `InvalidRange` (416).

use crate::error::{S3Error, S3Result};

/// Inclusive byte range within an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }
}

/// `Ok(None)`: serve the whole object.
pub fn parse(header: Option<&str>, size: u64) -> S3Result<Option<ByteRange>> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if end < start => return Ok(None),
        (Ok(start), Ok(end)) => (start < size).then(|| ByteRange { start, end: end.min(size - 1) }),
        (Ok(start), Err(_)) if last.is_empty() => (start < size).then(|| ByteRange { start, end: size - 1 }),
        (Err(_), Ok(suffix)) if first.is_empty() => match (suffix, size) {
            (0, _) | (_, 0) => None,
            _ => Some(ByteRange { start: size.saturating_sub(suffix), end: size - 1 }),
        },
        _ => return Ok(None),
    };
    match range {
        Some(range) => Ok(Some(range)),
        None => Err(S3Error::new(416, "InvalidRange", "The requested range is not satisfiable")
            .with("RangeRequested", spec_header(spec))
            .with("ActualObjectSize", size.to_string())),
    }
}

fn spec_header(spec: &str) -> String {
    format!("bytes={spec}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Option<ByteRange> {
        Some(ByteRange { start, end })
    }

    #[test]
    fn parses_every_single_range_form() {
        assert_eq!(parse(Some("bytes=0-4"), 10).unwrap(), r(0, 4));
        assert_eq!(parse(Some("bytes=5-"), 10).unwrap(), r(5, 9));
        assert_eq!(parse(Some("bytes=-3"), 10).unwrap(), r(7, 9));
        assert_eq!(parse(Some("bytes=-30"), 10).unwrap(), r(0, 9));
        assert_eq!(parse(Some("bytes=8-100"), 10).unwrap(), r(8, 9));
        assert_eq!(r(8, 9).unwrap().content_range(10), "bytes 8-9/10");
    }

    #[test]
    fn malformed_or_multiple_ranges_mean_the_whole_object() {
        assert_eq!(parse(None, 10).unwrap(), None);
        assert_eq!(parse(Some("items=0-1"), 10).unwrap(), None);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10).unwrap(), None);
        assert_eq!(parse(Some("bytes=5-2"), 10).unwrap(), None);
        assert_eq!(parse(Some("bytes=x-y"), 10).unwrap(), None);
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        let error = parse(Some("bytes=10-20"), 10).unwrap_err();
        assert_eq!((error.status, error.code), (416, "InvalidRange"));
        assert_eq!(parse(Some("bytes=0-0"), 0).unwrap_err().code, "InvalidRange");
        assert_eq!(parse(Some("bytes=-0"), 10).unwrap_err().code, "InvalidRange");
    }
}
