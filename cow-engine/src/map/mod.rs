//! The block map: block number -> packed [`Entry`], lock-free on the hot path.
//!
//! A two-level radix: a directory with one leaf pointer per 512 blocks, and leaf pages of 512
//! `AtomicU64` entries. The directory is allocated on the first install and leaves are installed by
//! CAS on first use; nothing is freed before the map is dropped. So an empty map costs a few words
//! whatever its capacity (creating a snapshot is O(1)), and memory is proportional to the blocks
//! touched: a directory larger than 64 KiB is an anonymous mapping of zero pages, of which only the
//! pages that point at leaves are ever backed by memory. A map for 1 TiB of 4 KiB blocks with one
//! entry costs one 4 KiB directory page and one 4 KiB leaf (in 4 MiB of reserved address space).
//!
//! Two levels, not more: a claim is a locked CAS, and the loads that find its entry wait behind the
//! previous locked operation, so every level costs each transition a dependent load. Two levels
//! measured 15-20% faster than three for random transitions and lookups (benches/RESULTS.md,
//! pass 6). Maps cover at most [`MAX_BLOCKS`] blocks (volumes at most
//! [`MAX_VOLUME_LEN`](crate::MAX_VOLUME_LEN) bytes), so a directory's reservation stays bounded.
//!
//! The entry protocol ([`BlockMap::claim`]): the writer whose CAS moves an entry from untouched to
//! copying copies the block, then [`CopyClaim::publish`]es `preserved(slot)`; writers that find `copying`
//! park (via `parking_lot_core`) until the winner publishes or gives up; readers only load, never block.

mod entry;

pub use entry::{Entry, MAX_SLOT};

use std::ptr;

use crate::error::{Error, Result};
use crate::sync::{park_while, unpark_all, AtomicPtr, AtomicU64, Mutex, Ordering};
use entry::{preserved, COPYING, UNTOUCHED, WAITERS};

#[cfg(not(loom))]
const LEAF_BITS: u32 = 9;
#[cfg(loom)]
const LEAF_BITS: u32 = 1;
const LEAF_LEN: usize = 1 << LEAF_BITS;

/// The most blocks a map (and so a volume) may cover: 2^40, 4 PiB of 4 KiB blocks. The directory
/// of such a map reserves 16 GiB of address space (memory only for the parts in use).
pub const MAX_BLOCKS: u64 = 1 << 40;

/// A page of entries.
struct Leaf {
    entries: [AtomicU64; LEAF_LEN],
}

impl Leaf {
    /// A leaf of untouched entries.
    #[cfg(not(loom))]
    fn new_boxed() -> Box<Leaf> {
        let layout = std::alloc::Layout::new::<Leaf>();
        // SAFETY: `Leaf` has a non-zero size. Zeroed allocation lets the allocator skip clearing
        // memory that is fresh from the system.
        let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Leaf>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `p` is a live allocation with `Leaf`'s layout, made by the global allocator as
        // `Box` expects, and its all-zero bytes are a valid `Leaf`: an array of `AtomicU64`, each
        // zero, which is `UNTOUCHED`.
        unsafe { Box::from_raw(p) }
    }

    /// A leaf of untouched entries (loom's atomics cannot be zero-initialised).
    #[cfg(loom)]
    fn new_boxed() -> Box<Leaf> {
        Box::new(Leaf {
            entries: std::array::from_fn(|_| AtomicU64::new(UNTOUCHED)),
        })
    }
}

