//! The calling side of the control socket: an `umbra` command that finds its pool served sends
//! its command line there, then does what the server asks (read and write its files, run its
//! writers) until the server sends the command's report.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vss_core::writer::{EventContext, Writer, WriterEvent};
use vss_core::{BackupType, Context, RegisteredWriter};

use super::wire::{self, CHUNK};
use crate::error::{Error, Result};
use crate::exit::Status;
use crate::output::Report;

/// The terminal width progress bars are laid out for (their template fits in it).
const TERM_WIDTH: u16 = 80;

/// What connecting to a pool's control socket found.
pub enum Found {
    /// A live server: the command goes there.
    Server(UnixStream),
    /// No socket, or one nobody listens on: the command opens the pool itself (the pool's
    /// lock says whether it is free; [`remove_stale`] then removes a dead server's socket).
    NoServer,
    /// A socket this process may not use (another user's server): the command fails with
    /// this error rather than try the pool.
    Refused(Error),
}

/// The control socket of pool `pool`.
pub fn socket_path(pool: &Path) -> PathBuf {
    pool.join(super::SOCKET_NAME)
}

/// Looks for a live server of `pool`. A socket nobody accepts on is left where it is: it may be
/// a server's that is binding it this instant; only a process holding the pool's lock knows it
/// is stale ([`remove_stale`]).
pub fn find(pool: &Path) -> Found {
    let path = socket_path(pool);
    match UnixStream::connect(&path) {
        Ok(s) => Found::Server(s),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Found::Refused(Error::of_kind(
            vds_core::ErrorKind::AccessDenied,
            format!(
                "the pool's control socket {} is not this user's to use (uid {}): {e} (a \
                 server of another user, or a pool directory this user may not enter); run \
                 the command as the server's user",
                path.display(),
                super::own_uid()
            ),
        )),
        Err(_) => Found::NoServer,
    }
}

/// Removes the control socket of `pool` when the caller holds the pool's lock (a live server
/// holds it while it runs, so a socket there is a dead server's).
pub fn remove_stale(pool: &Path) {
    let _ = std::fs::remove_file(socket_path(pool));
}

/// An open file of the caller's, by the server's handle.
enum Open {
    Read(File),
    Write {
        out: Box<dyn Write>,
        file: Option<File>,
        /// The file written (the temporary one of a replacement).
        path: Option<PathBuf>,
        /// A replacement's final path: the file written is renamed there at commit.
        replaces: Option<PathBuf>,
        failed: Option<io::Error>,
    },
}

/// Moves `f`'s offset `len` bytes on, extending the file over them as a hole: nothing is
/// written there, so the file stays sparse.
fn hole(f: &mut File, len: u64) -> io::Result<()> {
    let end = f.seek(SeekFrom::Current(len as i64))?;
    if f.metadata()?.len() < end {
        f.set_len(end)?;
    }
    Ok(())
}

/// The temporary name a replacement of `path` is written under (vss-core's rule for a
/// script's metadata file).
fn replacement_of(path: &Path) -> PathBuf {
    path.with_extension("tmp~")
}

