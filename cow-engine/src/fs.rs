//! File-system helpers for whoever keeps files beside volumes: the engine's own volume directories
//! and the array's pool directory use the same ones.
//!
//! - [`try_lock_exclusive`]: one owner at a time, by an advisory lock (`flock`, released when the
//!   file is closed or the process dies).
//! - [`sync_dir`] and [`sync_parent_dir`]: a created, renamed or removed directory entry is
//!   durable only once its directory is synced.
//! - [`Fs`]: the file-system operations a volume directory or a pool needs, as a trait, so a test
//!   can run them on a simulated directory whose crashes it studies; [`StdFs`] is the real one.

use std::any::Any;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::device::{BlockDevice, FileDevice};
use crate::error::{Error, ErrorKind, Result};

/// The mode every file the engine (and a pool) creates gets: read and write for its owner only,
/// so a volume's data is not readable by other local users whatever the process's umask. (The
/// umask can only take bits away: 0600 under any umask that leaves the owner's bits.)
pub const FILE_MODE: u32 = 0o600;

/// The mode every directory the engine (and a pool) creates gets: owner only (see
/// [`FILE_MODE`]).
pub const DIR_MODE: u32 = 0o700;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// A held lock (see [`Fs::lock`]): the lock lasts until it is dropped.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file-system operations of a volume directory or a pool directory.
///
/// Durability follows POSIX as file systems give it: a file's data is durable once the file is
/// flushed ([`BlockDevice::flush`], or [`Fs::write_file`] which syncs what it wrote); a created,
/// renamed or removed entry is durable once its directory is synced ([`Fs::sync_dir`]); a rename
/// is atomic (after a crash the entry names the old file or the new one). Every error names the
/// path it concerns.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Creates the file `path` of `len` zero bytes as a resizable, discardable device; fails with
    /// [`ErrorKind::AlreadyExists`] when it exists.
    fn create_file(&self, path: &Path, len: u64) -> Result<Arc<dyn BlockDevice>>;
    /// Opens the existing file `path` read-write as a device ([`ErrorKind::NotFound`] if missing).
    fn open_file(&self, path: &Path) -> Result<Arc<dyn BlockDevice>>;
    /// Opens the existing file `path` for reading only, as a device whose writes fail (a file the
    /// caller may not write, such as an image to import).
    fn open_read_only(&self, path: &Path) -> Result<Arc<dyn BlockDevice>>;
    /// The whole contents of the small file `path`.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>>;
    /// Replaces the contents of `path` (created if missing) by `data`, durably (the file's data is
    /// synced before this returns; its entry is durable once its directory is synced).
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()>;
    /// Renames `from` to `to`, replacing `to` if it is a file.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Creates the directory `path` (its parent must exist).
    fn create_dir(&self, path: &Path) -> Result<()>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> Result<()>;
    /// The names in directory `path`, sorted.
    fn list_dir(&self, path: &Path) -> Result<Vec<String>>;
    /// What `path` is, `None` when nothing is there.
    fn kind(&self, path: &Path) -> Result<Option<EntryKind>>;
    /// Makes the entries of directory `path` durable.
    fn sync_dir(&self, path: &Path) -> Result<()>;
    /// Takes an exclusive lock on the existing file `path` without waiting: [`ErrorKind::Busy`]
    /// when another holder has it. The lock lasts until the guard is dropped.
    fn lock(&self, path: &Path) -> Result<LockGuard>;

    /// Removes the directory `path` and everything under it (entries made durable by the caller's
    /// syncs, as for each removal).
    fn remove_dir_all(&self, path: &Path) -> Result<()> {
        for name in self.list_dir(path)? {
            let p = path.join(&name);
            match self.kind(&p)? {
                Some(EntryKind::Dir) => self.remove_dir_all(&p)?,
                Some(EntryKind::File) => self.remove_file(&p)?,
                None => {}
            }
        }
        self.remove_dir(path)
    }
}

/// The real file system: `std::fs`, [`FileDevice`] for device files and `flock` for locks.
///
/// Every file it creates ([`Fs::create_file`], [`Fs::write_file`] of a missing file) is mode
/// 0600 and every directory ([`Fs::create_dir`]) 0700, whatever the umask adds: a volume's or a
/// pool's data is its owner's only. An existing file or directory keeps its mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl StdFs {
    /// The real file system as a shared [`Fs`].
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(StdFs)
    }
}

