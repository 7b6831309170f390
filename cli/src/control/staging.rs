//! Images and documents of a caller on a control socket: the array reads and writes files by
//! path, so a served command copies the caller's file, chunk by chunk, to a private temporary
//! file the array can open (and back, for what the array writes). A local command uses the path
//! as given: nothing is staged.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use vds_core::ErrorKind;

use super::wire::CHUNK;
use crate::error::{Error, Result};
use crate::Ctx;

/// A temporary copy of a caller's file, removed on drop.
pub struct Staged {
    _dir: TempDir,
    path: PathBuf,
}

impl Staged {
    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn staging_dir() -> Result<(TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("umbra-serve-")
        .tempdir()
        .map_err(|e| {
            Error::of_kind(
                ErrorKind::Io,
                format!("cannot make a staging directory: {e}"),
            )
        })?;
    let path = dir.path().join("file");
    Ok((dir, path))
}

/// An error on the caller's image file, worded as the array words it when it opens the file
/// itself (`cannot open device file (PATH): ...`), so a served command says the same.
fn as_the_array_says(verb: &str, file: &Path, e: std::io::Error) -> Error {
    let mut err = Error::file(verb, file, e);
    err.message = err.message.replacen(
        &format!("{verb} {}", file.display()),
        &format!("{verb} device file ({})", file.display()),
        1,
    );
    err
}

/// Copies the caller's `file` here when the command runs for a caller; `None` when it runs
/// locally (the file is read where it is). All-zero chunks are left as holes.
pub fn stage_in(ctx: &Ctx, file: &Path) -> Result<Option<Staged>> {
    if !ctx.caller.remote() {
        return Ok(None);
    }
    let (mut src, len) = ctx
        .caller
        .open_read(file)
        .map_err(|e| as_the_array_says("cannot open", file, e))?;
    let (dir, path) = staging_dir()?;
    let io = |e: std::io::Error| {
        Error::of_kind(ErrorKind::Io, format!("staging {}: {e}", file.display()))
    };
    let mut dst = File::create(&path).map_err(io)?;
    crate::chunks::in_chunks(len, |buf, _| {
        src.read_exact(buf)
            .map_err(|e| Error::file("cannot read", file, e))?;
        if buf.iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(buf.len() as i64)).map_err(io)?;
        } else {
            dst.write_all(buf).map_err(io)?;
        }
        Ok::<_, Error>(())
    })?;
    dst.set_len(len).map_err(io)?;
    Ok(Some(Staged { _dir: dir, path }))
}

/// A caller's file the array writes: the array exports to a staging copy, then
/// [`Export::finish`] sends it to the caller.
pub struct Export {
    staged: Staged,
    /// `None` once finished; dropped unfinished, the caller's file is removed.
    sink: Option<Box<dyn super::caller::Sink>>,
    file: PathBuf,
}

impl Export {
    /// When the command runs for a caller: creates the caller's `file` now (refused if it
    /// exists when `new`, else replaced; before anything is done) and a staging path for the
    /// array; `None` locally.
    pub fn begin(ctx: &Ctx, file: &Path, new: bool) -> Result<Option<Export>> {
        Export::begin_worded(ctx, file, new, |e| {
            as_the_array_says("cannot create", file, e)
        })
    }

    /// [`Export::begin`], the caller's error creating `file` worded by `word` (as the local
    /// command words its own check of the file).
    pub fn begin_worded(
        ctx: &Ctx,
        file: &Path,
        new: bool,
        word: impl FnOnce(std::io::Error) -> Error,
    ) -> Result<Option<Export>> {
        if !ctx.caller.remote() {
            return Ok(None);
        }
        let sink = ctx.caller.create(file, new).map_err(word)?;
        let (dir, path) = staging_dir()?;
        Ok(Some(Export {
            staged: Staged { _dir: dir, path },
            sink: Some(sink),
            file: file.to_path_buf(),
        }))
    }

    /// Where the array writes.
    pub fn path(&self) -> &Path {
        self.staged.path()
    }

    /// Sends the staged file to the caller and makes it durable there. Zero blocks of
    /// [`HOLE_GRAIN`] bytes are sent as holes: the caller's file is as sparse as a local export.
    pub fn finish(mut self) -> Result<()> {
        let mut sink = self.sink.take().expect("finished once");
        let r = (|| {
            let mut src = File::open(self.staged.path())?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = read_full(&mut src, &mut buf)?;
                if n == 0 {
                    break;
                }
                send_sparse(&mut *sink, &buf[..n])?;
            }
            Ok::<_, std::io::Error>(())
        })();
        match r {
            Ok(()) => sink
                .commit()
                .map_err(|e| Error::file("cannot write", &self.file, e)),
            Err(e) => {
                sink.discard();
                Err(Error::file("cannot write", &self.file, e))
            }
        }
    }
}

/// The block an exported image is sparse by: a zero block of this size is a hole.
pub const HOLE_GRAIN: usize = 4096;

/// Reads as much of `buf` as `src` has (short only at its end).
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Sends `bytes` to `sink`: runs of zero [`HOLE_GRAIN`] blocks as holes, the rest as data.
fn send_sparse(sink: &mut dyn super::caller::Sink, bytes: &[u8]) -> std::io::Result<()> {
    let mut start = 0;
    while start < bytes.len() {
        let zero = |i: usize| {
            bytes[i..(i + HOLE_GRAIN).min(bytes.len())]
                .iter()
                .all(|b| *b == 0)
        };
        let z = zero(start);
        let mut end = start;
        while end < bytes.len() && zero(end) == z {
            end = (end + HOLE_GRAIN).min(bytes.len());
        }
        if z {
            sink.skip((end - start) as u64)?;
        } else {
            sink.write_all(&bytes[start..end])?;
        }
        start = end;
    }
    Ok(())
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(s) = self.sink.take() {
            s.discard();
        }
    }
}

/// The whole of a small file of the caller's (a script, a document).
pub fn read_small(ctx: &Ctx, path: &Path) -> std::io::Result<Vec<u8>> {
    let (mut r, len) = ctx.caller.open_read(path)?;
    let mut bytes = Vec::with_capacity(len.min(CHUNK as u64) as usize);
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}
