//! Seed inputs for both targets, written with the targets' own encoders (`examples/gen_corpus.rs`
//! writes them to `corpus/`).

use std::sync::Arc;

use cow_engine::{BlockDevice, MemDevice, SnapshotOptions, Volume, VolumeConfig};

use super::format::{self, rec};
use super::open_diff::{self, UUID};
use super::volume_ops::{Header, Op};

/// A named seed input.
pub type Seed = (&'static str, Vec<u8>);

fn ops(header: Header, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}

const PLAIN: Header = Header {
    size: 16,
    limit: 0,
    format_fail: 0,
};

fn write(block: u8, seed: u8) -> Op {
    Op::Write {
        block,
        within: 0,
        len: 0,
        seed,
    }
}

fn snap_write(which: u8, block: u8, seed: u8) -> Op {
    Op::SnapWrite {
        which,
        block,
        within: 0,
        len: 0,
        seed,
    }
}

/// Seeds of `volume_ops`: one scenario each, ending (as every input does) with a clean reopen
/// (trailing byte even or absent) or a crash.
pub fn volume_ops() -> Vec<Seed> {
    use Op::*;
    const RO: u8 = 0;
    const RW: u8 = 1;
    const VOLATILE_SNAP: u8 = 2;
    const PINNED: u8 = 4;
    let lose = 0u8; // CrashMode::LoseUnflushed
    let subset = 2u8 | (5 << 2);
    let subset_resizes = 3u8 | (9 << 2);
    let mut v: Vec<Seed> = vec![
        ("empty", ops(PLAIN, &[])),
        (
            "write_snapshot_write_reopen",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    Create { flags: RO },
                    write(0, 2),
                    Verify,
                    Reopen { fail: 0 },
                    Verify,
                ],
            ),
        ),
        (
            "unaligned_writes_across_blocks",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    Write {
                        block: 3,
                        within: 200,
                        len: 200,
                        seed: 3,
                    },
                    Write {
                        block: 4,
                        within: 255,
                        len: 250,
                        seed: 4,
                    },
                    Create { flags: RO },
                    Write {
                        block: 3,
                        within: 130,
                        len: 77,
                        seed: 5,
                    },
                    Verify,
                ],
            ),
        ),
        (
            "writable_snapshot_crash_before_flush",
            ops(
                PLAIN,
                &[
                    write(1, 1),
                    Create { flags: RW },
                    snap_write(0, 1, 7),
                    Flush,
                    snap_write(0, 2, 8),
                    write(1, 9),
                    Crash { mode: lose },
                    Verify,
                ],
            ),
        ),
        (
            "delete_middle_then_crash_subset",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    Create { flags: RO },
                    write(0, 2),
                    write(1, 2),
                    Create { flags: RO },
                    write(0, 3),
                    write(2, 3),
                    Create { flags: RO },
                    write(1, 4),
                    Delete { which: 1 },
                    Crash { mode: subset },
                    Verify,
                ],
            ),
        ),
        (
            "failure_during_cow",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    Create { flags: RO },
                    Arm {
                        after: 1,
                        tear: 128,
                    },
                    write(0, 2),
                    Verify,
                ],
            ),
        ),
        (
            "failure_late_in_cow_sync",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    Arm {
                        after: 4,
                        tear: 200,
                    },
                    write(5, 2),
                    write(6, 3),
                ],
            ),
        ),
        (
            "failure_during_create",
            ops(
                PLAIN,
                &[
                    write(2, 1),
                    Arm { after: 2, tear: 0 },
                    Create { flags: RW },
                    Verify,
                ],
            ),
        ),
        (
            "failure_during_delete",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Create { flags: RO },
                    Arm { after: 1, tear: 64 },
                    Delete { which: 1 },
                ],
            ),
        ),
        (
            "failure_during_flush",
            ops(
                PLAIN,
                &[
                    Create { flags: RW },
                    snap_write(0, 3, 1),
                    write(3, 2),
                    Arm {
                        after: 1,
                        tear: 255,
                    },
                    Flush,
                ],
            ),
        ),
        (
            "failure_during_checkpoint",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Checkpoint,
                    write(1, 2),
                    Arm {
                        after: 3,
                        tear: 100,
                    },
                    Checkpoint,
                ],
            ),
        ),
        (
            "checkpoint_then_crash_with_resizes",
            ops(
                PLAIN,
                &[
                    Create { flags: RW },
                    write(0, 1),
                    Checkpoint,
                    snap_write(0, 4, 2),
                    Checkpoint,
                    Create { flags: RO },
                    write(4, 3),
                    Crash {
                        mode: subset_resizes,
                    },
                ],
            ),
        ),
        (
            "diff_full_deletes_oldest",
            ops(
                Header {
                    size: 0,
                    limit: 3,
                    format_fail: 0,
                },
                &[
                    Create { flags: RO },
                    write(0, 1),
                    write(1, 1),
                    Create { flags: PINNED },
                    write(2, 2),
                    write(3, 2),
                    write(4, 2),
                    Verify,
                    Reopen { fail: 0 },
                ],
            ),
        ),
        (
            "diff_full_fails_writes",
            ops(
                Header {
                    size: 0,
                    limit: 2 | 0x40,
                    format_fail: 0,
                },
                &[
                    Create { flags: RW },
                    write(0, 1),
                    write(1, 1),
                    write(2, 1),
                    snap_write(0, 5, 3),
                    Verify,
                ],
            ),
        ),
        (
            "volatile_volume",
            ops(
                Header {
                    size: 0xc0,
                    limit: 0,
                    format_fail: 0,
                },
                &[
                    write(0, 1),
                    Create { flags: RO },
                    write(0, 2),
                    Flush,
                    write(1, 3),
                    Crash { mode: lose },
                    Verify,
                ],
            ),
        ),
        (
            "non_persistent_snapshots_vanish",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Create {
                        flags: VOLATILE_SNAP | RW,
                    },
                    write(0, 2),
                    snap_write(1, 0, 3),
                    Reopen { fail: 0 },
                    Verify,
                ],
            ),
        ),
        (
            "revert_to_writable_snapshot",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    write(7, 1),
                    Create { flags: RW },
                    write(0, 2),
                    snap_write(0, 3, 3),
                    Revert { which: 0 },
                    Verify,
                    Crash { mode: lose },
                ],
            ),
        ),
        (
            "failure_during_revert",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    Create { flags: RO },
                    write(0, 2),
                    write(1, 2),
                    Arm { after: 3, tear: 0 },
                    Revert { which: 0 },
                ],
            ),
        ),
        (
            "grow_then_snapshot",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    Grow { blocks: 2 },
                    write(16, 1),
                    Create { flags: RW },
                    write(17, 2),
                    Crash { mode: 1 },
                ],
            ),
        ),
        (
            "failure_during_grow",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    Arm { after: 1, tear: 0 },
                    Grow { blocks: 1 },
                ],
            ),
        ),
        (
            "pin_and_metadata_then_crash",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    Pin {
                        which: 0,
                        pinned: true,
                    },
                    Metadata {
                        which: 0,
                        len: 17,
                        seed: 4,
                    },
                    Arm { after: 1, tear: 0 },
                    Metadata {
                        which: 0,
                        len: 5,
                        seed: 9,
                    },
                ],
            ),
        ),
        (
            "failing_open_after_close",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Reopen { fail: 2 | (2 << 6) },
                    Verify,
                ],
            ),
        ),
        (
            "failure_during_format",
            ops(
                Header {
                    size: 5,
                    limit: 0,
                    format_fail: 3,
                },
                &[],
            ),
        ),
        (
            "discard_under_snapshot",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    write(1, 1),
                    Create { flags: RO },
                    Discard {
                        block: 0,
                        blocks: 1,
                    },
                    Verify,
                    Crash { mode: subset },
                ],
            ),
        ),
        (
            "transient_failure_during_cow",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Arm {
                        after: 0x80 | 1,
                        tear: 90,
                    },
                    write(1, 2),
                    write(2, 3),
                    Verify,
                    Flush,
                    Crash { mode: lose },
                ],
            ),
        ),
        (
            "transient_failure_during_snapshot_write",
            ops(
                PLAIN,
                &[
                    Create { flags: RW },
                    Arm {
                        after: 0x80,
                        tear: 30,
                    },
                    snap_write(0, 1, 1),
                    snap_write(0, 2, 2),
                    Verify,
                    Reopen { fail: 0 },
                ],
            ),
        ),
        (
            "transient_failure_in_checkpoint",
            ops(
                PLAIN,
                &[
                    Create { flags: RO },
                    write(0, 1),
                    Arm {
                        after: 0x80 | 2,
                        tear: 0,
                    },
                    Checkpoint,
                    Create { flags: RW },
                    write(3, 2),
                    Checkpoint,
                    Reopen { fail: 0 },
                ],
            ),
        ),
        (
            "transient_failure_during_create",
            ops(
                PLAIN,
                &[
                    write(0, 1),
                    Arm {
                        after: 0x80 | 1,
                        tear: 0,
                    },
                    Create { flags: RO },
                    Create { flags: RW },
                    write(0, 2),
                    Crash { mode: subset },
                ],
            ),
        ),
    ];
    // A longer mixed run.
    let mut long = Vec::new();
    for i in 0..10u8 {
        long.push(write(i, i));
        if i % 3 == 0 {
            long.push(Create { flags: i & 1 });
        }
        if i % 4 == 1 {
            long.push(snap_write(i, i + 1, i));
        }
    }
    long.push(Flush);
    long.push(Crash { mode: subset });
    v.push(("mixed_run", ops(PLAIN, &long)));
    v
}

