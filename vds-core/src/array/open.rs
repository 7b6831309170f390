//! Opening an array, and the recovery that runs when a pool opens: the checkpoint loaded, the log
//! replayed onto it, an older format upgraded, every LUN's volume opened (sources before their
//! snapshot LUNs; a LUN whose volume does not open is isolated, not fatal), the operations that
//! intent records name finished or rolled back (a revert or a full copy in the background:
//! [`Array::resumed`]), and what a crash left behind recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::fs::{EntryKind, Fs, StdFs};
use cow_engine::{Progress, Volume};
use parking_lot::{Mutex, RwLock};

use super::long_ops::copy_all;
use super::state::{ArrayState, Change, Intent};
use super::store::PoolStore;
use super::volumes::{
    delete_tagged, ensure_dir, failed_volume, remove_lun_dir, tagged_lun, unpin_and_delete,
    LUNS_DIR,
};
use super::{Array, ArrayOptions, AsyncHandle, Backing, Core, Inner, DEFAULT_BLOCK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::LunId;
use crate::model::Notification;

/// An operation that an open resumed in the background (see [`Array::resumed`]).
pub(super) struct Resumed {
    lun: LunId,
    intent: Intent,
    handle: Arc<AsyncHandle<()>>,
}

/// What an interrupted operation resumed in the background does ([`ResumedOp::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumedKind {
    /// A revert of the LUN to an engine snapshot of its volume: a resync from a snapshot LUN of
    /// it, or a revert to an engine shadow. Host I/O is refused with [`ErrorKind::Busy`] until it
    /// ends.
    Revert,
    /// A full copy of another LUN's contents onto the LUN (a resync); its I/O is served.
    Copy,
}

/// An operation that [`Array::open`] found interrupted by a crash and finishes in the
/// background ([`Array::resumed`]).
#[derive(Debug, Clone)]
pub struct ResumedOp {
    /// The LUN it finishes (its id: [`crate::model::LunInfo::id`]).
    pub lun: LunId,
    /// What it does.
    pub kind: ResumedKind,
    /// Its progress and result; dropping it does not stop the operation.
    pub handle: Arc<AsyncHandle<()>>,
}

/// What opening the LUNs' volumes found.
struct Opened {
    volumes: HashMap<LunId, Backing>,
    /// Snapshot LUNs whose split completed before the crash: to record as detached.
    detached: Vec<LunId>,
    /// LUNs whose volume did not open, with why.
    damaged: BTreeMap<LunId, String>,
    /// LUNs whose volume is larger than their record (an extend that grew it and did not
    /// commit): the record takes the volume's size.
    grown: Vec<(LunId, u64)>,
}

impl Array {
    /// An array held in memory (nothing persists).
    pub fn in_memory() -> Array {
        Array::in_memory_with(ArrayOptions::default()).expect("the default options are valid")
    }

    /// An array held in memory with these options.
    pub fn in_memory_with(options: ArrayOptions) -> Result<Array> {
        options.validate()?;
        Ok(Array::assemble(
            None,
            StdFs::shared(),
            ArrayState::new(options.block_size),
            None,
            HashMap::new(),
            BTreeMap::new(),
        ))
    }

