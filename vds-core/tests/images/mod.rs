//! The pool images checked in under `tests/data/` (see its README), unpacked for a test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Image `image` (a gzip'd tar of a directory `pool`, its path relative to the crate) unpacked
/// into a new temporary directory: (the directory, its pool).
pub fn unpack(image: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join(image);
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&image)
        .arg("-C")
        .arg(dir.path())
        .output()
        .expect("tar runs (the image is a gzip'd tar)");
    assert!(
        out.status.success(),
        "tar -xzf {}: {}",
        image.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = dir.path().join("pool");
    (dir, pool)
}
