//! Revert and changed-block benchmarks on a 64 MiB memory volume (16,384 blocks of 4 KiB) with one
//! snapshot, taken when the volume was all zeros, against a baseline measured in the same run:
//!
//! - `revert/baseline_memdevice_copy`: 16,384 block reads from one `MemDevice` and writes to
//!   another (the bare copy a revert of every block cannot beat).
//! - `revert/all_differ`: every block was overwritten since the snapshot; the revert compares and
//!   copies back all 16,384 (the overwrite before each revert is untimed).
//! - `revert/none_differ`: every block was overwritten and reverted already (the maps still name
//!   all 16,384); the revert reads and compares them and copies none. Before reverts compared
//!   contents it copied all 16,384 again.
//! - `changed_blocks/all_written_none_differ`: `Volume::changed_blocks(snapshot, None)` in the same
//!   state: 16,384 candidates read from both images, none listed.
//!
//! Run: `cargo bench -p umbra-benches --bench revert`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cow_engine::{BlockDevice, MemDevice, Progress, SnapshotOptions, Volume, VolumeConfig};
use criterion::{Criterion, Throughput};

const SIZE: u64 = 64 << 20;
const BLOCKS: u64 = SIZE / 4096;

fn overwrite(vol: &Volume) {
    let chunk = common::pattern(7).repeat(256);
    for off in (0..SIZE).step_by(chunk.len()) {
        vol.write_at(&chunk, off).unwrap();
    }
}

fn revert(c: &mut Criterion) {
    let vol = Volume::create_mem(SIZE, VolumeConfig::default()).unwrap();
    let snap = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    let mut g = c.benchmark_group("revert");
    g.throughput(Throughput::Elements(BLOCKS));
    g.sample_size(10);
    let (src, dst) = (MemDevice::new(SIZE), MemDevice::new(SIZE));
    src.write_at(&common::pattern(7).repeat(BLOCKS as usize), 0)
        .unwrap();
    g.bench_function("baseline_memdevice_copy", |b| {
        let mut buf = vec![0u8; 4096];
        b.iter(|| {
            for block in 0..BLOCKS {
                src.read_at(&mut buf, block * 4096).unwrap();
                dst.write_at(&buf, block * 4096).unwrap();
            }
        })
    });
    g.bench_function("all_differ", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                overwrite(&vol);
                let p = Progress::new();
                let t = Instant::now();
                vol.revert(snap, &p).unwrap();
                total += t.elapsed();
                assert_eq!(p.total(), BLOCKS);
            }
            total
        })
    });
    g.bench_function("none_differ", |b| {
        b.iter(|| {
            let p = Progress::new();
            vol.revert(snap, &p).unwrap();
            assert_eq!(p.total(), 0);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("changed_blocks");
    g.throughput(Throughput::Elements(BLOCKS));
    g.sample_size(10);
    g.bench_function("all_written_none_differ", |b| {
        b.iter(|| black_box(vol.changed_blocks(snap, None).unwrap()))
    });
    g.finish();
}

fn main() {
    common::run_benches(&[revert]);
}
