//! The coordinator on real software-provider volumes (memory and files) with Rust, exec and
//! session writers: whole backups and restores with the exact event order each writer saw, the
//! components rules, one set in flight, the registry and its limits, and the typestate facade.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use vss_core::document::Component;
use vss_core::{
    Attributes, BackupStep, BackupType, Context, Coordinator, ErrorKind, ExecWriter, FailureKind,
    Provider, RestoreStatus, SessionWriter, ShadowSelector, Writer, WriterEvent, WriterState,
};
use WriterEvent::*;

fn exec_logger(dir: &std::path::Path, name: &str) -> (Arc<dyn Writer>, std::path::PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let cmd = script(
        dir,
        &format!("{name}.sh"),
        &format!("echo \"$1\" >> {}\n", log.display()),
    );
    (Arc::new(ExecWriter::new(name, cmd).unwrap()), log)
}

/// A whole backup then a restore on file volumes, with two Rust writers (one per volume), an
/// exec writer and a session writer: each sees exactly VSS's order, the shadows hold the data of
/// the instant, and the restore brings it back.
#[test]
fn a_whole_backup_and_restore_with_rust_exec_and_session_writers() {
    let dir = tempfile::tempdir().unwrap();
    let vols = file_volumes(dir.path(), &["data", "logs"]);
    let (sw, c) = coordinator(&vols, short());
    let db = Recorder::with_components("db", vec![Component::new("", "tables", ["data"])]);
    let journal = Recorder::with_components("journal", vec![Component::new("", "wal", ["logs"])]);
    let (hook, hook_log) = exec_logger(dir.path(), "hook");
    let session_log = dir.path().join("session.log");
    let session_cmd = format!(
        "while read -r ev; do echo \"$ev\" >> {}; echo ok; done",
        session_log.display()
    );
    let session: Arc<dyn Writer> = Arc::new(SessionWriter::new("sess", session_cmd).unwrap());
    for w in [
        db.clone() as Arc<dyn Writer>,
        journal.clone(),
        hook,
        session,
    ] {
        c.add_writer(w).unwrap();
    }
    let data = sw.volume("data").unwrap();
    data.write_at(b"version-1", 0).unwrap();

    let mut b = c.backup(Context::APP_ROLLBACK, BackupType::Full);
    let docs = b.gather_writer_metadata().unwrap();
    assert_eq!(docs.len(), 4);
    let set = b.start_set().unwrap();
    b.add_volume("data").unwrap();
    b.add_volume("logs").unwrap();
    b.prepare_for_backup().unwrap();
    let shadows = b.do_snapshot_set().unwrap();
    assert_eq!(shadows.len(), 2);
    assert!(shadows
        .iter()
        .all(|s| s.set_id == set && s.count_in_set == 2));
    assert_eq!(shadows[0].original.name, "data");
    assert!(shadows[0].attributes.contains(Attributes::PERSISTENT));
    b.set_backup_succeeded("db", "tables", true).unwrap();
    let saved = b.backup_components().unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();
    assert_eq!(b.step(), BackupStep::Ended);
    for s in b.writer_status() {
        assert_eq!(s.state, WriterState::Stable, "{s:?}");
        assert!(s.failure.is_none() && s.responding && s.taking_part);
    }
    drop(b);
    assert_eq!(db.events(), BACKUP);
    assert_eq!(journal.events(), BACKUP);
    assert_eq!(logged(&hook_log), BACKUP);
    assert_eq!(logged(&session_log), BACKUP);
    // APP_ROLLBACK is not auto-released: the shadows stay, holding the instant's data.
    assert_eq!(c.query_shadows(&ShadowSelector::Set(set)).unwrap().len(), 2);
    assert!(saved
        .selected
        .iter()
        .any(|s| s.writer == "db" && s.backup_succeeded));

    // The saved document round-trips and drives the restore.
    let saved = vss_core::BackupComponents::from_json(saved.to_json().unwrap().as_bytes()).unwrap();
    data.write_at(b"version-2", 0).unwrap();
    for r in [&db, &journal] {
        r.clear();
    }
    std::fs::remove_file(&hook_log).unwrap();
    std::fs::remove_file(&session_log).unwrap();
    let mut r = c.restore(saved).unwrap();
    r.gather_writer_metadata().unwrap();
    r.select_component("db", "tables").unwrap();
    r.pre_restore().unwrap();
    r.restore().unwrap();
    r.post_restore().unwrap();
    let status = r.restore_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].status, RestoreStatus::All);
    assert_eq!(status[0].volumes, ["data"]);
    drop(r);
    let mut buf = [0u8; 9];
    data.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"version-1");
    assert_eq!(db.events(), [Identify, PreRestore, PostRestore]);
    // The journal was not selected for restore: identify only.
    assert_eq!(journal.events(), [Identify]);
    assert_eq!(logged(&hook_log), [Identify]);
    assert_eq!(logged(&session_log), [Identify]);
}

