//! `umbra_async`: a long operation (revert, LUN split, resync, extend) running on its own thread,
//! after VDS `IVdsAsync`: wait, wait with a timeout, percent done, cancel. A thin face over
//! `vds_core::AsyncHandle`, the one runtime for long operations.
//!
//! Thread safety: every function may be called from any thread, concurrently, except
//! `umbra_async_free`, which must be the last call on the handle.

use std::time::Duration;

use cow_engine::Progress;

use crate::boundary::*;
use crate::status::*;

/// An operation running in the background. Created by the `_async` functions; freed with
/// `umbra_async_free`.
pub struct umbra_async {
    /// The operation, run by vds-core's one runtime for long operations.
    op: vds_core::AsyncHandle<()>,
}

impl umbra_async {
    /// Runs `work` (an engine operation a C call starts) on vds-core's runtime.
    pub(crate) fn spawn(
        work: impl FnOnce(&Progress) -> cow_engine::Result<()> + Send + 'static,
    ) -> umbra_async {
        umbra_async {
            op: vds_core::AsyncHandle::spawn(move |p| Ok(work(p)?)),
        }
    }

    /// Hands an operation the array started to C.
    pub(crate) fn follow(op: vds_core::AsyncHandle<()>) -> umbra_async {
        umbra_async { op }
    }

    fn result(&self, timeout: Option<Duration>) -> FfiResult {
        self.op
            .wait_with(timeout, |r| match r {
                Ok(()) => Ok(()),
                Err(e) => Err(FfiError::labelled(status_of_vds(e.kind()), e.report())),
            })
            .unwrap_or_else(|| {
                Err(FfiError::new(
                    UMBRA_E_IN_PROGRESS,
                    "the operation is still running",
                ))
            })
    }
}

impl Drop for umbra_async {
    fn drop(&mut self) {
        // `umbra_async_free` waits for a running operation (docs/abi.md); the core handle then
        // joins its thread as it is dropped.
        self.op.wait_with(None, |_| ());
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
pub unsafe extern "C" fn umbra_async_get_percent(
    op: *const umbra_async,
    out_percent: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_async_get_percent", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        let out = out_ptr(out_percent, "out_percent")?;
        let pct = op.op.percent();
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, pct) };
        Ok(())
    })
}

/// Deprecated alias of `umbra_async_get_percent` (ABI 1.0 name; queries are `_get_`).
///
/// # Safety
/// As `umbra_async_get_percent`.
#[deprecated(note = "use umbra_async_get_percent")]
#[no_mangle]
pub unsafe extern "C" fn umbra_async_percent(
    op: *const umbra_async,
    out_percent: *mut u32,
) -> umbra_status {
    ffi_boundary!(
        "umbra_async_percent",
        alias = {
            // SAFETY: the same contract, forwarded unchanged.
            unsafe { umbra_async_get_percent(op, out_percent) }
        }
    )
}

/// Asks the operation to stop at its next step. It may be too late (the operation then finishes
/// normally); otherwise `umbra_async_wait` returns `UMBRA_E_CANCELLED`. A cancelled revert or LUN
/// split is resumed by starting it again; a cancelled move of a snapshot to a file starts over.
///
/// # Safety
/// `op` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_async_cancel(op: *mut umbra_async) -> umbra_status {
    ffi_boundary!("umbra_async_cancel", {
        // SAFETY: `op` is NULL or a live handle, per this function's contract.
        let op = unsafe { handle(op, "op") }?;
        op.op.cancel();
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
