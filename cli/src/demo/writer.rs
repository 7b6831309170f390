//! The database's writer: a thread appending records continuously, and the `vss_core::Writer`
//! that flushes and holds it at freeze and lets it go at thaw (or abort).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use vss_core::document::{Component, SourceType};
use vss_core::{EventContext, FailureKind, Writer, WriterFailure, WriterMetadata};

use super::db::Db;

/// Records appended between flushes: a record is acknowledged when the flush after it returns.
const BATCH: u64 = 64;

/// What the appending thread and the writer's events share.
#[derive(Debug, Default)]
struct State {
    /// A freeze asks the thread to flush and hold.
    hold: bool,
    /// The thread has flushed and is holding.
    held: bool,
    /// The demo asks the thread to end.
    stop: bool,
    /// The thread has ended (stopped, failed or the log full).
    ended: bool,
    /// Records written.
    appended: u64,
    /// Records acknowledged (durable).
    acked: u64,
    /// The log is full: the thread waits for stop.
    full: bool,
    /// The thread's I/O error, if any.
    error: Option<String>,
    /// Records acknowledged when the freeze held the thread.
    acked_at_freeze: Option<u64>,
    /// When the freeze held the thread, and when the thaw let it go.
    frozen_at: Option<Instant>,
    /// See `frozen_at`.
    thawed_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic of the appending thread is reported through `ended` and `error`.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(g).unwrap_or_else(|p| p.into_inner())
    }
}

/// What the writer saw, once the thread has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Records written (and acknowledged: the thread flushes before it ends).
    pub appended: u64,
    /// Records acknowledged when the freeze held the thread.
    pub acked_at_freeze: Option<u64>,
    /// The freeze window as the database saw it (from held to let go), if both happened.
    pub freeze_window: Option<std::time::Duration>,
    /// The log filled up.
    pub full: bool,
    /// The thread's I/O error.
    pub error: Option<String>,
}

/// The directory-service database's writer: its appending thread and its VSS events.
pub struct DbWriter {
    name: String,
    lun: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DbWriter {
    /// Starts appending records to `db` (the database on LUN `lun`) on a thread of its own.
    pub fn start(name: &str, lun: &str, db: Db) -> Arc<DbWriter> {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let result = append_loop(&s, &db);
            let mut g = s.lock();
            if let Err(e) = result {
                g.error = Some(e.report());
            }
            g.ended = true;
            s.cv.notify_all();
        });
        Arc::new(DbWriter {
            name: name.to_string(),
            lun: lun.to_string(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits until `n` records are acknowledged, or the thread cannot get there (full, failed,
    /// ended); returns the records acknowledged.
    pub fn wait_acked(&self, n: u64) -> u64 {
        let mut g = self.shared.lock();
        while g.acked < n && !g.full && !g.ended {
            g = self.shared.wait(g);
        }
        g.acked
    }

    /// Waits until `more` records past those acknowledged at the freeze are acknowledged (the
    /// thread resumed after the thaw), or the thread cannot get there; returns the records
    /// acknowledged.
    pub fn wait_past_freeze(&self, more: u64) -> u64 {
        let mut g = self.shared.lock();
        loop {
            let target = g.acked_at_freeze.map(|a| a + more);
            match target {
                Some(t) if g.acked < t && !g.hold && !g.full && !g.ended => {}
                _ => return g.acked,
            }
            g = self.shared.wait(g);
        }
    }

    /// Ends the thread (it flushes first) and returns what it saw.
    pub fn stop(&self) -> Tally {
        {
            let mut g = self.shared.lock();
            g.stop = true;
            self.shared.cv.notify_all();
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                self.shared.lock().error = Some("the appending thread panicked".into());
            }
        }
        let g = self.shared.lock();
        Tally {
            appended: g.appended,
            acked_at_freeze: g.acked_at_freeze,
            freeze_window: match (g.frozen_at, g.thawed_at) {
                (Some(f), Some(t)) => Some(t.saturating_duration_since(f)),
                _ => None,
            },
            full: g.full,
            error: g.error.clone(),
        }
    }

    /// Lets the thread go (thaw and abort).
    fn release(&self) {
        let mut g = self.shared.lock();
        if g.hold {
            g.hold = false;
            g.thawed_at = Some(Instant::now());
            self.shared.cv.notify_all();
        }
    }
}

impl Drop for DbWriter {
    /// A demo that stops early (a failed step) still ends the appending thread.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The appending thread: records one after another, a flush every [`BATCH`], flushing and
/// holding while a freeze asks, until stopped or full.
fn append_loop(s: &Shared, db: &Db) -> vds_core::Result<()> {
    let mut next = 0u64;
    loop {
        let mut g = s.lock();
        if g.stop {
            break;
        }
        if g.hold || next == db.capacity() {
            drop(g);
            db.flush()?;
            g = s.lock();
            g.acked = next;
            if next == db.capacity() {
                g.full = true;
            }
            if g.hold {
                g.held = true;
            }
            s.cv.notify_all();
            while (g.hold || next == db.capacity()) && !g.stop {
                g = s.wait(g);
            }
            g.held = false;
            continue;
        }
        drop(g);
        db.append(next)?;
        next += 1;
        let mut g = s.lock();
        g.appended = next;
        if next.is_multiple_of(BATCH) {
            drop(g);
            db.flush()?;
            g = s.lock();
            g.acked = next;
            s.cv.notify_all();
        }
    }
    db.flush()?;
    let mut g = s.lock();
    g.acked = next;
    Ok(())
}

impl Writer for DbWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let mut m = WriterMetadata::new(self.name.clone());
        m.source_type = SourceType::TransactedDb;
        m.components = vec![Component::new("", "ntds", [self.lun.clone()])];
        Ok(m)
    }

    /// Flushes and holds the appending thread: every record written is acknowledged first.
    fn freeze(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let mut g = self.shared.lock();
        g.hold = true;
        self.shared.cv.notify_all();
        while !g.held && !g.ended && !g.full {
            let left = ctx.deadline().saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WriterFailure::new(
                    FailureKind::Timeout,
                    "the database did not flush by the freeze deadline",
                ));
            }
            g = self
                .shared
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(e) = &g.error {
            return Err(WriterFailure::non_retryable(format!(
                "the database failed: {e}"
            )));
        }
        g.acked_at_freeze = Some(g.acked);
        g.frozen_at = Some(Instant::now());
        Ok(())
    }

    fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.release();
        Ok(())
    }

    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.release();
        Ok(())
    }
}
