//! The `volume_ops` target: volume operations against a model, with injected I/O failures and
//! crashes.
//!
//! Input: three header bytes, then operations ([`Op::decode`]) until the input ends (at most
//! [`MAX_OPS`]).
//!
//! - byte 0: volume size `16 + (b & 63) % 49` blocks of 4 KiB; `b & 0xc0 == 0xc0` = volatile.
//! - byte 1: diff limit `(b & 63)` blocks (0 = none); bit 6 = fail writes when full, else delete
//!   oldest.
//! - byte 2: if nonzero, the I/O failure countdown during format (`b % 16`).
//!
//! The model keeps, for the origin and for every snapshot, the live bytes and the writes since
//! the last durable point (any of which a crash may keep, drop or tear).
//!
//! - Without a failure every read must match the model exactly, and refusals are only those the
//!   configuration allows (out of diff space with a limit, writes to read-only snapshots).
//! - After a *transient* failure (one device call fails, the devices go on) the volume must stay
//!   consistent: snapshots unchanged, the failed write's bytes old or new, the failed operation
//!   without effect in memory (but a deletion whose giving back of free space failed, which is
//!   documented to delete all the same, durably); later operations may fail with `Io` (a failed
//!   journal refuses work until reopened).
//! - After the devices *die* (or a power loss, or a close) they are rebuilt from what a crash
//!   could leave and the volume is reopened: every snapshot whose creation was acknowledged must
//!   be there (unless deleted, or a failed deletion may have gone through), only snapshots whose
//!   creation failed may appear, each with its point-in-time image exact and each byte of its
//!   own writes either the last durable value or one written since; the same for the origin.

use std::sync::Arc;

use cow_engine::events::{Delivery, Subscription};
use cow_engine::{
    BlockDevice, DiffFullPolicy, Durability, ErrorKind, Event, Progress, SnapshotId,
    SnapshotOptions, Volume, VolumeConfig,
};

use super::input::{Input, Rng};
use crate::crash_sim::{self as sim, CrashMode, Fault, Log, SimDevice};

/// Set to print each operation and its outcome to stderr (for reading a failing input).
pub static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn tracing() -> bool {
    TRACE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Block size of every fuzzed volume.
pub const BS: usize = 4096;
/// Operations decoded from one input at most.
pub const MAX_OPS: usize = 64;
/// The origin never grows past this many blocks.
const MAX_BLOCKS: usize = 80;

/// One decoded operation. Fields are raw fuzz bytes, interpreted against the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write the origin: start block, offset within it, length code, data seed.
    Write {
        /// Start block (modulo the volume's blocks).
        block: u8,
        /// Byte offset inside the block: 0 if < 128, else scattered.
        within: u8,
        /// Length: 1-3 whole blocks if < 128, else 1..8192 bytes.
        len: u8,
        /// Seed of the data.
        seed: u8,
    },
    /// Discard whole blocks of the origin.
    Discard {
        /// Start block.
        block: u8,
        /// Blocks: 1 + n % 4.
        blocks: u8,
    },
    /// Take a snapshot. Flags: bit 0 writable, bit 1 non-persistent, bit 2 pinned.
    Create {
        /// Option bits.
        flags: u8,
    },
    /// Write a snapshot (refused if read-only).
    SnapWrite {
        /// Which live snapshot (modulo their count, oldest first).
        which: u8,
        /// Start block.
        block: u8,
        /// Offset inside the block.
        within: u8,
        /// Length code.
        len: u8,
        /// Seed of the data.
        seed: u8,
    },
    /// Delete a snapshot.
    Delete {
        /// Which live snapshot.
        which: u8,
    },
    /// `Volume::flush`.
    Flush,
    /// `Volume::checkpoint`.
    Checkpoint,
    /// Drop the volume (a clean close) and open it again. If `fail` is nonzero the open runs with
    /// a failure countdown of `fail & 63`, and if the open fails the crash mode is `fail >> 6`.
    Reopen {
        /// Failure countdown and crash mode for the open.
        fail: u8,
    },
    /// Power loss (by [`CrashMode::from_byte`]), then open.
    Crash {
        /// The crash mode byte.
        mode: u8,
    },
    /// Arm the failure countdown: the `(after & 127) % 48`-th next mutating device call fails.
    /// With bit 7 of `after` set the failure is transient: that one call fails and the devices
    /// go on working (the volume must stay consistent; the journal may refuse further work);
    /// otherwise the devices die and the machine crashes.
    Arm {
        /// Calls before the failure; bit 7: transient.
        after: u8,
        /// How much of a failing write is left (in 256ths).
        tear: u8,
    },
    /// Pin or unpin a snapshot.
    Pin {
        /// Which live snapshot.
        which: u8,
        /// The new pinned flag.
        pinned: bool,
    },
    /// Replace a snapshot's metadata.
    Metadata {
        /// Which live snapshot.
        which: u8,
        /// Blob length, modulo 40.
        len: u8,
        /// Seed of the blob.
        seed: u8,
    },
    /// Revert the origin to a snapshot.
    Revert {
        /// Which live snapshot.
        which: u8,
    },
    /// Grow the origin by `1 + n % 4` blocks (up to a cap).
    Grow {
        /// Blocks code.
        blocks: u8,
    },
    /// Compare every image with the model.
    Verify,
}

