//! A simulated block device with a volatile write cache, for crash-consistency tests in the style of
//! dm-log-writes, CrashMonkey and ALICE.
//!
//! Every write, discard, resize and flush of every device of a volume is appended, in issue order,
//! to one shared [`Log`]. A crash at log position `cut` (the events `0..cut` were issued, nothing after) is
//! rebuilt by [`Replayer`]: for each device, every write and resize before that device's last flush
//! below `cut` is durable; each one after it is given a [`Fate`] by the test: lost, kept, or (a
//! write or discard) torn into 512-byte sectors of which some reached the medium and others did not.
//! A discard (a punched hole) reads as zeros at once and, like a write, is durable from the
//! device's next flush on. Pending
//! events that reach the medium do so in issue order; which of them do is free, as ALICE has it.
//!
//! The live contents (what reads return) are kept separately from the log, so a device behaves
//! exactly like a disk with a write cache until the test decides what the crash kept.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cow_engine::{BlockDevice, Discard, Error, ErrorKind, Resize, Result};

/// The unit a torn write is split into: a write reaches the medium sector by sector.
pub const SECTOR: u64 = 512;

const CHUNK: usize = 4096;

/// The contents of a device: copy-on-write chunks shared between images, so the thousands of crash
/// images built from one durable base cost only the chunks each one changes.
#[derive(Clone, Default)]
pub struct Image {
    len: usize,
    /// `None` reads as zeros. Bytes of the last chunk past `len` are always zero.
    chunks: Vec<Option<Arc<[u8; CHUNK]>>>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes)", self.len)
    }
}

impl Image {
    /// `len` zero bytes.
    pub fn zeros(len: u64) -> Self {
        let mut img = Image::default();
        img.resize(len as usize);
        img
    }

