//! The checks behind the vds-core fuzz targets (`fuzz/fuzz_targets/initiator_parse.rs` and
//! `script_parse.rs`), shared with `vds-core/tests/fuzz_corpus.rs`, which replays their corpora.

use vds_core::script::{parse_line, ExitCode, Session};
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
/// returns a consistent structured run: results in ascending line order within the script, each
/// error naming its own line, the stopping line last, and a non-zero exit code exactly when an
/// error stopped the script; `Session::run` returns that error with that code, and never an
/// error with an Ok code.
pub fn script_parse(data: &[u8]) {
    if data.len() > 4096 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = parse_line(line);
    }
    let array = Array::in_memory();
    let run = Session::new(&array).execute(&text);
    let count = text.lines().count();
    let mut last = 0;
    for l in &run.lines {
        assert!(
            l.line > last && l.line <= count,
            "line {} after {last}, of {count}",
            l.line
        );
        last = l.line;
        if let Err(e) = &l.outcome {
            assert_eq!(e.line, l.line);
        }
    }
    if let Some(stop) = run.stopped_at {
        assert_eq!(Some(stop), run.lines.last().map(|l| l.line));
    }
    assert_eq!(
        run.exit_code != ExitCode::Ok,
        run.stopping_error().is_some(),
        "{run:?}"
    );
    let _ = run.render_text();
    // The text wrapper agrees: an error exactly when the code is not Ok, and it is that error.
    let mut out = String::new();
    let (code, err) = Session::new(&Array::in_memory()).run(&text, &mut out);
    assert_eq!(code, run.exit_code);
    assert_eq!(err.as_ref(), run.stopping_error(), "{run:?}");
    assert_eq!(code == ExitCode::Ok, err.is_none(), "{code:?} with {err:?}");
    if let Some(e) = err {
        assert_eq!(e.code, code);
    }
}
