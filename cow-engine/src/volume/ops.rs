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

/// Observable progress of a long copy: blocks done out of total, and a cancel flag.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
}

impl Progress {
    /// A fresh progress counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks copied so far (including those copied before a resume).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Blocks to copy in all; 0 until the operation has computed it.
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

    /// Percent done, VDS style: 0 to 99 while running (100 is reported only by the finished
    /// operation's handle).
    pub fn percent(&self) -> u32 {
        match self.total() {
            0 => 0,
            t => ((self.done().min(t) * 100) / t).min(99) as u32,
        }
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

/// See [`Volume::changed_blocks`].
pub(crate) fn changed_blocks(
    st: &State,
    shift: u32,
    from: SnapshotId,
    to: Option<SnapshotId>,
) -> Result<Vec<u64>> {
    changed_blocks_in(st, shift, from, to, 0..u64::MAX)
}

/// [`changed_blocks`] limited to the blocks `range`.
pub(crate) fn changed_blocks_in(
    st: &State,
    shift: u32,
    from: SnapshotId,
    to: Option<SnapshotId>,
    range: std::ops::Range<u64>,
) -> Result<Vec<u64>> {
    let a = st.index_of(from)?;
    let (lo, hi) = match to {
        Some(t) => {
            let b = st.index_of(t)?;
            if a == b {
                return Ok(Vec::new());
            }
            (a.min(b), Some(a.max(b)))
        }
        None => (a, None),
    };
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
    let lo_blocks = st.snaps[lo].map.capacity();
    let hi_blocks = match hi {
        Some(h) => st.snaps[h].map.capacity(),
        None => st.len >> shift,
    };
    out.extend(lo_blocks.max(range.start)..hi_blocks.min(range.end));
    Ok(sorted_union(out))
}

impl Inner {
    pub(crate) fn revert(&self, vol: &Volume, id: SnapshotId, progress: &Progress) -> Result<()> {
        let bs = self.block_size() as usize;
        let (blocks, persistent) = {
            let mut st = self.state.write();
            let i = st.index_of(id)?;
            let snap_blocks = st.snaps[i].blocks(self.shift);
            let resume_from = match st.pending_revert {
                Some((s, cursor)) if s == id => cursor,
                _ => 0,
            };
            let all: Vec<u64> = changed_blocks(&st, self.shift, id, None)?
                .into_iter()
                .filter(|&b| b < snap_blocks)
                .collect();
            let persistent = st.snaps[i].persistent;
            if st.pending_revert.map(|(s, _)| s) != Some(id) {
                self.log_sync(Record::RevertBegin { snapshot: id }, persistent)?;
                st.pending_revert = Some((id, 0));
            }
            progress.total.store(all.len() as u64, Ordering::Relaxed);
            let skip = all.partition_point(|&b| b < resume_from);
            progress.done.store(skip as u64, Ordering::Relaxed);
            (all[skip..].to_vec(), persistent)
        };
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
        self.announce(Event::RevertProgress {
            snapshot: id,
            done: progress.total(),
            total: progress.total(),
        });
        Ok(())
    }

    pub(crate) fn split(
        &self,
        id: SnapshotId,
        dest: &dyn BlockDevice,
        progress: &Progress,
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
        let result = self.split_copy(id, dest, progress, bs, blocks, start);
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
    ) -> Result<()> {
        progress.total.store(blocks, Ordering::Relaxed);
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
        self.announce(Event::SplitProgress {
            snapshot: id,
            done: blocks,
            total: blocks,
        });
        Ok(())
    }
}
