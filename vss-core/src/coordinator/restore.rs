//! The restore session: VSS's restore order as a state machine at run time.

use std::sync::Arc;
use std::time::Instant;

use super::{provider_error, Crowd, Inner, WriterStatus};
use crate::document::{BackupComponents, WriterMetadata};
use crate::error::{Error, ErrorKind, Result};
use crate::shadow::ProviderType;
use crate::writer::WriterEvent;

/// Where a [`RestoreSession`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RestoreStep {
    /// The saved document is loaded; next: `gather_writer_metadata`.
    Loaded,
    /// Writers identified; components may be selected; next: `pre_restore`.
    Gathered,
    /// Pre-restore was sent; next: `restore`.
    PreRestored,
    /// The volumes are reverted; next: `post_restore`.
    Restored,
    /// Post-restore was sent; the session is over.
    Ended,
}

/// A component's restore status (VSS `VSS_FILE_RESTORE_STATUS`), with VSS's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RestoreStatus {
    /// Nothing of it was restored (not yet, or its writer failed pre-restore).
    None = 1,
    /// All of it was restored.
    All = 2,
    /// Its restore failed part way: some of its volumes may be restored, others not.
    Failed = 3,
}

/// The restore status of one selected component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRestore {
    /// Its writer.
    pub writer: String,
    /// Its full path.
    pub path: String,
    /// The volumes it lives on (every volume of the set for a component covering every LUN).
    pub volumes: Vec<String>,
    /// Its status.
    pub status: RestoreStatus,
    /// Why it failed or was not restored, if so.
    pub reason: Option<String>,
}

/// One restore, in VSS's order (docs/protocol.md):
///
/// ```text
/// gather_writer_metadata -> select_component* -> pre_restore -> restore -> post_restore
/// ```
///
/// The components are those of the saved backup components document; the restore brings each
/// selected component's volumes back to their shadows of the saved set, through the provider
/// that made them: a hardware shadow is resynced onto its LUN inside the array (only the blocks
/// that differ), a software shadow is reverted to by the engine (persistent shadows only). A call out
/// of order is [`ErrorKind::BadState`]. Dropping the session ends the writers' sessions.
pub struct RestoreSession {
    crowd: Crowd,
    saved: BackupComponents,
    step: RestoreStep,
    components: Vec<ComponentRestore>,
}

impl std::fmt::Debug for RestoreSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreSession")
            .field("step", &self.step)
            .field("set_id", &self.crowd.set_id)
            .finish_non_exhaustive()
    }
}

