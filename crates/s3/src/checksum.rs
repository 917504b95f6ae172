//! ETags and the flexible checksums (`x-amz-checksum-*`) current SDKs send by default.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};

use crate::error::{S3Error, S3Result};

/// MD5 of the bytes, lowercase hex: a single-part object's ETag (unquoted).
pub fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

pub fn md5_bytes(data: &[u8]) -> Vec<u8> {
    Md5::digest(data).to_vec()
}

/// A multipart object's ETag: MD5 of the parts' binary MD5s, then `-N`.
pub fn multipart_etag(part_etags: &[String]) -> String {
    let mut digest = Md5::new();
    for etag in part_etags {
        digest.update(unhex(etag).unwrap_or_default());
    }
    format!("{}-{}", hex(&digest.finalize()), part_etags.len())
}

/// Checks `Content-MD5` (base64 of the binary digest) when the client sent one.
pub fn verify_content_md5(header: Option<&str>, data: &[u8]) -> S3Result<()> {
    let Some(header) = header else { return Ok(()) };
    let expected = B64.decode(header.trim()).ok().filter(|d| d.len() == 16);
    let Some(expected) = expected else {
        return Err(S3Error::new(400, "InvalidDigest", "The Content-MD5 you specified was invalid."));
    };
    if Md5::digest(data).as_slice() != expected.as_slice() {
        return Err(S3Error::bad_digest("The Content-MD5 you specified did not match what we received."));
    }
    Ok(())
}

/// The checksum algorithms of `x-amz-checksum-<name>` headers and trailers.
pub const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/// A stored checksum: algorithm as AWS spells it (`CRC32`) and its base64 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub value: String,
}

impl Checksum {
    pub fn header_name(&self) -> String {
        format!("x-amz-checksum-{}", self.algorithm.to_ascii_lowercase())
    }
    pub fn encode(&self) -> String {
        format!("{}:{}", self.algorithm, self.value)
    }
    pub fn decode(stored: &str) -> Option<Checksum> {
        let (algorithm, value) = stored.split_once(':')?;
        Some(Checksum { algorithm: algorithm.into(), value: value.into() })
    }
}

/// Computes `algorithm` (lowercase name) over the data; `None` for ones nimbus does not compute
/// (their values are stored as the client sent them).
pub fn compute(algorithm: &str, data: &[u8]) -> Option<String> {
    match algorithm {
        "crc32" => Some(B64.encode(crc32fast::hash(data).to_be_bytes())),
        "crc64nvme" => {
            let mut digest = crc64fast_nvme::Digest::new();
            digest.write(data);
            Some(B64.encode(digest.sum64().to_be_bytes()))
        }
        "sha256" => Some(B64.encode(sha2::Sha256::digest(data))),
        _ => None,
    }
}

/// Verifies a client-supplied checksum and returns it for storing; `BadDigest` on mismatch.
pub fn verify(algorithm: &str, value: &str, data: &[u8]) -> S3Result<Checksum> {
    if let Some(actual) = compute(algorithm, data) {
        if actual != value.trim() {
            let name = algorithm.to_ascii_uppercase();
            return Err(S3Error::bad_digest(format!(
                "The {name} you specified did not match the calculated checksum."
            )));
        }
    }
    Ok(Checksum { algorithm: algorithm.to_ascii_uppercase(), value: value.trim().to_owned() })
}

/// The checksum AWS stores for an object uploaded without one: CRC64NVME.
pub fn default_checksum(data: &[u8]) -> Checksum {
    let value = compute("crc64nvme", data).unwrap_or_default();
    Checksum { algorithm: "CRC64NVME".into(), value }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_matches('"');
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_aws() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        // Two parts "a" and "b": md5(md5("a") ++ md5("b")) with the part count.
        let parts = vec![md5_hex(b"a"), md5_hex(b"b")];
        let etag = multipart_etag(&parts);
        let mut joined = unhex(&parts[0]).unwrap();
        joined.extend(unhex(&parts[1]).unwrap());
        assert_eq!(etag, format!("{}-2", md5_hex(&joined)));
    }

    #[test]
    fn checksums_are_base64_big_endian() {
        // Known values: CRC32("hello") = 0x3610a686, CRC64NVME("hello") from AWS's docs tooling.
        assert_eq!(compute("crc32", b"hello").unwrap(), "NhCmhg==");
        assert_eq!(compute("crc64nvme", b"").unwrap(), "AAAAAAAAAAA=");
        assert!(verify("crc32", "NhCmhg==", b"hello").is_ok());
        assert_eq!(verify("crc32", "AAAAAA==", b"hello").unwrap_err().code, "BadDigest");
        assert!(verify("crc32c", "anything", b"hello").is_ok());
    }

    #[test]
    fn content_md5_is_checked() {
        let good = B64.encode(Md5::digest(b"x"));
        assert!(verify_content_md5(Some(&good), b"x").is_ok());
        assert_eq!(verify_content_md5(Some(&good), b"y").unwrap_err().code, "BadDigest");
        assert_eq!(verify_content_md5(Some("zz"), b"y").unwrap_err().code, "InvalidDigest");
    }
}
