//! What the shadow-copy protocol needs from the array, in C (ABI 1.5): freeze and thaw of a set of
//! LUNs, snapshot sets (create, break a shadow LUN, delete, list), per-LUN and pool metadata (get,
//! set, list) and per-LUN I/O statistics.
//!
//! Thread safety: as the array's (every function may be called from many threads at once), but
//! a `umbra_frozen_luns` is used by one thread at a time and `umbra_frozen_luns_thaw` is its last call.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::time::Duration;

use vds_core::FrozenLuns;

use crate::array::{lun_name, umbra_array};
use crate::boundary::*;
use crate::status::*;

/// LUNs frozen by `umbra_array_freeze_luns`: their writes are held until `umbra_frozen_luns_thaw` (which frees
/// the guard), or until the freeze's deadline passes.
pub struct umbra_frozen_luns {
    frozen: FrozenLuns,
}

/// The smallest buffer `umbra_array_create_snapshot_set` takes for the set's name, NUL included.
pub const UMBRA_SET_NAME_MAX: usize = 32;

/// I/O statistics of a LUN (`umbra_lun_get_stats`): the writes that reached each device of its
/// volume since the array opened it (or a split gave it a volume of its own).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct umbra_lun_stats {
    /// The LUN's size in bytes.
    pub size_bytes: u64,
    /// Engine snapshots held on the LUN's volume (those its snapshot and shadow LUNs stand on).
    pub snapshots: u64,
    /// Diff-area blocks holding data preserved for them.
    pub diff_blocks_in_use: u64,
    /// Bytes written to the LUN's data.
    pub origin_write_bytes: u64,
    /// Write operations on the LUN's data (a discard counts as one, not as bytes).
    pub origin_writes: u64,
    /// Bytes written to the diff area (blocks preserved for snapshots).
    pub diff_write_bytes: u64,
    /// Write operations on the diff area.
    pub diff_writes: u64,
    /// Bytes written to the metadata journal (0 in memory).
    pub journal_write_bytes: u64,
    /// Write operations on the metadata journal.
    pub journal_writes: u64,
}

/// The `count` C strings at `p`, each checked by `check` (a LUN name).
///
/// # Safety
/// `p` is NULL (with `count` 0) or points to `count` pointers, each NULL or NUL-terminated and
/// valid for `'a`.
unsafe fn lun_names<'a>(
    p: *const *const c_char,
    count: usize,
    what: &str,
) -> FfiResult<Vec<&'a str>> {
    if count == 0 {
        return Err(FfiError::invalid(format!("argument `{what}` names no LUN")));
    }
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    check_len(
        count.saturating_mul(std::mem::size_of::<*const c_char>()),
        what,
    )?;
    // SAFETY: by this function's contract `p` points to `count` readable pointers.
    let ptrs = unsafe { std::slice::from_raw_parts(p, count) };
    ptrs.iter()
        .enumerate()
        // SAFETY: each pointer is NULL or NUL-terminated and valid for `'a`, per the contract.
        .map(|(i, &s)| unsafe { lun_name(s, &format!("{what}[{i}]")) })
        .collect()
}

/// A metadata key or value argument (UTF-8; else INVALID_ARGUMENT).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for `'a`.
unsafe fn text<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded from this function's contract.
    unsafe { c_str(p, what, UMBRA_E_INVALID_ARGUMENT) }
}

/// The value of `key` in `map` (the metadata of `whose`), or NOT_FOUND.
fn value_of<'m>(map: &'m BTreeMap<String, String>, key: &str, whose: &str) -> FfiResult<&'m str> {
    map.get(key).map(String::as_str).ok_or_else(|| {
        FfiError::new(
            UMBRA_E_NOT_FOUND,
            format!("{whose} has no metadata key {key:?}"),
        )
    })
}

/// A metadata map as the list calls write it: one JSON object of string values.
fn json_map(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).expect("a map of strings serialises")
}

