//! What a new user's review of `exec` and the shadow-copy commands found, each checked on the
//! built binary over real pools: every bad script line reported (with the dialect, the file and
//! the dialect's own exit code, failures included) and each error printed once; `load metadata`
//! defining the aliases; `resync` reporting the bytes it copied; an unknown LUN not found; no
//! Debug shapes in messages; a dead requester's set cleaned up and reported; usage lines that
//! show the global options optional.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A pool with LUN `db` (4 MiB) unmasked to the server.
fn pool_with_db(dir: &Path) -> PathBuf {
    let pool = dir.join("pool");
    ok(&pool, &["lun", "create", "db", "4MiB", "--unmask", SERVER]);
    pool
}

/// Writes the file `data` into LUN `db` at `offset`, as the server.
fn write_db(pool: &Path, offset: &str, data: &Path) {
    let data = data.to_str().unwrap();
    ok(
        pool,
        &[
            "lun", "write", "db", "--as", SERVER, "--offset", offset, "--in", data,
        ],
    );
}

/// Writes `text` to `dir/name`; its path as a string.
fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The Debug shapes in `text`: a capitalised word directly followed by `(` or ` { ` (`Set(`,
/// `Some(`, `Hosts { initiators`), `(s)` plurals aside (and DiskShadow's `ID {GUID}`).
fn debug_shapes(text: &str) -> Vec<String> {
    let c: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for i in 0..c.len() {
        let starts = c[i].is_ascii_uppercase()
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'));
        if !starts {
            continue;
        }
        let mut j = i;
        while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
            j += 1;
        }
        let next: String = c[j..].iter().take(3).collect();
        if next.starts_with('(') && !next.starts_with("(s)") {
            found.push(c[i..=j].iter().collect());
        } else if next == " { " {
            found.push(c[i..j + 2].iter().collect());
        }
    }
    found
}

/// Asserts that `text` holds no Debug shape.
fn plain(text: &str) {
    let shapes = debug_shapes(text);
    assert!(shapes.is_empty(), "Debug shapes {shapes:?} in {text:?}");
}

#[test]
fn debug_shapes_are_told() {
    assert_eq!(debug_shapes("no shadow matches Set(f29d)"), ["Set("]);
    assert_eq!(
        debug_shapes("exposed: Hosts { initiators: [] }"),
        ["Hosts {"]
    );
    assert!(debug_shapes("2 read-only LUN(s); BACKUP (0x0); shadow ID {f29d}").is_empty());
}

/// Runs `umbra --json exec FILE` on a script of `dialect` whose lines `bad` do not parse: exit 4,
/// the dialect's own code 5, `file` and `dialect` named, the run holding one error per bad line
/// and stopped at the first; the error's message.
fn refused_script(pool: &Path, file: &str, dialect: &str, bad: &[u64]) -> String {
    let out = run(pool, &["--json", "exec", file]);
    let d = doc(&out);
    assert_eq!(code(&out), 4, "{d}");
    assert_eq!(
        (&d["dialect"], &d["file"], &d["exit_code"]),
        (&Value::from(dialect), &Value::from(file), &Value::from(5)),
        "{d}"
    );
    assert_eq!(d["error"]["exit_code"], 4, "{d}");
    let lines = d["run"]["lines"].as_array().unwrap();
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, bad, "{d}");
    assert!(lines.iter().all(|l| l["status"] == "error"), "{d}");
    assert_eq!(d["run"]["stopped_at"], bad[0], "{d}");
    d["error"]["message"].as_str().unwrap().to_string()
}

