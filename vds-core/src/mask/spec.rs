//! Unmasking lists: VDS `SetMask` strings, and the extensions (per-host access, groups).
//!
//! Grammar (whitespace around entries ignored):
//!
//! ```text
//! list      := "" | "*" [ "=" access ] | entry { ";" entry }
//! entry     := principal [ "=" access ]
//! principal := initiator-id | "@" group-name
//! access    := "rw" | "ro"            (default rw)
//! ```
//!
//! A plain VDS list (`""`, `"*"`, `id;id;...`) means exactly what `SetMask` means: no host, every host,
//! or these hosts; `*` and `""` are not combinable with other entries; duplicates are ignored; an
//! invalid entry rejects the whole list.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;

/// What a host may do with a LUN it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Read-only (SMI-S DeviceAccess 3).
    ReadOnly,
    /// Read and write (SMI-S DeviceAccess 2), the VDS default.
    ReadWrite,
}

/// Who a mask entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// One host by its initiator id.
    Host(InitiatorId),
    /// Every member of an initiator group.
    Group(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Host(id) => write!(f, "{id}"),
            Principal::Group(g) => write!(f, "@{g}"),
        }
    }
}

/// A parsed, normalised unmasking list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MaskSpec {
    /// No host (`""`): the default for a new LUN.
    #[default]
    None,
    /// Every host (`"*"`).
    All(Access),
    /// These principals, each with its access.
    List(BTreeMap<Principal, Access>),
}

/// Checks a group or LUN-style name: 1 to 64 of letters, digits, `.`, `_`, `-`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::invalid(format!(
            "{what} name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}

fn parse_access(text: &str, entry: &str) -> Result<Access> {
    match text.trim().to_ascii_lowercase().as_str() {
        "rw" => Ok(Access::ReadWrite),
        "ro" => Ok(Access::ReadOnly),
        other => Err(Error::new(
            ErrorKind::InvalidInitiator,
            format!("{entry:?}: access {other:?} is not rw or ro"),
        )),
    }
}

impl MaskSpec {
    /// The list of one host with `access` (the text `"<id>"` or `"<id>=ro"`).
    pub fn host(id: InitiatorId, access: Access) -> MaskSpec {
        MaskSpec::List(BTreeMap::from([(Principal::Host(id), access)]))
    }

    /// Parses an unmasking list.
    pub fn parse(text: &str) -> Result<MaskSpec> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(MaskSpec::None);
        }
        let entries: Vec<&str> = t.split(';').map(str::trim).collect();
        if entries.len() == 1 {
            let (p, a) = match entries[0].split_once('=') {
                Some((p, a)) => (p.trim(), Some(a)),
                None => (entries[0], None),
            };
            if p == "*" {
                let access = a.map_or(Ok(Access::ReadWrite), |a| parse_access(a, entries[0]))?;
                return Ok(MaskSpec::All(access));
            }
        }
        let mut list = BTreeMap::new();
        for e in entries {
            if e.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInitiator,
                    format!(
                        "{text:?}: an empty entry (\"\" cannot be combined with other entries)"
                    ),
                ));
            }
            let (p, a) = match e.split_once('=') {
                Some((p, a)) => (p.trim(), parse_access(a, e)?),
                None => (e, Access::ReadWrite),
            };
            if p == "*" {
                return Err(Error::new(
                    ErrorKind::InvalidInitiator,
                    format!("{text:?}: \"*\" cannot be combined with other entries"),
                ));
            }
            let principal = match p.strip_prefix('@') {
                Some(g) => {
                    check_name("group", g)
                        .map_err(|e| Error::new(ErrorKind::InvalidInitiator, e.message()))?;
                    Principal::Group(g.to_string())
                }
                None => Principal::Host(InitiatorId::parse(p)?),
            };
            if let Some(prev) = list.insert(principal.clone(), a) {
                if prev != a {
                    return Err(Error::new(
                        ErrorKind::InvalidInitiator,
                        format!("{text:?}: {principal} is listed with conflicting access"),
                    ));
                }
            }
        }
        Ok(MaskSpec::List(list))
    }

    /// The principals and access of a list (empty for `None` and `All`).
    pub fn entries(&self) -> impl Iterator<Item = (&Principal, Access)> {
        let m = match self {
            MaskSpec::List(m) => Some(m),
            _ => None,
        };
        m.into_iter().flat_map(|m| m.iter().map(|(p, a)| (p, *a)))
    }

    /// The groups the list names.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.entries().filter_map(|(p, _)| match p {
            Principal::Group(g) => Some(g.as_str()),
            Principal::Host(_) => None,
        })
    }
}

/// The canonical form: `""`, `"*"` (`"*=ro"`), or the entries sorted and `;`-joined, read-only ones
/// suffixed `=ro`.
impl fmt::Display for MaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskSpec::None => Ok(()),
            MaskSpec::All(Access::ReadWrite) => f.write_str("*"),
            MaskSpec::All(Access::ReadOnly) => f.write_str("*=ro"),
            MaskSpec::List(m) => {
                let mut items: Vec<String> = m
                    .iter()
                    .map(|(p, a)| match a {
                        Access::ReadWrite => p.to_string(),
                        Access::ReadOnly => format!("{p}=ro"),
                    })
                    .collect();
                items.sort();
                f.write_str(&items.join(";"))
            }
        }
    }
}

/// A list serialises as its canonical text (its `Display`).
impl serde::Serialize for MaskSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A list deserialises from any text [`MaskSpec::parse`] reads; a text it refuses is a
/// deserialisation error carrying its message.
impl<'de> serde::Deserialize<'de> for MaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        MaskSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// [`MaskSpec::parse`], for `"...".parse::<MaskSpec>()`.
impl FromStr for MaskSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MaskSpec::parse(s)
    }
}
