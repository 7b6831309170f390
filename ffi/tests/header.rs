//! The checked-in `include/umbra.h` against its sources: regenerated with the pinned cbindgen (when
//! it is installed) it must not differ, and its version defines and status codes must match the
//! library's. Without cbindgen the drift check prints that it skipped; with `CI` set it fails.

mod support;

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::PathBuf;
use std::process::Command;

/// The cbindgen version the header is generated with (also in ffi/cbindgen.toml and .ci/run).
const CBINDGEN_VERSION: &str = "0.29.4";

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header() -> String {
    std::fs::read_to_string(ffi_dir().join("../include/umbra.h")).expect("read include/umbra.h")
}

/// `#define NAME VALUE` lines of the header with a plain number as the value.
fn numeric_defines(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next()? == "#define").then_some(())?;
            let name = parts.next()?.to_string();
            let value = parts.next()?.parse().ok()?;
            Some((name, value))
        })
        .collect()
}

#[test]
fn header_matches_a_regeneration() {
    let version = match Command::new("cbindgen").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            support::tool_missing(
                "cbindgen",
                &format!("cargo install cbindgen --version {CBINDGEN_VERSION} --locked"),
            );
            return;
        }
    };
    if version != format!("cbindgen {CBINDGEN_VERSION}") {
        let msg = format!(
            "{version} is installed but the header is generated with cbindgen {CBINDGEN_VERSION} \
             (`cargo install cbindgen --version {CBINDGEN_VERSION} --locked`)"
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        println!("skipped: {msg}");
        return;
    }
    let out_dir = tempfile::tempdir().expect("temp dir");
    let generated = out_dir.path().join("umbra.h");
    let out = Command::new("cbindgen")
        .arg("--config")
        .arg(ffi_dir().join("cbindgen.toml"))
        .args(["--crate", "umbra-ffi", "--output"])
        .arg(&generated)
        .arg(ffi_dir())
        .current_dir(ffi_dir().join(".."))
        .output()
        .expect("run cbindgen");
    assert!(
        out.status.success(),
        "cbindgen failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(&generated).expect("read generated header");
    let checked_in = header();
    if fresh != checked_in {
        let first = fresh
            .lines()
            .zip(checked_in.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  generated:  {a}\n  checked in: {b}", i + 1))
            .unwrap_or_else(|| "the files differ in length".to_string());
        panic!(
            "include/umbra.h is out of date; regenerate it from the workspace root with\n  \
             cbindgen --config ffi/cbindgen.toml --crate umbra-ffi --output include/umbra.h ffi\n\
             first difference at {first}"
        );
    }
}

#[test]
fn version_defines_match_the_library_and_the_soname() {
    let defines = numeric_defines(&header());
    let major = defines["UMBRA_ABI_MAJOR"];
    let minor = defines["UMBRA_ABI_MINOR"];
    assert!(major >= 1);
    let v = umbra::umbra_abi_version();
    assert_eq!(u64::from(v >> 16), major, "ABI major");
    assert_eq!(u64::from(v & 0xffff), minor, "ABI minor");
    let build = std::fs::read_to_string(ffi_dir().join("build.rs")).expect("read build.rs");
    assert!(
        build.contains(&format!("-soname,libumbra.so.{major}")),
        "build.rs must set the SONAME libumbra.so.{major}"
    );
}

/// The workspace README names the header's ABI version, in its table ("the stable C ABI (version
/// MAJOR.MINOR)") and in the installed library's file name (`libumbra.so.MAJOR.MINOR.`).
#[test]
fn readme_names_the_header_abi_version() {
    let defines = numeric_defines(&header());
    let version = format!(
        "{}.{}",
        defines["UMBRA_ABI_MAJOR"], defines["UMBRA_ABI_MINOR"]
    );
    let readme =
        std::fs::read_to_string(ffi_dir().join("../README.md")).expect("read the workspace README");
    for want in [
        format!("the stable C ABI (version {version})"),
        format!("libumbra.so.{version}."),
    ] {
        assert!(
            readme.contains(&want),
            "README.md must say {want:?} (include/umbra.h is ABI {version})"
        );
    }
}

/// Every `UMBRA_OK` / `UMBRA_E_*` define of the header is a status the library names the same way.
#[test]
fn header_status_codes_match_the_library() {
    let defines = numeric_defines(&header());
    let statuses: Vec<(&String, &u64)> = defines
        .iter()
        .filter(|(n, _)| *n == "UMBRA_OK" || n.starts_with("UMBRA_E_"))
        .collect();
    assert!(statuses.len() >= 21, "{statuses:?}");
    for (name, value) in statuses {
        let code = u32::try_from(*value).expect("status fits u32");
        // SAFETY: umbra_status_name returns a static NUL-terminated string, never NULL.
        let got = unsafe { CStr::from_ptr(umbra::umbra_status_name(code)) };
        assert_eq!(got.to_str().unwrap(), name, "status {value}");
    }
}

/// The status codes are part of the ABI: never renumbered. This table only ever grows.
#[test]
fn status_codes_are_never_renumbered() {
    use umbra::*;
    let frozen: &[(umbra_status, umbra_status)] = &[
        (UMBRA_OK, 0),
        (UMBRA_E_NULL_POINTER, 1),
        (UMBRA_E_INVALID_ARGUMENT, 2),
        (UMBRA_E_OUT_OF_RANGE, 3),
        (UMBRA_E_BUFFER_TOO_SMALL, 4),
        (UMBRA_E_NOT_FOUND, 5),
        (UMBRA_E_ALREADY_EXISTS, 6),
        (UMBRA_E_BAD_STATE, 100),
        (UMBRA_E_BUSY, 104),
        (UMBRA_E_IN_PROGRESS, 101),
        (UMBRA_E_TIMEOUT, 102),
        (UMBRA_E_CANCELLED, 103),
        (UMBRA_E_IO, 200),
        (UMBRA_E_NO_SPACE, 201),
        (UMBRA_E_CORRUPT, 202),
        (UMBRA_E_UNSUPPORTED_VERSION, 203),
        (UMBRA_E_UNSUPPORTED, 204),
        (UMBRA_E_INVALID_INITIATOR, 300),
        (UMBRA_E_ACCESS_DENIED, 301),
        (UMBRA_E_WRITER_FAILED, 400),
        (UMBRA_E_INVALID_DOCUMENT, 401),
        (UMBRA_E_PROVIDER_VETO, 402),
        (UMBRA_E_VOLUME_NOT_SUPPORTED, 403),
        (UMBRA_E_UNEXPECTED_PROVIDER_ERROR, 404),
        (UMBRA_E_MAX_VOLUMES_REACHED, 405),
        (UMBRA_E_FLUSH_WRITES_TIMEOUT, 406),
        (UMBRA_E_HOLD_WRITES_TIMEOUT, 407),
        (UMBRA_E_SNAPSHOT_SET_IN_PROGRESS, 408),
        (UMBRA_E_MAX_SNAPSHOTS_REACHED, 409),
        (UMBRA_E_WRITER_NOT_RESPONDING, 410),
        (UMBRA_E_UNSUPPORTED_CONTEXT, 411),
        (UMBRA_E_VOLUME_IN_USE, 412),
        (UMBRA_E_NO_SNAPSHOTS_IMPORTED, 413),
        (UMBRA_E_REVERT_IN_PROGRESS, 414),
        (UMBRA_E_UNSELECTED_VOLUME, 415),
        (UMBRA_E_SNAPSHOT_NOT_IN_SET, 416),
        (UMBRA_E_NONTRANSPORTABLE_BCD, 417),
        (UMBRA_E_RESYNC_IN_PROGRESS, 418),
        (UMBRA_E_PANIC, 900),
    ];
    for (got, want) in frozen {
        assert_eq!(got, want);
    }
    let frozen_values: &[(u32, u32)] = &[
        (UMBRA_EVENT_LUN_ARRIVE, 108),
        (UMBRA_EVENT_LUN_DEPART, 109),
        (UMBRA_EVENT_LUN_MODIFY, 110),
        (UMBRA_EVENT_MASK_CHANGED, 111),
        (UMBRA_EVENT_SNAPSHOT_DELETED, 201),
        (UMBRA_ACCESS_NONE, 0),
        (UMBRA_ACCESS_READ_ONLY, 1),
        (UMBRA_ACCESS_READ_WRITE, 2),
        (UMBRA_SNAPSHOT_READ_ONLY, 1),
        (UMBRA_SNAPSHOT_VOLATILE, 2),
        (UMBRA_SNAPSHOT_PINNED, 4),
        (UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL, 1),
        (UMBRA_VOLUME_VOLATILE, 2),
        (UMBRA_LUN_STATUS_ONLINE, 1),
        (UMBRA_LUN_STATUS_OFFLINE, 4),
        (UMBRA_VSS_EVENT_IDENTIFY, 1),
        (UMBRA_VSS_EVENT_FREEZE, 4),
        (UMBRA_VSS_EVENT_POST_RESTORE, 11),
        (UMBRA_VSS_FAILURE_NONE, 0),
        (UMBRA_VSS_FAILURE_RETRYABLE, 1),
        (UMBRA_VSS_FAILURE_OUT_OF_RESOURCES, 5),
        (UMBRA_VSS_STEP_INITIAL, 0),
        (UMBRA_VSS_STEP_ABORTED, 7),
    ];
    for (got, want) in frozen_values {
        assert_eq!(got, want);
    }
}

/// The frozen struct layouts (ABI 1).
/// The header's names for the shadow-copy contexts, attribute bits and backup types are
/// vss-core's values (VSS's), one for one.
#[test]
fn shadow_copy_constants_are_vss_cores_values() {
    use umbra::*;
    use vss_core::{Attributes, BackupType, Context};
    let contexts = [
        (UMBRA_VSS_CONTEXT_BACKUP, Context::BACKUP),
        (
            UMBRA_VSS_CONTEXT_FILE_SHARE_BACKUP,
            Context::FILE_SHARE_BACKUP,
        ),
        (UMBRA_VSS_CONTEXT_NAS_ROLLBACK, Context::NAS_ROLLBACK),
        (UMBRA_VSS_CONTEXT_APP_ROLLBACK, Context::APP_ROLLBACK),
        (
            UMBRA_VSS_CONTEXT_CLIENT_ACCESSIBLE,
            Context::CLIENT_ACCESSIBLE,
        ),
        (
            UMBRA_VSS_CONTEXT_CLIENT_ACCESSIBLE_WRITERS,
            Context::CLIENT_ACCESSIBLE_WRITERS,
        ),
    ];
    for (c, want) in contexts {
        assert_eq!(c, want.bits(), "{want}");
    }
    let attributes = [
        UMBRA_VSS_ATTR_PERSISTENT,
        UMBRA_VSS_ATTR_NO_AUTORECOVERY,
        UMBRA_VSS_ATTR_CLIENT_ACCESSIBLE,
        UMBRA_VSS_ATTR_NO_AUTO_RELEASE,
        UMBRA_VSS_ATTR_NO_WRITERS,
        UMBRA_VSS_ATTR_TRANSPORTABLE,
        UMBRA_VSS_ATTR_NOT_SURFACED,
        UMBRA_VSS_ATTR_NOT_TRANSACTED,
        UMBRA_VSS_ATTR_HARDWARE_ASSISTED,
        UMBRA_VSS_ATTR_DIFFERENTIAL,
        UMBRA_VSS_ATTR_PLEX,
        UMBRA_VSS_ATTR_IMPORTED,
        UMBRA_VSS_ATTR_EXPOSED_LOCALLY,
        UMBRA_VSS_ATTR_EXPOSED_REMOTELY,
        UMBRA_VSS_ATTR_AUTORECOVER,
        UMBRA_VSS_ATTR_ROLLBACK_RECOVERY,
        UMBRA_VSS_ATTR_DELAYED_POSTSNAPSHOT,
        UMBRA_VSS_ATTR_TXF_RECOVERY,
        UMBRA_VSS_ATTR_FILE_SHARE,
    ];
    // Every named attribute, in vss-core's order, one bit each.
    let named: Vec<u32> = Attributes::all().iter().map(|a| a.bits()).collect();
    assert_eq!(attributes.to_vec(), named);
    assert_eq!(UMBRA_VSS_ATTR_HARDWARE_ASSISTED, 0x10000);
    let types = [
        UMBRA_VSS_BACKUP_TYPE_UNDEFINED,
        UMBRA_VSS_BACKUP_TYPE_FULL,
        UMBRA_VSS_BACKUP_TYPE_INCREMENTAL,
        UMBRA_VSS_BACKUP_TYPE_DIFFERENTIAL,
        UMBRA_VSS_BACKUP_TYPE_LOG,
        UMBRA_VSS_BACKUP_TYPE_COPY,
        UMBRA_VSS_BACKUP_TYPE_OTHER,
    ];
    let codes: Vec<u32> = BackupType::ALL.iter().map(|t| t.code()).collect();
    assert_eq!(types.to_vec(), codes);
    assert_eq!(UMBRA_VSS_BACKUP_TYPE_COPY, BackupType::Copy.code());
}

#[test]
fn struct_layouts_are_frozen() {
    use std::mem::{align_of, offset_of, size_of};
    use umbra::{umbra_lun_info, umbra_snapshot_info};
    assert_eq!(size_of::<umbra_snapshot_info>(), 32);
    assert_eq!(align_of::<umbra_snapshot_info>(), 8);
    assert_eq!(offset_of!(umbra_snapshot_info, flags), 24);
    assert_eq!(offset_of!(umbra_snapshot_info, metadata_len), 28);
    assert_eq!(size_of::<umbra_lun_info>(), 32);
    assert_eq!(offset_of!(umbra_lun_info, transition), 20);
    assert_eq!(offset_of!(umbra_lun_info, is_snapshot), 24);
}

/// Every export runs inside the one boundary macro, and no safe `extern "C" fn` takes a raw
/// pointer (those must be `unsafe extern "C" fn`, documenting their contract).
#[test]
fn every_export_sits_inside_the_boundary() {
    let mut exports = 0;
    for entry in std::fs::read_dir(ffi_dir().join("src")).expect("read src") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("#[no_mangle]") {
                continue;
            }
            exports += 1;
            // The signature runs to the line ending in `{`; the body's first line is the macro.
            let sig_end = (i..lines.len())
                .find(|&j| lines[j].trim_end().ends_with('{'))
                .expect("function body");
            let signature = lines[i + 1..=sig_end].join(" ");
            let name = signature
                .split("fn ")
                .nth(1)
                .and_then(|s| s.split('(').next())
                .unwrap_or("?")
                .to_string();
            assert!(
                signature.contains("extern \"C\" fn umbra_"),
                "{}: {name}: exports are `extern \"C\"` and prefixed umbra_",
                path.display()
            );
            let body = lines[sig_end + 1].trim_start();
            assert!(
                body.starts_with("ffi_boundary!("),
                "{}: {name} does not start with ffi_boundary!",
                path.display()
            );
            let params = signature.split("->").next().unwrap_or("");
            if !signature.contains("unsafe extern") {
                assert!(
                    !params.contains("*const") && !params.contains("*mut"),
                    "{}: {name} takes a raw pointer but is a safe fn",
                    path.display()
                );
            }
        }
    }
    assert!(exports >= 60, "found only {exports} exports");
}

