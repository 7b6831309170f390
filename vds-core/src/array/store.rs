//! Persistence of the array's metadata in the pool directory.
//!
//! ```text
//! pool.lock    advisory lock (flock) held by the one process that owns the pool; holds its pid
//! pool.state   checkpoint: a 28-byte header [b"UMBRAPST"][u32 LE version = 4][u32 LE crc32 of
//!              the payload][u64 LE payload length][u32 LE crc32 of the 24 bytes before it], then
//!              the whole metadata as JSON (written to pool.state.tmp, fsync, rename, fsync dir)
//! pool.log     changes since the checkpoint: a 16-byte header
//!              [b"UMBRAPLG"][u32 LE version = 6][u32 LE crc32 of the 12 bytes before it]
//!              then frames of cow-engine's record framing (`cow_engine::framing`):
//!              [u32 LE payload length][u32 LE crc32 of the rest][u64 LE seq][u8 kind][payload]
//!              kind 1: a change (JSON); kind 2: the sync mark closing each write (u64 LE: the seq
//!              of the write's first frame)
//! luns/<id>/   each LUN's cow-engine volume
//! ```
//!
//! A change is durable when its frame and the mark after it are written and the log fsynced (one
//! fsync per change). Reopen loads the checkpoint and replays frames with a higher seq. A frame
//! that does not decode is a torn tail (dropped) only if no later write follows it; otherwise it
//! was durable and is damaged: the open fails with `Corrupt`, naming the file and byte offset, and
//! nothing is dropped. A newer version is `UnsupportedVersion`. A pool of an older format (a log
//! without header, a log of version 2 to 5, a checkpoint of plain JSON) is read as it was and upgraded
//! in place before anything is appended ([`PoolStore::upgrade`]).
//!
//! A failed append or checkpoint leaves the files as they were: an append that fails cuts the log
//! back to where it was (and the store refuses every later change only if that fails too); a
//! checkpoint that fails is retried after the next change.
//!
//! Every file operation goes through the pool's [`Fs`] (the real file system, or a simulated one
//! whose crashes a test studies): the log is a device file of it, appended by a resize and a
//! write and made durable by its flush.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::framing::{self, AfterStop, Kinds};
use cow_engine::fs::{Fs, LockGuard};
use cow_engine::BlockDevice;

use super::state::{ArrayState, Change, PoolState};
use crate::error::{Error, ErrorKind, Result};

const LOCK_FILE: &str = "pool.lock";
const STATE_FILE: &str = "pool.state";
const STATE_TMP: &str = "pool.state.tmp";
const LOG_FILE: &str = "pool.log";
const LOG_TMP: &str = "pool.log.tmp";
/// Checkpoint after this many changes.
const CHECKPOINT_EVERY: u64 = 1024;
/// The log header: magic, version, crc32 of both.
const LOG_MAGIC: &[u8; 8] = b"UMBRAPLG";
/// The log format this build writes: 6 (version 5 had no volatile LUNs and no `fill`, `revert`
/// or `copy` intents, version 4 no snapshot-set deletion, engine-shadow or exposed-shadow records,
/// version 3 no metadata records, version 2 no intent records; all are still read, and a pool of
/// an older one upgraded in place). A build that reads only an older
/// version refuses a log of this one as `UnsupportedVersion` before it meets a record it does
/// not know.
pub(crate) const LOG_VERSION: u32 = 6;
/// The oldest log format with a header, still read (and upgraded).
const LOG_VERSION_2: u32 = 2;
const LOG_HEADER: usize = 16;
/// The checkpoint's header: magic, version, payload crc32, payload length, header crc32.
const STATE_MAGIC: &[u8; 8] = b"UMBRAPST";
/// The checkpoint file format this build writes: 4, the layout of 2 with a payload that may hold
/// what log format 6 adds (volatile LUNs, `fill`, `revert` and `copy` intents; version 3: what log
/// format 5 added, engine-shadow intents), so a build reading only an older version refuses it
/// as `UnsupportedVersion` rather than `Corrupt`. Versions 2 and 3 are still read; version 1 was
/// plain JSON, still read.
pub(crate) const STATE_FILE_VERSION: u32 = 4;
/// The oldest checkpoint file format with a header, still read.
const STATE_FILE_VERSION_2: u32 = 2;
const STATE_HEADER: usize = 28;
/// The files whose presence makes a directory a pool (any one of them).
const POOL_FILES: [&str; 6] = [LOCK_FILE, STATE_FILE, STATE_TMP, LOG_FILE, LOG_TMP, "luns"];
/// Frame kinds of the log.
const KIND_CHANGE: u8 = 1;
const KIND_MARK: u8 = 2;
const LOG_KINDS: Kinds = Kinds {
    max: KIND_MARK,
    mark: KIND_MARK,
    max_payload: 64 << 20,
};
/// The first format's record header (no file header, no kinds, no marks).
const LEGACY_HEADER: usize = 16;

