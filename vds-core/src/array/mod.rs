//! The embedded array: a provider with one subsystem whose LUNs are `cow-engine` volumes, kept in a
//! pool directory (or in memory).
//!
//! Every administrative change is a transaction: validated, applied atomically, persisted (one log
//! append and fsync), then announced to subscribers. Changes are serialised by one lock; queries and
//! I/O run concurrently with each other. A hardware-style snapshot is a new LUN, a writable snapshot of
//! the source LUN's volume, masked to no one at birth; it can be snapshotted in turn and split from
//! its source. I/O names its initiator and is refused where the mask denies it.

mod async_op;
mod state;
mod store;

pub use async_op::AsyncHandle;
pub use state::{check_lun_name, TargetInfo};

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::{BlockDevice, FileDevice, Progress, SnapshotOptions, Volume, VolumeConfig};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{Access, Grant, LunHosts, LunId, MaskSpec};
use crate::model::{
    subsystem_flags, ControllerInfo, LunInfo, LunStatus, LunType, Notification, ObjectStatus,
    PortInfo, ProviderInfo, SubsystemInfo, TransitionState,
};
use state::{ArrayState, Change, SourceRef};
use store::PoolStore;

/// Metadata key prefix naming the LUN a cow-engine snapshot belongs to.
const SNAP_TAG: &str = "umbra-lun=";
const LUNS_DIR: &str = "luns";

type Subscriber = Arc<dyn Fn(&Notification) + Send + Sync>;

/// A LUN's backing volume; replaced (under the write lock) when a split gives it its own origin.
type Backing = Arc<RwLock<Volume>>;

struct Core {
    state: ArrayState,
    store: Option<PoolStore>,
    volumes: HashMap<LunId, Backing>,
    /// LUNs with a long operation running (split, resync): refused a second one.
    busy: BTreeSet<LunId>,
}

struct Inner {
    dir: Option<PathBuf>,
    core: RwLock<Core>,
    subscribers: Mutex<Vec<(u64, Subscriber)>>,
    next_subscription: std::sync::atomic::AtomicU64,
}

/// The embedded array. A cheap handle (`Clone` shares it); safe to use from many threads.
#[derive(Clone)]
pub struct Array {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Default LUN block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

/// Settings of a new array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayOptions {
    /// LUN block size (LUN sizes are multiples of it): a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
}

