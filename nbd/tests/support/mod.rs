//! What the NBD tests share: pools in temp dirs, servers on 127.0.0.1:0, a raw-protocol client
//! built on the crate's codec, and running the distribution's NBD clients (with a loud skip when
//! one is missing, a failure when `CI` is set).
#![allow(dead_code, clippy::big_endian_bytes)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use umbra_nbd::proto::codec::{
    be_u16, be_u32, be_u64, ChunkHeader, InfoRequest, MetaRequest, Request,
};
use umbra_nbd::proto::*;
use umbra_nbd::{Identity, Listener, ListenerHandle, Server, ServerConfig};
use vds_core::{Access, Array, InitiatorId, MaskSpec};

/// Test data from the workspace's one test generator; whether an outside tool runs (missing: a
/// loud skip, or a failure when `CI` is set). Not every test crate that includes this module uses
/// both.
#[allow(unused_imports)]
pub use umbra_test_support::{pattern, tools::have};

/// Runs `cmd` to its end (killed after 5 minutes: a hang guard, not a timing check) and returns
/// its output; panics, with its stderr, if it failed.
pub fn run(cmd: &mut Command) -> Output {
    let out = run_any(cmd);
    umbra_test_support::tools::assert_success(&out, &format!("{cmd:?}"));
    out
}

