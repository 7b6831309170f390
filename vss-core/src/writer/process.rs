//! Writer processes: started in a process group of their own with a parent-death signal, their
//! output read and their exit seen through one `poll` with the event's deadline, and the whole
//! group killed when the deadline passes.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{kill_process_group, pidfd_open, Pid, PidfdFlags, Signal};

use super::{EventContext, FailureKind, WriterFailure};

/// The signal a writer's first process gets when the thread that started it (the requester)
/// dies (`PR_SET_PDEATHSIG`). SIGTERM, so a shell can trap it and end the helpers it started
/// (the session writer's wrapper passes it on to its whole group); left untrapped it ends the
/// process like SIGKILL.
pub(crate) const PARENT_DEATH_SIGNAL: Signal = Signal::TERM;

/// The most bytes kept of a writer's output line or document (1 MiB).
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

/// The most bytes of a writer's standard error quoted in a failure.
const MAX_STDERR: usize = 4096;

/// `/bin/sh -c SCRIPT umbra-writer ARGS...` with the writer's environment, in a process group
/// of its own, signalled when the starting thread dies.
pub(crate) fn shell(script: &str, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script).arg("umbra-writer").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.process_group(0);
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid) through rustix, which
    // allocate nothing and take no lock, and builds its errors from error numbers (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(PARENT_DEATH_SIGNAL))?;
            // The requester may have died between fork and prctl: then nobody would ever send
            // the signal, so give up now (the spawn fails).
            // (No allocation here: another thread may have held the allocator's lock at fork.)
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
    cmd
}

/// The environment of every writer process.
pub(crate) fn environment(writer: &str, ctx: &EventContext) -> Vec<(&'static str, String)> {
    vec![
        ("UMBRA_WRITER", writer.to_owned()),
        (
            "UMBRA_SET_ID",
            ctx.set_id().map(|id| id.to_string()).unwrap_or_default(),
        ),
        ("UMBRA_LUNS", ctx.luns().join(";")),
        ("UMBRA_DEADLINE", unix_seconds(ctx.deadline()).to_string()),
        ("UMBRA_BACKUP_TYPE", ctx.backup_type().to_string()),
        ("UMBRA_CONTEXT", format!("{:#x}", ctx.context().bits())),
    ]
}

