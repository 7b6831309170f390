//! Initiator identifiers: iSCSI names and 64-bit port names (Fibre Channel WWNs, SAS addresses).
//!
//! Every common spelling is accepted and stored normalised, so two spellings of one host compare
//! equal:
//!
//! | kind | accepted | canonical |
//! |---|---|---|
//! | iSCSI qualified name | `iqn.YYYY-MM.reversed.domain[:unique]`, any case, at most 223 bytes | lowercase |
//! | iSCSI EUI-64 name | `eui.` + 16 hex digits | `eui.` + 16 lowercase hex |
//! | iSCSI NAA 128-bit name | `naa.` + 32 hex digits | `naa.` + 32 lowercase hex |
//! | 64-bit port name (FC WWPN/WWNN, SAS address) | 16 hex digits plain, with `:` or `-` between bytes, `0x`-prefixed, or `naa.` + 16 hex | 16 lowercase hex |
//!
//! `naa.` + 16 hex digits names the same port as the plain WWN. Every NAA nibble is accepted (Hyper-V's
//! NAA C WWPNs included); an all-zero port name is not a port.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest iSCSI name, in bytes (RFC 3720).
pub const MAX_ISCSI_NAME: usize = 223;

/// A normalised initiator identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InitiatorId {
    /// An iSCSI qualified name (`iqn.`), lowercase.
    Iqn(String),
    /// An iSCSI EUI-64 name (`eui.` + 16 hex).
    Eui(u64),
    /// An iSCSI NAA 128-bit name (`naa.` + 32 hex).
    Naa128(u128),
    /// A 64-bit port name: a Fibre Channel WWN or a SAS address.
    Port(u64),
}

fn invalid(text: &str, reason: impl Into<String>) -> Error {
    Error::invalid_initiator(text, reason)
}

fn parse_hex64(digits: &str, text: &str) -> Result<u64> {
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(text, "expected 16 hex digits"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid(text, "expected 16 hex digits"))
}

fn port(v: u64, text: &str) -> Result<InitiatorId> {
    if v == 0 {
        return Err(invalid(text, "an all-zero port name is not valid"));
    }
    Ok(InitiatorId::Port(v))
}

impl InitiatorId {
    /// Parses any common spelling (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<InitiatorId> {
        let t = text.trim();
        if t.is_empty() {
            return Err(invalid(text, "empty initiator id"));
        }
        let lower = t.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("iqn.") {
            return Self::parse_iqn(text, &lower, rest);
        }
        if let Some(rest) = lower.strip_prefix("eui.") {
            return Ok(InitiatorId::Eui(parse_hex64(rest, text).map_err(|_| {
                invalid(text, "an eui. name needs exactly 16 hex digits")
            })?));
        }
        if let Some(rest) = lower.strip_prefix("naa.") {
            return match rest.len() {
                16 => port(parse_hex64(rest, text)?, text),
                32 if rest.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(InitiatorId::Naa128(
                    u128::from_str_radix(rest, 16).map_err(|_| invalid(text, "bad naa. digits"))?,
                )),
                _ => Err(invalid(text, "a naa. name needs 16 or 32 hex digits")),
            };
        }
        if let Some(rest) = lower.strip_prefix("0x") {
            return port(parse_hex64(rest, text)?, text);
        }
        if lower.contains(':') || lower.contains('-') {
            let sep = if lower.contains(':') { ':' } else { '-' };
            let parts: Vec<&str> = lower.split(sep).collect();
            if parts.len() != 8
                || parts
                    .iter()
                    .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(invalid(
                    text,
                    format!("a separated WWN needs 8 pairs of hex digits joined by '{sep}'"),
                ));
            }
            return port(parse_hex64(&parts.concat(), text)?, text);
        }
        if lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return port(parse_hex64(&lower, text)?, text);
        }
        Err(invalid(
            text,
            "not an iSCSI name (iqn., eui., naa.) or a 64-bit WWN / SAS address",
        ))
    }

    fn parse_iqn(text: &str, lower: &str, rest: &str) -> Result<InitiatorId> {
        if lower.len() > MAX_ISCSI_NAME {
            return Err(invalid(
                text,
                format!(
                    "an iSCSI name is at most {MAX_ISCSI_NAME} bytes, this one has {}",
                    lower.len()
                ),
            ));
        }
        if let Some(bad) = lower.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
        }) {
            return Err(invalid(
                text,
                format!("character {bad:?} is not allowed in an iSCSI name"),
            ));
        }
        let b = rest.as_bytes();
        let date_ok = b.len() >= 7
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit);
        if !date_ok {
            return Err(invalid(text, "an iqn. name starts with a date YYYY-MM"));
        }
        let month = (b[5] - b'0') * 10 + (b[6] - b'0');
        if !(1..=12).contains(&month) {
            return Err(invalid(text, format!("month {month:02} is not 01 to 12")));
        }
        let authority = &rest[7..];
        let Some(domain) = authority.strip_prefix('.') else {
            return Err(invalid(
                text,
                "an iqn. name needs '.' and a naming authority after the date",
            ));
        };
        let domain = domain.split(':').next().unwrap_or("");
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid(
                text,
                "the naming authority (reversed domain name) is malformed",
            ));
        }
        Ok(InitiatorId::Iqn(lower.to_string()))
    }

    /// True for iSCSI names, false for port names.
    pub fn is_iscsi(&self) -> bool {
        !matches!(self, InitiatorId::Port(_))
    }
}

/// An initiator serialises as its canonical text (its `Display`).
impl serde::Serialize for InitiatorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An initiator deserialises from any spelling [`InitiatorId::parse`] reads; a text it refuses is
/// a deserialisation error carrying its message.
impl<'de> serde::Deserialize<'de> for InitiatorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        InitiatorId::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InitiatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitiatorId::Iqn(s) => f.write_str(s),
            InitiatorId::Eui(v) => write!(f, "eui.{v:016x}"),
            InitiatorId::Naa128(v) => write!(f, "naa.{v:032x}"),
            InitiatorId::Port(v) => write!(f, "{v:016x}"),
        }
    }
}

impl FromStr for InitiatorId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        InitiatorId::parse(s)
    }
}
