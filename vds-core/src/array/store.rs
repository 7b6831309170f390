//! Persistence of the array's metadata in the pool directory.
//!
//! ```text
//! pool.lock    advisory lock (flock) held by the one process that owns the pool; holds its pid
//! pool.state   checkpoint: the whole metadata as JSON (written to pool.state.tmp, fsync, rename)
//! pool.log     changes since the checkpoint: records of
//!              [u32 LE payload length][u32 LE crc32 of seq+payload][u64 LE seq][payload: JSON change]
//! luns/<id>/   each LUN's cow-engine volume
//! ```
//!
//! A change is durable when its record is appended and the log fsynced (one fsync per change). Reopen
//! loads the checkpoint, replays records with a higher seq, and drops a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::state::{Change, PoolState};
use crate::error::{Error, ErrorKind, Result};

const LOCK_FILE: &str = "pool.lock";
const STATE_FILE: &str = "pool.state";
const STATE_TMP: &str = "pool.state.tmp";
const LOG_FILE: &str = "pool.log";
/// Checkpoint after this many log records.
const CHECKPOINT_EVERY: u64 = 1024;
const HEADER: usize = 16;

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
        let mut at = 0usize;
        let mut seq = applied;
        let mut changes = Vec::new();
        while bytes.len() - at >= HEADER {
            let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4"));
            if bytes.len() - at - HEADER < n
                || crc32fast::hash(&bytes[at + 8..at + HEADER + n]) != crc
            {
                break; // torn tail
            }
            let rec_seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8"));
            let change: Change = serde_json::from_slice(&bytes[at + HEADER..at + HEADER + n])
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("pool log record {rec_seq} does not parse: {e}"),
                    )
                    .with_path(&log_path)
                })?;
            at += HEADER + n;
            if rec_seq <= applied {
                continue; // already in the checkpoint (a crash between rename and truncate)
            }
            if rec_seq != seq + 1 {
                break;
            }
            seq = rec_seq;
            changes.push(change);
        }
        if (at as u64) < bytes.len() as u64 {
            log.set_len(at as u64)
                .and_then(|()| log.sync_all())
                .map_err(|e| io("cannot drop the torn tail of the pool log", &log_path, e))?;
        }
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

    /// Appends `change` and fsyncs: the change is durable when this returns.
    pub(crate) fn append(&mut self, change: &Change) -> Result<()> {
        self.check()?;
        let payload = serde_json::to_vec(change).expect("changes serialise");
        let seq = self.seq + 1;
        let mut rec = Vec::with_capacity(HEADER + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&payload);
        let crc = crc32fast::hash(&rec[8..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
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
        if let Err(e) = self.log.set_len(0).and_then(|()| self.log.sync_all()) {
            // The checkpoint is installed; records still in the log are skipped by seq on replay.
            self.failed = Some(e.to_string());
            return Err(io("cannot empty the pool log", &path, e));
        }
        self.log_len = 0;
        self.since_checkpoint = 0;
        Ok(())
    }
}
