//! The protocol over a pool: a [`PoolCoordinator`] on an embedded [`Array`], with the pool's
//! registered writers and a set-in-progress record that survives a killed requester.
//!
//! [`PoolCoordinator::open`] builds a [`Coordinator`] over the array with two providers: the
//! [`HardwareProvider`] (shadows as snapshot LUNs) and the [`ArraySoftwareProvider`] (shadows as
//! the array's engine-level shadows of LUNs), the preferred one first ([`PoolOptions::provider`]).
//! Everything it keeps is in the pool itself (docs/protocol.md, "The pool coordinator"):
//!
//! - **Registered writers**: pool metadata key `vss:writer:<name>`, value
//!   `{"command":"...","session":false}`; each is part of every set made through a pool
//!   coordinator (as an [`ExecWriter`] or a [`SessionWriter`]), beside the writers a requester
//!   adds for its own sets ([`PoolCoordinator::add_exec_writer`], [`Coordinator::add_writer`]).
//!   The registry is read again at each identify, so a writer registered (or unregistered)
//!   through another pool coordinator after this one opened is in (or out of) its next session.
//! - **The set-in-progress record**: pool metadata key `vss:set-in-progress`, a [`SetRecord`]
//!   (set id, the requester's pid and start time, the set's LUNs, the exec writers' commands),
//!   written durably when a set starts and each time a LUN is added (before the step takes
//!   effect), removed when the set ends (made, aborted, or its session dropped). A requester
//!   killed mid-set leaves it; the next [`PoolCoordinator::open`] by a live process, finding its
//!   process gone, sends abort to its exec writers, checks no LUN of it is frozen, deletes its
//!   shadows and removes the record, and reports what it did ([`PoolCoordinator::recovered`]).
//!   While the record names a live requester, `start_set` of any other pool coordinator is
//!   [`ErrorKind::SnapshotSetInProgress`]. (One process owns a pool at a time, so the live
//!   requester is another coordinator of the same process.)

mod software;

pub use software::{ArraySoftwareProvider, ARRAY_SOFTWARE_PROVIDER_ID};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vds_core::{Array, AsyncHandle};

use crate::coordinator::{Coordinator, SetHook, Timeouts};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::software::DEFAULT_MAX_SHADOWS_PER_VOLUME;
use crate::provider::{HardwareProvider, Provider};
use crate::writer::{Call, EventContext, ExecWriter, SessionWriter, Writer, WriterEvent};
use crate::WriterFailure;

/// The pool metadata key of the set-in-progress record.
pub const SET_RECORD_KEY: &str = "vss:set-in-progress";

/// The prefix of the pool metadata keys of registered writers (`vss:writer:<name>`).
pub const WRITER_KEY_PREFIX: &str = "vss:writer:";

/// The `format` of the set-in-progress record.
const RECORD_FORMAT: &str = "umbra-set-in-progress";

/// Which of the pool's providers makes a LUN's shadow when both can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolProvider {
    /// The hardware provider: snapshot LUNs (then the software provider for what it refuses).
    #[default]
    Hardware,
    /// The software provider: engine-level shadows of the LUNs (then the hardware provider for
    /// what it refuses: a `HARDWARE_ASSISTED` or `PLEX` context).
    Software,
}

/// How a [`PoolCoordinator`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The coordinator's deadlines.
    pub timeouts: Timeouts,
    /// The preferred provider.
    pub provider: PoolProvider,
    /// The most software shadows a LUN holds (1 to 512; default 64); one more is
    /// [`ErrorKind::MaxSnapshotsReached`]. The hardware provider holds 64 per LUN.
    pub max_shadows_per_volume: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            timeouts: Timeouts::default(),
            provider: PoolProvider::Hardware,
            max_shadows_per_volume: DEFAULT_MAX_SHADOWS_PER_VOLUME,
        }
    }
}

