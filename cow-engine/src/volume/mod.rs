//! Volumes: an origin device, a diff area and a chain of snapshots, volsnap style.
//!
//! Snapshots are kept oldest first (the chain itself, with its transitions, is `crate::state`; the
//! settings are `crate::config`). Each owns a [`BlockMap`](crate::map::BlockMap) of the blocks
//! preserved during its epoch (from its creation until the next snapshot's): the first write to an
//! origin block in an epoch copies the old block once into the newest snapshot's map. A snapshot
//! reads a block from the first map at or after its own that holds it, else from the origin. A
//! writable snapshot also has an overlay map of the blocks written to it, consulted first.
//!
//! Concurrency: the write gate is the `RwLock<State>`. Every I/O call holds it shared for its whole
//! duration (so a write is atomic with respect to snapshot creation); structural changes (create,
//! delete, grow, freeze) hold it exclusively. Within the shared gate the block maps are lock-free.

mod diff_area;
mod directory;
mod gate;
mod io;
mod ops;
mod pending;
mod room;
mod snapshot;

pub use directory::SnapshotSplit;
pub use ops::{Progress, RevertProgress, SplitProgress};
pub use snapshot::{Snapshot, SnapshotInfo};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{
    check_metadata, DiffFullPolicy, SnapshotOptions, VolumeConfig, MAX_VOLUME_LEN,
};
use crate::device::{BlockDevice, DeviceRole, Discard, Fence, Fenced, MemDevice, Resize};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Hub, Subscription};
use crate::fs::{Fs, StdFs};
use crate::map::BlockBitmap;
use crate::persist::{Home, Journal, Parts, Record, Store};
use crate::state::{SnapshotId, State};
use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use diff_area::DiffArea;
use gate::Freeze;
use pending::Pending;
use snapshot::StackHold;

/// Something the layers above need to hear about, delivered through [`Volume::subscribe`] as it
/// happens. Serialises (serde) to one JSON object whose `"event"` names the variant in
/// snake_case, e.g. `{"event":"snapshot_deleted","snapshot":3,"reason":"diff_area_full"}` or
/// `{"event":"revert_progress","snapshot":2,"done":1024,"total":4096}`: the text the C layer and
/// the CLI print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A snapshot was deleted by the volume itself to make room in the diff area.
    SnapshotDeleted {
        /// The deleted snapshot.
        snapshot: SnapshotId,
        /// Why.
        reason: DeleteReason,
    },
    /// A revert to `snapshot` copied back `done` of `total` blocks; raised every 1,024 blocks
    /// and once when it finishes (`done == total`).
    RevertProgress {
        /// The snapshot the origin is reverted to.
        snapshot: SnapshotId,
        /// Blocks copied back so far by this call.
        done: u64,
        /// Blocks to copy back in all: those whose bytes differed from the snapshot's when the
        /// revert started (a resumed revert counts only what is left).
        total: u64,
    },
    /// A split of `snapshot` copied `done` of `total` blocks; raised every 1,024 blocks and
    /// once when it finishes (`done == total`; the snapshot is then deleted from the volume).
    SplitProgress {
        /// The snapshot being split out.
        snapshot: SnapshotId,
        /// Blocks copied so far (including those before a resume).
        done: u64,
        /// Blocks in the snapshot.
        total: u64,
    },
}

impl Event {
    /// The snapshot the event is about.
    pub fn snapshot(&self) -> SnapshotId {
        match self {
            Event::SnapshotDeleted { snapshot, .. }
            | Event::RevertProgress { snapshot, .. }
            | Event::SplitProgress { snapshot, .. } => *snapshot,
        }
    }
}

/// Why the volume deleted a snapshot on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// The diff area reached its limit (or the end of a diff device that cannot grow) and the
    /// policy is [`DiffFullPolicy::DeleteOldest`]. A full file system never deletes a snapshot.
    DiffAreaFull,
}

/// The outcome of [`Volume::thaw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThawOutcome {
    /// Writes were held until now.
    Thawed,
    /// The freeze deadline passed before the thaw; writes had already been released.
    Expired,
}

/// Usage figures of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeStats {
    /// Size in bytes.
    pub len: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Live snapshots.
    pub snapshots: usize,
    /// Diff-area slots holding data.
    pub diff_blocks_in_use: u64,
    /// The diff-area slot limit, if any.
    pub diff_blocks_limit: Option<u64>,
    /// Bytes in the active metadata journal (0 for volatile volumes).
    pub journal_bytes: u64,
    /// Bytes written to the origin device since the volume was opened (host writes, deferred
    /// blocks reaching it, reverts; not the blocks preserved for snapshots).
    pub origin_write_bytes: u64,
    /// Write operations on the origin device since the volume was opened (a discard counts as
    /// one, its length not as bytes written).
    pub origin_writes: u64,
    /// Bytes written to the diff area since the volume was opened (blocks preserved for
    /// snapshots, writes to writable snapshots).
    pub diff_write_bytes: u64,
    /// Write operations on the diff area since the volume was opened.
    pub diff_writes: u64,
    /// Bytes written to the metadata journal since the volume was opened (0 for volatile
    /// volumes).
    pub journal_write_bytes: u64,
    /// Write operations on the metadata journal since the volume was opened.
    pub journal_writes: u64,
}

