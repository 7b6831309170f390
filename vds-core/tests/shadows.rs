//! What the shadow-copy protocol still needs from the array: a snapshot set deleted in one
//! record, a LUN's name staying with its data through the fast-recovery swap, engine-level
//! shadows of a LUN, per-LUN I/O statistics and metadata notifications.

mod common;
use common::{copy_dir, frame_ends};

use std::collections::BTreeMap;

use vds_core::{Array, ErrorKind, InitiatorId, LunHandle, MaskSpec, Notification};

const MB: u64 = 1 << 20;
const BS: usize = 4096;
const W1: &str = "iqn.2024-01.org.example:writer";
const R1: &str = "iqn.2024-01.org.example:reader";

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

fn pattern(b: u8) -> Vec<u8> {
    vec![b; BS]
}

fn names(a: &Array) -> Vec<String> {
    a.luns().into_iter().map(|l| l.name).collect()
}

/// Creates LUNs `luns` of 1 MiB, writable by `W1` and readable by `R1`, each holding its pattern
/// in block 0, flushed.
fn populate(a: &Array, luns: &[(&str, u8)]) {
    for &(n, b) in luns {
        a.create_lun(n, MB, &mask(&format!("{W1};{R1}=ro")))
            .unwrap();
        a.write_at(n, &id(W1), &pattern(b), 0).unwrap();
        let number = a.access(n, &id(W1)).unwrap().unwrap().number;
        a.open_lun(&id(W1), number).unwrap().flush().unwrap();
    }
}

fn read(a: &Array, name: &str, who: &str) -> Vec<u8> {
    let mut buf = vec![0u8; BS];
    a.read_at(name, &id(who), &mut buf, 0).unwrap();
    buf
}

// ---- 1. a snapshot set deleted in one record ----

/// A set one of whose shadow LUNs has a snapshot LUN of its own is refused whole: no shadow LUN
/// of it is deleted (not the first ones before the refusal either).
#[test]
fn deleting_a_set_is_all_or_none() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1), ("b", 2)]);
    let set = a
        .snapshot_set(&[("a", "a-sh"), ("b", "b-sh")], &BTreeMap::new())
        .unwrap();
    // The later shadow LUN has a dependant: a delete LUN by LUN would have deleted the first.
    a.snapshot_lun("b-sh", "b-sh-copy").unwrap();
    let e = a.delete_snapshot_set(&set).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("b-sh-copy"), "{e}");
    assert_eq!(a.snapshot_set_luns(&set), ["a-sh", "b-sh"]);
    a.delete_lun("b-sh-copy").unwrap();
    assert_eq!(a.delete_snapshot_set(&set).unwrap(), ["a-sh", "b-sh"]);
    assert_eq!(names(&a), ["a", "b"]);
    assert_eq!(a.lun_stats("a").unwrap().snapshots, 0);
    assert_eq!(a.lun_stats("b").unwrap().snapshots, 0);
}