/// Renames `tmp` over `path` and syncs the directory: the replacement is durable.
fn put_in_place(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// Runs the command `argv` (this process's arguments, without the program name) on the server
/// at the other end of `stream`; returns its report, or its error, as if run here.
///
/// Progress bars: unless `json` or stderr is not a terminal, the server draws them here
/// (`term` requests: text for stderr).
pub fn run(stream: UnixStream, argv: Vec<String>, json: bool) -> Result<Report> {
    let mut s = stream;
    let gone = |e: io::Error| {
        Error::of_kind(
            vds_core::ErrorKind::Io,
            format!("the pool's server hung up on this command: {e}"),
        )
    };
    // A server can make this process run commands and write files: only one of this user.
    let me = super::own_uid();
    let server = super::peer_uid(&s).map_err(gone)?;
    if server != me {
        return Err(Error::of_kind(
            vds_core::ErrorKind::AccessDenied,
            format!(
                "the pool's server runs as uid {server}, this command as uid {me}: it does \
                 not act for a server of another user; run it as uid {server}"
            ),
        ));
    }
    let term_width = (!json && io::stderr().is_terminal()).then_some(TERM_WIDTH);
    if let Err(e) = wire::send_json(&mut s, &json!({ "argv": argv, "term_width": term_width })) {
        // A server that refuses a caller (busy, another user) answers and hangs up without
        // reading its command line: the answer may be waiting here though the send failed.
        return match wire::recv_json(&mut s) {
            Ok(msg) if msg["op"] == "done" => done(&msg),
            _ => Err(gone(e)),
        };
    }
    let mut open: HashMap<u64, Open> = HashMap::new();
    let mut writers: HashMap<String, Arc<dyn Writer>> = HashMap::new();
    loop {
        let req = wire::recv_json(&mut s).map_err(gone)?;
        let h = req["h"].as_u64().unwrap_or(0);
        let answer = match req["op"].as_str().unwrap_or("") {
            "done" => return done(&req),
            "open" => {
                let path = PathBuf::from(req["path"].as_str().unwrap_or(""));
                Some(
                    match File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                        Ok((len, f)) => {
                            open.insert(h, Open::Read(f));
                            json!({"ok": {"len": len}})
                        }
                        Err(e) => json!({"err": wire::io_error_json(&e)}),
                    },
                )
            }
            "read" => {
                let max = (req["max"].as_u64().unwrap_or(0) as usize).min(CHUNK);
                let Some(Open::Read(f)) = open.get_mut(&h) else {
                    return Err(gone(io::Error::other(format!("read of unknown file {h}"))));
                };
                let mut buf = vec![0u8; max];
                let mut n = 0;
                let r = loop {
                    match f.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == max {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                match r {
                    Ok(()) => wire::send_data(&mut s, &buf[..n]).map_err(gone)?,
                    Err(e) => wire::send_json(&mut s, &json!({"err": wire::io_error_json(&e)}))
                        .map_err(gone)?,
                }
                None
            }
            "close" => {
                open.remove(&h);
                Some(json!({"ok": {}}))
            }
            "create" => Some(match req["path"].as_str() {
                None => {
                    open.insert(
                        h,
                        Open::Write {
                            out: Box::new(io::stdout()),
                            file: None,
                            path: None,
                            replaces: None,
                            failed: None,
                        },
                    );
                    json!({"ok": {}})
                }
                Some(p) => {
                    let (path, replaces) = if req["replace"].as_bool() == Some(true) {
                        (replacement_of(Path::new(p)), Some(PathBuf::from(p)))
                    } else {
                        (PathBuf::from(p), None)
                    };
                    let mut o = OpenOptions::new();
                    o.write(true);
                    if req["new"].as_bool() == Some(true) {
                        o.create_new(true);
                    } else {
                        o.create(true).truncate(true);
                    }
                    match o.open(&path).and_then(|f| Ok((f.try_clone()?, f))) {
                        Ok((w, f)) => {
                            open.insert(
                                h,
                                Open::Write {
                                    out: Box::new(w),
                                    file: Some(f),
                                    path: Some(path),
                                    replaces,
                                    failed: None,
                                },
                            );
                            json!({"ok": {}})
                        }
                        Err(e) => json!({"err": wire::io_error_json(&e)}),
                    }
                }
            }),
            "write" => {
                let data = wire::recv_data(&mut s).map_err(gone)?;
                if let Some(Open::Write { out, failed, .. }) = open.get_mut(&h) {
                    if failed.is_none() {
                        if let Err(e) = out.write_all(&data) {
                            *failed = Some(e);
                        }
                    }
                }
                None
            }
            "skip" => {
                // A hole in the file written (zeros on stdout); an error shows at the commit.
                let len = req["len"].as_u64().unwrap_or(0);
                if let Some(Open::Write {
                    out, file, failed, ..
                }) = open.get_mut(&h)
                {
                    if failed.is_none() {
                        let r = match file {
                            Some(f) => out.flush().and_then(|()| hole(f, len)),
                            None => io::copy(&mut io::repeat(0).take(len), out).map(drop),
                        };
                        if let Err(e) = r {
                            *failed = Some(e);
                        }
                    }
                }
                None
            }
            "commit" => Some(match open.remove(&h) {
                Some(Open::Write {
                    mut out,
                    file,
                    path,
                    replaces,
                    failed,
                }) => {
                    let r = match failed {
                        Some(e) => Err(e),
                        None => out
                            .flush()
                            .and_then(|()| file.map_or(Ok(()), |f| f.sync_all())),
                    };
                    let r = match (r, path, replaces) {
                        (Ok(()), Some(tmp), Some(fin)) => put_in_place(&tmp, &fin),
                        (Err(e), Some(tmp), Some(_)) => {
                            let _ = std::fs::remove_file(tmp);
                            Err(e)
                        }
                        (r, _, _) => r,
                    };
                    match r {
                        Ok(()) => json!({"ok": {}}),
                        Err(e) => json!({"err": wire::io_error_json(&e)}),
                    }
                }
                _ => {
                    json!({"err": {"kind": "other", "message": format!("no file {h} being written")}})
                }
            }),
            "discard" => {
                if let Some(Open::Write { file, path, .. }) = open.remove(&h) {
                    drop(file);
                    if let Some(p) = path {
                        let _ = std::fs::remove_file(p);
                    }
                }
                Some(json!({"ok": {}}))
            }
            "writer" => Some(writer_event(&req, &mut writers)),
            "exec" => {
                use std::os::unix::process::ExitStatusExt;
                let command = req["command"].as_str().unwrap_or("");
                Some(
                    match std::process::Command::new("/bin/sh")
                        .arg("-c")
                        .arg(command)
                        .status()
                    {
                        Ok(st) => json!({"ok": {"status": st.into_raw()}}),
                        Err(e) => json!({"err": wire::io_error_json(&e)}),
                    },
                )
            }
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect();
                Some(json!({"ok": {"vars": vars}}))
            }
            "term" => {
                let mut err = io::stderr().lock();
                let _ = err
                    .write_all(req["text"].as_str().unwrap_or("").as_bytes())
                    .and_then(|()| err.flush());
                None
            }
            other => return Err(gone(io::Error::other(format!("unknown request {other:?}")))),
        };
        if let Some(a) = answer {
            wire::send_json(&mut s, &a).map_err(gone)?;
        }
    }
}

/// Runs one writer event on this process's own writer (made at its first event, kept for the
/// session) and answers `{"ok": {"metadata": ...}}` or `{"failure": {"kind", "message"}}`.
fn writer_event(req: &Value, writers: &mut HashMap<String, Arc<dyn Writer>>) -> Value {
    let spec: RegisteredWriter = match serde_json::from_value(req["writer"].clone()) {
        Ok(w) => w,
        Err(e) => {
            return json!({"failure": {"kind": "non-retryable", "message": format!("bad writer: {e}")}})
        }
    };
    let event = req["event"].as_str().unwrap_or("");
    if event == "end-session" {
        if let Some(w) = writers.remove(&spec.name) {
            w.end_session();
        }
        return json!({"ok": {}});
    }
    let w = match writers.get(&spec.name) {
        Some(w) => w.clone(),
        None => match spec.writer() {
            Ok(w) => {
                writers.insert(spec.name.clone(), w.clone());
                w
            }
            Err(e) => {
                return json!({"failure": {"kind": "non-retryable", "message": e.to_string()}})
            }
        },
    };
    let deadline = Instant::now() + Duration::from_millis(req["deadline_ms"].as_u64().unwrap_or(0));
    let mut ctx = EventContext::new(deadline);
    if let Some(set) = req["set_id"]
        .as_str()
        .and_then(|t| uuid::Uuid::parse_str(t).ok())
    {
        let luns: Vec<String> = serde_json::from_value(req["luns"].clone()).unwrap_or_default();
        ctx = ctx.with_set(set, luns);
    }
    let context = Context::from_bits_retain(req["context"].as_u64().unwrap_or(0) as u32);
    let backup: BackupType = serde_json::from_value(req["backup_type"].clone()).unwrap_or_default();
    let components: Vec<String> =
        serde_json::from_value(req["components"].clone()).unwrap_or_default();
    ctx = ctx.with_backup(context, backup).with_components(components);
    let failure = |f: vss_core::writer::WriterFailure| json!({"failure": {"kind": f.kind().as_str(), "message": f.message()}});
    if event == WriterEvent::Identify.as_str() {
        return match w.identify(&ctx) {
            Ok(m) => match m.to_json() {
                Ok(text) => json!({"ok": {"metadata": text}}),
                Err(e) => json!({"failure": {"kind": "non-retryable", "message": e.to_string()}}),
            },
            Err(f) => failure(f),
        };
    }
    let Some(ev) = WriterEvent::ALL.into_iter().find(|e| e.as_str() == event) else {
        return json!({"failure": {"kind": "non-retryable", "message": format!("unknown event {event:?}")}});
    };
    match vss_core::writer::dispatch(w.as_ref(), ev, &ctx) {
        Ok(()) => json!({"ok": {}}),
        Err(f) => failure(f),
    }
}

/// The report or error of the server's last message.
fn done(msg: &Value) -> Result<Report> {
    if let Some(e) = msg.get("error") {
        return Err(error_of(e));
    }
    let r = &msg["report"];
    Ok(Report {
        text: r["text"].as_str().unwrap_or("").to_string(),
        json: r["json"].clone(),
        failure: r.get("failure").filter(|f| !f.is_null()).map(error_of),
    })
}

/// An error as [`super::error_json`] wrote it.
fn error_of(v: &Value) -> Error {
    let code = v["exit_code"].as_u64().unwrap_or(1) as u8;
    let kind = v["kind"].as_str().unwrap_or("internal").to_string();
    Error {
        // The process ends after printing it: one leaked name per command.
        kind: Box::leak(kind.into_boxed_str()),
        status: Status::of_code(code),
        message: v["message"].as_str().unwrap_or("").to_string(),
    }
}
