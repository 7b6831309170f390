//! Failures injected into the pool's store (a file system that fails an append, an fsync, a
//! rename or a truncation on demand): after any failed change, memory and disk are as before and
//! the caller hears the error; a checkpoint that fails is not the change's failure.

use std::path::Path;

use super::store::Fault;
use super::Array;
use crate::error::ErrorKind;
use crate::initiator::InitiatorId;
use crate::mask::MaskSpec;

const KB: u64 = 1 << 10;

fn host() -> InitiatorId {
    InitiatorId::parse("iqn.2024-01.org.example:h1").unwrap()
}

/// Sets a fault at `point`, after letting `pass` calls through (none: clears every fault).
fn fault(a: &Array, point: Option<(Fault, u32)>) {
    let mut core = a.inner.core.write();
    let store = core.store.as_mut().unwrap();
    store.faults.clear();
    if let Some((p, n)) = point {
        store.faults.insert(p, n);
    }
}

fn names(a: &Array) -> Vec<String> {
    a.luns().into_iter().map(|l| l.name).collect()
}

fn lun_dirs(pool: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(pool.join("luns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Why: `commit` applied a change in memory before the log append; when the append failed,
/// `create_lun` removed the volume but the model kept the LUN, and the next read of it panicked.
#[test]
fn a_failed_append_leaves_memory_and_disk_as_before() {
    for point in [Fault::LogWrite, Fault::LogSync] {
        // `pass` 0: the intent's append fails; 1: the LUN record's, after the intent.
        for pass in [0, 1] {
            let dir = tempfile::tempdir().unwrap();
            let pool = dir.path().join("pool");
            let a = Array::open(&pool).unwrap();
            a.create_lun("a", 64 * KB, &MaskSpec::All(crate::Access::ReadWrite))
                .unwrap();
            let log_before = std::fs::read(pool.join("pool.log")).unwrap();
            fault(&a, Some((point, pass)));
            let e = a
                .create_lun("b", 64 * KB, &MaskSpec::All(crate::Access::ReadWrite))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io, "{point:?}/{pass}: {e}");
            assert_eq!(names(&a), ["a"], "{point:?}/{pass}");
            assert_eq!(
                a.read_at("b", &host(), &mut [0u8; 16], 0)
                    .unwrap_err()
                    .kind(),
                ErrorKind::NotFound
            );
            assert_eq!(
                lun_dirs(&pool),
                ["1"],
                "{point:?}/{pass}: the volume is gone"
            );
            let log = std::fs::read(pool.join("pool.log")).unwrap();
            if pass == 0 {
                assert_eq!(log, log_before, "{point:?}: the log is as it was");
            }
            // A mask change that fails changes nothing either.
            fault(&a, Some((point, 0)));
            let log_before = std::fs::read(pool.join("pool.log")).unwrap();
            assert!(a.set_mask("a", &MaskSpec::None).is_err());
            assert_eq!(a.get_mask("a").unwrap(), "*");
            assert_eq!(std::fs::read(pool.join("pool.log")).unwrap(), log_before);
            // The store goes on once the file system does.
            fault(&a, None);
            a.create_lun("c", 64 * KB, &MaskSpec::None).unwrap();
            a.write_at("a", &host(), b"kept", 0).unwrap();
            drop(a);
            let a = Array::open(&pool).unwrap();
            assert_eq!(names(&a), ["a", "c"], "{point:?}/{pass}");
            assert_eq!(a.get_mask("a").unwrap(), "*");
            assert!(a.orphans().is_empty(), "{:?}", a.orphans());
            assert_eq!(lun_dirs(&pool).len(), 2);
        }
    }
}

/// An append whose record cannot be cut back leaves a log the store cannot vouch for: every
/// later change is refused until the pool is reopened, and the reopened pool holds a prefix.
#[test]
fn an_append_that_cannot_be_cut_back_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let a = Array::open(&pool).unwrap();
    a.create_lun("a", 64 * KB, &MaskSpec::None).unwrap();
    {
        let mut core = a.inner.core.write();
        let faults = &mut core.store.as_mut().unwrap().faults;
        faults.insert(Fault::LogSync, 0);
        faults.insert(Fault::LogTruncate, 0);
    }
    assert!(a
        .set_mask("a", &MaskSpec::All(crate::Access::ReadOnly))
        .is_err());
    fault(&a, None);
    let e = a.set_mask("a", &MaskSpec::None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("reopen the pool"), "{e}");
    assert_eq!(a.get_mask("a").unwrap(), "");
    drop(a);
    let a = Array::open(&pool).unwrap();
    // The write reached the file before its fsync failed: either state is a prefix.
    assert!(["", "*=ro"].contains(&a.get_mask("a").unwrap().as_str()));
}

/// Why: when the checkpoint failed after a durable append, `create_lun` reported the failure and
/// removed the LUN's directory while its record survived, and the next open failed.
#[test]
fn a_failed_checkpoint_is_not_the_changes_failure_and_is_retried() {
    let ro = MaskSpec::All(crate::Access::ReadOnly);
    let rw = MaskSpec::All(crate::Access::ReadWrite);
    for point in [Fault::StateWrite, Fault::StateRename, Fault::LogTruncate] {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let a = Array::open(&pool).unwrap();
        a.create_lun("l0", 64 * KB, &MaskSpec::None).unwrap();
        // A checkpoint is due at the next change.
        a.inner
            .core
            .write()
            .store
            .as_mut()
            .unwrap()
            .checkpoint_every = 1;
        fault(&a, Some((point, 0)));
        a.set_mask("l0", &rw)
            .unwrap_or_else(|e| panic!("{point:?}: the change is durable: {e}"));
        assert_eq!(a.get_mask("l0").unwrap(), "*");
        let state =
            String::from_utf8_lossy(&std::fs::read(pool.join("pool.state")).unwrap()).into_owned();
        if point == Fault::LogTruncate {
            // The checkpoint is installed, the log not cut: it is cut before the next append,
            // which fails (changing nothing) while the truncation does.
            assert!(state.contains(r#""mask": "*""#), "{point:?}: {state}");
            assert!(a.set_mask("l0", &ro).is_err());
            assert_eq!(a.get_mask("l0").unwrap(), "*");
        } else {
            assert!(!state.contains(r#""mask": "*""#), "{point:?}: {state}");
        }
        fault(&a, None);
        a.set_mask("l0", &ro).unwrap();
        let state =
            String::from_utf8_lossy(&std::fs::read(pool.join("pool.state")).unwrap()).into_owned();
        assert!(
            state.contains(r#""mask": "*=ro""#),
            "{point:?}: retried: {state}"
        );
        assert_eq!(
            std::fs::metadata(pool.join("pool.log")).unwrap().len(),
            16,
            "{point:?}: the log was emptied down to its header"
        );
        drop(a);
        let a = Array::open(&pool).unwrap();
        assert_eq!(names(&a), ["l0"], "{point:?}");
        assert_eq!(a.get_mask("l0").unwrap(), "*=ro");
    }
}

/// Why (an outside crash replay): a crash inside `extend` left the volume grown and the pool at
/// the old size, after which every later extend was refused. The intent is durable before the
/// volume grows; an open adopts the size the volume has.
#[test]
fn an_extend_whose_record_failed_is_adopted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let a = Array::open(&pool).unwrap();
    a.create_lun("e", 64 * KB, &MaskSpec::All(crate::Access::ReadWrite))
        .unwrap();
    // The intent's append passes, the record's fails (after the volume grew).
    fault(&a, Some((Fault::LogWrite, 1)));
    assert!(a.extend_lun("e", 128 * KB).is_err());
    assert_eq!(a.lun("e").unwrap().size, 64 * KB);
    drop(a);
    let a = Array::open(&pool).unwrap();
    assert_eq!(
        a.lun("e").unwrap().size,
        128 * KB,
        "the grown volume's size is adopted"
    );
    a.write_at("e", &host(), b"end", 128 * KB - 3).unwrap();
    a.extend_lun("e", 192 * KB).unwrap();
    drop(a);
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.lun("e").unwrap().size, 192 * KB);
    let mut buf = [0u8; 3];
    a.read_at("e", &host(), &mut buf, 128 * KB - 3).unwrap();
    assert_eq!(&buf, b"end");
}

/// A snapshot LUN whose record fails after its intent: the engine snapshot it stood on and its
/// directory are removed, at once or (when that fails too) by the next open.
#[test]
fn a_failed_snapshot_lun_leaves_no_snapshot_behind() {
    for pass_done in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let a = Array::open(&pool).unwrap();
        a.create_lun("src", 64 * KB, &MaskSpec::None).unwrap();
        fault(&a, Some((Fault::LogWrite, 1)));
        assert!(a.snapshot_lun("src", "snap").is_err());
        if pass_done {
            fault(&a, None);
        }
        assert_eq!(names(&a), ["src"]);
        assert!(a.volume_of("src").unwrap().snapshots().is_empty());
        assert_eq!(lun_dirs(&pool), ["1"]);
        drop(a);
        let a = Array::open(&pool).unwrap();
        assert_eq!(names(&a), ["src"]);
        assert!(a.volume_of("src").unwrap().snapshots().is_empty());
        assert!(a.orphans().is_empty());
        a.snapshot_lun("src", "snap").unwrap();
    }
}