    /// An image holding `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut img = Image::zeros(bytes.len() as u64);
        img.write(0, bytes);
        img
    }

    /// The image's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.read(0, &mut v);
        v
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// True for an image of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads `buf.len()` bytes at `offset` (inside the image).
    fn read(&self, offset: usize, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done;
            let (c, within) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - within).min(buf.len() - done);
            match &self.chunks[c] {
                Some(chunk) => buf[done..done + n].copy_from_slice(&chunk[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Writes `data` at `offset`, extending the image if it ends past the end (a write past the
    /// end of a file extends it).
    fn write(&mut self, offset: usize, data: &[u8]) {
        if offset + data.len() > self.len {
            self.resize(offset + data.len());
        }
        let mut done = 0;
        while done < data.len() {
            let pos = offset + done;
            let (c, within) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - within).min(data.len() - done);
            let chunk = self.chunks[c].get_or_insert_with(|| Arc::new([0; CHUNK]));
            Arc::make_mut(chunk)[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    /// Zeroes `len` bytes at `offset`, dropping the chunks it covers whole. Unlike a write, a
    /// discard never extends the image: the part past its end (a crash state that lost the
    /// resize before it) is ignored, as punching past the end of a file is.
    fn discard(&mut self, offset: usize, len: usize) {
        let len = len.min(self.len.saturating_sub(offset));
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let (c, within) = (pos / CHUNK, pos % CHUNK);
            let n = (CHUNK - within).min(len - done);
            if n == CHUNK {
                self.chunks[c] = None;
            } else if let Some(chunk) = &mut self.chunks[c] {
                Arc::make_mut(chunk)[within..within + n].fill(0);
            }
            done += n;
        }
    }

    /// Sets the length; new space reads as zeros.
    fn resize(&mut self, len: usize) {
        if len < self.len && !len.is_multiple_of(CHUNK) {
            if let Some(chunk) = &mut self.chunks[len / CHUNK] {
                Arc::make_mut(chunk)[len % CHUNK..].fill(0);
            }
        }
        self.chunks.resize(len.div_ceil(CHUNK), None);
        self.len = len;
    }
}

/// One thing a device was asked to do.
#[derive(Debug, Clone)]
pub enum Op {
    /// `data` written at `offset`.
    Write {
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// `len` bytes at `offset` discarded (a hole punched): they read as zeros.
    Discard {
        /// Where.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// The size set to `len` (new space reads as zeros).
    Resize {
        /// The new size in bytes.
        len: u64,
    },
    /// Every earlier write and resize of this device is durable.
    Flush,
    /// Power was lost and the volume restarted on devices holding these images (one per device);
    /// nothing issued before is pending any more.
    Restart(Vec<Image>),
}

/// An [`Op`] of device `dev`.
#[derive(Debug, Clone)]
pub struct Event {
    /// The device's index among the volume's devices.
    pub dev: usize,
    /// What it was asked to do.
    pub op: Op,
}

/// The issue-ordered event log shared by the devices of one volume.
#[derive(Clone)]
pub struct Log {
    events: Arc<Mutex<Vec<Event>>>,
    keep: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

impl Log {
    /// A log that keeps every event.
    pub fn new() -> Self {
        Log {
            events: Arc::default(),
            keep: true,
        }
    }

    /// A log that keeps nothing, for devices whose crashes are not studied (a reopened volume).
    pub fn discarding() -> Self {
        Log {
            events: Arc::default(),
            keep: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(log: &mut MutexGuard<'_, Vec<Event>>, keep: bool, event: Event) {
        if keep {
            log.push(event);
        }
    }

    /// Events issued so far; a position in the log.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True before any event was issued.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of the events issued so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// Records a restart on devices holding `images` (see [`Op::Restart`]).
    pub fn restart(&self, images: Vec<Image>) {
        let keep = self.keep;
        Log::push(
            &mut self.lock(),
            keep,
            Event {
                dev: 0,
                op: Op::Restart(images),
            },
        );
    }
}

/// A device that fails writes past a capacity, like a full disk (a sparse file that cannot grow).
struct Full {
    capacity: u64,
    kind: io::ErrorKind,
}

/// A simulated device: live contents plus an entry in the shared [`Log`] for everything it does.
pub struct SimDevice {
    id: usize,
    log: Log,
    live: Mutex<Image>,
    resizable: bool,
    full: Mutex<Option<Full>>,
    /// Set when power was lost: the device no longer changes or logs anything.
    dead: AtomicBool,
    /// Called before each write (outside every lock), to hold a write until a test is ready.
    before_write: Mutex<Option<Hook>>,
}

/// See [`SimDevice::before_write`].
pub type Hook = Arc<dyn Fn() + Send + Sync>;

impl SimDevice {
    /// Device `id` of `len` zero bytes, logging into `log`.
    pub fn new(id: usize, log: &Log, len: u64, resizable: bool) -> Arc<Self> {
        Self::with_image(id, log, Image::zeros(len), resizable)
    }

    /// Device `id` holding `image`, logging into `log`.
    pub fn with_image(id: usize, log: &Log, image: Image, resizable: bool) -> Arc<Self> {
        Arc::new(SimDevice {
            id,
            log: log.clone(),
            live: Mutex::new(image),
            resizable,
            full: Mutex::new(None),
            dead: AtomicBool::new(false),
            before_write: Mutex::new(None),
        })
    }

    /// Calls `hook` before each write from now on (`None`: no more), for example to hold a write
    /// until other threads have reached a point.
    pub fn before_write(&self, hook: Option<Hook>) {
        *self.before_write.lock().unwrap() = hook;
    }

    /// From now on, any write reaching past byte `capacity` fails with an I/O error of `kind`
    /// after putting down the part below `capacity` (a disk that filled up in mid-write).
    pub fn fill_up_at(&self, capacity: u64, kind: io::ErrorKind) {
        *self.full.lock().unwrap() = Some(Full { capacity, kind });
    }

    /// Power is lost: from now on the device ignores writes, resizes and flushes (a volume still
    /// holding it can be dropped without its clean close reaching the log).
    pub fn kill(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// The live contents (what a clean shutdown would leave).
    pub fn image(&self) -> Image {
        self.live.lock().unwrap().clone()
    }

    fn out_of_range(&self, offset: u64, len: usize, size: u64) -> Error {
        Error::new(
            ErrorKind::OutOfRange,
            format!(
                "sim device {}: {len} bytes at {offset} past {size}",
                self.id
            ),
        )
        .with_offset(offset)
    }
}

impl BlockDevice for SimDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let live = self.live.lock().unwrap();
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= live.len() => {
                live.read(offset as usize, buf);
                Ok(())
            }
            _ => Err(self.out_of_range(offset, buf.len(), live.len())),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        let hook = self.before_write.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook();
        }
        // The log lock is held while the live contents change, so the log order is the order in
        // which the contents changed, across all devices of the volume.
        let mut log = self.log.lock();
        let mut live = self.live.lock().unwrap();
        let end = offset.checked_add(buf.len() as u64);
        if !matches!(end, Some(end) if end <= live.len()) {
            return Err(self.out_of_range(offset, buf.len(), live.len()));
        }
        let (keep, fail) = match &*self.full.lock().unwrap() {
            Some(f) if offset + buf.len() as u64 > f.capacity => {
                (f.capacity.saturating_sub(offset) as usize, Some(f.kind))
            }
            _ => (buf.len(), None),
        };
        if keep > 0 {
            live.write(offset as usize, &buf[..keep]);
            Log::push(
                &mut log,
                self.log.keep,
                Event {
                    dev: self.id,
                    op: Op::Write {
                        offset,
                        data: buf[..keep].to_vec(),
                    },
                },
            );
        }
        match fail {
            None => Ok(()),
            Some(kind) => Err(Error::io(
                format!("sim device {} is full", self.id),
                io::Error::from(kind),
            )
            .with_offset(offset)),
        }
    }

    fn flush(&self) -> Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        let event = Event {
            dev: self.id,
            op: Op::Flush,
        };
        Log::push(&mut self.log.lock(), self.log.keep, event);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.live.lock().unwrap().len()
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        self.resizable.then_some(self as &dyn Resize)
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        Some(self)
    }
}

impl Discard for SimDevice {
    fn discard(&self, offset: u64, len: u64) -> Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        let mut log = self.log.lock();
        let mut live = self.live.lock().unwrap();
        let end = offset.checked_add(len);
        if !matches!(end, Some(end) if end <= live.len()) {
            return Err(self.out_of_range(offset, len as usize, live.len()));
        }
        live.discard(offset as usize, len as usize);
        let event = Event {
            dev: self.id,
            op: Op::Discard { offset, len },
        };
        Log::push(&mut log, self.log.keep, event);
        Ok(())
    }
}

impl Resize for SimDevice {
    fn resize(&self, new_len: u64) -> Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        let mut log = self.log.lock();
        self.live.lock().unwrap().resize(new_len as usize);
        let event = Event {
            dev: self.id,
            op: Op::Resize { len: new_len },
        };
        Log::push(&mut log, self.log.keep, event);
        Ok(())
    }
}

/// What a crash did to one write, discard or resize issued after its device's last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It never reached the medium.
    Lost,
    /// It reached the medium whole.
    Kept,
    /// Some of its 512-byte sectors reached the medium: sector `i` (counted from the write's first
    /// sector) did iff bit `i % 64` of the mask is set.
    Torn(u64),
}

/// Rebuilds what the media of a volume's devices hold after a crash at a given log position.
///
/// Positions must be visited in increasing order ([`Replayer::advance`]); the durable part of each
/// device is kept applied, so each crash state costs one copy of the images plus its pending events.
pub struct Replayer<'a> {
    events: &'a [Event],
    pos: usize,
    base: Vec<Image>,
    pending: Vec<Vec<usize>>,
}

impl<'a> Replayer<'a> {
    /// A replayer of `events` over devices whose initial contents are `initial`.
    pub fn new(events: &'a [Event], initial: Vec<Image>) -> Self {
        let n = initial.len();
        Replayer {
            events,
            pos: 0,
            base: initial,
            pending: vec![Vec::new(); n],
        }
    }

    /// Moves the crash point to `cut`: the events `0..cut` have been issued.
    pub fn advance(&mut self, cut: usize) {
        assert!(cut >= self.pos && cut <= self.events.len());
        for i in self.pos..cut {
            let dev = self.events[i].dev;
            match &self.events[i].op {
                Op::Flush => {
                    for j in std::mem::take(&mut self.pending[dev]) {
                        apply(&mut self.base[dev], &self.events[j].op, Fate::Kept);
                    }
                }
                Op::Restart(images) => {
                    self.base = images.clone();
                    self.pending.iter_mut().for_each(Vec::clear);
                }
                _ => self.pending[dev].push(i),
            }
        }
        self.pos = cut;
    }

    /// Indices (into the event log) of the writes, discards and resizes not yet made durable by a
    /// flush.
    pub fn pending(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.pending.iter().flatten().copied().collect();
        v.sort_unstable();
        v
    }

    /// The device images after the crash, with `fate(event index)` deciding each pending event.
    /// Pending events are applied in issue order.
    pub fn build(&self, mut fate: impl FnMut(usize) -> Fate) -> Vec<Image> {
        let mut out = self.base.clone();
        for (dev, pend) in self.pending.iter().enumerate() {
            for &i in pend {
                apply(&mut out[dev], &self.events[i].op, fate(i));
            }
        }
        out
    }
}

fn apply(img: &mut Image, op: &Op, fate: Fate) {
    match (op, fate) {
        (_, Fate::Lost) | (Op::Flush | Op::Restart(_), _) => {}
        (Op::Resize { len }, _) => img.resize(*len as usize),
        (Op::Write { offset, data }, Fate::Kept) => img.write(*offset as usize, data),
        (Op::Write { offset, data }, Fate::Torn(mask)) => {
            for_each_kept_sector(*offset, data.len() as u64, mask, |pos, r| {
                img.write(pos as usize, &data[r]);
            });
        }
        (Op::Discard { offset, len }, Fate::Kept) => img.discard(*offset as usize, *len as usize),
        (Op::Discard { offset, len }, Fate::Torn(mask)) => {
            for_each_kept_sector(*offset, *len, mask, |pos, r| {
                img.discard(pos as usize, r.len());
            });
        }
    }
}

/// Calls `f(position, range within the operation)` for each piece of `[offset, offset + len)`, cut
/// at sector boundaries, that a torn operation with `mask` put down (see [`Fate::Torn`]).
fn for_each_kept_sector(
    offset: u64,
    len: u64,
    mask: u64,
    mut f: impl FnMut(u64, std::ops::Range<usize>),
) {
    let (start, end) = (offset, offset + len);
    let mut pos = start;
    let mut sector = 0u32;
    while pos < end {
        let next = ((pos / SECTOR + 1) * SECTOR).min(end);
        if mask & (1 << (sector % 64)) != 0 {
            f(pos, (pos - start) as usize..(next - start) as usize);
        }
        pos = next;
        sector += 1;
    }
}

/// A small seeded PRNG (SplitMix64): reproducible workloads and crash choices without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (the same seed, the same numbers).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discard reads as zeros at once, is pending until the device's next flush like a write,
    /// can be lost, kept or torn by a crash, and never extends an image that lost a resize.
    #[test]
    fn a_discard_is_durable_from_the_next_flush_and_can_be_torn() {
        let log = Log::new();
        let dev = SimDevice::new(0, &log, 4 * SECTOR, true);
        dev.write_at(&[7; 4 * SECTOR as usize], 0).unwrap();
        dev.flush().unwrap();
        dev.discard(SECTOR, 2 * SECTOR).unwrap();
        let mut live = vec![0u8; 4 * SECTOR as usize];
        dev.read_at(&mut live, 0).unwrap();
        let sevens = vec![7u8; SECTOR as usize];
        let zeros = vec![0u8; SECTOR as usize];
        assert_eq!(live, [&sevens[..], &zeros, &zeros, &sevens].concat());
        assert!(dev.discard(3 * SECTOR, 2 * SECTOR).is_err(), "past the end");

        let events = log.events();
        let mut r = Replayer::new(&events, vec![Image::default()]);
        r.advance(events.len());
        assert_eq!(r.pending(), [2], "the discard waits for a flush");
        let all = |fate| r.build(|_| fate)[0].to_bytes();
        assert_eq!(all(Fate::Lost), vec![7u8; 4 * SECTOR as usize]);
        assert_eq!(all(Fate::Kept), live);
        // Only the discard's second sector reached the medium.
        assert_eq!(
            all(Fate::Torn(0b10)),
            [&sevens[..], &sevens, &zeros, &sevens].concat()
        );

        // On an image shorter than the range (its resize lost), only what exists is zeroed.
        let mut short = Image::from_bytes(&[5; 2 * SECTOR as usize]);
        apply(
            &mut short,
            &Op::Discard {
                offset: SECTOR,
                len: 16 * SECTOR,
            },
            Fate::Kept,
        );
        assert_eq!(short.len(), 2 * SECTOR);
        assert_eq!(
            short.to_bytes(),
            [vec![5u8; SECTOR as usize], zeros.clone()].concat()
        );
    }
}
