//! Writers and volumes the coordinator tests share: a Rust writer that records every event it
//! gets and can be told to fail, hang or panic at one event (once), exec writers logging to a
//! file, and software-provider volumes in memory or in files.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cow_engine::{Volume, VolumeConfig};
use parking_lot::{Condvar, Mutex};
use vss_core::document::Component;
use vss_core::{
    BackupSession, BackupType, Context, Coordinator, EventContext, FailureKind, Provider,
    SoftwareProvider, Timeouts, Writer, WriterEvent, WriterFailure, WriterMetadata,
};

/// What a [`Recorder`] does at its armed event (once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers a failure of this kind.
    Fail(FailureKind),
    /// Blocks until [`Recorder::release`].
    Hang,
    /// Panics.
    Panic,
}

#[derive(Default)]
struct Log {
    events: Vec<WriterEvent>,
    frozen: bool,
    released: bool,
}

/// A Rust writer recording each event it gets, in order.
pub struct Recorder {
    name: String,
    components: Vec<Component>,
    log: Mutex<Log>,
    changed: Condvar,
    fault: Mutex<Option<(WriterEvent, Fault)>>,
    armed: AtomicBool,
}

impl Recorder {
    /// A writer with one component covering every LUN of the set.
    pub fn new(name: &str) -> Arc<Recorder> {
        Recorder::with_components(name, vec![Component::new("", name, Vec::<String>::new())])
    }

    /// A writer with these components.
    pub fn with_components(name: &str, components: Vec<Component>) -> Arc<Recorder> {
        Arc::new(Recorder {
            name: name.into(),
            components,
            log: Mutex::new(Log::default()),
            changed: Condvar::new(),
            fault: Mutex::new(None),
            armed: AtomicBool::new(false),
        })
    }

    /// Arms `fault` at `event`, once.
    pub fn arm(&self, event: WriterEvent, fault: Fault) {
        if fault == Fault::Panic {
            quiet_planned_panics();
        }
        *self.fault.lock() = Some((event, fault));
        // SeqCst not needed: the fault's mutex orders it; Relaxed is enough for a flag read
        // after taking that mutex.
        self.armed.store(true, Ordering::Relaxed);
    }

    /// Lets a hung event return.
    pub fn release(&self) {
        self.log.lock().released = true;
        self.changed.notify_all();
    }

    /// The events seen so far, in order.
    pub fn events(&self) -> Vec<WriterEvent> {
        self.log.lock().events.clone()
    }

    /// Forgets the events seen so far.
    pub fn clear(&self) {
        self.log.lock().events.clear();
    }

    /// True between a freeze and its thaw or abort.
    pub fn is_frozen(&self) -> bool {
        self.log.lock().frozen
    }

    /// Waits (at most 10 s) until `n` events were seen.
    pub fn wait_events(&self, n: usize) -> Vec<WriterEvent> {
        let mut log = self.log.lock();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while log.events.len() < n {
            if self.changed.wait_until(&mut log, until).timed_out() {
                break;
            }
        }
        log.events.clone()
    }

    fn on(&self, event: WriterEvent) -> Result<(), WriterFailure> {
        {
            let mut log = self.log.lock();
            log.events.push(event);
            match event {
                WriterEvent::Freeze => log.frozen = true,
                WriterEvent::Thaw | WriterEvent::Abort => log.frozen = false,
                _ => {}
            }
        }
        self.changed.notify_all();
        let fault = {
            let mut f = self.fault.lock();
            match *f {
                Some((e, fault)) if e == event && self.armed.swap(false, Ordering::Relaxed) => {
                    *f = None;
                    Some(fault)
                }
                _ => None,
            }
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(kind)) => Err(WriterFailure::new(
                kind,
                format!("{} fails {event} on purpose", self.name),
            )),
            Some(Fault::Panic) => panic!("{} panics at {event} on purpose", self.name),
            Some(Fault::Hang) => {
                let mut log = self.log.lock();
                while !log.released {
                    self.changed.wait(&mut log);
                }
                Ok(())
            }
        }
    }
}

impl Writer for Recorder {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        self.on(WriterEvent::Identify)?;
        let mut m = WriterMetadata::new(self.name.clone());
        m.components = self.components.clone();
        Ok(m)
    }
    fn prepare_backup(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::PrepareBackup)
    }
    fn prepare_snapshot(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::PrepareSnapshot)
    }
    fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::Freeze)
    }
    fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::Thaw)
    }
    fn post_snapshot(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::PostSnapshot)
    }
    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::Abort)
    }
    fn backup_complete(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::BackupComplete)
    }
    fn backup_shutdown(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::BackupShutdown)
    }
    fn pre_restore(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::PreRestore)
    }
    fn post_restore(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.on(WriterEvent::PostRestore)
    }
}

/// Keeps the panic hook from printing (and symbolising a backtrace of) the panics the tests
/// plan, which would make a panicking writer slower than its short deadline; every other panic
/// is printed as usual.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .unwrap_or("");
            if !text.ends_with("on purpose") {
                default(info);
            }
        }));
    });
}

