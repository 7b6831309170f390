//! The diff area: block-sized data slots on a device, allocated from free lists or a bump counter,
//! and given back to the device when snapshots are deleted.
//!
//! A free slot is in one of two lists: `free` (its space is still allocated on the device, so a
//! write there needs no file-system allocation) or `punched` (its space was given back with a
//! discard). [`DiffArea::alloc`] takes the lowest `free` slot first, then re-allocates a run of
//! punched slots (writing zeros over them, as a grow does), and only then grows the device.
//! [`DiffArea::release`] gives space back: it trims free slots off the top (the device shrinks)
//! and punches the free slots beyond a reserve (as many as are in use, at most one grow step).
//! The volume frees a slot only once the record that freed it is durable, so a slot a crash could
//! still find in use is never punched, cut off or reused.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::device::{write_zeros, BlockDevice};
use crate::error::{Error, Result};

/// The diff device grows in steps of at least this many bytes (and at least a quarter of its size),
/// allocated and zero-filled at once, so slot writes and their syncs need no file-system allocation.
/// Punched slots are re-allocated in runs of up to this many bytes for the same reason, and up to
/// this many bytes of free slots are kept allocated (not punched) for reuse.
const GROW_BYTES: u64 = 4 << 20;

struct Alloc {
    /// Slots `0..next` have been handed out at some point.
    next: u64,
    /// Slots below `next` that are free again, their space still allocated; lowest reused first.
    free: BTreeSet<u64>,
    /// Slots below `next` that are free again, their space given back to the device (discarded);
    /// reused once `free` is empty, before the device grows.
    punched: BTreeSet<u64>,
    /// Slots the device has room for.
    capacity: u64,
    /// Slots promised to origin writes in progress ([`DiffArea::reserve`]) and not yet taken:
    /// counted against the limit with those in use.
    reserved: u64,
}

/// Slots promised to one origin write by [`DiffArea::reserve`]; what it has not taken is given
/// back when it is dropped.
pub(crate) struct Reservation<'a> {
    area: &'a DiffArea,
    left: std::cell::Cell<u64>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let left = self.left.get();
        if left > 0 {
            self.area.alloc.lock().reserved -= left;
        }
    }
}

