//! # vss-core
//!
//! The shadow-copy protocol after Microsoft VSS, portable and with every wait bounded: the
//! requester asks writers (the applications) to bring their data to a consistent state, a provider
//! makes the point-in-time copies, and documents describe what was copied.
//!
//! This crate holds the protocol's foundation:
//!
//! - [`Writer`]: an application's side of the protocol, one method per [`WriterEvent`] (identify,
//!   prepare-backup, prepare-snapshot, freeze, thaw, post-snapshot, abort, backup-complete,
//!   backup-shutdown, pre-restore, post-restore), each answering by a deadline with `Ok` or a
//!   [`WriterFailure`] of a [`FailureKind`]; [`WriterState`] holds VSS's writer states.
//! - [`Call`]: one event of one writer on its own thread; a panic is a failed writer and a hang
//!   past the deadline a timeout, never a crashed or stuck requester.
//! - [`ExecWriter`] and [`SessionWriter`]: writers defined by a command line, as Linux users make
//!   applications consistent (a freeze hook; a database session holding a lock from freeze to
//!   thaw). Their contract is in docs/protocol.md.
//! - [`Context`], [`Attributes`], [`BackupType`], [`ProviderType`], [`SnapshotState`] and
//!   [`ShadowProperties`], with VSS's values.
//! - The [`document`]s: [`WriterMetadata`] and [`BackupComponents`], JSON that round-trips exactly.
//! - [`Error`] with a small stable [`ErrorKind`], carrying the array's and the engine's errors
//!   unchanged.
//!
//! - [`Provider`], and [`HardwareProvider`]: shadows as snapshot LUNs of the embedded array
//!   (one snapshot-set transaction per set, the registry in the pool's LUN metadata), with
//!   import, break, fast recovery and resync.
//!
//! The coordinator (sessions in VSS's order), the software provider on cow-engine and the rest of
//! the shadow registry come next; docs/protocol.md says how they will use what is here.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use vss_core::{
//!     Call, EventContext, FailureKind, Writer, WriterEvent, WriterFailure, WriterMetadata,
//! };
//!
//! /// A writer whose freeze fails while its log is being rotated.
//! struct Db { rotating: bool }
//!
//! impl Writer for Db {
//!     fn name(&self) -> &str { "db" }
//!     fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
//!         Ok(WriterMetadata::for_every_lun("db"))
//!     }
//!     fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> {
//!         if self.rotating {
//!             return Err(WriterFailure::retryable("the log is being rotated"));
//!         }
//!         Ok(())
//!     }
//!     fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> { Ok(()) }
//!     fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> { Ok(()) }
//! }
//!
//! # fn main() -> Result<(), vss_core::Error> {
//! let db: Arc<dyn Writer> = Arc::new(Db { rotating: true });
//! let ctx = EventContext::new(Instant::now() + Duration::from_secs(60))
//!     .with_set(uuid::Uuid::new_v4(), ["db-data", "db-log"]);
//!
//! // Every writer's identify runs on a thread of its own; the document round-trips.
//! let metadata = Call::identify(db.clone(), ctx.clone()).wait().into_result().unwrap();
//! let text = metadata.to_json()?;
//! assert_eq!(WriterMetadata::from_json(text.as_bytes())?, metadata);
//!
//! // A failed freeze names its kind, with VSS's code and the state it leaves the writer in.
//! let failure = Call::start(db, WriterEvent::Freeze, ctx).wait().into_result().unwrap_err();
//! assert_eq!(failure.kind(), FailureKind::Retryable);
//! assert_eq!(failure.kind().hresult(), 0x800423F3);
//! assert_eq!(WriterEvent::Freeze.failed_state().unwrap().to_string(), "FAILED_AT_FREEZE");
//! # Ok(()) }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod document;
mod error;
pub mod provider;
mod shadow;
pub mod writer;

pub use document::{BackupComponents, WriterMetadata};
pub use error::{Error, ErrorKind, Result};
pub use provider::{HardwareProvider, Provider, RecoveryReport, ShadowRequest};
pub use shadow::{
    Attributes, BackupType, Context, Exposure, LunDescription, ProviderType, ShadowProperties,
    SnapshotState,
};
pub use writer::{
    Call, CallOutcome, EventContext, ExecWriter, FailureKind, LateCall, LateReturn, SessionWriter,
    Writer, WriterEvent, WriterFailure, WriterState,
};
