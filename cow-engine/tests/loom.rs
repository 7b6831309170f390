//! Loom model checks of the block-map entry protocol ([`BlockMap::claim`], [`CopyClaim::publish`],
//! dropping a claim = abort, [`BlockMap::get`]) with its parking and wake-up path, and of the
//! volume's write gate and epochs (second part of this file), and of origin writes into a full
//! diff area making room under delete-oldest (third part; what each part models is listed at its
//! head).
//!
//! Under `cfg(loom)` the crate takes its atomics from loom (see `src/sync.rs`), so loom explores
//! the interleavings of the protocol as written. Parking is modelled for real: a writer that finds
//! an entry copying sets the waiters bit and sleeps on a loom condition variable (a model of
//! `parking_lot_core`'s bucket: validation under the bucket lock, a queue of parked threads) until
//! `unpark_all` dequeues it. A wake-up that is missed therefore leaves that writer blocked for
//! good, and loom fails the model with a deadlock. Leaves hold two entries under loom, so page
//! installation by CAS is explored too.
//!
//! Run (a separate target dir keeps the loom build apart; .ci/run does this):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p cow-engine --test loom --release
//! ```
//!
//! Why the volume's I/O is transcribed rather than run (the second and third parts): under loom,
//! every lock, atomic and thread that an execution touches must be loom's, and loom explores every
//! interleaving of them. `Inner::write_origin` touches far more than the protocol under test: the
//! diff area's allocator and device (`parking_lot` mutexes, and `MemDevice`'s shard locks, taken
//! from outside `src/sync.rs`), the journal and the pending table, a thread-local copy buffer, and
//! the write gate's freeze path, which waits with a deadline (`Instant`: loom has no clock). Moving
//! all of them behind `cfg(loom)` shims would change the engine's types for a model whose state
//! space, at a dozen lock acquisitions per block, loom could not explore within CI's time anyway.
//! So the model runs the engine's block map, bitmaps and gate type for real and transcribes the
//! steps of `src/volume/io.rs` and `src/volume/room.rs` around them, minimal (one lock per origin
//! block, one over the diff slots); `tests/loom_transcript.rs`, an ordinary test, reads both
//! sources and fails when a transcribed step moves in the engine or in the model.
//!
//! Why the reader yields before each load: loom's partial-order reduction does not go back to
//! run a spawned thread before the main thread's first loads when that thread's first access to
//! the same atomic is itself a load (the conflicting CAS comes later). Without the yields every
//! execution had the reader load before any writer ran, so it only ever saw `Untouched` and the
//! reader checks were vacuous. Each model also counts, outside loom, which outcomes it saw and
//! asserts at the end that the interesting ones occurred, so such a collapse fails the test.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use cow_engine::loom_model::parked_count;
use cow_engine::map::{BlockMap, Claim, Entry};
use loom::sync::Arc;
use loom::thread;

/// The block every model fights over. Block 1 shares its leaf under loom (2 entries a leaf),
/// block 2 does not, so a claim of block 2 racing one of block 0 races two leaf installs.
const BLOCK: u64 = 0;

/// What a writer got from `claim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It won and published this slot.
    Published(u64),
    /// It won and dropped the claim (aborted the copy).
    Aborted,
    /// The block was already preserved in this slot.
    Found(u64),
}

/// Claims `BLOCK`; on a win publishes `slot`, or aborts if `abort` is set.
fn writer(map: &BlockMap, slot: u64, abort: bool) -> Outcome {
    match map.claim(BLOCK) {
        Claim::Won(c) if abort => {
            drop(c);
            Outcome::Aborted
        }
        Claim::Won(c) => {
            c.publish(slot);
            Outcome::Published(slot)
        }
        Claim::Preserved(s) => Outcome::Found(s),
    }
}

/// Two loads of `BLOCK`, each after a yield (see the module doc for why).
fn reader(map: &BlockMap) -> [Entry; 2] {
    thread::yield_now();
    let first = map.get(BLOCK);
    thread::yield_now();
    [first, map.get(BLOCK)]
}

