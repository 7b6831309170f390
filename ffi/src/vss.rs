//! The shadow-copy protocol (`vss-core`) in C: a coordinator over an array (hardware provider) or
//! over volumes (software provider), C writers (a table of function pointers and a `void *ctx`),
//! backup sessions with VSS's call order (a call out of order is `UMBRA_E_BAD_STATE`), writer
//! status, documents as JSON strings, shadow lists and properties as JSON, fast recovery, import
//! and break.
//!
//! Thread safety: a coordinator may be used from many threads at once (every function but
//! `umbra_vss_coordinator_free`); a backup session's calls are serialised inside it.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use vss_core::{
    BackupSession, BackupType, Context, Coordinator, EventContext, FailureKind, HardwareProvider,
    Provider, ShadowSelector, SoftwareProvider, Timeouts, Writer, WriterFailure, WriterMetadata,
    WriterState,
};

use crate::array::umbra_array;
use crate::boundary::*;
use crate::status::*;
use crate::volume::umbra_volume;

/// Writer event: identify (a writer's metadata is the JSON given to
/// `umbra_vss_coordinator_add_writer`).
pub const UMBRA_VSS_EVENT_IDENTIFY: u32 = 1;
/// Writer event: prepare for backup.
pub const UMBRA_VSS_EVENT_PREPARE_BACKUP: u32 = 2;
/// Writer event: prepare for the snapshot.
pub const UMBRA_VSS_EVENT_PREPARE_SNAPSHOT: u32 = 3;
/// Writer event: freeze (stop writing; the freeze window runs until thaw).
pub const UMBRA_VSS_EVENT_FREEZE: u32 = 4;
/// Writer event: thaw (writes may resume).
pub const UMBRA_VSS_EVENT_THAW: u32 = 5;
/// Writer event: post snapshot (the shadows exist).
pub const UMBRA_VSS_EVENT_POST_SNAPSHOT: u32 = 6;
/// Writer event: abort (the set was abandoned; undo prepare and freeze).
pub const UMBRA_VSS_EVENT_ABORT: u32 = 7;
/// Writer event: backup complete.
pub const UMBRA_VSS_EVENT_BACKUP_COMPLETE: u32 = 8;
/// Writer event: backup shutdown (the session is over).
pub const UMBRA_VSS_EVENT_BACKUP_SHUTDOWN: u32 = 9;
/// Writer event: pre restore.
pub const UMBRA_VSS_EVENT_PRE_RESTORE: u32 = 10;
/// Writer event: post restore.
pub const UMBRA_VSS_EVENT_POST_RESTORE: u32 = 11;

/// A writer's answer: success.
pub const UMBRA_VSS_FAILURE_NONE: u32 = 0;
/// A writer's answer: a transient failure (VSS `VSS_E_WRITERERROR_RETRYABLE`).
pub const UMBRA_VSS_FAILURE_RETRYABLE: u32 = 1;
/// A writer's answer: a failure trying again will not help (`VSS_E_WRITERERROR_NONRETRYABLE`).
pub const UMBRA_VSS_FAILURE_NON_RETRYABLE: u32 = 2;
/// A writer's answer, or what a writer that did not answer by its deadline is recorded with
/// (`VSS_E_WRITERERROR_TIMEOUT`).
pub const UMBRA_VSS_FAILURE_TIMEOUT: u32 = 3;
/// A writer's answer: the set lacks LUNs its components live on
/// (`VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT`).
pub const UMBRA_VSS_FAILURE_INCONSISTENT_SNAPSHOT: u32 = 4;
/// A writer's answer: out of memory, threads or processes (`VSS_E_WRITERERROR_OUTOFRESOURCES`).
pub const UMBRA_VSS_FAILURE_OUT_OF_RESOURCES: u32 = 5;

/// Backup session step (`umbra_vss_backup_get_step`): made; next gather.
pub const UMBRA_VSS_STEP_INITIAL: u32 = 0;
/// Backup session step: writers identified; next select components and start the set.
pub const UMBRA_VSS_STEP_GATHERED: u32 = 1;
/// Backup session step: set started; next add volumes and prepare.
pub const UMBRA_VSS_STEP_SET_STARTED: u32 = 2;
/// Backup session step: prepared for backup; next do the snapshot set.
pub const UMBRA_VSS_STEP_PREPARED: u32 = 3;
/// Backup session step: the shadows exist; next backup complete.
pub const UMBRA_VSS_STEP_SNAPSHOTTED: u32 = 4;
/// Backup session step: backup complete sent; next shutdown.
pub const UMBRA_VSS_STEP_COMPLETED: u32 = 5;
/// Backup session step: shut down; the session is over.
pub const UMBRA_VSS_STEP_ENDED: u32 = 6;
/// Backup session step: aborted (by a failure or by `umbra_vss_backup_abort`); over.
pub const UMBRA_VSS_STEP_ABORTED: u32 = 7;

/// Shadow context (the `context` of `umbra_vss_backup_create`, VSS's values): the default;
/// non-persistent, released when the session ends, with writers.
pub const UMBRA_VSS_CONTEXT_BACKUP: u32 = 0x0;
/// Shadow context: no writers, released when the session ends.
pub const UMBRA_VSS_CONTEXT_FILE_SHARE_BACKUP: u32 = 0x10;
/// Shadow context: persistent, kept after the session, no writers.
pub const UMBRA_VSS_CONTEXT_NAS_ROLLBACK: u32 = 0x19;
/// Shadow context: persistent, kept after the session, with writers.
pub const UMBRA_VSS_CONTEXT_APP_ROLLBACK: u32 = 0x09;
/// Shadow context: persistent, client accessible, kept after the session, no writers.
pub const UMBRA_VSS_CONTEXT_CLIENT_ACCESSIBLE: u32 = 0x1D;
/// Shadow context: persistent, client accessible, kept after the session, with writers.
pub const UMBRA_VSS_CONTEXT_CLIENT_ACCESSIBLE_WRITERS: u32 = 0x0D;

