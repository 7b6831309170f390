//! The nbdkit plugin of `ffi/examples/nbdkit-umbra/` (C over `include/umbra.h` only), built the way
//! its README says (`make` against a `make install`ed libumbra found by pkg-config, gcc with
//! `-Wall -Wextra -Werror`) and served by the distribution's nbdkit to real clients: nbdinfo,
//! qemu-img, qemu-io and nbdcopy. Pools are made and read back through the C ABI (the ffi crate's
//! functions called from Rust); every expectation comes from a model of the LUN's bytes and of the
//! blocks written, kept by the test.
//!
//! nbdkit runs captive (`nbdkit -U - ... --run CMD`): it listens, runs the client command with
//! `$uri` set, and exits with the command's status when it ends, so no test waits on a socket.
//! Requests with flags no command-line client sends (WRITE_ZEROES with NO_HOLE and FAST_ZERO, reads
//! over the advertised maximum) come from a python script on libnbd (`/usr/bin/python3`, the
//! distribution's, with python3-libnbd).
//!
//! Needs make, pkg-config, gcc (`CC`), nbdkit with `nbdkit-plugin.h` and its log filter, nbdinfo,
//! nbdcopy, qemu-img, qemu-io, readelf and python3-libnbd: without one the tests print that they
//! skipped, and fail when `CI` is set.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::ptr;
use std::sync::OnceLock;

use support::{c, ok};
use umbra::*;

const INI: &str = "iqn.2026-12.org.umbra.test:plugin";
const OTHER: &str = "iqn.2026-12.org.umbra.test:other";
const MIB: usize = 1 << 20;
const LUN_SIZE: usize = 8 * MIB;
const BLOCK: usize = 4096;

// ---- the C ABI, from Rust ----

/// An open pool (`umbra_array`), freed (and so released) on drop.
struct Pool(*mut umbra_array);

impl Pool {
    fn open(dir: &Path) -> Pool {
        let mut a = ptr::null_mut();
        let d = c(dir.to_str().expect("UTF-8 path"));
        // SAFETY: a valid C string and a writable out-pointer.
        ok(unsafe { umbra_array_open(d.as_ptr(), &mut a) });
        Pool(a)
    }

    fn create_lun(&self, name: &str, mask: &str) {
        self.create_lun_sized(name, LUN_SIZE, mask);
    }

    fn create_lun_sized(&self, name: &str, size: usize, mask: &str) {
        // SAFETY: a live handle and valid C strings.
        ok(unsafe { umbra_lun_create(self.0, c(name).as_ptr(), size as u64, c(mask).as_ptr()) });
    }

    /// Makes `INI` see LUN `name` at host LUN `number`.
    fn set_number(&self, name: &str, number: u32) {
        // SAFETY: a live handle and valid C strings.
        ok(unsafe { umbra_lun_set_host_number(self.0, c(name).as_ptr(), c(INI).as_ptr(), number) });
    }

    fn set_mask(&self, name: &str, mask: &str) {
        // SAFETY: a live handle and valid C strings.
        ok(unsafe { umbra_lun_set_mask(self.0, c(name).as_ptr(), c(mask).as_ptr()) });
    }

    fn write(&self, name: &str, offset: usize, data: &[u8]) {
        // SAFETY: a live handle, valid C strings, `data.len()` readable bytes.
        ok(unsafe {
            umbra_lun_write(
                self.0,
                c(name).as_ptr(),
                c(INI).as_ptr(),
                offset as u64,
                data.as_ptr(),
                data.len(),
            )
        });
    }

    /// The whole LUN (of `LUN_SIZE`), read as `INI`.
    fn read_all(&self, name: &str) -> Vec<u8> {
        self.read(name, 0, LUN_SIZE)
    }

    /// `len` bytes at `offset` of LUN `name`, read as `INI`.
    fn read(&self, name: &str, offset: usize, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        // SAFETY: a live handle, valid C strings, `buf.len()` writable bytes.
        ok(unsafe {
            umbra_lun_read(
                self.0,
                c(name).as_ptr(),
                c(INI).as_ptr(),
                offset as u64,
                buf.as_mut_ptr(),
                buf.len(),
            )
        });
        buf
    }

    /// A one-LUN snapshot set: shadow LUN `shadow` of `source`, masked to no one.
    fn shadow(&self, source: &str, shadow: &str) {
        let (s, n) = (c(source), c(shadow));
        let (sources, names) = ([s.as_ptr()], [n.as_ptr()]);
        let mut set = [0 as std::ffi::c_char; UMBRA_SET_NAME_MAX];
        // SAFETY: one source and one name (valid C strings), no metadata, a set buffer of
        // UMBRA_SET_NAME_MAX bytes.
        ok(unsafe {
            umbra_array_create_snapshot_set(
                self.0,
                sources.as_ptr(),
                names.as_ptr(),
                1,
                ptr::null(),
                set.as_mut_ptr(),
                set.len(),
            )
        });
    }

