//! MD5 (RFC 1321), for the digests SQS returns: `MD5OfMessageBody` over the body's UTF-8 bytes
//! and `MD5OfMessageAttributes` over AWS's documented encoding of the message attributes, which
//! SDKs recompute and compare.

use std::collections::BTreeMap;

use crate::engine::message::AttributeValue;

const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5,
    9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6,
    10, 15, 21, 6, 10, 15, 21,
];

fn k(i: usize) -> u32 {
    ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32
}

/// The MD5 digest of `data` as 32 lowercase hex digits.
pub fn hex(data: &[u8]) -> String {
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut padded = data.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in padded.chunks_exact(64) {
        let m: Vec<u32> =
            block.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let [mut a, mut b, mut c, mut d] = state;
        for (i, shift) in S.iter().enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a.wrapping_add(f).wrapping_add(k(i)).wrapping_add(m[g]).rotate_left(*shift);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d]) {
            *word = word.wrapping_add(add);
        }
    }
    state.iter().flat_map(|w| w.to_le_bytes()).map(|byte| format!("{byte:02x}")).collect()
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `MD5OfMessageAttributes`: attributes sorted by name, each encoded as length-prefixed name,
/// length-prefixed data type, a transport byte (1 string, 2 binary) and the length-prefixed
/// value. `None` when there are no attributes (AWS then omits the member).
pub fn of_attributes(attributes: &BTreeMap<String, AttributeValue>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (name, value) in attributes {
        push_field(&mut out, name.as_bytes());
        push_field(&mut out, value.data_type.as_bytes());
        match &value.binary {
            Some(bytes) => {
                out.push(2);
                push_field(&mut out, bytes);
            }
            None => {
                out.push(1);
                push_field(&mut out, value.string.as_deref().unwrap_or_default().as_bytes());
            }
        }
    }
    Some(hex(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1321_vectors() {
        assert_eq!(hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex(b"message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
        let long = b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(hex(long), "57edf4a22be3c955ac49da2e2107b67a");
        // (Lambda's SQS event samples carry made-up digests: md5("Message Body") is this.)
        assert_eq!(hex(b"Message Body"), "77a3cf88eba293be44f5fd5c61835a43");
    }

    fn string(data_type: &str, value: &str) -> AttributeValue {
        AttributeValue { data_type: data_type.into(), string: Some(value.into()), binary: None }
    }

    fn one(name: &str, value: AttributeValue) -> Option<String> {
        of_attributes(&BTreeMap::from([(name.to_string(), value)]))
    }

    /// Digests that moto's and LocalStack's suites pin as what AWS returns.
    #[test]
    fn attribute_digest_matches_published_vectors() {
        assert_eq!(of_attributes(&BTreeMap::new()), None);
        let vectors = [
            ("timestamp", "1493147359900", "235c5c510d26fb653d073faed50ae77c"),
            ("timestamp", "1493147359901", "994258b45346a2cc3f9cbb611aa7af30"),
            ("SOME_Valid.attribute-Name", "1493147359900", "36655e7e9d7c0e8479fa3f3f42247ae7"),
        ];
        for (name, value, digest) in vectors {
            assert_eq!(one(name, string("Number", value)).as_deref(), Some(digest), "{name}");
        }
    }

    /// Several attributes digest in name order with binary values as transport type 2 (the
    /// expected value is the same algorithm in Python, checked against the vectors above).
    #[test]
    fn attribute_digest_sorts_and_encodes_binary() {
        let mut attributes = BTreeMap::new();
        attributes.insert("n".to_string(), string("Number", "42"));
        attributes.insert(
            "b".to_string(),
            AttributeValue {
                data_type: "Binary".into(),
                string: None,
                binary: Some(b"\x00\x01bin".to_vec()),
            },
        );
        attributes.insert("Attribute1".to_string(), string("String", "AttributeValue1"));
        assert_eq!(of_attributes(&attributes).unwrap(), "20a8bebc6c970cac5b14c18f96270d42");
    }
}
