//! Property tests: random operation sequences against a plain in-memory model of every snapshot's
//! bytes, for memory and file volumes.

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
}

#[derive(Default)]
struct Model {
    origin: Vec<u8>,
    snaps: Vec<MSnap>,
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
        // Changed blocks against the origin cover every block whose bytes differ.
        let changed = vol.changed_blocks(s.id, None).unwrap();
        let bs = vol.block_size() as usize;
        for (blk, chunk) in model.origin.chunks(bs).enumerate() {
            let theirs = s.data.get(blk * bs..(blk + 1) * bs);
            if theirs != Some(chunk) {
                assert!(
                    changed.binary_search(&(blk as u64)).is_ok(),
                    "block {blk} differs but is not reported changed"
                );
            }
        }
    }
    for w in model.snaps.windows(2) {
        let changed = vol.changed_blocks(w[0].id, Some(w[1].id)).unwrap();
        let bs = vol.block_size() as usize;
        for (blk, chunk) in w[1].data.chunks(bs).enumerate() {
            if w[0].data.get(blk * bs..(blk + 1) * bs) != Some(chunk) {
                assert!(changed.binary_search(&(blk as u64)).is_ok());
            }
        }
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
            }
            Op::Discard { off, len } => {
                let Some((off, len)) = clamp(off, len as usize, size) else {
                    continue;
                };
                vol.discard(off, len as u64).unwrap();
                model.origin[off as usize..off as usize + len].fill(0);
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
                } else {
                    assert_eq!(r.unwrap_err().kind(), ErrorKind::BadState);
                }
            }
            Op::Delete { pick } => {
                if model.snaps.is_empty() {
                    continue;
                }
                let s = model.snaps.remove(pick % model.snaps.len());
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
                let (id, data) = {
                    let s = &model.snaps[pick % model.snaps.len()];
                    (s.id, s.data.clone())
                };
                let p = cow_engine::RevertProgress::new();
                vol.revert(id, &p).unwrap();
                assert_eq!(p.done(), p.total());
                model.origin[..data.len()].copy_from_slice(&data);
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
                model.snaps.retain(|s| s.persistent);
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