pub(crate) struct Inner {
    pub(crate) state: RwLock<State>,
    pub(crate) freeze: Freeze,
    pub(crate) shift: u32,
    pub(crate) origin: Arc<dyn BlockDevice>,
    pub(crate) diff: DiffArea,
    pub(crate) journal: Option<Journal>,
    pub(crate) policy: DiffFullPolicy,
    /// Origin writes waiting for their preservation to be durable.
    pub(crate) pending: Pending,
    /// Counts the diff-area slots freed by snapshot deletions (see [`Inner::free_slot`]): a
    /// writer short of room reads it before its attempt, and its make-room, finding it moved,
    /// retries without deleting.
    pub(crate) frees: AtomicU64,
    events: Hub<Event>,
    /// The directory of a file volume, with the advisory lock that makes this handle the
    /// volume's one owner.
    home: Option<Home>,
    /// Closed when the volume is destroyed: every device of it (origin, diff area, journals)
    /// is behind it.
    pub(crate) fence: Arc<Fence>,
    /// For a volume stacked on a snapshot: its claim on the snapshot, released when the volume
    /// is destroyed or dropped.
    stacked_on: parking_lot::Mutex<Option<StackHold>>,
}

/// A volume: an origin device with copy-on-write snapshots.
///
/// `Volume` is a cheap handle (`Clone` shares it); every method takes `&self` and may be called from
/// many threads at once.
#[derive(Clone)]
pub struct Volume {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("len", &self.len())
            .field("block_size", &self.block_size())
            .finish_non_exhaustive()
    }
}