/// Shadow attribute (OR'ed into a context, and in a shadow's `attributes`): survives the
/// session that made it.
pub const UMBRA_VSS_ATTR_PERSISTENT: u32 = 0x1;
/// Shadow attribute: not made writable for auto-recovery.
pub const UMBRA_VSS_ATTR_NO_AUTORECOVERY: u32 = 0x2;
/// Shadow attribute: meant to be read by users (previous versions).
pub const UMBRA_VSS_ATTR_CLIENT_ACCESSIBLE: u32 = 0x4;
/// Shadow attribute: not deleted when the requester's session ends.
pub const UMBRA_VSS_ATTR_NO_AUTO_RELEASE: u32 = 0x8;
/// Shadow attribute: made without writers.
pub const UMBRA_VSS_ATTR_NO_WRITERS: u32 = 0x10;
/// Shadow attribute: may be imported by another host.
pub const UMBRA_VSS_ATTR_TRANSPORTABLE: u32 = 0x20;
/// Shadow attribute: not exposed as a device.
pub const UMBRA_VSS_ATTR_NOT_SURFACED: u32 = 0x40;
/// Shadow attribute: not made under the provider's transaction.
pub const UMBRA_VSS_ATTR_NOT_TRANSACTED: u32 = 0x80;
/// Shadow attribute: made by a hardware provider.
pub const UMBRA_VSS_ATTR_HARDWARE_ASSISTED: u32 = 0x10000;
/// Shadow attribute: copy-on-write (a differential shadow).
pub const UMBRA_VSS_ATTR_DIFFERENTIAL: u32 = 0x20000;
/// Shadow attribute: a full copy (a plex).
pub const UMBRA_VSS_ATTR_PLEX: u32 = 0x40000;
/// Shadow attribute: imported on this host.
pub const UMBRA_VSS_ATTR_IMPORTED: u32 = 0x80000;
/// Shadow attribute: exposed on this host.
pub const UMBRA_VSS_ATTR_EXPOSED_LOCALLY: u32 = 0x100000;
/// Shadow attribute: exposed to other hosts.
pub const UMBRA_VSS_ATTR_EXPOSED_REMOTELY: u32 = 0x200000;
/// Shadow attribute: writable for auto-recovery.
pub const UMBRA_VSS_ATTR_AUTORECOVER: u32 = 0x400000;
/// Shadow attribute: made for a rollback recovery.
pub const UMBRA_VSS_ATTR_ROLLBACK_RECOVERY: u32 = 0x800000;
/// Shadow attribute: post-snapshot is delayed.
pub const UMBRA_VSS_ATTR_DELAYED_POSTSNAPSHOT: u32 = 0x1000000;
/// Shadow attribute: transactional file system recovery.
pub const UMBRA_VSS_ATTR_TXF_RECOVERY: u32 = 0x2000000;
/// Shadow attribute: a file share shadow.
pub const UMBRA_VSS_ATTR_FILE_SHARE: u32 = 0x4000000;

/// Backup type (the `backup_type` of `umbra_vss_backup_create`, VSS's values): not set.
pub const UMBRA_VSS_BACKUP_TYPE_UNDEFINED: u32 = 0;
/// Backup type: everything, and the history says so (writers may truncate their logs).
pub const UMBRA_VSS_BACKUP_TYPE_FULL: u32 = 1;
/// Backup type: what changed since the last full or incremental backup.
pub const UMBRA_VSS_BACKUP_TYPE_INCREMENTAL: u32 = 2;
/// Backup type: what changed since the last full backup.
pub const UMBRA_VSS_BACKUP_TYPE_DIFFERENTIAL: u32 = 3;
/// Backup type: logs only.
pub const UMBRA_VSS_BACKUP_TYPE_LOG: u32 = 4;
/// Backup type: everything, history untouched (writers leave their logs alone).
pub const UMBRA_VSS_BACKUP_TYPE_COPY: u32 = 5;
/// Backup type: another type.
pub const UMBRA_VSS_BACKUP_TYPE_OTHER: u32 = 6;

/// Length of the buffer a writer's failure message is written into (NUL included).
pub const UMBRA_VSS_MESSAGE_LEN: usize = 512;

/// One event of a C writer.
///
/// Called on a thread of the library's with the writer's `ctx`, the event
/// (`UMBRA_VSS_EVENT_*`), the set's id (a UUID string; empty at identify), the milliseconds left
/// until the event's deadline, and a buffer of `UMBRA_VSS_MESSAGE_LEN` zeroed bytes for a failure
/// message. Returns `UMBRA_VSS_FAILURE_NONE` for success or a `UMBRA_VSS_FAILURE_*` kind (any
/// other value is taken as non-retryable). A call that does not return by its deadline is a
/// timeout like any other: the set goes on (or is aborted) without it, its thread is left
/// running, and the writer is marked not responding (left out of new sets) until it returns.
pub type umbra_vss_writer_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        event: u32,
        set_id: *const c_char,
        ms_left: u64,
        message: *mut c_char,
    ) -> u32,
>;

