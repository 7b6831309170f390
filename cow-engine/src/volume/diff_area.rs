//! The diff area: block-sized data slots on a device, allocated from a free list or a bump counter.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::BlockDevice;
use crate::error::{Error, ErrorKind, Result};

/// The diff device grows in steps of at least this many bytes (and at least a quarter of its size),
/// allocated and zero-filled at once, so slot writes and their syncs need no file-system allocation.
const GROW_BYTES: u64 = 4 << 20;

struct Alloc {
    /// Slots `0..next` have been handed out at some point.
    next: u64,
    /// Slots below `next` that are free again; lowest reused first.
    free: BTreeSet<u64>,
    /// Slots the device has room for.
    capacity: u64,
}

pub(crate) struct DiffArea {
    dev: Arc<dyn BlockDevice>,
    /// Byte offset of slot 0 in the device (after the superblock, if any).
    data_offset: u64,
    block_size: u64,
    alloc: Mutex<Alloc>,
    in_use: AtomicU64,
    limit: Option<u64>,
}

impl DiffArea {
    pub(crate) fn new(
        dev: Arc<dyn BlockDevice>,
        data_offset: u64,
        block_size: u64,
        limit: Option<u64>,
    ) -> Self {
        let capacity = dev.len().saturating_sub(data_offset) / block_size;
        DiffArea {
            dev,
            data_offset,
            block_size,
            alloc: Mutex::new(Alloc {
                next: 0,
                free: BTreeSet::new(),
                capacity,
            }),
            in_use: AtomicU64::new(0),
            limit,
        }
    }

    pub(crate) fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.dev
    }

    /// Slots currently holding data.
    pub(crate) fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The slot limit, if any.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Allocates a slot, or fails with [`ErrorKind::NoSpace`] at the limit.
    pub(crate) fn alloc(&self) -> Result<u64> {
        let mut a = self.alloc.lock();
        if let Some(limit) = self.limit {
            if self.in_use.load(Ordering::Relaxed) >= limit {
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    format!("diff area full: all {limit} slots in use"),
                ));
            }
        }
        let slot = match a.free.pop_first() {
            Some(s) => s,
            None => {
                if a.next >= a.capacity {
                    let step = (GROW_BYTES / self.block_size).max(1).max(a.capacity / 4);
                    let want = a.next + step;
                    let resize = self.dev.as_resize().ok_or_else(|| {
                        Error::new(ErrorKind::NoSpace, "diff device is full and cannot grow")
                    })?;
                    resize.grow_allocated(self.data_offset + want * self.block_size)?;
                    a.capacity = want;
                }
                a.next += 1;
                a.next - 1
            }
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    /// Returns a slot to the free list.
    pub(crate) fn free(&self, slot: u64) {
        let mut a = self.alloc.lock();
        debug_assert!(slot < a.next, "freeing slot {slot} never allocated");
        if a.free.insert(slot) {
            self.in_use.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Recovery: declares exactly `used` (sorted, no duplicates) as the slots in use; the rest
    /// below the high-water mark are free.
    pub(crate) fn restore(&self, used: &[u64]) {
        let mut a = self.alloc.lock();
        let next = used.last().map_or(0, |s| s + 1).max(a.next);
        let mut free = BTreeSet::new();
        let mut expect = 0;
        for &u in used.iter().chain(std::iter::once(&next)) {
            free.extend(expect..u);
            expect = u + 1;
        }
        a.next = next;
        a.free = free;
        self.in_use.store(used.len() as u64, Ordering::Relaxed);
    }

    fn slot_offset(&self, slot: u64, within: u64) -> u64 {
        self.data_offset + slot * self.block_size + within
    }

    pub(crate) fn read(&self, slot: u64, within: u64, buf: &mut [u8]) -> Result<()> {
        self.dev.read_at(buf, self.slot_offset(slot, within))
    }

    pub(crate) fn write(&self, slot: u64, within: u64, buf: &[u8]) -> Result<()> {
        self.dev.write_at(buf, self.slot_offset(slot, within))
    }
}
