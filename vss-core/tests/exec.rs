//! Exec and session writers with real shell scripts: the events and environment they see, exit
//! codes, deadlines (the whole process group killed), signals, documents at identify, and a
//! session's lock released when the requester is killed.
//!
//! Locks are `flock(1)` locks on a file in the test's directory; a test waits for one with
//! `flock -w`, never with a sleep (the scripts may sleep: they play applications).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vss_core::document::Component;
use vss_core::{
    Call, EventContext, ExecWriter, FailureKind, SessionWriter, Writer, WriterEvent, WriterMetadata,
};

/// Writes `body` as a script in `dir` and returns the command running it.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    format!("sh {}", p.display())
}

fn set_ctx(window: Duration) -> (EventContext, uuid::Uuid) {
    let id = uuid::Uuid::new_v4();
    (
        EventContext::new(Instant::now() + window).with_set(id, ["db-data", "db-log"]),
        id,
    )
}

/// True once the lock on `path` can be taken, waiting at most `secs` (flock -w).
fn lock_free_within(path: &Path, secs: u32) -> bool {
    Command::new("flock")
        .arg("-w")
        .arg(secs.to_string())
        .arg(path)
        .arg("true")
        .status()
        .unwrap()
        .success()
}

/// True if the lock on `path` is held by someone now (flock -n fails).
fn lock_held(path: &Path) -> bool {
    !Command::new("flock")
        .arg("-n")
        .arg(path)
        .arg("true")
        .status()
        .unwrap()
        .success()
}

/// Runs `events` on `w` in order, each through a `Call` (its own thread) as the coordinator
/// will, with `ctx`'s set.
fn run(w: &Arc<dyn Writer>, events: &[WriterEvent], ctx: &EventContext) {
    for &e in events {
        let r = Call::start(w.clone(), e, ctx.clone()).wait().into_result();
        assert!(r.is_ok(), "{e}: {r:?}");
    }
}

const BACKUP: [WriterEvent; 7] = [
    WriterEvent::PrepareBackup,
    WriterEvent::PrepareSnapshot,
    WriterEvent::Freeze,
    WriterEvent::Thaw,
    WriterEvent::PostSnapshot,
    WriterEvent::BackupComplete,
    WriterEvent::BackupShutdown,
];

#[test]
fn an_exec_writer_gets_each_event_as_its_argument_with_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let cmd = script(
        dir.path(),
        "rec.sh",
        &format!(
            "printf '%s|%s|%s|%s|%s|%s|%s\\n' \"$#\" \"$1\" \"$UMBRA_EVENT\" \"$UMBRA_WRITER\" \
             \"$UMBRA_SET_ID\" \"$UMBRA_LUNS\" \"$UMBRA_DEADLINE\" >> {}\n",
            log.display()
        ),
    );
    let w: Arc<dyn Writer> = Arc::new(ExecWriter::new("rec", cmd).unwrap());
    let window = Duration::from_secs(30);
    let expected_deadline = (SystemTime::now() + window)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Identify on its own (no set), then a whole backup.
    let alone = EventContext::new(Instant::now() + window);
    let m = Call::identify(w.clone(), alone)
        .wait()
        .into_result()
        .unwrap();
    assert_eq!(m, WriterMetadata::for_every_lun("rec"));
    let (ctx, id) = set_ctx(window);
    run(&w, &BACKUP, &ctx);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let seen: Vec<&str> = lines.iter().map(|l| l[1]).collect();
    assert_eq!(seen, umbra_test_support::FULL_BACKUP_EVENTS);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l[0], "1", "the event is the one argument");
        assert_eq!(l[1], l[2], "UMBRA_EVENT is the argument");
        assert_eq!(l[3], "rec");
        if i == 0 {
            assert_eq!((l[4], l[5]), ("", ""), "no set at an identify on its own");
        } else {
            assert_eq!(l[4], id.to_string());
            assert_eq!(l[5], "db-data;db-log");
        }
        let d: u64 = l[6].parse().unwrap();
        assert!(
            d.abs_diff(expected_deadline) <= 1,
            "{d} vs {expected_deadline}"
        );
    }
}

