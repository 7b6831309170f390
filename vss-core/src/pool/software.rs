//! The software provider on a pool: shadows as the array's engine-level shadows of LUNs.
//!
//! An [`ArraySoftwareProvider`] makes each set as one [`Array::engine_snapshot_set`] transaction
//! (every LUN frozen, one engine snapshot each, every LUN thawed; crash-atomic), with each
//! shadow's [`ShadowProperties`] in its engine shadow's metadata bytes, as the cow-engine
//! software provider keeps them (`{"format":"umbra-software-shadow","version":1,...}`,
//! docs/format.md). No side file: [`Provider::shadows`] reads every LUN's engine shadows, so the
//! shadows of a pool are listed again after it is reopened.

use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use uuid::Uuid;
use vds_core::{Array, AsyncHandle, SnapshotId};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::pending::PendingSets;
use crate::provider::software::{
    check_max, check_room, decode, encode, shadow_name, DEFAULT_MAX_SHADOWS_PER_VOLUME,
};
use crate::provider::{HardwareProvider, Provider, ShadowRequest};
use crate::shadow::{
    Attributes, Context, Exposure, LunDescription, ProviderType, ShadowProperties, SnapshotState,
};

/// The pool software provider's id, the same in every process (recorded in each shadow).
pub const ARRAY_SOFTWARE_PROVIDER_ID: Uuid =
    Uuid::from_u128(0x756d_6272_612d_706f_6f6c_2d73_6f66_0001);

/// Shadows as engine-level shadows of the array's LUNs (see the module documentation).
pub struct ArraySoftwareProvider {
    array: Array,
    max_per_volume: usize,
    /// The sets being made; their shadows' place is the LUN's name.
    sets: Mutex<PendingSets<String>>,
}

impl std::fmt::Debug for ArraySoftwareProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArraySoftwareProvider")
            .field("max_per_volume", &self.max_per_volume)
            .finish_non_exhaustive()
    }
}

impl ArraySoftwareProvider {
    /// A provider over the LUNs of `array`, holding at most 64 shadows per LUN.
    pub fn new(array: Array) -> Self {
        ArraySoftwareProvider {
            array,
            max_per_volume: DEFAULT_MAX_SHADOWS_PER_VOLUME,
            sets: Mutex::new(PendingSets::new("pool software provider", "LUN")),
        }
    }

    /// The same provider holding at most `max` shadows per LUN (1 to 512); one more is
    /// [`ErrorKind::MaxSnapshotsReached`] at begin-prepare.
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a `max` outside 1..=512.
    pub fn with_max_shadows_per_volume(mut self, max: usize) -> Result<Self> {
        check_max(max)?;
        self.max_per_volume = max;
        Ok(self)
    }

    /// The most shadows a LUN holds.
    pub fn max_shadows_per_volume(&self) -> usize {
        self.max_per_volume
    }

    /// This provider's shadows on LUN `lun`: (engine snapshot, properties), oldest first.
    /// Engine shadows of other layers are skipped; one tagged as a software shadow that does
    /// not read is [`ErrorKind::Corrupt`].
    fn shadows_on(&self, lun: &str) -> Result<Vec<(SnapshotId, ShadowProperties)>> {
        let mut out = Vec::new();
        for s in self.array.engine_shadows(lun)? {
            if let Some(p) = decode(lun, s.id, &s.metadata)? {
                if p.provider_id == ARRAY_SOFTWARE_PROVIDER_ID {
                    out.push((s.id, p));
                }
            }
        }
        Ok(out)
    }

    /// Every shadow of every LUN: (LUN, engine snapshot, properties).
    fn all(&self) -> Result<Vec<(String, SnapshotId, ShadowProperties)>> {
        let mut out = Vec::new();
        let damaged = self.array.damaged_luns();
        for info in self.array.luns() {
            if damaged.iter().any(|(n, _)| *n == info.name) {
                continue;
            }
            for (id, p) in self.shadows_on(&info.name)? {
                out.push((info.name.clone(), id, p));
            }
        }
        out.sort_by_key(|(_, _, p)| p.created);
        Ok(out)
    }

    fn find(&self, shadow_id: Uuid) -> Result<(String, SnapshotId, ShadowProperties)> {
        self.all()?
            .into_iter()
            .find(|(_, _, p)| p.shadow_id == shadow_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("the pool's software provider has no shadow {shadow_id}"),
                )
            })
    }

    /// Deletes every shadow of set `set_id` on any LUN (what a set that did not finish left);
    /// returns the LUNs they were on.
    pub(crate) fn delete_set(&self, set_id: Uuid) -> Result<Vec<String>> {
        let mut luns = Vec::new();
        for (lun, id, p) in self.all()? {
            if p.set_id == set_id {
                self.array.delete_engine_shadow(&lun, id)?;
                luns.push(lun);
            }
        }
        Ok(luns)
    }
}

