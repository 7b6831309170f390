//! `umbra_array`: the embedded `vds-core` array: LUNs on copy-on-write volumes, LUN masking with
//! VDS `SetMask` semantics plus read-only access, host LUN numbers and initiator groups, snapshot
//! LUNs, the fast-recovery swap, split, resync, extend, and notifications.
//!
//! Thread safety: an array handle may be used from many threads at once (every function but
//! `umbra_array_free`, which must be the last call on it). Administrative changes are serialised
//! inside the array; queries and I/O run concurrently.

use std::ffi::{c_char, c_void};

use vds_core::{Access, Array, InitiatorId, LunHosts, LunOptions, MaskSpec};

use crate::async_op::umbra_async;
use crate::boundary::*;
use crate::events::*;
use crate::status::*;

/// The embedded array, in memory or over a pool directory. Created by `umbra_array_open`, freed
/// by `umbra_array_free`. Safe to share across threads.
pub struct umbra_array {
    pub(crate) array: Array,
    events: Notifier,
}

impl Drop for umbra_array {
    fn drop(&mut self) {
        self.events.shutdown();
    }
}

/// Access of an initiator to a LUN: masked away.
pub const UMBRA_ACCESS_NONE: u32 = 0;
/// Access of an initiator to a LUN: read-only (mask entry `id=ro`).
pub const UMBRA_ACCESS_READ_ONLY: u32 = 1;
/// Access of an initiator to a LUN: read-write (mask entry `id` or `id=rw`).
pub const UMBRA_ACCESS_READ_WRITE: u32 = 2;
/// The LUN number reported for a LUN the initiator does not see.
pub const UMBRA_NO_LUN_NUMBER: u32 = u32::MAX;

/// LUN status (VDS `VDS_LS_ONLINE`): I/O is served.
pub const UMBRA_LUN_STATUS_ONLINE: u32 = 1;
/// LUN status (VDS `VDS_LS_OFFLINE`): I/O is refused with `UMBRA_E_BAD_STATE`.
pub const UMBRA_LUN_STATUS_OFFLINE: u32 = 4;

/// The properties of a LUN, from `umbra_lun_get_info`. Layout frozen for ABI 1.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct umbra_lun_info {
    /// Size in bytes.
    pub size_bytes: u64,
    /// The array-wide default LUN number (VDS `GetLunNumber`); hosts may have their own
    /// (see `umbra_lun_get_access`).
    pub lun_number: u32,
    /// `VDS_LUN_STATUS`: `UMBRA_LUN_STATUS_ONLINE` or `UMBRA_LUN_STATUS_OFFLINE`.
    pub status: u32,
    /// `VDS_HEALTH` (1 = healthy).
    pub health: u32,
    /// `VDS_TRANSITION_STATE`: 1 stable, 2 extending, 4 reconfiguring (a split or resync runs).
    pub transition: u32,
    /// True for a snapshot LUN not yet split from its source (see `umbra_lun_get_source`).
    pub is_snapshot: bool,
}

/// A LUN name argument: 1 to 64 letters, digits, `.`, `_`, `-` (else INVALID_ARGUMENT).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn lun_name<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded from this function's contract.
    let name = unsafe { c_str(p, what, UMBRA_E_INVALID_ARGUMENT) }?;
    vds_core::array::check_lun_name(name)?;
    Ok(name)
}

/// An initiator id argument in any common spelling (else INVALID_INITIATOR).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn initiator(p: *const c_char) -> FfiResult<InitiatorId> {
    // SAFETY: forwarded from this function's contract.
    let text = unsafe { c_str(p, "initiator", UMBRA_E_INVALID_INITIATOR) }?;
    Ok(InitiatorId::parse(text)?)
}

/// An unmasking list argument (else INVALID_INITIATOR).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn mask_list(p: *const c_char, what: &str) -> FfiResult<MaskSpec> {
    // SAFETY: forwarded from this function's contract.
    let text = unsafe { c_str(p, what, UMBRA_E_INVALID_INITIATOR) }?;
    Ok(MaskSpec::parse(text)?)
}

/// A group name argument: 1 to 64 letters, digits, `.`, `_`, `-` (else INVALID_ARGUMENT).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn group_name<'a>(p: *const c_char) -> FfiResult<&'a str> {
    // SAFETY: forwarded from this function's contract.
    let name = unsafe { c_str(p, "group", UMBRA_E_INVALID_ARGUMENT) }?;
    vds_core::mask::check_name("group", name)?;
    Ok(name)
}

