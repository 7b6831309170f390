//! A full diff area under delete-oldest (issue 11 §1): once the limit is reached, every first
//! write to a block finds no free slot, makes room (the gate taken exclusively, the plan of which
//! snapshots to delete, the oldest deleted and announced) and retries. Against the baseline
//! measured in the same run, the same first write into an area with room.
//!
//! Both cases: a memory volume of 64 MiB (16,384 blocks of 4 KiB, filled before timing so no
//! origin chunk is allocated while timing) with a limit of 64 diff slots and a chain of 64
//! snapshots, each holding one preserved block. Each timed operation is one 4 KiB write to a block
//! not yet written in the newest snapshot's epoch, after (untimed) a new snapshot:
//!
//! - `cow_write_with_room`: the oldest snapshot was deleted too (untimed), so a slot is free and
//!   the write copies the old block into it (the chain stays at 64 snapshots).
//! - `delete_oldest_then_cow_write`: the same with the deletion of the oldest snapshot timed
//!   too (a second baseline: what the full-area write must do at least).
//! - `cow_write_full_area`: the area is full; the write deletes the oldest snapshot (its slot
//!   is the one freed) and then copies, so the chain and the slots are as in the baselines.
//!
//! Criterion's medians are the figures to compare (the first-write cases have a long tail of
//! allocator and page-fault outliers, which moves their means).
//!
//! Run: `cargo bench -p umbra-benches --bench full_area`

mod common;

use std::time::{Duration, Instant};

use cow_engine::events::Delivery;
use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
use criterion::{Criterion, Throughput};

use common::{pattern, permutation};

const SIZE: u64 = 64 << 20;
const BS: u64 = 4096;
const BLOCKS: u64 = SIZE / BS;
const LIMIT: u64 = 64;

/// A filled volume with a limit of `LIMIT` slots, all used by `LIMIT` snapshots of one preserved
/// block each; returns it with the index of the next block of `order` to write.
fn full_volume(order: &[u64], buf: &[u8]) -> (Volume, usize) {
    let config = VolumeConfig {
        diff_limit: Some(LIMIT * BS),
        ..Default::default()
    };
    let vol = Volume::create_mem(SIZE, config).unwrap();
    let chunk = buf.repeat(256);
    for off in (0..SIZE).step_by(chunk.len()) {
        vol.write_at(&chunk, off).unwrap();
    }
    for &blk in &order[..LIMIT as usize] {
        vol.create_snapshot(SnapshotOptions::default()).unwrap();
        vol.write_at(buf, blk * BS).unwrap();
    }
    assert_eq!(vol.stats().diff_blocks_in_use, LIMIT);
    (vol, LIMIT as usize)
}

/// What precedes each timed write besides a new snapshot (untimed).
#[derive(Clone, Copy, PartialEq)]
enum Room {
    /// The oldest snapshot is deleted, untimed.
    Made,
    /// The oldest snapshot is deleted, timed.
    MadeTimed,
    /// Nothing: the write makes room itself.
    Full,
}

/// Times `iters` first writes, each after a new snapshot.
fn run(
    vol: &Volume,
    order: &[u64],
    next: &mut usize,
    buf: &[u8],
    iters: u64,
    room: Room,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        vol.create_snapshot(SnapshotOptions::default()).unwrap();
        let oldest = vol.snapshots()[0].id;
        if room == Room::Made {
            vol.delete_snapshot(oldest).unwrap();
        }
        let blk = order[*next % order.len()];
        *next += 1;
        let start = Instant::now();
        if room == Room::MadeTimed {
            vol.delete_snapshot(oldest).unwrap();
        }
        vol.write_at(buf, blk * BS).unwrap();
        total += start.elapsed();
    }
    total
}

fn writes(c: &mut Criterion) {
    let buf = pattern(1);
    let order = permutation(BLOCKS, 7);
    let mut g = c.benchmark_group("full_area_write_4k");
    g.throughput(Throughput::Elements(1));

    let (vol, mut next) = full_volume(&order, &buf);
    g.bench_function("cow_write_with_room", |b| {
        b.iter_custom(|iters| run(&vol, &order, &mut next, &buf, iters, Room::Made))
    });
    g.bench_function("delete_oldest_then_cow_write", |b| {
        b.iter_custom(|iters| run(&vol, &order, &mut next, &buf, iters, Room::MadeTimed))
    });
    assert_eq!(vol.snapshots().len() as u64, LIMIT);
    drop(vol);

    let (vol, mut next) = full_volume(&order, &buf);
    let events = vol.subscribe();
    g.bench_function("cow_write_full_area", |b| {
        b.iter_custom(|iters| {
            let t = run(&vol, &order, &mut next, &buf, iters, Room::Full);
            // Every write made room: one deletion announced each.
            let deleted: u64 = std::iter::from_fn(|| events.try_recv())
                .map(|d| match d {
                    Delivery::Event(_) => 1,
                    Delivery::Lagged(n) => n,
                })
                .sum();
            assert!(deleted == iters, "{deleted} deletions for {iters} writes");
            t
        })
    });
    assert_eq!(vol.snapshots().len() as u64, LIMIT);
    assert_eq!(vol.stats().diff_blocks_in_use, LIMIT);
    g.finish();
}

fn main() {
    common::run_benches(&[writes]);
}
