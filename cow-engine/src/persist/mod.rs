//! Persistence: a volume's devices, their formatting, and recovery by journal replay.
//!
//! A file volume is a directory:
//!
//! ```text
//! origin.img    the volume's bytes, in place
//! diff.img      superblock, then block-sized data slots
//! journal.0     journal header + records (one of the two is active)
//! journal.1
//! ```
//!
//! The byte layout is in docs/format.md.

mod journal;
mod record;
mod superblock;

pub(crate) use journal::Journal;
pub(crate) use record::Record;
use record::{JOURNAL_KINDS, RECORD_HEADER};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Durability, SnapshotOptions, VolumeConfig, MAX_VOLUME_LEN};
use crate::device::{BlockDevice, DeviceRole, Fence, Fenced};
use crate::error::{Error, ErrorKind, Result};
use crate::framing;
use crate::fs::{parent_dir, EntryKind, Fs, LockGuard};
use crate::map::{BlockMap, MAX_SLOT};
use crate::state::State;
use journal::JournalPosition;
use superblock::{random_uuid, JournalHeader, Superblock, JOURNAL_DATA, SUPERBLOCK_LEN};

const ORIGIN_FILE: &str = "origin.img";
const DIFF_FILE: &str = "diff.img";
const JOURNAL_FILES: [&str; 2] = ["journal.0", "journal.1"];

/// A volume's devices and what its superblock says.
pub(crate) struct Store {
    pub(crate) origin: Arc<dyn BlockDevice>,
    pub(crate) diff: Arc<dyn BlockDevice>,
    pub(crate) journals: [Arc<dyn BlockDevice>; 2],
    pub(crate) config: VolumeConfig,
    pub(crate) data_offset: u64,
    pub(crate) uuid: [u8; 16],
    /// The directory it lives in, for volumes in one.
    pub(crate) home: Option<Home>,
    position: Option<JournalPosition>,
}

/// Origin, diff device, journal and home directory, as assembled into a volume.
pub(crate) type Parts = (
    Arc<dyn BlockDevice>,
    Arc<dyn BlockDevice>,
    Option<Journal>,
    Option<Home>,
);

/// The directory a file volume lives in, and what proves that a directory is that one: its device
/// and inode as opened, the `diff.img` it holds locked, and the volume id in its superblock.
pub(crate) struct Home {
    /// The file system the directory is on.
    fs: Arc<dyn Fs>,
    /// The path the volume was created or opened with.
    dir: PathBuf,
    /// The directory's device and inode when the volume was created or opened (on the real file
    /// system; a simulated one has no identities and is checked by its superblock alone).
    dir_id: Option<(u64, u64)>,
    /// The lock of `diff.img`, held while the volume is open (on the real file system, a
    /// descriptor of it).
    lock: LockGuard,
    /// The volume id of the superblock (set once the store knows it).
    uuid: [u8; 16],
}

/// Device and inode of `path`, as `std::fs::metadata` follows it.
fn file_id(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| Error::io("cannot stat", e).with_path(path))?;
    Ok((m.dev(), m.ino()))
}

impl Home {
    /// Takes the lock of the volume directory `dir` (on its `diff.img`) and notes its identity.
    fn take(fs: &Arc<dyn Fs>, dir: &Path) -> Result<Home> {
        let lock = lock_file(fs.as_ref(), &dir.join(DIFF_FILE))?;
        let dir_id = match lock.downcast_ref::<File>() {
            Some(_) => Some(file_id(dir)?),
            None => None,
        };
        Ok(Home {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            dir_id,
            lock,
            uuid: [0; 16],
        })
    }

    /// The file system the volume's directory is on.
    pub(crate) fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// True when the directory is on the real file system (it has an identity to resolve).
    pub(crate) fn is_real(&self) -> bool {
        self.dir_id.is_some()
    }

