//! The protocol over a pool (`PoolCoordinator`): whole backups with registered and per-set
//! writers through both providers, persistent software shadows after a reopen and their
//! revert, registered writers, the per-volume limit, one set in progress per pool, and a
//! requester process killed mid-set (a real child, SIGKILL) cleaned up at the next open.

mod common;
mod hardware_common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{script, Recorder, BACKUP};
use hardware_common::{block, mask, open_as, read_block, HOST_A, MB};
use uuid::Uuid;
use vds_core::Array;
use vss_core::pool::{read_record, SetRecord, ARRAY_SOFTWARE_PROVIDER_ID};
use vss_core::{
    BackupType, Context, ErrorKind, EventContext, HardwareProvider, PoolCoordinator, PoolOptions,
    PoolProvider, Provider, RegisteredWriter, Timeouts, Writer, WriterEvent, WriterFailure,
    WriterMetadata,
};

/// A pool in `dir` with LUNs "db" and "log" of 1 MiB, visible to host A.
fn pool(dir: &Path) -> Array {
    let a = Array::open(dir).unwrap();
    for lun in ["db", "log"] {
        a.create_lun(lun, MB, &mask(HOST_A)).unwrap();
    }
    a
}

fn options(provider: PoolProvider) -> PoolOptions {
    PoolOptions {
        provider,
        ..PoolOptions::default()
    }
}

/// An exec writer logging `EVENT SET_ID LUNS` per event to `log`.
fn logging_writer(dir: &Path, name: &str, log: &Path) -> RegisteredWriter {
    let cmd = script(
        dir,
        &format!("{name}.sh"),
        &format!(
            "echo \"$1 $UMBRA_SET_ID $UMBRA_LUNS\" >> {}\n",
            log.display()
        ),
    );
    RegisteredWriter::exec(name, cmd)
}

