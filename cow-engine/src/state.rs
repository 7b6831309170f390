//! A volume's in-memory metadata: its size and the chain of snapshots with their block maps
//! ([`State`], [`Snap`]), and the transitions that both the live volume and journal replay make
//! (create, delete with its hand-off to the elder).
//!
//! Shared by `persist` (replay rebuilds a [`State`] record by record; a checkpoint writes one out)
//! and `volume` (which holds it behind its write gate); this module depends on neither.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{SnapshotOptions, MIN_BLOCK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::map::{BlockBitmap, BlockMap, Entry};

/// A snapshot's id within its volume: assigned in increasing order by
/// [`Volume::create_snapshot`](crate::Volume::create_snapshot) and never reused, across reopens
/// and crashes included (the journal persists the high-water mark, non-persistent snapshots'
/// ids too). A volume whose durability is [`Volatile`](crate::Durability::Volatile) keeps
/// nothing across a reopen: its ids start again at 1. Its number (`get`, `Display`) is what the
/// C ABI and the journal carry; serialises as that number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SnapshotId(u64);

impl SnapshotId {
    /// The id with number `n` (as the C ABI or a stored reference gives it).
    pub const fn new(n: u64) -> Self {
        SnapshotId(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for SnapshotId {
    fn from(n: u64) -> Self {
        SnapshotId(n)
    }
}

impl From<SnapshotId> for u64 {
    fn from(id: SnapshotId) -> Self {
        id.0
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One snapshot in the chain.
pub(crate) struct Snap {
    pub(crate) id: SnapshotId,
    /// Size in bytes (the volume's size when it was taken).
    pub(crate) len: u64,
    pub(crate) map: BlockMap,
    /// The blocks `map` holds, one bit each: a dense, cache-resident summary the write path checks
    /// before touching `map` (an overwrite of a preserved block then misses no cache line of the
    /// map). Set after the entry is published; only a hint (empty after a reopen, filled as writes
    /// find entries preserved), and never set for a block `map` lacks: the volume never returns an
    /// entry to untouched (whatever did so would have to clear the bit too).
    pub(crate) copied: BlockBitmap,
    pub(crate) overlay: Option<BlockMap>,
    pub(crate) persistent: bool,
    pub(crate) pinned: bool,
    pub(crate) metadata: Vec<u8>,
    /// Blocks below this are already copied by an interrupted split.
    pub(crate) split_cursor: u64,
    /// While a split runs: blocks written to the snapshot since it started (copied again at the end).
    pub(crate) split_dirty: Mutex<Option<BTreeSet<u64>>>,
    /// True while `split_dirty` tracks writes, so a snapshot write takes its mutex only then. Set
    /// only with the state's gate held exclusively: every writer holds the gate shared, so it
    /// sees the flag once tracking has started. Cleared with the gate held either way (a writer
    /// that still sees it set finds no tracking under the mutex, which is harmless).
    pub(crate) splitting: AtomicBool,
    /// How many volumes are stacked on this snapshot (each holds one count while it lives, see
    /// `StackHold`): while any is, deleting the snapshot is refused; a split hands it over.
    pub(crate) stacked: Arc<AtomicUsize>,
}

impl Snap {
    /// A new snapshot of `len` bytes (`len >> shift` blocks) with empty maps.
    pub(crate) fn new(id: SnapshotId, len: u64, shift: u32, options: SnapshotOptions) -> Snap {
        let blocks = len >> shift;
        Snap {
            id,
            len,
            map: BlockMap::new(blocks),
            copied: BlockBitmap::new(blocks),
            overlay: options.writable.then(|| BlockMap::new(blocks)),
            persistent: options.persistent,
            pinned: options.pinned,
            metadata: options.metadata,
            split_cursor: 0,
            split_dirty: Mutex::new(None),
            splitting: AtomicBool::new(false),
            stacked: Arc::default(),
        }
    }

    /// Fails with [`ErrorKind::BadState`] naming the snapshot while a volume is stacked on it.
    pub(crate) fn check_not_stacked_on(&self) -> Result<()> {
        // Relaxed: a hold is taken with the gate held shared and this runs with it held
        // exclusively, so the gate orders them; a release racing with this only makes a
        // refusal that a retry would not meet.
        match self.stacked.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "snapshot {} is the origin of {n} stacked volume(s); destroy or drop them, \
                     or split them off, first",
                    self.id
                ),
            )
            .with_snapshot(self.id)),
        }
    }

    /// The snapshot's size in blocks.
    pub(crate) fn blocks(&self, shift: u32) -> u64 {
        self.len >> shift
    }

    /// Fails with [`ErrorKind::Busy`] while a split of this snapshot runs.
    pub(crate) fn check_not_splitting(&self) -> Result<()> {
        if self.split_dirty.lock().is_some() {
            return Err(Error::new(
                ErrorKind::Busy,
                "a split of this snapshot is already running",
            )
            .with_snapshot(self.id));
        }
        Ok(())
    }
}

/// The volume's metadata: what the journal records and a checkpoint writes out.
pub(crate) struct State {
    pub(crate) len: u64,
    /// Blocks preserved in some snapshot's map (set before the entry is published, cleared only
    /// when no snapshot is left): a read of an unset block skips the walk along the chain.
    pub(crate) touched: BlockBitmap,
    pub(crate) snaps: Vec<Snap>,
    pub(crate) next_id: SnapshotId,
    /// A revert interrupted by a crash: (snapshot, first block not yet copied).
    pub(crate) pending_revert: Option<(SnapshotId, u64)>,
}

impl State {
    /// A volume of `len` bytes without snapshots.
    pub(crate) fn empty(len: u64) -> State {
        State {
            len,
            touched: BlockBitmap::new(len / u64::from(MIN_BLOCK_SIZE)),
            snaps: Vec::new(),
            next_id: SnapshotId::new(1),
            pending_revert: None,
        }
    }

