//! The exit codes of `umbra`, in one place: the table that `umbra --help`, the README and
//! `cli/README.md` print, and the mapping from each library's error kinds onto it.
//!
//! Every command, `exec` included, exits with one of these codes. A library error kind maps onto
//! exactly one code ([`Status::of_vds`]); the shadow-copy library's kinds through
//! [`Status::of_vss`]: writer failures onto [`Status::WriterFailed`], provider failures onto
//! [`Status::ProviderFailed`], the array's kinds as [`Status::of_vds`], the protocol's others onto
//! the nearest code.

use vds_core::ErrorKind as VdsKind;
use vss_core::ErrorKind as VssKind;

/// An exit status of `umbra`: its code is the enum's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The command did what it was asked.
    Success = 0,
    /// A bug: the library panicked inside an operation (please report it).
    Internal = 1,
    /// The command line does not parse (clap's own code), or asks for what is not supported yet.
    Usage = 2,
    /// A LUN, host, group, file or pool directory that does not exist.
    NotFound = 3,
    /// Invalid input: a size, an initiator id, an unmasking list, a name, a script line.
    InvalidInput = 4,
    /// The mask denies the initiator this access (masked away, read-only, a shadow LUN).
    AccessDenied = 5,
    /// In use: the pool is locked by another process (its pid is named), or the LUN has an
    /// operation running.
    Busy = 6,
    /// A writer failed or passed its deadline, and the snapshot set was aborted (shadow
    /// commands; the demo).
    WriterFailed = 7,
    /// A shadow-copy provider failed (shadow commands; the demo).
    ProviderFailed = 8,
    /// An I/O error, or damaged persisted state.
    Io = 9,
    /// A verification failed (the demo's checks).
    VerificationFailed = 10,
    /// A LUN, group or file of that name already exists.
    AlreadyExists = 11,
    /// Refused in the object's current state (an offline LUN, a LUN its snapshot LUNs depend on,
    /// a snapshot LUN grown before it is split).
    BadState = 12,
    /// A byte range past the end of the LUN.
    OutOfRange = 13,
    /// No room: no free LUN number, a full diff area or file system.
    NoSpace = 14,
    /// A deadline passed.
    Timeout = 15,
    /// The operation was cancelled.
    Cancelled = 16,
    /// The pool is of an on-disk format version this build does not read (upgrade umbra; do not
    /// repair the pool).
    UnsupportedVersion = 17,
    /// The device lacks an ability the operation needs.
    Unsupported = 18,
    /// The directory given as the pool holds other files and no pool.
    NotAPool = 19,
}

/// Every status with what it means, in code order: the table the help text and the READMEs show.
pub const TABLE: [(Status, &str); 20] = [
    (Status::Success, "success"),
    (Status::Internal, "internal error (a bug: please report it)"),
    (
        Status::Usage,
        "usage: the command line does not parse, or asks for what is not supported yet",
    ),
    (
        Status::NotFound,
        "not found: LUN, host, group, file or pool",
    ),
    (
        Status::InvalidInput,
        "invalid input: size, initiator id, unmasking list, name, script line",
    ),
    (
        Status::AccessDenied,
        "access denied: the mask refuses this initiator",
    ),
    (
        Status::Busy,
        "busy: pool locked by another process (pid named), LUN operation running",
    ),
    (
        Status::WriterFailed,
        "a writer failed or timed out; the set was aborted (shadow commands)",
    ),
    (
        Status::ProviderFailed,
        "a provider failed (shadow commands)",
    ),
    (Status::Io, "I/O error or corruption"),
    (Status::VerificationFailed, "a verification failed (demo)"),
    (Status::AlreadyExists, "already exists"),
    (
        Status::BadState,
        "bad state: refused in the object's current state",
    ),
    (
        Status::OutOfRange,
        "out of range: bytes past the end of the LUN",
    ),
    (Status::NoSpace, "no space"),
    (Status::Timeout, "timed out"),
    (Status::Cancelled, "cancelled"),
    (
        Status::UnsupportedVersion,
        "unsupported version: the pool's format is not this build's",
    ),
    (Status::Unsupported, "unsupported by the device"),
    (
        Status::NotAPool,
        "not a pool: the directory holds other files",
    ),
];

