//! The shadow-copy commands of the built `umbra` binary on real pools in temporary directories:
//! `shadow create` with exec writers (real shell scripts logging the events they get), a writer
//! that fails and one that hangs, list/delete, transport (save, import, read as the importing
//! host, break), fast recovery, `writers`, DiskShadow scripts through `umbra exec`, and bad
//! input with its exit code and nothing changed.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A writer script that appends `NAME EVENT` to `log` and, at `fail_at`, exits 1 (`hang` there:
/// sleeps far past any deadline the tests set).
fn writer_script(dir: &Path, name: &str, log: &Path, fail_at: Option<(&str, &str)>) -> String {
    let path = dir.join(format!("{name}.sh"));
    let mut body = format!("#!/bin/sh\necho \"{name} $1\" >> '{}'\n", log.display());
    if let Some((event, how)) = fail_at {
        let act = if how == "hang" { "sleep 300" } else { "exit 1" };
        body.push_str(&format!("if [ \"$1\" = {event} ]; then {act}; fi\n"));
    }
    body.push_str("exit 0\n");
    std::fs::write(&path, body).unwrap();
    format!("{name}=sh '{}'", path.display())
}

/// The events `name` logged, in order.
fn events(log: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        .collect()
}

/// A pool with LUN `db` (4 MiB) visible to SERVER at LUN number 0, holding `data` at 0.
fn pool_with_db(dir: &Path, data: &[u8]) -> std::path::PathBuf {
    let pool = dir.join("pool");
    ok(&pool, &["lun", "create", "db", "4", "--unmask", SERVER]);
    assert_eq!(code(&write_as(&pool, "db", SERVER, 0, data)), 0);
    pool
}

/// Runs `umbra lun write LUN --as WHO --offset AT --in FILE` with `data` in a file beside the
/// pool.
fn write_as(pool: &Path, lun: &str, who: &str, at: u64, data: &[u8]) -> std::process::Output {
    let f = pool.with_extension("in.bin");
    std::fs::write(&f, data).unwrap();
    let at = at.to_string();
    let f = f.to_str().unwrap();
    run(
        pool,
        &["lun", "write", lun, "--as", who, "--offset", &at, "--in", f],
    )
}