/// Freezes the `count` LUNs `names` (flush-and-hold: writes in flight drain and are durable, new
/// writes are held) until `umbra_frozen_luns_thaw`, or until `timeout_ms` from now passes (then held
/// writes are released and the thaw reports it). All or none: an unknown LUN is
/// `UMBRA_E_NOT_FOUND`, a LUN frozen already or named twice `UMBRA_E_BAD_STATE`, writes that do not
/// drain in time `UMBRA_E_TIMEOUT`, and nothing stays frozen. Reads are never held; a change of
/// access (a mask, a swap) does not wait for the thaw. Writes the guard to `*out_frozen`.
///
/// # Safety
/// `array` is NULL or a live handle; `names` is NULL or points to `count` pointers, each NULL or
/// NUL-terminated; `out_frozen` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_freeze_luns(
    array: *mut umbra_array,
    names: *const *const c_char,
    count: usize,
    timeout_ms: u64,
    out_frozen: *mut *mut umbra_frozen_luns,
) -> umbra_status {
    ffi_boundary!("umbra_array_freeze_luns", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, names) = unsafe { (handle(array, "array")?, lun_names(names, count, "names")?) };
        let out = out_ptr(out_frozen, "out_frozen")?;
        let frozen = a
            .array
            .freeze_luns(&names, Duration::from_millis(timeout_ms))?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(umbra_frozen_luns { frozen })) };
        Ok(())
    })
}

/// Thaws the LUNs `frozen` froze (their held writes go on) and frees `frozen`, in every case.
/// `*out_expired` (if not NULL) is set to whether the freeze's deadline had passed first (the
/// writes were released then). A LUN that fails to thaw is reported after every other is thawed.
///
/// # Safety
/// `frozen` is NULL or a guard from `umbra_array_freeze_luns`, not used again afterwards;
/// `out_expired` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_frozen_luns_thaw(
    frozen: *mut umbra_frozen_luns,
    out_expired: *mut bool,
) -> umbra_status {
    ffi_boundary!("umbra_frozen_luns_thaw", {
        // SAFETY: `frozen` is NULL or a live guard that C gives up, per this function's contract.
        let f = unsafe { from_handle(frozen) }.ok_or_else(|| FfiError::null("frozen"))?;
        let outcome = f.frozen.thaw()?;
        if let Some(out) = std::ptr::NonNull::new(out_expired) {
            // SAFETY: `out` is non-NULL and writable per this function's contract.
            unsafe { write_out(out, outcome == vds_core::ThawOutcome::Expired) };
        }
        Ok(())
    })
}

/// Snapshots `count` LUNs at one instant, in one transaction: `sources[i]` as new shadow LUN
/// `names[i]`, each masked to no one and read-only until `umbra_lun_break_shadow`, with the
/// metadata `metadata_json` holds (NULL, or a JSON object of string values) plus the key
/// `umbra:snapshot-set` naming the set. The set's name (`set-<n>`) is written to `set_buf`, which
/// must hold `UMBRA_SET_NAME_MAX` bytes (else `UMBRA_E_INVALID_ARGUMENT`, nothing done). All or
/// none, crash-atomic.
///
/// # Safety
/// `array` is NULL or a live handle; `sources` and `names` are NULL or point to `count` pointers,
/// each NULL or NUL-terminated; `metadata_json` is NULL or NUL-terminated; `set_buf` is NULL or
/// `set_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_create_snapshot_set(
    array: *mut umbra_array,
    sources: *const *const c_char,
    names: *const *const c_char,
    count: usize,
    metadata_json: *const c_char,
    set_buf: *mut c_char,
    set_len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_array_create_snapshot_set", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, sources, names) = unsafe {
            (
                handle(array, "array")?,
                lun_names(sources, count, "sources")?,
                lun_names(names, count, "names")?,
            )
        };
        if set_buf.is_null() {
            return Err(FfiError::null("set_buf"));
        }
        if set_len < UMBRA_SET_NAME_MAX {
            return Err(FfiError::invalid(format!(
                "set_buf holds {set_len} bytes; at least UMBRA_SET_NAME_MAX ({UMBRA_SET_NAME_MAX}) are needed"
            )));
        }
        let metadata: BTreeMap<String, String> = if metadata_json.is_null() {
            BTreeMap::new()
        } else {
            // SAFETY: non-NULL and NUL-terminated per this function's contract.
            let json = unsafe { text(metadata_json, "metadata_json") }?;
            serde_json::from_str(json).map_err(|e| {
                FfiError::invalid(format!(
                    "metadata_json is not a JSON object of string values: {e}"
                ))
            })?
        };
        let pairs: Vec<(&str, &str)> = sources.into_iter().zip(names).collect();
        let set = a.array.snapshot_set(&pairs, &metadata)?;
        let mut ignored = 0usize;
        // SAFETY: `set_buf` holds `set_len` writable bytes per this contract; `ignored` is ours.
        unsafe { write_string(&set, set_buf, set_len, &mut ignored) }
    })
}