/// Directory allocation: `len` null leaf pointers, as a thin pointer to the first.
#[cfg(not(loom))]
mod directory {
    use super::{AtomicPtr, Leaf};
    use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};

    /// Directories of at least this many bytes are anonymous mappings (zero pages on demand, so
    /// untouched parts cost no memory and no clearing); smaller ones come from the heap.
    const MAPPED_FROM: usize = 64 << 10;

    fn layout(len: usize) -> Layout {
        Layout::array::<AtomicPtr<Leaf>>(len).expect("directory size bounded by MAX_BLOCKS")
    }

    /// Bytes of a directory of `len` entries.
    pub(super) fn bytes(len: usize) -> usize {
        layout(len).size()
    }

    /// A zeroed directory of `len` (> 0) entries; all-zero bytes are null `AtomicPtr`s (same
    /// representation as `*mut Leaf`). Fails if the system refuses the memory or address space.
    pub(super) fn try_alloc(len: usize) -> std::io::Result<*mut AtomicPtr<Leaf>> {
        let layout = layout(len);
        if layout.size() >= MAPPED_FROM {
            // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
            // the arguments are valid constants and a non-zero length.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            // Small pages: with transparent huge pages on `always`, one pointer stored would
            // otherwise back (and clear) 2 MiB of the directory instead of 4 KiB. Best effort: a
            // kernel without THP refuses the advice, and then there is nothing to avoid.
            // SAFETY: advice on the mapping just made, of exactly its length; no memory is touched.
            unsafe { libc::madvise(p, layout.size(), libc::MADV_NOHUGEPAGE) };
            Ok(p.cast())
        } else {
            // SAFETY: the layout has a non-zero size (len > 0).
            let p = unsafe { alloc_zeroed(layout) };
            if p.is_null() {
                return Err(std::io::ErrorKind::OutOfMemory.into());
            }
            Ok(p.cast())
        }
    }

    /// As [`try_alloc`], treating a refusal like any failed allocation (the process aborts).
    pub(super) fn alloc(len: usize) -> *mut AtomicPtr<Leaf> {
        try_alloc(len).unwrap_or_else(|_| handle_alloc_error(layout(len)))
    }

    /// Frees a directory.
    ///
    /// # Safety
    /// `p` came from `alloc(len)` with this `len`, and nothing uses it afterwards.
    pub(super) unsafe fn free(p: *mut AtomicPtr<Leaf>, len: usize) {
        let layout = layout(len);
        if layout.size() >= MAPPED_FROM {
            // SAFETY: per the contract, `p` is the start of a live mapping of `layout.size()` bytes.
            let rc = unsafe { libc::munmap(p.cast(), layout.size()) };
            debug_assert_eq!(rc, 0, "munmap of a directory failed");
        } else {
            // SAFETY: per the contract, `p` came from `alloc_zeroed(layout)`.
            unsafe { dealloc(p.cast(), layout) };
        }
    }
}

/// Directory allocation under loom: boxed slices of loom atomics.
#[cfg(loom)]
mod directory {
    use super::{AtomicPtr, Leaf};

    pub(super) fn bytes(len: usize) -> usize {
        len * std::mem::size_of::<usize>()
    }

    pub(super) fn try_alloc(len: usize) -> std::io::Result<*mut AtomicPtr<Leaf>> {
        Ok(alloc(len))
    }

    pub(super) fn alloc(len: usize) -> *mut AtomicPtr<Leaf> {
        let b: Box<[AtomicPtr<Leaf>]> = (0..len)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect();
        Box::into_raw(b).cast()
    }

    /// # Safety
    /// `p` came from `alloc(len)` with this `len`, and nothing uses it afterwards.
    pub(super) unsafe fn free(p: *mut AtomicPtr<Leaf>, len: usize) {
        // SAFETY: per the contract, `p` and `len` describe the boxed slice `alloc` leaked.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) });
    }
}

/// Panics for a block outside the map. Out of line: keeps the claim path free of the formatting.
#[cold]
#[inline(never)]
fn out_of_range(block: u64, capacity: u64) -> ! {
    panic!("block {block} outside map of {capacity}")
}

/// Panics for a slot an entry cannot hold. Out of line, like `out_of_range`.
#[cold]
#[inline(never)]
fn slot_too_large(slot: u64) -> ! {
    panic!("slot {slot} does not fit an entry")
}

