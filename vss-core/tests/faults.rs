//! Fault injection at every event of a backup: a writer that fails, one that hangs past its
//! deadline, one that panics, and an exec writer killed by a signal. In every case the
//! documented outcome (a failure up to thaw aborts the set and leaves no shadow; a later one
//! keeps the shadows and records FAILED_AT_<STEP>), the exact events each writer saw, no writer
//! frozen, no volume held, and a new set starting at once.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use vss_core::{
    BackupSession, BackupType, Context, ErrorKind, ExecWriter, FailureKind, Writer, WriterEvent,
    WriterState,
};
use WriterEvent::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fail,
    Hang,
    Panic,
    Signal,
}

/// A whole backup of volumes a and b; the first error, if any, with the session.
fn backup(c: &vss_core::Coordinator) -> (BackupSession, vss_core::Result<()>) {
    let mut b = c.backup(Context::APP_ROLLBACK, BackupType::Full);
    let r = (|| {
        b.gather_writer_metadata()?;
        b.start_set()?;
        b.add_volume("a")?;
        b.add_volume("b")?;
        b.prepare_for_backup()?;
        b.do_snapshot_set()?;
        b.backup_complete()?;
        b.backup_shutdown()
    })();
    (b, r)
}

fn aborts(event: WriterEvent) -> bool {
    matches!(event, PrepareBackup | PrepareSnapshot | Freeze | Thaw)
}

/// The events a writer that is faulty at `event` (once) sees in its set.
fn expected_faulty(event: WriterEvent, mode: Mode) -> Vec<WriterEvent> {
    let at = BACKUP.iter().position(|&e| e == event).unwrap();
    let mut v = BACKUP[..=at].to_vec();
    if event == Identify {
        return v;
    }
    if aborts(event) {
        v.push(Abort);
    } else if mode != Mode::Hang && event != BackupShutdown {
        // A failed writer gets no backup-complete, but still backup-shutdown.
        v.push(BackupShutdown);
    }
    v
}

/// The events a healthy writer sees in the faulty writer's set.
fn expected_healthy(event: WriterEvent) -> Vec<WriterEvent> {
    if aborts(event) {
        let at = BACKUP.iter().position(|&e| e == event).unwrap();
        let mut v = BACKUP[..=at].to_vec();
        v.push(Abort);
        v
    } else {
        BACKUP.to_vec()
    }
}

/// An exec writer logging each event, killed by SIGKILL at `event` the first time.
fn signalled(dir: &Path, event: WriterEvent) -> (Arc<dyn Writer>, std::path::PathBuf) {
    let log = dir.join("faulty.log");
    let mark = dir.join("killed");
    let body = format!(
        "echo \"$1\" >> {log}\nif [ \"$1\" = {event} ] && [ ! -e {mark} ]; then : > {mark}; kill -9 $$; fi\n",
        log = log.display(),
        mark = mark.display()
    );
    let cmd = script(dir, "faulty.sh", &body);
    (Arc::new(ExecWriter::new("faulty", cmd).unwrap()), log)
}