/// A C writer: one function per event (NULL: the event succeeds at once) and the `ctx` every
/// call gets. The table is copied by `umbra_vss_coordinator_add_writer`; `ctx` must stay valid,
/// and the functions callable from any thread (calls of one writer may overlap when a call
/// outlives its deadline), until the coordinator is freed and every call it made has returned.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct umbra_vss_writer {
    /// Passed to every function.
    pub ctx: *mut c_void,
    /// `UMBRA_VSS_EVENT_IDENTIFY`.
    pub identify: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_PREPARE_BACKUP`.
    pub prepare_backup: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_PREPARE_SNAPSHOT`.
    pub prepare_snapshot: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_FREEZE`.
    pub freeze: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_THAW`.
    pub thaw: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_POST_SNAPSHOT`.
    pub post_snapshot: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_ABORT`.
    pub abort: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_BACKUP_COMPLETE`.
    pub backup_complete: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_BACKUP_SHUTDOWN`.
    pub backup_shutdown: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_PRE_RESTORE`.
    pub pre_restore: umbra_vss_writer_fn,
    /// `UMBRA_VSS_EVENT_POST_RESTORE`.
    pub post_restore: umbra_vss_writer_fn,
}

/// A C writer as vss-core sees it.
struct CWriter {
    name: String,
    table: umbra_vss_writer,
    metadata: WriterMetadata,
}

// SAFETY: the C contract of `umbra_vss_writer` (documented there and in docs/abi.md) is that
// `ctx` stays valid and the functions may be called from any thread, concurrently, until the
// coordinator is freed and its calls returned; the table itself is plain data copied from C.
unsafe impl Send for CWriter {}
// SAFETY: as for Send: the writer holds no Rust state that a shared reference could mutate.
unsafe impl Sync for CWriter {}

impl CWriter {
    fn call(
        &self,
        f: umbra_vss_writer_fn,
        event: u32,
        ctx: &EventContext,
    ) -> Result<(), WriterFailure> {
        let Some(f) = f else { return Ok(()) };
        let set = ctx.set_id().map(|u| u.to_string()).unwrap_or_default();
        let set = std::ffi::CString::new(set).expect("a UUID has no NUL");
        let left = ctx.deadline().saturating_duration_since(Instant::now());
        let ms_left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        let mut msg = vec![0 as c_char; UMBRA_VSS_MESSAGE_LEN];
        // SAFETY: the function and `ctx` come from C under the contract of `umbra_vss_writer`;
        // `set` is a NUL-terminated string and `msg` holds UMBRA_VSS_MESSAGE_LEN writable bytes,
        // both alive for the call.
        let kind = unsafe {
            f(
                self.table.ctx,
                event,
                set.as_ptr(),
                ms_left,
                msg.as_mut_ptr(),
            )
        };
        if kind == UMBRA_VSS_FAILURE_NONE {
            return Ok(());
        }
        // A writer that filled the whole buffer: its last byte is cut for the NUL.
        msg[UMBRA_VSS_MESSAGE_LEN - 1] = 0;
        // SAFETY: `msg` is NUL-terminated (its last byte is 0).
        let text = unsafe { CStr::from_ptr(msg.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let kind = match kind {
            UMBRA_VSS_FAILURE_RETRYABLE => FailureKind::Retryable,
            UMBRA_VSS_FAILURE_TIMEOUT => FailureKind::Timeout,
            UMBRA_VSS_FAILURE_INCONSISTENT_SNAPSHOT => FailureKind::InconsistentSnapshot,
            UMBRA_VSS_FAILURE_OUT_OF_RESOURCES => FailureKind::OutOfResources,
            UMBRA_VSS_FAILURE_NON_RETRYABLE => FailureKind::NonRetryable,
            other => {
                return Err(WriterFailure::non_retryable(format!(
                    "unknown failure kind {other} returned: {text}"
                )))
            }
        };
        Err(WriterFailure::new(kind, text))
    }
}

impl Writer for CWriter {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(&self, ctx: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        self.call(self.table.identify, UMBRA_VSS_EVENT_IDENTIFY, ctx)?;
        Ok(self.metadata.clone())
    }
    fn prepare_backup(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(
            self.table.prepare_backup,
            UMBRA_VSS_EVENT_PREPARE_BACKUP,
            ctx,
        )
    }
    fn prepare_snapshot(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(
            self.table.prepare_snapshot,
            UMBRA_VSS_EVENT_PREPARE_SNAPSHOT,
            ctx,
        )
    }
    fn freeze(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.freeze, UMBRA_VSS_EVENT_FREEZE, ctx)
    }
    fn thaw(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.thaw, UMBRA_VSS_EVENT_THAW, ctx)
    }
    fn post_snapshot(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.post_snapshot, UMBRA_VSS_EVENT_POST_SNAPSHOT, ctx)
    }
    fn abort(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.abort, UMBRA_VSS_EVENT_ABORT, ctx)
    }
    fn backup_complete(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(
            self.table.backup_complete,
            UMBRA_VSS_EVENT_BACKUP_COMPLETE,
            ctx,
        )
    }
    fn backup_shutdown(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(
            self.table.backup_shutdown,
            UMBRA_VSS_EVENT_BACKUP_SHUTDOWN,
            ctx,
        )
    }
    fn pre_restore(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.pre_restore, UMBRA_VSS_EVENT_PRE_RESTORE, ctx)
    }
    fn post_restore(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        self.call(self.table.post_restore, UMBRA_VSS_EVENT_POST_RESTORE, ctx)
    }
}

/// A shadow-copy coordinator over an array or a set of volumes. Created by
/// `umbra_vss_coordinator_create_array` or `_create_volumes`, freed by
/// `umbra_vss_coordinator_free`. Safe to share across threads.
pub struct umbra_vss_coordinator {
    pub(crate) coordinator: Coordinator,
}

/// A backup session (VSS's requester sequence). Created by `umbra_vss_backup_create`, freed by
/// `umbra_vss_backup_free` (which aborts a set not yet made, or shuts down a made one).
pub struct umbra_vss_backup {
    pub(crate) session: Mutex<BackupSession>,
}

fn timeouts(freeze_ms: u32, hold_ms: u32, event_ms: u32) -> Timeouts {
    let d = Timeouts::default();
    let ms = |v: u32, default: Duration| {
        if v == 0 {
            default
        } else {
            Duration::from_millis(u64::from(v))
        }
    };
    Timeouts {
        freeze_window: ms(freeze_ms, d.freeze_window),
        hold_window: ms(hold_ms, d.hold_window),
        event: ms(event_ms, d.event),
    }
}

pub(crate) fn parse_id(s: &str, what: &str) -> FfiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s)
        .map_err(|e| FfiError::invalid(format!("`{what}` {s:?} is not a UUID: {e}")))
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("these values always serialise")
}

/// Makes a coordinator whose provider is the hardware provider of `array` (each shadow a
/// snapshot LUN masked to no one, read-only until broken). Deadlines in milliseconds, 0 for the
/// default: `freeze_ms` from the first freeze to the last thaw (60 s), `hold_ms` the providers'
/// hold of writes (10 s), `event_ms` every other event (60 s). The array handle may be freed
/// before the coordinator (they share the array).
///
/// # Safety
/// `array` is NULL or a live array handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_create_array(
    array: *const umbra_array,
    freeze_ms: u32,
    hold_ms: u32,
    event_ms: u32,
    out: *mut *mut umbra_vss_coordinator,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_create_array", {
        // SAFETY: by this function's contract `array` is NULL or a live handle.
        let array = unsafe { handle(array, "array") }?;
        let out = out_ptr(out, "out")?;
        let provider: Arc<dyn Provider> = Arc::new(HardwareProvider::new(array.array.clone()));
        let coordinator =
            Coordinator::with_timeouts([provider], timeouts(freeze_ms, hold_ms, event_ms));
        // SAFETY: `out` is non-NULL and writable by this function's contract.
        unsafe { write_out(out, into_handle(umbra_vss_coordinator { coordinator })) };
        Ok(())
    })
}

/// Makes a coordinator whose provider is the software provider over `count` volumes, the i-th
/// named `names[i]` in sets (commit: one snapshot of every volume of the set under one freeze).
/// Deadlines as for `umbra_vss_coordinator_create_array`. The volume handles may be freed before
/// the coordinator (they share the volumes).
///
/// # Safety
/// `volumes` and `names` are NULL or point to `count` live volume handles and NUL-terminated
/// strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_create_volumes(
    volumes: *const *const umbra_volume,
    names: *const *const c_char,
    count: usize,
    freeze_ms: u32,
    hold_ms: u32,
    event_ms: u32,
    out: *mut *mut umbra_vss_coordinator,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_create_volumes", {
        let out = out_ptr(out, "out")?;
        if count == 0 {
            return Err(FfiError::invalid(
                "a coordinator needs at least one volume (count is 0)",
            ));
        }
        if volumes.is_null() {
            return Err(FfiError::null("volumes"));
        }
        if names.is_null() {
            return Err(FfiError::null("names"));
        }
        let mut list = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `volumes` and `names` point to `count` entries by this function's contract.
            let (v, n) = unsafe { (*volumes.add(i), *names.add(i)) };
            // SAFETY: each entry is NULL or live / NUL-terminated by this function's contract.
            let v = unsafe { handle(v, "volumes[i]") }?;
            // SAFETY: as above.
            let n = unsafe { c_str(n, "names[i]", UMBRA_E_INVALID_ARGUMENT) }?;
            list.push((n.to_owned(), v.volume().clone()));
        }
        let provider: Arc<dyn Provider> = Arc::new(SoftwareProvider::new(list)?);
        let coordinator =
            Coordinator::with_timeouts([provider], timeouts(freeze_ms, hold_ms, event_ms));
        // SAFETY: `out` is non-NULL and writable by this function's contract.
        unsafe { write_out(out, into_handle(umbra_vss_coordinator { coordinator })) };
        Ok(())
    })
}

/// Frees a coordinator (NULL: no-op). Sessions made from it stay usable until freed. A C
/// writer's call still running past its deadline keeps running; its `ctx` must stay valid until
/// it returns.
///
/// # Safety
/// `coordinator` is NULL or a live handle not used after this call.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_free(coordinator: *mut umbra_vss_coordinator) {
    ffi_boundary!("umbra_vss_coordinator_free", default = (), {
        // SAFETY: by this function's contract the handle came from a create function.
        drop(unsafe { from_handle(coordinator) });
    })
}

/// Adds a C writer named `name` to every session made from now on. `metadata_json` is its Writer
/// Metadata document (docs/protocol.md), or NULL for one component named after the writer
/// covering every LUN of the set. `writer` is copied; see `umbra_vss_writer` for how long its
/// `ctx` must live.
///
/// Errors: `UMBRA_E_ALREADY_EXISTS` for a name taken, `UMBRA_E_INVALID_DOCUMENT` for malformed
/// metadata, `UMBRA_E_INVALID_ARGUMENT` for metadata naming another writer or an empty name.
///
/// # Safety
/// `coordinator` is NULL or live; `name` and a non-NULL `metadata_json` are NUL-terminated;
/// `writer` is NULL or points to a table.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_add_writer(
    coordinator: *const umbra_vss_coordinator,
    name: *const c_char,
    metadata_json: *const c_char,
    writer: *const umbra_vss_writer,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_add_writer", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let name = unsafe { c_str(name, "name", UMBRA_E_INVALID_ARGUMENT) }?;
        // SAFETY: by this function's contract.
        let table = *unsafe { handle(writer, "writer") }?;
        if name.is_empty() {
            return Err(FfiError::invalid("a writer's name is empty"));
        }
        let metadata = if metadata_json.is_null() {
            WriterMetadata::for_every_lun(name)
        } else {
            // SAFETY: non-NULL and NUL-terminated by this function's contract.
            let text = unsafe { c_str(metadata_json, "metadata_json", UMBRA_E_INVALID_DOCUMENT) }?;
            let m = WriterMetadata::from_json(text.as_bytes())?;
            if m.writer != name {
                return Err(FfiError::invalid(format!(
                    "the metadata names writer {:?}, not {name:?}",
                    m.writer
                )));
            }
            m
        };
        c.coordinator.add_writer(Arc::new(CWriter {
            name: name.to_owned(),
            table,
            metadata,
        }))?;
        Ok(())
    })
}

/// Removes writer `name` from the sessions made from now on (`UMBRA_E_NOT_FOUND` if unknown).
///
/// # Safety
/// `coordinator` is NULL or live; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_remove_writer(
    coordinator: *const umbra_vss_coordinator,
    name: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_remove_writer", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let name = unsafe { c_str(name, "name", UMBRA_E_INVALID_ARGUMENT) }?;
        c.coordinator.remove_writer(name)?;
        Ok(())
    })
}

/// Waits at most `timeout_ms` until writer `name` has no call running past its deadline (its
/// late calls returned); `*out_responding` is true if it has none by then.
///
/// # Safety
/// `coordinator` is NULL or live; `name` is NULL or NUL-terminated; `out_responding` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_wait_writer(
    coordinator: *const umbra_vss_coordinator,
    name: *const c_char,
    timeout_ms: u32,
    out_responding: *mut bool,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_wait_writer", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let name = unsafe { c_str(name, "name", UMBRA_E_INVALID_ARGUMENT) }?;
        let out = out_ptr(out_responding, "out_responding")?;
        let ok = c
            .coordinator
            .wait_until_responding(name, Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe { write_out(out, ok) };
        Ok(())
    })
}

/// Every shadow the coordinator's provider holds, oldest first, as a JSON array of shadow
/// properties (docs/protocol.md: `shadow_id`, `set_id`, `original`, `shadow`, `attributes`,
/// `created_unix_ns`, `state`, `exposure`, ...). String output convention.
///
/// # Safety
/// `coordinator` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_list_shadows(
    coordinator: *const umbra_vss_coordinator,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_list_shadows", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        let text = json(&c.coordinator.shadows()?);
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// The properties of shadow `shadow_id` (a UUID string) as a JSON object (see
/// `umbra_vss_coordinator_list_shadows`); `UMBRA_E_NOT_FOUND` for an unknown id.
///
/// # Safety
/// As `umbra_vss_coordinator_list_shadows`; `shadow_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_get_shadow(
    coordinator: *const umbra_vss_coordinator,
    shadow_id: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_get_shadow", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let id = unsafe { c_str(shadow_id, "shadow_id", UMBRA_E_INVALID_ARGUMENT) }?;
        let text = json(&c.coordinator.shadow(parse_id(id, "shadow_id")?)?);
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// Deletes shadows: `shadow_id` one (a UUID string), or with `set_id` every shadow of a set; give
/// exactly one of them. `*out_count` (if not NULL) gets how many were deleted.
/// `UMBRA_E_NOT_FOUND` if none matches.
///
/// # Safety
/// `coordinator` is NULL or live; the ids are NULL or NUL-terminated; `out_count` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_delete_shadows(
    coordinator: *const umbra_vss_coordinator,
    shadow_id: *const c_char,
    set_id: *const c_char,
    out_count: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_delete_shadows", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        let which = match (shadow_id.is_null(), set_id.is_null()) {
            (false, true) => {
                // SAFETY: non-NULL and NUL-terminated by this function's contract.
                let s = unsafe { c_str(shadow_id, "shadow_id", UMBRA_E_INVALID_ARGUMENT) }?;
                ShadowSelector::Id(parse_id(s, "shadow_id")?)
            }
            (true, false) => {
                // SAFETY: non-NULL and NUL-terminated by this function's contract.
                let s = unsafe { c_str(set_id, "set_id", UMBRA_E_INVALID_ARGUMENT) }?;
                ShadowSelector::Set(parse_id(s, "set_id")?)
            }
            _ => {
                return Err(FfiError::invalid(
                    "give exactly one of `shadow_id` and `set_id`",
                ))
            }
        };
        let n = c.coordinator.delete_shadows(&which)?;
        if !out_count.is_null() {
            // SAFETY: non-NULL and writable by this function's contract.
            unsafe { out_count.write(n) };
        }
        Ok(())
    })
}

