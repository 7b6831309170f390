//! Memory volume benchmarks: 4 KiB writes at random blocks of a 256 MiB volume (65,536 blocks),
//! one thread, against two baselines measured in the same run:
//!
//! - `memcpy_vec`: `copy_from_slice` of the 4 KiB buffer into a 256 MiB `Vec<u8>` at a random block.
//! - `memdevice_write_at`: `MemDevice::write_at` of 4 KiB at a random block of a 256 MiB device
//!   (what a memory volume's origin is), already filled so no chunk is allocated while timing.
//!
//! And the volume:
//!
//! - `volume_no_snapshot`: `Volume::write_at` on a filled volume without snapshots (context).
//! - `volume_overwrite_preserved`: the same after a snapshot whose epoch has already preserved every
//!   block: the block map answers "preserved" and the write goes straight to the origin.
//! - `volume_cow_first_write`: the first write to each block after a snapshot: the old block is
//!   read, copied into a diff-area slot, published in the map, then the origin is written. Every
//!   sample starts with a fresh snapshot (the previous one is deleted, untimed) and writes distinct
//!   blocks in random order; a sample of more than 65,536 writes takes a new snapshot (untimed)
//!   every 65,536. The delete of the only snapshot frees every diff slot and gives the space back
//!   (the diff device is trimmed to nothing), so each sample's copies grow the diff device again
//!   (the steady state of a volume whose snapshots are retired one by one).
//!
//! Run: `cargo bench -p umbra-benches --bench memory_volume`

mod common;

use std::hint::black_box;
use std::time::Instant;

use cow_engine::{BlockDevice, MemDevice, SnapshotId, SnapshotOptions, Volume, VolumeConfig};
use criterion::{Criterion, Throughput};

use common::{in_rounds, pattern, permutation, random_blocks};

const SIZE: u64 = 256 << 20;
const BS: u64 = 4096;
const BLOCKS: u64 = SIZE / BS;
const OFFSETS: usize = 1 << 16;

/// Calls `write(chunk, offset)` for every MiB of the volume, so every byte is written once.
fn fill(write: impl Fn(&[u8], u64)) {
    let chunk = pattern(3).repeat(256);
    for off in (0..SIZE).step_by(chunk.len()) {
        write(&chunk, off);
    }
}

fn writes(c: &mut Criterion) {
    let buf = pattern(1);
    let offsets: Vec<u64> = random_blocks(OFFSETS, BLOCKS, 4)
        .into_iter()
        .map(|b| b * BS)
        .collect();
    let next = |i: &mut usize| {
        let off = offsets[*i & (OFFSETS - 1)];
        *i += 1;
        off
    };

    let mut g = c.benchmark_group("memory_volume_write_4k");
    g.throughput(Throughput::Elements(1));

    let mut raw = vec![1u8; SIZE as usize];
    g.bench_function("memcpy_vec", |b| {
        let mut i = 0;
        b.iter(|| {
            let off = next(&mut i) as usize;
            raw[off..off + BS as usize].copy_from_slice(&buf);
            black_box(&raw);
        })
    });
    drop(raw);

    let dev = MemDevice::new(SIZE);
    fill(|d, off| dev.write_at(d, off).unwrap());
    g.bench_function("memdevice_write_at", |b| {
        let mut i = 0;
        b.iter(|| dev.write_at(&buf, next(&mut i)).unwrap())
    });
    drop(dev);

    let vol = Volume::create_mem(SIZE, VolumeConfig::default()).unwrap();
    fill(|d, off| vol.write_at(d, off).unwrap());
    g.bench_function("volume_no_snapshot", |b| {
        let mut i = 0;
        b.iter(|| vol.write_at(&buf, next(&mut i)).unwrap())
    });

    vol.create_snapshot(SnapshotOptions::default()).unwrap();
    fill(|d, off| vol.write_at(d, off).unwrap());
    assert_eq!(vol.stats().diff_blocks_in_use, BLOCKS);
    g.bench_function("volume_overwrite_preserved", |b| {
        let mut i = 0;
        b.iter(|| vol.write_at(&buf, next(&mut i)).unwrap())
    });
    drop(vol);

    let vol = Volume::create_mem(SIZE, VolumeConfig::default()).unwrap();
    fill(|d, off| vol.write_at(d, off).unwrap());
    let order = permutation(BLOCKS, 5);
    // Outside the closure: criterion calls it once per sample, and the snapshot carries over.
    let mut snap: Option<SnapshotId> = None;
    g.bench_function("volume_cow_first_write", |b| {
        b.iter_custom(|iters| {
            in_rounds(
                iters,
                BLOCKS,
                &mut snap,
                |s| {
                    if let Some(id) = s.take() {
                        vol.delete_snapshot(id).unwrap();
                    }
                    *s = Some(vol.create_snapshot(SnapshotOptions::default()).unwrap());
                },
                |_, n| {
                    let start = Instant::now();
                    for &blk in &order[..n as usize] {
                        vol.write_at(&buf, blk * BS).unwrap();
                    }
                    start.elapsed()
                },
            )
        })
    });
    g.finish();
}

fn main() {
    common::run_benches(&[writes]);
}
