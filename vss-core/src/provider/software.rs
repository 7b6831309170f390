//! The software provider: shadows as cow-engine snapshots of named volumes.
//!
//! A [`SoftwareProvider`] holds a set of named [`Volume`]s (file volumes or memory volumes). Its
//! commit is the engine's flush-and-hold on every volume of the set (`Volume::freeze` with the
//! hold window as its deadline), the O(1) snapshot of each, and the thaw of all: all or none, a
//! failure deletes the snapshots made so far and thaws every volume it froze.
//!
//! Each shadow's [`ShadowProperties`] are kept in its engine snapshot's metadata bytes
//! (`SnapshotOptions::metadata`, written atomically with the snapshot), as JSON tagged
//! `{"format":"umbra-software-shadow","version":1,"properties":{...}}` (docs/format.md): no side
//! file, so [`Provider::shadows`] lists the persistent shadows of reopened volumes. A persistent
//! context (`Attributes::PERSISTENT`) makes persistent snapshots (on a journaled volume they
//! survive a reopen); any other context makes volatile ones, gone at the next open.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cow_engine::{SnapshotId, SnapshotOptions, ThawOutcome, Volume};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vds_core::AsyncHandle;

use super::pending::PendingSets;
use super::{Provider, ShadowRequest};
use crate::document::{is_name, NAME_RULE};
use crate::error::{Error, ErrorKind, Result};
use crate::shadow::{
    Attributes, Context, Exposure, LunDescription, ProviderType, ShadowProperties, SnapshotState,
};

/// The software provider's id, the same in every process (it is recorded in each shadow).
pub const SOFTWARE_PROVIDER_ID: Uuid = Uuid::from_u128(0x756d_6272_612d_736f_6674_7761_7265_0001);

/// How many shadows a volume holds at most, unless configured otherwise (VSS's default).
pub const DEFAULT_MAX_SHADOWS_PER_VOLUME: usize = 64;

/// The most a volume may be configured to hold (VSS's ceiling).
pub const MAX_SHADOWS_PER_VOLUME: usize = 512;

/// The `format` tag of the JSON a software shadow keeps in its snapshot's metadata.
const FORMAT: &str = "umbra-software-shadow";

/// What a software shadow keeps in its engine snapshot's metadata.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    version: u32,
    properties: ShadowProperties,
}

/// Shadows as cow-engine snapshots of a set of named volumes (see the module documentation).
pub struct SoftwareProvider {
    volumes: RwLock<BTreeMap<String, Volume>>,
    max_per_volume: usize,
    /// The sets being made (several coordinators may share the provider, each making sets of
    /// other volumes), by id.
    set: Mutex<PendingSets<Volume>>,
    /// Volumes with a revert running.
    reverting: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for SoftwareProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareProvider")
            .field("volumes", &self.volumes.read().keys().collect::<Vec<_>>())
            .field("max_per_volume", &self.max_per_volume)
            .finish_non_exhaustive()
    }
}

impl SoftwareProvider {
    /// A provider over `volumes` (name, volume), holding at most
    /// [`DEFAULT_MAX_SHADOWS_PER_VOLUME`] shadows per volume.
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a name that is not 1 to 64 letters, digits, '.',
    /// '_' or '-'; [`ErrorKind::AlreadyExists`] for a name given twice.
    pub fn new(volumes: impl IntoIterator<Item = (impl Into<String>, Volume)>) -> Result<Self> {
        let p = SoftwareProvider {
            volumes: RwLock::new(BTreeMap::new()),
            max_per_volume: DEFAULT_MAX_SHADOWS_PER_VOLUME,
            set: Mutex::new(PendingSets::new("software provider", "volume")),
            reverting: Arc::new(Mutex::new(HashSet::new())),
        };
        for (name, vol) in volumes {
            p.add_volume(name, vol)?;
        }
        Ok(p)
    }

