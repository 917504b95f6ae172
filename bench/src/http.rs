//! A deliberately small HTTP/1.1 keep-alive client over a blocking `std::net::TcpStream`.
//!
//! The benchmark measures nimbus, not an HTTP stack, so the client does as little as possible:
//! one `write` per request (pre-built bytes), `TCP_NODELAY`, a reusable read buffer, and a
//! parser for exactly what a response can carry (Content-Length, chunked, or read-to-close).
//! Its own cost is measured against an in-process echo server (see [`EchoServer`]) and reported
//! as the "client + loopback floor" next to every latency figure.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The parsed head of an HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<usize>,
    pub chunked: bool,
    /// The server will close the connection after this response.
    pub close: bool,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether a body follows the head (RFC 9112 §6.3, for responses to non-HEAD requests).
    fn has_body(&self) -> bool {
        !(self.status == 204 || self.status == 304 || (100..200).contains(&self.status))
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response is not JSON: {}", self.body_str()))
    }
}

const MAX_HEAD: usize = 64 * 1024;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response head at the start of `buf`.
/// Returns `Ok(None)` while the head is incomplete, else the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>> {
    let Some(pos) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head larger than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..pos]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("bad status line {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        headers: Vec::new(),
        content_length: None,
        chunked: false,
        close: version == "HTTP/1.0",
    };
    for line in lines {
        let (k, v) = line.split_once(':').with_context(|| format!("bad header line {line:?}"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(v.parse().with_context(|| format!("bad Content-Length {v:?}"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        }
        head.headers.push((k.to_string(), v.to_string()));
    }
    Ok(Some((head, pos + 4)))
}

/// Decodes a chunked body at the start of `buf`.
/// Returns `Ok(None)` while incomplete, else the body and the bytes consumed (trailers included).
pub fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).context("chunk size not UTF-8")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).with_context(|| format!("bad chunk size {line:?}"))?;
        pos += eol + 2;
        if size == 0 {
            // Optional trailers, then an empty line.
            loop {
                let Some(eol) = find(&buf[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            bail!("chunk not terminated by CRLF");
        }
        pos += size + 2;
    }
}

/// Builds the bytes of one request, with `Host` and (for a body) `Content-Length`.
pub fn request_bytes(method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A keep-alive connection. Reconnects transparently if the server closed it.
pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    scratch: Box<[u8]>,
    timeout: Duration,
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let mut c = Client {
            addr,
            stream: None,
            buf: Vec::with_capacity(64 * 1024),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            timeout,
        };
        c.reconnect()?;
        Ok(c)
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    fn reconnect(&mut self) -> Result<()> {
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)
            .with_context(|| format!("connect {}", self.addr))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        self.stream = Some(s);
        self.buf.clear();
        Ok(())
    }

    /// Sends pre-built request bytes and reads the whole response.
    pub fn send(&mut self, req: &[u8]) -> Result<Response> {
        if self.stream.is_none() {
            self.reconnect()?;
        }
        let result = self.exchange(req);
        match &result {
            Ok(r) if !r.head.close => {}
            _ => self.stream = None,
        }
        result
    }

    /// Convenience for control-plane calls.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response> {
        let headers: &[(&str, &str)] =
            if body.is_empty() { &[] } else { &[("Content-Type", "application/json")] };
        let req = request_bytes(method, path, &self.host(), headers, body);
        self.send(&req).with_context(|| format!("{method} {path}"))
    }

    fn exchange(&mut self, req: &[u8]) -> Result<Response> {
        let stream = self.stream.as_mut().context("not connected")?;
        stream.write_all(req).context("write request")?;
        let (head, hlen) = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            self.fill(true)?;
        };
        let body = if !head.has_body() {
            self.buf.drain(..hlen);
            Vec::new()
        } else if head.chunked {
            loop {
                if let Some((body, used)) = decode_chunked(&self.buf[hlen..])? {
                    self.buf.drain(..hlen + used);
                    break body;
                }
                self.fill(true)?;
            }
        } else if let Some(n) = head.content_length {
            while self.buf.len() < hlen + n {
                self.fill(true)?;
            }
            let body = self.buf[hlen..hlen + n].to_vec();
            self.buf.drain(..hlen + n);
            body
        } else {
            // Delimited by the server closing the connection.
            while self.fill(false)? > 0 {}
            let body = self.buf[hlen..].to_vec();
            self.buf.clear();
            return Ok(Response { head: Head { close: true, ..head }, body });
        };
        Ok(Response { head, body })
    }

    fn fill(&mut self, eof_is_error: bool) -> Result<usize> {
        let stream = self.stream.as_mut().context("not connected")?;
        let n = loop {
            match stream.read(&mut self.scratch) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.context("read response")?,
            }
        };
        if n == 0 && eof_is_error {
            bail!("connection closed by server mid-response");
        }
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
}

