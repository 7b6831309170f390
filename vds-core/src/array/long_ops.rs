//! Long operations, each on a thread of its own behind an [`AsyncHandle`]: clone, split and resync,
//! and the background forms of create and extend. A LUN runs one split or resync at a time.

use std::sync::Arc;

use cow_engine::{Progress, Volume};

use super::state::{Change, Intent};
use super::volumes::volume_config;
use super::{lun_busy, Array, AsyncHandle, Core};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::{LunId, MaskSpec};
use crate::model::Notification;

impl Array {
    /// Creates LUN `name` on a background thread; the handle waits, reports progress, cancels.
    pub fn create_lun_async(&self, name: &str, size: u64, mask: &MaskSpec) -> AsyncHandle<()> {
        let (a, n, m) = (self.clone(), name.to_string(), mask.clone());
        AsyncHandle::spawn(move |_p| a.create_lun(&n, size, &m))
    }

    /// Extends LUN `name` on a background thread.
    pub fn extend_lun_async(&self, name: &str, size: u64) -> AsyncHandle<()> {
        let (a, n) = (self.clone(), name.to_string());
        AsyncHandle::spawn(move |_p| a.extend_lun(&n, size))
    }

    /// Clones LUN `source` into a new, independent LUN `name` (masked to no one) on a background
    /// thread: a snapshot LUN taken now, then split from its source. All or nothing: the LUN is
    /// created under a `fill` intent that ends when the split is done; if the split fails or is
    /// cancelled the LUN is deleted again, and an open after a crash before the end deletes it.
    pub fn clone_lun(&self, source: &str, name: &str) -> AsyncHandle<()> {
        let (a, s, n) = (self.clone(), source.to_string(), name.to_string());
        AsyncHandle::spawn(move |p| {
            let id = a.snapshot_lun_filled(&s, &n, true)?;
            a.finish_fill(id, &n, a.split_lun_blocking(&n, p))
        })
    }

    /// Ends the `fill` intent of LUN `id` (`name`) whose filling had outcome `filled`: on
    /// success the LUN counts as made; on failure (or if the intent cannot be ended) it is
    /// deleted again and the error returned.
    pub(super) fn finish_fill(&self, id: LunId, name: &str, filled: Result<()>) -> Result<()> {
        let r = filled.and_then(|()| self.simple(Change::Done { id }));
        if r.is_err() {
            // What fails here the next open does: the intent names the LUN.
            let _ = self.delete_lun(name);
        }
        r
    }

    /// Splits snapshot LUN `name` from its source on a background thread: its contents are copied
    /// to a volume of its own, after which the source may be deleted.
    pub fn split_lun(&self, name: &str) -> AsyncHandle<()> {
        let (a, n) = (self.clone(), name.to_string());
        AsyncHandle::spawn(move |p| a.split_lun_blocking(&n, p))
    }

    /// Runs `work` as LUN `id`'s long operation: refused while another runs on it.
    pub(super) fn long_op<T>(
        &self,
        id: LunId,
        name: &str,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if !self.inner.core.write().busy.insert(id) {
            return Err(lun_busy(name));
        }
        let result = work();
        self.inner.core.write().busy.remove(&id);
        result
    }

