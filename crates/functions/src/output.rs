//! An environment's stdout and stderr: read continuously (a runtime must never block on a full
//! pipe), sent line by line to the function's log stream, captured per invocation when the caller
//! asked for the log tail, and optionally echoed to nimbus's own stderr with the function's name.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::unix::pipe;
use tokio::sync::Notify;

use crate::telemetry::{LogEvent, LogSink};

/// Where an environment's lines go: its log group and stream.
pub struct LogTarget {
    pub sink: Arc<dyn LogSink>,
    pub group: String,
    pub stream: String,
}

pub struct Output {
    capture: Mutex<Option<Vec<u8>>>,
    bytes_read: AtomicU64,
    /// Readers between taking bytes out of a pipe and having handled them.
    busy: AtomicUsize,
    progress: Notify,
    /// Duplicates of the pipes' read ends, only to ask the kernel how much is still unread.
    pipes: Vec<OwnedFd>,
    label: String,
    echo: bool,
    log: Option<LogTarget>,
}

impl Output {
    /// Starts one reader task per stream. `capture` starts capturing at once, before the first
    /// byte can be read.
    pub fn watch(
        label: String,
        echo: bool,
        capture: bool,
        log: Option<LogTarget>,
        streams: Vec<pipe::Receiver>,
    ) -> Arc<Output> {
        // Duplicates of the read ends tell how much output is still unread (see `settle`).
        let pipes = streams.iter().filter_map(|s| s.as_fd().try_clone_to_owned().ok()).collect();
        let output = Arc::new(Output {
            capture: Mutex::new(capture.then(Vec::new)),
            bytes_read: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            progress: Notify::new(),
            pipes,
            label,
            echo,
            log,
        });
        for stream in streams {
            let output = output.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                // A line split across reads waits here for its end.
                let mut partial = Vec::new();
                while stream.readable().await.is_ok() {
                    // Marked busy before the bytes leave the pipe, until they are handled: an
                    // empty pipe and no busy reader mean everything written is handled.
                    output.busy.fetch_add(1, Ordering::SeqCst);
                    let read = stream.try_read(&mut buffer);
                    if let Ok(n) = read {
                        if n > 0 {
                            output.take_in(&buffer[..n], &mut partial);
                        }
                    }
                    output.busy.fetch_sub(1, Ordering::SeqCst);
                    output.progress.notify_waiters();
                    match read {
                        Ok(0) => break,
                        Err(error) if error.kind() != std::io::ErrorKind::WouldBlock => break,
                        _ => {}
                    }
                }
                if !partial.is_empty() {
                    output.log_lines(&[&partial]);
                }
            });
        }
        output
    }

    fn take_in(&self, chunk: &[u8], partial: &mut Vec<u8>) {
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
        if self.log.is_some() {
            partial.extend_from_slice(chunk);
            if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = partial.drain(..=end).collect();
                let lines: Vec<&[u8]> = complete[..complete.len() - 1].split(|b| *b == b'\n').collect();
                self.log_lines(&lines);
            }
        }
        self.bytes_read.fetch_add(chunk.len() as u64, Ordering::Release);
        self.progress.notify_waiters();
    }

    fn log_lines(&self, lines: &[&[u8]]) {
        let Some(log) = &self.log else { return };
        let timestamp_ms = now_ms();
        let events = lines
            .iter()
            .map(|line| LogEvent { timestamp_ms, message: String::from_utf8_lossy(line).into_owned() })
            .collect();
        log.sink.append(&log.group, &log.stream, events);
    }

    /// Sends one of Lambda's own lines (START, END, REPORT …) to the log stream.
    pub fn log_platform_line(&self, line: &str) {
        self.log_lines(&[line.trim_end_matches('\n').as_bytes()]);
    }

    pub fn logs_enabled(&self) -> bool {
        self.log.is_some()
    }

    /// Begins capturing everything the runtime writes, for a `LogType: Tail` invocation;
    /// continues a capture already running (the initialisation of a cold start).
    pub fn start_capture(&self, first_line: &str) {
        let mut capture = self.capture.lock().unwrap_or_else(|p| p.into_inner());
        capture.get_or_insert_with(Vec::new).extend_from_slice(first_line.as_bytes());
    }

    /// Waits until every byte the runtime wrote before now has been handled, so that output
    /// flushed before a response comes before the END line and lands in the tail.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            let notified = self.progress.notified();
            // The pipes first, then the readers: bytes gone from a pipe belong to a busy reader.
            let unread: u64 = self.pipes.iter().map(unread_bytes).sum();
            if unread == 0 && self.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ends the capture (after [`Output::settle`]) and returns it.
    pub async fn finish_capture(&self) -> String {
        self.settle().await;
        let captured = self.capture.lock().unwrap_or_else(|p| p.into_inner()).take();
        String::from_utf8_lossy(&captured.unwrap_or_default()).into_owned()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
