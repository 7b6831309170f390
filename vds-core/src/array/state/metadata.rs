//! Metadata maps: the small key/value map of each LUN and the pool's, for clients (the
//! shadow-copy protocol keeps a set id, a provider, registered writers there). Their limits and
//! how a change of one is checked, the same live and on replay.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The limits of one metadata map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most keys in the map.
    pub(crate) entries: usize,
    /// Longest value, in bytes.
    pub(crate) value: usize,
}

/// The LUN metadata key naming the snapshot set a shadow LUN belongs to (removed when it is
/// broken).
pub const SET_KEY: &str = "umbra:snapshot-set";

/// The LUN metadata key of a LUN exposing an engine shadow ([`crate::Array::expose_engine_shadow`]):
/// the shadow's snapshot id. The LUN stands on the shadow without owning it: deleting the LUN
/// leaves the shadow.
pub const EXPOSES_KEY: &str = "umbra:exposes";

/// Longest key, in bytes (1 to 128 of letters, digits, `.`, `_`, `-`, `:`, `/`).
pub const MAX_KEY: usize = 128;
/// A LUN's map: at most 64 keys, values of at most 4 KiB.
pub(crate) const LUN_LIMITS: Limits = Limits {
    entries: 64,
    value: 4096,
};
/// The pool's map: at most 1,024 keys, values of at most 64 KiB.
pub(crate) const POOL_LIMITS: Limits = Limits {
    entries: 1024,
    value: 64 << 10,
};

/// Checks a metadata key: 1 to [`MAX_KEY`] bytes of letters, digits, `.`, `_`, `-`, `:`, `/`.
pub(crate) fn check_key(whose: &str, key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_KEY
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'))
    {
        return Err(Error::invalid(format!(
            "metadata key {key:?} of {whose} must be 1 to {MAX_KEY} letters, digits, '.', '_', \
             '-', ':' or '/'"
        )));
    }
    Ok(())
}

/// Checks that setting `key` of `map` (the metadata of `whose`) to `value` (removing it for
/// `None`) keeps within `limits`. Removing a key that is not there is allowed (nothing changes).
pub(crate) fn check_set(
    whose: &str,
    map: &BTreeMap<String, String>,
    key: &str,
    value: Option<&str>,
    limits: Limits,
) -> Result<()> {
    check_key(whose, key)?;
    let Some(v) = value else {
        return Ok(());
    };
    if v.len() > limits.value {
        return Err(Error::invalid(format!(
            "metadata value of key {key:?} of {whose} is {} bytes; at most {} are kept",
            v.len(),
            limits.value
        )));
    }
    if v.contains('\0') {
        return Err(Error::invalid(format!(
            "metadata value of key {key:?} of {whose} holds a NUL byte"
        )));
    }
    if !map.contains_key(key) && map.len() >= limits.entries {
        return Err(Error::invalid(format!(
            "{whose} has {} metadata keys already, the most it may hold; key {key:?} is not one",
            map.len()
        )));
    }
    Ok(())
}

/// Sets `key` of `map` to `value`, or removes it for `None` (checked by [`check_set`] first).
pub(crate) fn set(map: &mut BTreeMap<String, String>, key: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.to_string());
        }
        None => {
            map.remove(key);
        }
    }
}
