//! Fenced access changes: when a change of who may do what with a LUN returns, no I/O admitted
//! under the old access is still running, and every I/O that starts later sees the new access.
//!
//! Each LUN has a [`LunFence`]: an access epoch and in-flight counters. An I/O resolves its
//! access under the admin lock's read side, reading the LUN's epoch with it (a transaction
//! changes the state and moves the epoch under the write side, so the two agree), then enters:
//! it counts itself in the counter of its epoch's parity, then checks that the epoch has not
//! moved (if it has, it leaves and resolves again). A transaction that changes a LUN's access
//! moves its epoch and waits for the counters of the old parity to reach zero: every I/O
//! admitted under the old access has then finished, and every later one resolves the new access.
//! Entering takes no lock (two atomic operations on a counter of the caller's own, one load of the
//! epoch); a reader of the mask never waits for I/O, and an I/O never waits for the admin lock
//! while it is counted.
//!
//! Writes enter through the volume ([`cow_engine::Volume::write_at_admitted`]), once past any
//! freeze: a write held by a freeze is not counted, is refused if its access changed meanwhile,
//! and a fence never waits for a thaw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::mask::LunId;

/// In-flight counters, one per epoch parity: those of one LUN handle (or of a LUN's by-name I/O).
/// Aligned to a cache line so that handles on different threads do not share one.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct InFlight {
    count: [AtomicU64; 2],
}

/// One LUN's access epoch and the in-flight counters of the I/O admitted under it.
#[derive(Default)]
pub(super) struct LunFence {
    /// Moves (under the admin lock's write side) each time the LUN's access changes.
    epoch: AtomicU64,
    /// The counters of by-name I/O.
    shared: Arc<InFlight>,
    /// The counters of the LUN's handles (dropped handles leave dead entries, swept on fence).
    handles: Mutex<Vec<Weak<InFlight>>>,
    /// Fences waiting for counters to drain.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    drained: Condvar,
}

/// An admitted I/O: counted until dropped.
pub(super) struct Admitted<'a> {
    fence: &'a LunFence,
    counter: &'a AtomicU64,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        // SeqCst: this decrement and the load of `waiters` pair with the fence's increment of
        // `waiters` and its load of the counter (a store-then-load on each side): at least one
        // side sees the other's store, so a fence never sleeps past the last I/O's exit.
        if self.counter.fetch_sub(1, Ordering::SeqCst) == 1
            && self.fence.waiters.load(Ordering::SeqCst) > 0
        {
            let _g = self.fence.lock.lock();
            self.fence.drained.notify_all();
        }
    }
}

impl LunFence {
    /// The current epoch. Read under the admin lock (either side) it matches the access state.
    pub(super) fn epoch(&self) -> u64 {
        // Acquire is not needed for the admission (enter re-checks with SeqCst); the admin lock
        // orders this load with the transaction that last moved it.
        self.epoch.load(Ordering::Relaxed)
    }

    /// The counters of by-name I/O.
    pub(super) fn shared(&self) -> &InFlight {
        &self.shared
    }

    /// New counters for a LUN handle, which the fence will wait for.
    pub(super) fn register(&self) -> Arc<InFlight> {
        let slot = Arc::new(InFlight::default());
        let mut hs = self.handles.lock();
        hs.retain(|w| w.strong_count() > 0);
        hs.push(Arc::downgrade(&slot));
        slot
    }

