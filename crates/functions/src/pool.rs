//! The environments of one function version (a pool), the budgets a live environment holds,
//! and the reaper that stops environments idle past the keep-alive.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::{lock, Inner};
use crate::environment::Environment;
use crate::FunctionSpec;

/// The environments of one function version at one revision.
pub(crate) struct Pool {
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) idle: Mutex<Vec<Live>>,
    pub(crate) retired: AtomicBool,
    pub(crate) busy: AtomicUsize,
    /// Provisioned concurrency: idle environments the reaper leaves alone.
    pub(crate) keep_warm: AtomicUsize,
}

/// A live environment and the share of the engine's budgets it holds until dropped.
pub(crate) struct Live {
    pub(crate) environment: Environment,
    pub(crate) inner: Arc<Inner>,
}

impl Drop for Live {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.memory_mb.fetch_sub(u64::from(self.environment.spec.memory_mb), Ordering::AcqRel);
        inner.environments.fetch_sub(1, Ordering::AcqRel);
        lock(&inner.live_pids).remove(&self.environment.pid);
        // Environment's own Drop kills the process group and removes its /tmp.
    }
}

impl Pool {
    /// The most recently used idle environment that is still alive.
    pub(crate) fn pop_idle(&self) -> Option<Live> {
        let mut idle = lock(&self.idle);
        while let Some(live) = idle.pop() {
            if !live.environment.has_exited() {
                return Some(live);
            }
        }
        None
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *lock(&self.idle));
        drop(idle);
    }
}

/// Stops environments idle for longer than the keep-alive.
pub(crate) async fn reap_idle(inner: std::sync::Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(inner) => {
            (inner.config.keep_alive / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let keep_alive = inner.config.keep_alive.as_millis() as u64;
        let now = inner.now_ms();
        let pools: Vec<Arc<Pool>> =
            inner.pools.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for pool in pools {
            let expired: Vec<Live> = {
                let mut idle = lock(&pool.idle);
                // Provisioned environments stay however long they idle (the newest ones).
                let mut protected = pool.keep_warm.load(Ordering::Acquire);
                let mut keep = Vec::with_capacity(idle.len());
                let mut expired = Vec::new();
                for live in std::mem::take(&mut *idle).into_iter().rev() {
                    let idle_ms = now.saturating_sub(live.environment.last_used_ms.load(Ordering::Relaxed));
                    if live.environment.has_exited() {
                        expired.push(live);
                    } else if protected > 0 || idle_ms < keep_alive {
                        protected = protected.saturating_sub(1);
                        keep.push(live);
                    } else {
                        expired.push(live);
                    }
                }
                keep.reverse();
                *idle = keep;
                expired
            };
            drop(expired);
        }
    }
}
