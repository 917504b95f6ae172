//! zstd-compressed layers (`application/vnd.oci.image.layer.v1.tar+zstd`), decoded in pure Rust
//! by ruzstd: one frame after another (zstd:chunked and eStargz-style layers are many frames),
//! skippable frames skipped.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

const SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;

pub struct Frames<R: BufRead> {
    current: Option<StreamingDecoder<R, FrameDecoder>>,
    rest: Option<R>,
}

impl<R: BufRead> Frames<R> {
    pub fn new(reader: R) -> Self {
        Frames { current: None, rest: Some(reader) }
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {error}"))
}

impl<R: BufRead> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(decoder) = &mut self.current {
                let n = decoder.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.rest = self.current.take().map(StreamingDecoder::into_inner);
            }
            let Some(mut reader) = self.rest.take() else { return Ok(0) };
            let head = reader.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            if head.len() >= 8 {
                let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
                if SKIPPABLE.contains(&magic) {
                    let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                    reader.consume(8);
                    io::copy(&mut (&mut reader).take(u64::from(length)), &mut io::sink())?;
                    self.rest = Some(reader);
                    continue;
                }
            }
            self.current = Some(StreamingDecoder::new(reader).map_err(invalid)?);
        }
    }
}
