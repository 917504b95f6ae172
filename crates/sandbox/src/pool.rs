//! Things that are slow to make (scratch volumes, networks) made ahead: a few kept ready per
//! kind, taken at once when an environment starts, refilled in the background.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Makes and unmakes one kind of pooled item. Both are blocking.
pub trait Maker: Send + Sync + 'static {
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
    type Item: Send + 'static;
    fn make(&self, key: &Self::Key) -> io::Result<Self::Item>;
    fn unmake(&self, item: Self::Item);
}

pub struct Pool<M: Maker> {
    pub maker: M,
    per_key: usize,
    /// How long a refill waits while the reserve still holds an item: long enough for the
    /// environment that took one to start without competing for the CPU. An empty reserve (a
    /// burst) is refilled at once.
    delay: Duration,
    ready: Mutex<HashMap<M::Key, Vec<M::Item>>>,
    /// Set by `close`: nothing new is made; `refilling` counts the refills still running, whose
    /// work must not outlive nimbus nor land after the clean-up.
    closing: AtomicBool,
    refilling: AtomicUsize,
}

impl<M: Maker> Pool<M> {
    pub fn new(maker: M, per_key: usize, delay: Duration) -> Pool<M> {
        Pool {
            maker,
            per_key,
            delay,
            ready: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            refilling: AtomicUsize::new(0),
        }
    }

    /// A ready item of `key`, or one made now; either way the pool refills behind it.
    pub fn take(self: &Arc<Self>, key: &M::Key) -> io::Result<M::Item> {
        let (ready, left) = {
            let mut ready = self.lock();
            let reserve = ready.get_mut(key);
            let item = reserve.and_then(Vec::pop);
            (item, ready.get(key).map_or(0, Vec::len))
        };
        let item = match ready {
            Some(item) => item,
            None => self.maker.make(key)?,
        };
        self.refill_behind(key.clone(), if left > 0 { self.delay } else { Duration::ZERO });
        Ok(item)
    }

    fn refill_behind(self: &Arc<Self>, key: M::Key, delay: Duration) {
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        let pool = self.clone();
        pool.refilling.fetch_add(1, Ordering::AcqRel);
        std::thread::spawn(move || {
            // Made ahead in idle time: the refill (and the mkfs or slirp it starts, which inherit
            // it) must not take CPU from the cold start that took the last ready item.
            // SAFETY: setpriority on this thread's own id; failure leaves the priority as it was.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
            std::thread::sleep(delay);
            pool.refill(&key);
            pool.refilling.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn refill(&self, key: &M::Key) {
        while !self.closing.load(Ordering::Acquire) {
            let have = self.lock().get(key).map_or(0, Vec::len);
            if have >= self.per_key {
                return;
            }
            let Ok(item) = self.maker.make(key) else { return };
            if self.closing.load(Ordering::Acquire) {
                self.maker.unmake(item);
                return;
            }
            self.lock().entry(key.clone()).or_default().push(item);
        }
    }

    /// Stops refilling, waits (briefly) for running refills, and unmakes every ready item.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.refilling.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let ready = std::mem::take(&mut *self.lock());
        ready.into_values().flatten().for_each(|item| self.maker.unmake(item));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<M::Key, Vec<M::Item>>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(AtomicUsize, AtomicUsize);

    impl Maker for Counter {
        type Key = u8;
        type Item = usize;
        fn make(&self, _: &u8) -> io::Result<usize> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst))
        }
        fn unmake(&self, _: usize) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn takes_refill_and_close_unmakes_the_reserve() {
        let pool = Arc::new(Pool::new(Counter(AtomicUsize::new(0), AtomicUsize::new(0)), 2, Duration::ZERO));
        assert_eq!(pool.take(&1).unwrap(), 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pool.lock().get(&1).map_or(0, Vec::len) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The next take is served from the reserve, made ahead.
        assert_eq!(pool.take(&1).unwrap(), 2);
        pool.close();
        let made = pool.maker.0.load(Ordering::SeqCst);
        // Everything made and not taken was unmade: the two taken items are the caller's.
        assert_eq!(pool.maker.1.load(Ordering::SeqCst), made - 2);
        assert!(pool.lock().is_empty());
    }
}