/// Checks a reader's loads: only untouched, copying or preserved(`winner`) and, when `monotone`
/// (nobody aborts), never back from preserved.
fn check_reads(reads: &[Entry; 2], winner: u64, monotone: bool) {
    for r in reads {
        match r {
            Entry::Untouched | Entry::Copying => {}
            Entry::Preserved(s) => assert_eq!(*s, winner, "reader saw a slot nobody published"),
        }
    }
    if monotone {
        if let Entry::Preserved(_) = reads[0] {
            assert_eq!(reads[1], reads[0], "a preserved entry changed");
        }
    }
}

/// Counts of what the executions of one model saw, kept outside loom across its executions.
struct Seen([AtomicUsize; 6]);

impl Seen {
    const UNTOUCHED: usize = 0;
    const COPYING: usize = 1;
    const PRESERVED: usize = 2;

    const fn new() -> Self {
        Seen([const { AtomicUsize::new(0) }; 6])
    }

    fn note(&self, i: usize) {
        self.0[i].fetch_add(1, Relaxed);
    }

    fn reads(&self, reads: &[Entry; 2]) {
        for r in reads {
            self.note(match r {
                Entry::Untouched => Self::UNTOUCHED,
                Entry::Copying => Self::COPYING,
                Entry::Preserved(_) => Self::PRESERVED,
            });
        }
    }

    fn count(&self, i: usize) -> usize {
        self.0[i].load(Relaxed)
    }

    /// The reader must have seen each of the three states in some execution.
    fn assert_reader_saw_all(&self) {
        for (i, name) in ["untouched", "copying", "preserved"].iter().enumerate() {
            assert!(self.count(i) > 0, "no execution had the reader see {name}");
        }
    }
}

/// Two writers claim the same block and publish different slots while a reader loads it: exactly
/// one wins, the loser is handed the winner's slot, the reader sees nothing else.
#[test]
fn two_writers_one_winner() {
    static SEEN: Seen = Seen::new();
    let parked = parked_count();
    loom::model(|| {
        let map = Arc::new(BlockMap::new(4));
        let spawn = |slot| {
            let m = map.clone();
            thread::spawn(move || writer(&m, slot, false))
        };
        let a = spawn(1);
        let b = spawn(2);
        let reads = reader(&map);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());

        let winner = match (a, b) {
            (Outcome::Published(w), Outcome::Found(s))
            | (Outcome::Found(s), Outcome::Published(w)) => {
                assert_eq!(s, w, "the loser must see the winner's slot");
                w
            }
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        check_reads(&reads, winner, true);
        assert_eq!(map.get(BLOCK), Entry::Preserved(winner));
        assert_eq!(map.preserved_count(), 1);
        SEEN.reads(&reads);
        SEEN.note(2 + winner as usize); // 3 or 4
    });
    assert!(parked_count() > parked, "no execution parked a writer");
    SEEN.assert_reader_saw_all();
    assert!(
        SEEN.count(3) > 0 && SEEN.count(4) > 0,
        "each writer must win in some execution"
    );
}

/// The first writer aborts whenever it wins; the second always publishes. The abort must let the
/// second win (a parked loser wakes and retries), and no reader may see a slot from the aborter.
#[test]
fn winner_aborts_other_writer_wins() {
    static SEEN: Seen = Seen::new();
    let parked = parked_count();
    loom::model(|| {
        let map = Arc::new(BlockMap::new(4));
        let m = map.clone();
        let aborter = thread::spawn(move || writer(&m, 1, true));
        let m = map.clone();
        let publisher = thread::spawn(move || writer(&m, 2, false));
        let reads = reader(&map);
        let (a, p) = (aborter.join().unwrap(), publisher.join().unwrap());

        assert!(
            matches!(a, Outcome::Aborted | Outcome::Found(2)),
            "aborter: {a:?}"
        );
        assert_eq!(
            p,
            Outcome::Published(2),
            "the publisher must win in the end"
        );
        check_reads(&reads, 2, false);
        assert_eq!(map.get(BLOCK), Entry::Preserved(2));
        assert_eq!(map.preserved_count(), 1);
        SEEN.reads(&reads);
        if a == Outcome::Aborted {
            SEEN.note(3);
        }
    });
    assert!(parked_count() > parked, "no execution parked a writer");
    SEEN.assert_reader_saw_all();
    assert!(
        SEEN.count(3) > 0,
        "the aborter must win (and abort) in some execution"
    );
}

