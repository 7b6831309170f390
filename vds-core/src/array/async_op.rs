//! Async handles for long operations (VDS `IVdsAsync`): wait, percent done, cancel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cow_engine::Progress;
use parking_lot::{Condvar, Mutex};

use crate::error::Result;

struct Shared<T> {
    progress: Progress,
    result: Mutex<Option<Result<T>>>,
    done: Condvar,
}

/// A long operation running on its own thread.
pub struct AsyncHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for AsyncHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHandle")
            .field("percent", &self.percent())
            .finish()
    }
}

impl<T: Send + 'static> AsyncHandle<T> {
    /// Runs `work` on a new thread; it reports progress and sees cancellation through its argument.
    pub fn spawn(work: impl FnOnce(&Progress) -> Result<T> + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            progress: Progress::new(),
            result: Mutex::new(None),
            done: Condvar::new(),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            let r = work(&s.progress);
            *s.result.lock() = Some(r);
            s.done.notify_all();
        });
        AsyncHandle { shared }
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

    /// Waits at most `timeout`; true if the operation has finished.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut r = self.shared.result.lock();
        while r.is_none() {
            if self.shared.done.wait_until(&mut r, deadline).timed_out() {
                return r.is_some();
            }
        }
        true
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
            self.shared.progress.percent()
        }
    }

    /// Asks the operation to stop; it may be too late (the operation then finishes normally).
    pub fn cancel(&self) {
        self.shared.progress.cancel();
    }
}
