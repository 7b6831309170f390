//! The control socket's two lanes: an access change through a served pool runs while a long
//! command (a shadow set being made, its writer frozen) is under way, and a second long command
//! waits for the first with a line on stderr naming it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// Runs `c` on a thread; its (exit code, stdout, stderr) arrive on the channel when it ends.
fn in_background(mut c: Command) -> mpsc::Receiver<(i32, String, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = c.output().unwrap();
        let _ = tx.send((
            out.status.code().unwrap_or(128),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    });
    rx
}

/// A bound on a command that must end: far above its real time, there so that a command left
/// waiting for the long lane fails the test instead of hanging it.
const MUST_END: Duration = Duration::from_secs(60);

#[test]
fn an_access_change_does_not_wait_for_a_shadow_set_and_a_long_command_says_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let pool = cwd.join("pool");
    assert_eq!(
        code(&run(
            &pool,
            &["lun", "create", "db", "4MiB", "--unmask", SERVER]
        )),
        0
    );
    let _server = Served::start(&pool, &cwd.join("nbd.sock"));

    // A shadow set whose writer stays frozen until the test releases it.
    let (frozen, release) = (cwd.join("frozen"), cwd.join("release"));
    fifo(&frozen);
    fifo(&release);
    let writer = format!(
        "w=case $UMBRA_EVENT in freeze) echo frozen > {frozen}; read x < {release};; esac; true",
        frozen = frozen.display(),
        release = release.display()
    );
    let mut create = umbra_at(cwd, &pool);
    create.args(["shadow", "create", "db", "--writer", &writer]);
    let create = in_background(create);
    assert_eq!(line_of(&frozen), "frozen");

    // Quick lane: the revoke and queries answer while the set's writer is frozen.
    let mut unmask = umbra_at(cwd, &pool);
    unmask.args(["lun", "unmask", "db", ""]);
    let (c, _, err) = in_background(unmask)
        .recv_timeout(MUST_END)
        .expect("the unmask answers while the shadow set is being made");
    assert_eq!(c, 0, "{err}");
    assert!(err.is_empty(), "a quick command waits for nobody: {err}");
    let mut detail = umbra_at(cwd, &pool);
    detail.args(["--json", "lun", "detail", "db"]);
    let (c, out, err) = in_background(detail).recv_timeout(MUST_END).unwrap();
    assert_eq!(c, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["lun"]["unmasked"]["hosts"], serde_json::json!([]), "{d}");

    // Long lane: a LUN create waits for the set, and says for what, on stderr.
    let mut long = umbra_at(cwd, &pool)
        .args(["lun", "create", "logs", "4MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut long_err = BufReader::new(long.stderr.take().unwrap());
    let mut notice = String::new();
    long_err.read_line(&mut notice).unwrap();
    assert!(
        notice.starts_with("umbra: waiting for `umbra shadow create db --writer "),
        "{notice}"
    );
    assert!(notice.contains("to finish"), "{notice}");
    assert_eq!(long.try_wait().unwrap(), None, "it waits for the set");

    // Released: the set completes, then the waiting command runs.
    std::fs::write(&release, "go\n").unwrap();
    let (c, _, err) = create.recv_timeout(MUST_END).unwrap();
    assert_eq!(c, 0, "{err}");
    let mut rest = String::new();
    long_err.read_to_string(&mut rest).unwrap();
    assert_eq!(long.wait().unwrap().code(), Some(0), "{rest}");
    assert!(rest.is_empty(), "{rest}");
    let luns = ok_json(&pool, &["lun", "list"]);
    let names: Vec<&str> = luns["luns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"logs"), "{luns}");
}
