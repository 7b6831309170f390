//! Helpers of the `umbra` command's tests: run the built binary on a pool (or on a terminal),
//! parse its JSON, snapshot a pool directory's files.

#![allow(dead_code)]

pub mod served;

#[allow(unused_imports)]
pub use served::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// Initiator ids the tests use.
pub const SERVER: &str = "iqn.1991-05.com.microsoft:server";
/// A backup host's FC port, in one of its spellings.
pub const BACKUP: &str = "10:00:00:00:c9:00:00:02";
/// The same port as the array spells it.
pub const BACKUP_CANON: &str = "10000000c9000002";
/// An initiator no mask names.
pub const STRANGER: &str = "iqn.2000-01.com.example:stranger";

/// The `umbra` binary, with no `UMBRA_POOL` from the environment.
pub fn umbra() -> assert_cmd::Command {
    let mut c = assert_cmd::cargo::cargo_bin_cmd!("umbra");
    c.env_remove("UMBRA_POOL");
    c
}

/// Runs `umbra --pool POOL ARGS...`.
pub fn run(pool: &Path, args: &[&str]) -> Output {
    umbra()
        .arg("--pool")
        .arg(pool)
        .args(args)
        .output()
        .expect("umbra runs")
}

/// The process's exit code.
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("umbra exits with a code")
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Runs a human-output command that must succeed; its stdout.
pub fn ok(pool: &Path, args: &[&str]) -> String {
    let out = run(pool, args);
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Stdout parsed as exactly one JSON document.
pub fn doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", stdout(out)))
}

/// Runs `umbra --json ...` that must succeed; its document.
pub fn ok_json(pool: &Path, args: &[&str]) -> Value {
    let out = run(pool, &[&["--json"], args].concat());
    assert_eq!(code(&out), 0, "{args:?}: {}", stdout(&out));
    doc(&out)
}

/// Runs `umbra --json ...` that must fail with `exit`; its `error` object (kind, message,
/// exit_code), checked to carry that code.
pub fn fail_json(pool: &Path, args: &[&str], exit: i32) -> Value {
    let out = run(pool, &[&["--json"], args].concat());
    let d = doc(&out);
    assert_eq!(code(&out), exit, "{args:?}: {d}");
    let e = d["error"].clone();
    assert_eq!(e["exit_code"], exit, "{d}");
    assert!(e["kind"].is_string() && e["message"].is_string(), "{d}");
    e
}

/// Every file under `dir` (relative path -> bytes); the pool lock's bytes (the holder's pid)
/// left out, its name kept.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.insert(p.strip_prefix(dir).unwrap().join(""), Vec::new());
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                let bytes = if rel == Path::new("pool.lock") {
                    Vec::new()
                } else {
                    std::fs::read(&p).expect("readable")
                };
                out.insert(rel, bytes);
            }
        }
    }
    out
}

/// Deterministic bytes that are not all alike, with zero runs to exercise holes (the workspace's
/// one test generator).
#[allow(unused_imports)] // not every test crate that includes this module uses it
pub use umbra_test_support::sparse_pattern as pattern;

/// Runs `umbra ARGS` with its stdout and stderr on a pseudo-terminal (util-linux `script`, part
/// of every Debian system); what the terminal received.
pub fn on_a_terminal(args: &[&str]) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("umbra");
    let mut line = shell_quote(bin.to_str().unwrap());
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let out = std::process::Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .env_remove("UMBRA_POOL")
        .output()
        .expect("util-linux `script` runs (apt-get install bsdutils)");
    assert!(out.status.success(), "{line}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `s` quoted for `sh -c`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An `umbra shadow create db` on a pool, held inside its set: its writer, at freeze, writes
/// `frozen` into a FIFO (which [`FrozenRequester::start`] waits for) and then blocks until
/// [`FrozenRequester::release`] writes into another. It holds the pool (its lock) and a
/// set-in-progress record meanwhile. Killed when dropped, so a failing test leaves no process.
pub struct FrozenRequester {
    child: std::process::Child,
    release: PathBuf,
}

impl FrozenRequester {
    /// Starts the requester on `pool` (LUN `db`; FIFOs `frozen` and `release` are made, in a
    /// directory of the test's) and returns once its writer holds the freeze (freeze and event
    /// deadlines of ten minutes: no load makes it time out).
    pub fn start(pool: &Path, frozen: &Path, release: &Path) -> FrozenRequester {
        use std::io::BufRead;
        for f in [frozen, release] {
            let made = std::process::Command::new("mkfifo")
                .arg(f)
                .status()
                .unwrap();
            assert!(made.success(), "mkfifo {}", f.display());
        }
        let writer = format!(
            "w=case $UMBRA_EVENT in freeze) echo frozen > {}; read x < {};; esac; true",
            shell_quote(frozen.to_str().unwrap()),
            shell_quote(release.to_str().unwrap())
        );
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("umbra"))
            .env_remove("UMBRA_POOL")
            .arg("--pool")
            .arg(pool)
            .args(["shadow", "create", "db", "--freeze-timeout", "10m"])
            .args(["--event-timeout", "10m", "--writer", &writer])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let held = FrozenRequester {
            child,
            release: release.to_path_buf(),
        };
        // Blocks until the writer is in its freeze (a FIFO opens once both ends are open).
        let mut line = String::new();
        std::io::BufReader::new(std::fs::File::open(frozen).unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "frozen");
        held
    }

    /// The requester's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the writer's freeze return; waits for the requester to exit and returns its exit
    /// code.
    pub fn release(mut self) -> i32 {
        std::fs::write(&self.release, "go\n").unwrap();
        self.child.wait().unwrap().code().expect("an exit code")
    }

    /// Kills the requester (SIGKILL) mid-set and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for FrozenRequester {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
