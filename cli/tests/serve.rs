//! `umbra serve` and the pool's control socket, with real processes: a server on a unix socket,
//! other `umbra` processes whose commands go through its control socket (the same output and
//! exit codes as without a server, files read and written on the caller's side, exec writers
//! run as the caller's children), a caller killed mid-command, SIGTERM, a stale socket.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// Runs `umbra --pool POOL ARGS` in `cwd`; (exit code, stdout, stderr).
fn run_in(cwd: &Path, pool: &Path, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = umbra()
        .current_dir(cwd)
        .arg("--pool")
        .arg(pool)
        .args(args)
        .output()
        .unwrap();
    let (c, err) = (code(&out), stderr(&out));
    (c, out.stdout, err)
}

/// The same commands on a local pool and on a served one give the same output and exit codes,
/// human and `--json`, successes and failures; files are the caller's.
#[test]
fn served_commands_answer_as_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (local, served) = (cwd.join("local"), cwd.join("served"));
    let _srv = Served::start(&served, &cwd.join("nbd.sock"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(cwd.join("in.bin"), &data).unwrap();
    let backup_ro = format!("{BACKUP}=ro");
    let steps: Vec<(Vec<&str>, i32)> = vec![
        (vec!["lun", "create", "db", "4MiB", "--unmask", SERVER], 0),
        (vec!["lun", "create", "db", "4MiB"], 11),
        (vec!["lun", "create", "bad", "12parsecs"], 4),
        (vec!["lun", "list"], 0),
        (vec!["lun", "detail", "nope"], 3),
        (
            vec![
                "lun", "write", "db", "--as", SERVER, "--offset", "4096", "--in", "in.bin",
            ],
            0,
        ),
        (
            vec!["lun", "write", "db", "--as", STRANGER, "--in", "in.bin"],
            5,
        ),
        (
            vec!["lun", "write", "db", "--as", SERVER, "--in", "missing.bin"],
            3,
        ),
        (
            vec![
                "lun", "write", "db", "--as", SERVER, "--offset", "4MiB", "--in", "in.bin",
            ],
            13,
        ),
        (
            vec![
                "lun", "read", "db", "--as", SERVER, "--offset", "4096", "--length", "300000",
                "--out", "out.bin",
            ],
            0,
        ),
        (vec!["lun", "unmask", "db", "--add", &backup_ro], 0),
        (vec!["host", "view", BACKUP], 0),
        (vec!["lun", "import", "img", "in.bin"], 0),
        (vec!["lun", "import", "img2", "missing.bin"], 3),
        (vec!["lun", "export", "img", "exported.bin"], 0),
        (vec!["lun", "export", "img", "in.bin"], 11),
        (
            vec![
                "shadow",
                "list",
                "--id",
                "00000000-0000-0000-0000-000000000001",
            ],
            3,
        ),
        (
            vec!["shadow", "import", "missing.json", "--host", BACKUP],
            3,
        ),
        (vec!["exec", "missing.txt"], 3),
        (vec!["writers", "list"], 0),
    ];
    for json in [false, true] {
        for (args, want) in &steps {
            let mut args = args.clone();
            if json {
                args.insert(0, "--json");
            }
            let mut seen = Vec::new();
            for pool in [&local, &served] {
                let _ = std::fs::remove_file(cwd.join("out.bin"));
                let _ = std::fs::remove_file(cwd.join("exported.bin"));
                let (c, out, err) = run_in(cwd, pool, &args);
                assert_eq!(c, *want, "{args:?} on {}: {err}", pool.display());
                let made = (
                    std::fs::read(cwd.join("out.bin")).ok(),
                    std::fs::read(cwd.join("exported.bin")).ok(),
                );
                // The pool's path differs; nothing else does.
                let out = String::from_utf8(out)
                    .unwrap()
                    .replace(pool.to_str().unwrap(), "POOL");
                let err = err.replace(pool.to_str().unwrap(), "POOL");
                seen.push((out, err, made));
            }
            assert_eq!(seen[0], seen[1], "{args:?}: local then served");
        }
        // Undo the pools' changes so the second pass starts the same.
        for pool in [&local, &served] {
            for l in ["db", "img"] {
                assert_eq!(run_in(cwd, pool, &["lun", "delete", l]).0, 0);
            }
        }
    }
    // The bytes went through the caller's files.
    let (c, _, _) = run_in(
        cwd,
        &served,
        &["lun", "create", "db", "4MiB", "--unmask", SERVER],
    );
    assert_eq!(c, 0);
    run_in(
        cwd,
        &served,
        &["lun", "write", "db", "--as", SERVER, "--in", "in.bin"],
    );
    let (c, out, _) = run_in(
        cwd,
        &served,
        &["lun", "read", "db", "--as", SERVER, "--length", "300000"],
    );
    assert_eq!(c, 0);
    assert_eq!(out, data, "lun read to the caller's stdout");
}

/// Exec writers of a set made through the control socket (one given with --writer, one
/// registered in the pool) run as children of the calling `umbra`, not of the server; the
/// document --save names is written on the caller's side.
#[test]
fn writers_run_as_children_of_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let log = cwd.join("events.log");
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);
    let cmd = |name: &str| {
        format!(
            "{name}=echo \"$PPID {name} $UMBRA_EVENT\" >> {}",
            log.display()
        )
    };
    let reg = cmd("reg");
    let (name, reg_cmd) = reg.split_once('=').unwrap();
    assert_eq!(run_in(cwd, &pool, &["writers", "add", name, reg_cmd]).0, 0);
    let mut caller = Command::new(assert_cmd::cargo::cargo_bin!("umbra"));
    caller
        .env_remove("UMBRA_POOL")
        .current_dir(cwd)
        .arg("--pool")
        .arg(&pool)
        .args([
            "--json",
            "shadow",
            "create",
            "db",
            "--save",
            "doc.json",
            "--writer",
            &cmd("one"),
        ]);
    let (code, pid, out) = spawn_and_wait(&mut caller);
    assert_eq!(code, 0, "{out}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (ppid, writer, event) = (w.next().unwrap(), w.next().unwrap(), w.next().unwrap());
        assert_eq!(
            ppid,
            pid.to_string(),
            "{line}: the caller {pid} runs the writer, not the server {}",
            srv.pid
        );
        seen.insert((writer.to_string(), event.to_string()));
    }
    for w in ["reg", "one"] {
        for e in [
            "identify",
            "prepare-backup",
            "freeze",
            "thaw",
            "post-snapshot",
            "backup-complete",
        ] {
            assert!(
                seen.contains(&(w.to_string(), e.to_string())),
                "{w} {e}: {text}"
            );
        }
    }
    let saved = std::fs::read(cwd.join("doc.json")).expect("--save wrote the caller's file");
    assert!(vss_core::BackupComponents::from_json(&saved).is_ok());
}

