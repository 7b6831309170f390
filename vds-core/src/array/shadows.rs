//! Engine-level shadows of a LUN: cow-engine snapshots of LUN volumes, for a software provider
//! that works over a pool (no new LUN each, as a snapshot set makes). Taken several at one
//! instant in one transaction ([`Array::engine_snapshot_set`]), listed, deleted, read through a
//! [`super::LunHandle`] (masked), reverted onto their LUN (fenced, async) and exposed as a LUN —
//! so no caller ever needs a LUN's volume.
//!
//! Each shadow is a writable, persistent, pinned engine snapshot whose metadata starts with a tag
//! naming its set and its creation time (`umbra-shadow=<set>;<unix ms>\n`), then the caller's
//! bytes. Crash-atomic: an `engine_shadow` intent per LUN is durable before any snapshot is
//! taken, and one record (`engine_shadow_set`) ends them all; an open after a crash before that
//! record deletes every snapshot tagged for the set.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cow_engine::{Progress, SnapshotId, SnapshotOptions, Volume, MAX_METADATA};
use parking_lot::RwLock;

use super::lun::{check_not_damaged, check_not_volatile};
use super::snapshot_set::snapshot_at_one_instant;
use super::state::{check_lun_name, Change, Intent, SourceRef};
use super::volumes::{create_stacked, unpin_and_delete, volume_config};
use super::{Array, AsyncHandle, Core};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::LunId;

/// The tag that starts an engine shadow's snapshot metadata.
const SHADOW_TAG: &str = "umbra-shadow=";
/// The longest tag: the prefix, two 20-digit numbers, `;` and `\n`.
const MAX_TAG: usize = SHADOW_TAG.len() + 20 + 1 + 20 + 1;

/// An engine-level shadow of a LUN ([`Array::engine_shadows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineShadow {
    /// The LUN it is a shadow of.
    pub lun: String,
    /// Its engine snapshot id on the LUN's volume (what the other calls take).
    pub id: SnapshotId,
    /// The engine shadow set it was taken in (`eset-<n>`).
    pub set: String,
    /// When it was taken: milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The caller's metadata bytes, as given.
    pub metadata: Vec<u8>,
    /// Its size in bytes (the LUN's when it was taken).
    pub size: u64,
}

/// What [`Array::engine_snapshot_set`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineShadowSet {
    /// The set's name (`eset-<n>`).
    pub set: String,
    /// Each LUN with its new shadow's id, in the order given.
    pub shadows: Vec<(String, SnapshotId)>,
}

/// The name of engine shadow set `n`.
fn set_name(n: u64) -> String {
    format!("eset-{n}")
}

/// The snapshot metadata of a shadow of set `set` taken at `created_ms`, holding `meta`.
fn shadow_metadata(set: u64, created_ms: u64, meta: &[u8]) -> Vec<u8> {
    let mut v = format!("{SHADOW_TAG}{set};{created_ms}\n").into_bytes();
    v.extend_from_slice(meta);
    v
}

/// The set, creation time and caller's bytes of an engine shadow's snapshot metadata; none for
/// a snapshot that is not an engine shadow.
fn parse_shadow(meta: &[u8]) -> Option<(u64, u64, &[u8])> {
    let rest = meta.strip_prefix(SHADOW_TAG.as_bytes())?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&rest[..nl]).ok()?;
    let (set, created) = head.split_once(';')?;
    Some((set.parse().ok()?, created.parse().ok()?, &rest[nl + 1..]))
}

/// Deletes every snapshot of `vol` tagged for engine shadow set `set` (what a set that did not
/// commit left).
pub(super) fn delete_shadows_of_set(vol: &Volume, set: u64) -> Result<()> {
    for s in vol.snapshots() {
        if parse_shadow(&s.metadata).is_some_and(|(n, _, _)| n == set) {
            unpin_and_delete(vol, s.id)?;
        }
    }
    Ok(())
}

/// The error of a snapshot id that is no engine shadow of LUN `lun`.
fn no_shadow(lun: &str, id: SnapshotId) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("LUN {lun:?} has no engine shadow {id}"),
    )
}

/// Checks that `id` is an engine shadow on `vol` (LUN `lun`'s volume); returns its size.
pub(super) fn check_shadow(vol: &Volume, lun: &str, id: SnapshotId) -> Result<u64> {
    match vol.snapshot_info(id) {
        Ok(info) if parse_shadow(&info.metadata).is_some() => Ok(info.len),
        Ok(_) => Err(no_shadow(lun, id)),
        Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => Err(no_shadow(lun, id)),
        Err(e) => Err(e.into()),
    }
}

