//! The array's metadata as pure data ([`ArrayState`]): LUN records, the mask table, groups, hosts
//! and targets.
//!
//! - `mod.rs`: the state and its records, with the look-ups and checks the array shares;
//! - `change.rs`: [`Change`], one record of the pool log (its serde form is the log format);
//! - `apply.rs`: [`ArrayState::apply`], one function per change, applied identically live and on
//!   replay;
//! - `checkpoint.rs`: [`PoolState`], the serialisable checkpoint form, and the conversions.

mod apply;
mod change;
mod checkpoint;
pub(crate) mod metadata;

pub(crate) use change::{Change, Intent, SetLun};
pub(crate) use checkpoint::PoolState;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{check_name, Access, Grant, LunHosts, LunId, MaskDelta, MaskTable};
use crate::model::{Health, LunStatus, Notification};

/// Where a snapshot LUN's data comes from until it is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceRef {
    /// The LUN it is a snapshot of.
    pub(crate) lun: LunId,
    /// The snapshot id inside that LUN's volume.
    pub(crate) snapshot: cow_engine::SnapshotId,
}

/// A LUN as the array state holds it (its mask and numbers are in the mask table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LunRec {
    pub(crate) id: LunId,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) status: LunStatus,
    pub(crate) health: Health,
    pub(crate) source: Option<SourceRef>,
    /// The LUN's metadata: a small key/value map for clients (see `metadata.rs`).
    pub(crate) metadata: BTreeMap<String, String>,
    /// A shadow LUN of a snapshot set not yet broken: read-only to every initiator.
    pub(crate) shadow: bool,
    /// A volatile LUN: its volume keeps no metadata journal (its engine snapshots live until the
    /// pool closes).
    pub(crate) volatile: bool,
}

impl LunRec {
    /// A healthy LUN record.
    fn new(
        id: LunId,
        name: String,
        size: u64,
        status: LunStatus,
        source: Option<SourceRef>,
    ) -> LunRec {
        LunRec {
            id,
            name,
            size,
            status,
            health: Health::Healthy,
            source,
            metadata: BTreeMap::new(),
            shadow: false,
            volatile: false,
        }
    }

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

/// The array state: its whole metadata, in memory (`PoolState` is its checkpoint form).
#[derive(Debug, Clone)]
pub(crate) struct ArrayState {
    pub(crate) block_size: u32,
    pub(crate) luns: BTreeMap<LunId, LunRec>,
    pub(crate) names: HashMap<String, LunId>,
    pub(crate) mask: MaskTable,
    pub(crate) next_id: LunId,
    pub(crate) targets: BTreeMap<String, TargetInfo>,
    /// The initiator groups that are hosts (a host with its initiator ports).
    pub(crate) hosts: BTreeSet<String>,
    /// The operations on LUN volumes under way, by LUN.
    pub(crate) intents: BTreeMap<LunId, Intent>,
    /// The pool's metadata: a key/value map for clients (see `metadata.rs`).
    pub(crate) pool_metadata: BTreeMap<String, String>,
}

/// Parses initiator ids as the log and the checkpoint record them.
fn parse_ids(members: &[String]) -> Result<BTreeSet<InitiatorId>> {
    members.iter().map(|m| InitiatorId::parse(m)).collect()
}

impl ArrayState {
    /// An empty array state with LUN block size `block_size`.
    pub(crate) fn new(block_size: u32) -> Self {
        ArrayState {
            block_size,
            luns: BTreeMap::new(),
            names: HashMap::new(),
            mask: MaskTable::new(),
            next_id: 1,
            targets: BTreeMap::new(),
            hosts: BTreeSet::new(),
            intents: BTreeMap::new(),
            pool_metadata: BTreeMap::new(),
        }
    }

    /// The id of LUN `name`.
    pub(crate) fn id_of(&self, name: &str) -> Result<LunId> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no LUN named {name:?}")))
    }

    /// `grant` as it takes effect on LUN `id`: read-only while the LUN is a shadow LUN of a
    /// snapshot set not yet broken, whatever its mask says. Every access query and every I/O
    /// path goes through it, so what the admin sees is what a client gets.
    pub(crate) fn effective(&self, id: LunId, grant: Grant) -> Grant {
        if self.luns.get(&id).is_some_and(|l| l.shadow) {
            Grant {
                access: Access::ReadOnly,
                ..grant
            }
        } else {
            grant
        }
    }

