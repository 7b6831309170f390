//! What a volume and its snapshots are made with: [`VolumeConfig`] (with [`Durability`] and
//! [`DiffFullPolicy`]), [`SnapshotOptions`], and the limits every layer checks against.
//!
//! Plain settings, shared by the in-memory state (`state`), persistence (`persist`: the superblock
//! stores a [`VolumeConfig`], replay rebuilds snapshots from their options) and the volume; this
//! module depends on none of them.

use crate::error::{Error, Result};

/// Smallest block size a volume accepts.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest block size a volume accepts.
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Largest volume, in bytes: 4 PiB. It bounds each block map's directory (one pointer per 512
/// blocks, see [`crate::map`]) to 16 GiB of reserved address space, of which only the parts in use
/// take memory.
pub const MAX_VOLUME_LEN: u64 = 1 << 52;
// Every block map of a volume fits the map's limit, even at the smallest block size.
const _: () = assert!(MAX_VOLUME_LEN / MIN_BLOCK_SIZE as u64 <= crate::map::MAX_BLOCKS);

/// The largest metadata blob a snapshot may carry.
pub const MAX_METADATA: usize = 64 * 1024;

/// Fails with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) if `m` is longer
/// than [`MAX_METADATA`].
pub(crate) fn check_metadata(m: &[u8]) -> Result<()> {
    if m.len() > MAX_METADATA {
        return Err(Error::invalid(format!(
            "snapshot metadata of {} bytes exceeds {MAX_METADATA}",
            m.len()
        )));
    }
    Ok(())
}

/// What to do when the diff area reaches its own size: its limit ([`VolumeConfig::diff_limit`]),
/// or the size of a diff device that cannot grow.
///
/// The policy is about that size only. A full file system (`ENOSPC` while the diff file grows or
/// a slot is re-allocated, or while a journal file is written) never deletes a snapshot, under
/// either policy, with or without a limit: the write (or the flush, for a journal) fails with
/// [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace) naming the file, and nothing of the write
/// reaches the origin. Free space on the file system, or delete snapshots, then retry; a journal
/// that could not be written stops the volume's writes until it is reopened, and every later call
/// keeps reporting `NoSpace`.
///
/// | diff area hits | `DeleteOldest` | `FailWrites` |
/// |---|---|---|
/// | its limit (or a fixed-size device's end) | oldest unpinned snapshots deleted, each announced; `NoSpace` if none is left | `NoSpace`, nothing written |
/// | a full file system (`ENOSPC`) | `NoSpace` naming the file, no snapshot deleted | the same |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiffFullPolicy {
    /// Delete the oldest unpinned snapshots to make room (as volsnap does), announcing each with
    /// [`Event::SnapshotDeleted`](crate::Event::SnapshotDeleted): as many, oldest first, as give
    /// the write the slots it needs. A deletion frees only the slots no remaining snapshot
    /// references (a preserved block passes to the next older snapshot lacking it), so when
    /// pinned snapshots would take over everything deleting could free, nothing is deleted and
    /// the write fails with [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace), naming the
    /// pinned snapshot that holds the space. With only unpinned snapshots a write always
    /// succeeds (at worst every snapshot goes), also under concurrent writers: room another
    /// writer freed meanwhile is reused. Snapshots under a stacked volume are kept like pinned
    /// ones.
    ///
    /// Beware: a writable snapshot is deleted like any other, the writes made to it included.
    /// Pin a snapshot whose contents must not be lost to an origin write ([`SnapshotOptions::pinned`]).
    #[default]
    DeleteOldest,
    /// Fail the origin write with [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace); nothing of
    /// it is written.
    FailWrites,
}

/// How a file volume keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Journaled and synced: snapshots survive a crash and a reopen.
    #[default]
    Persistent,
    /// No journal, no syncs of the diff area: snapshots do not survive a reopen.
    Volatile,
}