/// The attributes of a shadow that outlives the session that made it: kept after the session
/// (`NO_AUTO_RELEASE`), persistent, or meant for users (`CLIENT_ACCESSIBLE`).
const OUTLIVES_SESSION: Attributes = Attributes::PERSISTENT
    .union(Attributes::CLIENT_ACCESSIBLE)
    .union(Attributes::NO_AUTO_RELEASE);

/// Refuses a shadow of volatile LUN `lun` in a `context` whose shadows outlive the session
/// ([`OUTLIVES_SESSION`]): a volatile LUN's engine snapshots live only while the pool is open,
/// so such a shadow would be listed, then silently gone at the next open. Only a volatile
/// context (auto-released, not persistent: a DiskShadow script's `set context volatile`) may
/// stand on them. [`ErrorKind::BadState`], as the array refuses a snapshot LUN of it.
fn check_lifetime(lun: &str, volatile: bool, context: Context) -> Result<()> {
    let kept = context.attributes() & OUTLIVES_SESSION;
    if volatile && !kept.is_empty() {
        return Err(Error::new(
            ErrorKind::BadState,
            format!(
                "LUN {lun:?} is volatile: its snapshots live only until the pool closes, so a \
                 shadow of it in context {context} (attributes {kept:?}) cannot be made; only a \
                 volatile context (released when its session ends) can shadow it"
            ),
        ));
    }
    Ok(())
}

impl Provider for ArraySoftwareProvider {
    fn id(&self) -> Uuid {
        ARRAY_SOFTWARE_PROVIDER_ID
    }

    fn name(&self) -> &str {
        "umbra-pool-software"
    }

    fn provider_type(&self) -> ProviderType {
        ProviderType::Software
    }

    /// The hardware provider's key for the LUN, so a LUN is in one set being made whichever of
    /// the pool's providers makes it.
    fn volume_key(&self, volume: &str) -> String {
        HardwareProvider::new(self.array.clone()).volume_key(volume)
    }

    /// True for any LUN of the array.
    fn knows_volume(&self, volume: &str) -> Result<bool> {
        Ok(self.array.lun(volume).is_ok())
    }

    /// A LUN of the array that is not damaged and is not an unbroken shadow LUN; not in a
    /// hardware-only (`HARDWARE_ASSISTED`, `PLEX`) context.
    ///
    /// Errors: [`ErrorKind::BadState`] for a volatile LUN in a context whose shadows outlive
    /// the session (`PERSISTENT`, `CLIENT_ACCESSIBLE` or `NO_AUTO_RELEASE`): its engine
    /// snapshots end with the pool, so the set is refused at once, before any writer is told of
    /// it.
    fn is_volume_supported(&self, volume: &str, context: Context) -> Result<bool> {
        if context.contains(Context::HARDWARE_ASSISTED) || context.contains(Context::PLEX) {
            return Ok(false);
        }
        let Ok(info) = self.array.lun(volume) else {
            return Ok(false);
        };
        if self.array.damaged_luns().iter().any(|(n, _)| n == volume) {
            return Ok(false);
        }
        check_lifetime(volume, info.volatile, context)?;
        Ok(!self.array.is_shadow(volume)?)
    }

    fn begin_prepare(&self, request: &ShadowRequest) -> Result<()> {
        if !self.is_volume_supported(&request.volume, request.context)? {
            return Err(Error::new(
                ErrorKind::VolumeNotSupported,
                format!(
                    "the pool's software provider cannot shadow LUN {:?}",
                    request.volume
                ),
            ));
        }
        let mut sets = self.sets.lock();
        let pending = sets.admit(request)?;
        let have = self.shadows_on(&request.volume)?.len();
        check_room("LUN", &request.volume, have, self.max_per_volume)?;
        pending.requests.push(request.clone());
        Ok(())
    }

    fn end_prepare(&self, set_id: Uuid, _deadline: Instant) -> Result<()> {
        self.sets.lock().end_prepare(set_id)
    }