/// Encodes a `u64` as `Values::pick` reads it back (the raw-value option).
fn val(out: &mut Vec<u8>, v: u64) {
    out.push(8);
    out.extend_from_slice(&v.to_le_bytes());
}

/// One record of a structured seed.
enum R {
    Create { id: u64, len: u64, flags: u8 },
    Preserve { snap: u64, block: u64, slot: u64 },
    Overlay { snap: u64, block: u64, slot: u64 },
    Delete { id: u64 },
    Pin { id: u64 },
    Grow { len: u64 },
    RevertBegin { snap: u64 },
    RevertProgress { snap: u64, cursor: u64 },
    Split { snap: u64, cursor: u64 },
    Unknown { code: u8 },
}

impl R {
    fn encode(&self, out: &mut Vec<u8>, damage: u8) {
        match *self {
            R::Create { id, len, flags } => {
                out.push(rec::CREATE_SNAPSHOT);
                val(out, id);
                val(out, len);
                out.push(flags & 7);
            }
            R::Preserve { snap, block, slot } | R::Overlay { snap, block, slot } => {
                out.push(if matches!(self, R::Preserve { .. }) {
                    rec::PRESERVE
                } else {
                    rec::OVERLAY
                });
                val(out, snap);
                val(out, block);
                val(out, slot);
            }
            R::Delete { id } => {
                out.push(rec::DELETE_SNAPSHOT);
                val(out, id);
            }
            R::Pin { id } => {
                out.push(rec::SET_PINNED);
                val(out, id);
                out.push(1);
            }
            R::Grow { len } => {
                out.push(rec::GROW);
                val(out, len);
            }
            R::RevertBegin { snap } => {
                out.push(rec::REVERT_BEGIN);
                val(out, snap);
            }
            R::RevertProgress { snap, cursor } | R::Split { snap, cursor } => {
                out.push(if matches!(self, R::Split { .. }) {
                    rec::SPLIT_PROGRESS
                } else {
                    rec::REVERT_PROGRESS
                });
                val(out, snap);
                val(out, cursor);
            }
            R::Unknown { code } => {
                out.extend_from_slice(&[0, code, 3, 1, 2, 3]);
            }
        }
        out.push(damage);
    }
}