impl Default for ArrayOptions {
    fn default() -> Self {
        ArrayOptions {
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }
}

impl ArrayOptions {
    fn validate(&self) -> Result<()> {
        let bs = self.block_size;
        if !bs.is_power_of_two() || !(4096..=1 << 20).contains(&bs) {
            return Err(Error::invalid(format!(
                "LUN block size {bs} is not a power of two from 4096 to 1048576"
            )));
        }
        Ok(())
    }
}

fn volume_config(block_size: u32) -> VolumeConfig {
    VolumeConfig::with_block_size(block_size)
}

fn snapshot_tag(id: LunId) -> Vec<u8> {
    format!("{SNAP_TAG}{id}").into_bytes()
}

fn tagged_lun(meta: &[u8]) -> Option<LunId> {
    std::str::from_utf8(meta)
        .ok()?
        .strip_prefix(SNAP_TAG)?
        .parse()
        .ok()
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
            ArrayState::new(options.block_size),
            None,
            HashMap::new(),
        ))
    }

    /// Opens the pool directory `dir`, creating it (and an empty array) if missing. One process
    /// owns a pool at a time: a second opener gets [`ErrorKind::Busy`] ("pool in use (pid N)").
    pub fn open(dir: impl AsRef<Path>) -> Result<Array> {
        Array::open_with(dir, ArrayOptions::default())
    }

    /// Opens the pool directory `dir` like [`Array::open`]; `options` apply when the pool is new
    /// (an existing pool keeps its own; asking it for another block size is an error).
    pub fn open_with(dir: impl AsRef<Path>, options: ArrayOptions) -> Result<Array> {
        options.validate()?;
        let dir = dir.as_ref();
        let (mut store, loaded) = PoolStore::open(dir)?;
        let mut state = match &loaded.checkpoint {
            Some(st) => ArrayState::from_checkpoint(st)?,
            None if loaded.changes.is_empty() => {
                // A new pool: its block size is recorded at once.
                let m = ArrayState::new(options.block_size);
                store.checkpoint(&m.to_checkpoint(store.seq()))?;
                m
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
        let luns_dir = dir.join(LUNS_DIR);
        std::fs::create_dir_all(&luns_dir)
            .map_err(|e| Error::io("cannot create the LUN directory", e).with_path(&luns_dir))?;
        let (volumes, detached) = Array::open_volumes(&luns_dir, &state)?;
        let array = Array::assemble(Some(dir.to_path_buf()), state, Some(store), volumes);
        for id in detached {
            let mut core = array.inner.core.write();
            Array::commit(&mut core, &Change::Detach { id })?;
        }
        Ok(array)
    }

    fn assemble(
        dir: Option<PathBuf>,
        state: ArrayState,
        store: Option<PoolStore>,
        volumes: HashMap<LunId, Backing>,
    ) -> Array {
        Array {
            inner: Arc::new(Inner {
                dir,
                core: RwLock::new(Core {
                    state,
                    store,
                    volumes,
                    busy: BTreeSet::new(),
                }),
                subscribers: Mutex::new(Vec::new()),
                next_subscription: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// Opens every LUN's volume (sources before their snapshots), and removes what a crash left
    /// behind: LUN directories and cow-engine snapshots of LUNs that the metadata does not have.
    #[allow(clippy::type_complexity)]
    fn open_volumes(
        luns_dir: &Path,
        state: &ArrayState,
    ) -> Result<(HashMap<LunId, Backing>, Vec<LunId>)> {
        let mut volumes: HashMap<LunId, Backing> = HashMap::new();
        let entries = std::fs::read_dir(luns_dir)
            .map_err(|e| Error::io("cannot list LUN volumes", e).with_path(luns_dir))?;
        for e in entries.flatten() {
            let known = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<LunId>().ok())
                .is_some_and(|id| state.luns.contains_key(&id));
            if !known {
                std::fs::remove_dir_all(e.path()).map_err(|err| {
                    Error::io("cannot remove a stale LUN volume", err).with_path(e.path())
                })?;
            }
        }
        let mut detached = Vec::new();
        for (id, rec) in &state.luns {
            let dir = luns_dir.join(id.to_string());
            let vol = match rec.source {
                None => Volume::open(&dir)?,
                Some(src) => {
                    let source = volumes.get(&src.lun).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Corrupt,
                            format!("source of LUN {} missing", rec.name),
                        )
                    })?;
                    let snap = source.read().snapshot(src.snapshot);
                    match snap {
                        Ok(snap) => open_stacked(&dir, Arc::new(snap))?,
                        // A split deletes the source snapshot only after its copy is complete and
                        // durable: the LUN stands on its own origin; record the detach now.
                        Err(e)
                            if e.kind() == cow_engine::ErrorKind::NotFound
                                && dir.join("origin.img").exists() =>
                        {
                            detached.push(*id);
                            Volume::open(&dir)?
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            volumes.insert(*id, Arc::new(RwLock::new(vol)));
        }
        // Cow-engine snapshots tagged for LUNs that do not exist: a create that did not commit, or a
        // delete that did not finish.
        for vol in volumes.values() {
            let vol = vol.read();
            for s in vol.snapshots() {
                if let Some(owner) = tagged_lun(&s.metadata) {
                    let live = state
                        .luns
                        .get(&owner)
                        .and_then(|l| l.source)
                        .is_some_and(|src| src.snapshot == s.id);
                    if !live {
                        vol.delete_snapshot(s.id)?;
                    }
                }
            }
        }
        Ok((volumes, detached))
    }

    /// Calls `f` for every notification from now on (after the change is persisted, with no array
    /// lock held: `f` may call back into the array). Returns an id for [`Array::unsubscribe`].
    pub fn subscribe(&self, f: impl Fn(&Notification) + Send + Sync + 'static) -> u64 {
        let id = self
            .inner
            .next_subscription
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.subscribers.lock().push((id, Arc::new(f)));
        id
    }

    /// Stops calling the subscriber `id`; false if there is no such subscriber.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.inner.subscribers.lock();
        let before = subs.len();
        subs.retain(|(i, _)| *i != id);
        subs.len() != before
    }

    /// Receives every notification from now on through a channel.
    pub fn subscribe_channel(&self) -> std::sync::mpsc::Receiver<Notification> {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        self.subscribe(move |n| {
            let _ = tx.lock().send(n.clone());
        });
        rx
    }

    fn announce(&self, notes: Vec<Notification>) {
        if notes.is_empty() {
            return;
        }
        let subs: Vec<Subscriber> = self
            .inner
            .subscribers
            .lock()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        for n in &notes {
            for s in &subs {
                s(n);
            }
        }
    }

    /// Applies `change` to the array state and makes it durable; on error nothing changed.
    fn commit(core: &mut Core, change: &Change) -> Result<Vec<Notification>> {
        if let Some(store) = &core.store {
            // A store that failed earlier refuses before anything is applied.
            store.check()?;
        }
        let notes = core.state.apply(change)?;
        if let Some(store) = &mut core.store {
            // On failure the change is applied in memory but not durable: the store now refuses
            // every further change, and the caller hears the failure (the pool must be reopened).
            store.append(change)?;
            if store.wants_checkpoint() {
                let st = core.state.to_checkpoint(store.seq());
                store.checkpoint(&st)?;
            }
        }
        Ok(notes)
    }

    /// Runs one transaction under the admin lock and announces its notifications after it.
    fn transact<T>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<(T, Vec<Notification>)>,
    ) -> Result<T> {
        let (out, notes) = {
            let mut core = self.inner.core.write();
            f(&mut core)?
        };
        self.announce(notes);
        Ok(out)
    }

    fn lun_dir(&self, id: LunId) -> Option<PathBuf> {
        self.inner
            .dir
            .as_ref()
            .map(|d| d.join(LUNS_DIR).join(id.to_string()))
    }

    /// Creates LUN `name` of `size` bytes, visible only as `unmasking_list` says (a VDS `SetMask`
    /// list; `""` = no one). Its contents read as zeros.
    pub fn create_lun(&self, name: &str, size: u64, unmasking_list: &str) -> Result<()> {
        check_lun_name(name)?;
        MaskSpec::parse(unmasking_list)?;
        self.transact(|core| {
            core.state.check_size(size)?;
            if core.state.names.contains_key(name) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("a LUN named {name:?} exists"),
                ));
            }
            let id = core.state.next_id;
            let bs = core.state.block_size;
            let vol = match self.lun_dir(id) {
                Some(dir) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    Volume::create(&dir, size, volume_config(bs))?
                }
                None => Volume::create_mem(size, volume_config(bs))?,
            };
            let change = Change::CreateLun {
                id,
                name: name.to_string(),
                size,
                mask: unmasking_list.to_string(),
                source: None,
            };
            match Array::commit(core, &change) {
                Ok(notes) => {
                    core.volumes.insert(id, Arc::new(RwLock::new(vol)));
                    Ok(((), notes))
                }
                Err(e) => {
                    if let Some(dir) = self.lun_dir(id) {
                        drop(vol);
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    Err(e)
                }
            }
        })
    }

    /// Creates LUN `name` on a background thread; the handle waits, reports progress, cancels.
    pub fn create_lun_async(&self, name: &str, size: u64, unmasking_list: &str) -> AsyncHandle<()> {
        let (a, n, m) = (self.clone(), name.to_string(), unmasking_list.to_string());
        AsyncHandle::spawn(move |_p| a.create_lun(&n, size, &m))
    }

    /// A hardware-style snapshot: new LUN `snapshot_name` holding `source`'s contents as of now,
    /// writable, independent of later writes to either, masked to no one.
    pub fn snapshot_lun(&self, source: &str, snapshot_name: &str) -> Result<()> {
        check_lun_name(snapshot_name)?;
        self.transact(|core| {
            let src_id = core.state.id_of(source)?;
            if core.state.names.contains_key(snapshot_name) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("a LUN named {snapshot_name:?} exists"),
                ));
            }
            let size = core.state.lun(src_id)?.size;
            let id = core.state.next_id;
            let src_vol = core.volumes[&src_id].clone();
            let src_vol = src_vol.read();
            let sid = src_vol.create_snapshot(SnapshotOptions {
                writable: true,
                persistent: true,
                pinned: true,
                metadata: snapshot_tag(id),
            })?;
            let undo = |e: Error| {
                let _ = src_vol.delete_snapshot(sid);
                e
            };
            let snap = Arc::new(src_vol.snapshot(sid).map_err(|e| undo(e.into()))?);
            let vol = match self.lun_dir(id) {
                Some(dir) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    create_stacked(&dir, snap, core.state.block_size).map_err(undo)?
                }
                None => Volume::on_device(snap, volume_config(core.state.block_size))
                    .map_err(|e| undo(e.into()))?,
            };
            let change = Change::CreateLun {
                id,
                name: snapshot_name.to_string(),
                size,
                mask: String::new(),
                source: Some(SourceRef {
                    lun: src_id,
                    snapshot: sid,
                }),
            };
            match Array::commit(core, &change) {
                Ok(notes) => {
                    core.volumes.insert(id, Arc::new(RwLock::new(vol)));
                    Ok(((), notes))
                }
                Err(e) => {
                    drop(vol);
                    if let Some(dir) = self.lun_dir(id) {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    Err(undo(e))
                }
            }
        })
    }

    /// Deletes LUN `name`. Refused while snapshot LUNs depend on it (split or delete them first).
    pub fn delete_lun(&self, name: &str) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            if core.busy.contains(&id) {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!("LUN {name:?} has an operation running"),
                ));
            }
            let source = core.state.lun(id)?.source;
            let vol = core.volumes[&id].clone();
            // The volume's own snapshots other than those of snapshot LUNs are ours to drop; a
            // snapshot LUN depending on it makes `ArrayState::apply` refuse below.
            let notes = Array::commit(core, &Change::DeleteLun { id })?;
            core.volumes.remove(&id);
            let vol = Arc::try_unwrap(vol).map(RwLock::into_inner);
            if let Ok(v) = vol {
                let _ = v.prepare_delete(true);
            }
            // The delete is durable; what is left behind if the clean-up fails is removed when the
            // pool is next opened.
            if let Some(src) = source {
                if let Some(sv) = core.volumes.get(&src.lun) {
                    let _ = sv.read().delete_snapshot(src.snapshot);
                }
            }
            if let Some(dir) = self.lun_dir(id) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Ok(((), notes))
        })
    }

    /// VDS `SetMask`: replaces LUN `name`'s unmasking list.
    pub fn set_mask(&self, name: &str, unmasking_list: &str) -> Result<()> {
        // Validated (parsed) once, inside the transaction, before anything changes.
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            let notes = Array::commit(
                core,
                &Change::SetMask {
                    id,
                    mask: unmasking_list.to_string(),
                },
            )?;
            Ok(((), notes))
        })
    }

    /// Adds entries to LUN `name`'s mask (an atomic read-modify-write; DiskRAID `unmask lun add`).
    /// An entry already present takes the access the added entry states (read-write by default).
    pub fn add_to_mask(&self, name: &str, entries: &str) -> Result<()> {
        self.modify_mask(name, entries, true)
    }

    /// Removes entries from LUN `name`'s mask (an atomic read-modify-write).
    pub fn remove_from_mask(&self, name: &str, entries: &str) -> Result<()> {
        self.modify_mask(name, entries, false)
    }

    fn modify_mask(&self, name: &str, entries: &str, add: bool) -> Result<()> {
        let delta = MaskSpec::parse(entries)?;
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            let current = core.state.mask.spec(id)?.clone();
            let new = match (current, delta, add) {
                (_, MaskSpec::All(a), true) => MaskSpec::All(a),
                (_, MaskSpec::All(_), false) => MaskSpec::None,
                (cur, MaskSpec::None, _) => cur,
                (MaskSpec::All(a), MaskSpec::List(_), true) => MaskSpec::All(a),
                (MaskSpec::All(_), MaskSpec::List(_), false) => {
                    return Err(Error::invalid(
                        "cannot remove single hosts from a LUN unmasked to every host (\"*\")",
                    ))
                }
                (MaskSpec::None, MaskSpec::List(d), true) => MaskSpec::List(d),
                (MaskSpec::None, MaskSpec::List(_), false) => MaskSpec::None,
                (MaskSpec::List(mut cur), MaskSpec::List(d), true) => {
                    cur.extend(d);
                    MaskSpec::List(cur)
                }
                (MaskSpec::List(mut cur), MaskSpec::List(d), false) => {
                    cur.retain(|p, _| !d.contains_key(p));
                    if cur.is_empty() {
                        MaskSpec::None
                    } else {
                        MaskSpec::List(cur)
                    }
                }
            };
            let notes = Array::commit(
                core,
                &Change::SetMask {
                    id,
                    mask: new.to_string(),
                },
            )?;
            Ok(((), notes))
        })
    }

    /// The canonical unmasking list of LUN `name`: `""`, `"*"`, or the normalised entries sorted
    /// and `;`-joined.
    pub fn get_mask(&self, name: &str) -> Result<String> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        Ok(core.state.mask.spec(id)?.to_string())
    }

    /// Sets the LUN number `initiator` sees LUN `name` at.
    pub fn set_host_number(&self, name: &str, initiator: &str, number: u32) -> Result<()> {
        let host = InitiatorId::parse(initiator)?;
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            let notes = Array::commit(
                core,
                &Change::SetHostNumber {
                    id,
                    host: host.to_string(),
                    number,
                },
            )?;
            Ok(((), notes))
        })
    }

    /// Creates or replaces initiator group `group` (usable in masks as `@group`).
    pub fn set_group(&self, group: &str, members: &[&str]) -> Result<()> {
        let ids = members
            .iter()
            .map(|m| InitiatorId::parse(m).map(|i| i.to_string()))
            .collect::<Result<Vec<_>>>()?;
        self.transact(|core| {
            let notes = Array::commit(
                core,
                &Change::SetGroup {
                    name: group.to_string(),
                    members: ids,
                },
            )?;
            Ok(((), notes))
        })
    }

    /// Deletes initiator group `group`; refused while a mask names it.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.transact(|core| {
            let notes = Array::commit(
                core,
                &Change::DeleteGroup {
                    name: group.to_string(),
                },
            )?;
            Ok(((), notes))
        })
    }

    /// The members of every initiator group (hosts are listed by [`Array::hosts`]).
    pub fn groups(&self) -> Vec<(String, Vec<InitiatorId>)> {
        let core = self.inner.core.read();
        core.state
            .mask
            .groups()
            .iter()
            .filter(|(g, _)| !core.state.hosts.contains(*g))
            .map(|(g, m)| (g.clone(), m.iter().cloned().collect()))
            .collect()
    }

    /// The fast-recovery swap, as one transaction: `replacement` takes over `damaged`'s hosts, their
    /// LUN numbers and its default number; `damaged` is masked to no one (kept for diagnosis).
    pub fn swap_lun(&self, damaged: &str, replacement: &str) -> Result<()> {
        self.transact(|core| {
            let from = core.state.id_of(damaged)?;
            let to = core.state.id_of(replacement)?;
            let notes = Array::commit(core, &Change::Swap { from, to })?;
            Ok(((), notes))
        })
    }

    /// Extends LUN `name` to `size` bytes (new space reads as zeros).
    pub fn extend_lun(&self, name: &str, size: u64) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            core.state.check_size(size)?;
            if core.state.lun(id)?.source.is_some() {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "snapshot LUN {name:?} must be split from its source before it can grow"
                    ),
                ));
            }
            let old = core.state.lun(id)?.size;
            if size < old {
                return Err(Error::invalid(format!(
                    "new size {size} is smaller than the LUN's {old}"
                )));
            }
            core.volumes[&id].read().grow(size)?;
            let notes = Array::commit(core, &Change::Extend { id, size })?;
            Ok(((), notes))
        })
    }

    /// Extends LUN `name` on a background thread.
    pub fn extend_lun_async(&self, name: &str, size: u64) -> AsyncHandle<()> {
        let (a, n) = (self.clone(), name.to_string());
        AsyncHandle::spawn(move |_p| a.extend_lun(&n, size))
    }

    /// Brings LUN `name` online (I/O served) or offline (I/O refused).
    pub fn set_online(&self, name: &str, online: bool) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            let notes = Array::commit(core, &Change::SetStatus { id, online })?;
            Ok(((), notes))
        })
    }

    /// Creates iSCSI target `name` with iSCSI name `iqn` and its portals (`address:port`).
    pub fn create_target(&self, name: &str, iqn: &str, portals: &[&str]) -> Result<()> {
        self.simple(Change::CreateTarget {
            name: name.to_string(),
            iqn: iqn.to_string(),
            portals: portals.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// Deletes iSCSI target `name`; refused while LUNs are associated with it.
    pub fn delete_target(&self, name: &str) -> Result<()> {
        self.simple(Change::DeleteTarget {
            name: name.to_string(),
        })
    }

    /// Associates LUN `lun` with `targets`: replacing its associations, or adding to them.
    pub fn associate_targets(&self, lun: &str, targets: &[&str], add: bool) -> Result<()> {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        self.transact(|core| {
            let id = core.state.id_of(lun)?;
            let notes = Array::commit(core, &Change::AssociateTargets { id, targets, add })?;
            Ok(((), notes))
        })
    }

    /// Registers host `name` with its initiator ports (or replaces them). A host is an initiator
    /// group of its own: masks name it as `@name`, and an initiator belongs to at most one host.
    pub fn set_host(&self, name: &str, initiators: &[&str]) -> Result<()> {
        let ids = initiators
            .iter()
            .map(|m| InitiatorId::parse(m).map(|i| i.to_string()))
            .collect::<Result<Vec<_>>>()?;
        self.simple(Change::SetHost {
            name: name.to_string(),
            initiators: ids,
        })
    }

    /// Deletes host `name`; refused while a mask names it.
    pub fn delete_host(&self, name: &str) -> Result<()> {
        self.simple(Change::DeleteHost {
            name: name.to_string(),
        })
    }

    /// Every host with its initiators, by name.
    pub fn hosts(&self) -> Vec<(String, Vec<InitiatorId>)> {
        let core = self.inner.core.read();
        core.state
            .hosts
            .iter()
            .filter_map(|h| {
                let m = core.state.mask.group(h)?;
                Some((h.clone(), m.iter().cloned().collect()))
            })
            .collect()
    }

    /// What host `name` sees through each of its initiators: (LUN, initiator, grant), by initiator
    /// then LUN number.
    pub fn host_view_by_name(&self, name: &str) -> Result<Vec<(String, InitiatorId, Grant)>> {
        let core = self.inner.core.read();
        if !core.state.hosts.contains(name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no host named {name:?}"),
            ));
        }
        let mut out = Vec::new();
        for ini in core.state.mask.group(name).into_iter().flatten() {
            for (id, g) in core.state.mask.host_view(ini) {
                if let Some(l) = core.state.luns.get(&id) {
                    out.push((l.name.clone(), ini.clone(), g));
                }
            }
        }
        Ok(out)
    }

    /// Every iSCSI target, by name.
    pub fn targets(&self) -> Vec<TargetInfo> {
        self.inner
            .core
            .read()
            .state
            .targets
            .values()
            .cloned()
            .collect()
    }

    fn simple(&self, change: Change) -> Result<()> {
        self.transact(|core| Ok(((), Array::commit(core, &change)?)))
    }

    /// The provider and its one subsystem, with the controller and port the array presents.
    pub fn provider(&self) -> ProviderInfo {
        let core = self.inner.core.read();
        let port = PortInfo {
            name: "port0".to_string(),
            status: ObjectStatus::Online,
        };
        ProviderInfo {
            name: "umbra embedded array".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            subsystems: vec![SubsystemInfo {
                name: match &self.inner.dir {
                    Some(d) => format!("pool {}", d.display()),
                    None => "in-memory pool".to_string(),
                },
                flags: subsystem_flags::LUN_MASKING_CAPABLE | subsystem_flags::SUPPORTS_LUN_NUMBER,
                status: ObjectStatus::Online,
                controllers: vec![ControllerInfo {
                    name: "controller0".to_string(),
                    status: ObjectStatus::Online,
                    ports: vec![port],
                }],
                luns: core.state.luns.len(),
                block_size: core.state.block_size,
            }],
        }
    }

    /// The LUN block size: LUN sizes are multiples of it.
    pub fn block_size(&self) -> u32 {
        self.inner.core.read().state.block_size
    }

    /// Every LUN's properties, by name.
    pub fn luns(&self) -> Vec<LunInfo> {
        let core = self.inner.core.read();
        let mut v: Vec<LunInfo> = core
            .state
            .luns
            .keys()
            .filter_map(|&id| Self::info(&core, id).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// LUN `name`'s properties.
    pub fn lun(&self, name: &str) -> Result<LunInfo> {
        let core = self.inner.core.read();
        Self::info(&core, core.state.id_of(name)?)
    }

    fn info(core: &Core, id: LunId) -> Result<LunInfo> {
        let l = core.state.lun(id)?;
        Ok(LunInfo {
            id,
            name: l.name.clone(),
            size: l.size,
            lun_type: LunType::Simple,
            status: l.status,
            health: l.health,
            transition: if core.busy.contains(&id) {
                TransitionState::Reconfiguring
            } else {
                TransitionState::Stable
            },
            mask: core.state.mask.spec(id)?.to_string(),
            number: core.state.mask.default_number(id)?,
            source: l
                .source
                .and_then(|s| core.state.luns.get(&s.lun))
                .map(|s| s.name.clone()),
        })
    }

    /// The LUNs `initiator` sees: (name, access, LUN number), in LUN-number order.
    pub fn host_view(&self, initiator: &InitiatorId) -> Vec<(String, Grant)> {
        let core = self.inner.core.read();
        core.state
            .mask
            .host_view(initiator)
            .into_iter()
            .filter_map(|(id, g)| core.state.luns.get(&id).map(|l| (l.name.clone(), g)))
            .collect()
    }

    /// Who sees LUN `name`.
    pub fn lun_hosts(&self, name: &str) -> Result<LunHosts> {
        let core = self.inner.core.read();
        core.state.mask.lun_hosts(core.state.id_of(name)?)
    }

    /// What `initiator` may do with LUN `name` (`None`: masked away).
    pub fn access(&self, name: &str, initiator: &InitiatorId) -> Result<Option<Grant>> {
        let core = self.inner.core.read();
        Ok(core.state.mask.access(core.state.id_of(name)?, initiator))
    }

    /// The volume behind LUN `name` if `initiator` may do `want` with it now.
    fn gate(&self, name: &str, initiator: &InitiatorId, want: Access) -> Result<(Backing, u64)> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        let grant = core.state.mask.access(id, initiator).ok_or_else(|| {
            Error::new(
                ErrorKind::AccessDenied,
                format!("LUN {name:?} is masked from initiator {initiator}"),
            )
        })?;
        if want == Access::ReadWrite && grant.access == Access::ReadOnly {
            return Err(Error::new(
                ErrorKind::AccessDenied,
                format!("initiator {initiator} has read-only access to LUN {name:?}"),
            ));
        }
        let l = core.state.lun(id)?;
        if l.status != LunStatus::Online {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("LUN {name:?} is offline"),
            ));
        }
        Ok((core.volumes[&id].clone(), l.size))
    }

    /// Reads LUN `name` at `offset` as `initiator`; refused with [`ErrorKind::AccessDenied`] where
    /// the mask denies it.
    pub fn read(
        &self,
        name: &str,
        initiator: &InitiatorId,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let (vol, size) = self.gate(name, initiator, Access::ReadOnly)?;
        check_range_of(size, offset, buf.len())?;
        let vol = vol.read();
        Ok(vol.read_at(buf, offset)?)
    }

    /// Writes LUN `name` at `offset` as `initiator`; refused (nothing written) where the mask denies
    /// it or grants read-only access.
    pub fn write(
        &self,
        name: &str,
        initiator: &InitiatorId,
        offset: u64,
        buf: &[u8],
    ) -> Result<()> {
        let (vol, size) = self.gate(name, initiator, Access::ReadWrite)?;
        check_range_of(size, offset, buf.len())?;
        let vol = vol.read();
        Ok(vol.write_at(buf, offset)?)
    }

    /// The blocks (of the array's block size, ascending) that differ between snapshot LUN `from`
    /// and `to`: a later snapshot LUN of the same source, or the source LUN itself (its current
    /// contents). What an incremental backup copies after backing up `from` in full. Computed from
    /// the copy-on-write maps without reading data: a superset of the blocks whose contents differ,
    /// writes made to either snapshot LUN included. Either order of two snapshot LUNs gives the
    /// same set. A LUN that is not a snapshot LUN of that source (or a split one) as `from` is
    /// [`ErrorKind::InvalidArgument`]; an unknown name [`ErrorKind::NotFound`].
    pub fn changed_blocks(&self, from: &str, to: &str) -> Result<Vec<u64>> {
        let (source, from_snapshot, to_snapshot, settle) = {
            let core = self.inner.core.read();
            let rec = |name: &str| -> Result<(LunId, Option<SourceRef>)> {
                let id = core.state.id_of(name)?;
                Ok((id, core.state.lun(id)?.source))
            };
            let (from_id, Some(f)) = rec(from)? else {
                return Err(Error::invalid(format!(
                    "LUN {from:?} is not a snapshot LUN (or was split from its source)"
                )));
            };
            let (to_id, to_source) = rec(to)?;
            let to_snapshot = match to_source {
                Some(t) if t.lun == f.lun => Some(t.snapshot),
                _ if to_id == f.lun => None,
                _ => {
                    return Err(Error::invalid(format!(
                        "LUN {to:?} is neither the source of snapshot LUN {from:?} nor another \
                         snapshot LUN of that source"
                    )))
                }
            };
            let volume = |id: LunId| core.volumes[&id].read().clone();
            let mut settle = vec![volume(from_id)];
            if to_snapshot.is_some() {
                settle.push(volume(to_id));
            }
            (volume(f.lun), f.snapshot, to_snapshot, settle)
        };
        // Without the array's lock from here: the maps are walked while other LUNs keep serving.
        // A snapshot LUN with snapshot LUNs of its own may hold writes in its volume until a flush
        // (deferred until their copy-on-write is durable); they must reach the source's overlay
        // before it is read.
        for v in &settle {
            v.flush()?;
        }
        Ok(source.changed_blocks(from_snapshot, to_snapshot)?)
    }

    /// The cow-engine volume behind LUN `name` (for layers above: snapshots, freeze, changed blocks).
    /// It bypasses masking: it is the array's own view.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        let v = core.volumes[&id].read().clone();
        Ok(v)
    }

    /// Clones LUN `source` into a new, independent LUN `name` (masked to no one) on a background
    /// thread: a snapshot LUN taken now, then split from its source.
    pub fn clone_lun(&self, source: &str, name: &str) -> AsyncHandle<()> {
        let (a, s, n) = (self.clone(), source.to_string(), name.to_string());
        AsyncHandle::spawn(move |p| {
            a.snapshot_lun(&s, &n)?;
            a.split_lun_blocking(&n, p)
        })
    }

    /// Splits snapshot LUN `name` from its source on a background thread: its contents are copied
    /// to a volume of its own, after which the source may be deleted.
    pub fn split_lun(&self, name: &str) -> AsyncHandle<()> {
        let (a, n) = (self.clone(), name.to_string());
        AsyncHandle::spawn(move |p| a.split_lun_blocking(&n, p))
    }

    fn begin_long(&self, id: LunId, name: &str) -> Result<()> {
        let mut core = self.inner.core.write();
        if !core.busy.insert(id) {
            return Err(Error::new(
                ErrorKind::Busy,
                format!("LUN {name:?} has an operation running"),
            ));
        }
        Ok(())
    }

    fn end_long(&self, id: LunId) {
        self.inner.core.write().busy.remove(&id);
    }

    fn split_lun_blocking(&self, name: &str, progress: &Progress) -> Result<()> {
        let (id, src, src_vol, size, bs) = {
            let core = self.inner.core.read();
            let id = core.state.id_of(name)?;
            let l = core.state.lun(id)?;
            let src = l.source.ok_or_else(|| {
                Error::invalid(format!(
                    "LUN {name:?} is not a snapshot LUN (nothing to split from)"
                ))
            })?;
            // Its own snapshot LUNs stand on its current volume object, which the split replaces.
            if let Some(dep) = core.state.luns.values().find(|d| d.is_snapshot_of(id)) {
                return Err(Error::new(
                    ErrorKind::BadState,
                    format!(
                        "snapshot LUN {:?} depends on {name:?}; split or delete it first",
                        dep.name
                    ),
                ));
            }
            (
                id,
                src,
                core.volumes[&src.lun].clone(),
                l.size,
                core.state.block_size,
            )
        };
        self.begin_long(id, name)?;
        let result = (|| -> Result<()> {
            let backing = self.inner.core.read().volumes[&id].clone();
            match self.lun_dir(id) {
                Some(dir) => {
                    let origin = dir.join("origin.img");
                    let dest = match FileDevice::open(&origin) {
                        Ok(d) if d.len() == size => d,
                        _ => {
                            let _ = std::fs::remove_file(&origin);
                            FileDevice::create(&origin, size)?
                        }
                    };
                    src_vol
                        .read()
                        .split_snapshot(src.snapshot, &dest, progress)?;
                    drop(dest);
                    // The LUN's own volume now stands on its own origin file.
                    let mut guard = backing.write();
                    let placeholder = Volume::create_mem(u64::from(bs), volume_config(bs))?;
                    let old = std::mem::replace(&mut *guard, placeholder);
                    old.flush()?;
                    drop(old);
                    *guard = Volume::open(&dir)?;
                }
                None => {
                    let dest = Arc::new(cow_engine::MemDevice::new(size));
                    {
                        let guard = backing.read();
                        if !guard.snapshots().is_empty() {
                            return Err(Error::new(
                                ErrorKind::BadState,
                                "an in-memory snapshot LUN with snapshots of its own cannot be split",
                            ));
                        }
                    }
                    let mut guard = backing.write();
                    src_vol
                        .read()
                        .split_snapshot(src.snapshot, dest.as_ref(), progress)?;
                    *guard = Volume::on_device(dest, volume_config(bs))?;
                }
            }
            let notes = {
                let mut core = self.inner.core.write();
                Array::commit(&mut core, &Change::Detach { id })?
            };
            self.announce(notes);
            Ok(())
        })();
        self.end_long(id);
        result
    }

    /// Resync (the copying alternative to the swap): makes LUN `target`'s contents equal to
    /// `source`'s. If `source` is a snapshot LUN of `target`, only the blocks that differ are copied
    /// (a revert); otherwise every block is. On a background thread, with progress and cancel.
    pub fn resync_lun(&self, source: &str, target: &str) -> AsyncHandle<()> {
        let (a, s, t) = (self.clone(), source.to_string(), target.to_string());
        AsyncHandle::spawn(move |p| a.resync_blocking(&s, &t, p))
    }

    fn resync_blocking(&self, source: &str, target: &str, progress: &Progress) -> Result<()> {
        let (tid, src_rec, svol, tvol, bs) = {
            let core = self.inner.core.read();
            let sid = core.state.id_of(source)?;
            let tid = core.state.id_of(target)?;
            if sid == tid {
                return Err(Error::invalid("a LUN cannot be resynced from itself"));
            }
            let (s, t) = (core.state.lun(sid)?, core.state.lun(tid)?);
            if s.size != t.size {
                return Err(Error::invalid(format!(
                    "LUN {source:?} has {} bytes, {target:?} has {}",
                    s.size, t.size
                )));
            }
            (
                tid,
                s.clone(),
                core.volumes[&sid].clone(),
                core.volumes[&tid].clone(),
                core.state.block_size,
            )
        };
        self.begin_long(tid, target)?;
        let result = (|| -> Result<()> {
            let tvol = tvol.read().clone();
            match src_rec.source {
                Some(src) if src.lun == tid => {
                    // The snapshot LUN's own writes went through its stacked volume to the snapshot.
                    svol.read().flush()?;
                    tvol.revert(src.snapshot, progress)?;
                }
                _ => {
                    let svol = svol.read().clone();
                    let total = src_rec.size / u64::from(bs);
                    let mut buf = vec![0u8; bs as usize];
                    for b in 0..total {
                        if progress.is_cancelled() {
                            return Err(Error::new(ErrorKind::Cancelled, "resync cancelled"));
                        }
                        svol.read_at(&mut buf, b * u64::from(bs))?;
                        tvol.write_at(&buf, b * u64::from(bs))?;
                        progress.set(b + 1, total);
                    }
                    tvol.flush()?;
                }
            }
            Ok(())
        })();
        self.end_long(tid);
        result
    }
}