/// A writer defined by a command line, registered in the pool or added by a requester for its
/// own sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegisteredWriter {
    /// Its name: 1 to 64 letters, digits, '.', '_' or '-'.
    pub name: String,
    /// The shell command line (docs/protocol.md, "Exec writers", "Session writers").
    pub command: String,
    /// A session writer (one process for the whole set, events on its standard input) rather
    /// than an exec writer (one process per event).
    pub session: bool,
}

impl RegisteredWriter {
    /// An exec writer `name` running `command` once per event.
    pub fn exec(name: impl Into<String>, command: impl Into<String>) -> Self {
        RegisteredWriter {
            name: name.into(),
            command: command.into(),
            session: false,
        }
    }

    /// A session writer `name` running `command` once per set.
    pub fn session(name: impl Into<String>, command: impl Into<String>) -> Self {
        RegisteredWriter {
            name: name.into(),
            command: command.into(),
            session: true,
        }
    }

    /// The writer it defines.
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a bad name or an empty command.
    pub fn writer(&self) -> Result<Arc<dyn Writer>> {
        Ok(if self.session {
            Arc::new(SessionWriter::new(&self.name, &self.command)?)
        } else {
            Arc::new(ExecWriter::new(&self.name, &self.command)?)
        })
    }
}

/// What the pool stores of a registered writer (its name is in the key).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredWriter {
    command: String,
    session: bool,
}

/// An exec writer of a set, as the set-in-progress record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedWriter {
    /// The writer's name.
    pub name: String,
    /// Its command line.
    pub command: String,
}

/// The set-in-progress record (pool metadata key [`SET_RECORD_KEY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRecord {
    /// Always `umbra-set-in-progress`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The set being made.
    pub set_id: Uuid,
    /// The requester's process id.
    pub pid: u32,
    /// The requester's start time (`/proc/<pid>/stat` field 22, clock ticks since boot), so a
    /// reused pid is not taken for the requester.
    pub start_time: u64,
    /// The set's LUNs so far, in the order they were added.
    pub luns: Vec<String>,
    /// The exec writers of the requester's pool coordinator when the set started (registered
    /// and per-requester): they get abort if the requester dies.
    pub exec_writers: Vec<RecordedWriter>,
}

/// One exec writer's abort at a recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterAbort {
    /// The writer's name.
    pub writer: String,
    /// Its failure, if abort failed or timed out.
    pub failure: Option<WriterFailure>,
}

/// What [`PoolCoordinator::open`] did about a set a dead requester left in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRecovery {
    /// The record it found (and removed).
    pub record: SetRecord,
    /// Abort to each exec writer of the record, in its order.
    pub aborted: Vec<WriterAbort>,
    /// The set's LUNs, each checked not frozen (a freeze is held by the process that made it
    /// and ends with it).
    pub thawed: Vec<String>,
    /// The shadows of the set it deleted (through both providers).
    pub shadows_deleted: Vec<Uuid>,
}

/// Serialises the check-and-write of set-in-progress records across the pool coordinators of
/// this process.
static RECORD_LOCK: Mutex<()> = parking_lot::const_mutex(());

/// The sets this process's pool coordinators are making.
static LIVE_SETS: Mutex<BTreeSet<Uuid>> = parking_lot::const_mutex(BTreeSet::new());

/// What the coordinator's hook and the pool coordinator share.
struct PoolState {
    array: Array,
    providers: Vec<Arc<dyn Provider>>,
    timeouts: Timeouts,
    /// The exec writers of this coordinator (registered and per-requester).
    exec: Mutex<Vec<RecordedWriter>>,
    /// The names of the coordinator's writers that came from the pool's registry (at open, by
    /// `register_writer`, or found there at a later identify).
    registered: Mutex<BTreeSet<String>>,
}

impl PoolState {
    fn read_record(&self) -> Result<Option<SetRecord>> {
        read_record(&self.array)
    }

