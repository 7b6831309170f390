//! Exec writers: a command run once per event.

use std::process::Stdio;
use std::time::Instant;

use super::process::{self, Woke, MAX_OUTPUT};
use super::{EventContext, FailureKind, Writer, WriterEvent, WriterFailure};
use crate::document::{is_name, WriterMetadata, NAME_RULE};
use crate::error::{Error, ErrorKind, Result};

/// The exit status of an exec writer that failed but may succeed if asked again
/// (`EX_TEMPFAIL`).
pub const EXIT_RETRYABLE: i32 = 75;

/// A writer defined by a command line, run once per event (a freeze hook).
///
/// For each event the writer runs `/bin/sh -c 'CMD "$1"' umbra-writer EVENT`: the command with
/// the event's name as its last argument, in a process group of its own, with standard input on
/// `/dev/null` and this environment:
///
/// | variable | value |
/// |---|---|
/// | `UMBRA_EVENT` | the event's name (`freeze`, ...) |
/// | `UMBRA_WRITER` | the writer's name |
/// | `UMBRA_SET_ID` | the set's id, a lower-case hyphenated UUID; empty at an identify outside a set |
/// | `UMBRA_LUNS` | the set's LUN names joined by `;`; empty at an identify outside a set |
/// | `UMBRA_DEADLINE` | when the event's window ends, in whole seconds since the Unix epoch (UTC), rounded down: compare with `date +%s` |
/// | `UMBRA_BACKUP_TYPE` | the session's backup type, lower case: `copy` (leave log chains alone), `full`, `incremental`, `differential`, `log`, `other`, `undefined` |
/// | `UMBRA_CONTEXT` | the session's shadow context, VSS's value in hex (`0x0` backup, `0x19` persistent/nas-rollback, `0x1d` client-accessible, ...) |
///
/// Exit status 0 is success, [`EXIT_RETRYABLE`] (75) a retryable failure, anything else (a
/// signal included) a non-retryable failure whose message quotes the end of the standard error.
/// If the event's deadline passes first, the whole process group is killed (`SIGKILL`) and the
/// event is a [`FailureKind::Timeout`]; a process that left the group (`setsid`) is not reached.
/// A process the command leaves running in the background after exiting successfully (a lock
/// held from freeze to thaw) is left alone. The first process gets `SIGTERM` if the thread that
/// started it dies (`PR_SET_PDEATHSIG`).
///
/// At identify, the standard output is the writer's metadata document
/// ([`WriterMetadata::from_json`]); empty (or blank), it is one component covering every LUN of
/// the set ([`WriterMetadata::for_every_lun`]). At the other events the output is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecWriter {
    name: String,
    command: String,
}

impl ExecWriter {
    /// A writer `name` running `command` (a shell command line, to which the event's name is
    /// appended as an argument).
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a name that is not 1 to 64 letters, digits,
    /// '.', '_' or '-', or an empty command.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Result<Self> {
        let (name, command) = (name.into(), command.into());
        check(&name, &command)?;
        Ok(ExecWriter { name, command })
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Runs the command for `event`: its result, and at identify its standard output.
    fn run(&self, event: WriterEvent, ctx: &EventContext) -> Result<Vec<u8>, WriterFailure> {
        if Instant::now() >= ctx.deadline() {
            // Nothing to start: it would be killed at once.
            return Err(WriterFailure::new(
                FailureKind::Timeout,
                format!(
                    "writer {:?} was not started for {event}: its deadline had passed",
                    self.name
                ),
            ));
        }
        let script = format!("{} \"$1\"", self.command);
        let mut env = process::environment(&self.name, ctx);
        env.push(("UMBRA_EVENT", event.as_str().to_owned()));
        let mut cmd = process::shell(&script, &[event.as_str()], &env);
        process::stdio(&mut cmd, Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| process::spawn_failure(&self.name, event.as_str(), &e))?;
        let started = process::attach(&mut child);
        let (proc, mut out, mut err) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = rustix::process::kill_process_group(
                    rustix::process::Pid::from_child(&child),
                    rustix::process::Signal::KILL,
                );
                let _ = child.wait();
                return Err(process::spawn_failure(&self.name, event.as_str(), &e));
            }
        };
        loop {
            match process::wait(&proc, &mut [&mut out, &mut err], ctx.deadline()) {
                Ok(Woke::Output) => continue,
                Ok(Woke::Exited) => break,
                Ok(Woke::Deadline) => {
                    proc.kill_group();
                    let _ = child.wait();
                    return Err(WriterFailure::new(
                        FailureKind::Timeout,
                        format!(
                            "writer {:?} did not finish {event} within its deadline; its process \
                             group was killed{}",
                            self.name,
                            process::stderr_tail(&err)
                        ),
                    ));
                }
                Err(e) => {
                    proc.kill_group();
                    let _ = child.wait();
                    return Err(WriterFailure::non_retryable(format!(
                        "cannot wait for writer {:?} at {event}: {e}; its process group was killed",
                        self.name
                    )));
                }
            }
        }
        // Exited: what it wrote before exiting is in the pipes now (a background process it
        // left may hold them open; its later output is not the event's).
        out.drain();
        err.drain();
        let status = match child.wait() {
            Ok(s) => s,
            Err(e) => {
                return Err(WriterFailure::non_retryable(format!(
                    "cannot learn how writer {:?} ended {event}: {e}",
                    self.name
                )))
            }
        };
        match status.code() {
            Some(0) => {
                if out.overflowed {
                    return Err(WriterFailure::non_retryable(format!(
                        "writer {:?} printed more than {MAX_OUTPUT} bytes at {event}",
                        self.name
                    )));
                }
                Ok(out.data)
            }
            Some(EXIT_RETRYABLE) => Err(WriterFailure::retryable(format!(
                "writer {:?} failed {event} (exit status {EXIT_RETRYABLE}: retryable){}",
                self.name,
                process::stderr_tail(&err)
            ))),
            _ => Err(WriterFailure::non_retryable(format!(
                "writer {:?} failed {event}: it {}{}",
                self.name,
                process::describe(status),
                process::stderr_tail(&err)
            ))),
        }
    }
}

/// Checks a writer's name and command.
pub(crate) fn check(name: &str, command: &str) -> Result<()> {
    if !is_name(name) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("writer name {name:?} {NAME_RULE}"),
        ));
    }
    if command.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("writer {name:?} has an empty command"),
        ));
    }
    Ok(())
}

/// The metadata a writer answered with (`text` empty: every LUN), checked to be its own.
pub(crate) fn metadata(writer: &str, text: &[u8]) -> Result<WriterMetadata, WriterFailure> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(WriterMetadata::for_every_lun(writer));
    }
    let doc = WriterMetadata::from_json(text).map_err(|e| {
        WriterFailure::non_retryable(format!("writer {writer:?} answered identify with {e}"))
    })?;
    if doc.writer != writer {
        return Err(WriterFailure::non_retryable(format!(
            "writer {writer:?} answered identify with the metadata of writer {:?}",
            doc.writer
        )));
    }
    Ok(doc)
}

impl Writer for ExecWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn identify(&self, ctx: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let out = self.run(WriterEvent::Identify, ctx)?;
        metadata(&self.name, &out)
    }

    forward_events!(run);
}
