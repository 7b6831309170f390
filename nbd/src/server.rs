//! [`Server`]: listeners, connection threads, and shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use vds_core::{Array, InitiatorId};

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};

/// How many times [`ServerConfig::max_request`] a WRITE may declare and still have its payload
/// read and dropped (answered EOVERFLOW, the connection going on); past it the connection is
/// closed.
pub const WRITE_DROP_FACTOR: u32 = 4;

/// Limits of a [`Server`]. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections in transmission at once, over every listener and
    /// [`Server::serve_connection`] (64): past it, a GO is answered `ERR_POLICY` naming the limit
    /// and an EXPORT_NAME closes the connection. Connections still in their handshake do not
    /// count here: they count against their listener's [`ServerConfig::max_handshakes`].
    pub max_connections: usize,
    /// Connections in their handshake at once, per listener (16): one more is closed at accept.
    /// A budget of its own, apart from [`ServerConfig::max_connections`], so that clients that
    /// connect and never finish their handshake (before showing a TLS certificate, say) hold at
    /// most this many sockets of their listener, and no slot of another listener or of an
    /// established connection.
    pub max_handshakes: usize,
    /// The largest READ or WRITE accepted, in bytes (32 MiB, advertised as the maximum block
    /// size); a larger one gets EOVERFLOW. A WRITE's payload is read and dropped first when it
    /// is at most [`WRITE_DROP_FACTOR`] times this, so the connection goes on (as qemu-nbd
    /// does); a WRITE declaring more closes the connection (the server does not read up to
    /// 4 GiB of a client's bytes to throw them away).
    pub max_request: u32,
    /// Options a client may send in one handshake (32, as nbdkit), plus as many again per
    /// export its largest LIST answered; the next one closes the connection.
    pub max_options: u32,
    /// The longest option data accepted, in bytes (64 KiB: an export name and a query are at
    /// most 4096 bytes each); a longer option closes the connection.
    pub max_option_len: u32,
    /// Worker threads per connection (4) that run its requests that wait for the disk (FLUSH,
    /// FUA) or are over 256 KiB, replies going out in the order they finish; the rest run on the
    /// thread that reads the connection, in arrival order.
    pub workers: usize,
    /// Requests handed to the workers but not yet answered per connection (16, those running
    /// included) before the server stops reading the connection until one is answered.
    pub max_in_flight: usize,
    /// How long writing a reply to a socket may make no progress (60 s) before the connection
    /// counts as dead: a client that stops reading its replies cannot hold a worker, or
    /// [`Server::shutdown`], forever. `None`: no limit.
    pub write_timeout: Option<std::time::Duration>,
    /// How long a listener's client may stay silent during its handshake, up to GO or
    /// EXPORT_NAME (10 s, as qemu-nbd's `--handshake-limit`): a client that connects and stalls
    /// cannot hold a connection slot. Transmission has no such limit. `None`: no limit.
    /// (`serve_connection` has none.)
    pub handshake_timeout: Option<std::time::Duration>,
    /// How long a listener's client may take over its whole handshake, from accept to GO or
    /// EXPORT_NAME, a TLS handshake included (30 s): a client that sends a byte now and then,
    /// each within [`ServerConfig::handshake_timeout`], cannot hold its handshake slot longer.
    /// `None`: no limit. (`serve_connection` has none.)
    pub handshake_deadline: Option<std::time::Duration>,
    /// How long [`Server::shutdown`] lets connections answer the requests they read (5 s):
    /// past it, the sockets of connections still running are shut down both ways, so replies
    /// that cannot be sent (a client that stopped reading) fail at once. Shutdown therefore
    /// takes at most this grace plus the time the requests running then take to finish.
    /// `None`: wait for every connection however long (bounded only by `write_timeout`, per
    /// reply).
    pub shutdown_grace: Option<std::time::Duration>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_connections: 64,
            max_handshakes: 16,
            max_request: 32 << 20,
            max_options: 32,
            max_option_len: 64 << 10,
            workers: 4,
            max_in_flight: 16,
            write_timeout: Some(std::time::Duration::from_secs(60)),
            handshake_timeout: Some(std::time::Duration::from_secs(10)),
            handshake_deadline: Some(std::time::Duration::from_secs(30)),
            shutdown_grace: Some(std::time::Duration::from_secs(5)),
        }
    }
}

