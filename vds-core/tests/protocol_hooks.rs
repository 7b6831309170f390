//! What the shadow-copy protocol needs from the array: freeze and thaw of a set of LUNs through
//! the array (all or none, one deadline) and how a freeze meets a fenced access change.

mod common;
use common::{copy_dir, frame_ends};

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
            assert_eq!(got.len(), 7, "one notification per change: {got:?}");
            assert!(got.iter().all(|n| matches!(
                n,
                vds_core::Delivery::Event(Notification::LunMetadataChanged { .. })
            )));
            assert_eq!(
                got[6],
                vds_core::Delivery::Event(Notification::LunMetadataChanged {
                    name: "b".into(),
                    key: "absent".into(),
                    value: None
                })
            );
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
        6u32.to_le_bytes(),
        "this build writes format 6"
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
    assert_eq!(bytes[8..12], 6u32.to_le_bytes(), "upgraded to format 6");
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.lun_metadata("b").unwrap(), map(&[("k", "v")]));
    assert_eq!(a.get_mask("b").unwrap(), W1);
}

// ---- snapshot sets ----

fn pattern(b: u8) -> Vec<u8> {
    vec![b; 4096]
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    map(pairs)
}

/// Engine snapshots on LUN `name`'s volume.
fn engine_snapshots(a: &Array, name: &str) -> usize {
    a.lun_stats(name).unwrap().snapshots
}

