//! Snapshot sets: several LUNs snapshotted at one instant in one transaction, each new shadow LUN
//! masked to no one and read-only until broken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cow_engine::{SnapshotId, SnapshotOptions, Volume};
use parking_lot::RwLock;

use super::lun::{check_not_damaged, check_not_volatile};
use super::state::{check_lun_name, metadata::SET_KEY, Change, SetLun, SourceRef};
use super::volumes::{create_stacked, snapshot_tag, volume_config};
use super::{Array, Core};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::LunId;

/// How long the sources of a snapshot set may stay frozen: writes in flight must drain within it.
const SET_FREEZE: Duration = Duration::from_secs(10);

impl Array {
    /// Snapshots the LUNs `luns` names (`(source, new shadow LUN)` pairs) at one instant, in one
    /// transaction, as snapshot set `set-<id>` (returned, `<id>` the first new LUN's id). Every
    /// source is frozen (flush-and-hold), every engine snapshot taken, then every source thawed;
    /// then one pool record creates all the shadow LUNs. Each shadow LUN is masked to no one,
    /// read-only to everyone until [`Array::break_shadow`], and carries `metadata` plus the key
    /// `umbra:snapshot-set` naming the set.
    ///
    /// All or none: an unknown or damaged source, a name taken or given twice, a source given
    /// twice, metadata out of the limits of [`Array::set_lun_metadata`] or a freeze that does not
    /// drain in time leaves nothing. Crash-atomic: each shadow LUN's intent is durable before its
    /// engine snapshot or directory exists, and the set's record ends them all; an open after a
    /// crash before that record removes every shadow LUN's snapshot and directory.
    pub fn snapshot_set(
        &self,
        luns: &[(&str, &str)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<String> {
        if luns.is_empty() {
            return Err(Error::invalid("a snapshot set of no LUNs"));
        }
        for (_, name) in luns {
            check_lun_name(name)?;
        }
        self.transact(|core| {
            let mut sources: Vec<(LunId, Arc<RwLock<Volume>>, u64)> = Vec::new();
            for (i, (source, name)) in luns.iter().enumerate() {
                let id = core.state.id_of(source)?;
                check_not_damaged(core, id, source)?;
                check_not_volatile(core, id, "a snapshot set")?;
                core.state.check_new_name(name)?;
                if luns[..i].iter().any(|(s, n)| s == source || n == name) {
                    return Err(Error::invalid(format!(
                        "snapshot set names LUN {source:?} or {name:?} twice"
                    )));
                }
                let size = core.state.lun(id)?.size;
                sources.push((id, core.volumes[&id].clone(), size));
            }
            let set = format!("set-{}", core.state.next_id);
            // Metadata is checked before anything is created.
            for (k, v) in metadata {
                if k == SET_KEY {
                    return Err(Error::invalid(format!(
                        "metadata key {SET_KEY:?} is the array's own"
                    )));
                }
                super::state::metadata::check_set(
                    &format!("snapshot set {set:?}"),
                    &BTreeMap::new(),
                    k,
                    Some(v),
                    super::state::metadata::LUN_LIMITS,
                )?;
            }
            // Each shadow LUN's intent, durable before anything of it exists.
            let mut begun: Vec<(LunId, LunId)> = Vec::new();
            for (src, _, _) in &sources {
                let id = core.state.next_id;
                if let Err(e) = self.begin_create(core, id, Some(*src), false) {
                    return Err(self.roll_back_set(core, &begun, e));
                }
                begun.push((id, *src));
            }
            let made = self.take_set_snapshots(core, &sources, &begun);
            let made = match made {
                Ok(m) => m,
                Err(e) => return Err(self.roll_back_set(core, &begun, e)),
            };
            let change = Change::SnapshotSet {
                set: set.clone(),
                luns: made
                    .iter()
                    .zip(luns)
                    .zip(&sources)
                    .map(|(((id, sid, _), (_, name)), (src, _, size))| SetLun {
                        id: *id,
                        name: name.to_string(),
                        size: *size,
                        source: SourceRef {
                            lun: *src,
                            snapshot: *sid,
                        },
                    })
                    .collect(),
                metadata: metadata.clone(),
            };
            match Array::commit(core, &change) {
                Ok(notes) => {
                    for (id, _, vol) in made {
                        core.volumes.insert(id, Arc::new(RwLock::new(vol)));
                    }
                    Ok((set, notes))
                }
                Err(e) => {
                    drop(made);
                    Err(self.roll_back_set(core, &begun, e))
                }
            }
        })
    }

    /// The instant of a snapshot set: freezes every source, takes each engine snapshot (tagged
    /// for its shadow LUN) and stacks the shadow LUN's volume on it, thaws every source.
    fn take_set_snapshots(
        &self,
        core: &Core,
        sources: &[(LunId, Arc<RwLock<Volume>>, u64)],
        begun: &[(LunId, LunId)],
    ) -> Result<Vec<(LunId, SnapshotId, Volume)>> {
        let bs = core.state.block_size;
        let guards: Vec<_> = sources.iter().map(|(_, v, _)| v.read()).collect();
        let vols: Vec<&Volume> = guards.iter().map(|g| &**g).collect();
        let (made, r) = snapshot_at_one_instant(&vols, |i| SnapshotOptions {
            writable: true,
            persistent: true,
            pinned: true,
            metadata: snapshot_tag(begun[i].0),
        });
        // On error the snapshots made are tagged for their shadow LUN: the roll-back finds them.
        r?;
        let snaps: Vec<(LunId, SnapshotId)> = begun.iter().map(|b| b.0).zip(made).collect();
        let mut out = Vec::new();
        for (g, (id, sid)) in guards.iter().zip(snaps) {
            let snap = Arc::new(g.snapshot(sid)?);
            let vol = match self.lun_dir(id) {
                Some(dir) => create_stacked(&dir, snap, bs)?,
                None => Volume::on_device(snap, volume_config(bs))?,
            };
            out.push((id, sid, vol));
        }
        Ok(out)
    }

    /// Rolls back the shadow LUNs `begun` (`(id, source)`) of a snapshot set that failed with `e`.
    fn roll_back_set(&self, core: &mut Core, begun: &[(LunId, LunId)], e: Error) -> Error {
        for &(id, src) in begun {
            let _ = self.roll_back_create(core, id, Some(src), Error::invalid(""));
        }
        e
    }

    /// Makes shadow LUN `name` an ordinary read-write LUN, out of its snapshot set (its set key
    /// removed): deleting the set no longer deletes it, and it can be swapped. A LUN that is not
    /// an unbroken shadow is [`ErrorKind::BadState`]. Fenced: I/O after it sees the LUN writable.
    pub fn break_shadow(&self, name: &str) -> Result<()> {
        self.change_lun(name, |id| Change::BreakShadow { id })
    }

    /// Whether LUN `name` is a shadow LUN of a snapshot set not yet broken.
    pub fn is_shadow(&self, name: &str) -> Result<bool> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        Ok(core.state.lun(id)?.shadow)
    }

    /// The unbroken shadow LUNs of snapshot set `set`, sorted by name.
    pub fn snapshot_set_luns(&self, set: &str) -> Vec<String> {
        let mut v = set_members(&self.inner.core.read(), set);
        v.sort();
        v
    }

    /// Deletes snapshot set `set`: its unbroken shadow LUNs, all in one pool record (all or
    /// none, crash-atomic: an open after a crash finds every one of them or none), after which
    /// each LUN's volume and the engine snapshot it stood on are removed (an open after a crash
    /// finishes that removal). A broken (or swapped-in) LUN is not in the set any more and stays.
    /// An unknown set (no unbroken LUN names it) is [`ErrorKind::NotFound`]; a LUN of the set
    /// with a snapshot LUN of its own, or a long operation running, refuses the whole delete
    /// ([`ErrorKind::BadState`], [`ErrorKind::Busy`]) and deletes nothing. Returns the LUNs
    /// deleted, sorted.
    pub fn delete_snapshot_set(&self, set: &str) -> Result<Vec<String>> {
        self.transact(|core| {
            let mut names = set_members(core, set);
            if names.is_empty() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("snapshot set {set:?} has no shadow LUNs"),
                ));
            }
            names.sort();
            let ids = names
                .iter()
                .map(|n| core.state.id_of(n))
                .collect::<Result<Vec<_>>>()?;
            let change = Change::DeleteSnapshotSet {
                set: set.to_string(),
                ids: ids.clone(),
            };
            let (outcome, notes) = self.delete_luns_in(core, &ids, change)?;
            Ok((outcome.map(|()| names), notes))
        })?
    }
}

