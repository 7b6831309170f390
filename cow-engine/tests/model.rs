//! Property tests: random operation sequences against a plain in-memory model of every snapshot's
//! bytes, for memory and file volumes.

use std::collections::BTreeSet;

use cow_engine::{ErrorKind, SnapshotId, SnapshotOptions, Volume, VolumeConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write {
        off: u64,
        len: usize,
        seed: u8,
    },
    Discard {
        off: u64,
        len: u64,
    },
    Snapshot {
        writable: bool,
        persistent: bool,
    },
    SnapWrite {
        pick: usize,
        off: u64,
        len: usize,
        seed: u8,
    },
    Delete {
        pick: usize,
    },
    Revert {
        pick: usize,
    },
    Grow {
        blocks: u64,
    },
    Flush,
    Checkpoint,
    Reopen,
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    let span = (0..size, 1..3 * 4096usize);
    prop_oneof![
        8 => (span.clone(), any::<u8>()).prop_map(|((off, len), seed)| Op::Write { off, len, seed }),
        1 => span.clone().prop_map(|(off, len)| Op::Discard { off, len: len as u64 }),
        3 => (any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(writable, persistent)| Op::Snapshot { writable, persistent }),
        3 => (any::<usize>(), span, any::<u8>())
            .prop_map(|(pick, (off, len), seed)| Op::SnapWrite { pick, off, len, seed }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Revert { pick }),
        1 => (1..4u64).prop_map(|blocks| Op::Grow { blocks }),
        1 => Just(Op::Flush),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i * 7 % 251) as u8))
        .collect()
}

struct MSnap {
    id: SnapshotId,
    data: Vec<u8>,
    writable: bool,
    persistent: bool,
    /// Origin blocks (below this snapshot's end) first written while this was the newest
    /// snapshot, plus those handed over by deleted newer neighbours: what its map preserves.
    epoch: BTreeSet<u64>,
    /// Blocks written through the snapshot (its overlay).
    overlay: BTreeSet<u64>,
}

#[derive(Default)]
struct Model {
    origin: Vec<u8>,
    snaps: Vec<MSnap>,
    block_size: u64,
}

impl Model {
    /// Records an origin write of `[off, off + len)`: the newest snapshot preserves the blocks
    /// it holds.
    fn origin_written(&mut self, off: u64, len: u64) {
        let bs = self.block_size;
        if let Some(newest) = self.snaps.last_mut() {
            let end = ((off + len).div_ceil(bs)).min(newest.data.len() as u64 / bs);
            newest.epoch.extend(off / bs..end);
        }
    }

    /// Deletes snapshot `i` as the volume does: its elder takes over the preserved blocks it
    /// lacks (within its own size); the overlay goes.
    fn delete(&mut self, i: usize) -> MSnap {
        let s = self.snaps.remove(i);
        if i > 0 {
            let elder = &mut self.snaps[i - 1];
            let blocks = elder.data.len() as u64 / self.block_size;
            elder.epoch.extend(s.epoch.iter().filter(|&&b| b < blocks));
        }
        s
    }

    /// The blocks written between the images of snapshots `from` and `to` (the origin if
    /// `None`), whatever the bytes: every origin block written after the older snapshot was
    /// taken (and before the newer one, if any), every block written through either snapshot,
    /// and the blocks one image has beyond the other's end after a grow. What the volume's maps
    /// record; the blocks that differ are among them.
    fn written(&self, from: usize, to: Option<usize>) -> Vec<u64> {
        let bs = self.block_size;
        let (lo, hi) = match to {
            Some(t) if t == from => return Vec::new(),
            Some(t) => (from.min(t), Some(from.max(t))),
            None => (from, None),
        };
        let mut out: BTreeSet<u64> = BTreeSet::new();
        for s in &self.snaps[lo..hi.unwrap_or(self.snaps.len())] {
            out.extend(&s.epoch);
        }
        for i in [Some(lo), hi].into_iter().flatten() {
            out.extend(&self.snaps[i].overlay);
        }
        let lo_blocks = self.snaps[lo].data.len() as u64 / bs;
        let hi_blocks = match hi {
            Some(h) => self.snaps[h].data.len() as u64 / bs,
            None => self.origin.len() as u64 / bs,
        };
        out.extend(lo_blocks..hi_blocks);
        out.into_iter().collect()
    }

