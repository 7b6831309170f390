//! Replays the fuzz corpora (`fuzz/corpus/volume_ops/`, `fuzz/corpus/open_diff/`) through the
//! fuzz targets' logic, so every input the fuzzers kept stays a regression test of
//! `cargo test --workspace`, without libFuzzer.
//!
//! The targets' logic is the test-support crate's `fuzz` module; it needs nothing but
//! `cow-engine` and std. The engine bugs the fuzzers found are all fixed; each is kept below as
//! a regression test that builds the input by hand.

use umbra_test_support::fuzz as fuzz_logic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::{BlockDevice, ErrorKind, MemDevice, SnapshotId, SnapshotOptions, Volume};
use fuzz_logic::format::{self, rec, JournalHeader, Payload, Superblock};
use fuzz_logic::open_diff::{self, Images, UUID};
use umbra_test_support::crash_sim::{Fault, Log, SimDevice};

/// Every file of one corpus, in name order.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).expect("read corpus file");
            (p, data)
        })
        .collect()
}

/// Runs `run` on every input of `target`'s corpus, naming the input that fails.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= 10,
        "corpus {target} has only {} inputs",
        inputs.len()
    );
    for (path, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| run(data));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{target} input {} fails: {msg}\nreplay with tracing: (cd fuzz && cargo run \
                 --example replay -- {target} {})",
                path.display(),
                path.display()
            );
        }
    }
    inputs.len()
}

#[test]
fn volume_ops_corpus_replays() {
    replay("volume_ops", fuzz_logic::volume_ops::run);
}

#[test]
fn open_diff_corpus_replays() {
    replay("open_diff", fuzz_logic::open_diff::run);
}

/// The corpus exercises what it is for: injected failures, crashes, refusals, automatic deletes.
#[test]
fn volume_ops_corpus_covers_failures_and_crashes() {
    let mut total = fuzz_logic::volume_ops::Stats::default();
    for (_, data) in corpus("volume_ops") {
        let s = fuzz_logic::volume_ops::run_with_stats(&data);
        total.failures += s.failures;
        total.restarts += s.restarts;
        total.refusals += s.refusals;
        total.auto_deleted += s.auto_deleted;
        total.snapshots += s.snapshots;
    }
    assert!(total.failures >= 10, "{total:?}");
    assert!(total.restarts >= 20, "{total:?}");
    assert!(total.refusals > 0 && total.auto_deleted > 0, "{total:?}");
}

/// The seeds (fuzz/src/seeds.rs) still run cleanly, including those built from the engine's
/// own output, which are regenerated here.
#[test]
fn seeds_run_cleanly() {
    for (_, data) in fuzz_logic::seeds::volume_ops() {
        fuzz_logic::volume_ops::run(&data);
    }
    for (_, data) in fuzz_logic::seeds::open_diff() {
        fuzz_logic::open_diff::run(&data);
    }
}

// ---------------------------------------------------------------------------------------------
// Engine bugs found by the fuzzers, fixed in cow-engine/src. Each `Why:` paragraph describes the
// engine before its fix and names where the fix was needed.

const BS: u64 = 4096;

/// Images of a persistent volume of `blocks` blocks with `slots` diff slots, whose journal 0 holds
/// `records` (`(type, payload)`, seqs from `first_seq`), under a header of `generation`.
fn images(
    blocks: u64,
    slots: u64,
    first_seq: u64,
    generation: u64,
    records: &[(u8, Payload)],
) -> Images {
    let mut body = Vec::new();
    for (i, (kind, payload)) in records.iter().enumerate() {
        format::push_record(&mut body, first_seq + i as u64, *kind, &payload.0, false);
    }
    let header = JournalHeader {
        version: format::VERSION,
        uuid: UUID,
        generation,
        bad_crc: false,
    };
    Images {
        origin_len: blocks * BS,
        diff_len: BS + slots * BS,
        diff: Superblock::valid(BS as u32, UUID).encode().to_vec(),
        journals: [format::journal_image(&header, &body, 1 << 20), Vec::new()],
    }
}

