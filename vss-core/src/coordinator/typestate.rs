//! Typestate facades over [`BackupSession`] ([`Backup`]) and [`RestoreSession`] ([`Restore`]):
//! each step is a type, and a call out of order does not compile.
//!
//! # Backup
//!
//! ```text
//! Backup<Initial> --gather--> Backup<Gathered> --start_set--> Backup<Started>
//!   --prepare--> Backup<Prepared> --snapshot--> Backup<Snapshotted> --complete--> Backup<Completed>
//!   --shutdown--> Backup<Ended>
//! any step --abort--> Backup<Ended>; a step that fails --> Err(Backup<Ended>)
//! ```
//!
//! A failed step returns the session ended (aborted) as `Err(Backup<Ended>)`, which keeps the
//! error and the writers' status and converts into the crate's [`Error`] with `?`. It is a
//! `std::error::Error` itself (its text is the error's), so `?` also takes it into a
//! `Box<dyn std::error::Error + Send + Sync>`. The [`Restore`] steps return the crate's
//! [`Error`] directly.
//!
//! A set cannot be started before the writers are gathered:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, Context, BackupType};
//! let c = Coordinator::new([]);
//! let b = c.begin_backup(Context::BACKUP, BackupType::Full);
//! let _ = b.start_set(); // no method `start_set` on `Backup<Initial>`
//! ```
//!
//! Nor made before writers are prepared:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, Context, BackupType};
//! # fn f() -> Result<(), vss_core::Error> {
//! let c = Coordinator::new([]);
//! let mut b = c.begin_backup(Context::BACKUP, BackupType::Full).gather()?.start_set()?;
//! b.add_volume("data")?;
//! let _ = b.snapshot(); // no method `snapshot` on `Backup<Started>`
//! # Ok(()) }
//! ```
//!
//! No volume is added once the writers are prepared:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, Context, BackupType};
//! # fn f() -> Result<(), vss_core::Error> {
//! let c = Coordinator::new([]);
//! let mut b = c.begin_backup(Context::BACKUP, BackupType::Full).gather()?.start_set()?;
//! b.add_volume("data")?;
//! let mut p = b.prepare()?;
//! p.add_volume("logs")?; // no method `add_volume` on `Backup<Prepared>`
//! # Ok(()) }
//! ```
//!
//! And backup-complete comes only after the shadows exist:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, Context, BackupType};
//! # fn f() -> Result<(), vss_core::Error> {
//! let c = Coordinator::new([]);
//! let b = c.begin_backup(Context::BACKUP, BackupType::Full).gather()?.start_set()?;
//! let _ = b.prepare()?.complete(); // no method `complete` on `Backup<Prepared>`
//! # Ok(()) }
//! ```
//!
//! The same calls in order compile (and run: here with no writer, on a memory volume):
//!
//! ```
//! # use std::sync::Arc;
//! # use vss_core::{Coordinator, Context, BackupType, SoftwareProvider, Provider};
//! # fn main() -> Result<(), vss_core::Error> {
//! let vol = cow_engine::Volume::create_mem(1 << 20, Default::default())?;
//! let sw: Arc<dyn Provider> = Arc::new(SoftwareProvider::new([("data", vol)])?);
//! let c = Coordinator::new([sw]);
//! let mut b = c.begin_backup(Context::BACKUP, BackupType::Full).gather()?.start_set()?;
//! b.add_volume("data")?;
//! let done = b.prepare()?.snapshot()?;
//! assert_eq!(done.properties().len(), 1);
//! let ended = done.complete()?.shutdown();
//! assert!(ended.error().is_none());
//! # Ok(()) }
//! ```
//!
//! # Restore
//!
//! ```text
//! Restore<Loaded> --gather--> Restore<Gathered> --pre_restore--> Restore<PreRestored>
//!   --restore--> Restore<Restored> --post_restore--> Restore<Ended>
//! ```
//!
//! A restore that fails part way still moves on: [`Restore::restore`] returns
//! `Restore<Restored>` holding the first error and each component's status, and post-restore
//! follows as VSS has it.
//!
//! Nothing is restored before the writers are told (pre-restore):
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, BackupComponents};
//! # fn f(c: Coordinator, saved: BackupComponents) -> Result<(), vss_core::Error> {
//! let r = c.begin_restore(saved)?.gather()?;
//! let _ = r.restore(); // no method `restore` on `Restore<Gathered>`
//! # Ok(()) }
//! ```
//!
//! No component is selected once pre-restore was sent:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, BackupComponents};
//! # fn f(c: Coordinator, saved: BackupComponents) -> Result<(), vss_core::Error> {
//! let mut r = c.begin_restore(saved)?.gather()?.pre_restore()?;
//! r.select("db", "tables")?; // no method `select` on `Restore<PreRestored>`
//! # Ok(()) }
//! ```
//!
//! Post-restore comes only after the restore:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, BackupComponents};
//! # fn f(c: Coordinator, saved: BackupComponents) -> Result<(), vss_core::Error> {
//! let r = c.begin_restore(saved)?.gather()?.pre_restore()?;
//! let _ = r.post_restore(); // no method `post_restore` on `Restore<PreRestored>`
//! # Ok(()) }
//! ```
//!
//! And writers are gathered once:
//!
//! ```compile_fail
//! # use vss_core::{Coordinator, BackupComponents};
//! # fn f(c: Coordinator, saved: BackupComponents) -> Result<(), vss_core::Error> {
//! let r = c.begin_restore(saved)?.gather()?;
//! let _ = r.gather(); // no method `gather` on `Restore<Gathered>`
//! # Ok(()) }
//! ```
//!
//! In order, a backup then its restore (a persistent shadow, reverted to; an exec writer whose
//! one component covers the set's LUNs):
//!
//! ```
//! # use std::sync::Arc;
//! # use vss_core::{Coordinator, Context, BackupType, ExecWriter, SoftwareProvider, Provider};
//! # use vss_core::RestoreStatus;
//! # fn main() -> Result<(), vss_core::Error> {
//! let vol = cow_engine::Volume::create_mem(1 << 20, Default::default())?;
//! vol.write_at(b"before", 0)?;
//! let sw: Arc<dyn Provider> = Arc::new(SoftwareProvider::new([("data", vol.clone())])?);
//! let c = Coordinator::new([sw]);
//! c.add_writer(Arc::new(ExecWriter::new("app", "true")?))?;
//! let mut b = c.begin_backup(Context::APP_ROLLBACK, BackupType::Full).gather()?.start_set()?;
//! b.add_volume("data")?;
//! let done = b.prepare()?.snapshot()?;
//! let saved = done.components()?;
//! done.complete()?.shutdown();
//! vol.write_at(b"after!", 0)?;
//! let restored = c.begin_restore(saved)?.gather()?.pre_restore()?.restore();
//! assert!(restored.error().is_none());
//! assert_eq!(restored.status()[0].status, RestoreStatus::All);
//! restored.post_restore()?;
//! let mut buf = [0u8; 6];
//! vol.read_at(&mut buf, 0)?;
//! assert_eq!(&buf, b"before");
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use uuid::Uuid;

