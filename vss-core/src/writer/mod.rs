//! Writers: the applications that bring their data to a consistent state around a shadow copy.
//!
//! - [`Writer`]: the trait, one method per [`WriterEvent`], each given an [`EventContext`] (the set,
//!   its LUNs, the event's deadline, the components selected) and answering `Ok(())` or a
//!   [`WriterFailure`] of a [`FailureKind`].
//! - [`WriterState`]: VSS's writer states, and the state machine's steps
//!   ([`WriterEvent::state_after`], [`WriterEvent::failed_state`]).
//! - [`Call`]: runs one event of one writer on a thread of its own with the event's deadline; a
//!   panic is a failed writer and a hang past the deadline a [`FailureKind::Timeout`], never a
//!   crashed or stuck requester.
//! - [`ExecWriter`] and [`SessionWriter`]: writers defined by a command line (docs/protocol.md
//!   states their contract).

/// Implements every event but identify (and `end_session`) of a `Writer` as
/// `self.$run(event, ctx)`, dropping what it returns on success: the writers defined by a
/// command line handle all events in one place.
macro_rules! forward_events {
    ($run:ident) => {
        forward_events!(@each $run,
            prepare_backup => PrepareBackup,
            prepare_snapshot => PrepareSnapshot,
            freeze => Freeze,
            thaw => Thaw,
            post_snapshot => PostSnapshot,
            abort => Abort,
            backup_complete => BackupComplete,
            backup_shutdown => BackupShutdown,
            pre_restore => PreRestore,
            post_restore => PostRestore,
        );
    };
    (@each $run:ident, $($method:ident => $event:ident,)+) => {
        $(
            fn $method(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
                self.$run(WriterEvent::$event, ctx).map(drop)
            }
        )+
    };
}

mod call;
mod event;
mod exec;
mod process;
mod session;

use std::time::Instant;

use uuid::Uuid;

pub use call::{Call, CallOutcome, LateCall, LateReturn};
pub(crate) use call::{Lane, Straggler};
pub use event::{FailureKind, WriterEvent, WriterFailure, WriterState};
pub use exec::{ExecWriter, EXIT_RETRYABLE};
pub use session::{SessionWriter, DEFAULT_END_GRACE};

use crate::document::WriterMetadata;
use crate::shadow::{BackupType, Context};

/// What a writer is told with an event.
///
/// At identify, which may run on its own, the set id is `None` and the LUN list empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    deadline: Instant,
    set_id: Option<Uuid>,
    luns: Vec<String>,
    context: Context,
    backup_type: BackupType,
    components: Vec<String>,
}

impl EventContext {
    /// A context with no set, no LUNs, no component selected, [`Context::BACKUP`] and
    /// [`BackupType::Full`], whose event must be answered by `deadline`.
    pub fn new(deadline: Instant) -> Self {
        EventContext {
            deadline,
            set_id: None,
            luns: Vec::new(),
            context: Context::BACKUP,
            backup_type: BackupType::Full,
            components: Vec::new(),
        }
    }

    /// The same context for the set `set_id` of these LUNs (names, in the set's order).
    pub fn with_set(
        mut self,
        set_id: Uuid,
        luns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.set_id = Some(set_id);
        self.luns = luns.into_iter().map(Into::into).collect();
        self
    }

    /// The same context with the shadow context and backup type of the session.
    pub fn with_backup(mut self, context: Context, backup_type: BackupType) -> Self {
        self.context = context;
        self.backup_type = backup_type;
        self
    }

    /// The same context with these of the writer's components selected (full logical paths, see
    /// [`Component::full_path`](crate::document::Component::full_path)).
    pub fn with_components(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.components = paths.into_iter().map(Into::into).collect();
        self
    }

    /// The same context with another deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = deadline;
        self
    }

    /// When the event's window ends: an answer after it is a [`FailureKind::Timeout`]. A writer
    /// that freezes should thaw by itself if no thaw comes by the freeze window's end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The set's id; `None` at an identify outside a set.
    pub fn set_id(&self) -> Option<Uuid> {
        self.set_id
    }

    /// The names of the set's LUNs; empty at an identify outside a set.
    pub fn luns(&self) -> &[String] {
        &self.luns
    }

    /// The shadow context of the session (persistence, auto-release, transport).
    pub fn context(&self) -> Context {
        self.context
    }

    /// The session's backup type ([`BackupType::Copy`]: leave log chains untouched).
    pub fn backup_type(&self) -> BackupType {
        self.backup_type
    }

    /// The full logical paths of this writer's selected components.
    pub fn components(&self) -> &[String] {
        &self.components
    }
}

