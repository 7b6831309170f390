//! The protocol fuzz target's body, shared by `fuzz/fuzz_targets/nbd_session.rs` and the corpus
//! replay test. Not a stable API.