    /// The same provider holding at most `max` shadows per volume (1 to
    /// [`MAX_SHADOWS_PER_VOLUME`]); one more is [`ErrorKind::MaxSnapshotsReached`].
    ///
    /// Errors: [`ErrorKind::InvalidArgument`] for a `max` outside 1..=512.
    pub fn with_max_shadows_per_volume(mut self, max: usize) -> Result<Self> {
        check_max(max)?;
        self.max_per_volume = max;
        Ok(self)
    }

    /// The most shadows a volume holds.
    pub fn max_shadows_per_volume(&self) -> usize {
        self.max_per_volume
    }

    /// Adds volume `name`.
    ///
    /// Errors: as [`SoftwareProvider::new`].
    pub fn add_volume(&self, name: impl Into<String>, volume: Volume) -> Result<()> {
        let name = name.into();
        if !is_name(&name) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("volume name {name:?} {NAME_RULE}"),
            ));
        }
        let mut vols = self.volumes.write();
        if vols.contains_key(&name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("the software provider already holds a volume {name:?}"),
            ));
        }
        vols.insert(name, volume);
        Ok(())
    }

    /// The volume named `name`.
    pub fn volume(&self, name: &str) -> Option<Volume> {
        self.volumes.read().get(name).cloned()
    }

    /// The names of the volumes, sorted.
    pub fn volume_names(&self) -> Vec<String> {
        self.volumes.read().keys().cloned().collect()
    }

    fn volume_or_err(&self, name: &str) -> Result<Volume> {
        self.volume(name).ok_or_else(|| {
            Error::new(
                ErrorKind::VolumeNotSupported,
                format!("the software provider holds no volume {name:?}"),
            )
        })
    }

    /// The shadows on one volume: (snapshot, properties), oldest first. A snapshot whose
    /// metadata is not a software shadow's (another layer's) is skipped; one tagged as a
    /// software shadow that does not read is [`ErrorKind::Corrupt`].
    fn shadows_on(name: &str, vol: &Volume) -> Result<Vec<(SnapshotId, ShadowProperties)>> {
        let mut out = Vec::new();
        for info in vol.snapshots() {
            if let Some(p) = decode(name, info.id, &info.metadata)? {
                out.push((info.id, p));
            }
        }
        Ok(out)
    }

    /// Finds shadow `shadow_id`: its volume's name, the volume, the snapshot and its properties.
    fn find(&self, shadow_id: Uuid) -> Result<(String, Volume, SnapshotId, ShadowProperties)> {
        let vols = self.volumes.read();
        for (name, vol) in vols.iter() {
            for (snap, p) in Self::shadows_on(name, vol)? {
                if p.shadow_id == shadow_id {
                    return Ok((name.clone(), vol.clone(), snap, p));
                }
            }
        }
        Err(Error::new(
            ErrorKind::NotFound,
            format!("the software provider has no shadow {shadow_id}"),
        ))
    }
}

/// Checks a per-volume shadow limit: 1 to [`MAX_SHADOWS_PER_VOLUME`].
pub(crate) fn check_max(max: usize) -> Result<()> {
    if !(1..=MAX_SHADOWS_PER_VOLUME).contains(&max) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{max} shadows per volume: the limit must be 1 to {MAX_SHADOWS_PER_VOLUME}"),
        ));
    }
    Ok(())
}

/// [`ErrorKind::MaxSnapshotsReached`] if `what` `volume`, holding `have` shadows, has no room
/// for another under `max`.
pub(crate) fn check_room(what: &str, volume: &str, have: usize, max: usize) -> Result<()> {
    if have >= max {
        return Err(Error::new(
            ErrorKind::MaxSnapshotsReached,
            format!(
                "{what} {volume:?} already has {have} shadows, the most it may hold ({max}); \
                 delete some first"
            ),
        ));
    }
    Ok(())
}

