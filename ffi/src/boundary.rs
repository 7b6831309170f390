//! The one boundary every export runs inside, the thread-local last error, and the argument helpers
//! that turn C pointers into Rust references (NULL -> `UMBRA_E_NULL_POINTER`).
//!
//! Every export has the shape
//!
//! ```ignore
//! #[no_mangle]
//! pub unsafe extern "C" fn umbra_thing_verb(thing: *mut umbra_thing, out: *mut u64) -> umbra_status {
//!     ffi_boundary!("umbra_thing_verb", {
//!         // SAFETY: ...
//!         let thing = unsafe { handle(thing, "thing") }?;
//!         let out = out_ptr(out, "out")?;
//!         let v = thing.verb()?;          // errors convert into FfiError with their status
//!         // SAFETY: ...
//!         unsafe { out.as_ptr().write(v) };
//!         Ok(())
//!     })
//! }
//! ```
//!
//! The boundary catches panics (-> `UMBRA_E_PANIC`), turns an [`FfiError`] into its status, and
//! records the message for `umbra_last_error`, prefixed with the function's name.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::status::*;

/// A failure on its way out of an export: the status to return and the message to record.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: umbra_status,
    pub(crate) message: String,
    /// Not a failure the caller should read about: a size query (`(NULL, 0)` output) answered
    /// with `UMBRA_E_BUFFER_TOO_SMALL`. The last error keeps the message of the last real failure.
    pub(crate) quiet: bool,
}

/// Result of an export's body.
pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

impl FfiError {
    /// A failure the library describes itself: the message is `detail` after the label of
    /// `status` (`"not found: no initiator group \"web\""`), so its wording always agrees with
    /// the code (docs/abi.md: "Last error").
    pub(crate) fn new(status: umbra_status, detail: impl AsRef<str>) -> Self {
        Self::labelled(
            status,
            format!("{}: {}", status_label(status), detail.as_ref()),
        )
    }

    /// A failure whose text starts with its label already: a core crate's error report.
    pub(crate) fn labelled(status: umbra_status, message: String) -> Self {
        FfiError {
            status,
            message,
            quiet: false,
        }
    }

    /// The answer to a size query: `UMBRA_E_BUFFER_TOO_SMALL`, leaving the last error alone.
    fn size_query() -> Self {
        FfiError {
            status: UMBRA_E_BUFFER_TOO_SMALL,
            message: String::new(),
            quiet: true,
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        FfiError::new(UMBRA_E_NULL_POINTER, format!("argument `{what}` is NULL"))
    }

    pub(crate) fn invalid(message: impl AsRef<str>) -> Self {
        FfiError::new(UMBRA_E_INVALID_ARGUMENT, message)
    }
}

// The status is the kind's entry in docs/abi.md's table, and the message the whole chain (the
// error's text, then the OS error under it), printed once.
impl From<cow_engine::Error> for FfiError {
    fn from(e: cow_engine::Error) -> Self {
        FfiError::labelled(status_of_cow(e.kind()), e.report())
    }
}

impl From<vds_core::Error> for FfiError {
    fn from(e: vds_core::Error) -> Self {
        FfiError::labelled(status_of_vds(e.kind()), e.report())
    }
}

impl From<vss_core::Error> for FfiError {
    fn from(e: vss_core::Error) -> Self {
        FfiError::labelled(status_of_vss(e.kind()), e.report())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    /// How many failures this thread has recorded: tells a deprecated alias whether the export it
    /// called recorded one.
    static ERRORS_RECORDED: Cell<u64> = const { Cell::new(0) };
}

/// Records `message` as this thread's last failure (no NUL bytes inside: they would truncate it).
pub(crate) fn set_last_error(function: &str, message: &str) {
    let text = format!("{function}: {message}").replace('\0', "\\0");
    // `try_with`: during thread teardown the slot may be gone; the message is then dropped.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
    let _ = ERRORS_RECORDED.try_with(|n| n.set(n.get().wrapping_add(1)));
}

fn errors_recorded() -> u64 {
    ERRORS_RECORDED.try_with(Cell::get).unwrap_or(0)
}

/// Calls `f` with this thread's last failure message (empty before any failure).
pub(crate) fn with_last_error<T>(f: impl FnOnce(&str) -> T) -> T {
    let text = LAST_ERROR
        .try_with(|slot| slot.borrow().clone())
        .unwrap_or_default();
    f(&text)
}

/// The message of a panic caught at the boundary, labelled as `UMBRA_E_PANIC`'s kind
/// (`"internal error: the library panicked: ..."`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = vds_core::panic_text(payload);
    format!(
        "{}: the library panicked: {text}",
        status_label(UMBRA_E_PANIC)
    )
}

/// The boundary of an export returning a status. Use through [`ffi_boundary!`].
pub(crate) fn status_boundary(
    function: &'static str,
    f: impl FnOnce() -> FfiResult,
) -> umbra_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => UMBRA_OK,
        Ok(Err(e)) => {
            if !e.quiet {
                set_last_error(function, &e.message);
            }
            e.status
        }
        Err(payload) => {
            set_last_error(function, &panic_message(&*payload));
            UMBRA_E_PANIC
        }
    }
}

