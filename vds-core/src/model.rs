//! The VDS object model: LUN properties and their enumerations (values as in `vds.h`), and the
//! notifications the array sends.

use serde::{Deserialize, Serialize};

use crate::initiator::InitiatorId;
use crate::mask::LunId;

/// `VDS_LUN_STATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum LunStatus {
    /// `VDS_LS_UNKNOWN`.
    Unknown = 0,
    /// `VDS_LS_ONLINE`: I/O is served.
    Online = 1,
    /// `VDS_LS_NOT_READY`.
    NotReady = 2,
    /// `VDS_LS_OFFLINE`: I/O is refused.
    Offline = 4,
    /// `VDS_LS_FAILED`.
    Failed = 5,
}

/// `VDS_HEALTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum Health {
    /// `VDS_H_UNKNOWN`.
    Unknown = 0,
    /// `VDS_H_HEALTHY`.
    Healthy = 1,
    /// `VDS_H_REBUILDING`.
    Rebuilding = 2,
    /// `VDS_H_STALE`.
    Stale = 3,
    /// `VDS_H_FAILING`.
    Failing = 4,
    /// `VDS_H_FAILED`.
    Failed = 8,
    /// `VDS_H_DEGRADED`.
    Degraded = 11,
}

/// `VDS_LUN_TYPE` (the embedded array makes simple LUNs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum LunType {
    /// `VDS_LT_UNKNOWN`.
    Unknown = 0,
    /// `VDS_LT_DEFAULT`.
    Default = 1,
    /// `VDS_LT_SIMPLE`.
    Simple = 10,
}

/// `VDS_TRANSITION_STATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum TransitionState {
    /// `VDS_TS_UNKNOWN`.
    Unknown = 0,
    /// `VDS_TS_STABLE`.
    Stable = 1,
    /// `VDS_TS_EXTENDING`.
    Extending = 2,
    /// `VDS_TS_RECONFIGING`: a split or resync is running.
    Reconfiguring = 4,
}

/// `VDS_SF_*` subsystem flags the embedded array reports.
pub mod subsystem_flags {
    /// `VDS_SF_LUN_MASKING_CAPABLE`.
    pub const LUN_MASKING_CAPABLE: u32 = 0x1;
    /// `VDS_SF_SUPPORTS_LUN_NUMBER`.
    pub const SUPPORTS_LUN_NUMBER: u32 = 0x80000;
}

/// The properties of a LUN (after `VDS_LUN_PROP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInfo {
    /// Internal id (never reused).
    pub id: LunId,
    /// Unique, case-sensitive name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Always [`LunType::Simple`] here.
    pub lun_type: LunType,
    /// Online or offline.
    pub status: LunStatus,
    /// Health.
    pub health: Health,
    /// Stable, or extending / reconfiguring while a long operation runs.
    pub transition: TransitionState,
    /// The canonical unmasking list.
    pub mask: String,
    /// The array-wide default LUN number (VDS `GetLunNumber`).
    pub number: u32,
    /// For a snapshot LUN not yet split: the LUN it is a snapshot of.
    pub source: Option<String>,
    /// A volatile LUN ([`crate::LunOptions::volatile`]): no metadata journal, its engine
    /// snapshots live until the pool closes.
    pub volatile: bool,
}

/// A LUN's I/O statistics ([`crate::Array::lun_stats`]): its volume's figures as the engine keeps
/// them ([`cow_engine::VolumeStats`]), among them the bytes and write operations that reached its
/// data (`origin_*`), its diff area (`diff_*`) and its journal (`journal_*`) since the array
/// opened it (or a split gave it a volume of its own). What a caller shows to prove that a swap
/// or a break moved no data, and that a resync of N blocks wrote N blocks. `snapshots` counts
/// every engine snapshot on the LUN's volume (those its snapshot LUNs, shadow LUNs and engine
/// shadows stand on).
pub type LunStats = cow_engine::VolumeStats;