fn read_as(pool: &Path, lun: &str, who: &str, len: usize) -> Vec<u8> {
    let out = run(
        pool,
        &[
            "lun",
            "read",
            lun,
            "--as",
            who,
            "--length",
            &len.to_string(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    out.stdout
}

/// The pool holds no shadow.
fn no_shadows(pool: &Path) {
    assert_eq!(
        ok_json(pool, &["shadow", "list"])["shadows"],
        Value::Array(vec![])
    );
}

const FULL: [&str; 8] = umbra_test_support::FULL_BACKUP_EVENTS;

/// A registered writer and a one-set writer both see the whole sequence in order; the set is
/// printed (human) and described (JSON); list and delete find it.
#[test]
fn create_runs_every_writer_through_the_whole_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(65536, 1));
    let log = dir.path().join("events.log");
    let reg = writer_script(dir.path(), "reg", &log, None);
    let (name, cmd) = reg.split_once('=').unwrap();
    ok(&pool, &["writers", "add", name, cmd]);
    let listed = ok_json(&pool, &["writers", "list"]);
    assert_eq!(listed["writers"][0]["name"], "reg");
    assert_eq!(listed["writers"][0]["session"], false);
    assert!(ok(&pool, &["writers", "list"]).contains("reg"));

    let one = writer_script(dir.path(), "one", &log, None);
    let d = ok_json(&pool, &["shadow", "create", "db", "--writer", &one]);
    assert_eq!(events(&log, "reg"), FULL);
    assert_eq!(events(&log, "one"), FULL);
    let set_id = d["set_id"].as_str().unwrap().to_owned();
    let shadows = d["shadows"].as_array().unwrap();
    assert_eq!(shadows.len(), 1);
    assert_eq!(shadows[0]["source"], "db");
    assert!(shadows[0]["lun"]
        .as_str()
        .unwrap()
        .starts_with("db.shadow-"));
    let mut writers: Vec<(String, String)> = d["writers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().into(),
                w["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [
            ("one".into(), "STABLE".into()),
            ("reg".into(), "STABLE".into())
        ]
    );

    // Human form, default context persistent: the shadow stays after the command.
    let text = ok(&pool, &["shadow", "create", "db", "--nowriters"]);
    assert!(text.starts_with("set "), "{text}");
    assert_eq!(events(&log, "reg"), FULL, "--nowriters: no writer called");
    let all = ok_json(&pool, &["shadow", "list"]);
    assert_eq!(all["shadows"].as_array().unwrap().len(), 2);
    let of_set = ok_json(&pool, &["shadow", "list", "--set", &set_id]);
    assert_eq!(of_set["shadows"].as_array().unwrap().len(), 1);
    assert!(ok(&pool, &["shadow", "list", "--lun", "db"]).contains(&set_id));

    let oldest = ok_json(&pool, &["shadow", "delete", "--oldest", "db"]);
    assert_eq!(oldest["deleted"][0], shadows[0]["id"]);
    assert!(ok(&pool, &["shadow", "delete", "--all"]).starts_with("deleted shadow "));
    no_shadows(&pool);

    ok(&pool, &["writers", "remove", "reg"]);
    assert_eq!(
        ok_json(&pool, &["writers", "list"])["writers"],
        Value::Array(vec![])
    );
    fail_json(&pool, &["writers", "remove", "reg"], 3);
}

/// A writer failing at freeze: the set is aborted (no shadow left, every writer told abort),
/// exit 7 naming the writer, the step and the kind; the next create succeeds.
#[test]
fn a_writer_failing_at_freeze_aborts_the_set_with_exit_7() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 2));
    let log = dir.path().join("events.log");
    let bad = writer_script(dir.path(), "bad", &log, Some(("freeze", "fail")));
    let good = writer_script(dir.path(), "good", &log, None);
    let out = run(
        &pool,
        &[
            "--json", "shadow", "create", "db", "--writer", &bad, "--writer", &good,
        ],
    );
    assert_eq!(code(&out), 7, "{}", stdout(&out));
    let d = doc(&out);
    let msg = d["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"bad\"")
            && msg.contains("FAILED_AT_FREEZE")
            && msg.contains("non-retryable"),
        "{msg}"
    );
    let bad_row = d["writers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad_row["state"], "FAILED_AT_FREEZE");
    assert_eq!(
        events(&log, "bad").last().map(String::as_str),
        Some("abort")
    );
    assert!(events(&log, "good").contains(&"abort".to_string()));
    assert!(!events(&log, "good").contains(&"post-snapshot".to_string()));
    no_shadows(&pool);
    // Human form: the error on stderr, the same code.
    let out = run(&pool, &["shadow", "create", "db", "--writer", &bad]);
    assert_eq!(code(&out), 7);
    assert!(
        stderr(&out).contains("FAILED_AT_FREEZE"),
        "{}",
        stderr(&out)
    );
    ok(&pool, &["shadow", "create", "db", "--writer", &good]);
}

/// A writer hanging at freeze past a short freeze window: the set is aborted as a timeout
/// (exit 7), its process group killed, and the next create succeeds at once.
#[test]
fn a_writer_hanging_at_freeze_is_aborted_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 3));
    let log = dir.path().join("events.log");
    let hang = writer_script(dir.path(), "hang", &log, Some(("freeze", "hang")));
    let out = run(
        &pool,
        &[
            "--json",
            "shadow",
            "create",
            "db",
            "--writer",
            &hang,
            "--freeze-timeout",
            "500ms",
            "--event-timeout",
            "2s",
        ],
    );
    assert_eq!(code(&out), 7, "{}", stdout(&out));
    let d = doc(&out);
    assert_eq!(d["error"]["kind"], "writer_not_responding");
    let msg = d["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"hang\"") && msg.contains("FAILED_AT_FREEZE") && msg.contains("timeout"),
        "{msg}"
    );
    // Its freeze was killed at the deadline and answered with abort before the command exited.
    assert_eq!(
        events(&log, "hang"),
        [
            "identify",
            "prepare-backup",
            "prepare-snapshot",
            "freeze",
            "abort"
        ]
    );
    no_shadows(&pool);
    let next = ok_json(&pool, &["shadow", "create", "db"]);
    assert_eq!(next["shadows"].as_array().unwrap().len(), 1);
}

