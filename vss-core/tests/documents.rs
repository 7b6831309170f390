//! The documents: property tests of exact round trips (equal value, identical canonical bytes,
//! any JSON spelling of a document reading the same), and a table of malformed documents, each
//! rejected with the problem and where it is.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use uuid::Uuid;
use vss_core::document::{
    Component, Dependency, RestoreMethod, SelectedComponent, SnapshotSet, SourceType,
};
use vss_core::{
    Attributes, BackupComponents, BackupType, Context, ErrorKind, Exposure, LunDescription,
    ProviderType, ShadowProperties, SnapshotState, WriterMetadata,
};

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9._-]{0,11}"
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn component() -> impl Strategy<Value = Component> {
    (
        prop::collection::vec("[a-z]{1,4}", 0..3),
        // Any text without '/' or control characters, escapes and non-ASCII included.
        "[^/\\p{Cc}]{1,8}",
        any::<(bool, bool)>(),
        prop::collection::btree_set(name(), 0..4),
        prop::collection::vec((name(), "[a-z]{1,4}(/[a-z]{1,4}){0,2}"), 0..3),
    )
        .prop_map(|(path, name, (sel, selr), luns, deps)| Component {
            logical_path: path.join("/"),
            name,
            selectable: sel,
            selectable_for_restore: selr,
            luns: luns.into_iter().collect(),
            dependencies: deps
                .into_iter()
                .map(|(writer, path)| Dependency { writer, path })
                .collect(),
        })
}

fn metadata_named(writer: String) -> impl Strategy<Value = WriterMetadata> {
    (
        prop::sample::select(vec![
            SourceType::TransactedDb,
            SourceType::NonTransactedDb,
            SourceType::Other,
        ]),
        prop::sample::select(vec![
            RestoreMethod::IfNotThere,
            RestoreMethod::IfCanReplace,
            RestoreMethod::StopRestoreStart,
            RestoreMethod::AlternateLocation,
            RestoreMethod::AtReboot,
            RestoreMethod::Custom,
        ]),
        prop::collection::vec(component(), 0..6),
    )
        .prop_map(move |(source, restore, components)| {
            let mut m = WriterMetadata::new(writer.clone());
            m.source_type = source;
            m.restore_method = restore;
            // Full paths are unique and nothing depends on itself.
            let mut seen = std::collections::HashSet::new();
            for mut c in components {
                let full = c.full_path();
                c.dependencies
                    .retain(|d| !(d.writer == m.writer && d.path == full));
                if seen.insert(full) {
                    m.components.push(c);
                }
            }
            m
        })
}

fn metadata() -> impl Strategy<Value = WriterMetadata> {
    name().prop_flat_map(metadata_named)
}

fn exposure() -> impl Strategy<Value = Exposure> {
    prop_oneof![
        Just(Exposure::Hidden),
        "[ -~]{0,12}".prop_map(|path| Exposure::Local { path }),
        prop::collection::vec("iqn\\.[a-z0-9.:-]{1,12}", 0..3)
            .prop_map(|initiators| Exposure::Hosts { initiators }),
    ]
}

fn shadow(set_id: Uuid, count: u32, original: String) -> impl Strategy<Value = ShadowProperties> {
    (
        uuid(),
        name(),
        any::<(u64, u64)>(),
        uuid(),
        prop::sample::select(ProviderType::ALL.to_vec()),
        any::<u32>(),
        any::<u64>(),
        prop::sample::select(SnapshotState::ALL.to_vec()),
        exposure(),
    )
        .prop_map(
            move |(
                shadow_id,
                shadow_name,
                (osize, ssize),
                provider_id,
                ptype,
                attrs,
                ns,
                state,
                exposure,
            )| {
                ShadowProperties {
                    shadow_id,
                    set_id,
                    count_in_set: count,
                    original: LunDescription {
                        name: original.clone(),
                        size: osize,
                    },
                    shadow: LunDescription {
                        name: shadow_name,
                        size: ssize,
                    },
                    provider_id,
                    provider_type: ptype,
                    attributes: Attributes::from_bits_retain(attrs),
                    created: UNIX_EPOCH + Duration::from_nanos(ns),
                    state,
                    exposure,
                }
            },
        )
}