/// Reads a software shadow's properties from snapshot metadata (`None`: not a software shadow's).
pub(crate) fn decode(
    volume: &str,
    snap: SnapshotId,
    metadata: &[u8],
) -> Result<Option<ShadowProperties>> {
    #[derive(Deserialize)]
    struct Tag {
        format: Option<String>,
    }
    match serde_json::from_slice::<Tag>(metadata) {
        Ok(Tag {
            format: Some(f), ..
        }) if f == FORMAT => {}
        _ => return Ok(None),
    }
    let stored: Stored = serde_json::from_slice(metadata).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "snapshot {snap} of volume {volume:?} is tagged as a software shadow but its \
                 properties do not read: {e}"
            ),
        )
    })?;
    if stored.version != 1 {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "snapshot {snap} of volume {volume:?} holds software shadow properties of version \
                 {} (this build reads version 1)",
                stored.version
            ),
        ));
    }
    Ok(Some(stored.properties))
}

pub(crate) fn encode(p: &ShadowProperties) -> Result<Vec<u8>> {
    serde_json::to_vec(&Stored {
        format: FORMAT.to_owned(),
        version: 1,
        properties: p.clone(),
    })
    .map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot write shadow {}: {e}", p.shadow_id),
        )
    })
}

/// The shadow's own name: `VOLUME.XXXXXXXX` (the first 8 hex digits of the shadow's id), the
/// volume's name cut so the whole fits 64 bytes.
pub(crate) fn shadow_name(volume: &str, shadow_id: Uuid) -> String {
    let suffix = format!(".{}", &shadow_id.simple().to_string()[..8]);
    let keep = volume.len().min(64 - suffix.len());
    format!("{}{suffix}", &volume[..keep])
}

/// Deletes snapshots made by a commit that is being undone; the first error is kept.
fn undo(made: &[(Volume, SnapshotId, ShadowProperties)]) -> Result<()> {
    let mut first = Ok(());
    for (vol, snap, _) in made.iter().rev() {
        if let Err(e) = vol.delete_snapshot(*snap) {
            if first.is_ok() {
                first = Err(Error::from(e));
            }
        }
    }
    first
}

impl Provider for SoftwareProvider {
    fn id(&self) -> Uuid {
        SOFTWARE_PROVIDER_ID
    }

    fn name(&self) -> &str {
        "umbra-software"
    }

    fn provider_type(&self) -> ProviderType {
        ProviderType::Software
    }

    /// The volume's own identity in the process, so two providers holding the same volume (by
    /// any name) share the key, and volumes of the same name in other providers do not: the
    /// address of the volume's shared state (its event hub, one per volume for every handle of
    /// it, which lives as long as any handle, so as long as this provider holds it). An unknown
    /// name keys by name.
    fn volume_key(&self, volume: &str) -> String {
        match self.volume(volume) {
            Some(v) => format!("cow-engine volume at {:p}", v.events()),
            None => format!("{SOFTWARE_PROVIDER_ID}/{volume}"),
        }
    }

    fn knows_volume(&self, volume: &str) -> Result<bool> {
        Ok(self.volumes.read().contains_key(volume))
    }

    fn is_volume_supported(&self, volume: &str, context: Context) -> Result<bool> {
        // Every context is supported: a memory volume's persistent shadows live as long as the
        // volume. Hardware-only requests are not ours.
        if context.contains(Context::HARDWARE_ASSISTED) || context.contains(Context::PLEX) {
            return Ok(false);
        }
        Ok(self.volumes.read().contains_key(volume))
    }

    fn begin_prepare(&self, request: &ShadowRequest) -> Result<()> {
        let vol = self.volume_or_err(&request.volume)?;
        if self.reverting.lock().contains(&request.volume) {
            return Err(Error::new(
                ErrorKind::RevertInProgress,
                format!("volume {:?} is being reverted", request.volume),
            ));
        }
        let mut slot = self.set.lock();
        // The first volume of a set starts its sequence.
        let pending = slot.admit(request)?;
        let have = Self::shadows_on(&request.volume, &vol)?.len();
        check_room("volume", &request.volume, have, self.max_per_volume)?;
        pending.requests.push(request.clone());
        Ok(())
    }