    fn pre_commit(&self, set_id: Uuid) -> Result<()> {
        let mut sets = self.sets.lock();
        let p = sets.get(set_id, "pre-commit")?;
        for r in &p.requests {
            if !self.is_volume_supported(&r.volume, r.context)? {
                return Err(Error::new(
                    ErrorKind::ProviderVeto,
                    format!(
                        "LUN {:?} was deleted or damaged since it was prepared",
                        r.volume
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One [`Array::engine_snapshot_set`] transaction: all or none. A call longer than `hold`
    /// deletes what it made and is [`ErrorKind::HoldWritesTimeout`].
    fn commit(&self, set_id: Uuid, hold: Duration) -> Result<()> {
        let mut sets = self.sets.lock();
        let p = sets.for_commit(set_id)?;
        let started = Instant::now();
        let created = SystemTime::now();
        let count = u32::try_from(p.requests.len()).unwrap_or(u32::MAX);
        let mut props = Vec::new();
        for r in &p.requests {
            let size = self.array.lun(&r.volume)?.size;
            props.push(ShadowProperties {
                shadow_id: r.shadow_id,
                set_id,
                count_in_set: count,
                original: LunDescription {
                    name: r.volume.clone(),
                    size,
                },
                shadow: LunDescription {
                    name: shadow_name(&r.volume, r.shadow_id),
                    size,
                },
                provider_id: ARRAY_SOFTWARE_PROVIDER_ID,
                provider_type: ProviderType::Software,
                attributes: r.attributes | Attributes::DIFFERENTIAL,
                created,
                state: SnapshotState::Created,
                exposure: Exposure::Hidden,
            });
        }
        let metas: Vec<Vec<u8>> = props.iter().map(encode).collect::<Result<_>>()?;
        let luns: Vec<(&str, &[u8])> = p
            .requests
            .iter()
            .zip(&metas)
            .map(|(r, m)| (r.volume.as_str(), m.as_slice()))
            .collect();
        let set = self.array.engine_snapshot_set(&luns).map_err(|e| {
            let kind = match e.kind() {
                vds_core::ErrorKind::Timeout => ErrorKind::FlushWritesTimeout,
                vds_core::ErrorKind::NoSpace => ErrorKind::NoSpace,
                _ => ErrorKind::UnexpectedProviderError,
            };
            Error::new(
                kind,
                format!(
                    "pool software provider: the engine shadows of set {set_id} were not taken: {}",
                    Error::from(e).report()
                ),
            )
        })?;
        let made: Vec<_> = set
            .shadows
            .into_iter()
            .zip(props)
            .map(|((lun, id), p)| (lun, id, p))
            .collect();
        if started.elapsed() > hold {
            for (lun, id, _) in &made {
                let _ = self.array.delete_engine_shadow(lun, *id);
            }
            return Err(Error::new(
                ErrorKind::HoldWritesTimeout,
                format!(
                    "pool software provider: the commit of set {set_id} took longer than the hold \
                     window ({hold:?}); no shadow of the set remains"
                ),
            ));
        }
        p.made = made;
        Ok(())
    }

    fn post_commit(&self, set_id: Uuid) -> Result<Vec<ShadowProperties>> {
        self.sets.lock().post_commit(set_id)
    }

    /// Forgets the set and deletes every shadow of it on any LUN (so it also cleans up a set a
    /// killed process left). Idempotent.
    fn abort(&self, set_id: Uuid) -> Result<()> {
        self.sets.lock().remove(set_id);
        self.delete_set(set_id).map(drop)
    }

    fn shadows(&self) -> Result<Vec<ShadowProperties>> {
        Ok(self.all()?.into_iter().map(|(_, _, p)| p).collect())
    }

    fn delete(&self, shadow_id: Uuid) -> Result<()> {
        let (lun, id, _) = self.find(shadow_id)?;
        self.array.delete_engine_shadow(&lun, id)?;
        Ok(())
    }

    /// Reverts the shadow's LUN to it ([`Array::revert_to_engine_shadow`]: fenced, host I/O
    /// refused while it runs, on a thread with progress and cancel); persistent shadows only
    /// ([`ErrorKind::UnsupportedContext`] otherwise).
    fn revert(&self, shadow_id: Uuid) -> Result<AsyncHandle<()>> {
        let (lun, id, props) = self.find(shadow_id)?;
        if !props.attributes.contains(Attributes::PERSISTENT) {
            return Err(Error::new(
                ErrorKind::UnsupportedContext,
                format!(
                    "shadow {shadow_id} of LUN {lun:?} is not persistent: only a persistent \
                     shadow can be reverted to"
                ),
            ));
        }
        Ok(self.array.revert_to_engine_shadow(&lun, id))
    }
}
