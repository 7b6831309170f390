//! The coordinator: sessions in VSS's order, every wait bounded, writers called in parallel.
//!
//! A [`Coordinator`] holds the writers (`Arc<dyn Writer>`), the providers and the deadlines
//! ([`Timeouts`]); it makes sessions:
//!
//! - [`BackupSession`]: gather writer metadata, select components, start set, add volumes,
//!   prepare for backup, do snapshot set, properties, backup complete, backup shutdown (or
//!   abort). A state machine at run time: a call out of order is [`ErrorKind::BadState`] and
//!   changes nothing.
//! - [`RestoreSession`]: load a saved backup components document, identify, select components,
//!   pre-restore, restore (a revert of each selected component's volumes to its shadow, through
//!   the provider that made it), post-restore, with a restore status per component.
//! - [`Backup`] and [`Restore`]: typestate facades over [`BackupSession`] and
//!   [`RestoreSession`], so an out-of-order call does not compile.
//!
//! The coordinator is also the shadow registry: a view over its providers'
//! [`Provider::shadows`] (persistent shadows from the providers' own records, and the
//! non-persistent shadows of live sessions), with queries and deletion by id, set, volume,
//! oldest, or all ([`ShadowSelector`]).
//!
//! One set is made at a time: by a coordinator ([`ErrorKind::SnapshotSetInProgress`] for a
//! second `start_set` until the first set is made or aborted), and of a volume across every
//! coordinator of the process (the providers' [`Provider::volume_key`]). docs/protocol.md
//! states every step, the failure semantics and the defaults.

mod restore;
mod session;
mod typestate;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use uuid::Uuid;

pub use restore::{ComponentRestore, RestoreSession, RestoreStatus, RestoreStep};
pub use session::{BackupSession, BackupStep};
pub use typestate::{
    Backup, Completed, Ended, Gathered, Initial, Loaded, PreRestored, Prepared, Restore,
    RestoreStage, Restored, Snapshotted, Stage, Started, Step,
};

use crate::document::{Component, WriterMetadata};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::shadow::{Context, ProviderType, ShadowProperties};
use crate::writer::{
    Call, EventContext, FailureKind, Lane, LateCall, Straggler, Writer, WriterEvent, WriterFailure,
    WriterState,
};

/// The deadlines a coordinator enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first freeze to the last thaw (VSS's writer timeout): writers' freeze and thaw
    /// must both answer within it. Default 60 s.
    pub freeze_window: Duration,
    /// The providers' flush-and-hold of writes around their commit. Default 10 s.
    pub hold_window: Duration,
    /// Every other event (identify, prepare-backup, prepare-snapshot, post-snapshot, abort,
    /// backup-complete, backup-shutdown, pre-restore, post-restore) and the providers'
    /// end-prepare. Default 60 s.
    pub event: Duration,
}

impl Default for Timeouts {
    /// VSS's: 60 s freeze window, 10 s hold window, 60 s for every other event.
    fn default() -> Self {
        Timeouts {
            freeze_window: Duration::from_secs(60),
            hold_window: Duration::from_secs(10),
            event: Duration::from_secs(60),
        }
    }
}

/// What to delete or list from the shadow registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowSelector {
    /// The shadow with this id.
    Id(Uuid),
    /// Every shadow of this set.
    Set(Uuid),
    /// Every shadow of this original volume.
    Volume(String),
    /// The oldest shadow of this original volume.
    Oldest(String),
    /// Every shadow.
    All,
}

impl std::fmt::Display for ShadowSelector {
    /// In words: `shadow ID`, `set ID`, `volume "LUN"`, `the oldest shadow of volume "LUN"`,
    /// `every shadow`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShadowSelector::Id(id) => write!(f, "shadow {id}"),
            ShadowSelector::Set(id) => write!(f, "set {id}"),
            ShadowSelector::Volume(v) => write!(f, "volume {v:?}"),
            ShadowSelector::Oldest(v) => write!(f, "the oldest shadow of volume {v:?}"),
            ShadowSelector::All => f.write_str("every shadow"),
        }
    }
}