/// The provider offering an operation on a shadow or set: the first that does not answer
/// UNSUPPORTED.
pub(crate) fn on_providers<T>(
    c: &umbra_vss_coordinator,
    mut f: impl FnMut(&dyn Provider) -> vss_core::Result<T>,
) -> FfiResult<T> {
    let mut last = None;
    for p in c.coordinator.providers() {
        match f(p.as_ref()) {
            Err(e) if e.kind() == vss_core::ErrorKind::Unsupported => last = Some(e),
            r => return Ok(r?),
        }
    }
    Err(last
        .map(FfiError::from)
        .unwrap_or_else(|| FfiError::new(UMBRA_E_UNSUPPORTED, "no provider")))
}

/// Fast recovery (hardware provider): the damaged LUN the shadow `shadow_id` was taken of is
/// masked off its hosts, the shadow is broken and takes its place at the same host LUN numbers,
/// the damaged LUN stays (masked to no one, or read-only to `keep_for_host` when not NULL).
/// Writes the recovery report as JSON: `{"damaged":..,"recovered":..,"bytes_moved":0,"writes":..}`
/// (string output convention).
///
/// # Safety
/// `coordinator` is NULL or live; `shadow_id` and a non-NULL `keep_for_host` are NUL-terminated;
/// `buf` is NULL or `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_recover(
    coordinator: *const umbra_vss_coordinator,
    shadow_id: *const c_char,
    keep_for_host: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_recover", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let id = unsafe { c_str(shadow_id, "shadow_id", UMBRA_E_INVALID_ARGUMENT) }?;
        let id = parse_id(id, "shadow_id")?;
        let keep = if keep_for_host.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated by this function's contract.
            Some(unsafe { c_str(keep_for_host, "keep_for_host", UMBRA_E_INVALID_ARGUMENT) }?)
        };
        out_ptr(out_len, "out_len")?;
        let report = on_providers(c, |p| p.recover(id, keep))?;
        // SAFETY: by this function's contract.
        unsafe { write_string(&json(&report), buf, len, out_len) }
    })
}

