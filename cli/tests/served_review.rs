//! Review points checked on a local and a served pool alike (a real `umbra serve` on a unix
//! socket, the other commands real `umbra` processes going through its control socket):
//! a dead requester's "cleaned up set" notice is on the caller's stderr with the `umbra: `
//! prefix, stdout identical to a local run's (N14); a software shadow of a `--volatile` LUN that
//! would outlive the command is refused with `bad_state` (12) naming the LUN, nothing made
//! (N16); and the pool's files and the control socket are their owner's only (N17).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A pool with LUN `db` (4 MiB) and volatile LUN `v` (1 MiB), both visible to [`SERVER`].
fn pool_with_luns(dir: &Path) -> PathBuf {
    let pool = dir.join("pool");
    ok(&pool, &["lun", "create", "db", "4MiB", "--unmask", SERVER]);
    ok(
        &pool,
        &[
            "lun",
            "create",
            "v",
            "1MiB",
            "--volatile",
            "--unmask",
            SERVER,
        ],
    );
    pool
}

/// Leaves a dead requester's set in progress on `pool` (an `umbra shadow create db` killed
/// while its writer holds the freeze; no server) and returns its pid.
fn dead_requester(pool: &Path, dir: &Path, round: u32) -> u32 {
    let holder = FrozenRequester::start(
        pool,
        &dir.join(format!("frozen{round}")),
        &dir.join(format!("release{round}")),
    );
    let pid = holder.pid();
    holder.kill();
    pid
}

/// The notice's line for requester `pid`, with the set's id blanked (each round has its own).
fn notice_of(err: &str, pid: u32) -> String {
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err:?}");
    let line = lines[0];
    assert!(line.starts_with("umbra: cleaned up set "), "{line}");
    assert!(
        line.contains(&format!("requester pid {pid}, which is gone")),
        "{line}"
    );
    let id = line["umbra: cleaned up set ".len()..]
        .split(' ')
        .next()
        .unwrap();
    line.replace(id, "ID").replace(&pid.to_string(), "PID")
}

/// Why (N14): a served command's output must be a local one's, so a script reading the table
/// from stdout is not broken by the notice. Locally and through the server, the command that
/// cleans a dead requester's set up prints the same stdout (the table alone) and the same
/// one-line notice on stderr, `umbra: `-prefixed.
#[test]
fn the_cleanup_notice_is_on_stderr_served_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_luns(tmp.path());
    let mut seen = Vec::new();
    for (round, serve) in [(0, false), (1, true)] {
        let pid = dead_requester(&pool, tmp.path(), round);
        let srv = serve.then(|| Served::start(&pool, &pool.with_extension("nbd.sock")));
        let out = run(&pool, &["shadow", "list"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            !text.contains("cleaned up"),
            "served {serve}: stdout {text:?}"
        );
        seen.push((text, notice_of(&stderr(&out), pid)));
        // Once: the next command has nothing to say.
        let out = run(&pool, &["shadow", "list"]);
        assert_eq!(stderr(&out), "", "served {serve}");
        if let Some(s) = srv {
            assert_eq!(s.stop(), Some(0));
        }
    }
    assert_eq!(seen[0], seen[1], "served output as local output");
}

/// Why (N16): a volatile LUN's engine snapshots end with the pool (at the command's end without
/// a server, at the server's restart with one), so a persistent software shadow of it would be
/// listed and then silently gone. `shadow create` refuses it in every context it offers, with
/// or without a server: exit 12, `bad_state`, the message naming the LUN; nothing is made (a
/// set naming a persistent LUN too included). The hardware provider is refused the same way.
#[test]
fn a_shadow_of_a_volatile_lun_is_refused_served_or_not() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = pool_with_luns(tmp.path());
    for serve in [false, true] {
        let srv = serve.then(|| Served::start(&pool, &pool.with_extension("nbd.sock")));
        for args in [
            &[
                "shadow",
                "create",
                "v",
                "--provider",
                "software",
                "--nowriters",
            ][..],
            &[
                "shadow",
                "create",
                "db",
                "v",
                "--provider",
                "software",
                "--nowriters",
            ],
            &[
                "shadow",
                "create",
                "v",
                "--provider",
                "software",
                "--context",
                "clientaccessible",
            ],
            &[
                "shadow",
                "create",
                "v",
                "--provider",
                "hardware",
                "--nowriters",
            ],
        ] {
            let e = fail_json(&pool, args, 12);
            assert_eq!(e["kind"], "bad_state", "served {serve}, {args:?}: {e}");
            let m = e["message"].as_str().unwrap();
            assert!(m.contains("LUN \"v\" is volatile"), "{args:?}: {m}");
            let out = run(&pool, args);
            assert_eq!(code(&out), 12);
            let err = stderr(&out);
            assert!(
                err.starts_with("umbra: error: bad state: ") && err.contains("\"v\" is volatile"),
                "{err}"
            );
            let d = ok_json(&pool, &["shadow", "list"]);
            assert_eq!(d["shadows"], serde_json::json!([]), "{args:?}: {d}");
            let d = ok_json(&pool, &["lun", "list"]);
            assert_eq!(d["luns"].as_array().unwrap().len(), 2, "{args:?}: {d}");
        }
        // The persistent LUN alone is shadowed as before.
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
        assert_eq!(d["shadows"].as_array().unwrap().len(), 1, "{d}");
        ok(&pool, &["shadow", "delete", "--all"]);
        if let Some(s) = srv {
            assert_eq!(s.stop(), Some(0));
        }
    }
}

/// Why (N17): masking decides who reads a LUN, so its files must not let every local user read
/// it. Under a umask of 022, a pool the CLI creates (and what a served command adds to it) is
/// 0700 directories and 0600 files; the control socket is 0600.
#[test]
fn a_pool_made_by_the_cli_is_its_owners_only() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = tmp.path().join("pool");
    // The umask is inherited: set it for the children through a shell.
    let sh = |cmd: &str| {
        let st = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("umask 022 && {cmd}"))
            .env_remove("UMBRA_POOL")
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    };
    let bin = assert_cmd::cargo::cargo_bin!("umbra").display().to_string();
    let p = shell_quote(pool.to_str().unwrap());
    sh(&format!(
        "{bin} --pool {p} lun create db 1MiB --unmask {SERVER}"
    ));
    let srv = Served::start(&pool, &pool.with_extension("nbd.sock"));
    let sock = pool.join("control.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    sh(&format!("{bin} --pool {p} lun snapshot db snap"));
    sh(&format!("{bin} --pool {p} lun split snap"));
    assert_eq!(srv.stop(), Some(0));
    let mut stack = vec![pool.clone()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.permissions().mode() & 0o777, want, "{}", p.display());
            if m.is_dir() {
                stack.push(p);
            }
            n += 1;
        }
    }
    assert_eq!(
        std::fs::metadata(&pool).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(n > 10, "{n} entries");
}