    /// The position of snapshot `id` in the chain; [`ErrorKind::NotFound`] if it has none.
    pub(crate) fn index_of(&self, id: SnapshotId) -> Result<usize> {
        self.snaps
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| Error::no_snapshot(id))
    }

    /// Snapshot `id`, to change; [`ErrorKind::NotFound`] if there is none.
    pub(crate) fn snap_mut(&mut self, id: SnapshotId) -> Result<&mut Snap> {
        let i = self.index_of(id)?;
        Ok(&mut self.snaps[i])
    }

    /// True if a preservation into the newest map must be durable before the origin write.
    pub(crate) fn any_persistent(&self) -> bool {
        self.snaps.iter().any(|s| s.persistent)
    }

    /// Appends snapshot `id` of `len` bytes as the newest, with empty maps; the next id is
    /// `id + 1`.
    pub(crate) fn push_snapshot(
        &mut self,
        id: SnapshotId,
        len: u64,
        shift: u32,
        options: SnapshotOptions,
    ) {
        self.snaps.push(Snap::new(id, len, shift, options));
        self.next_id = SnapshotId::new(id.get() + 1);
    }

    /// Makes sure snapshot `i` can be removed: the elder that receives its entries has its map's
    /// directory reserved. Called before the delete is logged, so a refusal changes nothing.
    pub(crate) fn reserve_elder(&self, i: usize) -> Result<()> {
        if i > 0 {
            self.snaps[i - 1].map.reserve()?;
        }
        Ok(())
    }

    /// Removes snapshot `i` from the chain, handing the entries its elder needs to the elder, and
    /// forgets a pending revert to it. Returns the slots no longer referenced. Shared by delete
    /// and journal replay (after [`State::reserve_elder`]).
    pub(crate) fn remove_snapshot(&mut self, i: usize, shift: u32) -> Vec<u64> {
        let snap = self.snaps.remove(i);
        let mut freed = Vec::new();
        if i > 0 {
            let elder = &mut self.snaps[i - 1];
            let elder_blocks = elder.blocks(shift);
            for (block, slot) in snap.map.preserved_entries() {
                if block < elder_blocks && matches!(elder.map.get(block), Entry::Untouched) {
                    elder.map.set_preserved(block, slot);
                } else {
                    freed.push(slot);
                }
            }
        } else {
            snap.map.for_each_preserved(|_, slot| freed.push(slot));
        }
        if let Some(ov) = &snap.overlay {
            ov.for_each_preserved(|_, slot| freed.push(slot));
        }
        if self.pending_revert.is_some_and(|(s, _)| s == snap.id) {
            self.pending_revert = None;
        }
        freed
    }

    /// The slots referenced by the state, sorted; a slot referenced twice is corruption.
    pub(crate) fn used_slots(&self) -> Result<Vec<u64>> {
        let mut used = Vec::new();
        for s in &self.snaps {
            s.map.for_each_preserved(|_, slot| used.push(slot));
            if let Some(ov) = &s.overlay {
                ov.for_each_preserved(|_, slot| used.push(slot));
            }
        }
        used.sort_unstable();
        if let Some(w) = used.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::corrupt(format!("diff slot {} is used twice", w[0])));
        }
        Ok(used)
    }
}
