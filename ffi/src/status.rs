//! Status codes: `typedef uint32_t umbra_status;` with one named constant per outcome.
//!
//! Codes are grouped in ranges and **never renumbered or reused**; a retired code stays reserved
//! here as a comment. New codes take the next free value of their range.
//!
//! | range | meaning |
//! |---|---|
//! | 0 | success |
//! | 1-99 | the caller's arguments |
//! | 100-199 | the object's state, time and cancellation |
//! | 200-299 | storage |
//! | 300-399 | initiators and masking |
//! | 400-499 | the shadow-copy protocol (vss-core) |
//! | 900-999 | internal |

use std::ffi::{c_char, CStr};

/// The result of every fallible call: `UMBRA_OK` (0) or one of the `UMBRA_E_*` constants.
pub type umbra_status = u32;

/// Success.
pub const UMBRA_OK: umbra_status = 0;

/// A required pointer argument was NULL (or a buffer was `(NULL, n > 0)`).
pub const UMBRA_E_NULL_POINTER: umbra_status = 1;
/// An argument is invalid: a size that is not a positive multiple of the block size or is above
/// 4 PiB, a block size that is not a power of two from 4 KiB to 1 MiB, a malformed LUN name,
/// unknown flag bits, text that is not UTF-8.
pub const UMBRA_E_INVALID_ARGUMENT: umbra_status = 2;
/// A byte range lies (partly) outside the volume, snapshot or LUN; nothing was read or written.
pub const UMBRA_E_OUT_OF_RANGE: umbra_status = 3;
/// An output buffer is too small; the full length was written to the length out-parameter.
pub const UMBRA_E_BUFFER_TOO_SMALL: umbra_status = 4;
/// A snapshot, LUN, group, subscription, volume directory or pool does not exist.
pub const UMBRA_E_NOT_FOUND: umbra_status = 5;
/// An object of that name already exists (a LUN, a non-empty volume directory).
pub const UMBRA_E_ALREADY_EXISTS: umbra_status = 6;
// 7-99: reserved for argument errors.

/// Refused in the object's current state, until that state changes: a read-only snapshot
/// written, a LUN that snapshot LUNs depend on deleted, a LUN offline, a snapshot LUN extended
/// before it is split, a group a mask names deleted, a volume frozen twice or thawed when not
/// frozen; over the shadow-copy protocol, a call out of order. (Before ABI 1.2 the cases of
/// `UMBRA_E_BUSY` were reported with this code too.)
pub const UMBRA_E_BAD_STATE: umbra_status = 100;
/// The operation has not finished yet (an asynchronous operation polled with a timeout).
pub const UMBRA_E_IN_PROGRESS: umbra_status = 101;
/// A deadline passed (a freeze that expired before thaw, writes that did not drain in time).
pub const UMBRA_E_TIMEOUT: umbra_status = 102;
/// The operation was cancelled (it may be resumed by starting it again).
pub const UMBRA_E_CANCELLED: umbra_status = 103;
/// In use by someone else right now, and the same call may succeed later: a pool or volume
/// directory open in another handle or process, a LUN with a long operation running, a move of
/// the snapshot to a file already running (ABI 1.2; `UMBRA_E_BAD_STATE` before).
pub const UMBRA_E_BUSY: umbra_status = 104;
// 105-199: reserved for state errors.

/// The operating system reported an I/O error.
pub const UMBRA_E_IO: umbra_status = 200;
/// No room: the diff area is full (and the policy is to fail writes), no free host LUN number,
/// the disk is full.
pub const UMBRA_E_NO_SPACE: umbra_status = 201;
/// Persisted data is damaged (bad magic, checksum mismatch, a log that does not replay).
pub const UMBRA_E_CORRUPT: umbra_status = 202;
/// The on-disk format version is not one this library understands.
pub const UMBRA_E_UNSUPPORTED_VERSION: umbra_status = 203;
/// The device lacks an optional ability the operation needs (resize, discard).
pub const UMBRA_E_UNSUPPORTED: umbra_status = 204;
/// A directory given as a pool holds files but no pool (a volume's directory, a mistyped path),
/// or (for `umbra_array_open_existing`) is empty: nothing was written to it.
pub const UMBRA_E_NOT_A_POOL: umbra_status = 205;
// 206-299: reserved for storage errors.