/// An application taking part in shadow copies (VSS `CVssWriter`).
///
/// Every event gets the [`EventContext`] of the call and must answer by its deadline; the
/// coordinator calls writers in parallel, each on a thread of its own ([`Call`]; one thread per
/// writer for a whole session), so a writer may
/// block (a freeze waiting for in-flight transactions), but an answer after the deadline is a
/// timeout and a panic a failed writer. Events come in the order docs/protocol.md describes;
/// identify may come at any time, so a writer keeps no state in it. Abort may come more than
/// once and after any event: it must undo whatever a freeze did (thaw-style cleanup) and succeed
/// when there is nothing to undo.
///
/// The events a writer does not care about succeed by default; identify, freeze, thaw and abort
/// are what every writer must say something about.
pub trait Writer: Send + Sync {
    /// The writer's name, unique among the writers of a set.
    fn name(&self) -> &str;

    /// Describes the writer's components and the LUNs they live on (VSS `OnIdentify`).
    fn identify(&self, ctx: &EventContext) -> Result<WriterMetadata, WriterFailure>;

    /// A backup of the selected components begins (VSS `OnPrepareBackup`).
    fn prepare_backup(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The set is about to be made: do the slow part of getting ready (VSS `OnPrepareSnapshot`).
    fn prepare_snapshot(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// Bring the data to a consistent state on disk and hold writes until thaw (VSS `OnFreeze`).
    fn freeze(&self, ctx: &EventContext) -> Result<(), WriterFailure>;

    /// The shadows are made: resume writes (VSS `OnThaw`).
    fn thaw(&self, ctx: &EventContext) -> Result<(), WriterFailure>;

    /// The shadows exist and may be adjusted (VSS `OnPostSnapshot`).
    fn post_snapshot(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The set is abandoned: undo anything a freeze did (VSS `OnAbort`).
    fn abort(&self, ctx: &EventContext) -> Result<(), WriterFailure>;

    /// The requester has backed the components up; a full backup may truncate logs
    /// (VSS `OnBackupComplete`).
    fn backup_complete(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The backup session ends, successfully or not (VSS `OnBackupShutdown`).
    fn backup_shutdown(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The selected components are about to be restored (VSS `OnPreRestore`).
    fn pre_restore(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The selected components have been restored (VSS `OnPostRestore`).
    fn post_restore(&self, ctx: &EventContext) -> Result<(), WriterFailure> {
        let _ = ctx;
        Ok(())
    }

    /// The requester's session (a backup, a restore, an identify on its own) is over, whatever
    /// its outcome: release what it held. Not a VSS event and never a failure; a writer that
    /// keeps nothing between events has nothing to do (the default).
    fn end_session(&self) {}
}

/// Calls the method of `event` on `writer`; identify's metadata is dropped (use
/// [`Writer::identify`] to keep it).
pub fn dispatch(
    writer: &dyn Writer,
    event: WriterEvent,
    ctx: &EventContext,
) -> Result<(), WriterFailure> {
    match event {
        WriterEvent::Identify => writer.identify(ctx).map(drop),
        WriterEvent::PrepareBackup => writer.prepare_backup(ctx),
        WriterEvent::PrepareSnapshot => writer.prepare_snapshot(ctx),
        WriterEvent::Freeze => writer.freeze(ctx),
        WriterEvent::Thaw => writer.thaw(ctx),
        WriterEvent::PostSnapshot => writer.post_snapshot(ctx),
        WriterEvent::Abort => writer.abort(ctx),
        WriterEvent::BackupComplete => writer.backup_complete(ctx),
        WriterEvent::BackupShutdown => writer.backup_shutdown(ctx),
        WriterEvent::PreRestore => writer.pre_restore(ctx),
        WriterEvent::PostRestore => writer.post_restore(ctx),
    }
}
