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

/// A shadow-copy writer failed an event (reserved for the vss-core ABI).
pub const UMBRA_E_WRITER_FAILED: umbra_status = 400;
/// A Writer Metadata or Backup Components document is malformed (reserved for the vss-core ABI).
pub const UMBRA_E_INVALID_DOCUMENT: umbra_status = 401;
// 402-499: reserved for shadow-copy errors.

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
        UMBRA_E_WRITER_FAILED => "writer failed",
        UMBRA_E_INVALID_DOCUMENT => "invalid document",
        // The kinds' own texts: one kind, one code, one label.
        s => vds_core::ErrorKind::ALL
            .iter()
            .find(|&&k| status_of_vds(k) == s)
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
