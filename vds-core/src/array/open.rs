//! Opening an array, and the recovery that runs when a pool opens: the checkpoint loaded, the log
//! replayed onto it, every LUN's volume opened (sources before their snapshot LUNs), and what a
//! crash left behind removed or recorded.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::Volume;
use parking_lot::{Mutex, RwLock};

use super::state::{ArrayState, Change};
use super::store::PoolStore;
use super::volumes::{delete_lun_snapshot, tagged_lun, LUNS_DIR};
use super::{Array, ArrayOptions, Backing, Core, Inner, DEFAULT_BLOCK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::mask::LunId;

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
        let luns_dir = dir.join(LUNS_DIR);
        std::fs::create_dir_all(&luns_dir)
            .map_err(|e| Error::io("cannot create the LUN directory", e).with_path(&luns_dir))?;
        let (volumes, detached) = Array::open_volumes(&luns_dir, &state)?;
        let array = Array::assemble(Some(dir.to_path_buf()), state, Some(store), volumes);
        for id in detached {
            // No one has subscribed yet: nothing is announced.
            array.simple(Change::Detach { id })?;
        }
        Ok(array)
    }

    /// An array over `state`, its store and its LUNs' volumes.
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
                    unfenced: Default::default(),
                }),
                fences: Default::default(),
                subscribers: Mutex::new(Vec::new()),
                next_subscription: std::sync::atomic::AtomicU64::new(1),
                hub: cow_engine::events::Hub::default(),
            }),
        }
    }

    /// Opens every LUN's volume (sources before their snapshots), and clears what a crash left
    /// behind: an entry of `luns/` the metadata does not have is never deleted (it may be data
    /// whose record was lost) but moved to `<pool>/orphans/` ([`Array::orphans`]); cow-engine
    /// snapshots tagged for LUNs the metadata does not have are deleted.
    #[allow(clippy::type_complexity)]
    fn open_volumes(
        luns_dir: &Path,
        state: &ArrayState,
    ) -> Result<(HashMap<LunId, Backing>, Vec<LunId>)> {
        let mut volumes: HashMap<LunId, Backing> = HashMap::new();
        let entries = std::fs::read_dir(luns_dir)
            .map_err(|e| Error::io("cannot list LUN volumes", e).with_path(luns_dir))?;
        let entries: Vec<_> = entries.flatten().collect();
        let unknown: Vec<_> = entries
            .iter()
            .filter(|e| {
                !e.file_name()
                    .to_str()
                    .and_then(|n| n.parse::<LunId>().ok())
                    .is_some_and(|id| state.luns.contains_key(&id))
            })
            .collect();
        // Changes are made one at a time, so a crash leaves at most one LUN volume the metadata
        // does not name (a create that did not commit, a delete that did not finish). More means
        // the metadata lost changes that had been acknowledged: damage, reported before anything
        // is moved.
        let lun_like = unknown
            .iter()
            .filter(|e| {
                e.path().is_dir()
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<LunId>().is_ok())
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
        for e in unknown {
            move_to_orphans(luns_dir, &e.file_name())?;
        }
        // The LUNs whose volumes are kept in orphans/ keep the snapshots they stand on.
        let orphaned: BTreeSet<LunId> =
            std::fs::read_dir(luns_dir.parent().unwrap_or(luns_dir).join(ORPHANS_DIR))
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_str()?.to_string();
                            name.split('.').next()?.parse::<LunId>().ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
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
                        Ok(snap) => Volume::open_stacked(&dir, Arc::new(snap))?,
                        // A split deletes the source snapshot only after its copy is complete and
                        // durable: the LUN stands on its own origin; record the detach now.
                        Err(e)
                            if e.kind() == cow_engine::ErrorKind::NotFound
                                && Volume::stands_alone(&dir) =>
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
                        delete_lun_snapshot(&vol, s.id)?;
                    }
                }
            }
        }
        Ok((volumes, detached))
    }
}

/// The pool directory's folder of what open found in `luns/` and could not account for.
pub(super) const ORPHANS_DIR: &str = "orphans";

/// Moves `luns/<name>` to `<pool>/orphans/<name>` (with a numeric suffix if that is taken); both
/// directories are synced before this returns, so the move is durable before the open goes on.
fn move_to_orphans(luns_dir: &Path, name: &std::ffi::OsStr) -> Result<()> {
    let pool = luns_dir.parent().unwrap_or(luns_dir);
    let orphans = pool.join(ORPHANS_DIR);
    std::fs::create_dir_all(&orphans)
        .map_err(|e| Error::io("cannot create the orphans directory", e).with_path(&orphans))?;
    let mut dest = orphans.join(name);
    let mut n = 1;
    while dest.exists() {
        let mut with = name.to_os_string();
        with.push(format!(".{n}"));
        dest = orphans.join(with);
        n += 1;
    }
    let from = luns_dir.join(name);
    std::fs::rename(&from, &dest).map_err(|e| {
        Error::io("cannot move an unknown LUN volume to orphans", e).with_path(&from)
    })?;
    cow_engine::fs::sync_dir(&orphans)?;
    cow_engine::fs::sync_dir(luns_dir)?;
    Ok(())
}
