//! Per-LUN and pool metadata: small persisted key/value maps for clients, each change one
//! transaction of its own (or part of a larger one, as a snapshot set's).

use std::collections::BTreeMap;

use super::state::Change;
use super::Array;
use crate::error::Result;

impl Array {
    /// LUN `name`'s metadata, sorted by key. [`crate::ErrorKind::NotFound`] for an unknown LUN.
    pub fn lun_metadata(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let core = self.inner.core.read();
        let id = core.state.id_of(name)?;
        Ok(core.state.lun(id)?.metadata.clone())
    }

    /// Sets key `key` of LUN `name`'s metadata to `value`, or removes it (`None`; removing a key
    /// that is not there changes nothing), durably, announced as a
    /// [`crate::Notification::LunMetadataChanged`]. Keys are 1 to 128 letters, digits, `.`, `_`, `-`, `:`
    /// or `/`; values at most 4 KiB of UTF-8 without NUL; at most 64 keys per LUN. Out of these
    /// limits is [`crate::ErrorKind::InvalidArgument`], naming the key and the LUN. The metadata
    /// stays with the LUN through a swap and goes with it when it is deleted.
    pub fn set_lun_metadata(&self, name: &str, key: &str, value: Option<&str>) -> Result<()> {
        Array::check_metadata_key(key)
            .map_err(|e| crate::Error::invalid(format!("LUN {name:?}: {}", e.message())))?;
        self.change_lun(name, |id| Change::SetLunMetadata {
            id,
            key: key.to_string(),
            value: value.map(str::to_string),
        })
    }

    /// The names of the LUNs whose metadata holds `key` set to `value` (any value for `None`),
    /// sorted.
    pub fn luns_with_metadata(&self, key: &str, value: Option<&str>) -> Vec<String> {
        let core = self.inner.core.read();
        let mut v: Vec<String> = core
            .state
            .luns
            .values()
            .filter(|l| {
                l.metadata
                    .get(key)
                    .is_some_and(|v| value.is_none_or(|want| v == want))
            })
            .map(|l| l.name.clone())
            .collect();
        v.sort();
        v
    }

    /// The pool's metadata, sorted by key: a map for clients (registered writers, a record of a
    /// snapshot set in progress).
    pub fn pool_metadata(&self) -> BTreeMap<String, String> {
        self.inner.core.read().state.pool_metadata.clone()
    }

    /// Sets key `key` of the pool's metadata to `value`, or removes it (`None`), durably. Keys as
    /// for [`Array::set_lun_metadata`]; values at most 64 KiB; at most 1,024 keys. Out of these
    /// limits is [`crate::ErrorKind::InvalidArgument`]. Announced as a
    /// [`crate::Notification::PoolMetadataChanged`].
    pub fn set_pool_metadata(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.simple(Change::SetPoolMetadata {
            key: key.to_string(),
            value: value.map(str::to_string),
        })
    }
}

impl Array {
    /// Refuses a LUN metadata key a client may not set: the array's own.
    pub(super) fn check_metadata_key(key: &str) -> Result<()> {
        if key == super::state::metadata::EXPOSES_KEY {
            return Err(crate::Error::invalid(format!(
                "metadata key {key:?} is the array's own"
            )));
        }
        Ok(())
    }
}
