//! The serving side of the control socket: accepts `umbra` processes and runs their commands on
//! the served array, in two lanes: access changes and queries (`quick`) one at a time among
//! themselves, everything else one at a time after the other (a revoke never waits for a
//! `shadow create` or an image copy to finish).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use vds_core::Array;

use super::caller::Remote;
use super::wire;
use crate::cli::{Cli, Command, LunCommand, ShadowCommand};
use crate::error::{Error, Result};
use crate::output::Report;
use crate::Ctx;

/// How long a caller has to send its command line once connected (per read): one that connects
/// and stays silent is hung up on, not kept.
pub const REQUEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// The most callers connected at once (running, waiting for their turn, or yet to speak); one
/// more is answered busy (exit code 6) at once.
pub const MAX_CALLERS: usize = 64;

/// A listening control socket; [`ControlServer::stop`] (or drop) stops it and removes the file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What every connection's thread shares.
struct Shared {
    array: Array,
    pool: PathBuf,
    /// Held by the long-lane command running: one at a time.
    one: Mutex<()>,
    /// The long-lane command running (its command line) and since when, for the notice of
    /// one that waits.
    running: Mutex<Option<(String, Instant)>>,
    /// Held by the quick-lane command running ([`quick`]): one at a time among themselves.
    quick: Mutex<()>,
    stop: Arc<AtomicBool>,
    callers: AtomicUsize,
    /// The callers whose command line was read and who are not answered yet (running or
    /// waiting for their turn); `stop` waits for none to be left.
    admitted: Mutex<usize>,
    answered: Condvar,
}

impl ControlServer {
    /// Listens on `path` (mode 0600; a file left there by a dead server is replaced: the caller
    /// holds the pool's lock, so no live server has it) and runs the commands that come in on
    /// `array`, the pool at `pool`.
    pub fn start(array: Array, pool: &Path, path: &Path) -> io::Result<ControlServer> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Created 0600 (no moment where another user could connect): the umask is the
        // process's, and nothing else of this process creates files while it is narrowed.
        // SAFETY: umask only swaps the process's file mode mask; it cannot fail.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the mask read.
        unsafe { libc::umask(old) };
        let listener = bound?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            array,
            pool: pool.to_path_buf(),
            // One command at a time in each lane: commands see each other's effects whole
            // (a quick one is one array change, atomic and fenced by the array itself).
            one: Mutex::new(()),
            running: Mutex::new(None),
            quick: Mutex::new(()),
            stop: stop.clone(),
            callers: AtomicUsize::new(0),
            admitted: Mutex::new(0),
            answered: Condvar::new(),
        });
        let sh_accept = shared.clone();
        let accept = std::thread::Builder::new()
            .name("umbra-control".into())
            .spawn(move || {
                let shared = sh_accept;
                for conn in listener.incoming() {
                    // SeqCst pairs with the store in `stop`: once it is seen, no new command.
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // Relaxed: a count, read and changed by atomic read-modify-writes only.
                    if shared.callers.fetch_add(1, Ordering::Relaxed) >= MAX_CALLERS {
                        shared.callers.fetch_sub(1, Ordering::Relaxed);
                        refuse(
                            conn,
                            &Error::of_kind(
                                vds_core::ErrorKind::Busy,
                                format!(
                                    "the pool's server has {MAX_CALLERS} commands running or \
                                     waiting; try again when they are done"
                                ),
                            ),
                        );
                        continue;
                    }
                    let sh = shared.clone();
                    // Counted out when the thread ends (a panic included) or does not start.
                    let started = std::thread::Builder::new()
                        .name("umbra-command".into())
                        .spawn(move || {
                            let _slot = Connected(&sh);
                            serve_one(conn, &sh);
                        });
                    if started.is_err() {
                        shared.callers.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
            shared,
        })
    }

    /// Stops accepting, removes the socket, and waits for the command running to end (a set
    /// being made is finished or aborted, not cut off) and for the commands still waiting for
    /// their turn to be answered that the server is shutting down (busy, exit code 6; not run).
    pub fn stop(&mut self) {
        let Some(t) = self.accept.take() else { return };
        // SeqCst: see the load in the accept loop and in `serve_one`.
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop with a connection of our own.
        let _ = UnixStream::connect(&self.path);
        let _ = t.join();
        let _ = std::fs::remove_file(&self.path);
        let mut left = self.shared.admitted.lock();
        while *left > 0 {
            self.shared.answered.wait(&mut left);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An error as the wire carries it.
pub fn error_json(e: &Error) -> Value {
    json!({"kind": e.kind, "exit_code": e.status.code(), "message": e.message})
}

/// Answers `conn` with `e` as the command's end, and hangs up.
fn refuse(mut conn: UnixStream, e: &Error) {
    let _ = conn.set_write_timeout(Some(REQUEST_TIME_LIMIT));
    let _ = wire::send_json(&mut conn, &json!({"op": "done", "error": error_json(e)}));
}

/// The command line of a caller's first message, `{"argv": [STRING...], "term_width": N}`, and
/// its terminal width; `Err(None)` for a caller that hung up before it spoke.
fn request(
    conn: &mut UnixStream,
) -> std::result::Result<(Vec<String>, Option<u16>), Option<Error>> {
    let bad = |what: String| {
        Some(Error::of_kind(
            vds_core::ErrorKind::InvalidArgument,
            format!("a bad control request: {what}"),
        ))
    };
    conn.set_read_timeout(Some(REQUEST_TIME_LIMIT))
        .map_err(|e| bad(e.to_string()))?;
    let req = match wire::recv_json(conn) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(None),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(bad(format!(
                "no command line within {} s of connecting",
                REQUEST_TIME_LIMIT.as_secs()
            )))
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    conn.set_read_timeout(None)
        .map_err(|e| bad(e.to_string()))?;
    let argv: Vec<String> = serde_json::from_value(req["argv"].clone())
        .map_err(|e| bad(format!("\"argv\" is not a list of strings ({e})")))?;
    let term_width = req["term_width"].as_u64().map(|w| w.clamp(20, 1000) as u16);
    Ok((argv, term_width))
}

/// A connection counted in [`Shared::callers`] until dropped.
struct Connected<'a>(&'a Shared);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        // Relaxed: see the accept loop.
        self.0.callers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A caller counted in [`Shared::admitted`] until dropped.
struct Admitted<'a>(&'a Shared);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        *self.0.admitted.lock() -= 1;
        self.0.answered.notify_all();
    }
}

