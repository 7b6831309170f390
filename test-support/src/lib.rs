//! What umbra's tests share, in one crate instead of files included by path across crates:
//!
//! - [`fuzz`]: the logic of the cow-engine fuzz targets (volume operations with injected I/O
//!   failures and crashes against a model; damaged diff areas and journals), run by cargo-fuzz
//!   (`fuzz/`) and replayed over the corpora by `cow-engine/tests/fuzz_corpus.rs`.
//! - [`vds_fuzz`]: the checks of the vds-core fuzz targets (initiator ids, unmasking lists,
//!   scripts), run by cargo-fuzz and replayed by `vds-core/tests/fuzz_corpus.rs`.
//! - [`vss_fuzz`]: the checks of the vss-core fuzz targets (both documents from arbitrary bytes;
//!   DiskShadow-style scripts), run by cargo-fuzz and replayed by `vss-core/tests/fuzz_corpus.rs`.
//! - [`crash_sim`]: the engine crash harness's simulated device, which records every write and
//!   flush so a test can build the disk image of a crash at any point
//!   (`cow-engine/tests/crash.rs`), and its simulated directory tree (`SimDir`, a
//!   `cow_engine::fs::Fs` whose names are durable only after their directory's sync), rebuilt
//!   after a crash by `DirReplayer` (`cow-engine/tests/dir_crash.rs`).
//!
//! Not published; a dev-dependency of the crates whose tests use it.

pub mod crash_sim;
pub mod fuzz;
pub mod vds_fuzz;
pub mod vss_fuzz;
