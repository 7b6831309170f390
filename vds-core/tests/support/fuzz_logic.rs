//! The checks behind the vds-core fuzz targets (`fuzz/fuzz_targets/initiator_parse.rs` and
//! `script_parse.rs`), shared with `vds-core/tests/fuzz_corpus.rs`, which replays their corpora.

use vds_core::script::{parse_line, Session};
use vds_core::{Array, InitiatorId, MaskSpec};

/// Any text: parsing an initiator id or an unmasking list never panics, and whatever parses
/// round-trips through its canonical form.
pub fn initiator_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = InitiatorId::parse(text) {
        let shown = id.to_string();
        let again = InitiatorId::parse(&shown).expect("the canonical form parses");
        assert_eq!(again, id, "{text:?} -> {shown:?}");
        assert_eq!(again.to_string(), shown, "the canonical form is stable");
    }
    if let Ok(spec) = MaskSpec::parse(text) {
        let shown = spec.to_string();
        let again = MaskSpec::parse(&shown).expect("the canonical list parses");
        assert_eq!(again, spec, "{text:?} -> {shown:?}");
    }
}

/// Any script: parsing never panics, and running it on an in-memory array never panics and
/// reports an error with its line number when it fails.
pub fn script_parse(data: &[u8]) {
    if data.len() > 4096 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = parse_line(line);
    }
    let array = Array::in_memory();
    let mut out = String::new();
    let (_, err) = Session::new(&array).run(&text, &mut out);
    if let Some(e) = err {
        assert!(
            e.line >= 1 && e.line <= text.lines().count(),
            "line {} of {}",
            e.line,
            text.lines().count()
        );
    }
}