/// Imports for host `host` the transportable set a Backup Components document describes
/// (`components_json`, as `umbra_vss_backup_get_components` gave it, saved and loaded on the
/// importing side): its shadows are unmasked read-only to the host, once. Writes the imported
/// shadows' properties as a JSON array (string output convention).
///
/// Errors: a malformed document `UMBRA_E_INVALID_DOCUMENT`; one without a set
/// `UMBRA_E_INVALID_ARGUMENT`; a set not made TRANSPORTABLE `UMBRA_E_NONTRANSPORTABLE_BCD`; none
/// of its shadows here `UMBRA_E_NO_SNAPSHOTS_IMPORTED`; imported already `UMBRA_E_BAD_STATE`.
///
/// # Safety
/// As `umbra_vss_coordinator_recover`; `components_json` and `host` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_import(
    coordinator: *const umbra_vss_coordinator,
    components_json: *const c_char,
    host: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_import", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let doc = unsafe { c_str(components_json, "components_json", UMBRA_E_INVALID_DOCUMENT) }?;
        // SAFETY: by this function's contract.
        let host = unsafe { c_str(host, "host", UMBRA_E_INVALID_INITIATOR) }?;
        out_ptr(out_len, "out_len")?;
        let doc = vss_core::BackupComponents::from_json(doc.as_bytes())?;
        let id = doc
            .snapshot_set
            .as_ref()
            .ok_or_else(|| {
                FfiError::invalid("the backup components document holds no snapshot set")
            })?
            .set_id;
        let shadows = on_providers(c, |p| p.import(id, host))?;
        // SAFETY: by this function's contract.
        unsafe { write_string(&json(&shadows), buf, len, out_len) }
    })
}

