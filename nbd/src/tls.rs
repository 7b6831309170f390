//! TLS for NBD listeners with client certificates: [`RustlsAcceptor`] (rustls, ring provider,
//! TLS 1.2 and 1.3) requires a client certificate signed by the configured CA and names the
//! client's initiator from it: its first URI subject alternative name, else its subject's
//! common name, read by [`InitiatorId::parse`]. One listener so gives each client the view of its
//! own initiator.
//!
//! The encrypted connection is split in two halves like a plain [`Conn`]: both share the rustls
//! state under one lock, but the reading half reads the socket **outside** the lock (into a
//! buffer of its own, then feeds rustls under the lock), so a reader blocked waiting for the
//! client never holds up replies written by other threads.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use vds_core::InitiatorId;

use crate::{Conn, TlsAcceptor};

/// Bytes read from the socket at a time by the reading half.
const READ_CHUNK: usize = 64 << 10;

/// A TLS acceptor for NBD's STARTTLS: server certificate and key, and the CA that client
/// certificates must chain to (client certificates are required).
pub struct RustlsAcceptor {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for RustlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsAcceptor").finish_non_exhaustive()
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.into())
}

impl RustlsAcceptor {
    /// An acceptor from PEM files: `cert` the server's certificate chain (leaf first), `key` its
    /// private key (PKCS#8, PKCS#1 or SEC1), `ca` the certificate(s) client certificates must be
    /// signed by.
    ///
    /// Errors: [`io::ErrorKind::NotFound`] and the like for a file that cannot be read;
    /// [`io::ErrorKind::InvalidInput`] naming the file for one that holds no certificate or key,
    /// or a key that does not match the certificate.
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> io::Result<RustlsAcceptor> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Self::from_pem(&read(cert)?, &read(key)?, &read(ca)?).map_err(|e| {
            invalid(format!(
                "{e} (certificate {}, key {}, CA {})",
                cert.display(),
                key.display(),
                ca.display()
            ))
        })
    }

    /// An acceptor from PEM text (as [`RustlsAcceptor::from_pem_files`]).
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> io::Result<RustlsAcceptor> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("server certificate: {e}")))?;
        if chain.is_empty() {
            return Err(invalid("the server certificate file holds no certificate"));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid(format!("server key: {e}")))?;
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(ca) {
            let c = c.map_err(|e| invalid(format!("CA certificate: {e}")))?;
            roots
                .add(c)
                .map_err(|e| invalid(format!("CA certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(invalid("the CA file holds no certificate"));
        }
        // ring (no C toolchain beyond cc, no cmake) over aws-lc-rs; rustls 0.23 marks it
        // deprecated only for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| invalid(format!("client verifier: {e}")))?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid(format!("TLS versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| invalid(format!("server certificate and key: {e}")))?;
        Ok(RustlsAcceptor {
            config: Arc::new(config),
        })
    }
}

/// The initiator a client certificate (DER) names: its first URI subject alternative name, else
/// its subject's common name.
///
/// Errors: [`io::ErrorKind::InvalidData`] naming what is wrong (no URI and no CN, or a name that
/// is not an initiator id).
pub fn initiator_of_certificate(der: &[u8]) -> io::Result<InitiatorId> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| bad(format!("client certificate does not parse: {e}")))?;
    let uri = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|n| match n {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
        });
    let (name, whence) = match uri {
        Some(u) => (u, "SAN URI"),
        None => {
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .map(str::to_string)
                .ok_or_else(|| {
                    bad(format!(
                        "client certificate {:?} has neither a URI subject alternative name nor a common name",
                        cert.subject().to_string()
                    ))
                })?;
            (cn, "CN")
        }
    };
    InitiatorId::parse(&name).map_err(|e| {
        bad(format!(
            "client certificate {whence} {name:?} is not an initiator id: {e}"
        ))
    })
}

/// Reads and writes of the handshake over a plain connection's two halves.
struct Plain<'a> {
    reader: &'a mut (dyn Read + Send),
    writer: &'a mut (dyn Write + Send),
}

impl Read for Plain<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Plain<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// What both halves of an encrypted connection share.
struct Shared {
    /// The TLS state; also guards the socket's writing half, so records go out whole and in
    /// order.
    tls: Mutex<(ServerConnection, Box<dyn Write + Send>)>,
}

impl Shared {
    /// Writes every TLS record rustls has ready (with the lock held by the caller).
    fn drain(tls: &mut ServerConnection, out: &mut (dyn Write + Send)) -> io::Result<()> {
        while tls.wants_write() {
            tls.write_tls(out)?;
        }
        out.flush()
    }
}