    fn write_record(&self, rec: &SetRecord) -> Result<()> {
        let json = serde_json::to_string(rec).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot write the set-in-progress record: {e}"),
            )
        })?;
        self.array.set_pool_metadata(SET_RECORD_KEY, Some(&json))?;
        Ok(())
    }

    /// Whether `rec`'s requester is alive: this process with the set still being made, or
    /// another process with the same pid and start time that is not a zombie.
    fn is_live(rec: &SetRecord) -> bool {
        if Self::is_own(rec) {
            return LIVE_SETS.lock().contains(&rec.set_id);
        }
        process_start(rec.pid).is_some_and(|t| t == rec.start_time)
    }

    /// Whether `rec` was written by this process (its pid and start time).
    fn is_own(rec: &SetRecord) -> bool {
        rec.pid == std::process::id() && process_start(rec.pid) == Some(rec.start_time)
    }

    /// Cleans up after the dead requester of `rec` (see [`SetRecovery`]).
    fn recover(&self, rec: SetRecord) -> Result<SetRecovery> {
        let deadline = Instant::now() + self.timeouts.event;
        let mut calls = Vec::new();
        for w in &rec.exec_writers {
            let writer: Arc<dyn Writer> = Arc::new(ExecWriter::new(&w.name, &w.command)?);
            let ctx = EventContext::new(deadline).with_set(rec.set_id, rec.luns.iter().cloned());
            calls.push((w.name.clone(), Call::start(writer, WriterEvent::Abort, ctx)));
        }
        let aborted = calls
            .into_iter()
            .map(|(writer, call)| WriterAbort {
                writer,
                failure: call.wait().into_parts().0.err(),
            })
            .collect();
        let mut thawed = Vec::new();
        for lun in &rec.luns {
            match self.array.is_lun_frozen(lun) {
                Ok(false) => thawed.push(lun.clone()),
                Ok(true) => {
                    return Err(Error::new(
                        ErrorKind::BadState,
                        format!(
                            "LUN {lun:?} of set {} is frozen by a live holder; the record stays",
                            rec.set_id
                        ),
                    ))
                }
                // A LUN deleted since holds nothing.
                Err(e) if e.kind() == vds_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut shadows_deleted = Vec::new();
        for p in &self.providers {
            for s in p.shadows()? {
                if s.set_id == rec.set_id {
                    shadows_deleted.push(s.shadow_id);
                }
            }
            p.abort(rec.set_id)?;
        }
        self.array.set_pool_metadata(SET_RECORD_KEY, None)?;
        Ok(SetRecovery {
            record: rec,
            aborted,
            thawed,
            shadows_deleted,
        })
    }
}

/// Reads the set-in-progress record of `array`'s pool, if any.
///
/// Errors: [`ErrorKind::Corrupt`] for a record that does not read.
pub fn read_record(array: &Array) -> Result<Option<SetRecord>> {
    let Some(json) = array.pool_metadata().remove(SET_RECORD_KEY) else {
        return Ok(None);
    };
    let rec: SetRecord = serde_json::from_str(&json).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "pool metadata {SET_RECORD_KEY:?} does not read as a set-in-progress record: {e}"
            ),
        )
    })?;
    if rec.format != RECORD_FORMAT || rec.version != 1 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "pool metadata {SET_RECORD_KEY:?} is of format {:?} version {} (expected \
                 {RECORD_FORMAT:?} version 1)",
                rec.format, rec.version
            ),
        ));
    }
    Ok(Some(rec))
}

