//! Freeze and thaw of a set of LUNs through the array: the engine's flush-and-hold
//! ([`Volume::freeze`]) on each LUN's volume, all or none, under one deadline.
//!
//! A write held by a freeze is not in flight for the fence (`fence.rs`): it is counted only once
//! released, and is refused then if its access changed meanwhile. A change of access therefore
//! never waits for a thaw.

use std::time::{Duration, Instant};

use cow_engine::{ThawOutcome, Volume};

use super::Array;
use crate::error::{Error, ErrorKind, Result};

/// LUNs frozen by [`Array::freeze_luns`]: their new writes are held until [`FrozenLuns::thaw`]
/// (or the drop of the guard, or the freeze deadline, whichever comes first).
///
/// The guard keeps the volumes it froze, so it thaws exactly those even if a LUN is renamed,
/// deleted or split meanwhile.
#[must_use = "dropping the guard thaws the LUNs at once"]
pub struct FrozenLuns {
    /// The LUNs frozen, by name as given, with the volume frozen.
    luns: Vec<(String, Volume)>,
}

impl std::fmt::Debug for FrozenLuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenLuns")
            .field("luns", &self.names())
            .finish()
    }
}

impl FrozenLuns {
    /// The names of the LUNs frozen, in the order given.
    pub fn names(&self) -> Vec<&str> {
        self.luns.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// How many writes are held by this freeze right now, over all its LUNs.
    pub fn held_writes(&self) -> usize {
        self.luns.iter().map(|(_, v)| v.held_writes()).sum()
    }

    /// Releases the held writes of every LUN. [`ThawOutcome::Expired`] if the freeze deadline had
    /// passed for any of them (their writes were released then, as [`Volume::thaw`] reports);
    /// [`ThawOutcome::Thawed`] otherwise. Every LUN is thawed even if one fails; the first
    /// failure is returned, naming the LUN.
    pub fn thaw(mut self) -> Result<ThawOutcome> {
        thaw_all(std::mem::take(&mut self.luns))
    }
}

impl Drop for FrozenLuns {
    fn drop(&mut self) {
        let _ = thaw_all(std::mem::take(&mut self.luns));
    }
}

/// Thaws each of `luns`; see [`FrozenLuns::thaw`].
fn thaw_all(luns: Vec<(String, Volume)>) -> Result<ThawOutcome> {
    let mut outcome = ThawOutcome::Thawed;
    let mut first_err = None;
    for (name, v) in luns {
        match v.thaw() {
            Ok(ThawOutcome::Expired) => outcome = ThawOutcome::Expired,
            Ok(ThawOutcome::Thawed) => {}
            Err(e) => {
                first_err.get_or_insert_with(|| {
                    Error::new(e.kind().into(), format!("thawing LUN {name:?}: {e}"))
                });
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

impl Array {
    /// Freezes LUNs `names` (flush-and-hold: writes in flight drain and are made durable, new
    /// writes are held) until the returned guard thaws them or `timeout` from now passes, after
    /// which held writes are released and the thaw reports [`ThawOutcome::Expired`].
    ///
    /// All or none: if a LUN is unknown ([`ErrorKind::NotFound`]), already frozen or named twice
    /// ([`ErrorKind::BadState`]), or its writes do not drain before the deadline
    /// ([`ErrorKind::Timeout`]), the LUNs frozen so far are thawed and the error names the LUN.
    /// An empty list is [`ErrorKind::InvalidArgument`]. Reads are never held. A change of access
    /// (a mask, a swap, a delete) does not wait for the thaw: held writes re-check their access
    /// when released.
    pub fn freeze_luns(&self, names: &[&str], timeout: Duration) -> Result<FrozenLuns> {
        if names.is_empty() {
            return Err(Error::invalid("freezing no LUNs: the list is empty"));
        }
        let deadline = Instant::now() + timeout;
        let volumes: Vec<(String, Volume)> = {
            let core = self.inner.core.read();
            names
                .iter()
                .map(|&name| {
                    let id = core.state.id_of(name)?;
                    Ok((name.to_string(), core.volumes[&id].read().clone()))
                })
                .collect::<Result<_>>()?
        };
        // Without the admin lock: a freeze waits for writes in flight, and those may wait for it.
        let mut frozen = FrozenLuns { luns: Vec::new() };
        for (name, v) in volumes {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = v.freeze(left) {
                // Dropping `frozen` thaws what was frozen.
                let what = match e.kind() {
                    cow_engine::ErrorKind::BadState => "is already frozen (or named twice)",
                    cow_engine::ErrorKind::Timeout => {
                        "did not drain its writes before the freeze deadline"
                    }
                    _ => "could not be frozen",
                };
                let kind: ErrorKind = e.kind().into();
                return Err(Error::new(kind, format!("LUN {name:?} {what}: {e}")));
            }
            frozen.luns.push((name, v));
        }
        Ok(frozen)
    }

    /// Whether LUN `name`'s writes are held by a freeze now.
    pub fn is_lun_frozen(&self, name: &str) -> Result<bool> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        let frozen = core.volumes[&id].read().is_frozen();
        Ok(frozen)
    }
}
