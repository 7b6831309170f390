//! `umbra_lun_handle`: LUN I/O as a SCSI or NBD target addresses a LUN, by (initiator, host LUN
//! number), resolved once and checked against the masking on every I/O (ABI 1.4).
//!
//! Thread safety: a LUN handle may be used from many threads at once (every function but
//! `umbra_lun_handle_close`, which must be the last call on it).

use std::ffi::{c_char, c_void};
use std::io::{IoSlice, IoSliceMut};

use vds_core::{InitiatorId, LunHandle};

use crate::array::{lun_name, umbra_array};
use crate::async_op::umbra_async;
use crate::boundary::*;
use crate::status::*;

/// An open LUN as one initiator sees it at one host LUN number. Created by
/// `umbra_lun_handle_open`, freed by `umbra_lun_handle_close`. Safe to share across threads.
pub struct umbra_lun_handle {
    lun: LunHandle,
}

/// One buffer of a vectored read or write: `len` bytes at `base` (the layout of POSIX
/// `struct iovec`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct umbra_iovec {
    /// The buffer (NULL only if `len` is 0).
    pub base: *mut c_void,
    /// Its length in bytes.
    pub len: usize,
}

/// `*out_next_cursor` of `umbra_lun_get_changed_extents` when there is nothing more.
pub const UMBRA_EXTENTS_END: u64 = u64::MAX;

/// A range of a LUN: `length` bytes from `offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct umbra_extent {
    /// Its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u64,
}

/// Opens the LUN that `initiator` sees at host LUN number `lun_number` (what a SCSI or NBD client
/// addresses) for I/O as that initiator: `UMBRA_E_NOT_FOUND` if it sees none there. The handle is
/// bound to that LUN: each I/O checks that the initiator still sees it at that number with the
/// access the I/O needs (else `UMBRA_E_ACCESS_DENIED`; offline: `UMBRA_E_BAD_STATE`). A masking
/// change (`umbra_lun_set_mask`, `_add_to_mask`, `_remove_from_mask`, `umbra_lun_swap`,
/// `umbra_lun_set_online`, `umbra_lun_delete`, `umbra_group_set`, ...) returns only once the I/O
/// admitted under the old access has finished. After `umbra_lun_swap` the old handle gets
/// `UMBRA_E_ACCESS_DENIED`; opening the same number again reaches the replacement. The handle
/// keeps the array's data alive (a pool stays owned until its last handle is closed).
///
/// # Safety
/// `array` is NULL or a live handle; `initiator` is NULL or NUL-terminated; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_open(
    array: *const umbra_array,
    initiator: *const c_char,
    lun_number: u32,
    out: *mut *mut umbra_lun_handle,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_open", {
        let out = out_ptr(out, "out")?;
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, text) = unsafe {
            (
                handle(array, "array")?,
                c_str(initiator, "initiator", UMBRA_E_INVALID_INITIATOR)?,
            )
        };
        let host = InitiatorId::parse(text)?;
        let lun = a.array.open_lun(&host, lun_number)?;
        // SAFETY: `out` is non-NULL and writable, per this function's contract.
        unsafe { write_out(out, into_handle(umbra_lun_handle { lun })) };
        Ok(())
    })
}

/// Closes a LUN handle. NULL is a no-op.
///
/// # Safety
/// `handle` is NULL or a live LUN handle, not used again afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_close(handle: *mut umbra_lun_handle) {
    ffi_boundary!("umbra_lun_handle_close", default = (), {
        // SAFETY: `handle` is NULL or a live handle that C gives up, per this function's contract.
        drop(unsafe { from_handle(handle) });
    })
}

