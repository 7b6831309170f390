//! The sets a software provider is making, between `begin_prepare` and `post_commit` (or
//! `abort`): the bookkeeping both software providers share (the volumes' one and the pool's).

use std::collections::HashMap;

use cow_engine::SnapshotId;
use uuid::Uuid;

use super::ShadowRequest;
use crate::error::{Error, ErrorKind, Result};
use crate::shadow::ShadowProperties;

/// A set being made: its requests, and the shadows its commit made (`T`: where each is, for the
/// provider to undo it), in request order.
pub(crate) struct Pending<T> {
    pub(crate) requests: Vec<ShadowRequest>,
    pub(crate) made: Vec<(T, SnapshotId, ShadowProperties)>,
}

/// The sets a provider is making, by set id.
pub(crate) struct PendingSets<T> {
    /// The provider, as its messages name it (`"software provider"`).
    who: &'static str,
    /// What it shadows, as its messages name it (`"volume"`, `"LUN"`).
    what: &'static str,
    sets: HashMap<Uuid, Pending<T>>,
}

impl<T> PendingSets<T> {
    /// No set being made, for provider `who` of `what`s.
    pub(crate) fn new(who: &'static str, what: &'static str) -> Self {
        PendingSets {
            who,
            what,
            sets: HashMap::new(),
        }
    }

    /// `begin_prepare`'s bookkeeping: the set of `request` (started if it is its first volume),
    /// for the provider to check the volume and push the request. Refused: a volume in another
    /// set being made ([`ErrorKind::ProviderVeto`]; the coordinators keep this from happening),
    /// a volume already in this set ([`ErrorKind::AlreadyExists`]).
    pub(crate) fn admit(&mut self, request: &ShadowRequest) -> Result<&mut Pending<T>> {
        let what = self.what;
        if let Some((other, _)) = self.sets.iter().find(|(id, p)| {
            **id != request.set_id && p.requests.iter().any(|r| r.volume == request.volume)
        }) {
            return Err(Error::new(
                ErrorKind::ProviderVeto,
                format!(
                    "{what} {:?} is in set {other}, which is being made",
                    request.volume
                ),
            ));
        }
        let pending = self.sets.entry(request.set_id).or_insert_with(|| Pending {
            requests: Vec::new(),
            made: Vec::new(),
        });
        if pending.requests.iter().any(|r| r.volume == request.volume) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{what} {:?} is already in set {}",
                    request.volume, request.set_id
                ),
            ));
        }
        Ok(pending)
    }

    /// Set `set_id`, at step `step` of its sequence; [`ErrorKind::BadState`] if it is not being
    /// made.
    pub(crate) fn get(&mut self, set_id: Uuid, step: &str) -> Result<&mut Pending<T>> {
        let who = self.who;
        self.sets.get_mut(&set_id).ok_or_else(|| {
            Error::new(
                ErrorKind::BadState,
                format!("{who}: {step} of set {set_id}, which is not being prepared"),
            )
        })
    }

    /// `end_prepare`'s check: set `set_id` is being made and has a volume.
    pub(crate) fn end_prepare(&mut self, set_id: Uuid) -> Result<()> {
        let who = self.who;
        if self.get(set_id, "end-prepare")?.requests.is_empty() {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("{who}: set {set_id} has no volume"),
            ));
        }
        Ok(())
    }

    /// Set `set_id`, to commit: being made and not committed yet.
    pub(crate) fn for_commit(&mut self, set_id: Uuid) -> Result<&mut Pending<T>> {
        let who = self.who;
        let p = self.get(set_id, "commit")?;
        if !p.made.is_empty() {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("{who}: set {set_id} is already committed"),
            ));
        }
        Ok(p)
    }

    /// `post_commit`: the properties of the shadows set `set_id`'s commit made, which are handed
    /// over (the set is forgotten: from now on its shadows are deleted one by one).
    /// [`ErrorKind::BadState`] before its commit.
    pub(crate) fn post_commit(&mut self, set_id: Uuid) -> Result<Vec<ShadowProperties>> {
        let who = self.who;
        let p = self.get(set_id, "post-commit")?;
        if p.made.len() != p.requests.len() {
            return Err(Error::new(
                ErrorKind::BadState,
                format!("{who}: post-commit of set {set_id} before its commit"),
            ));
        }
        let props = p.made.iter().map(|(_, _, p)| p.clone()).collect();
        self.sets.remove(&set_id);
        Ok(props)
    }

    /// Forgets set `set_id` (an abort): what it was, if it was being made.
    pub(crate) fn remove(&mut self, set_id: Uuid) -> Option<Pending<T>> {
        self.sets.remove(&set_id)
    }
}