/// The boundary of an export returning a value (or nothing): a panic returns `default` and records
/// the panic message. Use through [`ffi_boundary!`].
pub(crate) fn value_boundary<T>(function: &'static str, default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(function, &panic_message(&*payload));
            default
        }
    }
}

/// The boundary of a deprecated alias: `f` calls the export the alias stands for (inside that
/// export's own boundary) and returns its status. A failure it recorded is renamed to the alias
/// (`"umbra_host_view: ..."`, not `"umbra_initiator_get_luns: ..."`): the message names the
/// function the program called. Use through [`ffi_boundary!`].
pub(crate) fn alias_boundary(
    function: &'static str,
    f: impl FnOnce() -> umbra_status,
) -> umbra_status {
    let before = errors_recorded();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(status) => {
            if status != UMBRA_OK && errors_recorded() != before {
                let _ = LAST_ERROR.try_with(|slot| {
                    let mut text = slot.borrow_mut();
                    if let Some((_, rest)) = text.split_once(": ") {
                        *text = format!("{function}: {rest}");
                    }
                });
            }
            status
        }
        Err(payload) => {
            set_last_error(function, &panic_message(&*payload));
            UMBRA_E_PANIC
        }
    }
}

/// The one boundary around every export.
///
/// - `ffi_boundary!("name", { body })`: `body` returns `FfiResult<()>`; the export returns
///   `UMBRA_OK`, the error's status (recording its message), or `UMBRA_E_PANIC`.
/// - `ffi_boundary!("name", default = value, { body })`: for exports returning a value or nothing;
///   a panic returns `value`.
/// - `ffi_boundary!("old_name", alias = { call })`: for a deprecated alias whose body `call`s the
///   export it stands for and returns that export's status; a failure's message names the alias.
///
/// NULL arguments become `UMBRA_E_NULL_POINTER` through the helpers of this module, which return
/// an [`FfiError`] the body propagates with `?`.
macro_rules! ffi_boundary {
    ($function:literal, default = $default:expr, $body:block) => {
        $crate::boundary::value_boundary($function, $default, move || $body)
    };
    ($function:literal, alias = $body:block) => {
        $crate::boundary::alias_boundary($function, move || $body)
    };
    ($function:literal, $body:block) => {
        $crate::boundary::status_boundary($function, move || -> $crate::boundary::FfiResult {
            $body
        })
    };
}

/// A shared reference to the handle `p`.
///
/// # Safety
/// `p` is NULL or points to a live `T` (a handle created by this library and not yet freed) that
/// stays alive for `'a`.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: by this function's contract, a non-NULL `p` points to a live `T` for `'a`.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(what))
}