fn snapshot_set() -> impl Strategy<Value = SnapshotSet> {
    (uuid(), prop::collection::btree_set(name(), 0..5)).prop_flat_map(|(set_id, originals)| {
        let n = originals.len() as u32;
        let shadows: Vec<_> = originals
            .into_iter()
            .map(|o| shadow(set_id, n, o))
            .collect();
        shadows.prop_filter_map("shadow ids are unique", move |shadows| {
            let ids: std::collections::HashSet<_> = shadows.iter().map(|s| s.shadow_id).collect();
            (ids.len() == shadows.len()).then_some(SnapshotSet { set_id, shadows })
        })
    })
}

fn components_doc() -> impl Strategy<Value = BackupComponents> {
    (
        prop::sample::select(BackupType::ALL.to_vec()),
        any::<u32>(),
        prop::collection::btree_set(name(), 0..4),
        prop::option::of(snapshot_set()),
        any::<u64>(),
    )
        .prop_flat_map(|(bt, ctx, names, set, pick)| {
            let writers: Vec<_> = names.into_iter().map(metadata_named).collect();
            (writers, Just((bt, ctx, set, pick)))
        })
        .prop_map(|(writers, (bt, ctx, set, pick))| {
            let mut d = BackupComponents::new(bt, Context::from_bits_retain(ctx));
            // Select some existing components, each once.
            let mut k = pick;
            for w in &writers {
                for c in &w.components {
                    if k & 1 == 1 {
                        d.selected.push(SelectedComponent {
                            writer: w.writer.clone(),
                            path: c.full_path(),
                            backup_succeeded: k & 2 == 2,
                        });
                    }
                    k = k.rotate_right(2);
                }
            }
            d.writers = writers;
            d.snapshot_set = set;
            d
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Written, read, written again: equal value and identical bytes; a pretty-printed spelling
    /// reads the same.
    #[test]
    fn writer_metadata_round_trips_exactly(m in metadata()) {
        let text = m.to_json().unwrap();
        let back = WriterMetadata::from_json(text.as_bytes()).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_json().unwrap(), text.clone());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert_eq!(WriterMetadata::from_json(pretty.as_bytes()).unwrap(), m);
        // The canonical form is compact and starts with the format and version.
        let prefix = "{\"format\":\"umbra-writer-metadata\",\"version\":1,";
        prop_assert!(text.starts_with(prefix));
    }

    #[test]
    fn backup_components_round_trip_exactly(d in components_doc()) {
        let text = d.to_json().unwrap();
        let back = BackupComponents::from_json(text.as_bytes()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.to_json().unwrap(), text.clone());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert_eq!(BackupComponents::from_json(pretty.as_bytes()).unwrap(), d);
    }

    /// Flags keep every bit, named or not, through their text.
    #[test]
    fn flags_round_trip_for_every_value(bits in any::<u32>()) {
        let a = Attributes::from_bits_retain(bits);
        let text = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(serde_json::from_str::<Attributes>(&text).unwrap(), a);
        let c = Context::from_bits_retain(bits);
        let text = serde_json::to_string(&c).unwrap();
        prop_assert_eq!(serde_json::from_str::<Context>(&text).unwrap(), c);
    }

    /// Any bytes: an error of a documented kind or a document that round-trips, never a panic.
    #[test]
    fn any_text_is_a_document_or_a_clear_error(s in ".{0,120}") {
        for r in [
            WriterMetadata::from_json(s.as_bytes()).map(|_| ()),
            BackupComponents::from_json(s.as_bytes()).map(|_| ()),
        ] {
            if let Err(e) = r {
                prop_assert!(matches!(e.kind(), ErrorKind::InvalidDocument | ErrorKind::UnsupportedVersion));
            }
        }
    }
}

/// A valid document of each kind, as the malformed ones below are variations of them.
fn good_metadata() -> WriterMetadata {
    let mut m = WriterMetadata::new("db");
    m.source_type = SourceType::TransactedDb;
    m.components.push(Component::new("", "data", ["db-data"]));
    let mut log = Component::new("data", "log", ["db-log"]);
    log.dependencies.push(Dependency {
        writer: "db".into(),
        path: "data".into(),
    });
    m.components.push(log);
    m
}

fn good_components() -> BackupComponents {
    let set_id = Uuid::from_u128(7);
    let mut d = BackupComponents::new(
        BackupType::Copy,
        Context::BACKUP | Attributes::TRANSPORTABLE,
    );
    d.writers.push(good_metadata());
    d.selected.push(SelectedComponent {
        writer: "db".into(),
        path: "data".into(),
        backup_succeeded: true,
    });
    d.snapshot_set = Some(SnapshotSet {
        set_id,
        shadows: vec![ShadowProperties {
            shadow_id: Uuid::from_u128(8),
            set_id,
            count_in_set: 1,
            original: LunDescription {
                name: "db-data".into(),
                size: 1 << 30,
            },
            shadow: LunDescription {
                name: "db-data.shadow1".into(),
                size: 1 << 30,
            },
            provider_id: Uuid::from_u128(9),
            provider_type: ProviderType::Hardware,
            attributes: Attributes::TRANSPORTABLE | Attributes::HARDWARE_ASSISTED,
            created: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            state: SnapshotState::Created,
            exposure: Exposure::Hidden,
        }],
    });
    d
}

/// `text` with its first `from` replaced by `to` (which must be there).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1)
}