    fn break_shadow(&self, shadow: &str) {
        // SAFETY: a live handle and a valid C string.
        ok(unsafe { umbra_lun_break_shadow(self.0, c(shadow).as_ptr()) });
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the handle is live and not used after this.
        unsafe { umbra_array_free(self.0) };
    }
}

// ---- the model: a LUN's bytes and the blocks that may hold data ----

#[derive(Clone)]
struct Model {
    bytes: Vec<u8>,
    allocated: BTreeSet<usize>,
}

impl Model {
    fn new() -> Model {
        Model {
            bytes: vec![0; LUN_SIZE],
            allocated: BTreeSet::new(),
        }
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
        self.allocated
            .extend(offset / BLOCK..(offset + data.len()).div_ceil(BLOCK));
    }

    /// Zeros written as data (WRITE_ZEROES with NO_HOLE): the blocks are allocated.
    fn zero_data(&mut self, offset: usize, len: usize) {
        self.write(offset, &vec![0; len]);
    }

    /// Zeros written allowing holes, or discarded: the whole blocks of the range are released.
    fn zero(&mut self, offset: usize, len: usize) {
        self.bytes[offset..offset + len].fill(0);
        for b in offset.div_ceil(BLOCK)..(offset + len) / BLOCK {
            self.allocated.remove(&b);
        }
    }

    /// The map nbdinfo should print: (offset, length, data) with holes between, merged.
    fn map(&self) -> Vec<(usize, usize, bool)> {
        let mut out: Vec<(usize, usize, bool)> = Vec::new();
        for b in 0..LUN_SIZE / BLOCK {
            let data = self.allocated.contains(&b);
            match out.last_mut() {
                Some((o, l, d)) if *d == data && *o + *l == b * BLOCK => *l += BLOCK,
                _ => out.push((b * BLOCK, BLOCK, data)),
            }
        }
        out
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add((i % 251) as u8) | 1)
        .collect()
}

// ---- building the plugin ----

struct Env {
    plugin: PathBuf,
    /// Scratch space of this test process (pools, copies).
    work: PathBuf,
}

fn tools_present() -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    for (tool, arg, hint) in [
        ("make", "--version", "apt-get install make"),
        ("pkg-config", "--version", "apt-get install pkg-config"),
        (cc.as_str(), "--version", "set CC, or apt-get install gcc"),
        (
            "nbdkit",
            "--version",
            "apt-get install nbdkit nbdkit-plugin-dev",
        ),
        ("nbdinfo", "--version", "apt-get install libnbd-bin"),
        ("nbdcopy", "--version", "apt-get install libnbd-bin"),
        ("qemu-img", "--version", "apt-get install qemu-utils"),
        ("qemu-io", "--version", "apt-get install qemu-utils"),
    ] {
        let works = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !works {
            support::tool_missing(tool, hint);
            return false;
        }
    }
    if !Path::new("/usr/include/nbdkit-plugin.h").is_file()
        && !Command::new("pkg-config")
            .args(["--exists", "nbdkit"])
            .status()
            .is_ok_and(|s| s.success())
    {
        support::tool_missing("nbdkit-plugin.h", "apt-get install nbdkit-plugin-dev");
        return false;
    }
    true
}

/// `make install` of this run's libumbra into a scratch prefix, then the plugin's `make` against
/// it with pkg-config (RPATH=1: the plugin finds that libumbra.so without LD_LIBRARY_PATH).
fn build() -> Option<Env> {
    if !tools_present() {
        return None;
    }
    let Some(built) = support::built_by_this_run() else {
        support::tool_missing(
            "libumbra of this test run",
            "run through cargo test, which builds the cdylib next to the test executable",
        );
        return None;
    };
    let ffi = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nbdkit-plugin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("create scratch dir");
    let prefix = work.join("prefix");
    let mut install = Command::new("make");
    install
        .current_dir(ffi.join(".."))
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("PREBUILT={}", built.display()));
    for var in [
        "DESTDIR",
        "LIBDIR",
        "INCLUDEDIR",
        "PKGCONFIGDIR",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        install.env_remove(var);
    }
    support::assert_success(&install.output().expect("run make install"), "make install");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    let out = Command::new("make")
        .current_dir(ffi.join("examples/nbdkit-umbra"))
        .arg(format!("OUT={}", work.display()))
        .arg(format!("CC={cc}"))
        .arg("RPATH=1")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env_remove("MAKEFLAGS")
        .output()
        .expect("run make");
    support::assert_success(&out, "make (the plugin)");
    let diag = String::from_utf8_lossy(&out.stderr);
    assert!(
        diag.contains("-Wall") && diag.contains("-Werror") && !diag.contains("warning"),
        "the plugin must build with -Wall -Werror and no warning:\n{diag}"
    );
    let plugin = work.join("nbdkit-umbra.so");
    assert!(plugin.is_file(), "make built no {}", plugin.display());
    Some(Env { plugin, work })
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(build).as_ref()
}