    /// Checks that `dir` is this volume's directory: the very directory it was created or opened
    /// in (device and inode, whatever path names it), holding the very `diff.img` it has locked,
    /// whose superblock carries its volume id. Anything else is [`ErrorKind::InvalidArgument`]
    /// naming `dir`, and nothing is touched.
    pub(crate) fn check_is(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let not_ours = |why: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "not this volume's directory: {why} (the volume lives in {})",
                    self.dir.display()
                ),
            )
            .with_path(dir)
        };
        check_is_dir(self.fs.as_ref(), dir)?;
        let diff_path = dir.join(DIFF_FILE);
        if let (Some(dir_id), Some(lock)) = (self.dir_id, self.lock.downcast_ref::<File>()) {
            if file_id(dir)? != dir_id {
                return Err(not_ours("another directory".into()));
            }
            let held = lock.metadata().map_err(|e| {
                Error::io("cannot stat the locked diff area", e).with_path(&diff_path)
            })?;
            let found = match file_id(&diff_path) {
                Ok(id) => id,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(not_ours(format!("it holds no {DIFF_FILE}")))
                }
                Err(e) => return Err(e),
            };
            if found != (held.dev(), held.ino()) {
                return Err(not_ours(format!(
                    "its {DIFF_FILE} is not the one this volume holds"
                )));
            }
        } else if dir != self.dir {
            return Err(not_ours("another directory".into()));
        }
        let mut b = [0u8; SUPERBLOCK_LEN];
        open_member(self.fs.as_ref(), dir, DIFF_FILE)?.read_at(&mut b, 0)?;
        let sb = Superblock::decode(&b).map_err(|e| e.with_path(&diff_path))?;
        if sb.uuid != self.uuid {
            return Err(not_ours(format!("its {DIFF_FILE} names another volume id")));
        }
        Ok(())
    }
}

/// The result of recovery.
pub(crate) struct Recovered {
    pub(crate) store: Store,
    pub(crate) state: State,
    /// Sorted, without duplicates.
    pub(crate) used_slots: Vec<u64>,
}

/// Takes an exclusive lock on `path` so one process owns the volume at a time.
fn lock_file(fs: &dyn Fs, path: &Path) -> Result<LockGuard> {
    fs.lock(path).map_err(|e| {
        if e.kind() == ErrorKind::Busy {
            Error::new(
                ErrorKind::Busy,
                "volume is in use by another handle or process",
            )
            .with_path(path)
        } else {
            e
        }
    })
}

/// Makes sure `dir` is an empty directory, creating it if missing (its parent must exist; the new
/// entry is made durable).
fn prepare_empty_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    match fs.list_dir(dir) {
        Ok(entries) => {
            if !entries.is_empty() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "volume directory exists and is not empty",
                )
                .with_path(dir));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs.create_dir(dir)?;
            // The directory's own entry is durable before anything is created in it.
            fs.sync_dir(parent_dir(dir))?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Checks that `dir` is a directory (a missing one is NotFound, a file InvalidArgument).
fn check_is_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    match fs.kind(dir)? {
        Some(EntryKind::Dir) => Ok(()),
        Some(EntryKind::File) => Err(Error::new(
            ErrorKind::InvalidArgument,
            "not a volume directory: the path is a file",
        )
        .with_path(dir)),
        None => Err(Error::new(ErrorKind::NotFound, "no volume directory").with_path(dir)),
    }
}

/// Opens the device file `name` of volume directory `dir`; a missing one is Corrupt.
fn open_member(fs: &dyn Fs, dir: &Path, name: &str) -> Result<Arc<dyn BlockDevice>> {
    let p: PathBuf = dir.join(name);
    fs.open_file(&p).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::new(ErrorKind::Corrupt, format!("volume directory lacks {name}")).with_path(&p)
        } else {
            e
        }
    })
}

/// The path of the origin file of the volume in `dir` (present unless the volume is stacked on
/// another device).
pub(crate) fn origin_path(dir: &Path) -> PathBuf {
    dir.join(ORIGIN_FILE)
}

impl Store {
    pub(crate) fn create_dir(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        size: u64,
        config: &VolumeConfig,
    ) -> Result<Store> {
        prepare_empty_dir(fs.as_ref(), dir)?;
        let origin = fs.create_file(&dir.join(ORIGIN_FILE), size)?;
        Store::create_members(fs, dir, origin, config)
    }

