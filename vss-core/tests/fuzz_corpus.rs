//! Replays the corpora of the vss-core fuzz targets (`fuzz/corpus/documents`,
//! `fuzz/corpus/diskshadow_script`) through the same checks, so every input ever found
//! interesting stays tested by `cargo test`.

use std::path::Path;

use umbra_test_support::vss_fuzz as fuzz_logic;

/// Runs `check` over every input of the target's corpus: how many inputs, and the sum of what
/// `check` returned.
fn replay(target: &str, check: fn(&[u8]) -> usize) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let (mut n, mut sum) = (0, 0);
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        sum += check(&std::fs::read(&p).unwrap());
        n += 1;
    }
    (n, sum)
}

#[test]
fn documents_corpus() {
    let (n, valid) = replay("documents", fuzz_logic::documents);
    assert!(n >= 12, "{n} inputs");
    // The seeds hold valid documents of both kinds, so the round-trip path is replayed too.
    assert!(valid >= 4, "{valid} valid documents");
}

#[test]
fn diskshadow_script_corpus() {
    let (n, parsed) = replay("diskshadow_script", fuzz_logic::diskshadow_script);
    assert!(n >= 10, "{n} inputs");
    // The seeds hold every command, so the round-trip path is replayed for each.
    assert!(parsed >= 50, "{parsed} commands parsed");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Cheap fuzzing on every test run: random text, and text built from JSON's alphabet and the
    /// documents' words.
    #[test]
    fn random_text_never_breaks_the_readers(
        s in ".{0,80}",
        t in "(\\{|\\}|\\[|\\]|,|:|\"|format|version|umbra-writer-metadata|writer|components|1|null|true| ){0,40}",
    ) {
        fuzz_logic::documents(s.as_bytes());
        fuzz_logic::documents(t.as_bytes());
    }

    /// Cheap fuzzing of the script parser on every test run: random text, and lines built from
    /// the dialect's words, quotes, aliases and comments.
    #[test]
    fn random_text_never_breaks_the_script_parser(
        s in ".{0,80}",
        t in "((set|context|option|persistent|volatile|nowriters|plex|differential|add|volume|alias|a|create|delete|shadows|id|set|expose|exec|list|writers|rem|#|\"|%|%HOME%|%VSS_SHADOW_1%|6f1c3a2e-0b7d-4c55-9e61-2a8f4d9b7c10|eui.0123456789abcdef) ?\n?){0,30}",
    ) {
        fuzz_logic::diskshadow_script(s.as_bytes());
        fuzz_logic::diskshadow_script(t.as_bytes());
    }
}
