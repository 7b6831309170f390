//! `umbra serve`: serves the pool's LUNs over NBD — each listener's clients as one initiator
//! (`--as`), or with TLS as the initiator their certificate names — and takes the other
//! `umbra` commands on the pool's control socket while it owns the pool.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Value};
use umbra_nbd::{Identity, Listener, Server, ServerConfig};
use vds_core::ErrorKind;

use crate::control::server::ControlServer;
use crate::error::{Error, Result};
use crate::output::Report;
use crate::{parse, Ctx};

/// `umbra serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
Addresses: 127.0.0.1:PORT, [::1]:PORT, localhost:PORT, unix:PATH (port 0: any free port).
Each --listen takes the --as at the same position (or one --as for every listener); with
--tls-cert/--tls-key/--tls-ca every listener requires TLS and a client certificate signed by
the CA, whose SAN URI (else its CN) is the client's initiator id, and --as is not given.
A non-loopback TCP address without TLS needs --allow-insecure-remote.
While it runs, other umbra commands on the pool go through <pool>/control.sock (same output,
same exit codes; files and writers stay the caller's). SIGINT, SIGTERM or SIGHUP: clean shutdown.")]
pub struct ServeArgs {
    /// An address to serve NBD on (repeatable).
    #[arg(long, value_name = "ADDR", required = true)]
    pub listen: Vec<String>,
    /// The initiator the clients of the --listen at the same position are (repeatable).
    #[arg(long = "as", value_name = "ID")]
    pub initiator: Vec<String>,
    /// The server's certificate chain (PEM): TLS on every listener.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that sign the clients' certificates.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Allow a non-loopback TCP address without TLS (anyone who reaches it is that initiator).
    #[arg(long)]
    pub allow_insecure_remote: bool,
    /// Once listening, write a JSON document here (pid, control socket, addresses), atomically.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// The most NBD connections in transmission at once (64); clients still in their
    /// handshake have a budget of their own (16 per listener).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
}

/// Where to listen.
enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Addr {
    fn parse(text: &str) -> Result<Addr> {
        if let Some(p) = text.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(Error::usage("--listen unix: needs a path (unix:PATH)"));
            }
            return Ok(Addr::Unix(PathBuf::from(p)));
        }
        let mut addrs = text.to_socket_addrs().map_err(|e| {
            Error::of_kind(
                ErrorKind::InvalidArgument,
                format!("--listen {text:?} is not HOST:PORT or unix:PATH ({e})"),
            )
        })?;
        addrs.next().map(Addr::Tcp).ok_or_else(|| {
            Error::of_kind(
                ErrorKind::InvalidArgument,
                format!("--listen {text:?} names no address"),
            )
        })
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP (the terminal closed) in this thread (and so in every thread started after it), so that
/// [`wait_for_signal`] takes them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before any use, and
    // pthread_sigmask only reads it. No Rust invariant is involved.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGINT, SIGTERM or SIGHUP (blocked by [`block_signals`]); returns its number.
fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    loop {
        // SAFETY: `set` is an initialised signal set and `sig` a valid place for the answer.
        let r = unsafe { libc::sigwait(set, &mut sig) };
        if r == 0 {
            return sig;
        }
    }
}

/// Writes `doc` to `path` atomically (a temporary file renamed over it).
fn write_ready(path: &Path, doc: &Value) -> Result<()> {
    let tmp = path.with_extension("tmp-umbra");
    let text = serde_json::to_string_pretty(doc).expect("JSON serialises");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::file("cannot write ready file", path, e))
}