impl Status {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status of a `vds-core` error kind.
    pub fn of_vds(kind: VdsKind) -> Status {
        match kind {
            VdsKind::InvalidArgument | VdsKind::InvalidInitiator => Status::InvalidInput,
            VdsKind::NotFound => Status::NotFound,
            VdsKind::AlreadyExists => Status::AlreadyExists,
            VdsKind::AccessDenied => Status::AccessDenied,
            VdsKind::Busy => Status::Busy,
            VdsKind::BadState => Status::BadState,
            VdsKind::OutOfRange => Status::OutOfRange,
            VdsKind::NoSpace => Status::NoSpace,
            VdsKind::Timeout => Status::Timeout,
            VdsKind::Cancelled => Status::Cancelled,
            VdsKind::Corrupt | VdsKind::Io => Status::Io,
            VdsKind::UnsupportedVersion => Status::UnsupportedVersion,
            VdsKind::Unsupported => Status::Unsupported,
            VdsKind::NotAPool => Status::NotAPool,
            // `Internal`, and a kind added to vds-core after this table was written.
            _ => Status::Internal,
        }
    }
}

/// A `vss-core` kind's stable snake_case name (the JSON `kind`) and the array's kind it is,
/// if it is one of the array's.
pub fn vss_kind(kind: VssKind) -> (&'static str, Option<VdsKind>) {
    let vds = |k: VdsKind| (k.name(), Some(k));
    match kind {
        VssKind::InvalidArgument => vds(VdsKind::InvalidArgument),
        VssKind::InvalidInitiator => vds(VdsKind::InvalidInitiator),
        VssKind::NotFound => vds(VdsKind::NotFound),
        VssKind::AlreadyExists => vds(VdsKind::AlreadyExists),
        VssKind::AccessDenied => vds(VdsKind::AccessDenied),
        VssKind::Busy => vds(VdsKind::Busy),
        VssKind::BadState => vds(VdsKind::BadState),
        VssKind::OutOfRange => vds(VdsKind::OutOfRange),
        VssKind::NoSpace => vds(VdsKind::NoSpace),
        VssKind::Timeout => vds(VdsKind::Timeout),
        VssKind::Cancelled => vds(VdsKind::Cancelled),
        VssKind::Corrupt => vds(VdsKind::Corrupt),
        VssKind::UnsupportedVersion => vds(VdsKind::UnsupportedVersion),
        VssKind::Unsupported => vds(VdsKind::Unsupported),
        VssKind::Io => vds(VdsKind::Io),
        VssKind::Internal => vds(VdsKind::Internal),
        VssKind::NotAPool => vds(VdsKind::NotAPool),
        VssKind::ProviderVeto => ("provider_veto", None),
        VssKind::VolumeNotSupported => ("volume_not_supported", None),
        VssKind::UnexpectedProviderError => ("unexpected_provider_error", None),
        VssKind::InvalidDocument => ("invalid_document", None),
        VssKind::MaxVolumesReached => ("max_volumes_reached", None),
        VssKind::FlushWritesTimeout => ("flush_writes_timeout", None),
        VssKind::HoldWritesTimeout => ("hold_writes_timeout", None),
        VssKind::UnexpectedWriterError => ("unexpected_writer_error", None),
        VssKind::SnapshotSetInProgress => ("snapshot_set_in_progress", None),
        VssKind::MaxSnapshotsReached => ("max_snapshots_reached", None),
        VssKind::WriterNotResponding => ("writer_not_responding", None),
        VssKind::UnsupportedContext => ("unsupported_context", None),
        VssKind::VolumeInUse => ("volume_in_use", None),
        VssKind::NoSnapshotsImported => ("no_snapshots_imported", None),
        VssKind::RevertInProgress => ("revert_in_progress", None),
        VssKind::UnselectedVolume => ("unselected_volume", None),
        VssKind::SnapshotNotInSet => ("snapshot_not_in_set", None),
        VssKind::NonTransportableBcd => ("non_transportable_bcd", None),
        VssKind::ResyncInProgress => ("resync_in_progress", None),
        // A kind added to vss-core after this table was written.
        _ => ("internal", Some(VdsKind::Internal)),
    }
}

