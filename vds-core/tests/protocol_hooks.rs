//! What the shadow-copy protocol needs from the array: freeze and thaw of a set of LUNs through
//! the array (all or none, one deadline) and how a freeze meets a fenced access change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vds_core::{Array, ErrorKind, InitiatorId, MaskSpec, Notification, ThawOutcome};

const MB: u64 = 1 << 20;
const W1: &str = "iqn.2024-01.org.example:writer";
const R1: &str = "iqn.2024-01.org.example:reader";
/// Long enough never to pass in these tests, except where a test lets it pass on purpose.
const LONG: Duration = Duration::from_secs(3600);

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// An array with LUNs `a`, `b` and `c` of 1 MiB, each writable by `W1` and readable by `R1`.
fn array() -> Array {
    let a = Array::in_memory();
    for n in ["a", "b", "c"] {
        a.create_lun(n, MB, &mask(&format!("{W1};{R1}=ro")))
            .unwrap();
    }
    a
}

fn read(a: &Array, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    a.read_at(name, &id(R1), &mut buf, 0).unwrap();
    buf
}

/// Spins until `held()` reports a held write, or the writer `t` finished (then the write was
/// not held, and the caller's assertions say so). No sleep: the writer either blocks in the
/// freeze or returns.
fn wait_held(held: impl Fn() -> usize, t: &std::thread::JoinHandle<vds_core::Result<()>>) {
    while held() == 0 && !t.is_finished() {
        std::thread::yield_now();
    }
}