/// A socket to serve.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener (loopback, unless the caller decided otherwise).
    Tcp(TcpListener),
    /// A unix-socket listener.
    Unix(UnixListener),
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP address (with the port the system chose for port 0).
    Tcp(SocketAddr),
    /// A unix socket's path (`None`: unnamed).
    Unix(Option<PathBuf>),
}

impl LocalAddr {
    /// The TCP address, if a TCP listener.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            LocalAddr::Tcp(a) => Some(*a),
            LocalAddr::Unix(_) => None,
        }
    }

    /// The socket path, if a named unix listener.
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        match self {
            LocalAddr::Unix(p) => p.as_deref(),
            LocalAddr::Tcp(_) => None,
        }
    }
}

/// Runs the TLS handshake of a connection that asked for STARTTLS.
pub trait TlsAcceptor: Send + Sync {
    /// Runs the TLS handshake on the plain connection (after the server's STARTTLS ACK) and
    /// returns the encrypted connection and the initiator its client certificate names.
    fn accept(&self, plain: Conn) -> io::Result<(Conn, InitiatorId)>;
}

/// Who the clients of a listener are.
#[derive(Clone)]
pub enum Identity {
    /// Every client of this listener is this initiator.
    Fixed(InitiatorId),
    /// TLS required (FORCEDTLS: every option but STARTTLS/ABORT gets TLS_REQD); after STARTTLS
    /// the acceptor's answer names the initiator.
    Tls(Arc<dyn TlsAcceptor>),
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Fixed(i) => f.debug_tuple("Fixed").field(i).finish(),
            Identity::Tls(_) => f.write_str("Tls(..)"),
        }
    }
}

/// An NBD server of one array's LUNs. Cheap to clone (the clones share the server); the last
/// clone dropped shuts it down ([`Server::shutdown`]).
#[derive(Clone)]
pub struct Server {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// Held by the `Server` clones only (not by the server's own threads): its drop is the last
/// clone's.
struct Owner {
    core: Arc<Core>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// What the server's threads share.
pub(crate) struct Core {
    pub(crate) array: Array,
    pub(crate) config: ServerConfig,
    /// Set once by `shutdown`, read by every connection between requests.
    stopping: AtomicBool,
    state: Mutex<State>,
    /// Signalled (under `state`) whenever a connection ends: what shutdown's grace waits on.
    ended: Condvar,
}

#[derive(Default)]
struct State {
    /// Live connections.
    conns: HashMap<u64, Entry>,
    /// Connections of `conns` in transmission (counted against `max_connections`).
    established: usize,
    next: u64,
    listeners: Vec<Arc<ListenerCtl>>,
    /// Connection threads of the listeners (finished ones are pruned as new ones start).
    threads: Vec<JoinHandle<()>>,
}

/// A live connection.
struct Entry {
    /// The socket to shut the read side of at shutdown (`None`: a connection of
    /// `serve_connection`, whose reader the server cannot interrupt).
    closer: Option<Closer>,
    /// The listener it came from (its id), whose handshake budget it counts against until it
    /// is established; `None`: `serve_connection`'s.
    listener: Option<u64>,
    /// In transmission: counted against `max_connections` rather than the handshake budget.
    established: bool,
}

/// A clone of a connection's socket, to end its reading.
enum Closer {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Closer {
    fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Closer::Tcp(s) => s.set_read_timeout(t),
            Closer::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn try_clone(&self) -> io::Result<Closer> {
        Ok(match self {
            Closer::Tcp(s) => Closer::Tcp(s.try_clone()?),
            Closer::Unix(s) => Closer::Unix(s.try_clone()?),
        })
    }