/// A writer's status in a session (VSS `GatherWriterStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStatus {
    /// The writer's name.
    pub writer: String,
    /// Its state, with VSS's values (a failed state names the step that failed).
    pub state: WriterState,
    /// The failure that put it in a failed state (its kind: retryable, timeout, ...), or why
    /// it was left out of the session.
    pub failure: Option<WriterFailure>,
    /// False for a writer that did not answer a call by its deadline and has not answered
    /// since (VSS's `WRITER_NOT_RESPONDING`): it gets no further events and is left out of new
    /// sets until the call returns.
    pub responding: bool,
    /// True for a writer taking part in the set: it answered identify and (after
    /// prepare-backup) has a component selected.
    pub taking_part: bool,
}

/// What a coordinator tells about its sets as they start, grow and end (the pool coordinator
/// keeps its set-in-progress record with it). `started` and `volumes` run before the step takes
/// effect: an error refuses the step and changes nothing.
pub(crate) trait SetHook: Send + Sync {
    /// Set `set_id` is starting.
    fn started(&self, set_id: Uuid) -> Result<()>;
    /// Set `set_id` now holds `luns`.
    fn volumes(&self, set_id: Uuid, luns: &[String]) -> Result<()>;
    /// Set `set_id` is over: made, or aborted and cleaned up.
    fn ended(&self, set_id: Uuid);
    /// A session is about to identify `writers` (the coordinator's, in order): bring the list
    /// up to date with writers registered or unregistered elsewhere since (the pool's registry).
    fn sync_writers(&self, writers: &mut Vec<Arc<dyn Writer>>) {
        let _ = writers;
    }
}

/// The volume keys of sets being made, across every coordinator of the process.
static VOLUMES_IN_FLIGHT: Mutex<BTreeSet<String>> = parking_lot::const_mutex(BTreeSet::new());

pub(crate) struct Inner {
    /// Hardware providers first, then software, then the rest, each group in the order given.
    providers: Vec<Arc<dyn Provider>>,
    writers: Mutex<Vec<Arc<dyn Writer>>>,
    timeouts: Timeouts,
    /// Told when a set starts, grows and ends.
    pub(crate) hook: Option<Arc<dyn SetHook>>,
    /// The set this coordinator is making, if any.
    flight: Mutex<Option<Uuid>>,
    /// Writers with calls that timed out and have not returned: name -> (event, how many).
    hung: Mutex<HashMap<String, (WriterEvent, usize)>>,
    /// Signalled when a hung writer's call returns.
    answered: Condvar,
    /// The threads of hung calls (by writer), joined once their writer has no call hung any
    /// more: by [`Coordinator::wait_until_responding`] and when the coordinator goes.
    stragglers: Mutex<Vec<(String, Straggler)>>,
}

impl Inner {
    /// Joins the threads of hung calls that have all returned (their writer is hung no more:
    /// each thread only ends now); the rest stay.
    fn join_stragglers(&self) {
        let done: Vec<Straggler> = {
            let hung = self.hung.lock();
            let mut all = self.stragglers.lock();
            let (done, left): (Vec<_>, Vec<_>) = all
                .drain(..)
                .partition(|(name, _)| !hung.contains_key(name));
            *all = left;
            done.into_iter().map(|(_, s)| s).collect()
        };
        for s in done {
            s.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.join_stragglers();
    }
}

impl Inner {
    fn mark_hung(&self, name: &str, event: WriterEvent) {
        let mut hung = self.hung.lock();
        let e = hung.entry(name.to_owned()).or_insert((event, 0));
        e.0 = event;
        e.1 += 1;
    }

    fn unmark_hung(&self, name: &str) {
        let mut hung = self.hung.lock();
        if let Some(e) = hung.get_mut(name) {
            e.1 -= 1;
            if e.1 == 0 {
                hung.remove(name);
            }
        }
        self.answered.notify_all();
    }

