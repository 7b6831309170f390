//! The metadata journal: two ping-pong journal devices, group commit, checkpoints.
//!
//! Records are appended to an in-memory buffer; [`Journal::sync_through`] makes them durable. The first
//! caller to find no sync running becomes the leader: it flushes the diff device (so slot data is
//! durable before the records naming it), writes the whole buffer at the journal's end and flushes the
//! journal device; callers arriving meanwhile wait and are covered by the next leader's sync, so
//! concurrent copy-on-writes share one sync.
//!
//! Each sync's write ends with a `SyncEnd` record naming the first record of that write, so
//! recovery can tell damage inside the last write (a torn tail: dropped) from damage to records that
//! a later write followed (they were durable: corruption, an error).
//!
//! A checkpoint writes the whole state as records into the other journal device under a higher
//! generation, ending with `CheckpointEnd`, flushes it, and switches to it. Until that flush the old
//! device stays valid, so a crash at any point leaves one complete journal.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::record::Record;
use super::superblock::{JournalHeader, JOURNAL_DATA};
use super::MAX_COUNTER;
use crate::device::BlockDevice;
use crate::error::{Error, ErrorKind, Result};
use crate::state::State;

/// Journal devices grow in steps of this many bytes.
const GROW_STEP: u64 = 1 << 20;
/// A checkpoint is due when the active journal exceeds the larger of this and twice the last
/// checkpoint (so a large state is not rewritten over and over).
pub(crate) const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

struct JState {
    active: usize,
    generation: u64,
    /// Bytes of the active device holding durable records (its records end here).
    end: u64,
    /// The active device's size.
    dev_len: u64,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    next_seq: u64,
    durable_seq: u64,
    syncing: bool,
    checkpoint_len: u64,
    /// Why the journal failed, and the kind of that error (kept by every later error).
    failed: Option<(ErrorKind, String)>,
}

pub(crate) struct Journal {
    /// Set once the journal has failed (mirrors `JState::failed` for a lock-free check).
    broken: std::sync::atomic::AtomicBool,
    devs: [Arc<dyn BlockDevice>; 2],
    uuid: [u8; 16],
    st: Mutex<JState>,
    synced: Condvar,
    threshold: u64,
}

/// Where recovery left the journal.
pub(crate) struct JournalPosition {
    pub(crate) active: usize,
    pub(crate) generation: u64,
    pub(crate) end: u64,
    pub(crate) next_seq: u64,
    pub(crate) checkpoint_len: u64,
}

pub(crate) fn grow_allocated(dev: &dyn BlockDevice, len: u64) -> Result<()> {
    dev.as_resize()
        .ok_or_else(|| Error::new(ErrorKind::Unsupported, "journal device cannot be resized"))?
        .grow_allocated(len)
}

pub(crate) fn resize(dev: &dyn BlockDevice, len: u64) -> Result<()> {
    dev.as_resize()
        .ok_or_else(|| Error::new(ErrorKind::Unsupported, "journal device cannot be resized"))?
        .resize(len)
}

impl Journal {
    pub(crate) fn new(
        devs: [Arc<dyn BlockDevice>; 2],
        uuid: [u8; 16],
        pos: JournalPosition,
    ) -> Self {
        let dev_len = devs[pos.active].len();
        Journal {
            broken: std::sync::atomic::AtomicBool::new(false),
            devs,
            uuid,
            st: Mutex::new(JState {
                active: pos.active,
                generation: pos.generation,
                end: pos.end,
                dev_len,
                buf: Vec::new(),
                next_seq: pos.next_seq,
                durable_seq: pos.next_seq - 1,
                syncing: false,
                checkpoint_len: pos.checkpoint_len,
                failed: None,
            }),
            synced: Condvar::new(),
            threshold: DEFAULT_CHECKPOINT_BYTES,
        }
    }

    /// The error of every call after the journal failed: of the kind of the first failure (a
    /// full file system stays [`ErrorKind::NoSpace`]), naming it.
    fn failed((kind, msg): &(ErrorKind, String)) -> Error {
        Error::new(
            *kind,
            format!("the journal failed earlier ({msg}); reopen the volume"),
        )
    }