/// Makes shadow LUN `name` an ordinary read-write LUN, out of its snapshot set (deleting the set
/// no longer deletes it; it can be swapped). Not an unbroken shadow LUN: `UMBRA_E_BAD_STATE`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_break_shadow(
    array: *mut umbra_array,
    name: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_break_shadow", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        a.array.break_shadow(name)?;
        Ok(())
    })
}

/// Deletes snapshot set `set`: its unbroken shadow LUNs, all in one record (all or none,
/// crash-atomic). Broken or swapped-in LUNs stay. An unknown set is `UMBRA_E_NOT_FOUND`; a shadow
/// LUN with a snapshot LUN of its own refuses the whole delete (`UMBRA_E_BAD_STATE`).
///
/// # Safety
/// `array` is NULL or a live handle; `set` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_delete_snapshot_set(
    array: *mut umbra_array,
    set: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_array_delete_snapshot_set", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, set) = unsafe { (handle(array, "array")?, text(set, "set")?) };
        a.array.delete_snapshot_set(set)?;
        Ok(())
    })
}

/// Copies the names of snapshot set `set`'s unbroken shadow LUNs, sorted and `;`-joined (`""` for
/// an unknown set), into `buf`. String output convention as `umbra_lun_get_mask`.
///
/// # Safety
/// `array` is NULL or a live handle; `set` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_get_snapshot_set_luns(
    array: *const umbra_array,
    set: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_array_get_snapshot_set_luns", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, set) = unsafe { (handle(array, "array")?, text(set, "set")?) };
        let names = a.array.snapshot_set_luns(set).join(";");
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&names, buf, len, out_len) }
    })
}

/// Copies the value of key `key` of LUN `name`'s metadata into `buf` (string output convention
/// as `umbra_lun_get_mask`). A key not set is `UMBRA_E_NOT_FOUND`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `key` are NULL or NUL-terminated; `buf` is NULL or
/// `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_metadata(
    array: *const umbra_array,
    name: *const c_char,
    key: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_metadata", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, key) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                text(key, "key")?,
            )
        };
        let m = a.array.lun_metadata(name)?;
        let v = value_of(&m, key, &format!("LUN {name:?}"))?;
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(v, buf, len, out_len) }
    })
}

/// Sets key `key` of LUN `name`'s metadata to `value`, or removes it (`value` NULL), durably,
/// announced as `UMBRA_EVENT_LUN_METADATA`. Keys are 1 to 128 letters, digits, `.`, `_`, `-`, `:`
/// or `/`; values at most 4 KiB; at most 64 keys: out of these limits is
/// `UMBRA_E_INVALID_ARGUMENT`, nothing changed.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `key` are NULL or NUL-terminated; `value` is NULL
/// or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_set_metadata(
    array: *mut umbra_array,
    name: *const c_char,
    key: *const c_char,
    value: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_lun_set_metadata", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, key) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                text(key, "key")?,
            )
        };
        // SAFETY: a non-NULL `value` is NUL-terminated per this function's contract.
        let value = (!value.is_null())
            .then(|| unsafe { text(value, "value") })
            .transpose()?;
        a.array.set_lun_metadata(name, key, value)?;
        Ok(())
    })
}

