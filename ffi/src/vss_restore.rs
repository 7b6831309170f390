//! Restore in C (ABI 1.7): restore sessions in VSS's order over a saved Backup Components
//! document (a call out of order is `UMBRA_E_BAD_STATE`), with the C writers' pre-restore and
//! post-restore and a restore status per component; and the two ways back on their own, revert
//! (software shadows) and resync (hardware shadows), as `umbra_async` operations.
//!
//! Thread safety: a restore session's calls are serialised inside it; the coordinator functions
//! may be called from any thread.

use std::ffi::c_char;

use parking_lot::Mutex;
use vss_core::{BackupComponents, RestoreSession, RestoreStatus, RestoreStep};

use crate::async_op::umbra_async;
use crate::boundary::*;
use crate::status::*;
use crate::vss::{json, on_providers, parse_id, umbra_vss_coordinator, writer_status_json};

/// Restore session step (`umbra_vss_restore_get_step`): the saved document is loaded; next
/// gather.
pub const UMBRA_VSS_RESTORE_STEP_LOADED: u32 = 0;
/// Restore session step: writers identified; next select components and pre-restore.
pub const UMBRA_VSS_RESTORE_STEP_GATHERED: u32 = 1;
/// Restore session step: pre-restore sent; next do the restore.
pub const UMBRA_VSS_RESTORE_STEP_PRE_RESTORED: u32 = 2;
/// Restore session step: the volumes are restored (or failed to be); next post-restore.
pub const UMBRA_VSS_RESTORE_STEP_RESTORED: u32 = 3;
/// Restore session step: post-restore sent; the session is over.
pub const UMBRA_VSS_RESTORE_STEP_ENDED: u32 = 4;

/// A restore session (VSS's restore sequence). Created by `umbra_vss_restore_create`, freed by
/// `umbra_vss_restore_free`.
pub struct umbra_vss_restore {
    session: Mutex<RestoreSession>,
}

/// Starts a restore session of the backup a Backup Components document describes
/// (`components_json`, as `umbra_vss_backup_get_components` gave it). Nothing is called yet.
///
/// Errors: a malformed document `UMBRA_E_INVALID_DOCUMENT` naming the problem; a document
/// without a snapshot set `UMBRA_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `coordinator` is NULL or live; `components_json` is NULL or NUL-terminated; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_create(
    coordinator: *const umbra_vss_coordinator,
    components_json: *const c_char,
    out: *mut *mut umbra_vss_restore,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_create", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let doc = unsafe { c_str(components_json, "components_json", UMBRA_E_INVALID_DOCUMENT) }?;
        let out = out_ptr(out, "out")?;
        let saved = BackupComponents::from_json(doc.as_bytes())?;
        let session = c.coordinator.restore(saved)?;
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe {
            write_out(
                out,
                into_handle(umbra_vss_restore {
                    session: Mutex::new(session),
                }),
            )
        };
        Ok(())
    })
}

/// Frees a restore session (NULL: no-op); the writers' sessions end.
///
/// # Safety
/// `restore` is NULL or a live handle not used after this call.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_free(restore: *mut umbra_vss_restore) {
    ffi_boundary!("umbra_vss_restore_free", default = (), {
        // SAFETY: by this function's contract the handle came from umbra_vss_restore_create.
        drop(unsafe { from_handle(restore) });
    })
}

/// Runs one step of the session behind `restore`.
///
/// # Safety
/// `restore` is NULL or a live session handle.
unsafe fn step(
    restore: *const umbra_vss_restore,
    f: impl FnOnce(&mut RestoreSession) -> vss_core::Result<()>,
) -> FfiResult {
    // SAFETY: by this function's contract.
    let r = unsafe { handle(restore, "restore") }?;
    Ok(f(&mut r.session.lock())?)
}

/// Gathers the writers' metadata (identify, as for a backup; a writer that fails is left out).
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `restore` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_gather(restore: *mut umbra_vss_restore) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_gather", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(restore, |s| s.gather_writer_metadata().map(drop)) }
    })
}

