//! The server against a raw-protocol client: mask changes and fast recovery under a connected
//! client, clients that vanish mid-request, malformed and oversize input, many requests in
//! flight, shutdown with requests in flight, and FORCEDTLS.

// NBD is big-endian on the wire; nothing here is persisted.
#![allow(clippy::big_endian_bytes)]

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use support::*;
use umbra_nbd::proto::codec::{be_u32, InfoRequest, MetaRequest};
use umbra_nbd::proto::*;
use umbra_nbd::{Conn, Identity, Server, ServerConfig, TlsAcceptor};
use vds_core::{Access, InitiatorId, MaskSpec};

const MIB: u64 = 1 << 20;

/// Reads until the server closes the connection; true if it did (EOF or reset).
fn closed(c: &mut RawClient) -> bool {
    let mut b = [0u8; 64];
    loop {
        match c.s.read(&mut b) {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[test]
fn a_mask_change_fences_a_connected_client_and_the_export_leaves_list() {
    let f = OneLun::new(MIB);
    let (pool, n, s) = (&f.pool, f.n, &f.s);
    let mut c = f.client(true);
    assert_eq!(c.write(1, 0, b"before"), 0);
    assert_eq!(c.read(2, 0, 6).unwrap(), b"before");

    pool.array.set_mask("db", &MaskSpec::None).unwrap();
    assert_eq!(c.read(3, 0, 6), Err(EPERM));
    assert_eq!(c.write(4, 0, b"after!"), EPERM);
    // Nothing landed after the revoke.
    let other = ini("iqn.2026-01.org.example:admin");
    pool.array
        .set_mask("db", &MaskSpec::host(other.clone(), Access::ReadOnly))
        .unwrap();
    assert_eq!(&pool.bytes("db", &other)[..6], b"before");

    let mut l = RawClient::connect(s.addr);
    assert!(l.list().is_empty(), "the export is gone from the next LIST");
    let r = l.go(&n.to_string()).unwrap_err();
    assert_eq!(r.0, REP_ERR_UNKNOWN);
    let r = l.go("db").unwrap_err();
    assert_eq!(r.0, REP_ERR_UNKNOWN);
}

#[test]
fn after_a_fast_recovery_a_client_reconnecting_by_number_reaches_the_replacement() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let admin = ini("iqn.2026-01.org.example:admin");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    pool.lun("spare", MIB, &admin, Access::ReadWrite);
    pool.array
        .write_at("spare", &admin, b"the shadow", 0)
        .unwrap();
    pool.array.set_mask("spare", &MaskSpec::None).unwrap();
    let s = serve(&pool.array, &a);
    let mut c = RawClient::connect(s.addr);
    c.go(&n.to_string()).unwrap();
    assert_eq!(c.write(1, 0, b"the damage"), 0);

    pool.array.swap_lun("db", "spare").unwrap();
    assert_eq!(c.read(2, 0, 10), Err(EPERM), "the old handle is fenced");
    assert_eq!(c.write(3, 0, b"late write"), EPERM);

    let mut c2 = RawClient::connect(s.addr);
    let (size, _) = c2.go(&n.to_string()).unwrap();
    assert_eq!(size, MIB);
    assert_eq!(c2.read(4, 0, 10).unwrap(), b"the shadow");
    let list = RawClient::connect(s.addr).list();
    assert_eq!(list, vec![(n.to_string(), "spare".to_string())]);
}

#[test]
fn a_client_killed_mid_write_writes_nothing_and_others_go_on() {
    let f = OneLun::new(MIB);
    let (n, s) = (f.n, &f.s);
    let mut c = f.client(false);
    // A WRITE header for 64 KiB and half its payload, then the client is gone.
    let data = pattern(64 << 10, 3);
    c.send(CMD_WRITE, 0, 1, 4096, data.len() as u32, &data[..32 << 10]);
    c.s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    // Another client is served; the half-sent write never landed.
    let mut d = RawClient::connect(s.addr);
    d.structured(&n.to_string());
    d.go(&n.to_string()).unwrap();
    d.send(CMD_FLUSH, 0, 2, 0, 0, &[]);
    assert_eq!(d.reply(0).error, 0);
    // The first connection's thread ends once it read the end of input: the server's shutdown
    // waits for it, so after it nothing can still land.
    s.server.shutdown();
    assert!(f.bytes().iter().all(|&b| b == 0));
}

#[test]
fn bad_input_gets_an_error_or_a_close_and_the_server_goes_on() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    let ro = pool.lun("ro", MIB, &a, Access::ReadOnly);
    let config = ServerConfig {
        max_request: MIB as u32,
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);

    // Unknown client flags: dropped.
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    let mut g = [0u8; 18];
    c.read_exact(&mut g).unwrap();
    c.write_all(&0x8000_0001u32.to_be_bytes()).unwrap();
    assert_eq!(c.read(&mut g).unwrap_or(0), 0);

    // A bad option magic: dropped.
    let mut c = RawClient::connect(s.addr);
    c.s.write_all(&[0xffu8; 16]).unwrap();
    assert!(closed(&mut c));

    // Unknown options, EXTENDED_HEADERS, STARTTLS without TLS: ERR_UNSUP, the session goes on.
    let mut c = RawClient::connect(s.addr);
    for opt in [0xdead_beef, OPT_EXTENDED_HEADERS, OPT_STARTTLS, 4] {
        let r = c.option(opt, b"junk?");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, REP_ERR_UNSUP, "option {opt}: {r:?}");
    }
    // Malformed INFO and SET_META_CONTEXT before STRUCTURED_REPLY: ERR_INVALID.
    assert_eq!(
        c.option(OPT_INFO, &[0, 0, 0, 9, b'x'])[0].0,
        REP_ERR_INVALID
    );
    let meta = MetaRequest {
        name: n.to_string(),
        queries: vec![BASE_ALLOCATION.into()],
    };
    assert_eq!(
        c.option(OPT_SET_META_CONTEXT, &meta.encode())[0].0,
        REP_ERR_INVALID
    );
    assert_eq!(c.option(OPT_LIST, b"x")[0].0, REP_ERR_INVALID);
    // SET returns exactly what was asked: an unknown context selects nothing.
    assert_eq!(c.option(OPT_STRUCTURED_REPLY, &[]), vec![(REP_ACK, vec![])]);
    let other = MetaRequest {
        name: n.to_string(),
        queries: vec!["qemu:dirty-bitmap:x".into()],
    };
    assert_eq!(
        c.option(OPT_SET_META_CONTEXT, &other.encode()),
        vec![(REP_ACK, vec![])]
    );
    // An oversize option: dropped.
    c.send_option(OPT_INFO, u32::MAX, &[]);
    assert!(closed(&mut c));

    // Too many options: dropped after the 32nd.
    let mut c = RawClient::connect(s.addr);
    for _ in 0..32 {
        assert_eq!(c.option(OPT_STRUCTURED_REPLY, b"x")[0].0, REP_ERR_INVALID);
    }
    c.send_option(OPT_LIST, 0, &[]);
    assert!(closed(&mut c));

    // Transmission errors.
    let mut c = RawClient::connect(s.addr);
    c.structured(&n.to_string());
    c.go(&n.to_string()).unwrap();
    assert_eq!(c.read(1, MIB - 1, 2), Err(EINVAL), "read past the end");
    assert_eq!(c.write(2, MIB - 1, b"ab"), ENOSPC, "write past the end");
    assert_eq!(
        c.read(3, 0, MIB as u32 + 1),
        Err(EOVERFLOW),
        "read over the maximum"
    );
    // A write over the maximum: its payload is consumed, the next request is found.
    let big = vec![7u8; MIB as usize + 1];
    assert_eq!(c.write(4, 0, &big), EOVERFLOW);
    c.send(99, 0, 5, 0, 0, &[]);
    assert_eq!(c.reply(0).error, EINVAL, "unknown command");
    c.send(CMD_READ, 1 << 9, 6, 0, 1, &[]);
    assert_eq!(c.reply(0).error, EINVAL, "unknown flag");
    c.send(
        CMD_WRITE_ZEROES,
        CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO,
        7,
        0,
        4096,
        &[],
    );
    assert_eq!(
        c.reply(0).error,
        ENOTSUP,
        "zeroing without holes is not fast"
    );
    c.send(CMD_READ, 0, 8, u64::MAX - 1, 4, &[]);
    assert_eq!(c.reply(0).error, EINVAL, "offset overflow");
    assert!(
        pool.bytes("db", &a).iter().all(|&b| b == 0),
        "nothing written"
    );
    assert_eq!(c.write(9, 0, b"ok"), 0, "the connection goes on");
    // A bad request magic: dropped.
    c.s.write_all(&[0u8; 28]).unwrap();
    assert!(closed(&mut c));

    // Read-only: EPERM, nothing written.
    let mut c = RawClient::connect(s.addr);
    let (_, flags) = c.go(&ro.to_string()).unwrap();
    assert_ne!(flags & TF_READ_ONLY, 0);
    assert_eq!(c.write(1, 0, b"no"), EPERM);
    c.send(CMD_TRIM, 0, 2, 0, 4096, &[]);
    assert_eq!(c.reply(0).error, EPERM);
    assert!(pool.bytes("ro", &a).iter().all(|&b| b == 0));

    // EXPORT_NAME of an unknown export: dropped (no error reply exists).
    let mut c = RawClient::connect(s.addr);
    c.send_option(OPT_EXPORT_NAME, 2, b"99");
    assert!(closed(&mut c));

    // After all that, a client is served as usual.
    let mut c = RawClient::connect(s.addr);
    c.go("").unwrap();
    assert_eq!(c.read(1, 0, 2).unwrap(), b"ok");
}