/// Both writers abort their first win, then retry and publish: the aborts hand the block on and
/// in the end exactly one publish holds; the other writer ends up with that slot.
#[test]
fn aborted_claims_are_retried() {
    static SEEN: Seen = Seen::new();
    let parked = parked_count();
    loom::model(|| {
        let map = Arc::new(BlockMap::new(4));
        let spawn = |slot| {
            let m = map.clone();
            thread::spawn(move || match writer(&m, slot, true) {
                Outcome::Aborted => writer(&m, slot, false),
                found => found,
            })
        };
        let a = spawn(1);
        let b = spawn(2);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());

        let winner = match (a, b) {
            (Outcome::Published(w), Outcome::Found(s))
            | (Outcome::Found(s), Outcome::Published(w)) => {
                assert_eq!(s, w, "the loser must see the winner's slot");
                w
            }
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        assert_eq!(map.get(BLOCK), Entry::Preserved(winner));
        assert_eq!(map.preserved_count(), 1);
        SEEN.note(2 + winner as usize);
    });
    assert!(parked_count() > parked, "no execution parked a writer");
    assert!(
        SEEN.count(3) > 0 && SEEN.count(4) > 0,
        "each writer must win in some execution"
    );
}

/// A claim of another block installs pages concurrently with the claim of `BLOCK`: both claims
/// succeed on the pages that won the install race, and a reader sees block 2's own slot only.
#[test]
fn concurrent_page_install() {
    loom::model(|| {
        let map = Arc::new(BlockMap::new(4));
        let m = map.clone();
        let a = thread::spawn(move || writer(&m, 1, false));
        let m = map.clone();
        let b = thread::spawn(move || match m.claim(2) {
            Claim::Won(c) => c.publish(7),
            Claim::Preserved(_) => panic!("block 2 preserved before anyone copied it"),
        });
        thread::yield_now();
        let read = map.get(2);
        assert!(matches!(
            read,
            Entry::Untouched | Entry::Copying | Entry::Preserved(7)
        ));
        assert_eq!(a.join().unwrap(), Outcome::Published(1));
        b.join().unwrap();
        assert_eq!(map.get(BLOCK), Entry::Preserved(1));
        assert_eq!(map.get(2), Entry::Preserved(7));
        assert_eq!(map.preserved_count(), 2);
    });
}

// ---------------------------------------------------------------------------------------------
// The volume's write gate and epochs.
//
// What runs for real: the gate type (`cow_engine::loom_model::RwLock`, which is what
// `crate::sync::RwLock` — the type of `Inner::state` — is under loom: loom's RwLock behind
// parking_lot's calls), the block maps (`BlockMap`: claim, parking, publish, `get`), the `copied`
// and `touched` bitmaps (`BlockBitmap`), all with the orderings in src.
//
// What is transcribed (step for step, same order, same maps and bitmaps; tests/loom_transcript.rs
// checks the order against src/volume/io.rs):
// - `Model::write` = `Inner::write_origin` + `preserve_range` + `copy_block` (src/volume/io.rs):
//   gate shared; the epoch is the newest snapshot (`st.snaps.last()`); reserve the newest map, its
//   `copied` summary and `touched`; per block in ascending order: `copied` hint, claim, on a win
//   read the origin block, allocate and fill a diff slot, set `touched`, publish, set `copied`;
//   then write the origin; release the gate.
// - `Model::create_snapshot` = `Volume::create_snapshot` / `create_snapshot_locked`: gate
//   exclusive, push a snapshot with empty maps (the new epoch), release.
// - `Model::read` = `read_frozen_piece` + `locate`: gate shared; `touched`, then the maps from
//   snapshot i on; else the origin, then recheck the newest map.
// - The origin is a lock per block (MemDevice: a lock per shard of chunks); the diff area is one
//   lock over its slots (DiffArea's allocator + the diff device). The recheck after a snapshot
//   read's origin read relies on this: an origin read that sees a write synchronises with it (a
//   lock here and in MemDevice; the kernel's page-cache locking for FileDevice's pread/pwrite),
//   so it also sees the publish the writer made before that write.
//
// Not modelled: freeze/thaw (it needs a clock; its hold is checked after the gate is taken),
// the journal, the pending table and durability (flushes, `sync_and_drain` under the exclusive
// gate), diff-area limits and `make_room` (the third part of this file models those),
// writable snapshots' overlays, partial-block writes,
// delete/grow/revert/split, and errors. Blocks are a u64 each.
// ---------------------------------------------------------------------------------------------

