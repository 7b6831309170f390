//! The record of one change: what the pool log holds, one JSON object per record (`"op"` names the
//! variant in snake case). Its serialised form is the log format: renaming or reshaping a variant
//! or a field breaks every pool that logged it.

use serde::{Deserialize, Serialize};

use super::SourceRef;
use crate::mask::LunId;

/// One change of the array's metadata: what the log records. [`super::ArrayState::apply`] applies
/// it, identically live and on replay.
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
