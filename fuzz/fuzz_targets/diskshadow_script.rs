//! Arbitrary bytes read as a DiskShadow-style script: never a panic, errors naming their own
//! line and word, and every command that parses writing a canonical text that parses back to it.
//! The checks live in the test-support crate (`test-support/src/vss_fuzz.rs`), which
//! `vss-core/tests/fuzz_corpus.rs` also runs over this target's corpus.
#![no_main]

use umbra_fuzz::vss_fuzz as fuzz_logic;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_logic::diskshadow_script(data);
});
