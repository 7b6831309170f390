//! A pool of the CURRENT formats (pool log 6, `pool.state` 4, checkpoint JSON 5), made by
//! [`make_pool`] with this code and checked in as `tests/data/pool-log6-state4.tar.gz`: every
//! kind of thing the pool records is in it (LUNs with masks, numbers and a host number, an
//! offline LUN, a volatile LUN, a snapshot LUN, a snapshot set with one shadow LUN broken out of
//! it, an engine shadow exposed as a LUN, groups, hosts, a target, LUN and pool metadata, a
//! deleted LUN, a checkpoint with a log after it). The test opens it and checks every part
//! against expectations written here, so the next format change is tested against a pool of
//! this one (and must keep it opening, or say why not).
//!
//! To make the image again (only when this format is still current and the maker changed):
//! `cargo test -p vds-core --test format_image -- --ignored make_the_image`.

mod images;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vds_core::{Array, ErrorKind, InitiatorId, LunOptions, LunStatus, MaskSpec};

const IMAGE: &str = "tests/data/pool-log6-state4.tar.gz";
const H1: &str = "iqn.2024-01.org.example:host1";
const H2: &str = "iqn.2024-01.org.example:host2";
const W: &str = "10000000c9000002";
const BS: u64 = 4096;

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// Writes block `b` of LUN `lun` as `who`, filled with `byte`.
fn put(a: &Array, lun: &str, who: &str, b: u64, byte: u8) {
    a.write_at(lun, &id(who), &[byte; BS as usize], b * BS)
        .unwrap();
}

/// Makes LUN `lun`'s writes durable through a handle of `who`.
fn flush(a: &Array, lun: &str, who: &str) {
    let n = a.access(lun, &id(who)).unwrap().unwrap().number;
    a.open_lun(&id(who), n).unwrap().flush().unwrap();
}

/// The pool the image holds, made in `pool` (a missing or empty directory).
fn make_pool(pool: &Path) {
    let a = Array::open(pool).unwrap();
    // A checkpoint every 8 changes: pool.state holds the first part, the log the rest.
    a.set_checkpoint_interval(8).unwrap();
    a.set_group("cluster", &[id(H1), id(H2)]).unwrap();
    a.set_host("backup", &[id(W)]).unwrap();
    a.create_lun("alpha", 64 << 10, &mask("*")).unwrap();
    a.create_lun("beta", 32 << 10, &mask(&format!("@cluster;{W}=ro")))
        .unwrap();
    a.create_lun("gamma", 16 << 10, &MaskSpec::None).unwrap();
    a.create_lun_with("vol", 16 << 10, &mask(H1), LunOptions { volatile: true })
        .unwrap();
    a.create_lun("temp", 8 << 10, &MaskSpec::None).unwrap();
    a.set_host_number("beta", &id(H1), 7).unwrap();
    for b in 0..16 {
        put(&a, "alpha", H1, b, b as u8 + 1);
    }
    for b in 0..8 {
        put(&a, "beta", H2, b, 0xB0 + b as u8);
    }
    put(&a, "vol", H1, 2, 0x77);
    flush(&a, "alpha", H1);
    flush(&a, "beta", H2);
    flush(&a, "vol", H1);
    a.snapshot_lun("alpha", "alpha-snap").unwrap();
    put(&a, "alpha", H1, 0, 0xEE);
    a.set_mask("alpha-snap", &mask(H2)).unwrap();
    put(&a, "alpha-snap", H2, 3, 0x5A);
    a.set_online("gamma", false).unwrap();
    a.create_target("t1", "iqn.2024-01.org.example:t1", &["10.0.0.1:3260"])
        .unwrap();
    a.associate_targets("beta", &["t1"], false).unwrap();
    let meta = BTreeMap::from([("app".to_string(), "db".to_string())]);
    let set = a
        .snapshot_set(&[("beta", "beta-s1"), ("alpha", "alpha-s1")], &meta)
        .unwrap();
    assert_eq!(set, "set-7");
    a.break_shadow("alpha-s1").unwrap();
    a.set_lun_metadata("beta", "owner", Some("ops")).unwrap();
    a.set_pool_metadata("writers", Some("sql")).unwrap();
    let eset = a
        .engine_snapshot_set(&[("beta", b"eng".as_slice())])
        .unwrap();
    let shadow = eset.shadows[0].1;
    a.expose_engine_shadow("beta", shadow, "beta-eng").unwrap();
    a.delete_lun("temp").unwrap();
    put(&a, "beta", H1, 0, 0xBB);
    for lun in ["alpha", "alpha-snap", "beta"] {
        flush(&a, lun, if lun == "alpha" { H1 } else { H2 });
    }
}

