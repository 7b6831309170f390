//! The block map: block number -> packed [`Entry`], lock-free on the hot path.
//!
//! A three-level radix: a top array (sized from the capacity) of pointers to mid pages, each holding
//! pointers to leaf pages of `AtomicU64` entries. Every level, the top included, is allocated on first
//! use and installed by CAS, and nothing is freed before the map is dropped. So an empty map costs a
//! few words whatever its capacity (creating a snapshot is O(1)), and memory is proportional to the
//! blocks touched: a map for 1 TiB of 4 KiB blocks with one entry costs 8 KiB + 4 KiB + 4 KiB.
//!
//! The entry protocol ([`BlockMap::claim`]): the writer whose CAS moves an entry from untouched to
//! copying copies the block, then [`CopyClaim::publish`]es `preserved(slot)`; writers that find `copying`
//! park (via `parking_lot_core`) until the winner publishes or gives up; readers only load, never block.

mod entry;

pub use entry::{Entry, MAX_SLOT};

use std::ptr;

use crate::sync::{park_while, unpark_all, AtomicPtr, AtomicU64, Ordering};
use entry::{preserved, COPYING, UNTOUCHED, WAITERS};

#[cfg(not(loom))]
const LEAF_BITS: u32 = 9;
#[cfg(loom)]
const LEAF_BITS: u32 = 1;
#[cfg(not(loom))]
const MID_BITS: u32 = 9;
#[cfg(loom)]
const MID_BITS: u32 = 1;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const MID_LEN: usize = 1 << MID_BITS;
const MID_SPAN_BITS: u32 = LEAF_BITS + MID_BITS;

/// A page of entries, inline (one pointer hop from its mid page).
struct Leaf {
    entries: [AtomicU64; LEAF_LEN],
}

/// A page of leaf pointers, inline.
struct Mid {
    leaves: [AtomicPtr<Leaf>; MID_LEN],
}

impl Leaf {
    fn new() -> Self {
        Leaf {
            entries: std::array::from_fn(|_| AtomicU64::new(UNTOUCHED)),
        }
    }
}

impl Mid {
    fn new() -> Self {
        Mid {
            leaves: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

/// Top entries needed for `capacity` blocks.
fn tops_for(capacity: u64) -> usize {
    capacity.div_ceil(1 << MID_SPAN_BITS).max(1) as usize
}

/// A fresh top array of `n` null mid pointers, as a thin pointer to its first element.
fn new_top(n: usize) -> *mut AtomicPtr<Mid> {
    let b: Box<[AtomicPtr<Mid>]> = (0..n).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
    Box::into_raw(b).cast::<AtomicPtr<Mid>>()
}

/// Frees a top array made by [`new_top`].
///
/// # Safety
/// `p` came from `new_top(n)` with this `n`, and nothing uses it afterwards.
unsafe fn free_top(p: *mut AtomicPtr<Mid>, n: usize) {
    // SAFETY: per the contract, `p` and `n` describe the boxed slice `new_top` leaked.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, n)) });
}

/// Loads a page pointer, installing a new page by CAS if it is absent.
#[inline]
fn get_or_install<T>(slot: &AtomicPtr<T>, make: impl FnOnce() -> T) -> &T {
    // Acquire: pairs with the Release of the CAS in `install`, so the page's initialised contents
    // are visible before we use the pointer.
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: non-null pointers in the radix come from Box::into_raw in `install` and are freed
        // only in Drop, which needs `&mut self`; the page lives as long as the `&self` this borrow
        // derives from.
        return unsafe { &*p };
    }
    install(slot, make)
}

/// Installs a new page in an empty `slot` by CAS (or uses the page another thread installed first).
/// Out of line: once per page.
#[cold]
#[inline(never)]
fn install<T>(slot: &AtomicPtr<T>, make: impl FnOnce() -> T) -> &T {
    let fresh = Box::into_raw(Box::new(make()));
    // AcqRel on success: Release publishes the fresh page's contents to later Acquire loads.
    // Acquire on failure: we use the winner's page and need its contents.
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: we just installed `fresh`, a live Box pointer, see `get_or_install` for its
        // lifetime.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` came from Box::into_raw just above and was never shared.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: `winner` is a non-null page installed by another thread, live until Drop.
            unsafe { &*winner }
        }
    }
}

