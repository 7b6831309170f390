//! The fixed-newstyle handshake: greeting, options, and the hand-over to transmission.

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::server::{Core, Identity};

/// Runs one connection: the handshake, then transmission of the export chosen.
pub(crate) fn serve(_core: &Core, _conn: Conn, _identity: &Identity) -> Result<()> {
    Err(Error::new(ErrorKind::Protocol, "not yet"))
}
