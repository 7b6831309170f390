//! Initiator id parsing: valid and invalid spellings from the RFCs and from operator bugs.

use vds_core::{ErrorKind, InitiatorId};

#[test]
fn valid_spellings_normalise_to_one_canonical_form() {
    let table: &[(&str, &str)] = &[
        // RFC 3720 examples, any case, lowercase canonical (ceph-iscsi #146, trident #1135).
        (
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
        ),
        ("iqn.2001-04.com.example", "iqn.2001-04.com.example"),
        (
            "IQN.1991-05.COM.Microsoft:Host1.Contoso.com",
            "iqn.1991-05.com.microsoft:host1.contoso.com",
        ),
        (
            "  iqn.1994-05.com.redhat:9a3c1d2e  ",
            "iqn.1994-05.com.redhat:9a3c1d2e",
        ),
        (
            "iqn.2003-01.org.linux-iscsi.host:sn.123",
            "iqn.2003-01.org.linux-iscsi.host:sn.123",
        ),
        ("eui.02004567A425678D", "eui.02004567a425678d"),
        ("naa.52004567BA64678D", "52004567ba64678d"),
        (
            "naa.62004567BA64678D0123456789ABCDEF",
            "naa.62004567ba64678d0123456789abcdef",
        ),
        // FC WWPNs in every common spelling (rtslib-fb #139, #23, #45).
        ("10000000C9123456", "10000000c9123456"),
        ("10:00:00:00:c9:12:34:56", "10000000c9123456"),
        ("10-00-00-00-C9-12-34-56", "10000000c9123456"),
        ("0x10000000c9123456", "10000000c9123456"),
        ("0X10000000C9123456", "10000000c9123456"),
        ("naa.10000000c9123456", "10000000c9123456"),
        // Every NAA nibble, Hyper-V's NAA C WWPNs included.
        ("c003ff0000ffff00", "c003ff0000ffff00"),
        ("C0:03:FF:00:00:FF:FF:00", "c003ff0000ffff00"),
        ("20000025b5000001", "20000025b5000001"),
        ("5000c50012345678", "5000c50012345678"),
        ("f000000000000001", "f000000000000001"),
        // SAS address (NAA 5).
        ("500605b0000272b0", "500605b0000272b0"),
    ];
    for (input, canonical) in table {
        let id = InitiatorId::parse(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
        assert_eq!(id.to_string(), *canonical, "{input:?}");
        // Round trip: the canonical form parses to the same id.
        assert_eq!(InitiatorId::parse(canonical).unwrap(), id);
    }
    // Different spellings of one port are one host.
    let a = InitiatorId::parse("naa.10000000c9123456").unwrap();
    let b = InitiatorId::parse("10:00:00:00:C9:12:34:56").unwrap();
    assert_eq!(a, b);
    assert!(!a.is_iscsi());
    assert!(InitiatorId::parse("eui.02004567a425678d")
        .unwrap()
        .is_iscsi());
}

#[test]
fn invalid_spellings_are_rejected_with_the_reason_and_the_text() {
    let long = format!("iqn.2001-04.com.example:{}", "a".repeat(200));
    let table: &[(&str, &str)] = &[
        ("", "empty"),
        ("   ", "empty"),
        ("iqn.2001-13.com.example", "month 13"),
        ("iqn.2001-00.com.example", "month 00"),
        ("iqn.01-04.com.example", "date"),
        ("iqn.2001-4.com.example", "date"),
        ("iqn.2001-04", "naming authority"),
        ("iqn.2001-04.", "naming authority"),
        ("iqn.2001-04com.example", "naming authority"),
        ("iqn.2001-04..com", "naming authority"),
        ("iqn.2001-04.com.example:disk one", "not allowed"),
        ("iqn.2001-04.com.exa_mple", "not allowed"),
        (&long, "at most 223"),
        ("eui.02004567a425678", "16 hex"),
        ("eui.02004567a425678z", "16 hex"),
        ("naa.1234", "16 or 32"),
        ("10000000c912345", "16 hex"),
        ("10000000c91234567", "16 hex"),
        ("10:00:00:00:c9:12:34", "8 pairs"),
        ("10:00:00:00:c9:12:34:5g", "8 pairs"),
        ("1000:0000:c912:3456", "8 pairs"),
        ("0x10000000c912345g", "16 hex"),
        ("0000000000000000", "all-zero"),
        ("00:00:00:00:00:00:00:00", "all-zero"),
        ("host1", "not an iSCSI name"),
        ("*", "not an iSCSI name"),
    ];
    for (input, reason) in table {
        let e = InitiatorId::parse(input).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInitiator, "{input:?}");
        let msg = e.to_string();
        assert!(msg.contains(reason), "{input:?}: {msg} lacks {reason:?}");
        if !input.trim().is_empty() && input.len() < 100 {
            assert!(msg.contains(input.trim()), "{msg} does not show the text");
        }
    }
}

#[test]
fn display_of_any_parsed_id_round_trips() {
    use proptest::prelude::*;
    proptest!(|(v in 1u64.., n in any::<u128>(), host in "[a-z0-9]{1,20}")| {
        for id in [InitiatorId::Port(v), InitiatorId::Eui(v), InitiatorId::Naa128(n)] {
            prop_assert_eq!(InitiatorId::parse(&id.to_string()).unwrap(), id);
        }
        let iqn = format!("iqn.2020-02.org.example:{host}");
        let id = InitiatorId::parse(&iqn.to_uppercase()).unwrap();
        prop_assert_eq!(id.to_string(), iqn);
    });
}