/// The pool log cut at every frame boundary a set's delete wrote opens with every shadow LUN of
/// the set or none, never some: the delete is one record.
#[test]
fn deleting_a_set_is_crash_atomic_at_every_frame_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let pre = dir.path().join("pre");
    let before_len;
    {
        let a = Array::open(&pool).unwrap();
        populate(&a, &[("a", 1), ("b", 2), ("c", 3)]);
        let set = a
            .snapshot_set(
                &[("a", "a-sh"), ("b", "b-sh"), ("c", "c-sh")],
                &BTreeMap::new(),
            )
            .unwrap();
        before_len = std::fs::metadata(pool.join("pool.log")).unwrap().len() as usize;
        copy_dir(&pool, &pre);
        a.delete_snapshot_set(&set).unwrap();
    }
    let log = std::fs::read(pool.join("pool.log")).unwrap();
    let cuts: Vec<usize> = frame_ends(&log)
        .into_iter()
        .map(|(e, _)| e)
        .filter(|&e| e >= before_len)
        .collect();
    assert_eq!(*cuts.last().unwrap(), log.len());
    let (mut old, mut new) = (0, 0);
    for (i, &cut) in cuts.iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pool");
        // Before the delete's record is durable nothing was removed; after it, everything may be.
        copy_dir(if i == 0 { &pre } else { &pool }, &p);
        std::fs::write(p.join("pool.log"), &log[..cut]).unwrap();
        let a = Array::open(&p).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert!(a.orphans().is_empty(), "cut at {cut}");
        let shadows = names(&a).iter().filter(|n| n.ends_with("-sh")).count();
        match shadows {
            0 => {
                new += 1;
                for n in ["a", "b", "c"] {
                    assert_eq!(a.lun_stats(n).unwrap().snapshots, 0, "cut at {cut}");
                }
                assert_eq!(std::fs::read_dir(p.join("luns")).unwrap().count(), 3);
            }
            3 => old += 1,
            k => panic!("cut at {cut}: {k} of the set's 3 shadow LUNs survive"),
        }
        for (n, b) in [("a", 1), ("b", 2), ("c", 3)] {
            assert_eq!(read(&a, n, R1), pattern(b), "cut at {cut}");
        }
    }
    assert!(old >= 1 && new >= 2, "old {old}, new {new}");
}

// ---- 2. a LUN's name stays with its data through the swap ----

fn handle(a: &Array, lun: &str, who: &str) -> LunHandle {
    let number = a.access(lun, &id(who)).unwrap().unwrap().number;
    a.open_lun(&id(who), number).unwrap()
}

/// After a swap the damaged LUN keeps its name and data, masked to no one; the replacement keeps
/// its name and takes over the damaged LUN's host numbers and default number; a host reopening
/// its number reaches the replacement; neither LUN's data moved (0 bytes written).
#[test]
fn after_a_swap_each_name_stays_with_its_data_and_the_numbers_move() {
    let a = Array::in_memory();
    populate(&a, &[("damaged", 1)]);
    a.set_host_number("damaged", &id(W1), 5).unwrap();
    a.create_lun("replacement", MB, &MaskSpec::None).unwrap();
    a.set_mask("replacement", &mask(W1)).unwrap();
    handle(&a, "replacement", W1)
        .write_at(&pattern(2), 0)
        .unwrap();
    a.set_mask("replacement", &MaskSpec::None).unwrap();
    let default = a.lun("damaged").unwrap().number;
    let before = (
        a.lun_stats("damaged").unwrap(),
        a.lun_stats("replacement").unwrap(),
    );
    a.swap_lun("damaged", "replacement").unwrap();
    let after = (
        a.lun_stats("damaged").unwrap(),
        a.lun_stats("replacement").unwrap(),
    );
    assert_eq!(before, after, "a swap moves no data");
    let d = a.lun("damaged").unwrap();
    assert_eq!((d.name.as_str(), d.mask.as_str()), ("damaged", ""));
    let mut b = pattern(0);
    a.admin_read_at("damaged", &mut b, 0).unwrap();
    assert_eq!(b, pattern(1), "the damaged LUN keeps its data");
    let r = a.lun("replacement").unwrap();
    assert_eq!(
        r.number, default,
        "the replacement takes the default number"
    );
    assert_eq!(a.access("replacement", &id(W1)).unwrap().unwrap().number, 5);
    assert_eq!(
        a.access("replacement", &id(R1)).unwrap().unwrap().access,
        vds_core::Access::ReadOnly
    );
    // The host reopens its number and reaches the replacement's data.
    let h = a.open_lun(&id(W1), 5).unwrap();
    h.read_at(&mut b, 0).unwrap();
    assert_eq!(b, pattern(2));
    h.write_at(&pattern(3), 0).unwrap();
    a.admin_read_at("damaged", &mut b, 0).unwrap();
    assert_eq!(b, pattern(1), "nothing lands on the damaged LUN");
}