/// Settings fixed when a volume is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeConfig {
    /// Bytes per block: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// The most diff-area bytes snapshots may hold (rounded down to blocks); `None` = unlimited
    /// (the diff file grows while the file system has room). Space that deleted snapshots free
    /// is reused first and given back to the file system (see `docs/format.md` §2.2).
    pub diff_limit: Option<u64>,
    /// What to do when the limit is reached (not when the file system is full: see
    /// [`DiffFullPolicy`]).
    pub on_diff_full: DiffFullPolicy,
    /// Journaled or volatile (file volumes only; memory volumes are always volatile).
    pub durability: Durability,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            block_size: 4096,
            diff_limit: None,
            on_diff_full: DiffFullPolicy::DeleteOldest,
            durability: Durability::Persistent,
        }
    }
}

impl VolumeConfig {
    /// The default settings with another block size.
    pub fn with_block_size(block_size: u32) -> Self {
        VolumeConfig {
            block_size,
            ..Default::default()
        }
    }

    /// Checks the settings, and `size` (the volume's bytes) against them.
    pub(crate) fn validate(&self, size: u64) -> Result<()> {
        let bs = self.block_size;
        if !bs.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
            return Err(Error::invalid(format!(
                "block size {bs} is not a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}"
            )));
        }
        if size == 0 || !size.is_multiple_of(u64::from(bs)) {
            return Err(Error::invalid(format!(
                "volume size {size} is not a positive multiple of the block size {bs}"
            )));
        }
        if size > MAX_VOLUME_LEN {
            return Err(Error::invalid(format!(
                "volume size {size} exceeds the limit of {MAX_VOLUME_LEN} bytes (4 PiB)"
            )));
        }
        Ok(())
    }
}

/// How to take a snapshot.
///
/// Start from [`SnapshotOptions::default()`] (read-only, persistent, unpinned, no metadata) or
/// [`SnapshotOptions::writable_persistent()`], and change fields with struct update syntax:
///
/// ```
/// use cow_engine::SnapshotOptions;
///
/// let scratch = SnapshotOptions {
///     persistent: false,
///     ..SnapshotOptions::writable_persistent()
/// };
/// assert!(scratch.writable && !scratch.persistent);
/// let nightly = SnapshotOptions {
///     pinned: true,
///     metadata: b"name=nightly".to_vec(),
///     ..SnapshotOptions::default()
/// };
/// assert!(!nightly.writable && nightly.persistent);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Writes to the snapshot are allowed (they go to its own overlay).
    pub writable: bool,
    /// The snapshot survives a reopen (on a persistent volume). A non-persistent snapshot vanishes
    /// on reopen, and preservations only it needs skip the syncs.
    pub persistent: bool,
    /// Never deleted automatically to make room in the diff area, and refused by
    /// [`Volume::delete_snapshot`](crate::Volume::delete_snapshot) until unpinned.
    pub pinned: bool,
    /// An opaque blob for the layers above (names, properties), stored atomically with the snapshot.
    pub metadata: Vec<u8>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            writable: false,
            persistent: true,
            pinned: false,
            metadata: Vec::new(),
        }
    }
}

impl SnapshotOptions {
    /// A writable, persistent, unpinned snapshot without metadata.
    pub fn writable_persistent() -> Self {
        SnapshotOptions {
            writable: true,
            ..Default::default()
        }
    }

    /// A writable, persistent, unpinned snapshot: the old name of
    /// [`SnapshotOptions::writable_persistent`].
    #[deprecated(
        note = "reads like a getter and hides that the snapshot is persistent too; use \
                `SnapshotOptions::writable_persistent()`"
    )]
    pub fn writable() -> Self {
        SnapshotOptions::writable_persistent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn deprecated_writable_makes_what_writable_persistent_makes() {
        // Callers of the old name keep getting the same snapshot kind.
        assert_eq!(
            SnapshotOptions::writable(),
            SnapshotOptions::writable_persistent()
        );
        let o = SnapshotOptions::writable_persistent();
        assert!(o.writable && o.persistent && !o.pinned && o.metadata.is_empty());
    }
}
