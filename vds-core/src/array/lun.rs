//! The LUN lifecycle: create, snapshot LUN, delete, extend, online and offline; and each LUN's
//! properties.

use std::sync::Arc;

use cow_engine::{SnapshotOptions, Volume};
use parking_lot::RwLock;

use super::state::{check_lun_name, Change, Intent, SourceRef};
use super::volumes::{
    create_file_volume, create_stacked, delete_tagged, remove_lun_dir, snapshot_tag,
    unpin_and_delete, volume_config,
};
use super::{checked_mask, lun_busy, Array, Core};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::{LunId, MaskSpec};
use crate::model::{Health, LunInfo, LunStatus, LunType, Notification, TransitionState};

/// Options of a new LUN ([`Array::create_lun_with`]); [`Default`] is what
/// [`Array::create_lun`] makes: a persistent LUN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LunOptions {
    /// A volatile LUN: its engine volume keeps no metadata journal. Its data lives in its origin
    /// file, written in place and durable on flush, so its writes survive a reopen (and a crash)
    /// as a persistent LUN's do; but its engine snapshots and diff area live only until the pool
    /// closes. So nothing the pool records may stand on one of its snapshots: a snapshot LUN,
    /// snapshot set, clone or exposed engine shadow of a volatile LUN is refused
    /// ([`ErrorKind::BadState`]); engine shadows of it are allowed and are gone after a reopen
    /// (a revert to one that a crash interrupted cannot be finished: the LUN keeps what the
    /// revert had copied). Cheaper writes: no journal commit for the first write of a block
    /// after a snapshot.
    pub volatile: bool,
}

impl Array {
    /// Creates LUN `name` of `size` bytes, visible only as `mask` says (VDS `CreateLun`'s
    /// unmasking list; [`MaskSpec::None`] = no one). Its contents read as zeros.
    ///
    /// Crash-atomic: an intent record is durable before the LUN's volume directory is created,
    /// so that an open after a crash removes it unless the LUN's record committed. On error
    /// nothing is left behind (the LUN's id stays used).
    pub fn create_lun(&self, name: &str, size: u64, mask: &MaskSpec) -> Result<()> {
        self.create_lun_with(name, size, mask, LunOptions::default())
    }

    /// Creates LUN `name` like [`Array::create_lun`], with `options` (a volatile LUN:
    /// [`LunOptions::volatile`]).
    pub fn create_lun_with(
        &self,
        name: &str,
        size: u64,
        mask: &MaskSpec,
        options: LunOptions,
    ) -> Result<()> {
        self.create_lun_filled(name, size, mask, options, false)
            .map(|_| ())
    }

    /// [`Array::create_lun`], returning the new LUN's id; with `fill`, the LUN is created under
    /// a `fill` intent, which its creator ends ([`Change::Done`]) once the LUN holds its
    /// contents (an import): until then an open after a crash deletes it.
    pub(super) fn create_lun_filled(
        &self,
        name: &str,
        size: u64,
        mask: &MaskSpec,
        options: LunOptions,
        fill: bool,
    ) -> Result<LunId> {
        check_lun_name(name)?;
        let mask = checked_mask(mask)?;
        self.transact(|core| {
            core.state.check_size(size)?;
            core.state.check_new_name(name)?;
            let id = core.state.next_id;
            let bs = core.state.block_size;
            let change = Change::CreateLun {
                id,
                name: name.to_string(),
                size,
                mask,
                source: None,
                volatile: options.volatile,
            };
            self.begin_create(core, id, None, fill)?;
            let vol = match self.lun_dir(id) {
                Some(dir) => create_file_volume(&dir, size, bs, options.volatile),
                None => Volume::create_mem(size, volume_config(bs)).map_err(Error::from),
            };
            let vol = vol.map_err(|e| self.roll_back_create(core, id, None, e))?;
            let notes = self.commit_new_lun(core, id, vol, None, &change)?;
            Ok((id, notes))
        })
    }

