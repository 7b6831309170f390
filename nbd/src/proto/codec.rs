//! Encoding and decoding of the NBD wire structures, and the planning of structured read replies
//! and block-status extents from an allocation map.

use super::*;

/// The size of a (compact) request header.
pub const REQUEST_LEN: usize = 28;
/// The size of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// The size of a structured reply chunk header.
pub const CHUNK_HEADER_LEN: usize = 20;

/// A transmission request header (the WRITE payload follows it on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags (`CMD_FLAG_*`).
    pub flags: u16,
    /// The command (`CMD_*`).
    pub kind: u16,
    /// The client's cookie, echoed in the reply.
    pub cookie: u64,
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub len: u32,
}

impl Request {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&self.flags.to_be_bytes());
        b[6..8].copy_from_slice(&self.kind.to_be_bytes());
        b[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        b[16..24].copy_from_slice(&self.offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Decodes a header; `None` if the magic is wrong.
    pub fn decode(b: &[u8; REQUEST_LEN]) -> Option<Request> {
        if be_u32(&b[0..4]) != REQUEST_MAGIC {
            return None;
        }
        Some(Request {
            flags: be_u16(&b[4..6]),
            kind: be_u16(&b[6..8]),
            cookie: be_u64(&b[8..16]),
            offset: be_u64(&b[16..24]),
            len: be_u32(&b[24..28]),
        })
    }
}

/// A simple reply header: error (0 = success) and cookie.
pub fn simple_reply(error: u32, cookie: u64) -> [u8; SIMPLE_REPLY_LEN] {
    let mut b = [0u8; SIMPLE_REPLY_LEN];
    b[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b
}

/// A structured reply chunk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// `REPLY_FLAG_*`.
    pub flags: u16,
    /// `REPLY_TYPE_*`.
    pub kind: u16,
    /// The request's cookie.
    pub cookie: u64,
    /// The payload's length.
    pub len: u32,
}

impl ChunkHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&self.flags.to_be_bytes());
        b[6..8].copy_from_slice(&self.kind.to_be_bytes());
        b[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        b[16..20].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Decodes a header; `None` if the magic is wrong.
    pub fn decode(b: &[u8; CHUNK_HEADER_LEN]) -> Option<ChunkHeader> {
        if be_u32(&b[0..4]) != STRUCTURED_REPLY_MAGIC {
            return None;
        }
        Some(ChunkHeader {
            flags: be_u16(&b[4..6]),
            kind: be_u16(&b[6..8]),
            cookie: be_u64(&b[8..16]),
            len: be_u32(&b[16..20]),
        })
    }
}

/// One option reply: magic, option, reply type, length, data.
pub fn option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&reply.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// An INFO or GO option's data: the export name and the information asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    /// The export name.
    pub name: String,
    /// The `INFO_*` types asked for.
    pub infos: Vec<u16>,
}

impl InfoRequest {
    /// Encodes the option data.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        b.extend_from_slice(self.name.as_bytes());
        b.extend_from_slice(&(self.infos.len() as u16).to_be_bytes());
        for i in &self.infos {
            b.extend_from_slice(&i.to_be_bytes());
        }
        b
    }

    /// Parses the option data; the error says what is malformed.
    pub fn decode(data: &[u8]) -> Result<InfoRequest, BadOption> {
        let mut r = Cursor(data);
        let name = r.string("export name")?;
        let n = r.u16("information count")?;
        let mut infos = Vec::with_capacity(usize::from(n).min(data.len() / 2));
        for _ in 0..n {
            infos.push(r.u16("information type")?);
        }
        r.end()?;
        Ok(InfoRequest { name, infos })
    }
}

/// A LIST_META_CONTEXT or SET_META_CONTEXT option's data: the export name and the queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    /// The export name.
    pub name: String,
    /// The queries (context names or namespace prefixes).
    pub queries: Vec<String>,
}

impl MetaRequest {
    /// Encodes the option data.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        b.extend_from_slice(self.name.as_bytes());
        b.extend_from_slice(&(self.queries.len() as u32).to_be_bytes());
        for q in &self.queries {
            b.extend_from_slice(&(q.len() as u32).to_be_bytes());
            b.extend_from_slice(q.as_bytes());
        }
        b
    }

    /// Parses the option data; the error says what is malformed.
    pub fn decode(data: &[u8]) -> Result<MetaRequest, BadOption> {
        let mut r = Cursor(data);
        let name = r.string("export name")?;
        let n = r.u32("query count")?;
        let mut queries = Vec::new();
        for i in 0..n {
            queries.push(r.string(&format!("query {i}"))?);
        }
        r.end()?;
        Ok(MetaRequest { name, queries })
    }
}

/// Option data that cannot be used, and the error reply it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadOption {
    /// Malformed (`NBD_REP_ERR_INVALID`): the text says what.
    Invalid(String),
    /// A string longer than the server accepts (`NBD_REP_ERR_TOO_BIG`).
    TooBig(String),
}

