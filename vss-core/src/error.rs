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

/// What went wrong, as a small stable set that the C ABI maps one to one onto status codes.
///
/// The first sixteen kinds are `vds_core::ErrorKind`'s (same names, same meaning, same text),
/// which themselves hold every `cow_engine::ErrorKind`; the others are the shadow-copy protocol's
/// own, after the requester-visible errors of VSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument is invalid (a name, a size, an event name, a writer command).
    /// VSS: `E_INVALIDARG`.
    InvalidArgument,
    /// An initiator id or unmasking list entry is not valid (from the array).
    InvalidInitiator,
    /// A LUN, shadow, set, writer or component does not exist. VSS: `VSS_E_OBJECT_NOT_FOUND`.
    NotFound,
    /// The object already exists (a writer name, a volume added twice to a set, a LUN).
    /// VSS: `VSS_E_OBJECT_ALREADY_EXISTS`.
    AlreadyExists,
    /// The mask denies the initiator this access. VSS: `E_ACCESSDENIED`.
    AccessDenied,
    /// In use by someone else right now; the same call may succeed later.
    Busy,
    /// Refused in the object's current state: a protocol call out of sequence, a frozen volume
    /// frozen again. VSS: `VSS_E_BAD_STATE`.
    BadState,
    /// A byte range lies outside the LUN.
    OutOfRange,
    /// No room: no free LUN number, a full diff area, a full file system.
    /// VSS: `VSS_E_INSUFFICIENT_STORAGE`.
    NoSpace,
    /// A deadline passed (a freeze drain of a volume).
    Timeout,
    /// An operation was cancelled.
    Cancelled,
    /// Persisted state is damaged.
    Corrupt,
    /// An on-disk format version this build does not understand.
    UnsupportedVersion,
    /// The device lacks an optional ability the operation needs.
    Unsupported,
    /// The operating system reported an I/O error (starting a writer process included).
    Io,
    /// A bug: the library panicked where it could not be contained. VSS: `E_UNEXPECTED`.
    Internal,
    /// A provider refused the operation in an expected way (a volume it cannot snapshot now).
    /// VSS: `VSS_E_PROVIDER_VETO`.
    ProviderVeto,
    /// No provider supports this volume. VSS: `VSS_E_VOLUME_NOT_SUPPORTED`.
    VolumeNotSupported,
    /// A provider failed in an unexpected way (told apart from its veto).
    /// VSS: `VSS_E_UNEXPECTED_PROVIDER_ERROR`.
    UnexpectedProviderError,
    /// A writer metadata or backup components document is malformed; the message names the
    /// problem and where (line:column and JSON path). VSS: `VSS_E_INVALID_XML_DOCUMENT`.
    InvalidDocument,
    /// A set already holds the most volumes a set may hold (64).
    /// VSS: `VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED`.
    MaxVolumesReached,
    /// Writes could not be flushed in time at the start of the hold window.
    /// VSS: `VSS_E_FLUSH_WRITES_TIMEOUT`.
    FlushWritesTimeout,
    /// Writes were held longer than the hold window (10 s by default).
    /// VSS: `VSS_E_HOLD_WRITES_TIMEOUT`.
    HoldWritesTimeout,
    /// Talking to a writer failed in an unexpected way. VSS: `VSS_E_UNEXPECTED_WRITER_ERROR`.
    UnexpectedWriterError,
    /// Another snapshot set is being created; try again when it is done.
    /// VSS: `VSS_E_SNAPSHOT_SET_IN_PROGRESS`.
    SnapshotSetInProgress,
    /// A volume already has the most shadows it may have (64 by default, 512 at most).
    /// VSS: `VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED`.
    MaxSnapshotsReached,
    /// A writer did not answer within its deadline and has not answered since.
    /// VSS: `VSS_E_WRITER_NOT_RESPONDING`.
    WriterNotResponding,
    /// The context (or an attribute in it) is not supported here. VSS: `VSS_E_UNSUPPORTED_CONTEXT`.
    UnsupportedContext,
    /// The volume is in use by another operation (a revert, a resync, an import).
    /// VSS: `VSS_E_VOLUME_IN_USE`.
    VolumeInUse,
    /// An import found none of the set's shadows. VSS: `VSS_E_NO_SNAPSHOTS_IMPORTED`.
    NoSnapshotsImported,
    /// A revert of the volume is running. VSS: `VSS_E_REVERT_IN_PROGRESS`.
    RevertInProgress,
    /// A volume named is not one of the set's. VSS: `VSS_E_UNSELECTED_VOLUME`.
    UnselectedVolume,
    /// A shadow named is not in the set. VSS: `VSS_E_SNAPSHOT_NOT_IN_SET`.
    SnapshotNotInSet,
    /// The backup components document describes a set that is not transportable.
    /// VSS: `VSS_E_NONTRANSPORTABLE_BCD`.
    NonTransportableBcd,
    /// A resync of the LUN is running. VSS: `VSS_E_RESYNC_IN_PROGRESS`.
    ResyncInProgress,
    /// The array's: a directory given as a pool holds files but no pool.
    NotAPool,
}

