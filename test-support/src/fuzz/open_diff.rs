//! The `open_diff` target: open a volume on a diff area and journals built from the input.
//!
//! Byte 0 picks the mode. Even: **raw** — the input is the devices' bytes (see [`raw_images`]).
//! Odd: **structured** — the input chooses the fields of a superblock, two journal headers and a
//! list of records, encoded with valid checksums unless it asks for damage ([`structured_images`]),
//! so that the fuzzer reaches journal replay instead of stopping at the first CRC.
//!
//! The open must return `Ok` or an error of a documented kind for bad input (`Corrupt`,
//! `UnsupportedVersion`; docs/format.md §7), never panic or hang. A volume that opens must then
//! behave: its images read, an origin write does not change a snapshot taken before it, snapshot
//! writes read back, flush and checkpoint succeed, and after a close it opens again with the same
//! snapshots.

use std::sync::Arc;

use cow_engine::{
    BlockDevice, ErrorKind, MemDevice, Progress, SnapshotId, SnapshotOptions, Volume,
};

use super::format::{self, rec, JournalHeader, Payload, Superblock, HEADER_LEN, JOURNAL_DATA};
use super::input::Input;

/// The volume id of structured images.
pub const UUID: [u8; 16] = *b"umbra-fuzz-uuid!";
/// The format's limit on counters (seqs, snapshot ids, generations): docs/format.md.
const COUNTER_MAX: u64 = 1 << 62;
/// How far below [`COUNTER_MAX`] structured counters stay (see `Values::counter`): twice the
/// 2^32 seqs the engine keeps in reserve below the limit.
const COUNTER_HEADROOM: u64 = 1 << 33;
/// The origin size in raw mode (16 blocks of 4 KiB, as in the example of docs/format.md).
pub const RAW_ORIGIN_LEN: u64 = 16 * 4096;

/// Devices' contents: origin length, diff area bytes, journal bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Origin size in bytes (zero-filled).
    pub origin_len: u64,
    /// Diff-area device size (at least `diff.len()`; the rest reads as zeros).
    pub diff_len: u64,
    /// Diff-area bytes from offset 0.
    pub diff: Vec<u8>,
    /// Journal devices' bytes.
    pub journals: [Vec<u8>; 2],
}

/// Raw mode, after the mode byte: `u8` extra diff blocks, `u16` diff length, `u16` journal 0
/// length, that many bytes of diff area (followed on the device by the extra 4 KiB blocks of
/// zeros), that many of journal 0, and journal 1 is the rest. A journal's first 64 bytes are its
/// header and the rest its records, placed at 4096 (zeros between); an empty one is a 0-byte
/// device.
pub fn raw_images(inp: &mut Input<'_>) -> Images {
    let extra = u64::from(inp.u8()) * 4096;
    let diff_len = usize::from(inp.u16());
    let j0_len = usize::from(inp.u16());
    let mut diff = inp.bytes(diff_len).to_vec();
    diff.resize(diff_len, 0);
    let j0 = inp.bytes(j0_len).to_vec();
    let j1 = inp.rest().to_vec();
    Images {
        origin_len: RAW_ORIGIN_LEN,
        diff_len: diff.len() as u64 + extra,
        diff,
        journals: [raw_journal(&j0), raw_journal(&j1)],
    }
}

fn raw_journal(b: &[u8]) -> Vec<u8> {
    if b.is_empty() {
        return Vec::new();
    }
    let split = b.len().min(HEADER_LEN);
    let mut img = b[..split].to_vec();
    img.resize(JOURNAL_DATA, 0);
    img.extend_from_slice(&b[split..]);
    img
}

/// The inverse of [`raw_images`] for images laid out as the engine writes them (journal header
/// at 0, records at 4096, zeros between): the raw input that decodes to them, trailing zeros
/// dropped (the diff area's come back as extra blocks; the journals get shorter, which the
/// engine accepts).
pub fn encode_raw(diff: &[u8], journals: [&[u8]; 2]) -> Vec<u8> {
    let squeeze = |j: &[u8]| -> Vec<u8> {
        if j.is_empty() {
            return Vec::new();
        }
        let mut v = j[..HEADER_LEN.min(j.len())].to_vec();
        v.resize(HEADER_LEN, 0);
        if j.len() > JOURNAL_DATA {
            // Keep the framed records (walked by their length fields), drop the zeros after.
            let body = &j[JOURNAL_DATA..];
            let mut end = 0;
            while body.len() >= end + 17 && body[end..end + 8] != [0; 8] {
                let n =
                    u32::from_le_bytes([body[end], body[end + 1], body[end + 2], body[end + 3]]);
                end = (end + 17 + n as usize).min(body.len());
            }
            v.extend_from_slice(&body[..end]);
        }
        v
    };
    let (j0, j1) = (squeeze(journals[0]), squeeze(journals[1]));
    let used = diff
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p + 1)
        .next_multiple_of(4096)
        .min(diff.len());
    let extra = (diff.len() - used).div_ceil(4096).min(255) as u8;
    let diff = &diff[..used];
    let mut out = vec![0u8, extra];
    out.extend_from_slice(&(diff.len() as u16).to_le_bytes());
    out.extend_from_slice(&(j0.len() as u16).to_le_bytes());
    out.extend_from_slice(diff);
    out.extend_from_slice(&j0);
    out.extend_from_slice(&j1);
    out
}

