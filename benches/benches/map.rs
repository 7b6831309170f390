//! Block map benchmarks: `cow_engine::map::BlockMap` against a `parking_lot::RwLock<HashMap>` and a
//! `DashMap` (both presized, with a fast multiply-xorshift hash), over a keyspace of 4,194,304
//! blocks (16 GiB of 4 KiB blocks), with 1 and 2 threads, in random and in sequential block order.
//!
//! - `map_lookup_<order>/<impl>/<threads>`: lookups in a map where every block is preserved.
//!   Baselines: `read().get(&k)` and `DashMap::get(&k)`. Random keys: 2^20 precomputed random
//!   blocks; sequential keys: blocks 0..2^20 in order; each thread starts at its own offset.
//!   `flat_vec_reference`: the same random lookups in a flat `Vec<AtomicU64>` of packed entries
//!   (one load: the fastest any map can be on this machine; a reference, no target).
//! - `map_transition_<order>/<impl>/<threads>`: untouched -> copying -> preserved (`claim` won,
//!   then `publish(slot)`) of distinct blocks (a random permutation of the keyspace, or 0, 1, 2...),
//!   each round of up to 4,194,304 starting from an empty map. Baselines do one insert-if-absent
//!   (`entry(k).or_insert(v)`) per block on a cleared, presized map (fewer steps than the two of a
//!   transition). With 2 threads both share one map, each taking a contiguous half of the round.
//!   `blockmap` keeps the map's leaf pages between rounds (entries are returned to untouched with
//!   `remove`, untimed): the transition alone. `blockmap_fresh` uses a new map per round, as every
//!   new snapshot does, so allocating and first touching its leaf pages is timed too.
//!   `flat_vec_reference`: the same transition (CAS untouched -> copying, then swap to preserved)
//!   in a flat `Vec<AtomicU64>` (the fastest any map can be here; a reference, no target).
//!
//! Throughput is in elements (operations summed over all threads) per second of wall time.
//!
//! Run: `cargo bench -p umbra-benches --bench map`

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use cow_engine::map::{BlockMap, Claim, Entry};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use parking_lot::RwLock;

use common::{in_rounds, permutation, random_blocks, run_threads, share};

/// Blocks in the keyspace (as the anchor measurements).
const BLOCKS: u64 = 4_194_304;
/// Precomputed random lookup keys (a power of two).
const LOOKUP_KEYS: usize = 1 << 20;

/// A multiply-xorshift hash of one `u64`: what "a fast hash" means for the baselines.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        let x = (self.0 ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

type Fast = BuildHasherDefault<FastHasher>;
type LockedMap = RwLock<HashMap<u64, u64, Fast>>;
type Dash = DashMap<u64, u64, Fast>;

fn locked_map() -> LockedMap {
    RwLock::new(HashMap::with_capacity_and_hasher(
        BLOCKS as usize,
        Fast::default(),
    ))
}

fn dash_map() -> Dash {
    DashMap::with_capacity_and_hasher(BLOCKS as usize, Fast::default())
}

/// Thread `t` does `n` lookups, walking the key list from its own starting point and wrapping
/// around. The inner loop walks a plain slice (no index masking or bounds check per key): the
/// harness adds as little as it can to each lookup, so the maps' own costs are compared.
#[inline(always)]
fn walk(keys: &[u64], t: usize, n: u64, look: impl Fn(u64) -> Option<u64>) {
    let mut acc = 0u64;
    let mut pos = t * (keys.len() / 2);
    let mut left = n as usize;
    while left > 0 {
        let run = &keys[pos..keys.len().min(pos + left)];
        for &k in run {
            if let Some(v) = look(k) {
                acc = acc.wrapping_add(v);
            }
        }
        left -= run.len();
        pos = 0;
    }
    black_box(acc);
}

/// The two access orders: random (as random writes see it) and sequential (streaming writes).
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Random,
    Sequential,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Random => "random",
            Order::Sequential => "sequential",
        }
    }
}

/// Benchmarks `look` over `keys` from `threads` threads.
fn lookup_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    keys: &[u64],
    look: impl Fn(u64) -> Option<u64> + Sync,
) {
    g.bench_function(BenchmarkId::new(name, threads), |b| {
        b.iter_custom(|iters| {
            run_threads(threads, |t| walk(keys, t, share(iters, threads, t), &look))
        })
    });
}

fn lookups(c: &mut Criterion) {
    let mut map = BlockMap::new(BLOCKS);
    let locked = locked_map();
    let dash = dash_map();
    let flat: Vec<AtomicU64> = (0..BLOCKS).map(|b| AtomicU64::new((b << 2) | 2)).collect();
    for b in 0..BLOCKS {
        map.set_preserved(b, b);
        locked.write().insert(b, b);
        dash.insert(b, b);
    }
    for order in [Order::Random, Order::Sequential] {
        let keys = match order {
            Order::Random => random_blocks(LOOKUP_KEYS, BLOCKS, 1),
            Order::Sequential => (0..LOOKUP_KEYS as u64).collect(),
        };
        let mut g = c.benchmark_group(format!("map_lookup_{}", order.name()));
        g.throughput(Throughput::Elements(1));
        for threads in [1usize, 2] {
            lookup_case(&mut g, "blockmap", threads, &keys, |k| match map.get(k) {
                Entry::Preserved(s) => Some(s),
                _ => None,
            });
            lookup_case(&mut g, "dashmap", threads, &keys, |k| {
                dash.get(&k).map(|r| *r)
            });
            if order == Order::Random {
                lookup_case(&mut g, "rwlock_hashmap", threads, &keys, |k| {
                    locked.read().get(&k).copied()
                });
                lookup_case(&mut g, "flat_vec_reference", threads, &keys, |k| {
                    let w = flat[k as usize].load(Ordering::Acquire);
                    (w & 3 == 2).then_some(w >> 2)
                });
            }
        }
        g.finish();
    }
}

