//! Hosts (named initiator groups with their ports) and iSCSI targets.

use super::state::{Change, TargetInfo};
use super::{checked_ids, Array};
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::Grant;

impl Array {
    /// Registers host `name` with its initiator ports (or replaces them). A host is an initiator
    /// group of its own: masks name it as `@name`, and an initiator belongs to at most one host.
    pub fn set_host(&self, name: &str, initiators: &[InitiatorId]) -> Result<()> {
        self.simple(Change::SetHost {
            name: name.to_string(),
            initiators: checked_ids(initiators)?,
        })
    }

    /// Deletes host `name`; refused while a mask names it.
    pub fn delete_host(&self, name: &str) -> Result<()> {
        self.simple(Change::DeleteHost {
            name: name.to_string(),
        })
    }

    /// Every host with its initiators, by name.
    pub fn hosts(&self) -> Vec<(String, Vec<InitiatorId>)> {
        let core = self.inner.core.read();
        core.state
            .hosts
            .iter()
            .filter_map(|h| {
                let m = core.state.mask.group(h)?;
                Some((h.clone(), m.iter().cloned().collect()))
            })
            .collect()
    }

    /// What host `name` sees through each of its initiators: (LUN, initiator, grant), by initiator
    /// then LUN number.
    pub fn host_view_by_name(&self, name: &str) -> Result<Vec<(String, InitiatorId, Grant)>> {
        let core = self.inner.core.read();
        if !core.state.hosts.contains(name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no host named {name:?}"),
            ));
        }
        let mut out = Vec::new();
        for ini in core.state.mask.group(name).into_iter().flatten() {
            for (id, g) in core.state.host_view(ini) {
                if let Some(l) = core.state.luns.get(&id) {
                    out.push((l.name.clone(), ini.clone(), g));
                }
            }
        }
        Ok(out)
    }

    /// Creates iSCSI target `name` with iSCSI name `iqn` and its portals (`address:port`).
    pub fn create_target(&self, name: &str, iqn: &str, portals: &[&str]) -> Result<()> {
        self.simple(Change::CreateTarget {
            name: name.to_string(),
            iqn: iqn.to_string(),
            portals: portals.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// Deletes iSCSI target `name`; refused while LUNs are associated with it.
    pub fn delete_target(&self, name: &str) -> Result<()> {
        self.simple(Change::DeleteTarget {
            name: name.to_string(),
        })
    }

    /// Associates LUN `lun` with `targets`: replacing its associations, or adding to them.
    pub fn associate_targets(&self, lun: &str, targets: &[&str], add: bool) -> Result<()> {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        self.change_lun(lun, |id| Change::AssociateTargets { id, targets, add })
    }

    /// Every iSCSI target, by name.
    pub fn targets(&self) -> Vec<TargetInfo> {
        self.inner
            .core
            .read()
            .state
            .targets
            .values()
            .cloned()
            .collect()
    }
}
