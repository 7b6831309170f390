//! The array's metadata as pure data: LUN records, the mask table, groups; the changes that move it,
//! applied identically live and on replay; and its serialisable checkpoint form.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{check_name, LunId, MaskDelta, MaskSpec, MaskTable};
use crate::model::{Health, LunStatus, Notification};

/// The checkpoint format version.
pub(crate) const STATE_VERSION: u32 = 1;

/// Where a snapshot LUN's data comes from until it is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceRef {
    /// The LUN it is a snapshot of.
    pub(crate) lun: LunId,
    /// The snapshot id inside that LUN's volume.
    pub(crate) snapshot: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LunRec {
    pub(crate) id: LunId,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) status: LunStatus,
    pub(crate) health: Health,
    pub(crate) source: Option<SourceRef>,
}

impl LunRec {
    /// True if this LUN is a snapshot LUN of LUN `id`.
    pub(crate) fn is_snapshot_of(&self, id: LunId) -> bool {
        // The discriminant first, then the payload, behind an opaque barrier: otherwise the
        // optimiser compares the (uninitialised) payload of a `None` too and combines the two
        // results, which is harmless but which valgrind reports, in the C tests, as a branch on
        // uninitialised memory.
        match &self.source {
            Some(s) => std::hint::black_box(s).lun == id,
            None => false,
        }
    }
}

/// One change of the array's metadata: what the log records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Change {
    CreateLun {
        id: LunId,
        name: String,
        size: u64,
        mask: String,
        source: Option<SourceRef>,
    },
    DeleteLun {
        id: LunId,
    },
    SetMask {
        id: LunId,
        mask: String,
    },
    SetHostNumber {
        id: LunId,
        host: String,
        number: u32,
    },
    SetGroup {
        name: String,
        members: Vec<String>,
    },
    DeleteGroup {
        name: String,
    },
    Swap {
        from: LunId,
        to: LunId,
    },
    Extend {
        id: LunId,
        size: u64,
    },
    SetStatus {
        id: LunId,
        online: bool,
    },
    Detach {
        id: LunId,
    },
    CreateTarget {
        name: String,
        iqn: String,
        portals: Vec<String>,
    },
    DeleteTarget {
        name: String,
    },
    AssociateTargets {
        id: LunId,
        targets: Vec<String>,
        add: bool,
    },
    SetHost {
        name: String,
        initiators: Vec<String>,
    },
    DeleteHost {
        name: String,
    },
}

/// An iSCSI target of the array's subsystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its administrative name.
    pub name: String,
    /// Its iSCSI name (`iqn.` form).
    pub iqn: String,
    /// Its portals (`address:port`).
    pub portals: Vec<String>,
    /// The LUNs associated with it, by id.
    pub luns: BTreeSet<LunId>,
}

/// The checkpoint: the whole metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PoolState {
    pub(crate) version: u32,
    pub(crate) applied_seq: u64,
    pub(crate) block_size: u32,
    pub(crate) next_id: LunId,
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    pub(crate) luns: Vec<LunState>,
    #[serde(default)]
    pub(crate) targets: Vec<TargetInfo>,
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LunState {
    pub(crate) id: LunId,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) online: bool,
    pub(crate) mask: String,
    pub(crate) number: u32,
    pub(crate) host_numbers: BTreeMap<String, u32>,
    pub(crate) source: Option<SourceRef>,
}

/// Checks an iSCSI portal address: `host:port` with a port from 1 to 65535.
fn check_portal(p: &str) -> Result<()> {
    let ok = p
        .rsplit_once(':')
        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
    if !ok {
        return Err(Error::invalid(format!("portal {p:?} is not address:port")));
    }
    Ok(())
}

/// Checks a LUN name: 1 to 64 letters, digits, `.`, `_`, `-`.
pub fn check_lun_name(name: &str) -> Result<()> {
    check_name("LUN", name)
}

/// The metadata, in memory.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) block_size: u32,
    pub(crate) luns: BTreeMap<LunId, LunRec>,
    pub(crate) names: HashMap<String, LunId>,
    pub(crate) mask: MaskTable,
    pub(crate) next_id: LunId,
    pub(crate) targets: BTreeMap<String, TargetInfo>,
    /// The initiator groups that are hosts (a host with its initiator ports).
    pub(crate) hosts: BTreeSet<String>,
}

fn parse_ids(members: &[String]) -> Result<BTreeSet<InitiatorId>> {
    members.iter().map(|m| InitiatorId::parse(m)).collect()
}

