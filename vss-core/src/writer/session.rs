//! Session writers: one process for a whole session, told each event on a line.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::net::{send, shutdown, SendFlags, Shutdown};
use uuid::Uuid;

use super::exec::{check, metadata};
use super::process::{self, Pipe, Proc, Woke, MAX_OUTPUT};
use super::{EventContext, FailureKind, Writer, WriterEvent, WriterFailure};
use crate::document::WriterMetadata;
use crate::error::Result;

/// How long a session writer has to exit by itself once its standard input is closed at the end
/// of a session, before its process group is killed.
pub const DEFAULT_END_GRACE: Duration = Duration::from_secs(1);

/// A writer that runs once for a whole session and is told each event on its standard input
/// (a database session holding a lock from freeze to thaw, which a process per event cannot
/// hold).
///
/// The writer's command runs under a small `/bin/sh` wrapper (docs/protocol.md shows it) in a
/// process group of its own, with the
/// environment of an [`ExecWriter`](super::ExecWriter) as it is when the session's first event
/// comes (`UMBRA_WRITER`; `UMBRA_SET_ID` and `UMBRA_LUNS`, empty if the session starts with an
/// identify before its set exists; `UMBRA_DEADLINE`, `UMBRA_BACKUP_TYPE` and `UMBRA_CONTEXT` of that first event), no `UMBRA_EVENT`. For
/// each event it reads the event's name on a line of its standard input and answers one line on
/// its standard output, by the event's deadline:
///
/// - `ok`: done; at identify, `ok` alone is one component covering every LUN of the set, and
///   `ok ` followed by a writer metadata document (on the same line) describes its components;
/// - `fail: REASON`: a non-retryable failure; `fail retryable: REASON`: a retryable one.
///
/// A writer that exits, answers anything else, or does not answer by the deadline has failed
/// (a [`FailureKind::Timeout`] for the last): its process group is killed at once, the rest of
/// the session's events fail without being sent, except abort, which has nothing left to undo
/// and succeeds.
///
/// The session ends with [`Writer::end_session`], when an event of another set comes, or when
/// the writer is dropped: the writer's standard input is closed (end of file, which it takes as
/// abort if the set was not finished), it gets [`DEFAULT_END_GRACE`] to exit, and then its
/// process group is killed (`SIGKILL`). If the requester dies, the standard input closes with it
/// and the wrapper gets `SIGTERM` (`PR_SET_PDEATHSIG`), which it passes on to the whole group: a
/// helper process holding a lock ends with the rest, so the lock is released with no further
/// command, even while the writer is busy and not reading its input.
pub struct SessionWriter {
    name: String,
    command: String,
    grace: Duration,
    slot: Mutex<Slot>,
}

impl std::fmt::Debug for SessionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWriter")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

enum Slot {
    /// No session running.
    Idle,
    Running(Session),
    /// The session's process failed at `at`; the rest of its events fail.
    Failed {
        set_id: Option<Uuid>,
        at: WriterEvent,
    },
}

struct Session {
    set_id: Option<Uuid>,
    proc: Proc,
    input: OwnedFd,
    output: Pipe,
    errors: Pipe,
    /// Tells the thread that started the process to kill its group and reap it.
    end: mpsc::Sender<()>,
    owner: JoinHandle<()>,
}

impl Session {
    /// Starts the writer's process from a thread of its own, which lives as long as the process:
    /// the parent-death signal follows the thread that forked, so the process must not be
    /// started from a call's short-lived thread.
    fn start(
        writer: &SessionWriter,
        ctx: &EventContext,
        event: WriterEvent,
    ) -> Result<Session, WriterFailure> {
        let fail = |e: std::io::Error| process::spawn_failure(&writer.name, event.as_str(), &e);
        let (ours, theirs) = UnixStream::pair().map_err(fail)?;
        let env = process::environment(&writer.name, ctx);
        let script = wrapper(&writer.command);
        let (tx, rx) = mpsc::channel();
        let (end, ended) = mpsc::channel::<()>();
        let owner = std::thread::Builder::new()
            .name("umbra-session".into())
            .spawn(move || {
                let mut cmd = process::shell(&script, &[], &env);
                process::stdio(&mut cmd, Stdio::from(OwnedFd::from(theirs)));
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let started = process::attach(&mut child);
                let pid = rustix::process::Pid::from_child(&child);
                let ok = started.is_ok();
                let _ = tx.send(started);
                if ok {
                    // Until told (or the writer is gone and the sender dropped).
                    let _ = ended.recv();
                }
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = child.wait();
            })
            .map_err(|e| process::spawn_failure(&writer.name, event.as_str(), &e))?;
        match rx.recv() {
            Ok(Ok((proc, output, errors))) => Ok(Session {
                set_id: ctx.set_id(),
                proc,
                input: OwnedFd::from(ours),
                output,
                errors,
                end,
                owner,
            }),
            Ok(Err(e)) => {
                let _ = owner.join();
                Err(fail(e))
            }
            Err(_) => {
                let _ = owner.join();
                Err(WriterFailure::non_retryable(format!(
                    "cannot start writer {:?} for {event}: its starting thread ended",
                    writer.name
                )))
            }
        }
    }