/// A shadow LUN is swapped in only once broken, which takes it out of its set: deleting the set
/// then deletes its other LUNs and never the swapped-in one.
#[test]
fn a_swapped_in_shadow_is_out_of_its_set_and_survives_its_delete() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1), ("b", 2)]);
    let set = a
        .snapshot_set(&[("a", "a-sh"), ("b", "b-sh")], &BTreeMap::new())
        .unwrap();
    handle(&a, "a", W1).write_at(&pattern(9), 0).unwrap();
    let e = a.swap_lun("a", "a-sh").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("break it first"), "{e}");
    let before = a.lun_stats("a-sh").unwrap();
    a.break_shadow("a-sh").unwrap();
    assert_eq!(
        a.lun_stats("a-sh").unwrap(),
        before,
        "a break moves no data"
    );
    a.swap_lun("a", "a-sh").unwrap();
    assert_eq!(a.snapshot_set_luns(&set), ["b-sh"]);
    assert_eq!(a.delete_snapshot_set(&set).unwrap(), ["b-sh"]);
    assert_eq!(names(&a), ["a", "a-sh", "b"]);
    // The host reaches the recovered data at its number, writably.
    assert_eq!(read(&a, "a-sh", R1), pattern(1));
    handle(&a, "a-sh", W1).write_at(&pattern(4), 0).unwrap();
    assert_eq!(read(&a, "a-sh", R1), pattern(4));
    assert_eq!(
        a.delete_snapshot_set(&set).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A resync of N changed blocks (the copying alternative to the swap) writes N blocks to its
/// target.
#[test]
fn a_resync_of_n_blocks_writes_n_blocks() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1)]);
    a.snapshot_lun("a", "a-snap").unwrap();
    let h = handle(&a, "a", W1);
    for blk in [3u64, 4, 70] {
        h.write_at(&pattern(5), blk * BS as u64).unwrap();
    }
    h.flush().unwrap();
    let before = a.lun_stats("a").unwrap();
    a.resync_lun("a-snap", "a").wait().unwrap();
    let after = a.lun_stats("a").unwrap();
    assert_eq!(
        after.origin_write_bytes - before.origin_write_bytes,
        3 * BS as u64
    );
    assert_eq!(read(&a, "a", R1), pattern(1));
}

// ---- 3. engine-level shadows ----

