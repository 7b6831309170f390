//! The logic of the cow-engine fuzz targets, as plain functions that ordinary tests call too.
//!
//! - [`volume_ops::run`]: decodes the input into volume operations (origin writes, snapshot create,
//!   write, delete, pin, metadata, revert, grow, flush, checkpoint, reopen, power loss) and runs them
//!   on the simulated devices of [`crate::crash_sim`] (the crash harnesses' own), with a shared
//!   failure countdown ([`crate::crash_sim::Fault`]) and the images a power loss could leave
//!   ([`crate::crash_sim::SimDevice::crash_image`]), against a model of every image; after each
//!   failure or crash the volume is reopened and must hold what was acknowledged.
//! - [`open_diff::run`]: builds diff-area and journal devices from the input (raw bytes, or a
//!   structured image with valid checksums around fuzzed fields and records) and opens a volume on
//!   them: `Ok` or a clear `Err`, never a panic or a hang; a volume that opens must be usable and
//!   must open again.
//!
//! The input decoding is written by hand (no `arbitrary`), so the corpora replay byte for byte in
//! `cow-engine/tests/fuzz_corpus.rs`.

pub mod format;
pub mod input;
pub mod open_diff;
pub mod seeds;
pub mod volume_ops;