/// An initiator id or unmasking list entry is not valid.
pub const UMBRA_E_INVALID_INITIATOR: umbra_status = 300;
/// The LUN's mask denies the initiator this access (nothing was read or written).
pub const UMBRA_E_ACCESS_DENIED: umbra_status = 301;
// 302-399: reserved for masking errors.

/// A shadow-copy writer failed an event (the set was aborted where the step aborts it; the
/// session's writer status names the step and the kind). VSS: `VSS_E_UNEXPECTED_WRITER_ERROR`.
pub const UMBRA_E_WRITER_FAILED: umbra_status = 400;
/// A Writer Metadata or Backup Components document is malformed; the message names the problem
/// and where. VSS: `VSS_E_INVALID_XML_DOCUMENT`.
pub const UMBRA_E_INVALID_DOCUMENT: umbra_status = 401;
/// A provider refused the operation in an expected way (a volume it cannot snapshot now); told apart from its failure (`UMBRA_E_UNEXPECTED_PROVIDER_ERROR`). VSS: `VSS_E_PROVIDER_VETO`. (ABI 1.6)
pub const UMBRA_E_PROVIDER_VETO: umbra_status = 402;
/// No provider supports this volume. VSS: `VSS_E_VOLUME_NOT_SUPPORTED`. (ABI 1.6)
pub const UMBRA_E_VOLUME_NOT_SUPPORTED: umbra_status = 403;
/// A provider failed in an unexpected way. VSS: `VSS_E_UNEXPECTED_PROVIDER_ERROR`. (ABI 1.6)
pub const UMBRA_E_UNEXPECTED_PROVIDER_ERROR: umbra_status = 404;
/// A snapshot set already holds 64 volumes. VSS: `VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED`. (ABI 1.6)
pub const UMBRA_E_MAX_VOLUMES_REACHED: umbra_status = 405;
/// Writes could not be flushed in time at the start of the hold window. VSS: `VSS_E_FLUSH_WRITES_TIMEOUT`. (ABI 1.6)
pub const UMBRA_E_FLUSH_WRITES_TIMEOUT: umbra_status = 406;
/// Writes were held longer than the hold window. VSS: `VSS_E_HOLD_WRITES_TIMEOUT`. (ABI 1.6)
pub const UMBRA_E_HOLD_WRITES_TIMEOUT: umbra_status = 407;
/// Another snapshot set is being made; try again when it is done. VSS: `VSS_E_SNAPSHOT_SET_IN_PROGRESS`. (ABI 1.6)
pub const UMBRA_E_SNAPSHOT_SET_IN_PROGRESS: umbra_status = 408;
/// A volume already has the most shadows it may have. VSS: `VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED`. (ABI 1.6)
pub const UMBRA_E_MAX_SNAPSHOTS_REACHED: umbra_status = 409;
/// A writer did not answer within its deadline (the set was aborted). VSS: `VSS_E_WRITER_NOT_RESPONDING`. (ABI 1.6)
pub const UMBRA_E_WRITER_NOT_RESPONDING: umbra_status = 410;
/// The context (or an attribute in it) is not supported here. VSS: `VSS_E_UNSUPPORTED_CONTEXT`. (ABI 1.6)
pub const UMBRA_E_UNSUPPORTED_CONTEXT: umbra_status = 411;
/// The volume is in use by another operation (a revert, a resync, an import). VSS: `VSS_E_VOLUME_IN_USE`. (ABI 1.6)
pub const UMBRA_E_VOLUME_IN_USE: umbra_status = 412;
/// An import found none of the set's shadows. VSS: `VSS_E_NO_SNAPSHOTS_IMPORTED`. (ABI 1.6)
pub const UMBRA_E_NO_SNAPSHOTS_IMPORTED: umbra_status = 413;
/// A revert of the volume is running. VSS: `VSS_E_REVERT_IN_PROGRESS`. (ABI 1.6)
pub const UMBRA_E_REVERT_IN_PROGRESS: umbra_status = 414;
/// A volume named is not one of the set's. VSS: `VSS_E_UNSELECTED_VOLUME`. (ABI 1.6)
pub const UMBRA_E_UNSELECTED_VOLUME: umbra_status = 415;
/// A shadow named is not in the set. VSS: `VSS_E_SNAPSHOT_NOT_IN_SET`. (ABI 1.6)
pub const UMBRA_E_SNAPSHOT_NOT_IN_SET: umbra_status = 416;
/// The backup components document describes a set that is not transportable. VSS: `VSS_E_NONTRANSPORTABLE_BCD`. (ABI 1.6)
pub const UMBRA_E_NONTRANSPORTABLE_BCD: umbra_status = 417;
/// A resync of the LUN is running. VSS: `VSS_E_RESYNC_IN_PROGRESS`. (ABI 1.6)
pub const UMBRA_E_RESYNC_IN_PROGRESS: umbra_status = 418;
// 419-499: reserved for shadow-copy errors.

