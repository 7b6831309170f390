//! The embedded array: a provider with one subsystem whose LUNs are `cow-engine` volumes, kept in a
//! pool directory (or in memory).
//!
//! Every administrative change is a transaction: validated, applied, persisted (one log append and
//! fsync) before the lock is let go, then announced to subscribers; a change that fails leaves
//! memory and disk as they were (a failed append puts memory back to what the files hold). Changes are serialised by one lock; queries and
//! I/O run concurrently with each other. A hardware-style snapshot is a new LUN, a writable snapshot of
//! the source LUN's volume, masked to no one at birth; it can be snapshotted in turn and split from
//! its source. I/O names its initiator and is refused where the mask denies it; a change of access
//! (a mask, a swap, offline, a delete, a group or host) returns only once the I/O admitted under
//! the old access has finished, and every later I/O sees the new access (`fence.rs`).
//!
//! Masks are [`MaskSpec`] values and initiators [`InitiatorId`] values: text is parsed at the edge
//! with [`MaskSpec::parse`] and [`InitiatorId::parse`] (as the script interpreter and the C ABI
//! do); a change carries them parsed, and the log records their canonical text.
//!
//! [`Array`]'s methods live by concern, each file an `impl Array` block:
//!
//! | file | what lives there |
//! | --- | --- |
//! | `mod.rs` | the `Array` handle and its shared core, [`ArrayOptions`], the provider it presents, the transaction machinery (`commit`, `transact`) |
//! | `open.rs` | `in_memory`, `open`, `open_with`: recovery on open (checkpoint, log replay, LUN volumes, crash leftovers) |
//! | `lun.rs` | the LUN lifecycle (create, snapshot LUN, delete, extend, online) and LUN properties |
//! | `masking.rs` | unmasking lists, per-host LUN numbers, initiator groups, the swap, who sees what |
//! | `metadata.rs` | per-LUN and pool metadata (small persisted key/value maps for clients) |
//! | `batch.rs` | several changes in one transaction and one pool record ([`Array::batch`]) |
//! | `hosts.rs` | hosts and iSCSI targets |
//! | `io.rs` | `read_at` and `write_at` with their access checks, changed blocks, the administrator's read, per-LUN statistics |
//! | `image.rs` | import and export of a LUN's contents as a sparse raw image file |
//! | `handle.rs` | [`LunHandle`]: I/O by (initiator, host LUN number), as a target daemon addresses a LUN |
//! | `freeze.rs` | freeze and thaw of a set of LUNs ([`FrozenLuns`]) |
//! | `fence.rs` | fenced access changes: each LUN's access epoch and in-flight I/O, drained by every change of access |
//! | `snapshot_set.rs` | snapshot sets: several LUNs snapshotted at one instant, shadow LUNs read-only until broken |
//! | `shadows.rs` | engine-level shadows of a LUN: taken as a set at one instant, listed, deleted, reverted (fenced), exposed as a LUN |
//! | `long_ops.rs` | clone, split, resync and the other background operations |
//! | `notify.rs` | subscriptions and the announcement of notifications |
//! | `volumes.rs` | where LUN volumes live on disk; snapshot LUNs' stacked volumes and tags |
//! | `state/` | the metadata as pure data (`ArrayState`), the changes the log records and how each applies, the checkpoint |
//! | `store.rs` | the pool directory's log and checkpoint files |
//! | `async_op.rs` | [`AsyncHandle`], the runtime of long operations |

mod async_op;
mod batch;
mod fence;
mod freeze;
mod handle;
mod hosts;
mod image;
mod io;
mod long_ops;
mod lun;
mod masking;
mod metadata;
mod notify;
mod open;
mod shadows;
mod snapshot_set;
mod state;
mod store;
mod volumes;

#[cfg(test)]
mod fault_tests;

pub use async_op::AsyncHandle;
pub use batch::AdminOp;
pub use cow_engine::ThawOutcome;
pub use freeze::FrozenLuns;
pub use handle::LunHandle;
pub use io::ChangedExtents;
pub use lun::LunOptions;
pub use open::{ResumedKind, ResumedOp};
pub use shadows::{EngineShadow, EngineShadowSet};
pub use state::{check_lun_name, TargetInfo};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use cow_engine::fs::Fs;
use cow_engine::Volume;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;
use crate::mask::{LunId, MaskSpec};
use crate::model::{
    subsystem_flags, ControllerInfo, Notification, ObjectStatus, PortInfo, ProviderInfo,
    SubsystemInfo,
};
use state::{ArrayState, Change};
use store::PoolStore;

