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

/// The pool log's frame kinds (a change, the mark closing a write).
const KINDS: cow_engine::framing::Kinds = cow_engine::framing::Kinds {
    max: 2,
    mark: 2,
    max_payload: 64 << 20,
};

/// Where each frame of a pool log ends (the header's end first), with whether the frame is an
/// intent record (`begin`).
#[allow(dead_code)]
pub fn frame_ends(bytes: &[u8]) -> Vec<(usize, bool)> {
    let mut ends = vec![(16, false)];
    let mut at = 16;
    while let Some((f, used)) = cow_engine::framing::decode(&bytes[at..], &KINDS) {
        at += used;
        ends.push((at, f.payload.starts_with(br#"{"op":"begin""#)));
    }
    ends
}