/// The image unpacked into a new temporary directory: (the directory, its pool).
fn unpack() -> (tempfile::TempDir, PathBuf) {
    images::unpack(IMAGE)
}

/// The versions in `pool`'s file headers: (pool.state's file version, pool.log's version).
fn versions(pool: &Path) -> (u32, u32) {
    let state = std::fs::read(pool.join("pool.state")).unwrap();
    let log = std::fs::read(pool.join("pool.log")).unwrap();
    assert_eq!(&state[..8], b"UMBRAPST");
    let v = |b: &[u8]| u32::from_le_bytes(b[8..12].try_into().unwrap());
    (v(&state), v(&log))
}

fn block(a: &Array, lun: &str, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BS as usize];
    a.admin_read_at(lun, &mut buf, b * BS)
        .unwrap_or_else(|e| panic!("{lun} block {b}: {e}"));
    buf
}

fn filled(byte: u8) -> Vec<u8> {
    vec![byte; BS as usize]
}

/// Everything [`make_pool`] made, as an independent expectation.
fn check_everything(a: &Array) {
    let on = LunStatus::Online;
    let luns: Vec<_> = a
        .luns()
        .into_iter()
        .map(|l| {
            (
                l.name, l.size, l.mask, l.number, l.source, l.status, l.volatile,
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        luns,
        [
            (s("alpha"), 65536, s("*"), 0, None, on, false),
            (s("alpha-s1"), 65536, s(""), 7, Some(s("alpha")), on, false),
            (
                s("alpha-snap"),
                65536,
                s(H2),
                5,
                Some(s("alpha")),
                on,
                false
            ),
            (
                s("beta"),
                32768,
                format!("{W}=ro;@cluster"),
                1,
                None,
                on,
                false
            ),
            (s("beta-eng"), 32768, s(""), 8, Some(s("beta")), on, false),
            (s("beta-s1"), 32768, s(""), 6, Some(s("beta")), on, false),
            (s("gamma"), 16384, s(""), 2, None, LunStatus::Offline, false),
            (s("vol"), 16384, s(H1), 3, None, on, true),
        ]
    );
    assert_eq!(a.groups(), [(s("cluster"), vec![id(H1), id(H2)])]);
    assert_eq!(a.hosts(), [(s("backup"), vec![id(W)])]);
    let t = a.targets();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].name.as_str(), t[0].iqn.as_str()),
        ("t1", "iqn.2024-01.org.example:t1")
    );
    assert_eq!(t[0].portals, ["10.0.0.1:3260"]);
    assert_eq!(
        t[0].luns.iter().copied().collect::<Vec<_>>(),
        [a.lun("beta").unwrap().id]
    );
    assert_eq!(a.access("beta", &id(H1)).unwrap().unwrap().number, 7);
    assert_eq!(a.access("beta", &id(H2)).unwrap().unwrap().number, 1);
    assert_eq!(
        a.access("beta", &id(W)).unwrap().unwrap().access,
        vds_core::Access::ReadOnly
    );
    // The snapshot set: beta-s1 in it, unbroken (a shadow); alpha-s1 broken out of it.
    assert_eq!(a.snapshot_set_luns("set-7"), ["beta-s1"]);
    assert!(a.is_shadow("beta-s1").unwrap());
    assert!(!a.is_shadow("alpha-s1").unwrap());
    let set_meta = |extra: &[(&str, &str)]| {
        let mut m = BTreeMap::from([(s("app"), s("db")), (s("umbra:snapshot-set"), s("set-7"))]);
        m.extend(extra.iter().map(|(k, v)| (s(k), s(v))));
        m
    };
    assert_eq!(a.lun_metadata("beta-s1").unwrap(), set_meta(&[]));
    assert_eq!(a.lun_metadata("alpha-s1").unwrap()["app"], "db");
    assert_eq!(
        a.lun_metadata("beta").unwrap(),
        BTreeMap::from([(s("owner"), s("ops"))])
    );
    assert_eq!(
        a.pool_metadata(),
        BTreeMap::from([(s("writers"), s("sql"))])
    );
    // The engine shadow of beta, exposed as beta-eng.
    let shadows = a.engine_shadows("beta").unwrap();
    assert_eq!(shadows.len(), 1);
    assert_eq!(shadows[0].metadata, b"eng");
    assert_eq!(shadows[0].size, 32768);
    assert_eq!(
        a.lun_metadata("beta-eng").unwrap().get("umbra:exposes"),
        Some(&shadows[0].id.get().to_string())
    );
    assert_eq!(a.lun("temp").unwrap_err().kind(), ErrorKind::NotFound);
    // The data.
    for b in 0..16 {
        let now = if b == 0 { 0xEE } else { b as u8 + 1 };
        assert_eq!(block(a, "alpha", b), filled(now), "alpha {b}");
        assert_eq!(block(a, "alpha-s1", b), filled(now), "alpha-s1 {b}");
        let snap = if b == 3 { 0x5A } else { b as u8 + 1 };
        assert_eq!(block(a, "alpha-snap", b), filled(snap), "alpha-snap {b}");
    }
    for b in 0..8 {
        let then = 0xB0 + b as u8;
        let now = if b == 0 { 0xBB } else { then };
        assert_eq!(block(a, "beta", b), filled(now), "beta {b}");
        assert_eq!(block(a, "beta-s1", b), filled(then), "beta-s1 {b}");
        assert_eq!(block(a, "beta-eng", b), filled(then), "beta-eng {b}");
    }
    for b in 0..4 {
        assert_eq!(block(a, "gamma", b), filled(0), "gamma {b}");
        let v = if b == 2 { 0x77 } else { 0 };
        assert_eq!(block(a, "vol", b), filled(v), "vol {b}");
    }
    assert!(a.orphans().is_empty(), "{:?}", a.orphans());
    assert!(a.damaged_luns().is_empty(), "{:?}", a.damaged_luns());
    assert!(a.resumed().is_empty());
}