fn check_range_of(size: u64, offset: u64, len: usize) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::new(
            ErrorKind::OutOfRange,
            format!("{len} bytes at offset {offset} exceed the LUN's {size} bytes"),
        )),
    }
}

/// Devices of a snapshot LUN's own volume: its diff area and journals in `dir`, over `origin`.
fn create_stacked(
    dir: &Path,
    origin: Arc<cow_engine::Snapshot>,
    block_size: u32,
) -> Result<Volume> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the LUN volume", e).with_path(dir))?;
    let dev = |n: &str| -> Result<Arc<dyn BlockDevice>> {
        Ok(Arc::new(FileDevice::create(dir.join(n), 0)?))
    };
    let vol = Volume::create_on_devices(
        origin,
        dev("diff.img")?,
        [dev("journal.0")?, dev("journal.1")?],
        volume_config(block_size),
    )?;
    store::sync_dir(dir)?;
    Ok(vol)
}

fn open_stacked(dir: &Path, origin: Arc<cow_engine::Snapshot>) -> Result<Volume> {
    let dev =
        |n: &str| -> Result<Arc<dyn BlockDevice>> { Ok(Arc::new(FileDevice::open(dir.join(n))?)) };
    Ok(Volume::open_on_devices(
        origin,
        dev("diff.img")?,
        [dev("journal.0")?, dev("journal.1")?],
    )?)
}