/// `exec` of a script with several lines that do not parse reports every one of them (human and
/// `--json`), runs nothing and creates no pool; the JSON of a refused or unreadable script still
/// carries `dialect`, `file` and the dialect's own exit code.
#[test]
fn exec_reports_every_bad_line_with_the_dialect_file_and_code() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let dsh = script(
        tmp.path(),
        "bad.dsh",
        "set context persistent\nset context volatil\nadd volume db\nset backuptyp full\ncreate\nfrobnicate\n",
    );
    let m = refused_script(&pool, &dsh, "diskshadow", &[2, 4, 6]);
    for l in [
        "3 lines do not parse",
        "line 2",
        "line 4",
        "line 6",
        "nothing was run",
    ] {
        assert!(m.contains(l), "{l}: {m}");
    }

    let out = run(&pool, &["exec", &dsh]);
    assert_eq!(code(&out), 4);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("umbra: error:").count(), 1, "{err}");
    for l in ["line 2", "line 4", "line 6"] {
        assert_eq!(err.matches(l).count(), 1, "{l} once: {err}");
    }

    let raid = script(
        tmp.path(),
        "bad.txt",
        "create lun simple size=16 name=db\nfrobnicate\nlist luns\ncreate lun simple size=12QB name=x\n",
    );
    let m = refused_script(&pool, &raid, "diskraid", &[2, 4]);
    assert!(m.contains("2 lines do not parse"), "{m}");
    assert!(!pool.exists(), "a refused script created the pool");

    // An unreadable script: the dialect is unknown (null) unless named; the code is both
    // dialects' "script file" (3), umbra's not found (3).
    let missing = tmp.path().join("nosuch.dsh");
    let missing = missing.to_str().unwrap();
    let out = run(&pool, &["--json", "exec", missing]);
    let d = doc(&out);
    assert_eq!(code(&out), 3, "{d}");
    assert_eq!(d["dialect"], Value::Null, "{d}");
    assert_eq!(
        (&d["file"], &d["exit_code"]),
        (&Value::from(missing), &Value::from(3))
    );
    assert_eq!(d["error"]["kind"], "not_found");
    let out = run(
        &pool,
        &["--json", "exec", missing, "--dialect", "diskshadow"],
    );
    assert_eq!(doc(&out)["dialect"], "diskshadow");
    // A bad --host is DiskShadow's "bad arguments" (2), umbra's invalid input (4).
    let ok_script = script(tmp.path(), "ok.dsh", "list shadows all\n");
    let out = run(&pool, &["--json", "exec", &ok_script, "--host", "nobody"]);
    let d = doc(&out);
    assert_eq!((code(&out), &d["exit_code"]), (4, &Value::from(2)), "{d}");
    assert!(!pool.exists());
}

/// A script stopped by an error prints that error once (stderr), not in its text too.
#[test]
fn exec_prints_the_stopping_error_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    let raid = script(
        tmp.path(),
        "fail.txt",
        "list luns\ncreate lun simple size=16 name=db\nlist luns\n",
    );
    let out = run(&pool, &["exec", &raid]);
    assert_eq!(code(&out), 11);
    assert!(
        stdout(&out).contains("db"),
        "the lines before ran: {}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("line 2"), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).matches("line 2").count(),
        1,
        "{}",
        stderr(&out)
    );

    let dsh = script(
        tmp.path(),
        "fail.dsh",
        "set context persistent\ndelete shadows id 01234567-89ab-4cde-8f01-23456789abcd\n",
    );
    let out = run(&pool, &["exec", &dsh]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stdout(&out).contains("Context set to"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("line 2"), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("line 2").count(), 1, "{err}");
    plain(&err);
    assert!(
        err.contains("no shadow matches shadow 01234567-89ab-4cde-8f01-23456789abcd"),
        "{err}"
    );
}

