//! The crate's one public error type.
//!
//! An [`Error`] is a small, stable [`ErrorKind`] (which the C ABI maps 1:1 onto a status code) plus the
//! context a user needs to act on it: a message naming the problem and, where they apply, the path,
//! byte offset and snapshot id involved, and the underlying I/O error.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a small stable set. New kinds may be added (the enum is non-exhaustive);
/// existing ones keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument is invalid (block size, size, length overflow, ...).
    InvalidArgument,
    /// A byte range lies (partly) outside the volume or snapshot.
    OutOfRange,
    /// A snapshot id, volume directory or other named object does not exist.
    NotFound,
    /// The object already exists (a volume directory that is not empty, ...).
    AlreadyExists,
    /// The operation is refused in the object's current state (a read-only snapshot written, a volume
    /// with dependent snapshots deleted without force, a pinned snapshot deleted, ...).
    Busy,
    /// The diff area is full and the policy says fail the write.
    NoSpace,
    /// A deadline passed (a freeze that expired before thaw, a drain that did not finish in time).
    Timeout,
    /// A long operation (revert, split) stopped because it was cancelled; running it again resumes.
    Cancelled,
    /// On-disk data is damaged: bad magic, checksum mismatch, a diff file of another volume.
    Corrupt,
    /// The on-disk format version is not one this build understands.
    UnsupportedVersion,
    /// The device lacks an optional ability (resize, discard) the operation needs.
    Unsupported,
    /// The operating system reported an I/O error.
    Io,
}

impl ErrorKind {
    /// A short stable name for the kind, e.g. `"out of range"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Busy => "busy",
            ErrorKind::NoSpace => "no space in diff area",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "I/O error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of `cow-engine`.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    offset: Option<u64>,
    snapshot: Option<u64>,
    #[source]
    source: Option<io::Error>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(id) = self.snapshot {
            write!(f, " (snapshot {id})")?;
        }
        if let Some(off) = self.offset {
            write!(f, " (offset {off})")?;
        }
        if let Some(p) = &self.path {
            write!(f, " ({})", p.display())?;
        }
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error of `kind` with a message naming the problem.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            path: None,
            offset: None,
            snapshot: None,
            source: None,
        }
    }

    /// An I/O error during `what`, keeping the OS error as the source.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        let kind = match source.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::StorageFull => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        };
        let mut e = Error::new(kind, what);
        e.source = Some(source);
        e
    }

    /// Attaches the path involved.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Attaches the byte offset involved.
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Attaches the snapshot id involved.
    pub fn with_snapshot(mut self, id: u64) -> Self {
        self.snapshot = Some(id);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message naming the problem, without the context suffixes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path involved, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The byte offset involved, if any.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The snapshot id involved, if any.
    pub fn snapshot(&self) -> Option<u64> {
        self.snapshot
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    pub(crate) fn no_snapshot(id: u64) -> Self {
        Error::new(ErrorKind::NotFound, "no such snapshot").with_snapshot(id)
    }

    pub(crate) fn out_of_range(offset: u64, len: u64, size: u64) -> Self {
        Error::new(
            ErrorKind::OutOfRange,
            format!("range of {len} bytes at offset {offset} exceeds the size of {size} bytes"),
        )
        .with_offset(offset)
    }
}

/// Checks that `[offset, offset + len)` lies inside `size`, without overflow.
pub(crate) fn check_range(offset: u64, len: usize, size: u64) -> Result<()> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::out_of_range(offset, len, size)),
    }
}
