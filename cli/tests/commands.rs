//! Every `umbra` command run as a built binary on a real pool directory, human and `--json`:
//! LUNs, masks, LUN numbers, I/O as an initiator with its refusals, images, hosts and groups,
//! and DiskRAID scripts through `exec`.

mod common;

use common::*;
use serde_json::Value;

fn grants(detail: &Value) -> Vec<(String, String, u64)> {
    detail["lun"]["unmasked"]["hosts"]
        .as_array()
        .expect("a host list")
        .iter()
        .map(|g| {
            (
                g["initiator"].as_str().unwrap().to_string(),
                g["access"].as_str().unwrap().to_string(),
                g["number"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_lun_lifecycle_human_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");

    // create, with an initial mask; the JSON is the new LUN's detail.
    let mask = format!("{SERVER};{BACKUP}=ro");
    let d = ok_json(&pool, &["lun", "create", "db", "64", "--unmask", &mask]);
    assert_eq!(d["lun"]["name"], "db");
    assert_eq!(d["lun"]["size"], 64 << 20);
    assert_eq!(d["lun"]["status"], "online");
    assert_eq!(d["lun"]["source"], Value::Null);
    assert_eq!(d["lun"]["mask"], format!("{BACKUP_CANON}=ro;{SERVER}"));
    assert_eq!(
        grants(&d),
        vec![
            (SERVER.to_string(), "read_write".to_string(), 0),
            (BACKUP_CANON.to_string(), "read_only".to_string(), 0),
        ]
    );
    let text = ok(&pool, &["lun", "create", "scratch", "1MiB"]);
    assert!(text.starts_with("Created LUN scratch.\n"), "{text}");
    assert!(text.contains("1 MiB (1048576 bytes)"), "{text}");
    assert!(text.contains("No host sees it."), "{text}");

    // list: a table, and rows in JSON.
    let text = ok(&pool, &["lun", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("LUN  NAME"), "{text}");
    assert!(
        lines[1].contains("db") && lines[1].contains("64 MiB"),
        "{text}"
    );
    assert!(
        lines[2].contains("scratch") && lines[2].contains("(no one)"),
        "{text}"
    );
    let d = ok_json(&pool, &["lun", "list"]);
    let names: Vec<&str> = d["luns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "scratch"]);
    assert_eq!(d["luns"][1]["size"], 1 << 20);

    // detail.
    let text = ok(&pool, &["lun", "detail", "db"]);
    assert!(text.contains("INITIATOR"), "{text}");
    assert!(text.contains(&format!("{BACKUP_CANON}  ")), "{text}");
    assert!(ok_json(&pool, &["lun", "detail", "db"])["lun"]["id"].is_u64());

    // extend: to a size, or by one.
    let d = ok_json(&pool, &["lun", "extend", "scratch", "2"]);
    assert_eq!(d["lun"]["size"], 2 << 20);
    let text = ok(&pool, &["lun", "extend", "scratch", "+2MB"]);
    assert!(text.starts_with("Extended LUN scratch to 4 MiB."), "{text}");
    assert_eq!(
        ok_json(&pool, &["lun", "detail", "scratch"])["lun"]["size"],
        4 << 20
    );

    // snapshot and split.
    let d = ok_json(&pool, &["lun", "snapshot", "db", "db-snap"]);
    assert_eq!(d["lun"]["source"], "db");
    assert_eq!(d["lun"]["mask"], "");
    let d = ok_json(&pool, &["lun", "split", "db-snap"]);
    assert_eq!(d["lun"]["source"], Value::Null);
    ok(&pool, &["lun", "snapshot", "db", "db-snap2"]);
    let text = ok(&pool, &["lun", "split", "db-snap2"]);
    assert!(
        text.starts_with("Split LUN db-snap2 from its source."),
        "{text}"
    );

    // offline: I/O refused in that state (12) until online again.
    let d = ok_json(&pool, &["lun", "offline", "db"]);
    assert_eq!(d["lun"]["status"], "offline");
    let text = ok(&pool, &["lun", "list"]);
    assert!(text.lines().nth(1).unwrap().contains("offline"), "{text}");
    let e = fail_json(
        &pool,
        &[
            "lun",
            "read",
            "db",
            "--as",
            SERVER,
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ],
        12,
    );
    assert_eq!(e["kind"], "bad_state");
    let text = ok(&pool, &["lun", "online", "db"]);
    assert!(text.starts_with("LUN db is online.\nLUN:"), "{text}");
    assert!(text.contains("Status:      online"), "{text}");

    // delete.
    let d = ok_json(&pool, &["lun", "delete", "db-snap"]);
    assert_eq!(d["deleted"], "db-snap");
    assert_eq!(
        ok(&pool, &["lun", "delete", "db-snap2"]),
        "Deleted LUN db-snap2.\n"
    );
    let e = fail_json(&pool, &["lun", "detail", "db-snap"], 3);
    assert_eq!(e["kind"], "not_found");
    assert!(e["message"].as_str().unwrap().contains("db-snap"), "{e}");
}

#[test]
fn unmask_replaces_adds_and_removes_and_number_sets_a_host_lun_number() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(&pool, &["lun", "create", "db", "8"]);

    // A list replaces (VDS SetMask).
    let d = ok_json(&pool, &["lun", "unmask", "db", SERVER]);
    assert_eq!(d["lun"]["mask"], SERVER);
    let d = ok_json(&pool, &["lun", "unmask", "db", &format!("{BACKUP}=ro")]);
    assert_eq!(d["lun"]["mask"], format!("{BACKUP_CANON}=ro"));
    // --add and --remove change entries.
    let d = ok_json(&pool, &["lun", "unmask", "db", "--add", SERVER]);
    assert_eq!(d["lun"]["mask"], format!("{BACKUP_CANON}=ro;{SERVER}"));
    let d = ok_json(&pool, &["lun", "unmask", "db", "--remove", BACKUP]);
    assert_eq!(d["lun"]["mask"], SERVER);
    // "*" every host, "" no one.
    let text = ok(&pool, &["lun", "unmask", "db", "*"]);
    assert!(
        text.starts_with("LUN db is unmasked to * (every host)."),
        "{text}"
    );
    assert!(
        text.contains("Every host sees it (rw) at LUN number 0"),
        "{text}"
    );
    let d = ok_json(&pool, &["lun", "unmask", "db", ""]);
    assert_eq!(d["lun"]["mask"], "");
    assert_eq!(d["lun"]["unmasked"]["hosts"], serde_json::json!([]));
    // @group.
    ok(
        &pool,
        &["group", "set", "cluster", &format!("{SERVER};{BACKUP}")],
    );
    let d = ok_json(&pool, &["lun", "unmask", "db", "@cluster=ro"]);
    assert_eq!(d["lun"]["mask"], "@cluster=ro");
    assert_eq!(grants(&d).len(), 2);

    // A LUN number of one's own.
    let d = ok_json(&pool, &["lun", "number", "db", SERVER, "7"]);
    let g = grants(&d);
    assert!(
        g.contains(&(SERVER.to_string(), "read_only".to_string(), 7)),
        "{g:?}"
    );
    let v = ok_json(&pool, &["host", "view", SERVER]);
    assert_eq!(
        v["luns"],
        serde_json::json!([{"lun": "db", "number": 7, "access": "read_only"}])
    );

    // No list at all, or two ways at once: usage.
    let out = run(&pool, &["lun", "unmask", "db"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = run(&pool, &["lun", "unmask", "db", "*", "--add", SERVER]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn io_as_an_initiator_is_refused_where_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(
        &pool,
        &[
            "lun",
            "create",
            "db",
            "1",
            "--unmask",
            &format!("{SERVER};{BACKUP}=ro"),
        ],
    );
    let data = pattern(10_000, 7);
    let input = tmp.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let input = input.to_str().unwrap();

    // The server writes; the JSON names its LUN number.
    let d = ok_json(
        &pool,
        &[
            "lun", "write", "db", "--as", SERVER, "--offset", "4KiB", "--in", input,
        ],
    );
    assert_eq!(d["offset"], 4096);
    assert_eq!(d["length"], 10_000);
    assert_eq!(d["number"], 0);
    // The backup host reads them back to stdout, byte for byte.
    let out = run(
        &pool,
        &[
            "lun", "read", "db", "--as", BACKUP, "--offset", "4096", "--length", "10000",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, data);
    // And to a file, with --json.
    let copy = tmp.path().join("copy.bin");
    let d = ok_json(
        &pool,
        &[
            "lun",
            "read",
            "db",
            "--as",
            SERVER,
            "--offset",
            "4096",
            "--length",
            "10000",
            "--out",
            copy.to_str().unwrap(),
        ],
    );
    assert_eq!(d["length"], 10_000);
    assert_eq!(std::fs::read(&copy).unwrap(), data);
    // Without --length: to the end of the LUN.
    let out = run(&pool, &["lun", "read", "db", "--as", SERVER]);
    assert_eq!(out.stdout.len(), 1 << 20);
    assert_eq!(&out.stdout[4096..14_096], &data[..]);
    assert!(out.stdout[..4096].iter().all(|&b| b == 0));

    // Refusals: read-only, masked away, never written.
    let other = tmp.path().join("other.bin");
    std::fs::write(&other, vec![0xAB; 4096]).unwrap();
    let other = other.to_str().unwrap();
    let e = fail_json(
        &pool,
        &[
            "lun", "write", "db", "--as", BACKUP, "--in", other, "--offset", "4096",
        ],
        5,
    );
    assert_eq!(e["kind"], "access_denied");
    assert!(e["message"].as_str().unwrap().contains("read-only"), "{e}");
    let e = fail_json(
        &pool,
        &[
            "lun", "write", "db", "--as", STRANGER, "--in", other, "--offset", "4096",
        ],
        5,
    );
    assert!(e["message"].as_str().unwrap().contains(STRANGER), "{e}");
    let e = fail_json(
        &pool,
        &[
            "lun",
            "read",
            "db",
            "--as",
            STRANGER,
            "--out",
            copy.to_str().unwrap(),
        ],
        5,
    );
    assert_eq!(e["kind"], "access_denied");
    let out = run(&pool, &["lun", "read", "db", "--as", STRANGER]);
    assert_eq!(code(&out), 5);
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("masked from initiator"),
        "{}",
        stderr(&out)
    );
    // Past the end: out of range, nothing written.
    let e = fail_json(
        &pool,
        &[
            "lun", "write", "db", "--as", SERVER, "--in", input, "--offset", "1MiB",
        ],
        13,
    );
    assert_eq!(e["kind"], "out_of_range");
    let out = run(
        &pool,
        &[
            "lun", "read", "db", "--as", SERVER, "--offset", "4096", "--length", "10000",
        ],
    );
    assert_eq!(out.stdout, data, "a refused write changed the LUN");

    // --json read needs --out: stdout holds the document.
    let e = fail_json(&pool, &["lun", "read", "db", "--as", SERVER], 2);
    assert_eq!(e["kind"], "usage");
}

#[test]
fn import_and_export_round_trip_a_real_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    // Not a block multiple: the LUN rounds up and reads zeros past the image.
    let data = pattern(3 * 1024 * 1024 + 1000, 42);
    let image = tmp.path().join("disk.raw");
    std::fs::write(&image, &data).unwrap();

    let out = run(&pool, &["lun", "import", "disk", image.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // stderr is not a terminal here: no progress bar is drawn.
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert!(
        text.contains("Imported") && text.contains("masked to no one"),
        "{text}"
    );
    let d = ok_json(&pool, &["lun", "detail", "disk"]);
    assert_eq!(d["lun"]["mask"], "");
    assert_eq!(d["lun"]["size"], (data.len() as u64).div_ceil(4096) * 4096);
    // Masked to no one: the server cannot read it until unmasked.
    fail_json(
        &pool,
        &[
            "lun",
            "read",
            "disk",
            "--as",
            SERVER,
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ],
        5,
    );

    let exported = tmp.path().join("out.raw");
    let d = ok_json(
        &pool,
        &["lun", "export", "disk", exported.to_str().unwrap()],
    );
    assert_eq!(d["lun"], "disk");
    let back = std::fs::read(&exported).unwrap();
    assert_eq!(&back[..data.len()], &data[..]);
    assert!(back[data.len()..].iter().all(|&b| b == 0));
    assert_eq!(back.len() as u64, d["size"].as_u64().unwrap());
    // Export refuses to replace a file.
    let e = fail_json(
        &pool,
        &["lun", "export", "disk", exported.to_str().unwrap()],
        11,
    );
    assert_eq!(e["kind"], "already_exists");

    // The import through --json too, and its round trip through read as an initiator.
    let d = ok_json(&pool, &["lun", "import", "disk2", image.to_str().unwrap()]);
    assert_eq!(d["lun"]["name"], "disk2");
    assert_eq!(d["lun"]["mask"], "");
    ok(&pool, &["lun", "unmask", "disk2", SERVER]);
    let len = data.len().to_string();
    let out = run(
        &pool,
        &["lun", "read", "disk2", "--as", SERVER, "--length", &len],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, data);
}

#[test]
fn hosts_groups_and_what_an_initiator_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let ids = format!("{SERVER},iqn.1991-05.com.microsoft:server-2");
    let d = ok_json(&pool, &["host", "set", "srv", &ids]);
    assert_eq!(d["host"]["name"], "srv");
    assert_eq!(d["host"]["initiators"].as_array().unwrap().len(), 2);
    let text = ok(&pool, &["host", "list"]);
    assert!(
        text.starts_with("HOST  INITIATORS\nsrv   iqn.1991-05.com.microsoft:server"),
        "{text}"
    );
    let d = ok_json(&pool, &["host", "list"]);
    assert_eq!(d["hosts"][0]["name"], "srv");

    let text = ok(&pool, &["group", "set", "backup", BACKUP]);
    assert_eq!(text, format!("Group @backup: {BACKUP_CANON}.\n"));
    let d = ok_json(&pool, &["group", "list"]);
    assert_eq!(
        d["groups"],
        serde_json::json!([{"name": "backup", "members": [BACKUP_CANON]}])
    );

    // Masks name hosts and groups with @.
    ok(&pool, &["lun", "create", "db", "1", "--unmask", "@srv"]);
    ok(
        &pool,
        &["lun", "create", "logs", "1", "--unmask", "@srv;@backup=ro"],
    );
    ok(&pool, &["lun", "number", "logs", SERVER, "5"]);
    let d = ok_json(&pool, &["host", "view", SERVER]);
    assert_eq!(d["initiator"], SERVER);
    assert_eq!(
        d["luns"],
        serde_json::json!([
            {"lun": "db", "number": 0, "access": "read_write"},
            {"lun": "logs", "number": 5, "access": "read_write"},
        ])
    );
    let text = ok(&pool, &["host", "view", BACKUP]);
    assert_eq!(
        text,
        format!("Initiator {BACKUP_CANON} sees:\nLUN NUMBER  LUN   ACCESS\n1           logs  ro\n")
    );
    assert_eq!(
        ok(&pool, &["host", "view", STRANGER]),
        format!("Initiator {STRANGER} sees no LUN.\n")
    );

    // Deleting what a mask names is refused; after unmasking it goes.
    let e = fail_json(&pool, &["group", "delete", "backup"], 12);
    assert_eq!(e["kind"], "bad_state");
    ok(&pool, &["lun", "unmask", "logs", "@srv"]);
    assert_eq!(
        ok_json(&pool, &["group", "delete", "backup"])["deleted"],
        "backup"
    );
    assert_eq!(ok(&pool, &["group", "list"]), "No groups.\n");
    ok(&pool, &["lun", "unmask", "logs", ""]);
    ok(&pool, &["lun", "unmask", "db", ""]);
    assert_eq!(ok(&pool, &["host", "delete", "srv"]), "Deleted host srv.\n");
    assert_eq!(
        ok_json(&pool, &["host", "list"])["hosts"],
        serde_json::json!([])
    );
}

#[test]
fn a_diskraid_script_runs_through_exec() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let script = tmp.path().join("setup.txt");
    std::fs::write(
        &script,
        format!(
            "rem provision a database LUN and its backup view\n\
             create lun simple size=16 name=db unmask={SERVER}\n\
             group set name=backup members={BACKUP}\n\
             unmask lun add list=@backup=ro\n\
             snapshot lun name=db-snap\n\
             list luns\n\
             select lun nosuch noerr\n\
             detail lun noerr\n"
        ),
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let d = ok_json(&pool, &["exec", script]);
    assert_eq!(d["dialect"], "diskraid");
    assert_eq!(d["exit_code"], 0);
    assert_eq!(d["run"]["ignored_errors"], serde_json::json!([7, 8]));
    assert_eq!(d["run"]["lines"][0]["output"]["type"], "lun_created");
    assert!(d.get("error").is_none(), "{d}");
    // What it did is in the pool.
    let l = ok_json(&pool, &["lun", "detail", "db"]);
    assert_eq!(l["lun"]["mask"], format!("@backup=ro;{SERVER}"));
    assert_eq!(
        ok_json(&pool, &["lun", "detail", "db-snap"])["lun"]["source"],
        "db"
    );

    // Human output: the script's own text.
    let again = tmp.path().join("list.txt");
    std::fs::write(&again, "list luns\n").unwrap();
    let text = ok(
        &pool,
        &["exec", again.to_str().unwrap(), "--dialect", "diskraid"],
    );
    assert!(text.contains("db-snap"), "{text}");

    // A failing line stops the script with its line number; its kind gives the exit code, and
    // the JSON still carries the run with DiskRAID's own exit code.
    let failing = tmp.path().join("fail.txt");
    std::fs::write(
        &failing,
        "list luns\ncreate lun simple size=16 name=db\nlist luns\n",
    )
    .unwrap();
    let failing = failing.to_str().unwrap();
    let out = run(&pool, &["--json", "exec", failing]);
    assert_eq!(code(&out), 11);
    let d = doc(&out);
    assert_eq!(d["exit_code"], 4, "DiskRAID's service failure: {d}");
    assert_eq!(d["run"]["stopped_at"], 2);
    assert_eq!(d["run"]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(d["error"]["kind"], "already_exists");
    assert_eq!(d["error"]["exit_code"], 11);
    assert!(
        d["error"]["message"].as_str().unwrap().contains("line 2"),
        "{d}"
    );
    let out = run(&pool, &["exec", failing]);
    assert_eq!(code(&out), 11);
    assert!(
        stderr(&out).contains("fail.txt line 2: "),
        "{}",
        stderr(&out)
    );

    // DiskShadow: guessed from the first command (and run: cli/tests/shadow.rs), or named; a
    // DiskRAID script named as DiskShadow does not parse as one (4, nothing run).
    let shadow = tmp.path().join("backup.dsh");
    std::fs::write(
        &shadow,
        "# nightly\nset context persistent\nadd volume db\ncreate\n",
    )
    .unwrap();
    let d = ok_json(&pool, &["exec", shadow.to_str().unwrap()]);
    assert_eq!(d["dialect"], "diskshadow", "{d}");
    let e = fail_json(
        &pool,
        &["exec", again.to_str().unwrap(), "--dialect", "diskshadow"],
        4,
    );
    assert!(
        e["message"].as_str().unwrap().contains("nothing was run"),
        "{e}"
    );
}

/// `lun create --volatile`: a LUN whose volume keeps no metadata journal. Its data outlives the
/// process that wrote it (each command opens the pool afresh); a snapshot LUN of it is refused.
#[test]
fn a_volatile_lun_keeps_its_data_and_refuses_snapshot_luns() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let text = ok(
        &pool,
        &[
            "lun",
            "create",
            "tmp",
            "1MiB",
            "--volatile",
            "--unmask",
            SERVER,
        ],
    );
    assert!(text.starts_with("Created volatile LUN tmp.\n"), "{text}");
    assert!(text.contains("Volatile") && text.contains("yes"), "{text}");
    let d = ok_json(&pool, &["lun", "detail", "tmp"]);
    assert_eq!(d["lun"]["volatile"], true, "{d}");
    ok(&pool, &["lun", "create", "kept", "1MiB"]);
    let d = ok_json(&pool, &["lun", "detail", "kept"]);
    assert_eq!(
        d["lun"].get("volatile"),
        None,
        "absent for a persistent LUN: {d}"
    );

    let data = pattern(8192, 3);
    let input = tmp.path().join("in.bin");
    std::fs::write(&input, &data).unwrap();
    let input = input.to_str().unwrap();
    ok(
        &pool,
        &["lun", "write", "tmp", "--as", SERVER, "--in", input],
    );
    let out = run(
        &pool,
        &["lun", "read", "tmp", "--as", SERVER, "--length", "8192"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, data);

    let e = fail_json(&pool, &["lun", "snapshot", "tmp", "snap"], 12);
    assert_eq!(e["kind"], "bad_state", "{e}");
    assert!(e["message"].as_str().unwrap().contains("volatile"), "{e}");
}