#[test]
fn freeze_is_all_or_none() {
    let a = array();
    // An unknown LUN: nothing stays frozen.
    let e = a.freeze_luns(&["a", "nope"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    // A LUN named twice is frozen twice: BadState, naming it; the first is thawed.
    let e = a.freeze_luns(&["a", "b", "a"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("\"a\""), "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    assert!(!a.is_lun_frozen("b").unwrap());
    // A LUN frozen already: the second freeze fails and thaws only what it froze.
    let g = a.freeze_luns(&["b"], LONG).unwrap();
    let e = a.freeze_luns(&["a", "c", "b"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("\"b\""), "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    assert!(!a.is_lun_frozen("c").unwrap());
    assert!(a.is_lun_frozen("b").unwrap());
    assert_eq!(g.names(), vec!["b"]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    assert!(!a.is_lun_frozen("b").unwrap());
    // Empty list.
    assert_eq!(
        a.freeze_luns(&[], LONG).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // Dropping the guard thaws.
    let g = a.freeze_luns(&["a", "b", "c"], LONG).unwrap();
    assert!(["a", "b", "c"].iter().all(|n| a.is_lun_frozen(n).unwrap()));
    drop(g);
    assert!(["a", "b", "c"].iter().all(|n| !a.is_lun_frozen(n).unwrap()));
}

#[test]
fn frozen_lun_holds_writes_until_thaw() {
    let a = array();
    a.write_at("a", &id(W1), &[1u8; 4096], 0).unwrap();
    let g = a.freeze_luns(&["a", "b"], LONG).unwrap();
    let t = {
        let a = a.clone();
        std::thread::spawn(move || a.write_at("a", &id(W1), &[2u8; 4096], 0))
    };
    wait_held(|| g.held_writes(), &t);
    assert_eq!(g.held_writes(), 1, "the write was not held by the freeze");
    // Reads go on; the held write has not landed.
    assert_eq!(read(&a, "a"), vec![1u8; 4096]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    t.join().unwrap().unwrap();
    assert_eq!(read(&a, "a"), vec![2u8; 4096]);
}

#[test]
fn thaw_after_the_deadline_reports_it_expired() {
    let a = array();
    let g = a
        .freeze_luns(&["a", "c"], Duration::from_millis(1))
        .unwrap();
    // This write is held until the deadline passes, then lands.
    a.write_at("c", &id(W1), &[7u8; 4096], 0).unwrap();
    assert_eq!(read(&a, "c"), vec![7u8; 4096]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Expired);
    assert!(!a.is_lun_frozen("c").unwrap());
}

/// A change of access never waits for a thaw: `set_mask` on a frozen LUN with a held write
/// returns, and the held write, released by the thaw, is refused under the new access.
#[test]
fn set_mask_on_a_frozen_lun_returns_and_the_held_write_is_refused() {
    let a = array();
    a.write_at("a", &id(W1), &[1u8; 4096], 0).unwrap();
    let h = {
        let number = a.access("a", &id(W1)).unwrap().unwrap().number;
        a.open_lun(&id(W1), number).unwrap()
    };
    let g = a.freeze_luns(&["a"], LONG).unwrap();
    let by_name = {
        let a = a.clone();
        std::thread::spawn(move || a.write_at("a", &id(W1), &[2u8; 4096], 0))
    };
    let h = Arc::new(h);
    let by_handle = {
        let h = h.clone();
        std::thread::spawn(move || h.write_at(&[3u8; 4096], 0))
    };
    wait_held(|| g.held_writes(), &by_name);
    while g.held_writes() < 2 && !by_handle.is_finished() && !by_name.is_finished() {
        std::thread::yield_now();
    }
    assert_eq!(g.held_writes(), 2, "both writes are held by the freeze");
    // Returns although two writes admitted under the old access are held: they are not in flight.
    a.set_mask("a", &mask(&format!("{R1}=ro"))).unwrap();
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    for t in [by_name, by_handle] {
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    }
    assert_eq!(
        read(&a, "a"),
        vec![1u8; 4096],
        "a held write landed after its access went"
    );
}

// ---- per-LUN and pool metadata ----

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Set, replace, remove and query; every change survives a reopen, from the log alone and from a
/// checkpoint, and the metadata goes with its LUN.
#[test]
fn metadata_is_persisted_queried_and_goes_with_its_lun() {
    for checkpoint_every in [None, Some(1)] {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let mut want_pool = BTreeMap::new();
        {
            let a = Array::open(&pool).unwrap();
            if let Some(n) = checkpoint_every {
                a.set_checkpoint_interval(n).unwrap();
            }
            for n in ["a", "b", "c"] {
                a.create_lun(n, MB, &mask("*")).unwrap();
            }
            let notes = a.subscribe_channel();
            a.set_lun_metadata("a", "vss:set-id", Some("s1")).unwrap();
            a.set_lun_metadata("b", "vss:set-id", Some("s1")).unwrap();
            a.set_lun_metadata("c", "vss:set-id", Some("s2")).unwrap();
            a.set_lun_metadata("a", "provider", Some("umbra")).unwrap();
            a.set_lun_metadata("a", "provider", Some("other")).unwrap();
            a.set_lun_metadata("b", "vss:set-id", None).unwrap();
            // Removing a key not there changes nothing.
            a.set_lun_metadata("b", "absent", None).unwrap();
            let got: Vec<_> = std::iter::from_fn(|| notes.try_recv()).collect();
            assert_eq!(got.len(), 7, "one LunModify per change: {got:?}");
            assert!(got
                .iter()
                .all(|n| matches!(n, vds_core::Delivery::Event(Notification::LunModify { .. }))));
            a.set_pool_metadata("writers", Some("sql;exchange"))
                .unwrap();
            a.set_pool_metadata("set-in-progress", Some("s3")).unwrap();
            a.set_pool_metadata("set-in-progress", None).unwrap();
            want_pool.insert("writers".to_string(), "sql;exchange".to_string());
            a.delete_lun("c").unwrap();
        }
        let a = Array::open(&pool).unwrap();
        assert_eq!(
            a.lun_metadata("a").unwrap(),
            map(&[("provider", "other"), ("vss:set-id", "s1")])
        );
        assert_eq!(a.lun_metadata("b").unwrap(), BTreeMap::new());
        assert_eq!(a.luns_with_metadata("vss:set-id", Some("s1")), vec!["a"]);
        assert_eq!(
            a.luns_with_metadata("vss:set-id", Some("s2")),
            Vec::<String>::new()
        );
        assert_eq!(a.luns_with_metadata("provider", None), vec!["a"]);
        assert_eq!(a.pool_metadata(), want_pool);
        // A LUN created again under a deleted one's name starts empty.
        a.create_lun("c", MB, &mask("*")).unwrap();
        assert_eq!(a.lun_metadata("c").unwrap(), BTreeMap::new());
        assert_eq!(
            a.lun_metadata("nope").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

/// Out of the limits: refused with InvalidArgument naming the key, nothing changed.
#[test]
fn metadata_limits_are_refused_with_clear_errors() {
    let a = array();
    let refused = |r: vds_core::Result<()>, says: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains(says), "{e:?} should say {says:?}");
    };
    refused(a.set_lun_metadata("a", "", Some("v")), "\"\"");
    refused(a.set_lun_metadata("a", "has space", Some("v")), "has space");
    refused(a.set_lun_metadata("a", &"k".repeat(129), Some("v")), "128");
    a.set_lun_metadata("a", &"k".repeat(128), Some("v"))
        .unwrap();
    refused(
        a.set_lun_metadata("a", "big", Some(&"v".repeat(4097))),
        "4097 bytes",
    );
    a.set_lun_metadata("a", "big", Some(&"v".repeat(4096)))
        .unwrap();
    refused(a.set_lun_metadata("a", "nul", Some("a\0b")), "NUL");
    for i in 0..62 {
        a.set_lun_metadata("a", &format!("k{i}"), Some("v"))
            .unwrap();
    }
    assert_eq!(a.lun_metadata("a").unwrap().len(), 64);
    refused(a.set_lun_metadata("a", "one-more", Some("v")), "one-more");
    // Replacing or removing a key at the limit is allowed.
    a.set_lun_metadata("a", "k0", Some("w")).unwrap();
    a.set_lun_metadata("a", "k0", None).unwrap();
    a.set_lun_metadata("a", "one-more", Some("v")).unwrap();
    assert_eq!(a.lun_metadata("a").unwrap().len(), 64);
    assert_eq!(
        a.set_lun_metadata("nope", "k", Some("v"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // The pool's map: 64 KiB values, 1,024 keys.
    refused(
        a.set_pool_metadata("w", Some(&"v".repeat((64 << 10) + 1))),
        "65537 bytes",
    );
    a.set_pool_metadata("w", Some(&"v".repeat(64 << 10)))
        .unwrap();
    for i in 1..1024 {
        a.set_pool_metadata(&format!("p{i}"), Some("v")).unwrap();
    }
    refused(a.set_pool_metadata("p-last", Some("v")), "p-last");
    assert_eq!(a.pool_metadata().len(), 1024);
}

/// A pool whose log is of format 3 (before metadata records) opens with every LUN and is
/// upgraded in place to format 4, after which metadata changes persist.
#[test]
fn a_log_of_format_3_opens_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    {
        let a = Array::open(&pool).unwrap();
        a.create_lun("a", MB, &mask("*")).unwrap();
        a.create_lun("b", MB, &mask(W1)).unwrap();
    }
    let log = pool.join("pool.log");
    let mut bytes = std::fs::read(&log).unwrap();
    assert_eq!(
        bytes[8..12],
        4u32.to_le_bytes(),
        "this build writes format 4"
    );
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&log, &bytes).unwrap();
    {
        let a = Array::open(&pool).unwrap();
        let names: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
        assert_eq!(names, vec!["a", "b"]);
        a.set_lun_metadata("b", "k", Some("v")).unwrap();
    }
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes[8..12], 4u32.to_le_bytes(), "upgraded to format 4");
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.lun_metadata("b").unwrap(), map(&[("k", "v")]));
    assert_eq!(a.get_mask("b").unwrap(), W1);
}
