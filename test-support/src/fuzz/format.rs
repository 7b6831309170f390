//! Encoders for the on-disk structures of docs/format.md (superblock, journal header, records),
//! written from the document rather than taken from the engine, so the fuzzer can build images
//! with valid checksums around whatever field values it likes.

/// Superblock and journal header length.
pub const HEADER_LEN: usize = 64;
/// Where journal records start.
pub const JOURNAL_DATA: usize = 4096;
/// The format version the engine reads.
pub const VERSION: u32 = 2;

/// CRC-32/ISO-HDLC (zlib's), bit by bit: small, and fast enough for fuzz-sized inputs.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The fields of a diff-area superblock (docs/format.md §2.1), any values allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Format version.
    pub version: u32,
    /// Block size in bytes.
    pub block_size: u32,
    /// Volume id.
    pub uuid: [u8; 16],
    /// Flags (bit 0: volatile).
    pub flags: u32,
    /// Diff limit in bytes, `u64::MAX` = none.
    pub diff_limit: u64,
    /// 1 = fail writes when full.
    pub on_diff_full: u8,
    /// Byte offset of slot 0.
    pub data_offset: u64,
    /// Store a wrong CRC.
    pub bad_crc: bool,
}

impl Superblock {
    /// A valid superblock of a persistent volume as format writes it.
    pub fn valid(block_size: u32, uuid: [u8; 16]) -> Self {
        Superblock {
            version: VERSION,
            block_size,
            uuid,
            flags: 0,
            diff_limit: u64::MAX,
            on_diff_full: 0,
            data_offset: u64::from(block_size),
            bad_crc: false,
        }
    }

    /// The 64 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(b"UMBRADIF");
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..44].copy_from_slice(&self.diff_limit.to_le_bytes());
        b[44] = self.on_diff_full;
        b[48..56].copy_from_slice(&self.data_offset.to_le_bytes());
        let crc = crc32(&b[0..56]) ^ u32::from(self.bad_crc);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// The fields of a journal header (docs/format.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHeader {
    /// Format version.
    pub version: u32,
    /// Volume id (must match the superblock's).
    pub uuid: [u8; 16],
    /// Checkpoint generation.
    pub generation: u64,
    /// Store a wrong CRC.
    pub bad_crc: bool,
}

impl JournalHeader {
    /// The 64 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(b"UMBRAJNL");
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        let crc = crc32(&b[0..40]) ^ u32::from(self.bad_crc);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Record type codes (docs/format.md §3.3).
pub mod rec {
    /// `VolumeLen { len }`.
    pub const VOLUME_LEN: u8 = 1;
    /// `CreateSnapshot { id, len, flags, metadata }`.
    pub const CREATE_SNAPSHOT: u8 = 2;
    /// `Preserve { snapshot, block, slot }`.
    pub const PRESERVE: u8 = 3;
    /// `Overlay { snapshot, block, slot }`.
    pub const OVERLAY: u8 = 4;
    /// `DeleteSnapshot { id }`.
    pub const DELETE_SNAPSHOT: u8 = 5;
    /// `SetPinned { id, pinned }`.
    pub const SET_PINNED: u8 = 6;
    /// `SetMetadata { id, metadata }`.
    pub const SET_METADATA: u8 = 7;
    /// `Grow { len }`.
    pub const GROW: u8 = 8;
    /// `RevertBegin { snapshot }`.
    pub const REVERT_BEGIN: u8 = 9;
    /// `RevertProgress { snapshot, cursor }`.
    pub const REVERT_PROGRESS: u8 = 10;
    /// `RevertDone { snapshot }`.
    pub const REVERT_DONE: u8 = 11;
    /// `SplitProgress { snapshot, cursor }`.
    pub const SPLIT_PROGRESS: u8 = 12;
    /// `CheckpointEnd { next_id }`.
    pub const CHECKPOINT_END: u8 = 13;
    /// `SyncEnd { first_seq }`.
    pub const SYNC_END: u8 = 14;
}

/// Appends a framed record: length, CRC (optionally wrong), seq, type, payload.
pub fn push_record(out: &mut Vec<u8>, seq: u64, kind: u8, payload: &[u8], bad_crc: bool) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let crc = crc32(&out[start + 8..]) ^ u32::from(bad_crc);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Payload builder.
#[derive(Debug, Default)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// Appends a u8.
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a blob (u32 length, bytes).
    pub fn blob(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
}

/// A journal device image: header at 0, `records` at 4096, zero-padded to `len` (at least the
/// bytes it holds).
pub fn journal_image(header: &JournalHeader, records: &[u8], len: usize) -> Vec<u8> {
    let mut img = vec![0u8; len.max(JOURNAL_DATA + records.len())];
    img[..HEADER_LEN].copy_from_slice(&header.encode());
    img[JOURNAL_DATA..JOURNAL_DATA + records.len()].copy_from_slice(records);
    img
}

/// The images of a freshly formatted persistent volume (docs/format.md §4.1): diff area
/// (superblock only, `block_size` bytes) and the two journals (1 MiB with the first checkpoint,
/// and empty).
pub fn fresh_volume(volume_len: u64, block_size: u32, uuid: [u8; 16]) -> [Vec<u8>; 3] {
    let mut diff = vec![0u8; block_size as usize];
    diff[..HEADER_LEN].copy_from_slice(&Superblock::valid(block_size, uuid).encode());
    let mut body = Vec::new();
    push_record(
        &mut body,
        1,
        rec::VOLUME_LEN,
        &Payload::default().u64(volume_len).0,
        false,
    );
    push_record(
        &mut body,
        2,
        rec::CHECKPOINT_END,
        &Payload::default().u64(1).0,
        false,
    );
    let header = JournalHeader {
        version: VERSION,
        uuid,
        generation: 1,
        bad_crc: false,
    };
    [diff, journal_image(&header, &body, 1 << 20), Vec::new()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_documented_example() {
        // docs/format.md §3.2: VolumeLen{65536}, seq 1 has CRC 0x926efd18.
        let mut b = Vec::new();
        push_record(
            &mut b,
            1,
            rec::VOLUME_LEN,
            &Payload::default().u64(65536).0,
            false,
        );
        assert_eq!(&b[4..8], &[0x18, 0xfd, 0x6e, 0x92]);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