use cow_engine::loom_model::{LoomBitmap, RwLock};
use loom::sync::Mutex;

/// Blocks of the model volume (one leaf under loom).
const BLOCKS: u64 = 2;

/// A snapshot: the map of blocks preserved during its epoch and the `copied` summary of it.
struct Snap {
    map: BlockMap,
    copied: LoomBitmap,
}

impl Snap {
    fn new() -> Self {
        Snap {
            map: BlockMap::new(BLOCKS),
            copied: LoomBitmap::new(BLOCKS),
        }
    }
}

/// The volume's `State`, reduced to what the write protocol touches.
struct State {
    touched: LoomBitmap,
    snaps: Vec<Snap>,
}

/// Where [`Model::read`] found a block: a map on the chain (`touched` set), the newest map when
/// rechecked after the origin read, or the origin.
#[derive(Clone, Copy)]
enum ReadPath {
    Chain,
    Recheck,
    Origin,
}

struct Model {
    gate: RwLock<State>,
    origin: [Mutex<u64>; BLOCKS as usize],
    diff: Mutex<Vec<u64>>,
}

impl Model {
    /// A volume of zeros with `snaps` snapshots.
    fn new(snaps: usize) -> Self {
        Model {
            gate: RwLock::new(State {
                touched: LoomBitmap::new(BLOCKS),
                snaps: (0..snaps).map(|_| Snap::new()).collect(),
            }),
            origin: [Mutex::new(0), Mutex::new(0)],
            diff: Mutex::new(Vec::new()),
        }
    }

    /// Writes `value` to `blocks` with copy-on-write into the newest snapshot's map. Returns the
    /// epoch it wrote in (the number of snapshots it saw).
    fn write(&self, blocks: std::ops::Range<u64>, value: u64) -> usize {
        let st = self.gate.read();
        if let Some(newest) = st.snaps.last() {
            newest.map.reserve().unwrap();
            newest.copied.reserve().unwrap();
            st.touched.reserve().unwrap();
            for block in blocks.clone() {
                if newest.copied.get(block) {
                    continue;
                }
                let claim = match newest.map.claim(block) {
                    Claim::Won(c) => c,
                    Claim::Preserved(_) => {
                        newest.copied.set(block);
                        continue;
                    }
                };
                let old = *self.origin[block as usize].lock().unwrap();
                let slot = {
                    let mut diff = self.diff.lock().unwrap();
                    diff.push(old);
                    diff.len() as u64 - 1
                };
                st.touched.set(block);
                claim.publish(slot);
                newest.copied.set(block);
            }
        }
        for block in blocks {
            *self.origin[block as usize].lock().unwrap() = value;
        }
        st.snaps.len()
    }

    /// Creates a snapshot (a new epoch). Returns the origin as of that point in time, read under
    /// the exclusive gate: what the snapshot must show forever.
    fn create_snapshot(&self) -> [u64; BLOCKS as usize] {
        let mut st = self.gate.write();
        let image = [0, 1].map(|b| *self.origin[b].lock().unwrap());
        st.snaps.push(Snap::new());
        image
    }

    /// Reads `block` of snapshot `i`: the value and the path that found it.
    fn read(&self, i: usize, block: u64) -> (u64, ReadPath) {
        let st = self.gate.read();
        let slot_value = |slot: u64| self.diff.lock().unwrap()[slot as usize];
        if st.touched.get(block) {
            for s in &st.snaps[i..] {
                if let Entry::Preserved(slot) = s.map.get(block) {
                    return (slot_value(slot), ReadPath::Chain);
                }
            }
        }
        let v = *self.origin[block as usize].lock().unwrap();
        if let Entry::Preserved(slot) = st.snaps.last().unwrap().map.get(block) {
            return (slot_value(slot), ReadPath::Recheck);
        }
        (v, ReadPath::Origin)
    }