/// The renames of ABI 1.3 (docs/abi.md, "Names"): each old name is still declared, marked
/// `UMBRA_DEPRECATED("use <new name>")`, beside its new name. (`tests/c/aliases.c` calls them.)
#[test]
fn renamed_functions_stay_as_deprecated_aliases() {
    const RENAMED: &[(&str, &str)] = &[
        ("umbra_volume_size", "umbra_volume_get_size"),
        ("umbra_volume_block_size", "umbra_volume_get_block_size"),
        ("umbra_volume_diff_usage", "umbra_volume_get_diff_usage"),
        ("umbra_changed_blocks", "umbra_snapshot_get_changed_blocks"),
        (
            "umbra_snapshot_split_async",
            "umbra_snapshot_move_to_file_async",
        ),
        ("umbra_array_block_size", "umbra_array_get_block_size"),
        ("umbra_lun_access", "umbra_lun_get_access"),
        ("umbra_lun_hosts", "umbra_lun_get_initiators"),
        ("umbra_host_view", "umbra_initiator_get_luns"),
        ("umbra_lun_changed_blocks", "umbra_lun_get_changed_blocks"),
        ("umbra_async_percent", "umbra_async_get_percent"),
    ];
    let text = header();
    for (old, new) in RENAMED {
        let alias = format!("UMBRA_DEPRECATED(\"use {new}\")\numbra_status {old}(");
        assert!(
            text.contains(&alias),
            "{old} is not a deprecated alias of {new}"
        );
        assert!(
            text.contains(&format!("\numbra_status {new}(")),
            "{new} is not declared"
        );
    }
    // No other function is deprecated.
    assert_eq!(text.matches("\nUMBRA_DEPRECATED(").count(), RENAMED.len());
}
