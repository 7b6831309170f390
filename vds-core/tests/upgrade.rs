//! Pools written by the code before the pool's metadata got a checksum and intent records still
//! open: a pool image made by vds-core at commit 5dcac31 (tests/data/README.md) is opened,
//! upgraded in place (pool.state with its header, pool.log of version 4), and keeps every LUN,
//! mask, number, group, host, target and byte; an upgrade interrupted after each of its steps
//! still opens, whole.

mod images;

use std::path::{Path, PathBuf};

use vds_core::{Array, ErrorKind, InitiatorId, LunStatus};

const IMAGE: &str = "tests/data/pool-main-5dcac31.tar.gz";
const H1: &str = "iqn.2024-01.org.example:host1";
const H2: &str = "iqn.2024-01.org.example:host2";
const W: &str = "10000000c9000002";

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

/// The image unpacked into a new temporary directory: (the directory, its pool).
fn unpack() -> (tempfile::TempDir, PathBuf) {
    images::unpack(IMAGE)
}

fn block(a: &Array, lun: &str, who: &str, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    a.read_at(lun, &id(who), &mut buf, b * 4096)
        .unwrap_or_else(|e| panic!("{lun} block {b}: {e}"));
    buf
}

/// Everything the image's maker wrote (tests/data/README.md), as an independent expectation.
fn check_everything(a: &Array, what: &str) {
    let luns: Vec<(String, u64, String, u32, Option<String>, LunStatus)> = a
        .luns()
        .into_iter()
        .map(|l| (l.name, l.size, l.mask, l.number, l.source, l.status))
        .collect();
    let on = LunStatus::Online;
    assert_eq!(
        luns,
        [
            ("alpha".into(), 65536, "*".into(), 0, None, on),
            (
                "alpha-snap".into(),
                65536,
                H2.into(),
                3,
                Some("alpha".into()),
                on
            ),
            (
                "beta".into(),
                32768,
                format!("{W}=ro;@cluster"),
                1,
                None,
                on
            ),
            (
                "delta".into(),
                8192,
                format!("@backup;{H1}=ro"),
                4,
                None,
                on
            ),
            (
                "gamma".into(),
                16384,
                String::new(),
                2,
                None,
                LunStatus::Offline
            ),
        ],
        "{what}"
    );
    assert_eq!(a.groups(), [("cluster".to_string(), vec![id(H1), id(H2)])]);
    assert_eq!(a.hosts(), [("backup".to_string(), vec![id(W)])]);
    let t = a.targets();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, "t1");
    assert_eq!(t[0].portals, ["10.0.0.1:3260"]);
    assert_eq!(t[0].luns.iter().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(a.access("beta", &id(H1)).unwrap().unwrap().number, 7);
    assert_eq!(a.access("beta", &id(H2)).unwrap().unwrap().number, 100);
    for b in 0..16u64 {
        let want = if b == 0 { 0xEE } else { b as u8 + 1 };
        assert_eq!(
            block(a, "alpha", H1, b),
            vec![want; 4096],
            "{what}: alpha {b}"
        );
        let snap = match b {
            3 => 0x5A,
            _ => b as u8 + 1,
        };
        assert_eq!(
            block(a, "alpha-snap", H2, b),
            vec![snap; 4096],
            "{what}: snap {b}"
        );
    }
    for b in 0..8u64 {
        assert_eq!(
            block(a, "beta", H1, b),
            vec![0xB0 + b as u8; 4096],
            "{what}: beta {b}"
        );
    }
    for b in 0..2u64 {
        assert_eq!(
            block(a, "delta", W, b),
            vec![0xD1; 4096],
            "{what}: delta {b}"
        );
    }
    assert_eq!(
        a.read_at("gamma", &id(H1), &mut [0u8; 1], 0)
            .unwrap_err()
            .kind(),
        ErrorKind::AccessDenied
    );
    assert!(a.orphans().is_empty(), "{what}: {:?}", a.orphans());
    assert!(
        a.damaged_luns().is_empty(),
        "{what}: {:?}",
        a.damaged_luns()
    );
}

/// Files written over an unpacked pool: (name, bytes).
type Files<'a> = Vec<(&'a str, &'a [u8])>;

/// True if `pool`'s files are of this build's format.
fn upgraded(pool: &Path) -> bool {
    let state = std::fs::read(pool.join("pool.state")).unwrap();
    let log = std::fs::read(pool.join("pool.log")).unwrap();
    &state[..8] == b"UMBRAPST"
        && state[8..12] == 4u32.to_le_bytes()
        && log[8..12] == 6u32.to_le_bytes()
}

#[test]
fn a_pool_of_the_previous_format_opens_upgrades_in_place_and_keeps_everything() {
    let (_dir, pool) = unpack();
    assert!(!upgraded(&pool), "the image is of the previous format");
    let a = Array::open_existing(&pool).unwrap();
    check_everything(&a, "first open");
    assert!(upgraded(&pool));
    // It goes on as a pool of this format.
    a.write_at("alpha", &id(H1), &[0x11; 4096], 15 * 4096)
        .unwrap();
    a.create_lun("epsilon", 4096, &vds_core::MaskSpec::None)
        .unwrap();
    drop(a);
    let a = Array::open(&pool).unwrap();
    assert_eq!(block(&a, "alpha", H1, 15), vec![0x11; 4096]);
    assert_eq!(a.luns().len(), 6);
}

/// The upgrade is two durable renames (pool.state, then pool.log), each after writing and
/// syncing a temporary file. The files as a crash after each step leaves them open whole, and the
/// open finishes the upgrade.
#[test]
fn an_upgrade_interrupted_after_each_step_still_opens() {
    let (_done_dir, done) = unpack();
    drop(Array::open(&done).unwrap());
    let new_state = std::fs::read(done.join("pool.state")).unwrap();
    let new_log = std::fs::read(done.join("pool.log")).unwrap();
    // (name, files written over the old pool's)
    let steps: [(&str, Files); 4] = [
        (
            "state written to its temporary file",
            vec![("pool.state.tmp", &new_state)],
        ),
        (
            "state renamed, log still old",
            vec![("pool.state", &new_state)],
        ),
        (
            "log written to its temporary file",
            vec![("pool.state", &new_state), ("pool.log.tmp", &new_log)],
        ),
        (
            "log renamed",
            vec![("pool.state", &new_state), ("pool.log", &new_log)],
        ),
    ];
    for (step, files) in steps {
        let (_dir, pool) = unpack();
        for (name, bytes) in files {
            std::fs::write(pool.join(name), bytes).unwrap();
        }
        let a = Array::open(&pool).unwrap_or_else(|e| panic!("{step}: {e}"));
        check_everything(&a, step);
        assert!(upgraded(&pool), "{step}");
        drop(a);
        check_everything(&Array::open(&pool).unwrap(), step);
    }
}
