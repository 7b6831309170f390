//! Concurrency: threads writing overlapping and disjoint blocks while snapshots are taken and read;
//! every snapshot must equal a point-in-time image, and never change while it is read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cow_engine::{SnapshotOptions, Volume, VolumeConfig};

const BS: usize = 4096;
const WRITERS: usize = 3;
/// Blocks each writer owns alone.
const OWN: u64 = 24;
/// Blocks every writer writes as one multi-block call (contended COW, atomicity).
const SHARED: u64 = 4;
const WRITES: u64 = 3000;
/// Writers go on past `WRITES` until this many snapshots were taken and checked while they ran
/// (on a loaded machine the writes alone may finish before the first snapshot).
const MIN_SNAPSHOTS: u64 = 10;

fn stamp(buf: &mut [u8], thread: u64, seq: u64) {
    for chunk in buf.chunks_mut(16) {
        chunk[..8].copy_from_slice(&thread.to_le_bytes());
        chunk[8..16].copy_from_slice(&seq.to_le_bytes());
    }
}

fn read_stamp(block: &[u8]) -> (u64, u64) {
    let t = u64::from_le_bytes(block[..8].try_into().unwrap());
    let s = u64::from_le_bytes(block[8..16].try_into().unwrap());
    // Whole block carries one stamp: no torn block.
    for chunk in block.chunks(16) {
        assert_eq!(&chunk[..8], &t.to_le_bytes(), "torn block");
        assert_eq!(&chunk[8..16], &s.to_le_bytes(), "torn block");
    }
    (t, s)
}

/// Writer `t`'s j-th write covers this run of its own blocks (1 to 3 blocks).
fn own_range(t: u64, j: u64) -> (u64, u64) {
    let first = (j * 7) % OWN;
    let n = 1 + (j % 3).min(OWN - first - 1);
    (SHARED + t * OWN + first, n)
}

/// The seq stamped on each own block of writer `t` after its first `k` writes (0 = never written).
fn own_image(t: u64, k: u64) -> Vec<u64> {
    let mut img = vec![0u64; OWN as usize];
    for j in 1..=k {
        let (first, n) = own_range(t, j);
        for b in first..first + n {
            img[(b - SHARED - t * OWN) as usize] = j;
        }
    }
    img
}

/// A snapshot id and the image read from it right after it was taken.
type Taken = (u64, Vec<u8>);

fn run(vol: Volume) {
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let finished: Arc<Vec<AtomicBool>> =
        Arc::new((0..WRITERS).map(|_| AtomicBool::new(false)).collect());
    let snapshots = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..WRITERS as u64 {
        let (vol, started, done) = (vol.clone(), started.clone(), done.clone());
        let (finished, snapshots) = (finished.clone(), snapshots.clone());
        handles.push(std::thread::spawn(move || {
            for j in 1.. {
                if j > WRITES && snapshots.load(Ordering::SeqCst) >= MIN_SNAPSHOTS {
                    break;
                }
                started[t as usize].store(j, Ordering::SeqCst);
                if j % 4 == 0 {
                    let mut buf = vec![0u8; SHARED as usize * BS];
                    stamp(&mut buf, t + 1, j);
                    vol.write_at(&buf, 0).unwrap();
                }
                let (first, n) = own_range(t, j);
                let mut buf = vec![0u8; n as usize * BS];
                stamp(&mut buf, t + 1, j);
                vol.write_at(&buf, first * BS as u64).unwrap();
                done[t as usize].store(j, Ordering::SeqCst);
            }
            finished[t as usize].store(true, Ordering::SeqCst);
        }));
    }
    // Readers re-read existing snapshots while writes go on; a snapshot never changes.
    let taken: Arc<Mutex<Vec<Taken>>> = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (vol, taken, stop) = (vol.clone(), taken.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) || rounds == 0 {
                let list = taken.lock().unwrap().clone();
                for (id, image) in list {
                    // The main thread may delete a snapshot between our listing and our read.
                    let mut b = vec![0u8; image.len()];
                    match vol.snapshot(id).and_then(|s| s.read_at(&mut b, 0)) {
                        Ok(()) => assert!(b == image, "snapshot {id} changed while being read"),
                        Err(e) => assert_eq!(e.kind(), cow_engine::ErrorKind::NotFound),
                    }
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut checked = 0;
    while finished.iter().any(|f| !f.load(Ordering::SeqCst)) {
        let before: Vec<u64> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        let id = vol.create_snapshot(SnapshotOptions::default()).unwrap();
        let after: Vec<u64> = started.iter().map(|s| s.load(Ordering::SeqCst)).collect();
        let snap = vol.snapshot(id).unwrap();
        let mut image = vec![0u8; snap.len() as usize];
        snap.read_at(&mut image, 0).unwrap();
        let blocks: Vec<(u64, u64)> = image.chunks(BS).map(read_stamp).collect();
        // Shared blocks: one multi-block write is all or nothing.
        let shared = &blocks[..SHARED as usize];
        assert!(
            shared.iter().all(|s| *s == shared[0]),
            "multi-block write split by a snapshot: {shared:?}"
        );
        // Own blocks: the image after exactly k writes, for some k the timing allows.
        for t in 0..WRITERS as u64 {
            let own: Vec<u64> = blocks
                [(SHARED + t * OWN) as usize..(SHARED + (t + 1) * OWN) as usize]
                .iter()
                .map(|&(tt, s)| {
                    assert!(tt == 0 || tt == t + 1);
                    s
                })
                .collect();
            let ok = (before[t as usize]..=after[t as usize]).any(|k| own_image(t, k) == own);
            assert!(
                ok,
                "writer {t}: snapshot is no point-in-time image between {} and {}",
                before[t as usize], after[t as usize]
            );
        }
        taken.lock().unwrap().push((id, image));
        checked += 1;
        snapshots.store(checked, Ordering::SeqCst);
        if checked % 5 == 0 {
            // Delete a middle snapshot now and then: the others must stay intact.
            let mut list = taken.lock().unwrap();
            if list.len() > 2 {
                let mid = list.len() / 2;
                let (id, _) = list.remove(mid);
                vol.delete_snapshot(id).unwrap();
            }
        }
        std::thread::yield_now();
    }
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    eprintln!("{checked} snapshots checked");
    assert!(
        checked >= MIN_SNAPSHOTS,
        "only {checked} snapshots were taken during the writes"
    );
}

#[test]
fn memory_volume_snapshots_are_point_in_time_under_concurrent_writes() {
    let size = (SHARED + WRITERS as u64 * OWN) * BS as u64;
    run(Volume::create_mem(size, VolumeConfig::default()).unwrap());
}

#[test]
fn file_volume_snapshots_are_point_in_time_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let size = (SHARED + WRITERS as u64 * OWN) * BS as u64;
    let config = VolumeConfig {
        durability: cow_engine::Durability::Volatile,
        ..Default::default()
    };
    run(Volume::create(dir.path().join("v"), size, config).unwrap());
}