    fn image(&self, i: usize) -> [u64; BLOCKS as usize] {
        [0, 1].map(|b| self.read(i, b).0)
    }

    fn image_of_origin(&self) -> [u64; BLOCKS as usize] {
        [0, 1].map(|b| *self.origin[b].lock().unwrap())
    }
}

/// Two writers and a snapshotter on a volume that already has one snapshot (epoch 1): writer A
/// writes 1 to blocks 0 and 1, writer B writes 2 to block 1 (the two race for block 1's claim in
/// whichever epoch they share), the snapshotter starts epoch 2. Point in time: each write lies
/// entirely before or entirely after the new snapshot, as its epoch says: the new snapshot shows
/// exactly the writes of epoch 1 (for block 1 written by both in epoch 1, either value: the
/// writers are concurrent), the old one shows zeros, the origin every write.
#[test]
fn writes_are_before_or_after_a_snapshot() {
    static SEEN: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
    let parked = parked_count();
    loom::model(|| {
        let vol = Arc::new(Model::new(1));
        let v = vol.clone();
        let a = thread::spawn(move || v.write(0..2, 1));
        let v = vol.clone();
        let b = thread::spawn(move || v.write(1..2, 2));
        let image = vol.create_snapshot();
        let (a, b) = (a.join().unwrap(), b.join().unwrap());

        let (a_before, b_before) = (a == 1, b == 1);
        assert_eq!(
            image[0],
            if a_before { 1 } else { 0 },
            "A split by the snapshot"
        );
        let block1: &[u64] = match (a_before, b_before) {
            (true, true) => &[1, 2],
            (true, false) => &[1],
            (false, true) => &[2],
            (false, false) => &[0],
        };
        assert!(
            block1.contains(&image[1]),
            "image {image:?}, epochs A {a} B {b}"
        );
        assert_eq!(vol.image(1), image, "the new snapshot moved");
        assert_eq!(vol.image(0), [0, 0], "the old snapshot moved");
        let origin = vol.image_of_origin();
        assert_eq!(origin[0], 1);
        assert!(origin[1] == 1 || origin[1] == 2);
        SEEN[usize::from(a_before) * 2 + usize::from(b_before)].fetch_add(1, Relaxed);
    });
    assert!(parked_count() > parked, "no execution parked a writer");
    for (i, n) in SEEN.iter().enumerate() {
        assert!(
            n.load(Relaxed) > 0,
            "epochs (A before, B before) = {:?} never seen",
            (i >= 2, i % 2 == 1)
        );
    }
}

