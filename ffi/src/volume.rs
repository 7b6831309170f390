//! `umbra_volume`: a `cow-engine` volume with copy-on-write snapshots.
//!
//! Thread safety: a volume handle may be used from many threads at once (every function but
//! `umbra_volume_free`, which must be the last call on it). Each write is atomic with respect to
//! snapshot creation: a snapshot holds all of it or none of it.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use cow_engine::{
    DiffFullPolicy, Durability, Progress, SnapshotId, SnapshotOptions, Volume, VolumeConfig,
};

use crate::async_op::umbra_async;
use crate::boundary::*;
use crate::events::*;
use crate::status::*;

/// A volume: an origin with copy-on-write snapshots, in memory or in a directory. Created by
/// `umbra_volume_create_*` / `umbra_volume_open_file`, freed by `umbra_volume_free`. Safe to share
/// across threads.
pub struct umbra_volume {
    vol: Volume,
    events: Notifier,
}

impl umbra_volume {
    fn new(vol: Volume) -> Self {
        umbra_volume {
            vol,
            events: Notifier::default(),
        }
    }

    /// The volume (a shared handle), for the shadow-copy coordinator's software provider.
    pub(crate) fn volume(&self) -> &Volume {
        &self.vol
    }
}

impl Drop for umbra_volume {
    fn drop(&mut self) {
        self.events.shutdown();
    }
}

/// Creation flag: when the diff area reaches its limit, fail origin writes with `UMBRA_E_NO_SPACE`
/// (nothing of the write happens) instead of deleting the oldest unpinned snapshot.
pub const UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL: u32 = 0x1;
/// Creation flag (file volumes): no journal and no syncs; snapshots do not survive a reopen.
pub const UMBRA_VOLUME_VOLATILE: u32 = 0x2;
/// A diff-area limit meaning "no limit".
pub const UMBRA_UNLIMITED: u64 = u64::MAX;

/// Snapshot flag: the snapshot refuses writes (`UMBRA_E_BAD_STATE`).
pub const UMBRA_SNAPSHOT_READ_ONLY: u32 = 0x1;
/// Snapshot flag: the snapshot does not survive a reopen (and skips the syncs only it needs).
/// `umbra_snapshot_get_info` reports it for every snapshot of a volume without a journal (a
/// memory volume, a file volume created `UMBRA_VOLUME_VOLATILE`), asked for or not.
pub const UMBRA_SNAPSHOT_VOLATILE: u32 = 0x2;
/// Snapshot flag: never deleted automatically to make room in the diff area.
pub const UMBRA_SNAPSHOT_PINNED: u32 = 0x4;

/// The snapshot id that names the volume's current contents (the origin) in
/// `umbra_snapshot_get_changed_blocks`. Snapshot ids start at 1 and are never reused within a
/// volume.
pub const UMBRA_ORIGIN: u64 = 0;

/// The properties of one snapshot, from `umbra_snapshot_get_info`. Layout frozen for ABI 1.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct umbra_snapshot_info {
    /// Its id.
    pub id: u64,
    /// Its size in bytes (the volume's when it was taken).
    pub size_bytes: u64,
    /// Diff-area blocks it holds: preserved origin blocks plus its own writes.
    pub diff_blocks: u64,
    /// `UMBRA_SNAPSHOT_*` flags: read-only, volatile (it does not survive a reopen: asked for,
    /// or a volume without a journal), pinned.
    pub flags: u32,
    /// Length of its metadata blob (see `umbra_snapshot_get_metadata`).
    pub metadata_len: u32,
}

fn config(block_size: u32, diff_limit_bytes: u64, flags: u32) -> FfiResult<VolumeConfig> {
    let known = UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL | UMBRA_VOLUME_VOLATILE;
    if flags & !known != 0 {
        return Err(FfiError::invalid(format!(
            "unknown volume flags {:#x}",
            flags & !known
        )));
    }
    Ok(VolumeConfig {
        block_size,
        diff_limit: (diff_limit_bytes != UMBRA_UNLIMITED).then_some(diff_limit_bytes),
        on_diff_full: if flags & UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL != 0 {
            DiffFullPolicy::FailWrites
        } else {
            DiffFullPolicy::DeleteOldest
        },
        durability: if flags & UMBRA_VOLUME_VOLATILE != 0 {
            Durability::Volatile
        } else {
            Durability::Persistent
        },
    })
}