/// Loads a page pointer without installing.
#[inline]
fn get<T>(slot: &AtomicPtr<T>) -> Option<&T> {
    // Acquire: see get_or_install.
    let p = slot.load(Ordering::Acquire);
    // SAFETY: non-null radix pointers are live Box pages until Drop (see get_or_install).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// A map from block number to [`Entry`] for blocks `0..capacity`.
pub struct BlockMap {
    /// The top array (`tops` mid pointers), allocated on first install.
    root: AtomicPtr<AtomicPtr<Mid>>,
    /// Length of the top array.
    tops: usize,
    capacity: u64,
}

/// The outcome of [`BlockMap::claim`].
pub enum Claim<'a> {
    /// The block is already preserved in this slot; nothing to copy.
    Preserved(u64),
    /// The caller won the right to copy the block and must publish or drop the claim.
    Won(CopyClaim<'a>),
}

/// The right to copy one block, held by exactly one writer. Dropping it without
/// [`CopyClaim::publish`] returns the entry to untouched and wakes parked writers (who retry).
pub struct CopyClaim<'a> {
    word: &'a AtomicU64,
}

impl CopyClaim<'_> {
    /// Publishes `preserved(slot)`: the copy in `slot` is complete and readable.
    #[inline]
    pub fn publish(self, slot: u64) {
        assert!(slot <= MAX_SLOT, "slot {slot} does not fit an entry");
        // Settled here: the abandon path in Drop must not run.
        let word = std::mem::ManuallyDrop::new(self).word;
        // Release: the copied data (written to the slot before this call) and everything else this
        // thread did must be visible to any thread that Acquire-loads `preserved(slot)`.
        let old = word.swap(preserved(slot), Ordering::Release);
        if old & WAITERS != 0 {
            unpark_all(word);
        }
    }
}

impl Drop for CopyClaim<'_> {
    /// Abandons the claim (the copy failed): the entry returns to untouched.
    #[inline]
    fn drop(&mut self) {
        // Release: orders the failed attempt before the retry of whichever writer wins next.
        let old = self.word.swap(UNTOUCHED, Ordering::Release);
        if old & WAITERS != 0 {
            unpark_all(self.word);
        }
    }
}

impl BlockMap {
    /// An empty map for blocks `0..capacity`.
    pub fn new(capacity: u64) -> Self {
        BlockMap {
            root: AtomicPtr::new(ptr::null_mut()),
            tops: tops_for(capacity),
            capacity,
        }
    }

    /// The number of blocks the map covers.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The number of preserved entries (counted over the allocated pages; no shared counter is
    /// kept, so publishing stays free of contention).
    pub fn preserved_count(&self) -> u64 {
        let mut n = 0;
        self.for_each_preserved(|_, _| n += 1);
        n
    }

    #[inline]
    fn top(&self) -> Option<&[AtomicPtr<Mid>]> {
        // Acquire: pairs with the Release of the installing CAS, so the array's contents (null
        // pointers) are initialised before we read them.
        let p = self.root.load(Ordering::Acquire);
        // SAFETY: a non-null root was made by `new_top(self.tops)` and is freed only in Drop or
        // replaced in `grow`, both of which need `&mut self`.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, self.tops) })
    }

    #[inline]
    fn top_or_install(&self) -> &[AtomicPtr<Mid>] {
        match self.top() {
            Some(t) => t,
            None => self.install_top(),
        }
    }