    /// A hardware-style snapshot: new LUN `snapshot_name` holding `source`'s contents as of now,
    /// writable, independent of later writes to either, masked to no one. Crash-atomic as
    /// [`Array::create_lun`]: the intent names the engine snapshot too.
    pub fn snapshot_lun(&self, source: &str, snapshot_name: &str) -> Result<()> {
        self.snapshot_lun_filled(source, snapshot_name, false)
            .map(|_| ())
    }

    /// [`Array::snapshot_lun`], returning the new LUN's id; with `fill` under a `fill` intent,
    /// as [`Array::create_lun_filled`] (a clone, ended once split).
    pub(super) fn snapshot_lun_filled(
        &self,
        source: &str,
        snapshot_name: &str,
        fill: bool,
    ) -> Result<LunId> {
        check_lun_name(snapshot_name)?;
        self.transact(|core| {
            let src_id = core.state.id_of(source)?;
            check_not_damaged(core, src_id, source)?;
            check_not_volatile(core, src_id, "a snapshot LUN")?;
            core.state.check_new_name(snapshot_name)?;
            let size = core.state.lun(src_id)?.size;
            let id = core.state.next_id;
            let bs = core.state.block_size;
            let src_vol = core.volumes[&src_id].clone();
            self.begin_create(core, id, Some(src_id), fill)?;
            let made = (|| {
                let src_vol = src_vol.read();
                let sid = src_vol.create_snapshot(SnapshotOptions {
                    writable: true,
                    persistent: true,
                    pinned: true,
                    metadata: snapshot_tag(id),
                })?;
                let stacked = (|| {
                    let snap = Arc::new(src_vol.snapshot(sid)?);
                    match self.lun_dir(id) {
                        Some(dir) => create_stacked(&dir, snap, bs),
                        None => Ok(Volume::on_device(snap, volume_config(bs))?),
                    }
                })();
                stacked.map(|v| (sid, v))
            })();
            let (sid, vol) = made.map_err(|e| self.roll_back_create(core, id, Some(src_id), e))?;
            let change = Change::CreateLun {
                id,
                name: snapshot_name.to_string(),
                size,
                mask: MaskSpec::None,
                source: Some(SourceRef {
                    lun: src_id,
                    snapshot: sid,
                }),
                volatile: false,
            };
            let notes = self.commit_new_lun(core, id, vol, Some(src_id), &change)?;
            Ok((id, notes))
        })
    }

    /// Deletes LUN `name`. Refused while snapshot LUNs depend on it (split or delete them first).
    /// A damaged LUN can be deleted. The delete is durable first, with an intent naming what is
    /// left to remove (the volume directory, the snapshot a snapshot LUN stood on); an open after
    /// a crash finishes the removal.
    pub fn delete_lun(&self, name: &str) -> Result<()> {
        self.transact(|core| self.delete_lun_in(core, name))?
    }

    /// [`Array::delete_lun`] inside a transaction: the delete's outcome (an error if its
    /// clean-up failed, the delete being durable) and its notifications.
    fn delete_lun_in(
        &self,
        core: &mut Core,
        name: &str,
    ) -> Result<(Result<()>, Vec<Notification>)> {
        let id = core.state.id_of(name)?;
        self.delete_luns_in(core, &[id], Change::DeleteLun { id })
    }