    /// Creates a volume in `dir` whose origin is `origin` (another volume's snapshot, say): the
    /// directory holds its diff area and journals, no origin file.
    pub(crate) fn create_stacked_dir(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        origin: Arc<dyn BlockDevice>,
        config: &VolumeConfig,
    ) -> Result<Store> {
        prepare_empty_dir(fs.as_ref(), dir)?;
        Store::create_members(fs, dir, origin, config)
    }

    /// Creates the diff area and journals in `dir`, takes the directory's lock, formats the volume
    /// over `origin` and makes the directory's entries durable.
    fn create_members(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        origin: Arc<dyn BlockDevice>,
        config: &VolumeConfig,
    ) -> Result<Store> {
        let diff = fs.create_file(&dir.join(DIFF_FILE), 0)?;
        let j0 = fs.create_file(&dir.join(JOURNAL_FILES[0]), 0)?;
        let j1 = fs.create_file(&dir.join(JOURNAL_FILES[1]), 0)?;
        let home = Home::take(fs, dir)?;
        let store = Store::format(origin, diff, [j0, j1], Some(home), config)?;
        fs.sync_dir(dir)?;
        Ok(store)
    }

    /// Opens a volume created by [`Store::create_stacked_dir`] over the same `origin`.
    pub(crate) fn open_stacked_dir(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        origin: Arc<dyn BlockDevice>,
    ) -> Result<Store> {
        check_is_dir(fs.as_ref(), dir)?;
        Store::open_members(fs, dir, origin)
    }

    pub(crate) fn open_dir(fs: &Arc<dyn Fs>, dir: &Path) -> Result<Store> {
        check_is_dir(fs.as_ref(), dir)?;
        let origin = open_member(fs.as_ref(), dir, ORIGIN_FILE)?;
        Store::open_members(fs, dir, origin)
    }

    /// Opens the diff area and journals in `dir` over `origin`, taking the directory's lock.
    fn open_members(fs: &Arc<dyn Fs>, dir: &Path, origin: Arc<dyn BlockDevice>) -> Result<Store> {
        let diff = open_member(fs.as_ref(), dir, DIFF_FILE)?;
        let journals = [
            open_member(fs.as_ref(), dir, JOURNAL_FILES[0])?,
            open_member(fs.as_ref(), dir, JOURNAL_FILES[1])?,
        ];
        let home = Home::take(fs, dir)?;
        Store::open(origin, diff, journals, Some(home)).map_err(|e| {
            if e.path().is_none() {
                e.with_path(dir)
            } else {
                e
            }
        })
    }