/// The reading half.
struct TlsReader {
    shared: Arc<Shared>,
    socket: Box<dyn Read + Send>,
    /// Bytes read from the socket that rustls has not taken yet (it takes no more while its
    /// plaintext buffer is full): `raw[fed..]`.
    raw: Vec<u8>,
    fed: usize,
    /// The socket reached its end (fed to rustls once).
    eof: bool,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut g = self.shared.tls.lock();
                let (tls, out) = &mut *g;
                // Feeds what was read, as far as rustls takes it.
                while self.fed < self.raw.len() && tls.wants_read() {
                    let mut rest = &self.raw[self.fed..];
                    let n = tls.read_tls(&mut rest)?;
                    self.fed += n;
                    tls.process_new_packets().map_err(tls_error)?;
                    if n == 0 {
                        break;
                    }
                }
                // Alerts or key updates the records called for.
                Shared::drain(tls, out.as_mut())?;
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.eof {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the TLS peer closed the connection without close_notify",
                    ));
                }
            }
            if self.fed < self.raw.len() {
                // rustls wants the plaintext it holds read first; it was (above), so feed more.
                continue;
            }
            // Nothing buffered: read the socket without the lock (writers go on meanwhile).
            self.raw.resize(READ_CHUNK, 0);
            self.fed = 0;
            let n = loop {
                match self.socket.read(&mut self.raw) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r?,
                }
            };
            self.raw.truncate(n);
            if n == 0 {
                self.eof = true;
                let mut g = self.shared.tls.lock();
                let (tls, _) = &mut *g;
                // The end of the stream: rustls then answers reads with a clean or unclean end.
                tls.read_tls(&mut &[][..])?;
                tls.process_new_packets().map_err(tls_error)?;
            }
        }
    }
}

/// The writing half.
struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.shared.tls.lock();
        let (tls, out) = &mut *g;
        let n = tls.writer().write(buf)?;
        Shared::drain(tls, out.as_mut())?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut g = self.shared.tls.lock();
        let (tls, out) = &mut *g;
        tls.writer().flush()?;
        Shared::drain(tls, out.as_mut())
    }
}

impl Drop for TlsWriter {
    fn drop(&mut self) {
        // A clean end for the client (close_notify), where the socket still takes it.
        let mut g = self.shared.tls.lock();
        let (tls, out) = &mut *g;
        tls.send_close_notify();
        let _ = Shared::drain(tls, out.as_mut());
    }
}

impl TlsAcceptor for RustlsAcceptor {
    fn accept(&self, plain: Conn) -> io::Result<(Conn, InitiatorId)> {
        let Conn {
            mut reader,
            mut writer,
        } = plain;
        let mut tls = ServerConnection::new(self.config.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let refused = |m: String| {
            eprintln!("umbra-nbd: TLS client refused: {m}");
            io::Error::new(io::ErrorKind::PermissionDenied, m)
        };
        {
            let mut io = Plain {
                reader: reader.as_mut(),
                writer: writer.as_mut(),
            };
            while tls.is_handshaking() {
                if let Err(e) = tls.complete_io(&mut io) {
                    // The alert that says why, where the socket still takes it.
                    let _ = Shared::drain(&mut tls, io.writer);
                    // A socket's read timeout is a bare EAGAIN ("Resource temporarily
                    // unavailable"): say what it means. (A server's listener reads through its
                    // handshake clock, whose error names the limit that passed.)
                    let why = if e.kind() == io::ErrorKind::WouldBlock {
                        "timed out: the client stopped sending".to_string()
                    } else {
                        e.to_string()
                    };
                    return Err(refused(format!("handshake failed: {why}")));
                }
            }
            Shared::drain(&mut tls, io.writer)?;
        }
        let leaf = tls
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| refused("no client certificate".to_string()))?;
        let initiator = initiator_of_certificate(leaf.as_ref()).map_err(|e| {
            // The client learns the end with a close_notify rather than a silent close.
            tls.send_close_notify();
            let _ = Shared::drain(&mut tls, writer.as_mut());
            refused(e.to_string())
        })?;
        let shared = Arc::new(Shared {
            tls: Mutex::new((tls, writer)),
        });
        Ok((
            Conn {
                reader: Box::new(TlsReader {
                    shared: shared.clone(),
                    socket: reader,
                    raw: Vec::new(),
                    fed: 0,
                    eof: false,
                }),
                writer: Box::new(TlsWriter { shared }),
            },
            initiator,
        ))
    }
}
