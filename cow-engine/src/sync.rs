//! Atomics and parking, from `std` / `parking_lot_core` normally and from `loom` under `cfg(loom)`, so the
//! block map's entry protocol can be model-checked unchanged.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

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

/// Loom shim: spin (yielding to the model checker) while `word` holds `expected`.
#[cfg(loom)]
pub(crate) fn park_while(word: &AtomicU64, expected: u64) {
    while word.load(Ordering::Acquire) == expected {
        loom::thread::yield_now();
    }
}

/// Loom shim: nothing to wake, spinners re-check.
#[cfg(loom)]
pub(crate) fn unpark_all(_word: &AtomicU64) {}