/// Transport: a transportable set saved, imported for another host which reads the point in
/// time through the shadow LUN, then broken into an ordinary LUN.
#[test]
fn a_transportable_set_is_imported_read_and_broken() {
    let dir = tempfile::tempdir().unwrap();
    let before = pattern(65536, 4);
    let pool = pool_with_db(dir.path(), &before);
    let bcd = dir.path().join("set.json");
    let d = ok_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--transportable",
            "--backup-type",
            "full",
            "--save",
            bcd.to_str().unwrap(),
        ],
    );
    let set_id = d["set_id"].as_str().unwrap().to_owned();
    let lun = d["shadows"][0]["lun"].as_str().unwrap().to_owned();
    // Later writes to db do not reach the shadow.
    assert_eq!(
        code(&write_as(&pool, "db", SERVER, 0, &pattern(65536, 5))),
        0
    );
    // Masked to no one until imported.
    let out = run(
        &pool,
        &["lun", "read", &lun, "--as", BACKUP, "--length", "4096"],
    );
    assert_eq!(code(&out), 5);

    let imp = ok_json(
        &pool,
        &["shadow", "import", bcd.to_str().unwrap(), "--host", BACKUP],
    );
    assert_eq!(imp["set_id"], set_id.as_str());
    assert_eq!(read_as(&pool, &lun, BACKUP, before.len()), before);
    let brk = ok(&pool, &["shadow", "break", &set_id]);
    assert!(brk.contains(&lun), "{brk}");
    no_shadows(&pool);
    // An ordinary LUN now: still there with the point-in-time data.
    assert_eq!(read_as(&pool, &lun, BACKUP, before.len()), before);
}

/// Fast recovery: no byte moved, and the server reading its LUN number reaches the shadow's
/// data.
#[test]
fn recover_moves_no_byte_and_the_server_sees_the_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let good = pattern(65536, 6);
    let pool = pool_with_db(dir.path(), &good);
    let d = ok_json(&pool, &["shadow", "create", "db"]);
    let id = d["shadows"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(code(&write_as(&pool, "db", SERVER, 0, &[0xEE; 65536])), 0);

    fail_json(&pool, &["shadow", "recover", "other", "--from", &id], 4);
    let r = ok_json(&pool, &["shadow", "recover", "db", "--from", &id]);
    assert_eq!(r["bytes_moved"], 0);
    // The LUN the server sees at number 0.
    let view = ok_json(&pool, &["host", "view", SERVER]);
    let at0 = view["luns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["number"] == 0)
        .unwrap_or_else(|| panic!("{view}"))["lun"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(at0, r["recovered"].as_str().unwrap());
    assert_eq!(read_as(&pool, &at0, SERVER, good.len()), good);
}

/// A DiskShadow script through `umbra exec`: aliases, create, list, delete; its run in JSON
/// with the dialect's exit code 0.
#[test]
fn a_diskshadow_script_runs_through_exec() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 7));
    let script = dir.path().join("backup.dsh");
    std::fs::write(
        &script,
        "# a backup\nset context persistent\nadd volume db alias data\nbegin backup\ncreate\nend backup\n\
         list shadows set %VSS_SHADOW_SET%\ndelete shadows id %data%\n",
    )
    .unwrap();
    let d = ok_json(&pool, &["exec", script.to_str().unwrap()]);
    assert_eq!(d["dialect"], "diskshadow");
    assert_eq!(d["exit_code"], 0);
    let lines = d["run"]["lines"].as_array().unwrap();
    let created = lines
        .iter()
        .find(|l| l["output"]["type"] == "created")
        .unwrap();
    let id = created["output"]["shadows"][0]["id"].clone();
    let deleted = lines
        .iter()
        .find(|l| l["output"]["type"] == "shadows_deleted")
        .unwrap();
    assert_eq!(deleted["output"]["ids"][0], id);
    no_shadows(&pool);

    // Volatile shadows are released when the script ends.
    std::fs::write(
        &script,
        "set context volatile\nadd volume db\ncreate\nlist shadows all\n",
    )
    .unwrap();
    let d = ok_json(
        &pool,
        &["exec", "--dialect", "diskshadow", script.to_str().unwrap()],
    );
    assert_eq!(d["exit_code"], 0);
    no_shadows(&pool);

    // A failing command stops the script at its line: umbra's code 3, the dialect's 4.
    std::fs::write(
        &script,
        "set context persistent\ndelete shadows id 01234567-89ab-4cde-8f01-23456789abcd\nadd volume db\ncreate\n",
    )
    .unwrap();
    let out = run(&pool, &["--json", "exec", script.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    let d = doc(&out);
    assert_eq!(d["exit_code"], 4);
    assert_eq!(d["run"]["stopped_at"], 2);
    no_shadows(&pool);
    // Human form: the line named once, in the error on stderr (stdout: the lines that ran).
    let out = run(&pool, &["exec", script.to_str().unwrap()]);
    assert_eq!(code(&out), 3);
    assert!(!stdout(&out).contains("line 2"), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).matches("line 2").count(),
        1,
        "{}",
        stderr(&out)
    );
}

