//! Arbitrary bytes read as a writer metadata document and as a backup components document: never
//! a panic, errors of the documented kinds, and a document that reads round-trips exactly. The
//! checks live in the test-support crate (`test-support/src/vss_fuzz.rs`), which
//! `vss-core/tests/fuzz_corpus.rs` also runs over this target's corpus.
#![no_main]

use umbra_fuzz::vss_fuzz as fuzz_logic;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_logic::documents(data);
});
