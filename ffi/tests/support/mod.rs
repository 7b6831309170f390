//! Shared by the integration tests that run outside tools (gcc, g++, valgrind, cbindgen, make,
//! pkg-config, readelf).

/// Reports that a tool a test needs is missing. Under `CI` (the variable is set) this fails the
/// test: CI must run every check, and `.ci/run` installs the tools. Elsewhere the test prints that
/// it skipped; the caller then returns (or carries on without the tool).
#[track_caller]
pub fn tool_missing(tool: &str, hint: &str) {
    let msg = format!("{tool} is not installed or does not run ({hint})");
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg}; CI must have it (.ci/run installs it)"
    );
    println!("skipped: {msg}");
}

/// Where cargo put libumbra.so and libumbra.a for this test run: next to the test executable
/// (`target/<profile>/deps/`) or one level up. None on an unusual runner.
#[allow(dead_code)] // not every test crate that includes this module installs the library
pub fn built_by_this_run() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    let found = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .find(|d| d.join("libumbra.so").is_file() && d.join("libumbra.a").is_file())
        .map(std::path::Path::to_path_buf);
    found
}
