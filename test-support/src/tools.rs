//! Outside tools a test runs (gcc, valgrind, cbindgen, nbd-client, qemu-img, ...): one policy for
//! a missing one. Under `CI` (the variable is set) a missing tool fails the test, since CI must run
//! every check and `.ci/run` installs the tools; elsewhere the test says loudly that it skipped.

use std::process::{Command, Stdio};

/// Reports that `tool`, which a test needs, is missing (`hint`: how to get it). Under `CI` this
/// fails the test; elsewhere it prints that the test skipped, and the caller then returns (or
/// carries on without the tool).
#[track_caller]
pub fn tool_missing(tool: &str, hint: &str) {
    let msg = format!("{tool} is not installed or does not run ({hint})");
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg}; CI must have it (.ci/run installs it)"
    );
    println!("skipped: {msg}");
}

/// Whether `tool` runs (`tool --version` succeeds); if not, [`tool_missing`] (a failure under
/// `CI`, a loud skip elsewhere).
#[track_caller]
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        tool_missing(tool, "see .ci/run for its package");
    }
    ok
}

/// Fails the test with the command's output unless it exited successfully.
#[track_caller]
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
