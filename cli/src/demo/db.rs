//! The demo's directory-service database: an append-only log of fixed-size, checksummed
//! records at the start of a LUN, read and written through the array's I/O handle.
//!
//! Record `n` lives at byte `n * RECORD` and is exactly [`encode`]`(n)`: a magic, its sequence
//! number, a directory entry (`cn=user<n>,ou=people,dc=umbra,dc=example`) and a CRC-32 of what
//! comes before. The log ends at the first all-zero slot; a slot that is neither all zero nor its
//! record is damage (a checksum or sequence that does not check out), never taken for the end.

use vds_core::LunHandle;

/// Bytes per record.
pub const RECORD: u64 = 64;
/// Bytes read per I/O when scanning.
const SCAN_CHUNK: u64 = 1 << 20;
/// The first bytes of every record.
const MAGIC: &[u8; 4] = b"DSR1";

/// Record `seq`'s bytes.
pub fn encode(seq: u64) -> [u8; RECORD as usize] {
    let mut r = [0u8; RECORD as usize];
    r[..4].copy_from_slice(MAGIC);
    r[4..12].copy_from_slice(&seq.to_le_bytes());
    let entry = format!("cn=user{seq},ou=people,dc=umbra,dc=example");
    let n = entry.len().min(48);
    r[12..12 + n].copy_from_slice(&entry.as_bytes()[..n]);
    let crc = crc32fast::hash(&r[..60]);
    r[60..].copy_from_slice(&crc.to_le_bytes());
    r
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// All zero: past the end of the log.
    Empty,
    /// Record `n` (the slot's own), checking out.
    Valid,
    /// Anything else: the checksum, the magic or the sequence number does not check out.
    Bad,
}

/// Classifies slot `n`'s bytes.
pub fn classify(n: u64, bytes: &[u8]) -> Slot {
    if bytes.iter().all(|&b| b == 0) {
        Slot::Empty
    } else if bytes == encode(n) {
        Slot::Valid
    } else {
        Slot::Bad
    }
}

/// What a scan of the log found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Slots before the first empty one (the log's length, damaged records included).
    pub slots: u64,
    /// Records that check out.
    pub valid: u64,
    /// The slots that do not check out, ascending.
    pub bad: Vec<u64>,
}

impl Scan {
    /// True when every slot of the log checks out.
    pub fn clean(&self) -> bool {
        self.bad.is_empty()
    }
}

/// Scans a log of at most `capacity` records, reading with `read(buf, offset)`.
pub fn scan(
    capacity: u64,
    mut read: impl FnMut(&mut [u8], u64) -> vds_core::Result<()>,
) -> vds_core::Result<Scan> {
    let mut out = Scan::default();
    let total = capacity * RECORD;
    let mut buf = vec![0u8; SCAN_CHUNK as usize];
    let mut offset = 0;
    while offset < total {
        let len = (total - offset).min(SCAN_CHUNK) as usize;
        read(&mut buf[..len], offset)?;
        for (i, slot) in buf[..len].chunks_exact(RECORD as usize).enumerate() {
            let n = offset / RECORD + i as u64;
            match classify(n, slot) {
                Slot::Empty => return Ok(out),
                Slot::Valid => out.valid += 1,
                Slot::Bad => out.bad.push(n),
            }
            out.slots += 1;
        }
        offset += len as u64;
    }
    Ok(out)
}

/// The database open on a LUN through an initiator's handle.
pub struct Db {
    lun: LunHandle,
    capacity: u64,
}

impl Db {
    /// The database on `lun`, with room for `capacity` records.
    pub fn new(lun: LunHandle, capacity: u64) -> Self {
        Db { lun, capacity }
    }

    /// How many records fit.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Writes record `seq` in its slot (durable at the next [`Db::flush`]).
    pub fn append(&self, seq: u64) -> vds_core::Result<()> {
        self.lun.write_at(&encode(seq), seq * RECORD)
    }

    /// Makes every record written so far durable: they are acknowledged once this returns.
    pub fn flush(&self) -> vds_core::Result<()> {
        self.lun.flush()
    }

    /// Scans the log through the handle.
    pub fn scan(&self) -> vds_core::Result<Scan> {
        scan(self.capacity, |buf, off| self.lun.read_at(buf, off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_core::{Array, InitiatorId, MaskSpec};

    #[test]
    fn records_check_out_and_damage_is_not_the_end() {
        let r = encode(7);
        assert_eq!(classify(7, &r), Slot::Valid);
        assert_eq!(classify(8, &r), Slot::Bad, "a record in another's slot");
        let mut flipped = r;
        flipped[20] ^= 1;
        assert_eq!(classify(7, &flipped), Slot::Bad);
        assert_eq!(classify(7, &[0u8; 64]), Slot::Empty);
    }

    #[test]
    fn a_scan_through_a_lun_finds_the_log_and_its_damage() {
        let dir = tempfile::tempdir().unwrap();
        let a = Array::open(dir.path().join("pool")).unwrap();
        let server = InitiatorId::parse("iqn.1991-05.com.microsoft:server").unwrap();
        a.create_lun(
            "db",
            4 << 20,
            &MaskSpec::parse("iqn.1991-05.com.microsoft:server").unwrap(),
        )
        .unwrap();
        let db = Db::new(a.open_lun(&server, 0).unwrap(), 1 << 14);
        for n in 0..1000 {
            db.append(n).unwrap();
        }
        db.flush().unwrap();
        let s = db.scan().unwrap();
        assert_eq!((s.slots, s.valid, s.clean()), (1000, 1000, true));
        // Garbage over records 100..164 (one block): damage, and the log still ends at 1000.
        let other = a.open_lun(&server, 0).unwrap();
        other.write_at(&[0xA5; 4096], 100 * RECORD).unwrap();
        let s = db.scan().unwrap();
        assert_eq!(s.slots, 1000);
        assert_eq!(s.valid, 1000 - 64);
        assert_eq!(s.bad, (100..164).collect::<Vec<_>>());
    }
}