/// Hands a new volume handle to C through `out`.
///
/// # Safety
/// `out` is writable (an export's out-parameter, checked by `out_ptr`).
unsafe fn give(out: std::ptr::NonNull<*mut umbra_volume>, vol: Volume) {
    // SAFETY: `out` is writable, per this function's contract.
    unsafe { write_out(out, into_handle(umbra_volume::new(vol))) };
}

/// Creates a volume of `size_bytes` held in memory (origin and diff area), with blocks of
/// `block_size` bytes (a power of two from 4096 to 1 MiB; the size a positive multiple of it, at
/// most 4 PiB).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_create_mem(
    size_bytes: u64,
    block_size: u32,
    out: *mut *mut umbra_volume,
) -> umbra_status {
    ffi_boundary!("umbra_volume_create_mem", {
        let out = out_ptr(out, "out")?;
        let vol = Volume::create_mem(size_bytes, VolumeConfig::with_block_size(block_size))?;
        // SAFETY: `out` is writable, per this function's contract.
        unsafe { give(out, vol) };
        Ok(())
    })
}

/// `umbra_volume_create_mem` with a diff-area limit in bytes (`UMBRA_UNLIMITED` for none) and
/// `UMBRA_VOLUME_*` flags.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_create_mem_ex(
    size_bytes: u64,
    block_size: u32,
    diff_limit_bytes: u64,
    flags: u32,
    out: *mut *mut umbra_volume,
) -> umbra_status {
    ffi_boundary!("umbra_volume_create_mem_ex", {
        let out = out_ptr(out, "out")?;
        let cfg = config(block_size, diff_limit_bytes, flags)?;
        let vol = Volume::create_mem(size_bytes, cfg)?;
        // SAFETY: `out` is writable, per this function's contract.
        unsafe { give(out, vol) };
        Ok(())
    })
}

/// Creates a persistent volume in directory `dir` (created; its parent must exist). A `dir` that
/// exists and is not empty is `UMBRA_E_ALREADY_EXISTS`. One handle owns a volume directory at a
/// time (a second open is `UMBRA_E_BUSY`).
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_create_file(
    dir: *const c_char,
    size_bytes: u64,
    block_size: u32,
    out: *mut *mut umbra_volume,
) -> umbra_status {
    ffi_boundary!("umbra_volume_create_file", {
        // SAFETY: `dir` is NULL or NUL-terminated, per this function's contract.
        let dir = unsafe { c_path(dir, "dir") }?;
        let out = out_ptr(out, "out")?;
        let vol = Volume::create(&dir, size_bytes, VolumeConfig::with_block_size(block_size))?;
        // SAFETY: `out` is writable, per this function's contract.
        unsafe { give(out, vol) };
        Ok(())
    })
}

/// `umbra_volume_create_file` with a diff-area limit in bytes (`UMBRA_UNLIMITED` for none) and
/// `UMBRA_VOLUME_*` flags.
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_create_file_ex(
    dir: *const c_char,
    size_bytes: u64,
    block_size: u32,
    diff_limit_bytes: u64,
    flags: u32,
    out: *mut *mut umbra_volume,
) -> umbra_status {
    ffi_boundary!("umbra_volume_create_file_ex", {
        // SAFETY: `dir` is NULL or NUL-terminated, per this function's contract.
        let dir = unsafe { c_path(dir, "dir") }?;
        let out = out_ptr(out, "out")?;
        let cfg = config(block_size, diff_limit_bytes, flags)?;
        let vol = Volume::create(&dir, size_bytes, cfg)?;
        // SAFETY: `out` is writable, per this function's contract.
        unsafe { give(out, vol) };
        Ok(())
    })
}

