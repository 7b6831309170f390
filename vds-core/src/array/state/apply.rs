//! [`ArrayState::apply`]: each [`Change`] validated and applied by a function of its own, the
//! same live (in a transaction) and on replay (when a pool opens). Each function checks
//! everything before it changes anything: on error the state is as it was.

use std::collections::BTreeSet;

use super::TargetInfo;
use super::{check_lun_name, check_portal, ArrayState, Change, Intent, LunRec, SourceRef};
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{check_name, LunId, MaskSpec};
use crate::model::{LunStatus, Notification};

impl ArrayState {
    /// Validates and applies `change`; on error nothing changed.
    pub(crate) fn apply(&mut self, change: &Change) -> Result<Vec<Notification>> {
        match change {
            Change::CreateLun {
                id,
                name,
                size,
                mask,
                source,
                volatile,
            } => self.apply_create_lun(*id, name, *size, mask, *source, *volatile),
            Change::DeleteLun { id } => self.apply_delete_lun(*id),
            Change::SetMask { id, mask } => self.apply_set_mask(*id, mask),
            Change::SetHostNumber { id, host, number } => {
                self.apply_set_host_number(*id, host, *number)
            }
            Change::SetGroup { name, members } => self.apply_set_group(name, members),
            Change::DeleteGroup { name } => self.apply_delete_group(name),
            Change::SetHost { name, initiators } => self.apply_set_host(name, initiators),
            Change::DeleteHost { name } => self.apply_delete_host(name),
            Change::Swap { from, to } => self.apply_swap(*from, *to),
            Change::Extend { id, size } => self.apply_extend(*id, *size),
            Change::SetStatus { id, online } => self.apply_set_status(*id, *online),
            Change::Detach { id } => self.apply_detach(*id),
            Change::CreateTarget { name, iqn, portals } => {
                self.apply_create_target(name, iqn, portals)
            }
            Change::DeleteTarget { name } => self.apply_delete_target(name),
            Change::AssociateTargets { id, targets, add } => {
                self.apply_associate_targets(*id, targets, *add)
            }
            Change::Begin { intent } => self.apply_begin(*intent),
            Change::Done { id } => self.apply_done(*id),
            Change::SetLunMetadata { id, key, value } => {
                self.apply_set_lun_metadata(*id, key, value.as_deref())
            }
            Change::SetPoolMetadata { key, value } => {
                self.apply_set_pool_metadata(key, value.as_deref())
            }
            Change::SnapshotSet {
                set,
                luns,
                metadata,
            } => self.apply_snapshot_set(set, luns, metadata),
            Change::BreakShadow { id } => self.apply_break_shadow(*id),
            Change::DeleteSnapshotSet { set, ids } => self.apply_delete_snapshot_set(set, ids),
            Change::EngineShadowSet { set, luns } => self.apply_engine_shadow_set(*set, luns),
            Change::ExposeShadow {
                id,
                name,
                size,
                source,
            } => self.apply_expose_shadow(*id, name, *size, *source),
            Change::Batch { changes } => self.apply_batch(changes),
        }
    }

    /// Applies `changes` in order, all or none: on a copy of the state, which replaces it only
    /// once every change has applied.
    fn apply_batch(&mut self, changes: &[Change]) -> Result<Vec<Notification>> {
        let mut next = self.clone();
        let mut notes = Vec::new();
        for c in changes {
            if matches!(
                c,
                Change::Batch { .. } | Change::Begin { .. } | Change::Done { .. }
            ) {
                return Err(Error::invalid(format!(
                    "a batch holds a change that cannot be batched: {c:?}"
                )));
            }
            notes.extend(next.apply(c)?);
        }
        *self = next;
        Ok(notes)
    }