/// Selects component `path` of writer `writer` for restore (after gather, before pre-restore).
/// With none selected, every component the backup selected is restored.
///
/// Errors: `UMBRA_E_NOT_FOUND` for a component the backup did not select or a writer not taking
/// part; `UMBRA_E_INVALID_ARGUMENT` for a component not selectable for restore;
/// `UMBRA_E_ALREADY_EXISTS` for one selected twice; `UMBRA_E_BAD_STATE` out of order.
///
/// # Safety
/// `restore` is NULL or live; `writer` and `path` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_select_component(
    restore: *mut umbra_vss_restore,
    writer: *const c_char,
    path: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_select_component", {
        // SAFETY: by this function's contract.
        let writer = unsafe { c_str(writer, "writer", UMBRA_E_INVALID_ARGUMENT) }?;
        // SAFETY: by this function's contract.
        let path = unsafe { c_str(path, "path", UMBRA_E_INVALID_ARGUMENT) }?;
        // SAFETY: forwarded from this function's contract.
        unsafe { step(restore, |s| s.select_component(writer, path)) }
    })
}

/// Sends pre-restore to the writers with a selected component; the components of a writer that
/// fails it are not restored (status `none`, its state `FAILED_AT_PRE_RESTORE`).
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `restore` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_pre_restore(
    restore: *mut umbra_vss_restore,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_pre_restore", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(restore, |s| s.pre_restore()) }
    })
}

/// Brings the selected components' volumes back to their shadows of the saved set (hardware
/// shadows: a resync inside the array, only the blocks that differ; software shadows: a revert,
/// persistent shadows only) and waits. Returns the first failure; the session moves on all the
/// same (post-restore next) and `umbra_vss_restore_get_status` tells each component's outcome.
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `restore` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_do_restore(
    restore: *mut umbra_vss_restore,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_do_restore", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(restore, |s| s.restore()) }
    })
}

/// Sends post-restore to the writers with a selected component; the session is over.
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `restore` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_post_restore(
    restore: *mut umbra_vss_restore,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_post_restore", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(restore, |s| s.post_restore()) }
    })
}

/// The session's step, `UMBRA_VSS_RESTORE_STEP_*`.
///
/// # Safety
/// `restore` is NULL or live; `out_step` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_get_step(
    restore: *const umbra_vss_restore,
    out_step: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_get_step", {
        // SAFETY: by this function's contract.
        let r = unsafe { handle(restore, "restore") }?;
        let out = out_ptr(out_step, "out_step")?;
        let step = match r.session.lock().step() {
            RestoreStep::Loaded => UMBRA_VSS_RESTORE_STEP_LOADED,
            RestoreStep::Gathered => UMBRA_VSS_RESTORE_STEP_GATHERED,
            RestoreStep::PreRestored => UMBRA_VSS_RESTORE_STEP_PRE_RESTORED,
            RestoreStep::Restored => UMBRA_VSS_RESTORE_STEP_RESTORED,
            RestoreStep::Ended => UMBRA_VSS_RESTORE_STEP_ENDED,
        };
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe { write_out(out, step) };
        Ok(())
    })
}

/// The restore status of each selected component as a JSON array of objects: `writer`, `path`,
/// `volumes` (names), `status` (`"none"`, `"all"` or `"failed"`), `status_code` (VSS's
/// `VSS_FILE_RESTORE_STATUS`: 1 none, 2 all, 3 failed) and `reason` (null, or why it failed or
/// was not restored). Empty before pre-restore. String output convention.
///
/// # Safety
/// `restore` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_get_status(
    restore: *const umbra_vss_restore,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_get_status", {
        // SAFETY: by this function's contract.
        let r = unsafe { handle(restore, "restore") }?;
        let list: Vec<serde_json::Value> = r
            .session
            .lock()
            .restore_status()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "writer": c.writer,
                    "path": c.path,
                    "volumes": c.volumes,
                    "status": match c.status {
                        RestoreStatus::None => "none",
                        RestoreStatus::All => "all",
                        RestoreStatus::Failed => "failed",
                    },
                    "status_code": c.status as u32,
                    "reason": c.reason,
                })
            })
            .collect();
        // SAFETY: by this function's contract.
        unsafe { write_string(&json(&list), buf, len, out_len) }
    })
}

