//! The record of one change: what the pool log holds, one JSON object per record (`"op"` names the
//! variant in snake case). Its serialised form is the log format: renaming or reshaping a variant
//! or a field breaks every pool that logged it.

use serde::{Deserialize, Serialize};

use super::SourceRef;
use crate::initiator::InitiatorId;
use crate::mask::{LunId, MaskSpec};

/// An operation on a LUN's volume under way: recorded (durably, in the log) before any volume
/// directory or engine snapshot is created, removed or grown, so that an open after a crash
/// knows what it may remove, finish or roll back. At most one per LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub(crate) enum Intent {
    /// LUN `id`'s volume directory (`luns/<id>/`) is being created; for a snapshot LUN, over an
    /// engine snapshot of LUN `source`'s volume tagged for `id`. Finished by
    /// [`Change::CreateLun`]; rolled back by removing that directory and that snapshot.
    CreateLun { id: LunId, source: Option<LunId> },
    /// LUN `id` is deleted; its directory, and the engine snapshot it stood on (`source`), are
    /// being removed. Finished by [`Change::Done`].
    RemoveLun {
        id: LunId,
        source: Option<SourceRef>,
    },
    /// LUN `id`'s volume is being grown to `size` bytes. Finished by [`Change::Extend`] with the
    /// size the volume has.
    Extend { id: LunId, size: u64 },
    /// LUN `id`'s volume is getting an engine shadow of engine shadow set `set` (its engine
    /// snapshot tagged for that set). Finished by [`Change::EngineShadowSet`]; rolled back by
    /// deleting the snapshots of LUN `id`'s volume tagged for `set`.
    EngineShadow { id: LunId, set: u64 },
    /// LUN `id` is created to be filled before it counts as made: an import's copy, a clone's
    /// split (for a clone, over an engine snapshot of LUN `source`'s volume tagged for `id`). Its
    /// `create_lun` record does not end it; [`Change::Done`] does, once the LUN is filled. An
    /// open rolls back a LUN still under it: deleted if its record committed, otherwise as an
    /// unfinished `create_lun` (log format 6).
    Fill { id: LunId, source: Option<LunId> },
    /// LUN `id`'s volume is being reverted to its engine snapshot `snapshot` (a revert to an
    /// engine shadow, or a resync from a snapshot LUN of it). Host I/O is refused while it runs;
    /// an open finishes it (the engine's revert resumes from its durable cursor). Ended by
    /// [`Change::Done`] (log format 6).
    Revert {
        id: LunId,
        snapshot: cow_engine::SnapshotId,
    },
    /// LUN `id` is being overwritten with LUN `source`'s contents (a resync that copies every
    /// block); an open copies them again. Ended by [`Change::Done`] (log format 6).
    Copy { id: LunId, source: LunId },
}

impl Intent {
    /// The LUN it is about.
    pub(crate) fn lun(&self) -> LunId {
        match *self {
            Intent::CreateLun { id, .. }
            | Intent::RemoveLun { id, .. }
            | Intent::Extend { id, .. }
            | Intent::EngineShadow { id, .. }
            | Intent::Fill { id, .. }
            | Intent::Revert { id, .. }
            | Intent::Copy { id, .. } => id,
        }
    }
}