use super::{BackupSession, ComponentRestore, RestoreSession, WriterStatus};
use crate::document::{BackupComponents, WriterMetadata};
use crate::error::Error;
use crate::shadow::ShadowProperties;

mod sealed {
    pub trait Sealed {}
}

/// A step of a [`Backup`] (sealed: the types below are all there is).
pub trait Stage: sealed::Sealed {}

/// A step of a [`Restore`] (sealed: [`Loaded`], [`Gathered`], [`PreRestored`], [`Restored`],
/// [`Ended`]).
pub trait RestoreStage: sealed::Sealed {}

macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;
            impl sealed::Sealed for $name {}
            impl Stage for $name {}
        )+
    };
}

stages!(
    /// Made; next: [`Backup::gather`].
    Initial,
    /// Writers identified; next: [`Backup::select`], [`Backup::start_set`].
    Gathered,
    /// A set started; next: [`Backup::add_volume`], [`Backup::prepare`].
    Started,
    /// Writers prepared; next: [`Backup::snapshot`].
    Prepared,
    /// The shadows exist; next: [`Backup::complete`].
    Snapshotted,
    /// Backup complete sent; next: [`Backup::shutdown`].
    Completed,
    /// Over (shut down, aborted, or failed; a restore: post-restore sent).
    Ended,
);

/// A restore's first step: the saved document is loaded; next: [`Restore::gather`].
#[derive(Debug)]
pub struct Loaded;
/// Pre-restore sent; next: [`Restore::restore`].
#[derive(Debug)]
pub struct PreRestored;
/// The volumes are restored (or failed to be); next: [`Restore::post_restore`].
#[derive(Debug)]
pub struct Restored;
impl sealed::Sealed for Loaded {}
impl sealed::Sealed for PreRestored {}
impl sealed::Sealed for Restored {}
impl RestoreStage for Loaded {}
impl RestoreStage for Gathered {}
impl RestoreStage for PreRestored {}
impl RestoreStage for Restored {}
impl RestoreStage for Ended {}