impl ErrorKind {
    /// The kind's stable snake_case name, as JSON output spells it (the DiskShadow run's
    /// results, the `umbra` command's errors): `"invalid_argument"`, `"writer_not_responding"`,
    /// ... (exhaustive: a new kind must be named here; the kinds vds-core also has carry
    /// `vds_core::ErrorKind::name`'s names).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::InvalidInitiator => "invalid_initiator",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Busy => "busy",
            ErrorKind::BadState => "bad_state",
            ErrorKind::OutOfRange => "out_of_range",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
            ErrorKind::ProviderVeto => "provider_veto",
            ErrorKind::VolumeNotSupported => "volume_not_supported",
            ErrorKind::UnexpectedProviderError => "unexpected_provider_error",
            ErrorKind::InvalidDocument => "invalid_document",
            ErrorKind::MaxVolumesReached => "max_volumes_reached",
            ErrorKind::FlushWritesTimeout => "flush_writes_timeout",
            ErrorKind::HoldWritesTimeout => "hold_writes_timeout",
            ErrorKind::UnexpectedWriterError => "unexpected_writer_error",
            ErrorKind::SnapshotSetInProgress => "snapshot_set_in_progress",
            ErrorKind::MaxSnapshotsReached => "max_snapshots_reached",
            ErrorKind::WriterNotResponding => "writer_not_responding",
            ErrorKind::UnsupportedContext => "unsupported_context",
            ErrorKind::VolumeInUse => "volume_in_use",
            ErrorKind::NoSnapshotsImported => "no_snapshots_imported",
            ErrorKind::RevertInProgress => "revert_in_progress",
            ErrorKind::UnselectedVolume => "unselected_volume",
            ErrorKind::SnapshotNotInSet => "snapshot_not_in_set",
            ErrorKind::NonTransportableBcd => "non_transportable_bcd",
            ErrorKind::ResyncInProgress => "resync_in_progress",
            ErrorKind::NotAPool => "not_a_pool",
        }
    }

    /// A short stable name for the kind (the text `vds_core::ErrorKind` uses for the kinds both
    /// have).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::InvalidInitiator => "invalid initiator",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Busy => "busy",
            ErrorKind::BadState => "bad state",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::NoSpace => "no space",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "I/O error",
            ErrorKind::Internal => "internal error",
            ErrorKind::ProviderVeto => "provider veto",
            ErrorKind::VolumeNotSupported => "volume not supported",
            ErrorKind::UnexpectedProviderError => "unexpected provider error",
            ErrorKind::InvalidDocument => "invalid document",
            ErrorKind::MaxVolumesReached => "maximum number of volumes reached",
            ErrorKind::FlushWritesTimeout => "flush writes timeout",
            ErrorKind::HoldWritesTimeout => "hold writes timeout",
            ErrorKind::UnexpectedWriterError => "unexpected writer error",
            ErrorKind::SnapshotSetInProgress => "snapshot set in progress",
            ErrorKind::MaxSnapshotsReached => "maximum number of snapshots reached",
            ErrorKind::WriterNotResponding => "writer not responding",
            ErrorKind::UnsupportedContext => "unsupported context",
            ErrorKind::VolumeInUse => "volume in use",
            ErrorKind::NoSnapshotsImported => "no snapshots imported",
            ErrorKind::RevertInProgress => "revert in progress",
            ErrorKind::UnselectedVolume => "unselected volume",
            ErrorKind::SnapshotNotInSet => "snapshot not in set",
            ErrorKind::NonTransportableBcd => "non-transportable backup components document",
            ErrorKind::ResyncInProgress => "resync in progress",
            ErrorKind::NotAPool => "not a pool",
        }
    }

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

    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 36] = [
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidInitiator,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::AccessDenied,
        ErrorKind::Busy,
        ErrorKind::BadState,
        ErrorKind::OutOfRange,
        ErrorKind::NoSpace,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Corrupt,
        ErrorKind::UnsupportedVersion,
        ErrorKind::Unsupported,
        ErrorKind::Io,
        ErrorKind::Internal,
        ErrorKind::ProviderVeto,
        ErrorKind::VolumeNotSupported,
        ErrorKind::UnexpectedProviderError,
        ErrorKind::InvalidDocument,
        ErrorKind::MaxVolumesReached,
        ErrorKind::FlushWritesTimeout,
        ErrorKind::HoldWritesTimeout,
        ErrorKind::UnexpectedWriterError,
        ErrorKind::SnapshotSetInProgress,
        ErrorKind::MaxSnapshotsReached,
        ErrorKind::WriterNotResponding,
        ErrorKind::UnsupportedContext,
        ErrorKind::VolumeInUse,
        ErrorKind::NoSnapshotsImported,
        ErrorKind::RevertInProgress,
        ErrorKind::UnselectedVolume,
        ErrorKind::SnapshotNotInSet,
        ErrorKind::NonTransportableBcd,
        ErrorKind::ResyncInProgress,
        ErrorKind::NotAPool,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<vds_core::ErrorKind> for ErrorKind {
    /// The kind of the same name: nothing is folded.
    fn from(kind: vds_core::ErrorKind) -> Self {
        use vds_core::ErrorKind as K;
        match kind {
            K::InvalidArgument => ErrorKind::InvalidArgument,
            K::InvalidInitiator => ErrorKind::InvalidInitiator,
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::AccessDenied => ErrorKind::AccessDenied,
            K::Busy => ErrorKind::Busy,
            K::BadState => ErrorKind::BadState,
            K::OutOfRange => ErrorKind::OutOfRange,
            K::NoSpace => ErrorKind::NoSpace,
            K::Timeout => ErrorKind::Timeout,
            K::Cancelled => ErrorKind::Cancelled,
            K::Corrupt => ErrorKind::Corrupt,
            K::UnsupportedVersion => ErrorKind::UnsupportedVersion,
            K::Unsupported => ErrorKind::Unsupported,
            K::Io => ErrorKind::Io,
            K::Internal => ErrorKind::Internal,
            K::NotAPool => ErrorKind::NotAPool,
            // A kind added to the array after this crate was written (a test keeps this arm
            // unreachable for the array this workspace builds).
            _ => ErrorKind::Internal,
        }
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
