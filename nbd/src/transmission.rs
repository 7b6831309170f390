//! Transmission: a request reader that runs most requests itself, a few workers per connection
//! for the slow ones, and replies under one lock.
//!
//! The connection's thread reads requests (a WRITE with its whole payload). Requests that do not
//! wait for the disk — everything but FLUSH and FUA, up to [`INLINE_MAX`] bytes — run on that
//! thread itself, in the order they arrive: no thread hand-off, and a WRITE whose payload is
//! buffered whole is written straight from the read buffer. Their replies gather in a batch that
//! goes out in one write when the reader has no further whole request buffered (before it waits
//! for the client) or the batch reaches [`BATCH_BYTES`]. FLUSH, FUA requests and larger ones go
//! to the connection's workers (a lone one, with nothing queued and nothing more buffered, runs
//! on the reader too), which write each reply whole under the reply lock as it finishes: replies
//! go out in the order requests finish. A WRITE whose payload does not arrive whole is never
//! run: nothing is written that the client did not send completely. When the reader stops (DISC,
//! end of input, a protocol error, shutdown), its batch is sent and the requests already queued
//! still run and are answered before the connection closes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use parking_lot::Mutex;
use vds_core::LunHandle;

use crate::conn::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::read_full;
use crate::proto::codec::{
    block_status_extents, block_status_payload, error_payload, plan_read, simple_reply,
    ChunkHeader, ReadPiece, Request, REQUEST_LEN,
};
use crate::proto::*;
use crate::server::Core;
use crate::server::WRITE_DROP_FACTOR;

/// The longest request (READ, WRITE, TRIM or WRITE_ZEROES range) the reader runs itself; a
/// longer one goes to a worker, so one large transfer does not hold up the requests behind it.
pub(crate) const INLINE_MAX: u32 = 256 << 10;

/// Replies the reader gathered are written once they reach this many bytes (else when no
/// further whole request is buffered).
pub(crate) const BATCH_BYTES: usize = 64 << 10;

/// A worker's reply buffer kept between requests up to this capacity (a larger one, left by a
/// large READ, is freed).
const KEEP_BUFFER: usize = 1 << 20;

/// The size of a connection's read buffer.
const READ_BUFFER: usize = 128 << 10;

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

/// The replies of the requests the reader ran itself, not yet written.
struct Batch<'r> {
    replies: &'r Replies,
    out: Vec<u8>,
}

impl Batch<'_> {
    /// Runs `req` and adds its reply; writes the batch once it is large enough.
    fn run(&mut self, core: &Core, s: &Session, req: &Request, payload: &[u8]) {
        execute(core, s, req, payload, &mut self.out);
        if self.out.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Adds an error reply to `req`.
    fn error(&mut self, s: &Session, req: &Request, err: u32, msg: &str) {
        error_reply(s, req, err, msg, &mut self.out);
    }

    /// Writes the replies gathered, in one write.
    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.replies.send(&self.out);
            self.out.clear();
            if self.out.capacity() > KEEP_BUFFER {
                self.out = Vec::new();
            }
        }
    }
}

/// Whether `req` runs on the reading thread even while others are in flight: it does not wait
/// for the disk (no FLUSH, no FUA) and is at most [`INLINE_MAX`] bytes.
fn runs_inline(req: &Request) -> bool {
    req.kind != CMD_FLUSH && req.flags & CMD_FLAG_FUA == 0 && req.len <= INLINE_MAX
}

/// Runs transmission until the client disconnects or the server shuts down.
pub(crate) fn run(core: &Core, conn: Conn, s: Session) -> Result<()> {
    let Conn { reader, writer } = conn;
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
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
        let mut batch = Batch {
            replies: &replies,
            out: Vec::new(),
        };
        let r = read_requests(core, &mut reader, &s, &mut batch, &tx, &pending);
        batch.flush();
        drop(tx);
        r
    })
}