impl Array {
    /// Takes an engine shadow of each LUN `luns` names (with its metadata bytes) at one instant,
    /// in one transaction, as engine shadow set `eset-<n>`: every LUN frozen (flush-and-hold),
    /// every engine snapshot taken (writable, persistent, pinned), every LUN thawed. No new LUN is
    /// made ([`Array::expose_engine_shadow`] makes one on a shadow).
    ///
    /// All or none: an unknown or damaged LUN ([`ErrorKind::NotFound`], [`ErrorKind::Corrupt`]),
    /// a LUN named twice or metadata over 64 KiB less the tag ([`ErrorKind::InvalidArgument`]),
    /// or a freeze that does not drain in time leaves no shadow. Crash-atomic: an intent per LUN
    /// is durable before any snapshot is taken and one record ends them all; an open after a
    /// crash before that record deletes every snapshot of the set.
    pub fn engine_snapshot_set(&self, luns: &[(&str, &[u8])]) -> Result<EngineShadowSet> {
        if luns.is_empty() {
            return Err(Error::invalid("an engine shadow set of no LUNs"));
        }
        for (i, (lun, meta)) in luns.iter().enumerate() {
            if luns[..i].iter().any(|(l, _)| l == lun) {
                return Err(Error::invalid(format!(
                    "engine shadow set names LUN {lun:?} twice"
                )));
            }
            if meta.len() > MAX_METADATA - MAX_TAG {
                return Err(Error::invalid(format!(
                    "metadata of LUN {lun:?}'s shadow is {} bytes; at most {} are kept",
                    meta.len(),
                    MAX_METADATA - MAX_TAG
                )));
            }
        }
        let created_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.transact(|core| {
            let mut sources = Vec::new();
            for (lun, _) in luns {
                let id = core.state.id_of(lun)?;
                check_not_damaged(core, id, lun)?;
                sources.push((id, core.volumes[&id].clone()));
            }
            let set = core.state.next_id;
            // Each LUN's intent, durable before any snapshot is taken.
            let mut begun: Vec<LunId> = Vec::new();
            for (id, _) in &sources {
                let r = Array::commit(
                    core,
                    &Change::Begin {
                        intent: Intent::EngineShadow { id: *id, set },
                    },
                );
                if let Err(e) = r {
                    return Err(roll_back(core, &begun, set, e));
                }
                begun.push(*id);
            }
            let made = {
                let guards: Vec<_> = sources.iter().map(|(_, v)| v.read()).collect();
                let vols: Vec<&Volume> = guards.iter().map(|g| &**g).collect();
                snapshot_at_one_instant(&vols, |i| SnapshotOptions {
                    writable: true,
                    persistent: true,
                    pinned: true,
                    metadata: shadow_metadata(set, created_ms, luns[i].1),
                })
            };
            let ids = match made {
                (ids, Ok(())) => ids,
                (_, Err(e)) => return Err(roll_back(core, &begun, set, e)),
            };
            let change = Change::EngineShadowSet {
                set,
                luns: begun.iter().copied().zip(ids.iter().copied()).collect(),
            };
            let notes = match Array::commit(core, &change) {
                Ok(n) => n,
                Err(e) => return Err(roll_back(core, &begun, set, e)),
            };
            let shadows = luns.iter().map(|(l, _)| l.to_string()).zip(ids).collect();
            Ok((
                EngineShadowSet {
                    set: set_name(set),
                    shadows,
                },
                notes,
            ))
        })
    }

    /// The engine shadows of LUN `lun`, oldest first. [`ErrorKind::NotFound`] for an unknown LUN.
    pub fn engine_shadows(&self, lun: &str) -> Result<Vec<EngineShadow>> {
        let vol = self.volume_of(lun)?;
        Ok(vol
            .snapshots()
            .into_iter()
            .filter_map(|s| {
                let (set, created_ms, meta) = parse_shadow(&s.metadata)?;
                Some(EngineShadow {
                    lun: lun.to_string(),
                    id: s.id,
                    set: set_name(set),
                    created_ms,
                    metadata: meta.to_vec(),
                    size: s.len,
                })
            })
            .collect())
    }