/// Opens the array over pool directory `pool_dir` (created with an empty array if missing or
/// empty; its parent must exist), or an in-memory array if `pool_dir` is NULL. A directory that
/// holds other files but no pool is `UMBRA_E_NOT_A_POOL` (nothing is written to it). One handle
/// owns a pool at a time: a pool open elsewhere is `UMBRA_E_BUSY`.
///
/// # Safety
/// `pool_dir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_open(
    pool_dir: *const c_char,
    out: *mut *mut umbra_array,
) -> umbra_status {
    ffi_boundary!("umbra_array_open", {
        let out = out_ptr(out, "out")?;
        let array = if pool_dir.is_null() {
            Array::in_memory()
        } else {
            // SAFETY: `pool_dir` is non-NULL and NUL-terminated, per this function's contract.
            let dir = unsafe { c_path(pool_dir, "pool_dir") }?;
            Array::open(&dir)?
        };
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, array_handle(array)) };
        Ok(())
    })
}

/// Opens the existing pool in directory `pool_dir`, never creating one (for tools that must not):
/// a missing directory is `UMBRA_E_NOT_FOUND`; an empty one, or one holding no pool,
/// `UMBRA_E_NOT_A_POOL`. Otherwise as `umbra_array_open`.
///
/// # Safety
/// `pool_dir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_open_existing(
    pool_dir: *const c_char,
    out: *mut *mut umbra_array,
) -> umbra_status {
    ffi_boundary!("umbra_array_open_existing", {
        let out = out_ptr(out, "out")?;
        // SAFETY: `pool_dir` is NULL-checked by `c_path` and NUL-terminated per the contract.
        let dir = unsafe { c_path(pool_dir, "pool_dir") }?;
        let array = Array::open_existing(&dir)?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, array_handle(array)) };
        Ok(())
    })
}

/// The handle of `array`, its notifications forwarded to the handle's subscribers.
fn array_handle(array: Array) -> *mut umbra_array {
    let events = Notifier::default();
    let forward = events.clone();
    array.subscribe(move |n| {
        if forward.is_active() {
            forward.post(EventMsg::of_array(n));
        }
    });
    into_handle(umbra_array { array, events })
}

/// Writes the array's block size in bytes to `*out_block_size`: LUN sizes are multiples of it, and
/// `umbra_lun_get_changed_blocks` counts in it.
///
/// # Safety
/// `array` is NULL or a live handle; `out_block_size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_get_block_size(
    array: *const umbra_array,
    out_block_size: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_array_get_block_size", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        let out = out_ptr(out_block_size, "out_block_size")?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, a.array.block_size()) };
        Ok(())
    })
}

/// Deprecated alias of `umbra_array_get_block_size` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`).
///
/// # Safety
/// As `umbra_array_get_block_size`.
#[deprecated(note = "use umbra_array_get_block_size")]
#[no_mangle]
pub unsafe extern "C" fn umbra_array_block_size(
    array: *mut umbra_array,
    out_block_size: *mut u32,
) -> umbra_status {
    ffi_boundary!(
        "umbra_array_block_size",
        alias = {
            // SAFETY: this function's contract is `umbra_array_get_block_size`'s; the arguments are
            // forwarded unchanged.
            unsafe { umbra_array_get_block_size(array, out_block_size) }
        }
    )
}

/// Closes the array (its pool stays on disk). Waits for the array's notification thread to deliver
/// what is queued. Operations started with `_async` keep running and keep the array's data alive
/// until their handles are freed. NULL is a no-op.
///
/// # Safety
/// `array` is NULL or a live handle, not used again afterwards (by any thread); not called from one
/// of its own event callbacks.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_free(array: *mut umbra_array) {
    ffi_boundary!("umbra_array_free", default = (), {
        // SAFETY: `array` is NULL or a live handle that C gives up, per this function's contract.
        drop(unsafe { from_handle(array) });
    })
}