/// The LUN's size in bytes into `*out_size` (checked as an I/O is).
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `out_size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_get_size(
    handle: *const umbra_lun_handle,
    out_size: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_get_size", {
        let out = out_ptr(out_size, "out_size")?;
        // SAFETY: `handle` is NULL or live, per this function's contract.
        let h = unsafe { self::handle(handle, "handle")? };
        let size = h.lun.size()?;
        // SAFETY: `out` is non-NULL and writable, per this function's contract.
        unsafe { write_out(out, size) };
        Ok(())
    })
}

/// Reads `len` bytes at `offset` into `buf`. Masked away (or renumbered, swapped, deleted):
/// `UMBRA_E_ACCESS_DENIED`; past the end: `UMBRA_E_OUT_OF_RANGE`.
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `buf` is NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_read(
    handle: *const umbra_lun_handle,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_read", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (h, buf) = unsafe { (self::handle(handle, "handle")?, out_bytes(buf, len, "buf")?) };
        h.lun.read_at(buf, offset)?;
        Ok(())
    })
}

/// Writes `len` bytes of `buf` at `offset` (durable after the next `umbra_lun_handle_flush`).
/// Masked away or read-only: `UMBRA_E_ACCESS_DENIED`, nothing written; past the end:
/// `UMBRA_E_OUT_OF_RANGE`, nothing written.
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `buf` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_write(
    handle: *const umbra_lun_handle,
    offset: u64,
    buf: *const u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_write", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (h, buf) = unsafe { (self::handle(handle, "handle")?, in_bytes(buf, len, "buf")?) };
        h.lun.write_at(buf, offset)?;
        Ok(())
    })
}

/// `umbra_lun_handle_write`, durable when it returns (Force Unit Access), with every write
/// completed before it.
///
/// # Safety
/// As `umbra_lun_handle_write`.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_write_fua(
    handle: *const umbra_lun_handle,
    offset: u64,
    buf: *const u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_write_fua", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (h, buf) = unsafe { (self::handle(handle, "handle")?, in_bytes(buf, len, "buf")?) };
        h.lun.write_fua(buf, offset)?;
        Ok(())
    })
}

/// The `count` buffers of `iov` as Rust slices.
///
/// # Safety
/// `iov` is NULL (with `count` 0) or points to `count` readable `umbra_iovec`s valid for `'a`.
unsafe fn iovecs<'a>(iov: *const umbra_iovec, count: usize) -> FfiResult<&'a [umbra_iovec]> {
    if count == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(FfiError::null("iov"));
    }
    check_len(
        count.saturating_mul(std::mem::size_of::<umbra_iovec>()),
        "iov",
    )?;
    // SAFETY: `iov` is non-NULL and points to `count` readable entries, per this contract.
    Ok(unsafe { std::slice::from_raw_parts(iov, count) })
}

/// Reads `[offset, offset + total)` into the `count` buffers of `iov` in turn (`total` their
/// lengths' sum), as one I/O. Errors as `umbra_lun_handle_read`.
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `iov` is NULL (with `count` 0) or points to `count`
/// `umbra_iovec`s, each `base` NULL (with `len` 0) or `len` writable bytes, none overlapping.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_readv(
    handle: *const umbra_lun_handle,
    offset: u64,
    iov: *const umbra_iovec,
    count: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_readv", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (h, iov) = unsafe { (self::handle(handle, "handle")?, iovecs(iov, count)?) };
        let mut bufs = Vec::with_capacity(iov.len());
        for v in iov {
            // SAFETY: each entry is NULL with length 0 or `len` writable bytes that no other
            // entry overlaps, per this function's contract.
            bufs.push(IoSliceMut::new(unsafe {
                out_bytes(v.base.cast(), v.len, "iov[].base")?
            }));
        }
        h.lun.readv(&mut bufs, offset)?;
        Ok(())
    })
}

