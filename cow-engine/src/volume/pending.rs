//! Deferred origin writes: the new contents of blocks whose preservation is not yet durable.
//!
//! A preservation must be durable before the origin write it protects reaches the origin device.
//! Instead of making every first write wait for a journal sync, the write's new block contents are
//! kept here (reads see them at once) until the journal record of the block's preservation is
//! durable; [`Pending::drain`] then writes them to the origin. The volume drains on `flush`, at
//! every snapshot creation or deletion, and when too much is held. Like a disk's volatile write
//! cache, a crash before a flush may lose these writes, never a snapshot's data.
//!
//! Invariant: a block is here only if it is preserved in the newest snapshot's map in the current
//! epoch (its copy-on-write put it here, and every epoch change drains first). So a block that is
//! preserved and not here has a durable preservation, and its origin may be written directly.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::device::BlockDevice;
use crate::error::Result;

struct Block {
    /// The journal sequence number of the block's preservation record.
    seq: u64,
    /// The block's current contents.
    data: Box<[u8]>,
}

pub(crate) struct Pending {
    blocks: Mutex<HashMap<u64, Block>>,
    /// How many blocks are held; read without the lock as a fast path.
    count: AtomicUsize,
    shift: u32,
}

impl Pending {
    pub(crate) fn new(shift: u32) -> Self {
        Pending {
            blocks: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            shift,
        }
    }

    /// Blocks held.
    pub(crate) fn len(&self) -> usize {
        // Relaxed is enough for a size estimate and for the empty fast paths: a writer inserts
        // under the lock before its write call returns, and a reader that raced with it may see
        // either contents of a concurrent write.
        self.count.load(Ordering::Relaxed)
    }

    /// Holds `data` as block `block`'s contents until record `seq` is durable.
    pub(crate) fn insert(&self, block: u64, seq: u64, data: Box<[u8]>) {
        let mut m = self.blocks.lock();
        m.insert(block, Block { seq, data });
        self.count.store(m.len(), Ordering::Relaxed);
    }

    pub(crate) fn lock(&self) -> PendingGuard<'_> {
        PendingGuard {
            map: self.blocks.lock(),
            shift: self.shift,
        }
    }

    /// Writes every block whose record is durable (`seq <= durable`) to the origin and forgets it.
    pub(crate) fn drain(&self, origin: &dyn BlockDevice, durable: u64) -> Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        let mut m = self.blocks.lock();
        let ready: Vec<u64> = m
            .iter()
            .filter(|(_, b)| b.seq <= durable)
            .map(|(&k, _)| k)
            .collect();
        for block in ready {
            let b = &m[&block];
            origin.write_at(&b.data, block << self.shift)?;
            m.remove(&block);
        }
        self.count.store(m.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// The pending blocks, locked: writes merge into them, reads overlay them.
pub(crate) struct PendingGuard<'a> {
    map: MutexGuard<'a, HashMap<u64, Block>>,
    shift: u32,
}

impl PendingGuard<'_> {
    /// The blocks held.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.keys().copied()
    }

    /// Merges the bytes of `[offset, offset + len)` (from `src`, or zeros if `None`) into the
    /// blocks held; returns the byte ranges (relative to `offset`) not held, to be written to the
    /// origin directly.
    pub(crate) fn absorb(
        &mut self,
        offset: u64,
        len: usize,
        src: Option<&[u8]>,
    ) -> Vec<Range<usize>> {
        let bs = 1u64 << self.shift;
        let mut direct: Vec<Range<usize>> = Vec::new();
        let mut done = 0usize;
        while done < len {
            let pos = offset + done as u64;
            let block = pos >> self.shift;
            let within = (pos & (bs - 1)) as usize;
            let n = (bs as usize - within).min(len - done);
            match self.map.get_mut(&block) {
                Some(b) => {
                    let dst = &mut b.data[within..within + n];
                    match src {
                        Some(s) => dst.copy_from_slice(&s[done..done + n]),
                        None => dst.fill(0),
                    }
                }
                None => match direct.last_mut() {
                    Some(r) if r.end == done => r.end = done + n,
                    _ => direct.push(done..done + n),
                },
            }
            done += n;
        }
        direct
    }

    /// Overwrites the parts of `buf` (read from the origin at `offset`) that held blocks cover.
    pub(crate) fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let bs = 1u64 << self.shift;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = pos >> self.shift;
            let within = (pos & (bs - 1)) as usize;
            let n = (bs as usize - within).min(buf.len() - done);
            if let Some(b) = self.map.get(&block) {
                buf[done..done + n].copy_from_slice(&b.data[within..within + n]);
            }
            done += n;
        }
    }
}
