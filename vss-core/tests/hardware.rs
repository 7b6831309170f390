//! The hardware provider on the embedded array: the provider sequence called directly, all or
//! none on failure, shadows listed from the pool after a reopen, freeze consistency.

mod hardware_common;
use hardware_common::*;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_core::{Array, MaskSpec};
use vss_core::provider::hardware::{KEY_PROVIDER, KEY_SET, MAX_VOLUMES_PER_SET};
use vss_core::{
    Attributes, ErrorKind, Exposure, HardwareProvider, Provider, ProviderType, SnapshotState,
};

/// An array with LUNs `db` (4 MiB) and `log` (1 MiB), read-write to host A, each block 0 and 1
/// written.
fn array() -> Array {
    let a = Array::in_memory();
    for (lun, size) in [("db", 4 * MB), ("log", MB)] {
        a.create_lun(lun, size, &mask(HOST_A)).unwrap();
        let h = open_as(&a, HOST_A, lun);
        h.write_at(&block(0, 1), 0).unwrap();
        h.write_at(&block(1, 1), BS).unwrap();
    }
    a
}

/// Reads block `n` of shadow LUN `lun` as a throwaway reader host (unmasked for the read, then
/// masked back to no one).
fn peek(a: &Array, lun: &str, n: u64) -> Vec<u8> {
    const PEEK: &str = "iqn.2024-01.org.example:peek";
    a.set_mask(lun, &mask(PEEK)).unwrap();
    let b = read_block(&open_as(a, PEEK, lun), n);
    a.set_mask(lun, &MaskSpec::None).unwrap();
    b
}