/// Creates LUN `name` of `size_bytes` (a positive multiple of 4 KiB) visible only as
/// `unmasking_list` says (VDS `SetMask`: `""` no one, `"*"` every host, else `;`-separated
/// initiator ids; extensions: `id=ro` read-only access, `@group`). It reads as zeros. A LUN of that
/// name exists: `UMBRA_E_ALREADY_EXISTS`. The LUN gets the lowest default LUN number no other LUN
/// has, and each host it is masked to that number, or the host's lowest free one if the host
/// already sees another LUN there.
///
/// Initiator ids (here and in every `initiator` argument), any case, whitespace around ignored:
/// - iSCSI qualified name `iqn.YYYY-MM.reversed.domain[:unique]` (at most 223 bytes; letters,
///   digits, `-`, `.`, `:`); canonical form: lowercase.
/// - iSCSI EUI-64 name `eui.` + 16 hex digits; canonical: `eui.` + 16 lowercase hex digits.
/// - iSCSI NAA 128-bit name `naa.` + 32 hex digits; canonical: `naa.` + 32 lowercase hex digits.
/// - 64-bit port name (Fibre Channel WWPN/WWNN, SAS address), not all zeros: 16 hex digits plain
///   (`5001438001234567`), with `:` or `-` between the 8 bytes (`50:01:43:80:01:23:45:67`),
///   `0x`-prefixed, or `naa.` + 16 hex digits; canonical: 16 lowercase hex digits.
///
/// Two spellings of one id name one host. Anything else, or text that is not UTF-8, is
/// `UMBRA_E_INVALID_INITIATOR`. Outputs (`umbra_lun_get_mask`, `umbra_lun_get_initiators`,
/// `umbra_group_get`, events) give the canonical form.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `unmasking_list` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_create(
    array: *mut umbra_array,
    name: *const c_char,
    size_bytes: u64,
    unmasking_list: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_create", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, list) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                mask_list(unmasking_list, "unmasking_list")?,
            )
        };
        a.array.create_lun(name, size_bytes, &list)?;
        Ok(())
    })
}

/// `umbra_lun_create_ex` flag: a volatile LUN. Its engine volume keeps no metadata journal: its
/// data lives in its origin file, written in place and durable once flushed
/// (`umbra_lun_handle_flush`, or the array's close), so what was flushed survives a reopen and a
/// crash as a persistent LUN's does; its writes are cheaper (no journal commit for the first write
/// of a block after a snapshot). But its engine snapshots live only until the pool closes, so
/// nothing the pool records may stand on one: a snapshot LUN (`umbra_lun_snapshot`), a snapshot
/// set, a clone or an exposed engine shadow of it is refused with `UMBRA_E_BAD_STATE`. (ABI 1.8)
pub const UMBRA_LUN_VOLATILE: u32 = 0x1;

/// `umbra_lun_create` with `flags` (`UMBRA_LUN_*`; 0 makes what `umbra_lun_create` makes, a
/// persistent LUN). Unknown flag bits are `UMBRA_E_INVALID_ARGUMENT`, and nothing is created.
/// (ABI 1.8)
///
/// # Safety
/// As `umbra_lun_create`.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_create_ex(
    array: *mut umbra_array,
    name: *const c_char,
    size_bytes: u64,
    unmasking_list: *const c_char,
    flags: u32,
) -> umbra_status {
    ffi_boundary!("umbra_lun_create_ex", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, list) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                mask_list(unmasking_list, "unmasking_list")?,
            )
        };
        let known = UMBRA_LUN_VOLATILE;
        if flags & !known != 0 {
            return Err(FfiError::invalid(format!(
                "unknown LUN flags {:#x} (creating LUN {name:?})",
                flags & !known
            )));
        }
        let options = LunOptions {
            volatile: flags & UMBRA_LUN_VOLATILE != 0,
        };
        a.array.create_lun_with(name, size_bytes, &list, options)?;
        Ok(())
    })
}

/// Writes whether LUN `name` is volatile (created with `UMBRA_LUN_VOLATILE`, or
/// `umbra lun create --volatile`) to `*out_volatile`. (ABI 1.8)
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `out_volatile` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_is_volatile(
    array: *const umbra_array,
    name: *const c_char,
    out_volatile: *mut bool,
) -> umbra_status {
    ffi_boundary!("umbra_lun_is_volatile", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let out = out_ptr(out_volatile, "out_volatile")?;
        let volatile = a.array.lun(name)?.volatile;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, volatile) };
        Ok(())
    })
}

/// Deletes LUN `name`. Refused with `UMBRA_E_BAD_STATE` while snapshot LUNs depend on it, and
/// with `UMBRA_E_BUSY` while an operation runs on it.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_delete(
    array: *mut umbra_array,
    name: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_delete", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        a.array.delete_lun(name)?;
        Ok(())
    })
}

