//! The server against the distribution's NBD clients: nbdinfo, qemu-img, qemu-io, nbdcopy and
//! fio's nbd engine, each checked against the LUN's bytes read through vds-core (or a model).
//! A missing tool is a loud skip, a failure when `CI` is set.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;
use umbra_nbd::{Identity, Listener};
use vds_core::Access;

const MIB: u64 = 1 << 20;

/// `nbdinfo --json --list URI`: (export name, description, size, read-only) of each export,
/// sorted.
fn listed(uri: &str) -> Vec<(String, String, u64, bool)> {
    let out = run(Command::new("nbdinfo").args(["--json", "--list", uri]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut e: Vec<_> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["export-name"].as_str().unwrap().to_string(),
                e["description"].as_str().unwrap().to_string(),
                e["export-size"].as_u64().unwrap(),
                e["is_read_only"].as_bool().unwrap(),
            )
        })
        .collect();
    e.sort();
    e
}

#[test]
fn nbdinfo_lists_only_each_identitys_luns_by_number_with_names_and_read_only() {
    if !have("nbdinfo") {
        return;
    }
    let pool = Pool::new();
    let (a, b) = (
        ini("iqn.2026-01.org.example:a"),
        ini("iqn.2026-01.org.example:b"),
    );
    let db = pool.lun("db", 4 * MIB, &a, Access::ReadWrite);
    let logs = pool.lun("logs", MIB, &a, Access::ReadOnly);
    let other = pool.lun("other", 2 * MIB, &b, Access::ReadWrite);
    // One server, two listeners, two identities.
    let sa = serve(&pool.array, &a);
    let lb = sa
        .server
        .listen(
            Listener::Tcp(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
            Identity::Fixed(b.clone()),
        )
        .unwrap();
    let addr_b = lb.local_addr().tcp().unwrap();

    let mut want_a = vec![
        (db.to_string(), "db".to_string(), 4 * MIB, false),
        (logs.to_string(), "logs".to_string(), MIB, true),
    ];
    want_a.sort();
    assert_eq!(listed(&sa.uri("")), want_a);
    assert_eq!(
        listed(&format!("nbd://{addr_b}/")),
        vec![(other.to_string(), "other".to_string(), 2 * MIB, false)]
    );
    // Opening by LUN name reaches the same export; a LUN masked from the identity does not open.
    let out = run(Command::new("nbdinfo").args(["--json", &sa.uri("logs")]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exports"][0]["description"], "logs");
    assert_eq!(v["exports"][0]["is_read_only"], true);
    let denied = run_any(Command::new("nbdinfo").arg(sa.uri("other")));
    assert!(!denied.status.success());
}

#[test]
fn nbdinfo_map_has_holes_exactly_where_nothing_was_written() {
    if !have("nbdinfo") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let size = 8 * MIB;
    let n = pool.lun("db", size, &a, Access::ReadWrite);
    let bs = 4096u64;
    // Writes at odd offsets and lengths; the model is the set of blocks any byte landed in.
    let writes = [
        (0u64, 1u64),
        (5000, 10_000),
        (MIB + 17, 3 * 4096),
        (3 * MIB, MIB),
        (size - 1, 1),
    ];
    let mut model = BTreeSet::new();
    for (i, &(off, len)) in writes.iter().enumerate() {
        pool.array
            .write_at("db", &a, &pattern(len as usize, i as u64 + 1), off)
            .unwrap();
        for blk in off / bs..(off + len).div_ceil(bs) {
            model.insert(blk);
        }
    }
    let s = serve(&pool.array, &a);
    let out = run(Command::new("nbdinfo").args(["--map", "--json", &s.uri(&n.to_string())]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut at = 0;
    let mut data = BTreeSet::new();
    for e in v.as_array().unwrap() {
        let (off, len, ty) = (
            e["offset"].as_u64().unwrap(),
            e["length"].as_u64().unwrap(),
            e["type"].as_u64().unwrap(),
        );
        assert_eq!(off, at, "extents are consecutive");
        at += len;
        match ty {
            0 => {
                assert_eq!((off % bs, len % bs), (0, 0));
                data.extend(off / bs..(off + len) / bs);
            }
            3 => {}
            t => panic!("unexpected extent type {t}"),
        }
    }
    assert_eq!(at, size, "the map covers the export");
    assert_eq!(data, model);
}

#[test]
fn qemu_img_convert_and_compare_match_the_luns_bytes() {
    if !have("qemu-img") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", 6 * MIB, &a, Access::ReadWrite);
    pool.array
        .write_at("db", &a, &pattern(MIB as usize, 1), 123)
        .unwrap();
    pool.array
        .write_at("db", &a, &pattern(4096, 2), 5 * MIB)
        .unwrap();
    let s = serve(&pool.array, &a);
    let out = pool.dir.path().join("db.raw");
    let uri = s.uri(&n.to_string());
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw", &uri])
        .arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), pool.bytes("db", &a));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw", &uri])
        .arg(&out));
    // One byte changed on the LUN: compare sees it (exit status 1).
    pool.array.write_at("db", &a, b"!", 4 * MIB + 3).unwrap();
    let diff = run_any(
        Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "raw", &uri])
            .arg(&out),
    );
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

#[test]
fn qemu_io_writes_read_back_through_vds_core() {
    if !have("qemu-io") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", 4 * MIB, &a, Access::ReadWrite);
    let ro = pool.lun("ro", MIB, &a, Access::ReadOnly);
    let s = serve(&pool.array, &a);
    let mut model = vec![0u8; 4 * MIB as usize];
    let cmds = [
        (0x5au8, 12_345u64, 70_000u64),
        (0xa5, 2 * MIB - 1, 4097),
        (0x11, 0, 512),
    ];
    let mut args = vec!["-f".to_string(), "raw".to_string()];
    for (p, off, len) in cmds {
        args.push("-c".into());
        args.push(format!("write -P {p} {off} {len}"));
        model[off as usize..(off + len) as usize].fill(p);
    }
    args.push("-c".into());
    args.push("write -z 40960 8192".into()); // WRITE_ZEROES over part of the first write
    model[40960..40960 + 8192].fill(0);
    args.push("-c".into());
    args.push("flush".into());
    args.push(s.uri(&n.to_string()));
    run(Command::new("qemu-io").args(&args));
    assert_eq!(pool.bytes("db", &a), model);
    // Read-only export: qemu-io opening it read-write is refused; reading works.
    let w = run_any(Command::new("qemu-io").args([
        "-f",
        "raw",
        "-c",
        "write 0 512",
        &s.uri(&ro.to_string()),
    ]));
    assert!(!w.status.success());
    run(Command::new("qemu-io").args([
        "-r",
        "-f",
        "raw",
        "-c",
        "read -P 0 0 4096",
        &s.uri(&ro.to_string()),
    ]));
}

#[test]
fn nbdcopy_copies_an_export_out_and_in() {
    if !have("nbdcopy") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", 8 * MIB, &a, Access::ReadWrite);
    let m = pool.lun("copy", 8 * MIB, &a, Access::ReadWrite);
    pool.array
        .write_at("db", &a, &pattern(3 * MIB as usize, 9), MIB + 5)
        .unwrap();
    let s = serve(&pool.array, &a);
    let out = pool.dir.path().join("db.raw");
    run(Command::new("nbdcopy").arg(s.uri(&n.to_string())).arg(&out));
    let want = pool.bytes("db", &a);
    assert_eq!(std::fs::read(&out).unwrap(), want);
    // And back in, into another LUN (nbdcopy uses several connections: MULTI_CONN), by name.
    run(Command::new("nbdcopy").arg(&out).arg(s.uri("copy")));
    assert_eq!(pool.bytes("copy", &a), want);
    let _ = m;
}

/// fio's nbd engine: 4 KiB random writes over 16 MiB at depth 16 (each block once), then a
/// crc32c verify of every block.
fn fio_randwrite_verify(uri: &str) -> Command {
    let mut c = Command::new("fio");
    c.args([
        "--name=verify",
        "--ioengine=nbd",
        &format!("--uri={uri}"),
        "--rw=randwrite",
        "--bs=4k",
        "--size=16M",
        "--iodepth=16",
        "--verify=crc32c",
        "--do_verify=1",
        "--verify_fatal=1",
        // No verify state file in the working directory.
        "--verify_state_save=0",
    ]);
    c
}

#[test]
fn fio_randwrite_verifies_through_the_nbd_engine() {
    if !have("fio") {
        return;
    }
    let f = OneLun::new(16 * MIB);
    let (n, s) = (f.n, &f.s);
    let out = run(&mut fio_randwrite_verify(&s.uri(&n.to_string())));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("err= 0"), "{text}");
    // Every block was written (randwrite covers the file once), so none reads as a hole.
    let bytes = f.bytes();
    assert!(bytes.chunks(4096).all(|b| b.iter().any(|&x| x != 0)));
}