/// Breaks the set `set_id`: its shadows become ordinary read-write LUNs, out of the set (deleting
/// the set never deletes them). Writes their names as a JSON array of strings.
///
/// # Safety
/// As `umbra_vss_coordinator_recover`.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_coordinator_break_set(
    coordinator: *const umbra_vss_coordinator,
    set_id: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_coordinator_break_set", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        // SAFETY: by this function's contract.
        let id = parse_id(
            unsafe { c_str(set_id, "set_id", UMBRA_E_INVALID_ARGUMENT) }?,
            "set_id",
        )?;
        out_ptr(out_len, "out_len")?;
        let luns = on_providers(c, |p| p.break_set(id))?;
        // SAFETY: by this function's contract.
        unsafe { write_string(&json(&luns), buf, len, out_len) }
    })
}

/// Starts a backup session in `context` (VSS's context and attribute bits, named
/// `UMBRA_VSS_CONTEXT_*` with `UMBRA_VSS_ATTR_*` OR'ed in: `UMBRA_VSS_CONTEXT_BACKUP` (0) is
/// non-persistent, with writers; `| UMBRA_VSS_ATTR_TRANSPORTABLE`, ...) of `backup_type`
/// (`UMBRA_VSS_BACKUP_TYPE_*`, VSS's values: 1 full, 5 copy, ...). Nothing is called yet.
///
/// # Safety
/// `coordinator` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_create(
    coordinator: *const umbra_vss_coordinator,
    context: u32,
    backup_type: u32,
    out: *mut *mut umbra_vss_backup,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_create", {
        // SAFETY: by this function's contract.
        let c = unsafe { handle(coordinator, "coordinator") }?;
        let out = out_ptr(out, "out")?;
        let ctx = Context::from_bits(context)
            .ok_or_else(|| FfiError::invalid(format!("context {context:#x} has unknown bits")))?;
        let bt = BackupType::try_from(backup_type)?;
        let session = c.coordinator.backup(ctx, bt);
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe {
            write_out(
                out,
                into_handle(umbra_vss_backup {
                    session: Mutex::new(session),
                }),
            )
        };
        Ok(())
    })
}

/// Frees a session (NULL: no-op): a set not yet made is aborted (every writer gets abort, no
/// shadow remains); a made one is shut down (its auto-release shadows deleted).
///
/// # Safety
/// `backup` is NULL or a live handle not used after this call.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_free(backup: *mut umbra_vss_backup) {
    ffi_boundary!("umbra_vss_backup_free", default = (), {
        // SAFETY: by this function's contract the handle came from umbra_vss_backup_create.
        drop(unsafe { from_handle(backup) });
    })
}

/// Runs one step of the session behind `backup`.
///
/// # Safety
/// `backup` is NULL or a live session handle.
unsafe fn step(
    backup: *mut umbra_vss_backup,
    f: impl FnOnce(&mut BackupSession) -> vss_core::Result<()>,
) -> FfiResult {
    // SAFETY: by this function's contract.
    let b = unsafe { handle(backup, "backup") }?;
    Ok(f(&mut b.session.lock())?)
}

/// Gathers the writers' metadata (identify, in parallel, each within the event deadline; a
/// writer that fails identify is left out and reported in the writer status).
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_gather(backup: *mut umbra_vss_backup) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_gather", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.gather_writer_metadata().map(drop)) }
    })
}

/// Prepares the writers for backup (prepare-backup); a failure or hang aborts the set.
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_prepare(backup: *mut umbra_vss_backup) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_prepare", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.prepare_for_backup()) }
    })
}

