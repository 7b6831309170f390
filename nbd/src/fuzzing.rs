//! The protocol fuzz target's body, shared by `fuzz/fuzz_targets/nbd_session.rs` and the corpus
//! replay test (`nbd/tests/fuzz_corpus.rs`). Not a stable API.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use vds_core::{Access, Array, InitiatorId, MaskSpec};

use crate::proto::codec::{InfoRequest, MetaRequest, Request};
use crate::proto::*;
use crate::{Conn, ErrorKind, Identity, Server, ServerConfig};

/// Replies collected in memory.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn initiator() -> InitiatorId {
    InitiatorId::parse("iqn.2026-01.org.example:fuzz").expect("a valid id")
}

/// One server over an in-memory array of three LUNs (read-write, read-only, masked away), shared
/// by every input of a fuzzing process.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let array = Array::in_memory();
        let me = initiator();
        let other = InitiatorId::parse("iqn.2026-01.org.example:other").expect("a valid id");
        let make = |name: &str, who: &InitiatorId, access| {
            array
                .create_lun(name, 256 << 10, &MaskSpec::host(who.clone(), access))
                .expect("a LUN of the fuzz array");
        };
        make("rw", &me, Access::ReadWrite);
        make("ro", &me, Access::ReadOnly);
        make("hidden", &other, Access::ReadWrite);
        array
            .write_at("rw", &me, &[0xab; 5000], 8192)
            .expect("seed data");
        let config = ServerConfig {
            max_request: 64 << 10,
            workers: 2,
            max_in_flight: 4,
            ..ServerConfig::default()
        };
        Server::new(array, config)
    })
}

/// The bytes a well-behaved client sends to reach transmission on export `"0"` with structured
/// replies and `base:allocation` (what an input starting with an odd byte is prefixed with).
pub fn handshake_prefix() -> Vec<u8> {
    let mut b = (CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES)
        .to_be_bytes()
        .to_vec();
    let mut opt = |o: u32, d: &[u8]| {
        b.extend_from_slice(&IHAVEOPT.to_be_bytes());
        b.extend_from_slice(&o.to_be_bytes());
        b.extend_from_slice(&(d.len() as u32).to_be_bytes());
        b.extend_from_slice(d);
    };
    opt(OPT_STRUCTURED_REPLY, &[]);
    let meta = MetaRequest {
        name: "0".into(),
        queries: vec![BASE_ALLOCATION.into()],
    };
    opt(OPT_SET_META_CONTEXT, &meta.encode());
    let go = InfoRequest {
        name: "0".into(),
        infos: vec![INFO_BLOCK_SIZE, INFO_NAME, INFO_DESCRIPTION],
    };
    opt(OPT_GO, &go.encode());
    b
}

/// Runs one client session on `data`: an odd first byte means "the rest are requests after a
/// valid handshake", an even one "the rest is the whole client side". Checks: no panic, the
/// session ends (the input ends), the only errors are protocol or I/O ones, and the server's
/// output starts with its greeting.
pub fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = if mode & 1 == 1 {
        let mut b = handshake_prefix();
        b.extend_from_slice(rest);
        b
    } else {
        rest.to_vec()
    };
    let out = Sink::default();
    let conn = Conn::from_parts(io::Cursor::new(input), out.clone());
    let r = server().serve_connection(conn, &Identity::Fixed(initiator()));
    if let Err(e) = r {
        assert!(
            matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Io),
            "unexpected error {e}"
        );
    }
    let out = out.0.lock();
    assert_eq!(&out[..8], &NBDMAGIC.to_be_bytes());
}

/// Seed inputs: a full session (writes, reads, block status, trim, zeroes, flush, DISC), LIST
/// and INFO, and a few malformed ones.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let req = |kind, flags, cookie, offset, len: u32| {
        Request {
            flags,
            kind,
            cookie,
            offset,
            len,
        }
        .encode()
        .to_vec()
    };
    let mut session = vec![1u8];
    session.extend(req(CMD_WRITE, CMD_FLAG_FUA, 1, 4096, 16));
    session.extend([0x5a; 16]);
    session.extend(req(CMD_READ, 0, 2, 0, 16384));
    session.extend(req(CMD_READ, CMD_FLAG_DF, 3, 4000, 300));
    session.extend(req(CMD_BLOCK_STATUS, 0, 4, 0, 65536));
    session.extend(req(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 5, 8192, 100));
    session.extend(req(CMD_TRIM, 0, 6, 8192, 4096));
    session.extend(req(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 7, 0, 100));
    session.extend(req(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 8, 0, 100));
    session.extend(req(CMD_CACHE, 0, 9, 0, 100));
    session.extend(req(CMD_FLUSH, 0, 10, 0, 0));
    session.extend(req(CMD_READ, 0, 11, 256 << 10, 1));
    session.extend(req(CMD_DISC, 0, 12, 0, 0));
    let mut half_write = vec![1u8];
    half_write.extend(req(CMD_WRITE, 0, 1, 0, 4096));
    half_write.extend([1u8; 100]);
    let mut list = vec![0u8];
    list.extend((CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes());
    for (o, d) in [
        (OPT_LIST, Vec::new()),
        (
            OPT_INFO,
            InfoRequest {
                name: "ro".into(),
                infos: vec![INFO_NAME],
            }
            .encode(),
        ),
        (
            OPT_LIST_META_CONTEXT,
            MetaRequest {
                name: String::new(),
                queries: vec![],
            }
            .encode(),
        ),
        (OPT_EXTENDED_HEADERS, Vec::new()),
        (OPT_EXPORT_NAME, b"1".to_vec()),
    ] {
        list.extend(IHAVEOPT.to_be_bytes());
        list.extend(o.to_be_bytes());
        list.extend((d.len() as u32).to_be_bytes());
        list.extend(d);
    }
    list.extend(req(CMD_READ, 0, 1, 0, 512));
    list.extend(req(CMD_WRITE, 0, 2, 0, 1));
    list.push(9);
    vec![
        ("session", session),
        ("half_write", half_write),
        ("list_info_export_name", list),
        ("bad_flags", vec![0, 0xff, 0xff, 0xff, 0xff]),
        ("empty", vec![0]),
    ]
}
