//! Helpers shared by the pool tests.

/// Copies pool directory `from` to `to` (created), all but its lock file.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