/// Makes the snapshot set: prepare-snapshot, freeze, the providers' commit, thaw,
/// post-snapshot. A writer's failure or hang before the shadows exist aborts the set
/// (`UMBRA_E_WRITER_FAILED`, `UMBRA_E_WRITER_NOT_RESPONDING`): every writer gets abort, every
/// volume is thawed, no shadow of the set remains.
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_do_snapshot_set(
    backup: *mut umbra_vss_backup,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_do_snapshot_set", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.do_snapshot_set().map(drop)) }
    })
}

/// Sends backup complete (a writer's failure is recorded in its status; the shadows stay).
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_complete(backup: *mut umbra_vss_backup) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_complete", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.backup_complete()) }
    })
}

/// Sends backup shutdown; the session is over (auto-release shadows are deleted).
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_shutdown(backup: *mut umbra_vss_backup) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_shutdown", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.backup_shutdown()) }
    })
}

/// Aborts the set: every writer gets abort, every volume is thawed, no shadow of the set
/// remains; the session is over.
///
/// A call out of order is `UMBRA_E_BAD_STATE` naming the step, and changes nothing.
///
/// # Safety
/// `backup` is NULL or a live session handle.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_abort(backup: *mut umbra_vss_backup) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_abort", {
        // SAFETY: forwarded from this function's contract.
        unsafe { step(backup, |s| s.abort()) }
    })
}

/// Selects component `path` of writer `writer` for the backup (after gather, before start set).
///
/// # Safety
/// `backup` is NULL or live; `writer` and `path` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_select_component(
    backup: *mut umbra_vss_backup,
    writer: *const c_char,
    path: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_select_component", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        // SAFETY: by this function's contract.
        let writer = unsafe { c_str(writer, "writer", UMBRA_E_INVALID_ARGUMENT) }?;
        // SAFETY: by this function's contract.
        let path = unsafe { c_str(path, "path", UMBRA_E_INVALID_ARGUMENT) }?;
        b.session.lock().select_component(writer, path)?;
        Ok(())
    })
}

/// Starts the snapshot set (one at a time per coordinator and volume:
/// `UMBRA_E_SNAPSHOT_SET_IN_PROGRESS`); writes its id, a UUID string (string output convention).
///
/// # Safety
/// `backup` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_start_set(
    backup: *mut umbra_vss_backup,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_start_set", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        out_ptr(out_len, "out_len")?;
        // SAFETY: checked before the set starts, so a bad buffer changes nothing.
        unsafe { out_bytes(buf.cast(), len, "buf") }?;
        let id = b.session.lock().start_set()?;
        // SAFETY: by this function's contract.
        unsafe { write_string(&id.to_string(), buf, len, out_len) }
    })
}

/// Adds volume (LUN) `volume` to the set (at most 64; `UMBRA_E_MAX_VOLUMES_REACHED`).
///
/// # Safety
/// `backup` is NULL or live; `volume` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_add_volume(
    backup: *mut umbra_vss_backup,
    volume: *const c_char,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_add_volume", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        // SAFETY: by this function's contract.
        let volume = unsafe { c_str(volume, "volume", UMBRA_E_INVALID_ARGUMENT) }?;
        b.session.lock().add_volume(volume)?;
        Ok(())
    })
}

/// The session's step, `UMBRA_VSS_STEP_*`.
///
/// # Safety
/// `backup` is NULL or live; `out_step` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_get_step(
    backup: *const umbra_vss_backup,
    out_step: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_get_step", {
        use vss_core::BackupStep as S;
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        let out = out_ptr(out_step, "out_step")?;
        let step = match b.session.lock().step() {
            S::Initial => UMBRA_VSS_STEP_INITIAL,
            S::Gathered => UMBRA_VSS_STEP_GATHERED,
            S::SetStarted => UMBRA_VSS_STEP_SET_STARTED,
            S::Prepared => UMBRA_VSS_STEP_PREPARED,
            S::Snapshotted => UMBRA_VSS_STEP_SNAPSHOTTED,
            S::Completed => UMBRA_VSS_STEP_COMPLETED,
            S::Ended => UMBRA_VSS_STEP_ENDED,
            S::Aborted => UMBRA_VSS_STEP_ABORTED,
        };
        // SAFETY: non-NULL and writable by this function's contract.
        unsafe { write_out(out, step) };
        Ok(())
    })
}

fn failure_code(kind: FailureKind) -> u32 {
    match kind {
        FailureKind::Retryable => UMBRA_VSS_FAILURE_RETRYABLE,
        FailureKind::NonRetryable => UMBRA_VSS_FAILURE_NON_RETRYABLE,
        FailureKind::Timeout => UMBRA_VSS_FAILURE_TIMEOUT,
        FailureKind::InconsistentSnapshot => UMBRA_VSS_FAILURE_INCONSISTENT_SNAPSHOT,
        FailureKind::OutOfResources => UMBRA_VSS_FAILURE_OUT_OF_RESOURCES,
    }
}

/// The state of writer `writer` in this session: `*out_state` VSS's writer state value (1
/// STABLE ... 9 FAILED_AT_FREEZE ...; docs/protocol.md), `*out_failure` the failure kind
/// (`UMBRA_VSS_FAILURE_*`, NONE if it has not failed). `UMBRA_E_NOT_FOUND` for a writer not in
/// the session. Either output may be NULL.
///
/// # Safety
/// `backup` is NULL or live; `writer` is NULL or NUL-terminated; the outputs NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_get_writer_state(
    backup: *const umbra_vss_backup,
    writer: *const c_char,
    out_state: *mut u32,
    out_failure: *mut u32,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_get_writer_state", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        // SAFETY: by this function's contract.
        let name = unsafe { c_str(writer, "writer", UMBRA_E_INVALID_ARGUMENT) }?;
        let status = b
            .session
            .lock()
            .writer_status()
            .into_iter()
            .find(|w| w.writer == name)
            .ok_or_else(|| {
                FfiError::new(
                    UMBRA_E_NOT_FOUND,
                    format!("no writer {name:?} in the session"),
                )
            })?;
        if !out_state.is_null() {
            // SAFETY: non-NULL and writable by this function's contract.
            unsafe { out_state.write(status.state.code()) };
        }
        if !out_failure.is_null() {
            let f = status
                .failure
                .map_or(UMBRA_VSS_FAILURE_NONE, |f| failure_code(f.kind()));
            // SAFETY: non-NULL and writable by this function's contract.
            unsafe { out_failure.write(f) };
        }
        Ok(())
    })
}