    fn hung_at(&self, name: &str) -> Option<WriterEvent> {
        self.hung.lock().get(name).map(|e| e.0)
    }

    fn provider_index(&self, id: Uuid) -> Option<usize> {
        self.providers.iter().position(|p| p.id() == id)
    }
}

/// Sequences writers and providers (see the module documentation).
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field(
                "providers",
                &self
                    .inner
                    .providers
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("writers", &self.writer_names())
            .field("timeouts", &self.inner.timeouts)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator over `providers` with no writers and the default [`Timeouts`]. A volume's
    /// provider is the first that supports it, hardware providers before software ones.
    pub fn new(providers: impl IntoIterator<Item = Arc<dyn Provider>>) -> Self {
        Coordinator::with_timeouts(providers, Timeouts::default())
    }

    /// A coordinator over `providers` with these deadlines.
    pub fn with_timeouts(
        providers: impl IntoIterator<Item = Arc<dyn Provider>>,
        timeouts: Timeouts,
    ) -> Self {
        let mut providers: Vec<Arc<dyn Provider>> = providers.into_iter().collect();
        let rank = |t: ProviderType| match t {
            ProviderType::Hardware => 0,
            ProviderType::Software => 1,
            _ => 2,
        };
        providers.sort_by_key(|p| rank(p.provider_type()));
        Coordinator::assemble(providers, timeouts, None)
    }

    /// A coordinator over `providers` in the order given (a volume's provider is the first that
    /// supports it), telling `hook` about its sets.
    pub(crate) fn assemble(
        providers: Vec<Arc<dyn Provider>>,
        timeouts: Timeouts,
        hook: Option<Arc<dyn SetHook>>,
    ) -> Self {
        Coordinator {
            inner: Arc::new(Inner {
                providers,
                writers: Mutex::new(Vec::new()),
                timeouts,
                hook,
                flight: Mutex::new(None),
                hung: Mutex::new(HashMap::new()),
                answered: Condvar::new(),
                stragglers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The deadlines.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// The providers, in the order a volume's provider is chosen.
    pub fn providers(&self) -> Vec<Arc<dyn Provider>> {
        self.inner.providers.clone()
    }

    /// Adds a writer to every session started from now on.
    ///
    /// Errors: [`ErrorKind::AlreadyExists`] if a writer of that name is registered.
    pub fn add_writer(&self, writer: Arc<dyn Writer>) -> Result<()> {
        let mut ws = self.inner.writers.lock();
        if ws.iter().any(|w| w.name() == writer.name()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a writer named {:?} is already registered", writer.name()),
            ));
        }
        ws.push(writer);
        Ok(())
    }

    /// Removes writer `name` from the sessions started from now on.
    ///
    /// Errors: [`ErrorKind::NotFound`] for an unknown name.
    pub fn remove_writer(&self, name: &str) -> Result<()> {
        let mut ws = self.inner.writers.lock();
        let before = ws.len();
        ws.retain(|w| w.name() != name);
        if ws.len() == before {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no writer named {name:?} is registered"),
            ));
        }
        Ok(())
    }

    /// The registered writers' names, in the order they were added.
    pub fn writer_names(&self) -> Vec<String> {
        self.inner
            .writers
            .lock()
            .iter()
            .map(|w| w.name().to_owned())
            .collect()
    }

    /// The writers that did not answer a call by its deadline and have not answered since,
    /// with the event they hang in: they are left out of new sets until the call returns.
    pub fn not_responding(&self) -> Vec<(String, WriterEvent)> {
        let mut v: Vec<_> = self
            .inner
            .hung
            .lock()
            .iter()
            .map(|(n, (e, _))| (n.clone(), *e))
            .collect();
        v.sort();
        v
    }

    /// Waits, at most `timeout`, until writer `name` has no call left running past its
    /// deadline (its late calls returned, and were answered with abort where their set was
    /// aborted); true if it has none by then.
    pub fn wait_until_responding(&self, name: &str, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut hung = self.inner.hung.lock();
        while hung.contains_key(name) {
            if self.inner.answered.wait_until(&mut hung, until).timed_out() {
                break;
            }
        }
        let responding = !hung.contains_key(name);
        drop(hung);
        if responding {
            self.inner.join_stragglers();
        }
        responding
    }

    /// The set this coordinator is making, if any (from `start_set` until
    /// `do_snapshot_set` returns or the set is aborted).
    pub fn set_in_progress(&self) -> Option<Uuid> {
        *self.inner.flight.lock()
    }

    /// A new backup session in `context` (its attributes OR in: `Context::BACKUP |
    /// Attributes::TRANSPORTABLE`) of `backup_type`. A context with
    /// [`Attributes::NO_WRITERS`](crate::Attributes::NO_WRITERS) involves no writer.
    pub fn backup(&self, context: Context, backup_type: crate::BackupType) -> BackupSession {
        BackupSession::new(self.inner.clone(), context, backup_type)
    }

    /// The typestate facade of [`Coordinator::backup`].
    pub fn begin_backup(
        &self,
        context: Context,
        backup_type: crate::BackupType,
    ) -> Backup<Initial> {
        Backup::new(self.backup(context, backup_type))
    }

    /// A restore session of the backup `saved` describes (its backup components document, as
    /// [`BackupSession::backup_components`] gave it).
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a document without a snapshot set.
    pub fn restore(&self, saved: crate::BackupComponents) -> Result<RestoreSession> {
        RestoreSession::new(self.inner.clone(), saved)
    }

    /// The typestate facade of [`Coordinator::restore`].
    ///
    /// Errors: as [`Coordinator::restore`].
    pub fn begin_restore(&self, saved: crate::BackupComponents) -> Result<Restore<Loaded>> {
        Ok(Restore::new(self.restore(saved)?))
    }

    /// Every shadow of every provider (persistent ones from the providers' records, and the
    /// non-persistent ones of live sessions), oldest first.
    pub fn shadows(&self) -> Result<Vec<ShadowProperties>> {
        Ok(self.owned_shadows()?.into_iter().map(|(_, p)| p).collect())
    }

    /// The shadows `which` names, oldest first. A selector that matches nothing (an unknown
    /// id, set or volume, or one with no shadow left: the registry cannot tell them apart) is
    /// an empty list, never an error; [`Coordinator::shadow`] and
    /// [`Coordinator::delete_shadows`] are `NotFound` for it.
    pub fn query_shadows(&self, which: &ShadowSelector) -> Result<Vec<ShadowProperties>> {
        Ok(select(self.owned_shadows()?, which)
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// The shadow with id `id`.
    ///
    /// Errors: [`ErrorKind::NotFound`].
    pub fn shadow(&self, id: Uuid) -> Result<ShadowProperties> {
        self.query_shadows(&ShadowSelector::Id(id))?
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no shadow {id}")))
    }

    /// Deletes the shadows `which` names through the providers that made them; returns how
    /// many were deleted.
    ///
    /// Errors: [`ErrorKind::NotFound`] if `which` is an id, set or volume with no shadow; a
    /// provider's error stops the deletion (those deleted before stay deleted).
    pub fn delete_shadows(&self, which: &ShadowSelector) -> Result<usize> {
        let found = select(self.owned_shadows()?, which);
        if found.is_empty() && *which != ShadowSelector::All {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no shadow matches {which}"),
            ));
        }
        for (i, p) in &found {
            self.inner.providers[*i].delete(p.shadow_id)?;
        }
        Ok(found.len())
    }

    fn owned_shadows(&self) -> Result<Vec<(usize, ShadowProperties)>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, p) in self.inner.providers.iter().enumerate() {
            for s in p.shadows()? {
                if seen.insert(s.shadow_id) {
                    out.push((i, s));
                }
            }
        }
        out.sort_by_key(|(_, s)| s.created);
        Ok(out)
    }
}

