//! # umbra-nbd
//!
//! An NBD server (the Network Block Device protocol, fixed newstyle) for the LUNs of a
//! [`vds_core::Array`], in which every client sees the LUNs **its initiator identity** is unmasked
//! to, named by the host LUN number that identity sees them at (as a SCSI initiator addresses
//! them), so a fast recovery ([`vds_core::Array::swap_lun`]) sends a reconnecting client to the
//! replacement under the same export name. See `docs/nbd.md` for the protocol subset.
//!
//! - [`Server::listen`] serves a TCP or unix-socket listener on its own threads, every client as
//!   one [`Identity`]: a fixed initiator, or (TLS) the initiator the client certificate names.
//! - [`Server::serve_connection`] runs one connection on the calling thread (tests, fuzzing,
//!   inetd-style use).
//! - [`Server::shutdown`] stops listeners and ends connections after answering their requests in
//!   flight.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use umbra_nbd::{Identity, Listener, Server, ServerConfig};
//! use vds_core::{Array, InitiatorId, MaskSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let array = Array::in_memory();
//! let host = InitiatorId::parse("iqn.2026-01.org.example:host1")?;
//! array.create_lun("db", 1 << 20, &MaskSpec::host(host.clone(), vds_core::Access::ReadWrite))?;
//! array.write_at("db", &host, b"hello", 4096)?;
//!
//! let server = Server::new(array, ServerConfig::default());
//! let listener = server.listen(
//!     Listener::Tcp(TcpListener::bind("127.0.0.1:0")?),
//!     Identity::Fixed(host),
//! )?;
//! let addr = listener.local_addr().tcp().expect("a TCP listener");
//!
//! // A minimal raw client: fixed newstyle, NO_ZEROES, EXPORT_NAME "0", one READ.
//! let mut s = TcpStream::connect(addr)?;
//! let mut greeting = [0u8; 18];
//! s.read_exact(&mut greeting)?;
//! assert_eq!(&greeting[..8], b"NBDMAGIC");
//! s.write_all(&3u32.to_be_bytes())?; // FIXED_NEWSTYLE | NO_ZEROES
//! s.write_all(b"IHAVEOPT")?;
//! s.write_all(&1u32.to_be_bytes())?; // EXPORT_NAME
//! s.write_all(&1u32.to_be_bytes())?;
//! s.write_all(b"0")?;
//! let mut export = [0u8; 10];
//! s.read_exact(&mut export)?;
//! assert_eq!(u64::from_be_bytes(export[..8].try_into()?), 1 << 20);
//! let mut req = Vec::new();
//! req.extend_from_slice(&0x2560_9513u32.to_be_bytes());
//! req.extend_from_slice(&0u16.to_be_bytes()); // flags
//! req.extend_from_slice(&0u16.to_be_bytes()); // READ
//! req.extend_from_slice(&7u64.to_be_bytes()); // cookie
//! req.extend_from_slice(&4096u64.to_be_bytes());
//! req.extend_from_slice(&5u32.to_be_bytes());
//! s.write_all(&req)?;
//! let mut reply = [0u8; 16 + 5];
//! s.read_exact(&mut reply)?;
//! assert_eq!(&reply[4..8], &[0, 0, 0, 0]); // no error
//! assert_eq!(&reply[16..], b"hello");
//! drop(s);
//! server.shutdown();
//! # Ok(()) }
//! ```

// NBD is big-endian on the wire (network byte order, fixed by the protocol); nothing this crate
// encodes is persisted, so the workspace's little-endian rule for on-disk formats does not apply.
#![allow(clippy::big_endian_bytes)]

mod conn;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
pub mod proto;
mod server;
pub mod tls;
mod transmission;

pub use conn::Conn;
pub use error::{Error, ErrorKind, Result};
pub use export::ExportInfo;
pub use server::{
    Identity, Listener, ListenerHandle, LocalAddr, Server, ServerConfig, TlsAcceptor,
    WRITE_DROP_FACTOR,
};
