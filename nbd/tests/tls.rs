//! RustlsAcceptor against a real rustls client over loopback TCP: client certificates required
//! and verified against the CA, the initiator named by the SAN URI else the CN, and the split
//! connection's halves working at once (a reader blocked on the socket never holds up writes).
//! Also: a stalled TLS handshake reported as timed out, and one trickled past the deadline.

// NBD is big-endian on the wire; nothing here is persisted.
#![allow(clippy::big_endian_bytes)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use umbra_nbd::tls::{initiator_of_certificate, RustlsAcceptor};
use umbra_nbd::{Conn, TlsAcceptor};
use vds_core::InitiatorId;

/// A CA: its certificate and key.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, uri: Option<&str>, server: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(u) = uri {
        p.subject_alt_names
            .push(SanType::URI(u.try_into().unwrap()));
    }
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client_config(ca: &Ca, client: Option<&(String, String)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// The acceptor of a server certificate signed by `ca`.
fn acceptor(ca: &Ca) -> RustlsAcceptor {
    let (c, k) = leaf(ca, "umbra server", None, true);
    RustlsAcceptor::from_pem(c.as_bytes(), k.as_bytes(), ca.cert.pem().as_bytes()).unwrap()
}

/// The server side's handshake, on its thread: the encrypted connection and its initiator.
type Accepted = thread::JoinHandle<std::io::Result<(Conn, InitiatorId)>>;

/// Connects a client with `config` to `acceptor` over loopback: the server side's result, and
/// the client stream (its handshake driven by the first I/O).
fn connect(
    acceptor: Arc<RustlsAcceptor>,
    config: Arc<ClientConfig>,
) -> (Accepted, StreamOwned<ClientConnection, TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        acceptor.accept(Conn::from_tcp(s).unwrap())
    });
    let sock = TcpStream::connect(addr).unwrap();
    let conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    (server, StreamOwned::new(conn, sock))
}

#[test]
fn the_client_certificate_names_the_initiator_by_san_uri_else_cn() {
    let ca = ca("umbra test CA");
    let acc = Arc::new(acceptor(&ca));
    let cases = [
        (
            leaf(
                &ca,
                "ignored CN",
                Some("iqn.2026-01.org.example:host1"),
                false,
            ),
            "iqn.2026-01.org.example:host1",
        ),
        (
            leaf(&ca, "eui.0123456789ABCDEF", None, false),
            "eui.0123456789ABCDEF",
        ),
    ];
    for (cert, want) in cases {
        let (server, mut client) = connect(acc.clone(), client_config(&ca, Some(&cert)));
        client.write_all(b"ping").unwrap();
        client.flush().unwrap();
        let (mut conn, who) = server.join().unwrap().unwrap();
        assert_eq!(who, InitiatorId::parse(want).unwrap());
        let mut got = [0u8; 4];
        conn.reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        conn.writer.write_all(b"pong").unwrap();
        conn.writer.flush().unwrap();
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }
}

#[test]
fn clients_without_a_certificate_or_from_another_ca_or_with_a_bad_name_are_refused() {
    let ca1 = ca("umbra test CA");
    let other = ca("another CA");
    let acc = Arc::new(acceptor(&ca1));
    // No client certificate.
    let (server, mut client) = connect(acc.clone(), client_config(&ca1, None));
    let _ = client.write_all(b"x").and_then(|()| client.flush());
    let _ = client.read(&mut [0u8; 1]);
    let e = server.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    // A certificate another CA signed (the client trusts the server's CA).
    let foreign = leaf(&other, "iqn.2026-01.org.example:host1", None, false);
    let (server, mut client) = connect(acc.clone(), client_config(&ca1, Some(&foreign)));
    let _ = client.write_all(b"x").and_then(|()| client.flush());
    let _ = client.read(&mut [0u8; 1]);
    let e = server.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    // A good certificate whose name is no initiator id.
    let bad = leaf(&ca1, "not an initiator", None, false);
    let (server, mut client) = connect(acc, client_config(&ca1, Some(&bad)));
    let _ = client.write_all(b"x").and_then(|()| client.flush());
    let e = server.join().unwrap().unwrap_err();
    assert!(e.to_string().contains("not an initiator"), "{e}");
}

