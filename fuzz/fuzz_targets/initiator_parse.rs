//! Initiator ids and unmasking lists from the input: never a panic, and whatever parses
//! round-trips through its canonical form. The checks live in
//! the test-support crate (`test-support/src/vds_fuzz.rs`), which `vds-core/tests/fuzz_corpus.rs` also runs over
//! this target's corpus.
#![no_main]

use umbra_fuzz::vds_fuzz as fuzz_logic;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_logic::initiator_parse(data));