/// Spawns `c` and waits: its exit code, pid and stdout.
fn spawn_and_wait(c: &mut Command) -> (i32, u32, String) {
    let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let st = child.wait().unwrap();
    (st.code().unwrap_or(128), pid, out)
}

/// The lines of a writer's log: (event, set id, the pid of its shell's parent).
fn writer_log(log: &Path) -> Vec<(String, String, u32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].to_string(), w[2].parse().unwrap())
        })
        .collect()
}

/// The set-in-progress record of the pool at `pool` (no server holds it).
fn set_record(pool: &Path) -> Option<vss_core::pool::SetRecord> {
    let a = vds_core::Array::open(pool).unwrap();
    vss_core::pool::read_record(&a).unwrap()
}

/// A caller killed (SIGKILL) while its exec writer holds the freeze: the writer's helper dies
/// with it (it was the caller's child), the server aborts the set and sends the abort the
/// caller can no longer run to the writer by its command (as the next open does for a dead
/// requester), leaves no shadow and no record, and goes on serving; the next set is made at
/// once.
#[test]
fn a_caller_killed_mid_freeze_is_cleaned_up_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let mut srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);
    let (frozen, held, log) = (cwd.join("frozen"), cwd.join("held"), cwd.join("w.log"));
    fifo(&frozen);
    fifo(&held);
    // At freeze: logs, opens `held` for writing (kept by the helper), says so, and becomes the
    // helper (sleep) holding it; at abort: logs.
    let writer = format!(
        "w=case $UMBRA_EVENT in freeze|abort) echo \"$UMBRA_EVENT $UMBRA_SET_ID $PPID\" >> {log};; \
         esac; case $UMBRA_EVENT in freeze) exec 3>{held}; echo frozen > {frozen}; \
         exec sleep 600;; esac; true",
        log = log.display(),
        held = held.display(),
        frozen = frozen.display()
    );
    let mut caller = umbra_at(cwd, &pool)
        .args(["shadow", "create", "db", "--writer", &writer])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Opening blocks until the helper holds the write end.
    let mut helper = std::fs::File::open(&held).unwrap();
    assert_eq!(line_of(&frozen), "frozen");
    caller.kill().unwrap();
    caller.wait().unwrap();
    // End of file once every holder of the write end is gone: the helper died with the caller.
    let mut rest = Vec::new();
    helper.read_to_end(&mut rest).unwrap();
    // The server answers the next command once the dead caller's set is aborted.
    let d = ok_json(&pool, &["shadow", "list"]);
    assert_eq!(d["shadows"].as_array().unwrap().len(), 0, "{d}");
    let luns = ok_json(&pool, &["lun", "list"]);
    assert_eq!(luns["luns"].as_array().unwrap().len(), 1, "{luns}");
    let seen = writer_log(&log);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (freeze, abort) = (&seen[0], &seen[1]);
    assert_eq!(freeze.0, "freeze");
    assert_eq!(freeze.2, caller.id(), "the caller ran the freeze");
    assert_eq!(
        (abort.0.as_str(), &abort.1, abort.2),
        ("abort", &freeze.1, srv.pid),
        "the server sent the abort of the set, the caller being gone"
    );
    let d = ok_json(&pool, &["shadow", "create", "db", "--nowriters"]);
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(srv.signal("TERM"), 0);
    assert_eq!(set_record(&pool), None);
}

/// The server killed (SIGKILL) mid-set, after the shadows were committed, while the caller's
/// exec writer (given with --writer) is in its thaw: the caller ends with an I/O error (9)
/// naming the server; the next command opens the pool itself and cleans up as after a dead
/// requester: the writer gets abort (run by that command), the shadows are deleted, the
/// record is gone; the stale socket is removed.
#[test]
fn a_server_killed_mid_set_is_cleaned_up_by_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let mut srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);
    let (thawing, go, log) = (cwd.join("thawing"), cwd.join("go"), cwd.join("w.log"));
    fifo(&thawing);
    fifo(&go);
    let writer = format!(
        "w=case $UMBRA_EVENT in thaw|abort) echo \"$UMBRA_EVENT $UMBRA_SET_ID $PPID\" >> {log};; \
         esac; case $UMBRA_EVENT in thaw) echo thawing > {thawing}; read x < {go};; esac; true",
        log = log.display(),
        thawing = thawing.display(),
        go = go.display()
    );
    let mut caller = umbra_at(cwd, &pool)
        .args(["shadow", "create", "db", "--writer", &writer])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(line_of(&thawing), "thawing");
    assert_eq!(srv.signal("KILL"), 128);
    // Lets the thaw end: the caller then finds its server gone.
    std::fs::write(&go, "go\n").unwrap();
    let mut err = String::new();
    caller
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = caller.wait().unwrap();
    assert_eq!(st.code(), Some(9), "{err}");
    assert!(err.contains("the pool's server hung up"), "{err}");
    let rec = set_record(&pool).expect("the dead server's set is still recorded");
    assert_eq!(rec.pid, srv.pid);
    let names: Vec<&str> = rec.exec_writers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["w"], "the caller's --writer is named in the record");
    assert!(pool.join("control.sock").exists());

    let mut next = Command::new(assert_cmd::cargo::cargo_bin!("umbra"));
    next.env_remove("UMBRA_POOL")
        .current_dir(cwd)
        .arg("--pool")
        .arg(&pool)
        .args(["--json", "shadow", "list"]);
    let (code, next_pid, out) = spawn_and_wait(&mut next);
    assert_eq!(code, 0, "{out}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        d["shadows"].as_array().unwrap().len(),
        0,
        "no stale shadow: {d}"
    );
    let luns = ok_json(&pool, &["lun", "list"]);
    assert_eq!(
        luns["luns"].as_array().unwrap().len(),
        1,
        "no snapshot LUN left: {luns}"
    );
    let seen = writer_log(&log);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0.as_str(), seen[0].2), ("thaw", caller.id()));
    assert_eq!(
        (seen[1].0.as_str(), &seen[1].1, seen[1].2),
        ("abort", &rec.set_id.to_string(), next_pid),
        "the next command sent the abort"
    );
    assert_eq!(set_record(&pool), None);
    assert!(
        !pool.join("control.sock").exists(),
        "the stale socket is removed"
    );
}

