//! The checks behind the vss-core fuzz target (`fuzz/fuzz_targets/documents.rs`), shared with
//! `vss-core/tests/fuzz_corpus.rs`, which replays its corpus.

use vss_core::{BackupComponents, ErrorKind, WriterMetadata};

/// Any bytes, read as a writer metadata document and as a backup components document: never a
/// panic; an error is `InvalidDocument` or `UnsupportedVersion`; a document that reads writes
/// its canonical form, which reads back equal and writes the same bytes again.
///
/// Returns how many of the two readings accepted the input.
pub fn documents(data: &[u8]) -> usize {
    let mut valid = 0;
    match WriterMetadata::from_json(data) {
        Ok(doc) => {
            valid += 1;
            let text = doc.to_json().expect("a document read is written");
            let again =
                WriterMetadata::from_json(text.as_bytes()).expect("the canonical form reads");
            assert_eq!(again, doc, "{text}");
            assert_eq!(
                again.to_json().unwrap(),
                text,
                "the canonical form is stable"
            );
        }
        Err(e) => check_error(&e),
    }
    match BackupComponents::from_json(data) {
        Ok(doc) => {
            valid += 1;
            let text = doc.to_json().expect("a document read is written");
            let again =
                BackupComponents::from_json(text.as_bytes()).expect("the canonical form reads");
            assert_eq!(again, doc, "{text}");
            assert_eq!(
                again.to_json().unwrap(),
                text,
                "the canonical form is stable"
            );
        }
        Err(e) => check_error(&e),
    }
    valid
}

fn check_error(e: &vss_core::Error) {
    assert!(
        matches!(
            e.kind(),
            ErrorKind::InvalidDocument | ErrorKind::UnsupportedVersion
        ),
        "{e}"
    );
    assert!(!e.message().is_empty());
}