#[test]
fn the_documents_read_as_written() {
    let m = good_metadata().to_json().unwrap();
    assert_eq!(
        m,
        "{\"format\":\"umbra-writer-metadata\",\"version\":1,\"writer\":\"db\",\
         \"source_type\":\"transacted-db\",\"restore_method\":\"if-can-replace\",\"components\":[\
         {\"logical_path\":\"\",\"name\":\"data\",\"selectable\":true,\"selectable_for_restore\":true,\
         \"luns\":[\"db-data\"],\"dependencies\":[]},\
         {\"logical_path\":\"data\",\"name\":\"log\",\"selectable\":true,\"selectable_for_restore\":true,\
         \"luns\":[\"db-log\"],\"dependencies\":[{\"writer\":\"db\",\"path\":\"data\"}]}]}"
    );
    let d = good_components().to_json().unwrap();
    assert!(d.contains("\"context\":\"TRANSPORTABLE\""), "{d}");
    assert!(
        d.contains("\"attributes\":\"TRANSPORTABLE | HARDWARE_ASSISTED\""),
        "{d}"
    );
    assert!(d.contains("\"created_unix_ns\":1800000000000000000"), "{d}");
    assert!(d.contains("\"exposure\":{\"kind\":\"hidden\"}"), "{d}");
    assert_eq!(
        BackupComponents::from_json(d.as_bytes()).unwrap(),
        good_components()
    );
    // The tree: selecting "data" brings "data/log".
    let tree: Vec<String> = good_metadata()
        .subtree("data")
        .map(|c| c.full_path())
        .collect();
    assert_eq!(tree, ["data", "data/log"]);
}