/// A new pool directory of this test.
fn pool_dir(e: &Env, name: &str) -> PathBuf {
    let dir = e.work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs nbdkit captive with the plugin serving `lun` of `pool` as `initiator`, and `run` (a
/// shell command line: `$uri` is the export, `$OUT` a scratch file) as its client. Returns
/// nbdkit's output (the client's stdout included) whatever the exit status.
fn nbdkit(e: &Env, pool: &Path, initiator: &str, lun: &str, run: &str) -> Output {
    nbdkit_with(e, pool, initiator, lun, &[], &[], run)
}

/// [`nbdkit`] with `before` nbdkit's arguments before the plugin (filters) and `after` the
/// plugin's (filter parameters).
fn nbdkit_with(
    e: &Env,
    pool: &Path,
    initiator: &str,
    lun: &str,
    before: &[&str],
    after: &[String],
    run: &str,
) -> Output {
    let out_file = e.work.join(format!(
        "out-{}-{}",
        pool.file_name().unwrap().to_string_lossy(),
        lun
    ));
    let _ = std::fs::remove_file(&out_file);
    Command::new("nbdkit")
        .args(["-U", "-"])
        .args(before)
        .arg(&e.plugin)
        .arg(format!("pool={}", pool.display()))
        .arg(format!("initiator={initiator}"))
        .arg(format!("lun={lun}"))
        .args(after)
        .arg("--run")
        .arg(run)
        .env("OUT", &out_file)
        .output()
        .expect("run nbdkit")
}

fn served(e: &Env, pool: &Path, lun: &str, run: &str) -> String {
    let out = nbdkit(e, pool, INI, lun, run);
    support::assert_success(&out, &format!("nbdkit lun={lun} --run {run:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nbdinfo --json` of the export: its one export's object.
fn info(e: &Env, pool: &Path, lun: &str) -> serde_json::Value {
    let text = served(e, pool, lun, r#"nbdinfo --json "$uri""#);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("nbdinfo --json: {err}: {text}"));
    v["exports"][0].clone()
}

/// `nbdinfo --map --json`: (offset, length, data) per extent.
fn map(e: &Env, pool: &Path, lun: &str) -> Vec<(usize, usize, bool)> {
    let text = served(e, pool, lun, r#"nbdinfo --map --json "$uri""#);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("nbdinfo --map: {err}: {text}"));
    v.as_array()
        .expect("a list of extents")
        .iter()
        .map(|x| {
            let t = x["type"].as_u64().expect("type");
            assert!(
                t == 0 || t == 3,
                "extent type {t} (want 0 data or 3 hole,zero)"
            );
            (
                x["offset"].as_u64().unwrap() as usize,
                x["length"].as_u64().unwrap() as usize,
                t == 0,
            )
        })
        .collect()
}

/// The export's bytes, copied out by `tool` (`qemu-img convert` or `nbdcopy`) into `$OUT`.
fn copy_out(e: &Env, pool: &Path, lun: &str, tool: &str) -> Vec<u8> {
    let cmd = match tool {
        "qemu-img" => r#"qemu-img convert -f raw -O raw "$uri" "$OUT" && cat "$OUT""#,
        "nbdcopy" => r#"nbdcopy --connections=4 --requests=16 "$uri" "$OUT" && cat "$OUT""#,
        _ => unreachable!(),
    };
    let out = nbdkit(e, pool, INI, lun, cmd);
    support::assert_success(&out, &format!("{tool} of lun={lun}"));
    out.stdout
}

#[track_caller]
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i}: {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}

#[test]
fn plugin_serves_a_lun_to_nbdinfo_qemu_img_qemu_io_and_nbdcopy() {
    let Some(e) = env() else { return };
    let dir = pool_dir(e, "serve");
    let mut model = Model::new();
    {
        let pool = Pool::open(&dir);
        pool.create_lun("disk", INI); // INI sees it at host LUN number 0
        pool.create_lun("elsewhere", OTHER);
        for (off, seed, len) in [(MIB, 1u8, 64 << 10), (5 * MIB + 512, 2, 3000), (0, 3, 4096)] {
            let data = pattern(seed, len);
            pool.write("disk", off, &data);
            model.write(off, &data);
        }
    }

    // nbdinfo: the size, the LUN's name as description, the flags of a read-write LUN.
    let x = info(e, &dir, "0");
    assert_eq!(x["export-size"], LUN_SIZE as u64, "{x}");
    assert_eq!(x["description"], "disk", "{x}");
    assert_eq!(x["is_read_only"], false, "{x}");
    for flag in [
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_fast_zero",
        "can_multi_conn",
    ] {
        assert_eq!(x[flag], true, "{flag}: {x}");
    }
    assert_eq!(x["block_size_minimum"], 1, "{x}");
    assert_eq!(x["block_size_preferred"], BLOCK as u64, "{x}");
    assert_eq!(x["block_size_maximum"], 32 * MIB as u64, "{x}");
    assert!(
        x["contexts"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "base:allocation")),
        "{x}"
    );

    // The map: data exactly on the blocks written, holes elsewhere. By name too.
    assert_eq!(map(e, &dir, "0"), model.map());
    assert_eq!(map(e, &dir, "disk"), model.map());

    // qemu-img convert of the export is the LUN's bytes.
    assert_same(
        &copy_out(e, &dir, "0", "qemu-img"),
        &model.bytes,
        "qemu-img convert",
    );

    // qemu-io writes (plain, FUA, write-zeroes allowing holes and not, discard with unmap on,
    // flush), then the pool, read through the C ABI, holds them.
    // qemu-io's -P fills with one byte value.
    model.write(12288, &[7; 8192]);
    model.write(4 * MIB - 4096, &[8; 4096]);
    model.zero(MIB + 4096, 8192); // write -z -u (may unmap) inside the first write
    model.zero_data(MIB + 16384, 4096); // write -z (NO_HOLE) inside it: zeros as data
    model.zero(MIB + 32768, 4096); // discard inside it too
    let io = format!(
        "qemu-io -f raw -d unmap -c 'write -P 7 12288 8192' -c 'write -f -P 8 {} 4096' \
         -c 'write -z -u {} 8192' -c 'write -z {} 4096' -c 'discard {} 4096' -c 'flush' \"$uri\"",
        4 * MIB - 4096,
        MIB + 4096,
        MIB + 16384,
        MIB + 32768
    );
    let text = served(e, &dir, "0", &io);
    assert!(
        text.contains("wrote 8192/8192 bytes at offset 12288"),
        "{text}"
    );
    assert!(text.contains("discard 4096/4096 bytes"), "{text}");
    {
        let pool = Pool::open(&dir);
        assert_same(
            &pool.read_all("disk"),
            &model.bytes,
            "read back through the C ABI",
        );
    }
    // Zeroed and discarded blocks are holes again.
    assert_eq!(map(e, &dir, "disk"), model.map());

    // nbdcopy: four connections (multi-conn), many requests in flight on the parallel plugin.
    assert_same(
        &copy_out(e, &dir, "disk", "nbdcopy"),
        &model.bytes,
        "nbdcopy",
    );
}

#[test]
fn plugin_serves_shadows_and_read_only_access_read_only() {
    let Some(e) = env() else { return };
    let dir = pool_dir(e, "shadow");
    let mut before = Model::new();
    let mut after;
    let ro = pattern(9, 2 * BLOCK);
    {
        let pool = Pool::open(&dir);
        pool.create_lun("disk", INI);
        pool.create_lun("ro", &format!("{INI}=ro"));
        let data = pattern(4, 40960);
        pool.write("disk", 8192, &data);
        before.write(8192, &data);
        pool.set_mask("ro", INI); // written as INI, then demoted to read-only
        pool.write("ro", 0, &ro);
        pool.set_mask("ro", &format!("{INI}=ro"));
        // The hardware shadow: a snapshot set of disk, then disk moves on.
        pool.shadow("disk", "disk-shadow");
        after = before.clone();
        for (off, seed) in [(8192usize, 5u8), (6 * MIB, 6)] {
            let data = pattern(seed, 3 * BLOCK);
            pool.write("disk", off, &data);
            after.write(off, &data);
        }
        // Masked to no one, the shadow cannot be served ...
        drop(pool);
        let out = nbdkit(e, &dir, INI, "disk-shadow", "true");
        assert!(
            !out.status.success(),
            "a shadow masked to no one was served"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("LUN 'disk-shadow' is masked from initiator"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // ... until it is exposed to the initiator (read-write in its mask: still read-only).
        Pool::open(&dir).set_mask("disk-shadow", INI);
    }

    let x = info(e, &dir, "disk-shadow");
    assert_eq!(x["description"], "disk-shadow", "{x}");
    assert_eq!(
        x["is_read_only"], true,
        "an unbroken shadow is read-only: {x}"
    );
    // The shadow is the point-in-time image, through both copiers, while the LUN moved on.
    assert_same(
        &copy_out(e, &dir, "disk-shadow", "nbdcopy"),
        &before.bytes,
        "nbdcopy of the shadow",
    );
    assert_same(
        &copy_out(e, &dir, "disk-shadow", "qemu-img"),
        &before.bytes,
        "qemu-img convert of the shadow",
    );
    assert_same(
        &copy_out(e, &dir, "disk", "qemu-img"),
        &after.bytes,
        "the LUN",
    );
    // The shadow's map: every block it holds data on is a data extent; holes read as zeros
    // (a shadow may also count blocks its source preserved for it).
    let got = map(e, &dir, "disk-shadow");
    for (off, len, data) in &got {
        if !data {
            assert!(
                before.bytes[*off..off + len].iter().all(|&b| b == 0),
                "hole at {off}+{len} holds data"
            );
        } else {
            assert_eq!(off % BLOCK, 0, "{got:?}");
        }
    }
    for b in &before.allocated {
        assert!(
            got.iter()
                .any(|(o, l, d)| *d && *o <= b * BLOCK && b * BLOCK < o + l),
            "block {b} written before the shadow is not in its map {got:?}"
        );
    }

    // Read-only access: exported read-only, and a write is refused, nothing written.
    let x = info(e, &dir, "ro");
    assert_eq!(x["is_read_only"], true, "{x}");
    let out = nbdkit(
        e,
        &dir,
        INI,
        "ro",
        r#"qemu-io -f raw -c 'write -P 1 0 4096' "$uri""#,
    );
    assert!(
        !out.status.success(),
        "a write to a read-only LUN succeeded"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("Permission denied"), "{all}");
    {
        let pool = Pool::open(&dir);
        assert_same(&pool.read_all("ro")[..ro.len()], &ro, "the read-only LUN");
        // Broken out of its set, the shadow is an ordinary read-write LUN.
        pool.break_shadow("disk-shadow");
    }
    let x = info(e, &dir, "disk-shadow");
    assert_eq!(x["is_read_only"], false, "a broken shadow is writable: {x}");
    served(
        e,
        &dir,
        "disk-shadow",
        r#"qemu-io -f raw -c 'write -P 3 0 4096' "$uri""#,
    );
    let pool = Pool::open(&dir);
    let got = pool.read_all("disk-shadow");
    assert!(
        got[..4096].iter().all(|&b| b == 3),
        "the write to the broken shadow"
    );
    assert_same(
        &got[4096..],
        &before.bytes[4096..],
        "the rest of the shadow",
    );
}

#[test]
fn plugin_refuses_what_the_initiator_does_not_see_and_bad_configuration() {
    let Some(e) = env() else { return };
    let dir = pool_dir(e, "refuse");
    {
        let pool = Pool::open(&dir);
        pool.create_lun("mine", INI);
        pool.create_lun("hidden", OTHER);
    }
    let marker = e.work.join("refuse-ran");
    let run = format!("touch {}", marker.display());
    let refused = |initiator: &str, lun: &str, pool: &Path, want: &[&str]| {
        let out = nbdkit(e, pool, initiator, lun, &run);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "nbdkit served lun={lun} as {initiator}: {stderr}"
        );
        assert!(!marker.exists(), "the client ran for lun={lun}");
        for w in want {
            assert!(stderr.contains(w), "lun={lun}: no {w:?} in:\n{stderr}");
        }
    };
    // A LUN masked from the initiator, by number and by name; an unknown LUN; another initiator.
    refused(
        INI,
        "1",
        &dir,
        &["initiator iqn.2026-12.org.umbra.test:plugin sees no LUN at host LUN number 1"],
    );
    refused(
        INI,
        "hidden",
        &dir,
        &["LUN 'hidden' is masked from initiator iqn.2026-12.org.umbra.test:plugin"],
    );
    refused(INI, "nosuch", &dir, &["UMBRA_E_NOT_FOUND", "nosuch"]);
    refused(
        "iqn.2026-12.org.umbra.test:third",
        "0",
        &dir,
        &["sees no LUN at host LUN number 0"],
    );
    refused(
        "not-an-initiator",
        "mine",
        &dir,
        &["UMBRA_E_INVALID_INITIATOR"],
    );
    // No pool there: never created.
    let missing = e.work.join("no-such-pool");
    refused(INI, "0", &missing, &["opening pool", "UMBRA_E_NOT_FOUND"]);
    assert!(!missing.exists(), "the plugin created a pool");
    // The pool open elsewhere (this process holds it).
    {
        let _held = Pool::open(&dir);
        refused(INI, "0", &dir, &["UMBRA_E_BUSY"]);
    }
    // A parameter missing, or one the plugin does not know.
    let out = Command::new("nbdkit")
        .args(["-U", "-"])
        .arg(&e.plugin)
        .arg(format!("pool={}", dir.display()))
        .arg("lun=0")
        .args(["--run", &run])
        .output()
        .expect("run nbdkit");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pool, initiator and lun are all required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("nbdkit")
        .args(["-U", "-"])
        .arg(&e.plugin)
        .arg(format!("pool={}", dir.display()))
        .arg(format!("initiator={INI}"))
        .args(["lun=0", "colour=blue", "--run", &run])
        .output()
        .expect("run nbdkit");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown parameter 'colour'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists());
    // And the LUN it does see is served (the refusals above changed nothing).
    let x = info(e, &dir, "0");
    assert_eq!(x["description"], "mine", "{x}");
}

/// nbdkit under valgrind serving writes (FUA, zero with holes and without, trim, flush), block
/// status and a parallel multi-connection copy: no memory error, no leak in the plugin or
/// libumbra.
/// `UMBRA_TEST_NO_VALGRIND=1` skips it on purpose (as tests/c_programs.rs does).
#[test]
fn plugin_under_valgrind_has_no_memory_error_and_no_leak() {
    let Some(e) = env() else { return };
    if std::env::var_os("UMBRA_TEST_NO_VALGRIND").is_some() {
        println!("skipped: UMBRA_TEST_NO_VALGRIND is set");
        return;
    }
    if !Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        support::tool_missing("valgrind", "apt-get install valgrind");
        return;
    }
    let dir = pool_dir(e, "valgrind");
    let mut model = Model::new();
    {
        let pool = Pool::open(&dir);
        pool.create_lun("disk", INI);
        let data = pattern(11, 20000);
        pool.write("disk", 3 * MIB, &data);
        model.write(3 * MIB, &data);
    }
    model.write(8192, &[5; 8192]);
    model.zero(3 * MIB, 8192);
    model.zero(3 * MIB + 8192, 4096);
    model.zero_data(3 * MIB + 12288, 300_000);
    let copy = e.work.join("valgrind-copy");
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ])
        .args(["nbdkit", "-U", "-"])
        .arg(&e.plugin)
        .arg(format!("pool={}", dir.display()))
        .arg(format!("initiator={INI}"))
        .arg("lun=disk")
        .arg("--run")
        .arg(format!(
            "qemu-io -f raw -d unmap -c 'write -f -P 5 8192 8192' -c 'write -z -u {} 8192' \
             -c 'discard {} 4096' -c 'write -z -f {} 300000' -c flush \"$uri\" && \
             nbdinfo --map \"$uri\" && nbdcopy --connections=4 \"$uri\" {}",
            3 * MIB,
            3 * MIB + 8192,
            3 * MIB + 12288,
            copy.display()
        ))
        .output()
        .expect("run valgrind nbdkit");
    support::assert_success(&out, "nbdkit under valgrind");
    // Two processes report: the captive parent running the client command, and the server.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summaries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR SUMMARY:"))
        .collect();
    assert!(
        summaries.len() >= 2
            && summaries
                .iter()
                .all(|l| l.contains("ERROR SUMMARY: 0 errors")),
        "valgrind:\n{stderr}"
    );
    assert_same(
        &std::fs::read(&copy).expect("read the copy"),
        &model.bytes,
        "nbdcopy under valgrind",
    );
}

// ---- libnbd from python: requests with flags no command-line client sends ----

/// The distribution's python3, for which python3-libnbd installs the `nbd` module.
const PYTHON: &str = "/usr/bin/python3";

/// True if [`PYTHON`] imports libnbd's `nbd` module; else says so (a failure under `CI`).
fn libnbd_python() -> bool {
    let works = Command::new(PYTHON)
        .args(["-c", "import nbd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        support::tool_missing("python3 with libnbd", "apt-get install python3-libnbd");
    }
    works
}

/// Writes `body` after a prelude into a script file of this test and returns the `--run` command
/// running it on the export. The prelude connects `h` (strict mode off: the server, not
/// libnbd, judges every request) and defines `op(what, f, *args)`, which prints `what ok` or
/// `what ERRNO` (the error's symbolic name).
fn libnbd_script(e: &Env, name: &str, body: &str) -> String {
    let script = e.work.join(format!("{name}.py"));
    let text = format!(
        "import errno, sys, nbd\n\
         h = nbd.NBD()\n\
         h.set_strict_mode(0)\n\
         h.connect_uri(sys.argv[1])\n\
         def op(what, f, *args):\n\
         \x20   try:\n\
         \x20       f(*args)\n\
         \x20       print(what, 'ok')\n\
         \x20   except nbd.Error as err:\n\
         \x20       n = err.errno\n\
         \x20       print(what, n if isinstance(n, str) else errno.errorcode.get(n, n))\n\
         {body}\
         h.shutdown()\n"
    );
    std::fs::write(&script, text).expect("write the libnbd script");
    format!("{PYTHON} {} \"$uri\"", script.display())
}

/// WRITE_ZEROES as `umbra serve` answers it (docs/nbd.md): plain (holes allowed) releases the
/// range, `FAST_ZERO` too; `NO_HOLE` writes zeros as data (allocated, in several chunks, FUA too);
/// `NO_HOLE|FAST_ZERO` fails with `ENOTSUP` and changes nothing. On a read-only export every
/// zeroing is `EPERM` (the access first, as `umbra serve` answers).
#[test]
fn plugin_zero_honours_no_hole_and_fast_zero_as_umbra_serve_does() {
    let Some(e) = env() else { return };
    if !libnbd_python() {
        return;
    }
    let dir = pool_dir(e, "zero");
    let mut model = Model::new();
    {
        let pool = Pool::open(&dir);
        pool.create_lun("disk", INI);
        for (off, seed, len) in [(MIB, 1u8, 64 << 10), (4 * MIB, 2, MIB)] {
            let data = pattern(seed, len);
            pool.write("disk", off, &data);
            model.write(off, &data);
        }
    }
    let x = info(e, &dir, "disk");
    assert_eq!(x["can_zero"], true, "{x}");
    assert_eq!(x["can_fast_zero"], true, "{x}");

    // Over holes and over data, larger than the plugin's chunk and not a multiple of it.
    model.zero_data(8192, 3 * MIB + 4096);
    model.zero(4 * MIB + (128 << 10), 256 << 10);
    model.zero(4 * MIB + (512 << 10), 64 << 10);
    model.zero_data(6 * MIB + 100, 5000);
    let run = libnbd_script(
        e,
        "zero",
        &format!(
            "op('no-hole', h.zero, {}, 8192, nbd.CMD_FLAG_NO_HOLE)\n\
             op('no-hole-fast', h.zero, 65536, {}, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO)\n\
             op('plain', h.zero, {}, {})\n\
             op('fast', h.zero, 65536, {}, nbd.CMD_FLAG_FAST_ZERO)\n\
             op('no-hole-fua', h.zero, 5000, {}, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)\n",
            3 * MIB + 4096,
            4 * MIB,
            256 << 10,
            4 * MIB + (128 << 10),
            4 * MIB + (512 << 10),
            6 * MIB + 100,
        ),
    );
    let out = served(e, &dir, "disk", &run);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "no-hole ok",
            "no-hole-fast ENOTSUP",
            "plain ok",
            "fast ok",
            "no-hole-fua ok"
        ],
        "{out}"
    );
    // NO_HOLE: data extents of zeros; plain and FAST_ZERO: holes; NO_HOLE|FAST_ZERO: nothing.
    assert_eq!(map(e, &dir, "disk"), model.map());
    {
        let pool = Pool::open(&dir);
        assert_same(
            &pool.read_all("disk"),
            &model.bytes,
            "the LUN after zeroing",
        );
        pool.create_lun("ro", &format!("{INI}=ro"));
    }
    let run = libnbd_script(
        e,
        "zero-ro",
        "op('no-hole-fast', h.zero, 4096, 0, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO)\n\
         op('plain', h.zero, 4096, 0)\n",
    );
    let out = served(e, &dir, "ro", &run);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["no-hole-fast EPERM", "plain EPERM"],
        "{out}"
    );
}