/// Picks a `u64` field value: mostly small or shaped like the volume's sizes, sometimes extreme.
struct Values {
    bs: u64,
    origin_blocks: u64,
}

impl Values {
    /// A value for a counter the engine adds 1 to (seqs, snapshot ids, generations).
    fn counter(&self, inp: &mut Input<'_>) -> u64 {
        let v = self.pick(inp);
        if v <= COUNTER_MAX && v > COUNTER_MAX - COUNTER_HEADROOM {
            // Out of the band just below the format's limit: a volume there opens, but its next
            // records or checkpoint would pass the limit, which the engine refuses, so it cannot
            // complete the exercise. No real volume gets within 2^33 of 2^62.
            v - COUNTER_HEADROOM
        } else {
            v
        }
    }

    fn pick(&self, inp: &mut Input<'_>) -> u64 {
        let b = inp.u8();
        let hi = u64::from(b >> 4);
        match b % 12 {
            0 => 0,
            1 => 1,
            2 | 3 => hi,
            4 => (u64::from(inp.u8()) % (self.origin_blocks + 2)) * self.bs,
            5 => u64::from(inp.u8()) % (self.origin_blocks + 2),
            6 => u64::MAX - hi,
            7 => 1 << (u64::from(inp.u8()) % 64),
            8 => inp.u64(),
            9 => self.origin_blocks * self.bs,
            10 => (1 << 62) - 1 + hi,
            _ => u64::from(inp.u8()) % 300,
        }
    }
}

/// Structured mode, after the mode byte (see the module doc; every field from the input).
pub fn structured_images(inp: &mut Input<'_>) -> Images {
    // Superblock byte: bit 0 a diff limit and policy from the input, bits 1+2 volatile,
    // bits 3-5 one damage (7 version, 6 CRC, 5 data offset, 4 block size, else none),
    // bit 6 an origin ending in a partial block, bit 7 8 KiB blocks.
    let sb_flags = inp.u8();
    let bs: u32 = if sb_flags & 0x80 != 0 { 8192 } else { 4096 };
    let origin_blocks = 1 + u64::from(inp.u8() % 64);
    let volatile = sb_flags & 6 == 6;
    let origin_tail = if sb_flags & 0x40 != 0 {
        u64::from(inp.u16()) % u64::from(bs)
    } else {
        0
    };
    let v = Values {
        bs: u64::from(bs),
        origin_blocks,
    };
    let mut sb = Superblock::valid(bs, UUID);
    if volatile {
        sb.flags = 1;
    }
    if sb_flags & 1 != 0 {
        sb.diff_limit = v.pick(inp);
        sb.on_diff_full = inp.u8() & 1;
    }
    match (sb_flags >> 3) & 7 {
        7 => sb.version = u32::from(inp.u8()),
        6 => sb.bad_crc = true,
        5 => sb.data_offset = v.pick(inp),
        4 => sb.block_size = v.pick(inp) as u32,
        _ => {}
    }
    let slots = u64::from(inp.u8() % 32);
    let diff_len = sb
        .data_offset
        .max(HEADER_LEN as u64)
        .saturating_add(slots * u64::from(bs))
        .min(1 << 40);
    let diff = sb.encode().to_vec();

    let mut journals = [Vec::new(), Vec::new()];
    for (j, img) in journals.iter_mut().enumerate() {
        let spec = inp.u8();
        if spec & 1 == 0 {
            continue;
        }
        // Journal byte: bit 0 present, bit 1 a VolumeLen first, bit 2 a CheckpointEnd last,
        // bits 3-5 one header damage (7 CRC, 6 another volume's id, 5 version, else none),
        // bit 6 no rounding of the length to 1 MiB, bit 7 a generation from the input.
        let damage = (spec >> 3) & 7;
        let header = JournalHeader {
            version: if damage == 5 {
                u32::from(inp.u8())
            } else {
                format::VERSION
            },
            uuid: if damage == 6 { [0xEE; 16] } else { UUID },
            generation: if spec & 0x80 != 0 {
                v.counter(inp)
            } else {
                j as u64 + 1
            },
            bad_crc: damage == 7,
        };
        let mut body = Vec::new();
        let mut seq = if inp.u8() & 1 != 0 { v.counter(inp) } else { 1 };
        if spec & 2 != 0 {
            let p = Payload::default().u64(origin_blocks * u64::from(bs));
            format::push_record(&mut body, seq, rec::VOLUME_LEN, &p.0, false);
            seq = seq.wrapping_add(1);
        }
        let count = inp.u8() % 24;
        for _ in 0..count {
            seq = push_fuzzed_record(&mut body, seq, &v, inp);
        }
        if spec & 4 != 0 {
            let p = Payload::default().u64(v.counter(inp));
            format::push_record(&mut body, seq, rec::CHECKPOINT_END, &p.0, false);
        }
        let len = if spec & 0x40 != 0 {
            JOURNAL_DATA + body.len()
        } else {
            (JOURNAL_DATA + body.len()).next_multiple_of(1 << 20)
        };
        *img = format::journal_image(&header, &body, len);
    }
    Images {
        origin_len: origin_blocks * u64::from(bs) + origin_tail,
        diff_len,
        diff,
        journals,
    }
}