fn p() -> Payload {
    Payload::default()
}

fn volume_len(blocks: u64) -> (u8, Payload) {
    (rec::VOLUME_LEN, p().u64(blocks * BS))
}

fn checkpoint_end(next_id: u64) -> (u8, Payload) {
    (rec::CHECKPOINT_END, p().u64(next_id))
}

fn open(images: &Images) -> (cow_engine::Result<Volume>, [Arc<MemDevice>; 4]) {
    let devs = open_diff::devices(images);
    (open_diff::open(&devs), devs)
}

/// Why: the first record of every checkpoint the engine writes is `VolumeLen`. A journal whose
/// checkpoint has none (here: only `CheckpointEnd`) is not one the engine wrote, yet replay starts
/// from a state of length 0 and accepts it, so the volume opens with `len() == 0`: every byte of
/// the origin is out of range. Found by `open_diff`. Engine: `persist::replay` / `Store::recover`
/// (cow-engine/src/persist/mod.rs) should reject a checkpoint that does not set the size.
#[test]
fn checkpoint_without_volume_len_is_corrupt() {
    let (vol, _devs) = open(&images(16, 4, 1, 1, &[checkpoint_end(1)]));
    match vol {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(v) => panic!("opened a volume of {} bytes", v.len()),
    }
}

/// Why: `CheckpointEnd.next_id` is taken from the journal unchecked (`next_id = max(next_id,
/// value)`), so a CRC-valid journal naming `u64::MAX` opens, and the next `create_snapshot`
/// does `st.next_id += 1` on `u64::MAX`: a panic ("attempt to add with overflow") in builds with
/// overflow checks, and in release builds a wrap to 0, after which ids are reused and the next
/// replay fails ("snapshot id 0 reused"). Found by `open_diff`. Engine:
/// `Inner::create_snapshot_locked` (cow-engine/src/volume/mod.rs) and `persist::apply` for
/// `CheckpointEnd` (cow-engine/src/persist/mod.rs): reject ids that leave no room, or use
/// checked arithmetic and fail the create.
#[test]
fn next_id_at_the_limit_does_not_overflow() {
    let (vol, _devs) = open(&images(
        16,
        4,
        1,
        1,
        &[volume_len(16), checkpoint_end(u64::MAX)],
    ));
    let Ok(vol) = vol else { return }; // refusing the journal is fine
    if let Ok(id) = vol.create_snapshot(SnapshotOptions::default()) {
        let again = vol.create_snapshot(SnapshotOptions::default());
        assert!(again.map_or(true, |id2| id2 > id), "snapshot ids reused");
    }
}

/// Why: the same unchecked `+ 1` in replay: a `CreateSnapshot` record whose id is `u64::MAX`
/// makes `persist::apply` compute `state.next_id = id + 1`, which panics with overflow checks
/// (and wraps to 0 without them) inside `Volume::open_on_devices`, instead of the open failing
/// as `Corrupt`. Found by reading the replay code the `open_diff` finding above pointed at.
#[test]
fn snapshot_id_at_the_limit_is_corrupt() {
    let create = (
        rec::CREATE_SNAPSHOT,
        p().u64(u64::MAX).u64(16 * BS).u8(2).blob(&[]),
    );
    let (vol, _devs) = open(&images(
        16,
        4,
        1,
        1,
        &[volume_len(16), create, checkpoint_end(1)],
    ));
    if let Err(e) = vol {
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    }
}

