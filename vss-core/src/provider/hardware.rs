//! The hardware provider: shadows as snapshot LUNs of the embedded array (`vds-core`).
//!
//! A set's commit is one [`Array::snapshot_set`] transaction: the array freezes every source LUN
//! (flush-and-hold), takes every engine snapshot and thaws them, then one pool record creates
//! every shadow LUN, all or none. Each shadow LUN is masked to no one and read-only until broken,
//! and carries the shadow's properties in its LUN metadata, so [`Provider::shadows`] lists them
//! from the pool itself after a restart (no side file).
//!
//! # Naming
//!
//! The shadow of LUN `<lun>` with shadow id `<id>` is the LUN `<lun>.shadow-<short>`, `<short>`
//! the first 8 hex digits of the id (its first group): `db.shadow-1a2b3c4d`
//! ([`HardwareProvider::shadow_lun_name`]). A `<lun>` longer than 48 bytes is cut to its first 48
//! so the name stays within the array's 64. The full id is found from the set's
//! [`KEY_SHADOWS`] list by the short id, which is unique within a set (checked at
//! `begin_prepare`).
//!
//! # Metadata
//!
//! Every shadow LUN of a set carries, from the set's one transaction on:
//!
//! | key | value |
//! |---|---|
//! | [`KEY_PROVIDER`] `vss:provider` | this provider's id ([`HardwareProvider::ID`]) |
//! | [`KEY_SET`] `vss:set` | the shadow-copy set's id |
//! | [`KEY_SHADOWS`] `vss:shadows` | every shadow id of the set, space-separated, in the order the volumes were prepared |
//! | [`KEY_ATTRIBUTES`] `vss:attributes` | the set's attributes as `0x` + 8 hex digits (with `HARDWARE_ASSISTED`) |
//! | [`KEY_CREATED`] `vss:created` | when the set was committed, in nanoseconds since the Unix epoch |
//!
//! and, once imported or exposed, [`KEY_EXPOSURE`] `vss:exposure` (the [`Exposure`] as JSON). The original
//! LUN is the shadow LUN's source ([`vds_core::LunInfo::source`]). The array adds its own set key
//! (`umbra:snapshot-set`). A broken shadow keeps the `vss:` keys (they tell where it came from)
//! but is no longer a shadow: it is listed no more, and deleting or aborting its set never
//! touches it.
//!
//! # Transport and recovery
//!
//! - [`Provider::import`] unmasks a set's shadows read-only to one host, once.
//! - [`Provider::expose`] unmasks one shadow read-only to one more host; [`Provider::unexpose`]
//!   masks it off every host again (an exposed shadow's set is no longer importable).
//! - [`Provider::break_set`] makes them ordinary read-write LUNs (read-write to the hosts they
//!   were imported to).
//! - Each of the two is one array transaction ([`Array::batch`], one pool record): a crash leaves
//!   the set imported (or broken) whole or not at all.
//! - [`Provider::recover`] is the fast recovery: the shadow is broken and swapped into its
//!   original's place ([`Array::swap_lun`]): the hosts reach it at the same host LUN numbers, the
//!   damaged original keeps its name, masked to no one or read-only to a named host. No data
//!   moves; the report's byte and write counts come from the LUNs' I/O statistics.
//! - [`Provider::resync`] copies a shadow back over its original (only the blocks that differ,
//!   [`Array::resync_lun`]) or over another LUN of its size (every block).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use uuid::Uuid;
use vds_core::{Access, AdminOp, Array, AsyncHandle, InitiatorId, MaskSpec};