/// The start time of process `pid` (`/proc/<pid>/stat` field 22), none if it is gone or a
/// zombie.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (the state), so field 22 is fields[19].
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl SetHook for PoolState {
    fn started(&self, set_id: Uuid) -> Result<()> {
        let _g = RECORD_LOCK.lock();
        if let Some(rec) = self.read_record()? {
            if Self::is_live(&rec) {
                return Err(Error::new(
                    ErrorKind::SnapshotSetInProgress,
                    format!(
                        "set {} of process {} is in progress on this pool; try again when it is \
                         done",
                        rec.set_id, rec.pid
                    ),
                ));
            }
            // A set of this process no longer live left its record (its removal failed): the
            // set's own end cleaned up, so it is overwritten. Another process's: cleaned up.
            if !Self::is_own(&rec) {
                self.recover(rec)?;
            }
        }
        let me = std::process::id();
        let rec = SetRecord {
            format: RECORD_FORMAT.to_owned(),
            version: 1,
            set_id,
            pid: me,
            start_time: process_start(me).unwrap_or(0),
            luns: Vec::new(),
            exec_writers: self.exec.lock().clone(),
        };
        self.write_record(&rec)?;
        LIVE_SETS.lock().insert(set_id);
        Ok(())
    }

    fn volumes(&self, set_id: Uuid, luns: &[String]) -> Result<()> {
        let _g = RECORD_LOCK.lock();
        match self.read_record()? {
            Some(mut rec) if rec.set_id == set_id => {
                rec.luns = luns.to_vec();
                self.write_record(&rec)
            }
            other => Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "the set-in-progress record of set {set_id} is gone (the pool holds {})",
                    other.map_or_else(|| "none".to_owned(), |r| format!("set {}", r.set_id))
                ),
            )),
        }
    }

    /// Writers registered in the pool since (by another pool coordinator of this process) join;
    /// writers unregistered since leave. A registry entry that does not read leaves the list as
    /// it is (opening the pool reports it).
    fn sync_writers(&self, writers: &mut Vec<Arc<dyn Writer>>) {
        let Ok(now) = registered_writers(&self.array) else {
            return;
        };
        let mut known = self.registered.lock();
        let mut exec = self.exec.lock();
        known.retain(|name| {
            if now.iter().any(|r| &r.name == name) {
                return true;
            }
            writers.retain(|w| w.name() != name);
            exec.retain(|e| &e.name != name);
            false
        });
        for r in now {
            if known.contains(&r.name) || writers.iter().any(|w| w.name() == r.name) {
                continue;
            }
            let Ok(w) = r.writer() else { continue };
            writers.push(w);
            if !r.session {
                exec.push(RecordedWriter {
                    name: r.name.clone(),
                    command: r.command.clone(),
                });
            }
            known.insert(r.name);
        }
    }

    fn ended(&self, set_id: Uuid) {
        let _g = RECORD_LOCK.lock();
        LIVE_SETS.lock().remove(&set_id);
        // A record that cannot be removed names a set no longer live in this process: the next
        // start_set or open takes it for a dead requester's and cleans up (finding nothing).
        if let Ok(Some(rec)) = self.read_record() {
            if rec.set_id == set_id {
                let _ = self.array.set_pool_metadata(SET_RECORD_KEY, None);
            }
        }
    }
}

/// A [`Coordinator`] over an embedded array's pool (see the module documentation). Derefs to
/// its [`Coordinator`] for sessions and the shadow registry.
pub struct PoolCoordinator {
    coordinator: Coordinator,
    state: Arc<PoolState>,
    hardware: Arc<HardwareProvider>,
    software: Arc<ArraySoftwareProvider>,
    recovered: Option<SetRecovery>,
}

impl std::fmt::Debug for PoolCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCoordinator")
            .field("coordinator", &self.coordinator)
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for PoolCoordinator {
    type Target = Coordinator;

    fn deref(&self) -> &Coordinator {
        &self.coordinator
    }
}

impl PoolCoordinator {
    /// A pool coordinator over `array` with the default [`PoolOptions`].
    ///
    /// Errors: as [`PoolCoordinator::open_with`].
    pub fn open(array: Array) -> Result<PoolCoordinator> {
        PoolCoordinator::open_with(array, PoolOptions::default())
    }

