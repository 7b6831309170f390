//! The crate's one public error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a small stable set that the C ABI maps onto status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument is invalid (a name, a size, a LUN number, a script argument).
    InvalidArgument,
    /// An initiator id or unmasking list entry is not valid.
    InvalidInitiator,
    /// A LUN, host, group or pool does not exist.
    NotFound,
    /// A LUN or group of that name already exists.
    AlreadyExists,
    /// The mask denies the initiator this access.
    AccessDenied,
    /// Refused in the object's current state (a LUN others depend on, a pool in use, offline).
    Busy,
    /// A byte range lies outside the LUN.
    OutOfRange,
    /// No room: no free host LUN number, a full diff area.
    NoSpace,
    /// An operation was cancelled or timed out.
    Cancelled,
    /// Persisted state is damaged.
    Corrupt,
    /// The operating system reported an I/O error.
    Io,
}

impl ErrorKind {
    /// A short stable name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::InvalidInitiator => "invalid initiator",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Busy => "busy",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::NoSpace => "no space",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "I/O error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of `vds-core`.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(p) = &self.path {
            write!(f, " ({})", p.display())?;
        }
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
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
            source: None,
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message naming the problem.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path involved, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Attaches the path involved.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn invalid_initiator(text: &str, reason: impl Into<String>) -> Self {
        Error::new(
            ErrorKind::InvalidInitiator,
            format!("{:?}: {}", text, reason.into()),
        )
    }

    pub(crate) fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        let mut err = Error::new(ErrorKind::Io, what);
        err.source = Some(Box::new(e));
        err
    }
}

impl From<cow_engine::Error> for Error {
    fn from(e: cow_engine::Error) -> Self {
        use cow_engine::ErrorKind as K;
        let kind = match e.kind() {
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::OutOfRange => ErrorKind::OutOfRange,
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::Busy => ErrorKind::Busy,
            K::NoSpace => ErrorKind::NoSpace,
            K::Timeout | K::Cancelled => ErrorKind::Cancelled,
            K::Corrupt | K::UnsupportedVersion => ErrorKind::Corrupt,
            _ => ErrorKind::Io,
        };
        let path = e.path().map(Path::to_path_buf);
        let mut err = Error::new(kind, e.message().to_string());
        err.path = path;
        err.source = Some(Box::new(e));
        err
    }
}
