//! A simulated disk that separates written from durable bytes and fails I/O on a countdown.
//!
//! Every write, flush and resize of a [`SimDevice`] first asks the shared [`Fault`]: once its
//! countdown runs out that call fails (a failing write may leave a torn prefix behind) and,
//! unless the failure is transient, the fault is *dead*: every later call on every device sharing
//! it fails too, reads included, as on a disk that went away.
//!
//! A device keeps its live bytes (what reads return), its durable bytes (as of the last flush) and
//! the operations since then. [`SimDevice::crash_image`] gives the bytes a power loss could leave,
//! by a [`CrashMode`]: lose every unflushed operation, keep them all, or keep a random subset in
//! order (each write kept, dropped or torn), with resizes always kept (a file system that orders
//! its metadata) or kept at random too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cow_engine::{BlockDevice, Error, ErrorKind, Resize, Result};

use super::input::Rng;

#[derive(Debug, Default)]
struct FaultState {
    /// Mutating calls left before the failure; `None` = never fail.
    countdown: Option<u32>,
    /// Bytes a failing write leaves, in 256ths of its length.
    tear: u8,
    /// The failure leaves the devices working (only the one call fails).
    transient: bool,
    dead: bool,
    /// A call failed since [`Fault::take_fired`] was last called.
    fired: bool,
}

/// A failure countdown shared by the devices of one volume.
#[derive(Debug, Default)]
pub struct Fault(Mutex<FaultState>);

/// What a mutating call may do.
enum Tick {
    Proceed,
    /// Fail, leaving this many 256ths of a write behind.
    Fail(u8),
}

impl Fault {
    /// A fault that never fires until armed.
    pub fn new() -> Arc<Fault> {
        Arc::new(Fault::default())
    }

    /// Fails the mutating call after the next `after` ones; a failing write leaves
    /// `tear`/256 of its bytes behind. A `transient` failure fails that one call only; otherwise
    /// the devices die with it.
    pub fn arm(&self, after: u32, tear: u8, transient: bool) {
        let mut s = self.0.lock().expect("fault lock");
        if !s.dead {
            s.countdown = Some(after);
            s.tear = tear;
            s.transient = transient;
        }
    }

    /// True if a call failed since the last [`Fault::take_fired`].
    pub fn fired(&self) -> bool {
        self.0.lock().expect("fault lock").fired
    }

    /// Whether a call failed since the last call, and forgets it.
    pub fn take_fired(&self) -> bool {
        std::mem::take(&mut self.0.lock().expect("fault lock").fired)
    }

    /// Makes every later call fail (a power loss: nothing more reaches the disks).
    pub fn kill(&self) {
        self.0.lock().expect("fault lock").dead = true;
    }

    /// True once the countdown has fired (or after [`Fault::kill`]).
    pub fn is_dead(&self) -> bool {
        self.0.lock().expect("fault lock").dead
    }

    fn tick(&self) -> Tick {
        let mut s = self.0.lock().expect("fault lock");
        if s.dead {
            return Tick::Fail(0);
        }
        match s.countdown {
            Some(0) => {
                s.dead = !s.transient;
                s.fired = true;
                s.countdown = None;
                Tick::Fail(s.tear)
            }
            Some(n) => {
                s.countdown = Some(n - 1);
                Tick::Proceed
            }
            None => Tick::Proceed,
        }
    }
}

fn injected(what: &str) -> Error {
    Error::io(
        format!("injected {what} failure"),
        std::io::Error::other("simulated device failure"),
    )
}

/// Chunk size of [`Sparse`] images.
const CHUNK: u64 = 4096;
static ZEROS: [u8; CHUNK as usize] = [0; CHUNK as usize];

/// A sparse byte image: 4 KiB chunks shared copy-on-write (cloning an image is cheap), absent
/// chunks read as zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    len: u64,
    chunks: BTreeMap<u64, Arc<Vec<u8>>>,
}

