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
//! `{"op": "done", "error": {...}}`. A script's `exec` lines are `exec` requests (the caller
//! runs the program as its child and answers its wait status), its `%VARIABLE%`s come from the
//! caller's environment (`env`), and its metadata files are the caller's (`open`/`read`, and
//! `create` with `"replace": true`: written beside the file, renamed over it at `commit`).
//!
//! Who may talk to whom: the socket is created mode 0600, and each side checks the other's
//! user id (`SO_PEERCRED`): the server answers only callers of its own user, and a caller
//! does what a server asks only if it runs as the caller's own user — a server can make its
//! caller run commands and write files, so a root `umbra` does not take orders from another
//! user's server.

pub mod caller;
pub mod client;
pub mod server;
pub mod staging;
pub mod wire;

/// The control socket's file name in the pool directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The user id of the process at the other end of `s` (`SO_PEERCRED`: for a connected
/// caller, its user when it connected; for a server, its user when it listened).
pub fn peer_uid(s: &std::os::unix::net::UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is `s`'s, open for this call; `cred` and `len` are valid places of
    // the sizes given, which getsockopt writes at most.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// This process's effective user id.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
