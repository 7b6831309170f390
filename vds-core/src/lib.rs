//! # vds-core
//!
//! The virtual disk service model after Microsoft VDS: LUNs, initiators and LUN masking with exact
//! `SetMask` semantics, plus what VDS lacks (read-only access, per-host LUN numbers, initiator groups,
//! the fast-recovery swap).
//!
//! ```
//! use vds_core::{InitiatorId, MaskSpec, MaskTable};
//!
//! # fn main() -> Result<(), vds_core::Error> {
//! let mut table = MaskTable::new();
//! let host = InitiatorId::parse("IQN.1991-05.com.Microsoft:Host1")?;
//! table.add_lun(1, MaskSpec::parse("iqn.1991-05.com.microsoft:host1")?, None)?;
//! table.add_lun(2, MaskSpec::None, None)?; // default deny
//! let view = table.host_view(&host);
//! assert_eq!(view.len(), 1);
//! assert_eq!(view[0].0, 1);
//! # Ok(()) }
//! ```

pub mod array;
mod error;
pub mod initiator;
pub mod mask;
pub mod model;
pub mod script;

pub use array::{Array, ArrayOptions, AsyncHandle};
/// The bounded subscriptions of [`Array::subscribe_channel`] (the engine's, re-exported).
pub use cow_engine::events::{Delivery, Subscription};
pub use error::{Error, ErrorKind, Result};
pub use initiator::InitiatorId;
pub use mask::{Access, Grant, LunHosts, LunId, MaskDelta, MaskSpec, MaskTable, Principal};
pub use model::{
    ControllerInfo, Health, LunInfo, LunStatus, LunType, Notification, ObjectStatus, PortInfo,
    ProviderInfo, SubsystemInfo, TransitionState,
};