/// `lun=` follows `umbra serve`'s export-name rule: a number is decimal without sign or leading
/// zeros, anything else a LUN name; a LUN named like a number is reached by its number only.
#[test]
fn plugin_lun_number_has_no_leading_zeros_as_umbra_serve_export_names() {
    let Some(e) = env() else { return };
    let dir = pool_dir(e, "naming");
    {
        let pool = Pool::open(&dir);
        pool.create_lun("disk", INI);
        pool.set_number("disk", 0);
        pool.create_lun("00", INI);
        pool.set_number("00", 5);
        pool.create_lun("7", INI);
        pool.set_number("7", 3);
    }
    for (lun, want) in [("00", "00"), ("0", "disk"), ("5", "00"), ("3", "7")] {
        let x = info(e, &dir, lun);
        assert_eq!(x["description"], want, "lun={lun}: {x}");
    }
    for (lun, want) in [
        (
            "7",
            "initiator iqn.2026-12.org.umbra.test:plugin sees no LUN at host LUN number 7",
        ),
        ("007", "UMBRA_E_NOT_FOUND"),
        ("+3", "LUN name \"+3\" must be"),
    ] {
        let out = nbdkit(e, &dir, INI, lun, "true");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "lun={lun} was served: {stderr}");
        assert!(
            stderr.contains(want),
            "lun={lun}: no {want:?} in:\n{stderr}"
        );
    }
}