    /// Allocates the top array on first install. Out of line: once per map.
    #[cold]
    #[inline(never)]
    fn install_top(&self) -> &[AtomicPtr<Mid>] {
        let fresh = new_top(self.tops);
        // AcqRel on success: Release publishes the fresh array to later Acquire loads. Acquire on
        // failure: we use the winner's array.
        match self.root.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            // SAFETY: `fresh` came from `new_top(self.tops)` just above and was never shared.
            Err(_) => unsafe { free_top(fresh, self.tops) },
        }
        self.top().expect("installed")
    }

    #[inline]
    fn split(&self, block: u64) -> (usize, usize, usize) {
        assert!(
            block < self.capacity,
            "block {block} outside map of {}",
            self.capacity
        );
        let top = (block >> MID_SPAN_BITS) as usize;
        let mid = ((block >> LEAF_BITS) as usize) & (MID_LEN - 1);
        let leaf = (block as usize) & (LEAF_LEN - 1);
        (top, mid, leaf)
    }

    /// The entry word of `block` if its page exists. Beyond the capacity no page is ever
    /// installed (see `split`), so there is nothing to find; no assertion on this read path, which
    /// keeps lookups short (more of them in flight at once).
    #[inline]
    fn word(&self, block: u64) -> Option<&AtomicU64> {
        let t = usize::try_from(block >> MID_SPAN_BITS).ok()?;
        let m = ((block >> LEAF_BITS) as usize) & (MID_LEN - 1);
        let l = (block as usize) & (LEAF_LEN - 1);
        let mid = get(self.top()?.get(t)?)?;
        let leaf = get(&mid.leaves[m])?;
        Some(&leaf.entries[l])
    }

    #[inline]
    fn word_or_install(&self, block: u64) -> &AtomicU64 {
        let (t, m, l) = self.split(block);
        let mid = get_or_install(&self.top_or_install()[t], Mid::new);
        let leaf = get_or_install(&mid.leaves[m], Leaf::new);
        &leaf.entries[l]
    }

    /// The entry of `block` (untouched beyond the capacity). Never blocks.
    #[inline]
    pub fn get(&self, block: u64) -> Entry {
        match self.word(block) {
            // Acquire: pairs with the Release in `publish`, so a reader that sees `preserved(slot)`
            // also sees the slot's data.
            Some(w) => Entry::decode(w.load(Ordering::Acquire)),
            None => Entry::Untouched,
        }
    }

    /// Claims `block` for copying. Returns [`Claim::Preserved`] if it is already preserved; parks
    /// while another writer is copying it; returns [`Claim::Won`] to exactly one caller otherwise.
    #[inline]
    pub fn claim(&self, block: u64) -> Claim<'_> {
        let word = self.word_or_install(block);
        // Optimistically untouched: the first step is the CAS, which fetches the entry's cache line
        // exclusive in one transaction. A load first would fetch it shared and then upgrade it for
        // the CAS, a second coherence round trip (2-3x slower random claims with 2 threads).
        // Acquire on both outcomes: on failure we may observe `preserved(slot)` and hand out the
        // slot (the caller may read it); on success we follow a possibly failed earlier copy (its
        // Release).
        match word.compare_exchange(UNTOUCHED, COPYING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => Claim::Won(CopyClaim { word }),
            Err(now) => match Entry::decode(now) {
                Entry::Preserved(slot) => Claim::Preserved(slot),
                _ => Self::claim_contended(word, now),
            },
        }
    }

    /// The rest of [`BlockMap::claim`] once the entry was found copying (`cur`): park until the
    /// copier publishes or gives up, then retry. Out of line, so the fast path stays small.
    #[cold]
    #[inline(never)]
    fn claim_contended(word: &AtomicU64, mut cur: u64) -> Claim<'_> {
        loop {
            match Entry::decode(cur) {
                Entry::Preserved(slot) => return Claim::Preserved(slot),
                Entry::Untouched => {
                    // Acquire on both outcomes: as in `claim`.
                    match word.compare_exchange(
                        UNTOUCHED,
                        COPYING,
                        Ordering::Acquire,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Claim::Won(CopyClaim { word }),
                        Err(now) => cur = now,
                    }
                }
                Entry::Copying => {
                    if cur & WAITERS == 0 {
                        // Relaxed: setting the flag only needs atomicity; the bucket lock inside
                        // park/unpark orders the sleep against the copier's swap.
                        if let Err(now) = word.compare_exchange_weak(
                            cur,
                            cur | WAITERS,
                            Ordering::Relaxed,
                            Ordering::Acquire,
                        ) {
                            cur = now;
                            continue;
                        }
                    }
                    park_while(word, COPYING | WAITERS);
                    // Acquire: pairs with the copier's Release publish (or abort).
                    cur = word.load(Ordering::Acquire);
                }
            }
        }
    }

    /// Sets `block` to `preserved(slot)` outside the concurrent protocol (recovery, handoff).
    /// Returns the previous entry.
    pub fn set_preserved(&mut self, block: u64, slot: u64) -> Entry {
        let word = self.word_or_install(block);
        Entry::decode(word.swap(preserved(slot), Ordering::Relaxed))
    }

    /// Returns `block` to untouched; returns the previous entry.
    pub fn remove(&mut self, block: u64) -> Entry {
        let Some(word) = self.word(block) else {
            return Entry::Untouched;
        };
        Entry::decode(word.swap(UNTOUCHED, Ordering::Relaxed))
    }

    /// Calls `f(block, slot)` for every preserved entry, in block order.
    pub fn for_each_preserved(&self, mut f: impl FnMut(u64, u64)) {
        let Some(top) = self.top() else { return };
        for (t, mid) in top.iter().enumerate() {
            let Some(mid) = get(mid) else { continue };
            for (m, leaf) in mid.leaves.iter().enumerate() {
                let Some(leaf) = get(leaf) else { continue };
                for (l, w) in leaf.entries.iter().enumerate() {
                    // Acquire: the caller may read the slot's data.
                    if let Entry::Preserved(slot) = Entry::decode(w.load(Ordering::Acquire)) {
                        let block =
                            ((t as u64) << MID_SPAN_BITS) | ((m as u64) << LEAF_BITS) | l as u64;
                        f(block, slot);
                    }
                }
            }
        }
    }

    /// All preserved entries as `(block, slot)`, in block order.
    pub fn preserved_entries(&self) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        self.for_each_preserved(|b, s| v.push((b, s)));
        v
    }

    /// Extends the map to cover `new_capacity` blocks (never shrinks).
    pub fn grow(&mut self, new_capacity: u64) {
        if new_capacity <= self.capacity {
            return;
        }
        let tops = tops_for(new_capacity);
        let old = self.root.load(Ordering::Relaxed);
        if !old.is_null() && tops > self.tops {
            let grown = new_top(tops);
            // SAFETY: `&mut self`: no other thread holds a reference; both arrays are live with
            // these lengths (old: `self.tops`, made by new_top; grown: just made).
            let (src, dst) = unsafe {
                (
                    std::slice::from_raw_parts(old, self.tops),
                    std::slice::from_raw_parts(grown, tops),
                )
            };
            for (d, s) in dst.iter().zip(src) {
                d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // SAFETY: `old` came from `new_top(self.tops)`; it is replaced below and not used again.
            unsafe { free_top(old, self.tops) };
            self.root.store(grown, Ordering::Relaxed);
        }
        self.tops = self.tops.max(tops);
        self.capacity = new_capacity;
    }
}