/// A structured `open_diff` input: a valid persistent superblock (4 KiB blocks, `blocks`-block
/// origin, `slots` diff slots), journal 0 with a complete checkpoint made of `VolumeLen`,
/// `records` and `CheckpointEnd{next_id}`, journal 1 absent.
fn structured(blocks: u8, slots: u8, records: &[(R, u8)], next_id: u64) -> Vec<u8> {
    let mut out = vec![1, 0, blocks - 1, slots, 1 | 2 | 4, 0, records.len() as u8];
    for (r, damage) in records {
        r.encode(&mut out, *damage);
    }
    val(&mut out, next_id);
    out.push(0); // journal 1 absent
    out
}

/// Images of a volume the engine itself wrote (random volume id): a few snapshots, preserved
/// and overlay blocks, a pending revert, all flushed, as a raw `open_diff` input.
fn engine_written(checkpoint: bool) -> Vec<u8> {
    let origin: Arc<dyn BlockDevice> = Arc::new(MemDevice::new(open_diff::RAW_ORIGIN_LEN));
    let diff = Arc::new(MemDevice::new(0));
    let j = [Arc::new(MemDevice::new(0)), Arc::new(MemDevice::new(0))];
    let dyn_of = |d: &Arc<MemDevice>| -> Arc<dyn BlockDevice> { d.clone() };
    let vol = Volume::create_on_devices(
        origin,
        dyn_of(&diff),
        [dyn_of(&j[0]), dyn_of(&j[1])],
        VolumeConfig::default(),
    )
    .expect("create");
    vol.write_at(&[1; 8192], 0).expect("write");
    let a = vol
        .create_snapshot(SnapshotOptions::default())
        .expect("snap");
    vol.write_at(&[2; 4096], 4096).expect("write");
    let b = vol
        .create_snapshot(SnapshotOptions::writable_persistent())
        .expect("snap");
    vol.snapshot(b)
        .and_then(|s| s.write_at(&[3; 100], 3 * 4096 + 7))
        .expect("snapshot write");
    vol.write_at(&[4; 4096], 0).expect("write");
    vol.set_pinned(a, true).expect("pin");
    if checkpoint {
        vol.checkpoint().expect("checkpoint");
        vol.set_metadata(b, b"after the checkpoint")
            .expect("metadata");
    }
    vol.flush().expect("flush");
    drop(vol);
    let image = |d: &MemDevice| {
        let mut v = vec![0u8; d.len() as usize];
        d.read_at(&mut v, 0).expect("read image");
        v
    };
    let (d, j0, j1) = (image(&diff), image(&j[0]), image(&j[1]));
    open_diff::encode_raw(&d, [&j0, &j1])
}