const OPCODES: u8 = 15;

impl Op {
    /// Decodes one operation.
    pub fn decode(inp: &mut Input<'_>) -> Op {
        match inp.u8() % OPCODES {
            0 => Op::Write {
                block: inp.u8(),
                within: inp.u8(),
                len: inp.u8(),
                seed: inp.u8(),
            },
            1 => Op::Discard {
                block: inp.u8(),
                blocks: inp.u8(),
            },
            2 => Op::Create { flags: inp.u8() },
            3 => Op::SnapWrite {
                which: inp.u8(),
                block: inp.u8(),
                within: inp.u8(),
                len: inp.u8(),
                seed: inp.u8(),
            },
            4 => Op::Delete { which: inp.u8() },
            5 => Op::Flush,
            6 => Op::Checkpoint,
            7 => Op::Reopen { fail: inp.u8() },
            8 => Op::Crash { mode: inp.u8() },
            9 => Op::Arm {
                after: inp.u8(),
                tear: inp.u8(),
            },
            10 => Op::Pin {
                which: inp.u8(),
                pinned: inp.u8() & 1 != 0,
            },
            11 => Op::Metadata {
                which: inp.u8(),
                len: inp.u8(),
                seed: inp.u8(),
            },
            12 => Op::Revert { which: inp.u8() },
            13 => Op::Grow { blocks: inp.u8() },
            _ => Op::Verify,
        }
    }

    /// Appends the bytes [`Op::decode`] reads back as this operation.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Op::Write {
                block,
                within,
                len,
                seed,
            } => out.extend_from_slice(&[0, block, within, len, seed]),
            Op::Discard { block, blocks } => out.extend_from_slice(&[1, block, blocks]),
            Op::Create { flags } => out.extend_from_slice(&[2, flags]),
            Op::SnapWrite {
                which,
                block,
                within,
                len,
                seed,
            } => out.extend_from_slice(&[3, which, block, within, len, seed]),
            Op::Delete { which } => out.extend_from_slice(&[4, which]),
            Op::Flush => out.push(5),
            Op::Checkpoint => out.push(6),
            Op::Reopen { fail } => out.extend_from_slice(&[7, fail]),
            Op::Crash { mode } => out.extend_from_slice(&[8, mode]),
            Op::Arm { after, tear } => out.extend_from_slice(&[9, after, tear]),
            Op::Pin { which, pinned } => out.extend_from_slice(&[10, which, u8::from(pinned)]),
            Op::Metadata { which, len, seed } => out.extend_from_slice(&[11, which, len, seed]),
            Op::Revert { which } => out.extend_from_slice(&[12, which]),
            Op::Grow { blocks } => out.extend_from_slice(&[13, blocks]),
            Op::Verify => out.push(14),
        }
    }
}

/// The volume header bytes (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Size and durability byte.
    pub size: u8,
    /// Diff limit and policy byte.
    pub limit: u8,
    /// Failure countdown during format (0 = none).
    pub format_fail: u8,
}

impl Header {
    /// The three bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.size, self.limit, self.format_fail]);
    }
}

/// A write to an image (done, or attempted and failed) since the last durable point.
#[derive(Debug, Clone)]
struct Change {
    off: usize,
    new: Vec<u8>,
    /// The live bytes it replaced (the same bytes if it was only attempted).
    old: Vec<u8>,
}

/// What the model knows of one image (the origin or a snapshot): the live bytes, and the writes
/// since the last durable point, each of which a crash may keep, drop or tear. The durable bytes
/// are the live ones with those writes undone, so a durable point costs nothing.
#[derive(Debug, Clone)]
struct Image {
    live: Vec<u8>,
    since: Vec<Change>,
}