/// `load metadata` defines `VSS_SHADOW_SET` and `VSS_SHADOW_n`; `import` with no host says
/// how to name one; with `--host` the loaded set is imported.
#[test]
fn exec_load_metadata_defines_the_aliases_and_import_names_its_host() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    let bcd = tmp.path().join("set.json");
    let made = ok_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--nowriters",
            "--transportable",
            "--save",
            bcd.to_str().unwrap(),
        ],
    );
    let (set_id, id) = (made["set_id"].clone(), made["shadows"][0]["id"].clone());
    let dsh = script(
        tmp.path(),
        "import.dsh",
        &format!(
            "load metadata {}\nlist shadows id %VSS_SHADOW_1%\nlist shadows set %VSS_SHADOW_SET%\nimport\n",
            bcd.display()
        ),
    );
    let out = run(&pool, &["--json", "exec", &dsh]);
    let d = doc(&out);
    assert_eq!(code(&out), 4, "{d}");
    assert_eq!(d["run"]["lines"][0]["output"]["set_id"], set_id, "{d}");
    assert_eq!(d["run"]["lines"][0]["output"]["shadows"][0], id, "{d}");
    for l in [1, 2] {
        assert_eq!(
            d["run"]["lines"][l]["output"]["rows"][0]["shadow_id"], id,
            "{d}"
        );
    }
    assert_eq!(d["run"]["stopped_at"], 4);
    let m = d["error"]["message"].as_str().unwrap();
    assert!(m.contains("--host"), "{m}");

    let out = run(&pool, &["exec", &dsh]);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "Alias VSS_SHADOW_1 for shadow ID {{{}}}",
            id.as_str().unwrap()
        )),
        "{text}"
    );
    assert_eq!(
        stderr(&out).matches("--host").count(),
        1,
        "{}",
        stderr(&out)
    );

    let d = ok_json(&pool, &["exec", &dsh, "--host", BACKUP]);
    assert_eq!(d["run"]["lines"][3]["output"]["set_id"], set_id, "{d}");
    let listed = ok_json(&pool, &["shadow", "list", "--id", id.as_str().unwrap()]);
    assert_eq!(
        listed["shadows"][0]["exposure"]["initiators"][0], BACKUP_CANON,
        "{listed}"
    );
}

/// DiskShadow's `resync` reports the bytes it copied (the changed blocks), not the LUN's size.
#[test]
fn exec_resync_reports_the_bytes_it_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    let made = ok_json(&pool, &["shadow", "create", "db", "--nowriters"]);
    let id = made["shadows"][0]["id"].as_str().unwrap().to_string();
    let data = tmp.path().join("data");
    std::fs::write(&data, vec![0xAB; 64 << 10]).unwrap();
    write_db(&pool, "1048576", &data);
    let dsh = script(tmp.path(), "resync.dsh", &format!("resync {id}\n"));
    let d = ok_json(&pool, &["exec", &dsh]);
    let out = &d["run"]["lines"][0]["output"];
    assert_eq!(out["type"], "resynced", "{d}");
    assert_eq!(out["bytes"], 64 << 10, "the changed 64 KiB, not 4 MiB: {d}");
    // Nothing differs any more.
    let text = ok(&pool, &["exec", &dsh]);
    assert!(text.contains("(0 bytes copied)"), "{text}");
    // `shadow resync` says the same.
    write_db(&pool, "2097152", &data);
    let d = ok_json(&pool, &["shadow", "resync", &id]);
    assert_eq!(d["bytes_copied"], 64 << 10, "{d}");
    let text = ok(&pool, &["shadow", "resync", &id]);
    assert!(text.contains(": 0 bytes copied"), "{text}");
}

/// `shadow list --lun` of an unknown LUN is not found (3), naming it; a set with no shadow here
/// lists none.
#[test]
fn shadow_list_of_an_unknown_lun_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    let e = fail_json(&pool, &["shadow", "list", "--lun", "nosuch"], 3);
    assert!(e["message"].as_str().unwrap().contains("nosuch"), "{e}");
    let out = run(&pool, &["shadow", "list", "--lun", "nosuch"]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    let d = ok_json(&pool, &["shadow", "list", "--lun", "db"]);
    assert_eq!(d["shadows"], serde_json::json!([]));
    let d = ok_json(
        &pool,
        &[
            "shadow",
            "list",
            "--set",
            "01234567-89ab-4cde-8f01-23456789abcd",
        ],
    );
    assert_eq!(d["shadows"], serde_json::json!([]));
}