/// VDS `SetMask`: replaces LUN `name`'s unmasking list (syntax as `umbra_lun_create`). An invalid
/// list is `UMBRA_E_INVALID_INITIATOR` and leaves the mask unchanged.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `unmasking_list` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_set_mask(
    array: *mut umbra_array,
    name: *const c_char,
    unmasking_list: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_set_mask", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, list) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                mask_list(unmasking_list, "unmasking_list")?,
            )
        };
        a.array.set_mask(name, &list)?;
        Ok(())
    })
}

/// Adds the entries of `entries` (an unmasking list) to LUN `name`'s mask, atomically.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `entries` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_add_to_mask(
    array: *mut umbra_array,
    name: *const c_char,
    entries: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_add_to_mask", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, list) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                mask_list(entries, "entries")?,
            )
        };
        a.array.add_to_mask(name, &list)?;
        Ok(())
    })
}

/// Removes the entries of `entries` (an unmasking list) from LUN `name`'s mask, atomically.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `entries` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_remove_from_mask(
    array: *mut umbra_array,
    name: *const c_char,
    entries: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_remove_from_mask", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, list) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                mask_list(entries, "entries")?,
            )
        };
        a.array.remove_from_mask(name, &list)?;
        Ok(())
    })
}

/// Copies LUN `name`'s canonical unmasking list into `buf`: `""`, `"*"` (`"*=ro"`), or the
/// normalised entries sorted and `;`-joined (read-only ones suffixed `=ro`, groups as `@name`).
/// String output: `*out_len` always gets the full length; `len <= *out_len` is
/// `UMBRA_E_BUFFER_TOO_SMALL` with `buf` untouched; `(NULL, 0)` asks the length.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_mask(
    array: *const umbra_array,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_mask", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let mask = a.array.get_mask(name)?;
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&mask, buf, len, out_len) }
    })
}

/// Writes whether `initiator` sees LUN `name` (with any access) to `*out_visible`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `initiator` are NULL or NUL-terminated;
/// `out_visible` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_is_visible(
    array: *const umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    out_visible: *mut bool,
) -> umbra_status {
    ffi_boundary!("umbra_lun_is_visible", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, host) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                self::initiator(initiator)?,
            )
        };
        let out = out_ptr(out_visible, "out_visible")?;
        let visible = a.array.access(name, &host)?.is_some();
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, visible) };
        Ok(())
    })
}

/// Writes what `initiator` may do with LUN `name` to `*out_access` (`UMBRA_ACCESS_*`) and the LUN
/// number it sees it at to `*out_lun_number` (`UMBRA_NO_LUN_NUMBER` when masked away).
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `initiator` are NULL or NUL-terminated; the
/// out-parameters are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_access(
    array: *const umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    out_access: *mut u32,
    out_lun_number: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_access", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, host) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                self::initiator(initiator)?,
            )
        };
        let access = out_ptr(out_access, "out_access")?;
        let number = out_ptr(out_lun_number, "out_lun_number")?;
        let (acc, num) = match a.array.access(name, &host)? {
            None => (UMBRA_ACCESS_NONE, UMBRA_NO_LUN_NUMBER),
            Some(g) => (
                match g.access {
                    Access::ReadOnly => UMBRA_ACCESS_READ_ONLY,
                    Access::ReadWrite => UMBRA_ACCESS_READ_WRITE,
                },
                g.number,
            ),
        };
        // SAFETY: both are non-NULL and writable per this function's contract.
        unsafe {
            write_out(access, acc);
            write_out(number, num);
        }
        Ok(())
    })
}

/// Deprecated alias of `umbra_lun_get_access` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`).
///
/// # Safety
/// As `umbra_lun_get_access`.
#[deprecated(note = "use umbra_lun_get_access")]
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_access(
    array: *mut umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    out_access: *mut u32,
    out_lun_number: *mut u32,
) -> umbra_status {
    ffi_boundary!(
        "umbra_lun_access",
        alias = {
            // SAFETY: this function's contract is `umbra_lun_get_access`'s; the arguments are
            // forwarded unchanged.
            unsafe { umbra_lun_get_access(array, name, initiator, out_access, out_lun_number) }
        }
    )
}