    /// Opens the pool directory `dir`, creating it (and an empty array) if it is missing or
    /// empty. A directory that holds other files but no pool is refused with
    /// [`ErrorKind::NotAPool`], and nothing is written to it. One process owns a pool at a time:
    /// a second opener gets [`ErrorKind::Busy`] ("pool in use (pid N)").
    ///
    /// An open after a crash finishes or rolls back what the crash interrupted before it returns,
    /// except a resync's revert or full copy and a revert to an engine shadow, whose work is as
    /// long as the LUN is large: those are finished in the background, after the open has
    /// returned, the LUN kept meanwhile as the live operation keeps it (busy; for a revert its
    /// host I/O refused with [`ErrorKind::Busy`]); their intent ends only once the work is done,
    /// so a crash meanwhile is resumed again by the next open. [`Array::resumed`] lists them and
    /// [`Array::wait_resumed`] waits for them; one that fails isolates its LUN as damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Array> {
        Array::open_with(dir, ArrayOptions::default())
    }

    /// Opens the pool directory `dir` like [`Array::open`]; `options` apply when the pool is new
    /// (an existing pool keeps its own; asking it for another block size is an error).
    pub fn open_with(dir: impl AsRef<Path>, options: ArrayOptions) -> Result<Array> {
        Array::open_pool(StdFs::shared(), dir.as_ref(), options, true)
    }

    /// Opens the pool directory `dir` of the file system `fs` like [`Array::open_with`]: every
    /// file operation of the pool (its log, checkpoint and lock, its LUN directories and their
    /// volumes, orphans, splits) goes through `fs`. [`StdFs`] is the real file system, what
    /// [`Array::open`] uses; a crash test passes a simulated one (the test-support crate's
    /// `SimDir`) and reopens the pool on the images a power loss could leave. Import and export
    /// name their image files on `fs` too.
    pub fn open_in(fs: Arc<dyn Fs>, dir: impl AsRef<Path>, options: ArrayOptions) -> Result<Array> {
        Array::open_pool(fs, dir.as_ref(), options, true)
    }

    /// [`Array::open_existing`] on the file system `fs` (see [`Array::open_in`]).
    pub fn open_existing_in(fs: Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<Array> {
        Array::open_pool(fs, dir.as_ref(), ArrayOptions::default(), false)
    }

    /// Opens the existing pool in `dir`, never creating one (for tools that inspect or repair):
    /// a missing directory is [`ErrorKind::NotFound`], an empty one or one that holds no pool
    /// [`ErrorKind::NotAPool`].
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Array> {
        Array::open_pool(
            StdFs::shared(),
            dir.as_ref(),
            ArrayOptions::default(),
            false,
        )
    }

    /// Opens (with `create`, possibly creating) the pool in `dir`. A pool this call created and
    /// could not finish is removed again: a failed create leaves nothing behind.
    fn open_pool(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: ArrayOptions,
        create: bool,
    ) -> Result<Array> {
        options.validate()?;
        let (store, loaded) = PoolStore::open(fs.clone(), dir, create)?;
        let created = loaded.created;
        let made_dir = loaded.made_dir;
        match Array::recover(fs.clone(), dir, options, store, loaded) {
            Ok(a) => Ok(a),
            Err(e) => {
                if created {
                    remove_new_pool(fs.as_ref(), dir, made_dir);
                }
                Err(e)
            }
        }
    }

    /// The array over what `store` read from `dir`, recovered.
    fn recover(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: ArrayOptions,
        mut store: PoolStore,
        loaded: super::store::Loaded,
    ) -> Result<Array> {
        let mut state = match &loaded.checkpoint {
            Some(st) => ArrayState::from_checkpoint(st).map_err(|e| e.with_path(dir))?,
            None if loaded.changes.is_empty() => {
                // A new pool: its block size is recorded at once.
                let fresh = ArrayState::new(options.block_size);
                store.checkpoint(&fresh.to_checkpoint(store.seq()))?;
                fresh
            }
            None => ArrayState::new(DEFAULT_BLOCK_SIZE),
        };
        if options.block_size != DEFAULT_BLOCK_SIZE && options.block_size != state.block_size {
            return Err(Error::invalid(format!(
                "the pool's LUN block size is {}, not {}",
                state.block_size, options.block_size
            ))
            .with_path(dir));
        }
        for c in &loaded.changes {
            state.apply(c).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("pool log does not replay: {}", e.message()),
                )
                .with_path(dir)
            })?;
        }
        if store.needs_upgrade() {
            // Everything is replayed: it becomes a checkpoint of this build's format, beside an
            // empty log of this build's version.
            store.upgrade(&state.to_checkpoint(store.seq()))?;
        }
        let luns_dir = dir.join(LUNS_DIR);
        ensure_dir(fs.as_ref(), &luns_dir)?;
        let opened = Array::open_volumes(&fs, &luns_dir, &loaded.lun_entries, &state)?;
        let array = Array::assemble(
            Some(dir.to_path_buf()),
            fs,
            state,
            Some(store),
            opened.volumes,
            opened.damaged,
        );
        // No one has subscribed yet: nothing below is announced.
        for (id, size) in opened.grown {
            array.simple(Change::Extend { id, size })?;
        }
        array.finish_intents()?;
        for id in opened.detached {
            // A clone rolled back above is gone.
            if array.inner.core.read().state.luns.contains_key(&id) {
                array.simple(Change::Detach { id })?;
            }
        }
        Ok(array)
    }

    /// Finishes or rolls back every operation an intent record names (an open after a crash):
    /// a create that did not commit is rolled back (its directory and snapshot removed), a
    /// delete's clean-up is done, an extend is rolled back (the volume kept its size) or adopted
    /// (the volume was grown), an import or clone not filled is deleted; each is then recorded as
    /// done. A revert or full copy is started in the background instead ([`Array::resume`]),
    /// its LUN marked busy (and, for a revert, its host I/O refused) before anyone can see the
    /// array; a LUN already damaged keeps its intent for the next open.
    fn finish_intents(&self) -> Result<()> {
        let mut core = self.inner.core.write();
        let intents: Vec<Intent> = core.state.intents.values().copied().collect();
        let mut resumes = Vec::new();
        for intent in intents {
            match intent {
                Intent::CreateLun { id, source } => {
                    if let Some(src) = source.and_then(|s| core.volumes.get(&s)) {
                        delete_tagged(&src.read(), id)?;
                    }
                    if let Some(dir) = self.lun_dir(id) {
                        remove_lun_dir(&dir)?;
                    }
                }
                Intent::RemoveLun { id, source } => {
                    if let Some(src) = source {
                        if let Some(v) = core.volumes.get(&src.lun) {
                            unpin_and_delete(&v.read(), src.snapshot)?;
                        }
                    }
                    if let Some(dir) = self.lun_dir(id) {
                        remove_lun_dir(&dir)?;
                    }
                }
                Intent::EngineShadow { id, set } => {
                    if let Some(v) = core.volumes.get(&id) {
                        super::shadows::delete_shadows_of_set(&v.read(), set)?;
                    }
                }
                Intent::Extend { .. } => {
                    // The volume's size was adopted already if it had grown (`Opened::grown`),
                    // which ended the intent: here it had not.
                }
                Intent::Fill { id, source } => {
                    if core.state.luns.contains_key(&id) {
                        // Its record committed but it was never filled: deleted, as
                        // `delete_lun` does (which ends the intent).
                        let (cleaned, _) =
                            self.delete_luns_in(&mut core, &[id], Change::DeleteLun { id })?;
                        cleaned?;
                        continue;
                    }
                    if let Some(src) = source.and_then(|s| core.volumes.get(&s)) {
                        delete_tagged(&src.read(), id)?;
                    }
                    if let Some(dir) = self.lun_dir(id) {
                        remove_lun_dir(&dir)?;
                    }
                }
                Intent::Revert { id, .. } | Intent::Copy { id, .. } => {
                    if !core.state.luns.contains_key(&id) || !core.volumes.contains_key(&id) {
                        // The LUN is gone: nothing is left to finish.
                    } else if core.damaged.contains_key(&id) {
                        // Its volume did not open: the intent is kept for the next open.
                        continue;
                    } else {
                        // Finished in the background, the LUN in the state the live operation
                        // keeps it in (see `resume`): busy, its host I/O refused (a revert, or a
                        // resync's copy, `Array::set_restoring`).
                        core.busy.insert(id);
                        core.start_restoring(id);
                        resumes.push(intent);
                        continue;
                    }
                }
            }
            Array::commit(&mut core, &Change::Done { id: intent.lun() })?;
        }
        drop(core);
        let handles: Vec<Resumed> = resumes
            .into_iter()
            .map(|intent| {
                let a = self.clone();
                Resumed {
                    lun: intent.lun(),
                    intent,
                    handle: Arc::new(AsyncHandle::spawn(move |p| a.resume(intent, p))),
                }
            })
            .collect();
        *self.inner.resumed.lock() = handles;
        Ok(())
    }

    /// Finishes, on a background thread, the revert or copy that intent `intent` names (an open
    /// after a crash interrupted it): the work of the live operation run again (a revert resumes
    /// from the engine's durable cursor; a full copy starts again), the LUN kept meanwhile as the
    /// live operation keeps it: marked busy (another long operation on it is refused with
    /// [`ErrorKind::Busy`]), and its host I/O refused with [`ErrorKind::Busy`]
    /// (fenced when it is served again), as during a live revert or resync. The
    /// intent is ended ([`Change::Done`]) only once the work is done and durable. If the work
    /// fails (or is cancelled), the LUN is isolated as damaged (its I/O refused with
    /// [`ErrorKind::Corrupt`] naming why, fenced) and the intent kept, for the next open to try
    /// again; the error is the handle's result.
    fn resume(&self, intent: Intent, progress: &Progress) -> Result<()> {
        let id = intent.lun();
        let (vol, src, size, bs) = {
            let core = self.inner.core.read();
            let src = match intent {
                Intent::Copy { source, .. } => core.volumes.get(&source).cloned(),
                _ => None,
            };
            (
                core.volumes.get(&id).map(|v| v.read().clone()),
                src,
                core.state.lun(id).map_or(0, |l| l.size),
                core.state.block_size,
            )
        };
        let work = match (vol, intent) {
            // Deleted meanwhile: nothing is left to finish.
            (None, _) => Ok(()),
            (Some(v), Intent::Revert { snapshot, .. }) => match v.revert(snapshot, progress) {
                // The snapshot is gone: nothing is left to revert to.
                Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => Ok(()),
                r => r.map_err(Error::from),
            },
            (Some(v), _) => match &src {
                Some(s) => copy_all(&s.read().clone(), &v, size, bs, progress),
                None => Ok(()),
            },
        };
        let failed = work.as_ref().err().map(Error::report);
        self.transact(|core| {
            core.busy.remove(&id);
            if core.reverting.remove(&id) {
                core.unfenced.lun(id);
            }
            let Ok(rec) = core.state.lun(id) else {
                return Ok(((), Vec::new()));
            };
            let name = rec.name.clone();
            let mut notes = vec![Notification::LunModify { name: name.clone() }];
            match &failed {
                None => notes.extend(Array::commit(core, &Change::Done { id })?),
                Some(why) => {
                    let why = format!(
                        "LUN {name:?} (luns/{id}): an operation a crash interrupted does not \
                         finish: {why}"
                    );
                    let failed = failed_volume(rec.size, core.state.block_size, &why)?;
                    if let Some(b) = core.volumes.get(&id) {
                        *b.write() = failed;
                    }
                    core.damaged.insert(id, why);
                    core.unfenced.lun(id);
                }
            }
            Ok(((), notes))
        })?;
        work
    }

    /// The operations that this open found interrupted by a crash and finishes in the background
    /// (a resync's revert or full copy, a revert to an engine shadow; see [`Array::open`]), in
    /// the order of their LUNs' ids; empty once [`Array::wait_resumed`] has returned, and for an
    /// array in memory. Each handle reports progress, can be waited on (many times:
    /// [`AsyncHandle::wait_with`]) and cancelled (the LUN is then isolated as damaged, the intent
    /// kept for the next open).
    pub fn resumed(&self) -> Vec<ResumedOp> {
        self.inner
            .resumed
            .lock()
            .iter()
            .map(|r| ResumedOp {
                lun: r.lun,
                kind: match r.intent {
                    Intent::Revert { .. } => ResumedKind::Revert,
                    _ => ResumedKind::Copy,
                },
                handle: r.handle.clone(),
            })
            .collect()
    }

    /// Waits until every operation the open resumed ([`Array::resumed`]) has finished; the first
    /// failure, if any (its LUN is isolated as damaged), after waiting for all.
    pub fn wait_resumed(&self) -> Result<()> {
        let all = std::mem::take(&mut *self.inner.resumed.lock());
        let mut first = Ok(());
        for r in all {
            let out = r
                .handle
                .wait_with(None, |res| match res {
                    Ok(()) => Ok(()),
                    Err(e) => Err(Error::new(e.kind(), e.report())),
                })
                .expect("waiting without a deadline returns the result");
            if first.is_ok() {
                first = out;
            }
        }
        first
    }

    /// An array over `state`, its store and its LUNs' volumes.
    fn assemble(
        dir: Option<PathBuf>,
        fs: Arc<dyn Fs>,
        state: ArrayState,
        store: Option<PoolStore>,
        volumes: HashMap<LunId, Backing>,
        damaged: BTreeMap<LunId, String>,
    ) -> Array {
        Array {
            inner: Arc::new(Inner {
                dir,
                fs,
                core: RwLock::new(Core {
                    state,
                    store,
                    volumes,
                    busy: BTreeSet::new(),
                    damaged,
                    unfenced: Default::default(),
                    reverting: BTreeSet::new(),
                    restores: HashMap::new(),
                }),
                fences: Default::default(),
                resumed: Mutex::new(Vec::new()),
                subscribers: Mutex::new(Vec::new()),
                next_subscription: std::sync::atomic::AtomicU64::new(1),
                hub: cow_engine::events::Hub::default(),
            }),
        }
    }

    /// Opens every LUN's volume (sources before their snapshots), and clears what a crash left
    /// behind: an entry of `luns/` that neither the metadata nor an intent record names is never
    /// deleted (it may be data whose record was lost) but moved to `<pool>/orphans/`
    /// ([`Array::orphans`]); cow-engine snapshots tagged for LUNs the metadata does not have are
    /// deleted. A LUN whose volume does not open (or is smaller than its record) is isolated: it
    /// gets a volume whose every read and write fails with [`ErrorKind::Corrupt`] naming why.
    /// `entries` are the names in `luns/`, as the pool store's open listed them.
    fn open_volumes(
        fs: &Arc<dyn Fs>,
        luns_dir: &Path,
        entries: &[String],
        state: &ArrayState,
    ) -> Result<Opened> {
        let mut volumes: HashMap<LunId, Backing> = HashMap::new();
        let unknown: Vec<&String> = entries
            .iter()
            .filter(|n| {
                !n.parse::<LunId>()
                    .is_ok_and(|id| state.luns.contains_key(&id) || state.intents.contains_key(&id))
            })
            .collect();
        // Changes are made one at a time, so a crash leaves at most one LUN volume the metadata
        // does not name (a create that did not commit, a delete that did not finish, in a pool
        // written before intent records). More means the metadata lost changes that had been
        // acknowledged: damage, reported before anything is moved.
        let lun_like = unknown
            .iter()
            .filter(|n| {
                n.parse::<LunId>().is_ok()
                    && matches!(fs.kind(&luns_dir.join(n)), Ok(Some(EntryKind::Dir)))
            })
            .count();
        if lun_like > 1 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "{lun_like} LUN volumes in luns/ are not in the pool's metadata (a crash \
                     leaves at most one): pool.state or pool.log lost acknowledged changes"
                ),
            )
            .with_path(luns_dir));
        }
        for name in unknown {
            move_to_orphans(fs.as_ref(), luns_dir, name)?;
        }
        // The LUNs whose volumes are kept in orphans/ keep the snapshots they stand on.
        let orphaned: BTreeSet<LunId> = fs
            .list_dir(&luns_dir.parent().unwrap_or(luns_dir).join(ORPHANS_DIR))
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.split('.').next()?.parse::<LunId>().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut detached = Vec::new();
        let mut damaged = BTreeMap::new();
        let mut grown = Vec::new();
        for (id, rec) in &state.luns {
            let dir = luns_dir.join(id.to_string());
            let opened: Result<Volume> = match rec.source {
                None => Volume::open_in(fs, &dir).map_err(Error::from),
                Some(src) if damaged.contains_key(&src.lun) => Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("its source LUN (id {}) is damaged", src.lun),
                )),
                Some(src) => match volumes.get(&src.lun) {
                    None => Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("source of LUN {} missing", rec.name),
                    )),
                    Some(source) => {
                        let snap = source.read().snapshot(src.snapshot);
                        match snap {
                            Ok(snap) => Volume::open_stacked_in(fs, &dir, Arc::new(snap))
                                .map_err(Error::from),
                            // A split deletes the source snapshot only after its copy is
                            // complete and durable: the LUN stands on its own origin; record the
                            // detach now.
                            Err(e)
                                if e.kind() == cow_engine::ErrorKind::NotFound
                                    && Volume::stands_alone_in(fs.as_ref(), &dir) =>
                            {
                                detached.push(*id);
                                Volume::open_in(fs, &dir).map_err(Error::from)
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                },
            };
            let checked = opened.and_then(|vol| {
                if vol.len() < rec.size {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "its volume holds {} bytes, the LUN {} (its size was not made durable)",
                            vol.len(),
                            rec.size
                        ),
                    ));
                }
                if vol.len() > rec.size {
                    grown.push((*id, vol.len()));
                }
                Ok(vol)
            });
            let vol = match checked {
                Ok(v) => v,
                // Another process holds the volume: not damage, and not this LUN's alone.
                Err(e) if e.kind() == ErrorKind::Busy => return Err(e),
                Err(e) => {
                    let why = format!("LUN {:?} (luns/{id}) is damaged: {e}", rec.name);
                    let vol = failed_volume(rec.size, state.block_size, &why)?;
                    damaged.insert(*id, why);
                    vol
                }
            };
            volumes.insert(*id, Arc::new(RwLock::new(vol)));
        }
        // Cow-engine snapshots tagged for LUNs that do not exist: a create that did not commit, or a
        // delete that did not finish; except those of a LUN whose volume is kept in orphans/ (its
        // data would be useless without them).
        for vol in volumes.values() {
            let vol = vol.read();
            for s in vol.snapshots() {
                if let Some(owner) = tagged_lun(&s.metadata) {
                    let live = state
                        .luns
                        .get(&owner)
                        .and_then(|l| l.source)
                        .is_some_and(|src| src.snapshot == s.id);
                    if !live && !orphaned.contains(&owner) {
                        unpin_and_delete(&vol, s.id)?;
                    }
                }
            }
        }
        Ok(Opened {
            volumes,
            detached,
            damaged,
            grown,
        })
    }
}

