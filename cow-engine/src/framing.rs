//! Record framing and sync marks: the one implementation behind the engine's journal and the
//! array's pool log.
//!
//! A frame is
//!
//! ```text
//! [u32 LE payload length][u32 LE crc32 of the bytes after it][u64 LE seq][u8 kind][payload]
//! ```
//!
//! Frames follow each other with consecutive seqs. A writer ends each write it syncs with a
//! *sync mark* (a frame of the user's mark kind whose payload is the `u64 LE` seq of the write's
//! first frame), so that on recovery damage can be told from a torn tail: writes are issued one
//! after another, each once the previous one is durable, so a frame of a later write past a frame
//! that does not decode proves that frame was durable and has been damaged since
//! ([`written_after`]). Damage within the last write cannot be told from a torn tail and is one.
//!
//! ```
//! use cow_engine::framing::{self, Kinds};
//!
//! const CHANGE: u8 = 1;
//! const MARK: u8 = 2;
//! let kinds = Kinds { max: 2, mark: MARK, max_payload: 1 << 20 };
//! let mut log = Vec::new();
//! framing::encode(1, CHANGE, b"first", &mut log);
//! framing::encode_mark(2, MARK, 1, &mut log);
//! let (frame, used) = framing::decode(&log, &kinds).unwrap();
//! assert_eq!((frame.seq, frame.kind, frame.payload), (1, CHANGE, &b"first"[..]));
//! // Damage the first write, then append a second: the damage is not a torn tail.
//! framing::encode(3, CHANGE, b"second", &mut log);
//! framing::encode_mark(4, MARK, 3, &mut log);
//! log[20] ^= 1;
//! assert!(framing::decode(&log, &kinds).is_none());
//! assert_eq!(framing::written_after(&log, 0, 1, &kinds), Some(3));
//! # let _ = used;
//! ```

/// Bytes before a frame's payload: length, crc32, seq, kind.
pub const FRAME_HEADER: usize = 17;

/// The frame kinds a log uses, for recovery's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    /// The highest kind in use (kinds run from 1; 0 is never a frame).
    pub max: u8,
    /// The kind of the sync mark.
    pub mark: u8,
    /// The largest payload a frame may have.
    pub max_payload: usize,
}

/// One intact frame, borrowed from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its kind (a known one is 1 to [`Kinds::max`]).
    pub kind: u8,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// For a sync mark: the seq of the first frame of the write it closes.
    pub fn mark_first_seq(&self, kinds: &Kinds) -> Option<u64> {
        if self.kind != kinds.mark {
            return None;
        }
        Some(u64::from_le_bytes(self.payload.try_into().ok()?))
    }
}

/// Appends a frame of `kind` with `payload` and sequence number `seq` to `out`.
pub fn encode(seq: u64, kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    encode_with(seq, kind, out, |o| o.extend_from_slice(payload));
}

/// Appends a frame whose payload `write_payload` appends to the buffer it is given (no copy).
pub fn encode_with(
    seq: u64,
    kind: u8,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    write_payload(out);
    let payload_len = (out.len() - start - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends the sync mark `seq` closing the write whose first frame was `first_seq`.
pub fn encode_mark(seq: u64, mark_kind: u8, first_seq: u64, out: &mut Vec<u8>) {
    encode(seq, mark_kind, &first_seq.to_le_bytes(), out);
}

/// The intact frame at the start of `buf` and the bytes it takes, or `None` when there is none
/// there (too short, a length past [`Kinds::max_payload`], a checksum mismatch): a torn tail, or
/// damage; [`written_after`] tells which. An intact frame of a kind the caller does not know is
/// returned as it is: that is for the caller to report (a newer format, or corruption), never to
/// be taken for a torn tail.
pub fn decode<'a>(buf: &'a [u8], kinds: &Kinds) -> Option<(Frame<'a>, usize)> {
    if buf.len() < FRAME_HEADER {
        return None;
    }
    let n = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if n > kinds.max_payload || buf.len() < FRAME_HEADER + n {
        return None;
    }
    if crc32fast::hash(&buf[8..FRAME_HEADER + n]) != crc {
        return None;
    }
    let kind = buf[16];
    let seq = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    Some((
        Frame {
            seq,
            kind,
            payload: &buf[FRAME_HEADER..FRAME_HEADER + n],
        },
        FRAME_HEADER + n,
    ))
}

/// What lies past the point where recovery stopped, as [`after_stop`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Nothing of a later write: the stopped-at frame may be a torn tail.
    Nothing,
    /// The intact sync mark (at this byte offset) that closes the write holding the stopped-at
    /// frame, and nothing of a later write: that write completed, though its sectors could in
    /// principle have reached the disk out of order.
    ClosingMark(usize),
    /// A frame of a later write, which begins with this seq: the stopped-at frame had been
    /// durable and is damaged.
    LaterWrite(u64),
}