fn select(
    all: Vec<(usize, ShadowProperties)>,
    which: &ShadowSelector,
) -> Vec<(usize, ShadowProperties)> {
    let mut out: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| match which {
            ShadowSelector::Id(id) => s.shadow_id == *id,
            ShadowSelector::Set(id) => s.set_id == *id,
            ShadowSelector::Volume(v) | ShadowSelector::Oldest(v) => s.original.name == *v,
            ShadowSelector::All => true,
        })
        .collect();
    if matches!(which, ShadowSelector::Oldest(_)) {
        out.truncate(1);
    }
    out
}

/// One writer in a session.
pub(crate) struct Participant {
    pub(crate) writer: Arc<dyn Writer>,
    pub(crate) name: String,
    pub(crate) metadata: Option<WriterMetadata>,
    pub(crate) state: WriterState,
    pub(crate) failure: Option<WriterFailure>,
    pub(crate) responding: bool,
    /// Answered identify: gets the session's events.
    pub(crate) in_session: bool,
    /// Gets the set's events after prepare-backup (has a component selected).
    pub(crate) taking_part: bool,
    /// The full paths of its selected components, in selection order.
    pub(crate) selected: Vec<String>,
    /// The thread its calls of this session run on (a fresh one after a call hung).
    pub(crate) lane: Lane,
    /// Left out of the set by the requester after identify (DiskShadow `writer exclude`): it
    /// gets no further event.
    pub(crate) excluded: bool,
}