/// Runs one caller's command.
fn serve_one(mut conn: UnixStream, sh: &Shared) {
    let me = super::own_uid();
    match super::peer_uid(&conn) {
        Ok(uid) if uid == me => {}
        Ok(uid) => {
            return refuse(
                conn,
                &Error::of_kind(
                    vds_core::ErrorKind::AccessDenied,
                    format!(
                        "the pool's server runs as uid {me} and takes commands of that user \
                         only, not of uid {uid}"
                    ),
                ),
            )
        }
        Err(_) => return,
    }
    let (argv, term_width) = match request(&mut conn) {
        Ok(r) => r,
        Err(None) => return,
        Err(Some(e)) => {
            eprintln!("umbra serve: control socket: {e}");
            return refuse(conn, &e);
        }
    };
    *sh.admitted.lock() += 1;
    // Counted out when this ends, by its answer or by a panic.
    let _admitted = Admitted(sh);
    let remote = Remote::new(conn, term_width);
    let result = match parse(&argv) {
        Err(e) => Err(e),
        Ok(cli) if quick(&cli.command) => {
            let _g = sh.quick.lock();
            run_parsed(cli, sh, &remote)
        }
        Ok(cli) => {
            let _g = match sh.one.try_lock() {
                Some(g) => g,
                None => {
                    if !cli.json {
                        // Read under the lock, sent after it: a write to the caller never holds
                        // up the running command's bookkeeping.
                        let text = waiting_notice(&sh.running.lock());
                        if let Some(text) = text {
                            remote.notice(&text);
                        }
                    }
                    sh.one.lock()
                }
            };
            // A fast recovery breaks, swaps and masks in steps: no access change of the quick
            // lane runs between them (it takes a moment; the quick lane waits that long).
            let _steps = matches!(cli.command, Command::Shadow(ShadowCommand::Recover { .. }))
                .then(|| sh.quick.lock());
            *sh.running.lock() = Some((command_words(&argv), Instant::now()));
            let result = run_parsed(cli, sh, &remote);
            *sh.running.lock() = None;
            result
        }
    };
    let msg = match &result {
        Ok(r) => json!({"op": "done", "report": {
            "text": r.text, "json": r.json, "failure": r.failure.as_ref().map(error_json),
        }}),
        Err(e) => json!({"op": "done", "error": error_json(e)}),
    };
    if remote.finish(&msg).is_err() || remote.is_dead() {
        eprintln!(
            "umbra serve: the caller of `umbra {}` went away before its end; the command was \
             stopped where it noticed",
            argv.join(" ")
        );
    }
}

