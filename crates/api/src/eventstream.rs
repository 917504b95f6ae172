//! AWS's event-stream framing (`application/vnd.amazon.eventstream`): each message is a
//! prelude (total length, headers length, CRC32 of both), string headers, the payload and a
//! CRC32 of everything before it. Kinesis (`SubscribeToShard`) and Logs (`StartLiveTail`) answer in it.

pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";
/// Header value type 7: a string with a 2-byte length.
const STRING: u8 = 7;

pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.push(name.len() as u8);
        encoded.extend_from_slice(name.as_bytes());
        encoded.push(STRING);
        encoded.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out.extend_from_slice(&encoded);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out
}

/// An event of type `event_type` with a JSON payload.
pub fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    message(
        &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_lengths_and_checksums() {
        let bytes = message(&[(":event-type", "x")], b"{}");
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());
        let headers = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(headers, 1 + 11 + 1 + 2 + 1);
        assert_eq!(u32::from_be_bytes(bytes[8..12].try_into().unwrap()), crc32fast::hash(&bytes[..8]));
        let end = bytes.len() - 4;
        assert_eq!(u32::from_be_bytes(bytes[end..].try_into().unwrap()), crc32fast::hash(&bytes[..end]));
        assert_eq!(&bytes[end - 2..end], b"{}");
    }
}
