//! The exit codes of `umbra`, in one place: the table that `umbra --help`, the README and
//! `cli/README.md` print, and the mapping from each library's error kinds onto it.
//!
//! Every command, `exec` included, exits with one of these codes. A library error kind maps onto
//! exactly one code ([`Status::of_vds`]); the shadow-copy library's kinds will map through one more
//! function of the same shape when its commands land (`Status::of_vss`: writer failures onto
//! [`Status::WriterFailed`], provider failures onto [`Status::ProviderFailed`], the rest as here).

use vds_core::ErrorKind as VdsKind;

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
    /// commands, not yet in this build).
    WriterFailed = 7,
    /// A shadow-copy provider failed (shadow commands, not yet in this build).
    ProviderFailed = 8,
    /// An I/O error, or damaged persisted state.
    Io = 9,
    /// A verification failed (the demo's checks, not yet in this build).
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
}