/// `argv` parsed as `umbra` would parse it.
fn parse(argv: &[String]) -> Result<Cli> {
    Cli::command()
        .try_get_matches_from(std::iter::once("umbra".to_string()).chain(argv.iter().cloned()))
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| Error::usage(e.render().to_string().trim_end().to_string()))
}

/// True for the commands of the quick lane: an access change (mask, host LUN number, online,
/// host or group membership) or a query of the array. Each is one change the array makes
/// atomically and fences itself (no I/O admitted under the old access runs on after it), so it
/// may run while a long command (a shadow set being made, an image copied, a script) is under
/// way, as it would from a second process calling the library: "mask it off" is never queued
/// behind a backup.
fn quick(command: &Command) -> bool {
    match command {
        Command::Lun(c) => matches!(
            c,
            LunCommand::Unmask { .. }
                | LunCommand::Number { .. }
                | LunCommand::Online { .. }
                | LunCommand::Offline { .. }
                | LunCommand::List
                | LunCommand::Detail { .. }
        ),
        Command::Host(_) => true,
        Command::Group(_) => true,
        _ => false,
    }
}

/// `umbra` and the command line without its global options (`--pool`, `--json`), cut short
/// past 80 characters: how a waiting caller is told which command it waits for.
fn command_words(argv: &[String]) -> String {
    let mut words = vec!["umbra"];
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pool" => {
                it.next();
            }
            "--json" => {}
            a if a.starts_with("--pool=") => {}
            a => words.push(a),
        }
    }
    let text = words.join(" ");
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// What a long-lane command that has to wait is told on stderr: the command it waits for.
fn waiting_notice(running: &Option<(String, Instant)>) -> Option<String> {
    let (command, since) = running.as_ref()?;
    Some(format!(
        "umbra: waiting for `{command}` (running for {} s) to finish: a served pool runs one \
         such command at a time (masking, numbers, online/offline, hosts, groups and queries do \
         not wait)\n",
        since.elapsed().as_secs()
    ))
}

/// Runs the parsed command as `umbra` would, on the served array, for `remote`; the check of a
/// stopping server comes first (a command that waited for its turn is not run then).
fn run_parsed(cli: Cli, sh: &Shared, remote: &Remote) -> Result<Report> {
    // SeqCst: pairs with the store in `stop`, made before it waits for the commands admitted.
    if sh.stop.load(Ordering::SeqCst) {
        return Err(Error::of_kind(
            vds_core::ErrorKind::Busy,
            "the pool's server is shutting down; the command was not run (run it again)",
        ));
    }
    match cli.command {
        Command::Demo(_) => {
            return Err(Error::usage(
                "umbra demo runs on a pool of its own, not through a served pool's control socket",
            ))
        }
        Command::Serve(_) => {
            return Err(Error::usage(
                "the pool is already served (its control socket answered): one server per pool",
            ))
        }
        _ => {}
    }
    let ctx = Ctx {
        pool: sh.pool.clone(),
        json: cli.json,
        pool_given: true,
        array: Some(sh.array.clone()),
        caller: Arc::new(remote.clone()),
    };
    crate::output::with_caller_term(remote.term(), || crate::dispatch_ctx(cli.command, &ctx))
}
