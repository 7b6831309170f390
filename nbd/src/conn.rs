//! [`Conn`]: a connection's two halves.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// A connection's two halves: the request side reads on the connection's thread, replies are
/// written under the connection's reply lock. A TLS acceptor ([`crate::TlsAcceptor`]) turns a
/// plain `Conn` into an encrypted one.
pub struct Conn {
    /// What the client sends.
    pub reader: Box<dyn Read + Send>,
    /// Where replies go.
    pub writer: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    /// Both halves of a TCP connection (the writer is a clone of the socket). Turns Nagle's
    /// algorithm off: replies are written whole.
    pub fn from_tcp(s: TcpStream) -> io::Result<Conn> {
        s.set_nodelay(true)?;
        let w = s.try_clone()?;
        Ok(Conn {
            reader: Box::new(s),
            writer: Box::new(w),
        })
    }

    /// Both halves of a unix-socket connection (the writer is a clone of the socket).
    pub fn from_unix(s: UnixStream) -> io::Result<Conn> {
        let w = s.try_clone()?;
        Ok(Conn {
            reader: Box::new(s),
            writer: Box::new(w),
        })
    }

    /// A connection over in-memory bytes: the client's bytes are `input`, replies go to `output`
    /// (fuzzing, tests).
    pub fn from_parts(
        input: impl Read + Send + 'static,
        output: impl Write + Send + 'static,
    ) -> Conn {
        Conn {
            reader: Box::new(input),
            writer: Box::new(output),
        }
    }
}
