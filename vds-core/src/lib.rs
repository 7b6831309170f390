//! # vds-core
//!
//! The virtual disk service model after Microsoft VDS: LUNs, initiators and LUN masking with exact
//! `SetMask` semantics, plus what VDS lacks (read-only access, per-host LUN numbers, initiator groups,
//! the fast-recovery swap).
//!
//! ```
//! use vds_core::{Access, Array, ErrorKind, InitiatorId, MaskSpec};
//!
//! # fn main() -> Result<(), vds_core::Error> {
//! let array = Array::in_memory();
//! // Text is parsed at the edge (any common spelling, stored normalised); the array takes the
//! // typed forms.
//! let server = InitiatorId::parse("IQN.1991-05.com.Microsoft:Host1")?;
//! let backup = InitiatorId::parse("10:00:00:00:c9:00:00:02")?;
//! array.create_lun("db", 1 << 20, &MaskSpec::parse("iqn.1991-05.com.microsoft:host1")?)?;
//! array.add_to_mask("db", &MaskSpec::host(backup.clone(), Access::ReadOnly))?;
//! array.create_lun("scratch", 1 << 20, &MaskSpec::None)?; // default deny
//! // I/O names its initiator; buffer then offset, as the engine's `read_at`/`write_at`.
//! array.write_at("db", &server, b"hello", 4096)?;
//! let mut buf = [0u8; 5];
//! array.read_at("db", &backup, &mut buf, 4096)?;
//! assert_eq!(&buf, b"hello");
//! let denied = array.write_at("db", &backup, b"x", 0).unwrap_err();
//! assert_eq!(denied.kind(), ErrorKind::AccessDenied); // read-only
//! assert_eq!(array.host_view(&server).len(), 1); // "scratch" is masked away
//! assert_eq!(array.get_mask("db")?, "10000000c9000002=ro;iqn.1991-05.com.microsoft:host1");
//! # Ok(()) }
//! ```

pub mod array;
mod error;
pub mod initiator;
pub mod mask;
pub mod model;
pub mod script;

pub use array::{
    AdminOp, Array, ArrayOptions, AsyncHandle, EngineShadow, EngineShadowSet, FrozenLuns,
    LunHandle, LunOptions, ResumedKind, ResumedOp, ThawOutcome,
};
pub use cow_engine::events::{Delivery, Subscription};
pub use cow_engine::SnapshotId;
pub use error::{panic_text, Error, ErrorKind, Result};
pub use initiator::InitiatorId;
pub use mask::{Access, Grant, LunHosts, LunId, MaskDelta, MaskSpec, MaskTable, Principal};
pub use model::{
    ControllerInfo, Health, LunInfo, LunStats, LunStatus, LunType, Notification, ObjectStatus,
    PortInfo, ProviderInfo, SubsystemInfo, TransitionState,
};
