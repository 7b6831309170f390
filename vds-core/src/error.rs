//! The crate's one public error type.
//!
//! An [`Error`] is a small, stable [`ErrorKind`] (which the C ABI maps one to one onto a status
//! code, docs/abi.md) plus a message naming the problem and, where it applies, the path involved.
//! An error of the engine below (`cow_engine::Error`) is carried unchanged: its kind becomes the
//! kind of the same name, its text is this error's text, and its context (offset, snapshot id)
//! stays reachable through [`Error::engine`].
//!
//! The text of an error never repeats its [`source`](std::error::Error::source): print the chain
//! ([`Error::report`]) to read the underlying OS error too.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The array's error kinds as one table, each kind with its doc, its text
/// ([`ErrorKind::as_str`]) and its JSON name ([`ErrorKind::name`]): `$then! { [table] rest }`.
///
/// This crate's [`ErrorKind`] is built from it, and so is every error vocabulary above that holds
/// the array's kinds (vss-core's), so a kind added here is added there too, with the same name
/// and text, and its conversion from this crate's kind is generated rather than written again.
/// Not for use outside the workspace.
#[doc(hidden)]
#[macro_export]
macro_rules! array_error_kinds {
    ($then:ident ! { $($rest:tt)* }) => {
        $then! {
            [
                /// An argument is invalid (a name, a size, a LUN number, a script argument).
                InvalidArgument = "invalid argument", "invalid_argument";
                /// An initiator id or unmasking list entry is not valid.
                InvalidInitiator = "invalid initiator", "invalid_initiator";
                /// A LUN, host, group or pool does not exist.
                NotFound = "not found", "not_found";
                /// A LUN or group of that name already exists.
                AlreadyExists = "already exists", "already_exists";
                /// The mask denies the initiator this access.
                AccessDenied = "access denied", "access_denied";
                /// In use by someone else right now: a pool or volume directory open in another
                /// handle or process, a LUN with a long operation running. The same call may
                /// succeed later.
                Busy = "busy", "busy";
                /// Refused in the object's current state, until that state changes: a LUN that
                /// snapshot LUNs depend on deleted, I/O to an offline LUN, a snapshot LUN extended
                /// before it is split, a group a mask names deleted, a read-only snapshot written,
                /// a volume frozen twice.
                BadState = "bad state", "bad_state";
                /// A byte range lies outside the LUN.
                OutOfRange = "out of range", "out_of_range";
                /// No room: no free host LUN number, a full diff area, a full file system.
                NoSpace = "no space", "no_space";
                /// A deadline passed (a freeze drain).
                Timeout = "timed out", "timeout";
                /// An operation was cancelled; starting it again resumes it where it can.
                Cancelled = "cancelled", "cancelled";
                /// Persisted state is damaged.
                Corrupt = "corrupt", "corrupt";
                /// The on-disk format version is newer (or older) than this build understands.
                /// Not damage: upgrade the library, do not repair the pool.
                UnsupportedVersion = "unsupported version", "unsupported_version";
                /// The device lacks an optional ability (resize, discard) the operation needs.
                Unsupported = "unsupported", "unsupported";
                /// The operating system reported an I/O error.
                Io = "I/O error", "io";
                /// A bug: the library panicked inside a long operation (the panic's message says
                /// where). Please report it.
                Internal = "internal error", "internal";
                /// A directory given as a pool holds files but no pool (a volume's directory, a
                /// mistyped path): a pool is created only in a missing or empty directory, and
                /// nothing was written.
                NotAPool = "not a pool", "not_a_pool";
            ]
            $($rest)*
        }
    };
}

