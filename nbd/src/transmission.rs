//! Transmission: a request reader, a few workers per connection, and replies under one lock.
//!
//! The connection's thread reads requests (a WRITE with its whole payload) and queues them; the
//! workers run them on the LUN handle and write each reply whole under the reply lock, so
//! replies go out in the order requests finish. A request that arrives alone (nothing in flight,
//! nothing more buffered) runs on the reading thread itself, sparing the hand-offs at qd1. A WRITE whose payload does not arrive whole is
//! never queued: nothing is written that the client did not send completely. When the reader
//! stops (DISC, end of input, a protocol error, shutdown), the requests already queued still
//! run and are answered before the connection closes.

use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};

use parking_lot::Mutex;
use vds_core::LunHandle;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::handshake::read_full;
use crate::proto::codec::{
    block_status_extents, block_status_payload, error_payload, plan_read, simple_reply,
    ChunkHeader, ReadPiece, Request, REQUEST_LEN,
};
use crate::proto::*;
use crate::server::Core;

/// What the handshake chose.
pub(crate) struct Session {
    pub(crate) handle: LunHandle,
    pub(crate) structured: bool,
    pub(crate) base_allocation: bool,
}

/// A request read and waiting for a worker.
struct Job {
    req: Request,
    payload: Vec<u8>,
}

/// The write side: whole replies under one lock.
struct Replies {
    w: Mutex<Box<dyn Write + Send>>,
    /// A reply could not be written (the client is gone): later replies are dropped.
    broken: AtomicBool,
}

impl Replies {
    fn send(&self, bytes: &[u8]) {
        // Relaxed: only a hint that saves writes to a dead connection; the lock orders writes.
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut w = self.w.lock();
        if w.write_all(bytes).and_then(|()| w.flush()).is_err() {
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs transmission until the client disconnects or the server shuts down.
pub(crate) fn run(core: &Core, conn: Conn, s: Session) -> Result<()> {
    let Conn { reader, writer } = conn;
    let mut reader = BufReader::with_capacity(128 << 10, reader);
    let replies = Replies {
        w: Mutex::new(writer),
        broken: AtomicBool::new(false),
    };
    let workers = core.config.workers.max(1);
    let queue = core.config.max_in_flight.saturating_sub(workers).max(1);
    let (tx, rx) = sync_channel::<Job>(queue);
    let rx = Mutex::new(rx);
    // Requests queued or running on the workers.
    let pending = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| worker(core, &s, &rx, &replies, &pending));
        }
        let r = read_requests(core, &mut reader, &s, &replies, |job, more| {
            // Nothing else in flight and no further request arrived: run it here, sparing two
            // thread hand-offs (one request at a time, qd1). Relaxed: a stale count only picks
            // the other, equally correct, path.
            if !more && pending.load(Ordering::Relaxed) == 0 {
                replies.send(&execute(core, &s, &job.req, &job.payload));
                return true;
            }
            pending.fetch_add(1, Ordering::Relaxed);
            // The workers outlive the sender: a send fails only if they all panicked.
            tx.send(job).is_ok()
        });
        drop(tx);
        r
    })
}

/// Reads requests and hands each to `queue` (with whether more input is buffered already) until
/// the client disconnects.
fn read_requests<R: Read>(
    core: &Core,
    reader: &mut BufReader<R>,
    s: &Session,
    replies: &Replies,
    mut queue: impl FnMut(Job, bool) -> bool,
) -> Result<()> {
    loop {
        if core.stopping() {
            return Ok(());
        }
        let mut head = [0u8; REQUEST_LEN];
        if !read_full(reader, &mut head)? {
            return Ok(());
        }
        let Some(req) = Request::decode(&head) else {
            return Err(Error::protocol("a request without the request magic"));
        };
        let mut payload = Vec::new();
        if req.kind == CMD_DISC {
            return Ok(());
        }
        if req.kind == CMD_WRITE {
            if req.len > core.config.max_request {
                // Read and drop the payload, so the next request is found where it starts.
                let got = io::copy(&mut reader.take(u64::from(req.len)), &mut io::sink())
                    .map_err(|e| Error::io("reading a WRITE payload", e))?;
                if got < u64::from(req.len) {
                    return Ok(());
                }
                reply_error(
                    replies,
                    s,
                    &req,
                    EOVERFLOW,
                    "the WRITE is larger than the maximum",
                );
                continue;
            }
            payload = vec![0u8; req.len as usize];
            if !read_full(reader, &mut payload)? {
                return Ok(()); // the client vanished inside the payload: nothing is written
            }
        }
        if core.stopping() {
            reply_error(replies, s, &req, ESHUTDOWN, "the server is shutting down");
            return Ok(());
        }
        let more = !reader.buffer().is_empty();
        if !queue(Job { req, payload }, more) {
            return Ok(());
        }
    }
}