/// A map from block number to [`Entry`] for blocks `0..capacity`.
pub struct BlockMap {
    /// The directory (`dir_len` leaf pointers), null until the first install.
    root: AtomicPtr<AtomicPtr<Leaf>>,
    /// Length of the directory: one entry per `LEAF_LEN` blocks of the capacity.
    dir_len: usize,
    capacity: u64,
    /// Directory indices of the installed leaves, in install order: scans and drop visit these
    /// instead of the whole directory. Appended under the lock while the leaf is installed, so a
    /// leaf that can be seen is listed.
    installed: Mutex<Vec<usize>>,
}

/// Directory entries needed for `capacity` blocks.
fn dir_len_for(capacity: u64) -> usize {
    assert!(
        capacity <= MAX_BLOCKS,
        "map of {capacity} blocks exceeds the limit of {MAX_BLOCKS}"
    );
    capacity.div_ceil(LEAF_LEN as u64).max(1) as usize
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
        if slot > MAX_SLOT {
            slot_too_large(slot);
        }
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
    ///
    /// # Panics
    /// If `capacity` exceeds [`MAX_BLOCKS`] (volumes check their size first).
    pub fn new(capacity: u64) -> Self {
        BlockMap {
            root: AtomicPtr::new(ptr::null_mut()),
            dir_len: dir_len_for(capacity),
            capacity,
            installed: Mutex::new(Vec::new()),
        }
    }

    /// The number of blocks the map covers.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The number of preserved entries (counted over the installed leaves; no shared counter is
    /// kept, so publishing stays free of contention).
    pub fn preserved_count(&self) -> u64 {
        let mut n = 0;
        self.for_each_preserved(|_, _| n += 1);
        n
    }

    /// Allocates the map's directory now if it has none, so later installs need no more than a
    /// leaf. Volumes call this before a write may install, so a refusal by the system is an error
    /// of that write; without it, a refused directory allocation aborts like any failed allocation.
    /// A large directory reserves address space (1/64 of the capacity in blocks, in bytes) of which
    /// only the parts in use take memory; under strict overcommit or an address-space limit the
    /// reservation is what may be refused.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) with the system's error if the memory or address
    /// space is refused.
    pub fn reserve(&self) -> Result<()> {
        // Acquire: as in `word`.
        if !self.root.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let fresh = directory::try_alloc(self.dir_len).map_err(|e| {
            Error::io(
                format!(
                    "cannot reserve {} bytes for the block map of {} blocks",
                    directory::bytes(self.dir_len),
                    self.capacity
                ),
                e,
            )
        })?;
        self.adopt_directory(fresh);
        Ok(())
    }

    /// The entry word of `block` if its leaf exists (none beyond the capacity).
    #[inline]
    fn word(&self, block: u64) -> Option<&AtomicU64> {
        if block >= self.capacity {
            return None;
        }
        // Acquire: pairs with the Release of the installing CAS, so the directory's contents (null
        // pointers) are initialised before we read them.
        let root = self.root.load(Ordering::Acquire);
        if root.is_null() {
            return None;
        }
        // SAFETY: a non-null root is a live directory of `dir_len` entries (freed or replaced only
        // with `&mut self`), and the index is below `dir_len` because `block < capacity`.
        let slot = unsafe { &*root.add((block >> LEAF_BITS) as usize) };
        // Acquire: pairs with the Release of the installing CAS, so the leaf's initialised entries
        // are visible before we use the pointer.
        let leaf = slot.load(Ordering::Acquire);
        if leaf.is_null() {
            return None;
        }
        // SAFETY: non-null directory entries are live Box leaves, freed only in Drop (`&mut self`).
        Some(unsafe { &(*leaf).entries[block as usize & (LEAF_LEN - 1)] })
    }

    /// The entry word of `block`, installing its directory and leaf if absent.
    #[inline]
    fn word_or_install(&self, block: u64) -> &AtomicU64 {
        if block >= self.capacity {
            out_of_range(block, self.capacity);
        }
        let index = (block >> LEAF_BITS) as usize;
        // Acquire: as in `word`.
        let mut root = self.root.load(Ordering::Acquire);
        if root.is_null() {
            root = self.install_directory();
        }
        // SAFETY: as in `word`.
        let slot = unsafe { &*root.add(index) };
        // Acquire: as in `word`.
        let mut leaf = slot.load(Ordering::Acquire);
        if leaf.is_null() {
            leaf = self.install_leaf(slot, index);
        }
        // SAFETY: as in `word`.
        unsafe { &(*leaf).entries[block as usize & (LEAF_LEN - 1)] }
    }

    /// Allocates the directory on first install, unless [`BlockMap::reserve`] did. Out of line:
    /// once per map.
    #[cold]
    #[inline(never)]
    fn install_directory(&self) -> *mut AtomicPtr<Leaf> {
        self.adopt_directory(directory::alloc(self.dir_len))
    }

    /// Installs `fresh` (from `directory::alloc(self.dir_len)`) as the directory by CAS, or frees
    /// it and returns the directory another thread installed first.
    fn adopt_directory(&self, fresh: *mut AtomicPtr<Leaf>) -> *mut AtomicPtr<Leaf> {
        // AcqRel on success: Release publishes the fresh directory to later Acquire loads. Acquire
        // on failure: we use the winner's directory and need its contents.
        match self.root.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `directory::alloc(self.dir_len)` just above and was
                // never shared.
                unsafe { directory::free(fresh, self.dir_len) };
                winner
            }
        }
    }

    /// Installs a new leaf in the empty directory entry `slot` (number `index`) by CAS, or returns
    /// the leaf another thread installed first. Out of line: once per leaf.
    #[cold]
    #[inline(never)]
    fn install_leaf(&self, slot: &AtomicPtr<Leaf>, index: usize) -> *mut Leaf {
        let fresh = Box::into_raw(Leaf::new_boxed());
        // The list lock is held across the CAS, so a scan that takes it after the CAS finds the
        // leaf listed. A panic while holding it cannot leave the list inconsistent: take it anyway.
        let mut installed = self
            .installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // AcqRel on success: Release publishes the fresh leaf's entries to later Acquire loads.
        // Acquire on failure: we use the winner's leaf and need its contents.
        match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                installed.push(index);
                fresh
            }
            Err(winner) => {
                drop(installed);
                // SAFETY: `fresh` came from Box::into_raw just above and was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                winner
            }
        }
    }

    /// The installed leaves as `(directory index, leaf)`, in block order.
    /// The installed leaves whose directory index is in `range`, in index order.
    fn installed_leaves_in(&self, range: std::ops::Range<u64>) -> Vec<(usize, &Leaf)> {
        let mut indices: Vec<usize> = self
            .installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .filter(|&i| range.contains(&(i as u64)))
            .collect();
        indices.sort_unstable();
        // Acquire: the list says the directory exists; see `word`.
        let root = self.root.load(Ordering::Acquire);
        indices
            .into_iter()
            .map(|i| {
                // SAFETY: a listed index was installed in the live directory (so root is non-null
                // and `i < dir_len`), and its entry holds a live Box leaf until Drop.
                let leaf = unsafe { &*(*root.add(i)).load(Ordering::Acquire) };
                (i, leaf)
            })
            .collect()
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
    pub fn for_each_preserved(&self, f: impl FnMut(u64, u64)) {
        self.for_each_preserved_in(0..u64::MAX, f)
    }

    /// Calls `f(block, slot)` for every preserved entry of the blocks `blocks`, in block order.
    /// Visits only the leaves that cover them.
    pub fn for_each_preserved_in(&self, blocks: std::ops::Range<u64>, mut f: impl FnMut(u64, u64)) {
        let leaves = (blocks.start >> LEAF_BITS)..blocks.end.div_ceil(LEAF_LEN as u64);
        for (i, leaf) in self.installed_leaves_in(leaves) {
            let base = (i as u64) << LEAF_BITS;
            // The entries of this leaf inside `blocks` (the first and last leaf may be partial).
            let from = blocks.start.saturating_sub(base).min(LEAF_LEN as u64) as usize;
            let to = blocks.end.saturating_sub(base).min(LEAF_LEN as u64) as usize;
            for (l, w) in leaf.entries.iter().enumerate().take(to).skip(from) {
                let block = base | l as u64;
                // Acquire: the caller may read the slot's data.
                if let Entry::Preserved(slot) = Entry::decode(w.load(Ordering::Acquire)) {
                    f(block, slot);
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
    ///
    /// # Errors
    /// As [`BlockMap::reserve`], for the larger directory; the map is then unchanged.
    ///
    /// # Panics
    /// If `new_capacity` exceeds [`MAX_BLOCKS`].
    pub fn grow(&mut self, new_capacity: u64) -> Result<()> {
        if new_capacity <= self.capacity {
            return Ok(());
        }
        let len = dir_len_for(new_capacity);
        let old = self.root.load(Ordering::Relaxed);
        if !old.is_null() && len > self.dir_len {
            let grown = directory::try_alloc(len).map_err(|e| {
                Error::io(
                    format!(
                        "cannot reserve {} bytes to grow the block map to {new_capacity} blocks",
                        directory::bytes(len)
                    ),
                    e,
                )
            })?;
            let installed = self
                .installed
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for &i in installed.iter() {
                // SAFETY: `&mut self`: no other thread holds a reference; `i` is below both lengths
                // (installed in the old directory, which is shorter than the new one).
                unsafe {
                    let leaf = (*old.add(i)).load(Ordering::Relaxed);
                    (*grown.add(i)).store(leaf, Ordering::Relaxed);
                }
            }
            // SAFETY: `old` came from `directory::alloc(self.dir_len)`; it is replaced below and
            // not used again.
            unsafe { directory::free(old, self.dir_len) };
            self.root.store(grown, Ordering::Relaxed);
        }
        self.dir_len = self.dir_len.max(len);
        self.capacity = new_capacity;
        Ok(())
    }
}

impl Drop for BlockMap {
    fn drop(&mut self) {
        let root = self.root.load(Ordering::Relaxed);
        if root.is_null() {
            return;
        }
        let installed = self
            .installed
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &i in installed.iter() {
            // SAFETY: `&mut self` means no other thread holds a leaf reference; every listed entry
            // holds a pointer from Box::into_raw, listed once, freed exactly once, here.
            drop(unsafe { Box::from_raw((*root.add(i)).load(Ordering::Relaxed)) });
        }
        // SAFETY: made by `directory::alloc(self.dir_len)`, freed exactly once, here.
        unsafe { directory::free(root, self.dir_len) };
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

    /// Allocates the bitmap's directory now (see [`BlockMap::reserve`]).
    pub(crate) fn reserve(&self) -> Result<()> {
        self.words.reserve()
    }

    /// Extends the bitmap to `capacity` blocks (see [`BlockMap::grow`]).
    pub(crate) fn grow(&mut self, capacity: u64) -> Result<()> {
        self.words.grow(capacity.div_ceil(64))
    }
}

/// [`BlockBitmap`] for the loom model checks (tests/loom.rs), which cannot name crate-private
/// types. The same calls, unchanged.
#[cfg(loom)]
#[doc(hidden)]
pub struct LoomBitmap(BlockBitmap);

#[cfg(loom)]
impl LoomBitmap {
    /// [`BlockBitmap::new`].
    pub fn new(capacity: u64) -> Self {
        LoomBitmap(BlockBitmap::new(capacity))
    }
    /// [`BlockBitmap::set`].
    pub fn set(&self, block: u64) {
        self.0.set(block)
    }
    /// [`BlockBitmap::get`].
    pub fn get(&self, block: u64) -> bool {
        self.0.get(block)
    }
    /// [`BlockBitmap::reserve`].
    pub fn reserve(&self) -> Result<()> {
        self.0.reserve()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Pages of `len` bytes at `p` that are backed by memory (`mincore`).
    fn resident_pages(p: *const u8, len: usize) -> usize {
        let page = 4096;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `p` is the page-aligned start of a live mapping of `len` bytes and `vec` has one
        // byte per page of it.
        let rc = unsafe { libc::mincore(p as *mut libc::c_void, len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore failed");
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

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
        assert_eq!(m.preserved_count(), 1);
        // One leaf, and of the 4 MiB directory reservation one page is backed by memory.
        assert_eq!(m.installed.lock().unwrap().len(), 1);
        let dir = m.root.load(Ordering::Relaxed).cast::<u8>();
        let dir_bytes = m.dir_len * std::mem::size_of::<usize>();
        assert_eq!(dir_bytes, 4 << 20);
        assert_eq!(resident_pages(dir, dir_bytes), 1);
        // Small pages even where transparent huge pages are `always`: the mapping carries the
        // kernel's no-huge-page flag (`nh`), so one store never backs 2 MiB.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", dir as usize);
        let vma = smaps
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with(&start))
            // The first flags line after the mapping's header is its own (the last of its block).
            .find(|l| l.starts_with("VmFlags:"))
            .expect("the directory's mapping is listed");
        assert!(vma.split_whitespace().any(|f| f == "nh"), "{vma}");
    }

    proptest::proptest! {
        /// A range scan visits exactly the preserved entries inside the range, in block order,
        /// against a model (a sorted set), including ranges that start or end inside a leaf.
        #[test]
        fn range_scan_is_the_full_scan_filtered(
            blocks in proptest::collection::btree_set(0u64..5_000, 0..200),
            a in 0u64..5_100,
            b in 0u64..5_100,
        ) {
            let m = BlockMap::new(5_000);
            for &blk in &blocks {
                match m.claim(blk) {
                    Claim::Won(c) => c.publish(blk * 7 + 1),
                    Claim::Preserved(_) => panic!("fresh block preserved"),
                }
            }
            let range = a.min(b)..a.max(b);
            let mut seen = Vec::new();
            m.for_each_preserved_in(range.clone(), |blk, slot| seen.push((blk, slot)));
            let model: Vec<(u64, u64)> = blocks
                .iter()
                .filter(|blk| range.contains(blk))
                .map(|&blk| (blk, blk * 7 + 1))
                .collect();
            proptest::prop_assert_eq!(seen, model);
        }
    }

    #[test]
    fn scans_and_growth_keep_block_order() {
        let mut m = BlockMap::new(10_000);
        // Installed out of block order, across leaves.
        for &b in &[9_999u64, 3, 5_000, 512, 511, 7_777] {
            match m.claim(b) {
                Claim::Won(c) => c.publish(b + 1),
                Claim::Preserved(_) => panic!("fresh block preserved"),
            }
        }
        let want = vec![
            (3, 4),
            (511, 512),
            (512, 513),
            (5_000, 5_001),
            (7_777, 7_778),
            (9_999, 10_000),
        ];
        assert_eq!(m.preserved_entries(), want);
        m.grow(5_000_000).unwrap();
        assert_eq!(m.preserved_entries(), want, "growth keeps every leaf");
        m.set_preserved(4_999_999, 1);
        assert_eq!(m.get(4_999_999), Entry::Preserved(1));
        assert_eq!(m.preserved_count(), 7);
        assert_eq!(m.get(5_000_000), Entry::Untouched);
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
        m.grow(1 << 30).unwrap();
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