#[test]
fn structured_reads_and_block_status_follow_the_allocation() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    pool.array
        .write_at("db", &a, &pattern(5000, 1), 8192)
        .unwrap();
    let s = serve(&pool.array, &a);
    let mut c = RawClient::connect(s.addr);
    c.structured(&n.to_string());
    let (_, flags) = c.go(&n.to_string()).unwrap();
    assert_ne!(flags & TF_SEND_DF, 0);
    c.send(CMD_READ, 0, 1, 0, 32768, &[]);
    let r = c.reply(0);
    let kinds: Vec<(u16, u64)> = r.chunks.iter().map(|(t, o, _)| (*t, *o)).collect();
    assert_eq!(
        kinds,
        vec![
            (REPLY_TYPE_OFFSET_HOLE, 0),
            (REPLY_TYPE_OFFSET_DATA, 8192),
            (REPLY_TYPE_OFFSET_HOLE, 16384)
        ]
    );
    assert_eq!(be_u32(&r.chunks[0].2), 8192);
    assert_eq!(r.chunks[1].2.len(), 8192);
    assert_eq!(&r.chunks[1].2[..5000], &pattern(5000, 1)[..]);
    // DF: one data chunk.
    c.send(CMD_READ, CMD_FLAG_DF, 2, 0, 32768, &[]);
    let r = c.reply(0);
    assert_eq!(r.chunks.len(), 1);
    assert_eq!(r.chunks[0].2.len(), 32768);
    // Block status, and REQ_ONE.
    c.send(CMD_BLOCK_STATUS, 0, 3, 0, 32768, &[]);
    let r = c.reply(0);
    let p = &r.chunks[0].2;
    assert_eq!(be_u32(p), BASE_ALLOCATION_ID);
    let ext: Vec<(u32, u32)> = p[4..]
        .chunks(8)
        .map(|e| (be_u32(e), be_u32(&e[4..])))
        .collect();
    assert_eq!(ext, vec![(8192, 3), (8192, 0), (16384, 3)]);
    c.send(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 4, 8192, 32768, &[]);
    let r = c.reply(0);
    assert_eq!(&r.chunks[0].2[4..], &[0, 0, 0x20, 0, 0, 0, 0, 0]);
    // Trim punches a hole back.
    c.send(CMD_TRIM, 0, 5, 8192, 8192, &[]);
    assert_eq!(c.reply(0).error, 0);
    c.send(CMD_BLOCK_STATUS, 0, 6, 0, 32768, &[]);
    let r = c.reply(0);
    assert_eq!(&r.chunks[0].2[4..], &[0, 0, 0x80, 0, 0, 0, 0, 3]);
}