/// Sets the LUN number (0 to 16383) at which `initiator` sees LUN `name` (the host must see it,
/// through its own entry, a group or `"*"`).
///
/// A number the host already sees another LUN at (its own number for that LUN, or the default
/// number of a LUN masked to every host) is refused with `UMBRA_E_ALREADY_EXISTS`
/// (`"already exists: host <canonical id> already sees another LUN at number <n>"`), nothing
/// changed; give the other LUN another number first. Above 16383: `UMBRA_E_INVALID_ARGUMENT`; a
/// host that does not see the LUN: `UMBRA_E_NOT_FOUND`. The same clash caused the other way, by
/// masking a LUN to every host (`"*"`) while a host sees another LUN at its default number, is
/// `UMBRA_E_INVALID_ARGUMENT` from `umbra_lun_set_mask` / `umbra_lun_create`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `initiator` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_set_host_number(
    array: *mut umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    number: u32,
) -> umbra_status {
    ffi_boundary!("umbra_lun_set_host_number", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, host) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                self::initiator(initiator)?,
            )
        };
        a.array.set_host_number(name, &host, number)?;
        Ok(())
    })
}

/// Copies who sees LUN `name` into `buf`: `"*"` (`"*=ro"`) when every host does, else the
/// canonical initiator ids sorted and `;`-joined (read-only ones suffixed `=ro`), groups resolved
/// to their members. String output convention as `umbra_lun_get_mask`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_initiators(
    array: *const umbra_array,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_initiators", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let text = match a.array.lun_hosts(name)? {
            LunHosts::All {
                access: Access::ReadWrite,
                ..
            } => "*".to_string(),
            LunHosts::All { .. } => "*=ro".to_string(),
            LunHosts::Hosts(m) => {
                let mut v: Vec<String> = m
                    .iter()
                    .map(|(id, g)| match g.access {
                        Access::ReadWrite => id.to_string(),
                        Access::ReadOnly => format!("{id}=ro"),
                    })
                    .collect();
                v.sort();
                v.join(";")
            }
        };
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// Deprecated alias of `umbra_lun_get_initiators` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`, and the array's hosts are called initiators, as in
/// `umbra_initiator_get_luns`).
///
/// # Safety
/// As `umbra_lun_get_initiators`.
#[deprecated(note = "use umbra_lun_get_initiators")]
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_hosts(
    array: *mut umbra_array,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!(
        "umbra_lun_hosts",
        alias = {
            // SAFETY: this function's contract is `umbra_lun_get_initiators`'s; the arguments are
            // forwarded unchanged.
            unsafe { umbra_lun_get_initiators(array, name, buf, len, out_len) }
        }
    )
}

/// Copies the names of the LUNs `initiator` sees, sorted and `;`-joined, into `buf` (string output
/// convention as `umbra_lun_get_mask`).
///
/// # Safety
/// `array` is NULL or a live handle; `initiator` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_initiator_get_luns(
    array: *const umbra_array,
    initiator: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_initiator_get_luns", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, host) = unsafe { (handle(array, "array")?, self::initiator(initiator)?) };
        let mut names: Vec<String> = a
            .array
            .host_view(&host)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&names.join(";"), buf, len, out_len) }
    })
}

/// Deprecated alias of `umbra_initiator_get_luns` (its name before ABI 1.3; every name starts with
/// its object, here the initiator; a query is `_get_`).
///
/// # Safety
/// As `umbra_initiator_get_luns`.
#[deprecated(note = "use umbra_initiator_get_luns")]
#[no_mangle]
pub unsafe extern "C" fn umbra_host_view(
    array: *mut umbra_array,
    initiator: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!(
        "umbra_host_view",
        alias = {
            // SAFETY: this function's contract is `umbra_initiator_get_luns`'s; the arguments are
            // forwarded unchanged.
            unsafe { umbra_initiator_get_luns(array, initiator, buf, len, out_len) }
        }
    )
}

/// Copies the names of every LUN, sorted and `;`-joined, into `buf` (string output convention as
/// `umbra_lun_get_mask`).
///
/// # Safety
/// `array` is NULL or a live handle; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_list(
    array: *const umbra_array,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_list", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        let names: Vec<String> = a.array.luns().into_iter().map(|l| l.name).collect();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&names.join(";"), buf, len, out_len) }
    })
}

/// Writes LUN `name`'s properties to `*out_info`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `out_info` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_info(
    array: *const umbra_array,
    name: *const c_char,
    out_info: *mut umbra_lun_info,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_info", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let out = out_ptr(out_info, "out_info")?;
        let l = a.array.lun(name)?;
        let info = umbra_lun_info {
            size_bytes: l.size,
            lun_number: l.number,
            status: l.status as u32,
            health: l.health as u32,
            transition: l.transition as u32,
            is_snapshot: l.source.is_some(),
        };
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, info) };
        Ok(())
    })
}