#[test]
fn identify_output_is_the_writers_metadata_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = WriterMetadata::new("db");
    doc.components.push(Component::new("", "data", ["db-data"]));
    doc.components
        .push(Component::new("data", "log", ["db-log"]));
    let json = doc.to_json().unwrap();
    std::fs::write(dir.path().join("doc.json"), &json).unwrap();
    let cmd = script(
        dir.path(),
        "id.sh",
        &format!(
            "[ \"$1\" = identify ] && cat {}\nexit 0\n",
            dir.path().join("doc.json").display()
        ),
    );
    let w = ExecWriter::new("db", cmd).unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(30));
    assert_eq!(w.identify(&ctx).unwrap(), doc);

    // A document that is not JSON, and one of another writer, fail identify and say why.
    let bad = script(dir.path(), "bad.sh", "echo '{\"format\": 1'\n");
    let f = ExecWriter::new("db", bad)
        .unwrap()
        .identify(&ctx)
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(f.message().contains("invalid document"), "{f}");
    assert!(
        f.message().contains("line 2 column 0") || f.message().contains("line 1"),
        "{f}"
    );
    let other = script(
        dir.path(),
        "other.sh",
        &format!("cat {}\n", dir.path().join("doc.json").display()),
    );
    let f = ExecWriter::new("mail", other)
        .unwrap()
        .identify(&ctx)
        .unwrap_err();
    assert!(f.message().contains("metadata of writer \"db\""), "{f}");
}

#[test]
fn exit_75_is_retryable_anything_else_non_retryable_with_stderr_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(30));
    let retry = script(
        dir.path(),
        "r.sh",
        "echo 'log is being rotated' >&2\nexit 75\n",
    );
    let f = ExecWriter::new("db", retry)
        .unwrap()
        .freeze(&ctx)
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::Retryable);
    assert!(f.message().contains("log is being rotated"), "{f}");
    let fail = script(dir.path(), "f.sh", "echo 'no such database' >&2\nexit 3\n");
    let f = ExecWriter::new("db", fail)
        .unwrap()
        .freeze(&ctx)
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(
        f.message()
            .contains("exited with status 3: no such database"),
        "{f}"
    );
    // Only the event that fails fails: the script decides by its argument.
    let thaw_only = script(dir.path(), "t.sh", "[ \"$1\" = thaw ] && exit 1\nexit 0\n");
    let w = ExecWriter::new("db", thaw_only).unwrap();
    assert!(w.freeze(&ctx).is_ok());
    assert_eq!(w.thaw(&ctx).unwrap_err().kind(), FailureKind::NonRetryable);
}

#[test]
fn a_writer_killed_by_a_signal_is_a_non_retryable_failure() {
    let (ctx, _) = set_ctx(Duration::from_secs(30));
    // The writer's own shell is killed (not a child it waits for).
    let f = ExecWriter::new("db", "kill -KILL $$")
        .unwrap()
        .freeze(&ctx)
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(f.message().contains("was killed by signal 9"), "{f}");
}

/// A hook that hangs is killed at its deadline, and with it the process it started (which holds
/// a lock): the whole process group goes.
#[test]
fn a_hung_writer_is_killed_at_the_deadline_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let ready = dir.path().join("ready");
    let cmd = script(
        dir.path(),
        "hang.sh",
        &format!(
            "flock {lock} sh -c 'echo held > {ready}; exec sleep 60' &\n\
             while [ ! -s {ready} ]; do sleep 0.01; done\n\
             wait\n",
            lock = lock.display(),
            ready = ready.display()
        ),
    );
    let w: Arc<dyn Writer> = Arc::new(ExecWriter::new("db", cmd).unwrap());
    let (ctx, _) = set_ctx(Duration::from_millis(1500));
    let f = Call::start(w, WriterEvent::Freeze, ctx.clone())
        .wait()
        .into_result()
        .unwrap_err();
    assert_eq!(f.kind(), FailureKind::Timeout);
    assert!(Instant::now() >= ctx.deadline());
    assert!(
        ready.exists(),
        "the grandchild took the lock before the deadline"
    );
    assert!(
        lock_free_within(&lock, 10),
        "the grandchild holding the lock was killed"
    );
}