impl Status {
    /// The status of a `vss-core` error kind.
    pub fn of_vss(kind: VssKind) -> Status {
        match kind {
            VssKind::UnexpectedWriterError | VssKind::WriterNotResponding => Status::WriterFailed,
            VssKind::ProviderVeto
            | VssKind::VolumeNotSupported
            | VssKind::UnexpectedProviderError
            | VssKind::FlushWritesTimeout
            | VssKind::HoldWritesTimeout
            | VssKind::MaxSnapshotsReached
            | VssKind::UnsupportedContext => Status::ProviderFailed,
            VssKind::InvalidDocument
            | VssKind::MaxVolumesReached
            | VssKind::UnselectedVolume
            | VssKind::NonTransportableBcd => Status::InvalidInput,
            VssKind::SnapshotSetInProgress
            | VssKind::VolumeInUse
            | VssKind::RevertInProgress
            | VssKind::ResyncInProgress => Status::Busy,
            VssKind::NoSnapshotsImported | VssKind::SnapshotNotInSet => Status::NotFound,
            k => vss_kind(k).1.map_or(Status::Internal, Status::of_vds),
        }
    }
}

/// The exit code table as `umbra --help` prints it after the commands.
pub fn help_text() -> String {
    let mut out = String::from("Exit codes (the same for every command, exec included):\n");
    for (status, meaning) in TABLE {
        out.push_str(&format!("  {:>2}  {meaning}\n", status.code()));
    }
    out.push_str(
        "\nThe pool is --pool DIR, else $UMBRA_POOL, else ./umbra-pool (created on first use).\n\
         Sizes: B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB, all binary; MB when no unit.\n\
         --json prints one JSON document on stdout, errors included: \
         {\"error\": {\"kind\": ..., \"message\": ..., \"exit_code\": ...}}.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table lists every status once, in code order, so the help text cannot skip one.
    #[test]
    fn the_table_is_every_code_in_order() {
        for (i, (status, _)) in TABLE.iter().enumerate() {
            assert_eq!(usize::from(status.code()), i, "{status:?}");
        }
    }

    /// Every vds-core kind maps to a documented code, and only Internal to 1.
    #[test]
    fn every_vds_kind_has_its_code() {
        for kind in VdsKind::ALL {
            let s = Status::of_vds(kind);
            assert_ne!(s, Status::Success, "{kind:?}");
            assert_eq!(s == Status::Internal, kind == VdsKind::Internal, "{kind:?}");
        }
        assert_eq!(Status::of_vds(VdsKind::NotFound).code(), 3);
        assert_eq!(Status::of_vds(VdsKind::InvalidInitiator).code(), 4);
        assert_eq!(Status::of_vds(VdsKind::AccessDenied).code(), 5);
        assert_eq!(Status::of_vds(VdsKind::Busy).code(), 6);
        assert_eq!(Status::of_vds(VdsKind::Corrupt).code(), 9);
    }

    /// Every vss-core kind maps to a documented code and a name of its own, and only Internal
    /// to 1; writer failures to 7, provider failures to 8, the array's kinds as vds-core's.
    #[test]
    fn every_vss_kind_has_its_code_and_name() {
        let mut names = std::collections::BTreeSet::new();
        for kind in VssKind::ALL {
            let s = Status::of_vss(kind);
            assert_ne!(s, Status::Success, "{kind:?}");
            assert_eq!(s == Status::Internal, kind == VssKind::Internal, "{kind:?}");
            let (name, vds) = vss_kind(kind);
            assert!(names.insert(name), "{kind:?}: {name} twice");
            if let Some(v) = vds {
                assert_eq!(s, Status::of_vds(v), "{kind:?}");
            }
        }
        assert_eq!(Status::of_vss(VssKind::UnexpectedWriterError).code(), 7);
        assert_eq!(Status::of_vss(VssKind::WriterNotResponding).code(), 7);
        assert_eq!(Status::of_vss(VssKind::ProviderVeto).code(), 8);
        assert_eq!(Status::of_vss(VssKind::NotFound).code(), 3);
    }
}