impl RestoreSession {
    pub(crate) fn new(inner: Arc<Inner>, saved: BackupComponents) -> Result<Self> {
        let Some(set) = &saved.snapshot_set else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the backup components document has no snapshot set: nothing to restore from",
            ));
        };
        let mut crowd = Crowd::new(inner, saved.context, saved.backup_type);
        crowd.set_id = Some(set.set_id);
        crowd.luns = set
            .shadows
            .iter()
            .map(|s| s.original.name.clone())
            .collect();
        Ok(RestoreSession {
            crowd,
            saved,
            step: RestoreStep::Loaded,
            components: Vec::new(),
        })
    }

    fn expect(&self, allowed: RestoreStep, call: &str) -> Result<()> {
        if self.step == allowed {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::BadState,
            format!(
                "{call} is not allowed now: the restore session is at {:?}",
                self.step
            ),
        ))
    }

    /// Where the session is.
    pub fn step(&self) -> RestoreStep {
        self.step
    }

    /// The saved document the session restores from.
    pub fn saved(&self) -> &BackupComponents {
        &self.saved
    }

    /// Every writer's status, in registration order.
    pub fn writer_status(&self) -> Vec<WriterStatus> {
        self.crowd.statuses()
    }

    /// The restore status of each selected component.
    pub fn restore_status(&self) -> &[ComponentRestore] {
        &self.components
    }

    /// Identify (as for a backup): returns the documents of the writers that answered.
    pub fn gather_writer_metadata(&mut self) -> Result<Vec<WriterMetadata>> {
        self.expect(RestoreStep::Loaded, "gather writer metadata")?;
        let docs = self.crowd.gather();
        self.step = RestoreStep::Gathered;
        Ok(docs)
    }

    /// Selects a component of the saved backup for restore. When nothing is selected, every
    /// component the backup selected is restored.
    ///
    /// Errors: [`ErrorKind::NotFound`] for a component the saved backup did not select, or
    /// whose writer is not taking part now; [`ErrorKind::InvalidArgument`] for one not
    /// selectable for restore; [`ErrorKind::AlreadyExists`] for one selected twice.
    pub fn select_component(&mut self, writer: &str, path: &str) -> Result<()> {
        self.expect(RestoreStep::Gathered, "select component")?;
        if !self
            .saved
            .selected
            .iter()
            .any(|s| s.writer == writer && s.path == path)
        {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("component {path:?} of writer {writer:?} was not backed up in this set"),
            ));
        }
        let i = self.crowd.find(writer)?;
        let restorable = self
            .saved
            .writer(writer)
            .and_then(|m| m.component(path))
            .is_some_and(|c| c.selectable_for_restore);
        if !restorable {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("component {path:?} of writer {writer:?} is not selectable for restore"),
            ));
        }
        let p = &mut self.crowd.parts[i];
        if p.selected.iter().any(|s| s == path) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("component {path:?} of writer {writer:?} is already selected"),
            ));
        }
        p.selected.push(path.to_owned());
        Ok(())
    }

    /// Sends pre-restore to the writers with a selected component; the components of a writer
    /// that fails it are not restored (status `None`, its state `FAILED_AT_PRE_RESTORE`).
    pub fn pre_restore(&mut self) -> Result<()> {
        self.expect(RestoreStep::Gathered, "pre-restore")?;
        if self.crowd.parts.iter().all(|p| p.selected.is_empty()) {
            for s in &self.saved.selected {
                if let Some(p) = self
                    .crowd
                    .parts
                    .iter_mut()
                    .find(|p| p.name == s.writer && p.in_session)
                {
                    p.selected.push(s.path.clone());
                }
            }
        }
        for p in &mut self.crowd.parts {
            p.taking_part = p.in_session && !p.selected.is_empty();
        }
        // The components, with the saved metadata's LUNs.
        let set_luns = self.crowd.luns.clone();
        for p in &self.crowd.parts {
            if !p.taking_part {
                continue;
            }
            let saved = self.saved.writer(&p.name);
            for path in &p.selected {
                let mut volumes: Vec<String> = Vec::new();
                if let Some(m) = saved {
                    for c in m.subtree(path) {
                        let luns = if c.covers_every_lun() {
                            &set_luns
                        } else {
                            &c.luns
                        };
                        for l in luns {
                            if !volumes.contains(l) {
                                volumes.push(l.clone());
                            }
                        }
                    }
                }
                self.components.push(ComponentRestore {
                    writer: p.name.clone(),
                    path: path.clone(),
                    volumes,
                    status: RestoreStatus::None,
                    reason: None,
                });
            }
        }
        let who = self.crowd.live(true);
        let deadline = Instant::now() + self.crowd.inner.timeouts.event;
        let failed = self.crowd.fan_out(WriterEvent::PreRestore, deadline, &who);
        for (i, f) in failed {
            let name = self.crowd.parts[i].name.clone();
            for c in self.components.iter_mut().filter(|c| c.writer == name) {
                c.reason = Some(format!("its writer failed pre-restore: {f}"));
            }
        }
        self.step = RestoreStep::PreRestored;
        Ok(())
    }

    /// Brings the selected components' volumes back to their shadows (hardware: resync;
    /// software: revert), every volume at once through its provider, and waits; each component's status is `All` if every volume of it
    /// was reverted, `Failed` otherwise.
    ///
    /// Errors: the first failure (a volume with no shadow in the set, a provider refusing a
    /// revert, a revert that failed); the session moves on all the same (post-restore next).
    pub fn restore(&mut self) -> Result<()> {
        self.expect(RestoreStep::PreRestored, "restore")?;
        self.step = RestoreStep::Restored;
        let set = self.saved.snapshot_set.clone().expect("checked at load");
        let mut volumes: Vec<String> = Vec::new();
        for c in self.components.iter().filter(|c| c.reason.is_none()) {
            for v in &c.volumes {
                if !volumes.contains(v) {
                    volumes.push(v.clone());
                }
            }
        }
        // Start every revert, then wait for each.
        let mut outcome: Vec<(String, Result<()>)> = Vec::new();
        let mut running = Vec::new();
        for v in volumes {
            let Some(shadow) = set.shadows.iter().find(|s| s.original.name == v) else {
                outcome.push((
                    v.clone(),
                    Err(Error::new(
                        ErrorKind::SnapshotNotInSet,
                        format!("set {} has no shadow of volume {v:?}", set.set_id),
                    )),
                ));
                continue;
            };
            let Some(pi) = self.crowd.inner.provider_index(shadow.provider_id) else {
                outcome.push((
                    v.clone(),
                    Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "the provider {} that made shadow {} of volume {v:?} is not one of \
                             this coordinator's",
                            shadow.provider_id, shadow.shadow_id
                        ),
                    )),
                ));
                continue;
            };
            let p = self.crowd.inner.providers[pi].clone();
            // A hardware shadow is copied back inside the array (resync, changed blocks only);
            // a software shadow is reverted to by its engine.
            let (step, started) = if shadow.provider_type == ProviderType::Hardware {
                ("resync", p.resync(shadow.shadow_id, None))
            } else {
                ("revert", p.revert(shadow.shadow_id))
            };
            match started {
                Ok(h) => running.push((v, p, step, h)),
                Err(e) => outcome.push((v, Err(provider_error(p.as_ref(), step, e)))),
            }
        }
        for (v, p, step, h) in running {
            let r = h
                .wait()
                .map_err(|e| provider_error(p.as_ref(), step, Error::from(e)));
            outcome.push((v, r));
        }
        let mut first = None;
        for c in &mut self.components {
            if c.reason.is_some() {
                continue;
            }
            let failed: Vec<String> = c
                .volumes
                .iter()
                .filter_map(|v| {
                    outcome
                        .iter()
                        .find(|(o, _)| o == v)
                        .and_then(|(_, r)| r.as_ref().err())
                        .map(|e| format!("volume {v:?}: {e}"))
                })
                .collect();
            if failed.is_empty() {
                c.status = RestoreStatus::All;
            } else {
                c.status = RestoreStatus::Failed;
                c.reason = Some(failed.join("; "));
            }
        }
        for (_, r) in outcome {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Sends post-restore to the writers with a selected component and ends the session.
    pub fn post_restore(&mut self) -> Result<()> {
        self.expect(RestoreStep::Restored, "post-restore")?;
        let who = self.crowd.live(true);
        let deadline = Instant::now() + self.crowd.inner.timeouts.event;
        self.crowd.fan_out(WriterEvent::PostRestore, deadline, &who);
        self.step = RestoreStep::Ended;
        self.crowd.end_sessions();
        Ok(())
    }
}

impl Drop for RestoreSession {
    fn drop(&mut self) {
        if self.step != RestoreStep::Ended {
            self.crowd.end_sessions();
        }
    }
}
