//! Async handles for long operations (VDS `IVdsAsync`): wait, percent done, cancel.
//!
//! This is the one runtime for long operations in umbra: the array's (extend, split, clone,
//! resync) and the engine's run by a front end (revert, snapshot split), so the C layer and the
//! CLI wrap it rather than run their own. Each operation runs on a thread of its own:
//! - a thread the system refuses makes a handle that has already failed (an I/O error naming the
//!   cause), never a panic;
//! - a panic in the work is caught and reported as an [`ErrorKind::Internal`] error, so waiting
//!   never hangs;
//! - waiting blocks on a condition variable (no polling), and the thread is joined once the
//!   operation has finished.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cow_engine::Progress;
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, Result};

struct Shared<T> {
    progress: Progress,
    result: Mutex<Option<Result<T>>>,
    done: Condvar,
}

impl<T> Shared<T> {
    fn finish(&self, r: Result<T>) {
        *self.result.lock() = Some(r);
        self.done.notify_all();
    }
}

/// A long operation running on its own thread.
///
/// Dropping the handle does not stop the operation (call [`AsyncHandle::cancel`] first): a
/// finished operation's thread is joined, a running one finishes on its own.
pub struct AsyncHandle<T> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<T> std::fmt::Debug for AsyncHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHandle")
            .field("percent", &self.percent())
            .finish()
    }
}

impl<T: Send + 'static> AsyncHandle<T> {
    /// Runs `work` on a new thread; it reports progress and sees cancellation through its
    /// argument. An engine error it returns converts with `?` (its kind carries through).
    pub fn spawn(work: impl FnOnce(&Progress) -> Result<T> + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            progress: Progress::new(),
            result: Mutex::new(None),
            done: Condvar::new(),
        });
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("umbra-async".into())
            .spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| work(&s.progress))).unwrap_or_else(|p| {
                    Err(Error::new(
                        ErrorKind::Internal,
                        format!("the operation panicked: {}", crate::panic_text(&*p)),
                    ))
                });
                s.finish(r);
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                shared.finish(Err(Error::io("cannot start a thread for the operation", e)));
                None
            }
        };
        AsyncHandle {
            shared,
            thread: Mutex::new(thread),
        }
    }
}

impl<T> AsyncHandle<T> {
    /// Waits for the operation and returns its result.
    pub fn wait(self) -> Result<T> {
        let mut r = self.shared.result.lock();
        loop {
            if let Some(out) = r.take() {
                return out;
            }
            self.shared.done.wait(&mut r);
        }
    }

    /// Waits (at most `timeout`, or until it finishes if `None`) and, once the operation has
    /// finished, calls `f` with its result and returns what `f` returns; `None` if it is still
    /// running at the deadline. May be called any number of times, from several threads.
    pub fn wait_with<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnOnce(&Result<T>) -> R,
    ) -> Option<R> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut r = self.shared.result.lock();
        loop {
            if let Some(out) = r.as_ref() {
                return Some(f(out));
            }
            match deadline {
                None => self.shared.done.wait(&mut r),
                Some(d) => {
                    if self.shared.done.wait_until(&mut r, d).timed_out() {
                        return r.as_ref().map(f);
                    }
                }
            }
        }
    }

    /// Waits at most `timeout`; true if the operation has finished.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        self.wait_with(Some(timeout), |_| ()).is_some()
    }

    /// True once the operation has finished (successfully or not).
    pub fn is_done(&self) -> bool {
        self.shared.result.lock().is_some()
    }

    /// Percent done: 0 to 99 while running, 100 when finished (VDS `QueryStatus`).
    pub fn percent(&self) -> u32 {
        if self.is_done() {
            100
        } else {
            self.shared.progress.percent().min(99)
        }
    }

    /// Asks the operation to stop at its next step; it may be too late (the operation then
    /// finishes normally), otherwise it fails with [`ErrorKind::Cancelled`].
    pub fn cancel(&self) {
        self.shared.progress.cancel();
    }
}

impl<T> Drop for AsyncHandle<T> {
    fn drop(&mut self) {
        if let Some(t) = self.thread.get_mut().take() {
            // A finished operation's thread has nothing left but to exit: join it, so no thread
            // outlives its handle. A running one is left to finish (dropping is not cancelling).
            if self.shared.result.lock().is_some() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_work_is_an_error_and_waiting_does_not_hang() {
        let h: AsyncHandle<()> = AsyncHandle::spawn(|_| panic!("boom"));
        let (kind, text) = h
            .wait_with(None, |r| {
                let e = r.as_ref().unwrap_err();
                (e.kind(), e.to_string())
            })
            .unwrap();
        assert_eq!(kind, ErrorKind::Internal);
        assert!(text.contains("boom"), "{text}");
        assert_eq!(h.percent(), 100);
        assert_eq!(h.wait().unwrap_err().kind(), ErrorKind::Internal);
    }

    #[test]
    fn wait_with_times_out_while_running_and_repeats_once_done() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        let h = AsyncHandle::spawn(move |_| {
            let mut open = g.0.lock();
            while !*open {
                g.1.wait(&mut open);
            }
            Ok(7)
        });
        assert_eq!(h.wait_with(Some(Duration::from_millis(20)), |_| ()), None);
        assert!(!h.is_done());
        *gate.0.lock() = true;
        gate.1.notify_all();
        assert_eq!(h.wait_with(None, |r| *r.as_ref().unwrap()), Some(7));
        assert_eq!(
            h.wait_with(Some(Duration::ZERO), |r| *r.as_ref().unwrap()),
            Some(7)
        );
        assert_eq!(h.wait().unwrap(), 7);
    }

    #[test]
    fn cancel_reaches_the_work() {
        let h: AsyncHandle<()> = AsyncHandle::spawn(|p| {
            while !p.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Error::new(ErrorKind::Cancelled, "stopped"))
        });
        h.cancel();
        assert_eq!(h.wait().unwrap_err().kind(), ErrorKind::Cancelled);
    }
}