/// A minimal in-process HTTP/1.1 server that answers every request with `200` and the request
/// body, one thread per connection. It gives the floor the client and loopback TCP impose, so
/// that nimbus's own share of a latency figure can be read off honestly.
pub struct EchoServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = serve_echo(conn);
                });
            }
        });
        Ok(EchoServer { addr, stop, accept: Some(accept) })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve_echo(mut conn: TcpStream) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        let end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            let n = conn.read(&mut scratch)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&scratch[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            let n = conn.read(&mut scratch)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&scratch[..n]);
        }
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-amzn-requestid: 00000000-0000-0000-0000-000000000000\r\ncontent-length: {len}\r\n\r\n"
        )
        .into_bytes();
        resp.extend_from_slice(&buf[end..end + len]);
        conn.write_all(&resp)?;
        buf.drain(..end + len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\nX-Amz-Function-Error: Unhandled\r\n\r\n{}";
        let (head, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, Some(2));
        assert!(!head.chunked);
        assert!(!head.close);
        assert_eq!(head.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(&raw[len..], b"{}");
    }

    #[test]
    fn incomplete_head_is_none() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(parse_head(b"").unwrap().is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn connection_semantics() {
        let (h, _) = parse_head(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert!(h.close);
        assert!(!h.has_body());
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(h.close);
        let (h, _) = parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap();
        assert!(!h.close);
        let (h, _) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert!(h.chunked);
    }

    #[test]
    fn decodes_chunked() {
        let raw = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (body, used) = decode_chunked(raw).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&raw[used..], b"NEXT");
        // With trailers.
        let raw = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
        let (body, used) = decode_chunked(raw).unwrap().unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(used, raw.len());
    }

    #[test]
    fn chunked_incomplete_and_bad() {
        let full = b"4\r\nWiki\r\n0\r\n\r\n";
        for cut in 0..full.len() {
            assert!(decode_chunked(&full[..cut]).unwrap().is_none(), "cut {cut}");
        }
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"2\r\nabXY").is_err());
    }

    #[test]
    fn builds_requests() {
        let r = request_bytes("POST", "/x", "h:1", &[("A", "b")], b"{}");
        assert_eq!(r, b"POST /x HTTP/1.1\r\nHost: h:1\r\nA: b\r\nContent-Length: 2\r\n\r\n{}");
        let r = request_bytes("GET", "/y", "h:1", &[], b"");
        assert_eq!(r, b"GET /y HTTP/1.1\r\nHost: h:1\r\n\r\n");
    }

    #[test]
    fn client_round_trips_against_echo_server() {
        let server = EchoServer::start().unwrap();
        let mut c = Client::connect(server.addr, Duration::from_secs(5)).unwrap();
        for i in 0..100 {
            let body = format!("{{\"i\":{i}}}");
            let r = c.request("POST", "/echo", body.as_bytes()).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.body, body.as_bytes());
        }
        // A large body arrives in several reads.
        let big = vec![b'x'; 300_000];
        let r = c.request("POST", "/echo", &big).unwrap();
        assert_eq!(r.body.len(), big.len());
    }
}
