//! The one error type of the `umbra` command: what failed, as a kind name and an exit status,
//! with a message naming the problem.

use std::fmt;
use std::path::Path;

use crate::exit::Status;

/// A failed command: printed on stderr (`umbra: error: ...`), or with `--json` as
/// `{"error": {"kind": ..., "message": ..., "exit_code": ...}}` on stdout; the process exits
/// with [`Error::status`]'s code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The stable snake_case kind (`"not_found"`, `"usage"`, ...).
    pub kind: &'static str,
    /// The exit status.
    pub status: Status,
    /// What went wrong, naming the object, value or path.
    pub message: String,
}

/// Result alias of the command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A usage error (exit code 2): a command line that asks for what cannot be done this way.
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            kind: "usage",
            status: Status::Usage,
            message: message.into(),
        }
    }

    /// An error of vds-core's `kind` raised by the command itself (a check made before the
    /// library is called), with the library's name and exit code for that kind.
    pub fn of_kind(kind: vds_core::ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind: kind.name(),
            status: Status::of_vds(kind),
            message: format!("{}: {}", kind, message.into()),
        }
    }

    /// An OS error on a file the command reads or writes (not the pool's): a missing file is
    /// not found (3), an existing one where a new one is wanted already exists (11), the rest
    /// I/O (9).
    pub fn file(what: &str, path: &Path, e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => vds_core::ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => vds_core::ErrorKind::AlreadyExists,
            _ => vds_core::ErrorKind::Io,
        };
        Error::of_kind(kind, format!("{what} {}: {e}", path.display()))
    }

    /// The JSON form: `{"error": {"kind": ..., "message": ..., "exit_code": ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "kind": self.kind,
                "message": self.message,
                "exit_code": self.status.code(),
            }
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<vds_core::Error> for Error {
    /// The library's kind and exit code; its whole report (underlying OS errors included) as
    /// the message.
    fn from(e: vds_core::Error) -> Self {
        Error {
            kind: e.kind().name(),
            status: Status::of_vds(e.kind()),
            message: e.report(),
        }
    }
}

impl From<vss_core::Error> for Error {
    /// The shadow-copy library's kind (its snake_case name) and exit code; its whole report
    /// as the message.
    fn from(e: vss_core::Error) -> Self {
        Error {
            kind: vss_kind_name(e.kind()),
            status: Status::of_vss(e.kind()),
            message: e.report(),
        }
    }
}

/// A vss-core kind's stable snake_case name (`"writer_not_responding"`), as the DiskShadow run's
/// JSON spells it.
pub fn vss_kind_name(kind: vss_core::ErrorKind) -> &'static str {
    kind.name()
}
