//! Making room in a full diff area under [`DiffFullPolicy::DeleteOldest`]: which snapshots to
//! delete so that an origin write short of slots can go on, decided and done under the exclusive
//! gate.
//!
//! A writer whose allocation failed releases the shared gate before it takes it exclusively, so
//! another writer may have made room in between: a count of the slots deletions freed, read
//! before the attempt and again under the exclusive gate, tells; if it moved, the write retries
//! without deleting.
//!
//! A snapshot's deletion frees only the slots no remaining snapshot references: its overlay's, and
//! those of its preserved blocks that the nearest remaining older snapshot does not take over (a
//! preserved copy passes to the elder when the elder lacks the block; see
//! `State::remove_snapshot`). So deleting the unpinned snapshots above a pinned one may free
//! nothing at all. The plan therefore takes the shortest run of unpinned snapshots, oldest first,
//! whose deletion leaves the write enough room (counting the write's own need, which shrinks to
//! nothing once no snapshot is left), and deletes none if no such run
//! exists: the write then fails with [`ErrorKind::NoSpace`] naming the pinned snapshot that holds
//! the space.
//!
//! [`DiffFullPolicy::DeleteOldest`]: crate::DiffFullPolicy::DeleteOldest

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use crate::error::{Error, ErrorKind, Result};
use crate::map::Entry;
use crate::state::{SnapshotId, State};

use super::{DeleteReason, Event, Inner};

/// What [`plan`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Delete these snapshots (the oldest unpinned ones, oldest first; none if the write has room
    /// already, another writer having freed it), then retry the write.
    Delete(Vec<SnapshotId>),
    /// No deletion of unpinned snapshots gives the write room.
    Short {
        /// Slots the write needs.
        need: u64,
        /// Slots free now plus those deleting every unpinned snapshot would free.
        could_have: u64,
        /// The snapshots kept (pinned, or with a volume stacked on them), oldest first: they hold
        /// the space.
        pinned: Vec<SnapshotId>,
    },
}

/// The slots an origin write of blocks `first..end` needs in the newest remaining snapshot `h`
/// (none if no snapshot is left), given the blocks `absorbed` it would take over from deleted
/// newer ones.
fn need(
    st: &State,
    shift: u32,
    h: Option<usize>,
    absorbed: &HashSet<u64>,
    first: u64,
    end: u64,
) -> u64 {
    let Some(h) = h else { return 0 };
    let s = &st.snaps[h];
    let end = end.min(s.blocks(shift));
    (first..end)
        .filter(|b| !matches!(s.map.get(*b), Entry::Preserved(_)) && !absorbed.contains(b))
        .count() as u64
}

/// Which snapshots to delete so that an origin write of blocks `first..end` finds the slots it
/// needs, with `room` slots free now. Called with the gate held exclusively (no copy in flight,
/// no entry claimed).
pub(crate) fn plan(st: &State, shift: u32, room: u64, first: u64, end: u64) -> Plan {
    let none = HashSet::new();
    let newest = st.snaps.len().checked_sub(1);
    let need_now = need(st, shift, newest, &none, first, end);
    if room >= need_now {
        return Plan::Delete(Vec::new());
    }
    // Walk the chain oldest first, deleting (on paper) each unpinned snapshot in turn; `holder` is
    // the nearest older snapshot kept (a pinned one), and `absorbed` the blocks it has taken over
    // from the deleted ones above it.
    let mut freed = 0u64;
    let mut holder: Option<usize> = None;
    let mut absorbed: HashSet<u64> = HashSet::new();
    let mut deleted = Vec::new();
    for (i, s) in st.snaps.iter().enumerate() {
        if kept(s) {
            holder = Some(i);
            absorbed.clear();
            continue;
        }
        deleted.push(s.id);
        if let Some(ov) = &s.overlay {
            freed += ov.preserved_count();
        }
        match holder {
            None => freed += s.map.preserved_count(),
            Some(h) => {
                let elder = &st.snaps[h];
                let elder_blocks = elder.blocks(shift);
                s.map.for_each_preserved(|b, _| {
                    let taken = b < elder_blocks
                        && matches!(elder.map.get(b), Entry::Untouched)
                        && absorbed.insert(b);
                    if !taken {
                        freed += 1;
                    }
                });
            }
        }
        // The write's need changes only once the newest snapshot goes: then the holder is the
        // newest left.
        let need_after = if i + 1 == st.snaps.len() {
            need(st, shift, holder, &absorbed, first, end)
        } else {
            need_now
        };
        if room + freed >= need_after {
            return Plan::Delete(deleted);
        }
    }
    Plan::Short {
        need: need_now,
        could_have: room + freed,
        pinned: st.snaps.iter().filter(|s| kept(s)).map(|s| s.id).collect(),
    }
}

/// A snapshot never deleted to make room: a pinned one, or one a volume is stacked on (its
/// deletion would pull the volume's origin away).
fn kept(s: &crate::state::Snap) -> bool {
    s.pinned || s.check_not_stacked_on().is_err()
}

