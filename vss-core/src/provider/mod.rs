//! Providers: what makes the point-in-time copies of a shadow-copy set.
//!
//! A [`Provider`] follows VSS's provider interfaces (`IVssProviderCreateSnapshotSet`,
//! `IVssSoftwareSnapshotProvider`, `IVssHardwareSnapshotProvider`), driven by the coordinator in
//! this order for one set:
//!
//! ```text
//! is_volume_supported (each volume, when it is added)
//! begin_prepare (each volume) -> end_prepare -> [writers freeze] -> pre_commit
//!   -> commit (the instant: flush-and-hold every volume, copy, release; inside the hold window)
//!   -> post_commit (the shadows' properties) -> [writers thaw]
//! abort (any time before post_commit returned: nothing of the set may remain)
//! ```
//!
//! A provider may receive a new `begin_prepare` for another set at any time after an `abort`
//! and must treat it as a new sequence. Sets are told apart by their ids: a provider shared by
//! several coordinators may be asked to make sets of different volumes at the same time. An
//! expected refusal (a volume it cannot snapshot now) is
//! [`ErrorKind::ProviderVeto`]; anything else it reports is an unexpected provider error, which
//! the coordinator tells apart from a veto.
//!
//! Every shadow a provider made and has not deleted is listed by [`Provider::shadows`], from its
//! own persisted records (a persistent shadow survives a restart of the process), so the
//! coordinator's registry is a view over its providers and keeps no side file.
//!
//! [`ErrorKind::ProviderVeto`]: crate::ErrorKind::ProviderVeto

pub mod hardware;
pub(crate) mod pending;
pub mod software;

use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_core::AsyncHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::shadow::{Attributes, Context, ProviderType, ShadowProperties};

pub use hardware::HardwareProvider;

/// One volume of a set, as the coordinator hands it to its provider at `begin_prepare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowRequest {
    /// The set being made.
    pub set_id: Uuid,
    /// The id the coordinator gave this volume's shadow (at add-volume time).
    pub shadow_id: Uuid,
    /// The volume (a LUN's name for the hardware provider, a volume's name for the software
    /// provider).
    pub volume: String,
    /// The set's context.
    pub context: Context,
    /// The set's attributes: the context's plus the requester's options (TRANSPORTABLE,
    /// DIFFERENTIAL, PLEX, ...).
    pub attributes: Attributes,
    /// How many volumes the set holds.
    pub count_in_set: u32,
}

/// What a provider makes shadows with, after VSS's provider interfaces. See the module docs for
/// the order of the calls.
pub trait Provider: Send + Sync {
    /// The provider's id (stable across restarts: it is recorded in each shadow's properties).
    fn id(&self) -> Uuid;

    /// The provider's name, as `list providers` prints it.
    fn name(&self) -> &str;

    /// Software or hardware.
    fn provider_type(&self) -> ProviderType;

    /// What names `volume` across every coordinator of this process: two coordinators whose
    /// providers give the same key for a volume never make sets of it at the same time (the
    /// second gets [`ErrorKind::SnapshotSetInProgress`]). The default is the provider's id and
    /// the volume's name; the providers over an array key a LUN by its pool's directory (or an
    /// in-memory array's `Array::instance_id`) and its name.
    fn volume_key(&self, volume: &str) -> String {
        format!("{}/{volume}", self.id())
    }

    /// Whether this provider can make a shadow of `volume` in `context` (VSS
    /// `IsVolumeSupported` / `AreLunsSupported`). `Ok(false)` for a volume it does not know;
    /// an error only when it could not tell.
    fn is_volume_supported(&self, volume: &str, context: Context) -> Result<bool>;

    /// Whether `volume` exists for this provider at all (supported or not): a volume no provider
    /// knows is not found rather than not supported. The default answers `true` (a provider
    /// that cannot tell leaves the verdict to [`Provider::is_volume_supported`]).
    fn knows_volume(&self, volume: &str) -> Result<bool> {
        let _ = volume;
        Ok(true)
    }

    /// Starts preparing the shadow of one volume of a set. The first call for a new set id
    /// starts a new sequence for that set.
    fn begin_prepare(&self, request: &ShadowRequest) -> Result<()>;

    /// The rendezvous: every volume of set `set_id` is prepared, by `deadline`.
    fn end_prepare(&self, set_id: Uuid, deadline: Instant) -> Result<()>;

    /// Writers are frozen; last chance to refuse cheaply (no blocking I/O).
    fn pre_commit(&self, set_id: Uuid) -> Result<()>;

    /// The instant: flush and hold writes on every volume of the set, copy them all at one
    /// point in time, release the writes, all within `hold` (else
    /// [`ErrorKind::HoldWritesTimeout`] or [`ErrorKind::FlushWritesTimeout`], and nothing of the
    /// set remains).
    fn commit(&self, set_id: Uuid, hold: Duration) -> Result<()>;