#[test]
fn nbdcopy_of_a_shadow_is_the_point_in_time_image() {
    if !have("nbdcopy") || !have("nbdinfo") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    pool.lun("db", 4 * MIB, &a, Access::ReadWrite);
    pool.array
        .write_at("db", &a, &pattern(MIB as usize, 5), 4096)
        .unwrap();
    let then = pool.bytes("db", &a);
    pool.array
        .snapshot_set(&[("db", "db-shadow")], &Default::default())
        .unwrap();
    // The shadow is masked to no one until exposed to a host; read-only whatever the grant.
    pool.array
        .add_to_mask(
            "db-shadow",
            &vds_core::MaskSpec::host(a.clone(), Access::ReadWrite),
        )
        .unwrap();
    let n = pool.number("db-shadow", &a);
    pool.array
        .write_at("db", &a, &pattern(2 * MIB as usize, 6), 0)
        .unwrap();
    let s = serve(&pool.array, &a);
    let info = run(Command::new("nbdinfo").args(["--json", &s.uri(&n.to_string())]));
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["exports"][0]["is_read_only"], true);
    assert_eq!(v["exports"][0]["description"], "db-shadow");
    let out = pool.dir.path().join("shadow.raw");
    run(Command::new("nbdcopy").arg(s.uri(&n.to_string())).arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), then);
    assert_ne!(pool.bytes("db", &a), then);
}

