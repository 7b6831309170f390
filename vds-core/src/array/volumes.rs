//! Where LUN volumes live: each LUN's cow-engine volume in `luns/<id>/` of the pool directory; a
//! snapshot LUN's volume stacked over a cow-engine snapshot of its source's volume, tagged with the
//! LUN's id so that recovery can tell whose it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::fs::{parent_dir, Fs};
use cow_engine::{BlockDevice, SnapshotId, Volume, VolumeConfig};

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

/// A LUN's volume directory (`<pool>/luns/<id>`) on the pool's file system.
pub(super) struct LunDir {
    /// The file system the pool is on.
    pub(super) fs: Arc<dyn Fs>,
    /// The directory's path.
    pub(super) path: PathBuf,
}

impl LunDir {
    /// True when something is at the directory's path.
    pub(super) fn exists(&self) -> bool {
        matches!(self.fs.kind(&self.path), Ok(Some(_)))
    }

    /// Opens the volume that stands alone in the directory.
    pub(super) fn open(&self) -> Result<Volume> {
        Ok(Volume::open_in(&self.fs, &self.path)?)
    }
}

impl AsRef<Path> for LunDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Array {
    /// LUN `id`'s volume directory (none for an array in memory).
    pub(super) fn lun_dir(&self, id: LunId) -> Option<LunDir> {
        self.inner.dir.as_ref().map(|d| LunDir {
            fs: self.inner.fs.clone(),
            path: d.join(LUNS_DIR).join(id.to_string()),
        })
    }
}

/// A snapshot LUN's own volume in `dir`, stacked over `origin` (the engine lays out the
/// directory); the directory's entry is durable when this returns.
pub(super) fn create_stacked(
    dir: &LunDir,
    origin: Arc<cow_engine::Snapshot>,
    block_size: u32,
) -> Result<Volume> {
    create_in_luns(
        dir,
        |c| Volume::create_stacked_in(&dir.fs, &dir.path, origin, c),
        block_size,
    )
}

/// The volume of a damaged LUN: `size` bytes every read and write of which fails with
/// `Corrupt` naming why (`why`), so that the LUN stays listed and deletable while its I/O is
/// refused.
pub(super) fn failed_volume(size: u64, block_size: u32, why: &str) -> Result<Volume> {
    let dev = Arc::new(FailedDevice {
        len: size,
        why: why.to_string(),
    });
    Ok(Volume::on_device(dev, volume_config(block_size))?)
}

/// A device standing for a damaged LUN's volume: no byte of it can be read or written.
struct FailedDevice {
    len: u64,
    why: String,
}

impl BlockDevice for FailedDevice {
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> cow_engine::Result<()> {
        Err(cow_engine::Error::new(
            cow_engine::ErrorKind::Corrupt,
            self.why.clone(),
        ))
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> cow_engine::Result<()> {
        Err(cow_engine::Error::new(
            cow_engine::ErrorKind::Corrupt,
            self.why.clone(),
        ))
    }

    fn flush(&self) -> cow_engine::Result<()> {
        // Nothing was ever written.
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Removes LUN volume directory `dir` (if it is there) and makes that durable (`luns/` synced).
pub(super) fn remove_lun_dir(dir: &LunDir) -> Result<()> {
    match dir.fs.remove_dir_all(&dir.path) {
        Ok(()) => {}
        Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from(e).context("cannot remove the LUN volume", &dir.path)),
    }
    dir.fs.sync_dir(parent_dir(&dir.path))?;
    Ok(())
}

/// Deletes snapshot `id` of `vol` (a snapshot LUN's origin), unpinning it first (a pinned
/// snapshot cannot be deleted); one already gone is not an error.
pub(super) fn unpin_and_delete(vol: &Volume, id: SnapshotId) -> Result<()> {
    let gone = |e: &cow_engine::Error| e.kind() == cow_engine::ErrorKind::NotFound;
    match vol.set_pinned(id, false) {
        Err(e) if gone(&e) => return Ok(()),
        r => r?,
    }
    match vol.delete_snapshot(id) {
        Err(e) if gone(&e) => Ok(()),
        r => Ok(r?),
    }
}

/// Creates a LUN's file volume of `size` bytes in `dir` (which must not exist; `volatile`: one
/// without a metadata journal), then syncs `luns/` so that the directory's entry is durable.
pub(super) fn create_file_volume(
    dir: &LunDir,
    size: u64,
    block_size: u32,
    volatile: bool,
) -> Result<Volume> {
    create_in_luns(
        dir,
        |mut c| {
            if volatile {
                c.durability = cow_engine::Durability::Volatile;
            }
            Volume::create_in(&dir.fs, &dir.path, size, c)
        },
        block_size,
    )
}

/// Runs `create` (which makes a volume in `dir`, in `luns/`) with the LUN volume configuration,
/// `luns/` made first if missing and synced after, so that `dir`'s entry is durable.
fn create_in_luns(
    dir: &LunDir,
    create: impl FnOnce(VolumeConfig) -> cow_engine::Result<Volume>,
    block_size: u32,
) -> Result<Volume> {
    let luns = parent_dir(&dir.path);
    ensure_dir(dir.fs.as_ref(), luns)?;
    let vol = create(volume_config(block_size))?;
    dir.fs.sync_dir(luns)?;
    Ok(vol)
}

/// Makes sure directory `dir` (whose parent exists) is there, creating it if missing and making
/// its entry durable.
pub(super) fn ensure_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    match fs.kind(dir)? {
        Some(cow_engine::fs::EntryKind::Dir) => Ok(()),
        Some(cow_engine::fs::EntryKind::File) => Err(Error::new(
            crate::error::ErrorKind::Corrupt,
            "a file stands where the pool keeps a directory",
        )
        .with_path(dir)),
        None => {
            fs.create_dir(dir)
                .map_err(|e| Error::from(e).context("cannot create a directory", dir))?;
            fs.sync_dir(parent_dir(dir))?;
            Ok(())
        }
    }
}

/// Deletes every snapshot of `vol` tagged for LUN `id` (unpinned first): what a create of
/// snapshot LUN `id` that did not commit left on its source.
pub(super) fn delete_tagged(vol: &Volume, id: LunId) -> Result<()> {
    for s in vol.snapshots() {
        if tagged_lun(&s.metadata) == Some(id) {
            unpin_and_delete(vol, s.id)?;
        }
    }
    Ok(())
}