/// Unix sockets this server bound: removed when dropped (at shutdown, or when a later step of
/// the start fails).
struct SocketFiles(Vec<PathBuf>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The bytes a unix socket's path may have: `sun_path` less its closing NUL (107 on Linux).
fn max_socket_path() -> usize {
    fn len<const N: usize>(_: fn(&libc::sockaddr_un) -> &[libc::c_char; N]) -> usize {
        N
    }
    len(|a| &a.sun_path) - 1
}

/// Refuses a socket path a unix socket address cannot hold: invalid input (4), naming it.
fn check_socket_path_len(p: &Path, what: &str) -> Result<()> {
    let n = p.as_os_str().len();
    if n > max_socket_path() {
        return Err(Error::of_kind(
            ErrorKind::InvalidArgument,
            format!(
                "{what}: the socket path {} is {n} bytes, longer than a unix socket address \
                 holds ({}); use a shorter path",
                p.display(),
                max_socket_path()
            ),
        ));
    }
    Ok(())
}

/// The pool's control socket path, checked before the pool is opened: short enough, and no
/// directory there.
fn check_control_path(sock: &Path) -> Result<()> {
    check_socket_path_len(sock, "the pool's control socket")?;
    if std::fs::symlink_metadata(sock).is_ok_and(|m| m.is_dir()) {
        return Err(Error::of_kind(
            ErrorKind::AlreadyExists,
            format!(
                "the pool's control socket {}: a directory is there; remove it",
                sock.display()
            ),
        ));
    }
    Ok(())
}

/// A listen failure on `--listen TEXT` with its exit code: a missing directory is not found
/// (3), a path a socket cannot have invalid input (4), the rest (an address in use) I/O (9).
fn listen_error(text: &str, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    };
    Error::of_kind(kind, format!("cannot listen on {text}: {e}"))
}

/// Binds `--listen unix:PATH`. A socket nobody accepts on (a dead server's) is replaced; a live
/// one fails (address in use, 9); anything else there (a file, a directory, a symbolic link) is
/// left alone and refused as already existing (11), naming it.
fn bind_unix(p: &Path, text: &str) -> Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    check_socket_path_len(p, &format!("--listen {text}"))?;
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::of_kind(
                ErrorKind::NotFound,
                format!(
                    "cannot listen on {text}: no directory {} to make the socket in",
                    dir.display()
                ),
            ));
        }
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(p)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            {
                // A socket nobody listens on: a dead server's.
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(m) => {
            let what = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a file that is not a socket"
            };
            return Err(Error::of_kind(
                ErrorKind::AlreadyExists,
                format!(
                    "cannot listen on {text}: {} is {what}; it is left alone (give another \
                     path, or remove it)",
                    p.display()
                ),
            ));
        }
        Err(_) => {}
    }
    UnixListener::bind(p).map_err(|e| listen_error(text, e))
}

/// Makes way for `--ready-file PATH` before the server starts, so a script waiting on it never
/// reads a dead server's document: nothing there, or an empty file, is fine; the document of a
/// server that is gone (its pool's lock is free, or held by another process than the one it
/// names) is removed, under that lock, so no server of that pool starts meanwhile. The document
/// of a live server is refused busy (6), and any other file already existing (11): neither is
/// touched.
fn clear_ready_file(path: &Path) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(d) if !d.is_dir() => Err(Error::of_kind(
                    ErrorKind::NotFound,
                    format!(
                        "--ready-file {}: no directory {}",
                        path.display(),
                        d.display()
                    ),
                )),
                _ => Ok(()),
            };
        }
        Err(e) => return Err(Error::file("--ready-file: cannot read", path, e)),
    };
    let remove = || {
        std::fs::remove_file(path)
            .map_err(|e| Error::file("--ready-file: cannot remove the stale", path, e))
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return remove();
    }
    let doc: Option<Value> = serde_json::from_slice(&bytes).ok();
    let Some((pid, pool)) = doc
        .as_ref()
        .and_then(|d| Some((d["pid"].as_u64()?, PathBuf::from(d["pool"].as_str()?))))
    else {
        return Err(Error::of_kind(
            ErrorKind::AlreadyExists,
            format!(
                "--ready-file {}: the file exists and is not a ready document of umbra serve; \
                 it is left alone (give another path, or remove it)",
                path.display()
            ),
        ));
    };
    // The server that wrote it holds its pool's lock (`pool.lock`, with its pid) while it lives.
    let lock = pool.join("pool.lock");
    let file = match std::fs::File::open(&lock) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return remove(),
        Err(e) => {
            return Err(Error::file(
                "--ready-file: cannot open the pool lock",
                &lock,
                e,
            ))
        }
    };
    match file.try_lock() {
        // Free: its server is gone. Removed while this process holds the lock.
        Ok(()) => remove(),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock).unwrap_or_default();
            if holder.trim() == pid.to_string() {
                Err(Error::of_kind(
                    ErrorKind::Busy,
                    format!(
                        "--ready-file {}: the ready document of the live server (pid {pid}) of \
                         pool {}",
                        path.display(),
                        pool.display()
                    ),
                ))
            } else {
                // Another process holds that pool now: the document's server is gone.
                remove()
            }
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::file(
            "--ready-file: cannot lock the pool lock",
            &lock,
            e,
        )),
    }
}