/// Every writer's status in this session as a JSON array of objects: `writer`, `state` (VSS's
/// name without `VSS_WS_`, e.g. `"FAILED_AT_FREEZE"`), `state_code`, `failure` (null or
/// `{"kind": "timeout", "message": ...}`), `responding`, `taking_part` (string output
/// convention).
///
/// # Safety
/// `backup` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_get_writer_status(
    backup: *const umbra_vss_backup,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_get_writer_status", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        let text = writer_status_json(b.session.lock().writer_status());
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// The writers' status as the JSON array `umbra_vss_backup_get_writer_status` documents.
pub(crate) fn writer_status_json(status: Vec<vss_core::WriterStatus>) -> String {
    let list: Vec<serde_json::Value> = status
        .into_iter()
        .map(|w| {
            serde_json::json!({
                "writer": w.writer,
                "state": w.state.as_str(),
                "state_code": w.state.code(),
                "failure": w.failure.map(|f| serde_json::json!({
                    "kind": f.kind().as_str(),
                    "message": f.message(),
                })),
                "responding": w.responding,
                "taking_part": w.taking_part,
            })
        })
        .collect();
    json(&list)
}

/// The Backup Components document of the made set as JSON (docs/protocol.md; keep it to restore
/// or to import the set elsewhere). String output convention; `UMBRA_E_BAD_STATE` before the
/// snapshot set is made.
///
/// # Safety
/// `backup` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_get_components(
    backup: *const umbra_vss_backup,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_get_components", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        let text = b.session.lock().backup_components()?.to_json()?;
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

/// Records whether the requester backed component `path` of writer `writer` up (VSS
/// `SetBackupSucceeded`; `succeeded` true or false), for the Backup Components document
/// (`backup_succeeded` of the selected component) and the writers' backup-complete. Allowed once
/// the set is made and before shutdown; `UMBRA_E_BAD_STATE` otherwise, `UMBRA_E_NOT_FOUND` for a
/// writer not in the session or a component not selected. (ABI 1.7)
///
/// # Safety
/// `backup` is NULL or live; `writer` and `path` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_set_backup_succeeded(
    backup: *mut umbra_vss_backup,
    writer: *const c_char,
    path: *const c_char,
    succeeded: bool,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_set_backup_succeeded", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        // SAFETY: by this function's contract.
        let writer = unsafe { c_str(writer, "writer", UMBRA_E_INVALID_ARGUMENT) }?;
        // SAFETY: by this function's contract.
        let path = unsafe { c_str(path, "path", UMBRA_E_INVALID_ARGUMENT) }?;
        b.session
            .lock()
            .set_backup_succeeded(writer, path, succeeded)?;
        Ok(())
    })
}

/// The properties of the set's shadows as a JSON array (see
/// `umbra_vss_coordinator_list_shadows`); `UMBRA_E_BAD_STATE` before the set is made.
///
/// # Safety
/// `backup` is NULL or live; `buf` is NULL or `len` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn umbra_vss_backup_get_shadows(
    backup: *const umbra_vss_backup,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> umbra_status {
    ffi_boundary!("umbra_vss_backup_get_shadows", {
        // SAFETY: by this function's contract.
        let b = unsafe { handle(backup, "backup") }?;
        let text = json(b.session.lock().properties()?);
        // SAFETY: by this function's contract.
        unsafe { write_string(&text, buf, len, out_len) }
    })
}

// Writer states are VSS's values, the C face's numbers: the compiler holds the two together.
const _: () = {
    assert!(WriterState::FailedAtFreeze as u32 == 9);
    assert!(WriterState::Stable as u32 == 1);
};

/// The event constants are vss-core's events in order, 1-based.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_constants_follow_vss_cores_order() {
        let ours = [
            UMBRA_VSS_EVENT_IDENTIFY,
            UMBRA_VSS_EVENT_PREPARE_BACKUP,
            UMBRA_VSS_EVENT_PREPARE_SNAPSHOT,
            UMBRA_VSS_EVENT_FREEZE,
            UMBRA_VSS_EVENT_THAW,
            UMBRA_VSS_EVENT_POST_SNAPSHOT,
            UMBRA_VSS_EVENT_ABORT,
            UMBRA_VSS_EVENT_BACKUP_COMPLETE,
            UMBRA_VSS_EVENT_BACKUP_SHUTDOWN,
            UMBRA_VSS_EVENT_PRE_RESTORE,
            UMBRA_VSS_EVENT_POST_RESTORE,
        ];
        for (i, e) in vss_core::WriterEvent::ALL.iter().enumerate() {
            assert_eq!(ours[i] as usize, i + 1, "{e:?}");
        }
    }

    #[test]
    fn every_vss_kind_has_a_code_of_its_own() {
        let mut codes: Vec<_> = vss_core::ErrorKind::ALL
            .iter()
            .map(|&k| status_of_vss(k))
            .collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "two vss-core kinds share a code");
        for k in vds_core::ErrorKind::ALL {
            assert_eq!(
                status_of_vss(vss_core::ErrorKind::from(k)),
                status_of_vds(k),
                "{k:?}"
            );
        }
    }
}