/// Appends one record chosen by the input (maybe damaged); returns the next seq.
fn push_fuzzed_record(body: &mut Vec<u8>, seq: u64, v: &Values, inp: &mut Input<'_>) -> u64 {
    let kind = inp.u8() % 15;
    let p = Payload::default();
    let (code, payload) = match kind {
        rec::VOLUME_LEN | rec::GROW => (kind, p.u64(v.pick(inp))),
        rec::CREATE_SNAPSHOT => {
            let (id, len, flags) = (v.counter(inp), v.pick(inp), inp.u8());
            let meta = inp.bytes(usize::from(inp_len(flags))).to_vec();
            (kind, p.u64(id).u64(len).u8(flags).blob(&meta))
        }
        rec::PRESERVE | rec::OVERLAY => {
            (kind, p.u64(v.pick(inp)).u64(v.pick(inp)).u64(v.pick(inp)))
        }
        rec::CHECKPOINT_END | rec::SYNC_END => (kind, p.u64(v.counter(inp))),
        rec::DELETE_SNAPSHOT | rec::REVERT_BEGIN | rec::REVERT_DONE => (kind, p.u64(v.pick(inp))),
        rec::SET_PINNED => (kind, p.u64(v.pick(inp)).u8(inp.u8())),
        rec::SET_METADATA => {
            let id = v.pick(inp);
            let n = inp.u8() % 16;
            let meta = inp.bytes(usize::from(n)).to_vec();
            (kind, p.u64(id).blob(&meta))
        }
        rec::REVERT_PROGRESS | rec::SPLIT_PROGRESS => (kind, p.u64(v.pick(inp)).u64(v.pick(inp))),
        _ => {
            // Any type byte (mostly unknown ones) with any payload.
            let code = inp.u8();
            let n = inp.u8() % 32;
            (code, Payload(inp.bytes(usize::from(n)).to_vec()))
        }
    };
    let mut payload = payload.0;
    let damage = inp.u8();
    let mut seq_used = seq;
    match damage {
        1 => seq_used = seq.wrapping_add(2),
        2 => {
            payload.pop();
        }
        3 => payload.push(0),
        _ => {}
    }
    format::push_record(body, seq_used, code, &payload, damage == 4);
    seq_used.wrapping_add(1)
}

fn inp_len(flags: u8) -> u8 {
    (flags >> 3) % 8
}

fn mem(len: u64, bytes: &[u8]) -> Arc<MemDevice> {
    let d = MemDevice::new(len.max(bytes.len() as u64));
    if !bytes.is_empty() {
        d.write_at(bytes, 0).expect("fill a memory device");
    }
    Arc::new(d)
}

/// The devices of `images`: origin, diff, journal 0, journal 1.
pub fn devices(images: &Images) -> [Arc<MemDevice>; 4] {
    [
        Arc::new(MemDevice::new(images.origin_len)),
        mem(images.diff_len, &images.diff),
        mem(0, &images.journals[0]),
        mem(0, &images.journals[1]),
    ]
}

fn dyn_dev(d: &Arc<MemDevice>) -> Arc<dyn BlockDevice> {
    d.clone()
}

/// Opens a volume on `devs` (origin, diff, journal 0, journal 1).
pub fn open(devs: &[Arc<MemDevice>; 4]) -> cow_engine::Result<Volume> {
    Volume::open_on_devices(
        dyn_dev(&devs[0]),
        dyn_dev(&devs[1]),
        [dyn_dev(&devs[2]), dyn_dev(&devs[3])],
    )
}