/// Reads requests until the client disconnects, running each on this thread (into `batch`) or
/// handing it to the workers (`tx`).
fn read_requests<R: Read>(
    core: &Core,
    reader: &mut BufReader<R>,
    s: &Session,
    batch: &mut Batch<'_>,
    tx: &SyncSender<Job>,
    pending: &AtomicUsize,
) -> Result<()> {
    let mut head = [0u8; REQUEST_LEN];
    loop {
        if core.stopping() {
            return Ok(());
        }
        // About to wait for the client: it gets the replies gathered so far first.
        if reader.buffer().len() < REQUEST_LEN {
            batch.flush();
        }
        if !read_full(reader, &mut head)? {
            return Ok(());
        }
        let Some(req) = Request::decode(&head) else {
            return Err(Error::protocol("a request without the request magic"));
        };
        if req.kind == CMD_DISC {
            return Ok(());
        }
        let inline = runs_inline(&req);
        let mut payload = Vec::new();
        if req.kind == CMD_WRITE {
            let len = req.len as usize;
            if req.len > core.config.max_request {
                batch.flush();
                let most = u64::from(core.config.max_request) * u64::from(WRITE_DROP_FACTOR);
                if u64::from(req.len) > most {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!(
                            "a WRITE of {} bytes at offset {} (more than {WRITE_DROP_FACTOR} \
                             times the largest request, {} bytes): connection closed rather \
                             than its payload read",
                            req.len, req.offset, core.config.max_request
                        ),
                    ));
                }
                // Read and drop the payload, so the next request is found where it starts.
                let got = io::copy(&mut reader.take(u64::from(req.len)), &mut io::sink())
                    .map_err(|e| Error::io("reading a WRITE payload", e))?;
                if got < u64::from(req.len) {
                    return Ok(());
                }
                batch.error(s, &req, EOVERFLOW, "the WRITE is larger than the maximum");
                continue;
            }
            if inline && reader.buffer().len() >= len {
                // The whole payload is buffered: written from the read buffer, not copied.
                if core.stopping() {
                    batch.error(s, &req, ESHUTDOWN, "the server is shutting down");
                    return Ok(());
                }
                batch.run(core, s, &req, &reader.buffer()[..len]);
                reader.consume(len);
                continue;
            }
            if reader.buffer().len() < len {
                batch.flush();
            }
            payload = vec![0u8; len];
            if !read_full(reader, &mut payload)? {
                return Ok(()); // the client vanished inside the payload: nothing is written
            }
        }
        if core.stopping() {
            batch.error(s, &req, ESHUTDOWN, "the server is shutting down");
            return Ok(());
        }
        // A slow request arriving alone (nothing queued, nothing more buffered) runs here too,
        // sparing two thread hand-offs. Relaxed: a stale count only picks the other, equally
        // correct, path.
        if inline || (reader.buffer().is_empty() && pending.load(Ordering::Relaxed) == 0) {
            batch.run(core, s, &req, &payload);
            continue;
        }
        // It may wait for a worker: the client gets the replies gathered so far first.
        batch.flush();
        pending.fetch_add(1, Ordering::Relaxed);
        // The workers outlive the sender: a send fails only if they all panicked.
        if tx.send(Job { req, payload }).is_err() {
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
    let mut out = Vec::new();
    loop {
        let job = match rx.lock().recv() {
            Ok(j) => j,
            Err(_) => return, // the reader stopped and the queue is empty
        };
        out.clear();
        if out.capacity() > KEEP_BUFFER {
            out = Vec::new();
        }
        execute(core, s, &job.req, &job.payload, &mut out);
        replies.send(&out);
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

/// Runs one request and appends its whole reply to `out`.
fn execute(core: &Core, s: &Session, req: &Request, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    if let Err((err, msg)) = run_request(core, s, req, payload, out) {
        // Whatever the request had put in its reply goes: only the error is sent.
        out.truncate(start);
        error_reply(s, req, err, &msg, out);
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
    out: &mut Vec<u8>,
) -> std::result::Result<(), Failure> {
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
    let ok = |out: &mut Vec<u8>| out.extend_from_slice(&simple_reply(0, req.cookie));
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
            read(s, req, out)
        }
        CMD_WRITE => {
            if fua {
                h.write_fua(payload, req.offset).map_err(fail(cmd))?;
            } else {
                h.write_at(payload, req.offset).map_err(fail(cmd))?;
            }
            ok(out);
            Ok(())
        }
        CMD_FLUSH => {
            h.flush().map_err(fail(cmd))?;
            ok(out);
            Ok(())
        }
        CMD_TRIM => {
            h.discard(req.offset, len).map_err(fail(cmd))?;
            if fua {
                h.flush().map_err(fail(cmd))?;
            }
            ok(out);
            Ok(())
        }
        CMD_WRITE_ZEROES => {
            if req.flags & CMD_FLAG_NO_HOLE != 0 {
                if req.flags & CMD_FLAG_FAST_ZERO != 0 {
                    // Zeros written as data are not fast: the client zeroes another way (a
                    // read-only export or a range past the end gets the write's own error).
                    h.check_write(req.offset, len).map_err(fail(cmd))?;
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
            ok(out);
            Ok(())
        }
        CMD_CACHE => {
            // A hint: nothing to prefetch, but the range is checked as a read's.
            let size = h.size().map_err(fail(cmd))?;
            if req.offset + len > size {
                return Err((EINVAL, format!("CACHE past the end ({size} bytes)")));
            }
            ok(out);
            Ok(())
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
            chunk(
                out,
                REPLY_FLAG_DONE,
                REPLY_TYPE_BLOCK_STATUS,
                req.cookie,
                payload.len(),
            );
            out.extend_from_slice(&payload);
            Ok(())
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

/// Appends a READ's reply to `out`: a simple reply with the data, or (structured) data and hole
/// chunks.
fn read(s: &Session, req: &Request, out: &mut Vec<u8>) -> std::result::Result<(), Failure> {
    let h = &s.handle;
    let (offset, len) = (req.offset, u64::from(req.len));
    if !s.structured {
        out.extend_from_slice(&simple_reply(0, req.cookie));
        return read_into(h, out, offset, len);
    }
    if len == 0 {
        let h = h.size().map_err(fail(CMD_READ))?;
        if offset > h {
            return Err((EINVAL, format!("READ past the end ({h} bytes)")));
        }
        chunk(out, REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.cookie, 0);
        return Ok(());
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
    out.reserve(pieces.len() * 32 + data as usize);
    for (i, p) in pieces.iter().enumerate() {
        let flags = if i + 1 == pieces.len() {
            REPLY_FLAG_DONE
        } else {
            0
        };
        match *p {
            ReadPiece::Data { offset, len } => {
                chunk(
                    out,
                    flags,
                    REPLY_TYPE_OFFSET_DATA,
                    req.cookie,
                    8 + len as usize,
                );
                out.extend_from_slice(&offset.to_be_bytes());
                read_into(h, out, offset, len)?;
            }
            ReadPiece::Hole { offset, len } => {
                chunk(out, flags, REPLY_TYPE_OFFSET_HOLE, req.cookie, 12);
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
        }
    }
    Ok(())
}

/// Appends `len` bytes of the LUN at `offset` to `out`.
fn read_into(
    h: &LunHandle,
    out: &mut Vec<u8>,
    offset: u64,
    len: u64,
) -> std::result::Result<(), Failure> {
    let at = out.len();
    out.resize(at + len as usize, 0);
    h.read_at(&mut out[at..], offset).map_err(fail(CMD_READ))
}

/// Appends a chunk header of a payload of `len` bytes to `out` (the payload follows).
fn chunk(out: &mut Vec<u8>, flags: u16, kind: u16, cookie: u64, len: usize) {
    let h = ChunkHeader {
        flags,
        kind,
        cookie,
        len: len as u32,
    };
    out.extend_from_slice(&h.encode());
}

/// Appends an error reply to `out`: an ERROR chunk for READ and BLOCK_STATUS under structured
/// replies (which must not get a simple reply), a simple reply otherwise.
fn error_reply(s: &Session, req: &Request, err: u32, msg: &str, out: &mut Vec<u8>) {
    if s.structured && matches!(req.kind, CMD_READ | CMD_BLOCK_STATUS) {
        let p = error_payload(err, msg);
        chunk(out, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, p.len());
        out.extend_from_slice(&p);
    } else {
        out.extend_from_slice(&simple_reply(err, req.cookie));
    }
}