/// SIGTERM while a command is mid-set (its writer in freeze): the server stops taking
/// commands but lets the running one finish — the caller gets its set (0) — then exits 0,
/// leaving no record; the shadow is there for the next command.
#[test]
fn sigterm_mid_set_lets_the_running_command_finish() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);
    let mut server = umbra_at(cwd, &pool)
        .args(["serve", "--listen", "unix:nbd.sock", "--as", SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap()).lines();
    while !out.next().unwrap().unwrap().starts_with("ready") {}
    let (frozen, go) = (cwd.join("frozen"), cwd.join("go"));
    fifo(&frozen);
    fifo(&go);
    let writer = format!(
        "w=case $UMBRA_EVENT in freeze) echo frozen > {}; read x < {};; esac; true",
        frozen.display(),
        go.display()
    );
    let mut caller = umbra_at(cwd, &pool)
        .args(["--json", "shadow", "create", "db", "--writer", &writer])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(line_of(&frozen), "frozen");
    assert!(Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut err = BufReader::new(server.stderr.take().unwrap()).lines();
    loop {
        let l = err.next().expect("the server says it shuts down").unwrap();
        if l.contains("signal 15: shutting down") {
            break;
        }
    }
    std::fs::write(&go, "go\n").unwrap();
    let mut doc = String::new();
    caller
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut doc)
        .unwrap();
    assert_eq!(caller.wait().unwrap().code(), Some(0), "{doc}");
    let d: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(server.wait().unwrap().code(), Some(0));
    assert!(!pool.join("control.sock").exists());
    assert_eq!(set_record(&pool), None);
    let d = ok_json(&pool, &["shadow", "list"]);
    assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
}

/// A caller killed mid-stream (`lun read --out` into a FIFO the test stops reading): the
/// server notices at its next write, ends the command and serves the next one; a whole read
/// then gives the LUN's bytes.
#[test]
fn a_caller_killed_mid_stream_leaves_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let data = pattern(8 << 20, 7);
    std::fs::write(cwd.join("in.bin"), &data).unwrap();
    assert_eq!(
        run_in(
            cwd,
            &pool,
            &["lun", "create", "db", "8MiB", "--unmask", SERVER]
        )
        .0,
        0
    );
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "write", "db", "--as", SERVER, "--in", "in.bin"],
    );
    assert_eq!(c, 0, "{err}");
    let out = cwd.join("out.fifo");
    fifo(&out);
    let mut caller = umbra_at(cwd, &pool)
        .args(["lun", "read", "db", "--as", SERVER, "--out", "out.fifo"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = std::fs::File::open(&out).unwrap();
    let mut first = vec![0u8; 64 << 10];
    r.read_exact(&mut first).unwrap();
    assert_eq!(first, data[..64 << 10]);
    caller.kill().unwrap();
    caller.wait().unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.len() < data.len(), "the stream was cut");
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "read", "db", "--as", SERVER, "--out", "out.bin"],
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(std::fs::read(cwd.join("out.bin")).unwrap(), data);
}

/// The disk space `path` takes (allocated blocks, not its length).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// `lun export` through the control socket writes a sparse image as the local one does: the
/// same bytes, the LUN's holes (a leading, a middle and a trailing one) left unallocated.
#[test]
fn a_served_export_is_as_sparse_as_a_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let data = pattern(1 << 20, 3);
    std::fs::write(cwd.join("in.bin"), &data).unwrap();
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "create", "db", "32MiB", "--unmask", SERVER],
    );
    assert_eq!(c, 0, "{err}");
    for at in ["4MiB", "20MiB"] {
        let (c, _, err) = run_in(
            cwd,
            &pool,
            &[
                "lun", "write", "db", "--as", SERVER, "--in", "in.bin", "--offset", at,
            ],
        );
        assert_eq!(c, 0, "{err}");
    }
    let (c, _, err) = run_in(cwd, &pool, &["lun", "export", "db", "local.img"]);
    assert_eq!(c, 0, "{err}");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let (c, _, err) = run_in(cwd, &pool, &["lun", "export", "db", "served.img"]);
    assert_eq!(c, 0, "{err}");
    let (local, served) = (cwd.join("local.img"), cwd.join("served.img"));
    let bytes = std::fs::read(&served).unwrap();
    assert_eq!(bytes.len(), 32 << 20);
    assert!(bytes == std::fs::read(&local).unwrap(), "the same image");
    assert_eq!(&bytes[4 << 20..5 << 20], &data[..]);
    assert!(
        allocated(&served) <= allocated(&local) + (64 << 10) && allocated(&served) < 4 << 20,
        "served export takes {} bytes on disk, the local one {}",
        allocated(&served),
        allocated(&local)
    );
}