/// A subscriber to notifications.
type Subscriber = Arc<dyn Fn(&Notification) + Send + Sync>;

/// A LUN's backing volume; replaced (under the write lock) when a split gives it its own origin.
type Backing = Arc<RwLock<Volume>>;

/// What the admin lock guards.
struct Core {
    /// The metadata.
    state: ArrayState,
    /// Where it persists (none for an array in memory).
    store: Option<PoolStore>,
    /// Each LUN's volume.
    volumes: HashMap<LunId, Backing>,
    /// LUNs with a long operation running (split, resync): refused a second one.
    busy: BTreeSet<LunId>,
    /// LUNs whose volume did not open, with why: listed as failed, their I/O refused with
    /// [`ErrorKind::Corrupt`], deletable; the rest of the pool works.
    damaged: BTreeMap<LunId, String>,
    /// LUNs whose access changed and whose I/O is not fenced yet (see `fence.rs`).
    unfenced: fence::Unfenced,
    /// LUNs being reverted to an engine shadow: host I/O refused with [`ErrorKind::Busy`].
    reverting: BTreeSet<LunId>,
    /// How many restores (reverts, resyncs) each LUN has started since the array opened: a
    /// [`LunHandle`] opened before the latest is revoked for good (its client's cache sits on
    /// content the restore replaced), as after a swap.
    restores: HashMap<LunId, u64>,
}

impl Core {
    /// Marks LUN `id` as being restored (host I/O refused while it runs) and revokes every
    /// handle opened on it before: they are refused with [`ErrorKind::AccessDenied`] from now
    /// on (the caller fences the LUN so that none is still running when the restore starts).
    fn start_restoring(&mut self, id: LunId) {
        self.reverting.insert(id);
        *self.restores.entry(id).or_default() += 1;
    }

    /// How many restores LUN `id` has started since the array opened.
    fn restores_of(&self, id: LunId) -> u64 {
        self.restores.get(&id).copied().unwrap_or(0)
    }
}

