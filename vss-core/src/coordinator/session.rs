//! The backup session: VSS's backup order as a state machine at run time.

use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use super::{provider_error, Crowd, FlightClaim, Inner, VolumeClaims, WriterStatus};
use crate::document::{
    BackupComponents, SelectedComponent, SnapshotSet, WriterMetadata, MAX_VOLUMES_PER_SET,
};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::ShadowRequest;
use crate::shadow::{Attributes, BackupType, Context, ShadowProperties};
use crate::writer::{FailureKind, WriterEvent, WriterFailure, WriterState};

/// Where a [`BackupSession`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackupStep {
    /// Made; next: `gather_writer_metadata`.
    Initial,
    /// Writers identified; components may be selected; next: `start_set`.
    Gathered,
    /// A set is started; volumes may be added; next: `prepare_for_backup`.
    SetStarted,
    /// Writers prepared for backup; next: `do_snapshot_set`.
    Prepared,
    /// The shadows exist; next: `backup_complete` (or `backup_shutdown`).
    Snapshotted,
    /// Backup complete was sent; next: `backup_shutdown`.
    Completed,
    /// Backup shutdown was sent; the session is over.
    Ended,
    /// The set was aborted (by a failure, by `abort`, or by dropping the session); the session
    /// is over.
    Aborted,
}

impl BackupStep {
    /// True once the session is over.
    pub fn is_over(self) -> bool {
        matches!(self, BackupStep::Ended | BackupStep::Aborted)
    }
}

struct SetVolume {
    name: String,
    provider: usize,
    shadow_id: Uuid,
}

/// One backup, in VSS's order (docs/protocol.md):
///
/// ```text
/// gather_writer_metadata -> select_component* -> start_set -> add_volume+ -> prepare_for_backup
///   -> do_snapshot_set -> (properties, backup_components, set_backup_succeeded)*
///   -> backup_complete -> backup_shutdown
/// abort: at any step before the session is over
/// ```
///
/// A call out of order is [`ErrorKind::BadState`] naming the step the session is at, and changes
/// nothing. A failure or a hang at prepare-backup, prepare-snapshot, freeze or thaw (or of a
/// provider before the shadows exist) aborts the set: every writer that answers gets abort (one
/// that hangs gets it when its call returns), every provider aborts (every volume thawed, no
/// shadow of the set remains), and the error names the step, the writer and the kind. A failure
/// at post-snapshot, backup-complete or backup-shutdown keeps the shadows and is recorded in
/// the writer's status (`FAILED_AT_<STEP>`).
///
/// Dropping a session never leaves a set in progress, a writer frozen or a volume held: a
/// session dropped before its shadows exist is aborted; one dropped after is shut down (its
/// auto-release shadows deleted).
pub struct BackupSession {
    crowd: Crowd,
    step: BackupStep,
    volumes: Vec<SetVolume>,
    flight: Option<FlightClaim>,
    claims: VolumeClaims,
    /// Prepare-backup was sent (abort goes to every writer in the session, not only those
    /// taking part, while it runs).
    prepare_sent: bool,
    /// Components were selected by the requester (else every writer takes part with the
    /// components on the set's volumes).
    explicit: bool,
    /// The shadows, once the providers post-committed them, in volume order.
    shadows: Vec<ShadowProperties>,
    succeeded: Vec<(String, String, bool)>,
    /// Why the session ended, if it was aborted by a failure.
    error: Option<String>,
}

impl std::fmt::Debug for BackupSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSession")
            .field("step", &self.step)
            .field("set_id", &self.crowd.set_id)
            .field("volumes", &self.crowd.luns)
            .finish_non_exhaustive()
    }
}

impl BackupSession {
    pub(crate) fn new(inner: Arc<Inner>, context: Context, backup_type: BackupType) -> Self {
        BackupSession {
            crowd: Crowd::new(inner, context, backup_type),
            step: BackupStep::Initial,
            volumes: Vec::new(),
            flight: None,
            claims: VolumeClaims::default(),
            prepare_sent: false,
            explicit: false,
            shadows: Vec::new(),
            succeeded: Vec::new(),
            error: None,
        }
    }