/// A freeze hook may leave a process holding a lock until thaw (qemu's MySQL sample does): the
/// event ends when the hook exits, even though that process still holds its output open.
#[test]
fn a_hook_may_leave_a_background_process_until_thaw() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let pid = dir.path().join("pid");
    let cmd = script(
        dir.path(),
        "bg.sh",
        &format!(
            "case \"$1\" in\n\
             freeze) flock -o {lock} sh -c 'echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 60' &\n\
               while [ ! -s {pid} ]; do sleep 0.01; done ;;\n\
             thaw) kill $(cat {pid}) ;;\n\
             esac\n",
            lock = lock.display(),
            pid = pid.display()
        ),
    );
    let w: Arc<dyn Writer> = Arc::new(ExecWriter::new("db", cmd).unwrap());
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    run(&w, &[WriterEvent::Freeze], &ctx);
    assert!(lock_held(&lock), "the lock outlives the freeze hook");
    run(&w, &[WriterEvent::Thaw], &ctx);
    assert!(lock_free_within(&lock, 10));
}

#[test]
fn names_and_commands_are_checked() {
    for (name, cmd) in [("", "true"), ("a b", "true"), ("x;y", "true"), ("db", "  ")] {
        let e = ExecWriter::new(name, cmd).unwrap_err();
        assert_eq!(e.kind(), vss_core::ErrorKind::InvalidArgument, "{name:?}");
        let e = SessionWriter::new(name, cmd).unwrap_err();
        assert_eq!(e.kind(), vss_core::ErrorKind::InvalidArgument, "{name:?}");
    }
}

/// The session script the tests share: records each event with its process id, answers as
/// `answers` says (a `case` body), holds `$LOCK` from freeze to thaw in a helper process, and
/// kills its whole group at end of file. It traps no signal: the requester's death reaches the
/// helper through the group-wide SIGTERM.
fn session_script(dir: &Path, answers: &str) -> (String, PathBuf, PathBuf) {
    let log = dir.join("events");
    let lock = dir.join("lock");
    let ready = dir.join("ready");
    let body = format!(
        "while read -r ev; do\n\
           echo \"$$ $ev\" >> {log}\n\
           case \"$ev\" in\n\
           freeze) flock -o {lock} sh -c 'echo held > {ready}; exec sleep 60' & holder=$!\n\
             while [ ! -s {ready} ]; do sleep 0.01; done ;;\n\
           thaw) kill $holder; rm -f {ready} ;;\n\
           esac\n\
           {answers}\n\
         done\n\
         echo \"$$ eof\" >> {log}\n\
         kill 0\n",
        log = log.display(),
        lock = lock.display(),
        ready = ready.display(),
    );
    (script(dir, "session.sh", &body), log, lock)
}

fn events_seen(log: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let pids: std::collections::HashSet<&str> =
        text.lines().filter_map(|l| l.split(' ').next()).collect();
    (
        text.lines()
            .map(|l| l.split(' ').nth(1).unwrap().to_owned())
            .collect(),
        pids.len(),
    )
}

#[test]
fn a_session_writer_runs_once_for_the_set_and_holds_its_lock_from_freeze_to_thaw() {
    let dir = tempfile::tempdir().unwrap();
    let doc = WriterMetadata::for_every_lun("db").to_json().unwrap();
    let answers = format!("if [ \"$ev\" = identify ]; then echo 'ok {doc}'; else echo ok; fi");
    let (cmd, log, lock) = session_script(dir.path(), &answers);
    let w = Arc::new(SessionWriter::new("db", cmd).unwrap());
    let dw: Arc<dyn Writer> = w.clone();
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    let m = Call::identify(dw.clone(), ctx.clone())
        .wait()
        .into_result()
        .unwrap();
    assert_eq!(m, WriterMetadata::for_every_lun("db"));
    run(&dw, &BACKUP[..3], &ctx);
    assert!(lock_held(&lock), "held from freeze");
    run(&dw, &BACKUP[3..], &ctx);
    assert!(lock_free_within(&lock, 10), "released at thaw");
    assert!(w.is_running());
    w.end_session();
    assert!(!w.is_running());
    let (events, processes) = events_seen(&log);
    assert_eq!(
        events,
        [&umbra_test_support::FULL_BACKUP_EVENTS[..], &["eof"]].concat()
    );
    assert_eq!(processes, 1, "one process for the whole session");
}