/// Every writer's status in this restore session, as `umbra_vss_backup_get_writer_status`
/// writes it (a writer that failed pre-restore: `"FAILED_AT_PRE_RESTORE"`).
///
/// # Safety
/// `restore` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_restore_get_writer_status(
    restore: *const umbra_vss_restore,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_restore_get_writer_status", {
        // SAFETY: by this function's contract.
        let r = unsafe { handle(restore, "restore") }?;
        let text = writer_status_json(r.session.lock().writer_status());
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// Reverts the original volume of the persistent software shadow `shadow_id` (a UUID string) to
/// the shadow's contents, on a background thread; writes an async handle to `*out_op`
/// (`umbra_async_wait`, `_get_percent`, `_cancel`). No writer is called: use a restore session
/// for that.
///
/// Checked before anything starts: a malformed id is `UMBRA_E_INVALID_ARGUMENT`; an unknown one
/// `UMBRA_E_NOT_FOUND`; a shadow that is not persistent `UMBRA_E_UNSUPPORTED_CONTEXT`; a revert
/// of the volume already running `UMBRA_E_REVERT_IN_PROGRESS`; a hardware shadow (resync it)
/// `UMBRA_E_UNSUPPORTED`.
///
/// # Safety
/// `coordinator` is NULL or live; `shadow_id` is NULL or NUL-terminated; `out_op` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_revert_async(
    coordinator: *const umbra_vss_coordinator,
    shadow_id: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_revert_async", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let id = unsafe { c_str(shadow_id, "shadow_id", UMBRA_E_INVALID_ARGUMENT) }?;
        let id = parse_id(id, "shadow_id")?;
        let out = out_ptr(out_op, "out_op")?;
        c.coordinator.shadow(id)?;
        let op = on_providers(c, |p| p.revert(id))?;
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe { write_out(out, into_handle(umbra_async::follow(op))) };
        Ok(())
    })
}

/// Copies the hardware shadow `shadow_id` (a UUID string) back over its original LUN, or over
/// LUN `target` when not NULL, on a background thread (only the blocks that differ); writes an
/// async handle to `*out_op` (`umbra_async_wait`, `_get_percent`, `_cancel`). The LUN's
/// statistics count the blocks copied. No writer is called: use a restore session for that.
///
/// Checked before anything starts: a malformed id is `UMBRA_E_INVALID_ARGUMENT`; an unknown
/// shadow or target `UMBRA_E_NOT_FOUND`; a software shadow (revert to it) `UMBRA_E_UNSUPPORTED`.
///
/// # Safety
/// `coordinator` is NULL or live; `shadow_id` and a non-NULL `target` are NUL-terminated;
/// `out_op` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_resync_async(
    coordinator: *const umbra_vss_coordinator,
    shadow_id: *const c_char,
    target: *const c_char,
    out_op: *mut *mut umbra_async,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_resync_async", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let id = unsafe { c_str(shadow_id, "shadow_id", UMBRA_E_INVALID_ARGUMENT) }?;
        let id = parse_id(id, "shadow_id")?;
        let target = if target.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated by this function's contract.
            Some(unsafe { c_str(target, "target", UMBRA_E_INVALID_ARGUMENT) }?)
        };
        let out = out_ptr(out_op, "out_op")?;
        c.coordinator.shadow(id)?;
        let op = on_providers(c, |p| p.resync(id, target))?;
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe { write_out(out, into_handle(umbra_async::follow(op))) };
        Ok(())
    })
}

// Restore statuses are VSS's values, the C face's numbers.
const _: () = {
    assert!(RestoreStatus::None as u32 == 1);
    assert!(RestoreStatus::All as u32 == 2);
    assert!(RestoreStatus::Failed as u32 == 3);
};
