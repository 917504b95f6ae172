//! An upload's bytes as the client meant them: `aws-chunked` streaming bodies decoded (signed or
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER`), and the integrity headers and trailers verified.

use bytes::Bytes;
use nimbus_api::ApiRequest;
use sha2::Digest;

use crate::checksum::{self, Checksum, ALGORITHMS};
use crate::error::{S3Error, S3Result};

/// The decoded body and the checksum to store with it, if the client sent one.
pub struct Payload {
    pub data: Bytes,
    pub checksum: Option<Checksum>,
}

pub fn read(request: &ApiRequest) -> S3Result<Payload> {
    let sha = request.header("x-amz-content-sha256").unwrap_or("");
    let chunked = sha.starts_with("STREAMING-")
        || request
            .header("content-encoding")
            .is_some_and(|e| e.split(',').any(|p| p.trim() == "aws-chunked"));
    let (data, trailers) = if chunked {
        let (data, trailers) = decode_chunked(&request.body)?;
        (Bytes::from(data), trailers)
    } else {
        (request.body.clone(), Vec::new())
    };
    if let Some(declared) = request.header("x-amz-decoded-content-length") {
        if declared.trim().parse::<usize>().ok() != Some(data.len()) {
            let message =
                "You did not provide the number of bytes specified by the Content-Length HTTP header.";
            return Err(S3Error::new(400, "IncompleteBody", message));
        }
    }
    if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        let actual: String = sha2::Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        if !actual.eq_ignore_ascii_case(sha) {
            let message = "The provided 'x-amz-content-sha256' header does not match what was computed.";
            return Err(S3Error::new(400, "XAmzContentSHA256Mismatch", message));
        }
    }
    checksum::verify_content_md5(request.header("content-md5"), &data)?;
    let mut found = None;
    for algorithm in ALGORITHMS {
        let name = format!("x-amz-checksum-{algorithm}");
        let value = request
            .header(&name)
            .map(str::to_owned)
            .or_else(|| trailers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| v.clone()));
        if let Some(value) = value {
            found = Some(checksum::verify(algorithm, &value, &data)?);
            break;
        }
    }
    Ok(Payload { data, checksum: found })
}

/// Trailer headers of an aws-chunked body (lowercase names).
pub type Trailers = Vec<(String, String)>;

/// Decodes `size[;chunk-signature=…]\r\n data \r\n … 0\r\n trailer: value\r\n \r\n`.
pub fn decode_chunked(body: &[u8]) -> S3Result<(Vec<u8>, Trailers)> {
    let incomplete =
        || S3Error::new(400, "IncompleteBody", "The request body is not valid aws-chunked encoding.");
    let mut data = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = find_crlf(rest).ok_or_else(incomplete)?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| incomplete())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| incomplete())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        if rest.len() < size {
            return Err(incomplete());
        }
        data.extend_from_slice(&rest[..size]);
        rest = rest[size..].strip_prefix(b"\r\n").ok_or_else(incomplete)?;
    }
    let mut trailers = Vec::new();
    for line in String::from_utf8_lossy(rest).split("\r\n").flat_map(|l| l.split('\n')) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name != "x-amz-trailer-signature" {
                trailers.push((name, value.trim().to_owned()));
            }
        }
    }
    Ok((data, trailers))
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_unsigned_trailer_uploads() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        let (data, trailers) = decode_chunked(body).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(trailers, vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]);
    }

    #[test]
    fn decodes_signed_chunks_and_drops_the_trailer_signature() {
        let body =
            b"3;chunk-signature=abc\r\nabc\r\n0;chunk-signature=def\r\nx-amz-trailer-signature:00\r\n\r\n";
        let (data, trailers) = decode_chunked(body).unwrap();
        assert_eq!(data, b"abc");
        assert!(trailers.is_empty());
    }

    #[test]
    fn truncated_bodies_are_incomplete() {
        assert_eq!(decode_chunked(b"a\r\nhello").unwrap_err().code, "IncompleteBody");
        assert_eq!(decode_chunked(b"zz\r\n").unwrap_err().code, "IncompleteBody");
    }
}