#[test]
fn many_requests_in_flight_are_each_answered_once() {
    let f = OneLun::new(4 * MIB);
    let mut c = f.client(false);
    let k = 64u64;
    for i in 0..k {
        let d = pattern(8192, i);
        c.send(
            CMD_WRITE,
            if i % 3 == 0 { CMD_FLAG_FUA } else { 0 },
            i,
            i * 65536,
            8192,
            &d,
        );
    }
    c.send(CMD_FLUSH, 0, k, 0, 0, &[]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..=k {
        let r = c.reply(0);
        assert_eq!(r.error, 0);
        assert!(seen.insert(r.cookie), "cookie {} answered twice", r.cookie);
    }
    assert_eq!(seen.len() as u64, k + 1);
    let bytes = f.bytes();
    for i in 0..k {
        let at = (i * 65536) as usize;
        assert_eq!(&bytes[at..at + 8192], &pattern(8192, i)[..]);
    }
}

#[test]
fn shutdown_answers_requests_in_flight_then_closes() {
    let f = OneLun::new(4 * MIB);
    let s = &f.s;
    let mut c = f.client(false);
    let k = 32u64;
    for i in 0..k {
        c.send(CMD_WRITE, 0, i, i * 65536, 4096, &pattern(4096, i + 100));
    }
    // The first reply proves the server is in transmission with requests read.
    let first = c.reply(0);
    assert_eq!(first.error, 0);
    let mut acked = vec![first.cookie];
    let server = s.server.clone();
    let stopper = std::thread::spawn(move || server.shutdown());
    // Every reply the client still gets is whole; then the connection closes.
    loop {
        let mut m = [0u8; 16];
        match c.s.read_exact(&mut m) {
            Ok(()) => {
                assert_eq!(be_u32(&m), SIMPLE_REPLY_MAGIC);
                let err = be_u32(&m[4..]);
                let cookie = u64::from_be_bytes(m[8..16].try_into().unwrap());
                if err == 0 {
                    acked.push(cookie);
                } else {
                    assert_eq!(err, ESHUTDOWN);
                }
            }
            Err(_) => break,
        }
    }
    stopper.join().unwrap();
    // Every acknowledged write is there; nothing unacknowledged landed.
    let bytes = f.bytes();
    for i in 0..k {
        let at = (i * 65536) as usize;
        let got = &bytes[at..at + 4096];
        if acked.contains(&i) {
            assert_eq!(got, &pattern(4096, i + 100)[..]);
        } else {
            assert!(
                got.iter().all(|&b| b == 0),
                "write {i} landed without a reply"
            );
        }
    }
    // The listener is gone.
    assert!(std::net::TcpStream::connect(s.addr).is_err());
}

/// A stand-in TLS layer that encrypts nothing and names a fixed initiator: what is tested is
/// the handshake's FORCEDTLS rules and the forgetting of state at STARTTLS, not TLS itself.
struct Plain(InitiatorId);

impl TlsAcceptor for Plain {
    fn accept(&self, plain: Conn) -> std::io::Result<(Conn, InitiatorId)> {
        Ok((plain, self.0.clone()))
    }
}

#[test]
fn forcedtls_refuses_options_before_starttls_and_forgets_state_after_it() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let b = ini("iqn.2026-01.org.example:b");
    let na = pool.lun("for-a", MIB, &a, Access::ReadWrite);
    pool.lun("for-b", MIB, &b, Access::ReadWrite);
    let server = Server::new(pool.array.clone(), ServerConfig::default());
    let l = server
        .listen(
            umbra_nbd::Listener::Tcp(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
            Identity::Tls(Arc::new(Plain(a.clone()))),
        )
        .unwrap();
    let mut c = RawClient::connect(l.local_addr().tcp().unwrap());
    assert_eq!(c.option(OPT_LIST, &[])[0].0, REP_ERR_TLS_REQD);
    assert_eq!(c.option(OPT_STRUCTURED_REPLY, &[])[0].0, REP_ERR_TLS_REQD);
    let go = InfoRequest {
        name: na.to_string(),
        infos: vec![],
    };
    assert_eq!(c.option(OPT_GO, &go.encode())[0].0, REP_ERR_TLS_REQD);
    assert_eq!(c.option(OPT_STARTTLS, &[]), vec![(REP_ACK, vec![])]);
    // The identity is the certificate's: a's LUNs only.
    assert_eq!(c.list(), vec![(na.to_string(), "for-a".to_string())]);
    assert_eq!(c.option(OPT_STARTTLS, &[])[0].0, REP_ERR_INVALID);
    c.go(&na.to_string()).unwrap();
    assert_eq!(c.write(1, 0, b"tls"), 0);

    // Nothing negotiated before STARTTLS counts after it (CVE-2021-3716): STRUCTURED_REPLY is
    // refused before, so SET_META_CONTEXT after STARTTLS finds no structured replies.
    let mut c = RawClient::connect(l.local_addr().tcp().unwrap());
    assert_eq!(c.option(OPT_STRUCTURED_REPLY, &[])[0].0, REP_ERR_TLS_REQD);
    assert_eq!(c.option(OPT_STARTTLS, &[]), vec![(REP_ACK, vec![])]);
    let meta = MetaRequest {
        name: na.to_string(),
        queries: vec![BASE_ALLOCATION.into()],
    };
    assert_eq!(
        c.option(OPT_SET_META_CONTEXT, &meta.encode())[0].0,
        REP_ERR_INVALID
    );
    server.shutdown();
}

/// Whether the server closes `s` (end of input or a reset) within `wait`; false when `wait`
/// passed with the connection open (a watchdog, not a measure of speed).
fn closed_within(s: &mut std::net::TcpStream, wait: std::time::Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Connections in their handshake count against their listener's own budget
/// (`max_handshakes`), not against `max_connections`: clients that connect to one listener and
/// stall hold no slot of another listener's clients nor of established connections. Past
/// `max_connections` in transmission a GO is refused (`ERR_POLICY`, naming the limit), and a
/// client is served again once a connection ended.
#[test]
fn handshakes_have_a_budget_per_listener_apart_from_established_connections() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite).to_string();
    let config = ServerConfig {
        max_connections: 2,
        max_handshakes: 2,
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);
    let other = s
        .server
        .listen(
            umbra_nbd::Listener::Tcp(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
            Identity::Fixed(a.clone()),
        )
        .unwrap();
    let b = other.local_addr().tcp().unwrap();
    // Two clients stall in their handshake on the first listener: its budget is spent, and a
    // third is closed at accept (no greeting)...
    let _stalled = [RawClient::connect(s.addr), RawClient::connect(s.addr)];
    let mut third = std::net::TcpStream::connect(s.addr).unwrap();
    let mut g = [0u8; 18];
    assert!(third.read_exact(&mut g).is_err());
    // ...yet the other listener's clients are served, up to `max_connections` in transmission.
    let mut b1 = RawClient::connect(b);
    b1.go(&n).unwrap();
    let mut b2 = RawClient::connect(b);
    b2.go(&n).unwrap();
    let mut b3 = RawClient::connect(b);
    let (err, msg) = b3.go(&n).unwrap_err();
    assert_eq!(err, REP_ERR_POLICY, "{msg}");
    assert!(msg.contains("(2)"), "{msg}");
    // The refused client is still in its handshake: LIST answers.
    assert_eq!(b3.list(), vec![(n.clone(), "db".to_string())]);
    assert_eq!(b1.write(1, 0, b"x"), 0);
    // One ends: a new client is served (once the server read the end of that connection;
    // meanwhile an attempt may also find the listener's handshake budget spent by the ones
    // before it, not yet seen to end: closed at accept).
    b2.s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(b2);
    drop(b3);
    let try_connect = || {
        let mut s = std::net::TcpStream::connect(b).ok()?;
        s.read_exact(&mut [0u8; 18]).ok()?;
        s.write_all(&(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes())
            .ok()?;
        Some(RawClient {
            s,
            structured: false,
        })
    };
    let served = (0..1000).any(|_| try_connect().is_some_and(|mut c| c.go(&n).is_ok()));
    assert!(served);
}

/// A client that sends its handshake a byte at a time, each well within the silence limit,
/// is closed at the whole handshake's deadline.
#[test]
fn a_client_trickling_its_handshake_is_closed_at_the_deadline() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    pool.lun("db", MIB, &a, Access::ReadWrite);
    let config = ServerConfig {
        handshake_timeout: Some(std::time::Duration::from_secs(10)),
        handshake_deadline: Some(std::time::Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);
    let mut c = RawClient::connect(s.addr);
    // An INFO option whose 1000 bytes of data come one by one, 20 ms apart (20 s in all).
    c.send_option(OPT_INFO, 1000, &[]);
    let sent = (0..1000)
        .take_while(|_| {
            c.s.write_all(b"x").is_ok()
                && !closed_within(&mut c.s, std::time::Duration::from_millis(20))
        })
        .count();
    assert!(sent < 1000, "the trickling client was never closed");
}

/// A WRITE over `max_request` but at most `WRITE_DROP_FACTOR` times it has its payload dropped
/// and gets EOVERFLOW, the connection going on (as qemu-nbd); one declaring more (up to 4 GiB)
/// closes the connection at once, its payload unread.
#[test]
fn a_write_declaring_far_more_than_the_maximum_closes_the_connection() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", 8 * MIB, &a, Access::ReadWrite);
    let config = ServerConfig {
        max_request: MIB as u32,
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);
    let most = MIB as usize * umbra_nbd::WRITE_DROP_FACTOR as usize;
    for len in [u32::MAX, most as u32 + 1] {
        let mut c = RawClient::connect(s.addr);
        c.go(&n.to_string()).unwrap();
        assert_eq!(c.write(1, 0, &vec![9u8; most]), EOVERFLOW, "dropped");
        assert_eq!(c.write(2, 0, b"still here"), 0);
        // The header alone: a server reading the payload would wait for it.
        c.send(CMD_WRITE, 0, 3, 0, len, &[]);
        assert!(
            closed_within(&mut c.s, std::time::Duration::from_secs(60)),
            "a WRITE of {len} bytes did not close the connection"
        );
    }
    assert_eq!(&pool.bytes("db", &a)[..10], b"still here");
}

#[test]
fn shadows_taken_while_a_client_writes_are_point_in_time_images() {
    const BLOCKS: usize = 16;
    const GENERATIONS: u8 = 24;
    let f = OneLun::new(BLOCKS as u64 * 4096);
    let mut c = f.client(false);
    let (started, wait) = std::sync::mpsc::channel();
    // One write in flight at a time, generation after generation over every block in order:
    // at any instant the acknowledged writes are a prefix of that sequence.
    let writer = std::thread::spawn(move || {
        for g in 1..=GENERATIONS {
            for b in 0..BLOCKS {
                assert_eq!(c.write(b as u64, b as u64 * 4096, &[g; 4096]), 0);
            }
            if g == 2 {
                started.send(()).unwrap();
            }
        }
    });
    wait.recv().unwrap();
    let mut shadows = Vec::new();
    for i in 0..4 {
        let name = format!("shadow-{i}");
        f.pool
            .array
            .snapshot_set(&[("db", &name)], &Default::default())
            .unwrap();
        shadows.push(name);
    }
    writer.join().unwrap();
    for name in &shadows {
        let mut img = vec![0u8; BLOCKS * 4096];
        f.pool.array.admin_read_at(name, &mut img, 0).unwrap();
        let gens: Vec<u8> = img
            .chunks(4096)
            .map(|b| {
                assert!(b.iter().all(|&x| x == b[0]), "{name}: a torn block");
                b[0]
            })
            .collect();
        // Blocks [0, k) hold generation g + 1, blocks [k, BLOCKS) generation g.
        let g = gens[BLOCKS - 1];
        let k = gens.iter().take_while(|&&x| x == g + 1).count();
        assert!(
            gens[k..].iter().all(|&x| x == g) && g >= 2,
            "{name} is not a point-in-time image: {gens:?}"
        );
    }
    assert!(f.bytes().iter().all(|&x| x == GENERATIONS));
}

#[test]
fn a_client_stalling_in_the_handshake_is_closed_and_transmission_has_no_limit() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    let config = ServerConfig {
        handshake_timeout: Some(std::time::Duration::from_millis(100)),
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);
    let mut busy = RawClient::connect(s.addr);
    busy.go(&n.to_string()).unwrap();
    // A client that sends its flags and then nothing is closed by the server...
    let mut stalled = RawClient::connect(s.addr);
    assert!(closed(&mut stalled));
    // ...which took longer than the limit, yet the client in transmission since is served.
    assert_eq!(busy.write(1, 0, b"still here"), 0);
    assert_eq!(busy.read(2, 0, 10).unwrap(), b"still here");
}