impl Fs for StdFs {
    fn create_file(&self, path: &Path, len: u64) -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(FileDevice::create(path, len)?))
    }

    fn open_file(&self, path: &Path) -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(FileDevice::open(path)?))
    }

    fn open_read_only(&self, path: &Path) -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(FileDevice::open_read_only(path)?))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::io("cannot read", e).with_path(path))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| Error::io("cannot open for writing", e).with_path(path))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("cannot write", e).with_path(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| {
            Error::new(
                ErrorKind::of_io(&e),
                format!("cannot rename {} to {}: {e}", from.display(), to.display()),
            )
            .with_path(from)
        })
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", e).with_path(path))
    }

    fn create_dir(&self, path: &Path) -> Result<()> {
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(path)
            .map_err(|e| Error::io("cannot create directory", e).with_path(path))
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        std::fs::remove_dir(path)
            .map_err(|e| Error::io("cannot remove directory", e).with_path(path))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(path)
            .map_err(|e| Error::io("cannot read directory", e).with_path(path))?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io("cannot read directory", e).with_path(path))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot stat", e).with_path(path)),
        }
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        sync_dir(path)
    }

    fn lock(&self, path: &Path) -> Result<LockGuard> {
        let f = File::open(path)
            .map_err(|e| Error::io("cannot open for locking", e).with_path(path))?;
        match try_lock_exclusive(&f) {
            Ok(true) => Ok(Box::new(f)),
            Ok(false) => Err(
                Error::new(ErrorKind::Busy, "held by another handle or process").with_path(path),
            ),
            Err(e) => Err(Error::io("cannot lock", e).with_path(path)),
        }
    }
}

/// Takes an exclusive advisory lock on `file` without waiting: `Ok(true)` when taken, `Ok(false)`
/// when another handle or process holds it. The lock lasts until `file` is closed.
pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The directory holding `path` (`.` for a bare name): the one whose sync makes its entry durable.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Makes the entries of directory `dir` durable (fsync of the directory); the error names `dir`.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("cannot sync the directory", e).with_path(dir))
}

/// Makes the directory entry of `path` durable: [`sync_dir`] of its parent (`.` for a bare name).
pub fn sync_parent_dir(path: &Path) -> Result<()> {
    sync_dir(parent_dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        std::fs::write(&p, b"").unwrap();
        let first = File::open(&p).unwrap();
        assert!(try_lock_exclusive(&first).unwrap());
        let second = File::open(&p).unwrap();
        assert!(!try_lock_exclusive(&second).unwrap());
        drop(first);
        assert!(try_lock_exclusive(&second).unwrap());
    }

    #[test]
    fn syncing_a_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let e = sync_dir(&missing).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert_eq!(e.path(), Some(missing.as_path()));
        sync_parent_dir(&dir.path().join("new-file")).unwrap();
    }

    /// The real `Fs` does what `std::fs` does, errors name their paths, and its lock excludes a
    /// second holder until the first guard is dropped.
    #[test]
    fn std_fs_operations_match_the_file_system() {
        let t = tempfile::tempdir().unwrap();
        let fs = StdFs;
        let d = t.path().join("d");
        fs.create_dir(&d).unwrap();
        assert_eq!(fs.kind(&d).unwrap(), Some(EntryKind::Dir));
        let dev = fs.create_file(&d.join("a.img"), 8192).unwrap();
        dev.write_at(&[9; 512], 4096).unwrap();
        dev.flush().unwrap();
        dev.as_resize().unwrap().resize(16384).unwrap();
        drop(dev);
        assert_eq!(std::fs::metadata(d.join("a.img")).unwrap().len(), 16384);
        let Err(e) = fs.create_file(&d.join("a.img"), 1) else {
            panic!("a second create of a.img succeeded")
        };
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let mut b = [0u8; 512];
        fs.open_file(&d.join("a.img"))
            .unwrap()
            .read_at(&mut b, 4096)
            .unwrap();
        assert_eq!(b, [9; 512]);
        let ro = fs.open_read_only(&d.join("a.img")).unwrap();
        let mut c = [0u8; 512];
        ro.read_at(&mut c, 4096).unwrap();
        assert_eq!(c, [9; 512]);
        assert!(
            ro.write_at(&[1; 512], 0).is_err(),
            "a read-only file took a write"
        );
        assert_eq!(parent_dir(Path::new("x")), Path::new("."));
        assert_eq!(parent_dir(&d.join("a.img")), d.as_path());

        fs.write_file(&d.join("s.tmp"), b"hello").unwrap();
        fs.write_file(&d.join("s.tmp"), b"hi").unwrap();
        fs.rename(&d.join("s.tmp"), &d.join("s")).unwrap();
        fs.sync_dir(&d).unwrap();
        assert_eq!(fs.read_file(&d.join("s")).unwrap(), b"hi");
        assert_eq!(fs.list_dir(&d).unwrap(), ["a.img", "s"]);
        assert_eq!(fs.kind(&d.join("s.tmp")).unwrap(), None);
        let e = fs.read_file(&d.join("s.tmp")).unwrap_err();
        assert_eq!(
            (e.kind(), e.path()),
            (ErrorKind::NotFound, Some(d.join("s.tmp").as_path()))
        );

        let g = fs.lock(&d.join("s")).unwrap();
        assert_eq!(fs.lock(&d.join("s")).unwrap_err().kind(), ErrorKind::Busy);
        drop(g);
        drop(fs.lock(&d.join("s")).unwrap());

        fs.create_dir(&d.join("sub")).unwrap();
        fs.write_file(&d.join("sub/x"), b"x").unwrap();
        fs.remove_file(&d.join("s")).unwrap();
        fs.remove_dir_all(&d).unwrap();
        assert_eq!(fs.kind(&d).unwrap(), None);
    }
}