/// Opens the volume in `dir` with all its persistent snapshots (recovering after a crash). A
/// missing
/// `dir` is `UMBRA_E_NOT_FOUND`; a damaged one `UMBRA_E_CORRUPT` (or
/// `UMBRA_E_UNSUPPORTED_VERSION`).
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_open_file(
    dir: *const c_char,
    out: *mut *mut umbra_volume,
) -> umbra_status {
    ffi_boundary!("umbra_volume_open_file", {
        // SAFETY: `dir` is NULL or NUL-terminated, per this function's contract.
        let dir = unsafe { c_path(dir, "dir") }?;
        let out = out_ptr(out, "out")?;
        let vol = Volume::open(&dir)?;
        // SAFETY: `out` is writable, per this function's contract.
        unsafe { give(out, vol) };
        Ok(())
    })
}

/// Flushes and closes the volume (call `umbra_volume_flush` first to see flush errors). Waits for
/// the volume's notification thread to deliver what is queued. NULL is a no-op.
///
/// # Safety
/// `vol` is NULL or a live handle, not used again afterwards (by any thread); not called from one
/// of its own event callbacks.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_free(vol: *mut umbra_volume) {
    ffi_boundary!("umbra_volume_free", default = (), {
        // SAFETY: `vol` is NULL or a live handle that C gives up, per this function's contract.
        if let Some(v) = unsafe { from_handle(vol) } {
            let _ = v.vol.flush();
            drop(v);
        }
    })
}

/// Writes the volume's size in bytes to `*out_bytes`.
///
/// # Safety
/// `vol` is NULL or a live handle; `out_bytes` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_get_size(
    vol: *const umbra_volume,
    out_bytes: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_get_size", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let out = out_ptr(out_bytes, "out_bytes")?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, v.vol.len()) };
        Ok(())
    })
}

/// Deprecated alias of `umbra_volume_get_size` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`).
///
/// # Safety
/// As `umbra_volume_get_size`.
#[deprecated(note = "use umbra_volume_get_size")]
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_size(
    vol: *const umbra_volume,
    out_bytes: *mut u64,
) -> umbra_status {
    ffi_boundary!(
        "umbra_volume_size",
        alias = {
            // SAFETY: this function's contract is `umbra_volume_get_size`'s; the arguments are
            // forwarded unchanged.
            unsafe { umbra_volume_get_size(vol, out_bytes) }
        }
    )
}

/// Writes the volume's block size in bytes to `*out_block_size`.
///
/// # Safety
/// `vol` is NULL or a live handle; `out_block_size` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_get_block_size(
    vol: *const umbra_volume,
    out_block_size: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_volume_get_block_size", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let out = out_ptr(out_block_size, "out_block_size")?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, v.vol.block_size()) };
        Ok(())
    })
}

/// Deprecated alias of `umbra_volume_get_block_size` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`).
///
/// # Safety
/// As `umbra_volume_get_block_size`.
#[deprecated(note = "use umbra_volume_get_block_size")]
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_block_size(
    vol: *const umbra_volume,
    out_block_size: *mut u32,
) -> umbra_status {
    ffi_boundary!(
        "umbra_volume_block_size",
        alias = {
            // SAFETY: this function's contract is `umbra_volume_get_block_size`'s; the arguments
            // are forwarded unchanged.
            unsafe { umbra_volume_get_block_size(vol, out_block_size) }
        }
    )
}

/// Reads `len` bytes of the volume at `offset` (any alignment) into `buf`. Past the end is
/// `UMBRA_E_OUT_OF_RANGE`.
///
/// # Safety
/// `vol` is NULL or a live handle; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_read(
    vol: *mut umbra_volume,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_volume_read", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `buf` is NULL or `len` writable bytes, per this function's contract.
        let buf = unsafe { out_bytes(buf, len, "buf") }?;
        v.vol.read_at(buf, offset)?;
        Ok(())
    })
}