/// Defines [`ErrorKind`] from the table of [`array_error_kinds!`].
macro_rules! define_error_kind {
    ([ $( $(#[$doc:meta])* $kind:ident = $text:literal, $name:literal; )* ]) => {
        /// What went wrong, as a small stable set that the C ABI maps one to one onto status
        /// codes.
        ///
        /// It holds every kind `cow_engine::ErrorKind` has (same names, same meaning) plus the
        /// array's own ([`ErrorKind::InvalidInitiator`], [`ErrorKind::AccessDenied`],
        /// [`ErrorKind::NotAPool`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            /// A short stable name for the kind (the same text `cow_engine::ErrorKind` uses for
            /// the kinds both have).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorKind::$kind => $text, )*
                }
            }

            /// The kind's stable snake_case name, as JSON output spells it (the script's
            /// results, the `umbra` command's errors): `"invalid_argument"`, `"not_a_pool"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorKind::$kind => $name, )*
                }
            }

            /// Every kind, in declaration order.
            pub const ALL: [ErrorKind; [$(stringify!($kind)),*].len()] = [$(ErrorKind::$kind),*];
        }
    };
}

array_error_kinds!(define_error_kind! {});

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<cow_engine::ErrorKind> for ErrorKind {
    /// The kind of the same name: nothing is folded.
    fn from(kind: cow_engine::ErrorKind) -> Self {
        use cow_engine::ErrorKind as K;
        match kind {
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::OutOfRange => ErrorKind::OutOfRange,
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::Busy => ErrorKind::Busy,
            K::BadState => ErrorKind::BadState,
            K::NoSpace => ErrorKind::NoSpace,
            K::Timeout => ErrorKind::Timeout,
            K::Cancelled => ErrorKind::Cancelled,
            K::Corrupt => ErrorKind::Corrupt,
            K::UnsupportedVersion => ErrorKind::UnsupportedVersion,
            K::Unsupported => ErrorKind::Unsupported,
            K::Io => ErrorKind::Io,
            // A kind added to the engine after this crate was written (a test keeps this arm
            // unreachable for the engine this workspace builds).
            _ => ErrorKind::Io,
        }
    }
}

/// The error type of `vds-core`.
pub struct Error {
    kind: ErrorKind,
    repr: Repr,
}

enum Repr {
    Own {
        message: String,
        path: Option<PathBuf>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An engine error, carried unchanged.
    Engine(cow_engine::Error),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Own {
                message,
                path,
                source,
            } => f
                .debug_struct("Error")
                .field("kind", &self.kind)
                .field("message", message)
                .field("path", path)
                .field("source", source)
                .finish(),
            Repr::Engine(e) => f
                .debug_struct("Error")
                .field("kind", &self.kind)
                .field("engine", e)
                .finish(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Own { message, path, .. } => {
                write!(f, "{}: {}", self.kind, message)?;
                if let Some(p) = path {
                    write!(f, " ({})", p.display())?;
                }
                Ok(())
            }
            Repr::Engine(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Own { source, .. } => source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static)),
            // Transparent: the engine error's text is this error's text, so the chain goes on
            // with what lies under it.
            Repr::Engine(e) => std::error::Error::source(e),
        }
    }
}

impl Error {
    /// A new error of `kind` with a message naming the problem.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            repr: Repr::Own {
                message: message.into(),
                path: None,
                source: None,
            },
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message naming the problem, without the kind and context.
    pub fn message(&self) -> &str {
        match &self.repr {
            Repr::Own { message, .. } => message,
            Repr::Engine(e) => e.message(),
        }
    }

    /// The path involved, if any.
    pub fn path(&self) -> Option<&Path> {
        match &self.repr {
            Repr::Own { path, .. } => path.as_deref(),
            Repr::Engine(e) => e.path(),
        }
    }

    /// The engine error this error carries, if it came from the engine (for its byte offset and
    /// snapshot id).
    pub fn engine(&self) -> Option<&cow_engine::Error> {
        match &self.repr {
            Repr::Engine(e) => Some(e),
            Repr::Own { .. } => None,
        }
    }

    /// This error's text followed by each underlying error's, joined by `": "`: the line to show
    /// a user (`"I/O error: cannot append to the pool log (/pool/pool.log): No space left on
    /// device (os error 28)"`).
    pub fn report(&self) -> String {
        cow_engine::error_report(self)
    }

    /// Attaches the path involved (for an engine error: replaces the engine's path).
    pub fn with_path(mut self, p: impl AsRef<Path>) -> Self {
        match &mut self.repr {
            Repr::Own { path, .. } => *path = Some(p.as_ref().to_path_buf()),
            Repr::Engine(e) => e.set_path(p),
        }
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

    /// An OS error during `what`; the kind is the one the OS error reports (a missing file is
    /// [`ErrorKind::NotFound`], a full disk [`ErrorKind::NoSpace`], ... as in the engine).
    pub(crate) fn io(what: impl Into<String>, e: std::io::Error) -> Self {
        Error {
            kind: cow_engine::ErrorKind::of_io(&e).into(),
            repr: Repr::Own {
                message: what.into(),
                path: None,
                source: Some(Box::new(e)),
            },
        }
    }
}