fn log_header() -> [u8; LOG_HEADER] {
    let mut h = [0u8; LOG_HEADER];
    h[..8].copy_from_slice(LOG_MAGIC);
    h[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The frames of one change: the change and the mark closing its write.
fn change_frames(seq: u64, change: &Change) -> Vec<u8> {
    let payload = serde_json::to_vec(change).expect("changes serialise");
    let mut out = Vec::with_capacity(2 * framing::FRAME_HEADER + payload.len() + 8);
    framing::encode(seq, KIND_CHANGE, &payload, &mut out);
    framing::encode_mark(seq + 1, KIND_MARK, seq, &mut out);
    out
}

/// What the log file held.
struct LogRead {
    changes: Vec<Change>,
    /// The seq of the last frame read (the checkpoint's when none is newer).
    seq: u64,
    /// Where the next frame goes (the end of the intact frames).
    end: usize,
    /// The log is in the first format and must be rewritten before anything is appended.
    legacy: bool,
}

/// Reads a log of the current format (`bytes` starts with [`LOG_MAGIC`]).
fn read_log(bytes: &[u8], applied: u64, path: &Path) -> Result<LogRead> {
    if bytes.len() < LOG_HEADER {
        // The header is written and synced before any frame: a short file is a header torn when
        // the pool was created, holding nothing.
        return Ok(LogRead {
            changes: Vec::new(),
            seq: applied,
            end: 0,
            legacy: false,
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..12]) != crc {
        return Err(
            Error::new(ErrorKind::Corrupt, "the pool log's header is damaged").with_path(path),
        );
    }
    if !(LOG_VERSION_2..=LOG_VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "the pool log is format version {version}; this build reads versions \
                 {LOG_VERSION_2} to {LOG_VERSION}"
            ),
        )
        .with_path(path));
    }
    let data = &bytes[LOG_HEADER..];
    let mut at = 0usize;
    let mut seq = applied;
    let mut expected: Option<u64> = None;
    let mut changes = Vec::new();
    while let Some((frame, used)) = framing::decode(&data[at..], &LOG_KINDS) {
        if expected.is_some_and(|e| e != frame.seq) {
            break;
        }
        expected = Some(frame.seq + 1);
        match frame.kind {
            KIND_CHANGE => {
                let change: Change = serde_json::from_slice(frame.payload).map_err(|e| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "pool log record {} at byte {} does not parse: {e}",
                            frame.seq,
                            LOG_HEADER + at
                        ),
                    )
                    .with_path(path)
                })?;
                // Records the checkpoint holds (a crash between its rename and the log's
                // truncation) are skipped.
                if frame.seq > applied {
                    changes.push(change);
                }
            }
            KIND_MARK => {}
            other => {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    format!(
                        "pool log record {} at byte {} is of kind {other}, unknown to this build",
                        frame.seq,
                        LOG_HEADER + at
                    ),
                )
                .with_path(path))
            }
        }
        seq = seq.max(frame.seq);
        at += used;
    }
    if at < data.len() {
        let next = expected.unwrap_or(applied + 1);
        // Unlike the engine's journal, the pool does not take damage inside a write whose
        // closing mark is intact for a torn tail: a frame and its mark are written and synced
        // together and are too small to be torn apart in practice, and losing an acknowledged
        // change silently could undo a mask change.
        match framing::after_stop(data, at, next, &LOG_KINDS) {
            AfterStop::Nothing => {}
            AfterStop::ClosingMark(mark) => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "pool log record {next} at byte {} is damaged, but the mark that \
                         closes its write (at byte {}) is intact: an acknowledged change \
                         would be lost",
                        LOG_HEADER + at,
                        LOG_HEADER + mark
                    ),
                )
                .with_path(path));
            }
            AfterStop::LaterWrite(later) => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "pool log record {next} at byte {} is damaged, but a later write (from \
                         record {later} on) follows it: acknowledged changes would be lost",
                        LOG_HEADER + at
                    ),
                )
                .with_path(path));
            }
        }
    }
    Ok(LogRead {
        changes,
        seq,
        end: LOG_HEADER + at,
        legacy: version != LOG_VERSION,
    })
}

