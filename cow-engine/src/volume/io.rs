//! The I/O paths: origin writes with copy-on-write, snapshot reads through the chain, snapshot writes
//! into the overlay.

use crate::error::{check_range, Error, ErrorKind, Result};
use crate::map::{Claim, CopyClaim, Entry};
use crate::persist::Record;

use crate::config::DiffFullPolicy;
use crate::state::{SnapshotId, State};

use super::diff_area::Reservation;
use super::Inner;

/// Deferred origin writes beyond this many bytes are settled (synced and written) at once.
const PENDING_LIMIT: u64 = 32 << 20;

/// What an origin write puts down.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// These bytes.
    Data(&'a [u8]),
    /// This many zero bytes (discard).
    Zeros(u64),
}

impl Payload<'_> {
    fn len(&self) -> u64 {
        match self {
            Payload::Data(d) => d.len() as u64,
            Payload::Zeros(n) => *n,
        }
    }
}

thread_local! {
    /// The block buffer copies-on-write use on this thread.
    static COPY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where a snapshot's block lives right now.
enum Source {
    Slot(u64),
    Origin,
}

impl Inner {
    /// Writes to the origin, preserving the old contents of each block first when the newest
    /// snapshot has not preserved it yet in this epoch.
    pub(crate) fn write_origin(&self, payload: Payload<'_>, offset: u64) -> Result<()> {
        self.write_origin_admitted(payload, offset, || Some(()))
            .map(|_| ())
    }

    /// [`Inner::write_origin`], admitted by `admit`: called each time the write has passed any
    /// freeze and holds the gate shared, it must not block; `None` refuses the write (nothing
    /// written, `Ok(false)`), `Some(guard)` lets it proceed with `guard` held until it is done.
    /// A write held by a freeze has therefore not been admitted yet: it is admitted (or refused)
    /// when the freeze releases it.
    pub(crate) fn write_origin_admitted<G>(
        &self,
        payload: Payload<'_>,
        offset: u64,
        mut admit: impl FnMut() -> Option<G>,
    ) -> Result<bool> {
        let len = payload.len();
        let len_usize =
            usize::try_from(len).map_err(|_| Error::invalid(format!("length {len} too large")))?;
        loop {
            let st = self.gate_for_write();
            let Some(_admitted) = admit() else {
                return Ok(false);
            };
            self.fence.check()?;
            if let Some(j) = &self.journal {
                j.check()?;
            }
            check_range(offset, len_usize, st.len)?;
            if len == 0 {
                return Ok(true);
            }
            // Relaxed: see `Inner::free_slot`.
            let frees = self.frees.load(std::sync::atomic::Ordering::Relaxed);
            // A refused reservation is the limit's (the area's own size): the headroom left
            // under it counts as room for the make-room below; a copy refused later is the
            // device's (it could not grow), with no room but what a deletion frees.
            let (preserved, headroom) = match self.reserve_for_write(&st, offset, len) {
                Ok(reservation) => (
                    self.preserve_range(&st, offset, len, reservation.as_ref()),
                    false,
                ),
                Err(e) => (Err(e), true),
            };
            match preserved {
                Ok(()) => {}
                // The policy is about the diff area's own size: a full file system never costs
                // a snapshot (the device's error names the file).
                Err(e) if e.is_area_full() => {
                    drop(st);
                    if self.policy != DiffFullPolicy::DeleteOldest {
                        return Err(e.with_offset(offset));
                    }
                    // Decided under the exclusive gate: room another writer freed meanwhile
                    // counts (retry), and so does a snapshot it left to delete.
                    self.make_room(offset, len, frees, headroom)
                        .map_err(|e| e.with_offset(offset))?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let data = match payload {
                Payload::Data(d) => d,
                Payload::Zeros(n) => {
                    // A discard drops whole ranges at once: settle the deferred blocks first.
                    self.sync_and_drain()?;
                    return self.zero_origin(offset, n).map(|()| true);
                }
            };
            // Blocks whose preservation is not durable yet take the new bytes in memory; the rest
            // go to the origin now.
            if self.pending.len() == 0 {
                self.origin.write_at(data, offset)?;
            } else {
                let direct = self.pending.lock().absorb(offset, len_usize, Some(data));
                for r in direct {
                    self.origin
                        .write_at(&data[r.clone()], offset + r.start as u64)?;
                }
            }
            if (self.pending.len() as u64) << self.shift > PENDING_LIMIT {
                self.sync_and_drain()?;
            }
            return Ok(true);
        }
    }

    /// Makes every journal record durable, then writes the deferred blocks to the origin.
    pub(crate) fn sync_and_drain(&self) -> Result<()> {
        self.fence.check()?;
        if let Some(j) = &self.journal {
            j.sync_all(self.diff.device().as_ref())?;
            self.pending.drain(self.origin.as_ref(), j.durable_seq())?;
        }
        Ok(())
    }

    fn zero_origin(&self, offset: u64, len: u64) -> Result<()> {
        if let Some(d) = self.origin.as_discard() {
            return d.discard(offset, len);
        }
        crate::device::write_zeros(self.origin.as_ref(), offset, len)
    }

    /// With a diff limit, promises the slots an origin write of `[offset, offset + len)` needs
    /// before anything is copied: a write the area cannot hold fails whole (an area-full error,
    /// nothing copied), its copies holding no slot for nothing. Blocks another writer is copying
    /// are counted too; what is not taken goes back when the reservation is dropped.
    fn reserve_for_write(
        &self,
        st: &State,
        offset: u64,
        len: u64,
    ) -> Result<Option<Reservation<'_>>> {
        let (Some(_), Some(newest)) = (self.diff.limit(), st.snaps.last()) else {
            return Ok(None);
        };
        let first = offset >> self.shift;
        let end = (((offset + len - 1) >> self.shift) + 1).min(newest.blocks(self.shift));
        let need = (first..end)
            .filter(|&b| !newest.copied.get(b) && !matches!(newest.map.get(b), Entry::Preserved(_)))
            .count() as u64;
        // An overwrite of blocks preserved already needs no slot: no lock taken.
        if need == 0 {
            return Ok(None);
        }
        self.diff.reserve(need).map(Some)
    }

    /// Preserves every block of `[offset, offset+len)` not yet preserved in the newest map, one
    /// block at a time in ascending order: claim, copy, record, publish. A writer holds at most one
    /// claim and never waits for another while holding it, so writers cannot deadlock; a block
    /// copied before a later one fails stays preserved (a retry finds it so; under a diff limit
    /// `reservation` holds the slots the write needs, so only a device refusing to grow fails it
    /// half-way). When a persistent snapshot needs the preservation, the block also enters the
    /// pending table (before it is published) with its old contents: its origin write then waits
    /// there until the record is durable, so no origin block is overwritten before its copy is
    /// durable, and no writer waits for a sync.
    fn preserve_range(
        &self,
        st: &State,
        offset: u64,
        len: u64,
        reservation: Option<&Reservation<'_>>,
    ) -> Result<()> {
        let Some(newest) = st.snaps.last() else {
            return Ok(());
        };
        let first = offset >> self.shift;
        let end = ((offset + len - 1) >> self.shift) + 1;
        let end = end.min(newest.blocks(self.shift));
        if first < end {
            // Before any claim: a refused directory allocation is this write's error.
            newest.map.reserve()?;
            newest.copied.reserve()?;
            st.touched.reserve()?;
        }
        let mut defer = None;
        for block in first..end {
            // The summary first: an overwrite of a preserved block reads one cached bit.
            if newest.copied.get(block) {
                continue;
            }
            let claim = match newest.map.claim(block) {
                Claim::Won(c) => c,
                Claim::Preserved(_) => {
                    newest.copied.set(block);
                    continue;
                }
            };
            let defer = *defer.get_or_insert_with(|| self.journal.is_some() && st.any_persistent());
            let slot = COPY_BUF.with_borrow_mut(|buf| {
                // Reused across calls: the copy overwrites the whole block, so stale bytes never
                // leak.
                buf.resize(self.block_size() as usize, 0);
                self.copy_block(st, newest.id, block, defer, reservation, buf)
            })?;
            claim.publish(slot);
            newest.copied.set(block);
        }
        Ok(())
    }

    /// Copies origin block `block` into a new slot, records it for `snapshot` (and enters it in the
    /// pending table if `defer`); returns the slot. On failure the slot is released.
    fn copy_block(
        &self,
        st: &State,
        snapshot: SnapshotId,
        block: u64,
        defer: bool,
        reservation: Option<&Reservation<'_>>,
        buf: &mut [u8],
    ) -> Result<u64> {
        let slot = self.diff.alloc_from(reservation)?;
        let copied = (|| -> Result<()> {
            // The old contents are read exactly once, whether the write covers the block or not.
            self.origin.read_at(buf, block << self.shift)?;
            self.diff.write(slot, 0, buf)?;
            if let Some(j) = &self.journal {
                let seq = j.append(&Record::Preserve {
                    snapshot,
                    block,
                    slot,
                })?;
                if defer {
                    self.pending
                        .insert(block, seq, buf.to_vec().into_boxed_slice());
                }
            }
            st.touched.set(block);
            Ok(())
        })();
        match copied {
            Ok(()) => Ok(slot),
            Err(e) => {
                self.diff.free(slot);
                Err(e)
            }
        }
    }

    /// Where block `block` of snapshot `i` lives, not counting its overlay.
    fn locate(&self, st: &State, i: usize, block: u64) -> Source {
        // Never preserved in any map (the newest map's current-epoch entries are rechecked by the
        // caller after its origin read): no walk along the chain.
        if !st.touched.get(block) {
            return Source::Origin;
        }
        for s in &st.snaps[i..] {
            if block >= s.blocks(self.shift) {
                // Newer snapshots are at least as large; a block past this one's end was never
                // preserved for an older snapshot.
                break;
            }
            if let Entry::Preserved(slot) = s.map.get(block) {
                return Source::Slot(slot);
            }
        }
        Source::Origin
    }

    /// Reads a piece of block `block` of snapshot `i` (as of its point in time, plus its overlay).
    fn read_snapshot_piece(
        &self,
        st: &State,
        i: usize,
        block: u64,
        within: u64,
        out: &mut [u8],
    ) -> Result<()> {
        if let Some(ov) = &st.snaps[i].overlay {
            if let Entry::Preserved(slot) = ov.get(block) {
                return self.diff.read(slot, within, out);
            }
        }
        self.read_frozen_piece(st, i, block, within, out)
    }

    /// Reads a piece of the point-in-time image of snapshot `i` (no overlay).
    fn read_frozen_piece(
        &self,
        st: &State,
        i: usize,
        block: u64,
        within: u64,
        out: &mut [u8],
    ) -> Result<()> {
        match self.locate(st, i, block) {
            Source::Slot(slot) => self.diff.read(slot, within, out),
            Source::Origin => {
                self.origin.read_at(out, (block << self.shift) + within)?;
                // A writer may have preserved and overwritten the block meanwhile (only the newest
                // map can change under the shared gate). Writers publish before they write the
                // origin, so if the entry is still not preserved our origin read saw the old data.
                let newest = st.snaps.last().expect("snapshot i exists");
                if block < newest.blocks(self.shift) {
                    if let Entry::Preserved(slot) = newest.map.get(block) {
                        return self.diff.read(slot, within, out);
                    }
                }
                Ok(())
            }
        }
    }

    /// Calls `f(block, within, range in buf)` for each block piece of `[offset, offset+len)`.
    fn for_each_piece(
        &self,
        offset: u64,
        len: usize,
        mut f: impl FnMut(u64, u64, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let bs = self.block_size();
        let mut done = 0usize;
        while done < len {
            let pos = offset + done as u64;
            let block = pos >> self.shift;
            let within = pos & (bs - 1);
            let n = ((bs - within) as usize).min(len - done);
            f(block, within, done..done + n)?;
            done += n;
        }
        Ok(())
    }

    pub(crate) fn read_snapshot(&self, id: SnapshotId, buf: &mut [u8], offset: u64) -> Result<()> {
        let st = self.state.read();
        let i = st.index_of(id)?;
        check_range(offset, buf.len(), st.snaps[i].len).map_err(|e| e.with_snapshot(id))?;
        self.for_each_piece(offset, buf.len(), |block, within, r| {
            self.read_snapshot_piece(&st, i, block, within, &mut buf[r])
        })
    }

    /// Reads snapshot `i`'s full block `block` (current contents) into `out`.
    pub(crate) fn read_snapshot_block(
        &self,
        st: &State,
        i: usize,
        block: u64,
        out: &mut [u8],
    ) -> Result<()> {
        self.read_snapshot_piece(st, i, block, 0, out)
    }

    pub(crate) fn write_snapshot(&self, id: SnapshotId, buf: &[u8], offset: u64) -> Result<()> {
        let st = self.state.read();
        if let Some(j) = &self.journal {
            j.check()?;
        }
        let i = st.index_of(id)?;
        let snap = &st.snaps[i];
        check_range(offset, buf.len(), snap.len).map_err(|e| e.with_snapshot(id))?;
        let Some(overlay) = &snap.overlay else {
            return Err(Error::new(ErrorKind::BadState, "snapshot is read-only").with_snapshot(id));
        };
        // Before any claim: a refused directory allocation is this write's error.
        overlay.reserve().map_err(|e| e.with_snapshot(id))?;
        self.for_each_piece(offset, buf.len(), |block, within, r| {
            let piece = &buf[r];
            match overlay.claim(block) {
                Claim::Preserved(slot) => self.diff.write(slot, within, piece)?,
                Claim::Won(claim) => {
                    self.fill_overlay_block(&st, i, block, within, piece, claim)?
                }
            }
            // Relaxed: see `Snap::splitting` (no split, no lock taken).
            if snap.splitting.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(dirty) = snap.split_dirty.lock().as_mut() {
                    dirty.insert(block);
                }
            }
            Ok(())
        })
    }

    /// First write to a block of a writable snapshot: a new slot gets the block's current contents
    /// merged with `piece`, then the overlay entry is published.
    fn fill_overlay_block(
        &self,
        st: &State,
        i: usize,
        block: u64,
        within: u64,
        piece: &[u8],
        claim: CopyClaim<'_>,
    ) -> Result<()> {
        let bs = self.block_size() as usize;
        let id = st.snaps[i].id;
        let slot = self.diff.alloc().map_err(|e| e.with_snapshot(id))?;
        let result = (|| -> Result<()> {
            if piece.len() == bs {
                self.diff.write(slot, 0, piece)?;
            } else {
                let mut full = vec![0u8; bs];
                self.read_frozen_piece(st, i, block, 0, &mut full)?;
                full[within as usize..within as usize + piece.len()].copy_from_slice(piece);
                self.diff.write(slot, 0, &full)?;
            }
            if let Some(j) = &self.journal {
                j.append(&Record::Overlay {
                    snapshot: id,
                    block,
                    slot,
                })?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                claim.publish(slot);
                Ok(())
            }
            Err(e) => {
                self.diff.free(slot);
                Err(e)
            }
        }
    }
}
