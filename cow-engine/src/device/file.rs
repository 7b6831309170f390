//! A file-backed device: `pread` / `pwrite`, `fdatasync` for flush.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{write_zeros, BlockDevice, Discard, Resize};
use crate::error::{check_range, Error, Result};
use crate::fs::FILE_MODE;

/// A [`BlockDevice`] over a regular file. Its size is the file's size when opened (or set by
/// [`Resize::resize`]); I/O errors carry the path and offset.
///
/// A device opened for writing ([`FileDevice::create`], [`FileDevice::open`]) is advised
/// random access (`POSIX_FADV_RANDOM`): a volume's blocks are read where its clients ask, so
/// readahead only brings in blocks nobody asked for, and on kernels whose page cache holds a
/// file in large folios (ext4 since Linux 6.16) the large folios readahead makes cost every later
/// 4 KiB write into them a walk over the whole folio (measured: most of the CPU of random writes
/// through `umbra serve`). Read-only devices (images to copy from) keep the kernel's readahead.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    len: AtomicU64,
}

impl FileDevice {
    /// Creates a new file of `len` bytes (sparse); fails if it exists. The file is created
    /// [`FILE_MODE`] (0600, owner only, whatever the umask): it holds a volume's data, which
    /// only the volume's owner may read.
    pub fn create(path: impl AsRef<Path>, len: u64) -> Result<Self> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| Error::io("cannot create device file", e).with_path(path))?;
        file.set_len(len)
            .map_err(|e| Error::io("cannot size device file", e).with_path(path))?;
        advise_random(&file);
        Ok(FileDevice {
            file,
            path: path.to_path_buf(),
            len: AtomicU64::new(len),
        })
    }

    /// Opens an existing file read-write; its current size is the device size.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens an existing file read-only (an image to copy from); writes fail with an I/O error.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, write: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| Error::io("cannot open device file", e).with_path(path))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot stat device file", e).with_path(path))?
            .len();
        if write {
            advise_random(&file);
        }
        Ok(FileDevice {
            file,
            path: path.to_path_buf(),
            len: AtomicU64::new(len),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Advises the kernel that `file` is read at random (no readahead; see [`FileDevice`]). Advice
/// only: a kernel that refuses it leaves the device working as before.
fn advise_random(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is `file`'s, open
    // for the whole call.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
}

impl BlockDevice for FileDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(offset, buf.len(), self.len()).map_err(|e| e.with_path(&self.path))?;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io("read failed", e)
                .with_path(&self.path)
                .with_offset(offset)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(offset, buf.len(), self.len()).map_err(|e| e.with_path(&self.path))?;
        self.file.write_all_at(buf, offset).map_err(|e| {
            Error::io("write failed", e)
                .with_path(&self.path)
                .with_offset(offset)
        })
    }

    fn flush(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync failed", e).with_path(&self.path))
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        Some(self)
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        Some(self)
    }

    /// The file's data extents (`SEEK_DATA` / `SEEK_HOLE`): a hole the file system reports reads
    /// as zeros.
    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        use std::os::fd::AsRawFd;
        let end = offset.saturating_add(len).min(self.len());
        let mut out = Vec::new();
        let mut at = offset;
        let seek = |pos: u64, whence: libc::c_int| -> Result<Option<u64>> {
            let pos = libc::off_t::try_from(pos)
                .map_err(|_| Error::invalid("offset too large").with_offset(pos))?;
            // SAFETY: lseek only reads its integer arguments; the descriptor is owned by
            // `self.file` and stays open for the duration of the call. The file position it moves
            // is not used: every read and write is positional.
            let r = unsafe { libc::lseek(self.file.as_raw_fd(), pos, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                // No data at or after `pos`.
                Some(libc::ENXIO) => Ok(None),
                _ => Err(Error::io("cannot find the file's data extents", e).with_path(&self.path)),
            }
        };
        while at < end {
            let Some(data) = seek(at, libc::SEEK_DATA)? else {
                break;
            };
            if data >= end {
                break;
            }
            let hole = seek(data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
            out.push(data..hole);
            at = hole;
        }
        Ok(super::clip(out, offset, len))
    }
}

impl Resize for FileDevice {
    fn resize(&self, new_len: u64) -> Result<()> {
        self.file
            .set_len(new_len)
            .map_err(|e| Error::io("cannot resize device file", e).with_path(&self.path))?;
        self.len.store(new_len, Ordering::Relaxed);
        Ok(())
    }

    fn grow_allocated(&self, new_len: u64) -> Result<()> {
        let old = self.len();
        if new_len <= old {
            return self.resize(new_len);
        }
        self.resize(new_len)?;
        write_zeros(self, old, new_len - old)
    }
}

impl Discard for FileDevice {
    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        check_range(offset, len_usize, self.len()).map_err(|e| e.with_path(&self.path))?;
        use std::os::fd::AsRawFd;
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return Err(Error::invalid("discard range too large").with_offset(offset));
        };
        // SAFETY: fallocate only reads its integer arguments; the descriptor is owned by `self.file`
        // and stays open for the duration of the call.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                n,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // File systems without hole punching: write zeros instead.
        write_zeros(self, offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_errors_carry_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev");
        let d = FileDevice::create(&p, 8192).unwrap();
        d.write_at(b"hello", 4000).unwrap();
        d.flush().unwrap();
        let d2 = FileDevice::open(&p).unwrap();
        assert_eq!(d2.len(), 8192);
        let mut b = [0u8; 5];
        d2.read_at(&mut b, 4000).unwrap();
        assert_eq!(&b, b"hello");
        let e = d2.read_at(&mut b, 8190).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::OutOfRange);
        assert_eq!(e.path(), Some(p.as_path()));
        assert!(FileDevice::create(&p, 1).is_err());
        let missing = FileDevice::open(dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.kind(), crate::ErrorKind::NotFound);
        d2.discard(4000, 5).unwrap();
        d2.read_at(&mut b, 4000).unwrap();
        assert_eq!(b, [0; 5]);
    }
}
