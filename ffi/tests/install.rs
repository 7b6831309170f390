//! `make install` of the top-level Makefile, run the way a C user runs it, and C programs built
//! against the installed tree with nothing but pkg-config: shared (found through
//! `LD_LIBRARY_PATH=<prefix>/lib` alone) and static (no libumbra.so needed at all).
//!
//! The install copies the libumbra cargo built for this test run (`make install PREBUILT=<dir>`), so
//! the test builds nothing in release mode. `UMBRA_TEST_INSTALL_RELEASE=1` runs the default
//! `make install` instead, which runs `cargo build --release -p umbra-ffi` (into a target directory
//! of its own under cargo's test scratch space: the test run holds the lock of the normal one).
//!
//! Needs make, pkg-config, a C compiler (`CC`, default gcc), readelf and ldd: without one the tests
//! print that they skipped, and fail when `CI` is set.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");
const MINOR: &str = env!("CARGO_PKG_VERSION_MINOR");
const CFLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace() -> PathBuf {
    ffi_dir().join("..")
}

/// The C compiler, once every tool the tests run is known to work (None: one is missing and the
/// test skips).
fn tools() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    for (tool, hint) in [
        ("make", "apt-get install make"),
        ("pkg-config", "apt-get install pkg-config"),
        (cc.as_str(), "set CC, or apt-get install gcc"),
        ("readelf", "apt-get install binutils"),
        ("ldd", "apt-get install libc-bin"),
    ] {
        let works = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !works {
            support::tool_missing(tool, hint);
            return None;
        }
    }
    Some(cc)
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    support::assert_success(&out, what);
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `make <args>` in the workspace root, with none of the Makefile's variables coming from this
/// process's environment.
fn make(args: &[String]) -> Command {
    let mut cmd = Command::new("make");
    cmd.current_dir(workspace()).args(args);
    for var in [
        "DESTDIR",
        "PREFIX",
        "LIBDIR",
        "INCLUDEDIR",
        "PKGCONFIGDIR",
        "PREBUILT",
        "INSTALL",
        "CARGO_TARGET_DIR",
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `make install PREFIX=<prefix>`: of this test run's libraries (PREBUILT), or, with
/// `UMBRA_TEST_INSTALL_RELEASE` set or those not found, the default release build. Returns the
/// directory the installed libraries came from.
fn make_install(prefix: &Path) -> PathBuf {
    let mut args = vec![
        "install".to_string(),
        format!("PREFIX={}", prefix.display()),
    ];
    let release = std::env::var_os("UMBRA_TEST_INSTALL_RELEASE").is_some();
    let (mut cmd, built) = match support::built_by_this_run().filter(|_| !release) {
        Some(dir) => {
            args.push(format!("PREBUILT={}", dir.display()));
            (make(&args), dir)
        }
        None => {
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install-release");
            let mut cmd = make(&args);
            cmd.env("CARGO_TARGET_DIR", &target);
            (cmd, target.join("release"))
        }
    };
    let started = Instant::now();
    run(&mut cmd, "make install");
    println!(
        "make install from {} took {:?}",
        built.display(),
        started.elapsed()
    );
    built
}

/// Checks a tree installed under `root` (`/`, or the DESTDIR): the library's real file (the one in
/// `built`) and its two links, the static library, the header identical to the repository's, and
/// the pkg-config file rendered for `prefix`, `lib` and `include`. Returns the pkg-config directory.
fn check_installed_tree(
    root: &Path,
    prefix: &str,
    lib: &str,
    include: &str,
    built: &Path,
) -> PathBuf {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let libdir = at(lib);
    let is_file = |p: &Path| {
        let meta = std::fs::symlink_metadata(p)
            .unwrap_or_else(|e| panic!("{} is not installed: {e}", p.display()));
        assert!(meta.is_file(), "{} is not a regular file", p.display());
        std::fs::read(p).expect("read installed file")
    };
    let real = libdir.join(format!("libumbra.so.{VERSION}"));
    assert!(
        is_file(&real) == std::fs::read(built.join("libumbra.so")).expect("read built .so"),
        "{} is not the built libumbra.so",
        real.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&real).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", real.display());
    }
    let link = |name: String, to: String| {
        let target = std::fs::read_link(libdir.join(&name))
            .unwrap_or_else(|e| panic!("{name} is not a symlink: {e}"));
        assert_eq!(target, Path::new(&to), "{name} points elsewhere");
    };
    link(
        format!("libumbra.so.{MAJOR}"),
        format!("libumbra.so.{VERSION}"),
    );
    link("libumbra.so".to_string(), format!("libumbra.so.{MAJOR}"));
    assert!(
        is_file(&libdir.join("libumbra.a"))
            == std::fs::read(built.join("libumbra.a")).expect("read built .a"),
        "the installed libumbra.a is not the built one"
    );
    assert!(
        is_file(&at(include).join("umbra.h"))
            == std::fs::read(workspace().join("include/umbra.h")).expect("read header"),
        "the installed umbra.h differs from include/umbra.h"
    );
    // The SONAME the programs will ask for is the link the install made.
    let dynamic = run(
        Command::new("readelf").arg("-d").arg(&real),
        "readelf -d libumbra.so",
    );
    let want = format!("Library soname: [libumbra.so.{MAJOR}]");
    assert!(stdout(&dynamic).contains(&want), "no {want} in readelf -d");

    let pcdir = libdir.join("pkgconfig");
    let pc = String::from_utf8(is_file(&pcdir.join("umbra.pc"))).expect("umbra.pc is UTF-8");
    assert!(
        !pc.contains('@') && !pc.contains("##"),
        "umbra.pc kept template text:\n{pc}"
    );
    for line in [
        format!("prefix={prefix}"),
        format!("libdir={lib}"),
        format!("includedir={include}"),
        format!("Version: {VERSION}"),
    ] {
        assert!(
            pc.lines().any(|l| l == line),
            "umbra.pc lacks {line:?}:\n{pc}"
        );
    }
    pcdir
}

/// `pkg-config <args> umbra`, finding only the pkg-config files in `pcdir`.
fn pkg_config(pcdir: &Path, args: &[&str]) -> Output {
    Command::new("pkg-config")
        .args(args)
        .arg("umbra")
        .env("PKG_CONFIG_PATH", pcdir)
        .env("PKG_CONFIG_LIBDIR", pcdir)
        .env_remove("PKG_CONFIG_SYSROOT_DIR")
        .output()
        .expect("run pkg-config")
}

/// The files (not directories) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = e.path();
            if e.file_type().expect("file type").is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The NEEDED entries and whether there is an RPATH or RUNPATH, from `readelf -d`.
fn dynamic_section(exe: &Path) -> (Vec<String>, bool) {
    let text = stdout(&run(
        Command::new("readelf").arg("-d").arg(exe),
        "readelf -d",
    ));
    let needed = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect();
    let rpath = text.contains("(RPATH)") || text.contains("(RUNPATH)");
    (needed, rpath)
}

/// Compiles `tests/c/<source>` with `pkg-config --cflags --libs [--static] umbra` only, as
/// docs/abi.md says: static links put `-Wl,-Bstatic` in front.
fn compile(cc: &str, pcdir: &Path, source: &str, exe: &Path, static_link: bool) {
    let mut args = vec!["--cflags", "--libs"];
    if static_link {
        args.push("--static");
    }
    let flags = pkg_config(pcdir, &args);
    assert!(
        flags.status.success(),
        "pkg-config {args:?} umbra failed: {}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = stdout(&flags);
    let mut cmd = Command::new(cc);
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(ffi_dir().join("tests/c"))
        .arg("-o")
        .arg(exe)
        .arg(ffi_dir().join("tests/c").join(source));
    if static_link {
        cmd.arg("-Wl,-Bstatic");
    }
    cmd.args(flags.split_whitespace())
        .env_remove("LIBRARY_PATH")
        .env_remove("CPATH")
        .env_remove("C_INCLUDE_PATH");
    run(
        &mut cmd,
        &format!("compiling {source} with `{}`", flags.trim()),
    );
}

/// Runs a program with `LD_LIBRARY_PATH` set to `libdir` only (or unset), and a new scratch
/// directory as its argument when asked, returning its stdout.
fn run_program(exe: &Path, libdir: Option<&Path>, scratch: bool) -> String {
    let mut cmd = Command::new(exe);
    if scratch {
        let mut dir = exe.as_os_str().to_owned();
        dir.push("-scratch");
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        cmd.arg(dir);
    }
    cmd.env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD");
    if let Some(dir) = libdir {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    stdout(&run(&mut cmd, &exe.display().to_string()))
}

#[test]
fn make_install_then_c_programs_build_with_pkg_config_shared_and_static() {
    let Some(cc) = tools() else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let prefix = tmp.path().join("prefix");
    let built = make_install(&prefix);
    let p = prefix.to_str().expect("UTF-8 temp path");
    let pcdir = check_installed_tree(
        Path::new("/"),
        p,
        &format!("{p}/lib"),
        &format!("{p}/include"),
        &built,
    );
    let libdir = prefix.join("lib");

    // The version, and what --atleast-version says about this minor and the next.
    let modversion = pkg_config(&pcdir, &["--modversion"]);
    assert_eq!(stdout(&modversion).trim(), VERSION);
    let next_minor = MINOR.parse::<u32>().expect("minor") + 1;
    for (version, ok) in [
        (format!("{MAJOR}.{MINOR}"), true),
        (VERSION.to_string(), true),
        (format!("{MAJOR}.{next_minor}"), false),
    ] {
        let out = pkg_config(&pcdir, &[&format!("--atleast-version={version}")]);
        assert_eq!(
            out.status.success(),
            ok,
            "pkg-config --atleast-version={version} umbra"
        );
    }
    let var = pkg_config(&pcdir, &["--variable=libdir"]);
    assert_eq!(stdout(&var).trim(), libdir.to_str().unwrap());

    for (source, want) in [
        (
            "installed.c",
            format!("libumbra {VERSION} ABI {MAJOR}.{MINOR}\n"),
        ),
        ("volume.c", "volume: ok\n".to_string()),
    ] {
        // volume.c takes a scratch directory for its file volumes.
        let scratch = source == "volume.c";

        // Shared: NEEDED libumbra.so.MAJOR, no rpath; the loader finds it through
        // LD_LIBRARY_PATH=<prefix>/lib and nothing else.
        let exe = tmp.path().join(format!("{source}-shared"));
        compile(&cc, &pcdir, source, &exe, false);
        let (needed, rpath) = dynamic_section(&exe);
        assert!(
            needed.contains(&format!("libumbra.so.{MAJOR}")),
            "{source}: NEEDED {needed:?}"
        );
        assert!(!rpath, "{source}: linked with an rpath");
        let ldd = run(
            Command::new("ldd")
                .arg(&exe)
                .env("LD_LIBRARY_PATH", &libdir)
                .env_remove("LD_PRELOAD"),
            "ldd",
        );
        let resolved = format!(
            "libumbra.so.{MAJOR} => {}/libumbra.so.{MAJOR} ",
            libdir.display()
        );
        assert!(
            stdout(&ldd).contains(&resolved),
            "{source}: ldd does not show {resolved:?}:\n{}",
            stdout(&ldd)
        );
        assert_eq!(run_program(&exe, Some(&libdir), scratch), want, "{source}");

        // Static: no libumbra in NEEDED; runs with no LD_LIBRARY_PATH at all.
        let exe = tmp.path().join(format!("{source}-static"));
        compile(&cc, &pcdir, source, &exe, true);
        let (needed, _) = dynamic_section(&exe);
        assert!(
            !needed.iter().any(|n| n.starts_with("libumbra")),
            "{source} linked statically still needs {needed:?}"
        );
        assert_eq!(run_program(&exe, None, scratch), want, "{source} (static)");
    }

    // make uninstall leaves no file behind.
    run(
        &mut make(&["uninstall".to_string(), format!("PREFIX={p}")]),
        "make uninstall",
    );
    let left = files_under(&prefix);
    assert!(left.is_empty(), "make uninstall left {left:?}");
    println!("install test took {:?}", started.elapsed());
}

/// DESTDIR stages the tree for a package (its files say PREFIX, not the staging directory),
/// LIBDIR and INCLUDEDIR move the pieces, the default build is `cargo build --release -p
/// umbra-ffi` taking the libraries from `$CARGO_TARGET_DIR/release`, and PREBUILT builds nothing.
#[test]
fn destdir_libdir_includedir_and_the_default_release_build() {
    let Some(_cc) = tools() else {
        return;
    };
    let Some(built) = support::built_by_this_run() else {
        println!("skipped: the libraries of this test run are not next to the test executable");
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    // A target directory whose release/ holds this run's libraries; CARGO=echo shows the build.
    let target = tmp.path().join("target");
    let release = target.join("release");
    std::fs::create_dir_all(&release).expect("create release dir");
    #[cfg(unix)]
    for lib in ["libumbra.so", "libumbra.a"] {
        std::os::unix::fs::symlink(built.join(lib), release.join(lib)).expect("symlink");
    }
    let stage = tmp.path().join("stage");
    let prefix = format!("/opt/umbra-install-test-{}", std::process::id());
    let vars = [
        format!("PREFIX={prefix}"),
        format!("LIBDIR={prefix}/lib64"),
        format!("INCLUDEDIR={prefix}/include/umbra1"),
        format!("DESTDIR={}", stage.display()),
        "CARGO=echo".to_string(),
    ];
    let with = |target: &str| {
        let mut args = vec![target.to_string()];
        args.extend(vars.iter().cloned());
        args
    };
    let out = run(
        make(&with("install")).env("CARGO_TARGET_DIR", &target),
        "make install DESTDIR=...",
    );
    assert_eq!(
        stdout(&out).trim(),
        "build --release -p umbra-ffi",
        "the default install builds release"
    );
    let pcdir = check_installed_tree(
        &stage,
        &prefix,
        &format!("{prefix}/lib64"),
        &format!("{prefix}/include/umbra1"),
        &release,
    );
    assert!(
        !Path::new(&prefix).exists(),
        "make install DESTDIR=... wrote outside DESTDIR"
    );
    let flags = pkg_config(&pcdir, &["--cflags", "--libs"]);
    assert_eq!(
        stdout(&flags).split_whitespace().collect::<Vec<_>>(),
        [
            format!("-I{prefix}/include/umbra1"),
            format!("-L{prefix}/lib64"),
            "-lumbra".to_string()
        ]
    );

    // PREBUILT: nothing is built.
    let mut args = with("all");
    args.push(format!("PREBUILT={}", built.display()));
    let out = run(&mut make(&args), "make all PREBUILT=...");
    assert_eq!(stdout(&out), "", "make all PREBUILT=... ran cargo");

    run(&mut make(&with("uninstall")), "make uninstall DESTDIR=...");
    let left = files_under(&stage);
    assert!(left.is_empty(), "make uninstall left {left:?}");
}