#[test]
fn a_snapshot_set_is_one_instant_read_only_until_broken_and_deleted_whole() {
    let a = array();
    a.write_at("a", &id(W1), &pattern(1), 0).unwrap();
    a.write_at("b", &id(W1), &pattern(2), 0).unwrap();
    let set = a
        .snapshot_set(
            &[("a", "a-sh"), ("b", "b-sh")],
            &meta(&[("provider", "umbra")]),
        )
        .unwrap();
    a.write_at("a", &id(W1), &pattern(9), 0).unwrap();
    assert_eq!(a.snapshot_set_luns(&set), vec!["a-sh", "b-sh"]);
    for (sh, src, b) in [("a-sh", "a", 1u8), ("b-sh", "b", 2u8)] {
        assert!(a.is_shadow(sh).unwrap());
        assert_eq!(a.get_mask(sh).unwrap(), "", "masked to no one");
        assert_eq!(a.lun(sh).unwrap().source.as_deref(), Some(src));
        assert_eq!(
            a.lun_metadata(sh).unwrap(),
            map(&[("provider", "umbra"), ("umbra:snapshot-set", set.as_str())])
        );
        a.set_mask(sh, &mask(W1)).unwrap();
        let mut buf = vec![0u8; 4096];
        a.read_at(sh, &id(W1), &mut buf, 0).unwrap();
        assert_eq!(buf, pattern(b), "{sh} holds its source as of the set");
        // Read-only until broken: by name and through a handle.
        let e = a.write_at(sh, &id(W1), &pattern(5), 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
        let number = a.access(sh, &id(W1)).unwrap().unwrap().number;
        let h = a.open_lun(&id(W1), number).unwrap();
        assert_eq!(
            h.write_at(&pattern(5), 0).unwrap_err().kind(),
            ErrorKind::AccessDenied
        );
    }
    assert_eq!(
        a.luns_with_metadata("umbra:snapshot-set", Some(&set)).len(),
        2
    );
    // swap_lun refuses a shadow not yet broken.
    assert_eq!(
        a.swap_lun("b", "b-sh").unwrap_err().kind(),
        ErrorKind::BadState
    );
    // Break one: it is writable, out of the set, and swappable.
    let number = a.access("a-sh", &id(W1)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W1), number).unwrap();
    a.break_shadow("a-sh").unwrap();
    assert_eq!(
        a.break_shadow("a-sh").unwrap_err().kind(),
        ErrorKind::BadState
    );
    h.write_at(&pattern(6), 0).unwrap();
    a.write_at("a-sh", &id(W1), &pattern(7), 0).unwrap();
    assert!(!a.is_shadow("a-sh").unwrap());
    assert_eq!(
        a.lun_metadata("a-sh").unwrap(),
        map(&[("provider", "umbra")])
    );
    assert_eq!(a.snapshot_set_luns(&set), vec!["b-sh"]);
    // Deleting the set deletes its unbroken LUNs only, and their engine snapshots.
    assert_eq!(engine_snapshots(&a, "b"), 1);
    assert_eq!(a.delete_snapshot_set(&set).unwrap(), vec!["b-sh"]);
    assert_eq!(a.lun("b-sh").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(engine_snapshots(&a, "b"), 0);
    assert!(a.lun("a-sh").is_ok());
    assert_eq!(
        a.delete_snapshot_set(&set).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_snapshot_set_that_fails_leaves_nothing() {
    let a = array();
    let before: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
    type Case<'a> = (Vec<(&'a str, &'a str)>, BTreeMap<String, String>, ErrorKind);
    let cases: Vec<Case> = vec![
        (
            vec![("a", "x"), ("nope", "y")],
            meta(&[]),
            ErrorKind::NotFound,
        ),
        (
            vec![("a", "x"), ("b", "c")],
            meta(&[]),
            ErrorKind::AlreadyExists,
        ),
        (
            vec![("a", "x"), ("b", "x")],
            meta(&[]),
            ErrorKind::InvalidArgument,
        ),
        (
            vec![("a", "x"), ("a", "y")],
            meta(&[]),
            ErrorKind::InvalidArgument,
        ),
        (
            vec![("a", "x")],
            meta(&[("bad key", "v")]),
            ErrorKind::InvalidArgument,
        ),
        (
            vec![("a", "x")],
            meta(&[("umbra:snapshot-set", "v")]),
            ErrorKind::InvalidArgument,
        ),
        (vec![], meta(&[]), ErrorKind::InvalidArgument),
    ];
    for (luns, md, kind) in cases {
        let e = a.snapshot_set(&luns, &md).unwrap_err();
        assert_eq!(e.kind(), kind, "{luns:?}: {e}");
        let now: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
        assert_eq!(now, before, "{luns:?}");
        for n in ["a", "b", "c"] {
            assert_eq!(engine_snapshots(&a, n), 0, "{luns:?}: {n}");
            assert!(!a.is_lun_frozen(n).unwrap());
        }
    }
}

/// Writes held by the set's freeze land after it, not in the shadow; a writer that keeps writing
/// through the set is never refused.
#[test]
fn a_snapshot_set_under_concurrent_writes_is_consistent() {
    let a = array();
    a.write_at("a", &id(W1), &[1u8; 8192], 0).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, stop) = (a.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                // The same byte in both blocks: a consistent instant shows them equal.
                let b = (n % 250) as u8 + 2;
                a.write_at("a", &id(W1), &[b; 8192], 0).unwrap();
                n += 1;
            }
            n
        })
    };
    for round in 0..20 {
        let set = a
            .snapshot_set(&[("a", &format!("s{round}"))], &BTreeMap::new())
            .unwrap();
        let sh = format!("s{round}");
        a.set_mask(&sh, &mask(R1)).unwrap();
        let mut buf = vec![0u8; 8192];
        a.read_at(&sh, &id(R1), &mut buf, 0).unwrap();
        assert!(
            buf.iter().all(|&x| x == buf[0]),
            "round {round}: a write split by the set's instant"
        );
        a.delete_snapshot_set(&set).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

/// A crash anywhere in a snapshot set: the pool log cut at each frame boundary the set wrote
/// (its files all on disk, as after a crash before the record was durable) opens as the old
/// state (no shadow LUN, no engine snapshot, no LUN directory left, nothing orphaned) or the new
/// one (every shadow LUN, its data, its metadata).
#[test]
fn a_snapshot_set_is_crash_atomic_at_every_frame_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let pre = dir.path().join("pre");
    let before_len;
    {
        let a = Array::open(&pool).unwrap();
        for (n, b) in [("a", 1u8), ("b", 2u8)] {
            a.create_lun(n, MB, &mask(&format!("{W1};{R1}=ro")))
                .unwrap();
            a.write_at(n, &id(W1), &pattern(b), 0).unwrap();
            let number = a.access(n, &id(W1)).unwrap().unwrap().number;
            a.open_lun(&id(W1), number).unwrap().flush().unwrap();
        }
        before_len = std::fs::metadata(pool.join("pool.log")).unwrap().len() as usize;
        copy_dir(&pool, &pre);
        a.snapshot_set(&[("a", "a-sh"), ("b", "b-sh")], &meta(&[("k", "v")]))
            .unwrap();
    }
    let log = std::fs::read(pool.join("pool.log")).unwrap();
    let frames = frame_ends(&log);
    // The set creates engine snapshots and directories only once every intent (and the mark
    // closing its write) is durable: a crash before that finds the files as they were before the
    // set; one after it finds them made.
    let last_begin = frames.iter().rposition(|&(_, begin)| begin).unwrap();
    let files_from = frames[last_begin + 1].0;
    let cuts: Vec<usize> = frames
        .into_iter()
        .map(|(e, _)| e)
        .filter(|&e| e >= before_len)
        .collect();
    assert_eq!(*cuts.last().unwrap(), log.len(), "the log ends on a frame");
    assert!(
        cuts.len() >= 4,
        "two intents and a record, each with its mark: {cuts:?}"
    );
    let (mut old, mut new) = (0, 0);
    for cut in cuts {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pool");
        copy_dir(if cut < files_from { &pre } else { &pool }, &p);
        std::fs::write(p.join("pool.log"), &log[..cut]).unwrap();
        let a = Array::open(&p).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let names: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
        assert!(a.orphans().is_empty(), "cut at {cut}: {:?}", a.orphans());
        assert!(a.damaged_luns().is_empty(), "cut at {cut}");
        let dirs = std::fs::read_dir(p.join("luns")).unwrap().count();
        assert_eq!(dirs, names.len(), "cut at {cut}: a LUN directory left over");
        if names == ["a", "b"] {
            old += 1;
            assert_eq!(
                engine_snapshots(&a, "a") + engine_snapshots(&a, "b"),
                0,
                "cut at {cut}"
            );
        } else {
            new += 1;
            assert_eq!(names, ["a", "a-sh", "b", "b-sh"], "cut at {cut}");
            for (sh, b) in [("a-sh", 1u8), ("b-sh", 2u8)] {
                assert!(a.is_shadow(sh).unwrap());
                assert_eq!(
                    a.lun_metadata(sh).unwrap().get("k").map(String::as_str),
                    Some("v")
                );
                a.set_mask(sh, &mask(R1)).unwrap();
                let mut buf = vec![0u8; 4096];
                a.read_at(sh, &id(R1), &mut buf, 0).unwrap();
                assert_eq!(buf, pattern(b), "cut at {cut}: {sh}");
            }
        }
        // Each source's own data is intact either way.
        assert_eq!(read(&a, "a"), pattern(1));
        assert_eq!(read(&a, "b"), pattern(2));
    }
    assert!(old >= 3 && new >= 1, "old {old}, new {new}");
}

/// Snapshot LUNs are listed with their source and their set.
#[test]
fn snapshot_luns_are_listed_with_their_set() {
    let a = array();
    a.snapshot_lun("a", "plain").unwrap();
    let s1 = a
        .snapshot_set(&[("a", "s1-a"), ("b", "s1-b")], &BTreeMap::new())
        .unwrap();
    let s2 = a.snapshot_set(&[("a", "s2-a")], &BTreeMap::new()).unwrap();
    assert_ne!(s1, s2);
    a.break_shadow("s2-a").unwrap();
    assert_eq!(
        a.snapshot_luns_of("a").unwrap(),
        vec![
            ("plain".to_string(), None),
            ("s1-a".to_string(), Some(s1.clone())),
            ("s2-a".to_string(), None),
        ]
    );
    assert_eq!(
        a.snapshot_luns_of("b").unwrap(),
        vec![("s1-b".to_string(), Some(s1))]
    );
    assert_eq!(a.snapshot_luns_of("c").unwrap(), vec![]);
    assert_eq!(
        a.snapshot_luns_of("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