/// The events of a whole successful backup, as each writer taking part sees them.
pub const BACKUP: [WriterEvent; 8] = [
    WriterEvent::Identify,
    WriterEvent::PrepareBackup,
    WriterEvent::PrepareSnapshot,
    WriterEvent::Freeze,
    WriterEvent::Thaw,
    WriterEvent::PostSnapshot,
    WriterEvent::BackupComplete,
    WriterEvent::BackupShutdown,
];

/// Short deadlines, so a hang costs a fraction of a second.
pub fn short() -> Timeouts {
    Timeouts {
        freeze_window: Duration::from_millis(400),
        hold_window: Duration::from_secs(5),
        event: Duration::from_millis(300),
    }
}

/// Memory volumes of 1 MiB named `names`.
pub fn mem_volumes(names: &[&str]) -> Vec<(String, Volume)> {
    names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                Volume::create_mem(1 << 20, VolumeConfig::default()).unwrap(),
            )
        })
        .collect()
}

/// File volumes of 1 MiB named `names` under `dir` (created, or opened if they exist).
pub fn file_volumes(dir: &Path, names: &[&str]) -> Vec<(String, Volume)> {
    names
        .iter()
        .map(|n| {
            let d = dir.join(n);
            let v = if d.exists() {
                Volume::open(&d).unwrap()
            } else {
                Volume::create(&d, 1 << 20, VolumeConfig::default()).unwrap()
            };
            (n.to_string(), v)
        })
        .collect()
}

/// A software provider over `vols`, and a coordinator over it with `timeouts`.
pub fn coordinator(
    vols: &[(String, Volume)],
    timeouts: Timeouts,
) -> (Arc<SoftwareProvider>, Coordinator) {
    let sw = Arc::new(SoftwareProvider::new(vols.iter().cloned()).unwrap());
    let p: Arc<dyn Provider> = sw.clone();
    (sw, Coordinator::with_timeouts([p], timeouts))
}

/// Writes `body` as a script in `dir` and returns the command running it.
pub fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    format!("sh {}", p.display())
}

/// The events an exec writer logged, one name per line.
pub fn logged(path: &Path) -> Vec<WriterEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// A backup session of `c` in `context`, gathered, with a set of `volumes` started and the
/// writers prepared: next, `do_snapshot_set`.
pub fn prepared(c: &Coordinator, context: Context, volumes: &[&str]) -> BackupSession {
    let mut b = c.backup(context, BackupType::Full);
    b.gather_writer_metadata().unwrap();
    b.start_set().unwrap();
    for v in volumes {
        b.add_volume(v).unwrap();
    }
    b.prepare_for_backup().unwrap();
    b
}

/// True if nothing holds the volume's writes: not frozen, and a write returns.
pub fn writable(v: &Volume) -> bool {
    !v.is_frozen() && v.write_at(&[7u8; 16], 4096).is_ok()
}

/// An application writing until frozen: its thread calls `write(n)` for n = 1, 2, ... and counts
/// each as acknowledged when it returns; freeze parks the thread after the write in flight is
/// acknowledged, thaw and abort let it go on.
pub struct App {
    /// The writer's name (its one component's LUN too).
    pub name: String,
    /// What it has done.
    pub state: Mutex<AppState>,
    /// Notified at every change of `state`.
    pub changed: Condvar,
}

#[derive(Default)]
pub struct AppState {
    paused: bool,
    parked: bool,
    stop: bool,
    /// The writes acknowledged so far.
    pub acked: u64,
    /// What was acknowledged when each freeze returned.
    pub at_freeze: Vec<u64>,
}

impl App {
    /// Starts the writing thread.
    pub fn start(
        name: &str,
        write: impl Fn(u64) + Send + 'static,
    ) -> (Arc<App>, std::thread::JoinHandle<()>) {
        let app = Arc::new(App {
            name: name.into(),
            state: Default::default(),
            changed: Default::default(),
        });
        let a = app.clone();
        let t = std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                {
                    let mut st = a.state.lock();
                    while st.paused && !st.stop {
                        st.parked = true;
                        a.changed.notify_all();
                        a.changed.wait(&mut st);
                    }
                    st.parked = false;
                    if st.stop {
                        return;
                    }
                }
                n += 1;
                write(n);
                a.state.lock().acked = n;
                a.changed.notify_all();
            }
        });
        (app, t)
    }

    /// Lets the thread go on.
    pub fn resume(&self) {
        self.state.lock().paused = false;
        self.changed.notify_all();
    }

    /// Ends the thread.
    pub fn stop(&self) {
        self.state.lock().stop = true;
        self.changed.notify_all();
    }
}

impl Writer for App {
    fn name(&self) -> &str {
        &self.name
    }
    fn identify(&self, _: &EventContext) -> Result<WriterMetadata, WriterFailure> {
        let mut m = WriterMetadata::new(self.name.clone());
        m.components
            .push(Component::new("", "data", [self.name.clone()]));
        Ok(m)
    }
    fn freeze(&self, _: &EventContext) -> Result<(), WriterFailure> {
        let mut st = self.state.lock();
        st.paused = true;
        while !st.parked {
            self.changed.wait(&mut st);
        }
        let acked = st.acked;
        st.at_freeze.push(acked);
        Ok(())
    }
    fn thaw(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.resume();
        Ok(())
    }
    fn abort(&self, _: &EventContext) -> Result<(), WriterFailure> {
        self.resume();
        Ok(())
    }
}
