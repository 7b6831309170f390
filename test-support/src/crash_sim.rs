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
//!
//! [`SimDir`] grows the devices into a directory tree (a `cow_engine::fs::Fs`): its files are
//! devices on the same log, and its name changes ([`NameOp`]) are logged too, durable once their
//! directories are synced; [`DirReplayer`] rebuilds the tree after a crash.
//!
//! The same device serves the fuzz targets (`crate::fuzz::volume_ops`), which need two more things:
//!
//! - a shared failure countdown, [`Fault`], attached with [`SimDevice::with_fault`]: the n-th
//!   mutating call of any device sharing it fails (a failing write may leave a torn prefix
//!   behind); unless the failure is transient the devices are then *dead* and every later call on
//!   any of them fails, reads included, as on a disk that went away;
//! - the image a power loss could leave now, [`SimDevice::crash_image`], by a [`CrashMode`]: built
//!   by the [`Replayer`] from the device's durable image and its events since its last flush, each
//!   given a [`Fate`] by the mode. A fuzz run issues many writes, so its devices log into a
//!   [`Log::since_flush`], which drops a device's events at its flush: memory stays bounded by the
//!   unflushed work.
//!
//! ```
//! use umbra_test_support::crash_sim::{CrashMode, Fault, Log, SimDevice};
//! use cow_engine::BlockDevice;
//!
//! let fault = Fault::new();
//! let log = Log::since_flush();
//! let dev = SimDevice::new(0, &log, 4096, true).with_fault(&fault);
//! dev.write_at(&[1; 512], 0).unwrap();
//! dev.flush().unwrap();
//! dev.write_at(&[2; 512], 0).unwrap();
//! // A power loss now may lose the second write.
//! assert_eq!(dev.crash_image(CrashMode::LoseUnflushed).to_bytes()[0], 1);
//! assert_eq!(dev.crash_image(CrashMode::KeepAll).to_bytes()[0], 2);
//! // The next mutating call fails, and the device dies with it.
//! fault.arm(0, 0, false);
//! assert!(dev.flush().is_err());
//! assert!(dev.read_at(&mut [0; 8], 0).is_err());
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cow_engine::fs::{EntryKind, Fs, LockGuard};
use cow_engine::{BlockDevice, Discard, Error, ErrorKind, Resize, Result};

/// The unit a torn write is split into: a write reaches the medium sector by sector.
pub const SECTOR: u64 = 512;

const CHUNK: usize = 4096;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

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
            let piece = &data[done..done + n];
            match &mut self.chunks[c] {
                Some(chunk) => Arc::make_mut(chunk)[within..within + n].copy_from_slice(piece),
                // An absent chunk reads as zeros already. Compared as a slice (one memcmp), not
                // byte by byte: fuzz builds instrument every comparison.
                None if piece == &ZEROS[..n] => {}
                slot @ None => {
                    let mut chunk = Arc::new([0; CHUNK]);
                    Arc::make_mut(&mut chunk)[within..within + n].copy_from_slice(piece);
                    *slot = Some(chunk);
                }
            }
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
    /// A change to the names of a [`SimDir`] (not a device's: its event's `dev` is meaningless).
    Name(NameOp),
    /// The directory's entries were synced: every earlier [`NameOp`] whose directories are all
    /// synced after it is durable.
    SyncDir(PathBuf),
}

/// A change to the names of a [`SimDir`]: durable once the directory of each name it changes is
/// synced ([`Op::SyncDir`]); before that a crash keeps it or loses it whole.
#[derive(Debug, Clone)]
pub enum NameOp {
    /// A file (holding device `inode`) or, for `None`, a directory was created at `path`.
    Create {
        /// Where.
        path: PathBuf,
        /// The file's device, `None` for a directory.
        inode: Option<usize>,
    },
    /// The entry at `path` (a file or an empty directory) was removed.
    Remove {
        /// Which.
        path: PathBuf,
    },
    /// The entry `from` (with all under it, for a directory) was renamed to `to`, replacing a
    /// file there.
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
}

impl NameOp {
    /// The directories whose sync makes this change durable.
    fn dirs(&self) -> Vec<&Path> {
        match self {
            NameOp::Create { path, .. } | NameOp::Remove { path } => vec![parent_of(path)],
            NameOp::Rename { from, to } => vec![parent_of(from), parent_of(to)],
        }
    }

    /// Applies the change to `names`; a change whose premise the crash lost (its directory or
    /// its source is missing) leaves nothing, as it could not have reached the medium alone.
    fn apply(&self, names: &mut BTreeMap<PathBuf, Node>) {
        let has_dir = |names: &BTreeMap<PathBuf, Node>, p: &Path| {
            p == Path::new("/") || matches!(names.get(p), Some(Node::Dir))
        };
        match self {
            NameOp::Create { path, inode } => {
                if has_dir(names, parent_of(path)) && !names.contains_key(path) {
                    names.insert(path.clone(), inode.map_or(Node::Dir, Node::File));
                }
            }
            NameOp::Remove { path } => {
                names.remove(path);
            }
            NameOp::Rename { from, to } => {
                if !names.contains_key(from) || !has_dir(names, parent_of(to)) {
                    return;
                }
                let moved: Vec<PathBuf> = names
                    .keys()
                    .filter(|k| k.starts_with(from))
                    .cloned()
                    .collect();
                for k in moved {
                    let node = names.remove(&k).expect("listed");
                    let rest = k.strip_prefix(from).expect("under from");
                    let dest = if rest.as_os_str().is_empty() {
                        to.clone()
                    } else {
                        to.join(rest)
                    };
                    names.insert(dest, node);
                }
            }
        }
    }
}

fn parent_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("/"),
    }
}

