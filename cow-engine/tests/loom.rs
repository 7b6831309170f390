//! Loom model checks of the block-map entry protocol ([`BlockMap::claim`], [`CopyClaim::publish`],
//! dropping a claim = abort, [`BlockMap::get`]) with its parking and wake-up path.
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
