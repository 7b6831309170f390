//! The coordinator (`vss_core::Coordinator`) on the software provider, memory volumes.
//!
//! - `freeze_window/{1,16,64}_writers`: from the first writer's freeze call to the last writer's
//!   thaw return in one backup, with that many in-process no-op writers on one volume (issue 12's
//!   target: under 5 ms at 64). Each iteration is a whole session (gather, start, add, prepare,
//!   do snapshot set, shutdown, which releases the shadow); only the window is counted.
//! - `do_snapshot_set/{1,16,64}_volumes`: the do-snapshot-set call alone with no writer (freeze
//!   and snapshot of every volume, thaw), against `raw_snapshots/64_volumes`, 64 bare
//!   `Volume::create_snapshot` calls in the same run: linear at worst is the target.
//!
//! Run: `cargo bench -p umbra-benches --bench vss_coordinator`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
use criterion::Criterion;
use parking_lot::Mutex;
use vss_core::{
    BackupSession, BackupType, Context, Coordinator, EventContext, Provider, SoftwareProvider,
    Writer, WriterFailure, WriterMetadata,
};

/// When the window opened (first freeze called) and closed (last thaw returned).
#[derive(Default)]
struct Window {
    first_freeze: Option<Instant>,
    last_thaw: Option<Instant>,
}

/// A writer that does nothing but note the window.
struct NoOp {
    name: String,
    window: Arc<Mutex<Window>>,
}

impl Writer for NoOp {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        Ok(WriterMetadata::for_every_lun(self.name.clone()))
    }
    fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> {
        let now = Instant::now();
        let mut w = self.window.lock();
        if w.first_freeze.is_none_or(|t| now < t) {
            w.first_freeze = Some(now);
        }
        Ok(())
    }
    fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> {
        let now = Instant::now();
        let mut w = self.window.lock();
        if w.last_thaw.is_none_or(|t| now > t) {
            w.last_thaw = Some(now);
        }
        Ok(())
    }
    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        Ok(())
    }
}

fn volumes(n: usize) -> Vec<(String, Volume)> {
    (0..n)
        .map(|i| {
            (
                format!("v{i}"),
                Volume::create_mem(1 << 20, VolumeConfig::default()).unwrap(),
            )
        })
        .collect()
}

fn coordinator(vols: &[(String, Volume)]) -> Coordinator {
    let p: Arc<dyn Provider> = Arc::new(SoftwareProvider::new(vols.iter().cloned()).unwrap());
    Coordinator::new([p])
}

/// A session of `c` prepared over every volume of `vols`.
fn prepared(c: &Coordinator, vols: &[(String, Volume)]) -> BackupSession {
    let mut b = c.backup(Context::BACKUP, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    b.start_set().unwrap();
    for (name, _) in vols {
        b.add_volume(name).unwrap();
    }
    b.prepare_for_backup().unwrap();
    b
}

fn freeze_window(c: &mut Criterion) {
    let mut g = c.benchmark_group("freeze_window");
    for n in [1usize, 16, 64] {
        let vols = volumes(1);
        let coord = coordinator(&vols);
        let window = Arc::new(Mutex::new(Window::default()));
        for i in 0..n {
            coord
                .add_writer(Arc::new(NoOp {
                    name: format!("w{i}"),
                    window: window.clone(),
                }))
                .unwrap();
        }
        g.bench_function(format!("{n}_writers"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    *window.lock() = Window::default();
                    let mut s = prepared(&coord, &vols);
                    s.do_snapshot_set().unwrap();
                    s.backup_shutdown().unwrap();
                    let w = window.lock();
                    total += w.last_thaw.unwrap() - w.first_freeze.unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

fn do_snapshot_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("do_snapshot_set");
    for n in [1usize, 16, 64] {
        let vols = volumes(n);
        let coord = coordinator(&vols);
        g.bench_function(format!("{n}_volumes"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut s = prepared(&coord, &vols);
                    let t = Instant::now();
                    s.do_snapshot_set().unwrap();
                    total += t.elapsed();
                    s.backup_shutdown().unwrap();
                }
                total
            })
        });
    }
    let vols = volumes(64);
    g.bench_function("raw_snapshots/64_volumes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let ids: Vec<_> = vols
                    .iter()
                    .map(|(_, v)| v.create_snapshot(SnapshotOptions::default()).unwrap())
                    .collect();
                total += t.elapsed();
                for ((_, v), id) in vols.iter().zip(ids) {
                    v.delete_snapshot(id).unwrap();
                }
            }
            total
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    freeze_window(&mut c);
    do_snapshot_set(&mut c);
    c.final_summary();
}
