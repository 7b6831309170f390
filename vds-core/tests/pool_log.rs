//! The pool log on the engine's record framing: damage is never taken for a torn tail, a newer
//! format is not damage, and a log of the first format is read and rewritten.

use cow_engine::framing::{self, Kinds};
use vds_core::{Array, ErrorKind, MaskSpec};

const MB: u64 = 1 << 20;
const KINDS: Kinds = Kinds {
    max: 2,
    mark: 2,
    max_payload: 64 << 20,
};

fn pool_with_luns(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let a = Array::open(&pool).unwrap();
    for i in 0..n {
        a.create_lun(&format!("lun{i}"), MB, &MaskSpec::parse("*").unwrap())
            .unwrap();
    }
    (dir, pool)
}

fn lun_names(a: &Array) -> Vec<String> {
    let mut v: Vec<String> = a.luns().into_iter().map(|l| l.name).collect();
    v.sort();
    v
}

fn lun_dirs(pool: &std::path::Path) -> usize {
    std::fs::read_dir(pool.join("luns")).unwrap().count()
}

/// Why: one flipped bit in the middle of `pool.log` of a pool with six LUNs used to open without
/// an error holding two LUNs (the rest of the log taken for a torn tail and truncated), and the
/// open then deleted the other four LUNs' data directories.
#[test]
fn a_flipped_bit_mid_log_is_an_error_naming_the_place_and_loses_nothing() {
    let (_dir, pool) = pool_with_luns(6);
    let log = pool.join("pool.log");
    let bytes = std::fs::read(&log).unwrap();
    // The third change's frame: past the header, two changes and their marks.
    let mut at = 16;
    for _ in 0..4 {
        let (_, used) = framing::decode(&bytes[at..], &KINDS).unwrap();
        at += used;
    }
    let mut bad = bytes.clone();
    bad[at + 30] ^= 0x04;
    std::fs::write(&log, &bad).unwrap();
    let e = Array::open(&pool).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let text = e.to_string();
    assert!(text.contains("pool.log"), "{text}");
    assert!(text.contains(&format!("at byte {at}")), "{text}");
    assert_eq!(lun_dirs(&pool), 6, "nothing deleted");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bad,
        "the log is left as it was"
    );
    // Repaired, the pool opens whole.
    std::fs::write(&log, &bytes).unwrap();
    let a = Array::open(&pool).unwrap();
    assert_eq!(lun_names(&a).len(), 6);
}

/// Every cut inside the last write: what is intact is kept, the torn frame dropped, and the log
/// goes on.
#[test]
fn a_torn_last_write_is_dropped_and_the_rest_kept() {
    let (_dir, pool) = pool_with_luns(3);
    let log = pool.join("pool.log");
    let len = std::fs::metadata(&log).unwrap().len();
    let bytes = std::fs::read(&log).unwrap();
    let mut last = 16;
    let mut starts = Vec::new();
    while let Some((_, used)) = framing::decode(&bytes[last..], &KINDS) {
        starts.push(last);
        last += used;
    }
    let (third, mark) = (starts[4] as u64, starts[5] as u64);
    // A cut inside the change's frame loses it; a cut inside the mark after it keeps it (the
    // change is intact: the state after it is as good as the state before, neither was
    // acknowledged).
    for (cut, expect) in [
        (third + 1, &["lun0", "lun1"][..]),
        (mark - 1, &["lun0", "lun1"][..]),
        (mark + 1, &["lun0", "lun1", "lun2"][..]),
        (len - 1, &["lun0", "lun1", "lun2"][..]),
    ] {
        let dir2 = tempfile::tempdir().unwrap();
        let copy = dir2.path().join("pool");
        copy_dir(&pool, &copy);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.join("pool.log"))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let a = Array::open(&copy).unwrap();
        assert_eq!(lun_names(&a), expect, "cut at {cut}");
        // And the log goes on from there.
        a.create_lun("after", MB, &MaskSpec::parse("").unwrap())
            .unwrap();
        drop(a);
        let a = Array::open(&copy).unwrap();
        let mut names = expect.to_vec();
        names.insert(0, "after");
        assert_eq!(lun_names(&a), names, "cut at {cut}");
    }
}

/// Why: a newer on-disk format must read as "upgrade the library", never as damage an operator
/// would "repair".
#[test]
fn a_newer_log_format_is_unsupported_version() {
    let (_dir, pool) = pool_with_luns(1);
    let log = pool.join("pool.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&log, &bytes).unwrap();
    let e = Array::open(&pool).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedVersion, "{e}");
    // A damaged header is damage.
    bytes[9] ^= 1;
    std::fs::write(&log, &bytes).unwrap();
    assert_eq!(Array::open(&pool).unwrap_err().kind(), ErrorKind::Corrupt);
}

/// A pool written before the log had a header and sync marks opens with every change, and its
/// log is rewritten in the current format.
#[test]
fn a_log_of_the_first_format_is_read_and_rewritten() {
    let (_dir, pool) = pool_with_luns(3);
    let log = pool.join("pool.log");
    let bytes = std::fs::read(&log).unwrap();
    // The same changes in the first format: [len][crc of seq+payload][seq][JSON], seqs from 1.
    let mut legacy = Vec::new();
    let mut at = 16;
    let mut seq = 0u64;
    while let Some((frame, used)) = framing::decode(&bytes[at..], &KINDS) {
        at += used;
        if frame.kind != 1 {
            continue;
        }
        seq += 1;
        let mut rec = Vec::new();
        rec.extend_from_slice(&(frame.payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(frame.payload);
        let crc = crc32fast::hash(&rec[8..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        legacy.extend(rec);
    }
    assert_eq!(seq, 3);
    std::fs::write(&log, &legacy).unwrap();
    let a = Array::open(&pool).unwrap();
    assert_eq!(lun_names(&a), ["lun0", "lun1", "lun2"]);
    assert_eq!(&std::fs::read(&log).unwrap()[..8], b"UMBRAPLG");
    a.create_lun("lun3", MB, &MaskSpec::parse("").unwrap())
        .unwrap();
    drop(a);
    let a = Array::open(&pool).unwrap();
    assert_eq!(lun_names(&a), ["lun0", "lun1", "lun2", "lun3"]);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else if e.file_name() != "pool.lock" {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
