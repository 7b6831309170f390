//! The calling side of the control socket: an `umbra` command that finds its pool served sends
//! its command line there, then does what the server asks (read and write its files, run its
//! writers) until the server sends the command's report.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
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

/// What connecting to a pool's control socket found.
pub enum Found {
    /// A live server: the command goes there.
    Server(UnixStream),
    /// No socket, or a stale one (removed): the command opens the pool itself.
    NoServer,
}

/// The control socket of pool `pool`.
pub fn socket_path(pool: &Path) -> PathBuf {
    pool.join(super::SOCKET_NAME)
}

/// Looks for a live server of `pool`. A socket nobody listens on is a dead server's: it is
/// removed (the pool's lock says whether the pool is really free).
pub fn find(pool: &Path) -> Found {
    let path = socket_path(pool);
    match UnixStream::connect(&path) {
        Ok(s) => Found::Server(s),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // Nobody accepts on it: a server that died without cleaning up.
            let _ = std::fs::remove_file(&path);
            Found::NoServer
        }
        Err(_) => Found::NoServer,
    }
}

/// An open file of the caller's, by the server's handle.
enum Open {
    Read(File),
    Write {
        out: Box<dyn Write>,
        file: Option<File>,
        path: Option<PathBuf>,
        failed: Option<io::Error>,
    },
}

/// Runs the command `argv` (this process's arguments, without the program name) on the server
/// at the other end of `stream`; returns its report, or its error, as if run here.
pub fn run(stream: UnixStream, argv: Vec<String>) -> Result<Report> {
    let mut s = stream;
    let gone = |e: io::Error| {
        Error::of_kind(
            vds_core::ErrorKind::Io,
            format!("the pool's server hung up on this command: {e}"),
        )
    };
    wire::send_json(&mut s, &json!({ "argv": argv })).map_err(gone)?;
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
                            failed: None,
                        },
                    );
                    json!({"ok": {}})
                }
                Some(p) => {
                    let path = PathBuf::from(p);
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
            "commit" => Some(match open.remove(&h) {
                Some(Open::Write {
                    mut out,
                    file,
                    failed,
                    ..
                }) => {
                    let r = match failed {
                        Some(e) => Err(e),
                        None => out
                            .flush()
                            .and_then(|()| file.map_or(Ok(()), |f| f.sync_all())),
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
