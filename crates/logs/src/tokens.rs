//! Pagination tokens. They are opaque to clients but carry a position, not a page number, so a
//! page boundary stays put while events are appended:
//! - `GetLogEvents`: `f/` or `b/` and 56 digits, as AWS's look: a gap between two events of the
//!   stream (timestamp, record offset) and the stream's id. Reading forward from a gap past the
//!   last event finds nothing and hands back the same token, AWS's end-of-stream signal.
//! - `FilterLogEvents`: the merged-order key of the last event returned.
//! - `Describe*`: the sort key of the last item returned.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::store::read::FilterKey;

/// A gap in a stream: just before the event at `(timestamp, offset)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamToken {
    pub forward: bool,
    pub timestamp: i64,
    pub offset: u64,
}

impl StreamToken {
    pub fn encode(&self, stream_id: i64) -> String {
        let direction = if self.forward { 'f' } else { 'b' };
        let timestamp = self.timestamp.max(0);
        let check = stream_id.rem_euclid(1_000_000_000_000_000_000);
        format!("{direction}/{timestamp:019}{:019}{check:018}", self.offset)
    }

    /// The token's position, if it is well formed and was made for this stream.
    pub fn decode(token: &str, stream_id: i64) -> Option<StreamToken> {
        let (direction, digits) = token.split_once('/')?;
        let forward = match direction {
            "f" => true,
            "b" => false,
            _ => return None,
        };
        if digits.len() != 56 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let timestamp = digits[..19].parse().ok()?;
        let offset = digits[19..38].parse().ok()?;
        let check: i64 = digits[38..].parse().ok()?;
        (check == stream_id.rem_euclid(1_000_000_000_000_000_000)).then_some(StreamToken {
            forward,
            timestamp,
            offset,
        })
    }

    pub fn position(&self) -> (i64, u64) {
        (self.timestamp, self.offset)
    }
}

pub fn encode_filter(key: &FilterKey) -> String {
    let text = format!("e1:{}:{}:{}:{}", key.timestamp, key.ingestion, key.stream_id, key.offset);
    URL_SAFE_NO_PAD.encode(text)
}

pub fn decode_filter(token: &str) -> Option<FilterKey> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = text.strip_prefix("e1:")?.split(':');
    let mut next = || parts.next()?.parse::<i64>().ok();
    let key = FilterKey {
        timestamp: next()?,
        ingestion: next()?,
        stream_id: next()?,
        offset: next()?.try_into().ok()?,
    };
    Some(key)
}

/// A token for list pages: the sort key of the last item returned.
pub fn encode_page(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("p1:{key}"))
}

pub fn decode_page(token: &str) -> Option<String> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    text.strip_prefix("p1:").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_tokens_look_like_aws_and_belong_to_one_stream() {
        let token = StreamToken { forward: true, timestamp: 1_700_000_000_123, offset: 42 };
        let text = token.encode(7);
        assert!(text.starts_with("f/"));
        assert_eq!(text.len(), 58);
        assert_eq!(StreamToken::decode(&text, 7), Some(token));
        assert_eq!(StreamToken::decode(&text, 8), None);
        let back = StreamToken { forward: false, ..token };
        assert_eq!(StreamToken::decode(&back.encode(7), 7), Some(back));
        for bad in ["", "f/", "x/00", "f/12", &text.replace('f', "g")] {
            assert_eq!(StreamToken::decode(bad, 7), None, "{bad}");
        }
    }

    #[test]
    fn filter_and_page_tokens_round_trip() {
        let key = FilterKey { timestamp: 5, ingestion: 6, stream_id: 7, offset: 8 };
        assert_eq!(decode_filter(&encode_filter(&key)), Some(key));
        assert_eq!(decode_filter("garbage!"), None);
        assert_eq!(decode_filter(&encode_page("x")), None);
        assert_eq!(decode_page(&encode_page("/aws/lambda/f")).as_deref(), Some("/aws/lambda/f"));
        assert_eq!(decode_page(&encode_filter(&key)), None);
    }
}