    /// A pool coordinator over `array`: both providers (the preferred first), the pool's
    /// registered writers, and — if the pool holds the set-in-progress record of a requester
    /// that is gone — that set cleaned up ([`PoolCoordinator::recovered`] says what was done).
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a shadow limit outside 1..=512;
    /// [`ErrorKind::Corrupt`] for a registered writer or a record that does not read; the
    /// array's errors while cleaning up (the record then stays for the next open).
    pub fn open_with(array: Array, options: PoolOptions) -> Result<PoolCoordinator> {
        let hardware = Arc::new(HardwareProvider::new(array.clone()));
        let software = Arc::new(
            ArraySoftwareProvider::new(array.clone())
                .with_max_shadows_per_volume(options.max_shadows_per_volume)?,
        );
        let (hw, sw): (Arc<dyn Provider>, Arc<dyn Provider>) = (hardware.clone(), software.clone());
        let providers = match options.provider {
            PoolProvider::Hardware => vec![hw, sw],
            PoolProvider::Software => vec![sw, hw],
        };
        let state = Arc::new(PoolState {
            array: array.clone(),
            providers: providers.clone(),
            timeouts: options.timeouts,
            exec: Mutex::new(Vec::new()),
            registered: Mutex::new(BTreeSet::new()),
        });
        let hook: Arc<dyn SetHook> = state.clone();
        let coordinator = Coordinator::assemble(providers, options.timeouts, Some(hook));
        for w in registered_writers(&array)? {
            coordinator.add_writer(w.writer()?)?;
            state.registered.lock().insert(w.name.clone());
            if !w.session {
                state.exec.lock().push(RecordedWriter {
                    name: w.name,
                    command: w.command,
                });
            }
        }
        let recovered = {
            let _g = RECORD_LOCK.lock();
            match state.read_record()? {
                Some(rec) if !PoolState::is_live(&rec) => Some(state.recover(rec)?),
                _ => None,
            }
        };
        Ok(PoolCoordinator {
            coordinator,
            state,
            hardware,
            software,
            recovered,
        })
    }

    /// What opening did about a set a dead requester left in progress, if there was one.
    pub fn recovered(&self) -> Option<&SetRecovery> {
        self.recovered.as_ref()
    }

    /// The coordinator (also reached through `Deref`).
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The array.
    pub fn array(&self) -> &Array {
        &self.state.array
    }

    /// The hardware provider.
    pub fn hardware(&self) -> &Arc<HardwareProvider> {
        &self.hardware
    }

    /// The software provider on the array's engine-level shadows.
    pub fn software(&self) -> &Arc<ArraySoftwareProvider> {
        &self.software
    }

    /// The set-in-progress record the pool holds now, if any.
    ///
    /// Errors: [`ErrorKind::Corrupt`] for a record that does not read.
    pub fn set_record(&self) -> Result<Option<SetRecord>> {
        self.state.read_record()
    }

