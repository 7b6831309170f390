//! The calling side of a command: where its files are read and written and where its exec
//! writers run. A command run in its own process uses [`Local`]; a command a server runs for an
//! `umbra` process on its control socket uses [`Remote`], which asks that process to do each
//! of these things over the socket, so the files are the caller's (its working directory, its
//! permissions) and the writers are the caller's children.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use vss_core::script::{Aliases, LocalScriptIo, ScriptIo};
use vss_core::writer::{EventContext, FailureKind, Writer, WriterEvent, WriterFailure};
use vss_core::{RegisteredWriter, WriterMetadata};

use super::wire::{self, CHUNK};

/// A file being written for a command: kept only once [`Sink::commit`] made it durable.
pub trait Sink: Write + Send {
    /// Flushes the bytes written and makes them durable (fsync); the file is kept.
    fn commit(self: Box<Self>) -> io::Result<()>;
    /// Removes the file (a command that failed leaves nothing behind); stdout is left alone.
    fn discard(self: Box<Self>);
    /// Moves `len` zero bytes on: a hole in a file (it is extended to cover them), zeros
    /// written where the output cannot seek (stdout).
    fn skip(&mut self, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; CHUNK.min(len as usize)];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// The calling side of a command.
pub trait Caller: Send + Sync {
    /// The command runs in a server for another process.
    fn remote(&self) -> bool;
    /// Opens `path` for reading: the reader and the file's length.
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)>;
    /// Creates `path` (refused if it exists when `new`, else truncated).
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn Sink>>;
    /// The caller's standard output.
    fn stdout(&self) -> Box<dyn Sink>;
    /// The writer `w` describes, run by the caller.
    fn writer(&self, w: &RegisteredWriter) -> vss_core::Result<Arc<dyn Writer>>;
    /// Where a DiskShadow script's `exec` lines run and its metadata files are read and
    /// written: the caller's process (its children, its working directory).
    fn script_io(&self) -> Arc<dyn ScriptIo>;
    /// The alias environment of a DiskShadow script: `%NAME%` not defined by the script reads
    /// the caller's environment variables.
    fn script_aliases(&self) -> io::Result<Aliases>;
}

/// The command's own process: its files, its children.
pub struct Local;

struct LocalFile {
    file: Option<File>,
    path: PathBuf,
}

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Sink for LocalFile {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        let f = self.file.take().expect("open until commit");
        f.sync_all()
    }
    fn discard(mut self: Box<Self>) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

struct LocalStdout;

impl Write for LocalStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl Sink for LocalStdout {
    fn commit(self: Box<Self>) -> io::Result<()> {
        io::stdout().flush()
    }
    fn discard(self: Box<Self>) {}
}

impl Caller for Local {
    fn remote(&self) -> bool {
        false
    }
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        Ok((Box::new(f), len))
    }
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn Sink>> {
        let mut o = OpenOptions::new();
        o.write(true);
        if new {
            o.create_new(true);
        } else {
            o.create(true).truncate(true);
        }
        Ok(Box::new(LocalFile {
            file: Some(o.open(path)?),
            path: path.to_path_buf(),
        }))
    }
    fn stdout(&self) -> Box<dyn Sink> {
        Box::new(LocalStdout)
    }
    fn writer(&self, w: &RegisteredWriter) -> vss_core::Result<Arc<dyn Writer>> {
        w.writer()
    }
    fn script_io(&self) -> Arc<dyn ScriptIo> {
        Arc::new(LocalScriptIo)
    }
    fn script_aliases(&self) -> io::Result<Aliases> {
        Ok(Aliases::new())
    }
}

/// The connection to a calling `umbra` process; one request at a time, and dead for good after
/// the first failure (the caller hung up or sent nonsense).
struct Channel {
    stream: std::os::unix::net::UnixStream,
    dead: Option<String>,
    next_handle: u64,
}

impl Channel {
    fn broken(&mut self, e: io::Error) -> io::Error {
        let msg = format!("the calling umbra process is gone ({e})");
        self.dead = Some(msg.clone());
        io::Error::new(io::ErrorKind::BrokenPipe, msg)
    }

