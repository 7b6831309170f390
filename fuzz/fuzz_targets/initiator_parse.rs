//! Initiator ids and unmasking lists from the input: never a panic, and whatever parses
//! round-trips through its canonical form. The checks live in
//! `vds-core/tests/support/fuzz_logic.rs`, which `vds-core/tests/fuzz_corpus.rs` also runs over
//! this target's corpus.
#![no_main]

#[allow(dead_code)] // each target uses one of its checks
#[path = "../../vds-core/tests/support/fuzz_logic.rs"]
mod fuzz_logic;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_logic::initiator_parse(data));