impl Drop for BlockMap {
    fn drop(&mut self) {
        let root = self.root.load(Ordering::Relaxed);
        if root.is_null() {
            return;
        }
        // SAFETY: `&mut self` means no other thread holds a page reference; the top array came
        // from `new_top(self.tops)`; it is read here and freed right after.
        let top = unsafe { std::slice::from_raw_parts(root, self.tops) };
        for mid in top.iter() {
            let mp = mid.load(Ordering::Relaxed);
            if mp.is_null() {
                continue;
            }
            // SAFETY: `&mut self` means no other thread holds a page reference; every non-null
            // pointer came from Box::into_raw and is freed exactly once, here.
            let mid = unsafe { Box::from_raw(mp) };
            for leaf in mid.leaves.iter() {
                let lp = leaf.load(Ordering::Relaxed);
                if !lp.is_null() {
                    // SAFETY: as above, for leaf pages.
                    drop(unsafe { Box::from_raw(lp) });
                }
            }
        }
        // SAFETY: made by `new_top(self.tops)`, freed exactly once, here; `top` is not used after.
        unsafe { free_top(root, self.tops) };
    }
}

/// A sparse bitmap over blocks (one bit a block) on the same lazily allocated radix, lock-free.
pub(crate) struct BlockBitmap {
    words: BlockMap,
}

