//! Opening a pool strictly and recovering one: a directory that is not a pool is refused and left
//! alone, a damaged LUN is isolated instead of taking the pool down, a volume an interrupted
//! extend grew is adopted, a delete interrupted after its record is finished, a failed create
//! leaves nothing, and damage to `pool.state` is reported.

use std::path::{Path, PathBuf};

use vds_core::{Array, ErrorKind, Health, InitiatorId, LunStatus, MaskSpec};

const KB: u64 = 1 << 10;

fn host() -> InitiatorId {
    InitiatorId::parse("iqn.2024-01.org.example:h1").unwrap()
}

fn all() -> MaskSpec {
    MaskSpec::parse("*").unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn names(a: &Array) -> Vec<String> {
    a.luns().into_iter().map(|l| l.name).collect()
}

fn new_pool() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    (dir, pool)
}

/// Why: `umbra_array_open` on a volume's directory, or on a mistyped path with files in it,
/// returned OK, wrote pool files into it and showed an empty array.
#[test]
fn a_directory_that_is_not_a_pool_is_refused_and_left_alone() {
    let (dir, pool) = new_pool();
    // A directory with someone's files.
    let other = dir.path().join("documents");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    for open in [Array::open, Array::open_existing] {
        let e = open(&other).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAPool, "{e}");
        assert!(e.to_string().contains("notes.txt"), "{e}");
        assert_eq!(listing(&other), ["notes.txt"], "nothing written");
    }
    // A LUN's volume directory.
    {
        let a = Array::open(&pool).unwrap();
        a.create_lun("v", 64 * KB, &all()).unwrap();
    }
    let vol = pool.join("luns").join("1");
    let before = listing(&vol);
    assert_eq!(Array::open(&vol).unwrap_err().kind(), ErrorKind::NotAPool);
    assert_eq!(listing(&vol), before);
    // open_existing never creates: a missing directory is NotFound, an empty one NotAPool.
    let missing = dir.path().join("missing");
    assert_eq!(
        Array::open_existing(&missing).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!missing.exists());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = Array::open_existing(&empty).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAPool);
    // The message says why for this call (a review found it blaming "files" in an empty
    // directory, with an empty list).
    assert!(
        e.to_string().contains("it is empty") && e.to_string().contains("creates none"),
        "{e}"
    );
    assert!(listing(&empty).is_empty());
    // `open` makes a pool in an empty directory; open_existing opens a pool.
    drop(Array::open(&empty).unwrap());
    assert!(listing(&empty).contains(&"pool.log".to_string()));
    let a = Array::open_existing(&pool).unwrap();
    assert_eq!(names(&a), ["v"]);
}