/// Copies LUN `name`'s metadata into `buf` as one JSON object of string values, keys sorted
/// (`{}` for none). String output convention as `umbra_lun_get_mask`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_list_metadata(
    array: *const umbra_array,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_list_metadata", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let m = a.array.lun_metadata(name)?;
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&json_map(&m), buf, len, out_len) }
    })
}

/// Copies the value of key `key` of the pool's metadata into `buf` (string output convention as
/// `umbra_lun_get_mask`). A key not set is `UMBRA_E_NOT_FOUND`.
///
/// # Safety
/// `array` is NULL or a live handle; `key` is NULL or NUL-terminated; `buf` is NULL or `len`
/// writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_get_metadata(
    array: *const umbra_array,
    key: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_array_get_metadata", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, key) = unsafe { (handle(array, "array")?, text(key, "key")?) };
        let m = a.array.pool_metadata();
        let v = value_of(&m, key, "the pool")?;
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(v, buf, len, out_len) }
    })
}

/// Sets key `key` of the pool's metadata to `value`, or removes it (`value` NULL), durably,
/// announced as `UMBRA_EVENT_POOL_METADATA`. Keys as for `umbra_lun_set_metadata`; values at most
/// 64 KiB; at most 1,024 keys (else `UMBRA_E_INVALID_ARGUMENT`, nothing changed).
///
/// # Safety
/// `array` is NULL or a live handle; `key` is NULL or NUL-terminated; `value` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_set_metadata(
    array: *mut umbra_array,
    key: *const c_char,
    value: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_array_set_metadata", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, key) = unsafe { (handle(array, "array")?, text(key, "key")?) };
        // SAFETY: a non-NULL `value` is NUL-terminated per this function's contract.
        let value = (!value.is_null())
            .then(|| unsafe { text(value, "value") })
            .transpose()?;
        a.array.set_pool_metadata(key, value)?;
        Ok(())
    })
}

/// Copies the pool's metadata into `buf` as one JSON object of string values, keys sorted (`{}`
/// for none). String output convention as `umbra_lun_get_mask`.
///
/// # Safety
/// `array` is NULL or a live handle; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_array_list_metadata(
    array: *const umbra_array,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_array_list_metadata", {
        // SAFETY: `array` is NULL or a live handle, per this function's contract.
        let a = unsafe { handle(array, "array") }?;
        let m = a.array.pool_metadata();
        // SAFETY: `buf`/`len` and `out_len` are as write_string requires, per this contract.
        unsafe { write_string(&json_map(&m), buf, len, out_len) }
    })
}

/// Writes LUN `name`'s I/O statistics to `*out_stats`: what a caller shows to prove that a swap
/// or a break moved no data, and that a resync of N blocks wrote N blocks.
///
/// # Safety
/// `array` is NULL or a live handle; `name` is NULL or NUL-terminated; `out_stats` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_stats(
    array: *const umbra_array,
    name: *const c_char,
    out_stats: *mut umbra_lun_stats,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_stats", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name) = unsafe { (handle(array, "array")?, lun_name(name, "name")?) };
        let out = out_ptr(out_stats, "out_stats")?;
        let s = a.array.lun_stats(name)?;
        let stats = umbra_lun_stats {
            snapshots: s.snapshots as u64,
            size_bytes: s.len,
            diff_blocks_in_use: s.diff_blocks_in_use,
            origin_write_bytes: s.origin_write_bytes,
            origin_writes: s.origin_writes,
            diff_write_bytes: s.diff_write_bytes,
            diff_writes: s.diff_writes,
            journal_write_bytes: s.journal_write_bytes,
            journal_writes: s.journal_writes,
        };
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, stats) };
        Ok(())
    })
}
