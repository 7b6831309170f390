//! Journal records: encoding, decoding and checksums (layout in docs/format.md).

use crate::error::{Error, Result};
use crate::framing::{self, Kinds};
use crate::state::SnapshotId;

/// Bytes before a record's payload: length, crc32, seq, type (a [`framing`] frame header).
pub(crate) const RECORD_HEADER: usize = framing::FRAME_HEADER;
/// The largest payload a record may have (a metadata blob plus its fields).
pub(crate) const MAX_PAYLOAD: usize = 128 * 1024;
/// The highest record type code.
pub(crate) const MAX_RECORD_TYPE: u8 = 14;
/// The journal's frame kinds: record types 1 to 14, `SyncEnd` (14) the sync mark.
pub(crate) const JOURNAL_KINDS: Kinds = Kinds {
    max: MAX_RECORD_TYPE,
    mark: 14,
    max_payload: MAX_PAYLOAD,
};

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// The volume's size in bytes (first record of a checkpoint).
    VolumeLen { len: u64 },
    /// A snapshot was taken.
    CreateSnapshot {
        id: SnapshotId,
        len: u64,
        writable: bool,
        persistent: bool,
        pinned: bool,
        metadata: Vec<u8>,
    },
    /// `block` of the origin, as of `snapshot`'s epoch, is preserved in `slot`.
    Preserve {
        snapshot: SnapshotId,
        block: u64,
        slot: u64,
    },
    /// `block` of writable `snapshot` lives in `slot`.
    Overlay {
        snapshot: SnapshotId,
        block: u64,
        slot: u64,
    },
    /// A snapshot was deleted.
    DeleteSnapshot { id: SnapshotId },
    /// A snapshot was pinned or unpinned.
    SetPinned { id: SnapshotId, pinned: bool },
    /// A snapshot's metadata was replaced.
    SetMetadata { id: SnapshotId, metadata: Vec<u8> },
    /// The volume grew to `len` bytes.
    Grow { len: u64 },
    /// A revert to `snapshot` started.
    RevertBegin { snapshot: SnapshotId },
    /// Blocks below `cursor` are reverted.
    RevertProgress { snapshot: SnapshotId, cursor: u64 },
    /// The revert finished.
    RevertDone { snapshot: SnapshotId },
    /// Blocks below `cursor` of `snapshot` are copied to its split destination.
    SplitProgress { snapshot: SnapshotId, cursor: u64 },
    /// The checkpoint at the start of a journal file is complete; ids from `next_id` on are unused.
    CheckpointEnd { next_id: SnapshotId },
    /// The last record of one sync's write; that write began with record `first_seq`. Recovery
    /// uses it to tell a torn tail (damage within the last write) from damage to records a later
    /// write followed.
    SyncEnd { first_seq: u64 },
}