    fn shutdown_both(&self) {
        // An error means the socket is closed already: nothing to end.
        let _ = match self {
            Closer::Tcp(s) => s.shutdown(Shutdown::Both),
            Closer::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    fn shutdown_read(&self) {
        // An error means the socket is closed already: nothing to end.
        let _ = match self {
            Closer::Tcp(s) => s.shutdown(Shutdown::Read),
            Closer::Unix(s) => s.shutdown(Shutdown::Read),
        };
    }
}

impl Server {
    /// A server of `array`'s LUNs.
    pub fn new(array: Array, config: ServerConfig) -> Server {
        Server {
            owner: Arc::new(Owner {
                core: Arc::new(Core {
                    array,
                    config,
                    stopping: AtomicBool::new(false),
                    state: Mutex::new(State::default()),
                    ended: Condvar::new(),
                }),
            }),
        }
    }

    /// The array served.
    pub fn array(&self) -> &Array {
        &self.owner.core.array
    }

    /// Spawns an accept thread; every connection gets its own threads. Returns at once.
    /// [`ErrorKind::Shutdown`] after [`Server::shutdown`].
    pub fn listen(&self, listener: Listener, identity: Identity) -> Result<ListenerHandle> {
        let core = &self.owner.core;
        let (addr, wake) = match &listener {
            Listener::Tcp(l) => (
                LocalAddr::Tcp(
                    l.local_addr()
                        .map_err(|e| Error::io("reading the TCP listener's address", e))?,
                ),
                WakeSock::Tcp(
                    l.try_clone()
                        .map_err(|e| Error::io("cloning the TCP listener", e))?,
                ),
            ),
            Listener::Unix(l) => (
                LocalAddr::Unix(
                    l.local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(|p| p.to_path_buf())),
                ),
                WakeSock::Unix(
                    l.try_clone()
                        .map_err(|e| Error::io("cloning the unix listener", e))?,
                ),
            ),
        };
        let ctl = Arc::new(ListenerCtl {
            id: core.next_id(),
            stop: AtomicBool::new(false),
            wake,
            addr,
            thread: Mutex::new(None),
        });
        let mut st = core.state.lock();
        if core.stopping() {
            return Err(Error::new(
                ErrorKind::Shutdown,
                "the server is shut down: no new listener",
            ));
        }
        let (c, l2, id2) = (core.clone(), ctl.clone(), identity);
        let t = std::thread::Builder::new()
            .name("nbd-accept".into())
            .spawn(move || accept_loop(c, l2, listener, id2))
            .map_err(|e| Error::io("spawning the accept thread", e))?;
        *ctl.thread.lock() = Some(t);
        st.listeners.push(ctl.clone());
        Ok(ListenerHandle { ctl })
    }

    /// Runs one connection to its end on the calling thread (tests, fuzzing, inetd-style use):
    /// `Ok` once the client disconnected (DISC, ABORT, end of input) or the server shut down;
    /// an error says why the connection was closed otherwise (a protocol violation, a socket
    /// error). [`Server::shutdown`] cannot interrupt this connection's reader: it ends at the
    /// next request.
    pub fn serve_connection(&self, conn: Conn, identity: &Identity) -> Result<()> {
        let core = &self.owner.core;
        let id = core.register(None, None).ok_or_else(|| {
            Error::new(
                ErrorKind::Shutdown,
                "the server is shut down: connection refused",
            )
        })?;
        let r = crate::handshake::serve(core, conn, identity, &|| core.admit(id));
        core.deregister(id);
        r
    }

    /// Stops every listener, ends every connection (in-flight requests finish and are answered,
    /// then the connection closes), and waits for their threads. A connection still running
    /// after [`ServerConfig::shutdown_grace`] has its socket shut down both ways: replies it
    /// could not send are lost (the client did not read them), so shutdown is bounded. Idempotent; also run on drop of
    /// the last clone.
    pub fn shutdown(&self) {
        self.owner.core.shutdown();
    }
}

impl Core {
    /// Whether shutdown began.
    pub(crate) fn stopping(&self) -> bool {
        // Acquire pairs with the Release store in `shutdown`: a connection that sees the flag
        // also sees the state shutdown changed before it.
        self.stopping.load(Ordering::Acquire)
    }

