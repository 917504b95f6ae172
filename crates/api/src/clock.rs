//! Wall-clock time in milliseconds, behind a trait so that retention, visibility timeouts and
//! delays can be tested without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Changes whenever the clock jumps (a virtual clock moved forward), so that whoever sleeps
    /// until a time on it wakes up to look again. None for clocks that only tick.
    fn jumps(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }
}

/// A sweeper's pause: `period`, or less when the clock jumps first (see [`Clock::jumps`]).
/// False once the clock is gone: the sweeper stops.
pub async fn pause(
    jumps: &mut Option<tokio::sync::watch::Receiver<i64>>,
    period: std::time::Duration,
) -> bool {
    match jumps.as_mut() {
        Some(jumps) => tokio::select! {
            _ = tokio::time::sleep(period) => true,
            changed = jumps.changed() => changed.is_ok(),
        },
        None => {
            tokio::time::sleep(period).await;
            true
        }
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Real time plus an offset that only grows: nimbus's `--clock virtual`, which a test moves
/// forward an hour at a time instead of waiting one. Time still passes between jumps.
#[derive(Debug)]
pub struct VirtualClock {
    offset_ms: AtomicI64,
    jumped: tokio::sync::watch::Sender<i64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock { offset_ms: AtomicI64::new(0), jumped: tokio::sync::watch::Sender::new(0) }
    }
}

impl VirtualClock {
    /// Moves the clock forward (never back) and wakes its sleepers; returns the new time.
    pub fn advance_ms(&self, ms: i64) -> i64 {
        let offset = self.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst) + ms.max(0);
        self.jumped.send_replace(offset);
        self.now_ms()
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }

    fn jumps(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        Some(self.jumped.subscribe())
    }
}

/// Sleeps until `clock` reads `at_ms` or later, waking early when it jumps.
pub async fn sleep_until(clock: &dyn Clock, at_ms: i64) {
    let mut jumps = clock.jumps();
    loop {
        let wait = at_ms - clock.now_ms();
        if wait <= 0 {
            return;
        }
        let sleep = tokio::time::sleep(std::time::Duration::from_millis(wait as u64));
        match &mut jumps {
            None => sleep.await,
            Some(jumps) => {
                tokio::select! {
                    _ = sleep => {}
                    changed = jumps.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