/// The reading half blocks on the socket while the writing half sends a lot: the writes go
/// through (the client reads them all before it sends what the reader waits for), then the
/// reader gets its bytes. A design that read the socket under the shared lock would hang here.
#[test]
fn a_blocked_reader_never_holds_up_the_writer() {
    let ca = ca("umbra test CA");
    let acc = Arc::new(acceptor(&ca));
    let cert = leaf(&ca, "iqn.2026-01.org.example:host1", None, false);
    let (server, mut client) = connect(acc, client_config(&ca, Some(&cert)));
    client.write_all(b"hello").unwrap();
    client.flush().unwrap();
    let (conn, _) = server.join().unwrap().unwrap();
    let Conn {
        mut reader,
        mut writer,
    } = conn;
    let mut hello = [0u8; 5];
    reader.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    const OUT: usize = 8 << 20;
    const IN: usize = 4 << 20;
    let pattern = |i: usize| (i * 7 + i / 4096) as u8;
    // The reader waits for bytes the client sends only after it has read everything written.
    let r = thread::spawn(move || {
        let mut buf = vec![0u8; IN];
        reader.read_exact(&mut buf).unwrap();
        buf
    });
    let w = thread::spawn(move || {
        let data: Vec<u8> = (0..OUT).map(pattern).collect();
        for c in data.chunks(100_000) {
            writer.write_all(c).unwrap();
        }
        writer.flush().unwrap();
        writer
    });
    let mut got = vec![0u8; OUT];
    client.read_exact(&mut got).unwrap();
    assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    let _writer = w.join().unwrap();
    let sent: Vec<u8> = (0..IN).map(|i| pattern(i + 1)).collect();
    client.write_all(&sent).unwrap();
    client.flush().unwrap();
    assert_eq!(r.join().unwrap(), sent);
}

#[test]
fn bad_pem_is_refused_naming_the_part() {
    let ca = ca("umbra test CA");
    let (c, k) = leaf(&ca, "server", None, true);
    let e = RustlsAcceptor::from_pem(b"", k.as_bytes(), ca.cert.pem().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    let e =
        RustlsAcceptor::from_pem(c.as_bytes(), b"nothing", ca.cert.pem().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("key"), "{e}");
    let e = RustlsAcceptor::from_pem(c.as_bytes(), k.as_bytes(), b"").unwrap_err();
    assert!(e.to_string().contains("CA"), "{e}");
    let e = initiator_of_certificate(b"not DER").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
}

/// A client that connects and sends nothing: the acceptor's error says the handshake timed out
/// (not the socket's bare "Resource temporarily unavailable").
#[test]
fn a_stalled_tls_handshake_is_reported_as_timed_out() {
    let ca = ca("umbra test CA");
    let acc = acceptor(&ca);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let err = acc.accept(Conn::from_tcp(s).unwrap()).unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(!err.to_string().contains("temporarily"), "{err}");
}

/// On a TLS listener, a client that asks for STARTTLS and then sends its ClientHello a byte at
/// a time (each well within the silence limit) is closed at the handshake's deadline, before
/// any certificate is shown.
#[test]
fn a_client_trickling_its_tls_handshake_is_closed_at_the_deadline() {
    use umbra_nbd::proto::*;
    let ca = ca("umbra test CA");
    let config = umbra_nbd::ServerConfig {
        handshake_timeout: Some(std::time::Duration::from_secs(10)),
        handshake_deadline: Some(std::time::Duration::from_millis(300)),
        ..umbra_nbd::ServerConfig::default()
    };
    let server = umbra_nbd::Server::new(vds_core::Array::in_memory(), config);
    let l = server
        .listen(
            umbra_nbd::Listener::Tcp(TcpListener::bind("127.0.0.1:0").unwrap()),
            umbra_nbd::Identity::Tls(Arc::new(acceptor(&ca))),
        )
        .unwrap();
    let mut s = TcpStream::connect(l.local_addr().tcp().unwrap()).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    s.write_all(&(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes())
        .unwrap();
    let mut opt = IHAVEOPT.to_be_bytes().to_vec();
    opt.extend_from_slice(&OPT_STARTTLS.to_be_bytes());
    opt.extend_from_slice(&0u32.to_be_bytes());
    s.write_all(&opt).unwrap();
    let mut ack = [0u8; 20];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(u32::from_be_bytes(ack[12..16].try_into().unwrap()), REP_ACK);
    // A handshake record header announcing 4 KiB, then its bytes one by one, 20 ms apart.
    s.write_all(&[0x16, 0x03, 0x01, 0x10, 0x00]).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(20)))
        .unwrap();
    let mut b = [0u8; 64];
    let sent = (0..1000)
        .take_while(|_| {
            s.write_all(&[1]).is_ok()
                && match s.read(&mut b) {
                    Err(e) => matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    Ok(n) => n > 0,
                }
        })
        .count();
    assert!(sent < 1000, "the trickling client was never closed");
    server.shutdown();
}