/// What a name of a [`SimDir`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A file: the index of its device.
    File(usize),
    /// A directory.
    Dir,
}

/// An [`Op`] of device `dev`.
#[derive(Debug, Clone)]
pub struct Event {
    /// The device's index among the volume's devices.
    pub dev: usize,
    /// What it was asked to do.
    pub op: Op,
}

/// What a [`Log`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every event.
    All,
    /// Each device's events until its next flush (the flush itself is not kept).
    SinceFlush,
    /// Nothing.
    Nothing,
}

/// The issue-ordered event log shared by the devices of one volume.
#[derive(Clone)]
pub struct Log {
    events: Arc<Mutex<Vec<Event>>>,
    keep: Keep,
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

impl Log {
    /// A log that keeps every event.
    pub fn new() -> Self {
        Log::keeping(Keep::All)
    }

    /// A log that keeps nothing, for devices whose crashes are not studied (a reopened volume).
    pub fn discarding() -> Self {
        Log::keeping(Keep::Nothing)
    }

    /// A log that keeps each device's writes, discards and resizes only until that device's next
    /// flush, which drops them: what [`SimDevice::crash_image`] needs, in memory bounded by the
    /// unflushed work (a fuzz run issues many writes). Its positions are not crash points: a
    /// [`Replayer`] or [`DirReplayer`] needs a log of [`Log::new`], and so does a [`SimDir`] (its
    /// name changes are never dropped).
    pub fn since_flush() -> Self {
        Log::keeping(Keep::SinceFlush)
    }

