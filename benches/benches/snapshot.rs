//! Snapshot benchmarks.
//!
//! - `snapshot_create/{create,create_delete_pair}/{1GiB,1TiB}`: taking a snapshot of an empty
//!   memory volume of 1 GiB and of 1 TiB (sparse). `create` times only `create_snapshot`; the
//!   snapshots are deleted (untimed) after every 64, so the chain never holds more than 64.
//!   `create_delete_pair` times a create followed by the delete of the same snapshot.
//! - `snapshot_create_file/create_delete_pair/{1GiB,1TiB}`: the same pair on a persistent file
//!   volume (sparse origin), where both are durable when they return (context, no target).
//! - `snapshot_read/{origin,oldest_of_65,newest_of_65}`: 4 KiB reads of random blocks of a 64 MiB
//!   memory volume with 65 snapshots, of blocks that no snapshot preserved. Between snapshots the
//!   volume writes one other block in every 512-block leaf, so every map's leaf pages exist and a
//!   read through the oldest snapshot consults all 65 maps before it falls through to the origin.
//!   The baseline is the origin read (`Volume::read_at`) of the same blocks.
//!
//! Run: `cargo bench -p umbra-benches --bench snapshot`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cow_engine::{BlockDevice, SnapshotOptions, Volume, VolumeConfig};
use criterion::{BenchmarkId, Criterion, Throughput};

use common::{bench_dir, pattern, random_blocks};

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
const SIZES: [(&str, u64); 2] = [("1GiB", GIB), ("1TiB", TIB)];

/// Times `iters` snapshot creations, deleting them (untimed) after every 64.
fn create_only(vol: &Volume, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut ids = Vec::with_capacity(64);
    let mut left = iters;
    while left > 0 {
        let n = left.min(64);
        let start = Instant::now();
        for _ in 0..n {
            ids.push(vol.create_snapshot(SnapshotOptions::default()).unwrap());
        }
        total += start.elapsed();
        for id in ids.drain(..).rev() {
            vol.delete_snapshot(id).unwrap();
        }
        left -= n;
    }
    total
}

fn create_delete(vol: &Volume) {
    let id = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    vol.delete_snapshot(id).unwrap();
}

fn creation(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot_create");
    for (name, size) in SIZES {
        let vol = Volume::create_mem(size, VolumeConfig::default()).unwrap();
        g.bench_function(BenchmarkId::new("create", name), |b| {
            b.iter_custom(|iters| create_only(&vol, iters))
        });
        g.bench_function(BenchmarkId::new("create_delete_pair", name), |b| {
            b.iter(|| create_delete(&vol))
        });
    }
    g.finish();

    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let mut g = c.benchmark_group("snapshot_create_file");
    g.sample_size(20);
    for (name, size) in SIZES {
        let vol = Volume::create(tmp.path().join(name), size, VolumeConfig::default()).unwrap();
        g.bench_function(BenchmarkId::new("create_delete_pair", name), |b| {
            b.iter(|| create_delete(&vol))
        });
    }
    g.finish();
}

fn chain_read(c: &mut Criterion) {
    const SIZE: u64 = 64 << 20;
    const BS: u64 = 4096;
    const LEAF: u64 = 512;
    let blocks = SIZE / BS;
    let vol = Volume::create_mem(SIZE, VolumeConfig::default()).unwrap();
    let fill: Vec<u8> = pattern(7).repeat(256);
    for off in (0..SIZE).step_by(fill.len()) {
        vol.write_at(&fill, off).unwrap();
    }
    let other = pattern(9);
    let mut ids = Vec::new();
    for _ in 0..65 {
        ids.push(vol.create_snapshot(SnapshotOptions::default()).unwrap());
        for leaf in 0..blocks / LEAF {
            vol.write_at(&other, (leaf * LEAF + 1) * BS).unwrap();
        }
    }
    let oldest = vol.snapshot(ids[0]).unwrap();
    let newest = vol.snapshot(*ids.last().unwrap()).unwrap();
    // Even blocks: never written after the first snapshot.
    let offsets: Vec<u64> = random_blocks(1 << 16, blocks / 2, 3)
        .into_iter()
        .map(|b| b * 2 * BS)
        .collect();
    let mut buf = vec![0u8; BS as usize];
    oldest.read_at(&mut buf, offsets[0]).unwrap();
    assert_eq!(
        buf,
        fill[..BS as usize],
        "oldest snapshot reads the origin's block"
    );

    let mut g = c.benchmark_group("snapshot_read");
    g.throughput(Throughput::Elements(1));
    let mut run = |name: &str, dev: &dyn BlockDevice| {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let off = offsets[i & (offsets.len() - 1)];
                i += 1;
                dev.read_at(&mut buf, off).unwrap();
                black_box(&buf);
            })
        });
    };
    run("origin", &VolumeDev(&vol));
    run("oldest_of_65", &oldest);
    run("newest_of_65", &newest);
    g.finish();
}

/// The volume's origin, as a [`BlockDevice`] for the read loop.
struct VolumeDev<'a>(&'a Volume);

impl BlockDevice for VolumeDev<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> cow_engine::Result<()> {
        Volume::read_at(self.0, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> cow_engine::Result<()> {
        Volume::write_at(self.0, buf, offset)
    }
    fn flush(&self) -> cow_engine::Result<()> {
        Volume::flush(self.0)
    }
    fn len(&self) -> u64 {
        Volume::len(self.0)
    }
}

fn main() {
    common::run_benches(&[creation, chain_read]);
}
