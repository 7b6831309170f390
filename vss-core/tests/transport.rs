//! Transportable sets on the embedded array with two host identities: host B imports a set made
//! of host A's LUNs exactly once and reads the shadows through its own LUN numbers; host A never
//! sees them; break makes them ordinary read-write LUNs that deleting the set never deletes.

mod hardware_common;
use hardware_common::*;

use uuid::Uuid;
use vds_core::Array;
use vss_core::{Attributes, ErrorKind, Exposure, HardwareProvider, Provider};

/// LUNs `db` and `log` of host A, blocks 0..4 written with fill 1.
fn array() -> Array {
    let a = Array::in_memory();
    for lun in ["db", "log"] {
        a.create_lun(lun, 4 * MB, &mask(HOST_A)).unwrap();
        let h = open_as(&a, HOST_A, lun);
        for n in 0..4 {
            h.write_at(&block(n, 1), n * BS).unwrap();
        }
    }
    a
}

#[test]
fn host_b_imports_once_and_reads_the_shadows_host_a_never_sees_them() {
    let a = array();
    let hw = HardwareProvider::new(a.clone());
    let (set_id, _, props) = make_set(&hw, &["db", "log"], Attributes::TRANSPORTABLE);
    // Host A goes on writing its originals.
    for lun in ["db", "log"] {
        open_as(&a, HOST_A, lun).write_at(&block(0, 7), 0).unwrap();
    }
    let view_a = a.host_view(&id(HOST_A));
    // Bad input changes nothing.
    let e = hw.import(set_id, "not an initiator").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInitiator, "{e}");
    assert!(hw
        .shadows()
        .unwrap()
        .iter()
        .all(|p| p.exposure == Exposure::Hidden));
    let e = hw.import(Uuid::new_v4(), HOST_B).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSnapshotsImported, "{e}");

    let imported = hw.import(set_id, HOST_B).unwrap();
    assert_eq!(imported.len(), 2);
    for (p, before) in imported.iter().zip(&props) {
        assert_eq!(p.shadow_id, before.shadow_id);
        assert_eq!(
            p.exposure,
            Exposure::Hosts {
                initiators: vec![HOST_B.to_string()]
            }
        );
        assert!(p.attributes.contains(Attributes::IMPORTED));
        // B reads it by its own LUN number, read-only; the instant, not A's later write.
        let h = open_as(&a, HOST_B, &p.shadow.name);
        for n in 0..4 {
            assert_eq!(read_block(&h, n), block(n, 1), "{}", p.shadow.name);
        }
        assert_eq!(
            h.write_at(&block(0, 9), 0).unwrap_err().kind(),
            vds_core::ErrorKind::AccessDenied
        );
        // A does not see it.
        assert_eq!(a.access(&p.shadow.name, &id(HOST_A)).unwrap(), None);
    }
    assert_eq!(
        a.host_view(&id(HOST_A)),
        view_a,
        "host A's view is unchanged"
    );
    // B sees exactly the two shadows; A cannot reach them at B's numbers unless its own LUNs
    // sit there.
    let view_b: Vec<String> = a.host_view(&id(HOST_B)).into_iter().map(|v| v.0).collect();
    let mut names: Vec<String> = props.iter().map(|p| p.shadow.name.clone()).collect();
    names.sort();
    let mut view_b_sorted = view_b.clone();
    view_b_sorted.sort();
    assert_eq!(view_b_sorted, names);
    for (_, grant) in a.host_view(&id(HOST_B)) {
        if let Ok(h) = a.open_lun(&id(HOST_A), grant.number) {
            let mut b = vec![0u8; BS as usize];
            h.read_at(&mut b, 0).unwrap();
            assert_eq!(b, block(0, 7), "A reaches its own LUN there, not a shadow");
        }
    }
    // The properties in the pool say so too.
    assert_eq!(hw.shadows().unwrap().len(), 2);
    assert!(hw
        .shadows()
        .unwrap()
        .iter()
        .all(|p| p.exposure != Exposure::Hidden));

    // A set is imported once: a second import (by anyone) is BadState and changes nothing.
    for host in [HOST_B, HOST_A] {
        let e = hw.import(set_id, host).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    }
    assert_eq!(a.host_view(&id(HOST_A)), view_a);
}

#[test]
fn a_set_not_made_transportable_is_not_imported() {
    let a = array();
    let hw = HardwareProvider::new(a.clone());
    let (set_id, _, props) = make_set(&hw, &["db"], Attributes::empty());
    let e = hw.import(set_id, HOST_B).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NonTransportableBcd, "{e}");
    assert_eq!(a.get_mask(&props[0].shadow.name).unwrap(), "");
}

#[test]
fn break_makes_imported_shadows_ordinary_read_write_luns_out_of_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let a = Array::open(&pool).unwrap();
    for lun in ["db", "log"] {
        a.create_lun(lun, 4 * MB, &mask(HOST_A)).unwrap();
        open_as(&a, HOST_A, lun).write_at(&block(0, 1), 0).unwrap();
    }
    let hw = HardwareProvider::new(a.clone());
    let (set_id, _, props) = make_set(&hw, &["db", "log"], Attributes::TRANSPORTABLE);
    hw.import(set_id, HOST_B).unwrap();
    let handles: Vec<_> = props
        .iter()
        .map(|p| open_as(&a, HOST_B, &p.shadow.name))
        .collect();
    let array_set = a.snapshot_luns_of("db").unwrap()[0].1.clone().unwrap();
    let broken = hw.break_set(set_id).unwrap();
    assert_eq!(
        broken,
        props
            .iter()
            .map(|p| p.shadow.name.clone())
            .collect::<Vec<_>>()
    );
    for (h, p) in handles.iter().zip(&props) {
        assert!(!a.is_shadow(&p.shadow.name).unwrap());
        // B's handle, opened before the break, writes now; A still sees nothing.
        h.write_at(&block(0, 5), 0).unwrap();
        assert_eq!(read_block(h, 0), block(0, 5));
        assert_eq!(a.access(&p.shadow.name, &id(HOST_A)).unwrap(), None);
        // The original is untouched by the broken LUN's writes.
        assert_eq!(
            read_block(&open_as(&a, HOST_A, &p.original.name), 0),
            block(0, 1)
        );
    }
    // Out of the set: no longer listed; deleting the array's set, aborting the shadow-copy set
    // or breaking it again touches nothing.
    assert_eq!(
        a.delete_snapshot_set(&array_set).unwrap_err().kind(),
        vds_core::ErrorKind::NotFound
    );
    assert!(hw.shadows().unwrap().is_empty());
    hw.abort(set_id).unwrap();
    assert_eq!(
        hw.break_set(set_id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = hw.import(set_id, HOST_B).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSnapshotsImported, "{e}");
    drop((handles, hw, a));
    let a = Array::open(&pool).unwrap();
    for p in &props {
        let h = open_as(&a, HOST_B, &p.shadow.name);
        assert_eq!(read_block(&h, 0), block(0, 5), "kept across a reopen");
    }
    assert!(HardwareProvider::new(a).shadows().unwrap().is_empty());
}