/// Looks past the point `at` where recovery stopped (the frame there, which would be `expected`,
/// does not decode) for the mark closing that frame's write and for frames of a later sync's
/// write. A later write shows as a sync mark whose write began after `expected`, or as any frame
/// after the mark that closed the write holding `expected`. Seqs more than 2^62 past `expected`
/// are not taken for frames, and the payload of an intact frame is not searched (a payload that
/// happens to hold the bytes of a frame is never taken for one).
pub fn after_stop(data: &[u8], at: usize, expected: u64, kinds: &Kinds) -> AfterStop {
    const MAX_GAP: u64 = 1 << 62;
    // The mark that closed the write holding `expected`, once seen: its seq and offset.
    let mut closed: Option<(u64, usize)> = None;
    let Some(last) = data.len().checked_sub(FRAME_HEADER) else {
        return AfterStop::Nothing;
    };
    let mut q = at + 1;
    while q <= last {
        // Past the end of what was written a log is zeros: eight positions whose kind bytes are
        // all zero hold no frame, and are passed over at once.
        if q + 7 <= last
            && u64::from_le_bytes(data[q + 16..q + 24].try_into().expect("8 bytes")) == 0
        {
            q += 8;
            continue;
        }
        // Cheap filters first: almost every position is zeros or inside another frame.
        let kind = data[q + 16];
        let seq = u64::from_le_bytes(data[q + 8..q + 16].try_into().expect("8 bytes"));
        if kind == 0 || kind > kinds.max || seq <= expected || seq - expected > MAX_GAP {
            q += 1;
            continue;
        }
        let Some((frame, used)) = decode(&data[q..], kinds) else {
            q += 1;
            continue;
        };
        let here = q;
        q += used;
        match frame.mark_first_seq(kinds) {
            Some(first) if first > expected => return AfterStop::LaterWrite(first),
            Some(_) => {
                closed.get_or_insert((frame.seq, here));
            }
            None if closed.is_some_and(|(m, _)| frame.seq > m) => {
                return AfterStop::LaterWrite(frame.seq)
            }
            None => {}
        }
    }
    match closed {
        Some((_, offset)) => AfterStop::ClosingMark(offset),
        None => AfterStop::Nothing,
    }
}

/// The first seq of a later write past the stopped-at frame ([`after_stop`]), or `None` when
/// nothing after `at` belongs to a later write (a torn tail: the crash interrupted the last
/// write). Damage within the last write cannot be told from a torn tail and is one.
pub fn written_after(data: &[u8], at: usize, expected: u64, kinds: &Kinds) -> Option<u64> {
    match after_stop(data, at, expected, kinds) {
        AfterStop::LaterWrite(first) => Some(first),
        AfterStop::Nothing | AfterStop::ClosingMark(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: Kinds = Kinds {
        max: 3,
        mark: 3,
        max_payload: 1024,
    };

    fn write(log: &mut Vec<u8>, first: u64, payloads: &[&[u8]]) -> u64 {
        let mut seq = first;
        for p in payloads {
            encode(seq, 1, p, log);
            seq += 1;
        }
        encode_mark(seq, 3, first, log);
        seq + 1
    }

    #[test]
    fn frames_round_trip_and_every_flipped_bit_is_caught() {
        let mut log = Vec::new();
        encode(7, 2, b"payload", &mut log);
        let (f, used) = decode(&log, &KINDS).unwrap();
        assert_eq!(
            (f.seq, f.kind, f.payload, used),
            (7, 2, &b"payload"[..], log.len())
        );
        for bit in 0..log.len() * 8 {
            let mut bad = log.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad, &KINDS).is_none(), "bit {bit} not caught");
        }
        assert!(
            decode(&log[..log.len() - 1], &KINDS).is_none(),
            "a torn frame"
        );
    }

    #[test]
    fn damage_is_told_from_a_torn_tail() {
        let mut log = Vec::new();
        let next = write(&mut log, 1, &[b"a", b"b"]);
        let second = log.len();
        let after = write(&mut log, next, &[b"c"]);
        // The last write torn: nothing later, a torn tail.
        let torn = &log[..log.len() - 3];
        assert_eq!(written_after(torn, second, next, &KINDS), None);
        // The first write's second frame damaged, the second write intact: damage.
        let mut bad = log.clone();
        let at = FRAME_HEADER + 1;
        bad[at + 5] ^= 0x10;
        assert!(decode(&bad[at..], &KINDS).is_none());
        assert_eq!(written_after(&bad, at, 2, &KINDS), Some(next));
        // Damage to the first write's mark only: the frames after it still prove a later write.
        let mark_at = 2 * (FRAME_HEADER + 1);
        let mut bad = log.clone();
        bad[mark_at + 20] ^= 1;
        assert_eq!(written_after(&bad, mark_at, 3, &KINDS), Some(next));
        let _ = after;
    }

    #[test]
    fn the_mark_closing_a_damaged_frame_is_found() {
        let mut log = Vec::new();
        let next = write(&mut log, 1, &[b"a"]);
        let at = FRAME_HEADER + 1; // the mark after frame 1
        let mut bad = log.clone();
        bad[5] ^= 1; // frame 1 damaged, its mark intact
        assert_eq!(after_stop(&bad, 0, 1, &KINDS), AfterStop::ClosingMark(at));
        assert_eq!(written_after(&bad, 0, 1, &KINDS), None);
        write(&mut bad, next, &[b"b"]);
        assert_eq!(after_stop(&bad, 0, 1, &KINDS), AfterStop::LaterWrite(next));
        assert_eq!(after_stop(&log[..at - 1], 0, 1, &KINDS), AfterStop::Nothing);
    }

    #[test]
    fn a_payload_holding_frame_bytes_is_not_taken_for_a_frame() {
        let mut inner = Vec::new();
        encode_mark(50, 3, 40, &mut inner);
        let mut log = Vec::new();
        encode(1, 1, b"x", &mut log);
        let at = log.len();
        encode(2, 1, &inner, &mut log); // intact, holding a mark's bytes
        encode_mark(3, 3, 1, &mut log);
        // Recovery stopped at frame 2 (say it was not wanted): the mark inside its payload is
        // skipped with the frame; the real mark closes the same write.
        assert_eq!(written_after(&log, at - 1, 1, &KINDS), None);
    }
}
