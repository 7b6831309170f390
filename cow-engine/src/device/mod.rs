//! Block devices: the storage a volume sits on and keeps its diff area in.
//!
//! ```text
//!            BlockDevice  (Send + Sync; &self positional read_at / write_at / flush / len)
//!            /        \
//!       Resize      Discard     optional abilities, found through BlockDevice::as_resize / as_discard
//! ```
//!
//! [`MemDevice`] keeps sparse chunks in memory; [`FileDevice`] uses `pread` / `pwrite` on a file and
//! `fdatasync` for [`BlockDevice::flush`]. A writable snapshot ([`crate::Snapshot`]) is a device too, so
//! volumes stack.

mod fence;
mod file;
mod memory;

pub(crate) use fence::{DeviceRole, Fence, Fenced};
pub use file::FileDevice;
pub use memory::MemDevice;

use std::ops::Range;

use crate::error::Result;
use crate::volume::Snapshot;

/// A byte-addressed device with positional I/O, shareable between threads.
///
/// Reads and writes take any offset and length inside [`BlockDevice::len`]; a range past the end is an
/// [`crate::ErrorKind::OutOfRange`] error and transfers nothing. A write may be cached (volatile) until
/// [`BlockDevice::flush`] returns.
pub trait BlockDevice: Send + Sync {
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// Writes `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<()>;
    /// The size in bytes.
    fn len(&self) -> u64;
    /// True when the device has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The ranges of `[offset, offset + len)` that may hold data, ascending, disjoint and inside
    /// it: every byte outside them reads as zeros (a hole). A superset is allowed (a range may
    /// read as zeros too), a missing range never. The default, for a device that cannot tell, is
    /// the whole range.
    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<Range<u64>>> {
        let whole = offset..offset.saturating_add(len);
        Ok(clip(std::iter::once(whole).collect(), offset, len))
    }
    /// The device's resize ability, if it has one.
    fn as_resize(&self) -> Option<&dyn Resize> {
        None
    }
    /// The device's discard ability, if it has one.
    fn as_discard(&self) -> Option<&dyn Discard> {
        None
    }
    /// The snapshot this device is, if it is one: a volume stacked on it
    /// ([`Volume::create_stacked`](crate::Volume::create_stacked), [`Volume::open_stacked`](crate::Volume::open_stacked),
    /// [`Volume::on_device`](crate::Volume::on_device)) holds it in use, so it is not deleted
    /// under the volume.
    fn as_snapshot(&self) -> Option<&Snapshot> {
        None
    }
}

/// Writes `len` zero bytes at `offset`, a megabyte at a time.
pub(crate) fn write_zeros(dev: &dyn BlockDevice, offset: u64, len: u64) -> Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        dev.write_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// A device whose size can change.
pub trait Resize: BlockDevice {
    /// Sets the size to `new_len` bytes; new space reads as zeros.
    fn resize(&self, new_len: u64) -> Result<()>;

    /// Grows to `new_len` bytes with the new space allocated and written (as zeros), so that later
    /// writes there, and the flushes after them, need no allocation (on a file system, no metadata
    /// commit per flush). Defaults to [`Resize::resize`].
    fn grow_allocated(&self, new_len: u64) -> Result<()> {
        self.resize(new_len)
    }
}

/// A device that can drop the contents of a range (it reads as zeros afterwards).
pub trait Discard: BlockDevice {
    /// Discards `[offset, offset + len)`.
    fn discard(&self, offset: u64, len: u64) -> Result<()>;
}

/// `ranges` sorted, merged where they touch or overlap, and clipped to `[offset, offset + len)`,
/// empty ones dropped: the form [`BlockDevice::allocated`] answers in.
pub fn clip(mut ranges: Vec<Range<u64>>, offset: u64, len: u64) -> Vec<Range<u64>> {
    let end = offset.saturating_add(len);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        let r = r.start.max(offset)..r.end.min(end);
        if r.start >= r.end {
            continue;
        }
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}