/// Runs `umbra serve` until SIGINT or SIGTERM.
pub fn run(a: ServeArgs, ctx: &Ctx) -> Result<Report> {
    if ctx.array.is_some() {
        return Err(Error::usage(
            "the pool is already served: one server per pool",
        ));
    }
    let sigs = block_signals();
    // Every argument is read before the pool is opened.
    let addrs: Vec<Addr> = a
        .listen
        .iter()
        .map(|t| Addr::parse(t))
        .collect::<Result<_>>()?;
    // The same address twice is the command line's mistake, not the second bind's failure.
    for (i, addr) in addrs.iter().enumerate() {
        let twice = addrs[..i].iter().any(|b| match (addr, b) {
            (Addr::Tcp(x), Addr::Tcp(y)) => x == y && x.port() != 0,
            (Addr::Unix(x), Addr::Unix(y)) => {
                std::path::absolute(x).ok() == std::path::absolute(y).ok()
            }
            _ => false,
        });
        if twice {
            return Err(Error::usage(format!(
                "--listen {} given twice: each listener needs an address of its own",
                a.listen[i]
            )));
        }
    }
    let tls = a.tls_cert.is_some();
    if tls && !a.initiator.is_empty() {
        return Err(Error::usage(
            "--as with --tls-cert: under TLS each client's certificate names its initiator",
        ));
    }
    let ids = if tls {
        Vec::new()
    } else {
        let ids: Vec<_> = a
            .initiator
            .iter()
            .map(|t| parse::initiator(t))
            .collect::<Result<_>>()?;
        match ids.len() {
            0 => {
                return Err(Error::usage(
                    "serve needs --as ID (the initiator its clients are), or --tls-cert/--tls-key/--tls-ca",
                ))
            }
            1 => vec![ids[0].clone(); addrs.len()],
            n if n == addrs.len() => ids,
            n => {
                return Err(Error::usage(format!(
                    "{} --listen and {n} --as: give one --as per --listen, or one for all",
                    addrs.len()
                )))
            }
        }
    };
    for (addr, text) in addrs.iter().zip(&a.listen) {
        if let Addr::Tcp(s) = addr {
            if !tls && !s.ip().is_loopback() && !a.allow_insecure_remote {
                return Err(Error::usage(format!(
                    "--listen {text}: a non-loopback address without TLS lets anyone who reaches \
                     it act as the initiator; use --tls-cert/--tls-key/--tls-ca, or \
                     --allow-insecure-remote"
                )));
            }
        }
    }
    if a.max_connections == Some(0) {
        return Err(Error::of_kind(
            ErrorKind::InvalidArgument,
            "--max-connections 0: the server would serve no client (give 1 or more)",
        ));
    }
    // A TLS file that is not there is "not found" (exit 3), as any other missing file.
    for f in [&a.tls_cert, &a.tls_key, &a.tls_ca].into_iter().flatten() {
        if let Err(e) = std::fs::metadata(f) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(Error::of_kind(
                    ErrorKind::NotFound,
                    format!("TLS setup: {}: {e}", f.display()),
                ));
            }
        }
    }
    let acceptor: Option<Arc<dyn umbra_nbd::TlsAcceptor>> =
        match (&a.tls_cert, &a.tls_key, &a.tls_ca) {
            (Some(c), Some(k), Some(ca)) => Some(Arc::new(
                umbra_nbd::tls::RustlsAcceptor::from_pem_files(c, k, ca).map_err(|e| {
                    Error::of_kind(ErrorKind::InvalidArgument, format!("TLS setup: {e}"))
                })?,
            )),
            _ => None,
        };

    // Paths as the ready document and stdout give them: absolute, so a script elsewhere can
    // use them whatever the server's working directory.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let sock = crate::control::client::socket_path(&ctx.pool);
    check_control_path(&sock)?;
    if let Some(p) = &a.ready_file {
        clear_ready_file(p)?;
    }
    // Every listener is bound before the pool is opened (or created): a serve that cannot
    // listen changes nothing. Sockets bound here are removed if a later step fails.
    let mut bound = SocketFiles(Vec::new());
    let mut listeners = Vec::new();
    for (addr, text) in addrs.iter().zip(&a.listen) {
        listeners.push(match addr {
            Addr::Tcp(s) => Listener::Tcp(TcpListener::bind(s).map_err(|e| listen_error(text, e))?),
            Addr::Unix(p) => {
                let l = bind_unix(p, text)?;
                bound.0.push(p.clone());
                Listener::Unix(l)
            }
        });
    }

    let array = ctx.open()?;
    let mut config = ServerConfig::default();
    if let Some(n) = a.max_connections {
        config.max_connections = n;
    }
    let server = Server::new(array.clone(), config);
    let mut handles = Vec::new();
    let mut shown = Vec::new();
    let io = |what: &str, e: std::io::Error| Error::of_kind(ErrorKind::Io, format!("{what}: {e}"));
    for (i, ((listener, addr), text)) in
        listeners.into_iter().zip(&addrs).zip(&a.listen).enumerate()
    {
        let (identity, who) = match &acceptor {
            // No fixed initiator: each client is the one its certificate names.
            Some(t) => (Identity::Tls(t.clone()), Value::Null),
            None => (
                Identity::Fixed(ids[i].clone()),
                Value::String(ids[i].to_string()),
            ),
        };
        let h = server
            .listen(listener, identity)
            .map_err(|e| Error::of_kind(ErrorKind::Io, format!("cannot serve {text}: {e}")))?;
        let at = match (addr, h.local_addr().tcp()) {
            (_, Some(s)) => s.to_string(),
            (Addr::Unix(p), None) => format!("unix:{}", absolute(p).display()),
            (Addr::Tcp(_), None) => text.clone(),
        };
        shown.push(json!({ "address": at, "initiator": who }));
        handles.push(h);
    }
    let mut control = ControlServer::start(array.clone(), &ctx.pool, &sock)
        .map_err(|e| io(&format!("cannot listen on {}", sock.display()), e))?;

    let ready = json!({
        "pid": std::process::id(),
        "pool": absolute(&ctx.pool),
        "control": absolute(&sock),
        "listeners": shown,
    });
    if let Some(p) = &a.ready_file {
        write_ready(p, &ready)?;
    }
    {
        let mut out = std::io::stdout().lock();
        if ctx.json {
            let _ = writeln!(out, "{}", serde_json::to_string(&ready).expect("JSON"));
        } else {
            for l in &shown {
                let at = l["address"].as_str().unwrap_or("");
                let _ = match l["initiator"].as_str() {
                    Some(who) => writeln!(out, "listening on {at} as {who}"),
                    None => writeln!(
                        out,
                        "listening on {at} (TLS: each client as the initiator its certificate names)"
                    ),
                };
            }
            let _ = writeln!(out, "control socket {}", absolute(&sock).display());
            let _ = writeln!(out, "ready (pid {})", std::process::id());
        }
        let _ = out.flush();
    }

    let sig = wait_for_signal(&sigs);
    if !ctx.json {
        // With --json nothing is printed on stderr (cli/README, Conventions).
        eprintln!("umbra serve: signal {sig}: shutting down");
    }
    control.stop();
    server.shutdown();
    drop(bound);
    if let Some(p) = &a.ready_file {
        let _ = std::fs::remove_file(p);
    }
    // The ready document was the one JSON document; nothing more is printed.
    Ok(Report::new("", Value::Null))
}