    /// Engine shadow set `set` taken: ends the `engine_shadow` intent of each of its LUNs.
    fn apply_engine_shadow_set(
        &mut self,
        set: u64,
        luns: &[(LunId, cow_engine::SnapshotId)],
    ) -> Result<Vec<Notification>> {
        if luns.is_empty() {
            return Err(Error::invalid(format!(
                "engine shadow set {set} has no LUNs"
            )));
        }
        for (id, _) in luns {
            if self.intents.get(id) != Some(&Intent::EngineShadow { id: *id, set }) {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("engine shadow set {set}: LUN id {id} has no engine_shadow intent"),
                ));
            }
        }
        let mut notes = Vec::new();
        for (id, _) in luns {
            self.intents.remove(id);
            notes.push(Notification::LunModify {
                name: self.lun(*id)?.name.clone(),
            });
        }
        Ok(notes)
    }

    /// LUN `id` exposing engine shadow `source`, under its `create_lun` intent: masked to no
    /// one, read-only until broken, its metadata naming the shadow.
    fn apply_expose_shadow(
        &mut self,
        id: LunId,
        name: &str,
        size: u64,
        source: SourceRef,
    ) -> Result<Vec<Notification>> {
        check_lun_name(name)?;
        self.check_size(size)?;
        self.check_new_name(name)?;
        self.lun(source.lun)?;
        if !matches!(self.intents.get(&id), Some(Intent::CreateLun { .. })) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("exposed LUN {name:?} (id {id}) has no create intent"),
            ));
        }
        let delta = self.mask.add_lun(id, MaskSpec::None, None)?;
        let mut rec = LunRec::new(id, name.to_string(), size, LunStatus::Online, Some(source));
        rec.metadata.insert(
            super::metadata::EXPOSES_KEY.to_string(),
            source.snapshot.get().to_string(),
        );
        rec.shadow = true;
        self.luns.insert(id, rec);
        self.names.insert(name.to_string(), id);
        self.intents.remove(&id);
        let mut notes = vec![Notification::LunArrive {
            name: name.to_string(),
        }];
        notes.extend(self.mask_note(delta));
        Ok(notes)
    }

    /// Creates the shadow LUNs of snapshot set `set`, all or none: each under its `create_lun`
    /// intent, masked to no one, read-only until broken, with `metadata` and the set key.
    fn apply_snapshot_set(
        &mut self,
        set: &str,
        luns: &[super::SetLun],
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Notification>> {
        use super::metadata::{check_set, set as put, LUN_LIMITS, SET_KEY};
        if luns.is_empty() {
            return Err(Error::invalid(format!("snapshot set {set:?} has no LUNs")));
        }
        let mut meta = std::collections::BTreeMap::new();
        let whose = format!("snapshot set {set:?}");
        for (k, v) in metadata.iter() {
            if k == SET_KEY {
                return Err(Error::invalid(format!(
                    "{whose}: key {SET_KEY:?} is the array's"
                )));
            }
            check_set(&whose, &meta, k, Some(v), LUN_LIMITS)?;
            put(&mut meta, k, Some(v));
        }
        check_set(&whose, &meta, SET_KEY, Some(set), LUN_LIMITS)?;
        put(&mut meta, SET_KEY, Some(set));
        let mut names = BTreeSet::new();
        for l in luns {
            check_lun_name(&l.name)?;
            self.check_size(l.size)?;
            self.check_new_name(&l.name)?;
            if !names.insert(l.name.as_str()) {
                return Err(Error::invalid(format!(
                    "snapshot set {set:?} names LUN {:?} twice",
                    l.name
                )));
            }
            if !matches!(self.intents.get(&l.id), Some(Intent::CreateLun { .. })) {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("snapshot set {set:?}: LUN id {} has no create intent", l.id),
                ));
            }
            self.lun(l.source.lun)?;
        }
        let mut notes = Vec::new();
        for l in luns {
            let delta = self.mask.add_lun(l.id, MaskSpec::None, None)?;
            let mut rec = LunRec::new(
                l.id,
                l.name.clone(),
                l.size,
                LunStatus::Online,
                Some(l.source),
            );
            rec.metadata = meta.clone();
            rec.shadow = true;
            self.luns.insert(l.id, rec);
            self.names.insert(l.name.clone(), l.id);
            self.next_id = self.next_id.max(l.id + 1);
            self.intents.remove(&l.id);
            notes.push(Notification::LunArrive {
                name: l.name.clone(),
            });
            notes.extend(self.mask_note(delta));
        }
        Ok(notes)
    }

    /// Shadow LUN `id` becomes an ordinary read-write LUN, out of its set.
    fn apply_break_shadow(&mut self, id: LunId) -> Result<Vec<Notification>> {
        let l = self.lun(id)?;
        if !l.shadow {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("LUN {:?} is not a shadow LUN of a snapshot set", l.name),
            ));
        }
        let l = self.luns.get_mut(&id).expect("looked up above");
        l.shadow = false;
        l.metadata.remove(super::metadata::SET_KEY);
        Ok(vec![Notification::LunModify {
            name: l.name.clone(),
        }])
    }

    /// Sets (or removes, for `None`) key `key` of LUN `id`'s metadata, within the limits.
    fn apply_set_lun_metadata(
        &mut self,
        id: LunId,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Notification>> {
        let l = self.lun(id)?;
        let what = format!("LUN {:?}", l.name);
        super::metadata::check_set(&what, &l.metadata, key, value, super::metadata::LUN_LIMITS)?;
        let name = l.name.clone();
        let l = self.luns.get_mut(&id).expect("looked up above");
        super::metadata::set(&mut l.metadata, key, value);
        Ok(vec![Notification::LunMetadataChanged {
            name,
            key: key.to_string(),
            value: value.map(str::to_string),
        }])
    }

    /// Sets (or removes, for `None`) key `key` of the pool's metadata, within the limits.
    fn apply_set_pool_metadata(
        &mut self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Notification>> {
        super::metadata::check_set(
            "the pool",
            &self.pool_metadata,
            key,
            value,
            super::metadata::POOL_LIMITS,
        )?;
        super::metadata::set(&mut self.pool_metadata, key, value);
        Ok(vec![Notification::PoolMetadataChanged {
            key: key.to_string(),
            value: value.map(str::to_string),
        }])
    }

    /// Records `intent`: refused while another is under way on its LUN. A LUN being created takes
    /// its id now (ids are never reused, even by a create rolled back).
    fn apply_begin(&mut self, intent: Intent) -> Result<Vec<Notification>> {
        let id = intent.lun();
        if let Some(other) = self.intents.get(&id) {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("LUN id {id} has an operation under way ({other:?})"),
            ));
        }
        match intent {
            Intent::CreateLun { source, .. } | Intent::Fill { source, .. } => {
                if id < self.next_id {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("LUN id {id} reused"),
                    ));
                }
                if let Some(s) = source {
                    self.lun(s)?;
                }
                self.next_id = id + 1;
            }
            Intent::Extend { size, .. } => self.check_extend(id, size)?,
            Intent::EngineShadow { set, .. } => {
                self.lun(id)?;
                // Set numbers come from the LUN ids' counter: never reused either.
                self.next_id = self.next_id.max(set + 1);
            }
            Intent::Revert { .. } => {
                self.lun(id)?;
            }
            Intent::Copy { source, .. } => {
                self.lun(id)?;
                self.lun(source)?;
            }
            Intent::RemoveLun { .. } => {
                if self.luns.contains_key(&id) {
                    return Err(Error::new(
                        ErrorKind::BadState,
                        format!("LUN id {id} is not deleted"),
                    ));
                }
            }
        }
        self.intents.insert(id, intent);
        Ok(Vec::new())
    }

    /// The operation under way on LUN `id` is over.
    fn apply_done(&mut self, id: LunId) -> Result<Vec<Notification>> {
        self.intents.remove(&id).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no operation under way on LUN id {id}"),
            )
        })?;
        Ok(Vec::new())
    }

    /// A new LUN `id` (ids only grow), online, with its mask; a snapshot LUN names its `source`;
    /// a volatile LUN (`volatile`) keeps no metadata journal.
    fn apply_create_lun(
        &mut self,
        id: LunId,
        name: &str,
        size: u64,
        mask: &MaskSpec,
        source: Option<SourceRef>,
        volatile: bool,
    ) -> Result<Vec<Notification>> {
        check_lun_name(name)?;
        self.check_size(size)?;
        self.check_new_name(name)?;
        let begun = matches!(self.intents.get(&id), Some(Intent::CreateLun { .. }));
        // A LUN created to be filled keeps its intent until it is filled.
        let filling = matches!(self.intents.get(&id), Some(Intent::Fill { .. }));
        if id < self.next_id && !begun && !filling {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("LUN id {id} reused"),
            ));
        }
        if let Some(s) = source {
            self.lun(s.lun)?;
        }
        let delta = self.mask.add_lun(id, mask.clone(), None)?;
        let mut rec = LunRec::new(id, name.to_string(), size, LunStatus::Online, source);
        rec.volatile = volatile;
        self.luns.insert(id, rec);
        self.names.insert(name.to_string(), id);
        self.next_id = self.next_id.max(id + 1);
        if begun {
            self.intents.remove(&id);
        }
        let mut notes = vec![Notification::LunArrive {
            name: name.to_string(),
        }];
        notes.extend(self.mask_note(delta));
        Ok(notes)
    }

    /// Deletes snapshot set `set`: every one of `ids` (each an unbroken shadow LUN of `set`,
    /// which must name them all), or none.
    fn apply_delete_snapshot_set(&mut self, set: &str, ids: &[LunId]) -> Result<Vec<Notification>> {
        use super::metadata::SET_KEY;
        let members: BTreeSet<LunId> = self
            .luns
            .values()
            .filter(|l| l.shadow && l.metadata.get(SET_KEY).is_some_and(|s| s == set))
            .map(|l| l.id)
            .collect();
        let given: BTreeSet<LunId> = ids.iter().copied().collect();
        if members.is_empty() || given != members || given.len() != ids.len() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "snapshot set {set:?} has shadow LUNs {members:?}, not the LUNs {ids:?} named"
                ),
            ));
        }
        for &id in ids {
            self.check_deletable(id, &given)?;
        }
        let mut notes = Vec::new();
        for &id in ids {
            notes.extend(self.apply_delete_lun(id)?);
        }
        Ok(notes)
    }

    /// Refuses to delete LUN `id` (with those of `with`) while a snapshot LUN not among them
    /// depends on it.
    fn check_deletable(&self, id: LunId, with: &BTreeSet<LunId>) -> Result<()> {
        let name = &self.lun(id)?.name;
        if let Some(dep) = self
            .luns
            .values()
            .find(|l| l.is_snapshot_of(id) && !with.contains(&l.id))
        {
            return Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "snapshot LUN {:?} depends on LUN {name:?}; split or delete it first",
                    dep.name
                ),
            ));
        }
        Ok(())
    }

    /// Deletes LUN `id`: refused while a snapshot LUN depends on it.
    fn apply_delete_lun(&mut self, id: LunId) -> Result<Vec<Notification>> {
        self.check_deletable(id, &BTreeSet::new())?;
        let name = self.lun(id)?.name.clone();
        let delta = self.mask.remove_lun(id)?;
        let mut notes: Vec<Notification> = self.mask_note(delta).into_iter().collect();
        self.unassociate(id);
        // A LUN exposing an engine shadow does not own it: the shadow stays.
        let source = self
            .luns
            .remove(&id)
            .filter(|l| !l.metadata.contains_key(super::metadata::EXPOSES_KEY))
            .and_then(|l| l.source);
        self.names.remove(&name);
        // What the LUN's volume leaves behind is removed next, under this intent.
        self.intents.insert(id, Intent::RemoveLun { id, source });
        notes.push(Notification::LunDepart { name });
        Ok(notes)
    }

    /// Replaces LUN `id`'s unmasking list.
    fn apply_set_mask(&mut self, id: LunId, mask: &MaskSpec) -> Result<Vec<Notification>> {
        self.lun(id)?;
        let delta = self.mask.set_mask(id, mask.clone())?;
        Ok(self.mask_notes([delta]))
    }

    /// Sets the LUN number `host` sees LUN `id` at.
    fn apply_set_host_number(
        &mut self,
        id: LunId,
        host: &InitiatorId,
        number: u32,
    ) -> Result<Vec<Notification>> {
        self.lun(id)?;
        let delta = self.mask.set_host_number(id, host, number)?;
        Ok(self.mask_notes([delta]))
    }

    /// Creates or replaces initiator group `name`: refused over a host.
    fn apply_set_group(
        &mut self,
        name: &str,
        members: &[InitiatorId],
    ) -> Result<Vec<Notification>> {
        if self.hosts.contains(name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name:?} is a host, not an initiator group"),
            ));
        }
        let deltas = self
            .mask
            .set_group(name, members.iter().cloned().collect())?;
        Ok(self.mask_notes(deltas))
    }

    /// Deletes initiator group `name`: refused for a host.
    fn apply_delete_group(&mut self, name: &str) -> Result<Vec<Notification>> {
        if self.hosts.contains(name) {
            return Err(Error::invalid(format!(
                "{name:?} is a host: delete it as a host"
            )));
        }
        self.mask.delete_group(name)?;
        Ok(Vec::new())
    }

    /// Creates or replaces host `name` (a group of its own): refused over an initiator group, or
    /// when one of its initiators belongs to another host.
    fn apply_set_host(
        &mut self,
        name: &str,
        initiators: &[InitiatorId],
    ) -> Result<Vec<Notification>> {
        if self.mask.group(name).is_some() && !self.hosts.contains(name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name:?} is an initiator group, not a host"),
            ));
        }
        let ids: BTreeSet<InitiatorId> = initiators.iter().cloned().collect();
        if let Some((other, _)) = self.hosts.iter().filter(|h| *h != name).find_map(|h| {
            let m = self.mask.group(h)?;
            ids.iter()
                .find(|i| m.contains(*i))
                .map(|i| (h.clone(), i.clone()))
        }) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("an initiator of {name:?} already belongs to host {other:?}"),
            ));
        }
        let deltas = self.mask.set_group(name, ids)?;
        self.hosts.insert(name.to_string());
        Ok(self.mask_notes(deltas))
    }

    /// Deletes host `name`.
    fn apply_delete_host(&mut self, name: &str) -> Result<Vec<Notification>> {
        if !self.hosts.contains(name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no host named {name:?}"),
            ));
        }
        self.mask.delete_group(name)?;
        self.hosts.remove(name);
        Ok(Vec::new())
    }

    /// The fast-recovery swap of LUN `from`'s hosts and numbers to LUN `to`.
    fn apply_swap(&mut self, from: LunId, to: LunId) -> Result<Vec<Notification>> {
        for id in [from, to] {
            let l = self.lun(id)?;
            if l.shadow {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "LUN {:?} is a shadow LUN of a snapshot set: break it first",
                        l.name
                    ),
                ));
            }
        }
        let deltas = self.mask.swap(from, to)?;
        Ok(self.mask_notes(deltas))
    }

    /// LUN `id` grows to `size` bytes.
    fn apply_extend(&mut self, id: LunId, size: u64) -> Result<Vec<Notification>> {
        self.check_extend(id, size)?;
        if matches!(self.intents.get(&id), Some(Intent::Extend { .. })) {
            self.intents.remove(&id);
        }
        self.modify_lun(id, |l| l.size = size)
    }

    /// LUN `id` goes online or offline.
    fn apply_set_status(&mut self, id: LunId, online: bool) -> Result<Vec<Notification>> {
        self.modify_lun(id, |l| {
            l.status = if online {
                LunStatus::Online
            } else {
                LunStatus::Offline
            }
        })
    }

    /// Snapshot LUN `id` stands on its own volume now (split from its source).
    fn apply_detach(&mut self, id: LunId) -> Result<Vec<Notification>> {
        self.modify_lun(id, |l| l.source = None)
    }

    /// A new iSCSI target `name` with iSCSI name `iqn` and its portals.
    fn apply_create_target(
        &mut self,
        name: &str,
        iqn: &str,
        portals: &[String],
    ) -> Result<Vec<Notification>> {
        check_name("target", name)?;
        let id = InitiatorId::parse(iqn)?;
        if !matches!(id, InitiatorId::Iqn(_)) {
            return Err(Error::invalid(format!(
                "target name {iqn:?} is not an iqn. name"
            )));
        }
        for p in portals {
            check_portal(p)?;
        }
        if self.targets.contains_key(name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a target named {name:?} exists"),
            ));
        }
        self.targets.insert(
            name.to_string(),
            TargetInfo {
                name: name.to_string(),
                iqn: id.to_string(),
                portals: portals.to_vec(),
                luns: BTreeSet::new(),
            },
        );
        Ok(Vec::new())
    }

    /// Deletes target `name`: refused while LUNs are associated with it.
    fn apply_delete_target(&mut self, name: &str) -> Result<Vec<Notification>> {
        let t = self.target(name)?;
        if !t.luns.is_empty() {
            return Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "target {name:?} still has {} LUN(s) associated",
                    t.luns.len()
                ),
            ));
        }
        self.targets.remove(name);
        Ok(Vec::new())
    }

    /// Associates LUN `id` with `targets`, replacing its associations unless `add`.
    fn apply_associate_targets(
        &mut self,
        id: LunId,
        targets: &[String],
        add: bool,
    ) -> Result<Vec<Notification>> {
        let lun_name = self.lun(id)?.name.clone();
        for t in targets {
            self.target(t)?;
        }
        if !add {
            // Replace-style, as IVdsLunIscsi::AssociateTargets.
            self.unassociate(id);
        }
        for t in targets {
            self.targets.get_mut(t).expect("checked").luns.insert(id);
        }
        Ok(vec![Notification::LunModify { name: lun_name }])
    }

    /// Changes LUN `id`'s record with `f`, announced as a modification.
    fn modify_lun(&mut self, id: LunId, f: impl FnOnce(&mut LunRec)) -> Result<Vec<Notification>> {
        let l = self.lun_mut(id)?;
        f(l);
        Ok(vec![Notification::LunModify {
            name: l.name.clone(),
        }])
    }

    /// Removes LUN `id` from every target.
    fn unassociate(&mut self, id: LunId) {
        for t in self.targets.values_mut() {
            t.luns.remove(&id);
        }
    }
}