    fn expect(&self, allowed: &[BackupStep], call: &str) -> Result<()> {
        if allowed.contains(&self.step) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::BadState,
            format!(
                "{call} is not allowed now: the backup session is at {:?}{}",
                self.step,
                self.error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(" ({e})"))
            ),
        ))
    }

    /// Where the session is.
    pub fn step(&self) -> BackupStep {
        self.step
    }

    /// The session's context.
    pub fn context(&self) -> Context {
        self.crowd.context
    }

    /// The set's id, once started.
    pub fn set_id(&self) -> Option<Uuid> {
        self.crowd.set_id
    }

    /// The set's volumes, in the order they were added.
    pub fn volumes(&self) -> &[String] {
        &self.crowd.luns
    }

    /// Why the session was aborted, if a failure aborted it.
    pub fn failure(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The metadata of the writers that answered identify, in registration order.
    pub fn writer_metadata(&self) -> Vec<WriterMetadata> {
        self.crowd
            .parts
            .iter()
            .filter(|p| p.in_session)
            .filter_map(|p| p.metadata.clone())
            .collect()
    }

    /// Every writer's status (VSS `GatherWriterStatus`), in registration order.
    pub fn writer_status(&self) -> Vec<WriterStatus> {
        self.crowd.statuses()
    }

    /// Asks every writer for its metadata (identify, in parallel, within the event deadline)
    /// and returns the documents of those that answered; a writer that fails identify, does
    /// not answer in time, or still hangs in a call of an earlier set is left out (its status
    /// says why).
    pub fn gather_writer_metadata(&mut self) -> Result<Vec<WriterMetadata>> {
        self.expect(&[BackupStep::Initial], "gather writer metadata")?;
        let docs = self.crowd.gather();
        self.step = BackupStep::Gathered;
        Ok(docs)
    }

    /// Selects a component (its full path in the writer's metadata) for backup, with its
    /// subcomponents. A writer none of whose components is selected gets no event after
    /// prepare-backup; when nothing is selected at all, every writer takes part with the
    /// components that lie on the set's volumes.
    ///
    /// Errors: [`ErrorKind::NotFound`] for a writer not taking part or an unknown component;
    /// [`ErrorKind::InvalidArgument`] for a component that is not selectable;
    /// [`ErrorKind::AlreadyExists`] for one selected twice.
    pub fn select_component(&mut self, writer: &str, path: &str) -> Result<()> {
        self.expect(&[BackupStep::Gathered], "select component")?;
        let i = self.crowd.find(writer)?;
        let p = &self.crowd.parts[i];
        let m = p
            .metadata
            .as_ref()
            .expect("a writer in session has metadata");
        let Some(c) = m.component(path) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("writer {writer:?} has no component {path:?}"),
            ));
        };
        if !c.selectable {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("component {path:?} of writer {writer:?} is not selectable for backup"),
            ));
        }
        if p.selected.iter().any(|s| s == path) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("component {path:?} of writer {writer:?} is already selected"),
            ));
        }
        self.crowd.parts[i].selected.push(path.to_owned());
        self.explicit = true;
        Ok(())
    }

    /// Leaves writer `writer` out of this backup (DiskShadow `writer exclude`): it answered
    /// identify, and gets no further event; none of its components is selected. Allowed where
    /// components are selected (after gather, before the set starts).
    ///
    /// Errors: [`ErrorKind::NotFound`] for a writer not in the session (or excluded already).
    pub fn exclude_writer(&mut self, writer: &str) -> Result<()> {
        self.expect(&[BackupStep::Gathered], "exclude writer")?;
        let i = self.crowd.find(writer)?;
        let p = &mut self.crowd.parts[i];
        p.excluded = true;
        p.selected.clear();
        Ok(())
    }

    /// Starts the set and returns its id (VSS `StartSnapshotSet`).
    ///
    /// Errors: [`ErrorKind::SnapshotSetInProgress`] while another set of this coordinator is
    /// being made (the session stays where it is: try again).
    pub fn start_set(&mut self) -> Result<Uuid> {
        self.expect(&[BackupStep::Gathered], "start set")?;
        let id = Uuid::new_v4();
        self.flight = Some(FlightClaim::claim(&self.crowd.inner, id)?);
        self.crowd.set_id = Some(id);
        self.step = BackupStep::SetStarted;
        Ok(id)
    }

    /// Adds a volume to the set and returns its shadow's id (VSS `AddToSnapshotSet`); its
    /// provider is the first that supports it (hardware before software).
    ///
    /// Errors: [`ErrorKind::MaxVolumesReached`] past 64 volumes; [`ErrorKind::AlreadyExists`]
    /// for a volume added twice; [`ErrorKind::VolumeNotSupported`] when no provider supports
    /// it; [`ErrorKind::SnapshotSetInProgress`] when another coordinator is making a set of it.
    /// None changes the set.
    pub fn add_volume(&mut self, volume: &str) -> Result<Uuid> {
        self.add_volume_with(volume, None)
    }

    /// Adds a volume as [`BackupSession::add_volume`] does, its shadow made by a provider of
    /// type `provider` when one is named (DiskShadow's `add volume LUN provider TYPE`): the
    /// first provider of that type that supports the volume, never one of another type.
    ///
    /// Errors: those of [`BackupSession::add_volume`];
    /// [`ErrorKind::VolumeNotSupported`] naming the type when no provider of that type
    /// supports the volume. None changes the set.
    pub fn add_volume_with(
        &mut self,
        volume: &str,
        provider: Option<crate::shadow::ProviderType>,
    ) -> Result<Uuid> {
        self.expect(&[BackupStep::SetStarted], "add volume")?;
        if self.volumes.len() >= MAX_VOLUMES_PER_SET {
            return Err(Error::new(
                ErrorKind::MaxVolumesReached,
                format!(
                    "set {} already holds {MAX_VOLUMES_PER_SET} volumes, the most a set holds; \
                     {volume:?} was not added",
                    self.crowd.set_id.unwrap_or_default()
                ),
            ));
        }
        if self.volumes.iter().any(|v| v.name == volume) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("volume {volume:?} is already in the set"),
            ));
        }
        let mut chosen = None;
        for (i, p) in self.crowd.inner.providers.iter().enumerate() {
            if provider.is_some_and(|t| p.provider_type() != t) {
                continue;
            }
            let ok = p
                .is_volume_supported(volume, self.crowd.context)
                .map_err(|e| provider_error(p.as_ref(), "is-volume-supported", e))?;
            if ok {
                chosen = Some(i);
                break;
            }
        }
        let Some(provider) = chosen else {
            let which = match provider {
                Some(t) => format!("no {t} provider"),
                None => "no provider".to_owned(),
            };
            return Err(Error::new(
                ErrorKind::VolumeNotSupported,
                format!(
                    "{which} supports volume {volume:?} in context {}",
                    self.crowd.context
                ),
            ));
        };
        let key = self.crowd.inner.providers[provider].volume_key(volume);
        self.claims.claim(key.clone(), volume)?;
        if let (Some(hook), Some(set_id)) = (&self.crowd.inner.hook, self.crowd.set_id) {
            let mut luns = self.crowd.luns.clone();
            luns.push(volume.to_owned());
            if let Err(e) = hook.volumes(set_id, &luns) {
                self.claims.unclaim(&key);
                return Err(e);
            }
        }
        let shadow_id = Uuid::new_v4();
        self.volumes.push(SetVolume {
            name: volume.to_owned(),
            provider,
            shadow_id,
        });
        self.crowd.luns.push(volume.to_owned());
        Ok(shadow_id)
    }

    /// Sends prepare-backup to every writer (VSS `PrepareForBackup`); from here on a writer
    /// with no component selected gets no further event.
    ///
    /// Errors: [`ErrorKind::BadState`] for a set with no volume; a writer's failure or hang
    /// aborts the set.
    pub fn prepare_for_backup(&mut self) -> Result<()> {
        self.expect(&[BackupStep::SetStarted], "prepare for backup")?;
        if self.volumes.is_empty() {
            return Err(Error::new(
                ErrorKind::BadState,
                "prepare for backup: the set has no volume; add one first",
            ));
        }
        // The components each writer takes part with.
        if !self.explicit {
            let luns = self.crowd.luns.clone();
            for p in self.crowd.parts.iter_mut().filter(|p| !p.excluded) {
                if let Some(m) = &p.metadata {
                    p.selected = m
                        .components
                        .iter()
                        .filter(|c| c.covers_every_lun() || c.luns.iter().any(|l| luns.contains(l)))
                        .map(|c| c.full_path())
                        .collect();
                }
            }
        }
        self.prepare_sent = true;
        let who = self.crowd.live(false);
        let deadline = Instant::now() + self.crowd.inner.timeouts.event;
        let failed = self
            .crowd
            .fan_out(WriterEvent::PrepareBackup, deadline, &who);
        if !failed.is_empty() {
            let e = self
                .crowd
                .failure_error(WriterEvent::PrepareBackup, &failed);
            return Err(self.abort_with(e));
        }
        for p in &mut self.crowd.parts {
            p.taking_part = p.in_session && !p.selected.is_empty();
        }
        self.step = BackupStep::Prepared;
        Ok(())
    }

    /// Makes the set (VSS `DoSnapshotSet`): checks every selected component lies on the set's
    /// volumes (else `INCONSISTENT_SNAPSHOT` before anything is frozen), prepare-snapshot, the
    /// providers' begin/end prepare, freeze (within the freeze window), the providers'
    /// pre-commit and commit (within the hold window) and post-commit, thaw (within the freeze
    /// window), post-snapshot. Returns the shadows' properties, in volume order.
    ///
    /// Errors: any failure up to thaw aborts the set ([`ErrorKind::UnexpectedWriterError`] or
    /// [`ErrorKind::WriterNotResponding`] for writers; the provider's veto, hold or flush
    /// timeout, or [`ErrorKind::UnexpectedProviderError`] for providers). A failure at
    /// post-snapshot keeps the shadows and is only recorded in the writer's status.
    pub fn do_snapshot_set(&mut self) -> Result<Vec<ShadowProperties>> {
        self.expect(&[BackupStep::Prepared], "do snapshot set")?;
        let set_id = self.crowd.set_id.expect("a started set has an id");
        let t = self.crowd.inner.timeouts;
        // Components on volumes outside the set: inconsistent, before anything is frozen.
        let mut inconsistent = Vec::new();
        for i in self.crowd.live(true) {
            let p = &self.crowd.parts[i];
            let missing: Vec<String> = p
                .selected_components()
                .iter()
                .flat_map(|c| c.luns.iter())
                .filter(|l| !self.crowd.luns.contains(l))
                .map(|l| format!("{l:?}"))
                .collect();
            if !missing.is_empty() {
                inconsistent.push((
                    i,
                    WriterFailure::new(
                        FailureKind::InconsistentSnapshot,
                        format!(
                            "writer {:?}'s selected components live on volumes not in the set: {}",
                            p.name,
                            missing.join(", ")
                        ),
                    ),
                ));
            }
        }
        if !inconsistent.is_empty() {
            for (i, f) in &inconsistent {
                let p = &mut self.crowd.parts[*i];
                p.state = WriterState::FailedAtPrepareSnapshot;
                p.failure = Some(f.clone());
            }
            let e = self
                .crowd
                .failure_error(WriterEvent::PrepareSnapshot, &inconsistent);
            return Err(self.abort_with(e));
        }
        let writers = self.crowd.live(true);
        let failed = self.crowd.fan_out(
            WriterEvent::PrepareSnapshot,
            Instant::now() + t.event,
            &writers,
        );
        if !failed.is_empty() {
            let e = self
                .crowd
                .failure_error(WriterEvent::PrepareSnapshot, &failed);
            return Err(self.abort_with(e));
        }
        // The providers prepare.
        let attributes = self.crowd.context.attributes();
        let count = u32::try_from(self.volumes.len()).unwrap_or(u32::MAX);
        for v in &self.volumes {
            let p = &self.crowd.inner.providers[v.provider];
            let req = ShadowRequest {
                set_id,
                shadow_id: v.shadow_id,
                volume: v.name.clone(),
                context: self.crowd.context,
                attributes,
                count_in_set: count,
            };
            if let Err(e) = p.begin_prepare(&req) {
                let e = provider_error(p.as_ref(), &format!("begin-prepare of {:?}", v.name), e);
                return Err(self.abort_with(e));
            }
        }
        let used = self.used_providers();
        let end = Instant::now() + t.event;
        for &i in &used {
            let p = self.crowd.inner.providers[i].clone();
            if let Err(e) = p.end_prepare(set_id, end) {
                return Err(self.abort_with(provider_error(p.as_ref(), "end-prepare", e)));
            }
        }
        // Freeze, within the freeze window.
        let window_end = Instant::now() + t.freeze_window;
        let writers = self.crowd.live(true);
        let failed = self
            .crowd
            .fan_out(WriterEvent::Freeze, window_end, &writers);
        if !failed.is_empty() {
            let e = self.crowd.failure_error(WriterEvent::Freeze, &failed);
            return Err(self.abort_with(e));
        }
        // The instant.
        for &i in &used {
            let p = self.crowd.inner.providers[i].clone();
            if let Err(e) = p.pre_commit(set_id) {
                return Err(self.abort_with(provider_error(p.as_ref(), "pre-commit", e)));
            }
        }
        for &i in &used {
            let p = self.crowd.inner.providers[i].clone();
            if let Err(e) = p.commit(set_id, t.hold_window) {
                return Err(self.abort_with(provider_error(p.as_ref(), "commit", e)));
            }
        }
        let mut made = Vec::new();
        for &i in &used {
            let p = self.crowd.inner.providers[i].clone();
            match p.post_commit(set_id) {
                Ok(props) => made.extend(props),
                Err(e) => {
                    self.shadows = made;
                    return Err(self.abort_with(provider_error(p.as_ref(), "post-commit", e)));
                }
            }
        }
        self.shadows = self
            .volumes
            .iter()
            .filter_map(|v| made.iter().find(|s| s.shadow_id == v.shadow_id).cloned())
            .collect();
        if self.shadows.len() != self.volumes.len() {
            let e = Error::new(
                ErrorKind::UnexpectedProviderError,
                format!(
                    "post-commit of set {set_id} gave {} shadows for {} volumes",
                    made.len(),
                    self.volumes.len()
                ),
            );
            self.shadows = made;
            return Err(self.abort_with(e));
        }
        // Thaw, within the same window.
        let writers = self.crowd.live(true);
        let failed = self.crowd.fan_out(WriterEvent::Thaw, window_end, &writers);
        if !failed.is_empty() {
            let e = self.crowd.failure_error(WriterEvent::Thaw, &failed);
            return Err(self.abort_with(e));
        }
        // The set is made: another may start.
        self.flight = None;
        self.claims.release();
        let writers = self.crowd.healthy(true);
        self.crowd.fan_out(
            WriterEvent::PostSnapshot,
            Instant::now() + t.event,
            &writers,
        );
        self.step = BackupStep::Snapshotted;
        Ok(self.shadows.clone())
    }

    fn used_providers(&self) -> Vec<usize> {
        let mut used: Vec<usize> = self.volumes.iter().map(|v| v.provider).collect();
        used.sort_unstable();
        used.dedup();
        used
    }

    /// The shadows' properties (VSS `GetSnapshotProperties`), in volume order.
    pub fn properties(&self) -> Result<&[ShadowProperties]> {
        self.expect(
            &[
                BackupStep::Snapshotted,
                BackupStep::Completed,
                BackupStep::Ended,
            ],
            "properties",
        )?;
        Ok(&self.shadows)
    }

    /// Records whether the requester backed a selected component up (VSS
    /// `SetBackupSucceeded`), for the backup components document.
    ///
    /// Errors: [`ErrorKind::NotFound`] for a component that is not selected.
    pub fn set_backup_succeeded(&mut self, writer: &str, path: &str, ok: bool) -> Result<()> {
        self.expect(
            &[BackupStep::Snapshotted, BackupStep::Completed],
            "set backup succeeded",
        )?;
        let i = self.crowd.find(writer)?;
        if !self.crowd.parts[i].selected.iter().any(|s| s == path) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("component {path:?} of writer {writer:?} is not selected"),
            ));
        }
        self.succeeded
            .retain(|(w, p, _)| !(w == writer && p == path));
        self.succeeded
            .push((writer.to_owned(), path.to_owned(), ok));
        Ok(())
    }

    /// The backup components document (VSS `SaveAsXML`): the backup type and context, the
    /// selected components, the metadata of the writers taking part, and the set; what a
    /// restore starts from ([`super::Coordinator::restore`]).
    pub fn backup_components(&self) -> Result<BackupComponents> {
        self.expect(
            &[
                BackupStep::Snapshotted,
                BackupStep::Completed,
                BackupStep::Ended,
            ],
            "backup components",
        )?;
        let mut doc = BackupComponents::new(self.crowd.backup_type, self.crowd.context);
        for p in &self.crowd.parts {
            if !(p.in_session && p.taking_part) {
                continue;
            }
            if let Some(m) = &p.metadata {
                doc.writers.push(m.clone());
            }
            for path in &p.selected {
                let ok = self
                    .succeeded
                    .iter()
                    .find(|(w, s, _)| *w == p.name && s == path)
                    .is_some_and(|(_, _, ok)| *ok);
                doc.selected.push(SelectedComponent {
                    writer: p.name.clone(),
                    path: path.clone(),
                    backup_succeeded: ok,
                });
            }
        }
        doc.snapshot_set = Some(SnapshotSet {
            set_id: self.crowd.set_id.expect("a made set has an id"),
            shadows: self.shadows.clone(),
        });
        Ok(doc)
    }

    /// Sends backup-complete to the writers taking part (VSS `BackupComplete`); a failure is
    /// recorded in the writer's status (`FAILED_AT_BACKUP_COMPLETE`), the shadows are kept.
    pub fn backup_complete(&mut self) -> Result<()> {
        self.expect(&[BackupStep::Snapshotted], "backup complete")?;
        let writers = self.crowd.healthy(true);
        let deadline = Instant::now() + self.crowd.inner.timeouts.event;
        self.crowd
            .fan_out(WriterEvent::BackupComplete, deadline, &writers);
        self.step = BackupStep::Completed;
        Ok(())
    }

    /// Ends the session (VSS `BackupShutdown` on release): backup-shutdown to the writers
    /// taking part (a failure is recorded, `FAILED_AT_BACKUPSHUTDOWN`), then the auto-release
    /// shadows (a context without `NO_AUTO_RELEASE`) are deleted; the others are kept.
    ///
    /// Errors: a provider's error deleting an auto-release shadow (the session ends all the
    /// same).
    pub fn backup_shutdown(&mut self) -> Result<()> {
        self.expect(
            &[BackupStep::Snapshotted, BackupStep::Completed],
            "backup shutdown",
        )?;
        let writers = self.crowd.live(true);
        let deadline = Instant::now() + self.crowd.inner.timeouts.event;
        self.crowd
            .fan_out(WriterEvent::BackupShutdown, deadline, &writers);
        self.step = BackupStep::Ended;
        self.crowd.end_sessions();
        if !self
            .crowd
            .context
            .attributes()
            .contains(Attributes::NO_AUTO_RELEASE)
        {
            return self.delete_shadows();
        }
        Ok(())
    }

    /// Abandons the session (VSS `AbortBackup`): every writer that got prepare-backup gets
    /// abort, every provider aborts the set, and every shadow of the set is deleted. Allowed at
    /// any step before the session is over.
    ///
    /// Errors: a provider's error while cleaning up (the session is over all the same).
    pub fn abort(&mut self) -> Result<()> {
        if self.step.is_over() {
            return self.expect(&[], "abort");
        }
        self.teardown()
    }

    /// Aborts the set because of `cause`; returns the error to report.
    fn abort_with(&mut self, cause: Error) -> Error {
        self.error = Some(cause.to_string());
        match self.teardown() {
            Ok(()) => cause,
            Err(e) => Error::new(
                cause.kind(),
                format!(
                    "{}; and cleaning up failed: {}",
                    cause.message(),
                    e.report()
                ),
            ),
        }
    }

    fn teardown(&mut self) -> Result<()> {
        let narrowed = self.step >= BackupStep::Prepared;
        self.step = BackupStep::Aborted;
        self.crowd.fate.lock().aborted = true;
        if self.prepare_sent {
            // After `aborted` is set: a late call returning from now on sends its own abort.
            let who = self.crowd.abort_targets(narrowed);
            let deadline = Instant::now() + self.crowd.inner.timeouts.event;
            self.crowd.fan_out(WriterEvent::Abort, deadline, &who);
        }
        let mut first: Result<()> = Ok(());
        if let Some(set_id) = self.crowd.set_id {
            for i in self.used_providers() {
                let p = self.crowd.inner.providers[i].clone();
                if let Err(e) = p.abort(set_id) {
                    if first.is_ok() {
                        first = Err(provider_error(p.as_ref(), "abort", e));
                    }
                }
            }
        }
        if let Err(e) = self.delete_shadows() {
            if first.is_ok() {
                first = Err(e);
            }
        }
        self.flight = None;
        self.claims.release();
        self.crowd.end_sessions();
        first
    }

    /// Deletes the set's shadows (one already gone is not an error).
    fn delete_shadows(&mut self) -> Result<()> {
        let mut first = Ok(());
        for s in std::mem::take(&mut self.shadows) {
            let Some(i) = self.crowd.inner.provider_index(s.provider_id) else {
                continue;
            };
            let p = self.crowd.inner.providers[i].clone();
            match p.delete(s.shadow_id) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    if first.is_ok() {
                        first = Err(provider_error(p.as_ref(), "delete", e));
                    }
                }
            }
        }
        first
    }
}

impl Drop for BackupSession {
    fn drop(&mut self) {
        match self.step {
            BackupStep::Ended | BackupStep::Aborted => {}
            BackupStep::Snapshotted | BackupStep::Completed => {
                let _ = self.backup_shutdown();
            }
            BackupStep::Initial | BackupStep::Gathered => {
                self.step = BackupStep::Aborted;
                self.crowd.end_sessions();
            }
            BackupStep::SetStarted | BackupStep::Prepared => {
                let _ = self.teardown();
            }
        }
    }
}
