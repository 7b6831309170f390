//! The checkpoint: the whole array state in its serialisable form (`pool.state`), and the
//! conversions between it and [`ArrayState`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{parse_ids, ArrayState, Intent, LunRec, SourceRef, TargetInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{LunId, MaskSpec};
use crate::model::LunStatus;

/// The version of the checkpoint's JSON: 5 (a LUN may be `volatile`, an intent `fill`, `revert`
/// or `copy`); versions 4 (intents may name `engine_shadow`), 3 (with `metadata` and
/// `pool_metadata`), 2 (with `intents`) and 1 (without) are still read.
pub(crate) const STATE_VERSION: u32 = 5;

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
    /// The format of the pool log beside this checkpoint: 0 (absent) for the first format, whose
    /// checkpoint emptied the log; 2 or 3 for those whose checkpoint keeps its header.
    #[serde(default)]
    pub(crate) log_format: u32,
    /// The operations on LUN volumes under way (version 2).
    #[serde(default)]
    pub(crate) intents: Vec<Intent>,
    /// The pool's metadata (version 3).
    #[serde(default)]
    pub(crate) pool_metadata: BTreeMap<String, String>,
}

/// One LUN in the checkpoint, with its mask and LUN numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LunState {
    pub(crate) id: LunId,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) online: bool,
    /// Its unmasking list (recorded as its canonical text).
    pub(crate) mask: MaskSpec,
    pub(crate) number: u32,
    pub(crate) host_numbers: BTreeMap<String, u32>,
    pub(crate) source: Option<SourceRef>,
    /// The LUN's metadata (version 3).
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, String>,
    /// A shadow LUN not yet broken (version 3).
    #[serde(default)]
    pub(crate) shadow: bool,
    /// A volatile LUN (version 5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) volatile: bool,
}

impl ArrayState {
    /// The checkpoint of this state, which includes the log records up to `applied_seq`.
    pub(crate) fn to_checkpoint(&self, applied_seq: u64) -> PoolState {
        let luns = self
            .luns
            .values()
            .map(|l| LunState {
                id: l.id,
                name: l.name.clone(),
                size: l.size,
                online: l.status == LunStatus::Online,
                mask: self.mask.spec(l.id).cloned().unwrap_or_default(),
                number: self.mask.default_number(l.id).unwrap_or(0),
                host_numbers: self
                    .mask
                    .grants(l.id)
                    .map(|g| g.iter().map(|(h, g)| (h.to_string(), g.number)).collect())
                    .unwrap_or_default(),
                source: l.source,
                metadata: l.metadata.clone(),
                shadow: l.shadow,
                volatile: l.volatile,
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
            log_format: crate::array::store::LOG_VERSION,
            intents: self.intents.values().copied().collect(),
            pool_metadata: self.pool_metadata.clone(),
        }
    }

    /// The state a checkpoint holds; one of another version than 1 to 5 is
    /// [`ErrorKind::UnsupportedVersion`].
    pub(crate) fn from_checkpoint(st: &PoolState) -> Result<ArrayState> {
        if !(1..=STATE_VERSION).contains(&st.version) {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "pool state version {} is not one this build reads (1 to {STATE_VERSION})",
                    st.version
                ),
            ));
        }
        let mut m = ArrayState::new(st.block_size);
        m.next_id = st.next_id;
        m.targets = st
            .targets
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        m.hosts = st.hosts.iter().cloned().collect();
        m.intents = st.intents.iter().map(|i| (i.lun(), *i)).collect();
        m.pool_metadata = st.pool_metadata.clone();
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
                .restore_lun(l.id, l.mask.clone(), l.number, &numbers)?;
            m.names.insert(l.name.clone(), l.id);
            let status = if l.online {
                LunStatus::Online
            } else {
                LunStatus::Offline
            };
            let mut rec = LunRec::new(l.id, l.name.clone(), l.size, status, l.source);
            rec.metadata = l.metadata.clone();
            rec.shadow = l.shadow;
            rec.volatile = l.volatile;
            m.luns.insert(l.id, rec);
        }
        Ok(m)
    }
}
