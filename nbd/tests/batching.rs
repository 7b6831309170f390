//! The transmission's data path over one in-memory connection (`Server::serve_connection`):
//! requests the reader runs itself (small WRITEs and READs) and those it hands to the workers
//! (FLUSH, FUA, a WRITE over 256 KiB), payloads that straddle the read buffer, every reply once
//! and whole, and replies batched into far fewer writes than requests.

// NBD is big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use support::{ini, pattern};
use umbra_nbd::proto::codec::{Request, REQUEST_LEN};
use umbra_nbd::proto::*;
use umbra_nbd::{Conn, Identity, Server, ServerConfig};
use vds_core::{Access, Array, MaskSpec};

/// The server's side of the connection: every write call kept apart.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Writes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn request(out: &mut Vec<u8>, kind: u16, flags: u16, cookie: u64, offset: u64, len: u32) {
    let r = Request {
        flags,
        kind,
        cookie,
        offset,
        len,
    };
    let b: [u8; REQUEST_LEN] = r.encode();
    out.extend_from_slice(&b);
}

#[test]
fn inline_and_worker_requests_are_each_answered_once_with_replies_batched() {
    const MIB: u64 = 1 << 20;
    let host = ini("iqn.2026-01.org.example:batch");
    let array = Array::in_memory();
    array
        .create_lun(
            "db",
            4 * MIB,
            &MaskSpec::host(host.clone(), Access::ReadWrite),
        )
        .unwrap();
    let before = pattern(4096, 7);
    array.write_at("db", &host, &before, 3 * MIB).unwrap();

    // The client's whole side: fixed newstyle with NO_ZEROES, EXPORT_NAME "0", then requests.
    let mut input = Vec::new();
    input.extend_from_slice(&(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes());
    input.extend_from_slice(&IHAVEOPT.to_be_bytes());
    input.extend_from_slice(&OPT_EXPORT_NAME.to_be_bytes());
    input.extend_from_slice(&1u32.to_be_bytes());
    input.extend_from_slice(b"0");
    let mut written = HashMap::new(); // offset -> bytes the client wrote there
    let mut reads = HashMap::new(); // cookie -> (offset, len)
    let mut cookie = 0u64;
    let mut next = || {
        cookie += 1;
        cookie
    };
    // 48 small writes (4124 bytes each on the wire: some payload straddles the 128 KiB read
    // buffer), two of them FUA; a FLUSH among them; a write over 256 KiB; reads of what was
    // written and of what was there before.
    for i in 0..48u64 {
        let data = pattern(4096, 100 + i);
        let flags = if i % 20 == 5 { CMD_FLAG_FUA } else { 0 };
        request(&mut input, CMD_WRITE, flags, next(), i * 8192, 4096);
        input.extend_from_slice(&data);
        written.insert(i * 8192, data);
        if i == 30 {
            request(&mut input, CMD_FLUSH, 0, next(), 0, 0);
        }
    }
    let big = pattern(300 << 10, 999);
    request(&mut input, CMD_WRITE, 0, next(), MIB, big.len() as u32);
    input.extend_from_slice(&big);
    written.insert(MIB, big.clone());
    for i in 0..16u64 {
        if i % 20 == 5 {
            // A FUA write runs on a worker: a READ sent before its reply is not ordered after it.
            continue;
        }
        let c = next();
        request(&mut input, CMD_READ, 0, c, i * 8192, 4096);
        reads.insert(c, (i * 8192, 4096usize));
    }
    let c = next();
    request(&mut input, CMD_READ, 0, c, 3 * MIB, 4096);
    reads.insert(c, (3 * MIB, 4096));
    let requests = cookie;

    let out = Writes::default();
    let server = Server::new(array.clone(), ServerConfig::default());
    server
        .serve_connection(
            Conn::from_parts(std::io::Cursor::new(input), out.clone()),
            &Identity::Fixed(host.clone()),
        )
        .unwrap();

    let calls = out.0.lock().clone();
    let bytes: Vec<u8> = calls.concat();
    // Greeting (18 bytes), then the export's size and flags (10 bytes, NO_ZEROES).
    assert_eq!(&bytes[..8], b"NBDMAGIC");
    assert_eq!(
        u64::from_be_bytes(bytes[18..26].try_into().unwrap()),
        4 * MIB
    );
    let mut at = 28;
    let mut answered = HashMap::new();
    while at < bytes.len() {
        let magic = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(magic, SIMPLE_REPLY_MAGIC, "a reply starts at byte {at}");
        let err = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let c = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        assert_eq!(err, 0, "request {c} failed");
        at += 16;
        let data = match reads.get(&c) {
            Some(&(_, len)) => {
                at += len;
                bytes[at - len..at].to_vec()
            }
            None => Vec::new(),
        };
        assert!(
            answered.insert(c, data).is_none(),
            "request {c} answered twice"
        );
    }
    assert_eq!(at, bytes.len(), "the last reply is whole");
    assert_eq!(answered.len() as u64, requests, "every request answered");
    for (c, (offset, len)) in &reads {
        let want = match written.get(offset) {
            Some(d) => d[..*len].to_vec(),
            None => before.clone(),
        };
        assert_eq!(answered[c], want, "READ {c} at {offset}");
    }
    for (offset, data) in &written {
        let mut got = vec![0u8; data.len()];
        array.read_at("db", &host, &mut got, *offset).unwrap();
        assert_eq!(&got, data, "the write at {offset} landed");
    }
    // One write call per reply would be `requests` calls (plus the handshake's): the reader's
    // replies go out in batches.
    assert!(
        (calls.len() as u64) < requests / 4,
        "{} write calls for {requests} requests",
        calls.len()
    );
}
