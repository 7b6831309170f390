//! Persistence of the array's metadata in the pool directory.
//!
//! ```text
//! pool.lock    advisory lock (flock) held by the one process that owns the pool; holds its pid
//! pool.state   checkpoint: the whole metadata as JSON (written to pool.state.tmp, fsync, rename)
//! pool.log     changes since the checkpoint: a 16-byte header
//!              [b"UMBRAPLG"][u32 LE version = 2][u32 LE crc32 of the 12 bytes before it]
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
//! nothing is dropped. A log of the first format (no header) is read as it was and rewritten in
//! this one; a newer version is `UnsupportedVersion`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cow_engine::framing::{self, AfterStop, Kinds};

use super::state::{Change, PoolState};
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
pub(crate) const LOG_VERSION: u32 = 2;
const LOG_HEADER: usize = 16;
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
    if version != LOG_VERSION {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "the pool log is format version {version}; this build reads version {LOG_VERSION}"
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
        legacy: false,
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

pub(crate) struct PoolStore {
    dir: PathBuf,
    log: File,
    log_len: u64,
    seq: u64,
    since_checkpoint: u64,
    failed: Option<String>,
    _lock: File,
}

/// What was on disk.
pub(crate) struct Loaded {
    pub(crate) checkpoint: Option<PoolState>,
    pub(crate) changes: Vec<Change>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(what.to_string(), e).with_path(path)
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("cannot open the pool lock", &path, e))?;
    let held_elsewhere = !cow_engine::fs::try_lock_exclusive(&f)
        .map_err(|e| io("cannot lock the pool", &path, e))?;
    if held_elsewhere {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        let pid = pid.trim();
        let who = if pid.is_empty() {
            "unknown".to_string()
        } else {
            pid.to_string()
        };
        return Err(Error::new(ErrorKind::Busy, format!("pool in use (pid {who})")).with_path(dir));
    }
    f.set_len(0)
        .map_err(|e| io("cannot write the pool lock", &path, e))?;
    f.write_all_at(std::process::id().to_string().as_bytes(), 0)
        .map_err(|e| io("cannot write the pool lock", &path, e))?;
    Ok(f)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(cow_engine::fs::sync_dir(dir)?)
}

impl PoolStore {
    /// Opens (creating if missing) the pool directory, takes its lock, and reads what is there.
    pub(crate) fn open(dir: &Path) -> Result<(PoolStore, Loaded)> {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("cannot create the pool directory", dir, e)),
        }
        let lock = lock(dir)?;
        let checkpoint = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(bytes) => Some(serde_json::from_slice::<PoolState>(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("pool state does not parse: {e}"),
                )
                .with_path(dir.join(STATE_FILE))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("cannot read the pool state", &dir.join(STATE_FILE), e)),
        };
        let log_path = dir.join(LOG_FILE);
        let lun_volumes = std::fs::read_dir(dir.join("luns")).map_or(0, |d| d.count());
        if !log_path.exists() && (lun_volumes > 0 || checkpoint.is_some()) {
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
        let mut log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(|e| io("cannot open the pool log", &log_path, e))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)
            .map_err(|e| io("cannot read the pool log", &log_path, e))?;
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
        let (changes, mut seq) = (read.changes, read.seq);
        let log_len = if read.legacy {
            // Rewritten in the current format, whole, before anything is appended: the old file
            // stays until the new one is durable and renamed over it.
            let mut out = log_header().to_vec();
            for c in &changes {
                out.extend(change_frames(seq + 1, c));
                seq += 2;
            }
            let tmp = dir.join(LOG_TMP);
            std::fs::write(&tmp, &out)
                .and_then(|()| File::open(&tmp)?.sync_all())
                .map_err(|e| io("cannot rewrite the pool log", &tmp, e))?;
            std::fs::rename(&tmp, &log_path)
                .map_err(|e| io("cannot install the rewritten pool log", &log_path, e))?;
            sync_dir(dir)?;
            log = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&log_path)
                .map_err(|e| io("cannot open the pool log", &log_path, e))?;
            out.len()
        } else if read.end < LOG_HEADER {
            // A new pool (or a header torn at its creation): the header, durable first.
            log.set_len(0)
                .and_then(|()| log.write_all_at(&log_header(), 0))
                .and_then(|()| log.sync_all())
                .map_err(|e| io("cannot write the pool log header", &log_path, e))?;
            sync_dir(dir)?;
            LOG_HEADER
        } else {
            if read.end < bytes.len() {
                // A torn tail: the last write, never acknowledged. Its bytes are kept beside the
                // log for examination before they are cut off.
                let kept = dir.join(format!("{LOG_FILE}.torn-{}", read.seq + 1));
                std::fs::write(&kept, &bytes[read.end..])
                    .and_then(|()| File::open(&kept)?.sync_all())
                    .map_err(|e| io("cannot keep the torn tail of the pool log", &kept, e))?;
                sync_dir(dir)?;
                log.set_len(read.end as u64)
                    .and_then(|()| log.sync_all())
                    .map_err(|e| io("cannot drop the torn tail of the pool log", &log_path, e))?;
            }
            read.end
        };
        let at = log_len;
        let since = changes.len() as u64;
        Ok((
            PoolStore {
                dir: dir.to_path_buf(),
                log,
                log_len: at as u64,
                seq,
                since_checkpoint: since,
                failed: None,
                _lock: lock,
            },
            Loaded {
                checkpoint,
                changes,
            },
        ))
    }

    pub(crate) fn check(&self) -> Result<()> {
        match &self.failed {
            Some(m) => Err(Error::new(
                ErrorKind::Io,
                format!("pool metadata could not be persisted earlier ({m}); reopen the pool"),
            )),
            None => Ok(()),
        }
    }

    /// Appends `change` (its frame and the mark closing the write) and fsyncs: the change is
    /// durable when this returns.
    pub(crate) fn append(&mut self, change: &Change) -> Result<()> {
        self.check()?;
        let rec = change_frames(self.seq + 1, change);
        let seq = self.seq + 2;
        let path = self.dir.join(LOG_FILE);
        if let Err(e) = self
            .log
            .write_all_at(&rec, self.log_len)
            .and_then(|()| self.log.sync_data())
        {
            self.failed = Some(e.to_string());
            return Err(io("cannot append to the pool log", &path, e));
        }
        self.log_len += rec.len() as u64;
        self.seq = seq;
        self.since_checkpoint += 1;
        Ok(())
    }

    /// True when enough records have accumulated for a checkpoint.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.since_checkpoint >= CHECKPOINT_EVERY
    }

    /// The seq of the last durable change.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes `state` as the checkpoint (temp file, fsync, rename, fsync dir), then empties the log.
    pub(crate) fn checkpoint(&mut self, state: &PoolState) -> Result<()> {
        self.check()?;
        let tmp = self.dir.join(STATE_TMP);
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        let mut f = File::create(&tmp).map_err(|e| io("cannot write the pool state", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("cannot write the pool state", &tmp, e))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE))
            .map_err(|e| io("cannot install the pool state", &tmp, e))?;
        sync_dir(&self.dir)?;
        let path = self.dir.join(LOG_FILE);
        if let Err(e) = self
            .log
            .set_len(LOG_HEADER as u64)
            .and_then(|()| self.log.sync_all())
        {
            // The checkpoint is installed; records still in the log are skipped by seq on replay.
            self.failed = Some(e.to_string());
            return Err(io("cannot empty the pool log", &path, e));
        }
        self.log_len = LOG_HEADER as u64;
        self.since_checkpoint = 0;
        Ok(())
    }
}