    /// Splits snapshot LUN `name` from its source: its contents copied to an origin of its own.
    fn split_lun_blocking(&self, name: &str, progress: &Progress) -> Result<()> {
        let (id, src, src_vol, size, bs) = {
            let core = self.inner.core.read();
            let id = core.state.id_of(name)?;
            super::lun::check_not_damaged(&core, id, name)?;
            let l = core.state.lun(id)?;
            let src = l.source.ok_or_else(|| {
                Error::invalid(format!(
                    "LUN {name:?} is not a snapshot LUN (nothing to split from)"
                ))
            })?;
            if l.metadata.contains_key(super::state::metadata::EXPOSES_KEY) {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "LUN {name:?} exposes an engine shadow, which a split would take from \
                         its LUN; delete it instead"
                    ),
                ));
            }
            // Its own snapshot LUNs stand on its current volume object, which the split replaces.
            if let Some(dep) = core.state.luns.values().find(|d| d.is_snapshot_of(id)) {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "snapshot LUN {:?} depends on {name:?}; split or delete it first",
                        dep.name
                    ),
                ));
            }
            // Engine shadows of its stacked volume would not survive the volume's replacement.
            let own = core.volumes[&id].read().snapshots().len();
            if own > 0 {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "snapshot LUN {name:?} has {own} engine shadow(s) of its own; delete them \
                         before it is split"
                    ),
                ));
            }
            (
                id,
                src,
                core.volumes[&src.lun].clone(),
                l.size,
                core.state.block_size,
            )
        };
        self.long_op(id, name, || {
            let backing = self.inner.core.read().volumes[&id].clone();
            // The LUN's I/O runs under `backing`'s read lock and reads through the snapshot: it
            // stops (the write lock taken) once the copy is done, before the engine deletes the
            // snapshot, and goes on on the LUN's own volume, so no I/O finds its origin gone.
            let mut held = None;
            match self.lun_dir(id) {
                Some(dir) => {
                    // The engine copies the snapshot into the LUN's directory as its origin
                    // (resuming an interrupted copy), then deletes the snapshot.
                    src_vol.read().split_stacked_in_then(
                        &dir.fs,
                        src.snapshot,
                        &dir.path,
                        progress,
                        &mut || held = Some(backing.write()),
                    )?;
                    // The LUN's own volume now stands on its own origin.
                    let mut guard = held.take().unwrap_or_else(|| backing.write());
                    let placeholder = Volume::create_mem(u64::from(bs), volume_config(bs))?;
                    let old = std::mem::replace(&mut *guard, placeholder);
                    old.flush()?;
                    drop(old);
                    *guard = dir.open()?;
                }
                None => {
                    let dest = Arc::new(cow_engine::MemDevice::new(size));
                    {
                        let guard = backing.read();
                        if !guard.snapshots().is_empty() {
                            return Err(Error::new(
                                ErrorKind::BadState,
                                "an in-memory snapshot LUN with snapshots of its own cannot be split",
                            ));
                        }
                    }
                    src_vol.read().split_snapshot_then(
                        src.snapshot,
                        dest.as_ref(),
                        progress,
                        &mut || held = Some(backing.write()),
                    )?;
                    let mut guard = held.take().unwrap_or_else(|| backing.write());
                    *guard = Volume::on_device(dest, volume_config(bs))?;
                }
            }
            self.simple(Change::Detach { id })
        })
    }

    /// Resync (the copying alternative to the swap): makes LUN `target`'s contents equal to
    /// `source`'s. If `source` is a snapshot LUN of `target`, only the blocks that differ are copied
    /// (a revert); otherwise every block is. On a background thread, with progress and cancel.
    /// Fenced like a change of access: when the copy starts, no host I/O on `target` admitted
    /// before is still running, and host I/O on it is refused with [`ErrorKind::Busy`] until the
    /// resync ends, whether it succeeds or fails (a write landing meanwhile could be overwritten
    /// by the copy after it was acknowledged). An intent is durable before the first block is
    /// copied: an open after a crash finishes the resync (the revert resumes from the engine's
    /// durable cursor; a full copy starts again). A resync that fails or is cancelled is finished
    /// by running it again.
    pub fn resync_lun(&self, source: &str, target: &str) -> AsyncHandle<()> {
        let (a, s, t) = (self.clone(), source.to_string(), target.to_string());
        AsyncHandle::spawn(move |p| a.resync_blocking(&s, &t, p))
    }

    /// Copies LUN `source`'s contents onto LUN `target` (see [`Array::resync_lun`]).
    fn resync_blocking(&self, source: &str, target: &str, progress: &Progress) -> Result<()> {
        let (tid, src_rec, svol, tvol, bs) = {
            let core = self.inner.core.read();
            let sid = core.state.id_of(source)?;
            let tid = core.state.id_of(target)?;
            super::lun::check_not_damaged(&core, tid, target)?;
            if sid == tid {
                return Err(Error::invalid("a LUN cannot be resynced from itself"));
            }
            let (s, t) = (core.state.lun(sid)?, core.state.lun(tid)?);
            if s.size != t.size {
                return Err(Error::invalid(format!(
                    "LUN {source:?} has {} bytes, {target:?} has {}",
                    s.size, t.size
                )));
            }
            (
                tid,
                s.clone(),
                core.volumes[&sid].clone(),
                core.volumes[&tid].clone(),
                core.state.block_size,
            )
        };
        let intent = match src_rec.source {
            Some(src) if src.lun == tid => Intent::Revert {
                id: tid,
                snapshot: src.snapshot,
            },
            _ => Intent::Copy {
                id: tid,
                source: src_rec.id,
            },
        };
        self.long_op(tid, target, || {
            let tvol = tvol.read().clone();
            if let Intent::Revert { .. } = intent {
                // The snapshot LUN's own writes went through its stacked volume to the snapshot.
                svol.read().flush()?;
            }
            // Durable before the first block is copied: an open after a crash finishes it. Host
            // I/O is refused (fenced) until it ends: a write landing meanwhile could be
            // overwritten by the copy after it was acknowledged.
            self.set_restoring(tid, Some(intent))?;
            let r = match intent {
                Intent::Revert { snapshot, .. } => {
                    tvol.revert(snapshot, progress).map_err(Error::from)
                }
                _ => copy_all(&svol.read().clone(), &tvol, src_rec.size, bs, progress),
            };
            // Ended whatever the outcome: a resync that failed or was cancelled is finished by
            // running it again. If this fails, the next open finishes the resync.
            let done = self.set_restoring(tid, None);
            r.and(done)
        })
    }

    /// Marks LUN `id` as being restored by `intent` (a revert or a resync copy: host I/O refused,
    /// every handle opened before revoked for good, and the intent durable, so that an open
    /// after a crash finishes it) or, with `None`, no longer (its intent ended), fenced: when
    /// this returns no host I/O admitted under the old state is running.
    pub(super) fn set_restoring(&self, id: LunId, intent: Option<Intent>) -> Result<()> {
        self.transact(|core: &mut Core| {
            let name = core.state.lun(id)?.name.clone();
            let mut notes = vec![Notification::LunModify { name }];
            match intent {
                Some(intent) => {
                    notes.extend(Array::commit(core, &Change::Begin { intent })?);
                    core.start_restoring(id);
                }
                None => {
                    core.reverting.remove(&id);
                    if matches!(
                        core.state.intents.get(&id),
                        Some(Intent::Revert { .. } | Intent::Copy { .. })
                    ) {
                        Array::commit(core, &Change::Done { id })?;
                    }
                }
            }
            core.unfenced.lun(id);
            Ok(((), notes))
        })
    }
}

/// Copies the first `size` bytes of `src` onto `dst`, block by block (of `bs` bytes), then
/// flushes `dst`: a resync's full copy. Stops with [`ErrorKind::Cancelled`] when cancelled.
pub(super) fn copy_all(
    src: &Volume,
    dst: &Volume,
    size: u64,
    bs: u32,
    progress: &Progress,
) -> Result<()> {
    let total = size / u64::from(bs);
    let mut buf = vec![0u8; bs as usize];
    for b in 0..total {
        if progress.is_cancelled() {
            return Err(Error::new(ErrorKind::Cancelled, "resync cancelled"));
        }
        src.read_at(&mut buf, b * u64::from(bs))?;
        dst.write_at(&buf, b * u64::from(bs))?;
        progress.set(b + 1, total);
    }
    Ok(dst.flush()?)
}
