//! Builds the C and C++ programs in `tests/c/` against `include/umbra.h` and libumbra, and runs them
//! — under valgrind (zero errors, no definite or indirect leaks) when it is installed.
//!
//! The library is the one cargo built for this very test run: the cdylib and staticlib of this
//! package land next to the test executable (`target/<profile>/deps/`). If they are not there (an
//! unusual runner), the harness builds them with cargo into a separate target directory.
//!
//! Programs are compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror` (C++:
//! `-std=c++17 -Wall -Wextra -Wpedantic -Werror`) and linked against the shared library (NEEDED
//! `libumbra.so.1`, found through an rpath), once against the static one. Without a C compiler
//! (or valgrind, or readelf) the tests print that they skipped (or ran without valgrind); when the
//! `CI` variable is set they fail instead. Set `UMBRA_TEST_NO_VALGRIND=1` to run without valgrind
//! on purpose. (`tests/install.rs` builds programs against an installed libumbra.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CFLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
];
const CXXFLAGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
];
/// What a static libumbra needs from the system (see `rustc --print native-static-libs`).
const STATIC_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm"];
const VALGRIND: &[&str] = &[
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect,possible",
    "--show-leak-kinds=definite,indirect,possible",
    "--fair-sched=yes",
];
/// No program may run longer than this (valgrind included).
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Env {
    /// Scratch space of this test process under the target directory; a program's directory is
    /// removed when it passes and kept for inspection when it fails.
    work: PathBuf,
    /// Holds `libumbra.so`, `libumbra.so.1` and `libumbra.a` (symlinks to cargo's outputs).
    libdir: PathBuf,
    include: PathBuf,
    sources: PathBuf,
    cc: Option<String>,
    cxx: Option<String>,
    valgrind: bool,
    /// `UMBRA_TEST_NO_VALGRIND` is set: run without valgrind on purpose.
    no_valgrind: bool,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool_works(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn compiler(var: &str, default: &str) -> Option<String> {
    let c = std::env::var(var).unwrap_or_else(|_| default.to_string());
    tool_works(&c, "--version").then_some(c)
}

/// The directory holding the libumbra cargo built for this test run.
fn find_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe
        .parent()
        .expect("test executable directory")
        .to_path_buf();
    let mut candidates = vec![deps.clone()];
    if let Some(profile) = deps.parent() {
        candidates.push(profile.to_path_buf());
    }
    for dir in &candidates {
        if dir.join("libumbra.so").is_file() && dir.join("libumbra.a").is_file() {
            return dir.clone();
        }
    }
    // Fallback: build it with cargo into a target directory of our own (the test run holds the
    // lock of the normal one).
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("umbra-ffi-build");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = Command::new(cargo)
        .args(["build", "-p", "umbra-ffi", "--lib", "--target-dir"])
        .arg(&target)
        .current_dir(manifest_dir())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p umbra-ffi failed");
    target.join("debug")
}

/// Removes the scratch directories of earlier test processes that are gone.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("umbra-c-tests-")) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn setup() -> Env {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if cfg!(target_os = "linux") {
        remove_stale(&root);
    }
    let work = root.join(format!("umbra-c-tests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let libdir = work.join("lib");
    std::fs::create_dir_all(&libdir).expect("create lib dir");
    let built = find_library();
    #[cfg(unix)]
    {
        let so = built.join("libumbra.so");
        std::os::unix::fs::symlink(&so, libdir.join("libumbra.so")).expect("symlink");
        // The SONAME: what programs linked against libumbra.so ask the loader for.
        std::os::unix::fs::symlink(&so, libdir.join("libumbra.so.1")).expect("symlink");
        std::os::unix::fs::symlink(built.join("libumbra.a"), libdir.join("libumbra.a"))
            .expect("symlink");
    }
    let no_valgrind = std::env::var_os("UMBRA_TEST_NO_VALGRIND").is_some();
    let valgrind = !no_valgrind && tool_works("valgrind", "--version");
    Env {
        work,
        libdir,
        include: manifest_dir().join("../include"),
        sources: manifest_dir().join("tests/c"),
        cc: compiler("CC", "gcc"),
        cxx: compiler("CXX", "g++"),
        valgrind,
        no_valgrind,
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(setup)
}

/// Runs `cmd` to completion (killed after RUN_LIMIT), returning its output.
fn run_limited(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drain the pipes on threads so a chatty child never blocks.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

fn check_output(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Lang {
    C,
    Cxx,
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Shared,
    Static,
}

/// Compiles `source` into `exe`; false (after saying so) if there is no compiler.
fn compile(e: &Env, source: &str, exe: &Path, lang: Lang, link: Link) -> bool {
    let (compiler, flags) = match lang {
        Lang::C => (&e.cc, CFLAGS),
        Lang::Cxx => (&e.cxx, CXXFLAGS),
    };
    let Some(compiler) = compiler else {
        let (var, default, package) = match lang {
            Lang::C => ("CC", "gcc", "gcc"),
            Lang::Cxx => ("CXX", "g++", "g++"),
        };
        let tool = std::env::var(var).unwrap_or_else(|_| default.to_string());
        support::tool_missing(&tool, &format!("set {var}, or apt-get install {package}"));
        return false;
    };
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(&e.include)
        .arg("-I")
        .arg(&e.sources)
        .arg("-o")
        .arg(exe)
        .arg(e.sources.join(source));
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&e.libdir)
                .arg(format!("-Wl,-rpath,{}", e.libdir.display()))
                .arg("-lumbra")
                .arg("-lpthread");
        }
        Link::Static => {
            cmd.arg(e.libdir.join("libumbra.a")).args(STATIC_LIBS);
        }
    }
    let out = run_limited(cmd, &format!("compiling {source}"));
    check_output(&out, &format!("compiling {source}"));
    // -Werror makes warnings fatal; make sure nothing slipped through as a note either.
    let diag = String::from_utf8_lossy(&out.stderr);
    assert!(
        !diag.contains("warning"),
        "compiling {source} printed warnings:\n{diag}"
    );
    true
}

/// Compiles and runs one program (under valgrind when available) with a scratch directory.
fn run_program(name: &str, source: &str, lang: Lang, link: Link, with_scratch: bool) {
    let e = env();
    let dir = e.work.join(name);
    std::fs::create_dir_all(&dir).expect("create test dir");
    let exe = dir.join(name);
    if !compile(e, source, &exe, lang, link) {
        return;
    }
    if !e.valgrind && !e.no_valgrind {
        support::tool_missing(
            "valgrind",
            "apt-get install valgrind, or set UMBRA_TEST_NO_VALGRIND=1 to run without it",
        );
    }
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).expect("create scratch dir");
    let mut cmd = if e.valgrind {
        let mut c = Command::new("valgrind");
        c.args(VALGRIND).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    if with_scratch {
        cmd.arg(&scratch);
    }
    let started = Instant::now();
    let out = run_limited(cmd, name);
    check_output(&out, name);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if e.valgrind {
        let summary = stderr
            .lines()
            .filter(|l| l.contains("ERROR SUMMARY") || l.contains("definitely lost"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            stderr.contains("ERROR SUMMARY: 0 errors"),
            "{name}: valgrind reported errors:\n{stderr}"
        );
        println!(
            "{name}: valgrind clean in {:?}\n{summary}",
            started.elapsed()
        );
    } else {
        println!("{name}: ran without valgrind in {:?}", started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_volumes_and_snapshots() {
    run_program("volume", "volume.c", Lang::C, Link::Shared, true);
}

#[test]
fn c_masking_access_denial_and_fast_recovery() {
    run_program("array", "array.c", Lang::C, Link::Shared, true);
}

#[test]
fn c_masking_and_fast_recovery_linked_statically() {
    run_program("array_static", "array.c", Lang::C, Link::Static, true);
}

#[test]
fn c_bad_input() {
    run_program("errors", "errors.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_four_writers_and_a_snapshotter() {
    run_program("threads", "threads.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_lun_handles_and_fenced_mask_changes() {
    run_program("lun_io", "lun_io.c", Lang::C, Link::Shared, true);
}

#[test]
fn c_volatile_luns_survive_a_reopen_and_refuse_snapshots() {
    run_program("volatile", "volatile.c", Lang::C, Link::Shared, true);
}

#[test]
fn c_freeze_snapshot_sets_metadata_and_stats() {
    run_program("protocol", "protocol.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_shadow_copy_writers_sessions_and_fast_recovery() {
    run_program("vss", "vss.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_restore_sessions_revert_and_resync() {
    run_program("vss_restore", "vss_restore.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_deprecated_aliases_still_work() {
    run_program("aliases", "aliases.c", Lang::C, Link::Shared, true);
}

#[test]
fn c_contract_signatures_are_exact() {
    run_program("contract", "contract.c", Lang::C, Link::Shared, false);
}

#[test]
fn c_header_included_twice() {
    run_program(
        "double_include",
        "double_include.c",
        Lang::C,
        Link::Shared,
        false,
    );
}

#[test]
fn cxx17_program_uses_the_header() {
    run_program("cpp_smoke", "cpp_smoke.cpp", Lang::Cxx, Link::Shared, false);
}

/// The shared library's SONAME carries the ABI major only.
#[test]
#[cfg(target_os = "linux")]
fn shared_library_soname_is_the_abi_major() {
    let e = env();
    if !tool_works("readelf", "--version") {
        support::tool_missing("readelf", "apt-get install binutils");
        return;
    }
    let out = Command::new("readelf")
        .arg("-d")
        .arg(e.libdir.join("libumbra.so"))
        .output()
        .expect("run readelf");
    check_output(&out, "readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let major = umbra::umbra_abi_version() >> 16;
    let want = format!("Library soname: [libumbra.so.{major}]");
    assert!(text.contains(&want), "expected {want:?} in:\n{text}");
}