impl Image {
    fn new(bytes: Vec<u8>) -> Self {
        Image {
            live: bytes,
            since: Vec::new(),
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        let range = off..off + data.len();
        let old = self.live[range.clone()].to_vec();
        self.live[range].copy_from_slice(data);
        self.since.push(Change {
            off,
            new: data.to_vec(),
            old,
        });
    }

    /// Notes a write that may or may not have happened (a failed one).
    fn maybe_write(&mut self, off: usize, data: &[u8]) {
        self.since.push(Change {
            off,
            new: data.to_vec(),
            old: self.live[off..off + data.len()].to_vec(),
        });
    }

    fn durable(&mut self) {
        self.since.clear();
    }

    /// Grows the image with zeros (durable as such).
    fn grow(&mut self, len: usize) {
        debug_assert!(len >= self.live.len());
        self.live.resize(len, 0);
    }

    /// The bytes known durable.
    fn base(&self) -> Vec<u8> {
        let mut b = self.live.clone();
        for c in self.since.iter().rev() {
            b[c.off..c.off + c.old.len()].copy_from_slice(&c.old);
        }
        b
    }

    /// Checks that every byte of `actual` is `reference`'s or one written since.
    fn check_candidates(&self, actual: &[u8], reference: &[u8], what: &str) {
        assert_eq!(actual.len(), reference.len(), "{what}: length");
        // Slices are compared a block at a time (memcmp) and only differing blocks byte by byte:
        // fuzz builds instrument every comparison.
        for (blk, (ab, rb)) in actual.chunks(BS).zip(reference.chunks(BS)).enumerate() {
            if ab != rb {
                self.check_block(ab, rb, blk * BS, what);
            }
        }
    }

    fn check_block(&self, actual: &[u8], reference: &[u8], start: usize, what: &str) {
        for (i, (&a, &r)) in actual.iter().zip(reference).enumerate() {
            let i = start + i;
            if a != r
                && !self
                    .since
                    .iter()
                    .any(|c| i >= c.off && i < c.off + c.new.len() && c.new[i - c.off] == a)
            {
                panic!(
                    "{what}: byte {i} (block {}) reads {a:#04x}; expected {r:#04x} or a byte \
                     written since the last durable point ({} writes)",
                    i / BS,
                    self.since.len()
                );
            }
        }
    }

    /// After a crash: check `actual` against what may have survived, then take it as the truth.
    fn recover(&mut self, actual: Vec<u8>, what: &str) {
        self.check_candidates(&actual, &self.base(), what);
        self.live = actual;
        self.since.clear();
    }

    /// Without a crash, after an operation that failed partway: each byte the old live one or
    /// the attempted write's; the attempt stays a candidate for a later crash.
    fn settle_partial(&mut self, actual: Vec<u8>, off: usize, data: Vec<u8>, what: &str) {
        let attempt = Change {
            off,
            old: self.live[off..off + data.len()].to_vec(),
            new: data,
        };
        let probe = Image {
            live: Vec::new(),
            since: vec![attempt.clone()],
        };
        probe.check_candidates(&actual, &self.live, what);
        self.live = actual;
        self.since.push(attempt);
    }
}

#[derive(Debug, Clone)]
struct SnapModel {
    id: SnapshotId,
    writable: bool,
    persistent: bool,
    pinned: bool,
    metadata: Vec<u8>,
    image: Image,
}

/// What failed operations may or may not have done, resolved at the next restart.
#[derive(Debug, Default)]
struct Doubt {
    /// Snapshots whose creation failed (each may exist, with this image and these properties;
    /// told apart by their metadata, unique per operation).
    created: Vec<SnapModel>,
    /// Snapshots whose deletion may have gone through.
    gone: Vec<SnapshotId>,
    /// Pinned flags that may have changed.
    pinned: Vec<(SnapshotId, bool)>,
    /// Metadata that may have changed.
    metadata: Vec<(SnapshotId, Vec<u8>)>,
    /// Sizes the origin may have grown to.
    len: Vec<usize>,
}

/// Devices: origin, diff, journal 0, journal 1.
type Devices = [Arc<SimDevice>; 4];

struct World {
    fault: Arc<Fault>,
    devs: Devices,
    vol: Option<Volume>,
    events: Option<Subscription<Event>>,
    journaled: bool,
    /// A write short of diff space deletes the oldest unpinned snapshot (limit + DeleteOldest).
    makes_room: bool,
    origin: Image,
    snaps: Vec<SnapModel>,
    /// Operations run so far (salts seeds).
    step: u64,
    stats: Stats,
    /// A diff limit is set: writes needing diff space may be refused.
    limited: bool,
    /// What failed operations since the last restart may have done.
    doubt: Doubt,
    /// A transient failure fired since the last restart: the journal may have failed for good
    /// (later operations may fail with `Io`) and a close may not flush.
    failed_since_restart: bool,
}

/// The simulated devices' size cap: a resize past it is refused with `NoSpace` (a fuzzed
/// configuration must not make the simulation allocate without bound).
const MAX_DEVICE_LEN: u64 = 1 << 30;

/// Devices holding `images` (durable), sharing the failure countdown `fault` and one log that
/// keeps only what each device has not flushed (all a crash image needs). Without discard
/// support: the engine zeroes ranges by writing, as the model expects.
fn devices_from(images: [sim::Image; 4], fault: &Arc<Fault>) -> Devices {
    let log = Log::since_flush();
    let mut id = 0;
    images.map(|img| {
        id += 1;
        SimDevice::with_image(id - 1, &log, img, true)
            .with_fault(fault)
            .with_max_len(MAX_DEVICE_LEN)
            .without_discard()
    })
}

fn as_dyn(d: &Arc<SimDevice>) -> Arc<dyn BlockDevice> {
    d.clone()
}

/// What one run went through (for seed checks and replay summaries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations decoded and run.
    pub ops: usize,
    /// Injected I/O failures that fired.
    pub failures: usize,
    /// Crashes and reopens, each followed by a recovery check.
    pub restarts: usize,
    /// Operations refused cleanly (diff area full, read-only snapshot).
    pub refusals: usize,
    /// Operations failed with `Io` after a transient failure (a failed journal refuses work).
    pub io_errors: usize,
    /// Snapshots deleted by the volume to make room.
    pub auto_deleted: usize,
    /// Snapshots acknowledged.
    pub snapshots: usize,
}

/// Runs one `volume_ops` input. Panics when the volume disagrees with the model.
pub fn run(data: &[u8]) {
    run_with_stats(data);
}