/// A DiskShadow script run through the control socket: its `exec` line runs as the caller's
/// child, in the caller's working directory, with the caller's environment; a `%VARIABLE%`
/// reads the caller's environment; `set metadata` / `load metadata` files are the caller's
/// (a relative path is the caller's), and nothing appears in the server's working directory.
#[test]
fn a_served_scripts_exec_lines_and_files_are_the_callers() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);
    let work = cwd.join("work");
    std::fs::create_dir(&work).unwrap();
    let hook = work.join("hook.sh");
    // Its parent (the shell of the exec line, or the caller if that shell execs it) and that
    // one's parent, the caller-only variable, and where it runs.
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"$PPID $(cut -d' ' -f4 /proc/$PPID/stat) $CALLER_ONLY $(pwd)\" > hook.out\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        work.join("backup.dsh"),
        "set context persistent\nset metadata %CALLER_ONLY%.json\nadd volume db\ncreate\n\
         exec ./hook.sh\nload metadata %CALLER_ONLY%.json\n",
    )
    .unwrap();
    let mut caller = Command::new(assert_cmd::cargo::cargo_bin!("umbra"));
    caller
        .env_remove("UMBRA_POOL")
        .env("CALLER_ONLY", "only-here")
        .current_dir(&work)
        .arg("--pool")
        .arg(&pool)
        .args(["--json", "exec", "backup.dsh"]);
    let (code, pid, out) = spawn_and_wait(&mut caller);
    assert_eq!(code, 0, "{out}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["exit_code"], 0, "{d}");
    let said = std::fs::read_to_string(work.join("hook.out")).expect("the hook ran in work/");
    let w: Vec<&str> = said.split_whitespace().collect();
    assert!(
        w[0] == pid.to_string() || w[1] == pid.to_string(),
        "the caller {pid} runs the exec line, not the server {}: {said}",
        srv.pid
    );
    assert_eq!(&w[2..], ["only-here", work.to_str().unwrap()], "{said}");
    let doc = std::fs::read(work.join("only-here.json")).expect("set metadata: the caller's file");
    let doc = vss_core::BackupComponents::from_json(&doc).unwrap();
    let set = doc.snapshot_set.unwrap().set_id.to_string();
    assert!(d.to_string().contains(&set), "load metadata read it: {d}");
    let server_cwd: Vec<_> = std::fs::read_dir(cwd.join("server-cwd")).unwrap().collect();
    assert!(server_cwd.is_empty(), "{server_cwd:?}");
}

/// Raw connections to the control socket that misbehave — a huge frame, a bad tag, a document
/// that is not JSON, a request whose argv is not a list of strings, a caller that says nothing —
/// are each answered with an invalid-input error (4) and hung up on; a caller that hangs up
/// mid-header is dropped; none stops two real callers at once from being served.
#[test]
fn malformed_and_silent_control_requests_are_refused_and_change_nothing() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let sock = pool.join("control.sock");
    let frame = |tag: u8, body: &[u8]| {
        let mut f = vec![tag];
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        f.extend_from_slice(body);
        f
    };
    // The server's answer: one JSON frame, then end of file.
    let answer = |mut c: UnixStream| -> Value {
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(all[0], b'J', "{all:?}");
        let len = u32::from_le_bytes(all[1..5].try_into().unwrap()) as usize;
        assert_eq!(all.len(), 5 + len, "one frame, then the end");
        serde_json::from_slice(&all[5..]).unwrap()
    };
    let silent = UnixStream::connect(&sock).unwrap();
    let mut half = UnixStream::connect(&sock).unwrap();
    half.write_all(&[b'J', 9, 0]).unwrap();
    drop(half);
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![b'J', 0xff, 0xff, 0xff, 0xff],
            "control frame of 4294967295 bytes",
        ),
        (frame(b'X', b"{}"), "control frame with tag 0x58"),
        (
            frame(b'J', b"{\"argv\": [\"lun\""),
            "control frame: EOF while parsing",
        ),
        (
            frame(b'D', b"lun list"),
            "data where a JSON document was expected",
        ),
        (
            frame(b'J', b"{\"argv\": 42}"),
            "\"argv\" is not a list of strings",
        ),
    ];
    for (bytes, want) in cases.drain(..) {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(&bytes).unwrap();
        let a = answer(c);
        assert_eq!(a["op"], "done", "{a}");
        assert_eq!(a["error"]["exit_code"], 4, "{a}");
        let msg = a["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("a bad control request") && msg.contains(want),
            "{msg}"
        );
    }
    // Two callers at once, while the silent one is still connected.
    let spawn = |name: &str| {
        umbra()
            .current_dir(cwd)
            .arg("--pool")
            .arg(&pool)
            .args(["lun", "create", name, "1MiB"])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("a"));
        let b = s.spawn(|| spawn("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        (code(&a), code(&b)),
        (0, 0),
        "{} {}",
        stderr(&a),
        stderr(&b)
    );
    let luns = ok_json(&pool, &["lun", "list"]);
    assert_eq!(luns["luns"].as_array().unwrap().len(), 2, "{luns}");
    // The silent caller is answered (after the time limit) and hung up on.
    let a = answer(silent);
    let msg = a["error"]["message"].as_str().unwrap();
    assert!(msg.contains("no command line within 10 s"), "{msg}");
}

/// At most 64 callers at once: with 64 connected (and silent) the next command is answered
/// busy (6) at once, naming the limit.
#[test]
fn callers_past_the_limit_are_answered_busy() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "1MiB"]).0, 0);
    let held: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(pool.join("control.sock")).unwrap())
        .collect();
    let (c, _, err) = run_in(cwd, &pool, &["lun", "list"]);
    assert_eq!(c, 6, "{err}");
    assert!(err.contains("64 commands running or waiting"), "{err}");
    drop(held);
}

/// A control socket nobody accepts on is not taken for a dead server's while the pool's lock
/// is held (a server binding it this instant holds the lock): the command is busy (6) naming
/// the holder and the file stays. A `--listen unix:PATH` that is a regular file is not removed:
/// the server refuses to start.
#[test]
fn a_socket_nobody_accepts_on_is_removed_only_under_the_pool_lock() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let (sock, aside) = (pool.join("control.sock"), pool.join("control.sock.live"));
    std::fs::rename(&sock, &aside).unwrap();
    std::fs::write(&sock, b"").unwrap();
    let (c, _, err) = run_in(cwd, &pool, &["lun", "list"]);
    assert_eq!(c, 6, "{err}");
    assert!(err.contains(&srv.pid.to_string()), "{err}");
    assert!(sock.exists(), "not removed without the pool's lock");
    std::fs::rename(&aside, &sock).unwrap();
    assert_eq!(run_in(cwd, &pool, &["lun", "list"]).0, 0);

    let other = cwd.join("other-pool");
    let precious = cwd.join("precious.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    let (c, _, err) = run_in(
        cwd,
        &other,
        &["serve", "--listen", "unix:precious.txt", "--as", SERVER],
    );
    assert_eq!(c, 11, "{err}");
    assert!(err.contains("cannot listen on unix:precious.txt"), "{err}");
    assert!(
        !other.exists(),
        "a serve that cannot listen created the pool"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
}