/// The advertised block sizes are `umbra serve`'s (1, 4096, 32 MiB); a client honouring them
/// (qemu) splits a 33 MiB read and write into requests of at most 32 MiB (nbdkit's log filter
/// records each), and one that does not gets EINVAL (the plugin's EOVERFLOW without DF), the
/// write changing nothing.
#[test]
fn plugin_advertises_a_32_mib_maximum_and_refuses_larger_requests() {
    let Some(e) = env() else { return };
    if !libnbd_python() {
        return;
    }
    let dir = pool_dir(e, "maxsize");
    Pool::open(&dir).create_lun_sized("big", 40 * MIB, INI);
    let x = info(e, &dir, "big");
    assert_eq!(x["block_size_minimum"], 1, "{x}");
    assert_eq!(x["block_size_preferred"], BLOCK as u64, "{x}");
    assert_eq!(x["block_size_maximum"], 33554432, "{x}");

    let log = e.work.join("maxsize.log");
    let _ = std::fs::remove_file(&log);
    let out = nbdkit_with(
        e,
        &dir,
        INI,
        "big",
        &["--filter=log"],
        &[format!("logfile={}", log.display())],
        r#"qemu-io -f raw -c 'write -P 0x5a 0 33M' -c 'read -P 0x5a 0 33M' "$uri""#,
    );
    support::assert_success(&out, "qemu-io of 33 MiB");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("read 34603008/34603008 bytes at offset 0"),
        "{text}"
    );
    let log = std::fs::read_to_string(&log).expect("read nbdkit's log");
    for kind in [" Read ", " Write "] {
        let counts: Vec<u64> = log
            .lines()
            .filter(|l| l.contains(kind))
            .filter_map(|l| l.split("count=0x").nth(1))
            .map(|c| u64::from_str_radix(c.split(' ').next().unwrap(), 16).unwrap())
            .collect();
        assert!(
            counts.len() >= 2
                && counts.iter().all(|&c| c <= 32 * MIB as u64)
                && counts.iter().sum::<u64>() == 33 * MIB as u64,
            "{kind}requests {counts:?} in:\n{log}"
        );
    }

    let run = libnbd_script(
        e,
        "maxsize",
        &format!(
            "op('read-32M', h.pread, {m32}, 0)\n\
             op('read-33M', h.pread, {m33}, 0)\n\
             op('write-33M', h.pwrite, bytes([0x11]) * {m33}, 0)\n",
            m32 = 32 * MIB,
            m33 = 33 * MIB
        ),
    );
    let out = nbdkit(e, &dir, INI, "big", &run);
    support::assert_success(&out, "libnbd of 33 MiB");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["read-32M ok", "read-33M EINVAL", "write-33M EINVAL"],
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for what in ["read", "write"] {
        let want = format!(
            "{what} of 34603008 bytes at 0 of LUN 'big' is larger than the maximum block size \
             33554432"
        );
        assert!(stderr.contains(&want), "no {want:?} in:\n{stderr}");
    }
    let got = Pool::open(&dir).read("big", 0, 33 * MIB);
    assert!(
        got.iter().all(|&b| b == 0x5a),
        "the refused write changed the LUN"
    );
}