/// [`run`], telling what happened.
pub fn run_with_stats(data: &[u8]) -> Stats {
    let mut inp = Input::new(data);
    let header = Header {
        size: inp.u8(),
        limit: inp.u8(),
        format_fail: inp.u8(),
    };
    let blocks = 16 + usize::from(header.size & 63) % 49;
    let config = VolumeConfig {
        block_size: BS as u32,
        diff_limit: (header.limit & 63 != 0).then(|| u64::from(header.limit & 63) * BS as u64),
        on_diff_full: if header.limit & 0x40 != 0 {
            DiffFullPolicy::FailWrites
        } else {
            DiffFullPolicy::DeleteOldest
        },
        durability: if header.size & 0xc0 == 0xc0 {
            Durability::Volatile
        } else {
            Durability::Persistent
        },
    };
    let fault = Fault::new();
    if header.format_fail != 0 {
        fault.arm(u32::from(header.format_fail % 16), 128, false);
    }
    let devs = devices_from(
        [(blocks * BS) as u64, 0, 0, 0].map(sim::Image::zeros),
        &fault,
    );
    let created = Volume::create_on_devices(
        as_dyn(&devs[0]),
        as_dyn(&devs[1]),
        [as_dyn(&devs[2]), as_dyn(&devs[3])],
        config.clone(),
    );
    let vol = match created {
        Ok(v) if !fault.is_dead() => v,
        result => {
            // Format failed (or its last write did): what a crash leaves must open cleanly or
            // be refused with an error, and an opened volume must be empty and usable.
            drop(result);
            assert!(fault.is_dead(), "format failed without an I/O failure");
            let mode = CrashMode::from_byte(inp.u8(), 0);
            let images = devs.each_ref().map(|d| d.crash_image(mode));
            let fresh = Fault::new();
            let devs = devices_from(images, &fresh);
            if let Ok(v) = Volume::open_on_devices(
                as_dyn(&devs[0]),
                as_dyn(&devs[1]),
                [as_dyn(&devs[2]), as_dyn(&devs[3])],
            ) {
                assert!(
                    v.snapshots().is_empty(),
                    "a half-formatted volume has snapshots"
                );
                assert_eq!(v.len(), (blocks * BS) as u64);
                v.write_at(&[7; 100], 0)
                    .expect("write to a recovered volume");
                v.flush().expect("flush of a recovered volume");
            }
            return Stats {
                failures: 1,
                restarts: 1,
                ..Stats::default()
            };
        }
    };
    let events = vol.subscribe();
    let mut w = World {
        fault,
        devs,
        vol: Some(vol),
        events: Some(events),
        journaled: config.durability == Durability::Persistent,
        makes_room: config.diff_limit.is_some()
            && config.on_diff_full == DiffFullPolicy::DeleteOldest,
        origin: Image::new(vec![0; blocks * BS]),
        snaps: Vec::new(),
        step: 0,
        stats: Stats::default(),
        limited: config.diff_limit.is_some(),
        doubt: Doubt::default(),
        failed_since_restart: false,
    };
    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        let op = Op::decode(&mut inp);
        w.apply(op, &mut inp);
        ops += 1;
    }
    w.stats.ops = ops;
    w.verify_live();
    // End with a clean close or a power loss, and check what reopens.
    let last = inp.u8();
    if last & 1 == 0 {
        w.reopen(0, &mut inp);
    } else {
        w.crash(CrashMode::from_byte(last >> 1, w.step));
    }
    w.stats
}

/// Decodes an offset and length inside an image of `size` bytes.
fn range(size: usize, block: u8, within: u8, len: u8) -> (usize, usize) {
    let blocks = size / BS;
    let start = (usize::from(block) % blocks) * BS
        + if within < 128 {
            0
        } else {
            usize::from(within) * 37 % BS
        };
    let len = if len < 128 {
        BS * (1 + usize::from(len) % 3)
    } else {
        1 + usize::from(len) * 97 % (2 * BS)
    };
    (start, len.min(size - start))
}

impl World {
    fn vol(&self) -> &Volume {
        self.vol.as_ref().expect("volume open")
    }

    fn snap_index(&self, which: u8) -> Option<usize> {
        (!self.snaps.is_empty()).then(|| usize::from(which) % self.snaps.len())
    }

    fn find(&self, id: SnapshotId) -> usize {
        self.snaps
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_else(|| panic!("snapshot {id} not in the model"))
    }

    /// Takes the deletions the volume announced (diff area full) into the model.
    fn drain_events(&mut self) {
        let Some(rx) = &self.events else { return };
        let deleted: Vec<SnapshotId> = std::iter::from_fn(|| rx.try_recv())
            .filter_map(|d| match d {
                Delivery::Event(Event::SnapshotDeleted { snapshot: id, .. }) => Some(id),
                Delivery::Event(_) => None,
                Delivery::Lagged(n) => panic!("the model missed {n} events"),
            })
            .collect();
        for id in deleted {
            let i = self.find(id);
            assert!(
                !self.snaps[i].pinned,
                "pinned snapshot {id} deleted to make room"
            );
            assert!(
                self.snaps[..i].iter().all(|s| s.pinned),
                "snapshot {id} deleted to make room while an older one is unpinned"
            );
            self.snaps.remove(i);
            self.stats.auto_deleted += 1;
        }
    }

    /// A flush (or clean close): every snapshot write so far is durable. The model takes writes as
    /// durable only where the engine documents it (flush, close, a persistent snapshot's
    /// creation for the origin, the end of a revert), not where its current code happens to sync.
    fn synced(&mut self) {
        if self.journaled {
            for s in &mut self.snaps {
                s.image.durable();
            }
        }
    }