impl Participant {
    pub(crate) fn status(&self) -> WriterStatus {
        WriterStatus {
            writer: self.name.clone(),
            state: self.state,
            failure: self.failure.clone(),
            responding: self.responding,
            taking_part: self.in_session && self.taking_part,
        }
    }

    /// The components selecting `self.selected` brings (each selected path's subtree).
    pub(crate) fn selected_components(&self) -> Vec<&Component> {
        let Some(m) = &self.metadata else {
            return Vec::new();
        };
        let mut out: Vec<&Component> = Vec::new();
        for path in &self.selected {
            for c in m.subtree(path) {
                if !out.iter().any(|o| o.full_path() == c.full_path()) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// What a set's late returns need to know: whether the set was aborted, and which writers still
/// hang in it.
#[derive(Default)]
pub(crate) struct Fate {
    pub(crate) aborted: bool,
    pub(crate) hung: std::collections::HashSet<String>,
}

/// The writers of a session and how to call them.
pub(crate) struct Crowd {
    pub(crate) inner: Arc<Inner>,
    pub(crate) parts: Vec<Participant>,
    pub(crate) fate: Arc<Mutex<Fate>>,
    pub(crate) context: Context,
    pub(crate) backup_type: crate::BackupType,
    pub(crate) set_id: Option<Uuid>,
    pub(crate) luns: Vec<String>,
}

impl Crowd {
    pub(crate) fn new(
        inner: Arc<Inner>,
        context: Context,
        backup_type: crate::BackupType,
    ) -> Crowd {
        Crowd {
            inner,
            parts: Vec::new(),
            fate: Arc::new(Mutex::new(Fate::default())),
            context,
            backup_type,
            set_id: None,
            luns: Vec::new(),
        }
    }

    /// The context of an event to writer `i` by `deadline`.
    pub(crate) fn ctx(&self, i: usize, deadline: Instant) -> EventContext {
        let mut ctx = EventContext::new(deadline).with_backup(self.context, self.backup_type);
        if let Some(id) = self.set_id {
            ctx = ctx.with_set(id, self.luns.iter().cloned());
        }
        ctx.with_components(self.parts[i].selected.iter().cloned())
    }

    /// Identify: every registered writer (none in a context without writers) is asked for its
    /// metadata; one that fails, hangs or is still hung from an earlier set is left out.
    pub(crate) fn gather(&mut self) -> Vec<WriterMetadata> {
        let writers: Vec<Arc<dyn Writer>> = if self.context.has_writers() {
            let mut ws = self.inner.writers.lock();
            if let Some(hook) = &self.inner.hook {
                hook.sync_writers(&mut ws);
            }
            ws.clone()
        } else {
            Vec::new()
        };
        let deadline = Instant::now() + self.inner.timeouts.event;
        let mut calls = Vec::new();
        for w in writers {
            let name = w.name().to_owned();
            let i = self.parts.len();
            let hung = self.inner.hung_at(&name);
            self.parts.push(Participant {
                writer: w.clone(),
                name: name.clone(),
                metadata: None,
                state: WriterState::Unknown,
                failure: hung.map(|e| {
                    WriterFailure::new(
                        FailureKind::Timeout,
                        format!(
                            "writer {name:?} has not answered its {e} call of an earlier set \
                             yet: left out until it does"
                        ),
                    )
                }),
                responding: hung.is_none(),
                in_session: false,
                taking_part: false,
                selected: Vec::new(),
                lane: Lane::default(),
                excluded: false,
            });
            if hung.is_none() {
                let ctx = self.ctx(i, deadline);
                calls.push((i, Call::identify_on(&mut self.parts[i].lane, w, ctx)));
            }
        }
        let mut docs = Vec::new();
        for (i, call) in calls {
            let (r, late) = call.wait().into_parts();
            if let Some(late) = late {
                self.hang(i, WriterEvent::Identify, late);
            }
            let p = &mut self.parts[i];
            match r {
                Ok(doc) if doc.writer == p.name => {
                    p.state = WriterState::Stable;
                    p.in_session = true;
                    docs.push(doc.clone());
                    p.metadata = Some(doc);
                }
                Ok(doc) => {
                    p.state = WriterState::FailedAtIdentify;
                    p.failure = Some(WriterFailure::non_retryable(format!(
                        "writer {:?} answered identify with the metadata of writer {:?}",
                        p.name, doc.writer
                    )));
                }
                Err(f) => {
                    p.state = WriterState::FailedAtIdentify;
                    p.failure = Some(f);
                }
            }
        }
        docs
    }

    /// A call of writer `i` timed out: it is not responding (in this session, and left out of
    /// new sets) until the call returns; if the set was aborted by then, it is told abort.
    pub(crate) fn hang<T: Send + 'static>(
        &mut self,
        i: usize,
        event: WriterEvent,
        late: LateCall<T>,
    ) {
        let p = &mut self.parts[i];
        p.responding = false;
        // Its thread is stuck in the call: whatever comes next runs elsewhere.
        let straggler = p.lane.abandon();
        let name = p.name.clone();
        self.inner.mark_hung(&name, event);
        // Kept after it is marked hung: joined only once its call has returned.
        if let Some(s) = straggler {
            self.inner.stragglers.lock().push((name.clone(), s));
        }
        self.fate.lock().hung.insert(name.clone());
        let fate = self.fate.clone();
        let inner = self.inner.clone();
        let writer = p.writer.clone();
        let ctx = self.ctx(i, Instant::now());
        late.on_return(move |_| {
            let aborted = {
                let mut f = fate.lock();
                f.hung.remove(&name);
                f.aborted
            };
            if aborted {
                let ctx = ctx.with_deadline(Instant::now() + inner.timeouts.event);
                let _ = Call::start(writer, WriterEvent::Abort, ctx).wait();
            }
            inner.unmark_hung(&name);
        });
    }

    /// Sends `event` to the writers `who` in parallel, all by `deadline`, and records each one's
    /// state: the state after the event, or the failed state of the event (a failure is kept:
    /// a writer that failed stays failed for the session). Returns the failures.
    pub(crate) fn fan_out(
        &mut self,
        event: WriterEvent,
        deadline: Instant,
        who: &[usize],
    ) -> Vec<(usize, WriterFailure)> {
        let calls: Vec<(usize, Call)> = who
            .iter()
            .map(|&i| {
                let ctx = self.ctx(i, deadline);
                let p = &mut self.parts[i];
                (i, Call::start_on(&mut p.lane, p.writer.clone(), event, ctx))
            })
            .collect();
        let mut failed = Vec::new();
        for (i, call) in calls {
            let (r, late) = call.wait().into_parts();
            if let Some(late) = late {
                self.hang(i, event, late);
            }
            let p = &mut self.parts[i];
            match r {
                Ok(()) => {
                    if p.failure.is_none() {
                        p.state = event.state_after();
                    }
                }
                Err(f) => {
                    if p.failure.is_none() {
                        if let Some(s) = event.failed_state() {
                            p.state = s;
                            p.failure = Some(f.clone());
                        }
                    }
                    failed.push((i, f));
                }
            }
        }
        failed
    }

    /// The writers that answered identify and answer still, taking part (`narrowed`) or not.
    pub(crate) fn live(&self, narrowed: bool) -> Vec<usize> {
        let hung = self.fate.lock().hung.clone();
        (0..self.parts.len())
            .filter(|&i| {
                let p = &self.parts[i];
                p.in_session
                    && !p.excluded
                    && p.responding
                    && !hung.contains(&p.name)
                    && (!narrowed || p.taking_part)
            })
            .collect()
    }

    /// The writers that get abort: every writer in the session (taking part, once `narrowed`)
    /// but those whose call still runs past its deadline (they get abort when it returns). A
    /// writer whose late call already returned gets it now, though it is not responding.
    pub(crate) fn abort_targets(&self, narrowed: bool) -> Vec<usize> {
        let hung = self.fate.lock().hung.clone();
        (0..self.parts.len())
            .filter(|&i| {
                let p = &self.parts[i];
                p.in_session
                    && !p.excluded
                    && !hung.contains(&p.name)
                    && (!narrowed || p.taking_part)
            })
            .collect()
    }

    /// [`Crowd::live`] less the writers that failed in this session.
    pub(crate) fn healthy(&self, narrowed: bool) -> Vec<usize> {
        self.live(narrowed)
            .into_iter()
            .filter(|&i| self.parts[i].failure.is_none())
            .collect()
    }

    /// The error naming the writers that failed `event`.
    pub(crate) fn failure_error(
        &self,
        event: WriterEvent,
        failed: &[(usize, WriterFailure)],
    ) -> Error {
        let all_timeouts = failed.iter().all(|(_, f)| f.kind() == FailureKind::Timeout);
        let kind = if all_timeouts {
            ErrorKind::WriterNotResponding
        } else {
            ErrorKind::UnexpectedWriterError
        };
        let list: Vec<String> = failed
            .iter()
            .map(|(i, f)| {
                let state = event
                    .failed_state()
                    .map_or_else(|| event.to_string(), |s| s.to_string());
                format!(
                    "writer {:?} {state} ({}): {}",
                    self.parts[*i].name,
                    f.kind(),
                    f.message()
                )
            })
            .collect();
        let set = self
            .set_id
            .map_or_else(String::new, |id| format!(" of set {id}"));
        Error::new(kind, format!("{event}{set} failed: {}", list.join("; ")))
    }

    /// Ends the writers' sessions (not those whose call still runs).
    pub(crate) fn end_sessions(&self) {
        let hung = self.fate.lock().hung.clone();
        for p in &self.parts {
            if !hung.contains(&p.name) {
                p.writer.end_session();
            }
        }
    }

    pub(crate) fn statuses(&self) -> Vec<WriterStatus> {
        self.parts.iter().map(Participant::status).collect()
    }

    pub(crate) fn find(&self, writer: &str) -> Result<usize> {
        let i = self
            .parts
            .iter()
            .position(|p| p.name == writer)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no writer {writer:?} in this session"),
                )
            })?;
        if self.parts[i].excluded {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("writer {writer:?} is excluded from this session"),
            ));
        }
        if !self.parts[i].in_session {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "writer {writer:?} is not taking part in this session: {}",
                    self.parts[i]
                        .failure
                        .as_ref()
                        .map_or("it did not answer identify".to_owned(), |f| f.to_string())
                ),
            ));
        }
        Ok(i)
    }
}

