//! The protocol's two documents, as JSON: the [`WriterMetadata`] a writer answers at identify,
//! and the [`BackupComponents`] the requester keeps (what was selected, the writers' metadata and
//! the snapshot set, so a set can be restored later or imported on another host).
//!
//! Each document starts with a `format` field (`"umbra-writer-metadata"`,
//! `"umbra-backup-components"`) and a `version` (1); docs/protocol.md describes every field.
//!
//! # Canonical form
//!
//! A document is written in one canonical form: compact JSON (no whitespace) with the fields in
//! the order this crate declares them, lists in the order they hold, ids as lower-case hyphenated
//! UUIDs, flags as bitflags' text and times as integers. Reading accepts any JSON spelling of a
//! valid document (whitespace, other UUID spellings, escapes); writing what was read gives the
//! canonical bytes, and reading those gives an equal value, so a document round-trips exactly.
//!
//! # Errors
//!
//! A malformed document is an [`ErrorKind::InvalidDocument`]
//! error whose message names the problem and where: the JSON parser's `line L column C` for
//! syntax and type errors, a JSON path (`components[2].luns[0]`) for a document that parses but
//! breaks a rule. A document of a later version is
//! [`ErrorKind::UnsupportedVersion`]: upgrade, it is not
//! damaged. Writing a document checks the same rules, so this crate never writes a document it
//! would not read.

mod components;
mod metadata;

pub use components::{BackupComponents, SelectedComponent, SnapshotSet};
pub use metadata::{Component, Dependency, RestoreMethod, SourceType, WriterMetadata};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The document version this build reads and writes.
pub const DOCUMENT_VERSION: u32 = 1;

/// The most LUNs (volumes) a snapshot set holds.
pub const MAX_VOLUMES_PER_SET: usize = 64;

/// A constant `format` field: written as its text, read only as that text.
macro_rules! format_tag {
    ($name:ident, $text:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub(crate) struct $name;

        impl $name {
            pub(crate) const TEXT: &'static str = $text;
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str($text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                if text == $text {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "format {text:?} is not {:?}",
                        $text
                    )))
                }
            }
        }
    };
}
format_tag!(MetadataFormat, "umbra-writer-metadata");
format_tag!(ComponentsFormat, "umbra-backup-components");

/// The `version` field: [`DOCUMENT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Version;

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(DOCUMENT_VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v == DOCUMENT_VERSION {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format!(
                "version {v} is not supported (this build reads version {DOCUMENT_VERSION})"
            )))
        }
    }
}

/// The two fields every document starts with, read first so a wrong format or a later version
/// is told apart from damage.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

/// Reads a document of `format` (named `what` in errors) from `bytes`.
pub(crate) fn read<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    format: &str,
) -> Result<T> {
    let invalid = |m: String| Error::new(ErrorKind::InvalidDocument, format!("{what}: {m}"));
    let header: Header = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    match header.format.as_deref() {
        None => return Err(invalid("missing field `format` at the top level".into())),
        Some(f) if f != format => {
            return Err(invalid(format!("format: {f:?} is not {format:?}")));
        }
        Some(_) => {}
    }
    match header.version {
        None => return Err(invalid("missing field `version` at the top level".into())),
        Some(v) if v != u64::from(DOCUMENT_VERSION) => {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("{what}: version {v} is not supported (this build reads version {DOCUMENT_VERSION})"),
            ));
        }
        Some(_) => {}
    }
    serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))
}

/// Writes `doc` in the canonical form.
pub(crate) fn write<T: Serialize>(doc: &T, what: &str) -> Result<String> {
    serde_json::to_string(doc).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot write the {what}: {e}"),
        )
    })
}

/// A rule broken at a JSON path.
pub(crate) fn broken(what: &str, path: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidDocument,
        format!("{what}: {path}: {problem}"),
    )
}

/// True for a name of a writer or a LUN: 1 to 64 letters, digits, '.', '_' or '-' (the array's
/// rule for LUN names, so a LUN name fits in `UMBRA_LUNS` and a path segment).
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The rule [`is_name`] checks, for messages.
pub(crate) const NAME_RULE: &str = "must be 1 to 64 letters, digits, '.', '_' or '-'";