#[test]
fn malformed_documents_are_rejected_naming_the_problem_and_where() {
    let m = good_metadata().to_json().unwrap();
    let d = good_components().to_json().unwrap();
    let pretty = {
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        serde_json::to_string_pretty(&v).unwrap()
    };
    type Case = (&'static str, String, ErrorKind, &'static [&'static str]);
    let wmd: Vec<Case> = vec![
        (
            "empty",
            String::new(),
            ErrorKind::InvalidDocument,
            &["EOF while parsing", "line 1 column 0"],
        ),
        (
            "not an object",
            "[1]".into(),
            ErrorKind::InvalidDocument,
            &["invalid type", "line 1"],
        ),
        (
            "truncated",
            m[..m.len() / 2].into(),
            ErrorKind::InvalidDocument,
            &["EOF while parsing"],
        ),
        (
            "trailing text",
            format!("{m} x"),
            ErrorKind::InvalidDocument,
            &["trailing characters"],
        ),
        (
            "no format",
            edit(&m, "\"format\":\"umbra-writer-metadata\",", ""),
            ErrorKind::InvalidDocument,
            &["missing field `format`"],
        ),
        (
            "other format",
            edit(&m, "umbra-writer-metadata", "umbra-backup-components"),
            ErrorKind::InvalidDocument,
            &["format: \"umbra-backup-components\" is not \"umbra-writer-metadata\""],
        ),
        (
            "no version",
            edit(&m, "\"version\":1,", ""),
            ErrorKind::InvalidDocument,
            &["missing field `version`"],
        ),
        (
            "later version",
            edit(&m, "\"version\":1", "\"version\":2"),
            ErrorKind::UnsupportedVersion,
            &["version 2 is not supported"],
        ),
        (
            "unknown field",
            edit(&m, "\"writer\":", "\"color\":\"red\",\"writer\":"),
            ErrorKind::InvalidDocument,
            &["unknown field `color`", "line 1 column"],
        ),
        (
            "duplicate field",
            edit(
                &m,
                "\"writer\":\"db\",",
                "\"writer\":\"db\",\"writer\":\"db\",",
            ),
            ErrorKind::InvalidDocument,
            &["duplicate field `writer`"],
        ),
        (
            "wrong type",
            edit(&m, "\"selectable\":true", "\"selectable\":\"yes\""),
            ErrorKind::InvalidDocument,
            &["invalid type: string \"yes\", expected a boolean"],
        ),
        (
            "unknown enum value",
            edit(&m, "transacted-db", "spreadsheet"),
            ErrorKind::InvalidDocument,
            &["unknown variant `spreadsheet`"],
        ),
        (
            "bad writer name",
            edit(&m, "\"writer\":\"db\"", "\"writer\":\"d b\""),
            ErrorKind::InvalidDocument,
            &["writer: writer name \"d b\""],
        ),
        (
            "empty component name",
            edit(&m, "\"name\":\"log\"", "\"name\":\"\""),
            ErrorKind::InvalidDocument,
            &["components[1].name"],
        ),
        (
            "slash in a name",
            edit(&m, "\"name\":\"log\"", "\"name\":\"a/b\""),
            ErrorKind::InvalidDocument,
            &["components[1].name", "\"a/b\""],
        ),
        (
            "bad logical path",
            edit(
                &m,
                "\"logical_path\":\"data\"",
                "\"logical_path\":\"data//x\"",
            ),
            ErrorKind::InvalidDocument,
            &["components[1].logical_path", "\"data//x\""],
        ),
        (
            "same path twice",
            edit(
                &m,
                "\"logical_path\":\"data\",\"name\":\"log\"",
                "\"logical_path\":\"\",\"name\":\"data\"",
            ),
            ErrorKind::InvalidDocument,
            &["components[1]: a second component at \"data\""],
        ),
        (
            "bad LUN name",
            edit(&m, "[\"db-log\"]", "[\"db;log\"]"),
            ErrorKind::InvalidDocument,
            &["components[1].luns[0]", "\"db;log\""],
        ),
        (
            "LUN twice",
            edit(&m, "[\"db-log\"]", "[\"db-log\",\"db-log\"]"),
            ErrorKind::InvalidDocument,
            &["components[1].luns[1]", "listed twice"],
        ),
        (
            "depends on itself",
            edit(&m, "\"path\":\"data\"", "\"path\":\"data/log\""),
            ErrorKind::InvalidDocument,
            &["components[1].dependencies[0]", "itself"],
        ),
        (
            "not UTF-8",
            format!("{}\u{0}", &m[..20]),
            ErrorKind::InvalidDocument,
            &["line 1"],
        ),
    ];
    for (what, text, kind, needles) in wmd {
        let e = WriterMetadata::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(
            e.message().starts_with("writer metadata document: "),
            "{what}: {e}"
        );
        for n in needles {
            assert!(e.message().contains(n), "{what}: {e:?} lacks {n:?}");
        }
    }
    // A syntax error is placed by line and column of the text as given.
    let broken_line = 1 + pretty
        .lines()
        .position(|l| l.contains("\"selectable\": true"))
        .unwrap();
    let e = WriterMetadata::from_json(
        edit(&pretty, "\"selectable\": true", "\"selectable\": tru").as_bytes(),
    )
    .unwrap_err();
    assert!(broken_line > 1);
    assert!(
        e.message()
            .contains(&format!("at line {broken_line} column")),
        "{e}"
    );
    let bcd: Vec<Case> = vec![
        (
            "a writer metadata document",
            m.clone(),
            ErrorKind::InvalidDocument,
            &["format: \"umbra-writer-metadata\" is not \"umbra-backup-components\""],
        ),
        (
            "unknown writer selected",
            edit(
                &d,
                "{\"writer\":\"db\",\"path\":\"data\"",
                "{\"writer\":\"mail\",\"path\":\"data\"",
            ),
            ErrorKind::InvalidDocument,
            &["selected[0].writer", "\"mail\""],
        ),
        (
            "unknown component selected",
            edit(
                &d,
                "\"path\":\"data\",\"backup_succeeded\"",
                "\"path\":\"logs\",\"backup_succeeded\"",
            ),
            ErrorKind::InvalidDocument,
            &["selected[0].path", "no component \"logs\""],
        ),
        (
            "bad backup type",
            edit(&d, "\"backup_type\":\"copy\"", "\"backup_type\":\"cp\""),
            ErrorKind::InvalidDocument,
            &["unknown variant `cp`"],
        ),
        (
            "bad flags",
            edit(
                &d,
                "\"TRANSPORTABLE | HARDWARE_ASSISTED\"",
                "\"TRANSPORTABLE | FAST\"",
            ),
            ErrorKind::InvalidDocument,
            &["FAST"],
        ),
        (
            "bad uuid",
            edit(&d, "00000000-0000-0000-0000-000000000008", "not-a-uuid"),
            ErrorKind::InvalidDocument,
            &["line 1 column"],
        ),
        (
            "shadow of another set",
            edit(
                &d,
                "\"set_id\":\"00000000-0000-0000-0000-000000000007\",\"count_in_set\"",
                "\"set_id\":\"00000000-0000-0000-0000-000000000006\",\"count_in_set\"",
            ),
            ErrorKind::InvalidDocument,
            &["snapshot_set.shadows[0].set_id"],
        ),
        (
            "wrong count",
            edit(&d, "\"count_in_set\":1", "\"count_in_set\":2"),
            ErrorKind::InvalidDocument,
            &["snapshot_set.shadows[0].count_in_set"],
        ),
        (
            "bad nested metadata",
            edit(
                &d,
                "\"writer\":\"db\",\"source_type\"",
                "\"writer\":\"\",\"source_type\"",
            ),
            ErrorKind::InvalidDocument,
            &["writers[0].writer"],
        ),
        (
            "nested metadata of a later version",
            edit(&d, "\"version\":1,\"writer\"", "\"version\":3,\"writer\""),
            ErrorKind::InvalidDocument,
            &["version 3 is not supported", "line 1 column"],
        ),
        (
            "negative size",
            edit(&d, "\"size\":1073741824", "\"size\":-1"),
            ErrorKind::InvalidDocument,
            &["invalid value: integer `-1`"],
        ),
        (
            "unknown exposure",
            edit(&d, "{\"kind\":\"hidden\"}", "{\"kind\":\"everyone\"}"),
            ErrorKind::InvalidDocument,
            &["unknown variant `everyone`"],
        ),
    ];
    for (what, text, kind, needles) in bcd {
        let e = BackupComponents::from_json(text.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(
            e.message().starts_with("backup components document: "),
            "{what}: {e}"
        );
        for n in needles {
            assert!(e.message().contains(n), "{what}: {e:?} lacks {n:?}");
        }
    }
    // More shadows than a set holds.
    let mut big = good_components();
    let set = big.snapshot_set.as_mut().unwrap();
    let one = set.shadows[0].clone();
    set.shadows = (0..65u32)
        .map(|i| {
            let mut s = one.clone();
            s.shadow_id = Uuid::from_u128(100 + u128::from(i));
            s.original.name = format!("lun{i}");
            s.count_in_set = 65;
            s
        })
        .collect();
    let e = big.to_json().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidDocument);
    assert!(
        e.message()
            .contains("65 shadows, more than a set holds (64)"),
        "{e}"
    );
}

/// Writing checks the same rules as reading: this crate never writes what it would not read.
#[test]
fn an_invalid_document_is_not_written() {
    let mut m = good_metadata();
    m.components.push(Component::new("", "data", ["x"]));
    let e = m.to_json().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidDocument);
    assert!(e.message().contains("components[2]"), "{e}");
}