/// Seeds of `open_diff`.
pub fn open_diff() -> Vec<Seed> {
    let [diff, j0, j1] = format::fresh_volume(open_diff::RAW_ORIGIN_LEN, 4096, UUID);
    let fresh = open_diff::encode_raw(&diff, [&j0, &j1]);
    let mut torn = fresh.clone();
    torn.truncate(torn.len() - 3);
    let mut bad_sb = fresh.clone();
    bad_sb[6 + 20] ^= 0x40; // a byte of the volume id, under the superblock CRC
    let mut v2 = fresh.clone();
    v2[6 + 8] = 2; // superblock version 2
    let [diff8, j08, j18] = format::fresh_volume(open_diff::RAW_ORIGIN_LEN, 8192, UUID);
    let swapped = open_diff::encode_raw(&diff, [&j1, &j0]);
    let sb_only = open_diff::encode_raw(&diff, [&[], &[]]);
    let bs = 4096u64;
    vec![
        ("raw_empty", vec![0]),
        (
            "raw_garbage",
            b"\x00\x00\x40\x00\x10\x00UMBRADIF garbage after a magic".to_vec(),
        ),
        ("raw_fresh_volume", fresh),
        (
            "raw_fresh_volume_8k_blocks",
            open_diff::encode_raw(&diff8, [&j08, &j18]),
        ),
        ("raw_fresh_in_journal_1", swapped),
        ("raw_superblock_only", sb_only),
        ("raw_torn_checkpoint", torn),
        ("raw_bad_superblock_crc", bad_sb),
        ("raw_superblock_version_2", v2),
        ("raw_engine_written", engine_written(false)),
        ("raw_engine_written_after_checkpoint", engine_written(true)),
        ("structured_empty_checkpoint", structured(16, 4, &[], 1)),
        (
            "structured_snapshots",
            structured(
                16,
                8,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 16 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 3,
                            slot: 0,
                        },
                        0,
                    ),
                    (
                        R::Create {
                            id: 2,
                            len: 16 * bs,
                            flags: 3,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 2,
                            block: 3,
                            slot: 1,
                        },
                        0,
                    ),
                    (
                        R::Overlay {
                            snap: 2,
                            block: 5,
                            slot: 2,
                        },
                        0,
                    ),
                    (R::Pin { id: 1 }, 0),
                ],
                3,
            ),
        ),
        (
            "structured_delete_hands_off",
            structured(
                8,
                8,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (
                        R::Create {
                            id: 2,
                            len: 8 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 2,
                            block: 1,
                            slot: 4,
                        },
                        0,
                    ),
                    (R::Delete { id: 2 }, 0),
                ],
                3,
            ),
        ),
        (
            "structured_grow_and_revert",
            structured(
                16,
                4,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (R::Grow { len: 16 * bs }, 0),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 2,
                            slot: 0,
                        },
                        0,
                    ),
                    (R::RevertBegin { snap: 1 }, 0),
                    (R::RevertProgress { snap: 1, cursor: 1 }, 0),
                    (
                        R::Create {
                            id: 2,
                            len: 16 * bs,
                            flags: 3,
                        },
                        0,
                    ),
                    (R::Split { snap: 2, cursor: 4 }, 0),
                ],
                3,
            ),
        ),
        (
            "structured_torn_record",
            structured(
                8,
                4,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 1,
                            slot: 0,
                        },
                        4,
                    ),
                ],
                2,
            ),
        ),
        (
            "structured_unknown_record_type",
            structured(8, 4, &[(R::Unknown { code: 99 }, 0)], 1),
        ),
        (
            "structured_slot_outside_diff_area",
            structured(
                8,
                2,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 2,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 1,
                            slot: 2,
                        },
                        0,
                    ),
                ],
                2,
            ),
        ),
        (
            "structured_slot_used_twice",
            structured(
                8,
                4,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 3,
                        },
                        0,
                    ),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 1,
                            slot: 1,
                        },
                        0,
                    ),
                    (
                        R::Overlay {
                            snap: 1,
                            block: 2,
                            slot: 1,
                        },
                        0,
                    ),
                ],
                2,
            ),
        ),
        (
            "structured_seq_gap_ends_journal",
            structured(
                8,
                4,
                &[
                    (
                        R::Create {
                            id: 1,
                            len: 8 * bs,
                            flags: 2,
                        },
                        1,
                    ),
                    (
                        R::Preserve {
                            snap: 1,
                            block: 1,
                            slot: 1,
                        },
                        0,
                    ),
                ],
                2,
            ),
        ),
    ]
}