/// Copies the name of the LUN that snapshot LUN `name` is a snapshot of into `buf` (`""` for a LUN
/// that is not, or no longer, a snapshot). String output convention as `umbra_lun_get_mask`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_source(
    array: *const umbra_array,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_source", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let source = a.array.lun(name)?.source.unwrap_or_default();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&source, buf, len, out_len) }
    })
}

/// Lists the block numbers (of the array's block size, ascending) that differ between snapshot
/// LUN `from` and `to`, a later snapshot LUN of the same source or the source LUN itself (its
/// current contents): what an incremental backup copies after a full backup of `from`. Exact:
/// the blocks the copy-on-write maps name (writes to either snapshot LUN included) are read from
/// both and kept only where the bytes differ. `from` not a snapshot LUN of that source (or
/// split) is `UMBRA_E_INVALID_ARGUMENT`. Buffer convention as `umbra_snapshot_list`.
///
/// # Safety
/// `array` is NULL or a live handle; `from` and `to` are NULL or NUL-terminated; `blocks` is NULL
/// or points to `cap` writable `uint64_t`s; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_changed_blocks(
    array: *const umbra_array,
    from: *const c_char,
    to: *const c_char,
    blocks: *mut u64,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_changed_blocks", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, from, to) = unsafe {
            (
                handle(array, "array")?,
                lun_name(from, "from")?,
                lun_name(to, "to")?,
            )
        };
        let list = a.array.changed_blocks(from, to)?;
        // SAFETY: `blocks`/`cap` and `out_count` are as write_list requires, per this contract.
        unsafe { write_list(&list, blocks, cap, out_count, "blocks") }
    })
}

/// Deprecated alias of `umbra_lun_get_changed_blocks` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`, as `umbra_snapshot_get_changed_blocks` of a volume).
///
/// # Safety
/// As `umbra_lun_get_changed_blocks`.
#[deprecated(note = "use umbra_lun_get_changed_blocks")]
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_changed_blocks(
    array: *mut umbra_array,
    from: *const c_char,
    to: *const c_char,
    blocks: *mut u64,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!(
        "umbra_lun_changed_blocks",
        alias = {
            // SAFETY: this function's contract is `umbra_lun_get_changed_blocks`'s; the arguments
            // are forwarded unchanged.
            unsafe { umbra_lun_get_changed_blocks(array, from, to, blocks, cap, out_count) }
        }
    )
}

/// Brings LUN `name` online (I/O served) or offline (I/O refused with `UMBRA_E_BAD_STATE`).
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_set_online(
    array: *mut umbra_array,
    name: *const c_char,
    online: bool,
) -> umbra_status {
    ffi_boundary!("umbra_lun_set_online", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        a.array.set_online(name, online)?;
        Ok(())
    })
}

/// Reads `len` bytes of LUN `name` at `offset` as `initiator`. Masked away:
/// `UMBRA_E_ACCESS_DENIED`; past the end: `UMBRA_E_OUT_OF_RANGE`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `initiator` are NULL or NUL-terminated; `buf` is
/// NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_read(
    array: *mut umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_read", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, host, buf) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                self::initiator(initiator)?,
                out_bytes(buf, len, "buf")?,
            )
        };
        a.array.read_at(name, &host, buf, offset)?;
        Ok(())
    })
}

/// Writes `len` bytes to LUN `name` at `offset` as `initiator`. Masked away or read-only access:
/// `UMBRA_E_ACCESS_DENIED`, nothing written; past the end: `UMBRA_E_OUT_OF_RANGE`, nothing
/// written.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `initiator` are NULL or NUL-terminated; `buf` is
/// NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_write(
    array: *mut umbra_array,
    name: *const c_char,
    initiator: *const c_char,
    offset: u64,
    buf: *const u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_write", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, host, buf) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                self::initiator(initiator)?,
                in_bytes(buf, len, "buf")?,
            )
        };
        a.array.write_at(name, &host, buf, offset)?;
        Ok(())
    })
}