    fn end_prepare(&self, set_id: Uuid, _deadline: Instant) -> Result<()> {
        self.set.lock().end_prepare(set_id)
    }

    fn pre_commit(&self, set_id: Uuid) -> Result<()> {
        self.set.lock().get(set_id, "pre-commit").map(drop)
    }

    fn commit(&self, set_id: Uuid, hold: Duration) -> Result<()> {
        let mut slot = self.set.lock();
        let p = slot.for_commit(set_id)?;
        let vols: Vec<Volume> = p
            .requests
            .iter()
            .map(|r| self.volume_or_err(&r.volume))
            .collect::<Result<_>>()?;
        let deadline = Instant::now() + hold;
        // Flush and hold every volume, under the hold window's deadline.
        let mut frozen: Vec<&Volume> = Vec::new();
        let thaw_all = |frozen: &[&Volume]| {
            for v in frozen {
                let _ = v.thaw();
            }
        };
        for (r, v) in p.requests.iter().zip(&vols) {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = v.freeze(left) {
                thaw_all(&frozen);
                let kind = if e.kind() == cow_engine::ErrorKind::Timeout {
                    ErrorKind::FlushWritesTimeout
                } else {
                    ErrorKind::UnexpectedProviderError
                };
                return Err(Error::new(
                    kind,
                    format!(
                        "software provider: cannot flush and hold volume {:?} for set {set_id}: {}",
                        r.volume,
                        cow_engine::error_report(&e)
                    ),
                ));
            }
            frozen.push(v);
        }
        // The point in time: one snapshot of each, its properties in its metadata.
        let created = SystemTime::now();
        let count = u32::try_from(p.requests.len()).unwrap_or(u32::MAX);
        let mut made = Vec::new();
        for (r, v) in p.requests.iter().zip(&vols) {
            let persistent = r.attributes.contains(Attributes::PERSISTENT);
            let props = ShadowProperties {
                shadow_id: r.shadow_id,
                set_id,
                count_in_set: count,
                original: LunDescription {
                    name: r.volume.clone(),
                    size: v.len(),
                },
                shadow: LunDescription {
                    name: shadow_name(&r.volume, r.shadow_id),
                    size: v.len(),
                },
                provider_id: SOFTWARE_PROVIDER_ID,
                provider_type: ProviderType::Software,
                attributes: r.attributes | Attributes::DIFFERENTIAL,
                created,
                state: SnapshotState::Created,
                exposure: Exposure::Hidden,
            };
            // The properties go in with the snapshot, atomically: no snapshot of a set is ever
            // without them.
            let step = encode(&props).and_then(|metadata| {
                v.create_snapshot(SnapshotOptions {
                    persistent,
                    metadata,
                    ..SnapshotOptions::default()
                })
                .map_err(Error::from)
            });
            match step {
                Ok(snap) => made.push((v.clone(), snap, props)),
                Err(e) => {
                    let _ = undo(&made);
                    thaw_all(&frozen);
                    let kind = match e.kind() {
                        ErrorKind::NoSpace => ErrorKind::NoSpace,
                        _ => ErrorKind::UnexpectedProviderError,
                    };
                    return Err(Error::new(
                        kind,
                        format!(
                            "software provider: cannot snapshot volume {:?} for set {set_id}: {}",
                            r.volume,
                            e.report()
                        ),
                    ));
                }
            }
        }
        // Release the writes; a hold that outlived its window let writes through between the
        // snapshots, so the set is not one point in time: undone.
        let mut expired = None;
        for (r, v) in p.requests.iter().zip(&vols) {
            if let Ok(ThawOutcome::Expired) = v.thaw() {
                expired.get_or_insert(r.volume.clone());
            }
        }
        if let Some(vol) = expired {
            let _ = undo(&made);
            return Err(Error::new(
                ErrorKind::HoldWritesTimeout,
                format!(
                    "software provider: writes to volume {vol:?} were held longer than the hold \
                     window ({hold:?}) for set {set_id}; no shadow of the set remains"
                ),
            ));
        }
        p.made = made;
        Ok(())
    }