/// An engine shadow set: one instant over its LUNs, listed with its metadata and creation time,
/// read through a handle of an initiator that sees the LUN, exposed as a LUN masked to no one
/// (read-only until broken), deleted once nothing stands on it.
#[test]
fn engine_shadows_are_taken_listed_read_exposed_and_deleted() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1), ("b", 2)]);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let taken = a
        .engine_snapshot_set(&[("a", b"meta-a"), ("b", b"")])
        .unwrap();
    assert!(taken.set.starts_with("eset-"), "{}", taken.set);
    assert_eq!(taken.shadows.len(), 2);
    let (ida, idb) = (taken.shadows[0].1, taken.shadows[1].1);
    let list = a.engine_shadows("a").unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].id,
            list[0].set.as_str(),
            &list[0].metadata[..],
            list[0].size
        ),
        (ida, taken.set.as_str(), &b"meta-a"[..], MB)
    );
    assert!(list[0].created_ms >= t0 && list[0].created_ms < t0 + 60_000);
    assert_eq!(a.engine_shadows("b").unwrap()[0].metadata, b"");
    // Later writes do not reach the shadows.
    handle(&a, "a", W1).write_at(&pattern(7), 0).unwrap();
    handle(&a, "b", W1).write_at(&pattern(8), 0).unwrap();
    let reader = handle(&a, "a", R1);
    let mut b = pattern(0);
    reader.read_shadow_at(ida, &mut b, 0).unwrap();
    assert_eq!(b, pattern(1));
    handle(&a, "b", R1).read_shadow_at(idb, &mut b, 0).unwrap();
    assert_eq!(b, pattern(2));
    // Not a shadow of this LUN, past its end, or a snapshot LUN's engine snapshot: refused.
    assert_eq!(
        reader
            .read_shadow_at(
                vds_core::SnapshotId::new(ida.get().max(idb.get()) + 100),
                &mut b,
                0
            )
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        reader.read_shadow_at(ida, &mut b, MB).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    a.snapshot_lun("a", "a-snap").unwrap();
    let lun_snap = a
        .lun_engine_snapshots("a")
        .unwrap()
        .into_iter()
        .find(|s| s.id != ida)
        .unwrap()
        .id;
    assert_eq!(
        reader
            .read_shadow_at(lun_snap, &mut b, 0)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        a.engine_shadows("a").unwrap().len(),
        1,
        "a snapshot LUN's is no shadow"
    );
    // Masked: once the reader loses the LUN, its shadows are refused to it too.
    a.remove_from_mask("a", &mask(R1)).unwrap();
    assert_eq!(
        reader.read_shadow_at(ida, &mut b, 0).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
    // Exposed as a LUN: masked to no one, read-only until broken.
    a.expose_engine_shadow("a", ida, "a-exposed").unwrap();
    let info = a.lun("a-exposed").unwrap();
    assert_eq!((info.mask.as_str(), info.size), ("", MB));
    assert!(a.is_shadow("a-exposed").unwrap());
    a.set_mask("a-exposed", &mask(W1)).unwrap();
    assert_eq!(read(&a, "a-exposed", W1), pattern(1));
    assert_eq!(
        a.write_at("a-exposed", &id(W1), &pattern(3), 0)
            .unwrap_err()
            .kind(),
        ErrorKind::AccessDenied
    );
    assert_eq!(
        a.expose_engine_shadow("a", ida, "a-exposed-2")
            .unwrap_err()
            .kind(),
        ErrorKind::BadState,
        "one shadow, one exposing LUN"
    );
    let e = a.delete_engine_shadow("a", ida).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("a-exposed"), "{e}");
    assert_eq!(
        a.split_lun("a-exposed").wait().unwrap_err().kind(),
        ErrorKind::BadState
    );
    assert_eq!(
        a.set_lun_metadata("a-exposed", "umbra:exposes", None)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    // Deleting the exposing LUN leaves the shadow; then the shadow goes.
    a.delete_lun("a-exposed").unwrap();
    assert_eq!(a.engine_shadows("a").unwrap().len(), 1);
    a.delete_engine_shadow("a", ida).unwrap();
    assert!(a.engine_shadows("a").unwrap().is_empty());
    assert_eq!(
        a.delete_engine_shadow("a", ida).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(a.lun_stats("a").unwrap().snapshots, 1, "a-snap's stays");
}

/// A set is all or none: an unknown LUN, a LUN named twice or metadata too large leaves no
/// shadow anywhere.
#[test]
fn an_engine_shadow_set_that_fails_leaves_nothing() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1), ("b", 2)]);
    let kind = |r: vds_core::Result<vds_core::EngineShadowSet>| r.unwrap_err().kind();
    assert_eq!(
        kind(a.engine_snapshot_set(&[("a", b""), ("nope", b"")])),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(a.engine_snapshot_set(&[("a", b""), ("a", b"")])),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(a.engine_snapshot_set(&[("a", b""), ("b", &vec![0u8; 64 << 10])])),
        ErrorKind::InvalidArgument
    );
    assert_eq!(kind(a.engine_snapshot_set(&[])), ErrorKind::InvalidArgument);
    // A LUN frozen already cannot be frozen for the set's instant.
    let frozen = a
        .freeze_luns(&["b"], std::time::Duration::from_secs(3600))
        .unwrap();
    assert_eq!(
        kind(a.engine_snapshot_set(&[("a", b""), ("b", b"")])),
        ErrorKind::BadState
    );
    frozen.thaw().unwrap();
    for n in ["a", "b"] {
        assert_eq!(a.lun_stats(n).unwrap().snapshots, 0, "{n}");
    }
}