/// A client that sends large READs and never reads a reply cannot hold shutdown: past
/// `shutdown_grace` its socket is shut down and `Server::shutdown` returns, even with no
/// `write_timeout` at all (before, it waited for the writes forever). The wait below is a
/// watchdog against a hang, not a measure of speed.
#[test]
fn shutdown_is_bounded_by_its_grace_for_a_client_that_does_not_read() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", 4 * MIB, &a, Access::ReadWrite);
    let config = ServerConfig {
        max_request: 4 * MIB as u32,
        write_timeout: None,
        shutdown_grace: Some(std::time::Duration::from_millis(200)),
        ..ServerConfig::default()
    };
    let s = serve_with(&pool.array, &a, config);
    let mut c = RawClient::connect(s.addr);
    c.go(&n.to_string()).unwrap();
    for i in 0..40u64 {
        c.send(CMD_READ, 0, i, 0, 4 * MIB as u32, &[]);
    }
    let server = s.server.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.shutdown();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(120)).is_ok(),
        "shutdown is held by a client that does not read its replies"
    );
    assert!(closed(&mut c), "the connection was cut");
}

/// A LIST raises the handshake's option budget by 32 per export listed for options about an
/// export (as nbdkit does for `nbdinfo --list`, which asks about every export on the same
/// connection): with 20 exports, 2 INFOs per export after the LIST are all answered, but LISTs
/// stay within the base 32; without a LIST the 33rd option closes.
#[test]
fn a_list_gives_each_export_listed_its_own_option_budget() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:many");
    for i in 0..20 {
        pool.lun(&format!("many{i}"), MIB, &a, Access::ReadWrite);
    }
    let s = serve(&pool.array, &a);
    let mut c = RawClient::connect(s.addr);
    let exports = c.list();
    assert_eq!(exports.len(), 20);
    for (name, _) in &exports {
        for _ in 0..2 {
            let q = InfoRequest {
                name: name.clone(),
                infos: vec![INFO_NAME, INFO_DESCRIPTION],
            };
            let r = c.option(OPT_INFO, &q.encode());
            assert_eq!(r.last().unwrap().0, REP_ACK, "INFO {name}: {r:?}");
        }
    }
    assert_eq!(c.list().len(), 20);
    // The extra budget is for options about an export: LISTs stay within the base 32.
    for _ in 0..30 {
        assert_eq!(c.list().len(), 20);
    }
    c.send_option(OPT_LIST, 0, &[]);
    assert!(
        closed(&mut c),
        "the 33rd option that is not about an export closes"
    );

    let mut c = RawClient::connect(s.addr);
    for _ in 0..32 {
        assert_eq!(c.option(OPT_STRUCTURED_REPLY, b"x")[0].0, REP_ERR_INVALID);
    }
    c.send_option(OPT_STRUCTURED_REPLY, 1, b"x");
    assert!(closed(&mut c), "the 33rd option without a LIST closes");
}