/// A writer none of whose components is selected gets nothing after prepare-backup; a
/// selected component on a volume outside the set fails the set with INCONSISTENT_SNAPSHOT
/// before anything is frozen.
#[test]
fn components_decide_who_takes_part_and_an_inconsistent_selection_freezes_nothing() {
    let vols = mem_volumes(&["a", "b", "c"]);
    let (sw, c) = coordinator(&vols, short());
    let one = Recorder::with_components("one", vec![Component::new("", "x", ["a"])]);
    let two = Recorder::with_components("two", vec![Component::new("", "y", ["b", "c"])]);
    c.add_writer(one.clone()).unwrap();
    c.add_writer(two.clone()).unwrap();

    let mut b = c.backup(Context::BACKUP, BackupType::Copy);
    b.gather_writer_metadata().unwrap();
    b.select_component("one", "x").unwrap();
    assert_eq!(
        b.select_component("one", "x").unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        b.select_component("one", "nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    b.start_set().unwrap();
    b.add_volume("a").unwrap();
    b.prepare_for_backup().unwrap();
    b.do_snapshot_set().unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();
    assert_eq!(one.events(), BACKUP);
    assert_eq!(two.events(), [Identify, PrepareBackup]);
    let st = b.writer_status();
    assert!(st[0].taking_part && !st[1].taking_part);
    drop(b);
    // BACKUP context: auto-released at shutdown.
    assert!(c.shadows().unwrap().is_empty());

    one.clear();
    two.clear();
    let mut b = c.backup(Context::BACKUP, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    b.select_component("two", "y").unwrap();
    b.start_set().unwrap();
    b.add_volume("b").unwrap();
    b.prepare_for_backup().unwrap();
    let e = b.do_snapshot_set().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedWriterError, "{e}");
    assert!(e.message().contains("FAILED_AT_PREPARE_SNAPSHOT"), "{e}");
    assert!(e.message().contains("\"c\""), "{e}");
    assert_eq!(b.step(), BackupStep::Aborted);
    let st = &b.writer_status()[1];
    assert_eq!(st.state, WriterState::FailedAtPrepareSnapshot);
    assert_eq!(
        st.failure.as_ref().unwrap().kind(),
        FailureKind::InconsistentSnapshot
    );
    assert_eq!(two.events(), [Identify, PrepareBackup, Abort]);
    assert_eq!(one.events(), [Identify, PrepareBackup]);
    assert!(c.shadows().unwrap().is_empty());
    assert!(writable(&sw.volume("b").unwrap()));
    assert_eq!(c.set_in_progress(), None);
}

/// Calls out of order are BAD_STATE and change nothing; the limits and the provider choice.
#[test]
fn out_of_order_calls_limits_and_unsupported_volumes() {
    let names: Vec<String> = (0..65).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let vols = mem_volumes(&refs);
    let (_, c) = coordinator(&vols, short());
    let mut b = c.backup(Context::FILE_SHARE_BACKUP, BackupType::Full);
    for e in [
        b.start_set().map(drop),
        b.add_volume("v0").map(drop),
        b.prepare_for_backup(),
        b.do_snapshot_set().map(drop),
        b.backup_complete(),
        b.backup_shutdown(),
    ] {
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
        assert!(e.message().contains("Initial"), "{e}");
    }
    assert_eq!(b.step(), BackupStep::Initial);
    assert!(b.gather_writer_metadata().unwrap().is_empty());
    b.start_set().unwrap();
    assert_eq!(
        b.prepare_for_backup().unwrap_err().kind(),
        ErrorKind::BadState
    );
    assert_eq!(
        b.add_volume("nowhere").unwrap_err().kind(),
        ErrorKind::VolumeNotSupported
    );
    for n in &names[..64] {
        b.add_volume(n).unwrap();
    }
    assert_eq!(
        b.add_volume("v0").unwrap_err().kind(),
        ErrorKind::MaxVolumesReached
    );
    let e = b.add_volume("v64").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MaxVolumesReached);
    assert_eq!(b.volumes().len(), 64);
    b.abort().unwrap();
    assert_eq!(b.abort().unwrap_err().kind(), ErrorKind::BadState);
    assert_eq!(c.set_in_progress(), None);
}

/// Two requesters race for the same volumes through two coordinators: one wins, the other gets
/// SNAPSHOT_SET_IN_PROGRESS, then succeeds once the first set is made. Within one coordinator,
/// a second start_set waits for the first set likewise.
#[test]
fn two_requesters_racing() {
    let vols = mem_volumes(&["a", "b"]);
    let sw: Arc<dyn Provider> = Arc::new(vss_core::SoftwareProvider::new(vols.clone()).unwrap());
    let sw2: Arc<dyn Provider> = Arc::new(vss_core::SoftwareProvider::new(vols.clone()).unwrap());
    let coordinators = [
        Coordinator::with_timeouts([sw], short()),
        Coordinator::with_timeouts([sw2], short()),
    ];
    let tried = Arc::new(Barrier::new(2));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = coordinators
            .iter()
            .map(|c| {
                let tried = tried.clone();
                s.spawn(move || {
                    let mut b = c.backup(Context::BACKUP, BackupType::Full);
                    b.gather_writer_metadata().unwrap();
                    b.start_set().unwrap();
                    let r = b.add_volume("a").and_then(|_| b.add_volume("b"));
                    // Both have tried before either goes on.
                    tried.wait();
                    match r {
                        Ok(_) => {
                            b.prepare_for_backup().unwrap();
                            b.do_snapshot_set().unwrap();
                            Ok(b)
                        }
                        Err(e) => Err(e),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1);
    let loser = results.iter().position(|r| r.is_err()).unwrap();
    let e = results.into_iter().find_map(Result::err).unwrap();
    assert_eq!(e.kind(), ErrorKind::SnapshotSetInProgress, "{e}");
    // The winner's set is made: the loser succeeds now.
    let c = &coordinators[loser];
    let mut b = prepared(c, Context::BACKUP, &["a", "b"]);
    b.do_snapshot_set().unwrap();

    // One coordinator, two sessions.
    let c = &coordinators[0];
    let mut first = c.backup(Context::BACKUP, BackupType::Full);
    let mut second = c.backup(Context::BACKUP, BackupType::Full);
    first.gather_writer_metadata().unwrap();
    second.gather_writer_metadata().unwrap();
    let id = first.start_set().unwrap();
    let e = second.start_set().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SnapshotSetInProgress);
    assert!(e.message().contains(&id.to_string()), "{e}");
    assert_eq!(second.step(), BackupStep::Gathered);
    drop(first);
    second.start_set().unwrap();
}

/// Dropping a session never leaves a set in progress, a writer frozen or a volume held: before
/// the shadows exist it aborts; after, it shuts down (auto-release shadows deleted).
#[test]
fn dropping_a_session_aborts_or_releases() {
    let vols = mem_volumes(&["a"]);
    let (sw, c) = coordinator(&vols, short());
    let w = Recorder::new("w");
    c.add_writer(w.clone()).unwrap();
    {
        let b = prepared(&c, Context::BACKUP, &["a"]);
        assert!(c.set_in_progress().is_some());
        drop(b);
    }
    assert_eq!(w.events(), [Identify, PrepareBackup, Abort]);
    assert_eq!(c.set_in_progress(), None);
    w.clear();
    {
        let mut b = prepared(&c, Context::BACKUP, &["a"]);
        b.do_snapshot_set().unwrap();
        assert_eq!(c.shadows().unwrap().len(), 1);
    }
    assert_eq!(
        w.events(),
        [
            Identify,
            PrepareBackup,
            PrepareSnapshot,
            Freeze,
            Thaw,
            PostSnapshot,
            BackupShutdown
        ]
    );
    assert!(c.shadows().unwrap().is_empty());
    assert!(writable(&sw.volume("a").unwrap()));
}

/// The typestate facade runs a whole backup; a failing step hands back the ended session with
/// its error and the writers' status, and `?` turns it into the crate's error.
#[test]
fn the_typestate_facade() {
    let vols = mem_volumes(&["a"]);
    let (_, c) = coordinator(&vols, short());
    let w = Recorder::new("w");
    c.add_writer(w.clone()).unwrap();
    let run = || -> vss_core::Result<usize> {
        let mut b = c
            .begin_backup(Context::BACKUP, BackupType::Full)
            .gather()?
            .start_set()?;
        b.add_volume("a")?;
        let done = b.prepare()?.snapshot()?;
        let n = done.properties().len();
        let ended = done.complete()?.shutdown();
        assert!(ended.error().is_none());
        Ok(n)
    };
    assert_eq!(run().unwrap(), 1);
    assert_eq!(w.events(), BACKUP);
    w.clear();
    w.arm(Freeze, Fault::Fail(FailureKind::Retryable));
    let ended = run().unwrap_err();
    assert_eq!(ended.kind(), ErrorKind::UnexpectedWriterError);
    assert!(
        ended.message().contains("FAILED_AT_FREEZE (retryable)"),
        "{ended}"
    );
    let mut b = c
        .begin_backup(Context::BACKUP, BackupType::Full)
        .gather()
        .unwrap()
        .start_set()
        .unwrap();
    b.add_volume("a").unwrap();
    w.arm(PrepareSnapshot, Fault::Panic);
    let ended = b.prepare().unwrap().snapshot().unwrap_err();
    assert_eq!(
        ended.writer_status()[0].state,
        WriterState::FailedAtPrepareSnapshot
    );
    let e = ended.error().unwrap();
    assert!(e.message().contains("panicked"), "{e}");

    // A failed step is a std::error::Error: `?` takes it into a boxed error, with its text.
    w.clear();
    w.arm(Freeze, Fault::Fail(FailureKind::Retryable));
    let boxed = || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut b = c
            .begin_backup(Context::BACKUP, BackupType::Full)
            .gather()?
            .start_set()?;
        b.add_volume("a")?;
        b.prepare()?.snapshot()?;
        Ok(())
    };
    let e = boxed().unwrap_err();
    assert!(
        e.to_string().contains("FAILED_AT_FREEZE (retryable)"),
        "{e}"
    );
}

/// A provider's veto is told apart from its failure; both abort the set with nothing left.
#[test]
fn a_provider_veto_is_told_apart_from_its_failure() {
    struct Picky {
        inner: vss_core::SoftwareProvider,
        fail: ErrorKind,
    }
    impl Provider for Picky {
        fn id(&self) -> uuid::Uuid {
            self.inner.id()
        }
        fn name(&self) -> &str {
            "picky"
        }
        fn provider_type(&self) -> vss_core::ProviderType {
            self.inner.provider_type()
        }
        fn is_volume_supported(&self, v: &str, c: Context) -> vss_core::Result<bool> {
            self.inner.is_volume_supported(v, c)
        }
        fn begin_prepare(&self, r: &vss_core::ShadowRequest) -> vss_core::Result<()> {
            self.inner.begin_prepare(r)
        }
        fn end_prepare(&self, s: uuid::Uuid, d: std::time::Instant) -> vss_core::Result<()> {
            self.inner.end_prepare(s, d)
        }
        fn pre_commit(&self, s: uuid::Uuid) -> vss_core::Result<()> {
            self.inner.pre_commit(s)
        }
        fn commit(&self, s: uuid::Uuid, hold: Duration) -> vss_core::Result<()> {
            self.inner.commit(s, hold)
        }
        fn post_commit(&self, s: uuid::Uuid) -> vss_core::Result<Vec<vss_core::ShadowProperties>> {
            // The commit made the shadows; then this provider refuses: its abort must leave
            // nothing of them.
            let _ = s;
            Err(vss_core::Error::new(self.fail, "refused on purpose"))
        }
        fn abort(&self, s: uuid::Uuid) -> vss_core::Result<()> {
            self.inner.abort(s)
        }
        fn shadows(&self) -> vss_core::Result<Vec<vss_core::ShadowProperties>> {
            self.inner.shadows()
        }
        fn delete(&self, id: uuid::Uuid) -> vss_core::Result<()> {
            self.inner.delete(id)
        }
    }
    for (fail, expect) in [
        (ErrorKind::ProviderVeto, ErrorKind::ProviderVeto),
        (ErrorKind::Io, ErrorKind::UnexpectedProviderError),
    ] {
        let vols = mem_volumes(&["a"]);
        let inner = vss_core::SoftwareProvider::new(vols.clone()).unwrap();
        let p: Arc<dyn Provider> = Arc::new(Picky { inner, fail });
        let c = Coordinator::with_timeouts([p], short());
        let w = Recorder::new("w");
        c.add_writer(w.clone()).unwrap();
        let mut b = prepared(&c, Context::BACKUP, &["a"]);
        let e = b.do_snapshot_set().unwrap_err();
        assert_eq!(e.kind(), expect, "{e}");
        assert!(e.message().contains("post-commit"), "{e}");
        assert_eq!(
            w.events(),
            [Identify, PrepareBackup, PrepareSnapshot, Freeze, Abort]
        );
        assert!(c.shadows().unwrap().is_empty());
        assert!(vols[0].1.snapshots().is_empty());
        assert!(writable(&vols[0].1));
    }
}

/// Writers that keep writing until frozen: each shadow holds exactly what its writer had
/// acknowledged when its freeze returned (a file volume and a memory volume, several sets).
#[test]
fn each_shadow_holds_exactly_what_its_writer_acknowledged_before_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let mut vols = file_volumes(dir.path(), &["app1"]);
    vols.extend(mem_volumes(&["app2"]));
    let (sw, c) = coordinator(&vols, common::short());
    let volume_writes = |v: cow_engine::Volume| {
        move |n: u64| {
            // The counter in block 0, and in one of 16 other blocks in turn.
            v.write_at(&n.to_le_bytes(), 0).unwrap();
            v.write_at(&n.to_le_bytes(), 4096 * (1 + n % 16)).unwrap();
        }
    };
    let (a1, t1) = App::start("app1", volume_writes(sw.volume("app1").unwrap()));
    let (a2, t2) = App::start("app2", volume_writes(sw.volume("app2").unwrap()));
    c.add_writer(a1.clone()).unwrap();
    c.add_writer(a2.clone()).unwrap();
    for round in 0..3 {
        let mut b = prepared(&c, Context::BACKUP, &["app1", "app2"]);
        let shadows = b.do_snapshot_set().unwrap();
        for (app, s) in [(&a1, &shadows[0]), (&a2, &shadows[1])] {
            let acked = app.state.lock().at_freeze[round];
            let vol = sw.volume(&s.original.name).unwrap();
            let snap = vol
                .snapshots()
                .into_iter()
                .rev()
                .find(|i| String::from_utf8_lossy(&i.metadata).contains(&s.shadow_id.to_string()))
                .unwrap();
            let snap = vol.snapshot(snap.id).unwrap();
            let mut buf = [0u8; 8];
            snap.read_at(&mut buf, 0).unwrap();
            assert_eq!(u64::from_le_bytes(buf), acked, "{} round {round}", app.name);
            for k in 1..=16u64 {
                snap.read_at(&mut buf, 4096 * k).unwrap();
                // The last write to block k (counters n with 1 + n % 16 == k) up to `acked`;
                // 0 if none was written.
                let back = (acked % 16 + 16 - (k - 1)) % 16;
                let expect = acked.checked_sub(back).filter(|&m| m >= 1).unwrap_or(0);
                assert_eq!(u64::from_le_bytes(buf), expect, "{} block {k}", app.name);
            }
        }
        b.backup_shutdown().unwrap();
        // Writes go on after thaw.
        let mut buf = [0u8; 8];
        let target = a1.state.lock().at_freeze[round] + 10;
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let mut st = a1.state.lock();
        while st.acked < target && !a1.changed.wait_until(&mut st, until).timed_out() {}
        drop(st);
        sw.volume("app1").unwrap().read_at(&mut buf, 0).unwrap();
        assert!(u64::from_le_bytes(buf) >= target);
    }
    a1.stop();
    a2.stop();
    t1.join().unwrap();
    t2.join().unwrap();
}

/// A writer noting the thread each event runs on; it blocks at `hang_at` (once) until released.
struct Threads {
    name: String,
    hang_at: Option<WriterEvent>,
    seen: parking_lot::Mutex<Vec<(WriterEvent, std::thread::ThreadId)>>,
    released: parking_lot::Mutex<bool>,
    changed: parking_lot::Condvar,
}

impl Threads {
    fn new(name: &str, hang_at: Option<WriterEvent>) -> Arc<Threads> {
        Arc::new(Threads {
            name: name.into(),
            hang_at,
            seen: parking_lot::Mutex::new(Vec::new()),
            released: parking_lot::Mutex::new(false),
            changed: parking_lot::Condvar::new(),
        })
    }

    fn on(&self, event: WriterEvent) -> Result<(), vss_core::WriterFailure> {
        let first = {
            let mut seen = self.seen.lock();
            let first = !seen.iter().any(|(e, _)| *e == event);
            seen.push((event, std::thread::current().id()));
            first
        };
        self.changed.notify_all();
        if self.hang_at == Some(event) && first {
            let mut r = self.released.lock();
            while !*r {
                self.changed.wait(&mut r);
            }
        }
        Ok(())
    }

    fn release(&self) {
        *self.released.lock() = true;
        self.changed.notify_all();
    }

    /// Waits until `event` has been seen `n` times; the threads it ran on.
    fn wait_for(&self, event: WriterEvent, n: usize) -> Vec<std::thread::ThreadId> {
        let mut seen = self.seen.lock();
        loop {
            let at: Vec<_> = seen
                .iter()
                .filter(|(e, _)| *e == event)
                .map(|(_, t)| *t)
                .collect();
            if at.len() >= n {
                return at;
            }
            self.changed.wait(&mut seen);
        }
    }
}

impl Writer for Threads {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(
        &self,
        _: &vss_core::EventContext,
    ) -> Result<vss_core::WriterMetadata, vss_core::WriterFailure> {
        self.on(Identify)?;
        Ok(vss_core::WriterMetadata::for_every_lun(self.name.clone()))
    }
    fn prepare_backup(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(PrepareBackup)
    }
    fn prepare_snapshot(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(PrepareSnapshot)
    }
    fn freeze(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(Freeze)
    }
    fn thaw(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(Thaw)
    }
    fn post_snapshot(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(PostSnapshot)
    }
    fn abort(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(Abort)
    }
    fn backup_complete(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(BackupComplete)
    }
    fn backup_shutdown(&self, _: &vss_core::EventContext) -> Result<(), vss_core::WriterFailure> {
        self.on(BackupShutdown)
    }
}

/// Every event of a writer in one session runs on one thread of that writer's (none is started
/// per call, none is the requester's); a writer whose freeze hangs past the window leaves that
/// thread to the hung call, and the abort it gets when the call returns runs on another one while
/// the other writer's abort runs on its own session thread.
#[test]
fn each_writer_gets_one_thread_per_session_and_a_hung_one_is_left_behind() {
    let vols = mem_volumes(&["a"]);
    let (_, c) = coordinator(&vols, short());
    let steady = Threads::new("steady", None);
    let other = Threads::new("other", None);
    c.add_writer(steady.clone()).unwrap();
    c.add_writer(other.clone()).unwrap();
    let mut b = prepared(&c, Context::APP_ROLLBACK, &["a"]);
    b.do_snapshot_set().unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();
    let me = std::thread::current().id();
    let thread_of = |w: &Threads| {
        let seen = w.seen.lock().clone();
        assert_eq!(
            seen.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            BACKUP.to_vec()
        );
        let t = seen[0].1;
        assert!(seen.iter().all(|(_, u)| *u == t), "{}: {seen:?}", w.name);
        assert_ne!(t, me);
        t
    };
    assert_ne!(thread_of(&steady), thread_of(&other));
    drop(b);

    let vols = mem_volumes(&["a"]);
    let (_, c) = coordinator(&vols, short());
    let hung = Threads::new("hung", Some(Freeze));
    let other = Threads::new("other", None);
    c.add_writer(hung.clone()).unwrap();
    c.add_writer(other.clone()).unwrap();
    let mut b = prepared(&c, Context::APP_ROLLBACK, &["a"]);
    let e = b.do_snapshot_set().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WriterNotResponding, "{e}");
    let session_thread = other.wait_for(Identify, 1)[0];
    assert_eq!(other.wait_for(Abort, 1), vec![session_thread]);
    let frozen_on = hung.wait_for(Freeze, 1)[0];
    assert_eq!(hung.wait_for(Identify, 1), vec![frozen_on]);
    hung.release();
    let aborted_on = hung.wait_for(Abort, 1)[0];
    assert_ne!(aborted_on, frozen_on);
    assert!(c.wait_until_responding("hung", Duration::from_secs(10)));
    // The next set starts at once, the once-hung writer in it.
    let mut b = prepared(&c, Context::APP_ROLLBACK, &["a"]);
    b.do_snapshot_set().unwrap();
    b.backup_shutdown().unwrap();
}
