//! What the shadow-copy protocol still needs from the array: a snapshot set deleted in one
//! record, a LUN's name staying with its data through the fast-recovery swap, engine-level
//! shadows of a LUN, per-LUN I/O statistics and metadata notifications.

mod common;
use common::{copy_dir, frame_ends};

use std::collections::BTreeMap;

use vds_core::{Array, ErrorKind, InitiatorId, MaskSpec};

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
