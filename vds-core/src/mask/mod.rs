//! LUN masking: VDS `SetMask` semantics plus per-host access, per-host LUN numbers and initiator
//! groups (what SMI-S, MaskingSet and LIO add), with indexes for fast queries.

mod spec;
mod table;

pub use spec::{check_name, Access, MaskSpec, Principal};
pub use table::{Grant, LunHosts, LunId, MaskDelta, MaskTable, MAX_LUN_NUMBER};