/// A provider's error at `step`: a veto (and the kinds a provider is expected to report: flush
/// and hold timeouts, no room, too many shadows, an unsupported volume, a volume in a state it
/// cannot be shadowed in, such as a volatile LUN in a persistent context) keeps its kind; anything
/// else is an unexpected provider error, its text kept.
pub(crate) fn provider_error(provider: &dyn Provider, step: &str, e: Error) -> Error {
    match e.kind() {
        ErrorKind::ProviderVeto
        | ErrorKind::BadState
        | ErrorKind::FlushWritesTimeout
        | ErrorKind::HoldWritesTimeout
        | ErrorKind::NoSpace
        | ErrorKind::MaxSnapshotsReached
        | ErrorKind::VolumeNotSupported
        | ErrorKind::RevertInProgress
        | ErrorKind::UnsupportedContext
        | ErrorKind::UnexpectedProviderError => Error::new(
            e.kind(),
            format!("provider {:?} at {step}: {}", provider.name(), e.message()),
        ),
        _ => Error::new(
            ErrorKind::UnexpectedProviderError,
            format!(
                "provider {:?} failed at {step}: {}",
                provider.name(),
                e.report()
            ),
        ),
    }
}

/// Claims on the volume keys of a set being made, released when dropped.
#[derive(Default)]
pub(crate) struct VolumeClaims(Vec<String>);

