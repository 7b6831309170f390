//! Command-line text into the library's typed values: every argument is read before the pool is
//! opened, so a bad one changes nothing (not even a pool created on first use).

use vds_core::{ErrorKind, InitiatorId, MaskSpec};

use crate::error::{Error, Result};

/// A size as DiskRAID reads it (vds-core's `parse_size`: binary units, MB when none).
pub fn size(text: &str) -> Result<u64> {
    vds_core::script::parse_size(text).map_err(|m| Error::of_kind(ErrorKind::InvalidArgument, m))
}

/// A byte count or offset (`--offset`, `--length`): a plain number of bytes, or a number with a
/// unit as [`size`] reads it (`4KiB`).
pub fn bytes(text: &str, what: &str) -> Result<u64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| {
            Error::of_kind(
                ErrorKind::InvalidArgument,
                format!("{what} {text:?} is too large"),
            )
        });
    }
    vds_core::script::parse_size(t)
        .map_err(|m| Error::of_kind(ErrorKind::InvalidArgument, format!("{what}: {m}")))
}

/// An initiator id in any common spelling.
pub fn initiator(text: &str) -> Result<InitiatorId> {
    Ok(InitiatorId::parse(text)?)
}

/// An unmasking list (VDS SetMask text).
pub fn mask(text: &str) -> Result<MaskSpec> {
    Ok(MaskSpec::parse(text)?)
}

/// Initiator ids separated by `;` or `,` (at least one).
pub fn initiators(text: &str) -> Result<Vec<InitiatorId>> {
    let ids = text
        .split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(initiator)
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        return Err(Error::of_kind(
            ErrorKind::InvalidInitiator,
            format!("{text:?} names no initiator id (separate ids with ';' or ',')"),
        ));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_are_bytes_unless_a_unit_says_otherwise() {
        assert_eq!(bytes("4096", "offset"), Ok(4096));
        assert_eq!(bytes("4KiB", "offset"), Ok(4096));
        assert_eq!(bytes("1MB", "length"), Ok(1 << 20));
        let e = bytes("4 bananas", "offset").unwrap_err();
        assert_eq!(e.status.code(), 4);
        assert!(e.message.contains("offset"), "{}", e.message);
        assert!(bytes("99999999999999999999", "offset").is_err());
    }

    #[test]
    fn id_lists_split_on_semicolons_and_commas() {
        let ids = initiators("iqn.1991-05.com.microsoft:a; 10:00:00:00:c9:00:00:02").unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(initiators(" ; ").unwrap_err().kind, "invalid_initiator");
        assert_eq!(initiators("not an id").unwrap_err().status.code(), 4);
    }
}
