//! Atomics, parking and the volume's write gate, from `std` / `parking_lot(_core)` normally and from
//! `loom` under `cfg(loom)`, so the block map's entry protocol and the gate can be model-checked
//! unchanged (cow-engine/tests/loom.rs).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

/// The volume's write gate (`RwLock<State>`): parking_lot's lock normally, [`loom_rwlock::RwLock`] (loom's
/// lock behind parking_lot's calls) under loom.
#[cfg(loom)]
pub use loom_rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(loom))]
pub(crate) use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Loom's `RwLock` with the subset of parking_lot's API the volume calls (no poisoning results).
#[cfg(loom)]
mod loom_rwlock {
    use std::sync::PoisonError;

    pub use loom::sync::{RwLockReadGuard, RwLockWriteGuard};

    /// A reader-writer lock loom model-checks.
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        /// A new unlocked lock holding `value`.
        pub fn new(value: T) -> Self {
            RwLock(loom::sync::RwLock::new(value))
        }

        /// Takes the lock shared.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        /// Takes the lock exclusively.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }

        /// Loom has no clock: takes the lock exclusively, without a deadline (only freeze calls
        /// this, and freeze is not modelled).
        pub fn try_write_until(
            &self,
            _deadline: std::time::Instant,
        ) -> Option<RwLockWriteGuard<'_, T>> {
            Some(self.write())
        }
    }
}

/// Parks the calling thread while `word` still holds `expected`.
#[cfg(not(loom))]
pub(crate) fn park_while(word: &AtomicU64, expected: u64) {
    let key = word as *const AtomicU64 as usize;
    // SAFETY: `park` requires that the callbacks neither panic nor call into parking_lot; `validate`
    // only loads an atomic and the others do nothing. The key is the address of a live atomic that
    // the waker (`unpark_all`) uses as well; no other code parks on these addresses.
    unsafe {
        parking_lot_core::park(
            key,
            // Relaxed: the bucket lock taken by park/unpark orders this check against the waker's
            // swap; the caller re-loads the word with Acquire after waking.
            || word.load(Ordering::Relaxed) == expected,
            || {},
            |_, _| {},
            parking_lot_core::DEFAULT_PARK_TOKEN,
            None,
        );
    }
}

/// Wakes every thread parked on `word`.
#[cfg(not(loom))]
pub(crate) fn unpark_all(word: &AtomicU64) {
    let key = word as *const AtomicU64 as usize;
    // SAFETY: unpark_all only uses the key to find the queue; the key is the address of the atomic
    // the parked threads named.
    unsafe {
        parking_lot_core::unpark_all(key, parking_lot_core::DEFAULT_UNPARK_TOKEN);
    }
}

/// The loom model of `parking_lot_core`'s parking lot, so a missed wake-up is a failure loom
/// reports (a deadlock: every thread blocked), not a spin that happens to see the word change.
///
/// Modelled: one bucket for every key (parking_lot_core hashes keys to buckets; one bucket is the
/// case where every key collides, which only adds contention), its lock, and the queue of parked
/// threads. `park_while` runs the validation under the bucket lock and sleeps until `unpark_all`
/// takes it off the queue, exactly the contract the production calls rely on: a waker that
/// changes the word before taking the bucket lock either finds the sleeper queued or makes its
/// validation fail. Not modelled: spurious wake-ups (parking_lot_core's `park` without a timeout
/// has none, and one would hide a missed wake-up), timeouts, tokens, fairness.
#[cfg(loom)]
mod lot {
    use loom::sync::{Condvar, Mutex};

    /// The parked threads, as (key, ticket), under the bucket lock.
    #[derive(Default)]
    pub(super) struct Bucket {
        next_ticket: u64,
        parked: Vec<(usize, u64)>,
    }

    std::thread_local! {
        /// Threads that went to sleep in `park`, over every execution of the models run on this
        /// OS thread (loom runs a model's threads as coroutines on the caller's thread): the
        /// tests assert it grew, so the parking path cannot silently drop out of the model.
        pub(super) static SLEPT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    loom::lazy_static! {
        /// Fresh for every loom execution.
        pub(super) static ref LOT: (Mutex<Bucket>, Condvar) =
            (Mutex::new(Bucket::default()), Condvar::new());
    }

    pub(super) fn park(key: usize, validate: impl FnOnce() -> bool) {
        let (lock, woken) = &*LOT;
        let mut bucket = lock.lock().unwrap();
        if !validate() {
            return;
        }
        let ticket = bucket.next_ticket;
        bucket.next_ticket += 1;
        bucket.parked.push((key, ticket));
        SLEPT.set(SLEPT.get() + 1);
        // Sleep until an unpark of `key` dequeued us; nothing else ends the wait.
        while bucket.parked.contains(&(key, ticket)) {
            bucket = woken.wait(bucket).unwrap();
        }
    }

    pub(super) fn unpark_all(key: usize) {
        let (lock, woken) = &*LOT;
        let mut bucket = lock.lock().unwrap();
        let before = bucket.parked.len();
        bucket.parked.retain(|&(k, _)| k != key);
        if bucket.parked.len() != before {
            woken.notify_all();
        }
    }
}

/// How many times a thread went to sleep in [`park_while`] on this OS thread, under loom.
#[cfg(loom)]
pub fn parked_count() -> u64 {
    lot::SLEPT.get()
}

/// Parks the calling thread while `word` still holds `expected` (loom model of the above).
#[cfg(loom)]
pub(crate) fn park_while(word: &AtomicU64, expected: u64) {
    // Relaxed, as in production: the bucket lock orders this check against the waker's swap.
    lot::park(word as *const AtomicU64 as usize, || {
        word.load(Ordering::Relaxed) == expected
    });
}

/// Wakes every thread parked on `word` (loom model of the above).
#[cfg(loom)]
pub(crate) fn unpark_all(word: &AtomicU64) {
    lot::unpark_all(word as *const AtomicU64 as usize);
}