    fn check(&self) -> io::Result<()> {
        match &self.dead {
            Some(m) => Err(io::Error::new(io::ErrorKind::BrokenPipe, m.clone())),
            None => Ok(()),
        }
    }

    /// Sends `req` and reads its JSON answer; `{"err": ...}` is that I/O error.
    fn call(&mut self, req: &Value) -> io::Result<Value> {
        self.check()?;
        let r =
            wire::send_json(&mut self.stream, req).and_then(|()| wire::recv_json(&mut self.stream));
        match r {
            Err(e) => Err(self.broken(e)),
            Ok(v) => match v.get("err") {
                Some(e) => Err(wire::io_error_of(e)),
                None => Ok(v),
            },
        }
    }

    /// Sends `req` and the data frame `data` that goes with it, with no answer.
    fn push(&mut self, req: &Value, data: &[u8]) -> io::Result<()> {
        self.check()?;
        let r = wire::send_json(&mut self.stream, req)
            .and_then(|()| wire::send_data(&mut self.stream, data));
        r.map_err(|e| self.broken(e))
    }

    /// Sends `req` alone, with no answer.
    fn push_json(&mut self, req: &Value) -> io::Result<()> {
        self.check()?;
        let r = wire::send_json(&mut self.stream, req);
        r.map_err(|e| self.broken(e))
    }
}

/// A calling `umbra` process on the other end of a control connection (server side).
#[derive(Clone)]
pub struct Remote {
    chan: Arc<Mutex<Channel>>,
    /// The width of the caller's terminal, when it draws progress bars.
    term_width: Option<u16>,
}

impl Remote {
    /// The caller on `stream` (its request already read), drawing progress bars on a terminal
    /// of `term_width` columns, or none.
    pub fn new(stream: std::os::unix::net::UnixStream, term_width: Option<u16>) -> Self {
        Remote {
            chan: Arc::new(Mutex::new(Channel {
                stream,
                dead: None,
                next_handle: 1,
            })),
            term_width,
        }
    }

    /// The caller's terminal for progress bars, if it draws them.
    pub fn term(&self) -> Option<crate::output::TermFactory> {
        let width = self.term_width?;
        let remote = self.clone();
        Some(Box::new(move || {
            Box::new(RemoteTerm {
                remote: remote.clone(),
                width,
            })
        }))
    }

    /// Writes `text` on the caller's stderr as it is (a `term` request, no answer); a caller
    /// that is gone is noticed at the command's next request, not here.
    pub fn notice(&self, text: &str) {
        let mut c = self.chan.lock();
        if c.check().is_ok() {
            if let Err(e) = wire::send_json(&mut c.stream, &json!({"op": "term", "text": text})) {
                c.broken(e);
            }
        }
    }

    /// Sends the command's last message (its report or error); nothing answers it.
    pub fn finish(&self, doc: &Value) -> io::Result<()> {
        let mut c = self.chan.lock();
        c.check()?;
        wire::send_json(&mut c.stream, doc)
    }

    fn handle(&self) -> u64 {
        let mut c = self.chan.lock();
        c.next_handle += 1;
        c.next_handle
    }

    /// Whether the caller is known to be gone.
    pub fn is_dead(&self) -> bool {
        self.chan.lock().dead.is_some()
    }
}

struct RemoteReader {
    remote: Remote,
    h: u64,
    eof: bool,
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof || buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(CHUNK);
        let mut c = self.remote.chan.lock();
        c.check()?;
        let r = wire::send_json(
            &mut c.stream,
            &json!({"op": "read", "h": self.h, "max": max}),
        )
        .and_then(|()| wire::recv(&mut c.stream));
        let data = match r {
            Err(e) => return Err(c.broken(e)),
            Ok(wire::Frame::Data(d)) => d,
            Ok(wire::Frame::Json(v)) => {
                return Err(match v.get("err") {
                    Some(e) => wire::io_error_of(e),
                    None => c.broken(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a read answered with no data",
                    )),
                })
            }
        };
        if data.len() > max {
            return Err(c.broken(io::Error::new(
                io::ErrorKind::InvalidData,
                "a read answered with too much data",
            )));
        }
        if data.is_empty() {
            self.eof = true;
        }
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