    /// Ends the session: end of file on the writer's input, `grace` to exit, then its group is
    /// killed and the process reaped.
    fn end(mut self, grace: Duration) {
        let _ = shutdown(&self.input, Shutdown::Write);
        let deadline = Instant::now() + grace;
        // Until it exits or the grace ends; nothing more is read from a session that is ending.
        while let Ok(Woke::Output) = process::wait(
            &self.proc,
            &mut [&mut self.output, &mut self.errors],
            deadline,
        ) {
            self.output.data.clear();
            self.errors.data.clear();
        }
        self.kill();
    }

    /// Kills the writer's group now and reaps it.
    fn kill(self) {
        self.proc.kill_group();
        let _ = self.end.send(());
        let _ = self.owner.join();
    }

    /// Sends `event` and reads the answer line.
    fn ask(
        &mut self,
        name: &str,
        event: WriterEvent,
        deadline: Instant,
    ) -> Result<String, WriterFailure> {
        let line = format!("{event}\n");
        let mut sent = 0;
        while sent < line.len() {
            // NOSIGNAL: a writer that has exited must not kill the requester with SIGPIPE.
            match send(&self.input, &line.as_bytes()[sent..], SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(WriterFailure::non_retryable(format!(
                        "session writer {name:?} cannot be told {event}: {e} (it has exited)"
                    )))
                }
            }
        }
        loop {
            if let Some(end) = self.output.data.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.output.data.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                return Ok(text.trim_end_matches('\r').to_owned());
            }
            if self.output.overflowed {
                return Err(WriterFailure::non_retryable(format!(
                    "session writer {name:?} answered {event} with a line longer than {MAX_OUTPUT} bytes"
                )));
            }
            match process::wait(
                &self.proc,
                &mut [&mut self.output, &mut self.errors],
                deadline,
            ) {
                Ok(Woke::Output) => {
                    if !self.output.is_open() && !self.output.data.contains(&b'\n') {
                        return Err(self.gone(name, event));
                    }
                }
                Ok(Woke::Exited) => {
                    self.output.drain();
                    if !self.output.data.contains(&b'\n') {
                        return Err(self.gone(name, event));
                    }
                }
                Ok(Woke::Deadline) | Err(_) => {
                    return Err(WriterFailure::new(
                        FailureKind::Timeout,
                        format!(
                            "session writer {name:?} did not answer {event} within its deadline; \
                             its process group was killed{}",
                            process::stderr_tail(&self.errors)
                        ),
                    ))
                }
            }
        }
    }

    fn gone(&mut self, name: &str, event: WriterEvent) -> WriterFailure {
        self.errors.drain();
        WriterFailure::non_retryable(format!(
            "session writer {name:?} exited before answering {event}{}",
            process::stderr_tail(&self.errors)
        ))
    }
}

/// The shell script running a session writer's `command`: the command runs in the background
/// of a shell that waits for it, with the shell's standard input, so that the shell (the first
/// process, which gets the parent-death signal) can pass SIGTERM on to the whole group: a shell
/// waiting for a command in the foreground would not run its trap until the command ends.
fn wrapper(command: &str) -> String {
    // The input is passed through descriptor 3: a shell gives a background command /dev/null as
    // its input, and `<&0` would duplicate that.
    format!(
        "trap 'trap - TERM; kill 0' TERM\nexec 3<&0\n{{ {command}\n}} <&3 3<&- &\nexec 3<&-\nwait $!\n"
    )
}

/// A line that is not an answer: the session is out of step and is killed.
struct Garbled(WriterFailure);