/// The lines of an exec writer's log: (event, set id, LUNs).
fn log_lines(log: &Path) -> Vec<(WriterEvent, String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap_or("").to_owned(),
                f.next().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn events_of(log: &Path) -> Vec<WriterEvent> {
    log_lines(log).into_iter().map(|(e, _, _)| e).collect()
}

/// A whole backup through the pool coordinator with a registered exec writer, a per-set exec
/// writer and an in-process writer: each sees the whole sequence in order; the set-in-progress
/// record names the set, its LUNs and both exec writers while it is made and is gone after.
fn whole_backup(provider: PoolProvider) {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(&dir.path().join("pool"));
    let h = open_as(&a, HOST_A, "db");
    h.write_at(&block(0, 0xAA), 0).unwrap();
    let (reg_log, per_log) = (dir.path().join("reg.log"), dir.path().join("per.log"));
    {
        let pc = PoolCoordinator::open_with(a.clone(), options(provider)).unwrap();
        pc.register_writer(&logging_writer(dir.path(), "registered", &reg_log))
            .unwrap();
    }
    let pc = PoolCoordinator::open_with(a.clone(), options(provider)).unwrap();
    assert!(pc.recovered().is_none());
    pc.add_exec_writer(&logging_writer(dir.path(), "per-set", &per_log))
        .unwrap();
    let rec = Recorder::new("inproc");
    pc.add_writer(rec.clone()).unwrap();
    assert_eq!(pc.writer_names(), ["registered", "per-set", "inproc"]);

    let mut b = pc.backup(Context::APP_ROLLBACK, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    let set = b.start_set().unwrap();
    b.add_volume("db").unwrap();
    b.add_volume("log").unwrap();
    let r: SetRecord = pc
        .set_record()
        .unwrap()
        .expect("a record while the set is made");
    assert_eq!(r.set_id, set);
    assert_eq!(r.pid, std::process::id());
    assert_eq!(r.luns, ["db", "log"]);
    let names: Vec<&str> = r.exec_writers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["registered", "per-set"]);
    b.prepare_for_backup().unwrap();
    let props = b.do_snapshot_set().unwrap();
    assert!(pc.set_record().unwrap().is_none(), "the set is made");
    let want_provider = match provider {
        PoolProvider::Hardware => HardwareProvider::ID,
        PoolProvider::Software => ARRAY_SOFTWARE_PROVIDER_ID,
    };
    assert!(props.iter().all(|p| p.provider_id == want_provider));
    assert_eq!(props.len(), 2);
    h.write_at(&block(0, 0xBB), 0).unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();

    assert_eq!(rec.events(), BACKUP);
    assert_eq!(events_of(&reg_log), BACKUP);
    assert_eq!(events_of(&per_log), BACKUP);
    for (e, s, luns) in log_lines(&reg_log).into_iter().skip(1) {
        assert_eq!(
            (s.as_str(), luns.as_str()),
            (set.to_string().as_str(), "db;log"),
            "{e}"
        );
    }
    // APP_ROLLBACK keeps its shadows: they hold the data of the instant.
    let kept = pc.shadows().unwrap();
    assert_eq!(kept.len(), 2);
    if provider == PoolProvider::Software {
        let s = a.engine_shadows("db").unwrap();
        assert_eq!(s.len(), 1);
        let mut buf = vec![0u8; 4096];
        h.read_shadow_at(s[0].id, &mut buf, 0).unwrap();
        assert_eq!(buf, block(0, 0xAA));
        assert_eq!(read_block(&h, 0), block(0, 0xBB));
    } else {
        assert!(a.engine_shadows("db").unwrap().is_empty());
        assert!(a.is_shadow(&kept[0].shadow.name).unwrap());
    }
}

#[test]
fn a_whole_backup_through_the_pool_with_the_hardware_provider() {
    whole_backup(PoolProvider::Hardware);
}

#[test]
fn a_whole_backup_through_the_pool_with_the_software_provider() {
    whole_backup(PoolProvider::Software);
}

/// Persistent software shadows of a pool are listed with the same properties after the pool
/// is reopened, revert (fenced, async) brings the data back, and a BACKUP (auto-release) set
/// leaves nothing after its shutdown.
#[test]
fn persistent_software_shadows_survive_a_reopen_and_revert() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let before = {
        let a = pool(&path);
        let h = open_as(&a, HOST_A, "db");
        h.write_at(&block(3, 0x11), 3 * 4096).unwrap();
        let pc = PoolCoordinator::open_with(a.clone(), options(PoolProvider::Software)).unwrap();
        let b = pc.begin_backup(Context::APP_ROLLBACK, BackupType::Full);
        let mut b = b.gather().unwrap().start_set().unwrap();
        b.add_volume("db").unwrap();
        let b = b.prepare().unwrap().snapshot().unwrap();
        let props = b.properties().to_vec();
        b.complete().unwrap().shutdown();
        // An auto-release set: gone at its shutdown.
        let mut t = pc.backup(Context::BACKUP, BackupType::Full);
        t.gather_writer_metadata().unwrap();
        t.start_set().unwrap();
        t.add_volume("db").unwrap();
        t.prepare_for_backup().unwrap();
        t.do_snapshot_set().unwrap();
        assert_eq!(pc.shadows().unwrap().len(), 2);
        t.backup_shutdown().unwrap();
        assert_eq!(pc.shadows().unwrap(), props);
        h.write_at(&block(3, 0x22), 3 * 4096).unwrap();
        props
    };
    let a = Array::open(&path).unwrap();
    let pc = PoolCoordinator::open(a.clone()).unwrap();
    assert_eq!(
        pc.shadows().unwrap(),
        before,
        "listed again after the reopen"
    );
    let h = open_as(&a, HOST_A, "db");
    assert_eq!(read_block(&h, 3), block(3, 0x22));
    pc.revert(before[0].shadow_id).unwrap().wait().unwrap();
    // The revert revoked the handle opened before it (as VSS dismounts a reverted volume).
    let mut old = vec![0u8; 4096];
    assert_eq!(
        h.read_at(&mut old, 0).unwrap_err().kind(),
        vds_core::ErrorKind::AccessDenied
    );
    let h = open_as(&a, HOST_A, "db");
    assert_eq!(read_block(&h, 3), block(3, 0x11), "reverted to the shadow");
    assert_eq!(pc.shadows().unwrap(), before, "the shadow stays");
    assert_eq!(
        pc.delete_shadows(&vss_core::ShadowSelector::Volume("db".into()))
            .unwrap(),
        1
    );
    assert!(a.engine_shadows("db").unwrap().is_empty());
}

