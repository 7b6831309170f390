//! The diff-area superblock and the journal file header (layout in docs/format.md).

use crate::config::{DiffFullPolicy, Durability, VolumeConfig};
use crate::error::{Error, ErrorKind, Result};

/// Magic of the diff-area superblock.
pub(crate) const DIFF_MAGIC: &[u8; 8] = b"UMBRADIF";
/// Magic of a journal file header.
pub(crate) const JOURNAL_MAGIC: &[u8; 8] = b"UMBRAJNL";
/// The on-disk format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Bytes of a superblock / header.
pub(crate) const SUPERBLOCK_LEN: usize = 64;
/// Journal records start here.
pub(crate) const JOURNAL_DATA: u64 = 4096;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The diff-area superblock: what the volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) uuid: [u8; 16],
    pub(crate) config: VolumeConfig,
    pub(crate) data_offset: u64,
}

impl Superblock {
    pub(crate) fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut b = [0u8; SUPERBLOCK_LEN];
        b[0..8].copy_from_slice(DIFF_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.config.block_size.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        let flags = u32::from(self.config.durability == Durability::Volatile);
        b[32..36].copy_from_slice(&flags.to_le_bytes());
        b[36..44].copy_from_slice(&self.config.diff_limit.unwrap_or(u64::MAX).to_le_bytes());
        b[44] = u8::from(self.config.on_diff_full == DiffFullPolicy::FailWrites);
        b[48..56].copy_from_slice(&self.data_offset.to_le_bytes());
        let crc = crc32fast::hash(&b[0..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Superblock> {
        if b.len() < SUPERBLOCK_LEN || &b[0..8] != DIFF_MAGIC {
            return Err(Error::corrupt("not an umbra diff area (bad magic)"));
        }
        let version = le32(b, 8);
        if version != FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "diff area format version {version}; this build reads version {FORMAT_VERSION}"
                ),
            ));
        }
        if crc32fast::hash(&b[0..56]) != le32(b, 56) {
            return Err(Error::corrupt("diff area superblock checksum mismatch"));
        }
        let block_size = le32(b, 12);
        let limit = le64(b, 36);
        let config = VolumeConfig {
            block_size,
            diff_limit: (limit != u64::MAX).then_some(limit),
            on_diff_full: if b[44] == 1 {
                DiffFullPolicy::FailWrites
            } else {
                DiffFullPolicy::DeleteOldest
            },
            durability: if le32(b, 32) & 1 != 0 {
                Durability::Volatile
            } else {
                Durability::Persistent
            },
        };
        if !block_size.is_power_of_two() || !(4096..=1 << 20).contains(&block_size) {
            return Err(Error::corrupt(format!(
                "diff area superblock names block size {block_size}"
            )));
        }
        let data_offset = le64(b, 48);
        if data_offset < SUPERBLOCK_LEN as u64
            || !data_offset.is_multiple_of(u64::from(block_size))
            || data_offset > 1 << 20
        {
            return Err(Error::corrupt(
                "diff area superblock names a bad data offset",
            ));
        }
        Ok(Superblock {
            uuid: b[16..32].try_into().expect("16 bytes"),
            config,
            data_offset,
        })
    }
}

/// A journal file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalHeader {
    pub(crate) uuid: [u8; 16],
    pub(crate) generation: u64,
}

impl JournalHeader {
    pub(crate) fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut b = [0u8; SUPERBLOCK_LEN];
        b[0..8].copy_from_slice(JOURNAL_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `Ok(None)` for an empty or torn header (the file is not in use); errors for another
    /// volume's journal or an unknown version.
    pub(crate) fn decode(b: &[u8], uuid: &[u8; 16]) -> Result<Option<JournalHeader>> {
        if b.len() < SUPERBLOCK_LEN || &b[0..8] != JOURNAL_MAGIC {
            return Ok(None);
        }
        if crc32fast::hash(&b[0..40]) != le32(b, 40) {
            return Ok(None);
        }
        let version = le32(b, 8);
        if version != FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "journal format version {version}; this build reads version {FORMAT_VERSION}"
                ),
            ));
        }
        if &b[16..32] != uuid {
            return Err(Error::corrupt(
                "journal belongs to another volume (volume id mismatch)",
            ));
        }
        let generation = le64(b, 32);
        if generation > 1 << 62 {
            return Err(Error::corrupt(format!(
                "journal generation {generation} is out of range"
            )));
        }
        Ok(Some(JournalHeader {
            uuid: *uuid,
            generation,
        }))
    }
}

/// 16 random bytes from the OS.
pub(crate) fn random_uuid() -> Result<[u8; 16]> {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `b`, a live local array.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("getrandom failed", e));
        }
        filled += n as usize;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_rejects_damage() {
        let sb = Superblock {
            uuid: [7; 16],
            config: VolumeConfig {
                block_size: 65536,
                diff_limit: Some(1 << 30),
                on_diff_full: DiffFullPolicy::FailWrites,
                durability: Durability::Persistent,
            },
            data_offset: 65536,
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b).unwrap(), sb);
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(
            Superblock::decode(&bad).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let mut other = b;
        other[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(
            Superblock::decode(&other).unwrap_err().kind(),
            ErrorKind::UnsupportedVersion
        );
        let h = JournalHeader {
            uuid: [7; 16],
            generation: 5,
        };
        assert_eq!(
            JournalHeader::decode(&h.encode(), &[7; 16]).unwrap(),
            Some(h)
        );
        assert_eq!(
            JournalHeader::decode(&h.encode(), &[8; 16])
                .unwrap_err()
                .kind(),
            ErrorKind::Corrupt
        );
        assert_eq!(JournalHeader::decode(&[0; 64], &[7; 16]).unwrap(), None);
    }
}
