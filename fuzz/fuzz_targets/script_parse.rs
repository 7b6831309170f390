//! DiskRAID-style scripts from the input, parsed and run on an in-memory array: never a panic,
//! errors name a real line. The checks live in `vds-core/tests/support/fuzz_logic.rs`, which
//! `vds-core/tests/fuzz_corpus.rs` also runs over this target's corpus.
#![no_main]

#[allow(dead_code)] // each target uses one of its checks
#[path = "../../vds-core/tests/support/fuzz_logic.rs"]
mod fuzz_logic;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_logic::script_parse(data));
