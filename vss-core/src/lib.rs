//! # vss-core
//!
//! The shadow-copy protocol after Microsoft VSS, portable and with every wait bounded: the
//! requester asks writers (the applications) to bring their data to a consistent state, a provider
//! makes the point-in-time copies, and documents describe what was copied.
//!
//! This crate holds:
//!
//! - [`Coordinator`]: sessions in VSS's order with every wait bounded: a [`BackupSession`]
//!   (gather writer metadata, select components, start set, add volumes, prepare for backup, do
//!   snapshot set, backup complete, backup shutdown, abort) and a [`RestoreSession`] (identify,
//!   select components, pre-restore, revert, post-restore, a [`RestoreStatus`] per component),
//!   state machines at run time (a wrong call is [`ErrorKind::BadState`]), with a typestate
//!   facade, [`Backup`], on which an out-of-order call does not compile. One set in flight
//!   ([`ErrorKind::SnapshotSetInProgress`]); a failure up to thaw aborts the set with nothing left
//!   frozen, held or made; a hung writer is kept out of new sets until its call returns; the
//!   registry of shadows over the providers ([`ShadowSelector`]).
//! - [`Provider`]: what makes the shadows; [`SoftwareProvider`] on cow-engine volumes (one
//!   flush-and-hold and one O(1) snapshot per volume, all or none; persistent shadows listed after
//!   a reopen; 64 per volume by default).
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
//! - [`script`]: a DiskShadow-style script language: typed commands with line numbers,
//!   `%ALIAS%` expansion, a dry run reporting every bad line, the structured run result and the
//!   dialect's exit codes.
//! - [`Provider`], [`SoftwareProvider`] (cow-engine volumes) and [`HardwareProvider`]: shadows as
//!   snapshot LUNs of the embedded array (one snapshot-set transaction per set, the registry in
//!   the pool's LUN metadata), with import, break, fast recovery and resync.
//!
//! - [`PoolCoordinator`] ([`pool`]): the coordinator over an embedded array's pool, with both
//!   providers (the software one on the array's engine-level shadows), writers registered in the
//!   pool, and a set-in-progress record in the pool so a requester killed mid-set is cleaned up at
//!   the next open.
//!
//! Its C face is in the `ffi` crate and `include/umbra.h` (docs/protocol.md, docs/abi.md).
//!
//! A whole backup of two volumes with a database writer, then a restore:
//!
//! ```
//! use std::sync::Arc;
//! use cow_engine::{Volume, VolumeConfig};
//! use vss_core::document::Component;
//! use vss_core::{
//!     BackupType, Context, Coordinator, EventContext, Provider, RestoreStatus, SoftwareProvider,
//!     Writer, WriterFailure, WriterMetadata,
//! };
//!
//! /// A database on volumes "data" and "log".
//! struct Db;
//!
//! impl Writer for Db {
//!     fn name(&self) -> &str { "db" }
//!     fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
//!         let mut m = WriterMetadata::new("db");
//!         m.components.push(Component::new("", "main", ["data", "log"]));
//!         Ok(m)
//!     }
//!     fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> { Ok(()) }
//!     fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> { Ok(()) }
//!     fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> { Ok(()) }
//! }
//!
//! # fn main() -> Result<(), vss_core::Error> {
//! let mem = || Volume::create_mem(1 << 20, VolumeConfig::default());
//! let software = SoftwareProvider::new([("data", mem()?), ("log", mem()?)])?;
//! let data = software.volume("data").unwrap();
//! let provider: Arc<dyn Provider> = Arc::new(software);
//! let coordinator = Coordinator::new([provider]);
//! coordinator.add_writer(Arc::new(Db))?;
//!
//! data.write_at(b"v1", 0)?;
//! // APP_ROLLBACK: persistent shadows, kept after the session, with writers.
//! let mut backup = coordinator.backup(Context::APP_ROLLBACK, BackupType::Full);
//! backup.gather_writer_metadata()?;
//! backup.select_component("db", "main")?;
//! backup.start_set()?;
//! backup.add_volume("data")?;
//! backup.add_volume("log")?;
//! backup.prepare_for_backup()?;
//! let shadows = backup.do_snapshot_set()?; // freeze, one instant for both volumes, thaw
//! assert_eq!(shadows.len(), 2);
//! let saved = backup.backup_components()?.to_json()?;
//! backup.backup_complete()?;
//! backup.backup_shutdown()?;
//! assert_eq!(coordinator.shadows()?.len(), 2);
//!
//! // Later: the data is damaged; restore the component from the saved document.
//! data.write_at(b"v2", 0)?;
//! let saved = vss_core::BackupComponents::from_json(saved.as_bytes())?;
//! let mut restore = coordinator.restore(saved)?;
//! restore.gather_writer_metadata()?;
//! restore.pre_restore()?;
//! restore.restore()?;
//! restore.post_restore()?;
//! assert_eq!(restore.restore_status()[0].status, RestoreStatus::All);
//! let mut buf = [0u8; 2];
//! data.read_at(&mut buf, 0)?;
//! assert_eq!(&buf, b"v1");
//! # Ok(()) }
//! ```
//!
//! Writers can also be called one event at a time, outside a coordinator:
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

pub mod coordinator;
pub mod document;
mod error;
pub mod pool;
pub mod provider;
pub mod script;
mod shadow;
pub mod writer;

pub use coordinator::{
    Backup, BackupSession, BackupStep, ComponentRestore, Coordinator, Restore, RestoreSession,
    RestoreStatus, RestoreStep, ShadowSelector, Timeouts, WriterStatus,
};
pub use document::{BackupComponents, WriterMetadata};
pub use error::{Error, ErrorKind, Result};
pub use pool::{PoolCoordinator, PoolOptions, PoolProvider, RegisteredWriter};
pub use provider::software::SoftwareProvider;
pub use provider::{HardwareProvider, Provider, RecoveryReport, ShadowRequest};
pub use shadow::{
    Attributes, BackupType, Context, Exposure, LunDescription, ProviderType, ShadowProperties,
    SnapshotState,
};
pub use writer::{
    Call, CallOutcome, EventContext, ExecWriter, FailureKind, LateCall, LateReturn, SessionWriter,
    Writer, WriterEvent, WriterFailure, WriterState,
};