    /// After the commit: makes the shadows durable as the context asks and returns their
    /// properties, one per volume, in the order the volumes were prepared.
    fn post_commit(&self, set_id: Uuid) -> Result<Vec<ShadowProperties>>;

    /// Forgets set `set_id`: every shadow of it made so far is deleted and every volume it
    /// holds is released. Idempotent; an unknown set is not an error.
    fn abort(&self, set_id: Uuid) -> Result<()>;

    /// Every shadow this provider made and has not deleted, from its persisted records.
    fn shadows(&self) -> Result<Vec<ShadowProperties>>;

    /// Deletes one shadow. [`ErrorKind::NotFound`] for an unknown id.
    fn delete(&self, shadow_id: Uuid) -> Result<()>;

    /// Reverts the shadow's original volume to the shadow (persistent shadows only), as a
    /// long operation with progress. The provider's own default: unsupported.
    fn revert(&self, shadow_id: Uuid) -> Result<AsyncHandle<()>> {
        Err(unsupported(self.name(), "revert", shadow_id))
    }

    /// Copies the shadow back over its original volume (or `target`), only the blocks that
    /// differ, as a long operation with progress and cancel (VSS `ResyncLuns`).
    fn resync(&self, shadow_id: Uuid, target: Option<&str>) -> Result<AsyncHandle<()>> {
        let _ = target;
        Err(unsupported(self.name(), "resync", shadow_id))
    }

    /// The bytes written to `volume`'s own data so far, from its I/O statistics, if this
    /// provider can read them (`None`: it cannot). A front end reports what a
    /// [`resync`](Provider::resync) copied as the difference of two readings, taken before it
    /// starts and after it ends. The default: `None`.
    fn written_bytes(&self, volume: &str) -> Result<Option<u64>> {
        let _ = volume;
        Ok(None)
    }

    /// Makes the shadows of set `set_id` visible to `host` (VSS `LocateLuns` at import;
    /// read-only until broken). A set is imported once: a second import is
    /// [`ErrorKind::BadState`]. Returns the shadows' properties as they are now.
    fn import(&self, set_id: Uuid, host: &str) -> Result<Vec<ShadowProperties>> {
        let _ = host;
        Err(unsupported(self.name(), "import", set_id))
    }

    /// Makes shadow `shadow_id` visible, read-only, to `host` besides any host it is exposed
    /// to already (DiskShadow `expose ID HOST`), recorded in its [`Exposure`](crate::Exposure).
    /// Returns its properties as they are now.
    fn expose(&self, shadow_id: Uuid, host: &str) -> Result<ShadowProperties> {
        let _ = host;
        Err(unsupported(self.name(), "expose", shadow_id))
    }

    /// Hides shadow `shadow_id` from every host it is exposed to (DiskShadow `unexpose`;
    /// `mask` does it for a whole imported set); hiding a hidden shadow changes nothing.
    /// Returns its properties as they are now.
    fn unexpose(&self, shadow_id: Uuid) -> Result<ShadowProperties> {
        Err(unsupported(self.name(), "unexpose", shadow_id))
    }

    /// Turns the shadows of set `set_id` into ordinary read-write volumes, out of the set
    /// (VSS `BreakSnapshotSet`): deleting the set never deletes them. Returns their names.
    fn break_set(&self, set_id: Uuid) -> Result<Vec<String>> {
        Err(unsupported(self.name(), "break", set_id))
    }

    /// Fast recovery: shadow `shadow_id` takes its original's place at the same host LUN
    /// numbers (broken, read-write); the damaged original stays, masked to no one or
    /// read-only to `keep_for` for diagnosis. Returns the recovery's report.
    fn recover(&self, shadow_id: Uuid, keep_for: Option<&str>) -> Result<RecoveryReport> {
        let _ = keep_for;
        Err(unsupported(self.name(), "fast recovery", shadow_id))
    }
}

/// What a fast recovery did, as [`Provider::recover`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// The damaged volume (it keeps its name, masked off its hosts).
    pub damaged: String,
    /// The volume now in its place (the broken shadow), reached by the same host LUN numbers.
    pub recovered: String,
    /// Bytes written to origins and diff areas of the volumes involved during the call, read
    /// from their statistics: 0 for a recovery that moves no data.
    pub bytes_moved: u64,
    /// Write operations issued to those volumes' devices during the call.
    pub writes: u64,
}

/// The error of an operation a provider does not offer.
fn unsupported(provider: &str, what: &str, id: Uuid) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("provider {provider:?} does not offer {what} (for {id})"),
    )
}