impl Volume {
    /// A volatile volume of `size` bytes held in memory (origin and diff area).
    pub fn create_mem(size: u64, config: VolumeConfig) -> Result<Volume> {
        config.validate(size)?;
        let origin: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(size));
        let diff: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(0));
        let parts = (origin, diff, None, None);
        Volume::assemble(parts, Opening::new(None), 0, &config, State::empty(size))
    }

    /// A volatile volume over an existing origin device (for example a writable [`Snapshot`], to
    /// stack volumes: the snapshot cannot be deleted while this volume lives), with its diff area
    /// in memory. The device's size must be a multiple of the block size.
    pub fn on_device(origin: Arc<dyn BlockDevice>, config: VolumeConfig) -> Result<Volume> {
        let size = origin.len();
        config.validate(size)?;
        let opening = Opening::on(origin.as_ref())?;
        let diff: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(0));
        let parts = (origin, diff, None, None);
        Volume::assemble(parts, opening, 0, &config, State::empty(size))
    }

    /// Creates a file volume of `size` bytes in directory `dir` (created if missing; its parent
    /// must exist; an existing non-empty directory is [`ErrorKind::AlreadyExists`]). Every step is
    /// durable when this returns (the files' sizes and contents, their directory entries): a power
    /// cut afterwards leaves a volume that opens.
    pub fn create(dir: impl AsRef<Path>, size: u64, config: VolumeConfig) -> Result<Volume> {
        Volume::create_in(&StdFs::shared(), dir, size, config)
    }

    /// [`Volume::create`] on the file system `fs` (a simulated one, in crash tests): every file
    /// and directory operation of the volume, then and later, goes through `fs`.
    pub fn create_in(
        fs: &Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        size: u64,
        config: VolumeConfig,
    ) -> Result<Volume> {
        config.validate(size)?;
        let store = Store::create_dir(fs, dir.as_ref(), size, &config)?;
        Volume::from_store(store, Opening::new(None), &config)
    }

    /// Creates a persistent volume on caller-supplied devices: `origin` (its size is the volume's),
    /// `diff`, and two journal devices (all but `origin` resizable). Used by tests that simulate
    /// crashes; [`Volume::create`] is the usual way.
    pub fn create_on_devices(
        origin: Arc<dyn BlockDevice>,
        diff: Arc<dyn BlockDevice>,
        journals: [Arc<dyn BlockDevice>; 2],
        config: VolumeConfig,
    ) -> Result<Volume> {
        let size = origin.len();
        config.validate(size)?;
        let store = Store::format(origin, diff, journals, None, &config)?;
        Volume::from_store(store, Opening::new(None), &config)
    }

    /// Opens a file volume created by [`Volume::create`], recovering every persistent snapshot.
    pub fn open(dir: impl AsRef<Path>) -> Result<Volume> {
        Volume::open_in(&StdFs::shared(), dir)
    }

    /// [`Volume::open`] on the file system `fs` (see [`Volume::create_in`]).
    pub fn open_in(fs: &Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<Volume> {
        let store = Store::open_dir(fs, dir.as_ref())?;
        Volume::recover(store, Opening::new(None))
    }

    /// Opens a persistent volume on devices formatted by [`Volume::create_on_devices`].
    pub fn open_on_devices(
        origin: Arc<dyn BlockDevice>,
        diff: Arc<dyn BlockDevice>,
        journals: [Arc<dyn BlockDevice>; 2],
    ) -> Result<Volume> {
        let store = Store::open(origin, diff, journals, None)?;
        Volume::recover(store, Opening::new(None))
    }

    fn from_store(store: Store, opening: Opening, config: &VolumeConfig) -> Result<Volume> {
        let size = store.origin.len();
        let data_offset = store.data_offset;
        let parts = store.into_parts(config.durability, &opening.fence)?;
        Volume::assemble(parts, opening, data_offset, config, State::empty(size))
    }

    fn recover(store: Store, opening: Opening) -> Result<Volume> {
        let config = store.config.clone();
        let data_offset = store.data_offset;
        let recovered = store.recover()?;
        let parts = recovered
            .store
            .into_parts(config.durability, &opening.fence)?;
        let mut state = recovered.state;
        let touched = BlockBitmap::new(state.len >> config.block_size.trailing_zeros());
        touched.reserve()?;
        for s in &state.snaps {
            s.map.for_each_preserved(|b, _| touched.set(b));
        }
        state.touched = touched;
        let vol = Volume::assemble(parts, opening, data_offset, &config, state)?;
        vol.inner.diff.restore(&recovered.used_slots);
        // Non-persistent snapshots do not survive a reopen, pinned or not.
        let mut st = vol.inner.state.write();
        let volatile: Vec<SnapshotId> = st
            .snaps
            .iter()
            .filter(|s| !s.persistent)
            .map(|s| s.id)
            .collect();
        for id in volatile {
            vol.inner.delete_snapshot_locked(&mut st, id)?;
        }
        drop(st);
        // Space a crash kept from being given back (freed, not yet punched or trimmed) goes now:
        // every slot the replayed state does not name is free for good.
        vol.inner.release_diff_space(None)?;
        Ok(vol)
    }

    /// The volume on `parts` (whose journals `opening`'s fence already guards).
    fn assemble(
        (origin, diff, journal, home): Parts,
        opening: Opening,
        data_offset: u64,
        config: &VolumeConfig,
        state: State,
    ) -> Result<Volume> {
        let bs = u64::from(config.block_size);
        let limit = config.diff_limit.map(|l| l / bs);
        let Opening { fence, stacked_on } = opening;
        Ok(Volume {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                freeze: Freeze::default(),
                shift: config.block_size.trailing_zeros(),
                origin: Fenced::wrap(origin, &fence, DeviceRole::Origin),
                diff: DiffArea::new(
                    Fenced::wrap(diff, &fence, DeviceRole::Diff),
                    data_offset,
                    bs,
                    limit,
                ),
                journal,
                policy: config.on_diff_full,
                pending: Pending::new(config.block_size.trailing_zeros()),
                frees: AtomicU64::new(0),
                events: Hub::default(),
                home,
                fence,
                stacked_on: parking_lot::Mutex::new(stacked_on),
            }),
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.inner.state.read().len
    }

    /// True if the volume has no bytes (never: sizes are positive).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        1 << self.inner.shift
    }

    /// Usage figures.
    pub fn stats(&self) -> VolumeStats {
        let st = self.inner.state.read();
        let io = &self.inner.fence.io;
        let [origin, diff, journal] = [DeviceRole::Origin, DeviceRole::Diff, DeviceRole::Journal]
            .map(|r| io[r as usize].get());
        VolumeStats {
            len: st.len,
            block_size: self.block_size(),
            snapshots: st.snaps.len(),
            diff_blocks_in_use: self.inner.diff.in_use(),
            diff_blocks_limit: self.inner.diff.limit(),
            journal_bytes: self.inner.journal.as_ref().map_or(0, |j| j.size()),
            origin_write_bytes: origin.0,
            origin_writes: origin.1,
            diff_write_bytes: diff.0,
            diff_writes: diff.1,
            journal_write_bytes: journal.0,
            journal_writes: journal.1,
        }
    }

    /// Reads `buf.len()` bytes of the origin at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let st = self.inner.state.read();
        crate::error::check_range(offset, buf.len(), st.len)?;
        self.inner.read_origin(buf, offset)
    }

    /// Writes `buf` to the origin at `offset`, preserving old blocks for the snapshots first.
    /// Atomic with respect to snapshot creation: a snapshot holds all of it or none of it.
    /// Concurrent writes to overlapping ranges are not ordered against each other, as on a disk:
    /// each block ends with the data of one of them (serialise them if the order matters).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.inner.write_origin(io::Payload::Data(buf), offset)
    }

    /// Discards `[offset, offset + len)`: it reads as zeros afterwards; snapshots keep their data.
    pub fn discard(&self, offset: u64, len: u64) -> Result<()> {
        self.inner.write_origin(io::Payload::Zeros(len), offset)
    }

    /// [`Volume::write_at`] admitted by `admit`, for a layer above that must know which writes
    /// are running (to fence them: wait for those it admitted, refuse the rest). `admit` is called
    /// once the write has passed any freeze, with the volume's gate held shared (it must not
    /// block, nor call into this volume); `None` refuses the write: nothing is written and this
    /// returns `Ok(false)`. `Some(guard)` lets the write proceed, `guard` held until it is done
    /// (`Ok(true)`). A write held by a freeze ([`Volume::freeze`]) is not admitted until the freeze
    /// releases it, so a layer waiting for its admitted writes never waits for a thaw. `admit` may
    /// be called again if the write has to retry (the diff area made room).
    pub fn write_at_admitted<G>(
        &self,
        buf: &[u8],
        offset: u64,
        admit: impl FnMut() -> Option<G>,
    ) -> Result<bool> {
        self.inner
            .write_origin_admitted(io::Payload::Data(buf), offset, admit)
    }

    /// [`Volume::discard`] admitted by `admit`, as [`Volume::write_at_admitted`] admits writes.
    pub fn discard_admitted<G>(
        &self,
        offset: u64,
        len: u64,
        admit: impl FnMut() -> Option<G>,
    ) -> Result<bool> {
        self.inner
            .write_origin_admitted(io::Payload::Zeros(len), offset, admit)
    }

    /// The ranges of the origin's `[offset, offset + len)` that may hold data, ascending and
    /// disjoint (see [`BlockDevice::allocated`]): every byte outside them reads as zeros. What the
    /// origin device reports (a file's extents, a memory device's written pieces), plus the blocks
    /// whose writes are held until a flush; a discarded range is a hole where the device punched
    /// one. A range past the end is [`ErrorKind::OutOfRange`].
    pub fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        let st = self.inner.state.read();
        crate::error::check_range(offset, usize::try_from(len).unwrap_or(usize::MAX), st.len)?;
        self.inner.origin_allocated(offset, len)
    }

    /// Makes every write completed before this call durable (origin, diff area and journal).
    pub fn flush(&self) -> Result<()> {
        {
            let _st = self.inner.state.read();
            self.inner.flush_all()?;
        }
        if self
            .inner
            .journal
            .as_ref()
            .is_some_and(|j| j.wants_checkpoint())
        {
            let st = self.inner.state.write();
            self.inner.maybe_checkpoint(&st)?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the metadata now, so the journal restarts small (it also happens on
    /// its own when the journal grows). A no-op for volatile volumes.
    pub fn checkpoint(&self) -> Result<()> {
        let st = self.inner.state.write();
        self.inner.fence.check()?;
        match &self.inner.journal {
            Some(j) => j.checkpoint(&st, self.inner.diff.device().as_ref()),
            None => Ok(()),
        }
    }

    /// Takes a snapshot: O(1) in the volume size. On a persistent volume the snapshot is durable
    /// when this returns.
    pub fn create_snapshot(&self, options: SnapshotOptions) -> Result<SnapshotId> {
        let mut st = self.inner.state.write();
        self.inner.create_snapshot_locked(&mut st, options)
    }

    /// A handle to snapshot `id` (a [`BlockDevice`]; writable if the snapshot is).
    pub fn snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        let st = self.inner.state.read();
        let i = st.index_of(id)?;
        Ok(Snapshot::new(self.clone(), id, st.snaps[i].len))
    }

    /// Every live snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        let st = self.inner.state.read();
        st.snaps.iter().map(SnapshotInfo::of).collect()
    }

    /// The properties of snapshot `id`.
    pub fn snapshot_info(&self, id: SnapshotId) -> Result<SnapshotInfo> {
        let st = self.inner.state.read();
        Ok(SnapshotInfo::of(&st.snaps[st.index_of(id)?]))
    }

    /// Deletes snapshot `id`. The oldest frees its slots; a newer one hands the entries its elder
    /// still needs to the elder. Durable when this returns; then the freed space is given back to
    /// the diff device (punched beyond a reserve, the free top trimmed). If giving it back fails,
    /// the error says the snapshot is deleted all the same. Refused ([`ErrorKind::BadState`])
    /// while a volume is stacked on the snapshot ([`Volume::create_stacked`],
    /// [`Volume::open_stacked`], [`Volume::on_device`]); a split
    /// ([`Volume::split_stacked`], [`Volume::split_snapshot`]) hands it over and deletes it all
    /// the same. A pinned snapshot is refused with [`ErrorKind::BadState`] too: unpin it first
    /// ([`Volume::set_pinned`]).
    pub fn delete_snapshot(&self, id: SnapshotId) -> Result<()> {
        let mut st = self.inner.state.write();
        let i = st.index_of(id)?;
        st.snaps[i].check_not_stacked_on()?;
        if st.snaps[i].pinned {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("snapshot {id} is pinned: unpin it before deleting it"),
            )
            .with_snapshot(id));
        }
        self.inner.delete_snapshot_locked(&mut st, id)
    }

    /// Pins or unpins snapshot `id`. A pinned snapshot is never deleted: not to make room in a
    /// full diff area, and not by [`Volume::delete_snapshot`] (only a split, a forced
    /// [`Volume::prepare_delete`] or, for a non-persistent one, a reopen removes it).
    pub fn set_pinned(&self, id: SnapshotId, pinned: bool) -> Result<()> {
        let mut st = self.inner.state.write();
        let i = st.index_of(id)?;
        self.inner
            .log_sync(Record::SetPinned { id, pinned }, st.snaps[i].persistent)?;
        st.snaps[i].pinned = pinned;
        Ok(())
    }

    /// Replaces the opaque metadata of snapshot `id` (names, properties of the layers above);
    /// at most [`MAX_METADATA`](crate::MAX_METADATA) bytes, stored atomically.
    pub fn set_metadata(&self, id: SnapshotId, metadata: &[u8]) -> Result<()> {
        check_metadata(metadata)?;
        let mut st = self.inner.state.write();
        let i = st.index_of(id)?;
        self.inner.log_sync(
            Record::SetMetadata {
                id,
                metadata: metadata.to_vec(),
            },
            st.snaps[i].persistent,
        )?;
        st.snaps[i].metadata = metadata.to_vec();
        Ok(())
    }

    /// The blocks whose contents differ between snapshot `from` and snapshot `to` (or the origin
    /// if `None`), sorted; either order of two snapshots gives the same set. A writable
    /// snapshot's image includes its own writes. Exact: the maps name the blocks written between
    /// the two images, and each of those is read from both and kept only where the bytes differ
    /// (so a block written back to its old contents, or restored by [`Volume::revert`], is not
    /// listed); the cost is two block reads per block written between them, done a few hundred
    /// blocks at a time while I/O goes on (a snapshot deleted meanwhile fails the call with
    /// [`ErrorKind::NotFound`]). Blocks present in
    /// only one image (the volume grew between the two) are always listed. Right after a
    /// finished revert to `from`, `changed_blocks(from, None)` holds only such blocks (none if
    /// the volume did not grow).
    pub fn changed_blocks(&self, from: SnapshotId, to: Option<SnapshotId>) -> Result<Vec<u64>> {
        self.inner.changed_blocks(from, to, 0..u64::MAX)
    }

    /// [`Volume::changed_blocks`] limited to the blocks `blocks` (block numbers): a window of a
    /// large volume, in memory proportional to the window, not to the volume.
    pub fn changed_blocks_in(
        &self,
        from: SnapshotId,
        to: Option<SnapshotId>,
        blocks: std::ops::Range<u64>,
    ) -> Result<Vec<u64>> {
        self.inner.changed_blocks(from, to, blocks)
    }

    /// Grows the volume to `new_len` bytes (a multiple of the block size); new space reads as zeros,
    /// snapshots keep their size. Needs a resizable origin device.
    pub fn grow(&self, new_len: u64) -> Result<()> {
        let mut st = self.inner.state.write();
        self.inner.grow_locked(&mut st, new_len)
    }

    /// Holds new writes until [`Volume::thaw`] or `timeout`, after draining those in flight
    /// (flush-and-hold). Fails with [`ErrorKind::BadState`] if already frozen and with
    /// [`ErrorKind::Timeout`] if in-flight writes do not drain within `timeout`.
    pub fn freeze(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        if !self.inner.freeze.hold(deadline) {
            return Err(Error::new(ErrorKind::BadState, "volume is already frozen"));
        }
        // Taking the gate exclusively drains every write in flight; writers arriving after it see
        // the hold (they check it after taking the gate) and wait.
        match self.inner.state.try_write_until(deadline) {
            Some(st) => {
                let r = self.inner.flush_all();
                drop(st);
                if let Err(e) = r {
                    self.inner.freeze.release();
                    return Err(e);
                }
                Ok(())
            }
            None => {
                self.inner.freeze.release();
                Err(Error::new(
                    ErrorKind::Timeout,
                    "writes in flight did not drain before the freeze deadline",
                ))
            }
        }
    }

    /// Releases held writes. Reports [`ThawOutcome::Expired`] if the freeze deadline had passed
    /// (writes were released then); fails with [`ErrorKind::BadState`] if not frozen.
    pub fn thaw(&self) -> Result<ThawOutcome> {
        match self.inner.freeze.release() {
            Some(false) => Ok(ThawOutcome::Thawed),
            Some(true) => Ok(ThawOutcome::Expired),
            None => Err(Error::new(ErrorKind::BadState, "volume is not frozen")),
        }
    }

    /// How many writes are waiting for a thaw right now (held by a freeze).
    pub fn held_writes(&self) -> usize {
        self.inner.freeze.held()
    }

    /// True while writes are held by a freeze.
    pub fn is_frozen(&self) -> bool {
        self.inner.freeze.is_held()
    }

    /// Receives the volume's [`Event`]s from now on, as they happen, in a bounded queue
    /// ([`crate::events`]: a subscriber that does not keep up is told how many it missed; the
    /// volume never waits for one). The subscription ends when the last handle of the volume is
    /// dropped.
    pub fn subscribe(&self) -> Subscription<Event> {
        self.inner.events.subscribe()
    }

    /// The volume's event hub, to forward its events into a subscription of another kind
    /// ([`Hub::forward_to`]).
    pub fn events(&self) -> &Hub<Event> {
        &self.inner.events
    }

    /// Reverts the origin to snapshot `id` (its current contents, if writable): copies back
    /// exactly the blocks within the snapshot's size whose contents differ
    /// ([`Volume::changed_blocks`]`(id, None)`, read when the revert starts), through the normal
    /// write path, so every snapshot stays unchanged. `progress` counts them (its total is their
    /// number; a second revert right after a finished one copies nothing) and reads 100 percent
    /// once the revert has finished. An interrupted revert is resumed by calling this again
    /// (after a reopen, [`Volume::pending_revert`] names it): the blocks below its durable cursor
    /// are not copied again, and the progress counts what is left.
    pub fn revert(&self, id: SnapshotId, progress: &RevertProgress) -> Result<()> {
        self.inner.revert(self, id, progress)
    }

    /// A revert that a crash (or a cancel) interrupted, if any: `(snapshot, cursor)`, where every
    /// block below `cursor` that the revert had to copy is copied and durable.
    pub fn pending_revert(&self) -> Option<(SnapshotId, u64)> {
        self.inner.state.read().pending_revert
    }

    /// Copies writable snapshot `id` into `dest` (a device of the snapshot's size), in block order,
    /// with progress, then deletes it from this volume: it stands alone on `dest`. Resumable: calling
    /// again after an interruption copies only what is left (the progress is journaled), so a
    /// resumed split must go to the same `dest`; for another one call [`Volume::restart_split`]
    /// first. A second split of the same snapshot while one runs is [`ErrorKind::Busy`].
    pub fn split_snapshot(
        &self,
        id: SnapshotId,
        dest: &dyn BlockDevice,
        progress: &SplitProgress,
    ) -> Result<()> {
        self.inner.split(id, dest, progress, &mut || {})
    }

    /// [`Volume::split_snapshot`], calling `before_final` once every block is copied, before the
    /// final pass (which copies again what was written meanwhile, under the volume's gate, and
    /// deletes the snapshot). A caller whose I/O reads through the snapshot (a stacked volume, see
    /// [`Volume::create_stacked`]) stops that I/O there, e.g. by taking the write lock it reads
    /// under, and moves it to `dest` after this returns: so no I/O finds the snapshot gone. Not
    /// called when the copy fails or is cancelled. `before_final` must not take this volume's
    /// locks or call into it.
    pub fn split_snapshot_then(
        &self,
        id: SnapshotId,
        dest: &dyn BlockDevice,
        progress: &SplitProgress,
        before_final: &mut dyn FnMut(),
    ) -> Result<()> {
        self.inner.split(id, dest, progress, before_final)
    }

    /// Forgets the progress of an interrupted split of snapshot `id`, so the next
    /// [`Volume::split_snapshot`] copies every block. Needed when the split goes to another
    /// destination than the interrupted one (a resumed split copies only what is left, and the
    /// blocks before the cursor would be missing there). A running split is [`ErrorKind::Busy`].
    pub fn restart_split(&self, id: SnapshotId) -> Result<()> {
        let mut st = self.inner.state.write();
        let i = st.index_of(id)?;
        st.snaps[i].check_not_splitting()?;
        if st.snaps[i].split_cursor == 0 {
            return Ok(());
        }
        let persistent = st.snaps[i].persistent;
        self.inner.log_sync(
            Record::SplitProgress {
                snapshot: id,
                cursor: 0,
            },
            persistent,
        )?;
        st.snaps[i].split_cursor = 0;
        Ok(())
    }

    /// Refuses (with [`ErrorKind::BadState`]) unless no snapshot depends on the volume, or `force`
    /// is set, in which case every snapshot is deleted. A snapshot a volume is stacked on is
    /// refused even with `force`, before anything is deleted. Call before removing a volume.
    pub fn prepare_delete(&self, force: bool) -> Result<()> {
        let mut st = self.inner.state.write();
        check_deletable(&st, force)?;
        while let Some(id) = st.snaps.last().map(|s| s.id) {
            self.inner.delete_snapshot_locked(&mut st, id)?;
        }
        Ok(())
    }

    /// Deletes the file volume, which must live in `dir`: after [`Volume::retire`] (refused while
    /// snapshots depend on it, unless `force`; every handle's I/O fails from then on) its files
    /// and the directory are removed, and the removal is made durable.
    ///
    /// A volume destroys only its own directory: `dir` must be the directory the volume was
    /// created or opened in (the same directory, whatever path names it, holding the `diff.img`
    /// this volume has locked, whose superblock carries this volume's id). Another directory,
    /// or a volume without one (in memory, on caller-supplied devices), is
    /// [`ErrorKind::InvalidArgument`] naming `dir`, and nothing changes. If removing the files
    /// fails after the volume was retired, the error names what is left.
    pub fn destroy(self, dir: impl AsRef<Path>, force: bool) -> Result<()> {
        let dir = dir.as_ref();
        let home = self.inner.home.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "this volume has no directory (it lives in memory or on caller-supplied \
                 devices): there is nothing of it to delete",
            )
            .with_path(dir)
        })?;
        home.check_is(dir)?;
        let fs = home.fs().clone();
        // The directory itself, not a link to it, is what is removed.
        let dir = &if home.is_real() {
            dir.canonicalize()
                .map_err(|e| Error::io("cannot resolve the volume directory", e).with_path(dir))?
        } else {
            dir.to_path_buf()
        };
        self.retire(force)?;
        drop(self);
        Store::remove_dir(fs.as_ref(), dir)?;
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => fs.sync_dir(parent),
            _ => fs.sync_dir(Path::new(".")),
        }
    }

    /// Ends the volume without removing anything: refused as [`Volume::prepare_delete`] refuses
    /// (snapshots depend on it and not `force`, or a volume is stacked on one of them); then
    /// every handle of it (clones and [`Snapshot`]s included) fails its I/O from now on with
    /// [`ErrorKind::BadState`] ("volume destroyed"), never reaching its devices again. A volume
    /// stacked on a snapshot lets go of it. A second call is [`ErrorKind::BadState`].
    /// [`Volume::destroy`] retires a file volume and deletes its files; this is for volumes whose
    /// storage the caller removes (or that live in memory).
    pub fn retire(&self, force: bool) -> Result<()> {
        let st = self.inner.state.write();
        self.inner.fence.check()?;
        check_deletable(&st, force)?;
        // Its snapshots are not deleted one by one (their records would go to files about to be
        // removed): nothing of the volume is read or written again.
        self.inner.fence.close();
        drop(st);
        self.inner.stacked_on.lock().take();
        Ok(())
    }
}