/// Writes `len` bytes from `buf` to the volume at `offset` (any alignment), preserving the old
/// blocks for the snapshots first. Past the end is `UMBRA_E_OUT_OF_RANGE` and writes nothing.
///
/// # Safety
/// `vol` is NULL or a live handle; `buf` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_write(
    vol: *mut umbra_volume,
    offset: u64,
    buf: *const u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_volume_write", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `buf` is NULL or `len` readable bytes, per this function's contract.
        let buf = unsafe { in_bytes(buf, len, "buf") }?;
        let r = v.vol.write_at(buf, offset);
        Ok(r?)
    })
}

/// Discards `len` bytes at `offset`: they read as zeros afterwards; snapshots keep their data.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_discard(
    vol: *mut umbra_volume,
    offset: u64,
    len: u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_discard", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let r = v.vol.discard(offset, len);
        Ok(r?)
    })
}

/// Makes every write completed before this call durable (origin, diff area, journal).
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_flush(vol: *mut umbra_volume) -> umbra_status {
    ffi_boundary!("umbra_volume_flush", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        v.vol.flush()?;
        Ok(())
    })
}

/// Grows the volume to `new_size_bytes` (a multiple of the block size, at least the current size);
/// new space reads as zeros; snapshots keep their size.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_grow(
    vol: *mut umbra_volume,
    new_size_bytes: u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_grow", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        v.vol.grow(new_size_bytes)?;
        Ok(())
    })
}

/// Writes the diff-area bytes in use by snapshots to `*out_used_bytes` and the limit to
/// `*out_limit_bytes` (`UMBRA_UNLIMITED` if none).
///
/// # Safety
/// `vol` is NULL or a live handle; both out-parameters are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_get_diff_usage(
    vol: *const umbra_volume,
    out_used_bytes: *mut u64,
    out_limit_bytes: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_get_diff_usage", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let used = out_ptr(out_used_bytes, "out_used_bytes")?;
        let limit = out_ptr(out_limit_bytes, "out_limit_bytes")?;
        let st = v.vol.stats();
        let bs = u64::from(st.block_size);
        // SAFETY: both are non-NULL and writable per this function's contract.
        unsafe {
            write_out(used, st.diff_blocks_in_use.saturating_mul(bs));
            write_out(
                limit,
                st.diff_blocks_limit
                    .map_or(UMBRA_UNLIMITED, |l| l.saturating_mul(bs)),
            );
        }
        Ok(())
    })
}

/// Deprecated alias of `umbra_volume_get_diff_usage` (its name before ABI 1.3; a query is
/// `umbra_<object>_get_<what>`).
///
/// # Safety
/// As `umbra_volume_get_diff_usage`.
#[deprecated(note = "use umbra_volume_get_diff_usage")]
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_diff_usage(
    vol: *const umbra_volume,
    out_used_bytes: *mut u64,
    out_limit_bytes: *mut u64,
) -> umbra_status {
    ffi_boundary!(
        "umbra_volume_diff_usage",
        alias = {
            // SAFETY: this function's contract is `umbra_volume_get_diff_usage`'s; the arguments
            // are forwarded unchanged.
            unsafe { umbra_volume_get_diff_usage(vol, out_used_bytes, out_limit_bytes) }
        }
    )
}

/// Freezes the volume (flush-and-hold): waits for writes in flight to drain (at most `timeout_ms`,
/// else `UMBRA_E_TIMEOUT`), makes them durable, then holds new writes until `umbra_volume_thaw` or
/// until `timeout_ms` after the call, whichever comes first. Already frozen: `UMBRA_E_BAD_STATE`.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_freeze(
    vol: *mut umbra_volume,
    timeout_ms: u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_freeze", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        v.vol.freeze(Duration::from_millis(timeout_ms))?;
        Ok(())
    })
}

/// Releases the writes held by `umbra_volume_freeze`. `UMBRA_E_TIMEOUT` if the freeze had already
/// expired (writes were released at the deadline: a snapshot taken meanwhile may not be
/// consistent); `UMBRA_E_BAD_STATE` if the volume is not frozen.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_thaw(vol: *mut umbra_volume) -> umbra_status {
    ffi_boundary!("umbra_volume_thaw", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        match v.vol.thaw() {
            Ok(cow_engine::ThawOutcome::Thawed) => Ok(()),
            Ok(cow_engine::ThawOutcome::Expired) => Err(FfiError::new(
                UMBRA_E_TIMEOUT,
                "the freeze expired before the thaw; writes were released at its deadline",
            )),
            Err(e) => Err(e.into()),
        }
    })
}