impl Drop for RemoteReader {
    fn drop(&mut self) {
        let _ = self
            .remote
            .chan
            .lock()
            .call(&json!({"op": "close", "h": self.h}));
    }
}

struct RemoteSink {
    remote: Remote,
    h: u64,
}

impl Write for RemoteSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK);
        self.remote
            .chan
            .lock()
            .push(&json!({"op": "write", "h": self.h}), &buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for RemoteSink {
    fn skip(&mut self, len: u64) -> io::Result<()> {
        self.remote
            .chan
            .lock()
            .push_json(&json!({"op": "skip", "h": self.h, "len": len}))
    }
    fn commit(self: Box<Self>) -> io::Result<()> {
        self.remote
            .chan
            .lock()
            .call(&json!({"op": "commit", "h": self.h}))
            .map(drop)
    }
    fn discard(self: Box<Self>) {
        let _ = self
            .remote
            .chan
            .lock()
            .call(&json!({"op": "discard", "h": self.h}));
    }
}

impl Caller for Remote {
    fn remote(&self) -> bool {
        true
    }
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let h = self.handle();
        let v = self
            .chan
            .lock()
            .call(&json!({"op": "open", "h": h, "path": path}))?;
        let len = v["ok"]["len"].as_u64().unwrap_or(0);
        Ok((
            Box::new(RemoteReader {
                remote: self.clone(),
                h,
                eof: false,
            }),
            len,
        ))
    }
    fn create(&self, path: &Path, new: bool) -> io::Result<Box<dyn Sink>> {
        let h = self.handle();
        self.chan
            .lock()
            .call(&json!({"op": "create", "h": h, "path": path, "new": new}))?;
        Ok(Box::new(RemoteSink {
            remote: self.clone(),
            h,
        }))
    }
    fn stdout(&self) -> Box<dyn Sink> {
        let h = self.handle();
        // An error here shows at the first write.
        let _ = self
            .chan
            .lock()
            .call(&json!({"op": "create", "h": h, "path": null, "new": false}));
        Box::new(RemoteSink {
            remote: self.clone(),
            h,
        })
    }
    fn writer(&self, w: &RegisteredWriter) -> vss_core::Result<Arc<dyn Writer>> {
        // The name and command are checked here as a local writer's are.
        w.writer()?;
        Ok(Arc::new(ProxyWriter {
            remote: self.clone(),
            spec: w.clone(),
        }))
    }
    fn script_io(&self) -> Arc<dyn ScriptIo> {
        Arc::new(RemoteScriptIo(self.clone()))
    }
    fn script_aliases(&self) -> io::Result<Aliases> {
        let v = self.chan.lock().call(&json!({"op": "env"}))?;
        let vars: Vec<(String, String)> =
            serde_json::from_value(v["ok"]["vars"].clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the caller's environment: {e}"),
                )
            })?;
        Ok(Aliases::with_environment(vars))
    }
}

/// A script's `exec` lines and metadata files, done by the caller.
struct RemoteScriptIo(Remote);

impl ScriptIo for RemoteScriptIo {
    fn exec(&self, command: &str) -> io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        let v = self
            .0
            .chan
            .lock()
            .call(&json!({"op": "exec", "command": command}))?;
        let status = v["ok"]["status"].as_i64().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "an exec answered with no status",
            )
        })?;
        Ok(std::process::ExitStatus::from_raw(status as i32))
    }
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let (mut r, len) = self.0.open_read(Path::new(path))?;
        let mut bytes = Vec::with_capacity(len.min(CHUNK as u64) as usize);
        r.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
    fn write_durably(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let h = self.0.handle();
        self.0
            .chan
            .lock()
            .call(&json!({"op": "create", "h": h, "path": path, "new": false, "replace": true}))?;
        let mut sink: Box<dyn Sink> = Box::new(RemoteSink {
            remote: self.0.clone(),
            h,
        });
        match sink.write_all(bytes) {
            Ok(()) => sink.commit(),
            Err(e) => {
                sink.discard();
                Err(e)
            }
        }
    }
}

