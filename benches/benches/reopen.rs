//! Reopen benchmark: `Volume::open` of a persistent file volume holding 1,000,000 preserved blocks.
//!
//! Setup (timed and printed, not part of the figures): a volume of 1,000,000 blocks of 4 KiB
//! (a sparse 4 GB origin), one persistent snapshot, then every block is overwritten once through
//! the copy-on-write path, 256 blocks (1 MiB) per call. The calls are `Volume::discard`, which
//! preserves exactly as a write does but punches the origin range instead of filling it, so the
//! disk holds ~4 GB (the diff area) instead of ~8 GB. Needs ~4.2 GB free; skipped (with a message)
//! if the scratch file system has less than 10 GB free. The directory is deleted at the end.
//!
//! - `reopen_1m_preserved/journal_{warm,cold}`: the 1,000,000 preservations are journal records
//!   appended after the initial checkpoint (the state right after the writes).
//! - `reopen_1m_preserved/checkpoint_{warm,cold}`: after `Volume::checkpoint`, the same state as
//!   checkpoint records.
//!
//! `warm`: the journal files are in the page cache; `cold`: their cached pages are dropped
//! (`posix_fadvise(DONTNEED)`, untimed) before every open. Each iteration is one open; closing the
//! volume (which flushes) is not timed.
//!
//! Run: `cargo bench -p umbra-benches --bench reopen`

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
use criterion::{Criterion, SamplingMode};

use common::{bench_dir, drop_file_cache, free_bytes};

const BLOCKS: u64 = 1_000_000;
const BS: u64 = 4096;
const SIZE: u64 = BLOCKS * BS;
const STEP: u64 = 1 << 20;

/// Creates the volume in `dir` and preserves every block once.
fn build(dir: &Path) {
    let start = Instant::now();
    let vol = Volume::create(dir, SIZE, VolumeConfig::default()).unwrap();
    let snap = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    for off in (0..SIZE).step_by(STEP as usize) {
        vol.discard(off, STEP.min(SIZE - off)).unwrap();
    }
    vol.flush().unwrap();
    assert_eq!(vol.snapshot_info(snap).unwrap().diff_blocks, BLOCKS);
    eprintln!(
        "reopen setup: {BLOCKS} preservations in {:.1} s ({} journal bytes)",
        start.elapsed().as_secs_f64(),
        vol.stats().journal_bytes
    );
}

/// One timed open (after dropping the journals' cached pages if `cold`); the close is untimed.
fn open_once(dir: &Path, cold: bool) -> Duration {
    if cold {
        for j in ["journal.0", "journal.1"] {
            drop_file_cache(&dir.join(j));
        }
    }
    let start = Instant::now();
    let vol = Volume::open(dir).unwrap();
    let took = start.elapsed();
    drop(vol);
    took
}

fn reopen(c: &mut Criterion) {
    let base = bench_dir();
    let free = free_bytes(&base);
    if free < 10_000_000_000 {
        eprintln!(
            "reopen: skipped, {} has only {} MB free (needs 10 GB)",
            base.display(),
            free / 1_000_000
        );
        return;
    }
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let dir = tmp.path().join("vol");
    build(&dir);
    {
        let vol = Volume::open(&dir).unwrap();
        assert_eq!(vol.stats().diff_blocks_in_use, BLOCKS);
    }

    let mut g = c.benchmark_group("reopen_1m_preserved");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(5));
    for form in ["journal", "checkpoint"] {
        if form == "checkpoint" {
            let vol = Volume::open(&dir).unwrap();
            vol.checkpoint().unwrap();
            eprintln!(
                "reopen: after checkpoint, {} journal bytes",
                vol.stats().journal_bytes
            );
        }
        for (temp, cold) in [("warm", false), ("cold", true)] {
            g.bench_function(format!("{form}_{temp}"), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| open_once(&dir, cold)).sum())
            });
        }
    }
    g.finish();
    drop(tmp);
}

fn main() {
    common::run_benches(&[reopen]);
}
