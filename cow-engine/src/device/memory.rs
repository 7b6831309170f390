//! A sparse in-memory device.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::{BlockDevice, Discard, Resize};
use crate::error::{check_range, Result};

const CHUNK_SHIFT: u32 = 16;
const CHUNK: u64 = 1 << CHUNK_SHIFT;
const SHARDS: usize = 64;

/// Chunk numbers are already well spread; a multiplicative hash is enough and far cheaper than
/// the default SipHash on this hot path.
#[derive(Default, Clone, Copy)]
struct ChunkHasher(u64);

impl std::hash::Hasher for ChunkHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Shard = RwLock<HashMap<u64, Box<[u8]>, std::hash::BuildHasherDefault<ChunkHasher>>>;

/// A sparse in-memory [`BlockDevice`]: 64 KiB chunks allocated on first write, so a large device with
/// little written costs little. Never-written bytes read as zeros. Flush does nothing.
pub struct MemDevice {
    len: AtomicU64,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemDevice")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MemDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: u64) -> Self {
        MemDevice {
            len: AtomicU64::new(len),
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::default()))
                .collect(),
        }
    }

    /// Bytes of memory held by allocated chunks.
    pub fn allocated_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().len() as u64 * CHUNK)
            .sum()
    }

    fn shard(&self, chunk: u64) -> &Shard {
        &self.shards[(chunk as usize) % SHARDS]
    }

    /// Splits `[offset, offset+len)` into per-chunk pieces: (chunk, offset in chunk, offset in buf, n).
    fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
        let mut done = 0usize;
        std::iter::from_fn(move || {
            if done >= len {
                return None;
            }
            let pos = offset + done as u64;
            let chunk = pos >> CHUNK_SHIFT;
            let within = (pos & (CHUNK - 1)) as usize;
            let n = (CHUNK as usize - within).min(len - done);
            let item = (chunk, within, done, n);
            done += n;
            Some(item)
        })
    }
}

impl BlockDevice for MemDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(offset, buf.len(), self.len())?;
        for (chunk, within, at, n) in Self::pieces(offset, buf.len()) {
            let shard = self.shard(chunk).read();
            match shard.get(&chunk) {
                Some(data) => buf[at..at + n].copy_from_slice(&data[within..within + n]),
                None => buf[at..at + n].fill(0),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(offset, buf.len(), self.len())?;
        for (chunk, within, at, n) in Self::pieces(offset, buf.len()) {
            let mut shard = self.shard(chunk).write();
            let data = shard
                .entry(chunk)
                .or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            data[within..within + n].copy_from_slice(&buf[at..at + n]);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        Some(self)
    }

    /// The 4 KiB pieces of allocated chunks that hold a non-zero byte.
    fn allocated(&self, offset: u64, len: u64) -> Result<Vec<std::ops::Range<u64>>> {
        const PIECE: usize = 4096;
        let end = offset.saturating_add(len);
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for (&chunk, data) in shard.iter() {
                let base = chunk << CHUNK_SHIFT;
                if base >= end || base + CHUNK <= offset {
                    continue;
                }
                for (i, piece) in data.chunks(PIECE).enumerate() {
                    if piece.iter().any(|&b| b != 0) {
                        let at = base + (i * PIECE) as u64;
                        out.push(at..at + piece.len() as u64);
                    }
                }
            }
        }
        Ok(super::clip(out, offset, len))
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        Some(self)
    }
}

impl Resize for MemDevice {
    fn resize(&self, new_len: u64) -> Result<()> {
        let old = self.len();
        if new_len < old {
            // Zero the dropped tail so a later grow reads zeros there.
            self.discard(new_len, old - new_len)?;
        }
        self.len.store(new_len, Ordering::Relaxed);
        Ok(())
    }
}

impl Discard for MemDevice {
    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        check_range(offset, len_usize, self.len())?;
        for (chunk, within, _, n) in Self::pieces(offset, len_usize) {
            let mut shard = self.shard(chunk).write();
            if within == 0 && n == CHUNK as usize {
                shard.remove(&chunk);
            } else if let Some(data) = shard.get_mut(&chunk) {
                data[within..within + n].fill(0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_reads_zero_and_spans_chunks() {
        let d = MemDevice::new(1 << 40);
        assert_eq!(d.allocated_bytes(), 0);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        d.write_at(&data, CHUNK - 7).unwrap();
        let mut back = vec![0u8; data.len()];
        d.read_at(&mut back, CHUNK - 7).unwrap();
        assert_eq!(back, data);
        let mut z = [1u8; 16];
        d.read_at(&mut z, 1 << 39).unwrap();
        assert_eq!(z, [0; 16]);
        assert!(d.allocated_bytes() <= 5 * CHUNK);
    }

    #[test]
    fn out_of_range_writes_nothing() {
        let d = MemDevice::new(100);
        let err = d.write_at(&[1; 10], 95).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::OutOfRange);
        assert_eq!(d.allocated_bytes(), 0);
    }

    #[test]
    fn discard_and_resize_zero() {
        let d = MemDevice::new(3 * CHUNK);
        d.write_at(&vec![9u8; (3 * CHUNK) as usize], 0).unwrap();
        d.discard(10, CHUNK + 20).unwrap();
        let mut b = vec![0u8; (3 * CHUNK) as usize];
        d.read_at(&mut b, 0).unwrap();
        assert!(b[..10].iter().all(|&x| x == 9));
        assert!(b[10..(CHUNK + 30) as usize].iter().all(|&x| x == 0));
        assert!(b[(CHUNK + 30) as usize..].iter().all(|&x| x == 9));
        d.resize(5).unwrap();
        d.resize(3 * CHUNK).unwrap();
        d.read_at(&mut b, 0).unwrap();
        assert!(b[5..].iter().all(|&x| x == 0));
    }
}
