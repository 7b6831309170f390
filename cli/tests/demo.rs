//! `umbra demo fast-recovery` run as the built binary on real pool directories: the story's
//! checks all hold, human and `--json`, with the copying alternative, with a pool kept for
//! inspection and reopened by `lun list`, at two sizes moving the same (no) bytes; and refused
//! starts that change nothing.

mod common;

use common::*;
use serde_json::Value;

/// The demo's checks, each (name, ok), from its JSON document.
fn checks(d: &Value) -> Vec<(String, bool)> {
    d["checks"]
        .as_array()
        .expect("a check list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Runs the demo with `--json` and `args` (no `--pool`: a temporary pool); its document,
/// checked to exit 0 with every check true.
fn demo_json(args: &[&str]) -> Value {
    let out = umbra()
        .args(["--json", "demo", "fast-recovery"])
        .args(args)
        .output()
        .expect("umbra runs");
    let d = doc(&out);
    assert_eq!(code(&out), 0, "{d}");
    assert!(out.stderr.is_empty(), "--json prints nothing on stderr");
    for (name, ok) in checks(&d) {
        assert!(ok, "check {name} failed: {d}");
    }
    assert_eq!(d["ok"], true);
    d
}

/// What every run must show: nothing moved, the records acknowledged before the freeze all
/// verified, the damage detected, the temporary pool gone.
fn assert_story(d: &Value) {
    let t = &d["timeline"];
    assert_eq!(t["bytes_moved"], 0, "{d}");
    assert_eq!(t["writes"], 0, "{d}");
    let verified = t["records_verified"].as_u64().unwrap();
    assert!(verified > 0, "{d}");
    assert_eq!(t["records_acknowledged_before_freeze"], verified, "{d}");
    assert!(
        t["records_written"].as_u64().unwrap() > verified,
        "the writer resumed: {d}"
    );
    for k in [
        "freeze_window_ms",
        "shadow_ms",
        "detection_ms",
        "recovery_ms",
    ] {
        assert!(t[k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {d}");
    }
    assert!(d["damage"]["records"].as_u64().unwrap() > 0, "{d}");
    let names: Vec<String> = checks(d).into_iter().map(|(n, _)| n).collect();
    for n in [
        "writer_held_at_freeze",
        "shadow_masked_from_server",
        "damage_detected",
        "no_data_moved",
        "server_reaches_recovered_lun",
        "records_verified",
        "damaged_lun_kept",
        "changed_blocks_compared",
        "accepts_new_writes",
    ] {
        assert!(names.iter().any(|x| x == n), "no check {n}: {d}");
    }
}

#[test]
fn the_demo_at_a_small_size_in_json() {
    let d = demo_json(&["--size", "16MiB"]);
    assert_story(&d);
    assert_eq!(d["size"], 16 << 20);
    assert_eq!(d["server"], SERVER);
    assert_eq!(d["resync"], Value::Null);
    // The temporary pool is removed at the end.
    assert_eq!(d["pool"]["kept"], false);
    let pool = d["pool"]["path"].as_str().unwrap();
    assert!(!std::path::Path::new(pool).exists(), "{pool} is left");
}

#[test]
fn the_demo_at_a_small_size_for_people() {
    let out = umbra()
        .args(["demo", "fast-recovery", "--size", "16MiB"])
        .output()
        .expect("umbra runs");
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(text.contains("\nTimeline:\n"), "{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line: {text}"))
            .to_string()
    };
    assert!(line("bytes moved:").ends_with(" 0 (0 writes)"), "{text}");
    let verified: u64 = line("records verified:")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(verified > 0, "{text}");
    for key in ["freeze window:", "shadow:", "detection:", "recovery:"] {
        assert!(line(key).ends_with(" ms"), "{text}");
    }
    assert!(text.matches("  [ok] ").count() >= 9, "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    assert!(text.contains("The temporary pool was removed"), "{text}");
    // Not a terminal: no progress bar, nothing on stderr.
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn the_copying_alternative_with_resync() {
    let d = demo_json(&["--size", "8MiB", "--resync"]);
    assert_story(&d);
    let r = &d["resync"];
    assert_eq!(r["target"], "ntds-copy");
    // Every block of the shadow copied onto the new LUN, where fast recovery moved none.
    assert_eq!(r["bytes_written"], 8 << 20, "{d}");
    assert_eq!(r["records_verified"], d["timeline"]["records_verified"]);
    assert!(checks(&d).contains(&("resync_copy_verified".to_string(), true)));
}

#[test]
fn the_size_does_not_change_what_the_recovery_moves() {
    let small = demo_json(&["--size", "4MiB"]);
    let large = demo_json(&["--size", "1GiB"]);
    for d in [&small, &large] {
        assert_story(d);
    }
    assert_eq!(large["size"], 1u64 << 30);
    for k in ["bytes_moved", "writes"] {
        assert_eq!(small["timeline"][k], large["timeline"][k], "{k}");
    }
}

#[test]
fn a_pool_given_is_kept_for_inspection() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("kept");
    // --pool after the subcommand, as the usage line writes it.
    let out = umbra()
        .args(["demo", "fast-recovery", "--size", "4MiB", "--pool"])
        .arg(&pool)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!("The pool is kept at {}", pool.display())),
        "{text}"
    );

    // Reopened by another command: the damaged LUN and the recovered one, both there.
    let d = ok_json(&pool, &["lun", "list"]);
    let luns = d["luns"].as_array().unwrap();
    let names: Vec<&str> = luns.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{d}");
    assert!(names.contains(&"ntds"), "{d}");
    let recovered = names
        .iter()
        .find(|n| n.starts_with("ntds.shadow-"))
        .unwrap_or_else(|| panic!("no recovered LUN: {d}"));
    let damaged = luns.iter().find(|l| l["name"] == "ntds").unwrap();
    assert_eq!(
        damaged["mask"], "",
        "the damaged LUN is masked to no one: {d}"
    );
    // The server sees the recovered LUN at its LUN number, and nothing else.
    let v = ok_json(&pool, &["host", "view", SERVER]);
    assert_eq!(
        v["luns"],
        serde_json::json!([{"lun": recovered, "number": 3, "access": "read_write"}]),
        "{v}"
    );
    // The recovered data reads as the server: record 0 checks out.
    let rec = tmp.path().join("rec0");
    ok(
        &pool,
        &[
            "lun",
            "read",
            recovered,
            "--as",
            SERVER,
            "--length",
            "64",
            "--out",
            rec.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&rec).unwrap();
    assert_eq!(&bytes[..4], b"DSR1");
    assert_eq!(
        u32::from_le_bytes(bytes[60..64].try_into().unwrap()),
        crc32fast::hash(&bytes[..60])
    );

    // A second demo on that pool is refused: it holds LUNs; nothing changes.
    let before = files(&pool);
    let e = fail_json(&pool, &["demo", "fast-recovery", "--size", "4MiB"], 11);
    assert!(e["message"].as_str().unwrap().contains("ntds"), "{e}");
    assert_eq!(files(&pool), before);
}

#[test]
fn a_refused_start_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory of other files is not a pool: exit 19, its files untouched.
    let dir = tmp.path().join("photos");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cat.jpg"), b"not a pool").unwrap();
    let before = files(&dir);
    let e = fail_json(&dir, &["demo", "fast-recovery", "--size", "4MiB"], 19);
    assert_eq!(e["kind"], "not_a_pool", "{e}");
    assert_eq!(files(&dir), before);
    let out = run(&dir, &["demo", "fast-recovery", "--size", "4MiB"]);
    assert_eq!(code(&out), 19);
    assert!(
        stderr(&out).starts_with("umbra: error: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(files(&dir), before);

    // A bad size: exit 4, naming it, and no pool made.
    let pool = tmp.path().join("new");
    for size in ["12 bananas", "512KiB", "1000000B"] {
        let e = fail_json(&pool, &["demo", "fast-recovery", "--size", size], 4);
        assert!(e["message"].as_str().unwrap().contains("size"), "{e}");
        assert!(!pool.exists(), "{size}: a pool was made");
    }
}

#[test]
fn umbra_pool_from_the_environment_is_not_the_demos() {
    let tmp = tempfile::tempdir().unwrap();
    let env_pool = tmp.path().join("admin-pool");
    let out = umbra()
        .env("UMBRA_POOL", &env_pool)
        .args(["--json", "demo", "fast-recovery", "--size", "4MiB"])
        .output()
        .unwrap();
    let d = doc(&out);
    assert_eq!(code(&out), 0, "{d}");
    assert_eq!(d["pool"]["kept"], false, "{d}");
    assert!(!env_pool.exists(), "the demo used $UMBRA_POOL");
}
