//! Fast recovery and LUN resync through the hardware provider, end to end on pools on disk with
//! two host identities: the server (host A) reaches the recovered data at its own LUN number,
//! nothing is copied whatever the LUN's size, and a resync writes exactly the changed blocks.

mod hardware_common;
use hardware_common::*;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use uuid::Uuid;
use vds_core::{Array, MaskSpec};
use vss_core::{Attributes, ErrorKind, HardwareProvider, Provider};

/// Host A's LUN number for the production LUN.
const NUMBER: u32 = 7;

/// Every file under `dir` with its length and modification time.
fn files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The bytes written to LUNs `luns`' origins and diff areas so far, and the write operations.
fn written(a: &Array, luns: &[&str]) -> (u64, u64) {
    luns.iter().fold((0, 0), |(b, w), l| {
        let s = a.lun_stats(l).unwrap();
        (
            b + s.origin_write_bytes + s.diff_write_bytes,
            w + s.origin_writes + s.diff_writes,
        )
    })
}

/// A pool in `dir` with LUN `data` of `size` bytes, host A's at LUN number [`NUMBER`] (another
/// LUN of A's before it), blocks 0..8 and the last block written with fill 1.
fn pool_with_data(dir: &Path, size: u64) -> Array {
    let a = Array::open(dir.join("pool")).unwrap();
    a.create_lun("boot", MB, &mask(HOST_A)).unwrap();
    a.create_lun("data", size, &mask(HOST_A)).unwrap();
    a.set_host_number("data", &id(HOST_A), NUMBER).unwrap();
    let h = a.open_lun(&id(HOST_A), NUMBER).unwrap();
    let last = size / BS - 1;
    for n in (0..8).chain([last]) {
        h.write_at(&block(n, 1), n * BS).unwrap();
    }
    h.flush().unwrap();
    a
}

