//! Volumes in directories the engine lays out itself: stacked volumes (a volume whose origin is a
//! snapshot of another volume, with its diff area and journals in a directory of its own) and a
//! snapshot split out into a file. The file names are the engine's business (docs/format.md);
//! the layers above name only the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::device::BlockDevice;
use crate::error::{ErrorKind, Result};
use crate::fs::{EntryKind, Fs, StdFs};
use crate::persist::{origin_path, Store};

use crate::config::VolumeConfig;
use crate::state::SnapshotId;

use super::{Opening, SplitProgress, Volume};

impl Volume {
    /// Creates a persistent volume in directory `dir` (created if missing; an existing non-empty
    /// one is [`ErrorKind::AlreadyExists`]) whose origin is `origin`, typically a writable
    /// [`Snapshot`](super::Snapshot) of another volume: the directory holds the new volume's diff
    /// area and journals, so the stacked volume gets snapshots of its own. Reopen it with
    /// [`Volume::open_stacked`] over the same origin. While the stacked volume lives, a snapshot
    /// origin cannot be deleted ([`Volume::delete_snapshot`]); a split hands it over.
    pub fn create_stacked(
        dir: impl AsRef<Path>,
        origin: Arc<dyn BlockDevice>,
        config: VolumeConfig,
    ) -> Result<Volume> {
        Volume::create_stacked_in(&StdFs::shared(), dir, origin, config)
    }

    /// [`Volume::create_stacked`] on the file system `fs` (see [`Volume::create_in`]).
    pub fn create_stacked_in(
        fs: &Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        origin: Arc<dyn BlockDevice>,
        config: VolumeConfig,
    ) -> Result<Volume> {
        config.validate(origin.len())?;
        let opening = Opening::on(origin.as_ref())?;
        let store = Store::create_stacked_dir(fs, dir.as_ref(), origin, &config)?;
        Volume::from_store(store, opening, &config)
    }

    /// Opens a volume made by [`Volume::create_stacked`], over the same origin, recovering its
    /// persistent snapshots. Once [`Volume::split_stacked`] has completed (the snapshot it copied
    /// is gone), open it with [`Volume::open`] instead.
    pub fn open_stacked(dir: impl AsRef<Path>, origin: Arc<dyn BlockDevice>) -> Result<Volume> {
        Volume::open_stacked_in(&StdFs::shared(), dir, origin)
    }

    /// [`Volume::open_stacked`] on the file system `fs` (see [`Volume::create_in`]).
    pub fn open_stacked_in(
        fs: &Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        origin: Arc<dyn BlockDevice>,
    ) -> Result<Volume> {
        let opening = Opening::on(origin.as_ref())?;
        let store = Store::open_stacked_dir(fs, dir.as_ref(), origin)?;
        Volume::recover(store, opening)
    }

    /// True if the volume directory `dir` holds an origin file of its own: a volume made by
    /// [`Volume::create`], or a stacked volume whose [`Volume::split_stacked`] has started. The
    /// split is complete once the snapshot it copies is gone from its volume; until then the
    /// stacked volume opens with [`Volume::open_stacked`] and the split resumes.
    pub fn stands_alone(dir: impl AsRef<Path>) -> bool {
        Volume::stands_alone_in(&StdFs, dir)
    }

    /// [`Volume::stands_alone`] on the file system `fs` (false when `fs` cannot tell).
    pub fn stands_alone_in(fs: &dyn Fs, dir: impl AsRef<Path>) -> bool {
        matches!(
            fs.kind(&origin_path(dir.as_ref())),
            Ok(Some(EntryKind::File))
        )
    }

    /// Makes the stacked volume in `dir`, whose origin is snapshot `snapshot` of `self`, stand
    /// alone: copies the snapshot (its point-in-time image plus its own writes, including those
    /// made while the copy runs) into the directory as its origin, then deletes the snapshot from
    /// `self`. Resumable: after a crash or a cancel, calling it again continues where the copy
    /// stopped. Once it completes, the stacked volume's origin (the snapshot) is gone: drop its
    /// handle and open the directory with [`Volume::open`] (it now
    /// [stands alone](Volume::stands_alone)).
    pub fn split_stacked(
        &self,
        snapshot: SnapshotId,
        dir: impl AsRef<Path>,
        progress: &SplitProgress,
    ) -> Result<()> {
        self.split_stacked_in(&StdFs::shared(), snapshot, dir, progress)
    }