    fn keeping(keep: Keep) -> Self {
        Log {
            events: Arc::default(),
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(log: &mut MutexGuard<'_, Vec<Event>>, keep: Keep, event: Event) {
        match (keep, &event.op) {
            (Keep::Nothing, _) => {}
            (Keep::All, _) => log.push(event),
            (Keep::SinceFlush, Op::Flush) => log.retain(|e| e.dev != event.dev),
            (Keep::SinceFlush, Op::Restart(_)) => log.clear(),
            (Keep::SinceFlush, _) => log.push(event),
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

/// A failure countdown shared by the devices it is attached to ([`SimDevice::with_fault`]): the
/// devices of one volume, so that "the n-th device call" counts across all of them.
///
/// Every write, discard, flush and resize first asks the fault: once its countdown runs out that
/// call fails (a failing write may leave a torn prefix behind) and, unless the failure is
/// transient, the fault is *dead*: every later call on every device sharing it fails too, reads
/// included, as on a disk that went away.
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

    fn state(&self) -> MutexGuard<'_, FaultState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the mutating call after the next `after` ones (`after` = 0: the very next one); a
    /// failing write leaves `tear`/256 of its bytes behind. A `transient` failure fails that one
    /// call only; otherwise the devices die with it. A dead fault stays dead.
    pub fn arm(&self, after: u32, tear: u8, transient: bool) {
        let mut s = self.state();
        if !s.dead {
            s.countdown = Some(after);
            s.tear = tear;
            s.transient = transient;
        }
    }

    /// True if a call failed since the last [`Fault::take_fired`].
    pub fn fired(&self) -> bool {
        self.state().fired
    }

    /// Whether a call failed since the last call, and forgets it.
    pub fn take_fired(&self) -> bool {
        std::mem::take(&mut self.state().fired)
    }

    /// Makes every later call fail (a power loss: nothing more reaches the disks).
    pub fn kill(&self) {
        self.state().dead = true;
    }

    /// True once a countdown that was not transient has fired (or after [`Fault::kill`]).
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    fn tick(&self) -> Tick {
        let mut s = self.state();
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

fn injected(id: usize, what: &str) -> Error {
    Error::io(
        format!("sim device {id}: injected {what} failure"),
        io::Error::other("simulated device failure"),
    )
}

/// How much of a device's unflushed work a power loss keeps ([`SimDevice::crash_image`]). Each
/// mode is a rule giving each write, discard and resize since the device's last flush a [`Fate`];
/// what is kept reaches the medium in issue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only what was flushed: every event [`Fate::Lost`].
    LoseUnflushed,
    /// Everything written (the OS cache survived: a process crash, or a clean shutdown): every
    /// event [`Fate::Kept`].
    KeepAll,
    /// Resizes kept; each write or discard, in issue order, drawn from [`Rng::from_state`] of the
    /// seed: `below(6)` of 0 or 1 loses it, 2 to 4 keeps it, 5 tears it by the sector mask
    /// `next_u64()` ([`Fate::Torn`]).
    Subset(u64),
    /// As [`CrashMode::Subset`], but each resize too is drawn: `below(2)` of 0 keeps it, 1 loses
    /// it.
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

    /// The fate of each pending event by this mode, asked in issue order.
    fn fates(self) -> impl FnMut(&Op) -> Fate {
        let (mut rng, resizes_random) = match self {
            CrashMode::LoseUnflushed | CrashMode::KeepAll => (Rng::from_state(0), false),
            CrashMode::Subset(seed) => (Rng::from_state(seed), false),
            CrashMode::SubsetWithResizes(seed) => (Rng::from_state(seed), true),
        };
        move |op| match (self, op) {
            (CrashMode::LoseUnflushed, _) => Fate::Lost,
            (CrashMode::KeepAll, _) => Fate::Kept,
            (_, Op::Resize { .. }) if !resizes_random || rng.below(2) == 0 => Fate::Kept,
            (_, Op::Resize { .. }) => Fate::Lost,
            _ => match rng.below(6) {
                0 | 1 => Fate::Lost,
                2..=4 => Fate::Kept,
                _ => Fate::Torn(rng.next_u64()),
            },
        }
    }
}

/// A device that fails writes past a capacity, like a full disk (a sparse file that cannot grow).
struct Full {
    capacity: u64,
    kind: io::ErrorKind,
}

/// A simulated device: live contents plus an entry in the shared [`Log`] for everything it does.
///
/// Made by [`SimDevice::new`] or [`SimDevice::with_image`], then, before it is shared, optionally
/// given a failure countdown ([`SimDevice::with_fault`]), a size cap ([`SimDevice::with_max_len`])
/// or no discard support ([`SimDevice::without_discard`]).
pub struct SimDevice {
    id: usize,
    log: Log,
    live: Mutex<Image>,
    /// The contents as of the last flush, kept only on a [`Log::since_flush`] (whose events
    /// since then are the rest of [`SimDevice::crash_image`]'s input).
    durable: Mutex<Option<Image>>,
    resizable: bool,
    discards: bool,
    /// Resizes past this fail with `NoSpace`.
    max_len: u64,
    fault: Option<Arc<Fault>>,
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

    /// Device `id` holding `image` (durable), logging into `log`.
    pub fn with_image(id: usize, log: &Log, image: Image, resizable: bool) -> Arc<Self> {
        Arc::new(SimDevice {
            id,
            log: log.clone(),
            durable: Mutex::new((log.keep == Keep::SinceFlush).then(|| image.clone())),
            live: Mutex::new(image),
            resizable,
            discards: true,
            max_len: u64::MAX,
            fault: None,
            full: Mutex::new(None),
            dead: AtomicBool::new(false),
            before_write: Mutex::new(None),
        })
    }

    /// Changes a device no one else holds yet.
    fn configured(mut self: Arc<Self>, f: impl FnOnce(&mut SimDevice)) -> Arc<Self> {
        let id = self.id;
        f(Arc::get_mut(&mut self)
            .unwrap_or_else(|| panic!("sim device {id}: configured after it was shared")));
        self
    }

    /// The device with the shared failure countdown `fault` attached (see [`Fault`]): every
    /// write, discard, flush and resize ticks it, and once it is dead every call fails, reads
    /// included.
    ///
    /// # Panics
    ///
    /// If the device was already shared (cloned) or given a fault.
    pub fn with_fault(self: Arc<Self>, fault: &Arc<Fault>) -> Arc<Self> {
        self.configured(|d| {
            assert!(d.fault.is_none(), "sim device {}: a second fault", d.id);
            d.fault = Some(fault.clone());
        })
    }

    /// The device refusing to be resized past `max` bytes (`NoSpace`, nothing changed, no tick of
    /// its fault), as a disk of that size would.
    ///
    /// # Panics
    ///
    /// If the device was already shared.
    pub fn with_max_len(self: Arc<Self>, max: u64) -> Arc<Self> {
        self.configured(|d| d.max_len = max)
    }

    /// The device without discard support (`as_discard` gives `None`), so its users zero ranges
    /// by writing.
    ///
    /// # Panics
    ///
    /// If the device was already shared.
    pub fn without_discard(self: Arc<Self>) -> Arc<Self> {
        self.configured(|d| d.discards = false)
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

    /// Ticks the attached fault: `Some(kept 256ths)` when this call fails.
    fn tick(&self) -> Option<u8> {
        match self.fault.as_ref().map(|f| f.tick()) {
            Some(Tick::Fail(tear)) => Some(tear),
            Some(Tick::Proceed) | None => None,
        }
    }

    fn fault_is_dead(&self) -> bool {
        self.fault.as_ref().is_some_and(|f| f.is_dead())
    }

    /// The live contents (what a clean shutdown would leave).
    pub fn image(&self) -> Image {
        self.live.lock().unwrap().clone()
    }

    /// The contents a power loss now could leave, by `mode`: the device's contents as of its last
    /// flush, with each write, discard and resize since then given a fate by `mode` and replayed
    /// in issue order by the [`Replayer`] (a torn write or discard reaches the medium sector by
    /// sector). A write the crash keeps past the end of the image (its resize lost) extends the
    /// image, as a write past the end of a file does.
    ///
    /// # Panics
    ///
    /// Unless the device logs into a [`Log::since_flush`] (the log that keeps exactly its events
    /// since its last flush).
    pub fn crash_image(&self, mode: CrashMode) -> Image {
        assert!(
            self.log.keep == Keep::SinceFlush,
            "sim device {}: crash_image needs a Log::since_flush()",
            self.id
        );
        // Under the log lock, so the durable image and the events after it agree.
        let log = self.log.lock();
        let durable = self.durable.lock().unwrap().clone();
        let events: Vec<Event> = log
            .iter()
            .filter(|e| e.dev == self.id)
            .map(|e| Event {
                dev: 0,
                op: e.op.clone(),
            })
            .collect();
        drop(log);
        let durable = durable.expect("a device on a since-flush log keeps its durable image");
        let mut replay = Replayer::new(&events, vec![durable]);
        replay.advance(events.len());
        let mut fate = mode.fates();
        let mut images = replay.build(|i| fate(&events[i].op));
        images.pop().expect("one device, one image")
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
        if self.fault_is_dead() {
            return Err(injected(self.id, "read").with_offset(offset));
        }
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
        let (mut keep, mut fail) = match &*self.full.lock().unwrap() {
            Some(f) if offset + buf.len() as u64 > f.capacity => (
                f.capacity.saturating_sub(offset) as usize,
                Some(Error::io(
                    format!("sim device {} is full", self.id),
                    io::Error::from(f.kind),
                )),
            ),
            _ => (buf.len(), None),
        };
        if let Some(tear) = self.tick() {
            keep = keep.min(buf.len() * usize::from(tear) / 256);
            fail = Some(injected(self.id, "write"));
        }
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
            Some(e) => Err(e.with_offset(offset)),
        }
    }

    fn flush(&self) -> Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        if self.tick().is_some() {
            return Err(injected(self.id, "flush"));
        }
        let event = Event {
            dev: self.id,
            op: Op::Flush,
        };
        let mut log = self.log.lock();
        if self.log.keep == Keep::SinceFlush {
            // The events this flush drops from the log are in the durable image from now on.
            *self.durable.lock().unwrap() = Some(self.live.lock().unwrap().clone());
        }
        Log::push(&mut log, self.log.keep, event);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.live.lock().unwrap().len()
    }

    fn as_resize(&self) -> Option<&dyn Resize> {
        self.resizable.then_some(self as &dyn Resize)
    }

    fn as_discard(&self) -> Option<&dyn Discard> {
        self.discards.then_some(self as &dyn Discard)
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
        if self.tick().is_some() {
            return Err(injected(self.id, "discard").with_offset(offset));
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
        if new_len > self.max_len {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "sim device {} cannot hold {new_len} bytes (at most {})",
                    self.id, self.max_len
                ),
            ));
        }
        if self.tick().is_some() {
            return Err(injected(self.id, "resize"));
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

/// A simulated directory tree: files are [`SimDevice`]s (device index = inode) and names follow
/// the dir-sync model of [`NameOp`]; everything, names and file data alike, goes to one [`Log`], so
/// [`DirReplayer`] rebuilds the tree after a crash at any log position. Paths are absolute; `/`
/// always exists.
#[derive(Clone)]
pub struct SimDir {
    inner: Arc<SimDirInner>,
}

struct SimDirInner {
    log: Log,
    state: Mutex<DirState>,
    locks: Arc<Mutex<HashSet<PathBuf>>>,
    dead: AtomicBool,
}

struct DirState {
    names: BTreeMap<PathBuf, Node>,
    devices: Vec<Arc<SimDevice>>,
}

impl std::fmt::Debug for SimDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimDir({} names)", self.state().names.len())
    }
}

struct SimLock {
    locks: Arc<Mutex<HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.locks.lock().unwrap().remove(&self.path);
    }
}

fn not_found(what: &str, path: &Path) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("sim dir: {what}: no such entry"),
    )
    .with_path(path)
}

impl SimDir {
    /// An empty tree logging into `log`.
    pub fn new(log: &Log) -> Self {
        Self::with_contents(log, BTreeMap::new(), Vec::new())
    }

