//! A real `umbra serve` for the command's tests, and the small process helpers the served
//! tests share (FIFOs, signals, the ready document).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::SERVER;

/// A running `umbra serve` on `pool`.
pub struct Served {
    pub child: Child,
    pub pool: PathBuf,
    pub pid: u32,
}

impl Served {
    /// Starts `umbra serve` on `pool` with NBD on `nbd` as initiator SERVER, and waits for its
    /// ready line on stdout. Its working directory is a folder of its own beside the pool
    /// (`server-cwd`), so a file it made by a relative path would show there.
    pub fn start(pool: &Path, nbd: &Path) -> Served {
        Served::start_as(pool, nbd, None)
    }

    /// [`Served::start`], as user and group `uid` when given.
    pub fn start_as(pool: &Path, nbd: &Path, uid: Option<u32>) -> Served {
        use std::os::unix::process::CommandExt;
        let cwd = pool.parent().unwrap().join("server-cwd");
        std::fs::create_dir_all(&cwd).unwrap();
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("umbra"));
        if let Some(u) = uid {
            std::os::unix::fs::chown(&cwd, Some(u), Some(u)).unwrap();
            cmd.uid(u).gid(u);
        }
        let mut child = cmd
            .env_remove("UMBRA_POOL")
            .current_dir(&cwd)
            .arg("--pool")
            .arg(pool)
            .args(["serve", "--listen"])
            .arg(format!("unix:{}", nbd.display()))
            .args(["--as", SERVER])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("umbra serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let pid = loop {
            let line = lines
                .next()
                .expect("umbra serve says it is ready before it ends")
                .unwrap();
            if let Some(p) = line.strip_prefix("ready (pid ") {
                break p.trim_end_matches(')').parse().unwrap();
            }
        };
        assert_eq!(pid, child.id());
        Served {
            child,
            pool: pool.to_path_buf(),
            pid,
        }
    }

    /// Stops the server (SIGTERM) and waits for it: its exit code.
    pub fn stop(mut self) -> Option<i32> {
        Some(self.signal("TERM"))
    }

    /// Sends `sig` and waits for the server's exit code.
    pub fn signal(&mut self, sig: &str) -> i32 {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let st = self.child.wait().unwrap();
        st.code().unwrap_or(128)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.signal("TERM");
        }
        assert!(
            !self.pool.join("control.sock").exists() || std::thread::panicking(),
            "the control socket outlives its server"
        );
    }
}

/// `umbra --pool POOL` in `cwd` (no `UMBRA_POOL`), to be given its arguments and spawned.
pub fn umbra_at(cwd: &Path, pool: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("umbra"));
    c.env_remove("UMBRA_POOL")
        .current_dir(cwd)
        .arg("--pool")
        .arg(pool);
    c
}

/// Spawns `cmd` (a `--json serve`; its stdout is piped here) and reads its ready document, the
/// first line of its stdout.
pub fn spawn_ready(cmd: &mut Command) -> (Child, Value) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let doc = serde_json::from_str(&line).expect("the ready document");
    (child, doc)
}

/// Sends `sig` to `child`.
pub fn kill(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The first line written to the FIFO at `path` (opening it waits for its writer).
pub fn line_of(path: &Path) -> String {
    let mut line = String::new();
    BufReader::new(std::fs::File::open(path).unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

/// mkfifo `path`.
pub fn fifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}
