//! LUN I/O through the array, as a target daemon does it.
//!
//! - `read_4k/{bare_volume,handle,by_name}/{1,2}t`: random 4 KiB reads of a 64 MiB in-memory LUN,
//!   on a bare cow-engine volume of the same configuration and contents (the baseline), through a `LunHandle` (one per
//!   thread: the per-I/O access check and fence admission), and by LUN name and initiator
//!   (`Array::read_at`: today's by-name call). The handle's cost is `handle - bare_volume`.
//! - `pool_4k/{bare_volume,handle,by_name}_{read,write}`: the same on a LUN of a pool directory
//!   and a bare file volume beside it (page cache; writes not flushed), one thread.
//! - `mask_change/{idle,16_writers}`: `Array::set_mask` on an in-memory LUN that changes a
//!   read-only host's access (the writers keep theirs), with no I/O running, and with 16 threads
//!   writing 4 KiB through handles in a loop: the change waits for the writes admitted under the
//!   old access.
//!
//! Run: `cargo bench -p umbra-benches --bench lun_io`

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{bench_dir, pattern, random_blocks, run_threads, share};
use cow_engine::{Volume, VolumeConfig};
use criterion::Criterion;
use vds_core::{Array, InitiatorId, LunHandle, MaskSpec};

const BS: u64 = 4096;
const SIZE: u64 = 64 << 20;
const BLOCKS: u64 = SIZE / BS;
const W: &str = "iqn.2024-01.org.example:writer";
const R: &str = "iqn.2024-01.org.example:reader";

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

/// LUN `lun` of `a`, masked to `W` (read-write) and `R` (read-only), filled; with `W`'s number.
fn lun(a: &Array, lun: &str) -> u32 {
    a.create_lun(lun, SIZE, &MaskSpec::parse(&format!("{W};{R}=ro")).unwrap())
        .unwrap();
    let number = a.access(lun, &id(W)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W), number).unwrap();
    let data = pattern(7);
    for b in 0..BLOCKS {
        h.write_at(&data, b * BS).unwrap();
    }
    number
}

/// A bare volume as the array makes a LUN's (`dir`: a file volume there, else in memory),
/// filled as [`lun`] fills a LUN: the baseline.
fn bare(dir: Option<&std::path::Path>) -> Volume {
    let config = VolumeConfig::with_block_size(BS as u32);
    let vol = match dir {
        Some(d) => Volume::create(d, SIZE, config).unwrap(),
        None => Volume::create_mem(SIZE, config).unwrap(),
    };
    let data = pattern(7);
    for b in 0..BLOCKS {
        vol.write_at(&data, b * BS).unwrap();
    }
    vol
}

fn reads(c: &mut Criterion) {
    let a = Array::in_memory();
    let number = lun(&a, "mem");
    let vol = bare(None);
    let handles: Vec<LunHandle> = (0..2)
        .map(|_| a.open_lun(&id(W), number).unwrap())
        .collect();
    let order = random_blocks(1 << 16, BLOCKS, 3);
    let w = id(W);
    let mut g = c.benchmark_group("lun_io/read_4k");
    // Thread `t` reads `n` random blocks with `read(t, buf, offset)`.
    let each = |threads: usize, iters: u64, read: &(dyn Fn(usize, &mut [u8], u64) + Sync)| {
        run_threads(threads, |t| {
            let mut buf = [0u8; BS as usize];
            for i in 0..share(iters, threads, t) {
                let blk = order[(i as usize + t * 4099) % order.len()];
                read(t, &mut buf, blk * BS);
                black_box(&buf);
            }
        })
    };
    for threads in [1usize, 2] {
        g.bench_function(format!("bare_volume/{threads}t"), |b| {
            b.iter_custom(|iters| each(threads, iters, &|_, buf, at| vol.read_at(buf, at).unwrap()))
        });
        g.bench_function(format!("handle/{threads}t"), |b| {
            b.iter_custom(|iters| {
                each(threads, iters, &|t, buf, at| {
                    handles[t].read_at(buf, at).unwrap()
                })
            })
        });
        g.bench_function(format!("by_name/{threads}t"), |b| {
            b.iter_custom(|iters| {
                each(threads, iters, &|_, buf, at| {
                    a.read_at("mem", &w, buf, at).unwrap()
                })
            })
        });
    }
    g.finish();
}

fn pool(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let a = Array::open(dir.path().join("pool")).unwrap();
    let number = lun(&a, "disk");
    let vol = bare(Some(&dir.path().join("bare")));
    let h = a.open_lun(&id(W), number).unwrap();
    let order = random_blocks(1 << 16, BLOCKS, 4);
    let w = id(W);
    let data = pattern(9);
    let mut g = c.benchmark_group("lun_io/pool_4k");
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 1) % order.len();
        order[i] * BS
    };
    let mut buf = [0u8; BS as usize];
    g.bench_function("bare_volume_read", |b| {
        b.iter(|| vol.read_at(&mut buf, next()).unwrap())
    });
    g.bench_function("handle_read", |b| {
        b.iter(|| h.read_at(&mut buf, next()).unwrap())
    });
    g.bench_function("by_name_read", |b| {
        b.iter(|| a.read_at("disk", &w, &mut buf, next()).unwrap())
    });
    g.bench_function("bare_volume_write", |b| {
        b.iter(|| vol.write_at(&data, next()).unwrap())
    });
    g.bench_function("handle_write", |b| {
        b.iter(|| h.write_at(&data, next()).unwrap())
    });
    g.bench_function("by_name_write", |b| {
        b.iter(|| a.write_at("disk", &w, &data, next()).unwrap())
    });
    g.finish();
}

fn mask_change(c: &mut Criterion) {
    let a = Array::in_memory();
    let number = lun(&a, "busy");
    let specs = [
        MaskSpec::parse(&format!("{W};{R}=ro")).unwrap(),
        MaskSpec::parse(&format!("{W};{R}")).unwrap(),
    ];
    let mut flip = 0;
    let mut g = c.benchmark_group("lun_io/mask_change");
    g.bench_function("idle", |b| {
        b.iter(|| {
            flip ^= 1;
            a.set_mask("busy", &specs[flip]).unwrap();
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16u64)
        .map(|t| {
            let h = a.open_lun(&id(W), number).unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let data = pattern(t as u8);
                let order = random_blocks(1 << 12, BLOCKS, 100 + t);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    h.write_at(&data, order[i % order.len()] * BS).unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    g.bench_function("16_writers", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                flip ^= 1;
                a.set_mask("busy", &specs[flip]).unwrap();
            }
            start.elapsed()
        })
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    g.finish();
}

fn main() {
    common::run_benches(&[reads, pool, mask_change]);
}