/// A bug: the library panicked. The call had no effect beyond what it did before the panic; the
/// message names the panic. Please report it.
pub const UMBRA_E_PANIC: umbra_status = 900;

/// Every status with its name, for `umbra_status_name` and the tests.
pub(crate) const STATUS_NAMES: &[(umbra_status, &CStr)] = &[
    (UMBRA_OK, c"UMBRA_OK"),
    (UMBRA_E_NULL_POINTER, c"UMBRA_E_NULL_POINTER"),
    (UMBRA_E_INVALID_ARGUMENT, c"UMBRA_E_INVALID_ARGUMENT"),
    (UMBRA_E_OUT_OF_RANGE, c"UMBRA_E_OUT_OF_RANGE"),
    (UMBRA_E_BUFFER_TOO_SMALL, c"UMBRA_E_BUFFER_TOO_SMALL"),
    (UMBRA_E_NOT_FOUND, c"UMBRA_E_NOT_FOUND"),
    (UMBRA_E_ALREADY_EXISTS, c"UMBRA_E_ALREADY_EXISTS"),
    (UMBRA_E_BAD_STATE, c"UMBRA_E_BAD_STATE"),
    (UMBRA_E_IN_PROGRESS, c"UMBRA_E_IN_PROGRESS"),
    (UMBRA_E_TIMEOUT, c"UMBRA_E_TIMEOUT"),
    (UMBRA_E_CANCELLED, c"UMBRA_E_CANCELLED"),
    (UMBRA_E_BUSY, c"UMBRA_E_BUSY"),
    (UMBRA_E_IO, c"UMBRA_E_IO"),
    (UMBRA_E_NO_SPACE, c"UMBRA_E_NO_SPACE"),
    (UMBRA_E_CORRUPT, c"UMBRA_E_CORRUPT"),
    (UMBRA_E_UNSUPPORTED_VERSION, c"UMBRA_E_UNSUPPORTED_VERSION"),
    (UMBRA_E_UNSUPPORTED, c"UMBRA_E_UNSUPPORTED"),
    (UMBRA_E_NOT_A_POOL, c"UMBRA_E_NOT_A_POOL"),
    (UMBRA_E_INVALID_INITIATOR, c"UMBRA_E_INVALID_INITIATOR"),
    (UMBRA_E_ACCESS_DENIED, c"UMBRA_E_ACCESS_DENIED"),
    (UMBRA_E_WRITER_FAILED, c"UMBRA_E_WRITER_FAILED"),
    (UMBRA_E_INVALID_DOCUMENT, c"UMBRA_E_INVALID_DOCUMENT"),
    (UMBRA_E_PROVIDER_VETO, c"UMBRA_E_PROVIDER_VETO"),
    (
        UMBRA_E_VOLUME_NOT_SUPPORTED,
        c"UMBRA_E_VOLUME_NOT_SUPPORTED",
    ),
    (
        UMBRA_E_UNEXPECTED_PROVIDER_ERROR,
        c"UMBRA_E_UNEXPECTED_PROVIDER_ERROR",
    ),
    (UMBRA_E_MAX_VOLUMES_REACHED, c"UMBRA_E_MAX_VOLUMES_REACHED"),
    (
        UMBRA_E_FLUSH_WRITES_TIMEOUT,
        c"UMBRA_E_FLUSH_WRITES_TIMEOUT",
    ),
    (UMBRA_E_HOLD_WRITES_TIMEOUT, c"UMBRA_E_HOLD_WRITES_TIMEOUT"),
    (
        UMBRA_E_SNAPSHOT_SET_IN_PROGRESS,
        c"UMBRA_E_SNAPSHOT_SET_IN_PROGRESS",
    ),
    (
        UMBRA_E_MAX_SNAPSHOTS_REACHED,
        c"UMBRA_E_MAX_SNAPSHOTS_REACHED",
    ),
    (
        UMBRA_E_WRITER_NOT_RESPONDING,
        c"UMBRA_E_WRITER_NOT_RESPONDING",
    ),
    (UMBRA_E_UNSUPPORTED_CONTEXT, c"UMBRA_E_UNSUPPORTED_CONTEXT"),
    (UMBRA_E_VOLUME_IN_USE, c"UMBRA_E_VOLUME_IN_USE"),
    (
        UMBRA_E_NO_SNAPSHOTS_IMPORTED,
        c"UMBRA_E_NO_SNAPSHOTS_IMPORTED",
    ),
    (UMBRA_E_REVERT_IN_PROGRESS, c"UMBRA_E_REVERT_IN_PROGRESS"),
    (UMBRA_E_UNSELECTED_VOLUME, c"UMBRA_E_UNSELECTED_VOLUME"),
    (UMBRA_E_SNAPSHOT_NOT_IN_SET, c"UMBRA_E_SNAPSHOT_NOT_IN_SET"),
    (
        UMBRA_E_NONTRANSPORTABLE_BCD,
        c"UMBRA_E_NONTRANSPORTABLE_BCD",
    ),
    (UMBRA_E_RESYNC_IN_PROGRESS, c"UMBRA_E_RESYNC_IN_PROGRESS"),
    (UMBRA_E_PANIC, c"UMBRA_E_PANIC"),
];