/// Runs `cmd` to its end (see [`run`]) whatever its exit status.
pub fn run_any(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = child.id();
    let (done, wait) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(300)) == Err(mpsc::RecvTimeoutError::Timeout) {
            let pid = rustix::process::Pid::from_raw(pid as i32).expect("a child's pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    });
    let out = child.wait_with_output().expect("waiting for a client tool");
    let _ = done.send(());
    guard.join().unwrap();
    out
}

/// An initiator id from text.
pub fn ini(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

/// A persistent pool in a temp dir.
pub struct Pool {
    pub dir: tempfile::TempDir,
    pub array: Array,
}

impl Pool {
    pub fn new() -> Pool {
        let dir = tempfile::tempdir().unwrap();
        let array = Array::open(dir.path().join("pool")).unwrap();
        Pool { dir, array }
    }

    /// Creates LUN `name` of `size` bytes unmasked to `who` with `access`; its number for `who`.
    pub fn lun(&self, name: &str, size: u64, who: &InitiatorId, access: Access) -> u32 {
        self.array
            .create_lun(name, size, &MaskSpec::host(who.clone(), access))
            .unwrap();
        self.number(name, who)
    }

    /// The number `who` sees LUN `name` at.
    pub fn number(&self, name: &str, who: &InitiatorId) -> u32 {
        self.array
            .access(name, who)
            .unwrap()
            .expect("unmasked")
            .number
    }

    /// The LUN's bytes, read through vds-core.
    pub fn bytes(&self, name: &str, who: &InitiatorId) -> Vec<u8> {
        let size = self.array.lun(name).unwrap().size;
        let mut b = vec![0u8; size as usize];
        self.array.read_at(name, who, &mut b, 0).unwrap();
        b
    }
}

/// A server with one TCP listener on 127.0.0.1:0.
pub struct Served {
    pub server: Server,
    pub listener: ListenerHandle,
    pub addr: SocketAddr,
}

pub fn serve(array: &Array, who: &InitiatorId) -> Served {
    serve_with(array, who, ServerConfig::default())
}

pub fn serve_with(array: &Array, who: &InitiatorId, config: ServerConfig) -> Served {
    let server = Server::new(array.clone(), config);
    let listener = server
        .listen(
            Listener::Tcp(TcpListener::bind("127.0.0.1:0").unwrap()),
            Identity::Fixed(who.clone()),
        )
        .unwrap();
    let addr = listener.local_addr().tcp().unwrap();
    Served {
        server,
        listener,
        addr,
    }
}

impl Served {
    /// The NBD URI of export `name`.
    pub fn uri(&self, name: &str) -> String {
        format!("nbd://{}/{}", self.addr, name)
    }
}

/// A pool with one read-write LUN `"db"` for initiator `a`, served on TCP.
pub struct OneLun {
    pub pool: Pool,
    pub a: InitiatorId,
    /// The LUN's number for `a`.
    pub n: u32,
    pub s: Served,
}

impl OneLun {
    pub fn new(size: u64) -> OneLun {
        let pool = Pool::new();
        let a = ini("iqn.2026-01.org.example:a");
        let n = pool.lun("db", size, &a, Access::ReadWrite);
        let s = serve(&pool.array, &a);
        OneLun { pool, a, n, s }
    }

    /// A client in transmission on the LUN (`structured`: with structured replies and
    /// `base:allocation`).
    pub fn client(&self, structured: bool) -> RawClient {
        let mut c = RawClient::connect(self.s.addr);
        if structured {
            c.structured(&self.n.to_string());
        }
        c.go(&self.n.to_string()).unwrap();
        c
    }

    /// The LUN's bytes through vds-core.
    pub fn bytes(&self) -> Vec<u8> {
        self.pool.bytes("db", &self.a)
    }
}

/// One reply to a request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub cookie: u64,
    /// The error (0: success): of the simple reply, or of an ERROR chunk.
    pub error: u32,
    /// Simple reply data, or the chunks: (type, offset, payload after the offset).
    pub data: Vec<u8>,
    pub chunks: Vec<(u16, u64, Vec<u8>)>,
}

/// A client speaking the protocol by hand.
pub struct RawClient {
    pub s: TcpStream,
    pub structured: bool,
}

impl RawClient {
    /// Connects and sends the client flags (fixed newstyle, no zeroes).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut g = [0u8; 18];
        s.read_exact(&mut g).unwrap();
        assert_eq!(be_u64(&g[0..8]), NBDMAGIC);
        assert_eq!(be_u64(&g[8..16]), IHAVEOPT);
        assert_eq!(be_u16(&g[16..18]), FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        s.write_all(&(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes())
            .unwrap();
        RawClient {
            s,
            structured: false,
        }
    }

    /// Sends an option header claiming `len` bytes of data, then `data`.
    pub fn send_option(&mut self, opt: u32, len: u32, data: &[u8]) {
        let mut b = IHAVEOPT.to_be_bytes().to_vec();
        b.extend_from_slice(&opt.to_be_bytes());
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(data);
        self.s.write_all(&b).unwrap();
    }

    /// Sends option `opt` with `data` and reads replies up to ACK or an error: (type, data)*.
    pub fn option(&mut self, opt: u32, data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.send_option(opt, data.len() as u32, data);
        let mut out = Vec::new();
        loop {
            let mut h = [0u8; 20];
            self.s.read_exact(&mut h).unwrap();
            assert_eq!(be_u64(&h[0..8]), REPLY_MAGIC);
            assert_eq!(be_u32(&h[8..12]), opt);
            let (ty, len) = (be_u32(&h[12..16]), be_u32(&h[16..20]));
            let mut d = vec![0u8; len as usize];
            self.s.read_exact(&mut d).unwrap();
            out.push((ty, d));
            if ty == REP_ACK || ty & REP_FLAG_ERROR != 0 {
                return out;
            }
        }
    }

    /// LIST: (name, description) of every export.
    pub fn list(&mut self) -> Vec<(String, String)> {
        let r = self.option(OPT_LIST, &[]);
        assert_eq!(r.last().unwrap().0, REP_ACK, "{r:?}");
        r[..r.len() - 1]
            .iter()
            .map(|(ty, d)| {
                assert_eq!(*ty, REP_SERVER);
                let n = be_u32(d) as usize;
                (
                    String::from_utf8(d[4..4 + n].to_vec()).unwrap(),
                    String::from_utf8(d[4 + n..].to_vec()).unwrap(),
                )
            })
            .collect()
    }

    /// STRUCTURED_REPLY then SET_META_CONTEXT base:allocation.
    pub fn structured(&mut self, export: &str) {
        let r = self.option(OPT_STRUCTURED_REPLY, &[]);
        assert_eq!(r, vec![(REP_ACK, vec![])]);
        self.structured = true;
        let q = MetaRequest {
            name: export.into(),
            queries: vec![BASE_ALLOCATION.into()],
        };
        let r = self.option(OPT_SET_META_CONTEXT, &q.encode());
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].0, REP_META_CONTEXT);
        assert_eq!(&r[0].1[4..], BASE_ALLOCATION.as_bytes());
    }

    /// GO: `Ok((size, flags))`, or the error reply's type and message.
    pub fn go(&mut self, export: &str) -> Result<(u64, u16), (u32, String)> {
        let q = InfoRequest {
            name: export.into(),
            infos: vec![INFO_BLOCK_SIZE],
        };
        let r = self.option(OPT_GO, &q.encode());
        let (ty, last) = r.last().unwrap();
        if *ty != REP_ACK {
            return Err((*ty, String::from_utf8_lossy(last).into_owned()));
        }
        let e = r
            .iter()
            .find(|(t, d)| *t == REP_INFO && be_u16(d) == INFO_EXPORT)
            .expect("INFO_EXPORT");
        Ok((be_u64(&e.1[2..10]), be_u16(&e.1[10..12])))
    }

    /// Sends a request (and its payload).
    pub fn send(
        &mut self,
        kind: u16,
        flags: u16,
        cookie: u64,
        offset: u64,
        len: u32,
        payload: &[u8],
    ) {
        let mut b = Request {
            flags,
            kind,
            cookie,
            offset,
            len,
        }
        .encode()
        .to_vec();
        b.extend_from_slice(payload);
        self.s.write_all(&b).unwrap();
    }

    /// Reads one reply; `read_len` is the data length of a simple reply to a READ (0 otherwise).
    pub fn reply(&mut self, read_len: usize) -> Reply {
        let mut m = [0u8; 4];
        self.s.read_exact(&mut m).unwrap();
        match be_u32(&m) {
            SIMPLE_REPLY_MAGIC => {
                let mut h = [0u8; 12];
                self.s.read_exact(&mut h).unwrap();
                let error = be_u32(&h[0..4]);
                let mut data = vec![0u8; if error == 0 { read_len } else { 0 }];
                self.s.read_exact(&mut data).unwrap();
                Reply {
                    cookie: be_u64(&h[4..12]),
                    error,
                    data,
                    chunks: vec![],
                }
            }
            STRUCTURED_REPLY_MAGIC => {
                let mut r = Reply {
                    cookie: 0,
                    error: 0,
                    data: vec![],
                    chunks: vec![],
                };
                let mut first = true;
                loop {
                    if !first {
                        self.s.read_exact(&mut m).unwrap();
                        assert_eq!(be_u32(&m), STRUCTURED_REPLY_MAGIC);
                    }
                    first = false;
                    let mut h = [0u8; 20];
                    h[0..4].copy_from_slice(&m);
                    self.s.read_exact(&mut h[4..]).unwrap();
                    let c = ChunkHeader::decode(&h).unwrap();
                    r.cookie = c.cookie;
                    let mut p = vec![0u8; c.len as usize];
                    self.s.read_exact(&mut p).unwrap();
                    match c.kind {
                        REPLY_TYPE_OFFSET_DATA | REPLY_TYPE_OFFSET_HOLE => {
                            r.chunks.push((c.kind, be_u64(&p), p[8..].to_vec()))
                        }
                        REPLY_TYPE_ERROR => r.error = be_u32(&p),
                        _ => r.chunks.push((c.kind, 0, p)),
                    }
                    if c.flags & REPLY_FLAG_DONE != 0 {
                        return r;
                    }
                }
            }
            m => panic!("bad reply magic {m:#x}"),
        }
    }

    /// READ `len` bytes at `offset` and the bytes it returned (holes as zeros); or the error.
    pub fn read(&mut self, cookie: u64, offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        self.send(CMD_READ, 0, cookie, offset, len, &[]);
        let r = self.reply(len as usize);
        assert_eq!(r.cookie, cookie);
        if r.error != 0 {
            return Err(r.error);
        }
        if !self.structured {
            return Ok(r.data);
        }
        let mut out = vec![0u8; len as usize];
        for (ty, off, p) in r.chunks {
            let at = (off - offset) as usize;
            if ty == REPLY_TYPE_OFFSET_DATA {
                out[at..at + p.len()].copy_from_slice(&p);
            }
        }
        Ok(out)
    }

    /// WRITE and its error (0: success).
    pub fn write(&mut self, cookie: u64, offset: u64, data: &[u8]) -> u32 {
        self.send(CMD_WRITE, 0, cookie, offset, data.len() as u32, data);
        let r = self.reply(0);
        assert_eq!(r.cookie, cookie);
        r.error
    }
}