impl Sparse {
    /// `len` zero bytes.
    pub fn zeros(len: u64) -> Self {
        Sparse {
            len,
            chunks: BTreeMap::new(),
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the image has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads `buf.len()` bytes at `off` (the caller checks the range).
    pub fn read(&self, off: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let (c, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(buf.len() - done);
            match self.chunks.get(&c) {
                Some(chunk) => buf[done..done + n].copy_from_slice(&chunk[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Writes `data` at `off`, clipped to the length.
    pub fn write(&mut self, off: u64, data: &[u8]) {
        if off >= self.len {
            return;
        }
        let data = &data[..(data.len() as u64).min(self.len - off) as usize];
        let mut done = 0;
        while done < data.len() {
            let pos = off + done as u64;
            let (c, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(data.len() - done);
            let piece = &data[done..done + n];
            match self.chunks.get_mut(&c) {
                Some(chunk) => Arc::make_mut(chunk)[within..within + n].copy_from_slice(piece),
                // Compared as a slice (one memcmp), not byte by byte: fuzz builds instrument
                // every comparison.
                None if piece == &ZEROS[..n] => {}
                None => {
                    let mut chunk = vec![0u8; CHUNK as usize];
                    chunk[within..within + n].copy_from_slice(piece);
                    self.chunks.insert(c, Arc::new(chunk));
                }
            }
            done += n;
        }
    }

    /// Sets the length; bytes past the old end read as zeros.
    pub fn resize(&mut self, len: u64) {
        if len < self.len {
            self.chunks.retain(|&c, _| c * CHUNK < len);
            let within = (len % CHUNK) as usize;
            if within != 0 {
                if let Some(chunk) = self.chunks.get_mut(&(len / CHUNK)) {
                    Arc::make_mut(chunk)[within..].fill(0);
                }
            }
        }
        self.len = len;
    }

    /// The whole image as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len as usize];
        self.read(0, &mut v);
        v
    }
}

/// An operation not yet made durable by a flush.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    Resize(u64),
}

#[derive(Debug, Default)]
struct Disk {
    live: Sparse,
    durable: Sparse,
    pending: Vec<Pending>,
}

/// How much of the unflushed work a power loss keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only what was flushed.
    LoseUnflushed,
    /// Everything written (the OS cache survived: a process crash, or a clean shutdown).
    KeepAll,
    /// Resizes kept; each write kept, dropped or torn at random (seeded).
    Subset(u64),
    /// Resizes and writes each kept, dropped (writes also torn) at random (seeded).
    SubsetWithResizes(u64),
}

impl CrashMode {
    /// The mode a fuzz byte names (with a seed from the same byte and `salt`).
    pub fn from_byte(b: u8, salt: u64) -> CrashMode {
        let seed = u64::from(b >> 2) ^ salt.wrapping_mul(0x100_0000_01B3);
        match b & 3 {
            0 => CrashMode::LoseUnflushed,
            1 => CrashMode::KeepAll,
            2 => CrashMode::Subset(seed),
            _ => CrashMode::SubsetWithResizes(seed),
        }
    }
}

/// A simulated, resizable disk (see the module doc).
#[derive(Debug)]
pub struct SimDevice {
    disk: Mutex<Disk>,
    fault: Arc<Fault>,
}

impl SimDevice {
    /// A zero-filled device of `len` bytes, all durable.
    pub fn new(len: u64, fault: Arc<Fault>) -> Arc<SimDevice> {
        SimDevice::from_image(Sparse::zeros(len), fault)
    }

    /// A device holding `image`, all durable.
    pub fn from_image(image: Sparse, fault: Arc<Fault>) -> Arc<SimDevice> {
        Arc::new(SimDevice {
            disk: Mutex::new(Disk {
                durable: image.clone(),
                live: image,
                pending: Vec::new(),
            }),
            fault,
        })
    }

    /// What reads return now.
    pub fn live_image(&self) -> Sparse {
        self.disk.lock().expect("disk lock").live.clone()
    }

    /// The bytes a power loss now would leave, by `mode`.
    pub fn crash_image(&self, mode: CrashMode) -> Sparse {
        let d = self.disk.lock().expect("disk lock");
        let (mut rng, resizes_random) = match mode {
            CrashMode::LoseUnflushed => return d.durable.clone(),
            CrashMode::KeepAll => return d.live.clone(),
            CrashMode::Subset(s) => (Rng::from_state(s), false),
            CrashMode::SubsetWithResizes(s) => (Rng::from_state(s), true),
        };
        let mut img = d.durable.clone();
        for p in &d.pending {
            match p {
                Pending::Resize(n) => {
                    if !resizes_random || rng.below(2) == 0 {
                        img.resize(*n);
                    }
                }
                Pending::Write(off, data) => match rng.below(6) {
                    0 | 1 => {}
                    2..=4 => img.write(*off, data),
                    _ => {
                        let keep = rng.below(data.len() as u64 + 1) as usize;
                        img.write(*off, &data[..keep]);
                    }
                },
            }
        }
        img
    }

    fn check(len: usize, offset: u64, size: u64) -> Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Error::new(
                ErrorKind::OutOfRange,
                format!("{len} bytes at {offset} past the simulated device's {size}"),
            )),
        }
    }
}

impl BlockDevice for SimDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if self.fault.is_dead() {
            return Err(injected("read"));
        }
        let d = self.disk.lock().expect("disk lock");
        SimDevice::check(buf.len(), offset, d.live.len())?;
        d.live.read(offset, buf);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut d = self.disk.lock().expect("disk lock");
        SimDevice::check(buf.len(), offset, d.live.len())?;
        let (data, result) = match self.fault.tick() {
            Tick::Proceed => (buf, Ok(())),
            Tick::Fail(tear) => {
                let keep = buf.len() * usize::from(tear) / 256;
                (&buf[..keep], Err(injected("write")))
            }
        };
        if !data.is_empty() {
            d.live.write(offset, data);
            d.pending.push(Pending::Write(offset, data.to_vec()));
        }
        result
    }

    fn flush(&self) -> Result<()> {
        if let Tick::Fail(_) = self.fault.tick() {
            return Err(injected("flush"));
        }
        let mut d = self.disk.lock().expect("disk lock");
        d.durable = d.live.clone();
        d.pending.clear();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.disk.lock().expect("disk lock").live.len()
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        Some(self)
    }
}

impl Resize for SimDevice {
    fn resize(&self, new_len: u64) -> Result<()> {
        if new_len > 1 << 30 {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!("simulated device cannot hold {new_len} bytes"),
            ));
        }
        if let Tick::Fail(_) = self.fault.tick() {
            return Err(injected("resize"));
        }
        let mut d = self.disk.lock().expect("disk lock");
        d.live.resize(new_len);
        d.pending.push(Pending::Resize(new_len));
        Ok(())
    }
}