/// Reads a log of the first format: records of [u32 payload length][u32 crc32 of seq+payload]
/// [u64 seq][JSON change], ended by the first one that does not check (that format has no marks
/// to tell damage from a torn tail).
fn read_legacy_log(bytes: &[u8], applied: u64, path: &Path) -> Result<LogRead> {
    let mut at = 0usize;
    let mut seq = applied;
    let mut changes = Vec::new();
    while let Some((rec_seq, used)) = legacy_record_at(bytes, at) {
        let n = used - LEGACY_HEADER;
        let change: Change = serde_json::from_slice(
            &bytes[at + LEGACY_HEADER..at + LEGACY_HEADER + n],
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("pool log record {rec_seq} does not parse: {e}"),
            )
            .with_path(path)
        })?;
        at += LEGACY_HEADER + n;
        if rec_seq <= applied {
            continue;
        }
        if rec_seq != seq + 1 {
            break;
        }
        seq = rec_seq;
        changes.push(change);
    }
    if at < bytes.len() {
        // That format syncs each record on its own: an intact record of a later seq past the
        // one that stopped the read proves that one was durable, and is damaged.
        if let Some(q) = (at + 1..bytes.len()).find(|&q| {
            legacy_record_at(bytes, q).is_some_and(|(s, _)| s > seq && s - seq < 1 << 40)
        }) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "pool log (first format) record {} at byte {at} is damaged, but a later \
                     record follows at byte {q}: acknowledged changes would be lost",
                    seq + 1
                ),
            )
            .with_path(path));
        }
    }
    Ok(LogRead {
        changes,
        seq,
        end: 0,
        legacy: true,
    })
}

/// The intact first-format record at `at`, if any: its seq and length.
fn legacy_record_at(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let rest = bytes.get(at..)?;
    if rest.len() < LEGACY_HEADER {
        return None;
    }
    let n = u32::from_le_bytes(rest[0..4].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4"));
    if n > LOG_KINDS.max_payload || rest.len() - LEGACY_HEADER < n {
        return None;
    }
    if crc32fast::hash(&rest[8..LEGACY_HEADER + n]) != crc {
        return None;
    }
    Some((
        u64::from_le_bytes(rest[8..16].try_into().expect("8")),
        LEGACY_HEADER + n,
    ))
}

/// A point where a test makes the store's file system fail (only tests set faults): the store
/// behaves as it would on that I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    /// Writing a change's frames to the log.
    LogWrite,
    /// The fsync after it.
    LogSync,
    /// Cutting the log back (after a failed append, or after a checkpoint).
    LogTruncate,
    /// Writing `pool.state.tmp`.
    StateWrite,
    /// Renaming it over `pool.state`.
    StateRename,
}

pub(crate) struct PoolStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    log: Arc<dyn BlockDevice>,
    log_len: u64,
    seq: u64,
    since_checkpoint: u64,
    /// The log holds records the installed checkpoint has (a checkpoint whose truncation of the
    /// log failed): it is cut down to its header before the next append.
    truncate_pending: bool,
    /// The files are of an older format until [`PoolStore::upgrade`] rewrites them: nothing is
    /// appended before.
    needs_upgrade: bool,
    /// Why the files are in a state this store cannot vouch for (an append failed and the log
    /// could not be cut back): every later change is refused.
    failed: Option<String>,
    /// Checkpoint after this many changes ([`CHECKPOINT_EVERY`]; tests set fewer).
    pub(crate) checkpoint_every: u64,
    /// The points at which the file system fails (tests), each after letting that many calls
    /// through.
    #[cfg(test)]
    pub(crate) faults: std::collections::BTreeMap<Fault, u32>,
    _lock: LockGuard,
}

