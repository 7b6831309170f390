//! LUN masking: unmasking lists (set, add, remove), per-host LUN numbers, initiator groups, the
//! fast-recovery swap, and who sees what.

use super::state::{ArrayState, Change};
use super::{checked_ids, checked_mask, Array};
use crate::error::{Error, Result};
use crate::initiator::InitiatorId;
use crate::mask::{Grant, LunHosts, MaskSpec};

impl Array {
    /// VDS `SetMask`: replaces LUN `name`'s unmasking list with `mask` (text such as `"*"` or
    /// `"<id>;<id>=ro"` is read by [`MaskSpec::parse`]). Returns once no I/O admitted under the
    /// old mask is running (as every change of access does).
    pub fn set_mask(&self, name: &str, mask: &MaskSpec) -> Result<()> {
        let mask = checked_mask(mask)?;
        self.change_lun(name, |id| Change::SetMask { id, mask })
    }

    /// Adds `entries` to LUN `name`'s mask (an atomic read-modify-write; DiskRAID `unmask lun
    /// add`). An entry already present takes the access the added entry states.
    pub fn add_to_mask(&self, name: &str, entries: &MaskSpec) -> Result<()> {
        self.modify_mask(name, entries, true)
    }

    /// Removes `entries` from LUN `name`'s mask (an atomic read-modify-write); their access is
    /// not looked at.
    pub fn remove_from_mask(&self, name: &str, entries: &MaskSpec) -> Result<()> {
        self.modify_mask(name, entries, false)
    }

    /// Adds `entries` to LUN `name`'s mask, or removes them, in one transaction.
    fn modify_mask(&self, name: &str, entries: &MaskSpec, add: bool) -> Result<()> {
        let entries = checked_mask(entries)?;
        self.transact(|core| {
            let change = mask_change(&core.state, name, &entries, add)?;
            Ok(((), Array::commit(core, &change)?))
        })
    }

    /// The canonical unmasking list of LUN `name`: `""`, `"*"`, or the normalised entries sorted
    /// and `;`-joined.
    pub fn get_mask(&self, name: &str) -> Result<String> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        Ok(core.state.mask.spec(id)?.to_string())
    }

    /// Sets the LUN number `initiator` sees LUN `name` at.
    pub fn set_host_number(&self, name: &str, initiator: &InitiatorId, number: u32) -> Result<()> {
        let host = InitiatorId::parse(&initiator.to_string())?;
        self.change_lun(name, |id| Change::SetHostNumber { id, host, number })
    }

    /// Creates or replaces initiator group `group` with `members` (usable in masks as `@group`).
    pub fn set_group(&self, group: &str, members: &[InitiatorId]) -> Result<()> {
        self.simple(Change::SetGroup {
            name: group.to_string(),
            members: checked_ids(members)?,
        })
    }

    /// Deletes initiator group `group`; refused while a mask names it.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.simple(Change::DeleteGroup {
            name: group.to_string(),
        })
    }

    /// The members of every initiator group (hosts are listed by [`Array::hosts`]).
    pub fn groups(&self) -> Vec<(String, Vec<InitiatorId>)> {
        let core = self.inner.core.read();
        core.state
            .mask
            .groups()
            .iter()
            .filter(|(g, _)| !core.state.hosts.contains(*g))
            .map(|(g, m)| (g.clone(), m.iter().cloned().collect()))
            .collect()
    }

    /// The fast-recovery swap, as one transaction: `replacement` takes over `damaged`'s hosts, their
    /// LUN numbers and its default number; `damaged` is masked to no one (kept for diagnosis).
    /// Returns once no I/O admitted on either LUN before the swap is running: nothing lands on
    /// `damaged` after it, and a [`super::LunHandle`] opened on it is refused from then on.
    pub fn swap_lun(&self, damaged: &str, replacement: &str) -> Result<()> {
        self.transact(|core| {
            let from = core.state.id_of(damaged)?;
            let to = core.state.id_of(replacement)?;
            Ok(((), Array::commit(core, &Change::Swap { from, to })?))
        })
    }

    /// The LUNs `initiator` sees: (name, access, LUN number), in LUN-number order. The access is
    /// the one I/O gets: read-only for an unbroken shadow LUN, whatever its mask says.
    pub fn host_view(&self, initiator: &InitiatorId) -> Vec<(String, Grant)> {
        let core = self.inner.core.read();
        core.state
            .host_view(initiator)
            .into_iter()
            .filter_map(|(id, g)| core.state.luns.get(&id).map(|l| (l.name.clone(), g)))
            .collect()
    }

    /// Who sees LUN `name`, with the access I/O gets (read-only for an unbroken shadow LUN).
    pub fn lun_hosts(&self, name: &str) -> Result<LunHosts> {
        let core = self.inner.core.read();
        core.state.lun_hosts(core.state.id_of(name)?)
    }

    /// What `initiator` may do with LUN `name` (`None`: masked away): the access every I/O path
    /// applies, so read-only for an unbroken shadow LUN whatever its mask says.
    pub fn access(&self, name: &str, initiator: &InitiatorId) -> Result<Option<Grant>> {
        let core = self.inner.core.read();
        Ok(core.state.access(core.state.id_of(name)?, initiator))
    }
}

/// The change that adds `entries` (a list [`checked_mask`] returned) to LUN `name`'s mask in
/// `state` (or, without `add`, removes them): a `set_mask` of the resulting list.
pub(super) fn mask_change(
    state: &ArrayState,
    name: &str,
    entries: &MaskSpec,
    add: bool,
) -> Result<Change> {
    let id = state.id_of(name)?;
    let current = state.mask.spec(id)?.clone();
    let new = match (current, entries.clone(), add) {
        (_, MaskSpec::All(a), true) => MaskSpec::All(a),
        (_, MaskSpec::All(_), false) => MaskSpec::None,
        (cur, MaskSpec::None, _) => cur,
        (MaskSpec::All(a), MaskSpec::List(_), true) => MaskSpec::All(a),
        (MaskSpec::All(_), MaskSpec::List(_), false) => {
            return Err(Error::invalid(
                "cannot remove single hosts from a LUN unmasked to every host (\"*\")",
            ))
        }
        (MaskSpec::None, MaskSpec::List(d), true) => MaskSpec::List(d),
        (MaskSpec::None, MaskSpec::List(_), false) => MaskSpec::None,
        (MaskSpec::List(mut cur), MaskSpec::List(d), true) => {
            cur.extend(d);
            MaskSpec::List(cur)
        }
        (MaskSpec::List(mut cur), MaskSpec::List(d), false) => {
            cur.retain(|p, _| !d.contains_key(p));
            if cur.is_empty() {
                MaskSpec::None
            } else {
                MaskSpec::List(cur)
            }
        }
    };
    Ok(Change::SetMask { id, mask: new })
}