/// Messages and script text speak the user's words: no `Set(...)`, `Hosts { ... }`, `Some(...)`.
#[test]
fn messages_show_no_debug_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    let unknown = "01234567-89ab-4cde-8f01-23456789abcd";
    let e = fail_json(&pool, &["shadow", "delete", "--set", unknown], 3);
    let m = e["message"].as_str().unwrap();
    plain(m);
    assert!(m.contains(&format!("set {unknown}")), "{m}");
    let e = fail_json(&pool, &["shadow", "delete", "--lun", "db"], 3);
    plain(e["message"].as_str().unwrap());

    let bcd = tmp.path().join("set.json");
    let bcd = bcd.to_str().unwrap();
    ok(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--nowriters",
            "--transportable",
            "--save",
            bcd,
        ],
    );
    ok(&pool, &["shadow", "import", bcd, "--host", BACKUP]);
    let e = fail_json(&pool, &["shadow", "import", bcd, "--host", BACKUP], 12);
    let m = e["message"].as_str().unwrap();
    plain(m);
    assert!(m.contains(&format!("unmasked to {BACKUP_CANON}")), "{m}");

    let dsh = script(
        tmp.path(),
        "words.dsh",
        "set context persistent nowriters\nset backuptype full\nadd volume db provider software\nlist providers\ncreate\nlist shadows all\n",
    );
    let text = ok(&pool, &["exec", &dsh]);
    plain(&text);
    for words in [
        "Backup type set to full.",
        "(software provider)",
        "Type: [3] hardware",
        "Provider type: software",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
    let human = ok(&pool, &["shadow", "list"]);
    plain(&human);
    assert!(human.contains("software"), "{human}");
}

/// A requester killed mid-freeze leaves its set in progress; the next command that opens the
/// coordinator cleans it up and says so: `"cleaned"` in its JSON, a line on stderr in human
/// mode.
#[test]
fn a_dead_requesters_set_is_cleaned_up_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_db(tmp.path());
    for (round, json) in [(0, true), (1, false)] {
        let holder = FrozenRequester::start(
            &pool,
            &tmp.path().join(format!("frozen{round}")),
            &tmp.path().join(format!("release{round}")),
        );
        let pid = holder.pid();
        holder.kill();
        if json {
            let d = ok_json(&pool, &["shadow", "list"]);
            let c = &d["cleaned"][0];
            assert_eq!(c["pid"], pid, "{d}");
            assert_eq!(c["luns"], serde_json::json!(["db"]), "{d}");
            assert_eq!(c["writers_aborted"][0]["writer"], "w", "{d}");
            assert!(c["set_id"].is_string(), "{d}");
            assert_eq!(d["shadows"], serde_json::json!([]), "{d}");
            // Once: the next command finds nothing to clean.
            let d = ok_json(&pool, &["shadow", "list"]);
            assert!(d.get("cleaned").is_none(), "{d}");
        } else {
            let out = run(&pool, &["writers", "list"]);
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains("umbra: cleaned up set ")
                    && err.contains(&format!("requester pid {pid}, which is gone")),
                "{err}"
            );
            plain(&err);
        }
    }
    // The next set is made at once.
    let d = ok_json(&pool, &["shadow", "create", "db", "--nowriters"]);
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
}

/// A usage error's usage line shows `--pool` and `--json` optional, as they are.
#[test]
fn usage_lines_show_the_global_options_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let out = umbra()
        .args(["lun", "create", "--pool"])
        .arg(&pool)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("Usage: umbra lun create [--pool <DIR>] <NAME> <SIZE>"),
        "{err}"
    );
    let out = umbra()
        .args(["lun", "create", "x", "--json", "--pool"])
        .arg(&pool)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let m = doc(&out)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("[--json]") && m.contains("[--pool <DIR>]"),
        "{m}"
    );
    assert!(!pool.exists());
}
