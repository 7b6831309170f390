//! An open that finds a resync (a full copy, or a revert from a snapshot LUN) interrupted by a
//! crash returns before finishing it: the work runs in the background ([`Array::resumed`]), the
//! LUN kept as the live operation keeps it, the intent ended only once the work is done.
//!
//! The gate: every write from the background thread (`umbra-async`) waits until the test opens
//! it, so "open returned before the work was done" is shown, not timed.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use cow_engine::fs::{EntryKind, Fs, LockGuard};
use cow_engine::{BlockDevice, Result as EngineResult};
use umbra_test_support::crash_sim::{sync_cuts, DirReplayer, Event, Fate, Log, SimDir};
use vds_core::{Array, ArrayOptions, ErrorKind, InitiatorId, MaskSpec, ResumedKind};

const POOL: &str = "/pool";
const BS: u64 = 4096;
const BLOCKS: u64 = 24;
const HOST: &str = "iqn.2024-01.org.example:host";

fn host() -> InitiatorId {
    InitiatorId::parse(HOST).unwrap()
}

/// Block `b` of image `seed`.
fn block(seed: u8, b: u64) -> Vec<u8> {
    vec![seed.wrapping_add(b as u8) | 1; BS as usize]
}

/// A gate the background thread's writes wait at while it is closed.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Writes that waited.
    held: Mutex<u64>,
}

