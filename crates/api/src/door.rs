//! The front door's limits: how long a connection may take to deliver a request head, and how
//! many connections may be open at once. Above the cap the connection that has waited longest
//! without a request in flight is closed to make room, so clients that open connections and never
//! finish their headers cannot lock anyone out; requests in flight (long polls, 15-minute
//! invokes) are never cut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the moment a connection is ready for a request (just opened, or its last response
    /// sent) until the request head is complete. It bounds idle keep-alive connections too.
    pub header_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { header_read_timeout: Duration::from_secs(30), max_connections: 4096 }
    }
}

impl Limits {
    /// Leaves half of `open_files` descriptors for everything else nimbus opens (environments'
    /// pipes, the database, object files).
    pub fn fit_open_files(self, open_files: u64) -> Limits {
        let room = usize::try_from(open_files / 2).unwrap_or(usize::MAX).max(64);
        Limits { max_connections: self.max_connections.min(room), ..self }
    }
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the rlimit we own and pass by valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the rlimit we pass by valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// The open connections, for the cap.
pub(crate) struct Gate {
    max: usize,
    started: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    slots: HashMap<u64, Arc<Slot>>,
}

/// One open connection as the gate sees it.
#[derive(Default)]
pub(crate) struct Slot {
    in_flight: AtomicUsize,
    /// Milliseconds after the gate's start when the connection last became idle.
    idle_since: AtomicU64,
    /// Told to close when evicted.
    pub(crate) evicted: Notify,
}

/// A connection's place; gives it back when dropped.
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    pub(crate) slot: Arc<Slot>,
}

/// Marks a request in flight on its connection for as long as it lives.
pub(crate) struct Busy(Arc<Slot>, Arc<Gate>);

impl Gate {
    pub(crate) fn new(max: usize) -> Arc<Gate> {
        Arc::new(Gate { max: max.max(1), started: Instant::now(), open: Mutex::default() })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A place for a new connection: at the cap, the longest-idle connection is evicted for it;
    /// `None` when every open connection has a request in flight.
    pub(crate) fn admit(self: &Arc<Gate>) -> Option<Ticket> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.slots.len() >= self.max {
            let idle = open
                .slots
                .iter()
                .filter(|(_, slot)| slot.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, slot)| slot.idle_since.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(slot) = open.slots.remove(&idle) {
                slot.evicted.notify_one();
            }
        }
        let slot = Arc::new(Slot::default());
        slot.idle_since.store(self.now_ms(), Ordering::Relaxed);
        open.next += 1;
        let id = open.next;
        open.slots.insert(id, slot.clone());
        Some(Ticket { gate: self.clone(), id, slot })
    }

    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open.lock().unwrap().slots.len()
    }
}

impl Ticket {
    pub(crate) fn busy(&self) -> Busy {
        self.slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.slot.clone(), self.gate.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.slots.remove(&self.id);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.1.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let gate = Gate::new(2);
        let first = gate.admit().unwrap();
        let second = gate.admit().unwrap();
        let _request = first.busy();
        let third = gate.admit().expect("the idle second connection is evicted");
        assert_eq!(gate.open(), 2);
        // The evicted connection was told (a stored permit: it need not be waiting yet).
        {
            let notified = second.slot.evicted.notified();
            tokio::pin!(notified);
            assert!(notified.as_mut().enable(), "eviction is signalled");
        }
        drop(second);
        assert_eq!(gate.open(), 2, "an evicted ticket's drop frees nothing twice");
        let _busy_third = third.busy();
        assert!(gate.admit().is_none(), "every connection has a request in flight: refuse");
        drop(_request);
        assert!(gate.admit().is_some(), "a finished request makes its connection evictable");
    }

    #[test]
    fn the_cap_leaves_half_the_descriptors() {
        assert_eq!(Limits::default().fit_open_files(1024).max_connections, 512);
        assert_eq!(Limits::default().fit_open_files(1 << 20).max_connections, 4096);
    }
}
