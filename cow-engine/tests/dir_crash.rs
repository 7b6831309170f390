//! Crash consistency of a volume's directory, files and names together: a volume created in a
//! directory of the test-support crate's simulated tree (`crash_sim::SimDir`: files as simulated
//! devices, names durable only after their directory's sync, atomic renames), written, flushed
//! and snapshotted; then, at every sync point of the log (each file flush and directory sync, just
//! before and just after) the tree is rebuilt as a power loss could have left it (the pending
//! writes and name changes all kept, all lost, and random subsets) and the volume reopened:
//!
//! - once `Volume::create_in` returned, the volume opens (before, a crash may leave no volume, but
//!   never a panic);
//! - every block holds the value of the last flush that returned before the crash or of a later
//!   write to it;
//! - every snapshot whose creation returned is there and reads its point-in-time image.
//!
//! The test fails if it checked fewer crash states than a floor.

use std::path::Path;
use std::sync::Arc;

use cow_engine::fs::Fs;
use cow_engine::{SnapshotOptions, Volume, VolumeConfig};
use umbra_test_support::crash_sim::{fates, sync_cuts, DirReplayer, Log, Rng, SimDir};

const BS: u64 = 4096;
const BLOCKS: u64 = 16;

/// What the workload promised: at each log position, the values each block may hold after a
/// crash there, and the snapshots (with their images) that must be there.
#[derive(Clone, Default)]
struct Promise {
    created: bool,
    /// Per block, the values it may hold (0: never written).
    allowed: Vec<Vec<u8>>,
    /// Snapshot id and the value of each block in it.
    snapshots: Vec<(u64, Vec<u8>)>,
}

fn block(v: u8) -> Vec<u8> {
    vec![v; BS as usize]
}

#[test]
fn a_volume_directory_survives_a_crash_at_every_sync_point() {
    let log = Log::new();
    let sim = SimDir::new(&log);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    fs.create_dir(Path::new("/vols")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();

    // (log position, what holds from there on)
    let mut promises: Vec<(usize, Promise)> = vec![(0, Promise::default())];
    let mut p = Promise {
        created: false,
        allowed: vec![vec![0]; BLOCKS as usize],
        snapshots: Vec::new(),
    };
    let dir = Path::new("/vols/v");
    let config = VolumeConfig::default();
    let vol = Volume::create_in(&fs, dir, BS * BLOCKS, config).unwrap();
    p.created = true;
    promises.push((log.len(), p.clone()));
    let mut rng = Rng::new(7);
    let mut current = vec![0u8; BLOCKS as usize];
    for round in 0..6u8 {
        for _ in 0..3 {
            let b = rng.below(BLOCKS) as usize;
            let v = round * 16 + rng.below(15) as u8 + 1;
            vol.write_at(&block(v), b as u64 * BS).unwrap();
            current[b] = v;
            // A write not yet flushed may or may not be there.
            p.allowed[b].push(v);
            promises.push((log.len(), p.clone()));
        }
        vol.flush().unwrap();
        p.allowed = current.iter().map(|&v| vec![v]).collect();
        promises.push((log.len(), p.clone()));
        if round % 2 == 1 {
            let id = vol
                .create_snapshot(SnapshotOptions {
                    persistent: true,
                    ..SnapshotOptions::default()
                })
                .unwrap();
            p.snapshots.push((id.into(), current.clone()));
            promises.push((log.len(), p.clone()));
        }
    }
    drop(vol);
    sim.kill();

    let events = log.events();
    let promise_at = |cut: usize| {
        promises
            .iter()
            .rev()
            .find(|(pos, _)| *pos <= cut)
            .map(|(_, p)| p.clone())
            .unwrap()
    };
    let cuts = sync_cuts(&events);

    let mut r = DirReplayer::new(&events);
    let mut rng = Rng::new(11);
    let (mut states, mut opened, mut snapshots_read) = (0u64, 0u64, 0u64);
    for &cut in &cuts {
        r.advance(cut);
        let promise = promise_at(cut);
        for choice in 0..5 {
            let crashed = r.build(fates(choice, &mut rng), &Log::discarding());
            states += 1;
            let cfs: Arc<dyn Fs> = Arc::new(crashed);
            let vol = match Volume::open_in(&cfs, dir) {
                Ok(v) => v,
                Err(e) => {
                    assert!(
                        !promise.created,
                        "crash at {cut} (choice {choice}): the created volume does not open: {e}"
                    );
                    continue;
                }
            };
            opened += 1;
            let mut buf = vec![0u8; BS as usize];
            for b in 0..BLOCKS as usize {
                vol.read_at(&mut buf, b as u64 * BS).unwrap();
                let allowed = if promise.created {
                    &promise.allowed[b]
                } else {
                    &vec![0]
                };
                assert!(
                    allowed.iter().any(|&v| buf == block(v)),
                    "crash at {cut} (choice {choice}): block {b} reads {} (allowed {allowed:?})",
                    buf[0]
                );
            }
            let ids: Vec<u64> = vol.snapshots().into_iter().map(|s| s.id.into()).collect();
            for (id, image) in &promise.snapshots {
                assert!(ids.contains(id), "crash at {cut}: snapshot {id} is missing");
                let snap = vol.snapshot((*id).into()).unwrap();
                for (b, &v) in image.iter().enumerate() {
                    snap.read_at(&mut buf, b as u64 * BS).unwrap();
                    assert_eq!(buf, block(v), "crash at {cut}: snapshot {id} block {b}");
                }
                snapshots_read += 1;
            }
        }
    }
    assert!(states >= 250, "only {states} crash states checked");
    assert!(opened >= 200, "only {opened} crash states opened");
    assert!(
        snapshots_read >= 100,
        "only {snapshots_read} snapshot images checked"
    );
}