/// Bad input: its exit code and the pool's files unchanged.
#[test]
fn bad_scripts_documents_and_arguments_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 8));
    let before = files(&pool);
    let same = |step: &str| {
        let now = files(&pool);
        let changed: Vec<_> = now
            .keys()
            .chain(before.keys())
            .filter(|k| now.get(*k) != before.get(*k))
            .collect();
        assert!(changed.is_empty(), "{step} changed {changed:?}");
    };
    let script = dir.path().join("bad.dsh");
    std::fs::write(
        &script,
        "set context persistent\nadd volume db\nset context volatil\ncreate\n",
    )
    .unwrap();
    let e = fail_json(
        &pool,
        &["exec", "--dialect", "diskshadow", script.to_str().unwrap()],
        4,
    );
    same("script");
    assert!(e["message"].as_str().unwrap().contains("line 3"), "{e}");
    let doc_path = dir.path().join("bad.json");
    std::fs::write(&doc_path, "{\"format\": \"nope\"}").unwrap();
    fail_json(
        &pool,
        &[
            "shadow",
            "import",
            doc_path.to_str().unwrap(),
            "--host",
            BACKUP,
        ],
        4,
    );
    same("the command on line 300");
    fail_json(
        &pool,
        &[
            "shadow",
            "import",
            "/nonexistent/doc.json",
            "--host",
            BACKUP,
        ],
        3,
    );
    same("the command on line 302");
    fail_json(
        &pool,
        &["shadow", "create", "db", "--context", "volatile"],
        2,
    );
    same("the command on line 304");
    fail_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--nowriters",
            "--writer",
            "w=true",
        ],
        2,
    );
    same("the command on line 306");
    fail_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--context",
            "clientaccessible",
            "--writer",
            "w=true",
        ],
        2,
    );
    same("the command on line 308");
    fail_json(
        &pool,
        &["shadow", "create", "db", "--freeze-timeout", "soon"],
        4,
    );
    same("the command on line 310");
    fail_json(&pool, &["shadow", "create", "nope"], 3);
    same("the command on line 312");
    fail_json(&pool, &["shadow", "delete", "--id", "not-a-uuid"], 4);
    same("the command on line 314");
    fail_json(
        &pool,
        &["shadow", "revert", "01234567-89ab-4cde-8f01-23456789abcd"],
        3,
    );
    same("the command on line 316");
    same("all");
}

/// A session writer (`--session-writer`): one shell process for the whole set, reading one event
/// per line and answering `ok`; it saw every event of the set in order, and ran once.
#[test]
fn a_session_writer_runs_once_and_sees_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 5));
    let log = dir.path().join("session.log");
    let runs = dir.path().join("runs.log");
    let script = dir.path().join("session.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"pid $$\" >> '{runs}'\nwhile read ev; do\n  echo \"$ev\" >> '{log}'\n  echo ok\ndone\necho eof >> '{runs}'\n",
            runs = runs.display(),
            log = log.display()
        ),
    )
    .unwrap();
    let spec = format!("db-session=sh '{}'", script.display());
    let d = ok_json(
        &pool,
        &["shadow", "create", "db", "--session-writer", &spec],
    );
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines, FULL);
    let runs: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(runs.len(), 2, "started once, then stdin closed: {runs:?}");
    assert!(runs[0].starts_with("pid "), "{runs:?}");
    assert_eq!(runs[1], "eof");
    assert_eq!(d["writers"][0]["name"], "db-session");
    assert_eq!(d["writers"][0]["state"], "STABLE");
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1);
}