/// Calls `f(first, count)` for each run of consecutive slots in `slots` (ascending).
fn for_each_run(
    slots: impl IntoIterator<Item = u64>,
    mut f: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let mut run: Option<(u64, u64)> = None;
    for s in slots {
        run = match run {
            Some((first, n)) if first + n == s => Some((first, n + 1)),
            Some((first, n)) => {
                f(first, n)?;
                Some((s, 1))
            }
            None => Some((s, 1)),
        };
    }
    match run {
        Some((first, n)) => f(first, n),
        None => Ok(()),
    }
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
                punched: BTreeSet::new(),
                capacity,
                reserved: 0,
            }),
            in_use: AtomicU64::new(0),
            limit,
        }
    }

    /// Slots in one grow step (also the re-allocation run, and the most free slots kept unpunched).
    fn step_slots(&self) -> u64 {
        (GROW_BYTES / self.block_size).max(1)
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

    /// Allocates a slot, or fails with [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace): at the
    /// limit or on a full device that cannot grow ([`Error::is_area_full`]), or when the file
    /// system has no room for the re-allocation or the growth (the device's error, naming its
    /// file).
    pub(crate) fn alloc(&self) -> Result<u64> {
        self.alloc_from(None)
    }

    /// Promises `n` slots to an origin write before it copies anything, so that a write the
    /// limit cannot hold fails whole, nothing copied (not half-way, its copies holding slots for
    /// nothing). Fails like [`DiffArea::alloc`] at the limit, counting the slots in use and those
    /// promised to other writes. Without a limit nothing is promised (the device's own room is
    /// found as the copies allocate).
    pub(crate) fn reserve(&self, n: u64) -> Result<Reservation<'_>> {
        let mut a = self.alloc.lock();
        let mut left = 0;
        if let Some(limit) = self.limit {
            let taken = self.in_use.load(Ordering::Relaxed) + a.reserved;
            if taken + n > limit {
                return Err(Error::area_full(format!(
                    "diff area full: {taken} of {limit} slots in use or promised, and the write \
                     needs {n} more"
                )));
            }
            a.reserved += n;
            left = n;
        }
        Ok(Reservation {
            area: self,
            left: std::cell::Cell::new(left),
        })
    }

    /// [`DiffArea::alloc`], taking one of the slots `reservation` promised if it has any left
    /// (no limit check then).
    pub(crate) fn alloc_from(&self, reservation: Option<&Reservation<'_>>) -> Result<u64> {
        let mut a = self.alloc.lock();
        let promised = reservation.is_some_and(|r| r.left.get() > 0);
        if !promised {
            if let Some(limit) = self.limit {
                if self.in_use.load(Ordering::Relaxed) + a.reserved >= limit {
                    return Err(Error::area_full(format!(
                        "diff area full: all {limit} slots in use"
                    )));
                }
            }
        }
        if a.free.is_empty() && !a.punched.is_empty() {
            self.reallocate(&mut a)?;
        }
        let slot = match a.free.pop_first() {
            Some(s) => s,
            None => {
                if a.next >= a.capacity {
                    self.grow(&mut a)?;
                }
                a.next += 1;
                a.next - 1
            }
        };
        if let Some(r) = reservation.filter(|_| promised) {
            r.left.set(r.left.get() - 1);
            a.reserved -= 1;
        }
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    /// Moves the lowest punched slots (up to one grow step) to `free`, writing zeros over them so
    /// the device allocates their space now, in one go, rather than at each slot write and its
    /// sync.
    fn reallocate(&self, a: &mut Alloc) -> Result<()> {
        let take: Vec<u64> = a
            .punched
            .iter()
            .copied()
            .take(self.step_slots() as usize)
            .collect();
        for_each_run(take.iter().copied(), |first, n| {
            write_zeros(
                self.dev.as_ref(),
                self.slot_offset(first, 0),
                n * self.block_size,
            )
        })?;
        for s in take {
            a.punched.remove(&s);
            a.free.insert(s);
        }
        Ok(())
    }

    /// Grows the device by a step (at least a quarter of its size), allocated.
    fn grow(&self, a: &mut Alloc) -> Result<()> {
        let step = self.step_slots().max(a.capacity / 4);
        let want = a.next + step;
        let resize = self
            .dev
            .as_resize()
            .ok_or_else(|| Error::area_full("diff device is full and cannot grow"))?;
        if let Err(e) = resize.grow_allocated(self.slot_offset(want, 0)) {
            // Give back what the failed growth took (a full file system wants it back); the
            // slots past `capacity` were never handed out.
            let _ = resize.resize(self.slot_offset(a.capacity, 0));
            return Err(e);
        }
        a.capacity = want;
        Ok(())
    }

    /// Returns a slot to the free list. The caller makes sure no crash can find it in use any more
    /// (the record that freed it is durable, or no durable record ever named it).
    pub(crate) fn free(&self, slot: u64) {
        let mut a = self.alloc.lock();
        debug_assert!(slot < a.next, "freeing slot {slot} never allocated");
        debug_assert!(!a.punched.contains(&slot), "freeing punched slot {slot}");
        if a.free.insert(slot) {
            self.in_use.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Gives the space of free slots back to the device: the free slots at the top are cut off
    /// (the device shrinks to the highest slot in use, if it can be resized), and the free slots
    /// beyond a reserve (the lowest, reused first, are kept: as many as are in use, at most one
    /// grow step) are discarded, if the device can discard. Every free slot must be free for good
    /// (see [`DiffArea::free`]).
    pub(crate) fn release(&self) -> Result<()> {
        let mut a = self.alloc.lock();
        while let Some(top) = a.next.checked_sub(1) {
            if !a.free.remove(&top) && !a.punched.remove(&top) {
                break;
            }
            a.next = top;
        }
        if a.capacity > a.next {
            if let Some(resize) = self.dev.as_resize() {
                resize.resize(self.slot_offset(a.next, 0))?;
                a.capacity = a.next;
            }
        }
        // Kept for reuse without re-allocation: at most one grow step, and no more than is in use
        // (so the file holds at most twice what the snapshots need, plus one step).
        let reserve = self.step_slots().min(self.in_use()) as usize;
        if a.free.len() <= reserve {
            return Ok(());
        }
        let Some(discard) = self.dev.as_discard() else {
            return Ok(());
        };
        let beyond = *a
            .free
            .iter()
            .nth(reserve)
            .expect("more than `reserve` free slots");
        let mut punch = a.free.split_off(&beyond);
        // The runs go in ascending order: the slots before a failed discard are punched, the
        // rest stay free (allocated).
        let mut punched_to = beyond;
        let r = for_each_run(punch.iter().copied(), |first, n| {
            discard.discard(self.slot_offset(first, 0), n * self.block_size)?;
            punched_to = first + n;
            Ok(())
        });
        let kept = punch.split_off(&punched_to);
        a.punched.extend(punch);
        a.free.extend(kept);
        r
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
        a.punched.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::ErrorKind;

    const BS: u64 = 4096;
    /// `MemDevice` allocates memory in chunks of 16 slots.
    const CHUNK: u64 = 16 * BS;

    fn area(limit: Option<u64>) -> (Arc<MemDevice>, DiffArea) {
        let dev = Arc::new(MemDevice::new(0));
        let area = DiffArea::new(dev.clone(), 0, BS, limit);
        (dev, area)
    }

    fn slot_bytes(area: &DiffArea, slot: u64) -> Vec<u8> {
        let mut b = vec![0u8; BS as usize];
        area.read(slot, 0, &mut b).unwrap();
        b
    }

    #[test]
    fn runs_are_found_in_ascending_slots() {
        let mut runs = Vec::new();
        for_each_run([1, 2, 3, 7, 9, 10], |first, n| {
            runs.push((first, n));
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, [(1, 3), (7, 1), (9, 2)]);
        for_each_run([], |_, _| panic!("no run in nothing")).unwrap();
    }

    /// Why (issue 11 §5): the diff area never gave space back. Freed slots at the top are cut off,
    /// the rest beyond a reserve (as many as are in use) are punched, and reuse takes the kept free
    /// slots, then the punched ones, before the device grows.
    #[test]
    fn release_trims_the_top_punches_beyond_the_reserve_and_reuse_comes_first() {
        let (dev, area) = area(None);
        for s in 0..64 {
            assert_eq!(area.alloc().unwrap(), s);
            area.write(s, 0, &[s as u8 + 1; BS as usize]).unwrap();
        }
        let grown = dev.len();
        assert!(grown >= 64 * BS);
        for s in (0..40).chain(56..64) {
            area.free(s);
        }
        assert_eq!(area.in_use(), 16);
        area.release().unwrap();
        // The top (56..64 and the unused growth) is cut off; 16 free slots are kept, 24 punched.
        assert_eq!(dev.len(), 56 * BS);
        for s in 0..16 {
            assert_eq!(
                slot_bytes(&area, s),
                [s as u8 + 1; BS as usize],
                "kept slot {s}"
            );
        }
        for s in 16..40 {
            assert_eq!(slot_bytes(&area, s), [0; BS as usize], "punched slot {s}");
        }
        for s in 40..56 {
            assert_eq!(
                slot_bytes(&area, s),
                [s as u8 + 1; BS as usize],
                "used slot {s}"
            );
        }
        // Chunk 1 (slots 16..32) is given back whole; 32..40 share a chunk with used slots.
        assert_eq!(dev.allocated_bytes(), 3 * CHUNK);

        // Reuse: the kept slots, then the punched ones (re-allocated), then growth.
        let got: Vec<u64> = (0..41).map(|_| area.alloc().unwrap()).collect();
        let want: Vec<u64> = (0..40).chain([56]).collect();
        assert_eq!(got, want);
        assert!(dev.len() > 56 * BS, "grew only once nothing was free");
        assert_eq!(area.in_use(), 57);
    }

    #[test]
    fn releasing_everything_empties_the_device() {
        let (dev, area) = area(None);
        for s in 0..100 {
            area.alloc().unwrap();
            area.write(s, 0, &[7; BS as usize]).unwrap();
        }
        for s in 0..100 {
            area.free(s);
        }
        area.release().unwrap();
        assert_eq!((dev.len(), dev.allocated_bytes()), (0, 0));
        assert_eq!(area.alloc().unwrap(), 0, "reuse starts at slot 0");
    }

    #[test]
    fn restore_then_release_gives_back_what_no_snapshot_names() {
        let (dev, area) = area(None);
        for s in 0..40 {
            area.alloc().unwrap();
            area.write(s, 0, &[9; BS as usize]).unwrap();
        }
        // As after a reopen: only 3 and 33 are in use.
        area.restore(&[3, 33]);
        assert_eq!(area.in_use(), 2);
        area.release().unwrap();
        assert_eq!(dev.len(), 34 * BS);
        // Two free slots are kept (as many as are in use): 0 and 1; the rest is punched.
        for s in (0..34).filter(|s| ![0, 1, 3, 33].contains(s)) {
            assert_eq!(slot_bytes(&area, s), [0; BS as usize], "slot {s}");
        }
        assert_eq!(slot_bytes(&area, 1), [9; BS as usize]);
        assert_eq!(slot_bytes(&area, 33), [9; BS as usize]);
    }

    /// A device that cannot grow: full means the area reached its own size.
    struct Fixed(MemDevice);

    impl BlockDevice for Fixed {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
            self.0.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
            self.0.write_at(buf, offset)
        }
        fn flush(&self) -> Result<()> {
            Ok(())
        }
        fn len(&self) -> u64 {
            self.0.len()
        }
    }

    #[test]
    fn the_limit_and_a_device_that_cannot_grow_are_the_area_full() {
        let (_, limited) = area(Some(2));
        limited.alloc().unwrap();
        limited.alloc().unwrap();
        let e = limited.alloc().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.is_area_full(), "{e}");

        let fixed = DiffArea::new(Arc::new(Fixed(MemDevice::new(2 * BS))), 0, BS, None);
        fixed.alloc().unwrap();
        fixed.alloc().unwrap();
        let e = fixed.alloc().unwrap_err();
        assert!(e.is_area_full() && e.kind() == ErrorKind::NoSpace, "{e}");
    }
}