    fn post_commit(&self, set_id: Uuid) -> Result<Vec<ShadowProperties>> {
        // The shadows are handed over: from now on they are deleted one by one.
        self.set.lock().post_commit(set_id)
    }

    fn abort(&self, set_id: Uuid) -> Result<()> {
        match self.set.lock().remove(set_id) {
            Some(p) => undo(&p.made),
            None => Ok(()),
        }
    }

    fn shadows(&self) -> Result<Vec<ShadowProperties>> {
        let vols = self.volumes.read();
        let mut out = Vec::new();
        for (name, vol) in vols.iter() {
            out.extend(Self::shadows_on(name, vol)?.into_iter().map(|(_, p)| p));
        }
        out.sort_by_key(|p| p.created);
        Ok(out)
    }

    fn delete(&self, shadow_id: Uuid) -> Result<()> {
        let (_, vol, snap, _) = self.find(shadow_id)?;
        vol.delete_snapshot(snap)?;
        Ok(())
    }

    /// Reverts the shadow's volume to it on a thread ([`Volume::revert`], resumable after a
    /// crash by calling it again); persistent shadows only ([`ErrorKind::UnsupportedContext`]
    /// otherwise), one revert per volume at a time ([`ErrorKind::RevertInProgress`]).
    fn revert(&self, shadow_id: Uuid) -> Result<AsyncHandle<()>> {
        let (name, vol, snap, props) = self.find(shadow_id)?;
        if !props.attributes.contains(Attributes::PERSISTENT) {
            return Err(Error::new(
                ErrorKind::UnsupportedContext,
                format!(
                    "shadow {shadow_id} of volume {name:?} is not persistent: only a persistent \
                     shadow can be reverted to"
                ),
            ));
        }
        if !self.reverting.lock().insert(name.clone()) {
            return Err(Error::new(
                ErrorKind::RevertInProgress,
                format!("volume {name:?} is already being reverted"),
            ));
        }
        let reverting = self.reverting.clone();
        Ok(AsyncHandle::spawn(move |progress| {
            let r = vol.revert(snap, progress);
            reverting.lock().remove(&name);
            r?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cow_engine::VolumeConfig;

    fn request(set_id: Uuid, volume: &str, context: Context) -> ShadowRequest {
        ShadowRequest {
            set_id,
            shadow_id: Uuid::new_v4(),
            volume: volume.into(),
            context,
            attributes: context.attributes(),
            count_in_set: 2,
        }
    }

    fn provider() -> SoftwareProvider {
        let mk = || Volume::create_mem(1 << 20, VolumeConfig::default()).unwrap();
        SoftwareProvider::new([("a", mk()), ("b", mk())]).unwrap()
    }

    fn make_set(p: &SoftwareProvider, context: Context) -> Result<Vec<ShadowProperties>> {
        let set = Uuid::new_v4();
        p.begin_prepare(&request(set, "a", context))?;
        p.begin_prepare(&request(set, "b", context))?;
        p.end_prepare(set, Instant::now() + Duration::from_secs(5))?;
        p.pre_commit(set)?;
        p.commit(set, Duration::from_secs(5))?;
        p.post_commit(set)
    }

    #[test]
    fn a_set_is_one_snapshot_per_volume_with_its_properties_in_the_metadata() {
        let p = provider();
        p.volume("a").unwrap().write_at(b"before", 0).unwrap();
        let props = make_set(&p, Context::APP_ROLLBACK).unwrap();
        assert_eq!(props.len(), 2);
        assert_eq!(props[0].original.name, "a");
        assert!(props[0].attributes.contains(Attributes::PERSISTENT));
        assert_eq!(p.shadows().unwrap().len(), 2);
        assert!(!p.volume("a").unwrap().is_frozen());
        p.volume("a").unwrap().write_at(b"after!", 0).unwrap();
        let (_, vol, snap, _) = p.find(props[0].shadow_id).unwrap();
        let mut buf = [0u8; 6];
        vol.snapshot(snap).unwrap().read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"before");
        p.delete(props[0].shadow_id).unwrap();
        assert_eq!(
            p.delete(props[0].shadow_id).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(p.shadows().unwrap().len(), 1);
    }

    #[test]
    fn abort_after_commit_leaves_nothing_and_another_layers_metadata_is_skipped() {
        let p = provider();
        let a = p.volume("a").unwrap();
        a.create_snapshot(SnapshotOptions {
            metadata: b"{\"name\":\"nightly\"}".to_vec(),
            ..SnapshotOptions::default()
        })
        .unwrap();
        let set = Uuid::new_v4();
        p.begin_prepare(&request(set, "a", Context::BACKUP))
            .unwrap();
        p.end_prepare(set, Instant::now()).unwrap();
        p.commit(set, Duration::from_secs(5)).unwrap();
        assert_eq!(a.snapshots().len(), 2);
        p.abort(set).unwrap();
        p.abort(set).unwrap();
        assert_eq!(a.snapshots().len(), 1);
        assert!(p.shadows().unwrap().is_empty());
        // A damaged software shadow is reported, never skipped.
        a.create_snapshot(SnapshotOptions {
            metadata: b"{\"format\":\"umbra-software-shadow\",\"version\":1}".to_vec(),
            ..SnapshotOptions::default()
        })
        .unwrap();
        assert_eq!(p.shadows().unwrap_err().kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn the_per_volume_limit_is_enforced_and_configurable_within_512() {
        let p = provider().with_max_shadows_per_volume(2).unwrap();
        make_set(&p, Context::BACKUP).unwrap();
        make_set(&p, Context::BACKUP).unwrap();
        let e = make_set(&p, Context::BACKUP).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MaxSnapshotsReached, "{e}");
        assert!(e.message().contains("\"a\""), "{e}");
        for bad in [0, 513] {
            assert_eq!(
                provider()
                    .with_max_shadows_per_volume(bad)
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidArgument
            );
        }
        assert_eq!(provider().max_shadows_per_volume(), 64);
    }

    /// Two coordinators sharing the provider make sets of different volumes at once; a volume
    /// in a set being made is vetoed for another.
    #[test]
    fn sets_of_other_volumes_are_made_side_by_side() {
        let p = provider();
        let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
        p.begin_prepare(&request(s1, "a", Context::BACKUP)).unwrap();
        p.begin_prepare(&request(s2, "b", Context::BACKUP)).unwrap();
        let e = p
            .begin_prepare(&request(s2, "a", Context::BACKUP))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProviderVeto, "{e}");
        for s in [s1, s2] {
            p.end_prepare(s, Instant::now()).unwrap();
            p.commit(s, Duration::from_secs(5)).unwrap();
        }
        assert_eq!(p.post_commit(s2).unwrap()[0].original.name, "b");
        p.abort(s1).unwrap();
        let left = p.shadows().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].set_id, s2);
        assert_eq!(
            p.commit(s1, Duration::from_secs(1)).unwrap_err().kind(),
            ErrorKind::BadState
        );
    }

    #[test]
    fn only_a_persistent_shadow_reverts() {
        let p = provider();
        let a = p.volume("a").unwrap();
        a.write_at(b"old", 0).unwrap();
        let volatile = make_set(&p, Context::BACKUP).unwrap();
        let e = p.revert(volatile[0].shadow_id).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedContext);
        let kept = make_set(&p, Context::APP_ROLLBACK).unwrap();
        a.write_at(b"new", 0).unwrap();
        p.revert(kept[0].shadow_id).unwrap().wait().unwrap();
        let mut buf = [0u8; 3];
        a.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
    }
}