/// A hardware-style snapshot: new LUN `snapshot_name` whose contents are `source`'s at this
/// instant, masked to no one, writable, independent of later writes to either. O(1) in the size.
///
/// # Safety
/// `array` is NULL or a live handle; `source` and `snapshot_name` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_snapshot(
    array: *mut umbra_array,
    source: *const c_char,
    snapshot_name: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_snapshot", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, source, snap) = unsafe {
            (
                handle(array, "array")?,
                lun_name(source, "source")?,
                lun_name(snapshot_name, "snapshot_name")?,
            )
        };
        a.array.snapshot_lun(source, snap)?;
        Ok(())
    })
}

/// The fast-recovery swap, as one transaction: `replacement` (typically a snapshot LUN of
/// `damaged`) takes over `damaged`'s hosts, their access and LUN numbers, and its default number;
/// `damaged` is masked to no one and kept for diagnosis. Nothing is copied.
///
/// # Safety
/// `array` is NULL or a live handle; `damaged` and `replacement` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_swap(
    array: *mut umbra_array,
    damaged: *const c_char,
    replacement: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_swap", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, damaged, replacement) = unsafe {
            (
                handle(array, "array")?,
                lun_name(damaged, "damaged")?,
                lun_name(replacement, "replacement")?,
            )
        };
        a.array.swap_lun(damaged, replacement)?;
        Ok(())
    })
}

/// Extends LUN `name` to `size_bytes` (a multiple of 4 KiB, at least its size); new space reads as
/// zeros. A snapshot LUN must be split first (`UMBRA_E_BAD_STATE`).
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_extend(
    array: *mut umbra_array,
    name: *const c_char,
    size_bytes: u64,
) -> umbra_status {
    ffi_boundary!("umbra_lun_extend", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        a.array.extend_lun(name, size_bytes)?;
        Ok(())
    })
}

/// `umbra_lun_extend` on a background thread; writes an async handle to `*out_op`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `out_op` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_extend_async(
    array: *mut umbra_array,
    name: *const c_char,
    size_bytes: u64,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_lun_extend_async", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let out = out_ptr(out_op, "out_op")?;
        // Fail early (and synchronously) for an unknown LUN.
        a.array.lun(name)?;
        let op = umbra_async::follow(a.array.extend_lun_async(name, size_bytes));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Splits snapshot LUN `name` from its source on a background thread: its contents are copied to a
/// volume of its own (progress and cancel through the handle written to `*out_op`), after which
/// the source may be deleted. A LUN that is not a snapshot fails the operation with
/// `UMBRA_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `out_op` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_split_async(
    array: *mut umbra_array,
    name: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_lun_split_async", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let out = out_ptr(out_op, "out_op")?;
        // Fail early (and synchronously) for an unknown LUN.
        a.array.lun(name)?;
        let op = umbra_async::follow(a.array.split_lun(name));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Resync, the copying alternative to the swap: makes LUN `target`'s contents equal to `source`'s
/// on a background thread (only the differing blocks when `source` is a snapshot LUN of `target`,
/// every block otherwise); writes an async handle to `*out_op`.
///
/// Checked before anything starts, failing this call with nothing started: an unknown LUN is
/// `UMBRA_E_NOT_FOUND`; two LUNs of different sizes (a resync needs the same size: extend the
/// smaller one first) or `source` equal to `target` `UMBRA_E_INVALID_ARGUMENT`. (Before ABI 1.3
/// both were reported only by `umbra_async_wait`.) A long operation already running on `target`
/// fails the operation with `UMBRA_E_BUSY`.
///
/// When it starts, every `umbra_lun_handle` opened on `target` before it is revoked for good
/// (`UMBRA_E_ACCESS_DENIED`, as after a swap: a client's cache of the old contents must not go
/// on); a handle opened while it runs gets `UMBRA_E_BUSY` on I/O, and one opened after it reads
/// the resynced data.
///
/// # Safety
/// `array` is NULL or a live handle; `source` and `target` are NULL or NUL-terminated; `out_op` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_resync_async(
    array: *mut umbra_array,
    source: *const c_char,
    target: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_lun_resync_async", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, source, target) = unsafe {
            (
                handle(array, "array")?,
                lun_name(source, "source")?,
                lun_name(target, "target")?,
            )
        };
        let out = out_ptr(out_op, "out_op")?;
        // The preconditions, checked here so they fail this call (the operation checks them again
        // as it starts, against a concurrent change).
        let (s, t) = (a.array.lun(source)?, a.array.lun(target)?);
        if source == target {
            return Err(FfiError::invalid(format!(
                "LUN {source:?} cannot be resynced from itself"
            )));
        }
        if s.size != t.size {
            return Err(FfiError::invalid(format!(
                "LUN {source:?} has {} bytes, {target:?} has {}: a resync needs the same size",
                s.size, t.size
            )));
        }
        let op = umbra_async::follow(a.array.resync_lun(source, target));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Creates or replaces initiator group `group` (usable in unmasking lists as `@group`) with