    /// Records a live connection in its handshake (of listener `listener`); `None` once
    /// shutdown began, or when the listener has [`ServerConfig::max_handshakes`] connections
    /// in their handshake already.
    fn register(&self, closer: Option<Closer>, listener: Option<u64>) -> Option<u64> {
        let mut st = self.state.lock();
        if self.stopping() {
            return None;
        }
        if let Some(l) = listener {
            let handshaking = st
                .conns
                .values()
                .filter(|e| e.listener == Some(l) && !e.established)
                .count();
            if handshaking >= self.config.max_handshakes {
                return None;
            }
        }
        let id = st.next;
        st.next += 1;
        st.conns.insert(
            id,
            Entry {
                closer,
                listener,
                established: false,
            },
        );
        Some(id)
    }

    /// Moves connection `id` from its handshake to transmission: false (and nothing changed)
    /// when [`ServerConfig::max_connections`] connections are in transmission already.
    pub(crate) fn admit(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        if st.established >= self.config.max_connections {
            return false;
        }
        let Some(e) = st.conns.get_mut(&id) else {
            return false;
        };
        if !e.established {
            e.established = true;
            st.established += 1;
        }
        true
    }

    fn deregister(&self, id: u64) {
        let mut st = self.state.lock();
        if st.conns.remove(&id).is_some_and(|e| e.established) {
            st.established -= 1;
        }
        drop(st);
        self.ended.notify_all();
    }

    /// A fresh id (listeners).
    fn next_id(&self) -> u64 {
        let mut st = self.state.lock();
        st.next += 1;
        st.next - 1
    }

    fn shutdown(&self) {
        // Release: see `stopping`. Under the state lock, so no connection registers after it.
        {
            let _st = self.state.lock();
            self.stopping.store(true, Ordering::Release);
        }
        let listeners = std::mem::take(&mut self.state.lock().listeners);
        for l in listeners {
            l.stop();
        }
        {
            let st = self.state.lock();
            for c in st.conns.values().filter_map(|e| e.closer.as_ref()) {
                c.shutdown_read();
            }
        }
        // The grace: connections answer what they read; past it, a connection whose replies
        // cannot go out (its client stopped reading) is cut off both ways, so its blocked
        // writes fail now rather than after `write_timeout` each.
        if let Some(grace) = self.config.shutdown_grace {
            let deadline = std::time::Instant::now() + grace;
            let mut st = self.state.lock();
            while st.conns.values().any(|e| e.closer.is_some()) {
                if self.ended.wait_until(&mut st, deadline).timed_out() {
                    break;
                }
            }
            for c in st.conns.values().filter_map(|e| e.closer.as_ref()) {
                c.shutdown_both();
            }
        }
        let threads = std::mem::take(&mut self.state.lock().threads);
        for t in threads {
            // A panicked connection thread has ended its connection all the same.
            let _ = t.join();
        }
    }
}

/// A clone of a listening socket, to wake its accept at stop.
enum WakeSock {
    Tcp(TcpListener),
    Unix(UnixListener),
}

struct ListenerCtl {
    /// Its connections' handshake budget is counted by this id.
    id: u64,
    stop: AtomicBool,
    wake: WakeSock,
    addr: LocalAddr,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ListenerCtl {
    fn stopped(&self) -> bool {
        // Acquire pairs with the Release store in `stop`.
        self.stop.load(Ordering::Acquire)
    }

    /// Stops accepting and waits for the accept thread (connections go on).
    fn stop(&self) {
        // Release: the accept thread that sees the flag after waking sees it set before the wake.
        self.stop.store(true, Ordering::Release);
        // Shutting a listening socket down wakes a thread blocked in accept (Linux: EINVAL).
        let _ = match &self.wake {
            WakeSock::Tcp(l) => rustix::net::shutdown(l.as_fd(), rustix::net::Shutdown::Both),
            WakeSock::Unix(l) => rustix::net::shutdown(l.as_fd(), rustix::net::Shutdown::Both),
        };
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// A running listener. Dropping it leaves the listener running until [`ListenerHandle::stop`]
/// or [`Server::shutdown`].
pub struct ListenerHandle {
    ctl: Arc<ListenerCtl>,
}

impl std::fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerHandle")
            .field("addr", &self.ctl.addr)
            .finish()
    }
}

impl ListenerHandle {
    /// Where the listener listens.
    pub fn local_addr(&self) -> LocalAddr {
        self.ctl.addr.clone()
    }

