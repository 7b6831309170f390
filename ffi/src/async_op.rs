//! `umbra_async`: a long operation (revert, LUN split, resync, extend) running on its own thread,
//! after VDS `IVdsAsync`: wait, wait with a timeout, percent done, cancel.
//!
//! Thread safety: every function may be called from any thread, concurrently, except
//! `umbra_async_free`, which must be the last call on the handle.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cow_engine::Progress;
use parking_lot::{Condvar, Mutex};

use crate::boundary::*;
use crate::status::*;

/// An operation running in the background. Created by the `_async` functions; freed with
/// `umbra_async_free`.
pub struct umbra_async {
    shared: Arc<AsyncShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct AsyncShared {
    /// The engine's progress, for operations run here directly.
    progress: Progress,
    /// The percentage polled from a `vds-core` handle, for operations run by the array.
    polled_percent: AtomicU32,
    cancel: AtomicBool,
    outcome: Mutex<Option<(umbra_status, String)>>,
    done: Condvar,
}

/// How often a `vds-core` handle is polled for progress and passed a cancel request.
const POLL: Duration = Duration::from_millis(10);

impl AsyncShared {
    fn finish(&self, r: FfiResult) {
        let outcome = match r {
            Ok(()) => (UMBRA_OK, String::new()),
            Err(e) => (e.status, e.message),
        };
        *self.outcome.lock() = Some(outcome);
        self.done.notify_all();
    }
}

impl umbra_async {
    /// Runs `work` on a new thread; it reports progress and sees cancellation through its argument.
    pub(crate) fn spawn(
        work: impl FnOnce(&Progress) -> FfiResult + Send + 'static,
    ) -> FfiResult<umbra_async> {
        let shared = Arc::new(AsyncShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("umbra-async".into())
            .spawn(move || {
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&s.progress)))
                        .unwrap_or_else(|_| {
                            Err(FfiError::new(UMBRA_E_PANIC, "the operation panicked"))
                        });
                s.finish(r);
            })
            .map_err(|e| FfiError::new(UMBRA_E_IO, format!("cannot start a thread: {e}")))?;
        Ok(umbra_async {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Follows an operation `vds-core` runs on its own thread.
    pub(crate) fn follow(handle: vds_core::AsyncHandle<()>) -> FfiResult<umbra_async> {
        let shared = Arc::new(AsyncShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("umbra-async".into())
            .spawn(move || {
                let mut cancelled = false;
                while !handle.wait_for(POLL) {
                    s.polled_percent.store(handle.percent(), Ordering::Relaxed);
                    if !cancelled && s.cancel.load(Ordering::Relaxed) {
                        handle.cancel();
                        cancelled = true;
                    }
                }
                s.finish(handle.wait().map_err(FfiError::from));
            })
            .map_err(|e| FfiError::new(UMBRA_E_IO, format!("cannot start a thread: {e}")))?;
        Ok(umbra_async {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn outcome(&self, timeout: Option<Duration>) -> Option<(umbra_status, String)> {
        let mut o = self.shared.outcome.lock();
        match timeout {
            None => {
                while o.is_none() {
                    self.shared.done.wait(&mut o);
                }
            }
            Some(t) => {
                let deadline = std::time::Instant::now() + t;
                while o.is_none() {
                    if self.shared.done.wait_until(&mut o, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        o.clone()
    }

    fn result(&self, timeout: Option<Duration>) -> FfiResult {
        match self.outcome(timeout) {
            None => Err(FfiError::new(
                UMBRA_E_IN_PROGRESS,
                "the operation is still running",
            )),
            Some((UMBRA_OK, _)) => Ok(()),
            Some((status, message)) => Err(FfiError::new(status, message)),
        }
    }
}

impl Drop for umbra_async {
    fn drop(&mut self) {
        if let Some(t) = self.thread.get_mut().take() {
            let _ = t.join();
        }
    }
}

/// Waits until the operation finishes and returns its result: `UMBRA_OK` or the status it failed
/// with (`UMBRA_E_CANCELLED` after a cancel it honoured); `umbra_last_error` then has its message.
/// May be called again (it returns the same result).
///
/// # Safety
/// `op` is NULL or a live handle from an `_async` function.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_wait(op: *mut umbra_async) -> umbra_status {
    ffi_boundary!("umbra_async_wait", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        op.result(None)
    })
}

/// Like `umbra_async_wait`, but waits at most `timeout_ms` milliseconds (0: just polls);
/// `UMBRA_E_IN_PROGRESS` if the operation is still running then.
///
/// # Safety
/// `op` is NULL or a live handle from an `_async` function.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_wait_timeout(
    op: *mut umbra_async,
    timeout_ms: u64,
) -> umbra_status {
    ffi_boundary!("umbra_async_wait_timeout", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        op.result(Some(Duration::from_millis(timeout_ms)))
    })
}

/// Writes the percentage done to `*out_percent`: 0 to 99 while the operation runs, 100 once it has
/// finished (successfully or not).
///
/// # Safety
/// `op` is NULL or a live handle; `out_percent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_percent(
    op: *const umbra_async,
    out_percent: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_async_percent", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        let out = out_ptr(out_percent, "out_percent")?;
        let s = &op.shared;
        let pct = if s.outcome.lock().is_some() {
            100
        } else {
            s.progress
                .percent()
                .max(s.polled_percent.load(Ordering::Relaxed))
                .min(99)
        };
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, pct) };
        Ok(())
    })
}

/// Asks the operation to stop at its next step. It may be too late (the operation then finishes
/// normally); otherwise `umbra_async_wait` returns `UMBRA_E_CANCELLED`. A cancelled revert or
/// split is resumed by starting it again.
///
/// # Safety
/// `op` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_cancel(op: *mut umbra_async) -> umbra_status {
    ffi_boundary!("umbra_async_cancel", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        op.shared.cancel.store(true, Ordering::Relaxed);
        op.shared.progress.cancel();
        Ok(())
    })
}

/// Frees the handle. If the operation is still running this waits until it finishes (call
/// `umbra_async_cancel` first to stop it early). NULL is a no-op.
///
/// # Safety
/// `op` is NULL or a live handle not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_free(op: *mut umbra_async) {
    ffi_boundary!("umbra_async_free", default = (), {
        // SAFETY: `op` is NULL or a live handle that C gives up, per this function's contract.
        drop(unsafe { from_handle(op) });
    })
}