/// One change of the array's metadata: what the log records. [`super::ArrayState::apply`] applies
/// it, identically live and on replay.
///
/// Masks and initiators are carried parsed ([`MaskSpec`], [`InitiatorId`]): the array checks them
/// once at its edge, and their canonical text is only their encoding in the record (serialised by
/// their `Display`, read back by their `parse` when the log is replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Change {
    CreateLun {
        id: LunId,
        name: String,
        size: u64,
        mask: MaskSpec,
        source: Option<SourceRef>,
        /// A volatile LUN (log format 6; absent: persistent).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        volatile: bool,
    },
    DeleteLun {
        id: LunId,
    },
    SetMask {
        id: LunId,
        mask: MaskSpec,
    },
    SetHostNumber {
        id: LunId,
        host: InitiatorId,
        number: u32,
    },
    SetGroup {
        name: String,
        members: Vec<InitiatorId>,
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
        initiators: Vec<InitiatorId>,
    },
    DeleteHost {
        name: String,
    },
    /// An operation on a LUN's volume begins (log format 3).
    Begin {
        intent: Intent,
    },
    /// The operation under way on LUN `id` finished or was rolled back (log format 3).
    Done {
        id: LunId,
    },
    /// Key `key` of LUN `id`'s metadata set to `value`, or removed (`None`) (log format 4).
    SetLunMetadata {
        id: LunId,
        key: String,
        value: Option<String>,
    },
    /// Key `key` of the pool's metadata set to `value`, or removed (`None`) (log format 4).
    SetPoolMetadata {
        key: String,
        value: Option<String>,
    },
    /// A snapshot set: shadow LUNs `luns`, each masked to no one and read-only until broken,
    /// their metadata `metadata` plus the set key naming `set`. Ends each LUN's `create_lun`
    /// intent (log format 4).
    SnapshotSet {
        set: String,
        luns: Vec<SetLun>,
        metadata: std::collections::BTreeMap<String, String>,
    },
    /// Shadow LUN `id` becomes an ordinary read-write LUN, out of its set (log format 4).
    BreakShadow {
        id: LunId,
    },
    /// Snapshot set `set` deleted: its unbroken shadow LUNs `ids`, all in this one record, each
    /// left with a `remove_lun` intent for its clean-up (log format 4).
    DeleteSnapshotSet {
        set: String,
        ids: Vec<LunId>,
    },
    /// Engine shadow set `set`: each `(LUN, engine snapshot)` of `luns` is a shadow of that LUN
    /// (its snapshot tagged for the set). Ends each LUN's `engine_shadow` intent (log format 4).
    EngineShadowSet {
        set: u64,
        luns: Vec<(LunId, cow_engine::SnapshotId)>,
    },
    /// LUN `id` named `name`, of `size` bytes, exposes engine shadow `source` (a snapshot LUN
    /// standing on it, which does not own it): masked to no one, read-only until broken. Ends its
    /// `create_lun` intent (log format 4).
    ExposeShadow {
        id: LunId,
        name: String,
        size: u64,
        source: SourceRef,
    },
    /// Several changes as one: applied in order, all or none (none of them a `batch`, a `begin`
    /// or a `done`) (log format 6).
    Batch {
        changes: Vec<Change>,
    },
}

/// One shadow LUN of a [`Change::SnapshotSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SetLun {
    pub(crate) id: LunId,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) source: SourceRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change carries its mask and initiators parsed, but the record is the log format as it
    /// was when they were text: the canonical text, read back by `parse` (a text `parse` refuses
    /// does not decode).
    #[test]
    fn masks_and_initiators_are_recorded_as_their_canonical_text() {
        let mask = MaskSpec::parse("IQN.1991-05.com.Microsoft:H1=RO; @g").unwrap();
        let change = Change::SetMask { id: 7, mask };
        let json = serde_json::to_string(&change).unwrap();
        assert_eq!(
            json,
            r#"{"op":"set_mask","id":7,"mask":"@g;iqn.1991-05.com.microsoft:h1=ro"}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), change);

        let group = Change::SetGroup {
            name: "g".into(),
            members: vec![InitiatorId::parse("10:00:00:00:C9:00:00:02").unwrap()],
        };
        let json = serde_json::to_string(&group).unwrap();
        assert_eq!(
            json,
            r#"{"op":"set_group","name":"g","members":["10000000c9000002"]}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), group);

        let bad = r#"{"op":"set_mask","id":7,"mask":"*;iqn.1991-05.com.microsoft:h1"}"#;
        let e = serde_json::from_str::<Change>(bad).unwrap_err().to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let bad = r#"{"op":"set_host_number","id":7,"host":"nonsense","number":3}"#;
        assert!(serde_json::from_str::<Change>(bad).is_err());
    }
}
