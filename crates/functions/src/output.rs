//! An environment's stdout and stderr: read continuously (a runtime must never block on a full
//! pipe), captured per invocation when the caller asked for the log tail, otherwise echoed to
//! nimbus's own stderr with the function's name.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

pub struct Output {
    capture: Mutex<Option<Vec<u8>>>,
    bytes_read: AtomicU64,
    progress: Notify,
    /// Duplicates of the pipes' read ends, only to ask the kernel how much is still unread.
    pipes: Vec<OwnedFd>,
    label: String,
    echo: bool,
}

impl Output {
    /// Starts one reader task per stream.
    /// `capture` starts capturing at once, before the first byte can be read.
    pub fn watch(
        label: String,
        echo: bool,
        capture: bool,
        mut streams: Vec<(Box<dyn AsyncRead + Send + Unpin>, Option<OwnedFd>)>,
    ) -> Arc<Output> {
        let pipes = streams.iter_mut().filter_map(|(_, fd)| fd.take()).collect();
        let output = Arc::new(Output {
            capture: Mutex::new(capture.then(Vec::new)),
            bytes_read: AtomicU64::new(0),
            progress: Notify::new(),
            pipes,
            label,
            echo,
        });
        for (mut stream, _) in streams {
            let output = output.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    output.take_in(&buffer[..n]);
                }
            });
        }
        output
    }

    fn take_in(&self, chunk: &[u8]) {
        {
            let mut capture = self.capture.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(captured) = capture.as_mut() {
                captured.extend_from_slice(chunk);
            }
        }
        if self.echo {
            let mut text = Vec::with_capacity(chunk.len() + 32);
            for line in chunk.split_inclusive(|b| *b == b'\n') {
                text.extend_from_slice(self.label.as_bytes());
                text.extend_from_slice(line);
            }
            if !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            let _ = std::io::stderr().write_all(&text);
        }
        self.bytes_read.fetch_add(chunk.len() as u64, Ordering::Release);
        self.progress.notify_waiters();
    }

    /// Begins capturing everything the runtime writes, for a `LogType: Tail` invocation;
    /// continues a capture already running (the initialisation of a cold start).
    pub fn start_capture(&self, first_line: &str) {
        let mut capture = self.capture.lock().unwrap_or_else(|p| p.into_inner());
        capture.get_or_insert_with(Vec::new).extend_from_slice(first_line.as_bytes());
    }

    /// Ends the capture once every byte the runtime wrote before now has been read, so that
    /// output flushed before the response is in the tail.
    pub async fn finish_capture(&self) -> String {
        let unread: u64 = self.pipes.iter().map(unread_bytes).sum();
        let target = self.bytes_read.load(Ordering::Acquire) + unread;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while self.bytes_read.load(Ordering::Acquire) < target {
            let notified = self.progress.notified();
            if self.bytes_read.load(Ordering::Acquire) >= target {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let captured = self.capture.lock().unwrap_or_else(|p| p.into_inner()).take();
        String::from_utf8_lossy(&captured.unwrap_or_default()).into_owned()
    }
}

/// Bytes waiting in a pipe (`FIONREAD`).
fn unread_bytes(fd: &OwnedFd) -> u64 {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at a live local; the
    // descriptor is owned by us and stays open for the duration of the call.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) };
    if result < 0 {
        0
    } else {
        count.max(0) as u64
    }
}
