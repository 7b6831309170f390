//! File volume benchmarks: 4 KiB FIRST writes after a snapshot at random blocks of a 512 MiB file
//! volume (131,072 blocks, origin filled with data beforehand), from 2 threads, with a flush after
//! every 256th write (counted over both threads; whichever thread does the 256th write flushes).
//!
//! - `pwrite_baseline`: the same pattern with `pwrite` (`FileExt::write_at`) on a filled 512 MiB
//!   file in the same directory, `fdatasync` (`sync_data`) every 256 writes.
//! - `persistent`: `Volume::create` with the default (persistent, journaled) config and a default
//!   (persistent) snapshot: every first write makes its preservation durable (diff data, then the
//!   journal, group-committed) before the origin write; `Volume::flush` every 256 writes.
//! - `persistent_transient_snapshot`: the same volume kind with a snapshot taken with
//!   `persistent: false`: preservations are journaled but not synced one by one (context).
//! - `volatile`: `Durability::Volatile` (no journal, no diff syncs), default snapshot.
//!
//! Every sample starts with a fresh snapshot (the previous one is deleted, untimed) and writes
//! distinct blocks; a sample of more than 131,072 writes takes a new snapshot (untimed) every
//! 131,072. Files live in `$UMBRA_BENCH_DIR` or the target directory's `tmp` (not a tmpfs).
//!
//! Run: `cargo bench -p umbra-benches --bench file_volume`

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cow_engine::{Durability, SnapshotId, SnapshotOptions, Volume, VolumeConfig};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};

use common::{bench_dir, in_rounds, pattern, permutation, run_threads};

const SIZE: u64 = 512 << 20;
const BS: u64 = 4096;
const BLOCKS: u64 = SIZE / BS;
const THREADS: usize = 2;
const FLUSH_EVERY: u64 = 256;

/// Thread `t`'s blocks among the first `n` of `order`.
fn blocks(order: &[u64], t: usize, n: u64) -> impl Iterator<Item = u64> + '_ {
    order[..n as usize].iter().copied().skip(t).step_by(THREADS)
}

/// Does the first `n` writes of `order` from 2 threads, flushing after every 256th; returns the
/// wall time.
fn two_threads(
    order: &[u64],
    n: u64,
    write: impl Fn(u64) + Sync,
    flush: impl Fn() + Sync,
) -> Duration {
    let count = AtomicU64::new(0);
    run_threads(THREADS, |t| {
        for blk in blocks(order, t, n) {
            write(blk * BS);
            if count.fetch_add(1, Ordering::Relaxed) % FLUSH_EVERY == FLUSH_EVERY - 1 {
                flush();
            }
        }
    })
}

/// Fills `vol`'s origin, then benchmarks first writes after a snapshot taken with `opts`.
fn volume_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    vol: &Volume,
    opts: SnapshotOptions,
    order: &[u64],
) {
    let chunk = pattern(3).repeat(256);
    for off in (0..SIZE).step_by(chunk.len()) {
        vol.write_at(&chunk, off).unwrap();
    }
    vol.flush().unwrap();
    let buf = pattern(1);
    // Outside the closure: criterion calls it once per sample, and the snapshot carries over.
    let mut snap: Option<SnapshotId> = None;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            in_rounds(
                iters,
                BLOCKS,
                &mut snap,
                |s| {
                    if let Some(id) = s.take() {
                        vol.delete_snapshot(id).unwrap();
                    }
                    *s = Some(vol.create_snapshot(opts.clone()).unwrap());
                },
                |_, n| {
                    two_threads(
                        order,
                        n,
                        |off| vol.write_at(&buf, off).unwrap(),
                        || vol.flush().unwrap(),
                    )
                },
            )
        })
    });
}

fn first_writes(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let order = permutation(BLOCKS, 6);
    let buf = pattern(1);

    let mut g = c.benchmark_group("file_volume_first_write_4k_2t");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);

    let path = tmp.path().join("plain.img");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let chunk = pattern(3).repeat(256);
    for off in (0..SIZE).step_by(chunk.len()) {
        file.write_all_at(&chunk, off).unwrap();
    }
    file.sync_all().unwrap();
    g.bench_function("pwrite_baseline", |b| {
        b.iter_custom(|iters| {
            in_rounds(
                iters,
                BLOCKS,
                &mut (),
                |_| {},
                |_, n| {
                    two_threads(
                        &order,
                        n,
                        |off| file.write_all_at(&buf, off).unwrap(),
                        || file.sync_data().unwrap(),
                    )
                },
            )
        })
    });
    drop(file);
    std::fs::remove_file(&path).unwrap();

    let persistent = VolumeConfig::default();
    let volatile = VolumeConfig {
        durability: Durability::Volatile,
        ..Default::default()
    };
    let transient = SnapshotOptions {
        persistent: false,
        ..Default::default()
    };
    let cases = [
        ("persistent", &persistent, SnapshotOptions::default()),
        ("persistent_transient_snapshot", &persistent, transient),
        ("volatile", &volatile, SnapshotOptions::default()),
    ];
    for (name, config, opts) in cases {
        let dir = tmp.path().join(name);
        let vol = Volume::create(&dir, SIZE, config.clone()).unwrap();
        volume_case(&mut g, name, &vol, opts, &order);
        vol.destroy(&dir, true).unwrap();
    }
    g.finish();
}

fn main() {
    common::run_benches(&[first_writes]);
}
