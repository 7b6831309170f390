//! A runnable tour of the engine: a persistent file volume, snapshots, a writable snapshot with a
//! volume stacked on it, changed blocks, revert, a crash-free reopen, and freeze/thaw.
//!
//! Run: `cargo run --release -p cow-engine --example volume_tour`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cow_engine::{SnapshotOptions, Volume, VolumeConfig};

fn main() -> Result<(), cow_engine::Error> {
    let dir = std::env::temp_dir().join(format!("umbra-tour-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let size = 64 << 20; // 64 MiB
    let bs = 4096u64;

    println!(
        "== a persistent volume of {} MiB in {}",
        size >> 20,
        dir.display()
    );
    let vol = Volume::create(&dir, size, VolumeConfig::default())?;
    let block = |fill: u8| vec![fill; bs as usize];
    for b in 0..1024u64 {
        vol.write_at(&block(1), b * bs)?;
    }

    let t = Instant::now();
    let monday = vol.create_snapshot(SnapshotOptions {
        metadata: b"name=monday".to_vec(),
        ..Default::default()
    })?;
    println!(
        "snapshot {monday} taken in {:?} (O(1): an epoch bump)",
        t.elapsed()
    );

    for b in 0..256u64 {
        vol.write_at(&block(2), b * bs)?;
    }
    let tuesday = vol.create_snapshot(SnapshotOptions::writable_persistent())?;
    for b in 128..384u64 {
        vol.write_at(&block(3), b * bs)?;
    }
    let stats = vol.stats();
    println!(
        "after 512 block writes over two epochs: {} diff blocks in use (each block copied once per epoch)",
        stats.diff_blocks_in_use
    );

    let mut buf = vec![0u8; bs as usize];
    vol.snapshot(monday)?.read_at(&mut buf, 200 * bs)?;
    println!("monday's block 200 still reads {}", buf[0]);
    println!(
        "blocks changed since monday: {}; between monday and tuesday: {}",
        vol.changed_blocks(monday, None)?.len(),
        vol.changed_blocks(monday, Some(tuesday))?.len()
    );

    println!("== a writable snapshot is a block device: stack a volume on it");
    let tue = Arc::new(vol.snapshot(tuesday)?);
    tue.write_at(&block(9), 0)?;
    let stacked = Volume::on_device(tue.clone(), VolumeConfig::default())?;
    let inner_snap = stacked.create_snapshot(SnapshotOptions::default())?;
    stacked.write_at(&block(10), 0)?;
    stacked.snapshot(inner_snap)?.read_at(&mut buf, 0)?;
    println!(
        "stacked snapshot reads {} while the stacked volume reads 10",
        buf[0]
    );
    drop(stacked);

    println!("== reopen: the journal is replayed");
    vol.flush()?;
    drop(tue);
    drop(vol);
    let t = Instant::now();
    let vol = Volume::open(&dir)?;
    println!(
        "reopened in {:?} with {} snapshots ({:?})",
        t.elapsed(),
        vol.snapshots().len(),
        String::from_utf8_lossy(&vol.snapshot_info(monday)?.metadata)
    );

    println!("== revert the origin to monday");
    let progress = cow_engine::RevertProgress::new();
    vol.revert(monday, &progress)?;
    vol.read_at(&mut buf, 200 * bs)?;
    println!(
        "copied back {} of {} changed blocks; block 200 reads {} again",
        progress.done(),
        progress.total(),
        buf[0]
    );

    println!("== freeze (flush-and-hold) with a deadline");
    vol.freeze(Duration::from_secs(10))?;
    let v2 = vol.clone();
    let writer = std::thread::spawn(move || {
        let t = Instant::now();
        v2.write_at(&[7u8; 4096], 0).map(|_| t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    println!("thaw: {:?}", vol.thaw()?);
    println!(
        "a write issued during the freeze waited {:?}",
        writer.join().expect("writer")?
    );

    vol.destroy(&dir, true)?;
    println!("done; volume removed");
    Ok(())
}