/// A reader of the old snapshot while a writer overwrites both blocks and a snapshotter starts a
/// new epoch: the reader sees zeros whatever it races (the origin read rechecked against the
/// newest map, the chain walk across the epochs), and the new snapshot holds the writer's data
/// exactly when the write came first.
#[test]
fn old_snapshot_reads_stay_put() {
    // [writer in epoch 1, epoch 2] then the read paths [chain, recheck, origin].
    static SEEN: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
    loom::model(|| {
        let vol = Arc::new(Model::new(1));
        let v = vol.clone();
        let w = thread::spawn(move || v.write(0..2, 1));
        let v = vol.clone();
        let s = thread::spawn(move || v.create_snapshot());
        thread::yield_now();
        let (first, path) = vol.read(0, 1);
        assert_eq!(first, 0, "the old snapshot saw a later write");
        SEEN[2 + path as usize].fetch_add(1, Relaxed);
        let (epoch, image) = (w.join().unwrap(), s.join().unwrap());
        let want = if epoch == 1 { [1, 1] } else { [0, 0] };
        assert_eq!(image, want);
        assert_eq!(vol.image(1), want);
        assert_eq!(vol.image(0), [0, 0]);
        SEEN[epoch - 1].fetch_add(1, Relaxed);
    });
    for (i, what) in [
        "writer in epoch 1",
        "writer in epoch 2",
        "read via the chain",
        "read via the recheck",
        "read from the origin",
    ]
    .iter()
    .enumerate()
    {
        assert!(SEEN[i].load(Relaxed) > 0, "never seen: {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// A full diff area under delete-oldest (issue 11 §1)
//
// What is transcribed (same order; tests/loom_transcript.rs checks it against src/volume/io.rs
// and room.rs):
// - `FullModel::write` = `Inner::write_origin`'s loop + `preserve_range` + `copy_block` for one
//   block with a slot limit: gate shared; read the count of slot frees; claim in the newest map;
//   on a win allocate a slot (`DiffArea::alloc`: refused at the limit, decided under the
//   allocator's lock), read the origin block into it and publish; refused: drop the claim
//   (abort), release the gate, make room, and on Ok start over.
// - `FullModel::make_room` = `Inner::make_room` + `room::plan` with unpinned snapshots only: gate
//   exclusive; the count of frees moved since the attempt: retry without deleting; else the
//   write's need is 1 if the newest map lacks the block, none without a snapshot; no need: retry;
//   else delete oldest first (the oldest frees every slot of its map, each free counted) until
//   what they free covers the need (none once the last snapshot goes), then retry.
// Not modelled: pinned snapshots (the plan's hand-over to a pinned elder is plain sequential code
// under the exclusive gate, unit-tested in src/volume/room.rs), `touched`, `copied`, the journal.
// ---------------------------------------------------------------------------------------------

struct FullSlots {
    /// Slot contents; `None` = free.
    slots: Vec<Option<u64>>,
    in_use: usize,
}

struct FullModel {
    gate: RwLock<Vec<BlockMap>>,
    origin: [Mutex<u64>; BLOCKS as usize],
    diff: Mutex<FullSlots>,
    limit: usize,
    /// Snapshots deleted to make room.
    deleted: loom::sync::atomic::AtomicUsize,
    /// `Inner::frees`: slots freed so far (Relaxed, ordered by the gate as there).
    frees: loom::sync::atomic::AtomicUsize,
    /// Counts (outside loom, over all executions) the make-rooms that found, under the exclusive
    /// gate, that the write needed no deletion: another writer had deleted the last snapshot, or
    /// freed a slot, meanwhile.
    retried_without_deleting: &'static AtomicUsize,
}

impl FullModel {
    /// A volume of zeros with `snaps` snapshots and a limit of `limit` slots.
    fn new(snaps: usize, limit: usize, retried_without_deleting: &'static AtomicUsize) -> Self {
        FullModel {
            gate: RwLock::new((0..snaps).map(|_| BlockMap::new(BLOCKS)).collect()),
            origin: [Mutex::new(0), Mutex::new(0)],
            diff: Mutex::new(FullSlots {
                slots: Vec::new(),
                in_use: 0,
            }),
            limit,
            deleted: loom::sync::atomic::AtomicUsize::new(0),
            frees: loom::sync::atomic::AtomicUsize::new(0),
            retried_without_deleting,
        }
    }

    /// `DiffArea::alloc`: a free slot, or none at the limit.
    fn alloc(&self) -> Option<u64> {
        let mut d = self.diff.lock().unwrap();
        if d.in_use >= self.limit {
            return None;
        }
        d.in_use += 1;
        match d.slots.iter().position(Option::is_none) {
            Some(s) => Some(s as u64),
            None => {
                d.slots.push(None);
                Some(d.slots.len() as u64 - 1)
            }
        }
    }

    /// Writes `value` to `block`, copying the old block into the newest map first. False if the
    /// write failed for want of room.
    fn write(&self, block: u64, value: u64) -> bool {
        loop {
            let st = self.gate.read();
            let frees = self.frees.load(loom::sync::atomic::Ordering::Relaxed);
            let mut short = false;
            if let Some(newest) = st.last() {
                newest.reserve().unwrap();
                if let Claim::Won(claim) = newest.claim(block) {
                    match self.alloc() {
                        Some(slot) => {
                            let old = *self.origin[block as usize].lock().unwrap();
                            self.diff.lock().unwrap().slots[slot as usize] = Some(old);
                            claim.publish(slot);
                        }
                        // The claim is dropped (aborted) here, with the gate still held.
                        None => short = true,
                    }
                }
            }
            if short {
                drop(st);
                if !self.make_room(block, frees) {
                    return false;
                }
                continue;
            }
            *self.origin[block as usize].lock().unwrap() = value;
            return true;
        }
    }

    /// `Inner::make_room` for a write of `block` that read `frees` before its attempt: true =
    /// retry the write.
    fn make_room(&self, block: u64, frees: usize) -> bool {
        let mut st = self.gate.write();
        if self.frees.load(loom::sync::atomic::Ordering::Relaxed) != frees {
            self.retried_without_deleting.fetch_add(1, Relaxed);
            return true;
        }
        let lacks = |m: &BlockMap| usize::from(!matches!(m.get(block), Entry::Preserved(_)));
        let need_now = st.last().map_or(0, lacks);
        if need_now == 0 {
            self.retried_without_deleting.fetch_add(1, Relaxed);
            return true;
        }
        let (mut freed, mut delete) = (0, None);
        for (i, m) in st.iter().enumerate() {
            freed += m.preserved_count() as usize;
            let need = if i + 1 == st.len() { 0 } else { need_now };
            if freed >= need {
                delete = Some(i + 1);
                break;
            }
        }
        let Some(n) = delete else { return false };
        for m in st.drain(..n) {
            let mut d = self.diff.lock().unwrap();
            m.for_each_preserved(|_, slot| {
                d.slots[slot as usize] = None;
                d.in_use -= 1;
                self.frees
                    .fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
            });
        }
        self.deleted
            .fetch_add(n, loom::sync::atomic::Ordering::Relaxed);
        true
    }

    /// What the snapshots left hold for `block` (their slots' contents, None where unpreserved).
    fn preserved(&self, block: u64) -> Vec<Option<u64>> {
        let st = self.gate.read();
        let d = self.diff.lock().unwrap();
        st.iter()
            .map(|m| match m.get(block) {
                Entry::Preserved(s) => d.slots[s as usize],
                _ => None,
            })
            .collect()
    }
}

/// The race of issue 11 §1: the one snapshot holds the one slot the limit allows; two writers of
/// a block it lacks both find the area full (the second parks on the first's claim and claims
/// after its abort), then one deletes the snapshot. The other, under the exclusive gate, finds
/// no snapshot left and must retry (it used to give up: "diff area full"). Both writes succeed.
#[test]
fn a_writer_short_of_room_retries_when_another_deleted_the_last_snapshot() {
    static RETRIED: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let vol = Arc::new(FullModel::new(1, 1, &RETRIED));
        assert!(vol.write(0, 5));
        let v = vol.clone();
        let a = thread::spawn(move || v.write(1, 1));
        let v = vol.clone();
        let b = thread::spawn(move || v.write(1, 2));
        assert!(a.join().unwrap(), "writer A failed for want of room");
        assert!(b.join().unwrap(), "writer B failed for want of room");
        assert_eq!(vol.deleted.load(loom::sync::atomic::Ordering::Relaxed), 1);
        assert!(vol.gate.read().is_empty());
        assert_eq!(vol.diff.lock().unwrap().in_use, 0);
        let last = *vol.origin[1].lock().unwrap();
        assert!(last == 1 || last == 2);
    });
    assert!(
        RETRIED.load(Relaxed) > 0,
        "no execution had a writer find the last snapshot gone"
    );
}

/// An older snapshot holds the one slot; two writers of a block the newest lacks find the area
/// full, one deletes the older snapshot (freeing the slot). The other finds, under the exclusive
/// gate, that a slot was freed since its attempt and retries without deleting the newest, which
/// keeps the block's old contents.
#[test]
fn a_writer_short_of_room_reuses_the_room_another_made() {
    static RETRIED: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let vol = Arc::new(FullModel::new(1, 1, &RETRIED));
        assert!(vol.write(0, 5));
        vol.gate.write().push(BlockMap::new(BLOCKS));
        let v = vol.clone();
        let a = thread::spawn(move || v.write(1, 1));
        let v = vol.clone();
        let b = thread::spawn(move || v.write(1, 2));
        assert!(a.join().unwrap() && b.join().unwrap(), "a write failed");
        assert_eq!(vol.deleted.load(loom::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(
            vol.preserved(1),
            [Some(0)],
            "the newest snapshot was deleted"
        );
    });
    assert!(
        RETRIED.load(Relaxed) > 0,
        "no execution had a writer find the room another made"
    );
}
