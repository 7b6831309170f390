//! Administrative import and export of a LUN's contents as a raw image file, sparse both ways:
//! only the ranges that may hold data are copied, and all-zero blocks are left as holes.

use std::path::Path;

use cow_engine::{BlockDevice, Progress};

use super::{Array, AsyncHandle};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::MaskSpec;

/// Bytes copied per read.
const CHUNK: u64 = 1 << 20;

/// Copies the ranges of `src` that may hold data into `dst` at the same offsets, block by block,
/// leaving out all-zero blocks of `block_size` bytes (holes stay holes). Reports bytes looked at
/// against the bytes of data ranges; stops with [`ErrorKind::Cancelled`] when cancelled.
fn copy_sparse(
    src: &dyn BlockDevice,
    dst: &dyn BlockDevice,
    block_size: u64,
    progress: &Progress,
) -> Result<()> {
    let ranges = src.allocated(0, src.len())?;
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    progress.set(0, total);
    let mut done = 0;
    let mut buf = vec![0u8; CHUNK as usize];
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            if progress.is_cancelled() {
                return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
            }
            let n = (r.end - at).min(CHUNK) as usize;
            src.read_at(&mut buf[..n], at)?;
            // Block-aligned pieces of the chunk (a range need not start on a block).
            let mut i = 0;
            while i < n {
                let next = (((at + i as u64) / block_size + 1) * block_size - at) as usize;
                let piece = &buf[i..next.min(n)];
                if piece.iter().any(|&b| b != 0) {
                    dst.write_at(piece, at + i as u64)?;
                }
                i = next.min(n);
            }
            at += n as u64;
            done += n as u64;
            progress.set(done, total);
        }
    }
    Ok(())
}

impl Array {
    /// Imports the raw image file `path` as new LUN `name`, masked to no one, of the file's size
    /// rounded up to the block size (the rest reads as zeros), on a background thread. Sparse: only
    /// the file's data extents are read, and all-zero blocks are not written. The LUN is created
    /// before the copy starts (its name is taken at once) and deleted if the copy fails or is
    /// cancelled; its contents are durable when the operation succeeds. Crash-atomic: the LUN is
    /// created under a `fill` intent that ends when its contents are durable, and an open after a
    /// crash before that deletes it. An empty file is
    /// [`ErrorKind::InvalidArgument`].
    pub fn import_lun(&self, name: &str, path: impl AsRef<Path>) -> AsyncHandle<()> {
        let (a, name, path) = (self.clone(), name.to_string(), path.as_ref().to_path_buf());
        AsyncHandle::spawn(move |p| a.import_blocking(&name, &path, p))
    }

    fn import_blocking(&self, name: &str, path: &Path, progress: &Progress) -> Result<()> {
        let src = self.inner.fs.open_read_only(path)?;
        let bs = u64::from(self.block_size());
        if src.is_empty() {
            return Err(Error::invalid(format!(
                "image {} is empty: a LUN needs at least one block",
                path.display()
            ))
            .with_path(path));
        }
        let size = src.len().div_ceil(bs) * bs;
        let id = self.create_lun_filled(name, size, &MaskSpec::None, Default::default(), true)?;
        let copied = self.long_op(id, name, || {
            let vol = self.volume_of(name)?;
            copy_sparse(src.as_ref(), &vol, bs, progress)?;
            Ok(vol.flush()?)
        });
        self.finish_fill(id, name, copied)
    }

    /// Exports LUN `name`'s contents to the new raw image file `path` (refused if it exists), on
    /// a background thread, whatever the LUN's masking. Sparse: only the ranges that may hold data
    /// ([`Volume::allocated`](cow_engine::Volume::allocated)) are read and all-zero blocks are not
    /// written, so holes stay holes. The file (and its directory entry) is durable when the
    /// operation succeeds, and removed if it fails or is cancelled. The image is the LUN's
    /// contents as the copy reads them: export a snapshot LUN (or one no host writes to) for a
    /// point-in-time image.
    pub fn export_lun(&self, name: &str, path: impl AsRef<Path>) -> AsyncHandle<()> {
        let (a, name, path) = (self.clone(), name.to_string(), path.as_ref().to_path_buf());
        AsyncHandle::spawn(move |p| a.export_blocking(&name, &path, p))
    }

    fn export_blocking(&self, name: &str, path: &Path, progress: &Progress) -> Result<()> {
        let (id, size) = {
            let core = self.inner.core.read();
            let id = core.state.id_of(name)?;
            (id, core.state.lun(id)?.size)
        };
        let bs = u64::from(self.block_size());
        let fs = &self.inner.fs;
        let dst = fs.create_file(path, size)?;
        let r = self.long_op(id, name, || {
            let vol = self.volume_of(name)?;
            copy_sparse(&vol, dst.as_ref(), bs, progress)?;
            dst.flush()?;
            Ok(fs.sync_dir(cow_engine::fs::parent_dir(path))?)
        });
        if r.is_err() {
            drop(dst);
            let _ = fs.remove_file(path);
        }
        r
    }
}