/// Writes the `count` buffers of `iov` in turn from `offset` on, as one write (atomic with
/// respect to snapshots). Errors as `umbra_lun_handle_write`.
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `iov` is NULL (with `count` 0) or points to `count`
/// `umbra_iovec`s, each `base` NULL (with `len` 0) or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_writev(
    handle: *const umbra_lun_handle,
    offset: u64,
    iov: *const umbra_iovec,
    count: usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_writev", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (h, iov) = unsafe { (self::handle(handle, "handle")?, iovecs(iov, count)?) };
        let mut bufs = Vec::with_capacity(iov.len());
        for v in iov {
            // SAFETY: each entry is NULL with length 0 or `len` readable bytes, per this contract.
            bufs.push(IoSlice::new(unsafe {
                in_bytes(v.base.cast_const().cast(), v.len, "iov[].base")?
            }));
        }
        h.lun.writev(&bufs, offset)?;
        Ok(())
    })
}

/// Makes every write to the LUN completed before this call durable (SCSI SYNCHRONIZE CACHE, NBD
/// FLUSH). Needs read access.
///
/// # Safety
/// `handle` is NULL or a live LUN handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_flush(handle: *const umbra_lun_handle) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_flush", {
        // SAFETY: `handle` is NULL or live, per this function's contract.
        let h = unsafe { self::handle(handle, "handle")? };
        h.lun.flush()?;
        Ok(())
    })
}

/// Discards `[offset, offset + len)` (SCSI UNMAP, NBD TRIM): it reads as zeros afterwards and
/// its space is released where the storage can; snapshot LUNs of this LUN keep their data.
/// Durable after the next flush. Errors as `umbra_lun_handle_write`.
///
/// # Safety
/// `handle` is NULL or a live LUN handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_discard(
    handle: *const umbra_lun_handle,
    offset: u64,
    len: u64,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_discard", {
        // SAFETY: `handle` is NULL or live, per this function's contract.
        let h = unsafe { self::handle(handle, "handle")? };
        h.lun.discard(offset, len)?;
        Ok(())
    })
}

/// Writes zeros to `[offset, offset + len)` (SCSI WRITE SAME, NBD WRITE_ZEROES); the space may
/// be released as by `umbra_lun_handle_discard`. Durable after the next flush. Errors as
/// `umbra_lun_handle_write`.
///
/// # Safety
/// `handle` is NULL or a live LUN handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_write_zeroes(
    handle: *const umbra_lun_handle,
    offset: u64,
    len: u64,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_write_zeroes", {
        // SAFETY: `handle` is NULL or live, per this function's contract.
        let h = unsafe { self::handle(handle, "handle")? };
        h.lun.write_zeroes(offset, len)?;
        Ok(())
    })
}

/// The extents of `[offset, offset + len)` that may hold data, ascending, disjoint, whole LUN
/// blocks clipped to the range (NBD block status; what a first full backup copies): every byte
/// outside them reads as zeros. Buffer convention as `umbra_snapshot_list`: `*out_count` gets
/// the number of extents; fewer than that room is `UMBRA_E_BUFFER_TOO_SMALL`. Needs read access.
///
/// # Safety
/// `handle` is NULL or a live LUN handle; `extents` is NULL or points to `cap` writable
/// `umbra_extent`s; `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_handle_get_allocation(
    handle: *const umbra_lun_handle,
    offset: u64,
    len: u64,
    extents: *mut umbra_extent,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_lun_handle_get_allocation", {
        // SAFETY: `handle` is NULL or live, per this function's contract.
        let h = unsafe { self::handle(handle, "handle")? };
        let list: Vec<umbra_extent> = h
            .lun
            .allocation(offset, len)?
            .into_iter()
            .map(|(offset, length)| umbra_extent { offset, length })
            .collect();
        // SAFETY: `extents`/`cap` and `out_count` are as write_list requires, per this contract.
        unsafe { write_list(&list, extents, cap, out_count, "extents") }
    })
}