    /// Deletes LUNs `ids` by `change` (one record deleting them all) inside a transaction: the
    /// record is durable first, leaving each LUN a `remove_lun` intent; then each LUN's volume is
    /// torn down and what it left (its directory, the snapshot it stood on) removed. Returns the
    /// clean-up's outcome (the first failure, the delete being durable; the next open finishes
    /// what is left) and the delete's notifications.
    pub(super) fn delete_luns_in(
        &self,
        core: &mut Core,
        ids: &[LunId],
        change: Change,
    ) -> Result<(Result<()>, Vec<Notification>)> {
        let mut gone = Vec::new();
        for &id in ids {
            let l = core.state.lun(id)?;
            if core.busy.contains(&id) {
                return Err(lun_busy(&l.name));
            }
            gone.push((id, l.name.clone(), core.volumes[&id].clone()));
        }
        // The volume's own snapshots other than those of snapshot LUNs are ours to drop; a
        // snapshot LUN depending on it makes `ArrayState::apply` refuse below.
        let notes = Array::commit(core, &change)?;
        // No I/O admitted before the delete is still running on the volumes torn down below.
        self.drain_fences(core);
        let mut cleanup = Ok(());
        for (id, name, vol) in gone {
            core.volumes.remove(&id);
            core.damaged.remove(&id);
            // Every handle of the volume fails its I/O from now on instead of writing into the
            // files removed below; a snapshot LUN's volume lets go of the source snapshot
            // deleted below.
            let _ = vol.read().retire(true);
            drop(vol);
            // What is left to remove, as the intent the delete left names it.
            let source = match core.state.intents.get(&id) {
                Some(Intent::RemoveLun { source, .. }) => *source,
                _ => None,
            };
            let cleaned = (|| {
                if let Some(src) = source {
                    if let Some(sv) = core.volumes.get(&src.lun) {
                        unpin_and_delete(&sv.read(), src.snapshot)?;
                    }
                }
                match self.lun_dir(id) {
                    Some(dir) => remove_lun_dir(&dir),
                    None => Ok(()),
                }
            })();
            // A clean-up that failed is reported (after the delete's notifications): what it
            // left behind (a source snapshot holding diff space, a directory) stays until the
            // next open finishes the intent.
            match cleaned {
                Ok(()) => {
                    // Not this call's failure if it fails: the next open records it.
                    let _ = Array::commit(core, &Change::Done { id });
                }
                Err(e) => {
                    if cleanup.is_ok() {
                        cleanup = Err(Error::new(
                            e.kind(),
                            format!(
                                "LUN {name:?} is deleted, but its clean-up failed (finished when \
                                 the pool is next opened): {}",
                                e.report()
                            ),
                        ));
                    }
                }
            }
        }
        Ok((cleanup, notes))
    }