fn snapshot_options(flags: u32, metadata: &[u8]) -> FfiResult<SnapshotOptions> {
    let known = UMBRA_SNAPSHOT_READ_ONLY | UMBRA_SNAPSHOT_VOLATILE | UMBRA_SNAPSHOT_PINNED;
    if flags & !known != 0 {
        return Err(FfiError::invalid(format!(
            "unknown snapshot flags {:#x}",
            flags & !known
        )));
    }
    Ok(SnapshotOptions {
        writable: flags & UMBRA_SNAPSHOT_READ_ONLY == 0,
        persistent: flags & UMBRA_SNAPSHOT_VOLATILE == 0,
        pinned: flags & UMBRA_SNAPSHOT_PINNED != 0,
        metadata: metadata.to_vec(),
    })
}

/// Takes a snapshot (O(1), whatever the volume's size) and writes its id to `*out_snapshot`. The
/// snapshot is writable (see `umbra_snapshot_write`) and, on a file volume, persistent: durable
/// when this returns. `umbra_snapshot_create_ex` takes other kinds.
///
/// # Safety
/// `vol` is NULL or a live handle; `out_snapshot` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_create(
    vol: *mut umbra_volume,
    out_snapshot: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_create", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let out = out_ptr(out_snapshot, "out_snapshot")?;
        let id = v
            .vol
            .create_snapshot(SnapshotOptions::writable_persistent())?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, id.get()) };
        Ok(())
    })
}

/// Takes a snapshot with `UMBRA_SNAPSHOT_*` `flags` and an opaque metadata blob (at most 64 KiB;
/// `(NULL, 0)` for none) stored atomically with it; writes its id to `*out_snapshot`.
///
/// # Safety
/// `vol` is NULL or a live handle; `metadata` is NULL or `metadata_len` readable bytes;
/// `out_snapshot` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_create_ex(
    vol: *mut umbra_volume,
    flags: u32,
    metadata: *const u8,
    metadata_len: usize,
    out_snapshot: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_create_ex", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `metadata` is NULL or `metadata_len` readable bytes, per this function's
        // contract.
        let metadata = unsafe { in_bytes(metadata, metadata_len, "metadata") }?;
        let out = out_ptr(out_snapshot, "out_snapshot")?;
        let id = v.vol.create_snapshot(snapshot_options(flags, metadata)?)?;
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, id.get()) };
        Ok(())
    })
}

/// Reads `len` bytes of snapshot `snapshot` at `offset`: the volume's contents when it was taken
/// (plus the snapshot's own writes). Unknown snapshot: `UMBRA_E_NOT_FOUND`.
///
/// # Safety
/// `vol` is NULL or a live handle; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_read(
    vol: *mut umbra_volume,
    snapshot: u64,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_read", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `buf` is NULL or `len` writable bytes, per this function's contract.
        let buf = unsafe { out_bytes(buf, len, "buf") }?;
        v.vol
            .snapshot(SnapshotId::new(snapshot))?
            .read_at(buf, offset)?;
        Ok(())
    })
}

/// Writes `len` bytes to writable snapshot `snapshot` at `offset` (into its own overlay; the volume
/// and other snapshots are unchanged). A read-only snapshot is `UMBRA_E_BAD_STATE`.
///
/// # Safety
/// `vol` is NULL or a live handle; `buf` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_write(
    vol: *mut umbra_volume,
    snapshot: u64,
    offset: u64,
    buf: *const u8,
    len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_write", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `buf` is NULL or `len` readable bytes, per this function's contract.
        let buf = unsafe { in_bytes(buf, len, "buf") }?;
        let r = v
            .vol
            .snapshot(SnapshotId::new(snapshot))
            .and_then(|s| s.write_at(buf, offset));
        Ok(r?)
    })
}