use super::{Provider, RecoveryReport, ShadowRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::shadow::{
    Attributes, Context, Exposure, LunDescription, ProviderType, ShadowProperties, SnapshotState,
};

/// Metadata key: the id of the provider that made the shadow LUN.
pub const KEY_PROVIDER: &str = "vss:provider";
/// Metadata key: the id of the shadow-copy set.
pub const KEY_SET: &str = "vss:set";
/// Metadata key: every shadow id of the set, space-separated, in prepare order.
pub const KEY_SHADOWS: &str = "vss:shadows";
/// Metadata key: the set's attributes, `0x` + 8 hex digits.
pub const KEY_ATTRIBUTES: &str = "vss:attributes";
/// Metadata key: the set's commit time, nanoseconds since the Unix epoch.
pub const KEY_CREATED: &str = "vss:created";
/// Metadata key: who the shadow is exposed to ([`Exposure`] as JSON); absent: hidden.
pub const KEY_EXPOSURE: &str = "vss:exposure";

/// The most volumes one set may hold (VSS's limit).
pub const MAX_VOLUMES_PER_SET: usize = 64;
/// The most shadows one LUN may have through this provider (VSS's default for client-accessible
/// shadows).
pub const MAX_SHADOWS_PER_LUN: usize = 64;

/// The longest LUN name the array takes.
const MAX_LUN_NAME: usize = 64;
/// What the shadow LUN's name adds to its original's: `.shadow-` and 8 hex digits.
const SUFFIX_LEN: usize = ".shadow-".len() + 8;

/// Where a set is in its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `begin_prepare` calls are being received.
    Preparing,
    /// `end_prepare` returned.
    Prepared,
    /// `pre_commit` returned.
    PreCommitted,
    /// `commit` runs.
    Committing,
    /// `commit` returned: the shadow LUNs exist.
    Committed,
}

/// A set being made.
#[derive(Debug)]
struct Pending {
    requests: Vec<ShadowRequest>,
    step: Step,
}

/// A shadow LUN of this provider, as found in the pool.
#[derive(Debug, Clone)]
struct Found {
    /// The shadow LUN's name.
    lun: String,
    props: ShadowProperties,
}

/// The hardware provider over an embedded [`Array`]: see the [module docs](self) for naming,
/// metadata, transport and recovery.
///
/// ```
/// use std::time::{Duration, Instant};
/// use vds_core::{Array, MaskSpec};
/// use vss_core::provider::hardware::HardwareProvider;
/// use vss_core::{Attributes, Context, Provider, ShadowRequest};
///
/// # fn main() -> Result<(), vss_core::Error> {
/// let array = Array::in_memory();
/// array.create_lun("db", 1 << 20, &MaskSpec::None)?;
/// let hw = HardwareProvider::new(array.clone());
/// let (set_id, shadow_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
/// hw.begin_prepare(&ShadowRequest {
///     set_id,
///     shadow_id,
///     volume: "db".into(),
///     context: Context::BACKUP,
///     attributes: Attributes::TRANSPORTABLE,
///     count_in_set: 1,
/// })?;
/// hw.end_prepare(set_id, Instant::now() + Duration::from_secs(60))?;
/// hw.pre_commit(set_id)?;
/// hw.commit(set_id, Duration::from_secs(10))?;
/// let props = hw.post_commit(set_id)?;
/// assert_eq!(props[0].shadow.name, HardwareProvider::shadow_lun_name("db", shadow_id));
/// assert_eq!(array.get_mask(&props[0].shadow.name)?, "", "masked to no one");
/// assert_eq!(hw.shadows()?, props);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HardwareProvider {
    array: Array,
    /// The sets being made, by id (several coordinators may share one provider).
    sets: Mutex<HashMap<Uuid, Pending>>,
    /// Serialises import, break and recovery (each a check then several array changes).
    ops: Mutex<()>,
}

impl HardwareProvider {
    /// The hardware provider's id, the same in every process (recorded in each shadow LUN).
    pub const ID: Uuid = Uuid::from_u128(0x6f0e_5d1c_2a4b_4c7e_9a31_8d2f_7b60_4e15);

    /// The provider's name.
    pub const NAME: &'static str = "umbra hardware provider";

    /// A hardware provider over `array` (a handle sharing the array's state).
    pub fn new(array: Array) -> HardwareProvider {
        HardwareProvider {
            array,
            sets: Mutex::new(HashMap::new()),
            ops: Mutex::new(()),
        }
    }

    /// The array it makes shadows on.
    pub fn array(&self) -> &Array {
        &self.array
    }