#[test]
fn a_session_writers_declared_failures_keep_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let answers = "case \"$ev\" in\n\
                   prepare-snapshot) echo 'fail retryable: checkpoint running' ;;\n\
                   post-snapshot) echo 'fail: cannot verify' ;;\n\
                   *) echo ok ;;\n\
                   esac";
    let (cmd, log, _) = session_script(dir.path(), answers);
    let w = SessionWriter::new("db", cmd).unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    let f = w.prepare_snapshot(&ctx).unwrap_err();
    assert_eq!(f.kind(), FailureKind::Retryable);
    assert!(
        f.message()
            .ends_with("failed prepare-snapshot: checkpoint running"),
        "{f}"
    );
    let f = w.post_snapshot(&ctx).unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(f.message().ends_with("cannot verify"), "{f}");
    assert!(w.backup_complete(&ctx).is_ok());
    drop(w);
    let (events, processes) = events_seen(&log);
    assert_eq!(
        events,
        [
            "prepare-snapshot",
            "post-snapshot",
            "backup-complete",
            "eof"
        ]
    );
    assert_eq!(processes, 1);
}

/// A session writer that stops answering times out, its group (and the lock its helper holds)
/// is killed at once, and the rest of the set fails without it, except abort.
#[test]
fn a_session_writer_that_stops_answering_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    // It takes its lock at freeze and then never answers.
    let answers = "[ \"$ev\" = freeze ] && exec sleep 60\necho ok";
    let (cmd, _, lock) = session_script(dir.path(), answers);
    let w = SessionWriter::new("db", cmd).unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    w.prepare_snapshot(&ctx).unwrap();
    let short = ctx
        .clone()
        .with_deadline(Instant::now() + Duration::from_millis(1500));
    let f = w.freeze(&short).unwrap_err();
    assert_eq!(f.kind(), FailureKind::Timeout);
    assert!(f.message().contains("did not answer freeze"), "{f}");
    assert!(!w.is_running());
    assert!(dir.path().join("ready").exists(), "it took the lock");
    assert!(lock_free_within(&lock, 10), "its group was killed");
    let f = w.thaw(&ctx).unwrap_err();
    assert!(
        f.message().contains("failed at freeze and is not running"),
        "{f}"
    );
    assert!(w.abort(&ctx).is_ok(), "nothing is left to abort");
    // A new set starts a new session.
    let (next, _) = set_ctx(Duration::from_secs(20));
    assert!(w.prepare_backup(&next).is_ok());
    assert!(w.is_running());
}

#[test]
fn a_session_writer_that_exits_or_garbles_is_a_failed_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    let exits = script(
        dir.path(),
        "exit.sh",
        "read -r ev; echo ok; read -r ev; echo 'cannot go on' >&2; exit 4\n",
    );
    let w = SessionWriter::new("db", exits).unwrap();
    assert!(w.prepare_backup(&ctx).is_ok());
    let f = w.freeze(&ctx).unwrap_err();
    assert_eq!(f.kind(), FailureKind::NonRetryable);
    assert!(
        f.message()
            .contains("exited before answering freeze: cannot go on"),
        "{f}"
    );
    let garbles = script(dir.path(), "garble.sh", "read -r ev; echo yes\nsleep 60\n");
    let w = SessionWriter::new("db", garbles).unwrap();
    let f = w.freeze(&ctx).unwrap_err();
    assert!(f.message().contains("answered freeze with \"yes\""), "{f}");
    assert!(!w.is_running());
}

/// Dropping a session writer (or ending its session) closes its input and then kills its group,
/// even a helper that ignores the end of file.
#[test]
fn the_end_of_a_session_kills_what_the_writer_left() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    let ready = dir.path().join("ready");
    let cmd = script(
        dir.path(),
        "stubborn.sh",
        &format!(
            "read -r ev\n\
             flock {lock} sh -c 'echo held > {ready}; exec sleep 60' &\n\
             while [ ! -s {ready} ]; do sleep 0.01; done\n\
             echo ok\n\
             while read -r ev; do echo ok; done\n\
             wait\n",
            lock = lock.display(),
            ready = ready.display()
        ),
    );
    let w = SessionWriter::new("db", cmd)
        .unwrap()
        .with_end_grace(Duration::from_millis(300));
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    w.freeze(&ctx).unwrap();
    assert!(lock_held(&lock));
    w.end_session();
    assert!(lock_free_within(&lock, 10));
}