/// `make STATIC=1 OUT=DIR` with DIR not there yet: make creates it and links libumbra.a with
/// umbra.pc's `Libs.private` (`-Wl,-Bstatic $(pkg-config --static --libs umbra)`, as docs/abi.md
/// links statically); the plugin needs no libumbra.so, and nbdkit serves with it.
#[test]
fn plugin_builds_static_into_a_new_directory() {
    let Some(e) = env() else { return };
    let top = e.work.join("static");
    let _ = std::fs::remove_dir_all(&top);
    let out_dir = top.join("new/dir");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    let pc_dir = e.work.join("prefix/lib/pkgconfig");
    let out = Command::new("make")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/nbdkit-umbra"))
        .arg(format!("OUT={}", out_dir.display()))
        .arg(format!("CC={cc}"))
        .arg("STATIC=1")
        .env("PKG_CONFIG_PATH", &pc_dir)
        .env_remove("MAKEFLAGS")
        .output()
        .expect("run make");
    support::assert_success(&out, "make STATIC=1 OUT=<new directory>");
    let plugin = out_dir.join("nbdkit-umbra.so");
    assert!(plugin.is_file(), "make built no {}", plugin.display());

    // The link line: -Wl,-Bstatic, then every library of Libs.private.
    let diag = String::from_utf8_lossy(&out.stderr);
    let link = diag
        .lines()
        .find(|l| l.contains(" -shared "))
        .unwrap_or_else(|| panic!("no link line in:\n{diag}"));
    let pc = std::fs::read_to_string(pc_dir.join("umbra.pc")).expect("read umbra.pc");
    let private = pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .expect("umbra.pc has Libs.private");
    assert!(private.contains("-lgcc_s"), "{private}");
    assert!(link.contains("-Wl,-Bstatic"), "{link}");
    let after = &link[link.find("-Wl,-Bstatic").unwrap()..];
    for lib in private.split_whitespace() {
        assert!(
            after.split_whitespace().any(|w| w == lib),
            "{lib} of Libs.private is not on the link line {link}"
        );
    }
    let dynamic = Command::new("readelf")
        .args(["-d"])
        .arg(&plugin)
        .output()
        .expect("run readelf");
    support::assert_success(&dynamic, "readelf -d");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(dynamic.contains("(NEEDED)"), "{dynamic}");
    assert!(
        !dynamic.contains("libumbra"),
        "the static plugin needs libumbra:\n{dynamic}"
    );

    let dir = pool_dir(e, "static-pool");
    Pool::open(&dir).create_lun("disk", INI);
    let static_env = Env {
        plugin,
        work: e.work.clone(),
    };
    let x = info(&static_env, &dir, "0");
    assert_eq!(x["description"], "disk", "{x}");
}