fn scenario(event: WriterEvent, mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let vols = mem_volumes(&["a", "b"]);
    let (sw, c) = coordinator(&vols, short());
    let healthy = Recorder::new("healthy");
    let rec = Recorder::new("faulty");
    let mut exec_log = None;
    let faulty: Arc<dyn Writer> = match mode {
        Mode::Fail => {
            rec.arm(event, Fault::Fail(FailureKind::Retryable));
            rec.clone()
        }
        Mode::Hang => {
            rec.arm(event, Fault::Hang);
            rec.clone()
        }
        Mode::Panic => {
            rec.arm(event, Fault::Panic);
            rec.clone()
        }
        Mode::Signal => {
            let (w, log) = signalled(dir.path(), event);
            exec_log = Some(log);
            w
        }
    };
    c.add_writer(healthy.clone()).unwrap();
    c.add_writer(faulty).unwrap();
    let faulty_events = |rec: &Recorder| match &exec_log {
        Some(log) => logged(log),
        None => rec.events(),
    };
    let what = format!("{mode:?} at {event}");

    let (b, r) = backup(&c);
    let status = b.writer_status();
    let st = status.iter().find(|s| s.writer == "faulty").unwrap();
    assert_eq!(Some(st.state), event.failed_state(), "{what}: {st:?}");
    let kind = match mode {
        Mode::Fail => FailureKind::Retryable,
        Mode::Hang => FailureKind::Timeout,
        Mode::Panic | Mode::Signal => FailureKind::NonRetryable,
    };
    assert_eq!(st.failure.as_ref().unwrap().kind(), kind, "{what}: {st:?}");
    assert_eq!(st.responding, mode != Mode::Hang, "{what}");
    let hs = status.iter().find(|s| s.writer == "healthy").unwrap();
    assert!(hs.failure.is_none(), "{what}: {hs:?}");
    if aborts(event) {
        let e = r.unwrap_err();
        let expect = if mode == Mode::Hang {
            ErrorKind::WriterNotResponding
        } else {
            ErrorKind::UnexpectedWriterError
        };
        assert_eq!(e.kind(), expect, "{what}: {e}");
        let state = event.failed_state().unwrap().to_string();
        assert!(e.message().contains(&state), "{what}: {e}");
        assert!(e.message().contains("\"faulty\""), "{what}: {e}");
        assert!(c.shadows().unwrap().is_empty(), "{what}");
        assert!(vols.iter().all(|(_, v)| v.snapshots().is_empty()), "{what}");
    } else {
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(c.shadows().unwrap().len(), 2, "{what}");
    }
    drop(b);
    assert_eq!(healthy.events(), expected_healthy(event), "{what}");
    if mode != Mode::Hang {
        assert_eq!(faulty_events(&rec), expected_faulty(event, mode), "{what}");
    }
    assert!(!healthy.is_frozen(), "{what}");
    assert!(vols.iter().all(|(_, v)| writable(v)), "{what}");
    assert_eq!(c.set_in_progress(), None, "{what}");

    // A new set starts at once; a hung writer is left out of it.
    healthy.clear();
    let before = faulty_events(&rec).len();
    let (b, r) = backup(&c);
    r.unwrap_or_else(|e| panic!("{what}: the next set: {e}"));
    assert_eq!(healthy.events(), BACKUP, "{what}");
    let st = b
        .writer_status()
        .into_iter()
        .find(|s| s.writer == "faulty")
        .unwrap();
    if mode == Mode::Hang {
        assert!(!st.responding && !st.taking_part, "{what}: {st:?}");
        assert!(
            st.failure.unwrap().message().contains("has not answered"),
            "{what}"
        );
    } else {
        assert!(st.taking_part && st.failure.is_none(), "{what}: {st:?}");
        assert_eq!(st.state, WriterState::Stable, "{what}");
        assert_eq!(faulty_events(&rec)[before..], BACKUP, "{what}");
    }
    drop(b);

    if mode == Mode::Hang {
        assert_eq!(c.not_responding(), [("faulty".to_owned(), event)], "{what}");
        rec.release();
        assert!(
            c.wait_until_responding("faulty", Duration::from_secs(10)),
            "{what}"
        );
        assert!(c.not_responding().is_empty());
        // A call that returned after its set was aborted was answered with abort.
        assert_eq!(rec.events(), expected_faulty(event, mode), "{what}");
    }
    assert!(!rec.is_frozen(), "{what}");
    assert!(sw.volume("a").unwrap().write_at(b"x", 0).is_ok());
}

fn every_event(mode: Mode) {
    for event in BACKUP {
        scenario(event, mode);
    }
}

#[test]
fn a_writer_that_fails_at_each_event() {
    every_event(Mode::Fail);
}

#[test]
fn a_writer_that_hangs_past_its_deadline_at_each_event() {
    every_event(Mode::Hang);
}

#[test]
fn a_writer_that_panics_at_each_event() {
    every_event(Mode::Panic);
}

#[test]
fn an_exec_writer_killed_by_a_signal_at_each_event() {
    every_event(Mode::Signal);
}

