//! Snapshot handles and properties.

use crate::device::BlockDevice;
use crate::error::Result;
use crate::state::{Snap, SnapshotId};

use super::Volume;

/// The properties and usage of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: SnapshotId,
    /// Its size in bytes (the volume's when it was taken).
    pub len: u64,
    /// Whether it accepts writes.
    pub writable: bool,
    /// Whether it survives a reopen: false for a snapshot taken with
    /// [`SnapshotOptions::persistent`](crate::SnapshotOptions::persistent) off, and for every
    /// snapshot of a volume without a journal (a memory volume, a volume over a device, a file
    /// volume created [`Durability::Volatile`](crate::Durability::Volatile)).
    pub persistent: bool,
    /// Whether it is protected from automatic deletion.
    pub pinned: bool,
    /// The opaque metadata blob.
    pub metadata: Vec<u8>,
    /// Diff-area blocks it holds: preserved origin blocks plus its overlay.
    pub diff_blocks: u64,
}

impl SnapshotInfo {
    pub(crate) fn of(s: &Snap) -> Self {
        SnapshotInfo {
            id: s.id,
            len: s.len,
            writable: s.overlay.is_some(),
            persistent: s.persistent,
            pinned: s.pinned,
            metadata: s.metadata.clone(),
            diff_blocks: s.map.preserved_count()
                + s.overlay.as_ref().map_or(0, |o| o.preserved_count()),
        }
    }
}

/// A handle to one snapshot of a [`Volume`], usable as a [`BlockDevice`]: reads give the snapshot's
/// point-in-time image (plus its own writes, if writable). Operations on a deleted snapshot fail with
/// [`crate::ErrorKind::NotFound`].
///
/// Its I/O methods are inherent, so they need no trait in scope:
///
/// ```
/// use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
///
/// # fn main() -> Result<(), cow_engine::Error> {
/// let vol = Volume::create_mem(1 << 20, VolumeConfig::default())?;
/// vol.write_at(b"origin", 0)?;
/// let snap = vol.snapshot(vol.create_snapshot(SnapshotOptions::writable_persistent())?)?;
/// snap.write_at(b"branch", 0)?; // into the snapshot's own overlay
///
/// let mut buf = [0u8; 6];
/// snap.read_at(&mut buf, 0)?;
/// assert_eq!(&buf, b"branch");
/// vol.read_at(&mut buf, 0)?;
/// assert_eq!(&buf, b"origin");
/// assert_eq!(snap.len(), vol.len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Snapshot {
    volume: Volume,
    id: SnapshotId,
    len: u64,
}

impl Snapshot {
    pub(crate) fn new(volume: Volume, id: SnapshotId, len: u64) -> Self {
        Snapshot { volume, id, len }
    }

    /// The snapshot's id.
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// The volume it belongs to.
    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    /// Reads `buf.len()` bytes of the snapshot's image at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.volume.inner.read_snapshot(self.id, buf, offset)
    }

    /// Writes `buf` at `offset` into the snapshot's own overlay (the origin and the other
    /// snapshots are unchanged). A read-only snapshot fails with
    /// [`ErrorKind::BadState`](crate::ErrorKind::BadState).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.volume.inner.write_snapshot(self.id, buf, offset)
    }

    /// Makes every write completed before this call durable: the whole volume's
    /// ([`Volume::flush`]).
    pub fn flush(&self) -> Result<()> {
        self.volume.flush()
    }

    /// The ranges of the snapshot's image in `[offset, offset + len)` that may hold data,
    /// ascending and disjoint (see [`BlockDevice::allocated`]): its own writes, the blocks
    /// preserved for it, and the origin's data ranges. A superset: a block preserved as zeros
    /// counts as data.
    pub fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        self.volume.inner.snapshot_allocated(self.id, offset, len)
    }

    /// Size in bytes (the volume's size when the snapshot was taken).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the snapshot has no bytes (never: sizes are positive).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The trait's calls are the inherent ones, so a snapshot stacks like any other device.
impl BlockDevice for Snapshot {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        Snapshot::read_at(self, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        Snapshot::write_at(self, buf, offset)
    }

    fn flush(&self) -> Result<()> {
        Snapshot::flush(self)
    }

    fn len(&self) -> u64 {
        Snapshot::len(self)
    }

    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        Snapshot::allocated(self, offset, len)
    }
}
