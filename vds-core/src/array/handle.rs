//! [`LunHandle`]: I/O addressed as a SCSI or NBD client addresses a LUN, by (initiator, host LUN
//! number), resolved once and checked per I/O, fenced by every change of access (see `fence.rs`).

use std::io::{IoSlice, IoSliceMut};
use std::sync::Arc;

use cow_engine::Volume;
use parking_lot::RwLock;

use super::fence::{Admitted, InFlight, LunFence};
use super::io::check_range_of;
use super::Array;
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{Access, LunId};
use crate::model::LunStatus;

/// What a handle last resolved, valid while its LUN's access epoch has not moved.
///
/// It holds the LUN's volume cell strongly, so that an I/O borrows it under the handle's own
/// cache lock and touches no reference count shared with other handles (a `Weak` upgrade per I/O
/// was two atomic read-modify-writes on a line every handle of the LUN writes). A change that
/// deletes or swaps the LUN moves its epoch, so the handle resolves again at its next call and
/// lets go of the cell then (or at its close); a deleted LUN's volume is retired by the delete,
/// so the cell kept until then reaches no file.
#[derive(Clone)]
struct Resolved {
    epoch: u64,
    backing: Arc<RwLock<Volume>>,
    size: u64,
    access: Access,
}

/// An open LUN as initiator `initiator` sees it at host LUN number `number`
/// ([`Array::open_lun`]): I/O without a look-up by name per call.
///
/// The handle is bound to the LUN the number addressed when it was opened. Every I/O checks,
/// against the array's current masking, that the initiator still sees that LUN at that number
/// with the access the I/O needs; when a change of access returns, no I/O admitted under the old
/// access is still running and every later one sees the new (see [`Array::set_mask`]). After
/// [`Array::swap_lun`] the old handle is refused with [`ErrorKind::AccessDenied`]; opening the
/// same number again reaches the replacement. Safe to share between threads (each thread may
/// also open a handle of its own, which avoids sharing counters).
///
/// Durability: [`LunHandle::write_at`], [`LunHandle::writev`], [`LunHandle::discard`] and
/// [`LunHandle::write_zeroes`] are durable once [`LunHandle::flush`] returns after them (or the
/// array closes); [`LunHandle::write_fua`] is durable when it returns.
pub struct LunHandle {
    array: Array,
    initiator: InitiatorId,
    number: u32,
    id: LunId,
    fence: Arc<LunFence>,
    slot: Arc<InFlight>,
    cache: RwLock<Option<Resolved>>,
}

impl std::fmt::Debug for LunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LunHandle")
            .field("initiator", &self.initiator)
            .field("number", &self.number)
            .field("lun", &self.id)
            .finish_non_exhaustive()
    }
}

impl Array {
    /// Opens the LUN that `initiator` sees at host LUN number `number` (what a SCSI or NBD client
    /// addresses), for I/O as that initiator. [`ErrorKind::NotFound`] if it sees no LUN there.
    pub fn open_lun(&self, initiator: &InitiatorId, number: u32) -> Result<LunHandle> {
        let id = {
            let core = self.inner.core.read();
            core.state
                .mask
                .host_view(initiator)
                .into_iter()
                .find(|(_, g)| g.number == number)
                .map(|(id, _)| id)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("initiator {initiator} sees no LUN at number {number}"),
                    )
                })?
        };
        // The fence is created (if new) under the admin lock's read side in `resolve` too; a LUN
        // deleted in between makes the first I/O refused, as for any deleted LUN.
        let fence = {
            let _core = self.inner.core.read();
            self.inner.fences.get(id)
        };
        let slot = fence.register();
        let h = LunHandle {
            array: self.clone(),
            initiator: initiator.clone(),
            number,
            id,
            fence,
            slot,
            cache: RwLock::new(None),
        };
        h.resolve()?;
        Ok(h)
    }
}

impl LunHandle {
    /// The initiator this handle does I/O as.
    pub fn initiator(&self) -> &InitiatorId {
        &self.initiator
    }

    /// The host LUN number it was opened at.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The LUN's size in bytes, as the initiator may use it now (refused as its I/O would be).
    pub fn size(&self) -> Result<u64> {
        self.with_current(|r| Ok(Some(r.size)))
    }

    /// The array's block size (the LUN's block size).
    pub fn block_size(&self) -> u32 {
        self.array.block_size()
    }

