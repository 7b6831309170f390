//! The shadow registry on real software-provider volumes: persistent shadows listed after the
//! volumes are reopened, volatile ones gone, queries and deletion, and the per-volume limit.
//!
//! Nothing in this test binary starts a process: a process forked while a file volume is open
//! holds its lock until it execs, and would make a reopen here fail as busy.

mod common;

use common::*;
use vss_core::{Attributes, BackupType, Context, Coordinator, ErrorKind, ShadowSelector};

/// At most 64 shadows per volume, then MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED with nothing of the
/// set left and the volume writable; deleting the oldest makes room.
#[test]
fn the_64_per_volume_limit() {
    let vols = mem_volumes(&["a"]);
    let (sw, c) = coordinator(&vols, short());
    let make = || {
        let mut b = c.backup(Context::NAS_ROLLBACK, BackupType::Full);
        b.gather_writer_metadata()?;
        b.start_set()?;
        b.add_volume("a")?;
        b.prepare_for_backup()?;
        let s = b.do_snapshot_set()?;
        b.backup_shutdown()?;
        Ok::<_, vss_core::Error>(s)
    };
    let first = make().unwrap();
    for _ in 1..64 {
        make().unwrap();
    }
    assert_eq!(c.shadows().unwrap().len(), 64);
    let e = make().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MaxSnapshotsReached, "{e}");
    assert_eq!(c.shadows().unwrap().len(), 64);
    assert!(writable(&sw.volume("a").unwrap()));
    assert_eq!(
        c.delete_shadows(&ShadowSelector::Oldest("a".into()))
            .unwrap(),
        1
    );
    assert_eq!(
        c.shadow(first[0].shadow_id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    make().unwrap();
    assert_eq!(c.delete_shadows(&ShadowSelector::All).unwrap(), 64);
}

/// Persistent shadows are listed after the volumes are reopened (their properties live in the
/// engine's snapshot metadata); volatile ones are gone.
#[test]
fn persistent_shadows_are_listed_after_reopening_the_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let backup = |c: &Coordinator, ctx: Context| {
        let mut b = c.backup(ctx, BackupType::Full);
        b.gather_writer_metadata().unwrap();
        b.start_set().unwrap();
        b.add_volume("a").unwrap();
        b.add_volume("b").unwrap();
        b.prepare_for_backup().unwrap();
        let s = b.do_snapshot_set().unwrap();
        b.backup_shutdown().unwrap();
        s
    };
    let (kept, volatile) = {
        let vols = file_volumes(dir.path(), &["a", "b"]);
        let (_, c) = coordinator(&vols, short());
        let kept = backup(&c, Context::APP_ROLLBACK);
        let volatile = backup(&c, Context::BACKUP | Attributes::NO_AUTO_RELEASE);
        assert_eq!(c.shadows().unwrap().len(), 4);
        (kept, volatile)
    };
    let vols = file_volumes(dir.path(), &["a", "b"]);
    let (_, c) = coordinator(&vols, short());
    let listed = c.shadows().unwrap();
    assert_eq!(listed, kept);
    for v in &volatile {
        assert_eq!(
            c.shadow(v.shadow_id).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
    assert_eq!(
        c.query_shadows(&ShadowSelector::Volume("b".into()))
            .unwrap(),
        [kept[1].clone()]
    );
    assert_eq!(
        c.delete_shadows(&ShadowSelector::Set(kept[0].set_id))
            .unwrap(),
        2
    );
    assert_eq!(
        c.delete_shadows(&ShadowSelector::Set(kept[0].set_id))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}
