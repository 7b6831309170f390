//! Where LUN volumes live: each LUN's cow-engine volume in `luns/<id>/` of the pool directory; a
//! snapshot LUN's volume stacked over a cow-engine snapshot of its source's volume, tagged with the
//! LUN's id so that recovery can tell whose it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::{BlockDevice, FileDevice, Volume, VolumeConfig};

use super::store;
use super::Array;
use crate::error::{Error, Result};
use crate::mask::LunId;

/// Metadata key prefix naming the LUN a cow-engine snapshot belongs to.
const SNAP_TAG: &str = "umbra-lun=";
/// The pool directory's folder of LUN volumes.
pub(super) const LUNS_DIR: &str = "luns";
/// A volume's origin file (the cow-engine layout): a split snapshot LUN has one of its own.
pub(super) const ORIGIN_FILE: &str = "origin.img";
/// A stacked volume's diff area and journals.
const STACKED_FILES: [&str; 3] = ["diff.img", "journal.0", "journal.1"];

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

impl Array {
    /// LUN `id`'s volume directory (none for an array in memory).
    pub(super) fn lun_dir(&self, id: LunId) -> Option<PathBuf> {
        self.inner
            .dir
            .as_ref()
            .map(|d| d.join(LUNS_DIR).join(id.to_string()))
    }
}

/// Devices of a snapshot LUN's own volume: its diff area and journals in `dir`, over `origin`.
pub(super) fn create_stacked(
    dir: &Path,
    origin: Arc<cow_engine::Snapshot>,
    block_size: u32,
) -> Result<Volume> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the LUN volume", e).with_path(dir))?;
    let (diff, journals) = stacked_devices(dir, |path| FileDevice::create(path, 0))?;
    let vol = Volume::create_on_devices(origin, diff, journals, volume_config(block_size))?;
    store::sync_dir(dir)?;
    Ok(vol)
}

/// Opens the volume [`create_stacked`] made in `dir`, over `origin`.
pub(super) fn open_stacked(dir: &Path, origin: Arc<cow_engine::Snapshot>) -> Result<Volume> {
    let (diff, journals) = stacked_devices(dir, FileDevice::open)?;
    Ok(Volume::open_on_devices(origin, diff, journals)?)
}

/// A device of a volume.
type Device = Arc<dyn BlockDevice>;

/// A stacked volume's devices in `dir`, each file made (or opened) by `device`: its diff area
/// and its two journals.
fn stacked_devices(
    dir: &Path,
    device: impl Fn(PathBuf) -> cow_engine::Result<FileDevice>,
) -> Result<(Device, [Device; 2])> {
    let dev = |n: &str| -> Result<Device> { Ok(Arc::new(device(dir.join(n))?)) };
    let [diff, j0, j1] = STACKED_FILES;
    Ok((dev(diff)?, [dev(j0)?, dev(j1)?]))
}