/// Deletes snapshot `snapshot` (the others are unchanged). Durable when this returns. A pinned
/// snapshot is refused with `UMBRA_E_BAD_STATE`: unpin it first (`umbra_snapshot_set_pinned`).
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_delete(
    vol: *mut umbra_volume,
    snapshot: u64,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_delete", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        v.vol.delete_snapshot(SnapshotId::new(snapshot))?;
        Ok(())
    })
}

/// Reverts the volume to snapshot `snapshot`: copies back exactly the blocks whose contents differ
/// (those `umbra_snapshot_get_changed_blocks(vol, snapshot, UMBRA_ORIGIN, ...)` lists within the
/// snapshot's size), through the normal write path, so every snapshot (that one included) stays
/// unchanged; a second revert right after copies nothing. Interrupted (crash), it is resumed by
/// calling it again.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_revert(
    vol: *mut umbra_volume,
    snapshot: u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_revert", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let r = v.vol.revert(SnapshotId::new(snapshot), &Progress::new());
        Ok(r?)
    })
}

/// `umbra_volume_revert` on a background thread: writes an async handle to `*out_op` (wait,
/// percent, cancel; free it with `umbra_async_free`). The handle keeps the volume alive.
///
/// # Safety
/// `vol` is NULL or a live handle; `out_op` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_revert_async(
    vol: *mut umbra_volume,
    snapshot: u64,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_volume_revert_async", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let out = out_ptr(out_op, "out_op")?;
        // Fail early (and synchronously) for an unknown snapshot.
        v.vol.snapshot_info(SnapshotId::new(snapshot))?;
        let volume = v.vol.clone();
        let op = umbra_async::spawn(move |p| volume.revert(SnapshotId::new(snapshot), p));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Moves snapshot `snapshot` out of the volume into a new file `dest_path`, in the background:
/// copies its point-in-time image plus its own writes into the file, then deletes it from the
/// volume. The file is left a standalone raw image of the snapshot, and the diff space it held is
/// freed. Writes to the snapshot while the copy runs are copied too. The file must not exist: it
/// is created with the snapshot's size (and its directory entry made durable) before any work
/// starts, so the move never writes over a file in use, the volume's own included. An interrupted
/// move (crash or `umbra_async_cancel`) starts over: remove the partial file and call this again.
/// Follow it with `*out_op` (wait, percent, cancel; free it with `umbra_async_free`); the handle
/// keeps the volume alive. (Named `umbra_snapshot_split_async` before ABI 1.3; "split" now only
/// means a snapshot LUN split from its source, `umbra_lun_split_async`.)
///
/// Checked before any work starts: an unknown snapshot is `UMBRA_E_NOT_FOUND`; a move of the same
/// snapshot already running `UMBRA_E_BUSY`; a file that cannot be created the status of the
/// OS error (`UMBRA_E_ALREADY_EXISTS` if it exists, `UMBRA_E_NOT_FOUND` if its directory does not,
/// else `UMBRA_E_IO`).
///
/// # Safety
/// `vol` is NULL or a live handle; `dest_path` is NULL or a NUL-terminated string; `out_op` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_move_to_file_async(
    vol: *mut umbra_volume,
    snapshot: u64,
    dest_path: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_move_to_file_async", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `dest_path` is NULL or NUL-terminated, per this function's contract.
        let path = unsafe { c_path(dest_path, "dest_path") }?;
        let out = out_ptr(out_op, "out_op")?;
        let split = v.vol.split_to_file(SnapshotId::new(snapshot), &path)?;
        let op = umbra_async::spawn(move |p| split.run(p));
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, into_handle(op)) };
        Ok(())
    })
}

/// Deprecated alias of `umbra_snapshot_move_to_file_async` (its name before ABI 1.3; "split" is
/// kept for a snapshot LUN split from its source, `umbra_lun_split_async`).
///
/// # Safety
/// As `umbra_snapshot_move_to_file_async`.
#[deprecated(note = "use umbra_snapshot_move_to_file_async")]
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_split_async(
    vol: *mut umbra_volume,
    snapshot: u64,
    dest_path: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!(
        "umbra_snapshot_split_async",
        alias = {
            // SAFETY: this function's contract is `umbra_snapshot_move_to_file_async`'s; the
            // arguments are forwarded unchanged.
            unsafe { umbra_snapshot_move_to_file_async(vol, snapshot, dest_path, out_op) }
        }
    )
}

