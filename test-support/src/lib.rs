//! What umbra's tests share, in one crate instead of files included by path across crates:
//!
//! - [`fuzz`]: the logic of the cow-engine fuzz targets (volume operations with injected I/O
//!   failures and crashes against a model; damaged diff areas and journals), run by cargo-fuzz
//!   (`fuzz/`) and replayed over the corpora by `cow-engine/tests/fuzz_corpus.rs`.
//! - [`vds_fuzz`]: the checks of the vds-core fuzz targets (initiator ids, unmasking lists,
//!   scripts), run by cargo-fuzz and replayed by `vds-core/tests/fuzz_corpus.rs`.
//! - [`vss_fuzz`]: the checks of the vss-core fuzz targets (both documents from arbitrary bytes;
//!   DiskShadow-style scripts), run by cargo-fuzz and replayed by `vss-core/tests/fuzz_corpus.rs`.
//! - [`crash_sim`]: the one simulated device and directory. `SimDevice` has a volatile write
//!   cache and records every write, discard, resize and flush in a shared `Log`, so a test can
//!   build the disk image of a crash at any point with `Replayer` (`cow-engine/tests/crash.rs`);
//!   `SimDir` grows it into a directory tree (a `cow_engine::fs::Fs` whose names are durable only
//!   after their directory's sync), rebuilt after a crash by `DirReplayer`
//!   (`cow-engine/tests/dir_crash.rs`, `vds-core/tests/pool_crash.rs`, `vds-core/tests/resume.rs`).
//!   The fuzz logic runs on the same device, with a shared failure countdown attached (`Fault`)
//!   and the image a power loss could leave now (`SimDevice::crash_image` by a `CrashMode`, on a
//!   `Log::since_flush` that keeps only the unflushed work). Also [`Rng`], the workspace's one
//!   test generator (the fuzz targets' too).
//! - [`pattern`] and [`sparse_pattern`]: test data from that generator; [`FULL_BACKUP_EVENTS`],
//!   what a writer sees in a backup that succeeds.
//! - [`tools`]: the one policy for an outside tool a test needs and does not find (a failure
//!   under `CI`, a loud skip elsewhere).
//!
//! Not published; a dev-dependency of the crates whose tests use it.

pub mod crash_sim;
pub mod fuzz;
pub mod tools;
pub mod vds_fuzz;
pub mod vss_fuzz;

pub use crash_sim::Rng;

/// The events a writer sees in a backup that succeeds, in order: the expectation of the vss-core
/// and CLI tests that run one (VSS's sequence, written out here once).
pub const FULL_BACKUP_EVENTS: [&str; 8] = [
    "identify",
    "prepare-backup",
    "prepare-snapshot",
    "freeze",
    "thaw",
    "post-snapshot",
    "backup-complete",
    "backup-shutdown",
];

/// `len` deterministic pseudo-random bytes from `seed` ([`Rng`]).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// As [`pattern`], but every third 4,096-byte run is zeros (holes for sparse copies to find).
pub fn sparse_pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut data = pattern(len, seed);
    for (i, run) in data.chunks_mut(4096).enumerate() {
        if i % 3 == 2 {
            run.fill(0);
        }
    }
    data
}
