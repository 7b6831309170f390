//! I/O: reads and writes as an initiator, refused where the mask denies them; changed blocks
//! between snapshot LUNs; the volume behind a LUN.

use std::sync::Arc;

use cow_engine::Volume;

use super::fence::LunFence;
use super::state::SourceRef;
use super::{Array, Backing};
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{Access, LunId};
use crate::model::{LunStats, LunStatus};

impl Array {
    /// The volume behind LUN `name` if `initiator` may do `want` with it now, with the LUN's size,
    /// its fence and the access epoch this answer holds for (see `fence.rs`).
    fn gate(
        &self,
        name: &str,
        initiator: &InitiatorId,
        want: Access,
    ) -> Result<(Backing, u64, Arc<LunFence>, u64)> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        let grant = core.state.mask.access(id, initiator).ok_or_else(|| {
            Error::new(
                ErrorKind::AccessDenied,
                format!("LUN {name:?} is masked from initiator {initiator}"),
            )
        })?;
        if want == Access::ReadWrite && core.state.lun(id)?.shadow {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("LUN {name:?} is a shadow LUN of a snapshot set, read-only until broken"),
            ));
        }
        if want == Access::ReadWrite && grant.access == Access::ReadOnly {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("initiator {initiator} has read-only access to LUN {name:?}"),
            ));
        }
        let l = core.state.lun(id)?;
        if l.status != LunStatus::Online {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("LUN {name:?} is offline"),
            ));
        }
        if core.reverting.contains(&id) {
            return Err(reverting(name));
        }
        let fence = self.inner.fences.get(id);
        let epoch = fence.epoch();
        Ok((core.volumes[&id].clone(), l.size, fence, epoch))
    }

    /// Reads `buf.len()` bytes of LUN `name` at `offset` as `initiator` (the engine's
    /// [`Volume::read_at`] order: the buffer, then the offset). Refused with
    /// [`ErrorKind::AccessDenied`] where the mask denies it, [`ErrorKind::OutOfRange`] past the end.
    /// Each call looks the LUN up by name and the initiator up in its mask: a server addressing
    /// LUNs by number opens a [`super::LunHandle`] instead ([`Array::open_lun`]).
    pub fn read_at(
        &self,
        name: &str,
        initiator: &InitiatorId,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<()> {
        loop {
            let (vol, size, fence, epoch) = self.gate(name, initiator, Access::ReadOnly)?;
            check_range_of(size, offset, buf.len() as u64)?;
            let vol = vol.read();
            let Some(_admitted) = fence.enter(fence.shared(), epoch) else {
                continue;
            };
            return Ok(vol.read_at(buf, offset)?);
        }
    }

    /// Writes `buf` to LUN `name` at `offset` as `initiator` (the engine's [`Volume::write_at`]
    /// order). Refused, nothing written, where the mask denies it or grants read-only access
    /// ([`ErrorKind::AccessDenied`]) or past the end ([`ErrorKind::OutOfRange`]). Not durable until
    /// the LUN is flushed ([`super::LunHandle::flush`]) or the array closes.
    pub fn write_at(
        &self,
        name: &str,
        initiator: &InitiatorId,
        buf: &[u8],
        offset: u64,
    ) -> Result<()> {
        loop {
            let (vol, size, fence, epoch) = self.gate(name, initiator, Access::ReadWrite)?;
            check_range_of(size, offset, buf.len() as u64)?;
            let vol = vol.read();
            if vol.write_at_admitted(buf, offset, || fence.enter(fence.shared(), epoch))? {
                return Ok(());
            }
        }
    }

    /// [`Array::read_at`] with the offset before the buffer.
    #[deprecated(note = "use `read_at(name, initiator, buf, offset)`, in the engine's order")]
    pub fn read(
        &self,
        name: &str,
        initiator: &InitiatorId,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        self.read_at(name, initiator, buf, offset)
    }

    /// [`Array::write_at`] with the offset before the buffer.
    #[deprecated(note = "use `write_at(name, initiator, buf, offset)`, in the engine's order")]
    pub fn write(
        &self,
        name: &str,
        initiator: &InitiatorId,
        offset: u64,
        buf: &[u8],
    ) -> Result<()> {
        self.write_at(name, initiator, buf, offset)
    }

    /// The blocks (of the array's block size, ascending) that differ between snapshot LUN `from`
    /// and `to`: a later snapshot LUN of the same source, or the source LUN itself (its current
    /// contents). What an incremental backup copies after backing up `from` in full. Exact
    /// ([`Volume::changed_blocks`]): the blocks the copy-on-write maps name, writes made to either
    /// snapshot LUN included, read from both and kept only where the bytes differ. Either order
    /// of two snapshot LUNs gives the same set. A LUN that is not a snapshot LUN of that source (or a split one) as `from` is
    /// [`ErrorKind::InvalidArgument`]; an unknown name [`ErrorKind::NotFound`].
    pub fn changed_blocks(&self, from: &str, to: &str) -> Result<Vec<u64>> {
        let (source, from_snapshot, to_snapshot) = self.changed_source(from, to)?;
        Ok(source.changed_blocks(from_snapshot, to_snapshot)?)
    }

    /// [`Array::changed_blocks`] as extents `(start, length)` in bytes, ascending, adjacent blocks
    /// merged, at most `max` per call, from byte `cursor` on (0 to start): returns the extents and
    /// the cursor of the next call (`None`: no more). Memory is bounded by `max` and a window of
    /// the LUN, not by its size: a fully changed 16 TiB LUN is paged through, never listed whole.
    /// A cursor that is not block-aligned, or a `max` of 0, is [`ErrorKind::InvalidArgument`].
    pub fn changed_extents(
        &self,
        from: &str,
        to: &str,
        cursor: u64,
        max: usize,
    ) -> Result<ChangedExtents> {
        /// Blocks looked at per pass over the maps.
        const WINDOW: u64 = 1 << 20;
        let bs = u64::from(self.block_size());
        if max == 0 || !cursor.is_multiple_of(bs) {
            return Err(Error::invalid(format!(
                "changed extents from cursor {cursor}, at most {max}: the cursor must be 0 or one                  a previous call returned, and the maximum positive"
            )));
        }
        let (source, from_snapshot, to_snapshot) = self.changed_source(from, to)?;
        let end = source.len().div_ceil(bs);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut b = cursor / bs;
        while b < end {
            let w_end = b.saturating_add(WINDOW).min(end);
            for blk in source.changed_blocks_in(from_snapshot, to_snapshot, b..w_end)? {
                let start = blk * bs;
                if let Some((s, l)) = out.last_mut() {
                    if *s + *l == start {
                        *l += bs;
                        continue;
                    }
                }
                if out.len() == max {
                    return Ok((out, Some(start)));
                }
                out.push((start, bs));
            }
            b = w_end;
        }
        Ok((out, None))
    }

    /// The volume whose maps tell what changed between snapshot LUN `from` and `to`, with the
    /// two snapshots (none for `to`: the source's current contents); both LUNs' held writes
    /// settled into it first.
    fn changed_source(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(
        Volume,
        cow_engine::SnapshotId,
        Option<cow_engine::SnapshotId>,
    )> {
        let (source, from_snapshot, to_snapshot, settle) = {
            let core = self.inner.core.read();
            let rec = |name: &str| -> Result<(LunId, Option<SourceRef>)> {
                let id = core.state.id_of(name)?;
                Ok((id, core.state.lun(id)?.source))
            };
            let (from_id, Some(f)) = rec(from)? else {
                return Err(Error::invalid(format!(
                    "LUN {from:?} is not a snapshot LUN (or was split from its source)"
                )));
            };
            let (to_id, to_source) = rec(to)?;
            let to_snapshot = match to_source {
                Some(t) if t.lun == f.lun => Some(t.snapshot),
                _ if to_id == f.lun => None,
                _ => {
                    return Err(Error::invalid(format!(
                        "LUN {to:?} is neither the source of snapshot LUN {from:?} nor another \
                         snapshot LUN of that source"
                    )))
                }
            };
            let volume = |id: LunId| core.volumes[&id].read().clone();
            let mut settle = vec![volume(from_id)];
            if to_snapshot.is_some() {
                settle.push(volume(to_id));
            }
            (volume(f.lun), f.snapshot, to_snapshot, settle)
        };
        // Without the array's lock from here: the maps are walked while other LUNs keep serving.
        // A snapshot LUN with snapshot LUNs of its own may hold writes in its volume until a flush
        // (deferred until their copy-on-write is durable); they must reach the source's overlay
        // before it is read.
        for v in &settle {
            v.flush()?;
        }
        Ok((source, from_snapshot, to_snapshot))
    }

    /// The volume behind LUN `name`, for the array's own use (it bypasses masking; a split
    /// replaces it, so it is not kept).
    pub(super) fn volume_of(&self, name: &str) -> Result<Volume> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        let v = core.volumes[&id].read().clone();
        Ok(v)
    }

    /// The administrator's read of `buf.len()` bytes of LUN `name` at `offset`, whatever its
    /// masking (as [`Array::export_lun`] reads): to examine a LUN masked to no one, such as the
    /// damaged LUN a swap kept. Fenced as host I/O is (a delete waits for it); refused for an
    /// unknown LUN ([`ErrorKind::NotFound`]), past the end ([`ErrorKind::OutOfRange`]) and for
    /// a damaged LUN ([`ErrorKind::Corrupt`]).
    pub fn admin_read_at(&self, name: &str, buf: &mut [u8], offset: u64) -> Result<()> {
        loop {
            let (vol, size, fence, epoch) = {
                let core = self.inner.core.read();
                let id = core.state.id_of(name)?;
                let fence = self.inner.fences.get(id);
                let epoch = fence.epoch();
                (
                    core.volumes[&id].clone(),
                    core.state.lun(id)?.size,
                    fence,
                    epoch,
                )
            };
            check_range_of(size, offset, buf.len() as u64)?;
            let vol = vol.read();
            let Some(_admitted) = fence.enter(fence.shared(), epoch) else {
                continue;
            };
            return Ok(vol.read_at(buf, offset)?);
        }
    }

    /// Every engine snapshot held on LUN `name`'s volume, oldest first: those its snapshot LUNs
    /// and shadow LUNs stand on (pinned, tagged for their LUN) and its engine shadows. For
    /// diagnosis; [`Array::engine_shadows`] lists the shadows alone.
    pub fn lun_engine_snapshots(&self, name: &str) -> Result<Vec<cow_engine::SnapshotInfo>> {
        Ok(self.volume_of(name)?.snapshots())
    }

    /// LUN `name`'s I/O statistics: the writes that reached its data, its diff area and its
    /// journal since the array opened it, and the engine snapshots it holds.
    /// [`ErrorKind::NotFound`] for an unknown LUN.
    pub fn lun_stats(&self, name: &str) -> Result<LunStats> {
        Ok(self.volume_of(name)?.stats())
    }
}

/// A page of changed extents `(start, length)` and the cursor of the next page (none: no more).
pub type ChangedExtents = (Vec<(u64, u64)>, Option<u64>);

/// The error of host I/O on LUN `name` while it is reverted or resynced.
pub(super) fn reverting(name: &str) -> Error {
    Error::new(
        ErrorKind::Busy,
        format!("LUN {name:?} is being reverted or resynced: host I/O resumes when that ends"),
    )
}

/// Refuses `len` bytes at `offset` that do not fit in a LUN of `size` bytes.
pub(super) fn check_range_of(size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::new(
            ErrorKind::OutOfRange,
            format!("{len} bytes at offset {offset} exceed the LUN's {size} bytes"),
        )),
    }
}
