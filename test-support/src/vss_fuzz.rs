//! The checks behind the vss-core fuzz targets (`fuzz/fuzz_targets/documents.rs` and
//! `diskshadow_script.rs`), shared with `vss-core/tests/fuzz_corpus.rs`, which replays their
//! corpora.

use vss_core::{BackupComponents, ErrorKind, WriterMetadata};

/// Any bytes, read as a writer metadata document and as a backup components document: never a
/// panic; an error is `InvalidDocument` or `UnsupportedVersion`; a document that reads writes
/// its canonical form, which reads back equal and writes the same bytes again.
///
/// Returns how many of the two readings accepted the input.
pub fn documents(data: &[u8]) -> usize {
    usize::from(round_trips(
        data,
        WriterMetadata::from_json,
        WriterMetadata::to_json,
    )) + usize::from(round_trips(
        data,
        BackupComponents::from_json,
        BackupComponents::to_json,
    ))
}

/// Reads `data` with `read`: an error of a documented kind, or a document whose canonical form
/// (`write`) reads back equal and is stable. True if it read.
fn round_trips<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    read: fn(&[u8]) -> vss_core::Result<T>,
    write: fn(&T) -> vss_core::Result<String>,
) -> bool {
    match read(data) {
        Ok(doc) => {
            let text = write(&doc).expect("a document read is written");
            let again = read(text.as_bytes()).expect("the canonical form reads");
            assert_eq!(again, doc, "{text}");
            assert_eq!(write(&again).unwrap(), text, "the canonical form is stable");
            true
        }
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidDocument | ErrorKind::UnsupportedVersion
                ),
                "{e}"
            );
            assert!(!e.message().is_empty());
            false
        }
    }
}

/// Any bytes, read as a DiskShadow-style script (lossily as UTF-8, at most 4 KiB): parsing a
/// line, and validating the whole script, never panics; an error names its own line, and a word
/// that is really at that column of the line, and says what was expected; every command that
/// parses writes a canonical text that parses back to the same command (with or without
/// environment variables); the dry run's report is consistent (errors and commands in line
/// order, exit code 5 exactly when a line does not parse).
///
/// Returns how many lines parsed to a command.
pub fn diskshadow_script(data: &[u8]) -> usize {
    use vss_core::script::{parse_line, validate, Aliases, ExitCode, ScriptErrorKind};

    if data.len() > 4096 {
        return 0;
    }
    let text = String::from_utf8_lossy(data);
    // Values a word cannot hold (a quote, a newline) and a `%` must be refused or escaped.
    let env = Aliases::with_environment([
        ("HOME", "/root"),
        ("Q", "a\"b"),
        ("NL", "a\nb"),
        ("PCT", "100%"),
        ("SP", "a b"),
    ]);
    let isolated = Aliases::isolated();
    let count = text.lines().count();
    let mut parsed = 0;
    for (i, line) in text.lines().enumerate() {
        match parse_line(i + 1, line, &env) {
            Ok(None) => {}
            Ok(Some(cmd)) => {
                parsed += 1;
                let canonical = cmd.to_string();
                assert!(!canonical.contains('\n'), "{canonical:?}");
                for aliases in [&isolated, &env] {
                    let again = parse_line(1, &canonical, aliases)
                        .unwrap_or_else(|e| panic!("{line:?} -> {canonical:?}: {e}"));
                    assert_eq!(again.as_ref(), Some(&cmd), "{line:?} -> {canonical:?}");
                }
            }
            Err(e) => {
                assert_eq!(e.line, i + 1);
                assert!(!e.message.is_empty() && !e.expected.is_empty(), "{e:?}");
                match (&e.token, e.column) {
                    (Some(token), Some(column)) => {
                        let at: String = line.chars().skip(column - 1).collect();
                        assert!(at.starts_with(token.as_str()), "{line:?}: {e:?}");
                    }
                    (None, None) => {}
                    _ => panic!("a token without a column or the reverse: {e:?}"),
                }
                assert!(e.to_string().starts_with(&format!("line {}", i + 1)));
            }
        }
    }
    let v = validate(&text, &env);
    assert_eq!(v.exit_code == ExitCode::Syntax, !v.errors.is_empty());
    let mut last = 0;
    for e in &v.errors {
        assert!(e.line > last && e.line <= count, "{e:?} after line {last}");
        last = e.line;
        assert_eq!(
            (e.code, e.kind),
            (ExitCode::Syntax, ScriptErrorKind::Syntax)
        );
    }
    let mut last = 0;
    for p in &v.commands {
        assert!(p.line > last && p.line <= count);
        last = p.line;
        let again = parse_line(p.line, &p.command.to_string(), &isolated).expect("canonical");
        assert_eq!(again.as_ref(), Some(&p.command));
    }
    match v.failed_run(&text) {
        Some(run) => {
            assert_eq!(run.exit_code, ExitCode::Syntax);
            assert_eq!(run.stopped_at, v.errors.first().map(|e| e.line));
            assert_eq!(run.lines.len(), v.errors.len());
            assert!(run.stopping_error().is_some());
        }
        None => assert!(v.is_ok()),
    }
    serde_json::to_string(&v).expect("the report serialises");
    parsed
}
