//! A fence around a volume's devices: once the volume is destroyed, every read, write, flush and
//! resize of its devices fails with a clear error instead of reaching files that are deleted (or
//! memory that no one will read again). Every handle of the volume, and of its snapshots, goes
//! through the same fence.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{BlockDevice, Discard, Resize};
use crate::error::{Error, ErrorKind, Result};
use crate::volume::Snapshot;

/// Whether a volume's devices are still in service; shared by the [`Fenced`] wrappers of one
/// volume's devices.
#[derive(Debug, Default)]
pub(crate) struct Fence {
    closed: AtomicBool,
    /// The writes to each kind of device of the volume since it was opened.
    pub(crate) io: [IoCounter; 3],
}

/// Which of a volume's devices a [`Fenced`] wrapper stands for: its writes are counted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceRole {
    /// The origin (the volume's data).
    Origin = 0,
    /// The diff area (the blocks preserved for snapshots).
    Diff = 1,
    /// The metadata journal (both files).
    Journal = 2,
}

/// Writes to one kind of device: bytes written and write operations (a discard counts as an
/// operation, its length not as bytes written). Statistics only: Relaxed throughout, nothing
/// is ordered by them.
#[derive(Debug, Default)]
pub(crate) struct IoCounter {
    bytes: AtomicU64,
    ops: AtomicU64,
}

impl IoCounter {
    fn add(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    /// `(bytes written, write operations)` so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.ops.load(Ordering::Relaxed),
        )
    }
}

impl Fence {
    /// Fails with [`ErrorKind::BadState`] once the volume is destroyed.
    pub(crate) fn check(&self) -> Result<()> {
        // Relaxed: `close` runs with the volume's gate held exclusively, and every I/O of its
        // devices runs with the gate held (or from the last handle's drop), so the gate orders
        // the close before every later check.
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::BadState,
                "volume destroyed: its handles and snapshots do no more I/O",
            ));
        }
        Ok(())
    }

    /// Takes the devices out of service for good (with the volume's gate held exclusively).
    pub(crate) fn close(&self) {
        // Relaxed: see `check`.
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// A device of a volume, behind the volume's [`Fence`]: it forwards everything to the device
/// until the fence closes, and then fails.
pub(crate) struct Fenced {
    dev: Arc<dyn BlockDevice>,
    fence: Arc<Fence>,
    role: DeviceRole,
}

impl Fenced {
    /// `dev` behind `fence`, its writes counted as `role`'s.
    pub(crate) fn wrap(
        dev: Arc<dyn BlockDevice>,
        fence: &Arc<Fence>,
        role: DeviceRole,
    ) -> Arc<dyn BlockDevice> {
        Arc::new(Fenced {
            dev,
            fence: fence.clone(),
            role,
        })
    }

    /// Counts a write of `bytes` bytes.
    fn count(&self, bytes: u64) {
        self.fence.io[self.role as usize].add(bytes);
    }
}

impl BlockDevice for Fenced {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.fence.check()?;
        self.dev.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.fence.check()?;
        self.dev.write_at(buf, offset)?;
        self.count(buf.len() as u64);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.fence.check()?;
        self.dev.flush()
    }

    fn len(&self) -> u64 {
        self.dev.len()
    }

    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<Range<u64>>> {
        self.fence.check()?;
        self.dev.allocated(offset, len)
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        self.dev.as_resize().map(|_| self as &dyn Resize)
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        self.dev.as_discard().map(|_| self as &dyn Discard)
    }

    fn as_snapshot(&self) -> Option<&Snapshot> {
        self.dev.as_snapshot()
    }
}

/// The device's own ability, which `as_resize` / `as_discard` found before handing out the
/// wrapper's.
fn lacks(what: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("the device cannot {what}"))
}

impl Fenced {
    /// The device's resize ability, while the fence is open.
    fn resizer(&self) -> Result<&dyn Resize> {
        self.fence.check()?;
        self.dev.as_resize().ok_or_else(|| lacks("be resized"))
    }
}

impl Resize for Fenced {
    fn resize(&self, new_len: u64) -> Result<()> {
        self.resizer()?.resize(new_len)
    }

    fn grow_allocated(&self, new_len: u64) -> Result<()> {
        self.resizer()?.grow_allocated(new_len)
    }
}

impl Discard for Fenced {
    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.fence.check()?;
        self.dev
            .as_discard()
            .ok_or_else(|| lacks("discard"))?
            .discard(offset, len)?;
        self.count(0);
        Ok(())
    }
}