    /// Resolves the handle's access now (under the admin lock's read side) and caches it with
    /// the epoch it holds for; a refusal empties the cache (the volume is let go).
    ///
    /// The cache is written after the admin lock is let go, and only if no I/O of another thread
    /// holds it (`try_write`): an I/O may hold it while a freeze holds its write, and a resolve
    /// must never wait for a thaw (nor hold the admin lock while it waits). An answer not cached
    /// is resolved again at the next call.
    fn resolve(&self) -> Result<Resolved> {
        let r = self.resolve_now();
        if let Some(mut c) = self.cache.try_write() {
            *c = r.as_ref().ok().cloned();
        }
        r
    }

    /// The handle's access as the admin lock's read side sees it now.
    fn resolve_now(&self) -> Result<Resolved> {
        let core = self.array.inner.core.read();
        let epoch = self.fence.epoch();
        let (ini, n) = (&self.initiator, self.number);
        let denied = |why: &str| {
            Error::new(
                ErrorKind::AccessDenied,
                format!("the LUN initiator {ini} opened at number {n} {why}"),
            )
        };
        let lun = core
            .state
            .luns
            .get(&self.id)
            .ok_or_else(|| denied("was deleted"))?;
        let grant = core
            .state
            .access(self.id, ini)
            .ok_or_else(|| denied(&format!("({:?}) is masked from it now", lun.name)))?;
        if grant.number != n {
            return Err(denied(&format!(
                "({:?}) is at number {} now",
                lun.name, grant.number
            )));
        }
        if lun.status != LunStatus::Online {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("LUN {:?} is offline", lun.name),
            ));
        }
        if core.reverting.contains(&self.id) {
            return Err(super::io::reverting(&lun.name));
        }
        let backing = core.volumes[&self.id].clone();
        // A shadow LUN of a snapshot set is read-only until broken (`ArrayState::access`).
        let access = grant.access;
        Ok(Resolved {
            epoch,
            backing,
            size: lun.size,
            access,
        })
    }

    /// Calls `f` with the handle's access as of the LUN's current epoch: the cached one (borrowed
    /// under the handle's own cache lock, touching nothing another handle writes), or one
    /// resolved again.
    fn with_current<T>(&self, mut f: impl FnMut(&Resolved) -> Result<Option<T>>) -> Result<T> {
        loop {
            {
                let c = self.cache.read();
                if let Some(r) = &*c {
                    if r.epoch == self.fence.epoch() {
                        match f(r)? {
                            Some(t) => return Ok(t),
                            // Refused at admission: the epoch moved meanwhile.
                            None => continue,
                        }
                    }
                }
            }
            if let Some(t) = f(&self.resolve()?)? {
                return Ok(t);
            }
        }
    }

    /// Runs `op` on the LUN's volume once the access `want` is granted and `[offset, offset +
    /// len)` lies in the LUN. `op` gets the admission to call (for a read: before it starts; for a
    /// write: through the volume, once past any freeze) and answers `None` when it was refused:
    /// the access changed meanwhile, and is resolved again.
    fn run<'s, T>(
        &'s self,
        want: Access,
        offset: u64,
        len: u64,
        mut op: impl FnMut(&Volume, &dyn Fn() -> Option<Admitted<'s>>) -> Result<Option<T>>,
    ) -> Result<T> {
        self.with_current(|r| {
            if want == Access::ReadWrite && r.access == Access::ReadOnly {
                return Err(Error::new(
                    ErrorKind::AccessDenied,
                    format!(
                        "initiator {} has read-only access to the LUN at number {}",
                        self.initiator, self.number
                    ),
                ));
            }
            check_range_of(r.size, offset, len)?;
            let epoch = r.epoch;
            // The volume's lock, read side: a split replaces the volume under its write side.
            let vol = r.backing.read();
            let admit = || self.fence.enter(&self.slot, epoch);
            op(&vol, &admit)
        })
    }

    /// Reads `buf.len()` bytes at `offset`. [`ErrorKind::AccessDenied`] once the initiator no
    /// longer sees this LUN at this number, [`ErrorKind::OutOfRange`] past the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.run(Access::ReadOnly, offset, buf.len() as u64, |v, admit| {
            let Some(_a) = admit() else { return Ok(None) };
            v.read_at(buf, offset)?;
            Ok(Some(()))
        })
    }

    /// Reads `buf.len()` bytes at `offset` of engine shadow `shadow` of this LUN
    /// ([`Array::engine_snapshot_set`]): the LUN as it was when the shadow was taken. Needs read
    /// access to the LUN, as [`LunHandle::read_at`]; [`ErrorKind::NotFound`] if `shadow` is not
    /// one of the LUN's engine shadows, [`ErrorKind::OutOfRange`] past the shadow's end.
    pub fn read_shadow_at(
        &self,
        shadow: cow_engine::SnapshotId,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<()> {
        self.run(Access::ReadOnly, 0, 0, |v, admit| {
            let Some(_a) = admit() else { return Ok(None) };
            let size = super::shadows::check_shadow(v, &format!("#{}", self.number), shadow)?;
            check_range_of(size, offset, buf.len() as u64)?;
            v.snapshot(shadow)?.read_at(buf, offset)?;
            Ok(Some(()))
        })
    }

    /// Reads into `bufs` in turn, from `offset` on, as one admitted I/O.
    pub fn readv(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<()> {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        self.run(Access::ReadOnly, offset, len, |v, admit| {
            let Some(_a) = admit() else { return Ok(None) };
            let mut at = offset;
            for b in bufs.iter_mut() {
                v.read_at(b, at)?;
                at += b.len() as u64;
            }
            Ok(Some(()))
        })
    }

    /// Writes `buf` at `offset` (durable after the next [`LunHandle::flush`]). Refused, nothing
    /// written, without read-write access ([`ErrorKind::AccessDenied`]) or past the end.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.run(Access::ReadWrite, offset, buf.len() as u64, |v, admit| {
            Ok(v.write_at_admitted(buf, offset, admit)?.then_some(()))
        })
    }

    /// Writes `bufs` in turn from `offset` on, as one write (atomic with respect to snapshots,
    /// as [`LunHandle::write_at`]).
    pub fn writev(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        match bufs {
            [] => self.write_at(&[], offset),
            [one] => self.write_at(one, offset),
            _ => self.write_at(
                &bufs
                    .iter()
                    .flat_map(|b| b.iter().copied())
                    .collect::<Vec<u8>>(),
                offset,
            ),
        }
    }

    /// Writes `buf` at `offset` durably (Force Unit Access): it is on stable storage, with every
    /// write completed before it, when this returns.
    pub fn write_fua(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.run(Access::ReadWrite, offset, buf.len() as u64, |v, admit| {
            if !v.write_at_admitted(buf, offset, admit)? {
                return Ok(None);
            }
            v.flush()?;
            Ok(Some(()))
        })
    }

    /// Makes every write to the LUN completed before this call durable (SCSI SYNCHRONIZE CACHE,
    /// NBD FLUSH). Needs read access.
    pub fn flush(&self) -> Result<()> {
        self.run(Access::ReadOnly, 0, 0, |v, admit| {
            let Some(_a) = admit() else { return Ok(None) };
            v.flush()?;
            Ok(Some(()))
        })
    }

    /// Discards `[offset, offset + len)` (SCSI UNMAP, NBD TRIM): it reads as zeros afterwards and
    /// its space is released where the storage can; snapshot LUNs of this LUN keep their data.
    /// Durable after the next flush.
    pub fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.run(Access::ReadWrite, offset, len, |v, admit| {
            Ok(v.discard_admitted(offset, len, admit)?.then_some(()))
        })
    }

    /// The extents `(start, length)` of `[offset, offset + len)` that may hold data, ascending,
    /// disjoint and whole blocks of the LUN (clipped to the range asked): every byte outside them
    /// reads as zeros (NBD block status; what a first full backup must copy). Exact for blocks
    /// written or discarded on the LUN; a snapshot LUN also counts the blocks its source preserved
    /// for it. Needs read access.
    pub fn allocation(&self, offset: u64, len: u64) -> Result<Vec<(u64, u64)>> {
        let bs = u64::from(self.block_size());
        self.run(Access::ReadOnly, offset, len, |v, admit| {
            let Some(_a) = admit() else { return Ok(None) };
            let ranges = v.allocated(offset, len)?;
            let end = offset + len;
            let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
            for r in ranges {
                let start = (r.start / bs * bs).max(offset);
                let stop = r.end.div_ceil(bs).saturating_mul(bs).min(end);
                match out.last_mut() {
                    Some((s0, l0)) if start <= *s0 + *l0 => *l0 = stop.max(*s0 + *l0) - *s0,
                    _ => out.push((start, stop - start)),
                }
            }
            Ok(Some(out))
        })
    }

    /// Writes zeros to `[offset, offset + len)` (SCSI WRITE SAME with zeros, NBD WRITE_ZEROES):
    /// the range reads as zeros afterwards. The space may be released (as by
    /// [`LunHandle::discard`]). Durable after the next flush.
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.discard(offset, len)
    }

    /// Whether a write of `len` bytes at `offset` would be admitted now, writing nothing: the
    /// errors of [`LunHandle::write_at`] for access and range (so a server answers a write it
    /// cannot serve for another reason, such as an unsupported flag, with the access error
    /// first, as the write itself would).
    pub fn check_write(&self, offset: u64, len: u64) -> Result<()> {
        self.run(Access::ReadWrite, offset, len, |_, _| Ok(Some(())))
    }
}