impl Error {
    /// This error as the cause of a failure to do `what` on `path`: the new error has this one's
    /// kind, says what failed and where, and keeps this one as its source (printed once, by
    /// [`Error::report`]).
    pub(crate) fn context(self, what: impl Into<String>, path: impl AsRef<Path>) -> Error {
        Error {
            kind: self.kind,
            repr: Repr::Own {
                message: what.into(),
                path: Some(path.as_ref().to_path_buf()),
                source: Some(Box::new(self)),
            },
        }
    }
}

impl From<cow_engine::Error> for Error {
    fn from(e: cow_engine::Error) -> Self {
        Error {
            kind: e.kind().into(),
            repr: Repr::Engine(e),
        }
    }
}

/// The text of a caught panic's payload (`std::panic::catch_unwind`'s error): its message when it
/// is a `&str` or a `String`, otherwise a fixed text. The one place every crate that catches
/// panics (long operations, writer calls, the C boundary) reads it.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic with a non-text payload"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why: vds-core used to fold Timeout into Cancelled and UnsupportedVersion into Corrupt, so an
    /// operator was told to repair a pool that only needed a newer library.
    #[test]
    fn engine_kinds_carry_through_unchanged() {
        use cow_engine::ErrorKind as K;
        let pairs = [
            (K::InvalidArgument, ErrorKind::InvalidArgument),
            (K::OutOfRange, ErrorKind::OutOfRange),
            (K::NotFound, ErrorKind::NotFound),
            (K::AlreadyExists, ErrorKind::AlreadyExists),
            (K::Busy, ErrorKind::Busy),
            (K::BadState, ErrorKind::BadState),
            (K::NoSpace, ErrorKind::NoSpace),
            (K::Timeout, ErrorKind::Timeout),
            (K::Cancelled, ErrorKind::Cancelled),
            (K::Corrupt, ErrorKind::Corrupt),
            (K::UnsupportedVersion, ErrorKind::UnsupportedVersion),
            (K::Unsupported, ErrorKind::Unsupported),
            (K::Io, ErrorKind::Io),
        ];
        for (engine, ours) in pairs {
            let e = Error::from(cow_engine::Error::new(engine, "x"));
            assert_eq!(e.kind(), ours);
            // The same label on both sides, so the text reads the same whichever crate made it.
            assert_eq!(engine.as_str(), ours.as_str());
        }
    }

    /// Why: a wrapped engine error used to print its message three times along the chain.
    #[test]
    fn a_wrapped_error_prints_its_text_once() {
        let os = std::io::Error::from_raw_os_error(libc::EIO);
        let engine = cow_engine::Error::io("cannot write the journal", os).with_path("/p/j");
        let e = Error::from(engine);
        let report = e.report();
        assert_eq!(
            report.matches("cannot write the journal").count(),
            1,
            "{report}"
        );
        assert_eq!(report.matches("os error 5").count(), 1, "{report}");
        assert!(report.starts_with("I/O error: cannot write the journal (/p/j): "));
        assert_eq!(e.to_string(), "I/O error: cannot write the journal (/p/j)");
    }

    #[test]
    fn os_errors_keep_their_kind() {
        let e = Error::io(
            "cannot append",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        let e = Error::io(
            "cannot open",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