/// The requester's side of `a_requester_killed_mid_freeze_releases_the_session_lock`: freezes a
/// session writer, says so on stdout, and waits to be killed.
#[test]
#[ignore = "the requester process of a_requester_killed_mid_freeze_releases_the_session_lock"]
fn requester_child() {
    let dir =
        PathBuf::from(std::env::var_os("UMBRA_TEST_DIR").expect("run by the test that kills it"));
    // Busy: after answering freeze it does not read its input, so only the parent-death signal
    // reaches it.
    let answers = if std::env::var_os("UMBRA_TEST_BUSY").is_some() {
        "echo ok; [ \"$ev\" = freeze ] && { sleep 60 & wait $!; }"
    } else {
        "echo ok"
    };
    let (cmd, _, _) = session_script(&dir, answers);
    let w = SessionWriter::new("db", cmd).unwrap();
    let (ctx, _) = set_ctx(Duration::from_secs(60));
    w.prepare_backup(&ctx).unwrap();
    w.freeze(&ctx).unwrap();
    println!("frozen");
    loop {
        std::thread::park();
    }
}

/// Kills a requester process (`requester_child`) once its session writer is frozen holding a
/// lock, and checks the lock is released with no further command.
fn kill_requester_mid_freeze(busy: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "requester_child", "--ignored", "--nocapture"])
        .env("UMBRA_TEST_DIR", dir.path())
        .stdout(Stdio::piped());
    if busy {
        cmd.env("UMBRA_TEST_BUSY", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut frozen = false;
    for line in out.lines() {
        if line.unwrap().trim() == "frozen" {
            frozen = true;
            break;
        }
    }
    assert!(frozen, "the requester froze its writer");
    let lock = dir.path().join("lock");
    assert!(
        lock_held(&lock),
        "the session writer holds its lock while frozen"
    );
    child.kill().unwrap(); // SIGKILL: no cleanup in the requester
    child.wait().unwrap();
    assert!(
        lock_free_within(&lock, 10),
        "the lock is released with no further command"
    );
}

/// The writer reads its input: the end of file tells it (and the parent-death signal).
#[test]
fn a_requester_killed_mid_freeze_releases_the_session_lock() {
    kill_requester_mid_freeze(false);
}

/// The writer is busy and does not read its input: only the parent-death signal (SIGTERM,
/// trapped to kill its group) tells it.
#[test]
fn a_requester_killed_mid_freeze_signals_a_busy_session_writer() {
    kill_requester_mid_freeze(true);
}

/// A hook whose deadline has passed before it starts is not started: it could only be killed.
#[test]
fn an_exec_writer_past_its_deadline_is_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let cmd = script(dir.path(), "t.sh", &format!("touch {}\n", ran.display()));
    let w = ExecWriter::new("db", cmd).unwrap();
    let f = w.freeze(&EventContext::new(Instant::now())).unwrap_err();
    assert_eq!(f.kind(), FailureKind::Timeout);
    assert!(f.message().contains("was not started for freeze"), "{f}");
    assert!(!ran.exists());
}

/// An exec writer, at every event, and a session writer, at its start, learn the session's
/// backup type (`UMBRA_BACKUP_TYPE`) and shadow context (`UMBRA_CONTEXT`, VSS's value in hex).
#[test]
fn writers_learn_the_backup_type_and_context_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env");
    let cmd = script(
        dir.path(),
        "env.sh",
        &format!(
            "echo \"$1 $UMBRA_BACKUP_TYPE $UMBRA_CONTEXT\" >> {}\n",
            log.display()
        ),
    );
    let w: Arc<dyn Writer> = Arc::new(ExecWriter::new("env", cmd).unwrap());
    let (ctx, _) = set_ctx(Duration::from_secs(20));
    let ctx = ctx.with_backup(vss_core::Context::NAS_ROLLBACK, vss_core::BackupType::Copy);
    run(&w, &BACKUP[..2], &ctx);
    let full = ctx
        .clone()
        .with_backup(vss_core::Context::BACKUP, vss_core::BackupType::Full);
    run(&w, &BACKUP[..1], &full);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "prepare-backup copy 0x19\nprepare-snapshot copy 0x19\nprepare-backup full 0x0\n"
    );

    let slog = dir.path().join("session-env");
    let cmd = script(
        dir.path(),
        "session-env.sh",
        &format!(
            "echo \"$UMBRA_BACKUP_TYPE $UMBRA_CONTEXT\" > {}\nwhile read ev; do echo ok; done\n",
            slog.display()
        ),
    );
    let s = Arc::new(SessionWriter::new("senv", cmd).unwrap());
    let sw: Arc<dyn Writer> = s.clone();
    run(&sw, &BACKUP[..1], &ctx);
    s.end_session();
    assert_eq!(std::fs::read_to_string(&slog).unwrap(), "copy 0x19\n");
}