    /// A tree holding `names`, its files' devices holding `images` (by inode), logging into `log`.
    pub fn with_contents(log: &Log, names: BTreeMap<PathBuf, Node>, images: Vec<Image>) -> Self {
        let devices = images
            .into_iter()
            .enumerate()
            .map(|(i, img)| SimDevice::with_image(i, log, img, true))
            .collect();
        SimDir {
            inner: Arc::new(SimDirInner {
                log: log.clone(),
                state: Mutex::new(DirState { names, devices }),
                locks: Arc::default(),
                dead: AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, DirState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log every name change and file operation goes to.
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// The names and what they hold, as live (not as a crash would leave them).
    pub fn names(&self) -> BTreeMap<PathBuf, Node> {
        self.state().names.clone()
    }

    /// Power is lost: from now on nothing changes or is logged (handles still open can be dropped).
    pub fn kill(&self) {
        self.inner.dead.store(true, Ordering::Relaxed);
        for d in &self.state().devices {
            d.kill();
        }
    }

    fn dead(&self) -> bool {
        self.inner.dead.load(Ordering::Relaxed)
    }

    /// Records a name change; the caller holds the state lock, so the log order is the order of
    /// the changes.
    fn record(&self, op: Op) {
        if !self.dead() {
            let keep = self.inner.log.keep;
            Log::push(
                &mut self.inner.log.lock(),
                keep,
                Event {
                    dev: usize::MAX,
                    op,
                },
            );
        }
    }

    fn check_parent(st: &DirState, path: &Path) -> Result<()> {
        let p = parent_of(path);
        if p == Path::new("/") || st.names.get(p) == Some(&Node::Dir) {
            Ok(())
        } else {
            Err(not_found("no parent directory", path))
        }
    }

    fn file(&self, path: &Path) -> Result<Arc<SimDevice>> {
        let st = self.state();
        match st.names.get(path) {
            Some(Node::File(i)) => Ok(st.devices[*i].clone()),
            Some(Node::Dir) => {
                Err(Error::new(ErrorKind::InvalidArgument, "sim dir: a directory").with_path(path))
            }
            None => Err(not_found("open", path)),
        }
    }

    fn new_file(&self, st: &mut DirState, path: &Path, len: u64) -> Result<Arc<SimDevice>> {
        Self::check_parent(st, path)?;
        if st.names.contains_key(path) {
            return Err(Error::new(ErrorKind::AlreadyExists, "sim dir: exists").with_path(path));
        }
        let inode = st.devices.len();
        let dev = SimDevice::new(inode, &self.inner.log, 0, true);
        if self.dead() {
            dev.kill();
        }
        st.devices.push(dev.clone());
        st.names.insert(path.to_owned(), Node::File(inode));
        self.record(Op::Name(NameOp::Create {
            path: path.to_owned(),
            inode: Some(inode),
        }));
        if len > 0 {
            dev.resize(len)?;
        }
        Ok(dev)
    }
}

impl Fs for SimDir {
    fn create_file(&self, path: &Path, len: u64) -> Result<Arc<dyn BlockDevice>> {
        let mut st = self.state();
        Ok(self.new_file(&mut st, path, len)?)
    }

    fn open_file(&self, path: &Path) -> Result<Arc<dyn BlockDevice>> {
        Ok(self.file(path)?)
    }

    fn open_read_only(&self, path: &Path) -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(ReadOnly(self.file(path)?)))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        Ok(self.file(path)?.image().to_bytes())
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        let dev = {
            let mut st = self.state();
            match st.names.get(path) {
                Some(Node::File(i)) => st.devices[*i].clone(),
                Some(Node::Dir) => {
                    return Err(
                        Error::new(ErrorKind::InvalidArgument, "sim dir: a directory")
                            .with_path(path),
                    )
                }
                None => self.new_file(&mut st, path, 0)?,
            }
        };
        dev.resize(0)?;
        dev.resize(data.len() as u64)?;
        dev.write_at(data, 0)?;
        dev.flush()
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state();
        Self::check_parent(&st, to)?;
        let op = NameOp::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        };
        match (st.names.get(from), st.names.get(to)) {
            (None, _) => return Err(not_found("rename", from)),
            (Some(_), Some(Node::Dir)) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "sim dir: rename onto a directory",
                )
                .with_path(to))
            }
            _ => {}
        }
        if to.starts_with(from) {
            return Err(
                Error::new(ErrorKind::InvalidArgument, "sim dir: rename under itself")
                    .with_path(to),
            );
        }
        op.apply(&mut st.names);
        self.record(Op::Name(op));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut st = self.state();
        match st.names.get(path) {
            Some(Node::File(_)) => {}
            Some(Node::Dir) => {
                return Err(
                    Error::new(ErrorKind::InvalidArgument, "sim dir: a directory").with_path(path),
                )
            }
            None => return Err(not_found("remove", path)),
        }
        st.names.remove(path);
        self.record(Op::Name(NameOp::Remove {
            path: path.to_owned(),
        }));
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> Result<()> {
        let mut st = self.state();
        Self::check_parent(&st, path)?;
        if st.names.contains_key(path) || path == Path::new("/") {
            return Err(Error::new(ErrorKind::AlreadyExists, "sim dir: exists").with_path(path));
        }
        st.names.insert(path.to_owned(), Node::Dir);
        self.record(Op::Name(NameOp::Create {
            path: path.to_owned(),
            inode: None,
        }));
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> Result<()> {
        let mut st = self.state();
        if st.names.get(path) != Some(&Node::Dir) {
            return Err(not_found("remove directory", path));
        }
        if st.names.keys().any(|k| k != path && k.starts_with(path)) {
            return Err(
                Error::new(ErrorKind::InvalidArgument, "sim dir: directory not empty")
                    .with_path(path),
            );
        }
        st.names.remove(path);
        self.record(Op::Name(NameOp::Remove {
            path: path.to_owned(),
        }));
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let st = self.state();
        if path != Path::new("/") && st.names.get(path) != Some(&Node::Dir) {
            return Err(not_found("list", path));
        }
        Ok(st
            .names
            .keys()
            .filter(|k| k.parent() == Some(path))
            .filter_map(|k| k.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        if path == Path::new("/") {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.state().names.get(path).map(|n| match n {
            Node::File(_) => EntryKind::File,
            Node::Dir => EntryKind::Dir,
        }))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        // Held while recording, so the sync is ordered with the name changes.
        let st = self.state();
        if path != Path::new("/") && st.names.get(path) != Some(&Node::Dir) {
            return Err(not_found("sync", path));
        }
        self.record(Op::SyncDir(path.to_owned()));
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<LockGuard> {
        self.file(path)?;
        let locks = self.inner.locks.clone();
        if !locks.lock().unwrap().insert(path.to_owned()) {
            return Err(Error::new(ErrorKind::Busy, "sim dir: locked").with_path(path));
        }
        Ok(Box::new(SimLock {
            locks,
            path: path.to_owned(),
        }))
    }
}

/// A file of a [`SimDir`] opened for reading only: its writes fail, and nothing is logged.
struct ReadOnly(Arc<SimDevice>);

impl BlockDevice for ReadOnly {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, _buf: &[u8], offset: u64) -> Result<()> {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("sim device {} is open for reading only", self.0.id),
        )
        .with_offset(offset))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        self.0.len()
    }
}

/// Rebuilds a [`SimDir`] after a crash at a given log position: the file data of every device as
/// [`Replayer`] has it, and the names: every [`NameOp`] whose directories were all synced after it
/// is durable; each other one issued before the crash is kept or lost whole, as the test decides
/// (any fate but [`Fate::Lost`] keeps it). Name changes that reach the medium do so in issue order.
pub struct DirReplayer<'a> {
    events: &'a [Event],
    devices: Replayer<'a>,
    pos: usize,
}