/// A backup session whose step is its type (see the module documentation).
pub struct Backup<S: Stage> {
    /// Boxed: a step's `Err(Backup<Ended>)` stays small.
    session: Box<BackupSession>,
    error: Option<Error>,
    _stage: PhantomData<S>,
}

impl<S: Stage> std::fmt::Debug for Backup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("session", &self.session)
            .field("error", &self.error)
            .finish()
    }
}

/// What a step of a [`Backup`] returns: the next step, or the session ended with its error.
pub type Step<N> = std::result::Result<Backup<N>, Backup<Ended>>;

impl<S: Stage> Backup<S> {
    fn to<N: Stage>(self) -> Backup<N> {
        Backup {
            session: self.session,
            error: self.error,
            _stage: PhantomData,
        }
    }

    /// Runs one step of the session; on failure the session is aborted (if the step did not
    /// already) and returned ended, with the error.
    fn run<N: Stage>(mut self, f: impl FnOnce(&mut BackupSession) -> crate::Result<()>) -> Step<N> {
        match f(&mut self.session) {
            Ok(()) => Ok(self.to()),
            Err(e) => {
                if !self.session.step().is_over() {
                    let _ = self.session.abort();
                }
                self.error = Some(e);
                Err(self.to())
            }
        }
    }

    /// The run-time session underneath (its step, set id, volumes).
    pub fn session(&self) -> &BackupSession {
        &self.session
    }

    /// Every writer's status.
    pub fn writer_status(&self) -> Vec<WriterStatus> {
        self.session.writer_status()
    }
}

impl Backup<Initial> {
    pub(crate) fn new(session: BackupSession) -> Self {
        Backup {
            session: Box::new(session),
            error: None,
            _stage: PhantomData,
        }
    }

    /// Gathers the writers' metadata ([`BackupSession::gather_writer_metadata`]).
    pub fn gather(self) -> Step<Gathered> {
        self.run(|s| s.gather_writer_metadata().map(drop))
    }
}

impl Backup<Gathered> {
    /// The metadata of the writers taking part.
    pub fn metadata(&self) -> Vec<WriterMetadata> {
        self.session.writer_metadata()
    }

    /// Selects a component ([`BackupSession::select_component`]); an error changes nothing.
    pub fn select(&mut self, writer: &str, path: &str) -> crate::Result<()> {
        self.session.select_component(writer, path)
    }

    /// Starts the set ([`BackupSession::start_set`]).
    pub fn start_set(self) -> Step<Started> {
        self.run(|s| s.start_set().map(drop))
    }
}

impl Backup<Started> {
    /// The set's id.
    pub fn set_id(&self) -> Uuid {
        self.session.set_id().expect("a started set has an id")
    }

    /// Adds a volume ([`BackupSession::add_volume`]); an error changes nothing.
    pub fn add_volume(&mut self, volume: &str) -> crate::Result<Uuid> {
        self.session.add_volume(volume)
    }

    /// Adds a volume whose shadow a provider of type `provider` makes
    /// ([`BackupSession::add_volume_with`]); an error changes nothing.
    pub fn add_volume_with(
        &mut self,
        volume: &str,
        provider: Option<crate::shadow::ProviderType>,
    ) -> crate::Result<Uuid> {
        self.session.add_volume_with(volume, provider)
    }

    /// Prepares the writers ([`BackupSession::prepare_for_backup`]).
    pub fn prepare(self) -> Step<Prepared> {
        self.run(BackupSession::prepare_for_backup)
    }
}

impl Backup<Prepared> {
    /// Makes the set ([`BackupSession::do_snapshot_set`]).
    pub fn snapshot(self) -> Step<Snapshotted> {
        self.run(|s| s.do_snapshot_set().map(drop))
    }
}

impl Backup<Snapshotted> {
    /// The shadows, in volume order.
    pub fn properties(&self) -> &[ShadowProperties] {
        self.session.properties().unwrap_or(&[])
    }

    /// The backup components document, to save for a restore.
    pub fn components(&self) -> crate::Result<BackupComponents> {
        self.session.backup_components()
    }

    /// Records a component's backup as succeeded or not.
    pub fn set_backup_succeeded(
        &mut self,
        writer: &str,
        path: &str,
        ok: bool,
    ) -> crate::Result<()> {
        self.session.set_backup_succeeded(writer, path, ok)
    }

    /// Sends backup-complete ([`BackupSession::backup_complete`]).
    pub fn complete(self) -> Step<Completed> {
        self.run(BackupSession::backup_complete)
    }
}

impl Backup<Completed> {
    /// The shadows, in volume order.
    pub fn properties(&self) -> &[ShadowProperties] {
        self.session.properties().unwrap_or(&[])
    }