    /// What `initiator` may do with LUN `id` now (`None`: masked away), as it takes effect
    /// (see [`ArrayState::effective`]).
    pub(crate) fn access(&self, id: LunId, initiator: &InitiatorId) -> Option<Grant> {
        let g = self.mask.access(id, initiator)?;
        Some(self.effective(id, g))
    }

    /// The LUNs `initiator` sees, with their grants as they take effect, in LUN-number order.
    pub(crate) fn host_view(&self, initiator: &InitiatorId) -> Vec<(LunId, Grant)> {
        self.mask
            .host_view(initiator)
            .into_iter()
            .map(|(id, g)| (id, self.effective(id, g)))
            .collect()
    }

    /// Who sees LUN `id`, with the grants as they take effect.
    pub(crate) fn lun_hosts(&self, id: LunId) -> Result<LunHosts> {
        let eff = |m: BTreeMap<InitiatorId, Grant>| -> BTreeMap<InitiatorId, Grant> {
            m.into_iter()
                .map(|(i, g)| (i, self.effective(id, g)))
                .collect()
        };
        Ok(match self.mask.lun_hosts(id)? {
            LunHosts::All {
                access,
                number,
                own_numbers,
            } => LunHosts::All {
                access: self.effective(id, Grant { access, number }).access,
                number,
                own_numbers: eff(own_numbers),
            },
            LunHosts::Hosts(h) => LunHosts::Hosts(eff(h)),
        })
    }

    /// The record of LUN `id`.
    pub(crate) fn lun(&self, id: LunId) -> Result<&LunRec> {
        self.luns.get(&id).ok_or_else(|| no_lun(id))
    }

    /// The record of LUN `id`, to change it.
    fn lun_mut(&mut self, id: LunId) -> Result<&mut LunRec> {
        self.luns.get_mut(&id).ok_or_else(|| no_lun(id))
    }

    /// Refuses `name` for a new LUN if a LUN has it.
    pub(crate) fn check_new_name(&self, name: &str) -> Result<()> {
        if self.names.contains_key(name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a LUN named {name:?} exists"),
            ));
        }
        Ok(())
    }

    /// Refuses a LUN size that is not a positive multiple of the block size.
    pub(crate) fn check_size(&self, size: u64) -> Result<()> {
        let bs = u64::from(self.block_size);
        if size == 0 || !size.is_multiple_of(bs) {
            return Err(Error::invalid(format!(
                "LUN size {size} is not a positive multiple of the block size {bs}"
            )));
        }
        Ok(())
    }

    /// Refuses to extend LUN `id` to `size` bytes: a size [`ArrayState::check_size`] refuses or
    /// one smaller than the LUN's.
    pub(crate) fn check_extend(&self, id: LunId, size: u64) -> Result<()> {
        self.check_size(size)?;
        let old = self.lun(id)?.size;
        if size < old {
            return Err(Error::invalid(format!(
                "new size {size} is smaller than the LUN's {old}"
            )));
        }
        Ok(())
    }

    /// The notification of a mask change (none if nothing changed).
    fn mask_note(&self, d: MaskDelta) -> Option<Notification> {
        if d.is_empty() {
            return None;
        }
        let name = self.luns.get(&d.lun).map(|l| l.name.clone())?;
        // Sorted by their canonical text, as every list of initiators the array prints.
        let sorted = |mut v: Vec<crate::InitiatorId>| {
            v.sort_by_cached_key(|i| i.to_string());
            v
        };
        Some(Notification::MaskChanged {
            name,
            gained: sorted(d.gained),
            lost: sorted(d.lost),
            modified: sorted(d.modified),
            all_before: d.all_before,
            all_after: d.all_after,
        })
    }

    /// The notifications of several mask changes, in order.
    fn mask_notes(&self, deltas: impl IntoIterator<Item = MaskDelta>) -> Vec<Notification> {
        deltas
            .into_iter()
            .filter_map(|d| self.mask_note(d))
            .collect()
    }

    /// Target `name`.
    pub(crate) fn target(&self, name: &str) -> Result<&TargetInfo> {
        self.targets
            .get(name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no target named {name:?}")))
    }
}

/// The error of an unknown LUN id.
fn no_lun(id: LunId) -> Error {
    Error::new(ErrorKind::NotFound, format!("no LUN with id {id}"))
}
