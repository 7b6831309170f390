//! The crate's one public error type.
//!
//! An [`Error`] is a small, stable [`ErrorKind`] (which the C ABI maps 1:1 onto a status code) plus the
//! context a user needs to act on it: a message naming the problem and, where they apply, the path,
//! byte offset and snapshot id involved, and the underlying I/O error as its
//! [`source`](std::error::Error::source) (the `Display` text does not repeat it: print the chain,
//! as [`Error::report`] does, to see both).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::state::SnapshotId;

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
    /// The object is in use by someone else right now: a volume directory opened by another handle
    /// or process, a split of the snapshot already running. The same call may succeed later
    /// without any change by the caller.
    Busy,
    /// The operation is refused in the object's current state, and retrying will not help until
    /// the state changes: a read-only snapshot written, a volume with dependent snapshots deleted
    /// without force, a frozen volume frozen again, a volume thawed that is not frozen.
    BadState,
    /// No room: the diff area reached its limit and the policy says fail the write (or no
    /// snapshot is left to delete), or the file system holding a volume's files is full (which
    /// never deletes a snapshot). The message says which, and names the file.
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
            ErrorKind::BadState => "bad state",
            ErrorKind::NoSpace => "no space",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "I/O error",
        }
    }
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidArgument,
        ErrorKind::OutOfRange,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Busy,
        ErrorKind::BadState,
        ErrorKind::NoSpace,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Corrupt,
        ErrorKind::UnsupportedVersion,
        ErrorKind::Unsupported,
        ErrorKind::Io,
    ];

    /// The kind an operating-system error reports: a missing file is [`ErrorKind::NotFound`], an
    /// existing one [`ErrorKind::AlreadyExists`], a full file system [`ErrorKind::NoSpace`], a
    /// path that is not a directory (or is one where a file was expected)
    /// [`ErrorKind::InvalidArgument`], a lock held elsewhere [`ErrorKind::Busy`]; anything else is
    /// [`ErrorKind::Io`].
    pub fn of_io(e: &io::Error) -> ErrorKind {
        match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::StorageFull => ErrorKind::NoSpace,
            io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => {
                ErrorKind::InvalidArgument
            }
            io::ErrorKind::WouldBlock => ErrorKind::Busy,
            _ => ErrorKind::Io,
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
    snapshot: Option<SnapshotId>,
    #[source]
    source: Option<io::Error>,
    /// Set on a [`ErrorKind::NoSpace`] that means the diff area reached its own size (its slot
    /// limit, or a diff device that cannot grow), as opposed to a full file system: only the former
    /// is what [`DiffFullPolicy`](crate::DiffFullPolicy) decides about.
    area_full: bool,
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
        // The OS error is the source, not part of this text: a printer that walks the chain
        // (`umbra_last_error`, the CLI, anyhow's `{:#}`) prints it once.
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
            area_full: false,
        }
    }

    /// An I/O error during `what`, keeping the OS error as the source; the kind is
    /// [`ErrorKind::of_io`] of the OS error.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        let mut e = Error::new(ErrorKind::of_io(&source), what);
        e.source = Some(source);
        e
    }

    /// Attaches the path involved.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.set_path(path);
        self
    }

    /// Attaches the path involved, in place.
    pub fn set_path(&mut self, path: impl AsRef<Path>) {
        self.path = Some(path.as_ref().to_path_buf());
    }

    /// Attaches the byte offset involved.
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Attaches the snapshot id involved.
    pub fn with_snapshot(mut self, id: SnapshotId) -> Self {
        self.snapshot = Some(id);
        self
    }

    /// The whole story in one line: this error's text followed by each underlying error's
    /// (`"I/O error: cannot write the journal (/pool/lun/journal.0): Input/output error (os error
    /// 5)"`).
    pub fn report(&self) -> String {
        report(self)
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
    pub fn snapshot(&self) -> Option<SnapshotId> {
        self.snapshot
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// A [`ErrorKind::NoSpace`]: the diff area reached its own size (see [`Error::is_area_full`]).
    pub(crate) fn area_full(message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::NoSpace, message);
        e.area_full = true;
        e
    }

    /// True for the diff area reaching its own size (its slot limit, a diff device that cannot
    /// grow); false for every other error, a full file system included.
    pub(crate) fn is_area_full(&self) -> bool {
        self.area_full
    }

    /// Puts `prefix` before the message, keeping the kind and the context.
    pub(crate) fn context(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    pub(crate) fn no_snapshot(id: SnapshotId) -> Self {
        Error::new(ErrorKind::NotFound, "no such snapshot").with_snapshot(id)
    }

    pub(crate) fn out_of_range(offset: u64, len: u64, size: u64) -> Self {
        let bytes = if len == 1 { "byte" } else { "bytes" };
        Error::new(
            ErrorKind::OutOfRange,
            format!("a range of {len} {bytes} exceeds the size of {size} bytes"),
        )
        .with_offset(offset)
    }
}

/// `err`'s text followed by the text of each error in its [`source`](std::error::Error::source)
/// chain, joined by `": "`: what a user should read. Every umbra crate's error type prints its own
/// text only, so nothing is printed twice.
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// Checks that `[offset, offset + len)` lies inside `size`, without overflow.
pub(crate) fn check_range(offset: u64, len: usize, size: u64) -> Result<()> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::out_of_range(offset, len, size)),
    }
}