/// A session writer's answer line, read: `Ok(None)` for `ok`, `Ok(Some(doc))` for `ok DOC` at
/// identify, `Ok(Err(..))` for the failure the writer declares.
fn answer<'a>(
    name: &str,
    event: WriterEvent,
    line: &'a str,
) -> Result<Result<Option<&'a str>, WriterFailure>, Garbled> {
    if line == "ok" {
        return Ok(Ok(None));
    }
    if let Some(doc) = line.strip_prefix("ok ") {
        if event == WriterEvent::Identify {
            return Ok(Ok(Some(doc)));
        }
    }
    if let Some(reason) = line.strip_prefix("fail retryable:") {
        return Ok(Err(WriterFailure::retryable(format!(
            "writer {name:?} failed {event}: {}",
            reason.trim()
        ))));
    }
    if let Some(reason) = line.strip_prefix("fail:") {
        return Ok(Err(WriterFailure::non_retryable(format!(
            "writer {name:?} failed {event}: {}",
            reason.trim()
        ))));
    }
    Err(Garbled(WriterFailure::non_retryable(format!(
        "session writer {name:?} answered {event} with {line:?}, not `ok`, `fail: REASON` or \
         `fail retryable: REASON`; its process group was killed"
    ))))
}

impl SessionWriter {
    /// A session writer `name` running `command` (a shell command line).
    ///
    /// Errors: [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for a name that
    /// is not 1 to 64 letters, digits, '.', '_' or '-', or an empty command.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Result<Self> {
        let (name, command) = (name.into(), command.into());
        check(&name, &command)?;
        Ok(SessionWriter {
            name,
            command,
            grace: DEFAULT_END_GRACE,
            slot: Mutex::new(Slot::Idle),
        })
    }

    /// The same writer with another grace period to exit at the end of a session.
    pub fn with_end_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// True while the writer's process runs.
    pub fn is_running(&self) -> bool {
        matches!(*self.slot.lock(), Slot::Running(_))
    }

    /// Tells the session `event` and reads its answer (the document at identify).
    fn event(
        &self,
        event: WriterEvent,
        ctx: &EventContext,
    ) -> Result<Option<String>, WriterFailure> {
        let mut slot = self.slot.lock();
        // An event of another set ends the session of the previous one.
        let other_set = |s: Option<Uuid>| matches!((s, ctx.set_id()), (Some(a), Some(b)) if a != b);
        match &*slot {
            Slot::Running(s) if other_set(s.set_id) => {
                if let Slot::Running(s) = std::mem::replace(&mut *slot, Slot::Idle) {
                    s.end(self.grace);
                }
            }
            Slot::Failed { set_id, .. } if other_set(*set_id) => *slot = Slot::Idle,
            _ => {}
        }
        if let Slot::Failed { at, .. } = &*slot {
            if event == WriterEvent::Abort {
                return Ok(None);
            }
            return Err(WriterFailure::non_retryable(format!(
                "session writer {:?} failed at {at} and is not running",
                self.name
            )));
        }
        if matches!(*slot, Slot::Idle) {
            *slot = Slot::Running(Session::start(self, ctx, event)?);
        }
        let Slot::Running(session) = &mut *slot else {
            unreachable!("a session was just started")
        };
        if session.set_id.is_none() {
            session.set_id = ctx.set_id();
        }
        let failed = match session.ask(&self.name, event, ctx.deadline()) {
            Ok(line) => match answer(&self.name, event, &line) {
                Ok(declared) => return declared.map(|doc| doc.map(str::to_owned)),
                Err(Garbled(f)) => f,
            },
            Err(f) => f,
        };
        self.fail(&mut slot, event);
        Err(failed)
    }

    /// The session failed at `event`: its group is killed now.
    fn fail(&self, slot: &mut Slot, event: WriterEvent) {
        if let Slot::Running(s) = std::mem::replace(slot, Slot::Idle) {
            *slot = Slot::Failed {
                set_id: s.set_id,
                at: event,
            };
            s.kill();
        }
    }
}

impl Drop for SessionWriter {
    fn drop(&mut self) {
        if let Slot::Running(s) = std::mem::replace(self.slot.get_mut(), Slot::Idle) {
            s.end(self.grace);
        }
    }
}

impl Writer for SessionWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn identify(&self, ctx: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let doc = self.event(WriterEvent::Identify, ctx)?;
        metadata(&self.name, doc.as_deref().unwrap_or("").as_bytes())
    }

    forward_events!(event);

    fn end_session(&self) {
        let mut slot = self.slot.lock();
        if let Slot::Running(s) = std::mem::replace(&mut *slot, Slot::Idle) {
            s.end(self.grace);
        }
    }
}
