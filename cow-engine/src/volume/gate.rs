//! Freeze / thaw: flush-and-hold of new writes, with a deadline.
//!
//! The write gate itself is the volume's `RwLock<State>`: every I/O call holds it shared, and taking it
//! exclusively (snapshot creation, freeze) drains the calls in flight. The freeze state lives here:
//! a writer that got the shared gate checks [`Freeze::held_until`]; while a hold is active and its
//! deadline not reached, it releases the gate and waits.
//!
//! The gate's type comes from [`crate::sync`]: parking_lot's `RwLock` normally, loom's under
//! `cfg(loom)`, where cow-engine/tests/loom.rs model-checks the gate-and-epoch protocol (writers
//! shared, snapshot creation exclusive) over the real block maps. The freeze is not modelled.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct FreezeState {
    /// The deadline of the current hold, if writes are held.
    until: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Freeze {
    /// Fast path for writers: false whenever no hold is set. Relaxed suffices: the hold is set
    /// before the freezer takes the gate exclusively, and writers load this after taking the gate
    /// shared, so the gate's lock orders the store before the load.
    set: AtomicBool,
    state: Mutex<FreezeState>,
    thawed: Condvar,
    /// Writes waiting in [`Freeze::wait_thawed`] now (reported by `Volume::held_writes`).
    held: AtomicUsize,
}

impl Freeze {
    /// Starts holding writes until `deadline`. Returns false if a hold is already active.
    pub(crate) fn hold(&self, deadline: Instant) -> bool {
        let mut s = self.state.lock();
        if matches!(s.until, Some(d) if Instant::now() < d) {
            return false;
        }
        s.until = Some(deadline);
        self.set.store(true, Ordering::Relaxed);
        true
    }

    /// Ends the hold. Returns `Some(expired)` if a hold was set (expired = its deadline had passed),
    /// `None` if none was.
    pub(crate) fn release(&self) -> Option<bool> {
        let mut s = self.state.lock();
        let until = s.until.take()?;
        self.set.store(false, Ordering::Relaxed);
        self.thawed.notify_all();
        Some(Instant::now() >= until)
    }

    /// True while a hold is active (deadline not reached).
    pub(crate) fn is_held(&self) -> bool {
        if !self.set.load(Ordering::Relaxed) {
            return false;
        }
        matches!(self.state.lock().until, Some(d) if Instant::now() < d)
    }

    /// Writes waiting for a thaw now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Blocks until no hold is active (thawed or its deadline passed).
    pub(crate) fn wait_thawed(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
        self.wait();
        self.held.fetch_sub(1, Ordering::Relaxed);
    }

    fn wait(&self) {
        let mut s = self.state.lock();
        while let Some(d) = s.until {
            if Instant::now() >= d {
                return;
            }
            self.thawed.wait_until(&mut s, d);
        }
    }
}
