//! The checks behind the vss-core fuzz target (`fuzz/fuzz_targets/documents.rs`), shared with
//! `vss-core/tests/fuzz_corpus.rs`, which replays its corpus.

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