/// INFO answers as GO would: an offline LUN is refused by both alike (ERR_UNKNOWN naming the
/// state), an export name over 4096 bytes is ERR_TOO_BIG, and a zeroing a read-only export cannot
/// get is refused for its access (EPERM) before its flags (ENOTSUP).
#[test]
fn info_refuses_what_go_refuses_long_names_are_too_big_and_access_comes_before_flags() {
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    let ro = pool.lun("ro", MIB, &a, Access::ReadOnly);
    let s = serve(&pool.array, &a);
    pool.array.set_online("db", false).unwrap();
    let mut c = RawClient::connect(s.addr);
    let q = InfoRequest {
        name: n.to_string(),
        infos: vec![],
    };
    let info = c.option(OPT_INFO, &q.encode());
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0, REP_ERR_UNKNOWN);
    let why = String::from_utf8_lossy(&info[0].1).into_owned();
    assert!(why.contains("offline"), "{why}");
    let go = c.go(&n.to_string()).unwrap_err();
    assert_eq!((go.0, go.1), (REP_ERR_UNKNOWN, why));
    pool.array.set_online("db", true).unwrap();
    let info = c.option(OPT_INFO, &q.encode());
    assert_eq!(info.last().unwrap().0, REP_ACK, "{info:?}");

    let long = InfoRequest {
        name: "x".repeat(4097),
        infos: vec![],
    };
    let r = c.option(OPT_INFO, &long.encode());
    assert_eq!(r[0].0, REP_ERR_TOO_BIG, "{r:?}");
    let r = c.option(OPT_GO, &long.encode());
    assert_eq!(r[0].0, REP_ERR_TOO_BIG, "{r:?}");

    c.go(&ro.to_string()).unwrap();
    c.send(
        CMD_WRITE_ZEROES,
        CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO,
        1,
        0,
        4096,
        &[],
    );
    assert_eq!(c.reply(0).error, EPERM, "read-only first");
}