    /// The name of the shadow LUN of LUN `lun` with shadow id `shadow_id`:
    /// `<lun>.shadow-<first 8 hex digits of the id>`, `<lun>` cut to 48 bytes if longer.
    pub fn shadow_lun_name(lun: &str, shadow_id: Uuid) -> String {
        // LUN names are ASCII (the array refuses others), so any byte is a char boundary; a
        // non-ASCII name is cut at the last boundary before the limit all the same.
        let mut cut = lun.len().min(MAX_LUN_NAME - SUFFIX_LEN);
        while !lun.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}.shadow-{}", &lun[..cut], short_id(shadow_id))
    }

    /// Every unbroken shadow LUN this provider made, with its properties.
    fn found(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for lun in self
            .array
            .luns_with_metadata(KEY_PROVIDER, Some(&Self::ID.to_string()))
        {
            match self.read_shadow(&lun) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => {}
                // Deleted since it was listed.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The properties of shadow LUN `lun` from its metadata; `None` if it is no longer a shadow
    /// (broken).
    fn read_shadow(&self, lun: &str) -> Result<Option<Found>> {
        if !self.array.is_shadow(lun)? {
            return Ok(None);
        }
        let md = self.array.lun_metadata(lun)?;
        let info = self.array.lun(lun)?;
        let get = |key: &str| md.get(key).ok_or_else(|| corrupt(lun, key, "is missing"));
        let set_id = parse_uuid(lun, KEY_SET, get(KEY_SET)?)?;
        let ids = get(KEY_SHADOWS)?
            .split(' ')
            .map(|s| parse_uuid(lun, KEY_SHADOWS, s))
            .collect::<Result<Vec<Uuid>>>()?;
        let short = lun
            .rsplit_once(".shadow-")
            .map(|(_, s)| s)
            .ok_or_else(|| corrupt(lun, "name", "does not end in .shadow-<id>"))?;
        let shadow_id = ids
            .iter()
            .copied()
            .find(|id| short_id(*id) == short)
            .ok_or_else(|| corrupt(lun, KEY_SHADOWS, "lists no id the LUN's name ends in"))?;
        let attrs = get(KEY_ATTRIBUTES)?;
        let attributes = attrs
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .map(Attributes::from_bits_retain)
            .ok_or_else(|| corrupt(lun, KEY_ATTRIBUTES, "is not 0x and hex digits"))?;
        let created = get(KEY_CREATED)?
            .parse::<u64>()
            .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns))
            .map_err(|_| corrupt(lun, KEY_CREATED, "is not a count of nanoseconds"))?;
        let exposure = match md.get(KEY_EXPOSURE) {
            None => Exposure::Hidden,
            Some(text) => serde_json::from_str(text)
                .map_err(|e| corrupt(lun, KEY_EXPOSURE, &format!("is not an exposure: {e}")))?,
        };
        let original = info
            .source
            .clone()
            .ok_or_else(|| corrupt(lun, "source", "is missing (an unbroken shadow LUN has one)"))?;
        let attributes = match exposure {
            Exposure::Hosts { .. } => attributes | Attributes::IMPORTED,
            _ => attributes,
        };
        Ok(Some(Found {
            lun: lun.to_string(),
            props: ShadowProperties {
                shadow_id,
                set_id,
                count_in_set: ids.len() as u32,
                original: LunDescription {
                    name: original,
                    size: info.size,
                },
                shadow: LunDescription {
                    name: lun.to_string(),
                    size: info.size,
                },
                provider_id: Self::ID,
                provider_type: ProviderType::Hardware,
                attributes,
                created,
                state: SnapshotState::Created,
                exposure,
            },
        }))
    }

    /// The shadow with id `shadow_id`, or [`ErrorKind::NotFound`].
    /// The properties of shadow `shadow_id` (on LUN `lun`) as they are now.
    fn shadow_now(&self, lun: &str, shadow_id: Uuid) -> Result<ShadowProperties> {
        self.read_shadow(lun)?.map(|f| f.props).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("shadow {shadow_id} (LUN {lun:?}) is gone"),
            )
        })
    }

    fn find(&self, shadow_id: Uuid) -> Result<Found> {
        self.found()?
            .into_iter()
            .find(|f| f.props.shadow_id == shadow_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no shadow {shadow_id} on this array (deleted, broken or never made)"),
                )
            })
    }

    /// The unbroken shadows of set `set_id`, in prepare order.
    fn set_members(&self, set_id: Uuid) -> Result<Vec<Found>> {
        let mut v: Vec<Found> = self
            .found()?
            .into_iter()
            .filter(|f| f.props.set_id == set_id)
            .collect();
        let order = |f: &Found| -> usize {
            self.array
                .lun_metadata(&f.lun)
                .ok()
                .and_then(|md| {
                    md.get(KEY_SHADOWS).and_then(|ids| {
                        ids.split(' ')
                            .position(|s| s == f.props.shadow_id.to_string())
                    })
                })
                .unwrap_or(usize::MAX)
        };
        v.sort_by_key(order);
        Ok(v)
    }

    /// The array's snapshot set name (`set-<n>`) of the shadow LUN `lun` of LUN `original`.
    fn array_set_of(&self, original: &str, lun: &str) -> Result<Option<String>> {
        Ok(self
            .array
            .snapshot_luns_of(original)?
            .into_iter()
            .find(|(n, _)| n == lun)
            .and_then(|(_, set)| set))
    }

    /// Deletes every unbroken shadow LUN of set `set_id`, in one array transaction per array
    /// set (one, for a set this provider made).
    fn delete_set(&self, set_id: Uuid) -> Result<()> {
        let members = self.set_members(set_id)?;
        let mut sets = Vec::new();
        for f in &members {
            if let Some(s) = self.array_set_of(&f.props.original.name, &f.lun)? {
                if !sets.contains(&s) {
                    sets.push(s);
                }
            }
        }
        for s in sets {
            match self.array.delete_snapshot_set(&s) {
                Ok(_) => {}
                Err(e) if e.kind() == vds_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The set `set_id` being made, checked to be at step `want` (else [`ErrorKind::BadState`]
    /// naming the call).
    fn at_step<'a>(
        sets: &'a mut HashMap<Uuid, Pending>,
        set_id: Uuid,
        want: Step,
        call: &str,
    ) -> Result<&'a mut Pending> {
        let Some(p) = sets.get_mut(&set_id) else {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("{call} for set {set_id}, which this provider is not making"),
            ));
        };
        if p.step != want {
            return Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "{call} for set {set_id} out of sequence: the set is at {:?}, {call} needs {want:?}",
                    p.step
                ),
            ));
        }
        Ok(p)
    }

    /// The commit of set `set_id` made of `requests`: one [`Array::snapshot_set`], within
    /// `hold`.
    fn commit_requests(
        &self,
        set_id: Uuid,
        requests: &[ShadowRequest],
        hold: Duration,
    ) -> Result<()> {
        let names: Vec<String> = requests
            .iter()
            .map(|r| Self::shadow_lun_name(&r.volume, r.shadow_id))
            .collect();
        let pairs: Vec<(&str, &str)> = requests
            .iter()
            .zip(&names)
            .map(|(r, n)| (r.volume.as_str(), n.as_str()))
            .collect();
        let attributes = requests[0].context.attributes()
            | requests[0].attributes
            | Attributes::HARDWARE_ASSISTED;
        let ids: Vec<String> = requests.iter().map(|r| r.shadow_id.to_string()).collect();
        let start = Instant::now();
        let metadata = BTreeMap::from([
            (KEY_PROVIDER.to_string(), Self::ID.to_string()),
            (KEY_SET.to_string(), set_id.to_string()),
            (KEY_SHADOWS.to_string(), ids.join(" ")),
            (
                KEY_ATTRIBUTES.to_string(),
                format!("{:#010x}", attributes.bits()),
            ),
            (
                KEY_CREATED.to_string(),
                unix_ns(SystemTime::now()).to_string(),
            ),
        ]);
        let array_set = self.array.snapshot_set(&pairs, &metadata).map_err(|e| {
            if e.kind() == vds_core::ErrorKind::Timeout {
                Error::new(
                    ErrorKind::FlushWritesTimeout,
                    format!("set {set_id}: the LUNs' writes did not drain at the freeze: {e}"),
                )
            } else {
                Error::from(e)
            }
        })?;
        let took = start.elapsed();
        if took > hold {
            let _ = self.array.delete_snapshot_set(&array_set);
            return Err(Error::new(
                ErrorKind::HoldWritesTimeout,
                format!(
                    "set {set_id}: the commit took {took:?}, longer than the hold window of {hold:?}; its shadows are deleted"
                ),
            ));
        }
        Ok(())
    }

    /// Write counters of LUNs `luns`: (bytes, write operations) issued to their origins and
    /// diff areas so far.
    fn write_counters(&self, luns: &[&str]) -> Result<(u64, u64)> {
        let mut total = (0u64, 0u64);
        for lun in luns {
            let s = self.array.lun_stats(lun)?;
            total.0 += s.origin_write_bytes + s.diff_write_bytes;
            total.1 += s.origin_writes + s.diff_writes;
        }
        Ok(total)
    }
}