#[test]
fn a_unix_socket_listener_serves_qemu_img_and_stops() {
    if !have("qemu-img") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:a");
    let n = pool.lun("db", MIB, &a, Access::ReadWrite);
    pool.array
        .write_at("db", &a, b"over a unix socket", 77)
        .unwrap();
    let server = umbra_nbd::Server::new(pool.array.clone(), Default::default());
    let path = pool.dir.path().join("nbd.sock");
    let l = server
        .listen(
            Listener::Unix(std::os::unix::net::UnixListener::bind(&path).unwrap()),
            Identity::Fixed(a.clone()),
        )
        .unwrap();
    assert_eq!(l.local_addr().unix_path(), Some(path.as_path()));
    let uri = format!("nbd+unix:///{n}?socket={}", path.display());
    let out = pool.dir.path().join("db.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw", &uri])
        .arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), pool.bytes("db", &a));
    l.stop();
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
    server.shutdown();
}

#[test]
fn fio_verifies_while_shadows_are_taken_and_each_shadow_is_a_point_in_time_image() {
    if !have("fio") {
        return;
    }
    let f = OneLun::new(16 * MIB);
    let (pool, n, s) = (&f.pool, f.n, &f.s);
    // randwrite with a random map writes every block exactly once, so at any instant each block
    // holds zeros or its one final content: a shadow must be that, block by block.
    let mut fio = fio_randwrite_verify(&s.uri(&n.to_string()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut shadows = Vec::new();
    while fio.try_wait().unwrap().is_none() && shadows.len() < 40 {
        let name = format!("shadow-{}", shadows.len());
        pool.array
            .snapshot_set(&[("db", &name)], &Default::default())
            .unwrap();
        shadows.push(name);
    }
    let out = fio.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fio failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = f.bytes();
    assert!(last.chunks(4096).all(|b| b.iter().any(|&x| x != 0)));
    let mut partial = 0;
    for name in &shadows {
        let mut img = vec![0u8; last.len()];
        pool.array.admin_read_at(name, &mut img, 0).unwrap();
        let mut written = 0;
        for (i, (b, f)) in img.chunks(4096).zip(last.chunks(4096)).enumerate() {
            if b.iter().all(|&x| x == 0) {
                continue;
            }
            assert_eq!(
                b, f,
                "{name}: block {i} is neither unwritten nor its final content"
            );
            written += 1;
        }
        if written > 0 && written < last.len() / 4096 {
            partial += 1;
        }
    }
    eprintln!(
        "{} shadows taken while fio ran, {partial} of them mid-run",
        shadows.len()
    );
}

/// `nbdinfo --list` of a host that sees 20 LUNs lists them all (it asks about each export on
/// the LIST's connection: more options than a handshake's 32 without a LIST).
#[test]
fn nbdinfo_lists_a_host_that_sees_many_luns() {
    if !have("nbdinfo") {
        return;
    }
    let pool = Pool::new();
    let a = ini("iqn.2026-01.org.example:many");
    let mut want = Vec::new();
    for i in 0..20 {
        let n = pool.lun(&format!("many{i}"), MIB, &a, Access::ReadWrite);
        want.push((n.to_string(), format!("many{i}"), MIB, false));
    }
    want.sort();
    let s = serve(&pool.array, &a);
    assert_eq!(listed(&s.uri("")), want);
}
