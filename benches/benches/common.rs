//! Helpers shared by the benchmark files (each includes this file with `mod common;`): a small
//! deterministic random generator, multi-threaded timing, and the scratch directory for file benches.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// xorshift64*: fast, deterministic, good enough to scatter block numbers.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// `0..n` in random order (Fisher-Yates).
pub fn permutation(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// `count` random numbers in `0..n` (repeats allowed).
pub fn random_blocks(count: usize, n: u64, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.below(n)).collect()
}

/// Runs `f(t)` on `threads` scoped threads released together by a barrier; returns the wall time
/// from the release to the last thread's finish. With one thread, runs on the calling thread.
pub fn run_threads<F: Fn(usize) + Sync>(threads: usize, f: F) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        f(0);
        return start.elapsed();
    }
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(t);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("benchmark thread panicked");
        }
        start.elapsed()
    })
}

/// Runs `iters` operations in rounds of at most `round`: `reset(state)` (untimed) before each
/// round, then `timed(state, n)` for the round's `n` operations, which returns the time they took.
pub fn in_rounds<S>(
    iters: u64,
    round: u64,
    state: &mut S,
    mut reset: impl FnMut(&mut S),
    mut timed: impl FnMut(&S, u64) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(round);
        reset(state);
        total += timed(state, n);
        left -= n;
    }
    total
}

/// The share of `total` operations that thread `t` of `threads` runs (thread 0 takes the remainder).
pub fn share(total: u64, threads: usize, t: usize) -> u64 {
    let each = total / threads as u64;
    if t == 0 {
        each + total % threads as u64
    } else {
        each
    }
}

/// The scratch directory for file benchmarks: `$UMBRA_BENCH_DIR` if set, else the target
/// directory's `tmp` (on the workspace's disk, never a tmpfs `/tmp`). Created if missing.
pub fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("UMBRA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("umbra-bench"));
    std::fs::create_dir_all(&dir).expect("cannot create the benchmark scratch directory");
    dir
}

/// Free bytes (for unprivileged users) on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path alive for the call; `st` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs failed on {}", path.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Asks the kernel to drop the clean cached pages of the file at `path` (a cold-cache read).
pub fn drop_file_cache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open file to drop its cache");
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open (owned by `f`).
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise failed on {}", path.display());
}

/// A 4 KiB buffer of non-zero bytes.
pub fn pattern(seed: u8) -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// The suite's criterion settings (1 s warm-up, 3 s measurement unless a group says otherwise),
/// overridable from the command line as usual.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Runs `targets` with the suite's settings, then prints criterion's summary (what
/// `criterion_main!` does, without its undocumented public items).
pub fn run_benches(targets: &[fn(&mut criterion::Criterion)]) {
    let mut c = criterion();
    for t in targets {
        t(&mut c);
    }
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