/// Why: record sequence numbers are taken from the journal unchecked: replay computes
/// `expected_seq = seq + 1` for each record (`persist::replay`), so a CRC-valid record with seq
/// `u64::MAX` panics with overflow checks inside `Volume::open_on_devices`, and without them the
/// journal continues at seq 0. Found by reading the replay code the fuzzer pointed at.
#[test]
fn record_seq_at_the_limit_is_handled() {
    let (vol, _devs) = open(&images(
        16,
        4,
        u64::MAX - 1,
        1,
        &[volume_len(16), checkpoint_end(1)],
    ));
    match vol {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(v) => {
            v.create_snapshot(SnapshotOptions::default())
                .map(drop)
                .unwrap_or_else(|e| assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"));
        }
    }
}

/// Why: a journal header's generation is taken unchecked, and the next checkpoint writes
/// `generation + 1` (`Journal::checkpoint`, cow-engine/src/persist/journal.rs): with
/// `u64::MAX` that panics with overflow checks, and without them the new checkpoint gets
/// generation 0 and loses to the stale file at the next open. Found by reading the code the
/// fuzzer pointed at.
#[test]
fn generation_at_the_limit_is_handled() {
    let (vol, devs) = open(&images(
        16,
        4,
        1,
        u64::MAX,
        &[volume_len(16), checkpoint_end(1)],
    ));
    let Ok(vol) = vol else { return }; // refusing the journal is fine
    let id = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    if vol.checkpoint().is_ok() {
        drop(vol);
        let again = open_diff::open(&devs).expect("reopen after a checkpoint");
        assert!(again.snapshot(id).is_ok(), "the checkpoint was lost");
    }
}

/// Why: a volatile volume takes its size from the origin device (`Store::recover`, volatile
/// branch), unchecked, so an origin that is not a multiple of the block size gives a volume whose
/// last block is partial. No snapshot map covers that block (maps hold `len >> shift` blocks), so
/// an origin write there is not preserved and shows through a snapshot taken before it; reading a
/// writable snapshot there panics ("block 4 outside map of 4": `BlockMap` asserts the block is
/// inside the map). Found with `open_diff`'s snapshot check (volatile superblock, origin of a
/// partial block). Engine: the volatile branch of `Store::recover` (cow-engine/src/persist/mod.rs)
/// should round the size down to whole blocks or refuse the device.
#[test]
fn volatile_origin_with_a_partial_block() {
    let mut sb = Superblock::valid(BS as u32, UUID);
    sb.flags = 1; // volatile
    let images = Images {
        origin_len: 4 * BS + 100,
        diff_len: BS,
        diff: sb.encode().to_vec(),
        journals: [Vec::new(), Vec::new()],
    };
    let (vol, _devs) = open(&images);
    let Ok(vol) = vol else { return }; // refusing the device is fine
    let len = vol.len();
    let id = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    let snap = vol.snapshot(id).unwrap();
    let mut before = vec![0u8; 50];
    snap.read_at(&mut before, len - 50).unwrap();
    vol.write_at(&[0xEE; 50], len - 50).unwrap();
    let mut after = vec![0u8; 50];
    snap.read_at(&mut after, len - 50).unwrap();
    assert_eq!(
        after, before,
        "an origin write changed the snapshot taken before it"
    );
}

/// Why: the superblock's `data_offset` is only checked to be a multiple of the block size, so one
/// near `u64::MAX` is accepted; the diff area then computes slot offsets as
/// `data_offset + slot * block_size` (`DiffArea::slot_offset`, and the resize in
/// `DiffArea::alloc`, cow-engine/src/volume/diff_area.rs), which overflows at the first
/// copy-on-write: a panic with overflow checks, a write to a wrapped offset without.
#[test]
fn data_offset_at_the_limit_is_corrupt() {
    let mut img = images(16, 0, 1, 1, &[volume_len(16), checkpoint_end(1)]);
    let mut sb = Superblock::valid(BS as u32, UUID);
    sb.data_offset = u64::MAX - (BS - 1);
    img.diff = sb.encode().to_vec();
    img.diff_len = format::HEADER_LEN as u64;
    let (vol, _devs) = open(&img);
    let Ok(vol) = vol else { return }; // refusing the superblock is fine
    vol.create_snapshot(SnapshotOptions::default()).unwrap();
    if let Err(e) = vol.write_at(&[1; 10], 0) {
        assert!(
            matches!(e.kind(), ErrorKind::NoSpace | ErrorKind::Corrupt),
            "{e}"
        );
    }
}

/// A check of the helpers above: the same images with sane values open and work.
#[test]
fn sane_hand_made_images_open() {
    let create = (
        rec::CREATE_SNAPSHOT,
        p().u64(1).u64(16 * BS).u8(2).blob(b"x"),
    );
    let (vol, _devs) = open(&images(
        16,
        4,
        1,
        1,
        &[volume_len(16), create, checkpoint_end(2)],
    ));
    let vol = vol.expect("open");
    assert_eq!(vol.len(), 16 * BS);
    assert_eq!(vol.snapshots().len(), 1);
    vol.write_at(&[1; 10], 0).unwrap();
    let mut b = [9u8; 10];
    vol.snapshot(SnapshotId::new(1))
        .unwrap()
        .read_at(&mut b, 0)
        .unwrap();
    assert_eq!(b, [0; 10]);
}

/// A persistent volume of 16 blocks on simulated devices: the origin and diff share one fault
/// switch, the two journals another (returned, to fail journal I/O on demand). Their crashes are
/// not studied (a restart reopens what they hold live), so their log keeps nothing.
fn faulted_volume() -> (Volume, [Arc<SimDevice>; 4], Arc<Fault>) {
    let (dev_fault, journal_fault) = (Fault::new(), Fault::new());
    let log = Log::discarding();
    let dev = |id: usize, len: u64, fault: &Arc<Fault>| {
        SimDevice::new(id, &log, len, true)
            .with_fault(fault)
            .without_discard()
    };
    let devs = [
        dev(0, 16 * BS, &dev_fault),
        dev(1, 0, &dev_fault),
        dev(2, 0, &journal_fault),
        dev(3, 0, &journal_fault),
    ];
    let d = |i: usize| -> Arc<dyn BlockDevice> { devs[i].clone() };
    let vol = Volume::create_on_devices(
        d(0),
        d(1),
        [d(2), d(3)],
        cow_engine::VolumeConfig::default(),
    )
    .unwrap();
    (vol, devs, journal_fault)
}

/// A process restart (the OS cache survives): opens what the devices of [`faulted_volume`] hold.
fn restart(devs: &[Arc<SimDevice>; 4]) -> cow_engine::Result<Volume> {
    let log = Log::discarding();
    let imgs = devs
        .each_ref()
        .map(|x| SimDevice::with_image(0, &log, x.image(), true).without_discard());
    let d = |i: usize| -> Arc<dyn BlockDevice> { imgs[i].clone() };
    Volume::open_on_devices(d(0), d(1), [d(2), d(3)])
}

/// Why: when the sync of a snapshot's `CreateSnapshot` record fails after the record reached the
/// journal device (its write succeeded, its flush failed), `create_snapshot` returns an error and
/// the volume has no such snapshot in memory, yet the record is on the device and a later open
/// brings the snapshot back. Meanwhile the volume keeps accepting origin writes that need no
/// journal (blocks the older snapshot already preserved), without preserving them for the
/// snapshot it does not know of: after the reopen that phantom snapshot shows data written after
/// its creation. A snapshot that exists must be a point-in-time image. Found by `volume_ops`
/// (transient failure, then a clean close and open). Engine: `Inner::create_snapshot_locked` /
/// `Journal::sync_through` (a failed journal leaves origin writes allowed); e.g. refuse origin
/// writes once the journal has failed, or keep the failed snapshot in memory as possibly
/// existing.
#[test]
fn failed_create_does_not_come_back_with_later_writes() {
    let (vol, devs, journal_fault) = faulted_volume();
    let older = vol.create_snapshot(SnapshotOptions::default()).unwrap();
    vol.write_at(&[0xC9; 4096], 0).unwrap(); // block 0 is now preserved for `older`
    vol.flush().unwrap();
    // The next journal write (the CreateSnapshot record) succeeds and the flush after it fails,
    // once.
    journal_fault.arm(1, 0, true);
    let failed = vol.create_snapshot(SnapshotOptions::default());
    assert!(failed.is_err(), "the create should see the failed flush");
    // Block 0 needs no copy for `older`, so this write is accepted.
    let after_create = vol.write_at(&[0x00; 4096], 0);
    drop(vol);
    let vol = restart(&devs).unwrap();
    for info in vol.snapshots() {
        if info.id == older {
            continue;
        }
        // The snapshot whose create failed is back: it must hold the origin as of its creation.
        let mut b = vec![0u8; 4096];
        vol.snapshot(info.id).unwrap().read_at(&mut b, 0).unwrap();
        assert!(
            b.iter().all(|&x| x == 0xC9),
            "snapshot {} came back holding a write made after its creation (that write returned {:?})",
            info.id,
            after_create
        );
    }
}

/// Why: `grow` resizes the origin device before it knows whether its `Grow` record can be made
/// durable. When a grow fails at the journal flush, its record may still be on the journal device
/// (the write went through); the journal is then failed, yet a second, smaller grow still resizes
/// the origin, down to below the size that record names, before its own record is refused. The
/// next open finds the journal naming more bytes than the origin holds and refuses the volume as
/// `Corrupt`: a transient failure and a retry make the volume unopenable. Found by `volume_ops`
/// (transient failure during grow, grow again, clean close and open). Engine:
/// `Inner::grow_locked` (cow-engine/src/volume/mod.rs): refuse when the journal has failed, and
/// never shrink the origin device below a size a record may name.
#[test]
fn grow_retry_after_failed_grow_keeps_the_volume_openable() {
    let (vol, devs, journal_fault) = faulted_volume();
    vol.flush().unwrap();
    // The Grow record's write goes through, the journal flush after it fails, once.
    journal_fault.arm(1, 0, true);
    assert!(vol.grow(20 * BS).is_err());
    let _ = vol.grow(18 * BS); // refused by the failed journal, after resizing the origin
    drop(vol);
    let vol = restart(&devs).unwrap_or_else(|e| panic!("the volume no longer opens: {e}"));
    assert!(
        [16 * BS, 20 * BS].contains(&vol.len()),
        "size {}",
        vol.len()
    );
}

/// Why: counters at the format's limit were accepted on open, and the engine then added to them:
/// a journal header of generation 2^62 opened, the next checkpoint wrote generation 2^62 + 1, and
/// the volume never opened again ("journal generation … is out of range"). Found by `open_diff`.
/// Writers now refuse to pass the limit (a `Corrupt` error at the operation, nothing written), so
/// whatever opens keeps opening.
#[test]
fn counters_at_the_limit_are_refused_by_writers_and_the_volume_reopens() {
    const LIMIT: u64 = 1 << 62;
    // The generation.
    let (vol, devs) = open(&images(
        16,
        4,
        1,
        LIMIT,
        &[volume_len(16), checkpoint_end(1)],
    ));
    let vol = vol.expect("a journal at the generation limit opens");
    let e = vol.checkpoint().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    vol.write_at(&[1; 100], 0).unwrap();
    drop(vol);
    open_diff::open(&devs).expect("reopens after the refused checkpoint");

    // The record seq.
    let (vol, devs) = open(&images(
        16,
        4,
        LIMIT - 3,
        1,
        &[volume_len(16), checkpoint_end(1)],
    ));
    let vol = vol.expect("a journal near the seq limit opens");
    let e = vol.create_snapshot(SnapshotOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    drop(vol);
    let vol = open_diff::open(&devs).expect("reopens after the refused record");
    assert!(vol.snapshots().is_empty());

    // The snapshot id.
    let (vol, devs) = open(&images(
        16,
        4,
        1,
        1,
        &[volume_len(16), checkpoint_end(LIMIT)],
    ));
    let vol = vol.expect("a journal at the id limit opens");
    let e = vol.create_snapshot(SnapshotOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    drop(vol);
    open_diff::open(&devs).expect("reopens after the refused snapshot");
}