fn worker(
    core: &Core,
    s: &Session,
    rx: &Mutex<Receiver<Job>>,
    replies: &Replies,
    pending: &AtomicUsize,
) {
    loop {
        let job = match rx.lock().recv() {
            Ok(j) => j,
            Err(_) => return, // the reader stopped and the queue is empty
        };
        let reply = execute(core, s, &job.req, &job.payload);
        replies.send(&reply);
        pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The NBD error for a vds-core error of command `cmd`: the one mapping of the server.
pub(crate) fn errno(cmd: u16, e: &vds_core::Error) -> u32 {
    use vds_core::ErrorKind as K;
    match e.kind() {
        // Masked, revoked, swapped away, read-only, deleted: not permitted.
        K::AccessDenied | K::NotFound => EPERM,
        K::OutOfRange if matches!(cmd, CMD_WRITE | CMD_WRITE_ZEROES) => ENOSPC,
        K::OutOfRange | K::InvalidArgument => EINVAL,
        K::NoSpace => ENOSPC,
        K::Unsupported => ENOTSUP,
        _ => EIO,
    }
}

/// Runs one request and returns its whole reply.
fn execute(core: &Core, s: &Session, req: &Request, payload: &[u8]) -> Vec<u8> {
    match run_request(core, s, req, payload) {
        Ok(reply) => reply,
        Err((err, msg)) => error_reply(s, req, err, &msg),
    }
}

type Failure = (u32, String);

fn fail(cmd: u16) -> impl Fn(vds_core::Error) -> Failure {
    move |e| (errno(cmd, &e), e.to_string())
}

fn run_request(
    core: &Core,
    s: &Session,
    req: &Request,
    payload: &[u8],
) -> std::result::Result<Vec<u8>, Failure> {
    let h = &s.handle;
    let cmd = req.kind;
    if req.flags & !CMD_FLAGS_KNOWN != 0 {
        return Err((EINVAL, format!("unknown command flags {:#x}", req.flags)));
    }
    let len = u64::from(req.len);
    if req.offset.checked_add(len).is_none() {
        return Err((EINVAL, "offset + length overflows".into()));
    }
    let fua = req.flags & CMD_FLAG_FUA != 0;
    let ok = || simple_reply(0, req.cookie).to_vec();
    match cmd {
        CMD_READ => {
            if req.len > core.config.max_request {
                return Err((
                    EOVERFLOW,
                    format!(
                        "a READ of {} bytes is larger than the maximum {}",
                        req.len, core.config.max_request
                    ),
                ));
            }
            read(s, req)
        }
        CMD_WRITE => {
            if fua {
                h.write_fua(payload, req.offset).map_err(fail(cmd))?;
            } else {
                h.write_at(payload, req.offset).map_err(fail(cmd))?;
            }
            Ok(ok())
        }
        CMD_FLUSH => {
            h.flush().map_err(fail(cmd))?;
            Ok(ok())
        }
        CMD_TRIM => {
            h.discard(req.offset, len).map_err(fail(cmd))?;
            if fua {
                h.flush().map_err(fail(cmd))?;
            }
            Ok(ok())
        }
        CMD_WRITE_ZEROES => {
            if req.flags & CMD_FLAG_NO_HOLE != 0 {
                if req.flags & CMD_FLAG_FAST_ZERO != 0 {
                    // Zeros written as data are not fast: the client zeroes another way.
                    return Err((ENOTSUP, "zeroing without holes is not fast".into()));
                }
                write_zero_data(h, req.offset, len).map_err(fail(cmd))?;
            } else {
                // Zeroing releases the blocks (a discard): fast, so FAST_ZERO is satisfied.
                h.write_zeroes(req.offset, len).map_err(fail(cmd))?;
            }
            if fua {
                h.flush().map_err(fail(cmd))?;
            }
            Ok(ok())
        }
        CMD_CACHE => {
            // A hint: nothing to prefetch, but the range is checked as a read's.
            let size = h.size().map_err(fail(cmd))?;
            if req.offset + len > size {
                return Err((EINVAL, format!("CACHE past the end ({size} bytes)")));
            }
            Ok(ok())
        }
        CMD_BLOCK_STATUS => {
            if !s.base_allocation {
                return Err((EINVAL, "no meta context was selected".into()));
            }
            let size = h.size().map_err(fail(cmd))?;
            if req.len == 0 || req.offset >= size {
                return Err((
                    EINVAL,
                    format!("BLOCK_STATUS of an empty range or past the end ({size} bytes)"),
                ));
            }
            // Answered up to the end of the export.
            let len = len.min(size - req.offset);
            let allocated = h.allocation(req.offset, len).map_err(fail(cmd))?;
            let extents = block_status_extents(
                req.offset,
                len as u32,
                &allocated,
                req.flags & CMD_FLAG_REQ_ONE != 0,
            );
            let payload = block_status_payload(BASE_ALLOCATION_ID, &extents);
            let mut b = chunk(
                REPLY_FLAG_DONE,
                REPLY_TYPE_BLOCK_STATUS,
                req.cookie,
                payload.len(),
            );
            b.extend_from_slice(&payload);
            Ok(b)
        }
        _ => Err((EINVAL, format!("unknown command {cmd}"))),
    }
}

/// Writes zeros as data (WRITE_ZEROES with NO_HOLE), a MiB at a time.
fn write_zero_data(h: &LunHandle, offset: u64, len: u64) -> vds_core::Result<()> {
    // The whole range is checked first, so a range past the end writes nothing.
    let size = h.size()?;
    if offset + len > size {
        return Err(vds_core::Error::new(
            vds_core::ErrorKind::OutOfRange,
            format!(
                "zeroing [{offset}, {}) past the end ({size} bytes)",
                offset + len
            ),
        ));
    }
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        h.write_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A READ's reply: a simple reply with the data, or (structured) data and hole chunks.
fn read(s: &Session, req: &Request) -> std::result::Result<Vec<u8>, Failure> {
    let h = &s.handle;
    let (offset, len) = (req.offset, u64::from(req.len));
    if !s.structured {
        let mut b = simple_reply(0, req.cookie).to_vec();
        let at = b.len();
        b.resize(at + len as usize, 0);
        h.read_at(&mut b[at..], offset).map_err(fail(CMD_READ))?;
        return Ok(b);
    }
    if len == 0 {
        let h = h.size().map_err(fail(CMD_READ))?;
        if offset > h {
            return Err((EINVAL, format!("READ past the end ({h} bytes)")));
        }
        return Ok(chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.cookie, 0));
    }
    let pieces = if req.flags & CMD_FLAG_DF != 0 {
        vec![ReadPiece::Data { offset, len }]
    } else {
        plan_read(
            offset,
            len,
            &h.allocation(offset, len).map_err(fail(CMD_READ))?,
        )
    };
    let data: u64 = pieces
        .iter()
        .map(|p| match p {
            ReadPiece::Data { len, .. } => *len,
            ReadPiece::Hole { .. } => 0,
        })
        .sum();
    let mut b = Vec::with_capacity(pieces.len() * 32 + data as usize);
    for (i, p) in pieces.iter().enumerate() {
        let flags = if i + 1 == pieces.len() {
            REPLY_FLAG_DONE
        } else {
            0
        };
        match *p {
            ReadPiece::Data { offset, len } => {
                b.extend_from_slice(&chunk(
                    flags,
                    REPLY_TYPE_OFFSET_DATA,
                    req.cookie,
                    8 + len as usize,
                ));
                b.extend_from_slice(&offset.to_be_bytes());
                let at = b.len();
                b.resize(at + len as usize, 0);
                h.read_at(&mut b[at..], offset).map_err(fail(CMD_READ))?;
            }
            ReadPiece::Hole { offset, len } => {
                b.extend_from_slice(&chunk(flags, REPLY_TYPE_OFFSET_HOLE, req.cookie, 12));
                b.extend_from_slice(&offset.to_be_bytes());
                b.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
    }
    Ok(b)
}

/// A chunk header of a payload of `len` bytes, as a buffer to append the payload to.
fn chunk(flags: u16, kind: u16, cookie: u64, len: usize) -> Vec<u8> {
    ChunkHeader {
        flags,
        kind,
        cookie,
        len: len as u32,
    }
    .encode()
    .to_vec()
}

/// An error reply: an ERROR chunk for READ and BLOCK_STATUS under structured replies (which
/// must not get a simple reply), a simple reply otherwise.
fn error_reply(s: &Session, req: &Request, err: u32, msg: &str) -> Vec<u8> {
    if s.structured && matches!(req.kind, CMD_READ | CMD_BLOCK_STATUS) {
        let p = error_payload(err, msg);
        let mut b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, p.len());
        b.extend_from_slice(&p);
        b
    } else {
        simple_reply(err, req.cookie).to_vec()
    }
}

fn reply_error(replies: &Replies, s: &Session, req: &Request, err: u32, msg: &str) {
    replies.send(&error_reply(s, req, err, msg));
}