/// The name of `status` as a static NUL-terminated string, e.g. `"UMBRA_E_NOT_FOUND"`;
/// `"UMBRA_E_UNKNOWN"` for a value this library does not know. Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn umbra_status_name(status: umbra_status) -> *const c_char {
    ffi_boundary!(
        "umbra_status_name",
        default = c"UMBRA_E_UNKNOWN".as_ptr(),
        {
            STATUS_NAMES
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(c"UMBRA_E_UNKNOWN", |(_, n)| *n)
                .as_ptr()
        }
    )
}

/// The label a failure message of `status` starts with (after the `"function_name: "` prefix):
/// the text of the error kind that maps onto `status` (docs/abi.md's table), so a message never
/// contradicts its code. Statuses without a kind have their own: `"null pointer"`, `"buffer too
/// small"`, `"in progress"`. Messages the library writes itself get it through [`FfiError::new`];
/// the core crates' texts start with it already.
///
/// [`FfiError::new`]: crate::boundary::FfiError::new
pub(crate) fn status_label(status: umbra_status) -> &'static str {
    match status {
        UMBRA_E_NULL_POINTER => "null pointer",
        UMBRA_E_BUFFER_TOO_SMALL => "buffer too small",
        UMBRA_E_IN_PROGRESS => "in progress",
        // The kinds' own texts: one kind, one code, one label.
        s => vss_core::ErrorKind::ALL
            .iter()
            .find(|&&k| status_of_vss(k) == s)
            .map_or("error", |k| k.as_str()),
    }
}

/// The status for a `cow-engine` error kind (the table in docs/abi.md).
pub(crate) fn status_of_cow(kind: cow_engine::ErrorKind) -> umbra_status {
    use cow_engine::ErrorKind as K;
    match kind {
        K::InvalidArgument => UMBRA_E_INVALID_ARGUMENT,
        K::OutOfRange => UMBRA_E_OUT_OF_RANGE,
        K::NotFound => UMBRA_E_NOT_FOUND,
        K::AlreadyExists => UMBRA_E_ALREADY_EXISTS,
        K::Busy => UMBRA_E_BUSY,
        K::BadState => UMBRA_E_BAD_STATE,
        K::NoSpace => UMBRA_E_NO_SPACE,
        K::Timeout => UMBRA_E_TIMEOUT,
        K::Cancelled => UMBRA_E_CANCELLED,
        K::Corrupt => UMBRA_E_CORRUPT,
        K::UnsupportedVersion => UMBRA_E_UNSUPPORTED_VERSION,
        K::Unsupported => UMBRA_E_UNSUPPORTED,
        K::Io => UMBRA_E_IO,
        // A kind added to cow-engine after this table: it gets its own code in the next minor ABI
        // version; until then it is reported as an I/O error (the message names it).
        _ => UMBRA_E_IO,
    }
}