impl BadOption {
    /// The option reply type that answers it.
    pub fn reply(&self) -> u32 {
        match self {
            BadOption::Invalid(_) => super::REP_ERR_INVALID,
            BadOption::TooBig(_) => super::REP_ERR_TOO_BIG,
        }
    }
}

impl std::fmt::Display for BadOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadOption::Invalid(m) | BadOption::TooBig(m) => f.write_str(m),
        }
    }
}

/// A reader of option data that names what it could not read.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], BadOption> {
        if self.0.len() < n {
            return Err(BadOption::Invalid(format!(
                "the option data ends inside the {what} ({} bytes left, {n} needed)",
                self.0.len()
            )));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u16(&mut self, what: &str) -> Result<u16, BadOption> {
        Ok(be_u16(self.take(2, what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, BadOption> {
        Ok(be_u32(self.take(4, what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, BadOption> {
        let len = self.u32(&format!("{what}'s length"))? as usize;
        if len > MAX_STRING {
            return Err(BadOption::TooBig(format!(
                "the {what} is {len} bytes long (at most {MAX_STRING})"
            )));
        }
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| BadOption::Invalid(format!("the {what} is not UTF-8")))
    }

    fn end(&self) -> Result<(), BadOption> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BadOption::Invalid(format!(
                "{} bytes of option data follow its last field",
                self.0.len()
            )))
        }
    }
}

/// One piece of a structured read reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPiece {
    /// Bytes to send as an OFFSET_DATA chunk.
    Data {
        /// Byte offset in the export.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Zeros to send as an OFFSET_HOLE chunk.
    Hole {
        /// Byte offset in the export.
        offset: u64,
        /// Length.
        len: u64,
    },
}

/// The pieces of a structured read reply of `[offset, offset + len)`: data for every allocated
/// extent, holes between them; ascending, disjoint, covering the range exactly. `allocated` is
/// `LunHandle::allocation`'s answer (ascending, disjoint; parts outside the range are clipped).
pub fn plan_read(offset: u64, len: u64, allocated: &[(u64, u64)]) -> Vec<ReadPiece> {
    let end = offset + len;
    let mut out = Vec::with_capacity(allocated.len() * 2 + 1);
    let mut at = offset;
    for &(s, l) in allocated {
        let s = s.max(at);
        let e = s.saturating_add(l).min(end).max(s);
        let (s, e) = (s.min(end), e.min(end));
        if e <= at || s >= e {
            continue;
        }
        if s > at {
            out.push(ReadPiece::Hole {
                offset: at,
                len: s - at,
            });
        }
        out.push(ReadPiece::Data {
            offset: s,
            len: e - s,
        });
        at = e;
    }
    if at < end {
        out.push(ReadPiece::Hole {
            offset: at,
            len: end - at,
        });
    }
    out
}

/// The `base:allocation` extents `(length, flags)` of `[offset, offset + len)`: 0 for allocated
/// data, `HOLE | ZERO` for the rest; consecutive, covering the range exactly (`req_one`: only the
/// first).
pub fn block_status_extents(
    offset: u64,
    len: u32,
    allocated: &[(u64, u64)],
    req_one: bool,
) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = plan_read(offset, u64::from(len), allocated)
        .into_iter()
        .map(|p| match p {
            // Each piece lies inside a range of `len: u32` bytes.
            ReadPiece::Data { len, .. } => (len as u32, 0),
            ReadPiece::Hole { len, .. } => (len as u32, STATE_HOLE | STATE_ZERO),
        })
        .collect();
    if req_one {
        out.truncate(1);
    }
    out
}

/// A BLOCK_STATUS chunk's payload: the context id then each extent.
pub fn block_status_payload(context: u32, extents: &[(u32, u32)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 8 * extents.len());
    b.extend_from_slice(&context.to_be_bytes());
    for (l, f) in extents {
        b.extend_from_slice(&l.to_be_bytes());
        b.extend_from_slice(&f.to_be_bytes());
    }
    b
}

/// An ERROR chunk's payload: the error and a message.
pub fn error_payload(error: u32, message: &str) -> Vec<u8> {
    let mut msg = message.as_bytes();
    if msg.len() > 4096 {
        msg = &msg[..4096];
        while std::str::from_utf8(msg).is_err() {
            msg = &msg[..msg.len() - 1];
        }
    }
    let mut b = Vec::with_capacity(6 + msg.len());
    b.extend_from_slice(&error.to_be_bytes());
    b.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    b.extend_from_slice(msg);
    b
}

/// A big-endian u16 from the first 2 bytes.
pub fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A big-endian u32 from the first 4 bytes.
pub fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A big-endian u64 from the first 8 bytes.
pub fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Merged runs `(start, len)` of the set bits of `bits`, each bit `unit` bytes.
    fn runs(bits: &[bool], unit: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (i, &b) in bits.iter().enumerate() {
            if !b {
                continue;
            }
            let s = i as u64 * unit;
            match out.last_mut() {
                Some((s0, l0)) if *s0 + *l0 == s => *l0 += unit,
                _ => out.push((s, unit)),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn requests_round_trip(flags: u16, kind: u16, cookie: u64, offset: u64, len: u32) {
            let r = Request { flags, kind, cookie, offset, len };
            prop_assert_eq!(Request::decode(&r.encode()), Some(r));
            let mut bad = r.encode();
            bad[0] ^= 1;
            prop_assert_eq!(Request::decode(&bad), None);
        }

        #[test]
        fn chunk_headers_round_trip(flags: u16, kind: u16, cookie: u64, len: u32) {
            let c = ChunkHeader { flags, kind, cookie, len };
            prop_assert_eq!(ChunkHeader::decode(&c.encode()), Some(c));
        }

        #[test]
        fn option_data_round_trips_and_truncation_is_refused(
            name in "[a-z0-9:/ ]{0,40}",
            infos in proptest::collection::vec(any::<u16>(), 0..6),
            queries in proptest::collection::vec("[a-z:]{0,20}", 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let i = InfoRequest { name: name.clone(), infos };
            let e = i.encode();
            prop_assert_eq!(InfoRequest::decode(&e), Ok(i));
            let m = MetaRequest { name, queries };
            let me = m.encode();
            prop_assert_eq!(MetaRequest::decode(&me), Ok(m));
            // Any strict prefix is malformed, as is any trailing byte.
            let k = cut.index(e.len());
            prop_assert!(InfoRequest::decode(&e[..k]).is_err());
            let mut long = me.clone();
            long.push(0);
            prop_assert!(MetaRequest::decode(&long).is_err());
        }

        /// Structured read pieces cover the range exactly, in order, without overlap, data
        /// exactly where the allocation model has data, holes elsewhere, never two neighbours of
        /// one kind; block-status extents say the same.
        #[test]
        fn read_pieces_cover_the_range_and_follow_the_allocation(
            bits in proptest::collection::vec(any::<bool>(), 1..40),
            a in 0u64..40 * 512,
            b in 0u64..40 * 512,
            req_one: bool,
        ) {
            let unit = 512;
            let size = bits.len() as u64 * unit;
            let (a, b) = (a % size, b % size);
            let (offset, end) = (a.min(b), a.max(b) + 1);
            let len = end - offset;
            // What the handle returns: runs clipped to the range.
            let alloc: Vec<(u64, u64)> = runs(&bits, unit)
                .into_iter()
                .filter_map(|(s, l)| {
                    let (s2, e2) = (s.max(offset), (s + l).min(end));
                    (s2 < e2).then(|| (s2, e2 - s2))
                })
                .collect();
            let pieces = plan_read(offset, len, &alloc);
            let mut at = offset;
            let mut last_data = None;
            for p in &pieces {
                let (o, l, data) = match *p {
                    ReadPiece::Data { offset, len } => (offset, len, true),
                    ReadPiece::Hole { offset, len } => (offset, len, false),
                };
                prop_assert_eq!(o, at);
                prop_assert!(l > 0);
                prop_assert_ne!(Some(data), last_data);
                for byte in o..o + l {
                    prop_assert_eq!(bits[(byte / unit) as usize], data, "byte {}", byte);
                }
                at += l;
                last_data = Some(data);
            }
            prop_assert_eq!(at, end);
            let ext = block_status_extents(offset, len as u32, &alloc, req_one);
            if req_one {
                prop_assert_eq!(ext.len(), 1);
            } else {
                prop_assert_eq!(ext.len(), pieces.len());
                prop_assert_eq!(ext.iter().map(|e| u64::from(e.0)).sum::<u64>(), len);
            }
            for (e, p) in ext.iter().zip(&pieces) {
                let hole = matches!(p, ReadPiece::Hole { .. });
                prop_assert_eq!(e.1, if hole { STATE_HOLE | STATE_ZERO } else { 0 });
            }
        }
    }

    #[test]
    fn over_long_strings_and_bad_utf8_are_refused() {
        let mut d = (MAX_STRING as u32 + 1).to_be_bytes().to_vec();
        d.extend(vec![b'a'; MAX_STRING + 1]);
        d.extend(0u16.to_be_bytes());
        let e = InfoRequest::decode(&d).unwrap_err();
        assert!(
            matches!(&e, BadOption::TooBig(m) if m.contains("4097 bytes")),
            "{e:?}"
        );
        assert_eq!(e.reply(), REP_ERR_TOO_BIG);
        let mut d = 1u32.to_be_bytes().to_vec();
        d.push(0xff);
        d.extend(0u16.to_be_bytes());
        let e = InfoRequest::decode(&d).unwrap_err();
        assert!(
            matches!(&e, BadOption::Invalid(m) if m.contains("UTF-8")),
            "{e:?}"
        );
        assert_eq!(e.reply(), REP_ERR_INVALID);
        let p = error_payload(EIO, &"é".repeat(3000));
        assert_eq!(be_u16(&p[4..6]) as usize, p.len() - 6);
        assert!(std::str::from_utf8(&p[6..]).is_ok());
    }
}