/// Refuses to delete the volume of `st` unless no snapshot depends on it, or `force`; refuses
/// while a volume is stacked on one of its snapshots, even with `force`.
fn check_deletable(st: &State, force: bool) -> Result<()> {
    if !st.snaps.is_empty() && !force {
        return Err(Error::new(
            ErrorKind::BadState,
            format!(
                "{} snapshot(s) still depend on this volume; split or delete them, or force",
                st.snaps.len()
            ),
        ));
    }
    st.snaps.iter().try_for_each(|s| s.check_not_stacked_on())
}

/// What a volume is assembled with besides its parts: the fence of its devices, and the claim of a
/// stacked volume on the snapshot it stands on.
struct Opening {
    fence: Arc<Fence>,
    stacked_on: Option<StackHold>,
}

impl Opening {
    fn new(stacked_on: Option<StackHold>) -> Opening {
        Opening {
            fence: Arc::default(),
            stacked_on,
        }
    }

    /// For a volume over `origin`: a claim on it if it is a snapshot.
    fn on(origin: &dyn BlockDevice) -> Result<Opening> {
        Ok(Opening::new(
            origin.as_snapshot().map(Snapshot::hold).transpose()?,
        ))
    }
}

/// A volume is itself a block device (its origin view), so volumes stack and layers above can treat
/// volumes and snapshots alike.
impl BlockDevice for Volume {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        Volume::read_at(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        Volume::write_at(self, buf, offset)
    }