/// Imports the raw image file `path` as new LUN `name`, masked to no one, of the file's size
/// rounded up to 4 KiB, on a background thread; writes an async handle to `*out_op` (progress in
/// bytes of the file's data extents). Sparse: only the file's data extents are read and all-zero
/// blocks are not written. The LUN exists from the start (its name is taken) and is deleted if the
/// copy fails or is cancelled; its contents are durable when the operation succeeds. From
/// `umbra_async_wait`: a LUN of that name `UMBRA_E_ALREADY_EXISTS`, a missing file `UMBRA_E_IO`
/// (`NOT_FOUND` detail), an empty file `UMBRA_E_INVALID_ARGUMENT`, cancelled `UMBRA_E_CANCELLED`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `path` are NULL or NUL-terminated; `out_op` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_import_async(
    array: *mut umbra_array,
    name: *const c_char,
    path: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_lun_import_async", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, path) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                c_path(path, "path")?,
            )
        };
        let out = out_ptr(out_op, "out_op")?;
        let op = umbra_async::follow(a.array.import_lun(name, path));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Exports LUN `name`'s contents, whatever its masking, to the new raw image file `path` on a
/// background thread; writes an async handle to `*out_op`. Sparse: only the ranges that may hold
/// data are read and all-zero blocks are not written (holes stay holes). The file is durable when
/// the operation succeeds, removed if it fails or is cancelled. Export a snapshot LUN for a
/// point-in-time image. An unknown LUN is `UMBRA_E_NOT_FOUND` from this call; from
/// `umbra_async_wait`: an existing file `UMBRA_E_ALREADY_EXISTS`, cancelled `UMBRA_E_CANCELLED`.
///
/// # Safety
/// `array` is NULL or a live handle; `name` and `path` are NULL or NUL-terminated; `out_op` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_export_async(
    array: *const umbra_array,
    name: *const c_char,
    path: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_lun_export_async", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, name, path) = unsafe {
            (
                handle(array, "array")?,
                lun_name(name, "name")?,
                c_path(path, "path")?,
            )
        };
        let out = out_ptr(out_op, "out_op")?;
        a.array.lun(name)?;
        let op = umbra_async::follow(a.array.export_lun(name, path));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// `umbra_lun_get_changed_blocks` as extents (`umbra_extent`, bytes, adjacent blocks merged),
/// paged: at most `cap` extents from byte `cursor` on (0 to start) into `extents`, their number
/// into `*out_count`, and the cursor of the next call into `*out_next_cursor`
/// (`UMBRA_EXTENTS_END`: no more). Memory is bounded by `cap`, never by the LUN's size. A cursor
/// not returned by a previous call (not block-aligned) or a `cap` of 0 is
/// `UMBRA_E_INVALID_ARGUMENT`; other errors as `umbra_lun_get_changed_blocks`.
///
/// # Safety
/// `array` is NULL or a live handle; `from` and `to` are NULL or NUL-terminated; `extents` is
/// NULL or points to `cap` writable `umbra_extent`s; the out-parameters are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_lun_get_changed_extents(
    array: *const umbra_array,
    from: *const c_char,
    to: *const c_char,
    cursor: u64,
    extents: *mut umbra_extent,
    cap: usize,
    out_count: *mut usize,
    out_next_cursor: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_lun_get_changed_extents", {
        // SAFETY: the pointers are NULL or valid, per this function's contract.
        let (a, from, to) = unsafe {
            (
                handle(array, "array")?,
                lun_name(from, "from")?,
                lun_name(to, "to")?,
            )
        };
        let next_out = out_ptr(out_next_cursor, "out_next_cursor")?;
        out_ptr(out_count, "out_count")?;
        if extents.is_null() && cap > 0 {
            return Err(FfiError::null("extents"));
        }
        let (list, next) = a.array.changed_extents(from, to, cursor, cap)?;
        let list: Vec<umbra_extent> = list
            .into_iter()
            .map(|(offset, length)| umbra_extent { offset, length })
            .collect();
        // SAFETY: `extents`/`cap` and `out_count` are as write_list requires (the list holds at
        // most `cap` extents), per this function's contract.
        unsafe { write_list(&list, extents, cap, out_count, "extents") }?;
        // SAFETY: `next_out` is non-NULL and writable, per this function's contract.
        unsafe { write_out(next_out, next.unwrap_or(UMBRA_EXTENTS_END)) };
        Ok(())
    })
}
