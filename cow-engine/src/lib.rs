//! # cow-engine
//!
//! A copy-on-write block engine: a lock-free block map, volumes with O(1) snapshots (volsnap style:
//! one copy per block per write epoch, whatever the number of snapshots), a diff area, writable and
//! stackable snapshots, revert, split, changed-block tracking, freeze/thaw, and crash-safe
//! persistence through a checksummed, group-committed metadata journal.
//!
//! ```
//! use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
//!
//! # fn main() -> Result<(), cow_engine::Error> {
//! let vol = Volume::create_mem(1 << 20, VolumeConfig::default())?;
//! vol.write_at(b"before", 0)?;
//! let snap = vol.create_snapshot(SnapshotOptions::default())?;
//! vol.write_at(b"after!", 0)?;
//!
//! let mut buf = [0u8; 6];
//! vol.snapshot(snap)?.read_at(&mut buf, 0)?;
//! assert_eq!(&buf, b"before");
//! vol.read_at(&mut buf, 0)?;
//! assert_eq!(&buf, b"after!");
//! # Ok(()) }
//! ```
//!
//! Layout: [`device`] (the [`BlockDevice`] trait, memory and file devices), [`map`] (the block map),
//! [`fs`] (the locking and directory-sync helpers the array shares),
//! [`Volume`] and [`Snapshot`] (the engine), and the internals: the settings ([`VolumeConfig`],
//! [`SnapshotOptions`] and the limits), the in-memory state (the snapshot chain and its
//! transitions), and persistence (format in docs/format.md). The volume uses persistence, and both
//! use the settings and the state; persistence never uses the volume.

mod config;
pub mod device;
mod error;
pub mod events;
pub mod framing;
pub mod fs;
pub mod map;
mod persist;
mod state;
mod sync;
mod volume;

pub use config::{
    DiffFullPolicy, Durability, SnapshotOptions, VolumeConfig, MAX_BLOCK_SIZE, MAX_METADATA,
    MAX_VOLUME_LEN, MIN_BLOCK_SIZE,
};
/// Crate internals that the loom model checks (tests/loom.rs) drive: the volume's write gate type,
/// the block bitmap, and a count of parked sleeps. Only under `cfg(loom)`; not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model {
    pub use crate::map::LoomBitmap;
    pub use crate::sync::{parked_count, RwLock};
}

pub use device::{BlockDevice, Discard, FileDevice, MemDevice, Resize};
pub use error::{report as error_report, Error, ErrorKind, Result};
pub use state::SnapshotId;
pub use volume::{
    DeleteReason, Event, Progress, RevertProgress, Snapshot, SnapshotInfo, SnapshotSplit,
    SplitProgress, ThawOutcome, Volume, VolumeStats,
};