    /// Registers `writer` in the pool, durably: it is part of every set made from now on
    /// through this and every other pool coordinator of the pool (one opened before reads the
    /// registry again at each identify, so its next session includes the writer; likewise an
    /// unregistered writer leaves it).
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a bad name or an empty command;
    /// [`ErrorKind::AlreadyExists`] for a name registered already or of a writer of this
    /// coordinator. None changes anything.
    pub fn register_writer(&self, writer: &RegisteredWriter) -> Result<()> {
        let w = writer.writer()?;
        if registered_writers(&self.state.array)?
            .iter()
            .any(|r| r.name == writer.name)
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a writer named {:?} is registered in the pool", writer.name),
            ));
        }
        self.coordinator.add_writer(w)?;
        let json = serde_json::to_string(&StoredWriter {
            command: writer.command.clone(),
            session: writer.session,
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot write a writer: {e}")))?;
        let key = format!("{WRITER_KEY_PREFIX}{}", writer.name);
        if let Err(e) = self.state.array.set_pool_metadata(&key, Some(&json)) {
            let _ = self.coordinator.remove_writer(&writer.name);
            return Err(e.into());
        }
        self.state.registered.lock().insert(writer.name.clone());
        if !writer.session {
            self.state.exec.lock().push(RecordedWriter {
                name: writer.name.clone(),
                command: writer.command.clone(),
            });
        }
        Ok(())
    }

    /// Removes registered writer `name` from the pool, durably, and from this coordinator.
    ///
    /// Errors: [`ErrorKind::NotFound`] for a name not registered in the pool.
    pub fn unregister_writer(&self, name: &str) -> Result<()> {
        let key = format!("{WRITER_KEY_PREFIX}{name}");
        if !self.state.array.pool_metadata().contains_key(&key) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no writer named {name:?} is registered in the pool"),
            ));
        }
        self.state.array.set_pool_metadata(&key, None)?;
        self.state.registered.lock().remove(name);
        let _ = self.coordinator.remove_writer(name);
        self.state.exec.lock().retain(|w| w.name != name);
        Ok(())
    }

    /// The writers registered in the pool, by name.
    ///
    /// Errors: [`ErrorKind::Corrupt`] for one that does not read.
    pub fn registered_writers(&self) -> Result<Vec<RegisteredWriter>> {
        registered_writers(&self.state.array)
    }

    /// Adds `writer` to the sets this coordinator makes from now on, for this requester only
    /// (not stored in the pool); an exec writer is named in each set's record, so it gets abort
    /// if this process dies mid-set.
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a bad name or an empty command;
    /// [`ErrorKind::AlreadyExists`] for a name of a writer of this coordinator.
    pub fn add_exec_writer(&self, writer: &RegisteredWriter) -> Result<()> {
        self.coordinator.add_writer(writer.writer()?)?;
        if !writer.session {
            self.state.exec.lock().push(RecordedWriter {
                name: writer.name.clone(),
                command: writer.command.clone(),
            });
        }
        Ok(())
    }

    /// Adds `writer`, which carries out `spec`'s events somewhere other than this process (the
    /// process of the requester's client: `umbra serve` runs a caller's writers in the caller),
    /// to the sets this coordinator makes from now on, for this requester only (not stored in
    /// the pool). As with [`PoolCoordinator::add_exec_writer`], an exec `spec` is named in each
    /// set's record: if this process dies mid-set, the next open sends the abort by its command.
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a `writer` not named `spec.name` or a bad
    /// `spec`; [`ErrorKind::AlreadyExists`] for a name of a writer of this coordinator.
    pub fn add_writer_for(&self, spec: &RegisteredWriter, writer: Arc<dyn Writer>) -> Result<()> {
        if writer.name() != spec.name {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "writer {:?} does not carry out writer {:?}'s events",
                    writer.name(),
                    spec.name
                ),
            ));
        }
        spec.writer()?;
        self.coordinator.add_writer(writer)?;
        if !spec.session {
            self.state.exec.lock().push(RecordedWriter {
                name: spec.name.clone(),
                command: spec.command.clone(),
            });
        }
        Ok(())
    }

    /// Reverts shadow `shadow_id`'s original to it through the provider that made it: the
    /// software provider's revert of a persistent shadow is fenced (host I/O to the LUN refused
    /// while it runs) and runs on a thread with progress and cancel.
    ///
    /// Errors: [`ErrorKind::NotFound`] for an unknown shadow; the provider's refusal
    /// ([`ErrorKind::UnsupportedContext`] for a non-persistent shadow, [`ErrorKind::Unsupported`]
    /// from the hardware provider, which resyncs instead).
    pub fn revert(&self, shadow_id: Uuid) -> Result<AsyncHandle<()>> {
        let props = self.coordinator.shadow(shadow_id)?;
        let p = self
            .state
            .providers
            .iter()
            .find(|p| p.id() == props.provider_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("shadow {shadow_id} was made by no provider of this pool"),
                )
            })?;
        p.revert(shadow_id)
    }
}

/// The writers registered in `array`'s pool, by name.
fn registered_writers(array: &Array) -> Result<Vec<RegisteredWriter>> {
    let mut out = Vec::new();
    for (key, value) in array.pool_metadata() {
        let Some(name) = key.strip_prefix(WRITER_KEY_PREFIX) else {
            continue;
        };
        let s: StoredWriter = serde_json::from_str(&value).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("pool metadata {key:?} does not read as a registered writer: {e}"),
            )
        })?;
        out.push(RegisteredWriter {
            name: name.to_owned(),
            command: s.command,
            session: s.session,
        });
    }
    Ok(out)
}