#[test]
fn a_pool_of_the_current_formats_opens_with_every_part() {
    let (_dir, pool) = unpack();
    // The image is of the formats this test names: when they change, it becomes the image of the
    // previous format (rename it and this test) and a new one is made.
    assert_eq!(versions(&pool), (4, 6), "pool.state 4, pool.log 6");
    let a = Array::open_existing(&pool).unwrap();
    check_everything(&a);
    // It goes on as a pool: a change, then a reopen, keeps everything else.
    a.create_lun("epsilon", 4096, &MaskSpec::None).unwrap();
    drop(a);
    assert_eq!(versions(&pool), (4, 6));
    let a = Array::open_existing(&pool).unwrap();
    assert_eq!(a.lun("epsilon").unwrap().size, 4096);
    a.delete_lun("epsilon").unwrap();
    check_everything(&a);
}

/// The image's maker: `make_pool`, checked, then packed (run with `--ignored`).
#[test]
#[ignore = "writes tests/data/pool-log6-state4.tar.gz: run with --ignored to make the image again"]
fn make_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    make_pool(&pool);
    check_everything(&Array::open_existing(&pool).unwrap());
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join(IMAGE);
    let out = Command::new("tar")
        .args([
            "--sparse",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-czf",
        ])
        .arg(&image)
        .arg("-C")
        .arg(dir.path())
        .arg("pool")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