/// What was on disk.
pub(crate) struct Loaded {
    pub(crate) checkpoint: Option<PoolState>,
    pub(crate) changes: Vec<Change>,
    /// The pool was just created (its directory was missing or empty).
    pub(crate) created: bool,
    /// The directory was missing, and made by this open.
    pub(crate) made_dir: bool,
    /// The names in `luns/` as this open found them (none if it was missing): listed once, under
    /// the pool's lock, for the recovery of the LUN volumes.
    pub(crate) lun_entries: Vec<String>,
}

/// The files and folders a new pool gets (what a failed create removes).
pub(crate) const NEW_POOL_FILES: [&str; 5] = ["luns", STATE_FILE, STATE_TMP, LOG_FILE, LOCK_FILE];

/// `e` (an engine or file-system error) as the cause of a failure to do `what` on `path`.
fn ctx(what: &str, path: &Path, e: impl Into<Error>) -> Error {
    e.into().context(what, path)
}

/// Sets the size of device `dev` (a file of the pool's [`Fs`], always resizable).
fn set_len(dev: &dyn BlockDevice, len: u64) -> cow_engine::Result<()> {
    match dev.as_resize() {
        Some(r) => r.resize(len),
        None => Err(cow_engine::Error::new(
            cow_engine::ErrorKind::Unsupported,
            "the file system's device cannot be resized",
        )),
    }
}

/// Replaces the whole contents of device `dev` by `bytes`, and flushes it.
fn rewrite(dev: &dyn BlockDevice, bytes: &[u8]) -> cow_engine::Result<()> {
    set_len(dev, 0)?;
    set_len(dev, bytes.len() as u64)?;
    dev.write_at(bytes, 0)?;
    dev.flush()
}

/// The whole contents of device `dev`.
fn read_all(dev: &dyn BlockDevice) -> cow_engine::Result<Vec<u8>> {
    let mut bytes = vec![0u8; dev.len() as usize];
    dev.read_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// Takes the pool's lock (`pool.lock`, created if missing; on the real file system an advisory
/// lock of the file, held until the guard is dropped) and writes this process's id into it.
fn lock(fs: &dyn Fs, dir: &Path) -> Result<LockGuard> {
    let path = dir.join(LOCK_FILE);
    match fs.create_file(&path, 0) {
        Ok(_) => {}
        Err(e) if e.kind() == cow_engine::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ctx("cannot open the pool lock", &path, e)),
    }
    let guard = match fs.lock(&path) {
        Ok(g) => g,
        Err(e) if e.kind() == cow_engine::ErrorKind::Busy => {
            let pid = fs.read_file(&path).unwrap_or_default();
            let pid = String::from_utf8_lossy(&pid);
            let pid = pid.trim();
            let who = if pid.is_empty() { "unknown" } else { pid };
            return Err(
                Error::new(ErrorKind::Busy, format!("pool in use (pid {who})")).with_path(dir),
            );
        }
        Err(e) => return Err(ctx("cannot lock the pool", &path, e)),
    };
    let pid = std::process::id().to_string();
    fs.open_file(&path)
        .and_then(|f| {
            set_len(f.as_ref(), 0)?;
            set_len(f.as_ref(), pid.len() as u64)?;
            f.write_at(pid.as_bytes(), 0)
        })
        .map_err(|e| ctx("cannot write the pool lock", &path, e))?;
    Ok(guard)
}