/// A writer the caller runs: each event goes over the socket, and the caller's real exec or
/// session writer answers it.
struct ProxyWriter {
    remote: Remote,
    spec: RegisteredWriter,
}

impl ProxyWriter {
    fn run(&self, event: &str, ctx: &EventContext) -> Result<Option<String>, WriterFailure> {
        let left = ctx.deadline().saturating_duration_since(Instant::now());
        let req = json!({
            "op": "writer",
            "writer": self.spec,
            "event": event,
            "set_id": ctx.set_id(),
            "luns": ctx.luns(),
            "context": ctx.context().bits(),
            "backup_type": ctx.backup_type(),
            "components": ctx.components(),
            "deadline_ms": left.as_millis() as u64,
        });
        let v = self.remote.chan.lock().call(&req).map_err(|e| {
            WriterFailure::non_retryable(format!("writer {:?}: {e}", self.spec.name))
        })?;
        if let Some(f) = v.get("failure") {
            let kind = FailureKind::ALL
                .into_iter()
                .find(|k| Some(k.as_str()) == f["kind"].as_str())
                .unwrap_or(FailureKind::NonRetryable);
            return Err(WriterFailure::new(
                kind,
                f["message"].as_str().unwrap_or("failed").to_string(),
            ));
        }
        Ok(v["ok"]["metadata"].as_str().map(str::to_string))
    }
}

macro_rules! proxy_events {
    ($($method:ident),+) => {
        $(
            fn $method(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
                let event = WriterEvent::ALL
                    .into_iter()
                    .find(|e| e.as_str().replace('-', "_") == stringify!($method))
                    .expect("every method is an event");
                self.run(event.as_str(), ctx).map(drop)
            }
        )+
    };
}

impl Writer for ProxyWriter {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn identify(&self, ctx: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let text = self
            .run(WriterEvent::Identify.as_str(), ctx)?
            .unwrap_or_default();
        WriterMetadata::from_json(text.as_bytes()).map_err(|e| {
            WriterFailure::non_retryable(format!("writer {:?} identify: {e}", self.spec.name))
        })
    }
    /// Abort, by the caller's writer; when the caller is gone (killed mid-set), an exec
    /// writer's abort is run here, by its command, as the next open runs a dead requester's
    /// (docs/protocol.md, "The set-in-progress record"): the writer's helpers learn the set is
    /// over. A session writer needs none: its process took end of file and `SIGTERM` with the
    /// caller.
    fn abort(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let r = self.run(WriterEvent::Abort.as_str(), ctx).map(drop);
        if r.is_err() && self.remote.is_dead() && !self.spec.session {
            let here = self.spec.writer().map_err(|e| {
                WriterFailure::non_retryable(format!("writer {:?}: {e}", self.spec.name))
            })?;
            return here.abort(ctx);
        }
        r
    }
    proxy_events!(
        prepare_backup,
        prepare_snapshot,
        freeze,
        thaw,
        post_snapshot,
        backup_complete,
        backup_shutdown,
        pre_restore,
        post_restore
    );
    fn end_session(&self) {
        let ctx = EventContext::new(Instant::now() + Duration::from_secs(10));
        let _ = self.run("end-session", &ctx);
    }
}

/// The caller's terminal: what a progress bar draws goes to the caller as `term` requests (no
/// answer), which it writes on its stderr.
struct RemoteTerm {
    remote: Remote,
    width: u16,
}

impl std::fmt::Debug for RemoteTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTerm")
            .field("width", &self.width)
            .finish()
    }
}

impl RemoteTerm {
    fn send(&self, text: String) -> io::Result<()> {
        let mut c = self.remote.chan.lock();
        c.check()?;
        let r = wire::send_json(&mut c.stream, &json!({"op": "term", "text": text}));
        r.map_err(|e| c.broken(e))
    }
}

impl indicatif::TermLike for RemoteTerm {
    fn width(&self) -> u16 {
        self.width
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.send(format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.send(format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.send(format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.send(format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.send(format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.send(s.to_string())
    }
    fn clear_line(&self) -> io::Result<()> {
        self.send("\r\x1b[2K".to_string())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}