/// `shadow revert`: a persistent software shadow; the LUN, overwritten since, reads as at the
/// shadow again; the shadow stays.
#[test]
fn revert_brings_a_lun_back_to_its_software_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let before = pattern(65536, 6);
    let pool = pool_with_db(dir.path(), &before);
    let d = ok_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--provider",
            "software",
            "--nowriters",
        ],
    );
    let sid = d["shadows"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        d["shadows"][0]["lun"],
        Value::Null,
        "a software shadow has no LUN"
    );
    assert_eq!(
        code(&write_as(&pool, "db", SERVER, 0, &pattern(65536, 12))),
        0
    );
    assert!(read_as(&pool, "db", SERVER, 65536) != before, "overwritten");
    let r = ok_json(&pool, &["shadow", "revert", &sid]);
    assert_eq!(r["lun"], "db");
    assert_eq!(r["id"], sid.as_str());
    assert_eq!(read_as(&pool, "db", SERVER, 65536), before);
    assert_eq!(
        ok_json(&pool, &["shadow", "list", "--id", &sid])["shadows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Human form; an unknown shadow is exit 3, a malformed id exit 4.
    assert!(ok(&pool, &["shadow", "revert", &sid]).contains("reverted to shadow"));
    fail_json(
        &pool,
        &["shadow", "revert", "00000000-0000-4000-8000-000000000000"],
        3,
    );
    fail_json(&pool, &["shadow", "revert", "nope"], 4);
}

/// `shadow resync`: a hardware shadow copied back over its LUN, with a progress bar on a
/// terminal and none with `--json`; the LUN reads as at the shadow each time.
#[test]
fn resync_copies_a_hardware_shadow_back_with_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let before = pattern(1 << 20, 8);
    let pool = pool_with_db(dir.path(), &before);
    let d = ok_json(&pool, &["shadow", "create", "db", "--nowriters"]);
    let sid = d["shadows"][0]["id"].as_str().unwrap().to_owned();
    let garbage = pattern(8192, 13);
    let damage = |at: u64| assert_eq!(code(&write_as(&pool, "db", SERVER, at, &garbage)), 0);
    damage(4096);
    assert!(read_as(&pool, "db", SERVER, 1 << 20) != before, "damaged");
    let r = ok_json(&pool, &["shadow", "resync", &sid]);
    assert_eq!(r["lun"], "db");
    assert_eq!(read_as(&pool, "db", SERVER, 1 << 20), before);

    damage(65536);
    let p = pool.to_str().unwrap();
    let seen = on_a_terminal(&["--pool", p, "shadow", "resync", &sid]);
    assert!(seen.contains("resync ["), "no progress bar drawn: {seen:?}");
    assert!(seen.contains("copied back over LUN db"), "{seen:?}");
    assert_eq!(read_as(&pool, "db", SERVER, 1 << 20), before);
    damage(0);
    let seen = on_a_terminal(&["--pool", p, "--json", "shadow", "resync", &sid]);
    assert!(
        !seen.contains("resync ["),
        "a progress bar with --json: {seen:?}"
    );
    let d: Value = serde_json::from_str(&seen.replace("\r\n", "\n")).unwrap();
    assert_eq!(d["lun"], "db");
    assert_eq!(read_as(&pool, "db", SERVER, 1 << 20), before);
}

/// `shadow expose`: a hardware shadow's LUN, masked to no one, becomes readable (read-only) by
/// the host named; a software shadow cannot be exposed; a bad host id is exit 4.
#[test]
fn expose_unmasks_a_hardware_shadow_read_only_to_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let before = pattern(8192, 10);
    let pool = pool_with_db(dir.path(), &before);
    let d = ok_json(&pool, &["shadow", "create", "db", "--nowriters"]);
    let sid = d["shadows"][0]["id"].as_str().unwrap().to_owned();
    let lun = d["shadows"][0]["lun"].as_str().unwrap().to_owned();
    let refused = run(
        &pool,
        &["lun", "read", &lun, "--as", BACKUP, "--length", "8192"],
    );
    assert_eq!(code(&refused), 5, "masked to no one: {}", stderr(&refused));
    let e = ok_json(&pool, &["shadow", "expose", &sid, "--host", BACKUP]);
    assert_eq!(e["lun"], lun.as_str());
    assert_eq!(e["host"], BACKUP_CANON);
    assert_eq!(read_as(&pool, &lun, BACKUP, 8192), before);
    let w = write_as(&pool, &lun, BACKUP, 0, b"no");
    assert_eq!(code(&w), 5, "read-only: {}", stderr(&w));
    // The server, not named, still does not see it.
    let s = run(
        &pool,
        &["lun", "read", &lun, "--as", SERVER, "--length", "1"],
    );
    assert_eq!(code(&s), 5);

    fail_json(
        &pool,
        &["shadow", "expose", &sid, "--host", "not an id!"],
        4,
    );
    let sw = ok_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--provider",
            "software",
            "--nowriters",
        ],
    );
    let swid = sw["shadows"][0]["id"].as_str().unwrap().to_owned();
    let e = fail_json(&pool, &["shadow", "expose", &swid, "--host", BACKUP], 18);
    assert!(
        e["message"].as_str().unwrap().contains("software shadow"),
        "{e}"
    );
}

