//! File-system helpers for whoever keeps files beside volumes: the engine's own volume directories
//! and the array's pool directory use the same ones.
//!
//! - [`try_lock_exclusive`]: one owner at a time, by an advisory lock (`flock`, released when the
//!   file is closed or the process dies).
//! - [`sync_dir`] and [`sync_parent_dir`]: a created, renamed or removed directory entry is
//!   durable only once its directory is synced.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// Takes an exclusive advisory lock on `file` without waiting: `Ok(true)` when taken, `Ok(false)`
/// when another handle or process holds it. The lock lasts until `file` is closed.
pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
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
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => sync_dir(d),
        _ => sync_dir(Path::new(".")),
    }
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
}