impl Gate {
    fn pass(&self) {
        if std::thread::current().name() != Some("umbra-async") {
            return;
        }
        let mut open = self.open.lock().unwrap();
        if !*open {
            *self.held.lock().unwrap() += 1;
        }
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// A device whose writes pass the gate first.
struct GatedDevice {
    inner: Arc<dyn BlockDevice>,
    gate: Arc<Gate>,
}

impl BlockDevice for GatedDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> EngineResult<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> EngineResult<()> {
        self.gate.pass();
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> EngineResult<()> {
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn allocated(&self, offset: u64, len: u64) -> EngineResult<Vec<std::ops::Range<u64>>> {
        self.inner.allocated(offset, len)
    }
    fn as_resize(&self) -> Option<&dyn cow_engine::Resize> {
        self.inner.as_resize()
    }
    fn as_discard(&self) -> Option<&dyn cow_engine::Discard> {
        self.inner.as_discard()
    }
}

/// A file system whose files' writes pass the gate.
#[derive(Debug)]
struct GatedFs {
    inner: Arc<dyn Fs>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl GatedFs {
    fn gated(&self, d: Arc<dyn BlockDevice>) -> Arc<dyn BlockDevice> {
        Arc::new(GatedDevice {
            inner: d,
            gate: self.gate.clone(),
        })
    }
}

impl Fs for GatedFs {
    fn create_file(&self, path: &Path, len: u64) -> EngineResult<Arc<dyn BlockDevice>> {
        Ok(self.gated(self.inner.create_file(path, len)?))
    }
    fn open_file(&self, path: &Path) -> EngineResult<Arc<dyn BlockDevice>> {
        Ok(self.gated(self.inner.open_file(path)?))
    }
    fn open_read_only(&self, path: &Path) -> EngineResult<Arc<dyn BlockDevice>> {
        self.inner.open_read_only(path)
    }
    fn read_file(&self, path: &Path) -> EngineResult<Vec<u8>> {
        self.inner.read_file(path)
    }
    fn write_file(&self, path: &Path, data: &[u8]) -> EngineResult<()> {
        self.gate.pass();
        self.inner.write_file(path, data)
    }
    fn rename(&self, from: &Path, to: &Path) -> EngineResult<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> EngineResult<()> {
        self.inner.remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> EngineResult<()> {
        self.inner.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> EngineResult<()> {
        self.inner.remove_dir(path)
    }
    fn list_dir(&self, path: &Path) -> EngineResult<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn kind(&self, path: &Path) -> EngineResult<Option<EntryKind>> {
        self.inner.kind(path)
    }
    fn sync_dir(&self, path: &Path) -> EngineResult<()> {
        self.inner.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> EngineResult<LockGuard> {
        self.inner.lock(path)
    }
}

/// Which resync the crash interrupts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    /// LUN `src` (image 10) copied onto LUN `dst` (image 200): a full copy.
    Copy,
    /// LUN `dst` (image 10, snapshotted as `dst-snap`, then overwritten with image 200) resynced
    /// from `dst-snap`: a revert.
    Revert,
}

/// The pool of `case` on a recorded simulated directory, the resync run to its end: the events.
fn recorded(case: Case) -> Vec<Event> {
    let log = Log::new();
    let sim = SimDir::new(&log);
    let a = Array::open_in(Arc::new(sim), POOL, ArrayOptions::default()).unwrap();
    let mask = MaskSpec::parse(HOST).unwrap();
    let size = BLOCKS * BS;
    let source = match case {
        Case::Copy => {
            a.create_lun("src", size, &mask).unwrap();
            a.create_lun("dst", size, &mask).unwrap();
            for b in 0..BLOCKS {
                a.write_at("src", &host(), &block(10, b), b * BS).unwrap();
                a.write_at("dst", &host(), &block(200, b), b * BS).unwrap();
            }
            flush(&a, "src");
            "src"
        }
        Case::Revert => {
            a.create_lun("dst", size, &mask).unwrap();
            for b in 0..BLOCKS {
                a.write_at("dst", &host(), &block(10, b), b * BS).unwrap();
            }
            flush(&a, "dst");
            a.snapshot_lun("dst", "dst-snap").unwrap();
            for b in 0..BLOCKS {
                a.write_at("dst", &host(), &block(200, b), b * BS).unwrap();
            }
            "dst-snap"
        }
    };
    flush(&a, "dst");
    a.resync_lun(source, "dst").wait().unwrap();
    drop(a);
    log.events()
}

/// Makes LUN `name`'s writes durable (through a handle of [`HOST`]).
fn flush(a: &Array, name: &str) {
    let number = a.access(name, &host()).unwrap().unwrap().number;
    a.open_lun(&host(), number).unwrap().flush().unwrap();
}

/// LUN `dst` holds image 10 (what the resync makes it).
fn check_resynced(a: &Array, when: &str) {
    let mut buf = vec![0u8; BS as usize];
    for b in 0..BLOCKS {
        a.admin_read_at("dst", &mut buf, b * BS).unwrap();
        assert!(
            buf == block(10, b),
            "{when}: block {b} of dst is not the source's"
        );
    }
}

/// The fate of event `i` of a log whose first `cut` events were cut by a first crash and whose
/// rest was issued by the pool reopened on what it left (kept, all of it): those of the first
/// session are on the medium for good, the rest meet `fate`.
fn after_first(i: usize, cut: usize, fate: Fate) -> Fate {
    if i < cut {
        Fate::Kept
    } else {
        fate
    }
}

fn resumes_in_the_background(case: Case) {
    let events = recorded(case);
    let mut r = DirReplayer::new(&events);
    // The first crash point at which an open finds the resync to finish (its intent durable).
    let mut found = None;
    for cut in sync_cuts(&events) {
        r.advance(cut);
        // Before the pool's first files are durable it does not open: nothing to resume.
        let Ok(a) =
            Array::open_existing_in(Arc::new(r.build(|_| Fate::Kept, &Log::discarding())), POOL)
        else {
            continue;
        };
        let pending = !a.resumed().is_empty();
        a.wait_resumed().unwrap();
        if pending {
            check_resynced(&a, &format!("crash at {cut}, resumed"));
            found = Some(cut);
            break;
        }
    }
    let cut = found.expect("some crash point leaves the resync's intent pending");

    // The open with the gate closed returns, the work not done.
    r.advance(cut);
    let log = Log::new();
    let gate = Arc::new(Gate::default());
    let fs = GatedFs {
        inner: Arc::new(r.build(|_| Fate::Kept, &log)),
        gate: gate.clone(),
    };
    let a = Array::open_existing_in(Arc::new(fs), POOL).unwrap();
    let resumed = a.resumed();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    let dst = a.lun("dst").unwrap().id;
    assert_eq!(resumed[0].lun, dst);
    let kind = match case {
        Case::Copy => ResumedKind::Copy,
        Case::Revert => ResumedKind::Revert,
    };
    assert_eq!(resumed[0].kind, kind);
    assert!(!resumed[0].handle.is_done(), "open waited for the work");
    // The LUN is as during the live operation: another long operation is refused, and its host
    // I/O too (a revert's or a resync copy's target: a write could be overwritten).
    let again = a
        .resync_lun(
            if case == Case::Copy {
                "src"
            } else {
                "dst-snap"
            },
            "dst",
        )
        .wait()
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Busy, "{again}");
    let mut buf = vec![0u8; BS as usize];
    let io = a.read_at("dst", &host(), &mut buf, 0);
    assert_eq!(io.unwrap_err().kind(), ErrorKind::Busy);
    // The intent is still pending on disk: a crash now resumes it again.
    {
        let mut all = events[..cut].to_vec();
        all.extend(log.events());
        let mut again = DirReplayer::new(&all);
        again.advance(all.len());
        // What the first crash left is on disk for good (session 2 opened it): only what
        // session 2 has not synced is lost.
        let b = Array::open_existing_in(
            Arc::new(again.build(|i| after_first(i, cut, Fate::Lost), &Log::discarding())),
            POOL,
        )
        .unwrap();
        assert_eq!(
            b.resumed().len(),
            1,
            "the intent ended before the work was done"
        );
        b.wait_resumed().unwrap();
        check_resynced(&b, "a crash while the resumed work was held, resumed again");
    }
    assert!(!resumed[0].handle.is_done());
    gate.open();
    resumed[0]
        .handle
        .wait_with(None, |r| r.as_ref().map(|_| ()).map_err(|e| e.report()))
        .unwrap()
        .unwrap();
    a.wait_resumed().unwrap();
    assert!(a.resumed().is_empty());
    assert!(
        *gate.held.lock().unwrap() > 0,
        "the background work was held at the gate"
    );
    check_resynced(&a, "resumed in the background");
    a.read_at("dst", &host(), &mut buf, 0).unwrap();
    assert_eq!(buf, block(10, 0));
    drop(resumed);
    drop(a);

    // A crash at every sync point of the resumed work (a pool whose resync a crash cut, reopened,
    // its resync finished in the background): each reopened pool finishes it again.
    let mut all = events[..cut].to_vec();
    all.extend(log.events());
    let mut states = 0;
    let mut replay = DirReplayer::new(&all);
    for c in sync_cuts(&all).into_iter().filter(|&c| c >= cut) {
        replay.advance(c);
        for fate in [Fate::Kept, Fate::Lost] {
            let b = Array::open_existing_in(
                Arc::new(replay.build(|i| after_first(i, cut, fate), &Log::discarding())),
                POOL,
            )
            .unwrap_or_else(|e| panic!("crash at {c} ({fate:?}): {}", e.report()));
            b.wait_resumed()
                .unwrap_or_else(|e| panic!("crash at {c} ({fate:?}): {}", e.report()));
            check_resynced(&b, &format!("crash at {c} ({fate:?}) of the resumed work"));
            states += 1;
        }
    }
    assert!(
        states >= 10,
        "only {states} crash states of the resumed work"
    );
}

#[test]
fn an_open_returns_before_a_resumed_full_copy_is_done() {
    resumes_in_the_background(Case::Copy);
}

#[test]
fn an_open_returns_before_a_resumed_revert_is_done() {
    resumes_in_the_background(Case::Revert);
}