/// Registered writers: validated, durable, listed after a reopen, duplicates and unknown names
/// refused without a change.
#[test]
fn registered_writers_are_kept_in_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let a = pool(&path);
    let pc = PoolCoordinator::open(a.clone()).unwrap();
    let fsfreeze = RegisteredWriter::exec("fs", "fsfreeze-hook");
    let mysql = RegisteredWriter::session("mysql", "mysql-session-hook");
    pc.register_writer(&fsfreeze).unwrap();
    pc.register_writer(&mysql).unwrap();
    let before = a.pool_metadata();
    for (bad, kind) in [
        (
            RegisteredWriter::exec("fs", "other"),
            ErrorKind::AlreadyExists,
        ),
        (
            RegisteredWriter::exec("a b", "x"),
            ErrorKind::InvalidArgument,
        ),
        (RegisteredWriter::exec("", "x"), ErrorKind::InvalidArgument),
        (
            RegisteredWriter::session("ok", ""),
            ErrorKind::InvalidArgument,
        ),
    ] {
        let e = pc.register_writer(&bad).unwrap_err();
        assert_eq!(e.kind(), kind, "{bad:?}: {e}");
        assert_eq!(a.pool_metadata(), before, "{bad:?} changed nothing");
    }
    // An in-process writer's name is taken too.
    pc.add_writer(Recorder::new("inproc")).unwrap();
    let e = pc
        .register_writer(&RegisteredWriter::exec("inproc", "x"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(a.pool_metadata(), before);
    assert_eq!(
        pc.registered_writers().unwrap(),
        [fsfreeze.clone(), mysql.clone()]
    );
    drop(pc);
    drop(a);
    let a = Array::open(&path).unwrap();
    let pc = PoolCoordinator::open(a.clone()).unwrap();
    assert_eq!(pc.registered_writers().unwrap(), [fsfreeze, mysql]);
    assert_eq!(pc.writer_names(), ["fs", "mysql"]);
    pc.unregister_writer("fs").unwrap();
    assert_eq!(
        pc.unregister_writer("fs").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(pc.writer_names(), ["mysql"]);
    let pc2 = PoolCoordinator::open(a).unwrap();
    assert_eq!(pc2.writer_names(), ["mysql"]);
}

/// Makes one NO_WRITERS set of `luns` through `pc`.
fn one_set(pc: &PoolCoordinator, luns: &[&str]) -> vss_core::Result<()> {
    let mut b = pc.backup(
        Context::APP_ROLLBACK | vss_core::Attributes::NO_WRITERS,
        BackupType::Full,
    );
    b.gather_writer_metadata()?;
    b.start_set()?;
    for l in luns {
        b.add_volume(l)?;
    }
    b.prepare_for_backup()?;
    b.do_snapshot_set()?;
    b.backup_shutdown()
}

/// 64 shadows per LUN by default, with either provider; the software provider's limit is
/// configurable from 1 to 512.
#[test]
fn the_per_volume_limit_is_64_by_default_and_configurable() {
    for provider in [PoolProvider::Software, PoolProvider::Hardware] {
        let a = Array::in_memory();
        a.create_lun("db", MB, &mask(HOST_A)).unwrap();
        let pc = PoolCoordinator::open_with(a.clone(), options(provider)).unwrap();
        for i in 0..64 {
            one_set(&pc, &["db"]).unwrap_or_else(|e| panic!("set {i}: {e}"));
        }
        let e = one_set(&pc, &["db"]).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::MaxSnapshotsReached,
            "{provider:?}: {e}"
        );
        assert_eq!(pc.shadows().unwrap().len(), 64);
        assert!(pc.set_record().unwrap().is_none(), "the failed set ended");
    }
    let a = Array::in_memory();
    a.create_lun("db", MB, &mask(HOST_A)).unwrap();
    let pc = PoolCoordinator::open_with(
        a.clone(),
        PoolOptions {
            provider: PoolProvider::Software,
            max_shadows_per_volume: 3,
            ..PoolOptions::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        one_set(&pc, &["db"]).unwrap();
    }
    assert_eq!(
        one_set(&pc, &["db"]).unwrap_err().kind(),
        ErrorKind::MaxSnapshotsReached
    );
    for bad in [0, 513] {
        let e = PoolCoordinator::open_with(
            a.clone(),
            PoolOptions {
                max_shadows_per_volume: bad,
                ..PoolOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    PoolCoordinator::open_with(
        a,
        PoolOptions {
            max_shadows_per_volume: 512,
            ..PoolOptions::default()
        },
    )
    .unwrap();
}

/// While one pool coordinator makes a set, another on the same pool gets
/// SnapshotSetInProgress (even for other LUNs); a dropped session ends its set and clears the
/// record, and the other starts at once.
#[test]
fn one_set_in_progress_per_pool() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(&dir.path().join("pool"));
    let first = PoolCoordinator::open(a.clone()).unwrap();
    let second = PoolCoordinator::open(a.clone()).unwrap();
    let mut b1 = first.backup(Context::BACKUP, BackupType::Full);
    b1.gather_writer_metadata().unwrap();
    let set = b1.start_set().unwrap();
    b1.add_volume("db").unwrap();
    let mut b2 = second.backup(Context::BACKUP, BackupType::Full);
    b2.gather_writer_metadata().unwrap();
    let e = b2.start_set().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SnapshotSetInProgress, "{e}");
    assert!(e.message().contains(&set.to_string()), "{e}");
    // A third opened now finds the live set and leaves it alone.
    let third = PoolCoordinator::open(a.clone()).unwrap();
    assert!(third.recovered().is_none());
    assert_eq!(read_record(&a).unwrap().unwrap().set_id, set);
    drop(b1);
    assert!(read_record(&a).unwrap().is_none());
    b2.start_set().unwrap();
    b2.add_volume("log").unwrap();
    b2.prepare_for_backup().unwrap();
    b2.do_snapshot_set().unwrap();
    b2.backup_shutdown().unwrap();
    assert!(second.shadows().unwrap().is_empty(), "auto-released");
}

/// A writer of the child requester that parks at `at` once the session writer holds its lock
/// (so the child is killed mid-freeze, or after the commit at thaw).
struct Parker {
    at: WriterEvent,
    ready: PathBuf,
    /// The registered exec writer's log: the parker waits until it logged `at`.
    log: PathBuf,
}

impl Writer for Parker {
    fn name(&self) -> &str {
        "parker"
    }
    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        Ok(WriterMetadata::for_every_lun("parker"))
    }
    fn freeze(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.park(WriterEvent::Freeze, ctx)
    }
    fn thaw(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.park(WriterEvent::Thaw, ctx)
    }
    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        Ok(())
    }
}

impl Parker {
    fn park(&self, event: WriterEvent, _: &EventContext) -> Result<(), WriterFailure> {
        if event != self.at {
            return Ok(());
        }
        // At freeze, the session writer answers once its lock is held: wait for its file; and
        // for the exec writer, called in parallel, to have run `at`.
        let prefix = format!("{event} ");
        while (event == WriterEvent::Freeze
            && std::fs::read_to_string(&self.ready).map_or(true, |s| s.trim() != "held"))
            || !std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with(&prefix))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("parked");
        loop {
            std::thread::park();
        }
    }
}

