//! The serving side of the control socket: accepts `umbra` processes and runs their commands,
//! one at a time, on the served array.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use clap::{CommandFactory, FromArgMatches};
use parking_lot::Mutex;
use serde_json::{json, Value};
use vds_core::Array;

use super::caller::Remote;
use super::wire;
use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::Report;
use crate::Ctx;

/// A listening control socket; [`ControlServer::stop`] (or drop) stops it and removes the file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
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
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, pool) = (stop.clone(), pool.to_path_buf());
        // One command at a time: commands see each other's effects whole.
        let one = Arc::new(Mutex::new(()));
        let accept = std::thread::Builder::new()
            .name("umbra-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    // SeqCst pairs with the store in `stop`: once it is seen, no new command.
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (array, pool, one) = (array.clone(), pool.clone(), one.clone());
                    let _ = std::thread::Builder::new()
                        .name("umbra-command".into())
                        .spawn(move || serve_one(conn, array, pool, &one));
                }
            })?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    /// Stops accepting (a command running goes on to its end on its own thread) and removes
    /// the socket.
    pub fn stop(&mut self) {
        let Some(t) = self.accept.take() else { return };
        // SeqCst: see the load in the accept loop.
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop with a connection of our own.
        let _ = UnixStream::connect(&self.path);
        let _ = t.join();
        let _ = std::fs::remove_file(&self.path);
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

/// Runs one caller's command.
fn serve_one(conn: UnixStream, array: Array, pool: PathBuf, one: &Mutex<()>) {
    let mut c = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let Ok(req) = wire::recv_json(&mut c) else {
        // The stop's own wake-up connection, or a caller gone before asking anything.
        return;
    };
    let argv: Vec<String> = serde_json::from_value(req["argv"].clone()).unwrap_or_default();
    let remote = Remote::new(conn);
    let result = {
        let _g = one.lock();
        run_argv(argv.clone(), array, pool, &remote)
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

/// Parses and runs `argv` as `umbra` would, on the served array, for `remote`.
fn run_argv(argv: Vec<String>, array: Array, pool: PathBuf, remote: &Remote) -> Result<Report> {
    let matches = Cli::command()
        .try_get_matches_from(std::iter::once("umbra".to_string()).chain(argv))
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| Error::usage(e.render().to_string().trim_end().to_string()))?;
    match matches.command {
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
        pool,
        json: matches.json,
        pool_given: true,
        array: Some(array),
        caller: Arc::new(remote.clone()),
    };
    crate::dispatch_ctx(matches.command, &ctx)
}