/// Whether this test process runs as root; if not, says the test is skipped (a failure under
/// `CI`, whose runner is root).
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = format!("{test}: skipped: another user's processes need root to start");
    assert!(std::env::var_os("CI").is_none(), "{msg}; CI runs as root");
    eprintln!("{msg}");
    false
}

/// Callers and servers of different users do not deal with each other: another user's command
/// cannot connect (the socket is 0600) and fails access denied (5) naming the socket, not the
/// pool's lock; a root command finding a server of another user refuses to act for it (5); the
/// server refuses a caller of another user (5); the server goes on serving its own user.
#[test]
fn callers_and_servers_of_other_users_are_refused() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    if !root_or_skip("callers_and_servers_of_other_users_are_refused") {
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cwd, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A root server; a caller of uid 65534.
    let pool = cwd.join("pool");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    std::fs::set_permissions(&pool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("umbra"))
        .uid(NOBODY)
        .gid(NOBODY)
        .env_remove("UMBRA_POOL")
        .current_dir("/")
        .arg("--pool")
        .arg(&pool)
        .args(["lun", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("is not this user's to use (uid 65534)"),
        "{err}"
    );
    assert_eq!(run_in(cwd, &pool, &["lun", "list"]).0, 0);

    // A server of uid 65534; root callers.
    let theirs = cwd.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let their_pool = theirs.join("pool");
    let _theirs = Served::start_as(&their_pool, &theirs.join("nbd.sock"), Some(NOBODY));
    let (c, _, err) = run_in(cwd, &their_pool, &["lun", "list"]);
    assert_eq!(c, 5, "{err}");
    assert!(
        err.contains("runs as uid 65534, this command as uid 0"),
        "{err}"
    );
    let mut raw = UnixStream::connect(their_pool.join("control.sock")).unwrap();
    let body = br#"{"argv": ["lun", "list"]}"#;
    let mut f = vec![b'J'];
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(body);
    // The server may hang up before reading it: only its answer counts.
    let _ = raw.write_all(&f);
    // One frame (read exactly: the server hangs up on a request it did not read, which the
    // next read past the frame reports as a reset).
    let mut head = [0u8; 5];
    raw.read_exact(&mut head).unwrap();
    assert_eq!(head[0], b'J');
    let mut body = vec![0u8; u32::from_le_bytes(head[1..].try_into().unwrap()) as usize];
    raw.read_exact(&mut body).unwrap();
    let a: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(a["error"]["exit_code"], 5, "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("takes commands of that user only, not of uid 0"),
        "{a}"
    );
}

/// SIGTERM stops the server and removes the control socket; the pool then opens locally. A
/// second server on a served pool exits 6 naming the first's pid; a socket a killed server left
/// behind is removed by the next command, which opens the pool itself.
#[test]
fn sigterm_stops_the_server_and_a_stale_socket_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let mut srv = Served::start(&pool, &cwd.join("nbd.sock"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pool.join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the control socket is the owner's only"
    );
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["serve", "--listen", "unix:other.sock", "--as", SERVER],
    );
    assert_eq!(c, 6, "{err}");
    assert!(err.contains(&format!("pid {}", srv.pid)), "{err}");
    assert_eq!(srv.signal("TERM"), 0);
    assert!(!pool.join("control.sock").exists());
    assert!(!cwd.join("nbd.sock").exists());
    assert_eq!(run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]).0, 0);

    let mut srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(srv.signal("KILL"), 128);
    assert!(
        pool.join("control.sock").exists(),
        "a killed server leaves its socket"
    );
    let (c, out, err) = run_in(cwd, &pool, &["lun", "list"]);
    assert_eq!(c, 0, "{err}");
    assert!(String::from_utf8(out).unwrap().contains("db"));
    assert!(
        !pool.join("control.sock").exists(),
        "the stale socket is removed"
    );
}

/// The python3 libnbd client the NBD tests drive line by line on its stdin: `connect URI`,
/// `read OFFSET LENGTH` (answers `ok HEX` or `err ERRNO-NAME`), `close`; each command answered by
/// one line, so the test waits on the answer, never on time.
const NBD_CLIENT: &str = r#"
import sys, nbd
h = None
for line in sys.stdin:
    w = line.split()
    try:
        if w[0] == "connect":
            h = nbd.NBD()
            h.connect_uri(w[1])
            print("ok", flush=True)
        elif w[0] == "read":
            print("ok", h.pread(int(w[2]), int(w[1])).hex(), flush=True)
        elif w[0] == "close":
            h.shutdown()
            h = None
            print("ok", flush=True)
    except nbd.Error as e:
        print("err", e.errno, flush=True)
"#;

