//! The exit codes of `umbra`, in one place: the table that `umbra --help`, the README and
//! `cli/README.md` print, and the mapping from each library's error kinds onto it.
//!
//! Every command, `exec` included, exits with one of these codes. A library error kind maps onto
//! exactly one code: vds-core's through [`Status::of_vds`], vss-core's through [`Status::of_vss`]
//! (writer failures onto [`Status::WriterFailed`], provider failures onto
//! [`Status::ProviderFailed`], the kinds both crates have as vds-core's).

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
    /// A writer failed or passed its deadline: the snapshot set was aborted, or (a failure
    /// after the shadows exist) the shadows were kept and the writer's state is
    /// `FAILED_AT_<STEP>`.
    WriterFailed = 7,
    /// A shadow-copy provider vetoed or failed (or no provider supports the LUN).
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
    /// A DiskShadow script's `exec` program could not run or exited with a failure.
    ScriptExecFailed = 20,
}

/// Every status with what it means, in code order: the table the help text and the READMEs show.
pub const TABLE: [(Status, &str); 21] = [
    (Status::Success, "success"),
    (Status::Internal, "internal error (a bug: please report it)"),
    (
        Status::Usage,
        "usage: the command line does not parse (--writer with --nowriters), or is not \
         supported yet",
    ),
    (
        Status::NotFound,
        "not found: LUN, host, group, file or pool",
    ),
    (
        Status::InvalidInput,
        "invalid input: size, initiator id, unmasking list, name, script line, \
         --writer NAME=CMD",
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
        "a writer failed or timed out (the set aborted, or kept with FAILED_AT_<STEP>)",
    ),
    (
        Status::ProviderFailed,
        "a provider vetoed or failed, or no provider supports the LUN",
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
    (
        Status::ScriptExecFailed,
        "a DiskShadow script's exec program failed",
    ),
];

impl Status {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status whose code is `code` ([`Status::Internal`] for a code not in the table).
    pub fn of_code(code: u8) -> Status {
        TABLE
            .iter()
            .map(|(s, _)| *s)
            .find(|s| s.code() == code)
            .unwrap_or(Status::Internal)
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

impl Status {
    /// The status of a `vss-core` error kind: writer failures 7, provider failures 8, the
    /// protocol's other kinds onto the nearest general code, the kinds vds-core also has as
    /// [`Status::of_vds`] maps them.
    pub fn of_vss(kind: VssKind) -> Status {
        match kind {
            VssKind::UnexpectedWriterError | VssKind::WriterNotResponding => Status::WriterFailed,
            VssKind::ProviderVeto
            | VssKind::VolumeNotSupported
            | VssKind::UnexpectedProviderError
            | VssKind::FlushWritesTimeout
            | VssKind::HoldWritesTimeout => Status::ProviderFailed,
            VssKind::InvalidDocument
            | VssKind::NonTransportableBcd
            | VssKind::UnselectedVolume
            | VssKind::SnapshotNotInSet => Status::InvalidInput,
            VssKind::NoSnapshotsImported => Status::NotFound,
            VssKind::SnapshotSetInProgress
            | VssKind::VolumeInUse
            | VssKind::RevertInProgress
            | VssKind::ResyncInProgress => Status::Busy,
            VssKind::MaxVolumesReached | VssKind::MaxSnapshotsReached => Status::NoSpace,
            VssKind::UnsupportedContext => Status::Unsupported,
            VssKind::InvalidArgument => Status::InvalidInput,
            VssKind::InvalidInitiator => Status::InvalidInput,
            VssKind::NotFound => Status::NotFound,
            VssKind::AlreadyExists => Status::AlreadyExists,
            VssKind::AccessDenied => Status::AccessDenied,
            VssKind::Busy => Status::Busy,
            VssKind::BadState => Status::BadState,
            VssKind::OutOfRange => Status::OutOfRange,
            VssKind::NoSpace => Status::NoSpace,
            VssKind::Timeout => Status::Timeout,
            VssKind::Cancelled => Status::Cancelled,
            VssKind::Corrupt | VssKind::Io => Status::Io,
            VssKind::UnsupportedVersion => Status::UnsupportedVersion,
            VssKind::Unsupported => Status::Unsupported,
            VssKind::NotAPool => Status::NotAPool,
            // `Internal`, and a kind added to vss-core after this table was written.
            _ => Status::Internal,
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

    /// Every vss-core kind maps to a documented code; the kinds vds-core also has map as
    /// vds-core's; writer failures are 7 and provider failures 8.
    #[test]
    fn every_vss_kind_has_its_code() {
        for kind in VssKind::ALL {
            let s = Status::of_vss(kind);
            assert_ne!(s, Status::Success, "{kind:?}");
            assert_eq!(s == Status::Internal, kind == VssKind::Internal, "{kind:?}");
        }
        for kind in VdsKind::ALL {
            assert_eq!(
                Status::of_vss(kind.into()),
                Status::of_vds(kind),
                "{kind:?}"
            );
        }
        assert_eq!(Status::of_vss(VssKind::WriterNotResponding).code(), 7);
        assert_eq!(Status::of_vss(VssKind::UnexpectedWriterError).code(), 7);
        assert_eq!(Status::of_vss(VssKind::ProviderVeto).code(), 8);
        assert_eq!(Status::of_vss(VssKind::UnexpectedProviderError).code(), 8);
        assert_eq!(Status::of_vss(VssKind::SnapshotSetInProgress).code(), 6);
        assert_eq!(Status::of_vss(VssKind::InvalidDocument).code(), 4);
    }
}
