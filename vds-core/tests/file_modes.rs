//! The modes of a pool's files (docs/format.md "Who may read a pool"): under a umask of 022
//! (the usual one, which would leave files 0644 and directories 0755), every directory a pool
//! creates is 0700 and every file 0600, so no other local user reads a LUN's data from its
//! files, bypassing masking. Checked on the real file system, after every kind of change that
//! creates files (a LUN, a volatile LUN, a snapshot LUN, a clone, a split, an export, an
//! engine shadow, pool metadata, a checkpoint of the log), for a pool in a directory it made
//! and in an empty directory the user made (whose own mode is left as it is). An existing
//! pool's files keep their modes when it is opened (no silent chmod).
//!
//! One test in this binary: the umask is the process's.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vds_core::{Array, InitiatorId, LunOptions, MaskSpec};

const HOST: &str = "iqn.1991-05.com.microsoft:host";
const MB: u64 = 1 << 20;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every entry under `dir` (not `dir` itself), depth first.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

/// Asserts that every directory under `pool` is 0700 and every file 0600; returns how many
/// files there are.
fn owner_only(pool: &Path, when: &str) -> usize {
    let mut all = Vec::new();
    walk(pool, &mut all);
    let mut files = 0;
    for p in &all {
        let is_dir = std::fs::symlink_metadata(p).unwrap().is_dir();
        let want = if is_dir { 0o700 } else { 0o600 };
        files += usize::from(!is_dir);
        assert_eq!(
            mode(p),
            want,
            "{when}: {} is {:o}, not {want:o}",
            p.display(),
            mode(p)
        );
    }
    files
}

fn exercise(pool: &Path, scratch: &Path) {
    let mask = MaskSpec::parse(HOST).unwrap();
    let a = Array::open(pool).unwrap();
    owner_only(pool, "a new pool");
    a.create_lun("db", 4 * MB, &mask).unwrap();
    assert!(pool.join("luns").is_dir());
    owner_only(pool, "a LUN");
    a.create_lun_with("tmp", MB, &mask, LunOptions { volatile: true })
        .unwrap();
    owner_only(pool, "a volatile LUN");
    let h = a.open_lun(&InitiatorId::parse(HOST).unwrap(), 0).unwrap();
    h.write_at(&[7u8; 4096], 0).unwrap();
    h.flush().unwrap();
    drop(h);
    a.snapshot_lun("db", "snap").unwrap();
    owner_only(pool, "a snapshot LUN");
    a.split_lun("snap").wait().unwrap();
    owner_only(pool, "a split");
    a.clone_lun("db", "copy").wait().unwrap();
    owner_only(pool, "a clone");
    a.engine_snapshot_set(&[("db", b"x".as_slice())]).unwrap();
    a.set_pool_metadata("k", Some("v")).unwrap();
    owner_only(pool, "an engine shadow and pool metadata");
    let out = scratch
        .join(pool.file_name().unwrap())
        .with_extension("img");
    a.export_lun("db", &out).wait().unwrap();
    assert_eq!(mode(&out), 0o600, "an export holds the LUN's data");
    drop(a);
    let a = Array::open(pool).unwrap();
    a.delete_lun("copy").unwrap();
    let files = owner_only(pool, "a reopen");
    assert!(files >= 8, "the pool's files were walked: {files}");
    for f in ["pool.log", "pool.state"] {
        if pool.join(f).exists() {
            assert_eq!(mode(&pool.join(f)), 0o600, "{f}");
        }
    }
}

#[test]
fn a_pool_is_its_owners_only_whatever_the_umask() {
    // SAFETY: umask only sets the process's file-mode creation mask; this binary has this one
    // test, so no other thread creates files meanwhile.
    unsafe { libc::umask(0o022) };
    let tmp = tempfile::tempdir().unwrap();

    // A pool directory the array makes: 0700 itself.
    let made = tmp.path().join("made");
    exercise(&made, tmp.path());
    assert_eq!(mode(&made), 0o700);

    // An empty directory the user made (0755 under this umask) becomes a pool: its mode is the
    // user's, what the pool creates in it is owner only (luns/ 0700 keeps the data private).
    let theirs = tmp.path().join("theirs");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&theirs)
        .unwrap();
    exercise(&theirs, tmp.path());
    assert_eq!(
        mode(&theirs),
        0o755,
        "the user's directory is left as it is"
    );
    assert_eq!(mode(&theirs.join("luns")), 0o700);

    // An existing pool whose files have other modes (made before 0600, or chmod-ed by its
    // owner) keeps them: opening it changes no mode.
    let log = made.join("pool.log");
    let lun_dir = std::fs::read_dir(made.join("luns"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&lun_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = Array::open(&made).unwrap();
    a.create_lun("later", MB, &MaskSpec::None).unwrap();
    drop(a);
    assert_eq!(mode(&log), 0o644, "no silent chmod of an existing file");
    assert_eq!(
        mode(&lun_dir),
        0o755,
        "no silent chmod of an existing directory"
    );
}