/// A change the array announces after it is applied and persisted.
///
/// Serialises (serde) to one JSON object whose `"event"` names the variant in snake_case and
/// whose `"lun"` is the LUN's name, initiators in their canonical form: e.g.
/// `{"event":"mask_changed","lun":"prod","gained":[],"lost":["iqn.1991-05.com.microsoft:server"],
/// "modified":[],"all_before":false,"all_after":false}`: the text the C layer and the CLI print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notification {
    /// A LUN was created (`VDS_NF_LUN_ARRIVE`, 108).
    LunArrive {
        /// Its name.
        #[serde(rename = "lun")]
        name: String,
    },
    /// A LUN was deleted (`VDS_NF_LUN_DEPART`, 109).
    LunDepart {
        /// Its name.
        #[serde(rename = "lun")]
        name: String,
    },
    /// A LUN's properties changed (`VDS_NF_LUN_MODIFY`, 110).
    LunModify {
        /// Its name.
        #[serde(rename = "lun")]
        name: String,
    },
    /// Who sees a LUN changed: hosts should rescan.
    MaskChanged {
        /// The LUN.
        #[serde(rename = "lun")]
        name: String,
        /// Hosts that gained it (sorted by canonical text, as the other lists).
        gained: Vec<InitiatorId>,
        /// Hosts that lost it.
        lost: Vec<InitiatorId>,
        /// Hosts whose access or LUN number changed.
        modified: Vec<InitiatorId>,
        /// Every host saw it before.
        all_before: bool,
        /// Every host sees it now.
        all_after: bool,
    },
    /// A key of a LUN's metadata was set or removed ([`crate::Array::set_lun_metadata`]).
    LunMetadataChanged {
        /// The LUN.
        #[serde(rename = "lun")]
        name: String,
        /// The key.
        key: String,
        /// Its value now (none: removed).
        value: Option<String>,
    },
    /// A key of the pool's metadata was set or removed ([`crate::Array::set_pool_metadata`]);
    /// about no LUN (its `"lun"` is empty).
    PoolMetadataChanged {
        /// The key.
        key: String,
        /// Its value now (none: removed).
        value: Option<String>,
    },
}

impl Notification {
    /// The LUN the notification is about (empty for a change of the pool's metadata).
    pub fn lun(&self) -> &str {
        match self {
            Notification::LunArrive { name }
            | Notification::LunDepart { name }
            | Notification::LunModify { name }
            | Notification::MaskChanged { name, .. }
            | Notification::LunMetadataChanged { name, .. } => name,
            Notification::PoolMetadataChanged { .. } => "",
        }
    }

    /// The VDS notification code (`VDS_NF_*`); mask and LUN metadata changes report LUN modify,
    /// a pool metadata change subsystem modify (151).
    pub fn vds_code(&self) -> u32 {
        match self {
            Notification::LunArrive { .. } => 108,
            Notification::LunDepart { .. } => 109,
            Notification::LunModify { .. }
            | Notification::MaskChanged { .. }
            | Notification::LunMetadataChanged { .. } => 110,
            Notification::PoolMetadataChanged { .. } => 151,
        }
    }
}

/// `VDS_CONTROLLER_STATUS` / `VDS_PORT_STATUS` values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ObjectStatus {
    /// Unknown.
    Unknown = 0,
    /// Online.
    Online = 1,
    /// Offline.
    Offline = 4,
}

/// A controller port of the subsystem (after `VDS_PORT_PROP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: ObjectStatus,
}

/// A controller of the subsystem (after `VDS_CONTROLLER_PROP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerInfo {
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: ObjectStatus,
    /// Its ports.
    pub ports: Vec<PortInfo>,
}

/// The subsystem (after `VDS_SUB_SYSTEM_PROP`): the embedded array has exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsystemInfo {
    /// Its friendly name.
    pub name: String,
    /// `VDS_SF_*` flags.
    pub flags: u32,
    /// Its status.
    pub status: ObjectStatus,
    /// Its controllers.
    pub controllers: Vec<ControllerInfo>,
    /// How many LUNs it holds.
    pub luns: usize,
    /// The LUN block size (sizes are multiples of it).
    pub block_size: u32,
}

/// The provider (after `VDS_PROVIDER_PROP`): the embedded array is a hardware-style provider with
/// one subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its subsystems.
    pub subsystems: Vec<SubsystemInfo>,
}