    /// Deletes engine shadow `id` of LUN `lun` (its diff space is given back). Refused while a
    /// LUN exposes it ([`ErrorKind::BadState`], naming it: delete that LUN first) or a long
    /// operation (a revert) runs on the LUN ([`ErrorKind::Busy`]);
    /// [`ErrorKind::NotFound`] for an unknown LUN or a snapshot id that is not one of its
    /// shadows.
    pub fn delete_engine_shadow(&self, lun: &str, id: SnapshotId) -> Result<()> {
        self.transact(|core| {
            let lid = core.state.id_of(lun)?;
            let vol = core.volumes[&lid].read().clone();
            check_shadow(&vol, lun, id)?;
            if core.busy.contains(&lid) {
                // A revert may be copying from it.
                return Err(super::lun_busy(lun));
            }
            if let Some(l) = exposing(core, lid, id) {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "LUN {:?} exposes engine shadow {id} of LUN {lun:?}; delete it first",
                        l.name
                    ),
                ));
            }
            unpin_and_delete(&vol, id)?;
            Ok(((), Vec::new()))
        })
    }

    /// Exposes engine shadow `id` of LUN `lun` as new LUN `name`: a snapshot LUN standing on the
    /// shadow (its size the shadow's), masked to no one and read-only until
    /// [`Array::break_shadow`] (after which its writes change the shadow itself). Deleting the
    /// LUN leaves the shadow; the shadow cannot be deleted while the LUN stands, nor the LUN
    /// split, nor the shadow exposed a second time ([`ErrorKind::BadState`]). Crash-atomic as
    /// [`Array::create_lun`].
    pub fn expose_engine_shadow(&self, lun: &str, id: SnapshotId, name: &str) -> Result<()> {
        check_lun_name(name)?;
        self.transact(|core| {
            let src = core.state.id_of(lun)?;
            check_not_damaged(core, src, lun)?;
            check_not_volatile(core, src, "a LUN exposing an engine shadow")?;
            core.state.check_new_name(name)?;
            let src_vol = core.volumes[&src].clone();
            let size = check_shadow(&src_vol.read(), lun, id)?;
            // Broken, an exposing LUN writes into the shadow: two would overwrite each other.
            if let Some(l) = exposing(core, src, id) {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "LUN {:?} exposes engine shadow {id} of LUN {lun:?} already",
                        l.name
                    ),
                ));
            }
            let new = core.state.next_id;
            let bs = core.state.block_size;
            self.begin_create(core, new, None, false)?;
            let made = (|| {
                let snap = Arc::new(src_vol.read().snapshot(id)?);
                match self.lun_dir(new) {
                    Some(dir) => create_stacked(&dir, snap, bs),
                    None => Ok(Volume::on_device(snap, volume_config(bs))?),
                }
            })();
            let vol = made.map_err(|e| self.roll_back_create(core, new, None, e))?;
            let change = Change::ExposeShadow {
                id: new,
                name: name.to_string(),
                size,
                source: SourceRef {
                    lun: src,
                    snapshot: id,
                },
            };
            match Array::commit(core, &change) {
                Ok(notes) => {
                    core.volumes.insert(new, Arc::new(RwLock::new(vol)));
                    Ok(((), notes))
                }
                Err(e) => {
                    drop(vol);
                    Err(self.roll_back_create(core, new, None, e))
                }
            }
        })
    }

    /// Reverts LUN `lun` to its engine shadow `id` on a background thread: the blocks that differ
    /// are copied back (the engine's revert; every snapshot stays as it is), with progress and
    /// cancel. Fenced like a change of access: when the revert starts, no host I/O admitted
    /// before is still running, and host I/O is refused with [`ErrorKind::Busy`] until it ends
    /// (whether it succeeds or fails). Crash-safe: a `revert` intent is durable before the first
    /// block is copied, and an open after a crash finishes the revert before it serves the LUN.
    /// A revert that failed or was cancelled is finished by reverting again. Refused
    /// ([`ErrorKind::Busy`]) while another long operation runs on the LUN.
    pub fn revert_to_engine_shadow(&self, lun: &str, id: SnapshotId) -> AsyncHandle<()> {
        let (a, n) = (self.clone(), lun.to_string());
        AsyncHandle::spawn(move |p| a.revert_blocking(&n, id, p))
    }

    fn revert_blocking(&self, lun: &str, id: SnapshotId, progress: &Progress) -> Result<()> {
        let (lid, vol) = {
            let core = self.inner.core.read();
            let lid = core.state.id_of(lun)?;
            check_not_damaged(&core, lid, lun)?;
            (lid, core.volumes[&lid].clone())
        };
        check_shadow(&vol.read(), lun, id)?;
        self.long_op(lid, lun, || {
            self.set_restoring(
                lid,
                Some(Intent::Revert {
                    id: lid,
                    snapshot: id,
                }),
            )?;
            let r = vol.read().revert(id, progress).map_err(Error::from);
            // Host I/O is served again, whatever the outcome.
            let back = self.set_restoring(lid, None);
            r.and(back)
        })
    }
}

/// The LUN exposing engine shadow `id` of LUN `lun`, if any.
fn exposing(core: &Core, lun: LunId, id: SnapshotId) -> Option<&super::state::LunRec> {
    let want = SourceRef { lun, snapshot: id };
    core.state.luns.values().find(|l| l.source == Some(want))
}

/// Rolls back engine shadow set `set` on the LUNs `begun` whose intent is durable: their tagged
/// snapshots deleted and their intents ended (what fails here, the next open does). Returns `e`.
fn roll_back(core: &mut Core, begun: &[LunId], set: u64, e: Error) -> Error {
    for &id in begun {
        let undone = match core.volumes.get(&id) {
            Some(v) => delete_shadows_of_set(&v.read(), set),
            None => Ok(()),
        };
        if undone.is_ok() {
            let _ = Array::commit(core, &Change::Done { id });
        }
    }
    e
}