/// Benchmarks transitions of `order`'s blocks from `threads` threads with `op` (thread t takes the
/// t-th contiguous share of each round's blocks); `reset` (untimed) prepares the map before each
/// round, given the blocks transitioned since the last reset.
fn transition_case<S: Sync>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    order: &[u64],
    state: &mut S,
    reset: impl Fn(&mut S, &[u64]),
    op: impl Fn(&S, u64) + Sync,
) {
    let done = Cell::new(0usize);
    g.bench_function(BenchmarkId::new(name, threads), |b| {
        b.iter_custom(|iters| {
            in_rounds(
                iters,
                BLOCKS,
                &mut *state,
                |s| {
                    reset(s, &order[..done.get()]);
                    done.set(0);
                },
                |s, n| {
                    let n = n as usize;
                    done.set(n);
                    run_threads(threads, |t| {
                        for &blk in &order[n * t / threads..n * (t + 1) / threads] {
                            op(s, blk);
                        }
                    })
                },
            )
        })
    });
    // Leave the map clean for the next case that uses it.
    reset(state, &order[..done.get()]);
}

/// Out of line, so no case spills its block number for a panic message on the timed path.
#[cold]
#[inline(never)]
fn claimed_twice(blk: u64) -> ! {
    panic!("block {blk} claimed twice")
}

/// Inlined into the timed loop, as the other cases' closures are.
#[inline(always)]
fn transition(m: &BlockMap, blk: u64) {
    match m.claim(blk) {
        Claim::Won(c) => c.publish(blk),
        Claim::Preserved(_) => claimed_twice(blk),
    }
}

fn remove_all(m: &mut BlockMap, done: &[u64]) {
    for &b in done {
        m.remove(b);
    }
}

fn transitions(c: &mut Criterion) {
    // Every structure is allocated once, outside the measured closures: criterion calls those once
    // per sample, and a fresh 128 MiB table per sample would time page faults, not the map.
    let mut reused = BlockMap::new(BLOCKS);
    for b in 0..BLOCKS {
        transition(&reused, b);
    }
    remove_all(&mut reused, &(0..BLOCKS).collect::<Vec<_>>());
    let mut fresh = BlockMap::new(BLOCKS);
    let mut flat: Vec<AtomicU64> = (0..BLOCKS).map(|_| AtomicU64::new(0)).collect();
    let mut locked = locked_map();
    let mut dash = dash_map();

    for order in [Order::Random, Order::Sequential] {
        let blocks = match order {
            Order::Random => permutation(BLOCKS, 2),
            Order::Sequential => (0..BLOCKS).collect(),
        };
        let mut g = c.benchmark_group(format!("map_transition_{}", order.name()));
        g.throughput(Throughput::Elements(1));
        for threads in [1usize, 2] {
            // Leaf pages stay installed between rounds: the transitions alone.
            transition_case(
                &mut g,
                "blockmap",
                threads,
                &blocks,
                &mut reused,
                remove_all,
                transition,
            );
            if order == Order::Random {
                // A new map per round, as a new snapshot gets: installing leaf pages is timed too.
                transition_case(
                    &mut g,
                    "blockmap_fresh",
                    threads,
                    &blocks,
                    &mut fresh,
                    |m, _| *m = BlockMap::new(BLOCKS),
                    transition,
                );
                transition_case(
                    &mut g,
                    "flat_vec_reference",
                    threads,
                    &blocks,
                    &mut flat,
                    |v, done| {
                        for &b in done {
                            *v[b as usize].get_mut() = 0;
                        }
                    },
                    |v, blk| {
                        let w = &v[blk as usize];
                        if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
                            .is_err()
                        {
                            claimed_twice(blk);
                        }
                        w.swap((blk << 2) | 2, Ordering::Release);
                    },
                );
                transition_case(
                    &mut g,
                    "rwlock_hashmap",
                    threads,
                    &blocks,
                    &mut locked,
                    |m, _| m.write().clear(),
                    |m, blk| {
                        m.write().entry(blk).or_insert(blk);
                    },
                );
            }
            transition_case(
                &mut g,
                "dashmap",
                threads,
                &blocks,
                &mut dash,
                |m, _| m.clear(),
                |m, blk| {
                    m.entry(blk).or_insert(blk);
                },
            );
        }
        g.finish();
    }
}

fn main() {
    common::run_benches(&[lookups, transitions]);
}