/// The session writer: takes a lock at freeze (in a child holding it), releases it at thaw,
/// and ends its group at the end of its input.
fn session_writer(dir: &Path) -> RegisteredWriter {
    let body = format!(
        "while read -r ev; do\n\
           case \"$ev\" in\n\
           freeze) flock -o {lock} sh -c 'echo held > {ready}; exec sleep 60' & holder=$!\n\
             while [ ! -s {ready} ]; do sleep 0.01; done ;;\n\
           thaw) kill $holder; rm -f {ready} ;;\n\
           esac\n\
           echo ok\n\
         done\n\
         kill 0\n",
        lock = dir.join("lock").display(),
        ready = dir.join("ready").display(),
    );
    RegisteredWriter::session("db-session", script(dir, "session.sh", &body))
}

/// The requester process of `a_requester_killed_mid_set_*`: opens the pool, adds a session
/// writer and a writer parking at UMBRA_TEST_PARK, and makes a set of "db" and "log".
#[test]
#[ignore = "the requester process of the a_requester_killed_* tests, run by them"]
fn pool_requester_child() {
    let dir = PathBuf::from(std::env::var_os("UMBRA_TEST_DIR").expect("run by its parent test"));
    let at: WriterEvent = std::env::var("UMBRA_TEST_PARK").unwrap().parse().unwrap();
    let a = Array::open(dir.join("pool")).unwrap();
    let pc = PoolCoordinator::open_with(
        a,
        PoolOptions {
            timeouts: Timeouts {
                freeze_window: Duration::from_secs(600),
                hold_window: Duration::from_secs(60),
                event: Duration::from_secs(600),
            },
            ..PoolOptions::default()
        },
    )
    .unwrap();
    pc.add_exec_writer(&session_writer(&dir)).unwrap();
    pc.add_writer(Arc::new(Parker {
        at,
        ready: dir.join("ready"),
        log: dir.join("exec.log"),
    }))
    .unwrap();
    let mut b = pc.backup(Context::APP_ROLLBACK, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    b.start_set().unwrap();
    b.add_volume("db").unwrap();
    b.add_volume("log").unwrap();
    b.prepare_for_backup().unwrap();
    b.do_snapshot_set().unwrap();
    unreachable!("the parker never returns");
}

/// Kills (SIGKILL) a requester process parked at `at` mid-set, then checks: the session
/// writer's lock is released with no further command, the record stays, and the next open
/// sends abort to the registered exec writer, deletes the set's shadows, clears the record and
/// says so; the next set starts at once.
fn killed_mid_set(at: WriterEvent) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool");
    let log = dir.path().join("exec.log");
    {
        let a = pool(&path);
        let pc = PoolCoordinator::open(a).unwrap();
        pc.register_writer(&logging_writer(dir.path(), "fs", &log))
            .unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pool_requester_child",
            "--ignored",
            "--nocapture",
        ])
        .env("UMBRA_TEST_DIR", dir.path())
        .env("UMBRA_TEST_PARK", at.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let parked = out.lines().any(|l| l.unwrap().trim() == "parked");
    assert!(parked, "the requester parked at {at}");
    let lock = dir.path().join("lock");
    let lock_held = || {
        !Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    };
    if at == WriterEvent::Freeze {
        assert!(
            lock_held(),
            "the session writer holds its lock while frozen"
        );
    }
    child.kill().unwrap(); // SIGKILL: no cleanup in the requester
    child.wait().unwrap();
    let freed = Command::new("flock")
        .args(["-w", "10"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success();
    assert!(freed, "the lock is released with no further command");

    let a = Array::open(&path).unwrap();
    let rec = read_record(&a)
        .unwrap()
        .expect("the killed requester's record");
    assert_eq!(rec.luns, ["db", "log"]);
    assert_eq!(rec.exec_writers.len(), 1, "the registered exec writer only");
    let shadows_left = HardwareProvider::new(a.clone())
        .shadows()
        .unwrap()
        .iter()
        .filter(|s| s.set_id == rec.set_id)
        .count();
    if at == WriterEvent::Thaw {
        assert_eq!(
            shadows_left, 2,
            "killed after its commit: the shadows exist"
        );
    } else {
        assert_eq!(shadows_left, 0);
    }
    let pc = PoolCoordinator::open(a.clone()).unwrap();
    let r = pc.recovered().expect("the open cleaned up").clone();
    assert_eq!(r.record, rec);
    assert_eq!(r.aborted.len(), 1);
    assert_eq!(r.aborted[0].writer, "fs");
    assert_eq!(r.aborted[0].failure, None);
    assert_eq!(r.thawed, ["db", "log"]);
    assert_eq!(r.shadows_deleted.len(), shadows_left);
    assert!(pc.shadows().unwrap().is_empty());
    assert!(read_record(&a).unwrap().is_none());
    let lines = log_lines(&log);
    let (last, set, luns) = lines.last().unwrap().clone();
    assert_eq!(last, WriterEvent::Abort);
    assert_eq!((set, luns), (rec.set_id.to_string(), "db;log".to_owned()));
    let mut want = vec![
        WriterEvent::Identify,
        WriterEvent::PrepareBackup,
        WriterEvent::PrepareSnapshot,
        WriterEvent::Freeze,
    ];
    if at == WriterEvent::Thaw {
        want.push(WriterEvent::Thaw);
    }
    want.push(WriterEvent::Abort);
    assert_eq!(events_of(&log), want);
    // A second open finds nothing to do; the next set starts at once.
    assert!(PoolCoordinator::open(a.clone())
        .unwrap()
        .recovered()
        .is_none());
    one_set(&pc, &["db", "log"]).unwrap();
}

#[test]
fn a_requester_killed_mid_freeze_is_cleaned_up_at_the_next_open() {
    killed_mid_set(WriterEvent::Freeze);
}

#[test]
fn a_requester_killed_after_its_commit_is_cleaned_up_at_the_next_open() {
    killed_mid_set(WriterEvent::Thaw);
}

/// A record or a registered writer that does not read is Corrupt at the open, naming the key,
/// and the open changes nothing.
#[test]
fn damaged_pool_metadata_is_reported_at_the_open() {
    for (key, value) in [
        (vss_core::pool::SET_RECORD_KEY, "{\"set_id\":1}"),
        (
            vss_core::pool::SET_RECORD_KEY,
            "{\"format\":\"umbra-set-in-progress\",\"version\":2,\"set_id\":\
             \"00000000-0000-0000-0000-000000000001\",\"pid\":1,\"start_time\":0,\"luns\":[],\
             \"exec_writers\":[]}",
        ),
        ("vss:writer:fs", "{\"command\":\"x\"}"),
    ] {
        let a = Array::in_memory();
        a.set_pool_metadata(key, Some(value)).unwrap();
        let before = a.pool_metadata();
        let e = PoolCoordinator::open(a.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{value}: {e}");
        assert!(e.message().contains(key), "{e}");
        assert_eq!(a.pool_metadata(), before);
    }
}

/// A record left by a process that is gone (here: a pid no process has, as after a reboot) is
/// cleaned up when a set starts on a coordinator opened before it appeared.
#[test]
fn a_dead_requesters_record_found_at_start_set_is_cleaned_up_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("exec.log");
    let a = Array::in_memory();
    a.create_lun("db", MB, &mask(HOST_A)).unwrap();
    let pc = PoolCoordinator::open(a.clone()).unwrap();
    let dead = Uuid::new_v4();
    let w = logging_writer(dir.path(), "fs", &log);
    let rec = SetRecord {
        format: "umbra-set-in-progress".into(),
        version: 1,
        set_id: dead,
        // Above the kernel's pid_max (at most 2^22): no process has it.
        pid: 1 << 23,
        start_time: 1,
        luns: vec!["db".into()],
        exec_writers: vec![vss_core::pool::RecordedWriter {
            name: w.name.clone(),
            command: w.command.clone(),
        }],
    };
    a.set_pool_metadata(
        vss_core::pool::SET_RECORD_KEY,
        Some(&serde_json::to_string(&rec).unwrap()),
    )
    .unwrap();
    one_set(&pc, &["db"]).unwrap();
    assert_eq!(
        log_lines(&log),
        [(WriterEvent::Abort, dead.to_string(), "db".to_owned())]
    );
    assert!(read_record(&a).unwrap().is_none());
}

/// The pool software provider: a commit past the hold window leaves no shadow and is
/// HoldWritesTimeout; only a persistent shadow reverts; the hardware provider's shadows resync
/// instead of reverting.
#[test]
fn pool_software_hold_window_and_revert_refusals() {
    let a = Array::in_memory();
    a.create_lun("db", MB, &mask(HOST_A)).unwrap();
    let pc = PoolCoordinator::open_with(
        a.clone(),
        PoolOptions {
            provider: PoolProvider::Software,
            timeouts: Timeouts {
                hold_window: Duration::ZERO,
                ..Timeouts::default()
            },
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let e = one_set(&pc, &["db"]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HoldWritesTimeout, "{e}");
    assert!(a.engine_shadows("db").unwrap().is_empty());
    assert!(pc.set_record().unwrap().is_none());

    let sw = PoolCoordinator::open_with(a.clone(), options(PoolProvider::Software)).unwrap();
    let mut b = sw.backup(
        Context::FILE_SHARE_BACKUP | vss_core::Attributes::NO_AUTO_RELEASE,
        BackupType::Full,
    );
    b.gather_writer_metadata().unwrap();
    b.start_set().unwrap();
    b.add_volume("db").unwrap();
    b.prepare_for_backup().unwrap();
    let volatile = b.do_snapshot_set().unwrap();
    b.backup_shutdown().unwrap();
    let e = sw.revert(volatile[0].shadow_id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedContext, "{e}");
    let hw = PoolCoordinator::open(a.clone()).unwrap();
    one_set(&hw, &["db"]).unwrap();
    let hw_shadow = hw
        .shadows()
        .unwrap()
        .into_iter()
        .find(|s| s.provider_id == HardwareProvider::ID)
        .unwrap();
    let e = hw.revert(hw_shadow.shadow_id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(
        hw.revert(Uuid::new_v4()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Two pools of one process, each with LUNs "db" and "log": sets in flight on both at once do
/// not block each other (a LUN's claim is keyed by its pool), with either provider; while on one
/// pool a second coordinator's set of the same LUN is refused.
#[test]
fn pools_with_luns_of_the_same_name_do_not_block_each_other() {
    let dir = tempfile::tempdir().unwrap();
    for provider in [PoolProvider::Hardware, PoolProvider::Software] {
        let a = pool(&dir.path().join(format!("one-{provider:?}")));
        let b = pool(&dir.path().join(format!("two-{provider:?}")));
        let pa = PoolCoordinator::open_with(a.clone(), options(provider)).unwrap();
        let pb = PoolCoordinator::open_with(b.clone(), options(provider)).unwrap();
        let ctx = Context::APP_ROLLBACK | vss_core::Attributes::NO_WRITERS;
        let mut sa = pa.backup(ctx, BackupType::Full);
        sa.gather_writer_metadata().unwrap();
        sa.start_set().unwrap();
        sa.add_volume("db").unwrap();
        let mut sb = pb.backup(ctx, BackupType::Full);
        sb.gather_writer_metadata().unwrap();
        sb.start_set().unwrap();
        sb.add_volume("db").unwrap();
        sb.prepare_for_backup().unwrap();
        sb.do_snapshot_set().unwrap();
        sa.prepare_for_backup().unwrap();
        sa.do_snapshot_set().unwrap();
        assert_eq!(pa.shadows().unwrap().len(), 1, "{provider:?}");
        assert_eq!(pb.shadows().unwrap().len(), 1, "{provider:?}");
        sa.backup_shutdown().unwrap();
        sb.backup_shutdown().unwrap();

        // Two in-memory arrays alike.
        let (m1, m2) = (Array::in_memory(), Array::in_memory());
        for m in [&m1, &m2] {
            m.create_lun("db", MB, &mask(HOST_A)).unwrap();
        }
        let (c1, c2) = (
            PoolCoordinator::open_with(m1, options(provider)).unwrap(),
            PoolCoordinator::open_with(m2, options(provider)).unwrap(),
        );
        let mut s1 = c1.backup(ctx, BackupType::Full);
        s1.gather_writer_metadata().unwrap();
        s1.start_set().unwrap();
        s1.add_volume("db").unwrap();
        let mut s2 = c2.backup(ctx, BackupType::Full);
        s2.gather_writer_metadata().unwrap();
        s2.start_set().unwrap();
        s2.add_volume("db").unwrap();
        drop(s1);
        drop(s2);
    }
    // The same LUN through two coordinators of one in-memory array: refused while in flight.
    let m = Array::in_memory();
    m.create_lun("db", MB, &mask(HOST_A)).unwrap();
    let hw: Arc<dyn Provider> = Arc::new(HardwareProvider::new(m.clone()));
    let hw2: Arc<dyn Provider> = Arc::new(HardwareProvider::new(m));
    let (c1, c2) = (
        vss_core::Coordinator::new([hw]),
        vss_core::Coordinator::new([hw2]),
    );
    let mut s1 = c1.backup(Context::BACKUP, BackupType::Full);
    s1.gather_writer_metadata().unwrap();
    s1.start_set().unwrap();
    s1.add_volume("db").unwrap();
    let mut s2 = c2.backup(Context::BACKUP, BackupType::Full);
    s2.gather_writer_metadata().unwrap();
    s2.start_set().unwrap();
    let e = s2.add_volume("db").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SnapshotSetInProgress, "{e}");
    drop(s1);
    s2.add_volume("db").unwrap();
}

/// A writer registered through one pool coordinator after another opened is in the other's
/// next session (and its set record); one unregistered leaves it; the requester's own writers
/// stay.
#[test]
fn writers_registered_after_a_coordinator_opened_join_its_next_session() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(&dir.path().join("pool"));
    let early = PoolCoordinator::open(a.clone()).unwrap();
    early.add_writer(Recorder::new("own")).unwrap();
    let admin = PoolCoordinator::open(a.clone()).unwrap();
    let log = dir.path().join("late.log");
    admin
        .register_writer(&logging_writer(dir.path(), "late", &log))
        .unwrap();
    assert_eq!(early.writer_names(), ["own"], "not read before a session");
    let mut b = early.backup(Context::APP_ROLLBACK, BackupType::Full);
    let docs = b.gather_writer_metadata().unwrap();
    let mut names: Vec<_> = docs.iter().map(|d| d.writer.clone()).collect();
    names.sort();
    assert_eq!(names, ["late", "own"]);
    b.start_set().unwrap();
    let rec = early.set_record().unwrap().unwrap();
    assert_eq!(
        rec.exec_writers
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["late"],
        "named in the set record, so it gets abort if this requester dies"
    );
    b.add_volume("db").unwrap();
    b.prepare_for_backup().unwrap();
    b.do_snapshot_set().unwrap();
    b.backup_complete().unwrap();
    b.backup_shutdown().unwrap();
    assert_eq!(events_of(&log), BACKUP);
    drop(b);

    admin.unregister_writer("late").unwrap();
    let mut b = early.backup(Context::APP_ROLLBACK, BackupType::Full);
    let docs = b.gather_writer_metadata().unwrap();
    assert_eq!(
        docs.iter().map(|d| d.writer.as_str()).collect::<Vec<_>>(),
        ["own"]
    );
    assert_eq!(early.writer_names(), ["own"]);
}

/// A writer added with `add_writer_for` (its events carried out by another process's writer)
/// is named by its spec in the set-in-progress record, as an exec writer of this process is; a
/// writer not named as its spec is refused and changes nothing.
#[test]
fn a_writer_added_for_a_spec_is_named_in_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(&dir.path().join("pool"));
    let pc = PoolCoordinator::open(a).unwrap();
    let spec = RegisteredWriter::exec("remote", "echo \"$UMBRA_EVENT\" >> /dev/null");
    let e = pc
        .add_writer_for(&spec, Recorder::new("other"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(pc.writer_names().is_empty());
    let rec = Recorder::new("remote");
    pc.add_writer_for(&spec, rec.clone()).unwrap();
    let session = RegisteredWriter::session("remote-session", "cat >/dev/null");
    pc.add_writer_for(&session, Recorder::new("remote-session"))
        .unwrap();
    let mut b = pc.backup(Context::APP_ROLLBACK, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    let set = b.start_set().unwrap();
    b.add_volume("db").unwrap();
    let r = pc
        .set_record()
        .unwrap()
        .expect("a record while the set is made");
    assert_eq!(r.set_id, set);
    assert_eq!(
        r.exec_writers,
        [vss_core::pool::RecordedWriter {
            name: "remote".into(),
            command: spec.command.clone(),
        }],
        "the exec spec is recorded, the session one is not"
    );
    b.prepare_for_backup().unwrap();
    b.abort().unwrap();
    assert!(pc.set_record().unwrap().is_none());
    assert_eq!(rec.events().last(), Some(&WriterEvent::Abort));
}

/// Why: a volatile LUN's engine snapshots live only while the pool is open, so a software
/// shadow of it that outlives its session (persistent, client accessible, or kept after the
/// session) would be listed, then silently gone at the next open. Each such context is refused
/// with `BadState` naming the LUN when the LUN is added, nothing made (a set mixing a
/// persistent and a volatile LUN too, whichever comes first), and the provider's begin-prepare
/// refuses it as well; a volatile context (auto-released) shadows it and releases it at the
/// session's end.
#[test]
fn a_volatile_lun_takes_only_shadows_released_with_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(&dir.path().join("pool"));
    a.create_lun_with(
        "v",
        MB,
        &mask(HOST_A),
        vds_core::LunOptions { volatile: true },
    )
    .unwrap();
    let sw = PoolCoordinator::open_with(a.clone(), options(PoolProvider::Software)).unwrap();
    let kept = [
        Context::APP_ROLLBACK,
        Context::NAS_ROLLBACK,
        Context::CLIENT_ACCESSIBLE,
        Context::CLIENT_ACCESSIBLE_WRITERS,
        Context::BACKUP | vss_core::Attributes::NO_AUTO_RELEASE,
        Context::FILE_SHARE_BACKUP | vss_core::Attributes::NO_AUTO_RELEASE,
        Context::BACKUP | vss_core::Attributes::PERSISTENT,
    ];
    for context in kept {
        for order in [["v", "db"], ["db", "v"]] {
            let mut b = sw.backup(context, BackupType::Full);
            b.gather_writer_metadata().unwrap();
            b.start_set().unwrap();
            let mut refused = None;
            for lun in order {
                if let Err(e) = b.add_volume(lun) {
                    refused = Some((lun, e));
                    break;
                }
            }
            let (lun, e) = refused.unwrap_or_else(|| panic!("{context}: {order:?} was accepted"));
            assert_eq!(lun, "v", "{context}: {e}");
            assert_eq!(e.kind(), ErrorKind::BadState, "{context}: {e}");
            assert!(e.message().contains("LUN \"v\" is volatile"), "{e}");
            b.abort().unwrap();
            for lun in ["v", "db", "log"] {
                assert!(
                    a.engine_shadows(lun).unwrap().is_empty(),
                    "{context}: {lun}"
                );
            }
            assert!(sw.shadows().unwrap().is_empty(), "{context}");
            assert!(sw.set_record().unwrap().is_none(), "{context}");
        }
    }

    // The provider refuses at begin-prepare too (a caller that skips the support check).
    let p = vss_core::pool::ArraySoftwareProvider::new(a.clone());
    let req = |context: Context| vss_core::ShadowRequest {
        set_id: Uuid::new_v4(),
        shadow_id: Uuid::new_v4(),
        volume: "v".into(),
        context,
        attributes: context.attributes(),
        count_in_set: 1,
    };
    let e = p.begin_prepare(&req(Context::APP_ROLLBACK)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    let ok = req(Context::BACKUP);
    p.begin_prepare(&ok).unwrap();
    p.abort(ok.set_id).unwrap();

    // A volatile context shadows both, and its shadows go with the session.
    for context in [Context::BACKUP, Context::FILE_SHARE_BACKUP] {
        let mut b = sw.backup(context, BackupType::Full);
        b.gather_writer_metadata().unwrap();
        b.start_set().unwrap();
        b.add_volume("v").unwrap();
        b.add_volume("db").unwrap();
        b.prepare_for_backup().unwrap();
        let made = b.do_snapshot_set().unwrap();
        assert_eq!(made.len(), 2, "{context}");
        assert_eq!(a.engine_shadows("v").unwrap().len(), 1, "{context}");
        assert_eq!(sw.shadows().unwrap().len(), 2, "{context}");
        b.backup_shutdown().unwrap();
        assert!(sw.shadows().unwrap().is_empty(), "{context}");
        assert!(a.engine_shadows("v").unwrap().is_empty(), "{context}");
    }
}
