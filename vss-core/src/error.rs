//! The crate's one public error type.
//!
//! An [`Error`] is a small, stable [`ErrorKind`] (which the C ABI will map one to one onto a
//! status code, docs/abi.md) plus a message naming the problem: the writer, the event, the set,
//! the document path and line:column. An error of the layers below (`vds_core::Error`, and
//! through it `cow_engine::Error`) is carried unchanged: its kind becomes the kind of the same
//! name, its text is this error's text, and the original stays reachable through
//! [`Error::array`] and [`Error::engine`].
//!
//! The protocol's own kinds mirror the requester-visible errors of VSS; [`ErrorKind::hresult`]
//! gives the VSS `HRESULT` of each kind that has one, for the C table.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Defines [`ErrorKind`]: the array's kinds (`vds_core::array_error_kinds!`'s table, the one
/// source of them), then the protocol's own, and the conversions between the array's kind and
/// this one.
macro_rules! define_error_kind {
    (
        [ $( $(#[$adoc:meta])* $akind:ident = $atext:literal, $aname:literal; )* ]
        $( $(#[$doc:meta])* $kind:ident = $text:literal, $name:literal; )*
    ) => {
        /// What went wrong, as a small stable set that the C ABI maps one to one onto status
        /// codes.
        ///
        /// The first kinds are `vds_core::ErrorKind`'s, generated from the array's one table
        /// (same names, same meaning, same text), which themselves hold every
        /// `cow_engine::ErrorKind`; the others are the shadow-copy protocol's own, after the
        /// requester-visible errors of VSS ([`ErrorKind::hresult`] names the VSS code of each
        /// kind that has one).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$adoc])* $akind, )*
            $( $(#[$doc])* $kind, )*
        }

        impl ErrorKind {
            /// The kind's stable snake_case name, as JSON output spells it (the DiskShadow run's
            /// results, the `umbra` command's errors): `"invalid_argument"`,
            /// `"writer_not_responding"`, ... (the kinds vds-core also has carry
            /// `vds_core::ErrorKind::name`'s names).
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorKind::$akind => $aname, )*
                    $( ErrorKind::$kind => $name, )*
                }
            }

            /// A short stable name for the kind (the text `vds_core::ErrorKind` uses for the
            /// kinds both have).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorKind::$akind => $atext, )*
                    $( ErrorKind::$kind => $text, )*
                }
            }

            /// The array's kind this one is (`None` for the protocol's own kinds): the inverse
            /// of `From<vds_core::ErrorKind>`, for a mapping (the C status table) that gives the
            /// array's kinds their codes in one place.
            pub fn array_kind(self) -> Option<vds_core::ErrorKind> {
                match self {
                    $( ErrorKind::$akind => Some(vds_core::ErrorKind::$akind), )*
                    $( ErrorKind::$kind => None, )*
                }
            }

            /// Every kind, in declaration order.
            pub const ALL: [ErrorKind; [$(stringify!($akind),)* $(stringify!($kind)),*].len()] =
                [$(ErrorKind::$akind,)* $(ErrorKind::$kind),*];
        }

        impl From<vds_core::ErrorKind> for ErrorKind {
            /// The kind of the same name: nothing is folded.
            fn from(kind: vds_core::ErrorKind) -> Self {
                match kind {
                    $( vds_core::ErrorKind::$akind => ErrorKind::$akind, )*
                    // Unreachable: both enums come from the same table (vds-core's kind is
                    // `non_exhaustive`, so the compiler asks for this arm).
                    _ => ErrorKind::Internal,
                }
            }
        }
    };
}

vds_core::array_error_kinds!(define_error_kind! {
    /// A provider refused the operation in an expected way (a volume it cannot snapshot now).
    /// VSS: `VSS_E_PROVIDER_VETO`.
    ProviderVeto = "provider veto", "provider_veto";
    /// No provider supports this volume. VSS: `VSS_E_VOLUME_NOT_SUPPORTED`.
    VolumeNotSupported = "volume not supported", "volume_not_supported";
    /// A provider failed in an unexpected way (told apart from its veto).
    /// VSS: `VSS_E_UNEXPECTED_PROVIDER_ERROR`.
    UnexpectedProviderError = "unexpected provider error", "unexpected_provider_error";
    /// A writer metadata or backup components document is malformed; the message names the
    /// problem and where (line:column and JSON path). VSS: `VSS_E_INVALID_XML_DOCUMENT`.
    InvalidDocument = "invalid document", "invalid_document";
    /// A set already holds the most volumes a set may hold (64).
    /// VSS: `VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED`.
    MaxVolumesReached = "maximum number of volumes reached", "max_volumes_reached";
    /// Writes could not be flushed in time at the start of the hold window.
    /// VSS: `VSS_E_FLUSH_WRITES_TIMEOUT`.
    FlushWritesTimeout = "flush writes timeout", "flush_writes_timeout";
    /// Writes were held longer than the hold window (10 s by default).
    /// VSS: `VSS_E_HOLD_WRITES_TIMEOUT`.
    HoldWritesTimeout = "hold writes timeout", "hold_writes_timeout";
    /// Talking to a writer failed in an unexpected way. VSS: `VSS_E_UNEXPECTED_WRITER_ERROR`.
    UnexpectedWriterError = "unexpected writer error", "unexpected_writer_error";
    /// Another snapshot set is being created; try again when it is done.
    /// VSS: `VSS_E_SNAPSHOT_SET_IN_PROGRESS`.
    SnapshotSetInProgress = "snapshot set in progress", "snapshot_set_in_progress";
    /// A volume already has the most shadows it may have (64 by default, 512 at most).
    /// VSS: `VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED`.
    MaxSnapshotsReached = "maximum number of snapshots reached", "max_snapshots_reached";
    /// A writer did not answer within its deadline and has not answered since.
    /// VSS: `VSS_E_WRITER_NOT_RESPONDING`.
    WriterNotResponding = "writer not responding", "writer_not_responding";
    /// The context (or an attribute in it) is not supported here. VSS: `VSS_E_UNSUPPORTED_CONTEXT`.
    UnsupportedContext = "unsupported context", "unsupported_context";
    /// The volume is in use by another operation (a revert, a resync, an import).
    /// VSS: `VSS_E_VOLUME_IN_USE`.
    VolumeInUse = "volume in use", "volume_in_use";
    /// An import found none of the set's shadows. VSS: `VSS_E_NO_SNAPSHOTS_IMPORTED`.
    NoSnapshotsImported = "no snapshots imported", "no_snapshots_imported";
    /// A revert of the volume is running. VSS: `VSS_E_REVERT_IN_PROGRESS`.
    RevertInProgress = "revert in progress", "revert_in_progress";
    /// A volume named is not one of the set's. VSS: `VSS_E_UNSELECTED_VOLUME`.
    UnselectedVolume = "unselected volume", "unselected_volume";
    /// A shadow named is not in the set. VSS: `VSS_E_SNAPSHOT_NOT_IN_SET`.
    SnapshotNotInSet = "snapshot not in set", "snapshot_not_in_set";
    /// The backup components document describes a set that is not transportable.
    /// VSS: `VSS_E_NONTRANSPORTABLE_BCD`.
    NonTransportableBcd = "non-transportable backup components document", "non_transportable_bcd";
    /// A resync of the LUN is running. VSS: `VSS_E_RESYNC_IN_PROGRESS`.
    ResyncInProgress = "resync in progress", "resync_in_progress";
});

impl ErrorKind {
    /// The VSS `HRESULT` of the kind, where VSS has one (the values of vss.h and winerror.h), for
    /// the C status table; `None` for the kinds VSS has no counterpart of.
    pub fn hresult(self) -> Option<u32> {
        Some(match self {
            ErrorKind::InvalidArgument => 0x8007_0057,
            ErrorKind::AccessDenied => 0x8007_0005,
            ErrorKind::Internal => 0x8000_FFFF,
            ErrorKind::BadState => 0x8004_2301,
            ErrorKind::ProviderVeto => 0x8004_2306,
            ErrorKind::NotFound => 0x8004_2308,
            ErrorKind::VolumeNotSupported => 0x8004_230C,
            ErrorKind::AlreadyExists => 0x8004_230D,
            ErrorKind::UnexpectedProviderError => 0x8004_230F,
            ErrorKind::InvalidDocument => 0x8004_2311,
            ErrorKind::MaxVolumesReached => 0x8004_2312,
            ErrorKind::FlushWritesTimeout => 0x8004_2313,
            ErrorKind::HoldWritesTimeout => 0x8004_2314,
            ErrorKind::UnexpectedWriterError => 0x8004_2315,
            ErrorKind::SnapshotSetInProgress => 0x8004_2316,
            ErrorKind::MaxSnapshotsReached => 0x8004_2317,
            ErrorKind::WriterNotResponding => 0x8004_2319,
            ErrorKind::UnsupportedContext => 0x8004_231B,
            ErrorKind::VolumeInUse => 0x8004_231D,
            ErrorKind::NoSpace => 0x8004_231F,
            ErrorKind::NoSnapshotsImported => 0x8004_2320,
            ErrorKind::RevertInProgress => 0x8004_2325,
            ErrorKind::UnselectedVolume => 0x8004_232A,
            ErrorKind::SnapshotNotInSet => 0x8004_232B,
            ErrorKind::NonTransportableBcd => 0x8004_23FD,
            ErrorKind::ResyncInProgress => 0x8004_23FF,
            ErrorKind::InvalidInitiator
            | ErrorKind::Busy
            | ErrorKind::OutOfRange
            | ErrorKind::Timeout
            | ErrorKind::Cancelled
            | ErrorKind::Corrupt
            | ErrorKind::UnsupportedVersion
            | ErrorKind::Unsupported
            | ErrorKind::Io
            | ErrorKind::NotAPool => return None,
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of `vss-core`.
///
/// Its text is `"<kind>: <message>"`; an error of the array or the engine prints as it did there.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<Repr>);

#[derive(Debug, thiserror::Error)]
enum Repr {
    #[error("{kind}: {message}")]
    Own {
        kind: ErrorKind,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An array (or engine) error, carried unchanged.
    #[error(transparent)]
    Array(vds_core::Error),
}

impl Error {
    /// A new error of `kind` with a message naming the problem.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Repr::Own {
            kind,
            message: message.into(),
            source: None,
        }))
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match &*self.0 {
            Repr::Own { kind, .. } => *kind,
            Repr::Array(e) => e.kind().into(),
        }
    }

    /// The message naming the problem, without the kind.
    pub fn message(&self) -> &str {
        match &*self.0 {
            Repr::Own { message, .. } => message,
            Repr::Array(e) => e.message(),
        }
    }

    /// The array error this error carries, if it came from the array (or the engine through it).
    pub fn array(&self) -> Option<&vds_core::Error> {
        match &*self.0 {
            Repr::Array(e) => Some(e),
            Repr::Own { .. } => None,
        }
    }

    /// The engine error this error carries, if it came from the engine (for its byte offset and
    /// snapshot id).
    pub fn engine(&self) -> Option<&cow_engine::Error> {
        self.array().and_then(vds_core::Error::engine)
    }

    /// This error's text followed by each underlying error's, joined by `": "`: the line to show
    /// a user.
    pub fn report(&self) -> String {
        cow_engine::error_report(self)
    }
}

impl From<vds_core::Error> for Error {
    fn from(e: vds_core::Error) -> Self {
        Error(Box::new(Repr::Array(e)))
    }
}

impl From<cow_engine::Error> for Error {
    fn from(e: cow_engine::Error) -> Self {
        Error::from(vds_core::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has a name of its own, and the kinds vds-core also has carry its names (the
    /// JSON of a DiskRAID run and of a DiskShadow run spell a kind alike).
    #[test]
    fn names_are_unique_and_the_arrays_kinds_keep_the_arrays_names() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ErrorKind::ALL {
            assert!(seen.insert(k.name()), "{k:?}: {} twice", k.name());
        }
        for k in vds_core::ErrorKind::ALL {
            assert_eq!(ErrorKind::from(k).name(), k.name(), "{k:?}");
            assert_eq!(ErrorKind::from(k).array_kind(), Some(k), "{k:?}");
        }
        // Every kind is the array's (and then converts back to itself) or the protocol's own.
        let own = ErrorKind::ALL
            .iter()
            .filter(|k| k.array_kind().is_none())
            .count();
        assert_eq!(own + vds_core::ErrorKind::ALL.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            if let Some(a) = k.array_kind() {
                assert_eq!(ErrorKind::from(a), k);
            }
        }
    }

    /// The array's kinds (and through them the engine's) keep their names and text here.
    #[test]
    fn array_kinds_carry_through_unchanged() {
        for k in vds_core::ErrorKind::ALL {
            let ours = ErrorKind::from(k);
            assert_eq!(ours.as_str(), k.as_str(), "{k:?}");
            assert_eq!(format!("{ours:?}"), format!("{k:?}"));
            let e = Error::from(vds_core::Error::new(k, "x"));
            assert_eq!(e.kind(), ours);
        }
        let e = Error::from(cow_engine::Error::new(
            cow_engine::ErrorKind::Timeout,
            "drain",
        ));
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.engine().unwrap().message(), "drain");
        assert_eq!(e.to_string(), "timed out: drain");
    }

    #[test]
    fn kinds_are_distinct_and_complete() {
        let names: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        let codes: Vec<u32> = ErrorKind::ALL.iter().filter_map(|k| k.hresult()).collect();
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len(), "two kinds share an HRESULT");
        // The values of vss.h, checked against the anchors' table.
        assert_eq!(ErrorKind::BadState.hresult(), Some(0x80042301));
        assert_eq!(ErrorKind::SnapshotSetInProgress.hresult(), Some(0x80042316));
        assert_eq!(ErrorKind::InvalidDocument.hresult(), Some(0x80042311));
        assert_eq!(ErrorKind::ResyncInProgress.hresult(), Some(0x800423FF));
        assert_eq!(ErrorKind::Io.hresult(), None);
    }

    /// A wrapped error prints its text once along the chain (the array's rule).
    #[test]
    fn a_wrapped_error_prints_its_text_once() {
        let os = std::io::Error::from_raw_os_error(5);
        let e = Error::from(cow_engine::Error::io("cannot write the journal", os));
        let report = e.report();
        assert_eq!(
            report.matches("cannot write the journal").count(),
            1,
            "{report}"
        );
        assert_eq!(report.matches("os error 5").count(), 1, "{report}");
    }
}
