//! Where LUN volumes live: each LUN's cow-engine volume in `luns/<id>/` of the pool directory; a
//! snapshot LUN's volume stacked over a cow-engine snapshot of its source's volume, tagged with the
//! LUN's id so that recovery can tell whose it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::{SnapshotId, Volume, VolumeConfig};

use super::Array;
use crate::error::{Error, Result};
use crate::mask::LunId;

/// Metadata key prefix naming the LUN a cow-engine snapshot belongs to.
const SNAP_TAG: &str = "umbra-lun=";
/// The pool directory's folder of LUN volumes.
pub(super) const LUNS_DIR: &str = "luns";

/// The configuration of a LUN volume with blocks of `block_size` bytes.
pub(super) fn volume_config(block_size: u32) -> VolumeConfig {
    VolumeConfig::with_block_size(block_size)
}

/// The metadata that tags a cow-engine snapshot as snapshot LUN `id`'s.
pub(super) fn snapshot_tag(id: LunId) -> Vec<u8> {
    format!("{SNAP_TAG}{id}").into_bytes()
}

/// The snapshot LUN a cow-engine snapshot's metadata tags it for, if any.
pub(super) fn tagged_lun(meta: &[u8]) -> Option<LunId> {
    std::str::from_utf8(meta)
        .ok()?
        .strip_prefix(SNAP_TAG)?
        .parse()
        .ok()
}

/// Deletes cow-engine snapshot `id` of `vol`, the one a snapshot LUN stands on: unpinned first,
/// since snapshot LUNs pin their snapshots and the engine refuses to delete a pinned one.
pub(super) fn delete_lun_snapshot(vol: &Volume, id: SnapshotId) -> cow_engine::Result<()> {
    vol.set_pinned(id, false)?;
    vol.delete_snapshot(id)
}

impl Array {
    /// LUN `id`'s volume directory (none for an array in memory).
    pub(super) fn lun_dir(&self, id: LunId) -> Option<PathBuf> {
        self.inner
            .dir
            .as_ref()
            .map(|d| d.join(LUNS_DIR).join(id.to_string()))
    }
}

/// A snapshot LUN's own volume in `dir`, stacked over `origin` (the engine lays out the
/// directory); the directory's entry is durable when this returns.
pub(super) fn create_stacked(
    dir: &Path,
    origin: Arc<cow_engine::Snapshot>,
    block_size: u32,
) -> Result<Volume> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("cannot create the LUN volume", e).with_path(parent))?;
    }
    let vol = Volume::create_stacked(dir, origin, volume_config(block_size))?;
    cow_engine::fs::sync_parent_dir(dir)?;
    Ok(vol)
}
