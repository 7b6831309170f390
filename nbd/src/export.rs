//! Which exports an identity sees, and how an export name resolves.
//!
//! The exports of initiator `I` are the LUNs `I` is unmasked to ([`vds_core::Array::host_view`]),
//! resolved afresh for every LIST, INFO and GO. Each is named by the host LUN number `I` sees it
//! at, in decimal without leading zeros (`"0"`, `"1"`, ...); its description is the LUN's name.
//! A name resolves:
//! 1. a decimal number (`"0"`, `"17"`): the LUN `I` sees at that number;
//! 2. otherwise the name of a LUN `I` sees (so a LUN named `"7"` is reached by its number only);
//! 3. `""` (the default export): the LUN `I` sees at the lowest number.
//!
//! A masked LUN is neither listed nor resolved.

use vds_core::{Access, Array, InitiatorId};

/// One export as an initiator sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    /// The host LUN number (the export's canonical name, in decimal).
    pub number: u32,
    /// The LUN's name (the export's description; also accepted as an export name).
    pub lun: String,
    /// The LUN's size in bytes.
    pub size: u64,
    /// Read-only access (a read-only grant, or a shadow LUN).
    pub read_only: bool,
}

impl ExportInfo {
    /// The export's canonical name: its host LUN number in decimal.
    pub fn name(&self) -> String {
        self.number.to_string()
    }
}

/// The exports `initiator` sees now, by host LUN number.
pub fn list(array: &Array, initiator: &InitiatorId) -> Vec<ExportInfo> {
    array
        .host_view(initiator)
        .into_iter()
        .filter_map(|(lun, grant)| {
            // A LUN deleted between the view and these look-ups is left out.
            let size = array.lun(&lun).ok()?.size;
            let shadow = array.is_shadow(&lun).ok()?;
            Some(ExportInfo {
                number: grant.number,
                read_only: shadow || grant.access == Access::ReadOnly,
                lun,
                size,
            })
        })
        .collect()
}

/// The export `name` reaches for `initiator` now (see the module docs), if any.
pub fn resolve(array: &Array, initiator: &InitiatorId, name: &str) -> Option<ExportInfo> {
    let all = list(array, initiator);
    if name.is_empty() {
        return all.into_iter().min_by_key(|e| e.number);
    }
    if let Some(n) = parse_number(name) {
        return all.into_iter().find(|e| e.number == n);
    }
    all.into_iter().find(|e| e.lun == name)
}

/// A host LUN number written in decimal without leading zeros or sign.
fn parse_number(name: &str) -> Option<u32> {
    if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_digit())
        || (name.len() > 1 && name.starts_with('0'))
    {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_core::MaskSpec;

    #[test]
    fn names_resolve_by_number_then_lun_name_and_empty_is_the_lowest_number() {
        let array = Array::in_memory();
        let a = InitiatorId::parse("iqn.2026-01.org.example:a").unwrap();
        let b = InitiatorId::parse("iqn.2026-01.org.example:b").unwrap();
        array
            .create_lun("db", 1 << 20, &MaskSpec::host(a.clone(), Access::ReadWrite))
            .unwrap();
        array
            .create_lun("7", 2 << 20, &MaskSpec::host(a.clone(), Access::ReadOnly))
            .unwrap();
        array
            .create_lun(
                "other",
                1 << 20,
                &MaskSpec::host(b.clone(), Access::ReadWrite),
            )
            .unwrap();
        let view = array.host_view(&a);
        let db = view.iter().find(|(n, _)| n == "db").unwrap().1.number;
        let seven = view.iter().find(|(n, _)| n == "7").unwrap().1.number;
        let listed = list(&array, &a);
        assert_eq!(listed.len(), 2);
        let e = resolve(&array, &a, &db.to_string()).unwrap();
        assert_eq!(
            (e.lun.as_str(), e.size, e.read_only),
            ("db", 1 << 20, false)
        );
        let e = resolve(&array, &a, "db").unwrap();
        assert_eq!(e.number, db);
        let e = resolve(&array, &a, &seven.to_string()).unwrap();
        assert_eq!((e.lun.as_str(), e.read_only), ("7", true));
        assert_eq!(
            resolve(&array, &a, "").unwrap().number,
            db.min(seven),
            "the default export is the lowest number"
        );
        // "other" is masked from a: neither listed nor resolved, by name or number.
        assert!(resolve(&array, &a, "other").is_none());
        let other = array.host_view(&b)[0].1.number;
        assert!(listed.iter().all(|e| e.lun != "other"));
        if other != db && other != seven {
            assert!(resolve(&array, &a, &other.to_string()).is_none());
        }
        assert!(resolve(&array, &a, "00").is_none());
        assert_eq!(parse_number("00"), None);
        assert_eq!(parse_number("+1"), None);
        assert_eq!(parse_number("12"), Some(12));
    }
}