/// Checks an out-parameter is not NULL; the export writes it (only) on success.
pub(crate) fn out_ptr<T>(p: *mut T, what: &str) -> FfiResult<NonNull<T>> {
    NonNull::new(p).ok_or_else(|| FfiError::null(what))
}

/// Writes `value` through an out-parameter checked by [`out_ptr`].
///
/// # Safety
/// `p` points to writable, suitably aligned memory for a `T` (the caller's out-parameter).
pub(crate) unsafe fn write_out<T>(p: NonNull<T>, value: T) {
    // SAFETY: by this function's contract `p` is writable and aligned for a `T`. The old contents
    // are not dropped: out-parameters hold plain C data.
    unsafe { p.as_ptr().write(value) }
}

pub(crate) fn check_len(len: usize, what: &str) -> FfiResult<()> {
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "length of `{what}` ({len}) is larger than any object"
        )));
    }
    Ok(())
}

/// The input buffer `(p, len)`: `(NULL, 0)` is the empty slice, `(NULL, n > 0)` is NULL_POINTER.
///
/// # Safety
/// A non-NULL `p` points to `len` readable bytes that stay valid and unmodified for `'a`.
pub(crate) unsafe fn in_bytes<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    check_len(len, what)?;
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(FfiError::null(what))
        };
    }
    // SAFETY: `p` is non-NULL and, by this function's contract, points to `len <= isize::MAX`
    // readable bytes valid for `'a`; a byte has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The output buffer `(p, len)`: `(NULL, 0)` is the empty slice, `(NULL, n > 0)` is NULL_POINTER.
///
/// # Safety
/// A non-NULL `p` points to `len` writable bytes, not otherwise accessed during `'a`.
pub(crate) unsafe fn out_bytes<'a>(p: *mut u8, len: usize, what: &str) -> FfiResult<&'a mut [u8]> {
    check_len(len, what)?;
    if p.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(FfiError::null(what))
        };
    }
    // SAFETY: `p` is non-NULL and, by this function's contract, points to `len <= isize::MAX`
    // writable bytes that nothing else accesses during `'a`. The bytes may be uninitialised C
    // memory; `u8` has no invalid values and we only write to it or hand it to code that writes
    // before it reads.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// The C string `p` as UTF-8; text that is not UTF-8 gives `bad_text` (the status the export
