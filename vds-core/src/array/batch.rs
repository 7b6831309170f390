//! Several administrative changes in one transaction and one pool record ([`Array::batch`]): all
//! or none, live and after a crash. What a client that changes several LUNs together needs (the
//! shadow-copy protocol's import and break of a transportable set: metadata, masks and breaks of
//! every shadow LUN of the set at once).

use super::masking::mask_change;
use super::state::Change;
use super::{checked_mask, Array};
use crate::error::{Error, Result};
use crate::mask::MaskSpec;

/// One administrative change of a batch ([`Array::batch`]), by LUN name; each as the call of the
/// same name does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    /// [`Array::set_lun_metadata`].
    SetLunMetadata {
        /// The LUN.
        lun: String,
        /// The key.
        key: String,
        /// The value, or `None` to remove the key.
        value: Option<String>,
    },
    /// [`Array::set_mask`].
    SetMask {
        /// The LUN.
        lun: String,
        /// The new unmasking list.
        mask: MaskSpec,
    },
    /// [`Array::add_to_mask`].
    AddToMask {
        /// The LUN.
        lun: String,
        /// The entries added.
        entries: MaskSpec,
    },
    /// [`Array::remove_from_mask`].
    RemoveFromMask {
        /// The LUN.
        lun: String,
        /// The entries removed.
        entries: MaskSpec,
    },
    /// [`Array::break_shadow`].
    BreakShadow {
        /// The shadow LUN.
        lun: String,
    },
    /// [`Array::set_online`].
    SetOnline {
        /// The LUN.
        lun: String,
        /// Online (true) or offline.
        online: bool,
    },
}

impl Array {
    /// Makes the changes `ops` in order as one transaction: one pool record, all or none (an
    /// error in any of them, which names it by its position, changes nothing; a crash leaves all
    /// of them or none), announced together, and fenced as each change of access is. Each sees
    /// the changes before it (a break then a mask of the same LUN). An empty batch does nothing.
    pub fn batch(&self, ops: &[AdminOp]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        // Each op checked once, here at the edge: a mask op carries its list as
        // [`checked_mask`] returns it from here on.
        let mut checked = ops.to_vec();
        for op in &mut checked {
            match op {
                AdminOp::SetMask { mask: m, .. }
                | AdminOp::AddToMask { entries: m, .. }
                | AdminOp::RemoveFromMask { entries: m, .. } => *m = checked_mask(m)?,
                AdminOp::SetLunMetadata { key, .. } => Array::check_metadata_key(key)?,
                _ => {}
            }
        }
        self.transact(|core| {
            // Each change is made against the state the ones before it leave.
            let mut scratch = core.state.clone();
            let mut changes = Vec::with_capacity(ops.len());
            for (i, (op, given)) in checked.iter().zip(ops).enumerate() {
                let made = op_change(&scratch, op).and_then(|c| {
                    scratch.apply(&c)?;
                    Ok(c)
                });
                let change = made.map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!("change {} of the batch ({given:?}): {}", i + 1, e.message()),
                    )
                })?;
                changes.push(change);
            }
            let notes = Array::commit(core, &Change::Batch { changes })?;
            Ok(((), notes))
        })
    }
}

/// The change `op` (whose list, for a mask op, [`checked_mask`] returned) makes in `state`.
fn op_change(state: &super::state::ArrayState, op: &AdminOp) -> Result<Change> {
    Ok(match op {
        AdminOp::SetLunMetadata { lun, key, value } => Change::SetLunMetadata {
            id: state.id_of(lun)?,
            key: key.clone(),
            value: value.clone(),
        },
        AdminOp::SetMask { lun, mask } => Change::SetMask {
            id: state.id_of(lun)?,
            mask: mask.clone(),
        },
        AdminOp::AddToMask { lun, entries } => mask_change(state, lun, entries, true)?,
        AdminOp::RemoveFromMask { lun, entries } => mask_change(state, lun, entries, false)?,
        AdminOp::BreakShadow { lun } => Change::BreakShadow {
            id: state.id_of(lun)?,
        },
        AdminOp::SetOnline { lun, online } => Change::SetStatus {
            id: state.id_of(lun)?,
            online: *online,
        },
    })
}
