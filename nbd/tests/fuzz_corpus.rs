//! Replays the corpus of the protocol fuzz target (`fuzz/corpus/nbd_session`) through the same
//! session check (`umbra_nbd::fuzzing::session`), so every input ever found interesting stays
//! tested by `cargo test`; and runs random inputs, raw and after a valid handshake.
//!
//! The seeds (`umbra_nbd::fuzzing::seeds`) must be in the corpus byte for byte; run this test
//! with `UMBRA_NBD_WRITE_SEEDS=1` to write them there after changing them.

use std::path::{Path, PathBuf};

use umbra_nbd::fuzzing;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/nbd_session")
}

#[test]
fn the_seeds_are_in_the_corpus() {
    let dir = corpus();
    for (name, bytes) in fuzzing::seeds() {
        let p = dir.join(format!("seed_{name}"));
        if std::env::var_os("UMBRA_NBD_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&p, &bytes).unwrap();
        }
        let got = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(got, bytes, "{} differs from its seed", p.display());
    }
}

#[test]
fn nbd_session_corpus() {
    let dir = corpus();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        fuzzing::session(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= fuzzing::seeds().len());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Cheap fuzzing on every test run: random bytes as the whole client side, and as requests
    /// after a valid handshake.
    #[test]
    fn random_bytes_never_break_a_session(mut data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        fuzzing::session(&data);
        if let Some(first) = data.first_mut() {
            *first ^= 1;
        }
        fuzzing::session(&data);
    }
}