/// A running python3 libnbd client.
struct NbdClient {
    child: Child,
    out: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl NbdClient {
    fn start(cwd: &Path) -> NbdClient {
        // The distribution's python3: python3-libnbd installs the module for it.
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", NBD_CLIENT])
            // Not the workspace: its nbd/ folder would shadow the nbd module.
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with libnbd (python3-libnbd) is installed");
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        NbdClient { child, out }
    }

    /// Sends `cmd`; its answer line.
    fn ask(&mut self, cmd: &str) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        self.out.next().expect("the client answers").unwrap()
    }
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `nbdinfo --list --json URI`: its document, `None` when it fails (a refused client).
fn nbdinfo_list(uri: &str) -> Option<Value> {
    let out = Command::new("nbdinfo")
        .args(["--list", "--json", uri])
        .output()
        .expect("nbdinfo (libnbd-bin) is installed");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The export names `nbdinfo --list` of `uri` gives.
fn listed(uri: &str) -> Vec<String> {
    let d = nbdinfo_list(uri).expect("nbdinfo --list succeeds");
    d["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export-name"].as_str().unwrap().to_string())
        .collect()
}

/// A mask change made by another `umbra` process through the control socket while an NBD
/// client is connected: its next request gets EPERM and a new LIST no longer has the export. A
/// fast recovery through the control socket: a client reconnecting to the same export name
/// reads the shadow's data.
#[test]
fn mask_changes_and_fast_recovery_through_the_control_socket_reach_nbd_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let sock = cwd.join("nbd.sock");
    let _srv = Served::start(&pool, &sock);
    let uri = format!("nbd+unix:///0?socket={}", sock.display());
    let list_uri = format!("nbd+unix://?socket={}", sock.display());
    let before: Vec<u8> = (0..4096u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(cwd.join("before.bin"), &before).unwrap();
    std::fs::write(cwd.join("after.bin"), vec![0xEE; 4096]).unwrap();
    let umbra_ok = |args: &[&str]| {
        let (c, out, err) = run_in(cwd, &pool, args);
        assert_eq!(c, 0, "{args:?}: {err}");
        String::from_utf8(out).unwrap()
    };
    umbra_ok(&["lun", "create", "db", "4MiB", "--unmask", SERVER]);
    umbra_ok(&["lun", "write", "db", "--as", SERVER, "--in", "before.bin"]);
    assert_eq!(listed(&list_uri), ["0"]);

    // Fast recovery while a client is connected.
    let d: Value = serde_json::from_str(&umbra_ok(&[
        "--json",
        "shadow",
        "create",
        "db",
        "--nowriters",
    ]))
    .unwrap();
    let shadow = d["shadows"][0]["id"].as_str().unwrap().to_string();
    let mut c = NbdClient::start(cwd);
    assert_eq!(c.ask(&format!("connect {uri}")), "ok");
    umbra_ok(&["lun", "write", "db", "--as", SERVER, "--in", "after.bin"]);
    assert_eq!(c.ask("read 0 4096"), format!("ok {}", hex(&[0xEE; 4096])));
    umbra_ok(&["shadow", "recover", "db", "--from", &shadow]);
    let _ = c.ask("close");
    assert_eq!(c.ask(&format!("connect {uri}")), "ok");
    assert_eq!(
        c.ask("read 0 4096"),
        format!("ok {}", hex(&before)),
        "the same export name reaches the shadow"
    );

    // A mask change while the client is connected.
    let luns: Value = serde_json::from_str(&umbra_ok(&["--json", "host", "view", SERVER])).unwrap();
    let lun = luns["luns"][0]["lun"].as_str().unwrap().to_string();
    umbra_ok(&["lun", "unmask", &lun, ""]);
    assert_eq!(
        c.ask("read 0 4096"),
        "err EPERM",
        "EPERM on the next request"
    );
    assert!(
        listed(&list_uri).is_empty(),
        "the export is gone from a new LIST"
    );
}

/// Makes a CA and, signed by it, a server certificate and client certificates (SAN URI = the
/// initiator) with the `openssl` command, laid out as libnbd and qemu read them: each client's
/// folder holds ca-cert.pem, client-cert.pem, client-key.pem.
fn certificates(dir: &Path, clients: &[(&str, &str)], ca_name: &str) {
    let sh = |script: &str| {
        let st = Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("sh runs");
        assert!(st.success(), "openssl failed: {script}");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    sh(&format!(
        "openssl req -x509 {ec} -keyout ca-key.pem -out ca-cert.pem -days 2 -subj '/CN={ca_name}' \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
         openssl req {ec} -keyout server-key.pem -out server.csr -subj /CN=localhost
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
         openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
           -out server-cert.pem -days 2 -extfile server.ext"
    ));
    for (name, uri) in clients {
        sh(&format!(
            "mkdir -p {name} && cp ca-cert.pem {name}/
             openssl req {ec} -keyout {name}/client-key.pem -out {name}.csr -subj '/CN=client {name}'
             printf 'subjectAltName=URI:{uri}\\nextendedKeyUsage=clientAuth\\n' > {name}.ext
             openssl x509 -req -in {name}.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
               -out {name}/client-cert.pem -days 2 -extfile {name}.ext"
        ));
    }
}

/// One TLS listener: two clients (nbdinfo, qemu-img) with different certificates see their own
/// initiators' exports; a client without a certificate or with one from another CA gets none.
#[test]
fn tls_clients_on_one_listener_see_their_own_views() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (h1, h2) = ("iqn.2026-01.org.example:h1", "iqn.2026-01.org.example:h2");
    certificates(cwd, &[("h1", h1), ("h2", h2)], "umbra test CA");
    let other = cwd.join("other");
    std::fs::create_dir(&other).unwrap();
    certificates(&other, &[("h1", h1)], "another CA");
    let pool = cwd.join("pool");
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "create", "one", "1MiB", "--unmask", h1],
    );
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "create", "two", "2MiB", "--unmask", h2],
    );
    assert_eq!(c, 0, "{err}");
    let (child, ready) = spawn_ready(
        umbra_at(cwd, Path::new("pool"))
            .args(["--json", "serve", "--listen", "127.0.0.1:0"])
            .args([
                "--tls-cert",
                "server-cert.pem",
                "--tls-key",
                "server-key.pem",
                "--tls-ca",
                "ca-cert.pem",
            ]),
    );
    // No fixed initiator under TLS: null, not a placeholder string.
    assert!(ready["listeners"][0]["initiator"].is_null(), "{ready}");
    assert_eq!(
        ready["pool"],
        cwd.join("pool").to_str().unwrap(),
        "absolute"
    );
    let pid = child.id();
    let srv = Served {
        child,
        pool: pool.clone(),
        pid,
    };
    let addr = ready["listeners"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let port = addr.rsplit(':').next().unwrap();
    let names = |certs: &Path| {
        let d = nbdinfo_list(&format!(
            "nbds://127.0.0.1:{port}?tls-certificates={}",
            certs.display()
        ))?;
        Some(
            d["exports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["description"].as_str().unwrap_or("").to_string(),
                        e["export-size"].as_u64().unwrap(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        names(&cwd.join("h1")),
        Some(vec![("one".to_string(), 1 << 20)])
    );
    assert_eq!(
        names(&cwd.join("h2")),
        Some(vec![("two".to_string(), 2 << 20)])
    );
    assert_eq!(
        names(&other.join("h1")),
        None,
        "a certificate of another CA is refused"
    );
    let plain = Command::new("nbdinfo")
        .args(["--list", &format!("nbd://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "a client without TLS gets no list");
    // qemu-img over TLS, opening h2's LUN by name: as h2, then as h1.
    let qemu_info = |who: &str| {
        Command::new("qemu-img")
            .args(["info", "--output=json", "--object"])
            .arg(format!(
                "tls-creds-x509,id=tls0,dir={},endpoint=client",
                cwd.join(who).display()
            ))
            .arg("--image-opts")
            .arg(format!(
                "driver=nbd,host=127.0.0.1,port={port},export=two,tls-creds=tls0"
            ))
            .output()
            .expect("qemu-img (qemu-utils) is installed")
    };
    let out = qemu_info("h2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["virtual-size"], 2 << 20);
    assert!(!qemu_info("h1").status.success(), "h1 cannot open h2's LUN");
    drop(srv);
}

/// A served command's progress bar is drawn by the caller on its own terminal (a pty made by
/// `script`); with `--json` none is drawn.
#[test]
fn progress_bars_of_served_commands_are_drawn_by_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    assert_eq!(
        run_in(
            cwd,
            &pool,
            &["lun", "create", "db", "16MiB", "--unmask", SERVER]
        )
        .0,
        0
    );
    std::fs::write(cwd.join("in.bin"), vec![7u8; 8 << 20]).unwrap();
    let umbra_bin = assert_cmd::cargo::cargo_bin!("umbra");
    let on_a_terminal_args = |args: &str| {
        let cmd = format!("{} --pool {} {args}", umbra_bin.display(), pool.display());
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(cwd)
            .env_remove("UMBRA_POOL")
            .stdin(Stdio::null())
            .output()
            .expect("script (util-linux) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let on_a_terminal =
        |json: &str| on_a_terminal_args(&format!("{json} lun write db --as {SERVER} --in in.bin"));
    let shown = on_a_terminal("");
    assert!(shown.contains("write db ["), "no bar drawn: {shown:?}");
    // A bar of a long operation (percent done) ends at 100%, not at the 99% it says until the
    // operation is over.
    let export = on_a_terminal_args("lun export db out.img");
    let last = export.rsplit("export db [").next().unwrap();
    assert!(
        export.contains("export db [") && last.contains("] 100%"),
        "the bar does not end at 100%: {export:?}"
    );
    assert!(export.contains("Exported"), "{export:?}");
    assert!(shown.contains("Wrote 8388608 bytes"), "{shown:?}");
    let hidden = on_a_terminal("--json");
    assert!(
        !hidden.contains("write db ["),
        "a bar with --json: {hidden:?}"
    );
}

/// `serve --max-connections 0` (a server that serves no one) is invalid input, exit 4 naming
/// the value; a TLS file that is not there is "not found", exit 3 naming it; neither creates
/// the pool.
#[test]
fn serve_refuses_zero_connections_and_missing_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--as",
            SERVER,
            "--max-connections",
            "0",
        ],
    );
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("--max-connections 0"), "{err}");
    std::fs::write(cwd.join("cert.pem"), b"").unwrap();
    std::fs::write(cwd.join("ca.pem"), b"").unwrap();
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "nosuch.pem",
            "--tls-ca",
            "ca.pem",
        ],
    );
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("nosuch.pem"), "{err}");
    assert!(!pool.exists(), "a refused serve created the pool");
}

/// SIGHUP (the terminal closed) stops `serve` as SIGTERM does: exit 0, the sockets and the ready
/// file removed; with `--json` nothing is printed on stderr.
#[test]
fn sighup_stops_the_server_cleanly_and_json_keeps_stderr_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let (child, doc) = spawn_ready(
        umbra_at(cwd, &pool)
            .args([
                "--json",
                "serve",
                "--listen",
                "unix:nbd.sock",
                "--as",
                SERVER,
            ])
            .args(["--ready-file", "ready.json"])
            .stderr(Stdio::piped()),
    );
    assert_eq!(doc["pid"].as_u64(), Some(child.id() as u64));
    assert!(cwd.join("ready.json").exists());
    kill(&child, "HUP");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "SIGHUP is a clean stop");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "--json: stderr quiet"
    );
    for f in ["nbd.sock", "ready.json", "pool/control.sock"] {
        assert!(!cwd.join(f).exists(), "{f} outlives the server");
    }
}