/// `add volume LUN provider software` in a DiskShadow script run by `umbra exec` makes a
/// software shadow, though the pool's preferred provider is the hardware one.
#[test]
fn exec_add_volume_provider_software_makes_a_software_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 12));
    let script = dir.path().join("sw.dsh");
    std::fs::write(
        &script,
        "set context persistent nowriters\nadd volume db provider software\ncreate\n",
    )
    .unwrap();
    let d = ok_json(&pool, &["exec", script.to_str().unwrap()]);
    assert_eq!(d["exit_code"], 0, "{d}");
    let list = ok_json(&pool, &["shadow", "list"]);
    let shadows = list["shadows"].as_array().unwrap();
    assert_eq!(shadows.len(), 1, "{list}");
    assert_eq!(shadows[0]["provider"], "software", "{list}");
    assert_eq!(shadows[0]["lun"], Value::Null, "{list}");
}

/// `--host` without `--transportable` is a usage error, and `--save` into a missing directory
/// is not found: both before the pool is opened or any writer runs; nothing changes.
#[test]
fn create_refuses_host_without_transportable_and_an_unwritable_save_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 13));
    let log = dir.path().join("events.log");
    let w = writer_script(dir.path(), "w", &log, None);
    let before = files(&pool);
    let e = fail_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--nowriters",
            "--host",
            "iqn.2000-01.com.example:b",
        ],
        2,
    );
    assert!(
        e["message"].as_str().unwrap().contains("--transportable"),
        "{e}"
    );
    let missing = dir.path().join("no-such-dir").join("set.json");
    let e = fail_json(
        &pool,
        &[
            "shadow",
            "create",
            "db",
            "--writer",
            &w,
            "--save",
            missing.to_str().unwrap(),
        ],
        3,
    );
    assert!(
        e["message"].as_str().unwrap().contains("no-such-dir"),
        "{e}"
    );
    // A writer that is not NAME=CMD and one with an empty name: both invalid input (4).
    fail_json(&pool, &["shadow", "create", "db", "--writer", "noeq"], 4);
    fail_json(&pool, &["shadow", "create", "db", "--writer", "=true"], 4);
    // `add volume` of an unknown LUN in a script: not found at its line (umbra 3, DiskShadow 4).
    let script = dir.path().join("nosuch.dsh");
    std::fs::write(
        &script,
        "set context persistent\nadd volume nosuch\ncreate\n",
    )
    .unwrap();
    let out = run(&pool, &["--json", "exec", script.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    let d = doc(&out);
    assert_eq!(d["exit_code"], 4, "{d}");
    assert_eq!(d["run"]["stopped_at"], 2, "{d}");
    assert!(events(&log, "w").is_empty(), "a writer ran");
    let now = files(&pool);
    let changed: Vec<_> = now
        .keys()
        .chain(before.keys())
        .filter(|k| now.get(*k) != before.get(*k))
        .collect();
    assert!(changed.is_empty(), "changed {changed:?}");
}

/// A writer failing at post-snapshot: the set is kept, exit 7, and the `--json` document holds
/// the set's fields and an `"error"` naming the writer and its FAILED_AT_POSTSNAPSHOT.
#[test]
fn a_writer_failing_after_the_shadows_exist_reports_error_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool_with_db(dir.path(), &pattern(4096, 14));
    let log = dir.path().join("events.log");
    let late = writer_script(dir.path(), "late", &log, Some(("post-snapshot", "fail")));
    let out = run(
        &pool,
        &["--json", "shadow", "create", "db", "--writer", &late],
    );
    assert_eq!(code(&out), 7, "{}", stdout(&out));
    let d = doc(&out);
    assert!(d["set_id"].is_string(), "{d}");
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["error"]["kind"], "unexpected_writer_error", "{d}");
    let msg = d["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"late\"") && msg.contains("FAILED_AT_POST"),
        "{msg}"
    );
    assert_eq!(
        ok_json(&pool, &["shadow", "list"])["shadows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