    /// The snapshot `make_room` would delete next, if a failed write may have called it.
    fn oldest_unpinned(&self) -> Vec<SnapshotId> {
        if !self.makes_room {
            return Vec::new();
        }
        self.snaps
            .iter()
            .find(|s| !s.pinned)
            .map(|s| s.id)
            .into_iter()
            .collect()
    }

    fn read_origin(&self) -> Vec<u8> {
        let vol = self.vol();
        let mut buf = vec![0u8; vol.len() as usize];
        vol.read_at(&mut buf, 0).expect("origin read");
        buf
    }

    fn read_snap(&self, id: SnapshotId) -> Vec<u8> {
        let s = self.vol().snapshot(id).expect("snapshot handle");
        let mut buf = vec![0u8; s.len() as usize];
        s.read_at(&mut buf, 0).expect("snapshot read");
        buf
    }

    /// What an error of an operation is: a refusal the model allows (`refusals`), or an I/O
    /// failure (one fired during the operation, or `Io` after an earlier transient failure,
    /// which may have failed the journal for good). Anything else is a bug.
    fn classify(&self, e: &cow_engine::Error, refusals: &[ErrorKind], what: &str) -> Failure {
        if self.fault.fired() || (self.failed_since_restart && e.kind() == ErrorKind::Io) {
            Failure::Io
        } else if refusals.contains(&e.kind()) {
            Failure::Refused
        } else {
            panic!("{what} failed without an I/O failure: {e}");
        }
    }