    /// What `Volume::changed_blocks(from, to)` must report (its docs: exact): the blocks whose
    /// bytes differ between the two images, and those only one image has, from the bytes alone.
    fn changed(&self, from: usize, to: Option<usize>) -> Vec<u64> {
        let bs = self.block_size as usize;
        let a = &self.snaps[from].data;
        let b = match to {
            Some(t) => &self.snaps[t].data,
            None => &self.origin,
        };
        let block = |img: &[u8], n: usize| img.get(n * bs..(n + 1) * bs).map(<[u8]>::to_vec);
        (0..a.len().max(b.len()) / bs)
            .filter(|&n| block(a, n) != block(b, n))
            .map(|n| n as u64)
            .collect()
    }
}

/// Clamps a generated range into `[0, size)`; `None` if nothing is left.
fn clamp(off: u64, len: usize, size: u64) -> Option<(u64, usize)> {
    let off = off % size;
    let len = len.min((size - off) as usize);
    (len > 0).then_some((off, len))
}

fn check(vol: &Volume, model: &Model) {
    let mut buf = vec![0u8; model.origin.len()];
    vol.read_at(&mut buf, 0).unwrap();
    assert!(buf == model.origin, "origin differs from the model");
    let infos = vol.snapshots();
    assert_eq!(
        infos.iter().map(|i| i.id).collect::<Vec<_>>(),
        model.snaps.iter().map(|s| s.id).collect::<Vec<_>>()
    );
    for s in &model.snaps {
        let snap = vol.snapshot(s.id).unwrap();
        assert_eq!(snap.len(), s.data.len() as u64);
        let mut b = vec![0u8; s.data.len()];
        snap.read_at(&mut b, 0).unwrap();
        if b != s.data {
            let first = b.iter().zip(&s.data).position(|(a, b)| a != b).unwrap();
            panic!("snapshot {} differs from the model at byte {first}", s.id);
        }
    }
    check_changed_blocks(vol, model);
}

/// `changed_blocks` between every pair of snapshots (both orders) and against the origin equals
/// the model's set of differing blocks exactly, and the model's written blocks cover that set
/// (what the volume reads to compare comes from its maps).
fn check_changed_blocks(vol: &Volume, model: &Model) {
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    for i in 0..model.snaps.len() {
        pairs.push((i, None));
        pairs.extend((0..model.snaps.len()).map(|j| (i, Some(j))));
    }
    for (i, to) in pairs {
        let expect = model.changed(i, to);
        let written = model.written(i, to);
        for b in &expect {
            assert!(
                written.binary_search(b).is_ok(),
                "model: block {b} differs but was not written"
            );
        }
        assert_eq!(
            vol.changed_blocks(model.snaps[i].id, to.map(|j| model.snaps[j].id))
                .unwrap(),
            expect,
            "changed blocks of snapshot {} against {:?}",
            model.snaps[i].id,
            to.map(|j| model.snaps[j].id)
        );
    }
}