impl BlockBitmap {
    /// An empty bitmap for blocks `0..capacity`.
    pub(crate) fn new(capacity: u64) -> Self {
        BlockBitmap {
            words: BlockMap::new(capacity.div_ceil(64)),
        }
    }

    /// Sets `block`'s bit.
    #[inline]
    pub(crate) fn set(&self, block: u64) {
        let word = self.words.word_or_install(block >> 6);
        let bit = 1 << (block & 63);
        // Relaxed load: skips the read-modify-write when the bit is already set. That is sound for
        // the volume's uses: every setter has published the entry or Acquire-observed it before
        // setting, so the first setter's Release already covers what later setters would release.
        if word.load(Ordering::Relaxed) & bit == 0 {
            // Release: a thread that sees the bit with `get` (Acquire) also sees what this thread
            // did before setting it (the volume publishes a map entry first).
            word.fetch_or(bit, Ordering::Release);
        }
    }

    /// True if `block`'s bit is set.
    #[inline]
    pub(crate) fn get(&self, block: u64) -> bool {
        // Acquire: pairs with the Release in `set`.
        self.words
            .word(block >> 6)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (block & 63)) != 0)
    }

    /// Extends the bitmap to `capacity` blocks.
    pub(crate) fn grow(&mut self, capacity: u64) {
        self.words.grow(capacity.div_ceil(64));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn empty_map_of_a_tebibyte_is_small() {
        let m = BlockMap::new((1u64 << 40) / 4096);
        assert!(
            m.root.load(Ordering::Relaxed).is_null(),
            "nothing allocated while empty"
        );
        assert_eq!(m.get(12345678), Entry::Untouched);
        assert_eq!(m.preserved_entries(), vec![]);
        match m.claim(12345678) {
            Claim::Won(c) => c.publish(1),
            Claim::Preserved(_) => panic!(),
        }
        assert!(m.tops * std::mem::size_of::<usize>() <= 8192);
        assert_eq!(m.preserved_count(), 1);
    }

    #[test]
    fn claim_publish_and_remove() {
        let mut m = BlockMap::new(10_000);
        match m.claim(777) {
            Claim::Won(c) => c.publish(42),
            Claim::Preserved(_) => panic!("fresh block preserved"),
        }
        assert_eq!(m.get(777), Entry::Preserved(42));
        assert!(matches!(m.claim(777), Claim::Preserved(42)));
        // A dropped claim returns the entry to untouched.
        match m.claim(5) {
            Claim::Won(c) => drop(c),
            Claim::Preserved(_) => panic!(),
        }
        assert_eq!(m.get(5), Entry::Untouched);
        assert_eq!(m.preserved_count(), 1);
        assert_eq!(m.preserved_entries(), vec![(777, 42)]);
        assert_eq!(m.remove(777), Entry::Preserved(42));
        assert_eq!(m.preserved_count(), 0);
        m.grow(1 << 30);
        m.set_preserved((1 << 30) - 1, 9);
        assert_eq!(m.get((1 << 30) - 1), Entry::Preserved(9));
        // Beyond the capacity (in the last top entry's span and far past the top) nothing is found.
        assert_eq!(m.get(1 << 30), Entry::Untouched);
        assert_eq!(m.get(u64::MAX), Entry::Untouched);
    }

    #[test]
    fn one_winner_and_parked_losers_see_its_slot() {
        let m = Arc::new(BlockMap::new(1 << 20));
        for block in 0..200u64 {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let m = m.clone();
                    std::thread::spawn(move || match m.claim(block) {
                        Claim::Won(c) => {
                            std::thread::yield_now();
                            c.publish(block * 10 + t);
                            (true, block * 10 + t)
                        }
                        Claim::Preserved(s) => (false, s),
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
            let winners: Vec<_> = results.iter().filter(|r| r.0).collect();
            assert_eq!(winners.len(), 1);
            assert!(results.iter().all(|r| r.1 == winners[0].1));
        }
    }
}