    /// The refusals of an operation that may need diff space.
    fn space(&self) -> &'static [ErrorKind] {
        if self.limited {
            &[ErrorKind::NoSpace]
        } else {
            &[]
        }
    }

    fn alive(&self) -> bool {
        !self.fault.is_dead()
    }

    /// After a failed origin write or revert: on a live volume each byte is the old one or the
    /// attempt's (a torn write); after a crash, the attempt is one more candidate.
    fn origin_attempt(&mut self, off: usize, data: Vec<u8>, what: &str) {
        if self.alive() {
            let actual = self.read_origin();
            self.origin.settle_partial(actual, off, data, what);
        } else {
            self.origin.maybe_write(off, &data);
        }
    }

    fn apply(&mut self, op: Op, inp: &mut Input<'_>) {
        self.step += 1;
        let salt = self.step.wrapping_mul(0x9E37_79B9);
        let result: cow_engine::Result<()> = match op.clone() {
            Op::Write {
                block,
                within,
                len,
                seed,
            } => {
                let (off, len) = range(self.origin.live.len(), block, within, len);
                let data = Rng::from_state(u64::from(seed) ^ salt).bytes(len);
                let r = self.vol().write_at(&data, off as u64);
                self.drain_events();
                match &r {
                    Ok(()) => {
                        self.origin.write(off, &data);
                        let mut back = vec![0u8; len];
                        self.vol()
                            .read_at(&mut back, off as u64)
                            .expect("read back");
                        assert!(back == data, "origin write at {off} does not read back");
                    }
                    Err(e) => match self.classify(e, self.space(), "origin write") {
                        Failure::Refused => {
                            // Nothing of a write refused for space is written.
                            let mut back = vec![0u8; len];
                            self.vol()
                                .read_at(&mut back, off as u64)
                                .expect("read back");
                            assert!(
                                back == self.origin.live[off..off + len],
                                "a refused origin write changed the origin"
                            );
                        }
                        Failure::Io => {
                            self.doubt.gone.extend(self.oldest_unpinned());
                            self.origin_attempt(off, data, "origin after a failed write");
                        }
                    },
                }
                r
            }
            Op::Discard { block, blocks } => {
                let size = self.origin.live.len();
                let off = (usize::from(block) % (size / BS)) * BS;
                let len = (BS * (1 + usize::from(blocks) % 4)).min(size - off);
                let r = self.vol().discard(off as u64, len as u64);
                self.drain_events();
                match &r {
                    Ok(()) => self.origin.write(off, &vec![0u8; len]),
                    Err(e) => match self.classify(e, self.space(), "discard") {
                        Failure::Refused => {}
                        Failure::Io => {
                            self.doubt.gone.extend(self.oldest_unpinned());
                            self.origin_attempt(off, vec![0; len], "origin after a failed discard");
                        }
                    },
                }
                r
            }
            Op::Create { flags } => {
                let options = SnapshotOptions {
                    writable: flags & 1 != 0,
                    persistent: flags & 2 == 0,
                    pinned: flags & 4 != 0,
                    metadata: format!("snap@{}", self.step).into_bytes(),
                };
                let model = SnapModel {
                    id: SnapshotId::new(0),
                    writable: options.writable,
                    // Documented: without a journal no snapshot survives a reopen, and its
                    // properties say so.
                    persistent: options.persistent && self.journaled,
                    pinned: options.pinned,
                    metadata: options.metadata.clone(),
                    image: Image::new(self.origin.live.clone()),
                };
                let r = self.vol().create_snapshot(options);
                self.drain_events();
                match r {
                    Ok(id) => {
                        assert!(
                            self.snaps.iter().all(|s| s.id < id),
                            "snapshot id {id} not above the older ones"
                        );
                        self.snaps.push(SnapModel { id, ..model });
                        self.stats.snapshots += 1;
                        if model_persistent_sync(self.journaled, &self.snaps) {
                            // Documented: a persistent snapshot's image includes every origin
                            // write completed before it, so those are durable now.
                            self.origin.durable();
                        }
                        Ok(())
                    }
                    Err(e) => {
                        self.classify(&e, &[], "create");
                        self.doubt.created.push(model);
                        Err(e)
                    }
                }
            }
            Op::SnapWrite {
                which,
                block,
                within,
                len,
                seed,
            } => match self.snap_index(which) {
                None => Ok(()),
                Some(i) => {
                    let id = self.snaps[i].id;
                    let (off, len) = range(self.snaps[i].image.live.len(), block, within, len);
                    let data = Rng::from_state(u64::from(seed) ^ salt ^ 0x5A).bytes(len);
                    let r = self
                        .vol()
                        .snapshot(id)
                        .and_then(|s| s.write_at(&data, off as u64));
                    let writable = self.snaps[i].writable;
                    match &r {
                        Ok(()) => {
                            assert!(writable, "a read-only snapshot accepted a write");
                            self.snaps[i].image.write(off, &data);
                            let mut back = vec![0u8; len];
                            self.vol()
                                .snapshot(id)
                                .and_then(|s| s.read_at(&mut back, off as u64))
                                .expect("read back");
                            assert!(back == data, "snapshot {id} write does not read back");
                        }
                        Err(e) if !writable => {
                            // Refused as read-only (or, once the journal has failed, as that).
                            let io_after_failure =
                                self.failed_since_restart && e.kind() == ErrorKind::Io;
                            assert!(
                                e.kind() == ErrorKind::BadState || io_after_failure,
                                "read-only write: {e}"
                            );
                        }
                        Err(e) => {
                            self.classify(e, self.space(), "snapshot write");
                            // Pieces before the one refused or failed may be written.
                            if self.alive() {
                                let actual = self.read_snap(id);
                                self.snaps[i].image.settle_partial(
                                    actual,
                                    off,
                                    data,
                                    "snapshot after a failed write",
                                );
                            } else {
                                self.snaps[i].image.maybe_write(off, &data);
                            }
                        }
                    }
                    r
                }
            },
            Op::Delete { which } => match self.snap_index(which) {
                None => Ok(()),
                Some(i) => {
                    let id = self.snaps[i].id;
                    let r = self.vol().delete_snapshot(id);
                    self.drain_events();
                    match &r {
                        // A pinned snapshot is refused (unpin first) and stays.
                        Err(e) if self.snaps[i].pinned && !self.fault.fired() => {
                            assert_eq!(e.kind(), ErrorKind::BadState, "delete of pinned {id}: {e}");
                            assert!(self.vol().snapshot(id).is_ok(), "pinned {id} deleted");
                        }
                        Ok(()) => {
                            assert!(!self.snaps[i].pinned, "pinned snapshot {id} deleted");
                            self.snaps.remove(i);
                            assert!(
                                self.vol().snapshot(id).is_err(),
                                "deleted snapshot {id} still opens"
                            );
                        }
                        Err(e) => {
                            self.classify(e, &[], "delete");
                            if self.alive() && self.vol().snapshot(id).is_err() {
                                // Documented: when giving the freed space back fails, the
                                // snapshot is deleted all the same, durably (a crash that brings
                                // it back is caught: it is no longer in doubt).
                                self.snaps.remove(i);
                            } else {
                                self.doubt.gone.push(id);
                            }
                        }
                    }
                    r
                }
            },
            Op::Flush => {
                let r = self.vol().flush();
                match &r {
                    Ok(()) => {
                        self.origin.durable();
                        self.synced();
                    }
                    Err(e) => {
                        self.classify(e, &[], "flush");
                    }
                }
                r
            }
            Op::Checkpoint => {
                let r = self.vol().checkpoint();
                if let Err(e) = &r {
                    self.classify(e, &[], "checkpoint");
                }
                r
            }
            Op::Reopen { fail } => {
                self.reopen(fail, inp);
                Ok(())
            }
            Op::Crash { mode } => {
                self.crash(CrashMode::from_byte(mode, salt));
                Ok(())
            }
            Op::Arm { after, tear } => {
                let transient = after & 0x80 != 0;
                self.fault
                    .arm(u32::from((after & 0x7f) % 48), tear, transient);
                Ok(())
            }
            Op::Pin { which, pinned } => match self.snap_index(which) {
                None => Ok(()),
                Some(i) => {
                    let id = self.snaps[i].id;
                    let r = self.vol().set_pinned(id, pinned);
                    match &r {
                        Ok(()) => self.snaps[i].pinned = pinned,
                        Err(e) => {
                            self.classify(e, &[], "set_pinned");
                            self.doubt.pinned.push((id, pinned));
                        }
                    }
                    r
                }
            },
            Op::Metadata { which, len, seed } => match self.snap_index(which) {
                None => Ok(()),
                Some(i) => {
                    let id = self.snaps[i].id;
                    let blob = Rng::from_state(u64::from(seed) ^ salt).bytes(usize::from(len % 40));
                    let r = self.vol().set_metadata(id, &blob);
                    match &r {
                        Ok(()) => self.snaps[i].metadata = blob,
                        Err(e) => {
                            self.classify(e, &[], "set_metadata");
                            self.doubt.metadata.push((id, blob));
                        }
                    }
                    r
                }
            },
            Op::Revert { which } => match self.snap_index(which) {
                None => Ok(()),
                Some(i) => {
                    let id = self.snaps[i].id;
                    let target = self.snaps[i].image.live.clone();
                    let r = self.vol().revert(id, &Progress::new());
                    self.drain_events();
                    match &r {
                        Ok(()) => {
                            // Documented: a revert ends with a flush of the origin.
                            self.origin.write(0, &target);
                            self.origin.durable();
                        }
                        Err(e) => {
                            // Out of space partway, the target deleted to make room, or an I/O
                            // failure: each block reverted or not.
                            let target_gone = !self.snaps.iter().any(|s| s.id == id);
                            let refusals: &[ErrorKind] = match (self.limited, target_gone) {
                                (true, true) => &[ErrorKind::NoSpace, ErrorKind::NotFound],
                                (true, false) => &[ErrorKind::NoSpace],
                                (false, _) => &[],
                            };
                            if let Failure::Io = self.classify(e, refusals, "revert") {
                                self.doubt.gone.extend(self.oldest_unpinned());
                            }
                            self.origin_attempt(0, target, "origin after a failed revert");
                        }
                    }
                    r
                }
            },
            Op::Grow { blocks } => {
                let old = self.origin.live.len();
                let new = (old + BS * (1 + usize::from(blocks) % 4)).min(MAX_BLOCKS * BS);
                let r = self.vol().grow(new as u64);
                match &r {
                    Ok(()) => {
                        // Only the new size is durable: earlier origin writes need a flush, as
                        // ever (the engine may still hold them, see its pending writes).
                        self.origin.grow(new);
                        assert_eq!(self.vol().len(), new as u64);
                    }
                    Err(e) => {
                        self.classify(e, &[], "grow");
                        self.doubt.len.push(new);
                    }
                }
                r
            }
            Op::Verify => {
                self.verify_live();
                Ok(())
            }
        };
        let fired = self.fault.take_fired();
        if tracing() {
            let note = match (fired, self.alive()) {
                (true, false) => " [device died]",
                (true, true) => " [transient device failure]",
                _ => "",
            };
            eprintln!("op {}: {op:?} -> {result:?}{note}", self.step);
        }
        match result.as_ref().err().map(|e| e.kind()) {
            _ if fired => self.stats.failures += 1,
            Some(ErrorKind::Io) => self.stats.io_errors += 1,
            Some(_) => self.stats.refusals += 1,
            None => {}
        }
        if !self.alive() {
            // The device failed during this operation (whether or not the engine reported it):
            // the machine goes down. What was acknowledged must survive.
            let mode = CrashMode::from_byte(inp.u8(), salt);
            self.crash(mode);
        } else if fired {
            // The device failed once and works again: the volume carries on, and everything it
            // shows must still be consistent.
            self.failed_since_restart = true;
            self.verify_live();
        }
    }

    /// Every image read now equals the model exactly.
    fn verify_live(&mut self) {
        self.drain_events();
        let vol = self.vol();
        assert_eq!(vol.len() as usize, self.origin.live.len(), "volume size");
        let ids: Vec<SnapshotId> = vol.snapshots().iter().map(|s| s.id).collect();
        let model_ids: Vec<SnapshotId> = self.snaps.iter().map(|s| s.id).collect();
        assert_eq!(ids, model_ids, "live snapshot list");
        assert!(
            self.read_origin() == self.origin.live,
            "origin differs from the model"
        );
        for s in &self.snaps {
            let info = vol.snapshot_info(s.id).expect("snapshot info");
            assert_eq!(
                (info.writable, info.persistent, info.pinned, &info.metadata),
                (s.writable, s.persistent, s.pinned, &s.metadata),
                "snapshot {} properties",
                s.id
            );
            let actual = self.read_snap(s.id);
            if actual != s.image.live {
                let i = actual
                    .iter()
                    .zip(&s.image.live)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                panic!(
                    "snapshot {} differs from the model at byte {i} (block {})",
                    s.id,
                    i / BS
                );
            }
        }
    }

    /// A clean close and open (`fail`: see [`Op::Reopen`]).
    fn reopen(&mut self, fail: u8, inp: &mut Input<'_>) {
        self.events = None;
        drop(self.vol.take());
        let fired = self.fault.take_fired();
        if !self.alive() {
            // The close's flush failed: that is a crash.
            let mode = CrashMode::from_byte(inp.u8(), self.step);
            self.restart(mode, fail);
            return;
        }
        if self.journaled && !fired && !self.failed_since_restart {
            // Dropping the last handle flushed everything.
            self.origin.durable();
            self.synced();
        }
        self.restart(CrashMode::KeepAll, fail);
    }

    /// A power loss now, then open.
    fn crash(&mut self, mode: CrashMode) {
        self.fault.kill();
        self.events = None;
        // Nothing reaches the devices any more: the close's flush fails and is ignored.
        drop(self.vol.take());
        self.restart(mode, 0);
    }

    /// Rebuilds the devices from what `mode` leaves and opens the volume, with a failure
    /// countdown during the open if `fail` says so; then checks it against the model.
    fn restart(&mut self, mode: CrashMode, fail: u8) {
        self.stats.restarts += 1;
        let doubt = std::mem::take(&mut self.doubt);
        self.failed_since_restart = false;
        if tracing() {
            eprintln!("restart: {mode:?}, open failing after {fail}, in doubt: {doubt:?}");
        }
        let mut images = self.devs.each_ref().map(|d| d.crash_image(mode));
        if fail != 0 {
            let fault = Fault::new();
            fault.arm(u32::from(fail & 63), 77, false);
            let devs = devices_from(images.clone(), &fault);
            let opened = Volume::open_on_devices(
                as_dyn(&devs[0]),
                as_dyn(&devs[1]),
                [as_dyn(&devs[2]), as_dyn(&devs[3])],
            );
            if let Err(e) = &opened {
                assert!(fault.is_dead(), "open failed without an I/O failure: {e}");
            }
            // A clean close of what opened (its flush may hit the countdown too).
            drop(opened);
            if fault.is_dead() {
                // The open failed (or a later write did): crash again and open without
                // failures; the first attempt must not have damaged anything.
                let mode = CrashMode::from_byte(fail >> 6, self.step);
                images = devs.each_ref().map(|d| d.crash_image(mode));
            } else {
                images = devs.each_ref().map(|d| d.image());
            }
        }
        self.fault = Fault::new();
        self.devs = devices_from(images, &self.fault);
        let vol = Volume::open_on_devices(
            as_dyn(&self.devs[0]),
            as_dyn(&self.devs[1]),
            [as_dyn(&self.devs[2]), as_dyn(&self.devs[3])],
        )
        .unwrap_or_else(|e| panic!("the volume does not open after a crash ({mode:?}): {e}"));
        self.events = Some(vol.subscribe());
        self.vol = Some(vol);
        self.check_recovered(doubt);
    }

    fn check_recovered(&mut self, doubt: Doubt) {
        // Snapshots that cannot survive a reopen.
        let journaled = self.journaled;
        self.snaps.retain(|s| journaled && s.persistent);
        let infos = self.vol().snapshots();
        // Gone: only those whose deletion failed may be missing.
        let present: Vec<SnapshotId> = infos.iter().map(|i| i.id).collect();
        for s in &self.snaps {
            assert!(
                present.contains(&s.id) || doubt.gone.contains(&s.id),
                "snapshot {} was acknowledged but is gone after the crash",
                s.id
            );
        }
        self.snaps.retain(|s| present.contains(&s.id));
        // New: only those whose creation failed may have appeared.
        let mut created: Vec<SnapModel> = doubt
            .created
            .into_iter()
            .filter(|c| journaled && c.persistent)
            .collect();
        for info in &infos {
            if self.snaps.iter().any(|s| s.id == info.id) {
                continue;
            }
            let Some(k) = created.iter().position(|c| c.metadata == info.metadata) else {
                panic!("snapshot {} appeared from nowhere after the crash", info.id);
            };
            let c = created.remove(k);
            assert!(
                self.snaps.iter().all(|s| s.id < info.id),
                "a snapshot whose creation failed came back as an older one"
            );
            self.snaps.push(SnapModel { id: info.id, ..c });
        }
        let ids: Vec<SnapshotId> = self.snaps.iter().map(|s| s.id).collect();
        assert_eq!(present, ids, "snapshot order after the crash");
        for (info, s) in infos.iter().zip(&mut self.snaps) {
            assert_eq!(
                (info.len as usize, info.writable, info.persistent),
                (s.image.live.len(), s.writable, true),
                "snapshot {} shape after the crash",
                s.id
            );
            let pinned_ok = info.pinned == s.pinned || doubt.pinned.contains(&(s.id, info.pinned));
            assert!(pinned_ok, "snapshot {} pinned flag after the crash", s.id);
            s.pinned = info.pinned;
            let meta_ok = info.metadata == s.metadata
                || doubt
                    .metadata
                    .iter()
                    .any(|(id, m)| *id == s.id && *m == info.metadata);
            assert!(meta_ok, "snapshot {} metadata after the crash", s.id);
            s.metadata.clone_from(&info.metadata);
        }
        for i in 0..self.snaps.len() {
            let id = self.snaps[i].id;
            let actual = self.read_snap(id);
            self.snaps[i]
                .image
                .recover(actual, &format!("snapshot {id} after the crash"));
        }
        let len = self.vol().len() as usize;
        assert!(
            len == self.origin.live.len() || doubt.len.contains(&len),
            "volume size {len} after the crash; the model says {}",
            self.origin.live.len()
        );
        if len > self.origin.live.len() {
            self.origin.grow(len);
        }
        let actual = self.read_origin();
        self.origin.recover(actual, "origin after the crash");
    }
}

/// How an operation failed.
enum Failure {
    /// A refusal the model allows (out of diff space, the target gone): no I/O failure.
    Refused,
    /// An I/O failure, now or earlier.
    Io,
}

/// True if the newest snapshot's creation made the origin and the journal durable.
fn model_persistent_sync(journaled: bool, snaps: &[SnapModel]) -> bool {
    journaled && snaps.last().is_some_and(|s| s.persistent)
}