/// The bytes of `pool.state` holding `state`: the header, then the JSON payload.
fn encode_state(state: &PoolState) -> Vec<u8> {
    let payload = serde_json::to_vec_pretty(state).expect("state serialises");
    let mut out = Vec::with_capacity(STATE_HEADER + payload.len());
    out.extend_from_slice(STATE_MAGIC);
    out.extend_from_slice(&STATE_FILE_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads `pool.state` from `bytes`: the current format, or the first one (plain JSON, `legacy`
/// true). Damage is `Corrupt` naming the file; another version `UnsupportedVersion`.
fn decode_state(bytes: &[u8], path: &Path) -> Result<(PoolState, bool)> {
    let corrupt = |what: String| Error::new(ErrorKind::Corrupt, what).with_path(path);
    let parse = |payload: &[u8]| {
        serde_json::from_slice::<PoolState>(payload)
            .map_err(|e| corrupt(format!("pool state does not parse: {e}")))
    };
    if bytes.first() == Some(&b'{') {
        // The first format: JSON alone, no checksum.
        return Ok((parse(bytes)?, true));
    }
    if bytes.len() < STATE_HEADER || bytes[..8] != STATE_MAGIC[..] {
        return Err(corrupt(format!(
            "pool state is neither of this format (magic UMBRAPST) nor JSON ({} bytes)",
            bytes.len()
        )));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..24]) != u32_at(24) {
        return Err(corrupt("the pool state's header is damaged".to_string()));
    }
    let version = u32_at(8);
    if !(STATE_FILE_VERSION_2..=STATE_FILE_VERSION).contains(&version) {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "the pool state is format version {version}; this build reads versions \
                 {STATE_FILE_VERSION_2} to {STATE_FILE_VERSION}"
            ),
        )
        .with_path(path));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[STATE_HEADER..];
    if payload.len() as u64 != len {
        return Err(corrupt(format!(
            "the pool state holds {} payload bytes, its header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != u32_at(12) {
        return Err(corrupt(
            "the pool state is damaged (its checksum does not match)".to_string(),
        ));
    }
    Ok((parse(payload)?, version != STATE_FILE_VERSION))
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it over `dest` and fsyncs the directory: `dest`
/// holds either its old bytes or these, whatever happens.
fn replace_file(
    fs: &dyn Fs,
    dir: &Path,
    tmp: &str,
    dest: &str,
    bytes: &[u8],
    what: &str,
) -> Result<()> {
    let tmp = dir.join(tmp);
    fs.write_file(&tmp, bytes)
        .and_then(|()| fs.rename(&tmp, &dir.join(dest)))
        .and_then(|()| fs.sync_dir(dir))
        .map_err(|e| ctx(what, &tmp, e))
}

/// What is in directory `dir`, for [`PoolStore::open`]: `None` if it is missing; otherwise
/// whether it is empty and whether it holds a pool's files.
fn survey(fs: &dyn Fs, dir: &Path) -> Result<Option<(bool, bool)>> {
    let names = match fs.list_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ctx("cannot list the pool directory", dir, e)),
    };
    let pool = names.iter().any(|n| POOL_FILES.contains(&n.as_str()));
    Ok(Some((names.is_empty(), pool)))
}

/// The error of a directory that holds no pool: one with other files in it, or (opening an
/// existing pool only, `create` false) an empty one.
fn not_a_pool(fs: &dyn Fs, dir: &Path, create: bool) -> Error {
    let names: Vec<String> = fs.list_dir(dir).unwrap_or_default();
    let holds = if names.is_empty() {
        "it is empty".to_string()
    } else {
        let shown = names.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 4 { ", …" } else { "" };
        format!("it holds {shown}{more}")
    };
    let why = if create {
        "a pool is created only in a missing or empty directory"
    } else {
        "this call opens an existing pool only, and creates none"
    };
    Error::new(
        ErrorKind::NotAPool,
        format!("the directory is not a pool (no pool.log, pool.state or luns/; {holds}): {why}"),
    )
    .with_path(dir)
}

impl PoolStore {
    /// Opens the pool in `dir`, takes its lock, and reads what is there. With `create`, a missing
    /// or empty directory becomes a new pool; a directory holding other files is
    /// [`ErrorKind::NotAPool`]. Without, only an existing pool opens (a missing directory is
    /// [`ErrorKind::NotFound`], an empty one [`ErrorKind::NotAPool`]).
    pub(crate) fn open(fs: Arc<dyn Fs>, dir: &Path, create: bool) -> Result<(PoolStore, Loaded)> {
        let mut made_dir = false;
        let created = match survey(fs.as_ref(), dir)? {
            None if create => {
                match fs.create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == cow_engine::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(ctx("cannot create the pool directory", dir, e)),
                }
                made_dir = true;
                fs.sync_dir(cow_engine::fs::parent_dir(dir))?;
                true
            }
            None => return Err(Error::new(ErrorKind::NotFound, "no pool directory").with_path(dir)),
            Some((true, _)) if create => true,
            Some((_, true)) => false,
            Some(_) => return Err(not_a_pool(fs.as_ref(), dir, create)),
        };
        let lock = lock(fs.as_ref(), dir)?;
        let state_path = dir.join(STATE_FILE);
        let (checkpoint, legacy_state) = match fs.read_file(&state_path) {
            Ok(bytes) => {
                let (st, legacy) = decode_state(&bytes, &state_path)?;
                (Some(st), legacy)
            }
            Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => (None, false),
            Err(e) => return Err(ctx("cannot read the pool state", &state_path, e)),
        };
        let log_path = dir.join(LOG_FILE);
        // `luns/` is listed once per open: here, and the listing goes on to the recovery of the
        // LUN volumes (`Loaded::lun_entries`).
        let luns_path = dir.join(super::volumes::LUNS_DIR);
        let lun_entries = match fs.list_dir(&luns_path) {
            Ok(names) => names,
            Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(ctx("cannot list LUN volumes", &luns_path, e)),
        };
        let lun_volumes = lun_entries.len();
        let log_exists = fs.kind(&log_path)?.is_some();
        if !log_exists && (lun_volumes > 0 || checkpoint.is_some()) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the pool log is missing beside {}: its changes cannot be read; restore \
                     pool.log, or move the pool's files away to start over",
                    if checkpoint.is_some() {
                        "a checkpoint".to_string()
                    } else {
                        format!("{lun_volumes} entries in luns/")
                    }
                ),
            )
            .with_path(&log_path));
        }
        let log = if log_exists {
            fs.open_file(&log_path)
        } else {
            fs.create_file(&log_path, 0)
        }
        .map_err(|e| ctx("cannot open the pool log", &log_path, e))?;
        let bytes =
            read_all(log.as_ref()).map_err(|e| ctx("cannot read the pool log", &log_path, e))?;
        let applied = checkpoint.as_ref().map_or(0, |c| c.applied_seq);
        let read = if bytes.len() >= LOG_HEADER && bytes[..8] == LOG_MAGIC[..] {
            read_log(&bytes, applied, &log_path)?
        } else if bytes.is_empty() && checkpoint.as_ref().is_some_and(|c| c.log_format == 0) {
            // A first-format pool whose log a checkpoint emptied.
            read_legacy_log(&bytes, applied, &log_path)?
        } else if bytes.len() < LOG_HEADER
            && LOG_MAGIC.starts_with(&bytes[..bytes.len().min(8)])
            && checkpoint.is_none()
            && lun_volumes == 0
        {
            // A new pool, or one whose header was torn as it was created: nothing was in it.
            read_log(&[], applied, &log_path)?
        } else if legacy_record_at(&bytes, 0).is_some() {
            read_legacy_log(&bytes, applied, &log_path)?
        } else {
            // The header is written and synced when the pool is created, before any LUN, and is
            // never rewritten in place: a log that starts with neither it nor an intact record of
            // the first format is damaged (or gone, while LUN volumes exist).
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the pool log's header is damaged or missing ({} bytes; {lun_volumes} LUN \
                     volume(s) in luns/): its changes cannot be read; restore pool.log, or move \
                     the pool's files away to start over",
                    bytes.len()
                ),
            )
            .with_path(&log_path));
        };
        let (changes, seq) = (read.changes, read.seq);
        let log_len = if read.end < LOG_HEADER && !read.legacy {
            // A new pool (or a header torn at its creation): the header, durable first.
            rewrite(log.as_ref(), &log_header())
                .map_err(|e| ctx("cannot write the pool log header", &log_path, e))?;
            fs.sync_dir(dir)?;
            LOG_HEADER
        } else {
            if read.end >= LOG_HEADER && read.end < bytes.len() {
                // A torn tail: the last write, never acknowledged. Its bytes are kept beside the
                // log for examination before they are cut off.
                let kept = dir.join(format!("{LOG_FILE}.torn-{}", read.seq + 1));
                fs.write_file(&kept, &bytes[read.end..])
                    .map_err(|e| ctx("cannot keep the torn tail of the pool log", &kept, e))?;
                fs.sync_dir(dir)?;
                set_len(log.as_ref(), read.end as u64)
                    .and_then(|()| log.flush())
                    .map_err(|e| ctx("cannot drop the torn tail of the pool log", &log_path, e))?;
            }
            read.end
        };
        let since = changes.len() as u64;
        Ok((
            PoolStore {
                fs,
                dir: dir.to_path_buf(),
                log,
                log_len: log_len as u64,
                seq,
                since_checkpoint: since,
                truncate_pending: false,
                needs_upgrade: read.legacy || legacy_state,
                failed: None,
                checkpoint_every: CHECKPOINT_EVERY,
                #[cfg(test)]
                faults: std::collections::BTreeMap::new(),
                _lock: lock,
            },
            Loaded {
                checkpoint,
                changes,
                created,
                made_dir,
                lun_entries,
            },
        ))
    }

    /// Fails with an injected I/O error if a test asked for one at `point`.
    #[cfg(test)]
    fn fault(&mut self, point: Fault) -> Result<()> {
        match self.faults.get_mut(&point) {
            Some(0) => Err(Error::io(
                format!("injected fault at {point:?}"),
                std::io::Error::other("injected"),
            )),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Fails with an injected I/O error if a test asked for one (never, outside tests).
    #[cfg(not(test))]
    #[inline(always)]
    fn fault(&mut self, _point: Fault) -> Result<()> {
        Ok(())
    }

    /// True if the files are of an older format: [`PoolStore::upgrade`] must run first.
    pub(crate) fn needs_upgrade(&self) -> bool {
        self.needs_upgrade
    }

    /// Refuses a change if the store cannot vouch for its files.
    pub(crate) fn check(&self) -> Result<()> {
        if self.needs_upgrade {
            return Err(Error::new(
                ErrorKind::BadState,
                "the pool's files are of an older format and were not upgraded",
            )
            .with_path(&self.dir));
        }
        match &self.failed {
            Some(m) => Err(Error::new(
                ErrorKind::Io,
                format!("pool metadata could not be persisted earlier ({m}); reopen the pool"),
            )),
            None => Ok(()),
        }
    }

    /// Appends `change` (its frame and the mark closing the write) and fsyncs: the change is
    /// durable when this returns. On error the log is cut back to where it was, so that the
    /// change never took effect on disk either.
    pub(crate) fn append(&mut self, change: &Change) -> Result<()> {
        self.check()?;
        let path = self.dir.join(LOG_FILE);
        if self.truncate_pending {
            self.truncate_to_header()
                .map_err(|e| ctx("cannot empty the pool log after a checkpoint", &path, e))?;
        }
        let rec = change_frames(self.seq + 1, change);
        let seq = self.seq + 2;
        let end = self.log_len + rec.len() as u64;
        let written = self.fault(Fault::LogWrite).and_then(|()| {
            set_len(self.log.as_ref(), end)?;
            self.log.write_at(&rec, self.log_len)?;
            self.fault(Fault::LogSync)?;
            Ok(self.log.flush()?)
        });
        if let Err(e) = written {
            // The record may be partly on disk: it is cut off (and the cut made durable), so
            // that a later open does not replay a change its caller was told had failed.
            let cut = self.fault(Fault::LogTruncate).and_then(|()| {
                set_len(self.log.as_ref(), self.log_len)?;
                Ok(self.log.flush()?)
            });
            if let Err(c) = cut {
                self.failed = Some(format!("{e}; then cutting the log back: {c}"));
            }
            return Err(ctx("cannot append to the pool log", &path, e));
        }
        self.log_len += rec.len() as u64;
        self.seq = seq;
        self.since_checkpoint += 1;
        Ok(())
    }

    /// Cuts the log down to its header, durably.
    fn truncate_to_header(&mut self) -> Result<()> {
        self.fault(Fault::LogTruncate)?;
        set_len(self.log.as_ref(), LOG_HEADER as u64)?;
        self.log.flush()?;
        self.log_len = LOG_HEADER as u64;
        self.truncate_pending = false;
        Ok(())
    }

    /// Refuses every later change, for `why` (memory may hold what the files do not).
    pub(crate) fn poison(&mut self, why: String) {
        self.failed = Some(why);
    }

    /// The metadata as the files hold it now: the checkpoint, with the log's changes up to where
    /// the next frame goes replayed onto it (a pool without a checkpoint starts from an empty
    /// state of `block_size`). What a failed append puts memory back to.
    pub(crate) fn reread(&self, block_size: u32) -> Result<ArrayState> {
        let state_path = self.dir.join(STATE_FILE);
        let checkpoint = match self.fs.read_file(&state_path) {
            Ok(bytes) => Some(decode_state(&bytes, &state_path)?.0),
            Err(e) if e.kind() == cow_engine::ErrorKind::NotFound => None,
            Err(e) => return Err(ctx("cannot read the pool state", &state_path, e)),
        };
        let log_path = self.dir.join(LOG_FILE);
        let mut bytes = vec![0u8; self.log_len as usize];
        self.log
            .read_at(&mut bytes, 0)
            .map_err(|e| ctx("cannot read the pool log", &log_path, e))?;
        let mut state = match &checkpoint {
            Some(st) => ArrayState::from_checkpoint(st)?,
            None => ArrayState::new(block_size),
        };
        let applied = checkpoint.as_ref().map_or(0, |c| c.applied_seq);
        for c in read_log(&bytes, applied, &log_path)?.changes {
            state.apply(&c)?;
        }
        Ok(state)
    }

    /// True when enough records have accumulated for a checkpoint.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.since_checkpoint >= self.checkpoint_every
    }

    /// The seq of the last durable change.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes `state` as the checkpoint (temp file, fsync, rename, fsync dir), then empties the
    /// log. On error the old checkpoint and the whole log still hold every change (or the new
    /// checkpoint does, and the log is emptied before the next append): nothing is lost, and the
    /// checkpoint is tried again after the next change.
    pub(crate) fn checkpoint(&mut self, state: &PoolState) -> Result<()> {
        self.check()?;
        self.write_state(state)?;
        self.since_checkpoint = 0;
        // From here the log's records are in the checkpoint (replay skips them by seq).
        self.truncate_pending = true;
        let path = self.dir.join(LOG_FILE);
        self.truncate_to_header()
            .map_err(|e| ctx("cannot empty the pool log", &path, e))
    }

    /// Writes `pool.state` holding `state`, durably, in place of the old one.
    fn write_state(&mut self, state: &PoolState) -> Result<()> {
        let bytes = encode_state(state);
        let tmp = self.dir.join(STATE_TMP);
        self.fault(Fault::StateWrite)
            .map_err(|e| ctx("cannot write the pool state", &tmp, e))?;
        let what = "cannot write the pool state";
        if let Err(e) = self.fault(Fault::StateRename) {
            // As if the rename failed: the temporary file is written, `pool.state` unchanged.
            self.fs
                .write_file(&tmp, &bytes)
                .map_err(|e| ctx(what, &tmp, e))?;
            return Err(ctx("cannot install the pool state", &tmp, e));
        }
        replace_file(
            self.fs.as_ref(),
            &self.dir,
            STATE_TMP,
            STATE_FILE,
            &bytes,
            what,
        )
    }

    /// Upgrades a pool of an older format in place: `state` (everything replayed) becomes the
    /// checkpoint in this build's format, then the log is replaced by an empty one of this
    /// build's version. Each step is a durable rename, so an upgrade interrupted anywhere opens
    /// (as the old pool, or as the checkpoint beside an old log whose records it holds) and is
    /// done again.
    pub(crate) fn upgrade(&mut self, state: &PoolState) -> Result<()> {
        self.write_state(state)?;
        replace_file(
            self.fs.as_ref(),
            &self.dir,
            LOG_TMP,
            LOG_FILE,
            &log_header(),
            "cannot rewrite the pool log",
        )?;
        let path = self.dir.join(LOG_FILE);
        self.log = self
            .fs
            .open_file(&path)
            .map_err(|e| ctx("cannot open the pool log", &path, e))?;
        self.log_len = LOG_HEADER as u64;
        self.since_checkpoint = 0;
        self.truncate_pending = false;
        self.needs_upgrade = false;
        Ok(())
    }
}