impl Inner {
    /// Makes room for an origin write of `[offset, offset + len)` that found the diff area full,
    /// `frees` being the count of slots deletions freed ([`Inner::free_slot`]) before its
    /// attempt: deletes the oldest unpinned snapshots that give it room (announcing each), or none
    /// if a deletion freed a slot since. Ok means: retry the write. Fails with [`ErrorKind::NoSpace`] if no deletion of unpinned snapshots would give
    /// it room, deleting nothing.
    pub(crate) fn make_room(
        &self,
        offset: u64,
        len: u64,
        frees: u64,
        headroom: bool,
    ) -> Result<()> {
        let mut st = self.state.write();
        // Relaxed: see `Inner::free_slot`.
        if self.frees.load(Ordering::Relaxed) != frees {
            return Ok(());
        }
        let first = offset >> self.shift;
        let end = (offset + len).div_ceil(self.block_size());
        // No deletion freed a slot since the attempt found none. If the limit refused the
        // write's reservation (nothing copied), the slots left under the limit count as room;
        // if the device could not grow, there is no room but what a deletion frees (the limit's
        // headroom would not do: such a device refuses below the limit). No writer holds a
        // reservation now: the gate is held exclusively.
        let room = match (headroom, self.diff.limit()) {
            (true, Some(limit)) => limit.saturating_sub(self.diff.in_use()),
            _ => 0,
        };
        let ids = match plan(&st, self.shift, room, first, end) {
            Plan::Delete(ids) => ids,
            Plan::Short {
                need,
                could_have,
                pinned,
            } => return Err(short(self, need, could_have, &pinned)),
        };
        for (n, &id) in ids.iter().enumerate() {
            if let Err(e) = self.delete_snapshot_locked(&mut st, id) {
                drop(st);
                // Those deleted before the failure are gone: say so.
                self.announce_deleted(&ids[..n]);
                return Err(e);
            }
        }
        drop(st);
        self.announce_deleted(&ids);
        Ok(())
    }

    fn announce_deleted(&self, ids: &[SnapshotId]) {
        for &snapshot in ids {
            self.announce(Event::SnapshotDeleted {
                snapshot,
                reason: DeleteReason::DiffAreaFull,
            });
        }
    }
}

/// The error of a write that no deletion of unpinned snapshots gives room.
fn short(inner: &Inner, need: u64, could_have: u64, pinned: &[SnapshotId]) -> Error {
    let in_use = inner.diff.in_use();
    let area = match inner.diff.limit() {
        Some(limit) if in_use >= limit => {
            format!("diff area full: {in_use} of {limit} slots in use")
        }
        _ => format!("diff area full: its device cannot grow ({in_use} slots in use)"),
    };
    let list = pinned
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let e = Error::new(
        ErrorKind::NoSpace,
        format!(
            "{area}; the write needs {need} slot(s) and deleting every snapshot that may go would \
             leave only {could_have}: snapshot(s) {list} (pinned, or the origin of a stacked \
             volume) hold the space (unpin or delete them)"
        ),
    );
    match pinned.first() {
        Some(&id) => e.with_snapshot(id),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SnapshotOptions;

    const SHIFT: u32 = 12;

    /// A chain of 8-block snapshots, `pinned[i]` for each, with `preserved[i]` blocks preserved
    /// in each (slots numbered in order).
    fn chain(pinned: &[bool], preserved: &[&[u64]]) -> State {
        let mut st = State::empty(8 << SHIFT);
        let mut slot = 0;
        for (i, (&pin, blocks)) in pinned.iter().zip(preserved).enumerate() {
            let options = SnapshotOptions {
                pinned: pin,
                ..SnapshotOptions::default()
            };
            st.push_snapshot(SnapshotId::new(i as u64 + 1), 8 << SHIFT, SHIFT, options);
            for &b in *blocks {
                st.snaps[i].map.set_preserved(b, slot);
                slot += 1;
            }
        }
        st
    }

    fn ids(ns: &[u64]) -> Plan {
        Plan::Delete(ns.iter().map(|&n| SnapshotId::new(n)).collect())
    }

    /// The race of issue 11 §1: another writer deleted the last snapshot between this write's
    /// failed allocation and its make-room, which must then retry, not give up.
    #[test]
    fn no_snapshot_left_or_room_freed_meanwhile_means_retry() {
        assert_eq!(plan(&chain(&[], &[]), SHIFT, 0, 0, 8), ids(&[]));
        let st = chain(&[false], &[&[0, 1]]);
        assert_eq!(plan(&st, SHIFT, 1, 2, 3), ids(&[]));
        // Blocks the newest snapshot holds already need no slot.
        assert_eq!(plan(&st, SHIFT, 0, 0, 2), ids(&[]));
        assert_eq!(plan(&st, SHIFT, 0, 1, 3), ids(&[1]));
    }

    #[test]
    fn deletions_that_free_nothing_are_not_made() {
        // A pinned oldest snapshot takes over every block of A, B and C.
        let st = chain(&[true, false, false, false], &[&[0], &[1], &[2], &[3]]);
        assert_eq!(
            plan(&st, SHIFT, 0, 4, 5),
            Plan::Short {
                need: 1,
                could_have: 0,
                pinned: vec![SnapshotId::new(1)]
            }
        );
        // B's block 1 is A's too: deleting A and B frees B's copy.
        let st = chain(&[true, false, false, false], &[&[0], &[1], &[1], &[3]]);
        assert_eq!(plan(&st, SHIFT, 0, 4, 5), ids(&[2, 3]));
        // The pinned one holds block 4 already: once the newest goes, the write needs no slot.
        let st = chain(&[true, false], &[&[4], &[1]]);
        assert_eq!(plan(&st, SHIFT, 0, 4, 5), ids(&[2]));
        // A write of two new blocks needs two slots: not even deleting all gives them.
        let st = chain(&[true, false, false], &[&[0], &[0], &[1]]);
        assert_eq!(
            plan(&st, SHIFT, 0, 4, 6),
            Plan::Short {
                need: 2,
                could_have: 1,
                pinned: vec![SnapshotId::new(1)]
            }
        );
    }
}