/// `members`, `;`-separated initiator ids (`""` for none). Masks naming the group follow.
///
/// # Safety
/// `array` is NULL or a live handle; `group` and `members` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_group_set(
    array: *mut umbra_array,
    group: *const c_char,
    members: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_group_set", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, group, members) = unsafe {
            (
                handle(array, "array")?,
                group_name(group)?,
                c_str(members, "members", UMBRA_E_INVALID_INITIATOR)?,
            )
        };
        let list = if members.trim().is_empty() {
            Vec::new()
        } else {
            members
                .split(';')
                .map(InitiatorId::parse)
                .collect::<Result<Vec<_>, _>>()?
        };
        a.array.set_group(group, &list)?;
        Ok(())
    })
}

/// Deletes initiator group `group`; refused (`UMBRA_E_BAD_STATE`) while a mask names it.
///
/// # Safety
/// `array` is NULL or a live handle; `group` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_group_delete(
    array: *mut umbra_array,
    group: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_group_delete", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, group) = unsafe { (handle(array, "array")?, group_name(group)?) };
        a.array.delete_group(group)?;
        Ok(())
    })
}

/// Copies the members of group `group`, canonical ids sorted and `;`-joined, into `buf` (string
/// output convention as `umbra_lun_get_mask`). Unknown group: `UMBRA_E_NOT_FOUND`.
///
/// # Safety
/// `array` is NULL or a live handle; `group` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_group_get(
    array: *const umbra_array,
    group: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_group_get", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, group) = unsafe { (handle(array, "array")?, group_name(group)?) };
        let members = a
            .array
            .groups()
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(_, m)| m)
            .ok_or_else(|| {
                FfiError::new(UMBRA_E_NOT_FOUND, format!("no initiator group {group:?}"))
            })?;
        let mut ids: Vec<String> = members.iter().map(|i| i.to_string()).collect();
        ids.sort();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&ids.join(";"), buf, len, out_len) }
    })
}

/// Copies the names of every initiator group, sorted and `;`-joined, into `buf` (string output
/// convention as `umbra_lun_get_mask`).
///
/// # Safety
/// `array` is NULL or a live handle; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_group_list(
    array: *const umbra_array,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_group_list", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        let mut names: Vec<String> = a.array.groups().into_iter().map(|(g, _)| g).collect();
        names.sort();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&names.join(";"), buf, len, out_len) }
    })
}

/// Calls `callback(ctx, kind, subject, json)` on the array's notification thread for every change
/// from now on, after it is persisted: `UMBRA_EVENT_LUN_ARRIVE`, `_LUN_DEPART`, `_LUN_MODIFY`,
/// `_MASK_CHANGED` (subject: the LUN name). Writes the subscription's id (never 0) to `*out_id`.
/// `ctx` must be usable from that thread. The callback may call any umbra function except
/// `umbra_array_free` on this array.
///
/// # Safety
/// `array` is NULL or a live handle; `callback` (if not NULL) stays callable and `ctx` valid until
/// unsubscribed or the array is freed; `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_subscribe(
    array: *mut umbra_array,
    callback: umbra_event_callback,
    ctx: *mut c_void,
    out_id: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_array_subscribe", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        let out = out_ptr(out_id, "out_id")?;
        let (id, _) = a
            .events
            .subscribe(callback, ctx)
            .map_err(|e| FfiError::new(UMBRA_E_IO, format!("cannot start a thread: {e}")))?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, id) };
        Ok(())
    })
}

/// Ends subscription `id` (`UMBRA_E_NOT_FOUND` if there is none). On return no callback of this
/// array is running, unless called from one (then it takes effect from the next event).
///
/// # Safety
/// `array` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_unsubscribe(array: *mut umbra_array, id: u64) -> umbra_status {
    ffi_boundary!("umbra_array_unsubscribe", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        if !a.events.unsubscribe(id) {
            return Err(FfiError::new(
                UMBRA_E_NOT_FOUND,
                format!("no subscription {id}"),
            ));
        }
        Ok(())
    })
}