    pub(crate) fn remove_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
        for name in [ORIGIN_FILE, DIFF_FILE, JOURNAL_FILES[0], JOURNAL_FILES[1]] {
            match fs.remove_file(&dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        fs.remove_dir(dir)
    }

    /// Writes a fresh superblock and an empty journal.
    pub(crate) fn format(
        origin: Arc<dyn BlockDevice>,
        diff: Arc<dyn BlockDevice>,
        journals: [Arc<dyn BlockDevice>; 2],
        home: Option<Home>,
        config: &VolumeConfig,
    ) -> Result<Store> {
        let uuid = random_uuid()?;
        // The origin's size (set when its file was created, say) is durable before the journal
        // header that makes the volume openable: recovery refuses a journal whose volume is larger
        // than the origin.
        origin.flush()?;
        let data_offset = u64::from(config.block_size).max(4096);
        let sb = Superblock {
            uuid,
            config: config.clone(),
            data_offset,
        };
        journal::resize(diff.as_ref(), data_offset)?;
        diff.write_at(&sb.encode(), 0)?;
        diff.flush()?;
        let state = State::empty(origin.len());
        let mut body = Vec::new();
        let recs = journal::checkpoint_records(&state);
        for (i, r) in recs.iter().enumerate() {
            r.encode(i as u64 + 1, &mut body);
        }
        journal::resize(journals[1].as_ref(), 0)?;
        journals[1].flush()?;
        let j = &journals[0];
        // Emptied first, as a checkpoint empties its file: a device reused from another volume
        // must not keep old records after the new ones (recovery would take them for a later
        // write). Then allocated like every later growth, so the first syncs carry no allocation.
        journal::resize(j.as_ref(), 0)?;
        journal::grow_allocated(
            j.as_ref(),
            (JOURNAL_DATA + body.len() as u64).next_multiple_of(1 << 20),
        )?;
        j.write_at(&body, JOURNAL_DATA)?;
        // The checkpoint is durable before the header that makes the file a candidate, as in
        // every later checkpoint: a valid header always has a complete checkpoint behind it.
        j.flush()?;
        j.write_at(
            &JournalHeader {
                uuid,
                generation: 1,
            }
            .encode(),
            0,
        )?;
        j.flush()?;
        let position = Some(JournalPosition {
            active: 0,
            generation: 1,
            end: JOURNAL_DATA + body.len() as u64,
            next_seq: recs.len() as u64 + 1,
            checkpoint_len: body.len() as u64,
        });
        Ok(Store {
            origin,
            diff,
            journals,
            config: config.clone(),
            data_offset,
            uuid,
            home: home.map(|h| Home { uuid, ..h }),
            position,
        })
    }

    /// Reads the superblock of existing devices.
    pub(crate) fn open(
        origin: Arc<dyn BlockDevice>,
        diff: Arc<dyn BlockDevice>,
        journals: [Arc<dyn BlockDevice>; 2],
        home: Option<Home>,
    ) -> Result<Store> {
        if diff.len() < SUPERBLOCK_LEN as u64 {
            return Err(Error::corrupt(
                "diff area is too short to hold a superblock",
            ));
        }
        let mut b = [0u8; SUPERBLOCK_LEN];
        diff.read_at(&mut b, 0)?;
        let sb = Superblock::decode(&b)?;
        Ok(Store {
            origin,
            diff,
            journals,
            config: sb.config,
            data_offset: sb.data_offset,
            uuid: sb.uuid,
            home: home.map(|h| Home { uuid: sb.uuid, ..h }),
            position: None,
        })
    }

    /// Splits the store into the volume's parts; the journal only for persistent volumes, its
    /// devices behind `fence`.
    pub(crate) fn into_parts(self, durability: Durability, fence: &Arc<Fence>) -> Result<Parts> {
        let journal = match (durability, self.position) {
            (Durability::Persistent, Some(pos)) => {
                let journals = self
                    .journals
                    .map(|j| Fenced::wrap(j, fence, DeviceRole::Journal));
                Some(Journal::new(journals, self.uuid, pos))
            }
            (Durability::Persistent, None) => {
                return Err(Error::corrupt("journal position unknown (not recovered)"))
            }
            (Durability::Volatile, _) => None,
        };
        Ok((self.origin, self.diff, journal, self.home))
    }

    /// Replays the journal into a [`State`].
    pub(crate) fn recover(mut self) -> Result<Recovered> {
        let shift = self.config.block_size.trailing_zeros();
        if self.config.durability == Durability::Volatile {
            // Nothing of the diff area survives; start it afresh.
            let len = self.origin.len();
            if len == 0
                || !len.is_multiple_of(u64::from(self.config.block_size))
                || len > MAX_VOLUME_LEN
            {
                return Err(Error::corrupt(format!(
                    "the origin holds {len} bytes, not a positive multiple of the block size {} \
                     of at most {MAX_VOLUME_LEN}",
                    self.config.block_size
                )));
            }
            let state = State::empty(len);
            return Ok(Recovered {
                store: self,
                state,
                used_slots: Vec::new(),
            });
        }
        // Candidates by generation, newest first.
        let mut headers = Vec::new();
        for (i, j) in self.journals.iter().enumerate() {
            if j.len() < JOURNAL_DATA {
                continue;
            }
            let mut b = [0u8; SUPERBLOCK_LEN];
            j.read_at(&mut b, 0)?;
            if let Some(h) = JournalHeader::decode(&b, &self.uuid)? {
                headers.push((h.generation, i));
            }
        }
        // The newest generation is the state. A header is written only after its checkpoint is
        // durable, so a crash while checkpointing leaves the new file without a valid header (not
        // a candidate); a candidate whose checkpoint does not replay is damaged, and falling back
        // to the older file would revive stale metadata over reused slots: an error instead.
        let Some(&(generation, i)) = headers.iter().max() else {
            return Err(Error::corrupt(
                "no journal found (both journal headers are damaged or missing)",
            ));
        };
        let limits = Limits {
            shift,
            slots: self.diff.len().saturating_sub(self.data_offset) >> shift,
        };
        let name = JOURNAL_FILES[i];
        let replayed = replay(self.journals[i].as_ref(), limits).map_err(|e| match e.kind() {
            // Damage is reported against the file; an I/O error keeps its kind and context.
            ErrorKind::Corrupt => Error::corrupt(format!("{name}: {}", e.message())),
            _ => e,
        })?;
        match replayed {
            Replay::Incomplete { at } => Err(Error::corrupt(format!(
                "{name}: the checkpoint of generation {generation} ends before its last record \
                 (damaged or truncated at byte {at}), though its header is durable"
            ))
            .with_offset(at)),
            Replay::DamagedBeforeLaterWrite { at, seq, later } => Err(Error::corrupt(format!(
                "{name}: record {seq} at byte {at} is damaged, but a later write (records from \
                 {later} on) followed it: the journal is corrupt, not torn by a crash"
            ))
            .with_offset(at)),
            Replay::Complete(r) => {
                let other = 1 - i;
                if !headers.iter().any(|&(_, j)| j == other) {
                    if let Some((first, last)) =
                        continues_after_checkpoint(self.journals[other].as_ref(), r.next_seq)?
                    {
                        return Err(Error::corrupt(format!(
                            "{}: its header is damaged, yet it holds records {first}..={last} that \
                             continue {name} past a checkpoint: it was the active journal, and \
                             {name} is stale",
                            JOURNAL_FILES[other]
                        ))
                        .with_offset(0));
                    }
                }
                let origin_len = self.origin.len();
                if r.state.len > origin_len {
                    return Err(Error::corrupt(format!(
                        "journal says the volume has {} bytes, the origin holds {origin_len}",
                        r.state.len
                    )));
                }
                let used = r.state.used_slots()?;
                if let Some(&top) = used.last().filter(|&&top| top >= limits.slots) {
                    return Err(Error::corrupt(format!(
                        "{name}: a snapshot uses slot {top}, outside the diff area's {} slots",
                        limits.slots
                    )));
                }
                // Only now, with the state known good, drop the torn tail so no stale bytes
                // follow the records we append next.
                let dev = &self.journals[i];
                if let Some(rs) = dev.as_resize() {
                    rs.resize(r.end.next_multiple_of(1 << 20))?;
                    let tail = r.end.next_multiple_of(1 << 20) - r.end;
                    dev.write_at(&vec![0u8; tail as usize], r.end)?;
                    dev.flush()?;
                }
                self.position = Some(JournalPosition {
                    active: i,
                    generation,
                    end: r.end,
                    next_seq: r.next_seq,
                    checkpoint_len: r.checkpoint_len,
                });
                Ok(Recovered {
                    store: self,
                    state: r.state,
                    used_slots: used,
                })
            }
        }
    }
}

struct Replayed {
    state: State,
    end: u64,
    next_seq: u64,
    checkpoint_len: u64,
}

/// Counters read from disk (seqs, snapshot ids, generations) above this are corrupt: the engine
/// adds to them, and no real volume gets near.
pub(crate) const MAX_COUNTER: u64 = 1 << 62;

/// What replay checks records against.
#[derive(Clone, Copy)]
struct Limits {
    shift: u32,
    /// Slots the diff device has room for (checked against the slots in use once replay ends).
    slots: u64,
}

/// What replaying a journal device found.
enum Replay {
    /// The records up to the end or to a torn tail (damage within the last write).
    Complete(Replayed),
    /// The checkpoint's records stop at byte `at` before its `CheckpointEnd`.
    Incomplete { at: u64 },
    /// Record `seq` at byte `at` does not decode, yet a later write (from record `later` on)
    /// follows it: it had been durable, so this is damage, not a torn tail.
    DamagedBeforeLaterWrite { at: u64, seq: u64, later: u64 },
}

/// Replays one journal device.
fn replay(dev: &dyn BlockDevice, limits: Limits) -> Result<Replay> {
    let len = dev.len();
    let mut data = vec![0u8; (len - JOURNAL_DATA) as usize];
    dev.read_at(&mut data, JOURNAL_DATA)?;
    let mut at = 0usize;
    let mut state = State::empty(0);
    let mut expected_seq = None;
    let mut checkpoint_len = None;
    while let Some((seq, rec, used)) = Record::decode(&data[at..])? {
        if expected_seq.is_some_and(|e| e != seq) {
            break;
        }
        if seq > MAX_COUNTER {
            return Err(Error::corrupt(format!(
                "journal record seq {seq} is out of range"
            )));
        }
        expected_seq = Some(seq + 1);
        let was_end = matches!(rec, Record::CheckpointEnd { .. });
        apply(&mut state, rec, limits)
            .map_err(|e| Error::corrupt(format!("journal record {seq}: {}", e.message())))?;
        at += used;
        if was_end && checkpoint_len.is_none() {
            checkpoint_len = Some(at as u64);
        }
    }
    let Some(checkpoint_len) = checkpoint_len else {
        return Ok(Replay::Incomplete {
            at: JOURNAL_DATA + at as u64,
        });
    };
    let seq = expected_seq.unwrap_or(1);
    if let Some(later) = written_after(&data, at, seq) {
        return Ok(Replay::DamagedBeforeLaterWrite {
            at: JOURNAL_DATA + at as u64,
            seq,
            later,
        });
    }
    Ok(Replay::Complete(Replayed {
        state,
        end: JOURNAL_DATA + at as u64,
        next_seq: expected_seq.unwrap_or(1),
        checkpoint_len,
    }))
}

/// For a journal file without a valid header: if its records continue the chosen journal's (the
/// first has seq `next_seq`) and go on past a complete checkpoint, returns their seq range.
///
/// A crash during a checkpoint leaves the new file headerless with at most its checkpoint (nothing is
/// appended to a file before its header is durable), so records after the checkpoint mean the file
/// was switched to and written: its header was damaged since, and the chosen file is stale.
fn continues_after_checkpoint(dev: &dyn BlockDevice, next_seq: u64) -> Result<Option<(u64, u64)>> {
    let len = dev.len();
    if len < JOURNAL_DATA + RECORD_HEADER as u64 {
        return Ok(None);
    }
    let mut data = vec![0u8; (len - JOURNAL_DATA) as usize];
    dev.read_at(&mut data, JOURNAL_DATA)?;
    let (mut at, mut expect, mut closed) = (0usize, next_seq, false);
    while let Ok(Some((seq, rec, used))) = Record::decode(&data[at..]) {
        if seq != expect {
            break;
        }
        if closed {
            return Ok(Some((next_seq, seq)));
        }
        closed = matches!(rec, Record::CheckpointEnd { .. });
        at += used;
        expect += 1;
    }
    Ok(None)
}

/// Records of a later write past `at`, where replay stopped ([`framing::written_after`]).
fn written_after(data: &[u8], at: usize, expected: u64) -> Option<u64> {
    framing::written_after(data, at, expected, &JOURNAL_KINDS)
}

fn check_entry(map: &BlockMap, block: u64, slot: u64) -> Result<()> {
    if block >= map.capacity() {
        return Err(Error::corrupt(format!(
            "block {block} past the snapshot's {} blocks",
            map.capacity()
        )));
    }
    // A slot past the diff area's end is checked on the final state (see `recover`): the area
    // is trimmed when its top slots are freed, so records of deleted snapshots may name slots
    // past its end now.
    if slot > MAX_SLOT {
        return Err(Error::corrupt(format!(
            "slot {slot} is above the largest slot number {MAX_SLOT}"
        )));
    }
    Ok(())
}

fn check_len(len: u64, shift: u32) -> Result<()> {
    if len == 0 || len & ((1 << shift) - 1) != 0 {
        return Err(Error::corrupt(format!(
            "size {len} is not a positive multiple of the block size"
        )));
    }
    if len > MAX_VOLUME_LEN {
        return Err(Error::corrupt(format!(
            "size {len} exceeds the limit of {MAX_VOLUME_LEN} bytes"
        )));
    }
    Ok(())
}

/// Applies one record to the state being rebuilt.
fn apply(state: &mut State, rec: Record, limits: Limits) -> Result<()> {
    let shift = limits.shift;
    match rec {
        Record::VolumeLen { len } | Record::Grow { len } => {
            check_len(len, shift)?;
            if len < state.len {
                return Err(Error::corrupt("the volume shrank"));
            }
            state.len = len;
        }
        Record::CreateSnapshot {
            id,
            len,
            writable,
            persistent,
            pinned,
            metadata,
        } => {
            if id < state.next_id || state.snaps.iter().any(|s| s.id == id) {
                return Err(Error::corrupt(format!("snapshot id {id} reused")));
            }
            check_len(len, shift)?;
            if len > state.len || state.snaps.last().is_some_and(|s| s.len > len) {
                return Err(Error::corrupt(format!(
                    "snapshot {id} of {len} bytes does not fit the volume's history"
                )));
            }
            if id.get() > MAX_COUNTER {
                return Err(Error::corrupt(format!("snapshot id {id} is out of range")));
            }
            let options = SnapshotOptions {
                writable,
                persistent,
                pinned,
                metadata,
            };
            state.push_snapshot(id, len, shift, options);
        }
        Record::Preserve {
            snapshot,
            block,
            slot,
        } => {
            let s = state.snap_mut(snapshot)?;
            check_entry(&s.map, block, slot)?;
            s.map.reserve()?;
            s.map.set_preserved(block, slot);
        }
        Record::Overlay {
            snapshot,
            block,
            slot,
        } => {
            let s = state.snap_mut(snapshot)?;
            let ov = s
                .overlay
                .as_mut()
                .ok_or_else(|| Error::corrupt("overlay record for a read-only snapshot"))?;
            check_entry(ov, block, slot)?;
            ov.reserve()?;
            ov.set_preserved(block, slot);
        }
        Record::DeleteSnapshot { id } => {
            let i = state.index_of(id)?;
            state.reserve_elder(i)?;
            state.remove_snapshot(i, shift);
        }
        Record::SetPinned { id, pinned } => state.snap_mut(id)?.pinned = pinned,
        Record::SetMetadata { id, metadata } => state.snap_mut(id)?.metadata = metadata,
        Record::RevertBegin { snapshot } => {
            state.snap_mut(snapshot)?;
            state.pending_revert = Some((snapshot, 0));
        }
        Record::RevertProgress { snapshot, cursor } => {
            state.snap_mut(snapshot)?;
            state.pending_revert = Some((snapshot, cursor));
        }
        Record::RevertDone { .. } => state.pending_revert = None,
        Record::SplitProgress { snapshot, cursor } => {
            state.snap_mut(snapshot)?.split_cursor = cursor
        }
        Record::CheckpointEnd { next_id } => {
            if next_id.get() > MAX_COUNTER {
                return Err(Error::corrupt(format!(
                    "next snapshot id {next_id} is out of range"
                )));
            }
            if state.len == 0 {
                return Err(Error::corrupt(
                    "the journal's checkpoint does not give the volume's size",
                ));
            }
            state.next_id = state.next_id.max(next_id);
        }
        // A boundary between writes; recovery reads it when a record fails (see `written_after`).
        Record::SyncEnd { .. } => {}
    }
    Ok(())
}