/// The first 8 hex digits of `id` (its first group).
fn short_id(id: Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// The error of a shadow LUN's metadata that does not read.
fn corrupt(lun: &str, key: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("shadow LUN {lun:?}: its {key} {what}"),
    )
}

fn parse_uuid(lun: &str, key: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(lun, key, &format!("holds {text:?}, not a UUID")))
}

/// Nanoseconds since the Unix epoch of `t`.
fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Provider for HardwareProvider {
    fn id(&self) -> Uuid {
        Self::ID
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn provider_type(&self) -> ProviderType {
        ProviderType::Hardware
    }

    /// The pool's directory and the LUN's name for a pool on disk (one process owns a pool);
    /// for an in-memory array, the array's identity in the process (`Array::instance_id`, shared
    /// by its clones) and the name. The pool's software provider uses the same key, so a LUN is
    /// in one set being made at a time whichever provider makes it.
    fn volume_key(&self, volume: &str) -> String {
        let pool = self
            .array
            .provider()
            .subsystems
            .first()
            .map(|s| s.name.clone())
            .filter(|n| n.starts_with("pool "));
        match pool {
            Some(pool) => format!("umbra array {pool}/{volume}"),
            None => format!(
                "umbra in-memory array {:#x}/{volume}",
                self.array.instance_id()
            ),
        }
    }

    /// True for any LUN of the array.
    fn knows_volume(&self, volume: &str) -> Result<bool> {
        Ok(self.array.lun(volume).is_ok())
    }

    /// True for a LUN of the array that is not damaged and not itself an unbroken shadow LUN.
    fn is_volume_supported(&self, volume: &str, _context: Context) -> Result<bool> {
        if self.array.lun(volume).is_err() {
            return Ok(false);
        }
        if self.array.damaged_luns().iter().any(|(n, _)| n == volume) {
            return Ok(false);
        }
        Ok(!self.array.is_shadow(volume)?)
    }

    fn begin_prepare(&self, request: &ShadowRequest) -> Result<()> {
        let mut sets = self.sets.lock();
        // The first call for a set id starts its sequence.
        sets.entry(request.set_id).or_insert_with(|| Pending {
            requests: Vec::new(),
            step: Step::Preparing,
        });
        let p = Self::at_step(&mut sets, request.set_id, Step::Preparing, "begin_prepare")?;
        let volume = request.volume.as_str();
        if !self.is_volume_supported(volume, request.context)? {
            return Err(Error::new(
                ErrorKind::VolumeNotSupported,
                format!(
                    "LUN {volume:?} cannot be shadowed by the hardware provider: it is unknown, damaged or an unbroken shadow LUN"
                ),
            ));
        }
        if p.requests.iter().any(|r| r.volume == volume) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("LUN {volume:?} is already in set {}", request.set_id),
            ));
        }
        if let Some(r) = p
            .requests
            .iter()
            .find(|r| short_id(r.shadow_id) == short_id(request.shadow_id))
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "shadow id {} shares its first 8 hex digits with {} (of LUN {:?}) in set {}: the shadow LUNs' names would not tell them apart",
                    request.shadow_id, r.shadow_id, r.volume, request.set_id
                ),
            ));
        }
        if p.requests.len() >= MAX_VOLUMES_PER_SET {
            return Err(Error::new(
                ErrorKind::MaxVolumesReached,
                format!(
                    "set {} already holds {MAX_VOLUMES_PER_SET} volumes; LUN {volume:?} is one too many",
                    request.set_id
                ),
            ));
        }
        let existing = self
            .found()?
            .iter()
            .filter(|f| f.props.original.name == volume)
            .count();
        if existing >= MAX_SHADOWS_PER_LUN {
            return Err(Error::new(
                ErrorKind::MaxSnapshotsReached,
                format!(
                    "LUN {volume:?} already has {existing} shadows (at most {MAX_SHADOWS_PER_LUN})"
                ),
            ));
        }
        p.requests.push(request.clone());
        Ok(())
    }

    fn end_prepare(&self, set_id: Uuid, deadline: Instant) -> Result<()> {
        let mut sets = self.sets.lock();
        let p = Self::at_step(&mut sets, set_id, Step::Preparing, "end_prepare")?;
        if p.requests.is_empty() {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("end_prepare for set {set_id} with no volume prepared"),
            ));
        }
        // Preparing a snapshot LUN starts nothing in the array (the snapshot is copy-on-write
        // and taken at commit), so the rendezvous is immediate.
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("end_prepare for set {set_id} called after its deadline"),
            ));
        }
        p.step = Step::Prepared;
        Ok(())
    }

    fn pre_commit(&self, set_id: Uuid) -> Result<()> {
        let mut sets = self.sets.lock();
        let p = Self::at_step(&mut sets, set_id, Step::Prepared, "pre_commit")?;
        // A LUN deleted or damaged since it was prepared is a veto, before the instant.
        for r in &p.requests {
            if !self.is_volume_supported(&r.volume, r.context)? {
                return Err(Error::new(
                    ErrorKind::ProviderVeto,
                    format!(
                        "LUN {:?} of set {set_id} is gone, damaged or a shadow since it was prepared",
                        r.volume
                    ),
                ));
            }
        }
        p.step = Step::PreCommitted;
        Ok(())
    }

    /// One [`Array::snapshot_set`] transaction. The call as a whole must fit in `hold` (the
    /// array holds writes for part of it only): past it, the set is deleted and the commit is
    /// [`ErrorKind::HoldWritesTimeout`]. Writes that do not drain at the freeze are
    /// [`ErrorKind::FlushWritesTimeout`]. Any failure leaves no shadow LUN.
    fn commit(&self, set_id: Uuid, hold: Duration) -> Result<()> {
        // The set is marked as committing and the lock released: other sets' calls go on while
        // the array works.
        let requests = {
            let mut sets = self.sets.lock();
            let p = Self::at_step(&mut sets, set_id, Step::PreCommitted, "commit")?;
            p.step = Step::Committing;
            p.requests.clone()
        };
        let made = self.commit_requests(set_id, &requests, hold);
        let mut sets = self.sets.lock();
        match made {
            Ok(()) => match sets.get_mut(&set_id) {
                Some(p) => {
                    p.step = Step::Committed;
                    Ok(())
                }
                None => {
                    // Aborted while the array worked: what the commit made goes too.
                    drop(sets);
                    self.delete_set(set_id)?;
                    Err(Error::new(
                        ErrorKind::BadState,
                        format!("set {set_id} was aborted while its commit ran; its shadows are deleted"),
                    ))
                }
            },
            // Nothing of the set remains: it is forgotten (its abort is a no-op).
            Err(e) => {
                sets.remove(&set_id);
                Err(e)
            }
        }
    }

    fn post_commit(&self, set_id: Uuid) -> Result<Vec<ShadowProperties>> {
        let mut sets = self.sets.lock();
        let p = Self::at_step(&mut sets, set_id, Step::Committed, "post_commit")?;
        let mut out = Vec::with_capacity(p.requests.len());
        for r in &p.requests {
            let lun = Self::shadow_lun_name(&r.volume, r.shadow_id);
            let f = self.read_shadow(&lun)?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("shadow LUN {lun:?} of set {set_id} was broken before post_commit"),
                )
            })?;
            out.push(f.props);
        }
        sets.remove(&set_id);
        Ok(out)
    }

    fn abort(&self, set_id: Uuid) -> Result<()> {
        self.sets.lock().remove(&set_id);
        self.delete_set(set_id)
    }

    fn shadows(&self) -> Result<Vec<ShadowProperties>> {
        Ok(self.found()?.into_iter().map(|f| f.props).collect())
    }

    fn delete(&self, shadow_id: Uuid) -> Result<()> {
        let f = self.find(shadow_id)?;
        self.array.delete_lun(&f.lun)?;
        Ok(())
    }

    fn resync(&self, shadow_id: Uuid, target: Option<&str>) -> Result<AsyncHandle<()>> {
        let f = self.find(shadow_id)?;
        let target = target.unwrap_or(&f.props.original.name);
        let info = self.array.lun(target)?;
        if info.size != f.props.shadow.size {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "shadow {shadow_id} has {} bytes, LUN {target:?} has {}: a resync needs equal sizes",
                    f.props.shadow.size, info.size
                ),
            ));
        }
        Ok(self.array.resync_lun(&f.lun, target))
    }

    /// The LUN's origin write bytes (the array's statistics of the LUN).
    fn written_bytes(&self, volume: &str) -> Result<Option<u64>> {
        Ok(Some(self.array.lun_stats(volume)?.origin_write_bytes))
    }

    fn import(&self, set_id: Uuid, host: &str) -> Result<Vec<ShadowProperties>> {
        let initiator = InitiatorId::parse(host)?;
        let _ops = self.ops.lock();
        let members = self.set_members(set_id)?;
        let Some(first) = members.first() else {
            return Err(Error::new(
                ErrorKind::NoSnapshotsImported,
                format!("set {set_id} has no shadow on this array to import"),
            ));
        };
        if !first.props.attributes.contains(Attributes::TRANSPORTABLE) {
            return Err(Error::new(
                ErrorKind::NonTransportableBcd,
                format!("set {set_id} was not made TRANSPORTABLE: it cannot be imported"),
            ));
        }
        if let Some(f) = members
            .iter()
            .find(|f| f.props.exposure != Exposure::Hidden)
        {
            return Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "set {set_id} is already imported (shadow LUN {:?} is exposed: {}); a set is imported once",
                    f.lun, f.props.exposure
                ),
            ));
        }
        // The exposure of every shadow and its unmasking, in one array transaction (one pool
        // record): a crash leaves the set imported whole or not at all.
        let exposure = serde_json::to_string(&Exposure::Hosts {
            initiators: vec![initiator.to_string()],
        })
        .map_err(|e| Error::new(ErrorKind::Internal, format!("exposure to JSON: {e}")))?;
        let mask = MaskSpec::host(initiator, Access::ReadOnly);
        let mut ops = Vec::with_capacity(2 * members.len());
        for f in &members {
            ops.push(AdminOp::SetLunMetadata {
                lun: f.lun.clone(),
                key: KEY_EXPOSURE.to_string(),
                value: Some(exposure.clone()),
            });
            ops.push(AdminOp::AddToMask {
                lun: f.lun.clone(),
                entries: mask.clone(),
            });
        }
        self.array.batch(&ops)?;
        let mut out = Vec::with_capacity(members.len());
        for f in &members {
            if let Some(now) = self.read_shadow(&f.lun)? {
                out.push(now.props);
            }
        }
        Ok(out)
    }

    /// The exposure is recorded before the host is unmasked, so a crash between the two never
    /// leaves a host seeing a shadow the records call hidden.
    fn expose(&self, shadow_id: Uuid, host: &str) -> Result<ShadowProperties> {
        let initiator = InitiatorId::parse(host)?;
        let _ops = self.ops.lock();
        let f = self.find(shadow_id)?;
        let mut initiators = match &f.props.exposure {
            Exposure::Hosts { initiators } => initiators.clone(),
            _ => Vec::new(),
        };
        if !initiators.contains(&initiator.to_string()) {
            initiators.push(initiator.to_string());
        }
        let exposure = serde_json::to_string(&Exposure::Hosts { initiators })
            .map_err(|e| Error::new(ErrorKind::Internal, format!("exposure to JSON: {e}")))?;
        self.array
            .set_lun_metadata(&f.lun, KEY_EXPOSURE, Some(&exposure))?;
        self.array
            .add_to_mask(&f.lun, &MaskSpec::host(initiator, Access::ReadOnly))?;
        self.shadow_now(&f.lun, shadow_id)
    }

    /// The hosts are masked off before the record says hidden (the safe order for a crash).
    fn unexpose(&self, shadow_id: Uuid) -> Result<ShadowProperties> {
        let _ops = self.ops.lock();
        let f = self.find(shadow_id)?;
        if let Exposure::Hosts { initiators } = &f.props.exposure {
            for i in initiators {
                let id = InitiatorId::parse(i)?;
                self.array
                    .remove_from_mask(&f.lun, &MaskSpec::host(id, Access::ReadOnly))?;
            }
        }
        if f.props.exposure != Exposure::Hidden {
            self.array.set_lun_metadata(&f.lun, KEY_EXPOSURE, None)?;
        }
        self.shadow_now(&f.lun, shadow_id)
    }

    fn break_set(&self, set_id: Uuid) -> Result<Vec<String>> {
        let _ops = self.ops.lock();
        let members = self.set_members(set_id)?;
        if members.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("set {set_id} has no unbroken shadow on this array"),
            ));
        }
        // Every shadow broken and made read-write to the hosts it was imported to (VSS's
        // MAKE_READ_WRITE) in one array transaction: a crash leaves all of it or none.
        let mut names = Vec::with_capacity(members.len());
        let mut ops = Vec::new();
        for f in &members {
            ops.push(AdminOp::BreakShadow { lun: f.lun.clone() });
            if let Exposure::Hosts { initiators } = &f.props.exposure {
                for i in initiators {
                    let id = InitiatorId::parse(i)?;
                    ops.push(AdminOp::AddToMask {
                        lun: f.lun.clone(),
                        entries: MaskSpec::host(id, Access::ReadWrite),
                    });
                }
            }
            names.push(f.lun.clone());
        }
        self.array.batch(&ops)?;
        Ok(names)
    }

    fn recover(&self, shadow_id: Uuid, keep_for: Option<&str>) -> Result<RecoveryReport> {
        // Bad input changes nothing: the host is parsed first.
        let keep_for = keep_for.map(InitiatorId::parse).transpose()?;
        let _ops = self.ops.lock();
        let f = self.find(shadow_id)?;
        let damaged = f.props.original.name.clone();
        let before = self.write_counters(&[&damaged, &f.lun])?;
        self.array.break_shadow(&f.lun)?;
        if let Err(e) = self.array.swap_lun(&damaged, &f.lun) {
            let e = Error::from(e);
            return Err(Error::new(
                e.kind(),
                format!(
                    "fast recovery of LUN {damaged:?} from shadow {shadow_id}: the swap failed after the shadow was broken, so LUN {:?} is an ordinary LUN now, masked to no one: {e}",
                    f.lun
                ),
            ));
        }
        if let Some(host) = keep_for {
            self.array
                .set_mask(&damaged, &MaskSpec::host(host, Access::ReadOnly))?;
        }
        let after = self.write_counters(&[&damaged, &f.lun])?;
        Ok(RecoveryReport {
            damaged,
            recovered: f.lun,
            bytes_moved: after.0 - before.0,
            writes: after.1 - before.1,
        })
    }
}