/// What the handles of one array share.
struct Inner {
    /// The pool directory (none for an array in memory).
    dir: Option<PathBuf>,
    /// The file system the pool directory is on (every file operation of the pool and of its
    /// LUNs' volumes goes through it).
    fs: Arc<dyn Fs>,
    core: RwLock<Core>,
    /// Each LUN's access epoch and in-flight I/O (see `fence.rs`).
    fences: fence::Fences,
    /// The operations the open resumed in the background ([`Array::resumed`]).
    resumed: Mutex<Vec<open::Resumed>>,
    subscribers: Mutex<Vec<(u64, Subscriber)>>,
    next_subscription: std::sync::atomic::AtomicU64,
    /// Feeds [`Array::subscribe_channel`]'s bounded queues.
    hub: cow_engine::events::Hub<Notification>,
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
    /// Refuses a block size that is not a power of two from 4 KiB to 1 MiB.
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

/// The error of a LUN that has a long operation running.
fn lun_busy(name: &str) -> Error {
    Error::new(
        ErrorKind::Busy,
        format!("LUN {name:?} has an operation running"),
    )
}

/// Initiator ids `ids` as the log records them: each as its canonical text reads back (the
/// edge's one parse; a hand-built id whose text is not an initiator id is refused here, with
/// [`ErrorKind::InvalidInitiator`], before any change is made).
fn checked_ids(ids: &[InitiatorId]) -> Result<Vec<InitiatorId>> {
    ids.iter()
        .map(|id| InitiatorId::parse(&id.to_string()))
        .collect()
}

/// Unmasking list `spec` as the log records it: the list its canonical text reads back as (the
/// edge's one parse; the change carries that value, and the text is only its encoding in the
/// record). Refused (with [`ErrorKind::InvalidInitiator`]) unless it reads back as `spec`, so that
/// what is recorded means what was given: a list built by hand rather than by
/// [`MaskSpec::parse`] could hold a name whose text says something else (a `;` in a group name,
/// an id not in canonical form). An empty [`MaskSpec::List`] reads back as [`MaskSpec::None`],
/// which means the same.
fn checked_mask(spec: &MaskSpec) -> Result<MaskSpec> {
    let text = spec.to_string();
    let back = MaskSpec::parse(&text)?;
    if back != *spec && !matches!(spec, MaskSpec::List(m) if m.is_empty()) {
        return Err(Error::new(
            ErrorKind::InvalidInitiator,
            format!(
                "the unmasking list given reads back as {text:?}, which means something else \
                 (an id not in canonical form, or a group name that is not valid)"
            ),
        ));
    }
    Ok(back)
}

impl Array {
    /// This array's identity in the process: the same for every clone of this handle, another
    /// for an array opened or made apart (a key for "the same LUN of the same array", as the
    /// shadow-copy providers need to keep a LUN in one set at a time).
    pub fn instance_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Applies `change` to the array state and makes it durable; on error nothing changed, in
    /// memory or on disk.
    ///
    /// `apply` validates everything before it changes anything, so a change it refuses changes
    /// nothing. A change it takes is appended and fsynced before the lock is let go and before
    /// anyone is told; if the append fails, the log is cut back to where it was and the state is
    /// put back to what the files hold (the checkpoint and the log, read again): the caller gets
    /// the error and sees the state as it was. (Applying to a copy instead would make every
    /// change cost a copy of the whole metadata: 2 ms at 1,000 LUNs, 53 ms at 10,000.)
    fn commit(core: &mut Core, change: &Change) -> Result<Vec<Notification>> {
        if let Some(store) = &core.store {
            // A store that cannot vouch for its files refuses before anything is applied.
            store.check()?;
        }
        let notes = core.state.apply(change)?;
        fence::note(&mut core.unfenced, change);
        let Some(store) = &mut core.store else {
            return Ok(notes);
        };
        if let Err(e) = store.append(change) {
            match store.reread(core.state.block_size) {
                Ok(durable) => core.state = durable,
                // Memory holds a change the files may not: the store refuses every later change
                // (`check`), and the pool must be reopened.
                Err(r) => store.poison(format!("{e}; then reading the pool back: {r}")),
            }
            return Err(e);
        }
        if store.wants_checkpoint() {
            // The change is durable: a checkpoint that fails is not its failure. Everything is
            // still in the log, and the checkpoint is tried again after the next change.
            let st = core.state.to_checkpoint(store.seq());
            let _ = store.checkpoint(&st);
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
            let r = f(&mut core);
            // Before the lock is released: I/O admitted under the old access has finished.
            self.drain_fences(&mut core);
            r?
        };
        self.announce(notes);
        Ok(out)
    }

    /// Waits for the I/O admitted under the access that the applied changes altered (with the
    /// admin lock's write side held): every I/O after this sees the new access.
    fn drain_fences(&self, core: &mut Core) {
        let Core {
            state, unfenced, ..
        } = core;
        self.inner
            .fences
            .drain(unfenced, |id| !state.luns.contains_key(&id));
    }

    /// Runs `change` as one transaction.
    fn simple(&self, change: Change) -> Result<()> {
        self.transact(|core| Ok(((), Array::commit(core, &change)?)))
    }

    /// Runs the change `f` makes for LUN `name`'s id as one transaction.
    fn change_lun(&self, name: &str, f: impl FnOnce(LunId) -> Change) -> Result<()> {
        self.transact(|core| {
            let id = core.state.id_of(name)?;
            Ok(((), Array::commit(core, &f(id))?))
        })
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

    /// Writes a checkpoint (`pool.state`, emptying the log) after every `changes` changes
    /// instead of every 1,024: fewer makes a shorter log to replay at open and more checkpoint
    /// writes (tests use it to cross checkpoints quickly). Refused for 0; no effect in memory.
    pub fn set_checkpoint_interval(&self, changes: u64) -> Result<()> {
        if changes == 0 {
            return Err(Error::invalid("a checkpoint interval of 0 changes"));
        }
        if let Some(store) = &mut self.inner.core.write().store {
            store.checkpoint_every = changes;
        }
        Ok(())
    }

    /// What an open found in the pool's `luns/` and could not account for (a LUN volume whose
    /// creation did not commit, or whose record was lost): never deleted, moved to
    /// `<pool>/orphans/`, where an administrator can examine it. Sorted paths; empty for an array
    /// in memory.
    pub fn orphans(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.inner.dir else {
            return Vec::new();
        };
        let orphans = dir.join(open::ORPHANS_DIR);
        // Listed sorted.
        self.inner
            .fs
            .list_dir(&orphans)
            .map(|names| names.iter().map(|n| orphans.join(n)).collect())
            .unwrap_or_default()
    }
}
