//! The crate's one error type.

use std::fmt;
use std::io;

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a small stable set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system reported an I/O error on a socket (the peer vanished, a reset).
    Io,
    /// The client broke the protocol (bad magic, an unknown client flag, an oversize option,
    /// too many options); the connection was closed.
    Protocol,
    /// The TLS handshake failed, or the client would not use TLS where it is required.
    Tls,
    /// The client passed one of the server's limits (`ServerConfig`): its handshake's silence
    /// limit or deadline, the connection limit at EXPORT_NAME, a WRITE declaring far more than
    /// the largest request; the connection was closed.
    Limit,
    /// The server is shut down.
    Shutdown,
}

impl ErrorKind {
    /// A short stable name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Tls => "tls",
            ErrorKind::Limit => "limit",
            ErrorKind::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crate's error: a kind, a message naming the problem, and the OS error where there is one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An I/O error with what was being done when it happened: [`ErrorKind::Limit`] for a
    /// read that timed out (a handshake limit), [`ErrorKind::Io`] otherwise.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error {
            kind: if source.kind() == io::ErrorKind::TimedOut {
                ErrorKind::Limit
            } else {
                ErrorKind::Io
            },
            message: format!("{}: {source}", what.into()),
            source: Some(source),
        }
    }

    /// A protocol violation by the client.
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}
