//! Volatile LUNs ([`LunOptions::volatile`]): a volume without a metadata journal. Its data is in
//! its origin file (durable on flush, so it survives a reopen), its engine snapshots live until
//! the pool closes, and nothing the pool records may stand on one of them.

use std::collections::BTreeMap;

use vds_core::{Array, ErrorKind, InitiatorId, LunOptions, MaskSpec};

const BS: usize = 4096;
const HOST: &str = "iqn.2024-01.org.example:h1";

fn host() -> InitiatorId {
    InitiatorId::parse(HOST).unwrap()
}

const VOLATILE: LunOptions = LunOptions { volatile: true };

/// A pool with a volatile LUN `v` and a persistent LUN `p` (4 blocks each, masked to [`HOST`]),
/// block 1 of each written with 7 and flushed, and an engine shadow of each taken.
fn pool(dir: &std::path::Path) -> Array {
    let a = Array::open(dir).unwrap();
    let mask = MaskSpec::parse(HOST).unwrap();
    a.create_lun_with("v", 4 * BS as u64, &mask, VOLATILE)
        .unwrap();
    a.create_lun("p", 4 * BS as u64, &mask).unwrap();
    for (number, name) in [(0, "v"), (1, "p")] {
        assert_eq!(a.lun(name).unwrap().number, number);
        let h = a.open_lun(&host(), number).unwrap();
        h.write_at(&[7; BS], BS as u64).unwrap();
        h.flush().unwrap();
    }
    a.engine_snapshot_set(&[("v", b"v".as_slice()), ("p", b"p".as_slice())])
        .unwrap();
    a
}

fn block(a: &Array, name: &str, b: usize) -> Vec<u8> {
    let mut buf = vec![0; BS];
    a.admin_read_at(name, &mut buf, (b * BS) as u64).unwrap();
    buf
}

#[test]
fn a_volatile_luns_flushed_writes_survive_a_reopen_and_its_engine_shadows_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(dir.path());
    assert!(a.lun("v").unwrap().volatile);
    assert!(!a.lun("p").unwrap().volatile);
    // Writes after the shadows: the volatile LUN preserves the old block in its diff area
    // without a journal; the persistent one journals it.
    let h = a.open_lun(&host(), 0).unwrap();
    h.write_at(&[9; BS], BS as u64).unwrap();
    h.flush().unwrap();
    let p = a.open_lun(&host(), 1).unwrap();
    p.write_at(&[9; BS], BS as u64).unwrap();
    p.flush().unwrap();
    assert_eq!(a.lun_stats("v").unwrap().journal_write_bytes, 0);
    assert!(a.lun_stats("p").unwrap().journal_write_bytes > 0);
    // While the pool is open, the volatile LUN's shadow holds the old data.
    let shadow = a.engine_shadows("v").unwrap();
    assert_eq!(shadow.len(), 1);
    drop((h, p, a));

    let a = Array::open(dir.path()).unwrap();
    assert!(a.damaged_luns().is_empty(), "{:?}", a.damaged_luns());
    assert!(a.lun("v").unwrap().volatile, "the option is recorded");
    for name in ["v", "p"] {
        assert_eq!(
            block(&a, name, 1),
            vec![9; BS],
            "LUN {name}'s flushed write"
        );
        assert_eq!(block(&a, name, 0), vec![0; BS]);
    }
    assert!(
        a.engine_shadows("v").unwrap().is_empty(),
        "a volatile LUN's engine shadows end with the pool"
    );
    assert_eq!(a.engine_shadows("p").unwrap().len(), 1);
    // A volatile LUN takes new shadows after the reopen, and works as before.
    a.engine_snapshot_set(&[("v", b"again".as_slice())])
        .unwrap();
    assert_eq!(a.engine_shadows("v").unwrap().len(), 1);
}

/// Why: a snapshot LUN, a snapshot set, a clone or an exposed engine shadow of a volatile LUN
/// would be a pool record standing on an engine snapshot that the next open does not find.
#[test]
fn nothing_the_pool_records_stands_on_a_volatile_luns_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let a = pool(dir.path());
    let before: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
    let shadow = a.engine_shadows("v").unwrap()[0].id;
    let refused = [
        a.snapshot_lun("v", "s").unwrap_err(),
        a.snapshot_set(&[("v", "s")], &BTreeMap::new()).unwrap_err(),
        a.snapshot_set(&[("p", "s1"), ("v", "s2")], &BTreeMap::new())
            .unwrap_err(),
        a.clone_lun("v", "c").wait().unwrap_err(),
        a.expose_engine_shadow("v", shadow, "x").unwrap_err(),
    ];
    for e in refused {
        assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
        assert!(e.to_string().contains("\"v\" is volatile"), "{e}");
    }
    let after: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
    assert_eq!(after, before, "nothing was made");
    assert_eq!(
        a.engine_shadows("v").unwrap().len(),
        1,
        "no snapshot left behind"
    );
    // Copies of its data that stand alone are fine: an export and an import, a resync.
    a.create_lun("copy", 4 * BS as u64, &MaskSpec::None)
        .unwrap();
    a.resync_lun("v", "copy").wait().unwrap();
    assert_eq!(block(&a, "copy", 1), vec![7; BS]);
    // And the persistent LUN's snapshot LUNs are not affected.
    a.snapshot_lun("p", "ps").unwrap();
    drop(a);
    let a = Array::open(dir.path()).unwrap();
    assert!(a.damaged_luns().is_empty());
    assert_eq!(block(&a, "ps", 1), vec![7; BS]);
}

/// A volatile LUN in memory is what every in-memory LUN is; the option is kept and shown.
#[test]
fn an_in_memory_array_records_the_option_too() {
    let a = Array::in_memory();
    a.create_lun_with("v", BS as u64, &MaskSpec::None, VOLATILE)
        .unwrap();
    assert!(a.lun("v").unwrap().volatile);
    assert_eq!(
        a.snapshot_lun("v", "s").unwrap_err().kind(),
        ErrorKind::BadState
    );
}