/// Why (an outside crash replay): one LUN whose volume did not open (its size never synced) made
/// the whole pool refuse to open. It is isolated: listed as failed with why, its I/O refused with
/// Corrupt, deletable; every other LUN works.
#[test]
fn a_damaged_lun_is_isolated_and_deletable() {
    for damage in ["journal", "origin"] {
        let (_dir, pool) = new_pool();
        {
            let a = Array::open(&pool).unwrap();
            a.create_lun("bad", 64 * KB, &all()).unwrap();
            a.create_lun("good", 64 * KB, &all()).unwrap();
            a.write_at("good", &host(), b"fine", 0).unwrap();
            a.snapshot_lun("bad", "bad-snap").unwrap();
        }
        let vol = pool.join("luns").join("1");
        match damage {
            "journal" => {
                std::fs::remove_file(vol.join("journal.0")).unwrap();
            }
            _ => {
                // The volume's size was never made durable.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(vol.join("origin.img"))
                    .unwrap();
                f.set_len(16 * KB).unwrap();
            }
        }
        let a = Array::open(&pool).unwrap();
        let info = a.lun("bad").unwrap();
        assert_eq!(info.status, LunStatus::Failed, "{damage}");
        assert_eq!(info.health, Health::Failed);
        // Its snapshot LUN stands on it: damaged too.
        assert_eq!(a.lun("bad-snap").unwrap().status, LunStatus::Failed);
        let damaged = a.damaged_luns();
        assert_eq!(damaged.len(), 2, "{damaged:?}");
        assert_eq!(damaged[0].0, "bad");
        assert!(damaged[0].1.contains("luns/1"), "{damaged:?}");
        let e = a.read_at("bad", &host(), &mut [0u8; 4], 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{damage}: {e}");
        assert_eq!(
            a.write_at("bad", &host(), b"x", 0).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            a.snapshot_lun("bad", "again").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(
            a.extend_lun("bad", 128 * KB).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let split = a.split_lun("bad-snap").wait().unwrap_err();
        assert_eq!(split.kind(), ErrorKind::Corrupt, "{split}");
        let resync = a.resync_lun("good", "bad").wait().unwrap_err();
        assert_eq!(resync.kind(), ErrorKind::Corrupt, "{resync}");
        let mut buf = [0u8; 4];
        a.read_at("good", &host(), &mut buf, 0).unwrap();
        assert_eq!(&buf, b"fine");
        a.delete_lun("bad-snap").unwrap();
        a.delete_lun("bad").unwrap();
        assert!(a.damaged_luns().is_empty());
        drop(a);
        let a = Array::open(&pool).unwrap();
        assert_eq!(names(&a), ["good"]);
        assert_eq!(listing(&pool.join("luns")), ["2"]);
    }
}

/// Why (an outside crash replay): a crash inside `extend` (of a pool written before extend
/// intents) left the volume grown and the pool at the old size, and every later extend was
/// refused ("at least the current ..."). The open adopts the size the volume has.
#[test]
fn a_volume_grown_by_an_interrupted_extend_is_adopted() {
    let (_dir, pool) = new_pool();
    {
        let a = Array::open(&pool).unwrap();
        a.create_lun("e", 64 * KB, &all()).unwrap();
    }
    // What the crash left: the volume grown, no record of it.
    cow_engine::Volume::open(pool.join("luns").join("1"))
        .unwrap()
        .grow(80 * KB)
        .unwrap();
    let a = Array::open(&pool).unwrap();
    assert_eq!(a.lun("e").unwrap().size, 80 * KB);
    a.extend_lun("e", 96 * KB).unwrap();
    drop(a);
    assert_eq!(Array::open(&pool).unwrap().lun("e").unwrap().size, 96 * KB);
}

/// Why: a failed create (a volume too large for the file system) used to leave its directory
/// behind, after which the next create said AlreadyExists and the open Corrupt.
#[test]
fn a_failed_create_leaves_nothing_behind() {
    let (_dir, pool) = new_pool();
    let a = Array::open(&pool).unwrap();
    a.create_lun("a", 64 * KB, &all()).unwrap();
    // 64 TiB: more than one file may hold on ext4, xfs and tmpfs alike.
    let e = a.create_lun("huge", 64 << 40, &all()).unwrap_err();
    assert_ne!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(listing(&pool.join("luns")), ["1"]);
    assert_eq!(names(&a), ["a"]);
    a.create_lun("b", 64 * KB, &all()).unwrap();
    drop(a);
    let a = Array::open(&pool).unwrap();
    assert_eq!(names(&a), ["a", "b"]);
    assert!(a.orphans().is_empty());
}

/// `pool.state` carries a checksum: damage anywhere in it is Corrupt naming the file; another
/// version is UnsupportedVersion.
#[test]
fn damage_to_the_checkpoint_is_reported_naming_the_file() {
    let (_dir, pool) = new_pool();
    {
        let a = Array::open(&pool).unwrap();
        a.create_lun("a", 64 * KB, &all()).unwrap();
    }
    let path = pool.join("pool.state");
    let good = std::fs::read(&path).unwrap();
    assert_eq!(&good[..8], b"UMBRAPST");
    for at in [3usize, 20, 40, good.len() - 2] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let e = Array::open(&pool).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "byte {at}: {e}");
        assert!(e.to_string().contains("pool.state"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), bad, "left as it was");
    }
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    assert_eq!(Array::open(&pool).unwrap_err().kind(), ErrorKind::Corrupt);
    let mut newer = good.clone();
    let current = u32::from_le_bytes(good[8..12].try_into().unwrap());
    newer[8..12].copy_from_slice(&(current + 1).to_le_bytes());
    let crc = crc32fast::hash(&newer[..24]);
    newer[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &newer).unwrap();
    assert_eq!(
        Array::open(&pool).unwrap_err().kind(),
        ErrorKind::UnsupportedVersion
    );
    std::fs::write(&path, &good).unwrap();
    assert_eq!(names(&Array::open(&pool).unwrap()), ["a"]);
}