    /// Ends the session ([`BackupSession::backup_shutdown`]); an error deleting auto-release
    /// shadows is kept in the ended session.
    pub fn shutdown(mut self) -> Backup<Ended> {
        if let Err(e) = self.session.backup_shutdown() {
            self.error = Some(e);
        }
        self.to()
    }
}

macro_rules! abortable {
    ($($s:ident),+) => {
        $(
            impl Backup<$s> {
                /// Abandons the session ([`BackupSession::abort`]).
                pub fn abort(mut self) -> Backup<Ended> {
                    if let Err(e) = self.session.abort() {
                        self.error = Some(e);
                    }
                    self.to()
                }
            }
        )+
    };
}
abortable!(Initial, Gathered, Started, Prepared, Snapshotted, Completed);

impl Backup<Ended> {
    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The error that ended the session, taken.
    pub fn into_error(self) -> Option<Error> {
        self.error
    }
}

impl std::fmt::Display for Backup<Ended> {
    /// The error that ended the session (its text), or that the session is over.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => std::fmt::Display::fmt(e, f),
            None => f.write_str("the backup session is over"),
        }
    }
}

impl std::error::Error for Backup<Ended> {
    /// The source of the error that ended the session (an OS error underneath, ...).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().and_then(std::error::Error::source)
    }
}

impl From<Backup<Ended>> for Error {
    /// The error that ended the session (a session ended without one is
    /// [`ErrorKind::BadState`](crate::ErrorKind::BadState)).
    fn from(b: Backup<Ended>) -> Error {
        b.error.unwrap_or_else(|| {
            Error::new(
                crate::ErrorKind::BadState,
                "the backup session is over".to_owned(),
            )
        })
    }
}

/// A restore session whose step is its type (see the module documentation).
pub struct Restore<S: RestoreStage> {
    session: Box<RestoreSession>,
    /// The restore's first failure (from [`Restore::restore`] on).
    error: Option<Error>,
    _stage: PhantomData<S>,
}

impl<S: RestoreStage> std::fmt::Debug for Restore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("session", &self.session)
            .field("error", &self.error)
            .finish()
    }
}

impl<S: RestoreStage> Restore<S> {
    fn to<N: RestoreStage>(self) -> Restore<N> {
        Restore {
            session: self.session,
            error: self.error,
            _stage: PhantomData,
        }
    }

    /// The run-time session underneath (its step, the saved document).
    pub fn session(&self) -> &RestoreSession {
        &self.session
    }

    /// Every writer's status.
    pub fn writer_status(&self) -> Vec<WriterStatus> {
        self.session.writer_status()
    }

    /// The restore status of each selected component (empty before pre-restore).
    pub fn status(&self) -> &[ComponentRestore] {
        self.session.restore_status()
    }
}

impl Restore<Loaded> {
    pub(crate) fn new(session: RestoreSession) -> Self {
        Restore {
            session: Box::new(session),
            error: None,
            _stage: PhantomData,
        }
    }

    /// Gathers the writers' metadata ([`RestoreSession::gather_writer_metadata`]).
    pub fn gather(mut self) -> crate::Result<Restore<Gathered>> {
        self.session.gather_writer_metadata()?;
        Ok(self.to())
    }
}

impl Restore<Gathered> {
    /// Selects a component for restore ([`RestoreSession::select_component`]); an error
    /// changes nothing. With none selected, every component the backup selected is restored.
    pub fn select(&mut self, writer: &str, path: &str) -> crate::Result<()> {
        self.session.select_component(writer, path)
    }

    /// Sends pre-restore ([`RestoreSession::pre_restore`]).
    pub fn pre_restore(mut self) -> crate::Result<Restore<PreRestored>> {
        self.session.pre_restore()?;
        Ok(self.to())
    }
}

impl Restore<PreRestored> {
    /// Restores the selected components' volumes ([`RestoreSession::restore`]) and moves on
    /// whatever the outcome: the first failure is [`Restore::error`], each component's in
    /// [`Restore::status`].
    pub fn restore(mut self) -> Restore<Restored> {
        if let Err(e) = self.session.restore() {
            self.error = Some(e);
        }
        self.to()
    }
}

impl Restore<Restored> {
    /// The restore's first failure, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Sends post-restore ([`RestoreSession::post_restore`]); the session is over.
    pub fn post_restore(mut self) -> crate::Result<Restore<Ended>> {
        self.session.post_restore()?;
        Ok(self.to())
    }
}

impl Restore<Ended> {
    /// The restore's first failure, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }
}