    /// Extends LUN `name` to `size` bytes (new space reads as zeros). Crash-atomic: an intent is
    /// durable before the volume grows; an open after a crash adopts the volume's size if it
    /// grew, and forgets the intent if it did not.
    pub fn extend_lun(&self, name: &str, size: u64) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            check_not_damaged(core, id, name)?;
            core.state.check_size(size)?;
            if core.state.lun(id)?.source.is_some() {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "snapshot LUN {name:?} must be split from its source before it can grow"
                    ),
                ));
            }
            core.state.check_extend(id, size)?;
            Array::commit(
                core,
                &Change::Begin {
                    intent: Intent::Extend { id, size },
                },
            )?;
            let grown = core.volumes[&id].read().grow(size);
            if let Err(e) = grown {
                // The volume did not grow; if the intent cannot be ended now, the next open
                // ends it.
                let _ = Array::commit(core, &Change::Done { id });
                return Err(e.into());
            }
            // If this fails, the volume has grown under a pending intent: the next open adopts
            // its size.
            let notes = Array::commit(core, &Change::Extend { id, size })?;
            Ok(((), notes))
        })
    }

    /// Brings LUN `name` online (I/O served) or offline (I/O refused).
    pub fn set_online(&self, name: &str, online: bool) -> Result<()> {
        self.change_lun(name, |id| Change::SetStatus { id, online })
    }

    /// Records the intent to create LUN `id` (a snapshot LUN of `source`; with `fill`, one to be
    /// filled before it counts as made: [`Intent::Fill`]), durably, before anything of it exists
    /// on disk. Refused if `luns/<id>` exists (open moved everything it
    /// could not account for away; something else put it there, and it is not ours to remove).
    pub(super) fn begin_create(
        &self,
        core: &mut Core,
        id: LunId,
        source: Option<LunId>,
        fill: bool,
    ) -> Result<()> {
        if let Some(dir) = self.lun_dir(id) {
            if dir.exists() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("LUN id {id}'s volume directory exists already (left untouched)"),
                )
                .with_path(dir));
            }
        }
        let intent = if fill {
            Intent::Fill { id, source }
        } else {
            Intent::CreateLun { id, source }
        };
        Array::commit(core, &Change::Begin { intent })?;
        Ok(())
    }

    /// Rolls back the create of LUN `id` that failed with `e`: its engine snapshot (on
    /// `source`'s volume) and its directory are removed, and the intent is ended. Anything that
    /// fails here is left to the next open, which the intent tells what to remove. Returns `e`.
    pub(super) fn roll_back_create(
        &self,
        core: &mut Core,
        id: LunId,
        source: Option<LunId>,
        e: Error,
    ) -> Error {
        let undone = (|| {
            if let Some(src) = source.and_then(|s| core.volumes.get(&s)) {
                delete_tagged(&src.read(), id)?;
            }
            match self.lun_dir(id) {
                Some(dir) => remove_lun_dir(&dir),
                None => Ok(()),
            }
        })();
        if undone.is_ok() {
            let _ = Array::commit(core, &Change::Done { id });
        }
        e
    }

    /// Commits `change`, which creates LUN `id` on `vol`: the volume joins the array, or (on
    /// error) the create is rolled back.
    fn commit_new_lun(
        &self,
        core: &mut Core,
        id: LunId,
        vol: Volume,
        source: Option<LunId>,
        change: &Change,
    ) -> Result<Vec<Notification>> {
        match Array::commit(core, change) {
            Ok(notes) => {
                core.volumes.insert(id, Arc::new(RwLock::new(vol)));
                Ok(notes)
            }
            Err(e) => {
                drop(vol);
                Err(self.roll_back_create(core, id, source, e))
            }
        }
    }

    /// The LUNs whose volume did not open when the pool did, by name, with why (the error's
    /// text). Their I/O is refused with [`ErrorKind::Corrupt`]; they can be deleted. Empty when
    /// every LUN is sound.
    pub fn damaged_luns(&self) -> Vec<(String, String)> {
        let core = self.inner.core.read();
        core.damaged
            .iter()
            .filter_map(|(id, why)| Some((core.state.luns.get(id)?.name.clone(), why.clone())))
            .collect()
    }

    /// Every LUN's properties, by name.
    pub fn luns(&self) -> Vec<LunInfo> {
        let core = self.inner.core.read();
        let mut v: Vec<LunInfo> = core
            .state
            .luns
            .keys()
            .filter_map(|&id| Self::info(&core, id).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// LUN `name`'s properties.
    pub fn lun(&self, name: &str) -> Result<LunInfo> {
        let core = self.inner.core.read();
        Self::info(&core, core.state.id_of(name)?)
    }

    /// The properties of LUN `id`.
    fn info(core: &Core, id: LunId) -> Result<LunInfo> {
        let l = core.state.lun(id)?;
        let damaged = core.damaged.contains_key(&id);
        Ok(LunInfo {
            id,
            name: l.name.clone(),
            size: l.size,
            lun_type: LunType::Simple,
            status: if damaged { LunStatus::Failed } else { l.status },
            health: if damaged { Health::Failed } else { l.health },
            transition: if core.busy.contains(&id) {
                TransitionState::Reconfiguring
            } else {
                TransitionState::Stable
            },
            mask: core.state.mask.spec(id)?.to_string(),
            number: core.state.mask.default_number(id)?,
            source: l
                .source
                .and_then(|s| core.state.luns.get(&s.lun))
                .map(|s| s.name.clone()),
            volatile: l.volatile,
        })
    }
}

/// Refuses to make `what` (something the pool records, standing on an engine snapshot) of LUN
/// `id` if it is volatile: its snapshots do not survive the pool's close.
pub(super) fn check_not_volatile(core: &Core, id: LunId, what: &str) -> Result<()> {
    let l = core.state.lun(id)?;
    if l.volatile {
        return Err(Error::new(
            ErrorKind::BadState,
            format!(
                "LUN {:?} is volatile: its snapshots live only until the pool closes, so {what} \
                 of it cannot be made",
                l.name
            ),
        ));
    }
    Ok(())
}

/// Refuses an operation on LUN `id` (`name`) if its volume is damaged.
pub(super) fn check_not_damaged(core: &Core, id: LunId, name: &str) -> Result<()> {
    match core.damaged.get(&id) {
        Some(why) => Err(Error::new(
            ErrorKind::Corrupt,
            format!("LUN {name:?} is damaged and can only be deleted: {why}"),
        )),
        None => Ok(()),
    }
}
