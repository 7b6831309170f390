//! Long and whole-volume operations: changed blocks, revert, split.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::device::BlockDevice;
use crate::error::{Error, ErrorKind, Result};
use crate::persist::Record;

use crate::state::{SnapshotId, State};

use super::{Event, Inner, Volume};

/// Blocks copied between two progress records (and origin / destination flushes).
const PROGRESS_EVERY: usize = 1024;

/// Observable progress of a long copy: blocks done out of total, whether it finished, and a
/// cancel flag.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    finished: AtomicBool,
    cancel: AtomicBool,
}

impl Progress {
    /// A fresh progress counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks done so far: a resumed split counts those copied before the interruption too, a
    /// resumed revert only those this call copied (it counts what is left to copy).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Blocks to copy in all (for a resumed revert: in this call); 0 until the operation has
    /// computed it, and when there is nothing to copy.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Asks the operation to stop at the next block; it then fails with
    /// [`ErrorKind::Cancelled`] and can be resumed later.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// True once [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Records progress of a copy driven by a layer above (for example a full LUN resync).
    pub fn set(&self, done: u64, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    /// Marks the operation finished (successfully): [`Progress::percent`] is 100 from now on.
    /// The engine's own operations call it as they return `Ok`; a layer above that drives a copy
    /// with [`Progress::set`] calls it when its copy is complete.
    pub fn finish(&self) {
        // Relaxed: a status for display, not a hand-over of the copied data (the operation's
        // return, or the thread join that carries it, is what orders the data).
        self.finished.store(true, Ordering::Relaxed);
    }

    /// True once the operation finished successfully ([`Progress::finish`]).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Percent done, VDS style: 0 to 99 while running, 100 once finished (also when it had
    /// nothing to copy).
    pub fn percent(&self) -> u32 {
        if self.is_finished() {
            return 100;
        }
        match self.total() {
            0 => 0,
            t => ((self.done().min(t) * 100) / t).min(99) as u32,
        }
    }

    /// Starts a (possibly resumed) run: `total` blocks to copy, none copied, not finished.
    fn start(&self, total: u64) {
        self.finished.store(false, Ordering::Relaxed);
        self.set(0, total);
    }
}

/// Progress of [`Volume::revert`].
pub type RevertProgress = Progress;
/// Progress of [`Volume::split_snapshot`].
pub type SplitProgress = Progress;

fn sorted_union(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Candidate blocks compared per hold of the shared gate: the gate is let go between batches, so
/// a long comparison never holds back a snapshot creation, a delete or a freeze (nor, behind a
/// waiting one of those, the I/O) for longer than one batch.
const COMPARE_EVERY: usize = 256;

/// What [`Volume::changed_blocks`] compares: the older image's snapshot and size in blocks, and
/// the newer image's snapshot (`None`: the origin).
struct Images {
    older: SnapshotId,
    older_blocks: u64,
    newer: Option<SnapshotId>,
}

/// The blocks the maps say may differ between the images of `from` and `to` (the origin if
/// `None`), sorted: every block preserved or overwritten between them, and the blocks present in
/// only one of them. A superset of the blocks that differ (a block written back to its old
/// contents is among them); [`Inner::differing`] compares them.
fn candidate_blocks(
    st: &State,
    shift: u32,
    from: SnapshotId,
    to: Option<SnapshotId>,
    range: std::ops::Range<u64>,
) -> Result<(Images, Vec<u64>)> {
    let a = st.index_of(from)?;
    let (lo, hi) = match to {
        Some(t) => {
            let b = st.index_of(t)?;
            (a.min(b), Some(a.max(b)))
        }
        None => (a, None),
    };
    let images = Images {
        older: st.snaps[lo].id,
        older_blocks: st.snaps[lo].blocks(shift),
        newer: hi.map(|h| st.snaps[h].id),
    };
    if hi == Some(lo) {
        return Ok((images, Vec::new()));
    }
    let mut out = Vec::new();
    let maps_end = hi.unwrap_or(st.snaps.len());
    for s in &st.snaps[lo..maps_end] {
        s.map
            .for_each_preserved_in(range.clone(), |b, _| out.push(b));
    }
    for i in [Some(lo), hi].into_iter().flatten() {
        if let Some(ov) = &st.snaps[i].overlay {
            ov.for_each_preserved_in(range.clone(), |b, _| out.push(b));
        }
    }
    // Blocks present in one image and not the other (the volume grew between them).
    let newer_blocks = match hi {
        Some(h) => st.snaps[h].blocks(shift),
        None => st.len >> shift,
    };
    out.extend(images.older_blocks.max(range.start)..newer_blocks.min(range.end));
    Ok((images, sorted_union(out)))
}

impl Inner {
    /// See [`Volume::changed_blocks`]: the candidates from the maps among the blocks `range`,
    /// kept where the two images' contents differ.
    pub(crate) fn changed_blocks(
        &self,
        from: SnapshotId,
        to: Option<SnapshotId>,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u64>> {
        let (images, candidates) = {
            let st = self.state.read();
            candidate_blocks(&st, self.shift, from, to, range)?
        };
        self.differing(&images, &candidates)
    }

    /// The blocks of `candidates` (sorted) whose contents differ between `images`; a block
    /// present in only one image differs. Reads under the shared gate, taken a batch at a time
    /// (so I/O goes on meanwhile, and a structural change waits one batch at most); a snapshot
    /// deleted meanwhile is [`ErrorKind::NotFound`].
    fn differing(&self, images: &Images, candidates: &[u64]) -> Result<Vec<u64>> {
        let bs = self.block_size() as usize;
        let (mut a, mut b) = (vec![0u8; bs], vec![0u8; bs]);
        let mut out = Vec::new();
        for batch in candidates.chunks(COMPARE_EVERY) {
            let st = self.state.read();
            let older = st.index_of(images.older)?;
            let newer = images.newer.map(|n| st.index_of(n)).transpose()?;
            for &block in batch {
                if block < images.older_blocks {
                    self.read_snapshot_block(&st, older, block, &mut a)?;
                    match newer {
                        Some(n) => self.read_snapshot_block(&st, n, block, &mut b)?,
                        None => self.read_origin(&mut b, block << self.shift)?,
                    }
                    if a == b {
                        continue;
                    }
                }
                out.push(block);
            }
        }
        Ok(out)
    }

    /// Reverts the origin to snapshot `id`: copies back exactly the blocks (within the
    /// snapshot's size) whose contents differ, resuming after an interrupted revert's cursor.
    pub(crate) fn revert(&self, vol: &Volume, id: SnapshotId, progress: &Progress) -> Result<()> {
        let bs = self.block_size() as usize;
        // The blocks to copy: the candidates within the snapshot, from a pending revert's cursor
        // on, compared a batch at a time (origin I/O goes on meanwhile).
        let (images, candidates) = {
            let st = self.state.read();
            let resume_from = match st.pending_revert {
                Some((s, cursor)) if s == id => cursor,
                _ => 0,
            };
            let (images, candidates) = candidate_blocks(&st, self.shift, id, None, 0..u64::MAX)?;
            let candidates: Vec<u64> = candidates
                .into_iter()
                .filter(|&b| b >= resume_from && b < images.older_blocks)
                .collect();
            (images, candidates)
        };
        let blocks = self.differing(&images, &candidates)?;
        let persistent = {
            let mut st = self.state.write();
            let i = st.index_of(id)?;
            let persistent = st.snaps[i].persistent;
            if st.pending_revert.map(|(s, _)| s) != Some(id) {
                self.log_sync(Record::RevertBegin { snapshot: id }, persistent)?;
                st.pending_revert = Some((id, 0));
            }
            persistent
        };
        progress.start(blocks.len() as u64);
        let mut buf = vec![0u8; bs];
        for (n, chunk) in blocks.chunks(PROGRESS_EVERY).enumerate() {
            for &block in chunk {
                if progress.is_cancelled() {
                    return Err(
                        Error::new(ErrorKind::Cancelled, "revert cancelled").with_snapshot(id)
                    );
                }
                {
                    let st = self.state.read();
                    let i = st.index_of(id)?;
                    self.read_snapshot_block(&st, i, block, &mut buf)?;
                }
                vol.write_at(&buf, block << self.shift)?;
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            if n * PROGRESS_EVERY + chunk.len() < blocks.len() {
                // The cursor may only become durable after the blocks before it are.
                let cursor = chunk.last().map_or(0, |b| b + 1);
                self.sync_and_drain()?;
                self.origin.flush()?;
                self.log_sync(
                    Record::RevertProgress {
                        snapshot: id,
                        cursor,
                    },
                    false,
                )?;
                self.state.write().pending_revert = Some((id, cursor));
                self.announce(Event::RevertProgress {
                    snapshot: id,
                    done: progress.done(),
                    total: progress.total(),
                });
            }
        }
        self.sync_and_drain()?;
        self.origin.flush()?;
        self.log_sync(Record::RevertDone { snapshot: id }, persistent)?;
        self.state.write().pending_revert = None;
        progress.finish();
        self.announce(Event::RevertProgress {
            snapshot: id,
            done: progress.total(),
            total: progress.total(),
        });
        Ok(())
    }

    /// Splits snapshot `id` into `dest` (see [`Volume::split_snapshot_then`]): `before_final`
    /// runs once the copy is done, before the final pass takes the gate and deletes the snapshot.
    pub(crate) fn split(
        &self,
        id: SnapshotId,
        dest: &dyn BlockDevice,
        progress: &Progress,
        before_final: &mut dyn FnMut(),
    ) -> Result<()> {
        let bs = self.block_size() as usize;
        let (blocks, start) = {
            // Exclusive: no snapshot write is in flight when tracking starts, so every write that
            // lands after a block was copied is recorded and copied again at the end.
            let st = self.state.write();
            let s = &st.snaps[st.index_of(id)?];
            s.check_not_splitting()?;
            if dest.len() != s.len {
                return Err(Error::invalid(format!(
                    "split destination holds {} bytes, the snapshot {}",
                    dest.len(),
                    s.len
                ))
                .with_snapshot(id));
            }
            // Resuming: blocks below the cursor written after they were copied (before the
            // interruption) are among the overlay's blocks; copy those again too.
            let mut dirty = BTreeSet::new();
            if let Some(ov) = &s.overlay {
                ov.for_each_preserved(|b, _| {
                    if b < s.split_cursor {
                        dirty.insert(b);
                    }
                });
            }
            *s.split_dirty.lock() = Some(dirty);
            // Relaxed: set under the gate held exclusively, whose release orders it before every
            // writer's shared acquire (see `Snap::splitting`).
            s.splitting.store(true, Ordering::Relaxed);
            (s.blocks(self.shift), s.split_cursor)
        };
        let result = self.split_copy(id, dest, progress, bs, blocks, start, before_final);
        if result.is_err() {
            let st = self.state.read();
            if let Ok(i) = st.index_of(id) {
                *st.snaps[i].split_dirty.lock() = None;
                st.snaps[i].splitting.store(false, Ordering::Relaxed);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn split_copy(
        &self,
        id: SnapshotId,
        dest: &dyn BlockDevice,
        progress: &Progress,
        bs: usize,
        blocks: u64,
        start: u64,
        before_final: &mut dyn FnMut(),
    ) -> Result<()> {
        progress.start(blocks);
        progress.done.store(start, Ordering::Relaxed);
        let mut buf = vec![0u8; bs];
        let mut block = start;
        while block < blocks {
            let end = (block + PROGRESS_EVERY as u64).min(blocks);
            for b in block..end {
                if progress.is_cancelled() {
                    return Err(
                        Error::new(ErrorKind::Cancelled, "split cancelled").with_snapshot(id)
                    );
                }
                {
                    let st = self.state.read();
                    let i = st.index_of(id)?;
                    self.read_snapshot_block(&st, i, b, &mut buf)?;
                }
                dest.write_at(&buf, b << self.shift)?;
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            dest.flush()?;
            let mut st = self.state.write();
            let i = st.index_of(id)?;
            self.log_sync(
                Record::SplitProgress {
                    snapshot: id,
                    cursor: end,
                },
                false,
            )?;
            st.snaps[i].split_cursor = end;
            drop(st);
            block = end;
            if block < blocks {
                self.announce(Event::SplitProgress {
                    snapshot: id,
                    done: progress.done(),
                    total: blocks,
                });
            }
        }
        // The caller stops the I/O of whatever reads through the snapshot (a stacked volume)
        // here, before the snapshot goes; its own locks come before the gate, as in its I/O.
        before_final();
        // Final pass with the gate held exclusively: copy again what was written meanwhile, then
        // delete the snapshot; no write can slip between the two.
        let mut st = self.state.write();
        let i = st.index_of(id)?;
        let dirty = st.snaps[i].split_dirty.lock().take().unwrap_or_default();
        st.snaps[i].splitting.store(false, Ordering::Relaxed);
        for b in dirty {
            self.read_snapshot_block(&st, i, b, &mut buf)?;
            dest.write_at(&buf, b << self.shift)?;
        }
        dest.flush()?;
        self.delete_snapshot_locked(&mut st, id)?;
        drop(st);
        progress.finish();
        self.announce(Event::SplitProgress {
            snapshot: id,
            done: blocks,
            total: blocks,
        });
        Ok(())
    }
}