/// documents for invalid text of this argument).
///
/// # Safety
/// A non-NULL `p` points to a NUL-terminated string valid and unmodified for `'a`.
pub(crate) unsafe fn c_str<'a>(
    p: *const c_char,
    what: &str,
    bad_text: umbra_status,
) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: `p` is non-NULL and, by this function's contract, NUL-terminated and valid for `'a`.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| FfiError::new(bad_text, format!("argument `{what}` is not valid UTF-8")))
}

/// The C string `p` as a path (any bytes on Unix; UTF-8 elsewhere). An empty path is invalid.
///
/// # Safety
/// A non-NULL `p` points to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn c_path(p: *const c_char, what: &str) -> FfiResult<PathBuf> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: `p` is non-NULL and, by this function's contract, NUL-terminated and valid.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::invalid(format!(
            "argument `{what}` is an empty path"
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| FfiError::invalid(format!("argument `{what}` is not valid UTF-8")))
    }
}

/// Writes a string output: `*out_len` always gets the full length (without NUL); if `len` cannot
/// hold it and the NUL, nothing else is written and the result is BUFFER_TOO_SMALL.
///
/// # Safety
/// A non-NULL `buf` points to `len` writable bytes; a non-NULL `out_len` is writable.
pub(crate) unsafe fn write_string(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> FfiResult {
    let out_len = out_ptr(out_len, "out_len")?;
    // SAFETY: by this function's contract `buf` is NULL or points to `len` writable bytes.
    let buf = unsafe { out_bytes(buf.cast(), len, "buf") }?;
    // SAFETY: `out_len` is non-NULL and writable by this function's contract.
    unsafe { write_out(out_len, s.len()) };
    if buf.is_empty() {
        return Err(FfiError::size_query());
    }
    if len <= s.len() {
        return Err(FfiError::new(
            UMBRA_E_BUFFER_TOO_SMALL,
            format!(
                "buffer of {len} bytes cannot hold {} bytes and the NUL",
                s.len()
            ),
        ));
    }
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
    Ok(())
}

/// Writes a list output of `T`s: `*out_count` always gets the full count; if `cap` is smaller,
/// nothing else is written and the result is BUFFER_TOO_SMALL.
///
/// # Safety
/// A non-NULL `buf` points to `cap` writable, aligned `T`s; a non-NULL `out_count` is writable.
pub(crate) unsafe fn write_list<T: Copy>(
    items: &[T],
    buf: *mut T,
    cap: usize,
    out_count: *mut usize,
    what: &str,
) -> FfiResult {
    let out_count = out_ptr(out_count, "out_count")?;
    if buf.is_null() && cap > 0 {
        return Err(FfiError::null(what));
    }
    check_len(cap.saturating_mul(std::mem::size_of::<T>()), what)?;
    // SAFETY: `out_count` is non-NULL and writable by this function's contract.
    unsafe { write_out(out_count, items.len()) };
    if buf.is_null() && !items.is_empty() {
        return Err(FfiError::size_query());
    }
    if cap < items.len() {
        return Err(FfiError::new(
            UMBRA_E_BUFFER_TOO_SMALL,
            format!("room for {cap} items, {} needed", items.len()),
        ));
    }
    if !items.is_empty() {
        // SAFETY: `buf` is non-NULL here (cap >= items.len() > 0) and points to at least
        // `items.len()` writable, aligned `T`s by this function's contract; Rust data cannot
        // overlap the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len()) };
    }
    Ok(())
}

/// Moves `value` to the heap and hands ownership to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back ownership of a handle from C (`None` for NULL).
///
/// # Safety
/// `p` is NULL or was returned by [`into_handle`] for the same `T` and not freed since; C no longer
/// uses it.
pub(crate) unsafe fn from_handle<T>(p: *mut T) -> Option<Box<T>> {
    // SAFETY: by this function's contract a non-NULL `p` came from `Box::into_raw` of a `Box<T>`
    // and ownership returns to us exactly once.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let st = status_boundary("umbra_test_panics", || panic!("boom {}", 42));
        assert_eq!(st, UMBRA_E_PANIC);
        with_last_error(|m| {
            assert_eq!(
                m,
                "umbra_test_panics: internal error: the library panicked: boom 42"
            )
        });
        let v = value_boundary("umbra_test_value", 7u32, || panic!("static text"));
        assert_eq!(v, 7);
        with_last_error(|m| {
            assert_eq!(
                m,
                "umbra_test_value: internal error: the library panicked: static text"
            )
        });
    }

    #[test]
    fn errors_keep_their_status_and_message() {
        let st = status_boundary("umbra_test_fails", || Err(FfiError::null("thing")));
        assert_eq!(st, UMBRA_E_NULL_POINTER);
        with_last_error(|m| {
            assert_eq!(
                m,
                "umbra_test_fails: null pointer: argument `thing` is NULL"
            )
        });
        // Success leaves the message alone.
        assert_eq!(status_boundary("umbra_test_ok", || Ok(())), UMBRA_OK);
        with_last_error(|m| assert!(m.starts_with("umbra_test_fails")));
    }

    /// Why: messages the C layer wrote itself did not always say what their status says
    /// ("argument `initiator` is not valid UTF-8" with `UMBRA_E_INVALID_INITIATOR`).
    #[test]
    fn the_layers_own_messages_start_with_their_status_label() {
        let e = FfiError::new(UMBRA_E_INVALID_INITIATOR, "argument `x` is not valid UTF-8");
        assert_eq!(
            e.message,
            "invalid initiator: argument `x` is not valid UTF-8"
        );
        assert_eq!(
            FfiError::null("p").message,
            "null pointer: argument `p` is NULL"
        );
        assert!(FfiError::new(UMBRA_E_BUSY, "x")
            .message
            .starts_with("busy: "));
        // A core error's text has its label already: not repeated.
        let core = vds_core::Error::new(vds_core::ErrorKind::BadState, "offline");
        assert_eq!(FfiError::from(core).message, "bad state: offline");
    }

    #[test]
    fn vds_errors_wrapping_engine_errors_keep_the_engine_kind() {
        // vds-core used to fold the engine's Timeout into Cancelled, and the boundary downcast to
        // undo it; now the kind carries through and the table is the only mapping.
        let cow = cow_engine::Error::new(cow_engine::ErrorKind::Timeout, "drain took too long");
        let vds: vds_core::Error = cow.into();
        assert_eq!(vds.kind(), vds_core::ErrorKind::Timeout);
        assert_eq!(FfiError::from(vds).status, UMBRA_E_TIMEOUT);
        let own = vds_core::Error::new(vds_core::ErrorKind::AccessDenied, "masked");
        assert_eq!(FfiError::from(own).status, UMBRA_E_ACCESS_DENIED);
    }

    /// Every kind of both crates has a code of its own (one to one), and a kind of the same name
    /// in both crates has the same code.
    #[test]
    fn error_kinds_map_one_to_one_onto_codes() {
        let vds: Vec<_> = vds_core::ErrorKind::ALL
            .iter()
            .map(|&k| status_of_vds(k))
            .collect();
        let mut distinct = vds.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), vds.len(), "two vds-core kinds share a code");
        for c in cow_engine::ErrorKind::ALL {
            let v = vds_core::ErrorKind::from(c);
            assert_eq!(status_of_cow(c), status_of_vds(v), "{c:?}");
            assert_eq!(c.as_str(), v.as_str());
        }
    }

    /// Why: the message of a wrapped OS error used to repeat along the chain.
    #[test]
    fn messages_print_the_chain_once() {
        let os = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let cow = cow_engine::Error::io("cannot write origin.img", os);
        let text = os_text(std::io::ErrorKind::StorageFull);
        let e = FfiError::from(vds_core::Error::from(cow));
        assert_eq!(e.status, UMBRA_E_NO_SPACE);
        assert_eq!(
            e.message,
            format!("no space: cannot write origin.img: {text}")
        );
    }

    fn os_text(k: std::io::ErrorKind) -> String {
        std::io::Error::from(k).to_string()
    }

    #[test]
    fn buffers_follow_the_null_conventions() {
        // SAFETY: NULL pointers only; nothing is dereferenced.
        unsafe {
            assert_eq!(in_bytes(std::ptr::null(), 0, "b").unwrap().len(), 0);
            assert_eq!(
                in_bytes(std::ptr::null(), 1, "b").unwrap_err().status,
                UMBRA_E_NULL_POINTER
            );
            assert_eq!(out_bytes(std::ptr::null_mut(), 0, "b").unwrap().len(), 0);
            assert_eq!(
                out_bytes(std::ptr::null_mut(), usize::MAX, "b")
                    .unwrap_err()
                    .status,
                UMBRA_E_INVALID_ARGUMENT
            );
        }
    }

    #[test]
    fn string_outputs_report_the_length_even_when_too_small() {
        let mut buf = [b'x' as c_char; 4];
        let mut len = 0usize;
        // SAFETY: `buf` has 4 writable bytes; `len` is writable.
        let r = unsafe { write_string("abcd", buf.as_mut_ptr(), 4, &mut len) };
        assert_eq!(r.unwrap_err().status, UMBRA_E_BUFFER_TOO_SMALL);
        assert_eq!(len, 4);
        assert!(buf.iter().all(|&b| b == b'x' as c_char));
        let mut big = [0 as c_char; 5];
        // SAFETY: as above with 5 bytes.
        unsafe { write_string("abcd", big.as_mut_ptr(), 5, &mut len) }.unwrap();
        assert_eq!(big[4], 0);
    }
}