impl<'a> DirReplayer<'a> {
    /// A replayer of `events`, logged by a [`SimDir`] created empty by [`SimDir::new`].
    pub fn new(events: &'a [Event]) -> Self {
        let inodes = events
            .iter()
            .filter_map(|e| match &e.op {
                Op::Name(NameOp::Create { inode, .. }) => inode.map(|i| i + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        DirReplayer {
            events,
            devices: Replayer::new(events, vec![Image::default(); inodes]),
            pos: 0,
        }
    }

    /// Moves the crash point to `cut` (non-decreasing): the events `0..cut` have been issued.
    pub fn advance(&mut self, cut: usize) {
        self.devices.advance(cut);
        self.pos = cut;
    }

    /// Whether name change `i` (before the crash point) is durable: each of its directories was
    /// synced after it, before the crash point.
    fn durable(&self, i: usize, op: &NameOp) -> bool {
        op.dirs().iter().all(|d| {
            self.events[i + 1..self.pos]
                .iter()
                .any(|e| matches!(&e.op, Op::SyncDir(s) if s == d))
        })
    }

    /// Indices of the events a crash here may keep or lose: device writes, discards and resizes
    /// not yet flushed, and name changes not yet made durable.
    pub fn pending(&self) -> Vec<usize> {
        let mut v = self.devices.pending();
        for (i, e) in self.events[..self.pos].iter().enumerate() {
            if let Op::Name(op) = &e.op {
                if !self.durable(i, op) {
                    v.push(i);
                }
            }
        }
        v.sort_unstable();
        v
    }

    /// The tree after the crash, `fate(event index)` deciding each pending event; the new tree logs
    /// into `log`.
    pub fn build(&self, mut fate: impl FnMut(usize) -> Fate, log: &Log) -> SimDir {
        let mut fates = BTreeMap::new();
        let images = self
            .devices
            .build(|i| *fates.entry(i).or_insert_with(|| fate(i)));
        let mut names = BTreeMap::new();
        for (i, e) in self.events[..self.pos].iter().enumerate() {
            if let Op::Name(op) = &e.op {
                let kept =
                    self.durable(i, op) || *fates.entry(i).or_insert_with(|| fate(i)) != Fate::Lost;
                if kept {
                    op.apply(&mut names);
                }
            }
        }
        SimDir::with_contents(log, names, images)
    }
}

/// The crash points of a log worth studying: just before and just after each flush and each
/// directory sync, and the end; sorted, each once.
pub fn sync_cuts(events: &[Event]) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if matches!(e.op, Op::Flush | Op::SyncDir(_)) {
            cuts.extend([i, i + 1]);
        }
    }
    cuts.push(events.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// A memoised fate for each pending event of a crash state of kind `choice`: 0 keeps every one,
/// 1 loses every one, any other keeps or loses each at random (from `rng`). Pass the closure to
/// [`DirReplayer::build`] or [`Replayer::build`].
pub fn fates(choice: u32, rng: &mut Rng) -> impl FnMut(usize) -> Fate + '_ {
    let mut chosen = BTreeMap::new();
    move |i| {
        *chosen.entry(i).or_insert_with(|| match choice {
            0 => Fate::Kept,
            1 => Fate::Lost,
            _ if rng.percent(50) => Fate::Kept,
            _ => Fate::Lost,
        })
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
                Op::Name(_) | Op::SyncDir(_) => {}
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
        (_, Fate::Lost) | (Op::Flush | Op::Restart(_) | Op::Name(_) | Op::SyncDir(_), _) => {}
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

    /// A generator whose SplitMix64 state is `state`, unmixed: the fuzz targets seed it so, and a
    /// corpus input must replay the numbers it always drew.
    pub fn from_state(state: u64) -> Self {
        Rng(state)
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

    /// Reads all of `dev`.
    fn read_all(dev: &SimDevice) -> Result<Vec<u8>> {
        let mut b = vec![0u8; dev.len() as usize];
        dev.read_at(&mut b, 0).map(|()| b)
    }

    /// A shared countdown fails the n-th mutating call of any device sharing it, leaving the
    /// armed part of a failing write behind; the devices are then dead: every call on every one
    /// of them fails, reads included, and nothing changes any more.
    #[test]
    fn a_fault_fails_the_nth_call_across_devices_and_a_dead_one_fails_reads_too() {
        let fault = Fault::new();
        let log = Log::since_flush();
        let a = SimDevice::new(0, &log, 4 * SECTOR, true).with_fault(&fault);
        let b = SimDevice::new(1, &log, SECTOR, true).with_fault(&fault);
        a.write_at(&[1; SECTOR as usize], 0).unwrap();
        // The third mutating call from now fails and leaves half of its write.
        fault.arm(2, 128, false);
        b.write_at(&[4; SECTOR as usize], 0).unwrap();
        b.flush().unwrap();
        assert!(!fault.fired() && !fault.is_dead());
        let err = a.write_at(&[9; 2 * SECTOR as usize], SECTOR).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(fault.is_dead() && fault.fired());
        assert!(fault.take_fired());
        assert!(!fault.take_fired(), "take_fired forgets");

        for dev in [&a, &b] {
            let e = read_all(dev).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io, "a read of a dead device: {e}");
            assert!(dev.write_at(&[5; 10], 0).is_err());
            assert!(dev.flush().is_err());
            assert!(dev.resize(8 * SECTOR).is_err());
            assert!(dev.discard(0, SECTOR).is_err());
        }
        // Arming a dead fault does not revive it.
        fault.arm(5, 0, true);
        assert!(b.flush().is_err());
        let s = SECTOR as usize;
        let expected = [vec![1; s], vec![9; s], vec![0; 2 * s]].concat();
        assert_eq!(
            a.image().to_bytes(),
            expected,
            "the torn prefix is all that changed"
        );
        assert_eq!(b.image().to_bytes(), vec![4; s]);
        // The torn prefix was issued, so a crash may keep it.
        assert_eq!(a.crash_image(CrashMode::KeepAll).to_bytes(), expected);
        assert_eq!(
            a.crash_image(CrashMode::LoseUnflushed).to_bytes(),
            vec![0; 4 * s]
        );
    }

    /// A transient failure fails one call (here a flush, then a write that leaves nothing) and
    /// the devices go on working.
    #[test]
    fn a_transient_fault_fails_one_call_only() {
        let fault = Fault::new();
        let log = Log::since_flush();
        let dev = SimDevice::new(0, &log, 2 * SECTOR, true).with_fault(&fault);
        fault.arm(0, 0, true);
        assert_eq!(dev.flush().unwrap_err().kind(), ErrorKind::Io);
        assert!(fault.take_fired() && !fault.is_dead());
        dev.write_at(&[3; SECTOR as usize], 0).unwrap();
        fault.arm(1, 0, true);
        dev.flush().unwrap();
        assert!(dev.write_at(&[6; SECTOR as usize], SECTOR).is_err());
        assert!(fault.take_fired() && !fault.is_dead());
        dev.write_at(&[7; SECTOR as usize], SECTOR).unwrap();
        let s = SECTOR as usize;
        assert_eq!(read_all(&dev).unwrap(), [vec![3; s], vec![7; s]].concat());
        assert_eq!(
            dev.crash_image(CrashMode::LoseUnflushed).to_bytes(),
            [vec![3; s], vec![0; s]].concat(),
            "the flush that failed made nothing durable; the one that worked did"
        );
        assert!(!fault.fired());
    }

    /// A size cap refuses a resize with `NoSpace` without ticking the fault or changing anything;
    /// a device without discard says so; a since-flush log drops a device's events at its flush.
    #[test]
    fn a_size_cap_refuses_a_resize_and_a_since_flush_log_forgets_what_was_flushed() {
        let fault = Fault::new();
        let log = Log::since_flush();
        let dev = SimDevice::new(0, &log, SECTOR, true)
            .with_fault(&fault)
            .with_max_len(4 * SECTOR)
            .without_discard();
        let other = SimDevice::new(1, &log, SECTOR, true);
        assert!(dev.as_discard().is_none() && other.as_discard().is_some());
        fault.arm(0, 0, false);
        let e = dev.resize(4 * SECTOR + 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
        assert!(!fault.fired(), "a refused resize does not tick the fault");
        assert_eq!(dev.len(), SECTOR);
        fault.arm(u32::MAX, 0, false);

        for i in 0..100u8 {
            dev.write_at(&[i; 16], u64::from(i)).unwrap();
        }
        other.write_at(&[1; 8], 0).unwrap();
        assert_eq!(log.len(), 101);
        dev.flush().unwrap();
        assert_eq!(
            log.len(),
            1,
            "only the other device's unflushed write is left"
        );
        other.flush().unwrap();
        assert!(log.is_empty());
        assert_eq!(
            dev.crash_image(CrashMode::LoseUnflushed).to_bytes(),
            dev.image().to_bytes()
        );
    }

    #[test]
    #[should_panic(expected = "crash_image needs a Log::since_flush()")]
    fn a_crash_image_needs_a_since_flush_log() {
        SimDevice::new(3, &Log::new(), SECTOR, true).crash_image(CrashMode::KeepAll);
    }

    /// What one crash of [`crash_images_follow_each_mode`]'s workload did, by hand.
    #[derive(Default)]
    struct Seen {
        lost: bool,
        kept: bool,
        torn: bool,
        resize_lost: bool,
    }

    /// Each [`CrashMode`] against a hand-built expectation: the device's flushed contents, then
    /// its events since the flush in issue order, each lost, kept or torn (sector by sector) as the
    /// mode's documented rule draws it; a kept write past a lost resize extends the image.
    #[test]
    fn crash_images_follow_each_mode() {
        let s = SECTOR as usize;
        let log = Log::since_flush();
        let dev = SimDevice::new(0, &log, 2 * SECTOR, true);
        let other = SimDevice::new(1, &log, SECTOR, true);
        dev.write_at(&vec![1; 2 * s], 0).unwrap();
        dev.flush().unwrap();
        // Pending: grow to 4 sectors, a 2-sector write at sector 1, a 1-sector write at sector 3.
        dev.resize(4 * SECTOR).unwrap();
        dev.write_at(&vec![2; 2 * s], SECTOR).unwrap();
        other.write_at(&[7; 100], 0).unwrap();
        other.flush().unwrap();
        dev.write_at(&vec![3; s], 3 * SECTOR).unwrap();
        assert_eq!(log.len(), 3);

        let live = [vec![1; s], vec![2; 2 * s], vec![3; s]].concat();
        assert_eq!(dev.image().to_bytes(), live);
        let image = |mode| dev.crash_image(mode).to_bytes();
        assert_eq!(image(CrashMode::LoseUnflushed), vec![1; 2 * s]);
        assert_eq!(image(CrashMode::KeepAll), live);

        // The rule, by hand on plain bytes.
        let by_hand = |seed: u64, resizes_random: bool, seen: &mut Seen| {
            let mut rng = Rng::from_state(seed);
            let mut img = vec![1u8; 2 * s];
            if !resizes_random || rng.below(2) == 0 {
                img.resize(4 * s, 0);
            } else {
                seen.resize_lost = true;
            }
            for (at, byte, sectors) in [(s, 2u8, 2usize), (3 * s, 3, 1)] {
                let mask: u64 = match rng.below(6) {
                    0 | 1 => {
                        seen.lost = true;
                        0
                    }
                    2..=4 => {
                        seen.kept = true;
                        u64::MAX
                    }
                    _ => {
                        seen.torn = true;
                        rng.next_u64()
                    }
                };
                for k in 0..sectors {
                    if mask & (1 << k) != 0 {
                        let start = at + k * s;
                        if img.len() < start + s {
                            img.resize(start + s, 0);
                        }
                        img[start..start + s].fill(byte);
                    }
                }
            }
            img
        };
        let (mut seen, mut seen_r) = (Seen::default(), Seen::default());
        for seed in 0..64 {
            assert_eq!(
                image(CrashMode::Subset(seed)),
                by_hand(seed, false, &mut seen),
                "Subset({seed})"
            );
            assert_eq!(
                image(CrashMode::SubsetWithResizes(seed)),
                by_hand(seed, true, &mut seen_r),
                "SubsetWithResizes({seed})"
            );
        }
        assert!(seen.lost && seen.kept && seen.torn && !seen.resize_lost);
        assert!(seen_r.lost && seen_r.kept && seen_r.torn && seen_r.resize_lost);
        // The same mode gives the same image; the device itself is untouched.
        assert_eq!(image(CrashMode::Subset(9)), image(CrashMode::Subset(9)));
        assert_eq!(dev.image().to_bytes(), live);
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A crash state: each name, with the bytes of a file (`None` for a directory).
    type View = BTreeMap<PathBuf, Option<Vec<u8>>>;

    /// Every crash state of `dir`'s log (each position, each subset of its pending events, which
    /// must be few), as the names and each file's bytes.
    fn all_states(dir: &SimDir) -> Vec<(usize, View)> {
        let events = dir.log().events();
        let mut r = DirReplayer::new(&events);
        let mut out = Vec::new();
        for cut in 0..=events.len() {
            r.advance(cut);
            let pending = r.pending();
            assert!(pending.len() < 12, "too many pending events to enumerate");
            for subset in 0..1u32 << pending.len() {
                let d = r.build(
                    |i| {
                        let k = pending.iter().position(|&j| j == i).expect("pending");
                        if subset & (1 << k) != 0 {
                            Fate::Kept
                        } else {
                            Fate::Lost
                        }
                    },
                    &Log::discarding(),
                );
                let view = d
                    .names()
                    .into_iter()
                    .map(|(k, n)| {
                        (
                            k.clone(),
                            matches!(n, Node::File(_)).then(|| d.read_file(&k).unwrap()),
                        )
                    })
                    .collect();
                out.push((cut, view));
            }
        }
        out
    }

    /// The dir-sync model: a created file's name is durable only after its directory's sync, its
    /// data only after its flush; a rename over a durable file leaves the old file or the new one,
    /// never neither; a renamed directory moves with what is under it; a change in a directory a
    /// crash lost is lost with it.
    #[test]
    fn names_are_durable_after_their_directory_sync_and_a_rename_is_atomic() {
        let log = Log::new();
        let d = SimDir::new(&log);
        d.create_dir(&p("/pool")).unwrap();
        d.sync_dir(&p("/")).unwrap();
        d.write_file(&p("/pool/state"), b"old").unwrap();
        d.sync_dir(&p("/pool")).unwrap();
        let durable_old = log.len();
        d.write_file(&p("/pool/state.tmp"), b"new").unwrap();
        d.rename(&p("/pool/state.tmp"), &p("/pool/state")).unwrap();
        d.sync_dir(&p("/pool")).unwrap();
        let durable_new = log.len();
        d.create_dir(&p("/pool/luns")).unwrap();
        d.create_dir(&p("/pool/luns/1")).unwrap();
        let f = d.create_file(&p("/pool/luns/1/data"), 1024).unwrap();
        f.write_at(&[5; 512], 0).unwrap();
        d.sync_dir(&p("/pool/luns/1")).unwrap();
        f.flush().unwrap();
        d.create_dir(&p("/pool/orphans")).unwrap();
        d.rename(&p("/pool/luns/1"), &p("/pool/orphans/1")).unwrap();
        assert_eq!(d.list_dir(&p("/pool/orphans/1")).unwrap(), ["data"]);
        assert!(d.list_dir(&p("/pool/luns")).unwrap().is_empty());
        let ro = d.open_read_only(&p("/pool/orphans/1/data")).unwrap();
        let mut b5 = [0u8; 512];
        ro.read_at(&mut b5, 0).unwrap();
        assert_eq!(b5, [5; 512]);
        assert!(
            ro.write_at(&[1; 512], 0).is_err(),
            "a read-only file took a write"
        );
        drop(d.lock(&p("/pool/state")).unwrap());
        let g = d.lock(&p("/pool/state")).unwrap();
        assert_eq!(
            d.lock(&p("/pool/state")).map(|_| ()).unwrap_err().kind(),
            ErrorKind::Busy
        );
        drop(g);

        let states = all_states(&d);
        let mut seen_data_dir = false;
        for (cut, view) in &states {
            let state = view.get(&p("/pool/state"));
            if *cut >= durable_old && *cut < durable_new {
                assert!(
                    matches!(state, Some(Some(b)) if b == b"old" || b == b"new"),
                    "at {cut}: pool/state is {state:?}"
                );
            }
            if *cut >= durable_new {
                assert_eq!(state, Some(&Some(b"new".to_vec())), "at {cut}");
            }
            for k in view.keys() {
                let parent = parent_of(k);
                assert!(
                    parent == Path::new("/") || view.contains_key(parent),
                    "{k:?} without its directory at {cut}"
                );
            }
            // The data file, wherever it is, holds nothing or the flushed write.
            for name in ["/pool/luns/1/data", "/pool/orphans/1/data"] {
                if let Some(Some(b)) = view.get(&p(name)) {
                    seen_data_dir = true;
                    assert!(b.len() <= 1024);
                    assert!(b.iter().all(|&x| x == 0 || x == 5));
                }
            }
            assert!(
                !(view.contains_key(&p("/pool/luns/1/data"))
                    && view.contains_key(&p("/pool/orphans/1/data"))),
                "a renamed directory is in one place"
            );
        }
        assert!(seen_data_dir);
        // The last state with everything kept is the live tree.
        let (_, last) = states.last().unwrap();
        assert_eq!(
            last.keys().collect::<Vec<_>>(),
            d.names().keys().collect::<Vec<_>>()
        );
        // Without the final sync of /pool, the state.tmp rename can be lost: some state shows the old file.
        assert!(states
            .iter()
            .any(|(c, v)| *c > durable_old
                && v.get(&p("/pool/state")) == Some(&Some(b"old".to_vec()))));
        // Once a crash state lost /pool/luns, it lost luns/1 and what was created in it.
        assert!(states.iter().any(|(_, v)| !v.contains_key(&p("/pool/luns"))
            && !v.keys().any(|k| k.starts_with("/pool/luns/"))));
    }
}