/// The seed's story, end to end, on a LUN of `size` bytes (sparse).
fn fast_recovery(size: u64, keep_for: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let a = pool_with_data(dir.path(), size);
    let hw = HardwareProvider::new(a.clone());
    let (set_id, _, props) = make_set(&hw, &["data"], Attributes::TRANSPORTABLE);
    let shadow = props[0].clone();
    // The damage: host A's server overwrites blocks 0..4 and the last one.
    let server = a.open_lun(&id(HOST_A), NUMBER).unwrap();
    let last = size / BS - 1;
    for n in (0..4).chain([last]) {
        server.write_at(&block(n, 0xEE), n * BS).unwrap();
    }
    server.flush().unwrap();
    let view_before: Vec<u32> = a
        .host_view(&id(HOST_A))
        .into_iter()
        .map(|(_, g)| g.number)
        .collect();
    let luns_dir = dir.path().join("pool").join("luns");
    let files_before = files(&luns_dir);
    let stats_before = written(&a, &["data", &shadow.shadow.name]);

    let report = hw.recover(shadow.shadow_id, keep_for).unwrap();

    assert_eq!(report.damaged, "data");
    assert_eq!(report.recovered, shadow.shadow.name);
    assert_eq!(report.bytes_moved, 0, "{report:?}");
    assert_eq!(report.writes, 0, "{report:?}");
    // Independently of the counters: no file of any LUN was written, grown or added.
    assert_eq!(files(&luns_dir), files_before, "a LUN's file changed");
    assert_eq!(written(&a, &["data", &shadow.shadow.name]), stats_before);

    // The server's old handle is refused; reopening its LUN number reaches the recovered data.
    let mut buf = vec![0u8; BS as usize];
    assert_eq!(
        server.read_at(&mut buf, 0).unwrap_err().kind(),
        vds_core::ErrorKind::AccessDenied
    );
    drop(server);
    let server = a.open_lun(&id(HOST_A), NUMBER).unwrap();
    for n in (0..8).chain([last]) {
        assert_eq!(read_block(&server, n), block(n, 1), "block {n}");
    }
    // Read-write, and the same host LUN numbers as before.
    server.write_at(&block(9, 2), 9 * BS).unwrap();
    assert_eq!(read_block(&server, 9), block(9, 2));
    let view_after: Vec<u32> = a
        .host_view(&id(HOST_A))
        .into_iter()
        .map(|(_, g)| g.number)
        .collect();
    assert_eq!(view_after, view_before);
    assert_eq!(
        a.access(&shadow.shadow.name, &id(HOST_A))
            .unwrap()
            .unwrap()
            .number,
        NUMBER
    );
    assert!(!a.is_shadow(&shadow.shadow.name).unwrap());

    // The damaged LUN keeps its name and its damage, off host A; read-only to B if asked.
    assert_eq!(a.access("data", &id(HOST_A)).unwrap(), None);
    match keep_for {
        Some(host) => {
            assert_eq!(a.get_mask("data").unwrap(), format!("{host}=ro"));
            let h = open_as(&a, host, "data");
            for n in (0..4).chain([last]) {
                assert_eq!(read_block(&h, n), block(n, 0xEE), "damaged block {n}");
            }
            assert_eq!(read_block(&h, 5), block(5, 1));
            assert_eq!(
                h.write_at(&block(0, 3), 0).unwrap_err().kind(),
                vds_core::ErrorKind::AccessDenied
            );
        }
        None => assert_eq!(a.get_mask("data").unwrap(), ""),
    }
    // The shadow is no longer one: not listed, not recovered twice.
    assert!(hw.shadows().unwrap().is_empty());
    assert_eq!(
        hw.recover(shadow.shadow_id, None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Out of its set: aborting the set leaves the recovered LUN in place.
    hw.abort(set_id).unwrap();
    assert_eq!(read_block(&server, 0), block(0, 1));
    // All of it durable: the reopened pool shows the same.
    drop((server, hw, a));
    let a = Array::open(dir.path().join("pool")).unwrap();
    let server = a.open_lun(&id(HOST_A), NUMBER).unwrap();
    assert_eq!(read_block(&server, 0), block(0, 1));
    assert_eq!(read_block(&server, 9), block(9, 2));
    assert_eq!(a.access("data", &id(HOST_A)).unwrap(), None);
}

#[test]
fn fast_recovery_of_a_1_gib_lun_moves_nothing() {
    fast_recovery(GB, Some(HOST_B));
}

#[test]
fn fast_recovery_of_a_64_gib_sparse_lun_moves_nothing() {
    fast_recovery(64 * GB, None);
}

#[test]
fn a_recovery_refused_for_bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool_with_data(dir.path(), 4 * MB);
    let hw = HardwareProvider::new(a.clone());
    let (_, _, props) = make_set(&hw, &["data"], Attributes::empty());
    let masks = |a: &Array| -> Vec<String> {
        a.luns()
            .iter()
            .map(|l| a.get_mask(&l.name).unwrap())
            .collect()
    };
    let before = masks(&a);
    let e = hw
        .recover(props[0].shadow_id, Some("no such host"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInitiator, "{e}");
    let e = hw.recover(Uuid::new_v4(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(masks(&a), before);
    assert_eq!(hw.shadows().unwrap(), props);
}

#[test]
fn resync_writes_exactly_the_changed_blocks_and_restores_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let a = Array::open(dir.path().join("pool")).unwrap();
    const BLOCKS: u64 = 1024;
    a.create_lun("data", BLOCKS * BS, &mask(HOST_A)).unwrap();
    let h = open_as(&a, HOST_A, "data");
    for n in 0..BLOCKS {
        h.write_at(&block(n, 1), n * BS).unwrap();
    }
    let hw = HardwareProvider::new(a.clone());
    let (_, _, props) = make_set(&hw, &["data"], Attributes::empty());
    let shadow = &props[0];
    // N scattered blocks changed, some twice.
    let changed: Vec<u64> = (0..BLOCKS).filter(|n| n % 27 == 3).collect();
    for &n in &changed {
        h.write_at(&block(n, 0xEE), n * BS).unwrap();
    }
    for &n in changed.iter().step_by(3) {
        h.write_at(&block(n, 0xEF), n * BS).unwrap();
    }
    // Durable first: a persistent volume's first writes after a snapshot reach the origin at
    // the flush (the resync would flush them too, and they would count as its writes).
    h.flush().unwrap();
    let before = a.lun_stats("data").unwrap();
    let op = hw.resync(shadow.shadow_id, None).unwrap();
    op.wait().unwrap();
    // The handle opened before the resync is revoked; a client opens its LUN again.
    let mut old = vec![0u8; BS as usize];
    assert_eq!(
        h.read_at(&mut old, 0).unwrap_err().kind(),
        vds_core::ErrorKind::AccessDenied
    );
    let h = open_as(&a, HOST_A, "data");
    let after = a.lun_stats("data").unwrap();
    assert_eq!(
        after.origin_write_bytes - before.origin_write_bytes,
        changed.len() as u64 * BS,
        "{} changed blocks",
        changed.len()
    );
    assert_eq!(after.diff_write_bytes, before.diff_write_bytes);
    for n in 0..BLOCKS {
        assert_eq!(read_block(&h, n), block(n, 1), "block {n}");
    }
    // The shadow stays; a second resync finds nothing to copy.
    assert_eq!(hw.shadows().unwrap(), props);
    let before = a.lun_stats("data").unwrap();
    hw.resync(shadow.shadow_id, None).unwrap().wait().unwrap();
    assert_eq!(
        a.lun_stats("data").unwrap().origin_write_bytes,
        before.origin_write_bytes
    );

    // A cancelled resync (wherever the cancel lands) is finished by the next one, and the two
    // together write each changed block once.
    let h = open_as(&a, HOST_A, "data");
    for n in 0..BLOCKS {
        h.write_at(&block(n, 0xAA), n * BS).unwrap();
    }
    h.flush().unwrap();
    let before = a.lun_stats("data").unwrap();
    let op = hw.resync(shadow.shadow_id, None).unwrap();
    op.cancel();
    match op.wait() {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), vds_core::ErrorKind::Cancelled, "{e}"),
    }
    let op = hw.resync(shadow.shadow_id, None).unwrap();
    op.wait().unwrap();
    let h = open_as(&a, HOST_A, "data");
    for n in 0..BLOCKS {
        assert_eq!(read_block(&h, n), block(n, 1), "block {n}");
    }
    let after = a.lun_stats("data").unwrap();
    assert_eq!(
        after.origin_write_bytes - before.origin_write_bytes,
        BLOCKS * BS
    );

    // Onto another LUN: it must be the shadow's size.
    a.create_lun("small", MB, &MaskSpec::None).unwrap();
    let e = hw.resync(shadow.shadow_id, Some("small")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    a.create_lun("copy", BLOCKS * BS, &mask(HOST_B)).unwrap();
    hw.resync(shadow.shadow_id, Some("copy"))
        .unwrap()
        .wait()
        .unwrap();
    let c = open_as(&a, HOST_B, "copy");
    for n in [0, 3, 30, BLOCKS - 1] {
        assert_eq!(read_block(&c, n), block(n, 1));
    }
    assert_eq!(
        hw.resync(Uuid::new_v4(), None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
