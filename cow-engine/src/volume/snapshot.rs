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
    /// Whether it survives a reopen.
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
}

impl BlockDevice for Snapshot {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.volume.inner.read_snapshot(self.id, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.volume.inner.write_snapshot(self.id, buf, offset)
    }

    fn flush(&self) -> Result<()> {
        self.volume.flush()
    }

    fn len(&self) -> u64 {
        self.len
    }
}