#[test]
fn the_provider_sequence_makes_one_set_of_hidden_read_only_shadow_luns() {
    let a = array();
    // The coordinator holds its providers as trait objects shared between threads.
    let hw: Arc<dyn Provider> = Arc::new(HardwareProvider::new(a.clone()));
    assert_eq!(hw.provider_type(), ProviderType::Hardware);
    assert_eq!(hw.id(), HardwareProvider::ID);
    let before = std::time::SystemTime::now();
    let (set_id, reqs, props) = make_set(hw.as_ref(), &["db", "log"], Attributes::TRANSPORTABLE);
    // The originals move on; the shadows keep the instant.
    for lun in ["db", "log"] {
        open_as(&a, HOST_A, lun).write_at(&block(0, 9), 0).unwrap();
    }
    assert_eq!(props.len(), 2);
    for ((p, r), lun) in props.iter().zip(&reqs).zip(["db", "log"]) {
        let name = HardwareProvider::shadow_lun_name(lun, r.shadow_id);
        assert_eq!(
            name,
            format!("{lun}.shadow-{}", &r.shadow_id.simple().to_string()[..8])
        );
        assert_eq!(p.shadow_id, r.shadow_id);
        assert_eq!(p.set_id, set_id);
        assert_eq!(p.count_in_set, 2);
        assert_eq!(p.original.name, lun);
        assert_eq!(p.shadow.name, name);
        assert_eq!(p.shadow.size, a.lun(lun).unwrap().size);
        assert_eq!(p.provider_id, HardwareProvider::ID);
        assert_eq!(p.provider_type, ProviderType::Hardware);
        assert_eq!(
            p.attributes,
            Attributes::TRANSPORTABLE | Attributes::HARDWARE_ASSISTED
        );
        assert_eq!(p.state, SnapshotState::Created);
        assert_eq!(p.exposure, Exposure::Hidden);
        assert!(p.created >= before && p.created <= std::time::SystemTime::now());
        // Masked to no one, a shadow of the set (read-only until broken), its source the LUN.
        assert_eq!(a.get_mask(&name).unwrap(), "");
        assert!(a.is_shadow(&name).unwrap());
        assert_eq!(a.lun(&name).unwrap().source.as_deref(), Some(lun));
        let md = a.lun_metadata(&name).unwrap();
        assert_eq!(md[KEY_SET], set_id.to_string());
        assert_eq!(md[KEY_PROVIDER], HardwareProvider::ID.to_string());
        assert_eq!(peek(&a, &name, 0), block(0, 1), "{name} holds the instant");
        assert_eq!(peek(&a, &name, 1), block(1, 1));
        assert_eq!(peek(&a, &name, 2), vec![0u8; BS as usize]);
    }
    // One array snapshot set holds both.
    let sets: Vec<_> = ["db", "log"]
        .iter()
        .map(|l| a.snapshot_luns_of(l).unwrap()[0].1.clone().unwrap())
        .collect();
    assert_eq!(sets[0], sets[1]);
    assert_eq!(a.snapshot_set_luns(&sets[0]).len(), 2);
    // Read-only until broken, even to a host it is unmasked to.
    a.set_mask(&props[0].shadow.name, &mask(HOST_A)).unwrap();
    let h = open_as(&a, HOST_A, &props[0].shadow.name);
    assert_eq!(
        h.write_at(&block(0, 5), 0).unwrap_err().kind(),
        vds_core::ErrorKind::AccessDenied
    );
    a.set_mask(&props[0].shadow.name, &MaskSpec::None).unwrap();
    // The registry is the pool: listed, in the set's order.
    let mut listed = hw.shadows().unwrap();
    listed.sort_by_key(|p| p.original.name.clone());
    assert_eq!(listed, props);
    // Delete one: gone from the array and the list; an unknown id is NotFound.
    hw.delete(props[1].shadow_id).unwrap();
    assert!(a.lun(&props[1].shadow.name).is_err());
    assert_eq!(hw.shadows().unwrap(), vec![props[0].clone()]);
    assert_eq!(
        hw.delete(props[1].shadow_id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Abort of the set deletes what is left; a second abort is no error.
    hw.abort(set_id).unwrap();
    hw.abort(set_id).unwrap();
    assert!(hw.shadows().unwrap().is_empty());
    assert_eq!(lun_names(&a), vec!["db", "log"]);
    assert!(a.snapshot_luns_of("db").unwrap().is_empty());
}

#[test]
fn calls_out_of_sequence_are_bad_state_and_change_nothing() {
    let a = array();
    let hw = HardwareProvider::new(a.clone());
    let set_id = Uuid::new_v4();
    let r = request(set_id, "db", Attributes::empty(), 1);
    let bad = |e: vss_core::Error| assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    bad(hw.end_prepare(set_id, Instant::now() + LONG).unwrap_err());
    bad(hw.commit(set_id, LONG).unwrap_err());
    hw.begin_prepare(&r).unwrap();
    bad(hw.pre_commit(set_id).unwrap_err());
    bad(hw.commit(set_id, LONG).unwrap_err());
    bad(hw.post_commit(set_id).unwrap_err());
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    // No volume may join a set once it is prepared.
    bad(hw
        .begin_prepare(&request(set_id, "log", Attributes::empty(), 1))
        .unwrap_err());
    bad(hw.commit(set_id, LONG).unwrap_err());
    hw.pre_commit(set_id).unwrap();
    bad(hw.post_commit(set_id).unwrap_err());
    assert_eq!(lun_names(&a), vec!["db", "log"]);
    hw.commit(set_id, LONG).unwrap();
    bad(hw.commit(set_id, LONG).unwrap_err());
    assert_eq!(hw.post_commit(set_id).unwrap().len(), 1);
    bad(hw.post_commit(set_id).unwrap_err());
    // end_prepare of an empty set, or after its deadline.
    let other = Uuid::new_v4();
    hw.begin_prepare(&request(other, "log", Attributes::empty(), 1))
        .unwrap();
    let e = hw
        .end_prepare(other, Instant::now() - Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // A new begin_prepare for another set starts a new sequence.
    let third = Uuid::new_v4();
    hw.begin_prepare(&request(third, "log", Attributes::empty(), 1))
        .unwrap();
    bad(hw.pre_commit(other).unwrap_err());
    hw.end_prepare(third, Instant::now() + LONG).unwrap();
    hw.abort(third).unwrap();
    bad(hw.pre_commit(third).unwrap_err());
    assert_eq!(hw.shadows().unwrap().len(), 1);
}

/// Sets are told apart by id: two coordinators sharing the provider make sets of different LUNs
/// with their calls interleaved, and an abort of one leaves the other.
#[test]
fn interleaved_sets_are_made_independently() {
    let a = array();
    let hw = HardwareProvider::new(a.clone());
    let (s1, s2, s3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (r1, r2, r3) = (
        request(s1, "db", Attributes::empty(), 1),
        request(s2, "log", Attributes::empty(), 1),
        request(s3, "log", Attributes::empty(), 1),
    );
    hw.begin_prepare(&r1).unwrap();
    hw.begin_prepare(&r2).unwrap();
    hw.begin_prepare(&r3).unwrap();
    hw.end_prepare(s2, Instant::now() + LONG).unwrap();
    hw.end_prepare(s1, Instant::now() + LONG).unwrap();
    hw.abort(s3).unwrap();
    hw.pre_commit(s2).unwrap();
    hw.pre_commit(s1).unwrap();
    hw.commit(s2, LONG).unwrap();
    open_as(&a, HOST_A, "db").write_at(&block(0, 4), 0).unwrap();
    hw.commit(s1, LONG).unwrap();
    let p1 = hw.post_commit(s1).unwrap();
    let p2 = hw.post_commit(s2).unwrap();
    assert_eq!((p1[0].set_id, p1[0].shadow_id), (s1, r1.shadow_id));
    assert_eq!((p2[0].set_id, p2[0].shadow_id), (s2, r2.shadow_id));
    assert_eq!(peek(&a, &p1[0].shadow.name, 0), block(0, 4));
    assert_eq!(hw.shadows().unwrap().len(), 2);
    assert_eq!(
        hw.pre_commit(s3).unwrap_err().kind(),
        ErrorKind::BadState,
        "aborted"
    );
    hw.abort(s2).unwrap();
    assert_eq!(hw.shadows().unwrap(), p1);
}

/// The LUNs and engine snapshots of `a`, to compare before and after a failed set.
fn inventory(a: &Array) -> Vec<(String, usize, bool)> {
    a.luns()
        .into_iter()
        .map(|l| {
            let snaps = a.snapshot_luns_of(&l.name).unwrap().len();
            let frozen = a.is_lun_frozen(&l.name).unwrap();
            (l.name, snaps, frozen)
        })
        .collect()
}

#[test]
fn a_set_that_fails_leaves_nothing_of_it() {
    let a = array();
    let hw = HardwareProvider::new(a.clone());
    let before = inventory(&a);
    // An unknown LUN: not supported, refused at begin_prepare, naming it.
    assert!(!hw.is_volume_supported("nope", Default::default()).unwrap());
    let set_id = Uuid::new_v4();
    hw.begin_prepare(&request(set_id, "db", Attributes::empty(), 2))
        .unwrap();
    let e = hw
        .begin_prepare(&request(set_id, "nope", Attributes::empty(), 2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VolumeNotSupported);
    assert!(e.to_string().contains("\"nope\""), "{e}");
    // The same LUN twice, and a shadow id whose short form another one of the set has.
    let e = hw
        .begin_prepare(&request(set_id, "db", Attributes::empty(), 2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let first = request(set_id, "log", Attributes::empty(), 2);
    let mut twin = request(set_id, "db", Attributes::empty(), 2);
    // The same first 32 bits as the first request's id: the same shadow LUN name suffix.
    twin.shadow_id = Uuid::from_u128(
        (first.shadow_id.as_u128() & !((1u128 << 96) - 1)) | (twin.shadow_id.as_u128() >> 32),
    );
    let set_id = Uuid::new_v4();
    let (first, twin) = (
        vss_core::ShadowRequest { set_id, ..first },
        vss_core::ShadowRequest { set_id, ..twin },
    );
    hw.begin_prepare(&first).unwrap();
    let e = hw.begin_prepare(&twin).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("first 8 hex digits"), "{e}");
    hw.abort(set_id).unwrap();

    // A name clash at commit: the second shadow LUN's name is taken. Nothing of the set stays:
    // no shadow LUN, no engine snapshot, no LUN left frozen.
    let set_id = Uuid::new_v4();
    let (r1, r2) = (
        request(set_id, "db", Attributes::empty(), 2),
        request(set_id, "log", Attributes::empty(), 2),
    );
    let clash = HardwareProvider::shadow_lun_name("log", r2.shadow_id);
    a.create_lun(&clash, MB, &MaskSpec::None).unwrap();
    let before_clash = inventory(&a);
    hw.begin_prepare(&r1).unwrap();
    hw.begin_prepare(&r2).unwrap();
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    hw.pre_commit(set_id).unwrap();
    let e = hw.commit(set_id, LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains(&clash), "{e}");
    assert_eq!(inventory(&a), before_clash);
    assert!(hw.shadows().unwrap().is_empty());
    hw.abort(set_id).unwrap();
    a.delete_lun(&clash).unwrap();
    assert_eq!(inventory(&a), before);

    // A LUN deleted between prepare and pre-commit: a veto, nothing made.
    a.create_lun("tmp", MB, &MaskSpec::None).unwrap();
    let before_tmp = inventory(&a);
    let set_id = Uuid::new_v4();
    hw.begin_prepare(&request(set_id, "db", Attributes::empty(), 2))
        .unwrap();
    hw.begin_prepare(&request(set_id, "tmp", Attributes::empty(), 2))
        .unwrap();
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    a.delete_lun("tmp").unwrap();
    let e = hw.pre_commit(set_id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProviderVeto, "{e}");
    assert!(e.to_string().contains("\"tmp\""), "{e}");
    hw.abort(set_id).unwrap();
    assert_eq!(inventory(&a), before);
    assert_ne!(inventory(&a), before_tmp);

    // A commit that outlasts its hold window: HoldWritesTimeout, and the set is gone.
    let set_id = Uuid::new_v4();
    hw.begin_prepare(&request(set_id, "db", Attributes::empty(), 1))
        .unwrap();
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    hw.pre_commit(set_id).unwrap();
    let e = hw.commit(set_id, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HoldWritesTimeout, "{e}");
    assert_eq!(inventory(&a), before);
    assert!(hw.shadows().unwrap().is_empty());
}

#[test]
fn a_damaged_lun_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let bad_id = {
        let a = Array::open(&pool).unwrap();
        a.create_lun("good", MB, &mask(HOST_A)).unwrap();
        a.create_lun("bad", MB, &mask(HOST_A)).unwrap();
        a.lun("bad").unwrap().id
    };
    // The volume's size was never made durable: the LUN opens damaged.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(
            pool.join("luns")
                .join(bad_id.to_string())
                .join("origin.img"),
        )
        .unwrap();
    f.set_len(16 * KB).unwrap();
    drop(f);
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.damaged_luns().len(), 1);
    let hw = HardwareProvider::new(a.clone());
    assert!(hw.is_volume_supported("good", Default::default()).unwrap());
    assert!(!hw.is_volume_supported("bad", Default::default()).unwrap());
    let set_id = Uuid::new_v4();
    hw.begin_prepare(&request(set_id, "good", Attributes::empty(), 2))
        .unwrap();
    let e = hw
        .begin_prepare(&request(set_id, "bad", Attributes::empty(), 2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VolumeNotSupported, "{e}");
    // The set goes on without it, or is aborted: either way the damaged LUN has no shadow.
    hw.abort(set_id).unwrap();
    assert_eq!(lun_names(&a), vec!["bad", "good"]);
}

#[test]
fn a_set_holds_at_most_64_volumes_and_an_unbroken_shadow_is_not_shadowed() {
    let a = Array::in_memory();
    let hw = HardwareProvider::new(a.clone());
    let set_id = Uuid::new_v4();
    for i in 0..=MAX_VOLUMES_PER_SET {
        let lun = format!("l{i}");
        a.create_lun(&lun, 64 * KB, &MaskSpec::None).unwrap();
        let r = hw.begin_prepare(&request(set_id, &lun, Attributes::empty(), 65));
        if i < MAX_VOLUMES_PER_SET {
            r.unwrap();
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::MaxVolumesReached, "{e}");
        }
    }
    hw.abort(set_id).unwrap();
    let (_, _, props) = make_set(&hw, &["l0"], Attributes::empty());
    assert!(!hw
        .is_volume_supported(&props[0].shadow.name, Default::default())
        .unwrap());
}

#[test]
fn shadows_are_listed_from_the_pool_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let (set_id, props) = {
        let a = Array::open(&pool).unwrap();
        a.create_lun("db", MB, &mask(HOST_A)).unwrap();
        // A long LUN name: its shadow LUN's name is cut to fit the array's 64.
        let long = "a-very-long-lun-name-that-goes-on-and-on-and-on-and-on-x";
        a.create_lun(long, MB, &mask(HOST_A)).unwrap();
        open_as(&a, HOST_A, "db").write_at(&block(0, 3), 0).unwrap();
        let hw = HardwareProvider::new(a.clone());
        let (set_id, _, props) = make_set(
            &hw,
            &["db", long],
            Attributes::PERSISTENT | Attributes::NO_AUTO_RELEASE,
        );
        assert_eq!(props[1].shadow.name.len(), 64);
        assert!(props[1].shadow.name.starts_with(&long[..48]));
        // Another provider's metadata or a LUN of the array that is no shadow is not listed.
        a.set_lun_metadata("db", KEY_SET, Some(&set_id.to_string()))
            .unwrap();
        (set_id, props)
    };
    let a = Array::open(&pool).unwrap();
    let hw = HardwareProvider::new(a.clone());
    let mut listed = hw.shadows().unwrap();
    listed.sort_by_key(|p| p.original.name.clone());
    let mut want = props.clone();
    want.sort_by_key(|p| p.original.name.clone());
    assert_eq!(listed, want, "the same properties, to the nanosecond");
    assert_eq!(peek(&a, &props[0].shadow.name, 0), block(0, 3));
    // Abort after a reopen still finds the set in the pool.
    hw.abort(set_id).unwrap();
    assert!(hw.shadows().unwrap().is_empty());
    drop((hw, a));
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.luns().len(), 2);
}

/// A writer thread writes block after block through a `LunHandle` until the set is made: the
/// shadow holds exactly a prefix of its writes, every one it had acknowledged before the commit
/// and none it had not yet issued when the commit returned, each block whole.
#[test]
fn the_shadow_holds_what_was_acknowledged_before_the_freeze() {
    let a = Array::in_memory();
    const BLOCKS: u64 = 256;
    a.create_lun("db", BLOCKS * BS, &mask(HOST_A)).unwrap();
    let hw = HardwareProvider::new(a.clone());
    for round in 0..8u8 {
        // `acked` counts the writes that have returned; the writer writes block n, then
        // publishes n + 1 (Release, so a reader who sees n + 1 also sees the write done).
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let fill = round + 1;
        let writer = {
            let (h, acked, stop) = (open_as(&a, HOST_A, "db"), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for n in 0..BLOCKS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    h.write_at(&block(n, fill), n * BS).unwrap();
                    acked.store(n + 1, Ordering::Release);
                }
            })
        };
        // Let the writer get going (a condition, not a sleep).
        while acked.load(Ordering::Acquire) < 4 {
            std::thread::yield_now();
        }
        let at_start = acked.load(Ordering::Acquire);
        let set_id = Uuid::new_v4();
        let r = request(set_id, "db", Attributes::empty(), 1);
        hw.begin_prepare(&r).unwrap();
        hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
        hw.pre_commit(set_id).unwrap();
        hw.commit(set_id, LONG).unwrap();
        let at_end = acked.load(Ordering::Acquire);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let props = hw.post_commit(set_id).unwrap();
        let name = &props[0].shadow.name;
        a.set_mask(name, &mask(HOST_B)).unwrap();
        let h = open_as(&a, HOST_B, name);
        // The shadow's prefix: blocks of this round's fill, then the previous round's.
        let old = |n: u64| {
            if round == 0 {
                vec![0u8; BS as usize]
            } else {
                block(n, round)
            }
        };
        let mut prefix = 0;
        while prefix < BLOCKS && read_block(&h, prefix) == block(prefix, fill) {
            prefix += 1;
        }
        for n in prefix..BLOCKS {
            assert_eq!(
                read_block(&h, n),
                old(n),
                "round {round}: block {n} after the prefix"
            );
        }
        assert!(
            at_start <= prefix && prefix <= at_end + 1,
            "round {round}: the shadow holds {prefix} writes; {at_start} were acknowledged before the commit, {at_end} when it returned"
        );
        hw.delete(props[0].shadow_id).unwrap();
        // Finish the round's fill so the next round starts from a known state.
        let h = open_as(&a, HOST_A, "db");
        for n in 0..BLOCKS {
            h.write_at(&block(n, fill), n * BS).unwrap();
        }
    }
}