    /// Fails if the journal has failed: nothing more may be written until the volume is reopened
    /// (a record whose sync failed may still be on the device, and what follows must not
    /// contradict it).
    pub(crate) fn check(&self) -> Result<()> {
        // Relaxed: a hint; the authoritative state is under the lock, taken on the failure path.
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            let s = self.st.lock();
            let unknown = (ErrorKind::Io, "unknown".to_string());
            return Err(Self::failed(s.failed.as_ref().unwrap_or(&unknown)));
        }
        Ok(())
    }

    /// Appends `rec` to the buffer; returns its sequence number. Not durable until synced.
    pub(crate) fn append(&self, rec: &Record) -> Result<u64> {
        let mut s = self.st.lock();
        if let Some(m) = &s.failed {
            return Err(Self::failed(m));
        }
        let seq = s.next_seq;
        // Leave room for the sync mark and a checkpoint's records: nothing written may pass the
        // limit recovery enforces. Only crafted metadata gets near it.
        if seq > MAX_COUNTER - (1 << 32) {
            return Err(Error::corrupt(format!(
                "journal seq {seq} is at the format's limit (2^62)"
            )));
        }
        s.next_seq += 1;
        rec.encode(seq, &mut s.buf);
        Ok(seq)
    }

    /// Makes every record up to `seq` durable (group commit), after the diff device's data.
    pub(crate) fn sync_through(&self, seq: u64, diff: &dyn BlockDevice) -> Result<()> {
        let mut s = self.st.lock();
        loop {
            if let Some(m) = &s.failed {
                return Err(Self::failed(m));
            }
            if s.durable_seq >= seq {
                return Ok(());
            }
            if s.syncing {
                self.synced.wait(&mut s);
                continue;
            }
            // Lead a sync of everything appended so far, closed by a mark naming where this
            // write began (every record after the last durable one is in the buffer).
            s.syncing = true;
            let mark = Record::SyncEnd {
                first_seq: s.durable_seq + 1,
            };
            let mark_seq = s.next_seq;
            s.next_seq += 1;
            let mut buf = std::mem::take(&mut s.buf);
            mark.encode(mark_seq, &mut buf);
            let target = mark_seq;
            let (dev, at, dev_len) = (self.devs[s.active].clone(), s.end, s.dev_len);
            drop(s);
            let result = (|| -> Result<u64> {
                diff.flush()?;
                let mut new_len = dev_len;
                if at + buf.len() as u64 > dev_len {
                    new_len = (at + buf.len() as u64).next_multiple_of(GROW_STEP);
                    grow_allocated(dev.as_ref(), new_len)?;
                }
                dev.write_at(&buf, at)?;
                dev.flush()?;
                Ok(new_len)
            })();
            s = self.st.lock();
            s.syncing = false;
            match result {
                Ok(new_len) => {
                    s.end = at + buf.len() as u64;
                    s.dev_len = new_len;
                    s.durable_seq = target;
                }
                Err(e) => {
                    s.failed = Some((e.kind(), e.to_string()));
                    self.broken
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.synced.notify_all();
                    return Err(e);
                }
            }
            self.synced.notify_all();
        }
    }

    /// The sequence number up to which every record is durable.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.st.lock().durable_seq
    }

    /// Makes every record appended so far durable.
    pub(crate) fn sync_all(&self, diff: &dyn BlockDevice) -> Result<()> {
        let seq = self.st.lock().next_seq - 1;
        self.sync_through(seq, diff)
    }

    /// True when the active journal has grown past its checkpoint threshold.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        let s = self.st.lock();
        let size = s.end + s.buf.len() as u64;
        size > self.threshold.max(2 * s.checkpoint_len)
    }

    /// Writes the whole of `state` into the other journal device and switches to it. The caller
    /// holds the volume's gate exclusively (no record is appended meanwhile).
    pub(crate) fn checkpoint(&self, state: &State, diff: &dyn BlockDevice) -> Result<()> {
        self.sync_all(diff)?;
        let mut s = self.st.lock();
        if let Some(m) = &s.failed {
            return Err(Self::failed(m));
        }
        let other = 1 - s.active;
        let generation = s.generation + 1;
        if generation > MAX_COUNTER {
            return Err(Error::corrupt(format!(
                "journal generation {generation} is past the format's limit (2^62)"
            )));
        }
        let mut body = Vec::new();
        let mut seq = s.next_seq;
        for rec in checkpoint_records(state) {
            rec.encode(seq, &mut body);
            seq += 1;
        }
        let dev = &self.devs[other];
        let result = (|| -> Result<u64> {
            // Drop the old contents first so no stale record can follow the new ones.
            resize(dev.as_ref(), 0)?;
            let len = (JOURNAL_DATA + body.len() as u64).next_multiple_of(GROW_STEP);
            grow_allocated(dev.as_ref(), len)?;
            let header = JournalHeader {
                uuid: self.uuid,
                generation,
            };
            dev.write_at(&body, JOURNAL_DATA)?;
            // The truncation and the body must be durable before the header that makes recovery
            // prefer this file: a header over stale contents would revive an old checkpoint.
            dev.flush()?;
            dev.write_at(&header.encode(), 0)?;
            dev.flush()?;
            Ok(len)
        })();
        match result {
            Ok(len) => {
                s.active = other;
                s.generation = generation;
                s.end = JOURNAL_DATA + body.len() as u64;
                s.dev_len = len;
                s.next_seq = seq;
                s.durable_seq = seq - 1;
                s.checkpoint_len = body.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The active journal is untouched and still valid. The other file may hold a
                // complete checkpoint of a higher generation that recovery would prefer over the
                // records we append next: invalidate it, or stop appending if we cannot.
                if resize(dev.as_ref(), 0).and_then(|()| dev.flush()).is_err() {
                    s.failed = Some((
                        e.kind(),
                        format!("checkpoint failed and could not be undone: {e}"),
                    ));
                    self.broken
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Bytes in the active journal (durable plus buffered).
    pub(crate) fn size(&self) -> u64 {
        let s = self.st.lock();
        s.end + s.buf.len() as u64
    }
}

/// The records that rebuild `state` from nothing, ending with `CheckpointEnd`.
pub(crate) fn checkpoint_records(state: &State) -> Vec<Record> {
    let mut out = vec![Record::VolumeLen { len: state.len }];
    for s in &state.snaps {
        out.push(Record::CreateSnapshot {
            id: s.id,
            len: s.len,
            writable: s.overlay.is_some(),
            persistent: s.persistent,
            pinned: s.pinned,
            metadata: s.metadata.clone(),
        });
        s.map.for_each_preserved(|block, slot| {
            out.push(Record::Preserve {
                snapshot: s.id,
                block,
                slot,
            })
        });
        if let Some(ov) = &s.overlay {
            ov.for_each_preserved(|block, slot| {
                out.push(Record::Overlay {
                    snapshot: s.id,
                    block,
                    slot,
                })
            });
        }
        if s.split_cursor > 0 {
            out.push(Record::SplitProgress {
                snapshot: s.id,
                cursor: s.split_cursor,
            });
        }
    }
    if let Some((snapshot, cursor)) = state.pending_revert {
        out.push(Record::RevertBegin { snapshot });
        out.push(Record::RevertProgress { snapshot, cursor });
    }
    out.push(Record::CheckpointEnd {
        next_id: state.next_id,
    });
    out
}
