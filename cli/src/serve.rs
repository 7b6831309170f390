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
same exit codes; files and writers stay the caller's). SIGINT or SIGTERM: clean shutdown.")]
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
    /// The most NBD connections at once.
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

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started after it), so that
/// [`wait_for_signal`] takes them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before any use, and
    // pthread_sigmask only reads it. No Rust invariant is involved.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGINT or SIGTERM (blocked by [`block_signals`]); returns its number.
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
    let acceptor: Option<Arc<dyn umbra_nbd::TlsAcceptor>> =
        match (&a.tls_cert, &a.tls_key, &a.tls_ca) {
            (Some(c), Some(k), Some(ca)) => Some(Arc::new(
                umbra_nbd::tls::RustlsAcceptor::from_pem_files(c, k, ca).map_err(|e| {
                    Error::of_kind(ErrorKind::InvalidArgument, format!("TLS setup: {e}"))
                })?,
            )),
            _ => None,
        };

    let array = ctx.open()?;
    let mut config = ServerConfig::default();
    if let Some(n) = a.max_connections {
        config.max_connections = n;
    }
    let server = Server::new(array.clone(), config);
    let mut handles = Vec::new();
    let mut unix_paths = Vec::new();
    let mut shown = Vec::new();
    let io = |what: &str, e: std::io::Error| Error::of_kind(ErrorKind::Io, format!("{what}: {e}"));
    for (i, (addr, text)) in addrs.iter().zip(&a.listen).enumerate() {
        let listener = match addr {
            Addr::Tcp(s) => Listener::Tcp(
                TcpListener::bind(s).map_err(|e| io(&format!("cannot listen on {text}"), e))?,
            ),
            Addr::Unix(p) => {
                use std::os::unix::fs::FileTypeExt;
                let is_socket =
                    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket());
                if is_socket
                    && std::os::unix::net::UnixStream::connect(p)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                {
                    // A socket nobody listens on: a dead server's. Anything else there (a
                    // live socket, a file) is left alone and the bind fails naming it.
                    let _ = std::fs::remove_file(p);
                }
                let l = UnixListener::bind(p)
                    .map_err(|e| io(&format!("cannot listen on {text}"), e))?;
                unix_paths.push(p.clone());
                Listener::Unix(l)
            }
        };
        let (identity, who) = match &acceptor {
            Some(t) => (
                Identity::Tls(t.clone()),
                "(TLS client certificate)".to_string(),
            ),
            None => (Identity::Fixed(ids[i].clone()), ids[i].to_string()),
        };
        let h = server
            .listen(listener, identity)
            .map_err(|e| Error::of_kind(ErrorKind::Io, format!("cannot serve {text}: {e}")))?;
        let at = match h.local_addr().tcp() {
            Some(s) => s.to_string(),
            None => text.clone(),
        };
        shown.push(json!({ "address": at, "initiator": who }));
        handles.push(h);
    }
    let sock = crate::control::client::socket_path(&ctx.pool);
    let mut control = ControlServer::start(array.clone(), &ctx.pool, &sock)
        .map_err(|e| io(&format!("cannot listen on {}", sock.display()), e))?;

    let ready = json!({
        "pid": std::process::id(),
        "pool": ctx.pool,
        "control": sock,
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
                let _ = writeln!(
                    out,
                    "listening on {} as {}",
                    l["address"].as_str().unwrap_or(""),
                    l["initiator"].as_str().unwrap_or("")
                );
            }
            let _ = writeln!(out, "control socket {}", sock.display());
            let _ = writeln!(out, "ready (pid {})", std::process::id());
        }
        let _ = out.flush();
    }

    let sig = wait_for_signal(&sigs);
    eprintln!("umbra serve: signal {sig}: shutting down");
    control.stop();
    server.shutdown();
    for p in &unix_paths {
        let _ = std::fs::remove_file(p);
    }
    if let Some(p) = &a.ready_file {
        let _ = std::fs::remove_file(p);
    }
    // The ready document was the one JSON document; nothing more is printed.
    Ok(Report::new("", Value::Null))
}