/// Lists the live snapshot ids, oldest first: `*out_count` gets their number; if `cap` is smaller,
/// the result is `UMBRA_E_BUFFER_TOO_SMALL` and `ids` is untouched (`(NULL, 0)` asks the count).
///
/// # Safety
/// `vol` is NULL or a live handle; `ids` is NULL or points to `cap` writable `uint64_t`s;
/// `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_list(
    vol: *const umbra_volume,
    ids: *mut u64,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_list", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let list: Vec<u64> = v.vol.snapshots().iter().map(|s| s.id.get()).collect();
        // SAFETY: `ids`/`cap` and `out_count` are as the contract of write_list requires, per this
        // function's contract.
        unsafe { write_list(&list, ids, cap, out_count, "ids") }
    })
}

/// Writes the properties of snapshot `snapshot` to `*out_info`.
///
/// # Safety
/// `vol` is NULL or a live handle; `out_info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_get_info(
    vol: *const umbra_volume,
    snapshot: u64,
    out_info: *mut umbra_snapshot_info,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_get_info", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let out = out_ptr(out_info, "out_info")?;
        let i = v.vol.snapshot_info(SnapshotId::new(snapshot))?;
        let mut flags = 0;
        if !i.writable {
            flags |= UMBRA_SNAPSHOT_READ_ONLY;
        }
        if !i.persistent {
            flags |= UMBRA_SNAPSHOT_VOLATILE;
        }
        if i.pinned {
            flags |= UMBRA_SNAPSHOT_PINNED;
        }
        let info = umbra_snapshot_info {
            id: i.id.get(),
            size_bytes: i.len,
            diff_blocks: i.diff_blocks,
            flags,
            metadata_len: u32::try_from(i.metadata.len()).unwrap_or(u32::MAX),
        };
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, info) };
        Ok(())
    })
}

/// Copies snapshot `snapshot`'s metadata blob into `buf`: `*out_len` always gets its length; if
/// `len`
/// is smaller, the result is `UMBRA_E_BUFFER_TOO_SMALL` and `buf` is untouched. (Binary data: no
/// NUL is added.)
///
/// # Safety
/// `vol` is NULL or a live handle; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_get_metadata(
    vol: *const umbra_volume,
    snapshot: u64,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_get_metadata", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let meta = v.vol.snapshot_info(SnapshotId::new(snapshot))?.metadata;
        // SAFETY: `buf`/`len` and `out_len` are as write_list requires, per this contract.
        unsafe { write_list(&meta, buf, len, out_len, "buf") }
    })
}

/// Replaces snapshot `snapshot`'s metadata blob (at most 64 KiB), atomically and durably.
///
/// # Safety
/// `vol` is NULL or a live handle; `metadata` is NULL or `metadata_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_set_metadata(
    vol: *mut umbra_volume,
    snapshot: u64,
    metadata: *const u8,
    metadata_len: usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_set_metadata", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        // SAFETY: `metadata` is NULL or `metadata_len` readable bytes, per this contract.
        let metadata = unsafe { in_bytes(metadata, metadata_len, "metadata") }?;
        v.vol.set_metadata(SnapshotId::new(snapshot), metadata)?;
        Ok(())
    })
}

/// Pins (never deleted to make room in the diff area) or unpins snapshot `snapshot`.
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_set_pinned(
    vol: *mut umbra_volume,
    snapshot: u64,
    pinned: bool,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_set_pinned", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        v.vol.set_pinned(SnapshotId::new(snapshot), pinned)?;
        Ok(())
    })
}