/// Removes the files of a pool this open created and could not finish, and the directory if the
/// open made it: a failed create leaves nothing behind. Best effort (the create failed already).
fn remove_new_pool(fs: &dyn Fs, dir: &Path, made_dir: bool) {
    for f in super::store::NEW_POOL_FILES {
        let p = dir.join(f);
        let _ = match fs.kind(&p) {
            Ok(Some(EntryKind::Dir)) => fs.remove_dir(&p),
            _ => fs.remove_file(&p),
        };
    }
    if made_dir {
        let _ = fs.remove_dir(dir);
    }
}

/// The pool directory's folder of what open found in `luns/` and could not account for.
pub(super) const ORPHANS_DIR: &str = "orphans";

/// Moves `luns/<name>` to `<pool>/orphans/<name>` (with a numeric suffix if that is taken); both
/// directories are synced before this returns, so the move is durable before the open goes on.
fn move_to_orphans(fs: &dyn Fs, luns_dir: &Path, name: &str) -> Result<()> {
    let pool = luns_dir.parent().unwrap_or(luns_dir);
    let orphans = pool.join(ORPHANS_DIR);
    ensure_dir(fs, &orphans)?;
    let mut dest = orphans.join(name);
    let mut n = 1;
    while fs.kind(&dest)?.is_some() {
        dest = orphans.join(format!("{name}.{n}"));
        n += 1;
    }
    let from = luns_dir.join(name);
    fs.rename(&from, &dest).map_err(|e| {
        Error::from(e).context("cannot move an unknown LUN volume to orphans", &from)
    })?;
    fs.sync_dir(&orphans)?;
    fs.sync_dir(luns_dir)?;
    fs.sync_dir(pool)?;
    Ok(())
}