/// Freezes every one of `vols` (flush-and-hold, under one deadline), takes a snapshot of each
/// (`options(i)` for the `i`th), then thaws them all: the snapshots are of one instant. Returns
/// the snapshots taken (in order; fewer on error) and the outcome.
pub(super) fn snapshot_at_one_instant(
    vols: &[&Volume],
    options: impl Fn(usize) -> SnapshotOptions,
) -> (Vec<SnapshotId>, Result<()>) {
    let deadline = Instant::now() + SET_FREEZE;
    let mut frozen = Vec::new();
    let mut made = Vec::new();
    let mut r = Ok(());
    for v in vols {
        match v.freeze(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => frozen.push(v),
            Err(e) => {
                r = Err(e.into());
                break;
            }
        }
    }
    if r.is_ok() {
        for (i, v) in vols.iter().enumerate() {
            match v.create_snapshot(options(i)) {
                Ok(sid) => made.push(sid),
                Err(e) => {
                    r = Err(e.into());
                    break;
                }
            }
        }
    }
    for v in frozen {
        // An expired deadline released the writes already; the snapshots are as of the freeze
        // either way (taken under it, before the thaw).
        let _ = v.thaw();
    }
    (made, r)
}

/// The names of the unbroken shadow LUNs of snapshot set `set`.
fn set_members(core: &Core, set: &str) -> Vec<String> {
    core.state
        .luns
        .values()
        .filter(|l| l.shadow && l.metadata.get(SET_KEY).is_some_and(|s| s == set))
        .map(|l| l.name.clone())
        .collect()
}

impl Array {
    /// The snapshot LUNs of LUN `source` (those not split from it), sorted by name, each with
    /// the snapshot set it is an unbroken shadow LUN of (none for a snapshot LUN of
    /// [`Array::snapshot_lun`] or a broken shadow). [`ErrorKind::NotFound`] for an unknown LUN.
    pub fn snapshot_luns_of(&self, source: &str) -> Result<Vec<(String, Option<String>)>> {
        let core = self.inner.core.read();
        let src = core.state.id_of(source)?;
        let mut v: Vec<(String, Option<String>)> = core
            .state
            .luns
            .values()
            .filter(|l| l.is_snapshot_of(src))
            .map(|l| {
                let set = l.shadow.then(|| l.metadata.get(SET_KEY).cloned()).flatten();
                (l.name.clone(), set)
            })
            .collect();
        v.sort();
        Ok(v)
    }
}