/// Lists the block numbers (of the volume's block size) that differ between snapshot `from` and
/// snapshot `to` (`UMBRA_ORIGIN` for the volume's current contents), ascending: what an incremental
/// backup copies. Exact: the blocks written between the two (from the maps) are read from both
/// and kept only where the bytes differ (a block written back to its old contents, or restored
/// by a revert, is not listed); blocks past the older one's end (the volume grew) are always
/// listed. Buffer convention as `umbra_snapshot_list`.
///
/// # Safety
/// `vol` is NULL or a live handle; `blocks` is NULL or points to `cap` writable `uint64_t`s;
/// `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_snapshot_get_changed_blocks(
    vol: *const umbra_volume,
    from: u64,
    to: u64,
    blocks: *mut u64,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_snapshot_get_changed_blocks", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let to = (to != UMBRA_ORIGIN).then_some(SnapshotId::new(to));
        let list = v.vol.changed_blocks(SnapshotId::new(from), to)?;
        // SAFETY: `blocks`/`cap` and `out_count` are as write_list requires, per this contract.
        unsafe { write_list(&list, blocks, cap, out_count, "blocks") }
    })
}

/// Deprecated alias of `umbra_snapshot_get_changed_blocks` (its name before ABI 1.3; every name
/// starts with its object, here the snapshots compared; a query is `_get_`).
///
/// # Safety
/// As `umbra_snapshot_get_changed_blocks`.
#[deprecated(note = "use umbra_snapshot_get_changed_blocks")]
#[no_mangle]
pub unsafe extern "C" fn umbra_changed_blocks(
    vol: *const umbra_volume,
    from: u64,
    to: u64,
    blocks: *mut u64,
    cap: usize,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!(
        "umbra_changed_blocks",
        alias = {
            // SAFETY: this function's contract is `umbra_snapshot_get_changed_blocks`'s; the
            // arguments are forwarded unchanged.
            unsafe { umbra_snapshot_get_changed_blocks(vol, from, to, blocks, cap, out_count) }
        }
    )
}

/// Calls `callback(ctx, kind, subject, json)` on the volume's notification thread for each volume
/// event from now on, as it happens (`UMBRA_EVENT_SNAPSHOT_DELETED`,
/// `UMBRA_EVENT_REVERT_PROGRESS`, `UMBRA_EVENT_MOVE_PROGRESS`, and `UMBRA_EVENT_LAGGED` when the
/// callbacks fall more than 1,024 events behind); writes the subscription's id (never 0) to
/// `*out_id`. `ctx` must be usable from that thread.
///
/// # Safety
/// `vol` is NULL or a live handle; `callback` (if not NULL) stays callable and `ctx` valid until
/// unsubscribed or the volume is freed; `out_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_subscribe(
    vol: *mut umbra_volume,
    callback: umbra_event_callback,
    ctx: *mut c_void,
    out_id: *mut u64,
) -> umbra_status {
    ffi_boundary!("umbra_volume_subscribe", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        let out = out_ptr(out_id, "out_id")?;
        let (id, started) = v
            .events
            .subscribe(callback, ctx)
            .map_err(|e| FfiError::new(UMBRA_E_IO, format!("cannot start a thread: {e}")))?;
        if let Some(queue) = started {
            // The engine's events go straight into the notification queue as they happen.
            v.vol.events().forward_to(&queue, EventMsg::of_volume);
        }
        // SAFETY: `out` is non-NULL and writable per this function's contract.
        unsafe { write_out(out, id) };
        Ok(())
    })
}

/// Ends subscription `id` (`UMBRA_E_NOT_FOUND` if there is none). On return no callback of this
/// volume is running, unless called from one (then it takes effect from the next event).
///
/// # Safety
/// `vol` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_volume_unsubscribe(vol: *mut umbra_volume, id: u64) -> umbra_status {
    ffi_boundary!("umbra_volume_unsubscribe", {
        // SAFETY: `vol` is NULL or a live handle, per this function's contract.
        let v = unsafe { handle(vol, "vol") }?;
        if !v.events.unsubscribe(id) {
            return Err(FfiError::new(
                UMBRA_E_NOT_FOUND,
                format!("no subscription {id}"),
            ));
        }
        Ok(())
    })
}