impl VolumeClaims {
    pub(crate) fn claim(&mut self, key: String, volume: &str) -> Result<()> {
        let mut all = VOLUMES_IN_FLIGHT.lock();
        if !all.insert(key.clone()) {
            return Err(Error::new(
                ErrorKind::SnapshotSetInProgress,
                format!(
                    "volume {volume:?} is in a set another requester is making; try again when \
                     it is done"
                ),
            ));
        }
        self.0.push(key);
        Ok(())
    }

    /// Gives back the claim on `key` alone.
    pub(crate) fn unclaim(&mut self, key: &str) {
        if let Some(i) = self.0.iter().position(|k| k == key) {
            VOLUMES_IN_FLIGHT.lock().remove(&self.0.remove(i));
        }
    }

    pub(crate) fn release(&mut self) {
        let mut all = VOLUMES_IN_FLIGHT.lock();
        for k in self.0.drain(..) {
            all.remove(&k);
        }
    }
}

impl Drop for VolumeClaims {
    fn drop(&mut self) {
        self.release();
    }
}

/// This coordinator's claim of its one set in flight, released when dropped.
pub(crate) struct FlightClaim {
    inner: Arc<Inner>,
    set_id: Uuid,
}

impl FlightClaim {
    pub(crate) fn claim(inner: &Arc<Inner>, set_id: Uuid) -> Result<FlightClaim> {
        let mut flight = inner.flight.lock();
        if let Some(other) = *flight {
            return Err(Error::new(
                ErrorKind::SnapshotSetInProgress,
                format!("set {other} is being made; try again when it is done"),
            ));
        }
        if let Some(hook) = &inner.hook {
            hook.started(set_id)?;
        }
        *flight = Some(set_id);
        Ok(FlightClaim {
            inner: inner.clone(),
            set_id,
        })
    }
}

impl Drop for FlightClaim {
    fn drop(&mut self) {
        let mut flight = self.inner.flight.lock();
        if *flight == Some(self.set_id) {
            *flight = None;
            if let Some(hook) = &self.inner.hook {
                hook.ended(self.set_id);
            }
        }
    }
}
