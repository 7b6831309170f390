//! Replays the corpora of the vds-core fuzz targets (`fuzz/corpus/initiator_parse`,
//! `fuzz/corpus/script_parse`) through the same checks, so every input ever found interesting
//! stays tested by `cargo test`.

use umbra_test_support::vds_fuzz as fuzz_logic;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        check(&std::fs::read(&p).unwrap());
        n += 1;
    }
    n
}

#[test]
fn initiator_parse_corpus() {
    assert!(replay("initiator_parse", fuzz_logic::initiator_parse) >= 20);
}

#[test]
fn script_parse_corpus() {
    assert!(replay("script_parse", fuzz_logic::script_parse) >= 10);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Cheap fuzzing on every test run: random text, and text built from the id alphabet.
    #[test]
    fn random_text_never_breaks_the_parsers(
        s in ".{0,80}",
        t in "[iqneuaIQNEUA0-9a-fA-F.:;=@*x -]{0,64}",
    ) {
        fuzz_logic::initiator_parse(s.as_bytes());
        fuzz_logic::initiator_parse(t.as_bytes());
        fuzz_logic::script_parse(s.as_bytes());
    }
}