/// `shadow create --save` into a missing directory says the same, served or not (exit 3).
#[test]
fn a_save_into_a_missing_directory_says_the_same_served_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let (c, _, err) = run_in(cwd, &pool, &["lun", "create", "db", "4MiB"]);
    assert_eq!(c, 0, "{err}");
    let args = [
        "shadow",
        "create",
        "db",
        "--nowriters",
        "--save",
        "nodir/x.json",
    ];
    let local = run_in(cwd, &pool, &args);
    assert_eq!(local.0, 3, "{}", local.2);
    let _srv = Served::start(&pool, &cwd.join("nbd.sock"));
    let served = run_in(cwd, &pool, &args);
    assert_eq!((served.0, &served.2), (local.0, &local.2));
}

/// Listen failures are found before the pool is opened (nothing is created) and exit with the
/// code of their cause: a missing directory not found (3), a path a socket address cannot hold
/// invalid input (4), a directory, file or symbolic link at the path already exists (11, left
/// alone), an address in use I/O (9).
#[test]
fn a_serve_that_cannot_listen_creates_nothing_and_exits_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    std::fs::create_dir(cwd.join("adir")).unwrap();
    std::fs::write(cwd.join("afile"), b"keep").unwrap();
    std::os::unix::fs::symlink("afile", cwd.join("alink")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let long = format!("unix:{}", "s".repeat(120));
    let in_use = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    for (listen, code, named) in [
        ("unix:nodir/s.sock", 3, "nodir"),
        (long.as_str(), 4, "120 bytes"),
        ("unix:adir", 11, "adir is a directory"),
        ("unix:afile", 11, "afile is a file"),
        ("unix:alink", 11, "alink is a symbolic link"),
        (in_use.as_str(), 9, in_use.as_str()),
    ] {
        let (c, _, err) = run_in(cwd, &pool, &["serve", "--listen", listen, "--as", SERVER]);
        assert_eq!(c, code, "{listen}: {err}");
        assert!(err.contains(named), "{listen}: {err}");
        assert!(!pool.exists(), "{listen}: the pool was created");
    }
    // Two listeners, the second failing: the first one's socket is removed too.
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &[
            "serve",
            "--listen",
            "unix:first.sock",
            "--listen",
            "unix:adir",
            "--as",
            SERVER,
        ],
    );
    assert_eq!(c, 11, "{err}");
    assert!(!cwd.join("first.sock").exists());
    assert_eq!(std::fs::read(cwd.join("afile")).unwrap(), b"keep");
    assert!(cwd.join("adir").is_dir() && cwd.join("alink").is_symlink());
    // A control socket path too long for a socket: invalid input, before the pool is made.
    let deep = cwd.join("d".repeat(100));
    let (c, _, err) = run_in(
        cwd,
        &deep,
        &["serve", "--listen", "unix:s.sock", "--as", SERVER],
    );
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("control socket"), "{err}");
    assert!(!deep.exists() && !cwd.join("s.sock").exists());
    // The same address twice: a usage error (2), nothing bound, no pool.
    for (first, second) in [
        ("unix:twice.sock", "unix:./twice.sock"),
        (in_use.as_str(), in_use.as_str()),
    ] {
        let args = [
            "serve", "--listen", first, "--listen", second, "--as", SERVER,
        ];
        let (c, _, err) = run_in(cwd, &pool, &args);
        assert_eq!(c, 2, "{first} {second}: {err}");
        assert!(err.contains("given twice"), "{err}");
        assert!(!pool.exists() && !cwd.join("twice.sock").exists());
    }
}