/// Restore events: a writer that fails, hangs or panics at pre-restore has its component left
/// unrestored (status NONE) while another writer's is restored; one that fails post-restore is
/// recorded FAILED_AT_POST_RESTORE with its component restored.
#[test]
fn faults_at_pre_restore_and_post_restore() {
    use vss_core::document::Component;
    use vss_core::RestoreStatus;
    for (event, fault) in [
        (PreRestore, Fault::Fail(FailureKind::NonRetryable)),
        (PreRestore, Fault::Hang),
        (PreRestore, Fault::Panic),
        (PostRestore, Fault::Fail(FailureKind::Retryable)),
        (PostRestore, Fault::Panic),
    ] {
        let what = format!("{fault:?} at {event}");
        let vols = mem_volumes(&["a", "b"]);
        let (sw, c) = coordinator(&vols, short());
        let good = Recorder::with_components("good", vec![Component::new("", "x", ["a"])]);
        let bad = Recorder::with_components("bad", vec![Component::new("", "y", ["b"])]);
        c.add_writer(good.clone()).unwrap();
        c.add_writer(bad.clone()).unwrap();
        for (_, v) in &vols {
            v.write_at(b"old", 0).unwrap();
        }
        let (b, r) = backup(&c);
        r.unwrap();
        let saved = b.backup_components().unwrap();
        drop(b);
        for (_, v) in &vols {
            v.write_at(b"new", 0).unwrap();
        }
        good.clear();
        bad.clear();
        bad.arm(event, fault);
        let mut r = c.restore(saved).unwrap();
        r.gather_writer_metadata().unwrap();
        r.pre_restore().unwrap();
        r.restore().unwrap();
        r.post_restore().unwrap();
        let status = r.restore_status().to_vec();
        let st = r
            .writer_status()
            .into_iter()
            .find(|s| s.writer == "bad")
            .unwrap();
        assert_eq!(Some(st.state), event.failed_state(), "{what}: {st:?}");
        drop(r);
        let read = |name: &str| {
            let mut buf = [0u8; 3];
            sw.volume(name).unwrap().read_at(&mut buf, 0).unwrap();
            buf
        };
        assert_eq!(status[0].writer, "good");
        assert_eq!(status[0].status, RestoreStatus::All, "{what}");
        assert_eq!(&read("a"), b"old", "{what}");
        assert_eq!(good.events(), [Identify, PreRestore, PostRestore], "{what}");
        if event == PreRestore {
            assert_eq!(status[1].status, RestoreStatus::None, "{what}");
            assert!(status[1].reason.as_ref().unwrap().contains("pre-restore"));
            assert_eq!(&read("b"), b"new", "{what}");
        } else {
            assert_eq!(status[1].status, RestoreStatus::All, "{what}");
            assert_eq!(&read("b"), b"old", "{what}");
            assert_eq!(bad.events(), [Identify, PreRestore, PostRestore], "{what}");
        }
        if fault == Fault::Hang {
            bad.release();
            assert!(c.wait_until_responding("bad", Duration::from_secs(10)));
            // Not aborted: no abort follows a restore event.
            assert_eq!(bad.events(), [Identify, PreRestore], "{what}");
        }
    }
}

/// A writer that fails abort does not keep the set from aborting: every volume is thawed and
/// nothing of the set remains; its state stays the one of the step that aborted the set.
#[test]
fn a_writer_failing_abort_still_leaves_nothing_held() {
    let vols = mem_volumes(&["a", "b"]);
    let (_, c) = coordinator(&vols, short());
    let w = Recorder::new("w");
    let other = Recorder::new("other");
    c.add_writer(w.clone()).unwrap();
    c.add_writer(other.clone()).unwrap();
    other.arm(Freeze, Fault::Fail(FailureKind::Retryable));
    w.arm(Abort, Fault::Fail(FailureKind::NonRetryable));
    let (b, r) = backup(&c);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedWriterError);
    let st = b.writer_status();
    assert_eq!(st[0].state, WriterState::WaitingForThaw, "{st:?}");
    assert_eq!(st[1].state, WriterState::FailedAtFreeze);
    drop(b);
    assert_eq!(
        w.events(),
        [Identify, PrepareBackup, PrepareSnapshot, Freeze, Abort]
    );
    assert!(c.shadows().unwrap().is_empty());
    assert!(vols.iter().all(|(_, v)| writable(v)));
    let (_, r) = backup(&c);
    r.unwrap();
}

/// A hold window too short for the providers' flush-and-hold aborts the set with a flush or hold
/// timeout: writers get abort, no volume stays frozen, no shadow remains.
#[test]
fn a_hold_window_overrun_aborts_the_set() {
    let vols = mem_volumes(&["a", "b"]);
    let timeouts = vss_core::Timeouts {
        hold_window: Duration::ZERO,
        ..short()
    };
    let (_, c) = coordinator(&vols, timeouts);
    let w = Recorder::new("w");
    c.add_writer(w.clone()).unwrap();
    let (_, r) = backup(&c);
    let e = r.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::FlushWritesTimeout | ErrorKind::HoldWritesTimeout
        ),
        "{e}"
    );
    assert!(e.message().contains("commit"), "{e}");
    assert_eq!(
        w.events(),
        [Identify, PrepareBackup, PrepareSnapshot, Freeze, Abort]
    );
    assert!(!w.is_frozen());
    assert!(c.shadows().unwrap().is_empty());
    assert!(vols.iter().all(|(_, v)| writable(v)));
}
