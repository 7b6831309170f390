//! The control socket: `<pool>/control.sock`, where `umbra serve` takes the commands of other
//! `umbra` processes while it owns the pool.
//!
//! A command that finds its pool served ([`client::find`]) sends its command line there; the
//! server parses it with the same command line, runs the same command code on its open array
//! ([`crate::Ctx::array`]) and sends back the report, which the caller prints as if it had run
//! the command itself (same text, same JSON, same exit code). Whatever the command reads or
//! writes on the caller's side — `--in`, `--out`, stdout, images, documents, scripts — and its
//! exec writers go through [`caller::Caller`]: the server asks the caller, which does it
//! ([`caller::Remote`] on the server, [`client::run`] in the caller). The framing is
//! [`wire`]'s.
//!
//! The exchange, after the caller's `{"argv": [...]}`: the server sends requests, each answered
//! in turn (`open`/`read`/`close` a file to read, `create`/`write`/`commit`/`discard` a file to
//! write — `write` carries a data frame and gets no answer —, `writer` an event for one of the
//! caller's writers), and ends with `{"op": "done", "report": {...}}` or
//! `{"op": "done", "error": {...}}`.

pub mod caller;
pub mod client;
pub mod server;
pub mod staging;
pub mod wire;

/// The control socket's file name in the pool directory.
pub const SOCKET_NAME: &str = "control.sock";