/// A revert of a LUN to its shadow copies back exactly the changed blocks; while it runs host
/// I/O is refused (Busy by name; a handle opened before is revoked, AccessDenied, for good), and
/// served again once it ends (to a handle opened again).
#[test]
fn reverting_to_an_engine_shadow_is_fenced_and_writes_only_what_changed() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1)]);
    let sid = a.engine_snapshot_set(&[("a", b"")]).unwrap().shadows[0].1;
    let w = handle(&a, "a", W1);
    for blk in [0u64, 9] {
        w.write_at(&pattern(6), blk * BS as u64).unwrap();
    }
    w.flush().unwrap();
    let before = a.lun_stats("a").unwrap();
    // Held by a freeze, the revert's first write keeps the revert running.
    let frozen = a
        .freeze_luns(&["a"], std::time::Duration::from_secs(3600))
        .unwrap();
    let op = a.revert_to_engine_shadow("a", sid);
    while frozen.held_writes() == 0 {
        std::thread::yield_now();
    }
    let mut b = pattern(0);
    let e = w.read_at(&mut b, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    assert_eq!(
        a.read_at("a", &id(R1), &mut b, 0).unwrap_err().kind(),
        ErrorKind::Busy
    );
    frozen.thaw().unwrap();
    op.wait().unwrap();
    assert_eq!(read(&a, "a", R1), pattern(1));
    assert_eq!(
        w.read_at(&mut b, 0).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
    let w = handle(&a, "a", W1);
    w.read_at(&mut b, 9 * BS as u64).unwrap();
    assert_eq!(b, pattern(0));
    let after = a.lun_stats("a").unwrap();
    assert_eq!(
        after.origin_write_bytes - before.origin_write_bytes,
        2 * BS as u64
    );
    assert_eq!(a.engine_shadows("a").unwrap().len(), 1, "the shadow stays");
    assert_eq!(
        a.revert_to_engine_shadow("a", vds_core::SnapshotId::new(sid.get() + 100))
            .wait()
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// The pool log cut at every frame boundary an engine shadow set wrote opens with the set's
/// shadows on every LUN or on none; shadows and an exposing LUN persist across a reopen.
#[test]
fn an_engine_shadow_set_is_crash_atomic_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let pre = dir.path().join("pre");
    let before_len;
    {
        let a = Array::open(&pool).unwrap();
        populate(&a, &[("a", 1), ("b", 2)]);
        before_len = std::fs::metadata(pool.join("pool.log")).unwrap().len() as usize;
        copy_dir(&pool, &pre);
        let s = a.engine_snapshot_set(&[("a", b"x"), ("b", b"y")]).unwrap();
        a.expose_engine_shadow("a", s.shadows[0].1, "a-exp")
            .unwrap();
    }
    let log = std::fs::read(pool.join("pool.log")).unwrap();
    let frames = frame_ends(&log);
    let last_begin = frames.iter().rposition(|&(_, begin)| begin).unwrap();
    let set_end = frames[last_begin + 1].0;
    let (mut old, mut new) = (0, 0);
    for (cut, _) in frames.into_iter().filter(|&(e, _)| e >= before_len) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pool");
        // The snapshots exist only once every intent is durable.
        copy_dir(if cut < set_end { &pre } else { &pool }, &p);
        std::fs::write(p.join("pool.log"), &log[..cut]).unwrap();
        let a = Array::open(&p).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let (sa, sb) = (
            a.engine_shadows("a").unwrap(),
            a.engine_shadows("b").unwrap(),
        );
        match (sa.len(), sb.len()) {
            (0, 0) => old += 1,
            (1, 1) => {
                new += 1;
                assert_eq!(
                    (&sa[0].metadata[..], &sb[0].metadata[..]),
                    (&b"x"[..], &b"y"[..])
                );
                assert_eq!(sa[0].set, sb[0].set);
                let mut b = pattern(0);
                handle(&a, "b", R1)
                    .read_shadow_at(sb[0].id, &mut b, 0)
                    .unwrap();
                assert_eq!(b, pattern(2), "cut at {cut}");
            }
            other => panic!("cut at {cut}: shadows {other:?}"),
        }
        assert!(a.orphans().is_empty(), "cut at {cut}");
        if names(&a).contains(&"a-exp".to_string()) {
            a.set_mask("a-exp", &mask(R1)).unwrap();
            assert_eq!(read(&a, "a-exp", R1), pattern(1), "cut at {cut}");
        }
    }
    assert!(old >= 1 && new >= 1, "old {old}, new {new}");
}

// ---- 6. metadata changes notified ----

#[test]
fn metadata_changes_are_notified() {
    let a = Array::in_memory();
    populate(&a, &[("a", 1)]);
    let sub = a.subscribe_channel();
    a.set_pool_metadata("writers", Some("sql")).unwrap();
    a.set_lun_metadata("a", "k", Some("v")).unwrap();
    a.set_pool_metadata("writers", None).unwrap();
    let got: Vec<Notification> = std::iter::from_fn(|| sub.try_recv())
        .map(|d| match d {
            vds_core::Delivery::Event(n) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            Notification::PoolMetadataChanged {
                key: "writers".into(),
                value: Some("sql".into())
            },
            Notification::LunMetadataChanged {
                name: "a".into(),
                key: "k".into(),
                value: Some("v".into())
            },
            Notification::PoolMetadataChanged {
                key: "writers".into(),
                value: None
            },
        ]
    );
    assert_eq!(
        serde_json::to_string(&got[0]).unwrap(),
        r#"{"event":"pool_metadata_changed","key":"writers","value":"sql"}"#
    );
    assert_eq!(
        serde_json::to_string(&got[1]).unwrap(),
        r#"{"event":"lun_metadata_changed","lun":"a","key":"k","value":"v"}"#
    );
    assert_eq!((got[0].lun(), got[0].vds_code()), ("", 151));
    assert_eq!((got[1].lun(), got[1].vds_code()), ("a", 110));
}

/// An unbroken shadow LUN granted read-write by its mask reads back read-only from every access
/// query (`access`, `host_view`, `lun_hosts`), as every I/O path treats it; once broken the
/// mask's read-write takes effect in the queries and for I/O alike.
#[test]
fn an_unbroken_shadow_lun_is_reported_read_only_as_io_treats_it() {
    use vds_core::{Access, LunHosts};
    let a = Array::in_memory();
    populate(&a, &[("a", 1)]);
    a.snapshot_set(&[("a", "a-sh")], &BTreeMap::new()).unwrap();
    a.add_to_mask("a-sh", &mask(W1)).unwrap();
    let seen = |a: &Array| {
        let g = a.access("a-sh", &id(W1)).unwrap().unwrap();
        let view = a.host_view(&id(W1));
        let v = view.iter().find(|(n, _)| n == "a-sh").unwrap().1;
        let h = match a.lun_hosts("a-sh").unwrap() {
            LunHosts::Hosts(h) => h[&id(W1)].access,
            LunHosts::All {
                access,
                own_numbers,
                ..
            } => {
                assert!(own_numbers.values().all(|g| g.access == access));
                access
            }
        };
        (g.access, v.access, h)
    };
    let ro = (Access::ReadOnly, Access::ReadOnly, Access::ReadOnly);
    assert_eq!(seen(&a), ro);
    let e = handle(&a, "a-sh", W1).write_at(&pattern(9), 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    // Unmasked to every host: the same.
    a.set_mask("a-sh", &mask("*")).unwrap();
    assert_eq!(seen(&a), ro);
    a.break_shadow("a-sh").unwrap();
    let rw = (Access::ReadWrite, Access::ReadWrite, Access::ReadWrite);
    assert_eq!(seen(&a), rw);
    a.set_mask("a-sh", &mask(W1)).unwrap();
    assert_eq!(seen(&a), rw);
    handle(&a, "a-sh", W1).write_at(&pattern(9), 0).unwrap();
}