    /// [`Volume::split_stacked`] into the directory `dir` of the file system `fs` (the one the
    /// stacked volume was created in, see [`Volume::create_stacked_in`]).
    pub fn split_stacked_in(
        &self,
        fs: &Arc<dyn Fs>,
        snapshot: SnapshotId,
        dir: impl AsRef<Path>,
        progress: &SplitProgress,
    ) -> Result<()> {
        // The origin file of a stacked volume's directory is the engine's own: only this split
        // writes it, so an existing one is this split's, interrupted.
        self.split_stacked_in_then(fs, snapshot, dir, progress, &mut || {})
    }

    /// [`Volume::split_stacked_in`], calling `before_final` once the copy is done and before the
    /// snapshot is deleted (see [`Volume::split_snapshot_then`]): the place to stop the stacked
    /// volume's I/O, which cannot read its origin once the snapshot is gone, until it is reopened
    /// on its own origin.
    pub fn split_stacked_in_then(
        &self,
        fs: &Arc<dyn Fs>,
        snapshot: SnapshotId,
        dir: impl AsRef<Path>,
        progress: &SplitProgress,
        before_final: &mut dyn FnMut(),
    ) -> Result<()> {
        let path = origin_path(dir.as_ref());
        let split = self.prepare_split(fs, snapshot, &path, SplitFile::Resume)?;
        self.split_snapshot_then(split.id, split.dest.as_ref(), progress, before_final)
    }

    /// Prepares a split of snapshot `id` into the file `path` (the snapshot's raw image, standing
    /// alone once [`SnapshotSplit::run`] completes, when the snapshot is deleted from the volume
    /// and its diff space freed). Everything that can be checked before the copy is checked here:
    /// an unknown snapshot is [`ErrorKind::NotFound`], a split of it already running
    /// [`ErrorKind::Busy`], a file that cannot be created the kind of the OS error. The file's
    /// directory entry is durable before this returns.
    ///
    /// The file must not exist ([`ErrorKind::AlreadyExists`] otherwise): the split never writes
    /// over a file, the volume's own included. An interrupted split starts over: remove the
    /// partial file and call this again.
    pub fn split_to_file(&self, id: SnapshotId, path: impl AsRef<Path>) -> Result<SnapshotSplit> {
        self.prepare_split(&StdFs::shared(), id, path.as_ref(), SplitFile::CreateNew)
    }

    fn prepare_split(
        &self,
        fs: &Arc<dyn Fs>,
        id: SnapshotId,
        path: &Path,
        mode: SplitFile,
    ) -> Result<SnapshotSplit> {
        let len = self.snapshot_info(id)?.len;
        if mode == SplitFile::Resume {
            match fs.open_file(path) {
                Ok(dest) if dest.len() == len => {
                    // The interrupted split's file: its progress goes on (a running split of the
                    // same snapshot is refused when `run` starts).
                    return Ok(SnapshotSplit {
                        vol: self.clone(),
                        id,
                        dest,
                        path: path.to_path_buf(),
                    });
                }
                // A split file of the wrong size is replaced.
                Ok(_) => fs.remove_file(path)?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let dest = fs.create_file(path, len)?;
        // A new file: the split starts from block 0 (an interrupted split's progress belongs to
        // the file it wrote). If it cannot start, the file goes again.
        let started = self
            .restart_split(id)
            .and_then(|()| fs.sync_dir(crate::fs::parent_dir(path)));
        if let Err(e) = started {
            drop(dest);
            let _ = fs.remove_file(path);
            return Err(e);
        }
        Ok(SnapshotSplit {
            vol: self.clone(),
            id,
            dest,
            path: path.to_path_buf(),
        })
    }
}

/// What a split does with the file at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SplitFile {
    /// The file must not exist.
    CreateNew,
    /// Only for a file the engine owns (a stacked volume's origin): one of the snapshot's size
    /// is an interrupted split's and it continues where that stopped; a missing file, or one of
    /// another size (replaced), starts from block 0.
    Resume,
}

/// A split prepared by [`Volume::split_to_file`]: run it (on any thread) to copy.
pub struct SnapshotSplit {
    vol: Volume,
    id: SnapshotId,
    dest: Arc<dyn BlockDevice>,
    path: PathBuf,
}

impl std::fmt::Debug for SnapshotSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSplit")
            .field("snapshot", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

impl SnapshotSplit {
    /// The file the snapshot is copied into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the snapshot into the file, flushes it, and deletes the snapshot from the volume
    /// ([`Volume::split_snapshot`]). Progress and cancellation through `progress`; a cancelled or
    /// failed split keeps the file (remove it and split again; a stacked volume's split,
    /// [`Volume::split_stacked`], resumes where it stopped).
    pub fn run(&self, progress: &SplitProgress) -> Result<()> {
        self.vol
            .split_snapshot(self.id, self.dest.as_ref(), progress)
    }
}