fn run(ops: Vec<Op>, file: bool, block_size: u32) {
    let size = 16 * u64::from(block_size);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vol");
    let config = VolumeConfig::with_block_size(block_size);
    let mut vol = if file {
        Volume::create(&path, size, config).unwrap()
    } else {
        Volume::create_mem(size, config).unwrap()
    };
    let mut model = Model {
        origin: vec![0; size as usize],
        block_size: u64::from(block_size),
        ..Default::default()
    };
    for op in ops {
        let size = model.origin.len() as u64;
        match op {
            Op::Write { off, len, seed } => {
                let Some((off, len)) = clamp(off, len, size) else {
                    continue;
                };
                let data = pattern(seed, len);
                vol.write_at(&data, off).unwrap();
                model.origin[off as usize..off as usize + len].copy_from_slice(&data);
                model.origin_written(off, len as u64);
            }
            Op::Discard { off, len } => {
                let Some((off, len)) = clamp(off, len as usize, size) else {
                    continue;
                };
                vol.discard(off, len as u64).unwrap();
                model.origin[off as usize..off as usize + len].fill(0);
                model.origin_written(off, len as u64);
            }
            Op::Snapshot {
                writable,
                persistent,
            } => {
                let id = vol
                    .create_snapshot(SnapshotOptions {
                        writable,
                        persistent,
                        ..Default::default()
                    })
                    .unwrap();
                assert!(
                    model.snaps.iter().all(|s| s.id < id),
                    "ids increase, never reused"
                );
                model.snaps.push(MSnap {
                    id,
                    data: model.origin.clone(),
                    writable,
                    persistent,
                    epoch: BTreeSet::new(),
                    overlay: BTreeSet::new(),
                });
            }
            Op::SnapWrite {
                pick,
                off,
                len,
                seed,
            } => {
                if model.snaps.is_empty() {
                    continue;
                }
                let n = model.snaps.len();
                let s = &mut model.snaps[pick % n];
                let Some((off, len)) = clamp(off, len, s.data.len() as u64) else {
                    continue;
                };
                let data = pattern(seed, len);
                let r = vol.snapshot(s.id).unwrap().write_at(&data, off);
                if s.writable {
                    r.unwrap();
                    s.data[off as usize..off as usize + len].copy_from_slice(&data);
                    let bs = u64::from(block_size);
                    s.overlay.extend(off / bs..(off + len as u64).div_ceil(bs));
                } else {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::BadState);
                }
            }
            Op::Delete { pick } => {
                if model.snaps.is_empty() {
                    continue;
                }
                let s = model.delete(pick % model.snaps.len());
                vol.delete_snapshot(s.id).unwrap();
                assert_eq!(
                    vol.delete_snapshot(s.id).unwrap_err().kind(),
                    ErrorKind::NotFound
                );
            }
            Op::Revert { pick } => {
                if model.snaps.is_empty() {
                    continue;
                }
                let i = pick % model.snaps.len();
                let (id, data) = (model.snaps[i].id, model.snaps[i].data.clone());
                // Revert rewrites, through the origin write path, exactly the blocks whose bytes
                // differ from the snapshot's (within its size): those count as written from now
                // on.
                let bs = u64::from(block_size);
                let rewritten: Vec<u64> = model
                    .changed(i, None)
                    .into_iter()
                    .filter(|&b| b < data.len() as u64 / bs)
                    .collect();
                let p = cow_engine::RevertProgress::new();
                vol.revert(id, &p).unwrap();
                assert_eq!(
                    (p.done(), p.total()),
                    (rewritten.len() as u64, rewritten.len() as u64),
                    "revert to {id}: copied / total against the model's differing blocks"
                );
                assert_eq!(p.percent(), 100);
                model.origin[..data.len()].copy_from_slice(&data);
                for b in rewritten {
                    model.origin_written(b * bs, bs);
                }
                // Nothing within the snapshot differs now: a second revert copies nothing.
                let again = cow_engine::RevertProgress::new();
                vol.revert(id, &again).unwrap();
                assert_eq!((again.done(), again.total(), again.percent()), (0, 0, 100));
            }
            Op::Grow { blocks } => {
                let new = size + blocks * u64::from(block_size);
                vol.grow(new).unwrap();
                model.origin.resize(new as usize, 0);
            }
            Op::Flush => vol.flush().unwrap(),
            Op::Checkpoint => vol.checkpoint().unwrap(),
            Op::Reopen => {
                if !file {
                    continue;
                }
                drop(vol);
                vol = Volume::open(&path).unwrap();
                // Reopen deletes the non-persistent snapshots, oldest first.
                while let Some(i) = model.snaps.iter().position(|s| !s.persistent) {
                    model.delete(i);
                }
            }
        }
        check(&vol, &model);
    }
    // Freed slots are reused: after deleting everything no diff space stays in use.
    for s in model.snaps.drain(..) {
        vol.delete_snapshot(s.id).unwrap();
    }
    assert_eq!(vol.stats().diff_blocks_in_use, 0);
}

/// 64 cases per property, or `PROPTEST_CASES` for longer runs.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn memory_volume_matches_model(ops in prop::collection::vec(op(16 * 4096), 1..40)) {
        run(ops, false, 4096);
    }

    #[test]
    fn memory_volume_with_larger_blocks_matches_model(ops in prop::collection::vec(op(16 * 8192), 1..30)) {
        run(ops, false, 8192);
    }

    #[test]
    fn file_volume_matches_model_across_reopens(ops in prop::collection::vec(op(16 * 4096), 1..30)) {
        run(ops, true, 4096);
    }
}