/// Runs one `open_diff` input. Panics on a contract violation.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let images = if inp.u8() & 1 == 0 {
        raw_images(&mut inp)
    } else {
        structured_images(&mut inp)
    };
    check_images(&images);
}

/// Opens a volume on `images` and checks the contract (see the module doc).
pub fn check_images(images: &Images) {
    let devs = devices(images);
    let vol = match open(&devs) {
        Ok(v) => v,
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion),
                "open of a damaged diff area failed with kind {:?}: {e}",
                e.kind()
            );
            assert!(!e.message().is_empty(), "an error without a message");
            return;
        }
    };
    let volatile = vol.stats().journal_bytes == 0;
    let mut kept = exercise(&vol);
    if volatile {
        kept.clear();
    }
    drop(vol);
    let again = open(&devs).unwrap_or_else(|e| {
        panic!("a volume that opened, used and closed does not open again: {e}")
    });
    let ids: Vec<SnapshotId> = again.snapshots().iter().map(|s| s.id).collect();
    assert_eq!(ids, kept, "snapshots after the second open");
}

/// Refusals a volume on bad but accepted metadata may give.
fn tolerable(r: cow_engine::Result<()>, what: &str) {
    if let Err(e) = r {
        assert!(
            matches!(e.kind(), ErrorKind::NoSpace | ErrorKind::BadState),
            "{what} failed with kind {:?}: {e}",
            e.kind()
        );
    }
}

fn read_all(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut buf = vec![0u8; dev.len() as usize];
    dev.read_at(&mut buf, 0).expect("read a whole image");
    buf
}

/// Uses a freshly opened volume; returns the ids of the persistent snapshots it should have on
/// the next open.
fn exercise(vol: &Volume) -> Vec<SnapshotId> {
    let len = vol.len();
    let bs = u64::from(vol.block_size());
    for info in vol.snapshots() {
        assert!(
            info.len <= len,
            "snapshot {} is larger than its volume",
            info.id
        );
        read_all(&vol.snapshot(info.id).expect("snapshot handle"));
    }
    read_all(vol);
    if let Some((id, _)) = vol.pending_revert() {
        match vol.revert(id, &Progress::new()) {
            Ok(()) => {}
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::NoSpace | ErrorKind::NotFound),
                "resumed revert failed with kind {:?}: {e}",
                e.kind()
            ),
        }
    }
    // An origin write must not change a snapshot taken before it.
    let snap = vol
        .create_snapshot(SnapshotOptions::writable_persistent())
        .expect("create a snapshot");
    let handle = vol.snapshot(snap).expect("snapshot handle");
    let before = read_all(&handle);
    let tail = len.saturating_sub(100);
    for off in [0, tail, len / 2] {
        tolerable(
            vol.write_at(&[0xAB; 100][..(len - off).min(100) as usize], off),
            "origin write",
        );
    }
    if vol.snapshot_info(snap).is_ok() {
        assert!(
            read_all(&handle) == before,
            "an origin write changed the snapshot taken before it"
        );
    }
    for info in vol.snapshots() {
        let s = vol.snapshot(info.id).expect("snapshot handle");
        let data = [0xCD; 50];
        for off in [0, info.len.saturating_sub(50), bs - 10] {
            let n = (info.len.saturating_sub(off)).min(50) as usize;
            if n == 0 {
                continue;
            }
            match s.write_at(&data[..n], off) {
                Ok(()) => {
                    let mut back = vec![0u8; n];
                    s.read_at(&mut back, off).expect("snapshot read back");
                    assert!(
                        back == data[..n],
                        "snapshot {} write does not read back",
                        info.id
                    );
                }
                Err(e) => tolerable(Err(e), "snapshot write"),
            }
        }
        read_all(&s);
        let _ = vol.changed_blocks(info.id, None).expect("changed blocks");
    }
    if let Some(oldest) = vol.snapshots().first() {
        if oldest.pinned {
            // A pinned snapshot is refused until unpinned.
            let e = vol.delete_snapshot(oldest.id).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::BadState,
                "delete of a pinned snapshot: {e}"
            );
            vol.set_pinned(oldest.id, false)
                .expect("unpin the oldest snapshot");
        }
        vol.delete_snapshot(oldest.id)
            .expect("delete the oldest snapshot");
    }
    vol.flush().expect("flush");
    vol.checkpoint().expect("checkpoint");
    vol.snapshots()
        .iter()
        .filter(|s| s.persistent)
        .map(|s| s.id)
        .collect()
}