    fn flush(&self) -> Result<()> {
        Volume::flush(self)
    }

    fn len(&self) -> u64 {
        Volume::len(self)
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        Some(self)
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        Some(self)
    }

    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        Volume::allocated(self, offset, len)
    }
}

impl Resize for Volume {
    /// Grows the volume ([`Volume::grow`]); shrinking is refused.
    fn resize(&self, new_len: u64) -> Result<()> {
        self.grow(new_len)
    }
}

impl Discard for Volume {
    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        Volume::discard(self, offset, len)
    }
}

impl Inner {
    pub(crate) fn block_size(&self) -> u64 {
        1 << self.shift
    }

    /// The origin's data ranges in `[offset, offset + len)`: the device's, plus held blocks.
    pub(crate) fn origin_allocated(
        &self,
        offset: u64,
        len: u64,
    ) -> Result<Vec<std::ops::Range<u64>>> {
        let mut v = self.origin.allocated(offset, len)?;
        if self.pending.len() != 0 {
            let bs = self.block_size();
            v.extend(self.pending.lock().blocks().map(|b| b * bs..(b + 1) * bs));
        }
        Ok(crate::device::clip(v, offset, len))
    }

    /// The data ranges of snapshot `id`'s image in `[offset, offset + len)`: its own writes, the
    /// blocks preserved in its map and the later ones (it reads them there), and the origin's.
    pub(crate) fn snapshot_allocated(
        &self,
        id: SnapshotId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<std::ops::Range<u64>>> {
        let st = self.state.read();
        let i = st.index_of(id)?;
        crate::error::check_range(
            offset,
            usize::try_from(len).unwrap_or(usize::MAX),
            st.snaps[i].len,
        )?;
        let mut v = self.origin_allocated(offset, len)?;
        let bs = self.block_size();
        let (first, end) = (offset / bs, (offset + len).div_ceil(bs));
        // Only the leaves covering the range are visited: a small read of a snapshot costs the
        // same whatever the number of blocks preserved elsewhere.
        let mut add = |b: u64, _| v.push(b * bs..(b + 1) * bs);
        for s in &st.snaps[i..] {
            s.map.for_each_preserved_in(first..end, &mut add);
        }
        if let Some(ov) = &st.snaps[i].overlay {
            ov.for_each_preserved_in(first..end, &mut add);
        }
        Ok(crate::device::clip(v, offset, len))
    }

    /// Takes the gate shared for an origin write, waiting out a freeze.
    pub(crate) fn gate_for_write(&self) -> RwLockReadGuard<'_, State> {
        loop {
            let st = self.state.read();
            if !self.freeze.is_held() {
                return st;
            }
            drop(st);
            self.freeze.wait_thawed();
        }
    }

