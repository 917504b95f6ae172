//! Content digests (`sha256:<64 lowercase hex>`), the names of every blob.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The hex part of a well-formed sha256 digest; other algorithms and malformed digests are
/// refused with the reason.
pub fn check(digest: &str) -> Result<&str, String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("invalid digest {digest:?}: expected algorithm:hex"));
    };
    if algorithm != "sha256" {
        return Err(format!("unsupported digest algorithm {algorithm:?}: nimbus stores sha256 only"));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("invalid digest {digest:?}: expected 64 lowercase hex digits"));
    }
    Ok(hex)
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    pub written: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing { inner, hasher: Sha256::new(), written: 0 }
    }

    pub fn finish(self) -> (W, String) {
        (self.inner, format!("sha256:{:x}", self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The digest of everything `reader` yields.
pub fn of_reader(reader: &mut impl Read) -> io::Result<(String, u64)> {
    let mut hashing = Hashing::new(io::sink());
    let size = io::copy(reader, &mut hashing)?;
    Ok((hashing.finish().1, size))
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_and_checks() {
        let d = super::of(b"");
        assert_eq!(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert!(super::check(&d).is_ok());
        assert!(super::check("sha512:ab").unwrap_err().contains("sha256 only"));
        assert!(super::check("sha256:ABC").is_err());
        assert!(super::check("nothing").is_err());
    }
}