    /// Stops accepting connections and waits for the accept thread; connections already
    /// accepted go on. Idempotent.
    pub fn stop(&self) {
        self.ctl.stop();
    }
}

fn accept_loop(core: Arc<Core>, ctl: Arc<ListenerCtl>, listener: Listener, identity: Identity) {
    loop {
        // The handshake's per-read limit is set by its clock ([`HandshakeClock`]) before every
        // read; this one covers a client silent from the start.
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().and_then(|(s, peer)| {
                s.set_write_timeout(core.config.write_timeout)?;
                s.set_read_timeout(core.config.handshake_timeout)?;
                let c = s.try_clone()?;
                Ok((Conn::from_tcp(s)?, Closer::Tcp(c), peer.to_string()))
            }),
            Listener::Unix(l) => l.accept().and_then(|(s, _)| {
                s.set_write_timeout(core.config.write_timeout)?;
                s.set_read_timeout(core.config.handshake_timeout)?;
                let c = s.try_clone()?;
                let at = match &ctl.addr {
                    LocalAddr::Unix(Some(p)) => format!("unix:{}", p.display()),
                    _ => "unix socket".to_string(),
                };
                Ok((Conn::from_unix(s)?, Closer::Unix(c), at))
            }),
        };
        if ctl.stopped() || core.stopping() {
            return;
        }
        let (mut conn, closer, peer) = match accepted {
            Ok(a) => a,
            Err(e) => match rustix::io::Errno::from_io_error(&e) {
                Some(
                    rustix::io::Errno::MFILE
                    | rustix::io::Errno::NFILE
                    | rustix::io::Errno::NOBUFS
                    | rustix::io::Errno::NOMEM,
                ) => {
                    // Out of descriptors or memory: back off (not a synchronisation), the
                    // next accept may succeed once a connection ended.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                _ if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
                {
                    continue
                }
                _ => return,
            },
        };
        let mut st = core.state.lock();
        st.threads.retain(|t| !t.is_finished());
        drop(st);
        // Two more clones: one for the handshake's clock, one to lift its limits once
        // transmission begins.
        let (Ok(clock_sock), Ok(lift)) = (closer.try_clone(), closer.try_clone()) else {
            continue;
        };
        let Some(id) = core.register(Some(closer), Some(ctl.id)) else {
            continue; // at the listener's handshake budget (or shutting down): closed by the drop
        };
        let lifted = Arc::new(AtomicBool::new(false));
        conn.reader = Box::new(HandshakeClock {
            inner: conn.reader,
            socket: clock_sock,
            silence: core.config.handshake_timeout,
            deadline: core
                .config
                .handshake_deadline
                .map(|d| (std::time::Instant::now() + d, d)),
            lifted: lifted.clone(),
        });
        let (c, ident) = (core.clone(), identity.clone());
        let spawned = std::thread::Builder::new()
            .name("nbd-conn".into())
            .spawn(move || {
                let r = crate::handshake::serve(&c, conn, &ident, &|| {
                    if !c.admit(id) {
                        return false;
                    }
                    // Relaxed: set and read by this connection's thread only (the handshake
                    // and transmission read the connection on it).
                    lifted.store(true, Ordering::Relaxed);
                    // On failure the connection goes on under the handshake's silence limit,
                    // which then also limits waits between requests.
                    let _ = lift.set_read_timeout(None);
                    true
                });
                c.deregister(id);
                // The error ended this connection only; the server goes on. A client that
                // broke the protocol or a limit is named on stderr (TLS refusals are by the
                // acceptor; a client that just went away is not news).
                if let Err(e) = r {
                    if matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Limit) {
                        eprintln!("umbra-nbd: connection from {peer} closed: {e}");
                    }
                }
            });
        match spawned {
            Ok(t) => core.state.lock().threads.push(t),
            Err(_) => core.deregister(id),
        }
    }
}

/// The reading half of a listener's connection while it haggles: each read waits at most the
/// silence limit and never past the handshake's deadline, and says which one passed (a
/// [`io::ErrorKind::TimedOut`] error, rather than the socket's bare EAGAIN). Once `lifted`
/// (transmission began) it reads plainly.
struct HandshakeClock {
    inner: Box<dyn io::Read + Send>,
    /// A clone of the socket, to set its read timeout.
    socket: Closer,
    silence: Option<std::time::Duration>,
    /// When the handshake must be over, and the limit that was (for the message).
    deadline: Option<(std::time::Instant, std::time::Duration)>,
    lifted: Arc<AtomicBool>,
}

impl HandshakeClock {
    fn past_deadline(total: std::time::Duration) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "timed out: the handshake was not over within {total:?} (the handshake deadline)"
            ),
        )
    }
}

impl io::Read for HandshakeClock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Relaxed: see where it is stored (the same thread).
        if self.lifted.load(Ordering::Relaxed) {
            return self.inner.read(buf);
        }
        let mut wait = self.silence;
        if let Some((at, total)) = self.deadline {
            let left = at.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Self::past_deadline(total));
            }
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        self.socket.set_read_timeout(wait)?;
        match self.inner.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                match self.deadline {
                    Some((at, total)) if std::time::Instant::now() >= at => {
                        Err(Self::past_deadline(total))
                    }
                    _ => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out: the client sent nothing for {:?} during its handshake \
                             (the handshake's silence limit)",
                            self.silence.unwrap_or_default()
                        ),
                    )),
                }
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    /// A clock over one end of a socket pair whose other end says nothing.
    fn clock(silence: Duration, deadline: Option<Duration>) -> (HandshakeClock, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let c = HandshakeClock {
            socket: Closer::Unix(ours.try_clone().unwrap()),
            inner: Box::new(ours),
            silence: Some(silence),
            deadline: deadline.map(|d| (std::time::Instant::now() + d, d)),
            lifted: Arc::new(AtomicBool::new(false)),
        };
        (c, theirs)
    }

    #[test]
    fn the_handshake_clock_names_the_limit_that_passed() {
        let mut b = [0u8; 4];
        let (mut c, _peer) = clock(Duration::from_millis(30), None);
        let e = c.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("silence limit"), "{e}");
        let (mut c, _peer) = clock(Duration::from_secs(10), Some(Duration::from_millis(30)));
        let e = c.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("handshake deadline"), "{e}");
        // Past the deadline no read waits at all.
        let e = c.read(&mut b).unwrap_err();
        assert!(e.to_string().contains("handshake deadline"), "{e}");
        // Lifted: a plain read (the peer's bytes arrive whatever the time).
        let (mut c, mut peer) = clock(Duration::from_millis(30), Some(Duration::ZERO));
        c.lifted.store(true, Ordering::Relaxed);
        c.socket.set_read_timeout(None).unwrap();
        io::Write::write_all(&mut peer, b"late").unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
    }
}