/// The status for a `vds-core` error kind (the table in docs/abi.md).
pub(crate) fn status_of_vds(kind: vds_core::ErrorKind) -> umbra_status {
    use vds_core::ErrorKind as K;
    match kind {
        K::InvalidArgument => UMBRA_E_INVALID_ARGUMENT,
        K::InvalidInitiator => UMBRA_E_INVALID_INITIATOR,
        K::NotFound => UMBRA_E_NOT_FOUND,
        K::AlreadyExists => UMBRA_E_ALREADY_EXISTS,
        K::AccessDenied => UMBRA_E_ACCESS_DENIED,
        K::Busy => UMBRA_E_BUSY,
        K::BadState => UMBRA_E_BAD_STATE,
        K::OutOfRange => UMBRA_E_OUT_OF_RANGE,
        K::NoSpace => UMBRA_E_NO_SPACE,
        K::Timeout => UMBRA_E_TIMEOUT,
        K::Cancelled => UMBRA_E_CANCELLED,
        K::Corrupt => UMBRA_E_CORRUPT,
        K::UnsupportedVersion => UMBRA_E_UNSUPPORTED_VERSION,
        K::Unsupported => UMBRA_E_UNSUPPORTED,
        K::Io => UMBRA_E_IO,
        K::Internal => UMBRA_E_PANIC,
        K::NotAPool => UMBRA_E_NOT_A_POOL,
        // See status_of_cow.
        _ => UMBRA_E_IO,
    }
}

/// The status for a `vss-core` error kind (the table in docs/abi.md): the array's kinds (which
/// vss-core's are generated from, [`vss_core::ErrorKind::array_kind`]) take vds-core's codes;
/// the protocol's own take 400-418.
pub(crate) fn status_of_vss(kind: vss_core::ErrorKind) -> umbra_status {
    use vss_core::ErrorKind as K;
    if let Some(array) = kind.array_kind() {
        return status_of_vds(array);
    }
    match kind {
        K::UnexpectedWriterError => UMBRA_E_WRITER_FAILED,
        K::InvalidDocument => UMBRA_E_INVALID_DOCUMENT,
        K::ProviderVeto => UMBRA_E_PROVIDER_VETO,
        K::VolumeNotSupported => UMBRA_E_VOLUME_NOT_SUPPORTED,
        K::UnexpectedProviderError => UMBRA_E_UNEXPECTED_PROVIDER_ERROR,
        K::MaxVolumesReached => UMBRA_E_MAX_VOLUMES_REACHED,
        K::FlushWritesTimeout => UMBRA_E_FLUSH_WRITES_TIMEOUT,
        K::HoldWritesTimeout => UMBRA_E_HOLD_WRITES_TIMEOUT,
        K::SnapshotSetInProgress => UMBRA_E_SNAPSHOT_SET_IN_PROGRESS,
        K::MaxSnapshotsReached => UMBRA_E_MAX_SNAPSHOTS_REACHED,
        K::WriterNotResponding => UMBRA_E_WRITER_NOT_RESPONDING,
        K::UnsupportedContext => UMBRA_E_UNSUPPORTED_CONTEXT,
        K::VolumeInUse => UMBRA_E_VOLUME_IN_USE,
        K::NoSnapshotsImported => UMBRA_E_NO_SNAPSHOTS_IMPORTED,
        K::RevertInProgress => UMBRA_E_REVERT_IN_PROGRESS,
        K::UnselectedVolume => UMBRA_E_UNSELECTED_VOLUME,
        K::SnapshotNotInSet => UMBRA_E_SNAPSHOT_NOT_IN_SET,
        K::NonTransportableBcd => UMBRA_E_NONTRANSPORTABLE_BCD,
        K::ResyncInProgress => UMBRA_E_RESYNC_IN_PROGRESS,
        // A protocol kind added to vss-core after this table is reported as an I/O error (the
        // message names it) until it gets its own code in the next minor ABI version.
        _ => UMBRA_E_IO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status but success has a label of its own, and a status a kind maps onto is labelled
    /// with that kind's text.
    #[test]
    fn every_status_has_its_own_label() {
        let mut seen = std::collections::BTreeSet::new();
        for &(status, name) in STATUS_NAMES.iter().filter(|(s, _)| *s != UMBRA_OK) {
            let label = status_label(status);
            assert_ne!(label, "error", "{name:?} has no label");
            assert!(seen.insert(label), "{name:?} shares the label {label:?}");
        }
        for k in vds_core::ErrorKind::ALL {
            assert_eq!(status_label(status_of_vds(k)), k.as_str(), "{k:?}");
        }
    }
}