    pub(crate) fn announce(&self, event: Event) {
        self.events.publish(event);
    }

    /// Appends `rec` to the journal; syncs it (group commit) if `sync`.
    pub(crate) fn log_sync(&self, rec: Record, sync: bool) -> Result<()> {
        // A destroyed volume says so, rather than leaving its journal failed by the fence.
        self.fence.check()?;
        if let Some(j) = &self.journal {
            let seq = j.append(&rec)?;
            if sync {
                j.sync_through(seq, self.diff.device().as_ref())?;
            }
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes of the origin at `offset` (in range), deferred writes included;
    /// the caller holds the gate (either way).
    pub(crate) fn read_origin(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if self.pending.len() == 0 {
            return self.origin.read_at(buf, offset);
        }
        // Holding the pending lock keeps a drain from moving a block to the origin between our
        // origin read and the overlay.
        let pending = self.pending.lock();
        self.origin.read_at(buf, offset)?;
        pending.overlay(offset, buf);
        Ok(())
    }

    pub(crate) fn flush_all(&self) -> Result<()> {
        self.fence.check()?;
        if let Some(j) = &self.journal {
            // The diff device is flushed even when no record is pending: rewrites of a writable
            // snapshot's mapped blocks go to their slots in place and append nothing.
            self.diff.device().flush()?;
            j.sync_all(self.diff.device().as_ref())?;
            self.pending.drain(self.origin.as_ref(), j.durable_seq())?;
        }
        self.origin.flush()
    }

    fn create_snapshot_locked(
        &self,
        st: &mut RwLockWriteGuard<'_, State>,
        options: SnapshotOptions,
    ) -> Result<SnapshotId> {
        check_metadata(&options.metadata)?;
        let id = st.next_id;
        // Ids past the format's limit would make the journal unreadable (only crafted metadata
        // gets near it).
        if id.get() >= crate::persist::MAX_COUNTER {
            return Err(Error::corrupt(format!(
                "snapshot id {id} is at the format's limit (2^62)"
            )));
        }
        let durable = self.journal.is_some() && options.persistent;
        // A new epoch starts with no deferred origin write (see pending.rs).
        self.sync_and_drain()?;
        if durable {
            // The snapshot's image is the origin as of now: the origin writes acknowledged before
            // this call must be durable before the snapshot record is.
            self.origin.flush()?;
        }
        // Synced for a non-persistent snapshot too: the record is the persisted high-water mark
        // of ids (replay sets `next_id` past it, and recovery deletes the snapshot again), so an
        // id handed out is never handed out again after a crash.
        self.log_sync(
            Record::CreateSnapshot {
                id,
                len: st.len,
                writable: options.writable,
                persistent: options.persistent,
                pinned: options.pinned,
                metadata: options.metadata.clone(),
            },
            self.journal.is_some(),
        )?;
        let len = st.len;
        // Without a journal nothing survives a reopen: the snapshot says so.
        let options = SnapshotOptions {
            persistent: durable,
            ..options
        };
        st.push_snapshot(id, len, self.shift, options);
        self.maybe_checkpoint(st)?;
        Ok(id)
    }

    pub(crate) fn delete_snapshot_locked(&self, st: &mut State, id: SnapshotId) -> Result<()> {
        let i = st.index_of(id)?;
        // The chain changes: settle deferred origin writes first (see pending.rs).
        self.sync_and_drain()?;
        // The elder may receive entries: its map's directory is reserved before anything is
        // logged, so a refusal leaves the snapshot in place.
        st.reserve_elder(i)?;
        // The delete is durable before any of its slots is reused or punched, so a crash never
        // finds a live snapshot whose slots were overwritten or given back (a non-persistent one
        // included: its elder may have received entries it still names).
        self.log_sync(Record::DeleteSnapshot { id }, self.journal.is_some())?;
        for slot in st.remove_snapshot(i, self.shift) {
            self.free_slot(slot);
        }
        if st.snaps.is_empty() {
            st.touched = BlockBitmap::new(st.len >> self.shift);
        }
        self.release_diff_space(Some(id))?;
        self.maybe_checkpoint(st)
    }

    /// Gives the diff area's free space back to its device (see `DiffArea::release`), after the
    /// delete of snapshot `id` (`None`: on open) made those slots free for good.
    fn release_diff_space(&self, id: Option<SnapshotId>) -> Result<()> {
        self.diff.release().map_err(|e| {
            let done = id.map_or(String::new(), |id| {
                format!("snapshot {id} is deleted, but ")
            });
            e.context(&format!("{done}giving free diff-area space back failed: "))
        })
    }

    fn grow_locked(&self, st: &mut State, new_len: u64) -> Result<()> {
        let bs = self.block_size();
        if new_len < st.len || !new_len.is_multiple_of(bs) {
            return Err(Error::invalid(format!(
                "new size {new_len} must be a multiple of {bs} and at least the current {}",
                st.len
            )));
        }
        if new_len > MAX_VOLUME_LEN {
            return Err(Error::invalid(format!(
                "new size {new_len} exceeds the limit of {MAX_VOLUME_LEN} bytes (4 PiB)"
            )));
        }
        if new_len == st.len {
            return Ok(());
        }
        let resize = self.origin.as_resize().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "the origin device cannot be resized",
            )
        })?;
        self.fence.check()?;
        if let Some(j) = &self.journal {
            // A failed journal may hold a grow that memory does not: touch nothing.
            j.check()?;
        }
        st.touched.grow(new_len >> self.shift)?;
        // Never shrink the device: a failed earlier grow may have left it larger than the volume,
        // and its record may be durable.
        if self.origin.len() < new_len {
            resize.resize(new_len)?;
        }
        // The new size must be durable before the record that relies on it.
        self.origin.flush()?;
        self.log_sync(Record::Grow { len: new_len }, self.journal.is_some())?;
        st.len = new_len;
        Ok(())
    }

    /// Returns `slot`, freed by a snapshot deletion, to the diff area, counting the free in
    /// `frees`. (The slot a failed copy releases is not counted: it is the failing writer's own,
    /// and a write whose copy fails for want of space would otherwise retry for ever, finding the
    /// count moved each time.)
    pub(crate) fn free_slot(&self, slot: u64) {
        self.diff.free(slot);
        // Relaxed: the count is read by a make-room under the exclusive gate, and deletions hold
        // the gate exclusively, so the gate orders the two.
        self.frees.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn maybe_checkpoint(&self, st: &State) -> Result<()> {
        if let Some(j) = &self.journal {
            if j.wants_checkpoint() {
                j.checkpoint(st, self.diff.device().as_ref())?;
            }
        }
        Ok(())
    }
}

impl Drop for Inner {
    /// A clean close: everything written becomes durable, as if flushed (errors cannot be reported
    /// here; call [`Volume::flush`] first to see them).
    fn drop(&mut self) {
        if self.journal.is_some() {
            let _ = self.flush_all();
        }
    }
}