impl Model {
    pub(crate) fn new(block_size: u32) -> Self {
        Model {
            block_size,
            luns: BTreeMap::new(),
            names: HashMap::new(),
            mask: MaskTable::new(),
            next_id: 1,
            targets: BTreeMap::new(),
            hosts: BTreeSet::new(),
        }
    }

    pub(crate) fn id_of(&self, name: &str) -> Result<LunId> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no LUN named {name:?}")))
    }

    pub(crate) fn lun(&self, id: LunId) -> Result<&LunRec> {
        self.luns
            .get(&id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no LUN with id {id}")))
    }

    pub(crate) fn check_size(&self, size: u64) -> Result<()> {
        let bs = u64::from(self.block_size);
        if size == 0 || !size.is_multiple_of(bs) {
            return Err(Error::invalid(format!(
                "LUN size {size} is not a positive multiple of the block size {bs}"
            )));
        }
        Ok(())
    }

    fn mask_note(&self, d: MaskDelta) -> Option<Notification> {
        if d.is_empty() {
            return None;
        }
        let name = self.luns.get(&d.lun).map(|l| l.name.clone())?;
        Some(Notification::MaskChanged {
            name,
            gained: d.gained,
            lost: d.lost,
            modified: d.modified,
            all_before: d.all_before,
            all_after: d.all_after,
        })
    }

    /// Validates and applies `change`; on error nothing changed.
    pub(crate) fn apply(&mut self, change: &Change) -> Result<Vec<Notification>> {
        let mut notes = Vec::new();
        match change {
            Change::CreateLun {
                id,
                name,
                size,
                mask,
                source,
            } => {
                check_lun_name(name)?;
                self.check_size(*size)?;
                if self.names.contains_key(name) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("a LUN named {name:?} exists"),
                    ));
                }
                if *id < self.next_id {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("LUN id {id} reused"),
                    ));
                }
                if let Some(s) = source {
                    self.lun(s.lun)?;
                }
                let spec = MaskSpec::parse(mask)?;
                let delta = self.mask.add_lun(*id, spec, None)?;
                self.luns.insert(
                    *id,
                    LunRec {
                        id: *id,
                        name: name.clone(),
                        size: *size,
                        status: LunStatus::Online,
                        health: Health::Healthy,
                        source: *source,
                    },
                );
                self.names.insert(name.clone(), *id);
                self.next_id = id + 1;
                notes.push(Notification::LunArrive { name: name.clone() });
                notes.extend(self.mask_note(delta));
            }
            Change::DeleteLun { id } => {
                let name = self.lun(*id)?.name.clone();
                if let Some(dep) = self.luns.values().find(|l| l.is_snapshot_of(*id)) {
                    return Err(Error::new(
                        ErrorKind::BadState,
                        format!(
                            "snapshot LUN {:?} depends on LUN {name:?}; split or delete it first",
                            dep.name
                        ),
                    ));
                }
                let delta = self.mask.remove_lun(*id)?;
                notes.extend(self.mask_note(delta));
                for t in self.targets.values_mut() {
                    t.luns.remove(id);
                }
                self.luns.remove(id);
                self.names.remove(&name);
                notes.push(Notification::LunDepart { name });
            }
            Change::SetMask { id, mask } => {
                self.lun(*id)?;
                let delta = self.mask.set_mask(*id, MaskSpec::parse(mask)?)?;
                notes.extend(self.mask_note(delta));
            }
            Change::SetHostNumber { id, host, number } => {
                self.lun(*id)?;
                let delta = self
                    .mask
                    .set_host_number(*id, &InitiatorId::parse(host)?, *number)?;
                notes.extend(self.mask_note(delta));
            }
            Change::SetGroup { name, members } => {
                let deltas = self.mask.set_group(name, parse_ids(members)?)?;
                for d in deltas {
                    notes.extend(self.mask_note(d));
                }
            }
            Change::DeleteGroup { name } => {
                if self.hosts.contains(name) {
                    return Err(Error::invalid(format!(
                        "{name:?} is a host: delete it as a host"
                    )));
                }
                self.mask.delete_group(name)?
            }
            Change::SetHost { name, initiators } => {
                if self.mask.group(name).is_some() && !self.hosts.contains(name) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("{name:?} is an initiator group, not a host"),
                    ));
                }
                let ids = parse_ids(initiators)?;
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
                self.hosts.insert(name.clone());
                for d in deltas {
                    notes.extend(self.mask_note(d));
                }
            }
            Change::DeleteHost { name } => {
                if !self.hosts.contains(name) {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no host named {name:?}"),
                    ));
                }
                self.mask.delete_group(name)?;
                self.hosts.remove(name);
            }
            Change::Swap { from, to } => {
                self.lun(*from)?;
                self.lun(*to)?;
                for d in self.mask.swap(*from, *to)? {
                    notes.extend(self.mask_note(d));
                }
            }
            Change::Extend { id, size } => {
                self.check_size(*size)?;
                let l = self.lun(*id)?;
                if *size < l.size {
                    return Err(Error::invalid(format!(
                        "new size {size} is smaller than the LUN's {}",
                        l.size
                    )));
                }
                let l = self.luns.get_mut(id).expect("checked");
                l.size = *size;
                notes.push(Notification::LunModify {
                    name: l.name.clone(),
                });
            }
            Change::SetStatus { id, online } => {
                self.lun(*id)?;
                let l = self.luns.get_mut(id).expect("checked");
                l.status = if *online {
                    LunStatus::Online
                } else {
                    LunStatus::Offline
                };
                notes.push(Notification::LunModify {
                    name: l.name.clone(),
                });
            }
            Change::Detach { id } => {
                self.lun(*id)?;
                let l = self.luns.get_mut(id).expect("checked");
                l.source = None;
                notes.push(Notification::LunModify {
                    name: l.name.clone(),
                });
            }
            Change::CreateTarget { name, iqn, portals } => {
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
                    name.clone(),
                    TargetInfo {
                        name: name.clone(),
                        iqn: id.to_string(),
                        portals: portals.clone(),
                        luns: BTreeSet::new(),
                    },
                );
            }
            Change::DeleteTarget { name } => {
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
            }
            Change::AssociateTargets { id, targets, add } => {
                let lun_name = self.lun(*id)?.name.clone();
                for t in targets {
                    self.target(t)?;
                }
                if !add {
                    // Replace-style, as IVdsLunIscsi::AssociateTargets.
                    for t in self.targets.values_mut() {
                        t.luns.remove(id);
                    }
                }
                for t in targets {
                    self.targets.get_mut(t).expect("checked").luns.insert(*id);
                }
                notes.push(Notification::LunModify { name: lun_name });
            }
        }
        Ok(notes)
    }

    pub(crate) fn target(&self, name: &str) -> Result<&TargetInfo> {
        self.targets
            .get(name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no target named {name:?}")))
    }

    pub(crate) fn to_state(&self, applied_seq: u64) -> PoolState {
        let luns = self
            .luns
            .values()
            .map(|l| LunState {
                id: l.id,
                name: l.name.clone(),
                size: l.size,
                online: l.status == LunStatus::Online,
                mask: self
                    .mask
                    .spec(l.id)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                number: self.mask.default_number(l.id).unwrap_or(0),
                host_numbers: self
                    .mask
                    .grants(l.id)
                    .map(|g| g.iter().map(|(h, g)| (h.to_string(), g.number)).collect())
                    .unwrap_or_default(),
                source: l.source,
            })
            .collect();
        PoolState {
            version: STATE_VERSION,
            applied_seq,
            block_size: self.block_size,
            next_id: self.next_id,
            groups: self
                .mask
                .groups()
                .iter()
                .map(|(g, m)| (g.clone(), m.iter().map(|h| h.to_string()).collect()))
                .collect(),
            luns,
            targets: self.targets.values().cloned().collect(),
            hosts: self.hosts.iter().cloned().collect(),
        }
    }

    pub(crate) fn from_state(st: &PoolState) -> Result<Model> {
        if st.version != STATE_VERSION {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "pool state version {} is not {STATE_VERSION}, the version this build reads",
                    st.version
                ),
            ));
        }
        let mut m = Model::new(st.block_size);
        m.next_id = st.next_id;
        m.targets = st
            .targets
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        m.hosts = st.hosts.iter().cloned().collect();
        for (g, members) in &st.groups {
            m.mask.set_group(g, parse_ids(members)?)?;
        }
        for l in &st.luns {
            let numbers = l
                .host_numbers
                .iter()
                .map(|(h, n)| Ok((InitiatorId::parse(h)?, *n)))
                .collect::<Result<BTreeMap<_, _>>>()?;
            m.mask
                .restore_lun(l.id, MaskSpec::parse(&l.mask)?, l.number, &numbers)?;
            m.names.insert(l.name.clone(), l.id);
            m.luns.insert(
                l.id,
                LunRec {
                    id: l.id,
                    name: l.name.clone(),
                    size: l.size,
                    status: if l.online {
                        LunStatus::Online
                    } else {
                        LunStatus::Offline
                    },
                    health: Health::Healthy,
                    source: l.source,
                },
            );
        }
        Ok(m)
    }
}