struct Writer<'a>(&'a mut Vec<u8>);
impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn id(&mut self, id: SnapshotId) {
        self.u64(id.get());
    }
    fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::corrupt("journal record payload is too short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn id(&mut self) -> Result<SnapshotId> {
        self.u64().map(SnapshotId::new)
    }
    fn blob(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

impl Record {
    fn type_code(&self) -> u8 {
        match self {
            Record::VolumeLen { .. } => 1,
            Record::CreateSnapshot { .. } => 2,
            Record::Preserve { .. } => 3,
            Record::Overlay { .. } => 4,
            Record::DeleteSnapshot { .. } => 5,
            Record::SetPinned { .. } => 6,
            Record::SetMetadata { .. } => 7,
            Record::Grow { .. } => 8,
            Record::RevertBegin { .. } => 9,
            Record::RevertProgress { .. } => 10,
            Record::RevertDone { .. } => 11,
            Record::SplitProgress { .. } => 12,
            Record::CheckpointEnd { .. } => 13,
            Record::SyncEnd { .. } => 14,
        }
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Record::VolumeLen { len } | Record::Grow { len } => w.u64(*len),
            Record::CreateSnapshot {
                id,
                len,
                writable,
                persistent,
                pinned,
                metadata,
            } => {
                w.id(*id);
                w.u64(*len);
                w.u8(u8::from(*writable) | u8::from(*persistent) << 1 | u8::from(*pinned) << 2);
                w.blob(metadata);
            }
            Record::Preserve {
                snapshot,
                block,
                slot,
            }
            | Record::Overlay {
                snapshot,
                block,
                slot,
            } => {
                w.id(*snapshot);
                w.u64(*block);
                w.u64(*slot);
            }
            Record::DeleteSnapshot { id } => w.id(*id),
            Record::SetPinned { id, pinned } => {
                w.id(*id);
                w.u8(u8::from(*pinned));
            }
            Record::SetMetadata { id, metadata } => {
                w.id(*id);
                w.blob(metadata);
            }
            Record::RevertBegin { snapshot } | Record::RevertDone { snapshot } => w.id(*snapshot),
            Record::RevertProgress { snapshot, cursor }
            | Record::SplitProgress { snapshot, cursor } => {
                w.id(*snapshot);
                w.u64(*cursor);
            }
            Record::CheckpointEnd { next_id } => w.id(*next_id),
            Record::SyncEnd { first_seq } => w.u64(*first_seq),
        }
    }

    /// Appends the record, framed and checksummed ([`crate::framing`]), to `out`.
    pub(crate) fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        framing::encode_with(seq, self.type_code(), out, |o| self.encode_payload(o));
    }

    fn decode_payload(code: u8, p: &[u8]) -> Result<Record> {
        let mut r = Reader(p);
        let rec = match code {
            1 => Record::VolumeLen { len: r.u64()? },
            2 => {
                let id = r.id()?;
                let len = r.u64()?;
                let flags = r.u8()?;
                Record::CreateSnapshot {
                    id,
                    len,
                    writable: flags & 1 != 0,
                    persistent: flags & 2 != 0,
                    pinned: flags & 4 != 0,
                    metadata: r.blob()?,
                }
            }
            3 | 4 => {
                let (snapshot, block, slot) = (r.id()?, r.u64()?, r.u64()?);
                if code == 3 {
                    Record::Preserve {
                        snapshot,
                        block,
                        slot,
                    }
                } else {
                    Record::Overlay {
                        snapshot,
                        block,
                        slot,
                    }
                }
            }
            5 => Record::DeleteSnapshot { id: r.id()? },
            6 => Record::SetPinned {
                id: r.id()?,
                pinned: r.u8()? != 0,
            },
            7 => Record::SetMetadata {
                id: r.id()?,
                metadata: r.blob()?,
            },
            8 => Record::Grow { len: r.u64()? },
            9 => Record::RevertBegin { snapshot: r.id()? },
            10 => Record::RevertProgress {
                snapshot: r.id()?,
                cursor: r.u64()?,
            },
            11 => Record::RevertDone { snapshot: r.id()? },
            12 => Record::SplitProgress {
                snapshot: r.id()?,
                cursor: r.u64()?,
            },
            13 => Record::CheckpointEnd { next_id: r.id()? },
            14 => Record::SyncEnd {
                first_seq: r.u64()?,
            },
            other => {
                return Err(Error::corrupt(format!(
                    "unknown journal record type {other}"
                )))
            }
        };
        if !r.0.is_empty() {
            return Err(Error::corrupt("journal record has trailing bytes"));
        }
        Ok(rec)
    }

    /// Decodes the record at the start of `buf`: `Ok(Some((seq, record, bytes used)))`, or
    /// `Ok(None)` if `buf` holds no complete, intact record there (a torn or absent tail).
    /// A record that passes its checksum but does not parse is `Err` (real corruption).
    pub(crate) fn decode(buf: &[u8]) -> Result<Option<(u64, Record, usize)>> {
        let Some((frame, used)) = framing::decode(buf, &JOURNAL_KINDS) else {
            return Ok(None);
        };
        let rec = Record::decode_payload(frame.kind, frame.payload)?;
        Ok(Some((frame.seq, rec, used)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Record> {
        vec![
            Record::VolumeLen { len: 1 << 40 },
            Record::CreateSnapshot {
                id: SnapshotId::new(7),
                len: 8192,
                writable: true,
                persistent: false,
                pinned: true,
                metadata: b"name=x".to_vec(),
            },
            Record::Preserve {
                snapshot: SnapshotId::new(7),
                block: 3,
                slot: 9,
            },
            Record::Overlay {
                snapshot: SnapshotId::new(7),
                block: 4,
                slot: 10,
            },
            Record::DeleteSnapshot {
                id: SnapshotId::new(7),
            },
            Record::SetPinned {
                id: SnapshotId::new(2),
                pinned: false,
            },
            Record::SetMetadata {
                id: SnapshotId::new(2),
                metadata: vec![],
            },
            Record::Grow { len: 99 },
            Record::RevertBegin {
                snapshot: SnapshotId::new(1),
            },
            Record::RevertProgress {
                snapshot: SnapshotId::new(1),
                cursor: 5,
            },
            Record::RevertDone {
                snapshot: SnapshotId::new(1),
            },
            Record::SplitProgress {
                snapshot: SnapshotId::new(1),
                cursor: 6,
            },
            Record::CheckpointEnd {
                next_id: SnapshotId::new(8),
            },
            Record::SyncEnd { first_seq: 3 },
        ]
    }

    #[test]
    fn records_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        for (i, r) in all().iter().enumerate() {
            r.encode(i as u64 + 1, &mut buf);
        }
        let mut at = 0;
        for (i, r) in all().iter().enumerate() {
            let (seq, back, used) = Record::decode(&buf[at..]).unwrap().unwrap();
            assert_eq!((seq, &back), (i as u64 + 1, r));
            // Every single-bit flip in the record is detected as a bad tail, never misread.
            for bit in 0..used * 8 {
                let mut copy = buf[at..at + used].to_vec();
                copy[bit / 8] ^= 1 << (bit % 8);
                match Record::decode(&copy) {
                    Ok(None) | Err(_) => {}
                    Ok(Some((s, r2, _))) => panic!("flip {bit} read as {s} {r2:?}"),
                }
            }
            // Every truncation is a torn tail.
            for cut in 0..used {
                assert!(Record::decode(&buf[at..at + cut]).unwrap().is_none());
            }
            at += used;
        }
        assert_eq!(at, buf.len());
    }
}