    /// Counts an I/O resolved under `epoch` in `slot`; `None` (nothing counted) if the epoch has
    /// moved since: the access must be resolved again. Never blocks.
    pub(super) fn enter<'a>(&'a self, slot: &'a InFlight, epoch: u64) -> Option<Admitted<'a>> {
        let counter = &slot.count[(epoch & 1) as usize];
        // SeqCst: the increment then the epoch load pair with the fence's epoch increment then
        // its counter load (store-then-load on both sides): either the fence sees this I/O
        // counted and waits for it, or this I/O sees the new epoch and backs off.
        counter.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted {
            fence: self,
            counter,
        };
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return None;
        }
        Some(admitted)
    }

    /// Moves the epoch and waits until every I/O admitted under the old one has finished. Called
    /// with the admin lock's write side held, after the change is applied.
    fn fence(&self) {
        // SeqCst: see `enter`.
        let old = self.epoch.fetch_add(1, Ordering::SeqCst);
        let parity = (old & 1) as usize;
        let mut slots: Vec<Arc<InFlight>> = vec![self.shared.clone()];
        {
            let mut hs = self.handles.lock();
            hs.retain(|w| w.strong_count() > 0);
            slots.extend(hs.iter().filter_map(Weak::upgrade));
        }
        // SeqCst: see `Admitted::drop`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock.lock();
        while slots
            .iter()
            .any(|s| s.count[parity].load(Ordering::SeqCst) != 0)
        {
            self.drained.wait(&mut g);
        }
        drop(g);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which LUNs a change must fence.
#[derive(Debug, Default)]
pub(super) struct Unfenced {
    luns: Vec<LunId>,
    all: bool,
}

impl Unfenced {
    /// Notes that LUN `id`'s access changed.
    pub(super) fn lun(&mut self, id: LunId) {
        self.luns.push(id);
    }

    /// Notes that any LUN's access may have changed (a group or host changed).
    pub(super) fn all(&mut self) {
        self.all = true;
    }
}

/// Every LUN's fence, created on first use.
#[derive(Default)]
pub(super) struct Fences {
    map: Mutex<HashMap<LunId, Arc<LunFence>>>,
}

impl Fences {
    /// LUN `id`'s fence. Called with the admin lock held (either side): a fence created here
    /// cannot miss a transaction's drain.
    pub(super) fn get(&self, id: LunId) -> Arc<LunFence> {
        self.map.lock().entry(id).or_default().clone()
    }

    /// Fences what `pending` names and clears it; LUNs in `gone` (deleted) lose their fence after
    /// it. Called with the admin lock's write side held, after the changes are applied.
    pub(super) fn drain(&self, pending: &mut Unfenced, gone: impl Fn(LunId) -> bool) {
        if !pending.all && pending.luns.is_empty() {
            return;
        }
        let fences: Vec<(LunId, Arc<LunFence>)> = {
            let map = self.map.lock();
            if pending.all {
                map.iter().map(|(id, f)| (*id, f.clone())).collect()
            } else {
                pending
                    .luns
                    .iter()
                    .filter_map(|id| map.get(id).map(|f| (*id, f.clone())))
                    .collect()
            }
        };
        *pending = Unfenced::default();
        for (_, f) in &fences {
            f.fence();
        }
        let mut map = self.map.lock();
        for (id, _) in fences {
            if gone(id) {
                map.remove(&id);
            }
        }
    }
}

/// Notes in `pending` the LUNs whose access `change` alters.
pub(super) fn note(pending: &mut Unfenced, change: &super::state::Change) {
    use super::state::Change as C;
    match change {
        C::DeleteLun { id }
        | C::SetMask { id, .. }
        | C::SetHostNumber { id, .. }
        | C::Extend { id, .. }
        | C::SetStatus { id, .. }
        | C::BreakShadow { id } => pending.lun(*id),
        C::DeleteSnapshotSet { ids, .. } => ids.iter().for_each(|id| pending.lun(*id)),
        C::Batch { changes } => changes.iter().for_each(|c| note(pending, c)),
        C::Swap { from, to } => {
            pending.lun(*from);
            pending.lun(*to);
        }
        C::SetGroup { .. } | C::DeleteGroup { .. } | C::SetHost { .. } | C::DeleteHost { .. } => {
            pending.all()
        }
        C::CreateLun { .. }
        | C::Detach { .. }
        | C::CreateTarget { .. }
        | C::DeleteTarget { .. }
        | C::AssociateTargets { .. }
        // Intent records change no one's access.
        | C::Begin { .. }
        | C::Done { .. }
        // Metadata is not access.
        | C::SetLunMetadata { .. }
        | C::SetPoolMetadata { .. }
        // New LUNs, masked to no one.
        | C::SnapshotSet { .. }
        | C::ExposeShadow { .. }
        // Engine snapshots change no one's access.
        | C::EngineShadowSet { .. } => {}
    }
}