/// `at` as whole seconds since the Unix epoch (UTC), rounded down, so a script comparing it with
/// `date +%s` never believes its window ends later than it does.
pub(crate) fn unix_seconds(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = if at >= now {
        SystemTime::now().checked_add(at - now)
    } else {
        SystemTime::now().checked_sub(now - at)
    };
    wall.and_then(|w| w.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Why a writer process could not be started, as a failure of the event.
pub(crate) fn spawn_failure(writer: &str, what: &str, e: &io::Error) -> WriterFailure {
    let kind = match e.raw_os_error() {
        Some(code) if code == libc_eagain() || code == libc_enomem() => FailureKind::OutOfResources,
        _ => FailureKind::NonRetryable,
    };
    WriterFailure::new(
        kind,
        format!("cannot start writer {writer:?} for {what}: {e}"),
    )
}

fn libc_eagain() -> i32 {
    rustix::io::Errno::AGAIN.raw_os_error()
}

fn libc_enomem() -> i32 {
    rustix::io::Errno::NOMEM.raw_os_error()
}

/// A started writer process: its pid (also its process group's id) and a pidfd that becomes
/// readable when it exits.
pub(crate) struct Proc {
    pub(crate) pid: Pid,
    pub(crate) pidfd: OwnedFd,
}

impl Proc {
    pub(crate) fn of(child: &Child) -> io::Result<Proc> {
        let pid = Pid::from_child(child);
        let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
        Ok(Proc { pid, pidfd })
    }

    /// Kills every process of the group (the writer and whatever it started that did not leave
    /// the group). A group already gone is not an error.
    pub(crate) fn kill_group(&self) {
        let _ = kill_process_group(self.pid, Signal::KILL);
    }
}

/// The process's pidfd and its standard output and error as non-blocking pipes.
pub(crate) fn attach(child: &mut Child) -> io::Result<(Proc, Pipe, Pipe)> {
    let proc = Proc::of(child)?;
    let out = Pipe::new(child.stdout.take().expect("piped"), MAX_OUTPUT, false)?;
    let err = Pipe::new(child.stderr.take().expect("piped"), MAX_STDERR, true)?;
    Ok((proc, out, err))
}

/// A pipe from a writer, read without blocking into a buffer with a cap.
pub(crate) struct Pipe {
    fd: Option<File>,
    pub(crate) data: Vec<u8>,
    cap: usize,
    /// More bytes came than the cap keeps.
    pub(crate) overflowed: bool,
    /// Keep the last `cap` bytes (standard error) instead of the first.
    keep_tail: bool,
}

impl Pipe {
    pub(crate) fn new(fd: impl Into<OwnedFd>, cap: usize, keep_tail: bool) -> io::Result<Pipe> {
        let fd = File::from(fd.into());
        rustix::io::ioctl_fionbio(&fd, true)?;
        Ok(Pipe {
            fd: Some(fd),
            data: Vec::new(),
            cap,
            overflowed: false,
            keep_tail,
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// Reads what is there now; closes the pipe at its end.
    pub(crate) fn drain(&mut self) {
        let Some(fd) = self.fd.as_mut() else { return };
        let mut buf = [0u8; 8192];
        loop {
            match fd.read(&mut buf) {
                Ok(0) => {
                    self.fd = None;
                    return;
                }
                Ok(n) => {
                    self.data.extend_from_slice(&buf[..n]);
                    if self.data.len() > self.cap {
                        self.overflowed = true;
                        if self.keep_tail {
                            let cut = self.data.len() - self.cap;
                            self.data.drain(..cut);
                        } else {
                            self.data.truncate(self.cap);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.fd = None;
                    return;
                }
            }
        }
    }
}

/// What a wait saw first.
pub(crate) enum Woke {
    /// The process exited.
    Exited,
    /// A pipe has new data (or closed).
    Output,
    /// The deadline passed.
    Deadline,
}

/// Waits until the process exits, one of the pipes has something, or the deadline passes.
pub(crate) fn wait(proc: &Proc, pipes: &mut [&mut Pipe], deadline: Instant) -> io::Result<Woke> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Woke::Deadline);
        }
        let timeout = Timespec::try_from(deadline - now).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let open: Vec<usize> = (0..pipes.len()).filter(|&i| pipes[i].is_open()).collect();
        let mut fds = Vec::with_capacity(open.len() + 1);
        fds.push(PollFd::new(&proc.pidfd, PollFlags::IN));
        for &i in &open {
            let fd = pipes[i].fd.as_ref().expect("open pipe").as_fd();
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let exited = !fds[0].revents().is_empty();
        let ready: Vec<usize> = open
            .iter()
            .enumerate()
            .filter(|(k, _)| !fds[k + 1].revents().is_empty())
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        for i in &ready {
            pipes[*i].drain();
        }
        if exited {
            return Ok(Woke::Exited);
        }
        if !ready.is_empty() {
            return Ok(Woke::Output);
        }
    }
}

/// A process's end in words: `exited with status 3`, `was killed by signal 9`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// The end of a writer's standard error, to quote in a failure (`""` when it wrote nothing).
pub(crate) fn stderr_tail(err: &Pipe) -> String {
    let text = String::from_utf8_lossy(&err.data);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        let mut t: String = text.chars().rev().take(MAX_STDERR).collect();
        t = t.chars().rev().collect();
        format!(": {t}")
    }
}

/// Standard input and output for a writer: nothing in, a pipe out.
pub(crate) fn stdio(cmd: &mut Command, input: Stdio) {
    cmd.stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}
