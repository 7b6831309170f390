//! The LUN lifecycle: create, snapshot LUN, delete, extend, online and offline; and each LUN's
//! properties.

use std::sync::Arc;

use cow_engine::{SnapshotOptions, Volume};
use parking_lot::RwLock;

use super::state::{check_lun_name, Change, SourceRef};
use super::volumes::{create_stacked, delete_lun_snapshot, snapshot_tag, volume_config};
use super::{lun_busy, mask_text, Array, Core};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::{LunId, MaskSpec};
use crate::model::{LunInfo, LunType, Notification, TransitionState};

impl Array {
    /// Creates LUN `name` of `size` bytes, visible only as `mask` says (VDS `CreateLun`'s
    /// unmasking list; [`MaskSpec::None`] = no one). Its contents read as zeros.
    pub fn create_lun(&self, name: &str, size: u64, mask: &MaskSpec) -> Result<()> {
        check_lun_name(name)?;
        let mask = mask_text(mask)?;
        self.transact(|core| {
            core.state.check_size(size)?;
            core.state.check_new_name(name)?;
            let id = core.state.next_id;
            let bs = core.state.block_size;
            let vol = match self.lun_dir(id) {
                Some(dir) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    Volume::create(&dir, size, volume_config(bs))?
                }
                None => Volume::create_mem(size, volume_config(bs))?,
            };
            let change = Change::CreateLun {
                id,
                name: name.to_string(),
                size,
                mask,
                source: None,
            };
            let notes = self.commit_new_lun(core, id, vol, &change)?;
            Ok(((), notes))
        })
    }

    /// A hardware-style snapshot: new LUN `snapshot_name` holding `source`'s contents as of now,
    /// writable, independent of later writes to either, masked to no one.
    pub fn snapshot_lun(&self, source: &str, snapshot_name: &str) -> Result<()> {
        check_lun_name(snapshot_name)?;
        self.transact(|core| {
            let src_id = core.state.id_of(source)?;
            core.state.check_new_name(snapshot_name)?;
            let size = core.state.lun(src_id)?.size;
            let id = core.state.next_id;
            let src_vol = core.volumes[&src_id].clone();
            let src_vol = src_vol.read();
            let sid = src_vol.create_snapshot(SnapshotOptions {
                writable: true,
                persistent: true,
                pinned: true,
                metadata: snapshot_tag(id),
            })?;
            let undo = |e: Error| {
                // The create's own error is the one to report; a snapshot left behind is removed
                // when the pool is next opened (its tag names no LUN).
                let _ = delete_lun_snapshot(&src_vol, sid);
                e
            };
            let snap = Arc::new(src_vol.snapshot(sid).map_err(|e| undo(e.into()))?);
            let vol = match self.lun_dir(id) {
                Some(dir) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    create_stacked(&dir, snap, core.state.block_size).map_err(undo)?
                }
                None => Volume::on_device(snap, volume_config(core.state.block_size))
                    .map_err(|e| undo(e.into()))?,
            };
            let change = Change::CreateLun {
                id,
                name: snapshot_name.to_string(),
                size,
                mask: String::new(),
                source: Some(SourceRef {
                    lun: src_id,
                    snapshot: sid,
                }),
            };
            let notes = self.commit_new_lun(core, id, vol, &change).map_err(undo)?;
            Ok(((), notes))
        })
    }

    /// Deletes LUN `name`. Refused while snapshot LUNs depend on it (split or delete them first).
    pub fn delete_lun(&self, name: &str) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            if core.busy.contains(&id) {
                return Err(lun_busy(name));
            }
            let source = core.state.lun(id)?.source;
            let vol = core.volumes[&id].clone();
            // The volume's own snapshots other than those of snapshot LUNs are ours to drop; a
            // snapshot LUN depending on it makes `ArrayState::apply` refuse below.
            let notes = Array::commit(core, &Change::DeleteLun { id })?;
            // No I/O admitted before the delete is still running on the volume torn down below.
            self.drain_fences(core);
            core.volumes.remove(&id);
            let vol = Arc::try_unwrap(vol).map(RwLock::into_inner);
            if let Ok(v) = vol {
                let _ = v.prepare_delete(true);
            }
            // The delete is durable; what is left behind if the clean-up fails is removed when the
            // pool is next opened. A source snapshot left behind holds diff space until then, so
            // its failure is reported (after the notifications of the delete).
            let mut cleanup = Ok(());
            if let Some(src) = source {
                if let Some(sv) = core.volumes.get(&src.lun) {
                    if let Err(e) = delete_lun_snapshot(&sv.read(), src.snapshot) {
                        cleanup = Err(Error::new(
                            e.kind().into(),
                            format!(
                                "LUN {name} is deleted, but snapshot {} of its source LUN {} \
                                 could not be (it is removed when the pool is next opened): {}",
                                src.snapshot,
                                src.lun,
                                e.report()
                            ),
                        ));
                    }
                }
            }
            if let Some(dir) = self.lun_dir(id) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok((cleanup, notes))
        })?
    }

    /// Extends LUN `name` to `size` bytes (new space reads as zeros).
    pub fn extend_lun(&self, name: &str, size: u64) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
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
            core.volumes[&id].read().grow(size)?;
            let notes = Array::commit(core, &Change::Extend { id, size })?;
            Ok(((), notes))
        })
    }

    /// Brings LUN `name` online (I/O served) or offline (I/O refused).
    pub fn set_online(&self, name: &str, online: bool) -> Result<()> {
        self.change_lun(name, |id| Change::SetStatus { id, online })
    }

    /// Commits `change`, which creates LUN `id` on `vol`: the volume joins the array, or (on
    /// error) is dropped and its directory removed.
    fn commit_new_lun(
        &self,
        core: &mut Core,
        id: LunId,
        vol: Volume,
        change: &Change,
    ) -> Result<Vec<Notification>> {
        match Array::commit(core, change) {
            Ok(notes) => {
                core.volumes.insert(id, Arc::new(RwLock::new(vol)));
                Ok(notes)
            }
            Err(e) => {
                drop(vol);
                if let Some(dir) = self.lun_dir(id) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                Err(e)
            }
        }
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
        Ok(LunInfo {
            id,
            name: l.name.clone(),
            size: l.size,
            lun_type: LunType::Simple,
            status: l.status,
            health: l.health,
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
        })
    }
}