/// The ready document (and `--json` stdout) names the pool, the control socket and unix
/// listeners by absolute paths, whatever relative ones were given. A dead server's ready file
/// is removed as the next serve starts, even one that then fails; a live server's ready file,
/// or a file that is no ready document, is refused and left alone.
#[test]
fn the_ready_document_is_absolute_and_a_stale_one_never_outlives_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let start = || {
        spawn_ready(
            umbra_at(cwd, Path::new("pool"))
                .args(["--json", "serve", "--listen", "unix:rel.sock"])
                .args(["--as", SERVER, "--ready-file", "ready.json"]),
        )
    };
    let (mut child, doc) = start();
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("ready.json")).unwrap()).unwrap();
    assert_eq!(on_disk, doc);
    let abs = |p: &str| cwd.join(p).to_str().unwrap().to_string();
    assert_eq!(doc["pool"], abs("pool"));
    assert_eq!(doc["control"], abs("pool/control.sock"));
    assert_eq!(
        doc["listeners"][0]["address"],
        format!("unix:{}", abs("rel.sock"))
    );
    assert_eq!(doc["listeners"][0]["initiator"], SERVER);

    // A live server's ready file: another pool's serve refuses it (busy), untouched.
    let (c, _, err) = run_in(
        cwd,
        &cwd.join("other"),
        &[
            "serve",
            "--listen",
            "unix:o.sock",
            "--as",
            SERVER,
            "--ready-file",
            "ready.json",
        ],
    );
    assert_eq!(c, 6, "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(cwd.join("ready.json")).unwrap()).unwrap(),
        doc
    );
    assert!(!cwd.join("other").exists() && !cwd.join("o.sock").exists());

    // Killed: its ready file stays, until the next serve starts, even one that fails.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cwd.join("ready.json").exists());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    let (c, _, err) = run_in(
        cwd,
        &cwd.join("pool"),
        &[
            "serve",
            "--listen",
            &in_use,
            "--as",
            SERVER,
            "--ready-file",
            "ready.json",
        ],
    );
    assert_eq!(c, 9, "{err}");
    assert!(
        !cwd.join("ready.json").exists(),
        "the dead server's ready file is left"
    );

    // A file that is no ready document is not replaced (an empty one is).
    std::fs::write(cwd.join("ready.json"), b"precious").unwrap();
    let (c, _, err) = run_in(
        cwd,
        &cwd.join("pool"),
        &[
            "serve",
            "--listen",
            "unix:rel.sock",
            "--as",
            SERVER,
            "--ready-file",
            "ready.json",
        ],
    );
    assert_eq!(c, 11, "{err}");
    assert_eq!(std::fs::read(cwd.join("ready.json")).unwrap(), b"precious");
    std::fs::write(cwd.join("ready.json"), b"").unwrap();
    let (mut child, doc) = start();
    assert_eq!(doc["pid"].as_u64(), Some(u64::from(child.id())));
    kill(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!cwd.join("ready.json").exists());
}

/// A WRITE declaring 4 GiB closes the client's connection at once, its payload unread, and the
/// server says why on stderr (with `--json` too); the server goes on.
#[test]
// NBD is big-endian on the wire; nothing here is persisted.
#[allow(clippy::big_endian_bytes)]
fn an_absurd_write_closes_the_connection_with_a_logged_reason() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    let (c, _, err) = run_in(
        cwd,
        &pool,
        &["lun", "create", "db", "1MiB", "--unmask", SERVER],
    );
    assert_eq!(c, 0, "{err}");
    let (child, doc) = spawn_ready(
        umbra_at(cwd, &pool)
            .args(["--json", "serve", "--listen", "127.0.0.1:0", "--as", SERVER])
            .stderr(Stdio::piped()),
    );
    let addr = doc["listeners"][0]["address"].as_str().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let mut greeting = [0u8; 18];
    s.read_exact(&mut greeting).unwrap();
    // Fixed newstyle + no zeroes; EXPORT_NAME "0"; then a WRITE header claiming 4 GiB - 1.
    let mut b = 3u32.to_be_bytes().to_vec();
    b.extend_from_slice(b"IHAVEOPT");
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(b"0");
    s.write_all(&b).unwrap();
    let mut export = [0u8; 10];
    s.read_exact(&mut export).unwrap();
    let mut req = 0x2560_9513u32.to_be_bytes().to_vec();
    req.extend_from_slice(&0u16.to_be_bytes());
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(&7u64.to_be_bytes());
    req.extend_from_slice(&0u64.to_be_bytes());
    req.extend_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&req).unwrap();
    // A watchdog against a server reading the payload, not a measure of speed.
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    assert!(
        end.is_ok() || end.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection was not closed"
    );
    // The server goes on: a new client gets its greeting.
    let mut again = std::net::TcpStream::connect(&addr).unwrap();
    again.read_exact(&mut greeting).unwrap();
    drop(again);
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("connection from 127.0.0.1:") && log.contains("WRITE of 4294967295 bytes"),
        "{log}"
    );
}
