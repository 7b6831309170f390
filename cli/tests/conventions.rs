//! The `umbra` command's conventions, on the built binary: where the pool is, `--json` on either
//! side of the command, the exit code table, and bad input refused with a clear message, its
//! exit code, and no change to the pool's files.

mod common;

use std::path::Path;

use common::*;

#[test]
fn json_goes_before_or_after_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(&pool, &["lun", "create", "db", "4"]);
    let before = doc(&run(&pool, &["--json", "lun", "list"]));
    let after = doc(&run(&pool, &["lun", "list", "--json"]));
    let middle = doc(&run(&pool, &["lun", "--json", "list"]));
    assert_eq!(before, after);
    assert_eq!(before, middle);
    assert_eq!(before["luns"][0]["name"], "db");
    // Errors too: one document either way.
    let a = run(&pool, &["--json", "lun", "detail", "nope"]);
    let b = run(&pool, &["lun", "detail", "nope", "--json"]);
    assert_eq!((code(&a), code(&b)), (3, 3));
    assert_eq!(doc(&a), doc(&b));
    assert_eq!(doc(&a)["error"]["kind"], "not_found");
    // With --json nothing is printed on stderr for an error.
    assert_eq!(stderr(&a), "");
}

#[test]
fn the_pool_is_the_flag_else_umbra_pool_else_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let from_env = tmp.path().join("env-pool");
    let from_flag = tmp.path().join("flag-pool");
    let cwd = tmp.path().join("work");
    std::fs::create_dir(&cwd).unwrap();

    // UMBRA_POOL.
    let out = umbra()
        .env("UMBRA_POOL", &from_env)
        .current_dir(&cwd)
        .args(["lun", "create", "a", "1"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(from_env.join("pool.log").is_file());
    // --pool wins over UMBRA_POOL.
    let out = umbra()
        .env("UMBRA_POOL", &from_env)
        .current_dir(&cwd)
        .args([
            "--pool",
            from_flag.to_str().unwrap(),
            "lun",
            "create",
            "b",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let names = |p: &Path| -> Vec<String> {
        let d = ok_json(p, &["lun", "list"]);
        d["luns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&from_env), ["a"]);
    assert_eq!(names(&from_flag), ["b"]);
    // Neither: ./umbra-pool.
    let out = umbra()
        .current_dir(&cwd)
        .args(["lun", "create", "c", "1"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(names(&cwd.join("umbra-pool")), ["c"]);
}

/// The summary `umbra --help` and `umbra -h` open with names the main job.
#[test]
fn help_summary_names_the_demo() {
    for flag in ["--help", "-h"] {
        let out = umbra().arg(flag).output().unwrap();
        assert_eq!(code(&out), 0);
        let help = stdout(&out);
        let summary = help.split("\n\n").next().unwrap();
        assert!(
            summary.contains("umbra demo fast-recovery"),
            "{flag}: {summary}"
        );
    }
}

#[test]
fn help_prints_the_exit_code_table_the_readmes_show() {
    let out = umbra().arg("--help").output().unwrap();
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    let table: Vec<(u32, String)> = help
        .split_once("Exit codes")
        .expect("an exit code section")
        .1
        .lines()
        .filter_map(|l| {
            let (n, meaning) = l.trim_start().split_once("  ")?;
            Some((n.parse().ok()?, meaning.trim().to_string()))
        })
        .collect();
    let codes: Vec<u32> = table.iter().map(|(n, _)| *n).collect();
    assert_eq!(codes, (0..21).collect::<Vec<_>>(), "{help}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for readme in [root.join("README.md"), root.join("../README.md")] {
        let text = std::fs::read_to_string(&readme).unwrap();
        for (n, meaning) in &table {
            let row = format!("| {n} | {meaning} |");
            assert!(text.contains(&row), "{} lacks {row:?}", readme.display());
        }
    }
}

#[test]
fn usage_errors_exit_2_and_say_so_in_json_too() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let out = run(&pool, &["lun", "frobnicate"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("frobnicate"), "{}", stderr(&out));
    let e = fail_json(&pool, &["lun", "create", "db"], 2);
    assert_eq!(e["kind"], "usage");
    assert!(e["message"].as_str().unwrap().contains("SIZE"), "{e}");
    // Nothing was created for a command that did not parse.
    assert!(!pool.exists());
}

/// Runs `args` on `pool` (human, then `--json`): each must fail with `exit` and a message naming
/// `names`, and leave the pool's files (names and bytes, the lock's pid aside) as they were.
fn refused(pool: &Path, args: &[&str], exit: i32, names: &str) {
    let before = files(pool);
    let out = run(pool, args);
    assert_eq!(code(&out), exit, "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("umbra: error: "), "{args:?}: {err}");
    assert!(
        err.contains(names),
        "{args:?}: {err:?} does not name {names:?}"
    );
    assert!(out.stdout.is_empty(), "{args:?}");
    let e = fail_json(pool, args, exit);
    assert!(e["message"].as_str().unwrap().contains(names), "{e}");
    assert_eq!(files(pool), before, "{args:?} changed the pool");
}

#[test]
fn bad_input_is_refused_by_name_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(&pool, &["lun", "create", "db", "4", "--unmask", SERVER]);
    ok(&pool, &["group", "set", "ops", SERVER]);
    let input = tmp.path().join("in.bin");
    std::fs::write(&input, b"hello").unwrap();
    let input = input.to_str().unwrap();

    // Unknown LUN.
    refused(&pool, &["lun", "detail", "ghost"], 3, "ghost");
    refused(&pool, &["lun", "delete", "ghost"], 3, "ghost");
    refused(&pool, &["lun", "extend", "ghost", "8"], 3, "ghost");
    refused(&pool, &["lun", "unmask", "ghost", "*"], 3, "ghost");
    refused(
        &pool,
        &["lun", "write", "ghost", "--as", SERVER, "--in", input],
        3,
        "ghost",
    );
    // Bad sizes and byte counts.
    refused(
        &pool,
        &["lun", "create", "x", "4 furlongs"],
        4,
        "4 furlongs",
    );
    refused(&pool, &["lun", "create", "x", "-4"], 4, "-4");
    refused(&pool, &["lun", "create", "x", "1000B"], 4, "1000");
    refused(&pool, &["lun", "extend", "db", "+lots"], 4, "lots");
    let out = tmp.path().join("out.bin");
    let out = out.to_str().unwrap();
    refused(
        &pool,
        &[
            "lun",
            "read",
            "db",
            "--as",
            SERVER,
            "--offset",
            "12 parsecs",
            "--out",
            out,
        ],
        4,
        "12 parsecs",
    );
    assert!(
        !Path::new(out).exists(),
        "a refused read created its output file"
    );
    // Bad initiator ids and mask lists.
    refused(
        &pool,
        &["lun", "write", "db", "--as", "nobody at all", "--in", input],
        4,
        "nobody at all",
    );
    refused(&pool, &["host", "view", "iqn.bad"], 4, "iqn.bad");
    refused(&pool, &["lun", "number", "db", "naa.12", "3"], 4, "naa.12");
    refused(
        &pool,
        &["lun", "unmask", "db", "*;iqn.1991-05.com.microsoft:a"],
        4,
        "*",
    );
    refused(
        &pool,
        &["lun", "create", "x", "4", "--unmask", "wwn=zz"],
        4,
        "wwn=zz",
    );
    refused(&pool, &["group", "set", "g", "not-an-id"], 4, "not-an-id");
    // Missing and malformed scripts: nothing of a malformed one runs, not even its good lines.
    let missing = tmp.path().join("missing.txt");
    refused(
        &pool,
        &["exec", missing.to_str().unwrap()],
        3,
        "missing.txt",
    );
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "create lun simple size=4 name=y\nfrobnicate lun\n").unwrap();
    refused(&pool, &["exec", bad.to_str().unwrap()], 4, "bad.txt line 2");
    assert_eq!(
        ok_json(&pool, &["lun", "list"])["luns"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A missing input file.
    refused(
        &pool,
        &[
            "lun",
            "write",
            "db",
            "--as",
            SERVER,
            "--in",
            "/nonexistent/in.bin",
        ],
        3,
        "/nonexistent/in.bin",
    );
    refused(
        &pool,
        &["lun", "import", "z", "/nonexistent/disk.raw"],
        3,
        "disk.raw",
    );
}

#[test]
fn bad_input_creates_no_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let out = run(&pool, &["lun", "create", "db", "4 furlongs"]);
    assert_eq!(code(&out), 4);
    let out = run(&pool, &["host", "view", "nobody"]);
    assert_eq!(code(&out), 4);
    assert!(!pool.exists(), "a refused command created the pool");
}

/// The holder is another `umbra` process, held inside a set by its writer until the test lets
/// it go: a lock held in this test process could outlive its drop, since a child another test
/// thread forks meanwhile shares the lock's file description until it execs.
#[test]
fn a_locked_pool_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(&pool, &["lun", "create", "db", "4"]);
    let holder = FrozenRequester::start(
        &pool,
        &tmp.path().join("frozen"),
        &tmp.path().join("release"),
    );
    let pid = format!("pid {}", holder.pid());
    refused(&pool, &["lun", "list"], 6, &pid);
    refused(&pool, &["lun", "create", "x", "4"], 6, &pid);
    let e = fail_json(&pool, &["lun", "delete", "db"], 6);
    assert_eq!(e["kind"], "busy");
    assert_eq!(holder.release(), 0, "the holder's set is made");
    ok(&pool, &["lun", "create", "x", "4"]);
}

#[test]
fn a_pool_of_an_unknown_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    ok(&pool, &["lun", "create", "db", "4"]);
    // pool.state's header: magic, version (u32 LE at 8), payload CRC, length, header CRC (at
    // 24, over the first 24 bytes), as docs/format.md lays it out. Version 99, header intact.
    let state = pool.join("pool.state");
    let mut bytes = std::fs::read(&state).unwrap();
    assert_eq!(&bytes[..8], b"UMBRAPST");
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&state, &bytes).unwrap();
    refused(&pool, &["lun", "list"], 17, "version 99");
    refused(&pool, &["lun", "create", "x", "4"], 17, "pool.state");
    assert_eq!(
        fail_json(&pool, &["lun", "list"], 17)["kind"],
        "unsupported_version"
    );
}

#[test]
fn a_directory_that_is_not_a_pool_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cat.jpg"), b"meow").unwrap();
    refused(&dir, &["lun", "create", "db", "4"], 19, "cat.jpg");
    assert_eq!(fail_json(&dir, &["lun", "list"], 19)["kind"], "not_a_pool");
}

#[test]
fn progress_bars_draw_on_a_terminal_unless_json() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    let image = tmp.path().join("disk.raw");
    std::fs::write(&image, pattern(2 << 20, 9)).unwrap();
    let (pool, image) = (pool.to_str().unwrap(), image.to_str().unwrap());
    let seen = on_a_terminal(&["--pool", pool, "lun", "import", "disk", image]);
    assert!(
        seen.contains("import disk ["),
        "no progress bar drawn: {seen:?}"
    );
    assert!(seen.contains("Imported"), "{seen:?}");
    let out = tmp.path().join("out.raw");
    let seen = on_a_terminal(&[
        "--pool",
        pool,
        "--json",
        "lun",
        "export",
        "disk",
        out.to_str().unwrap(),
    ]);
    assert!(
        !seen.contains("export disk"),
        "a progress bar with --json: {seen:?}"
    );
    // The terminal got the JSON document alone (the pty turns \n into \r\n).
    let d: serde_json::Value = serde_json::from_str(&seen.replace("\r\n", "\n")).unwrap();
    assert_eq!(d["lun"], "disk");
}
