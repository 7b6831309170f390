//! LUN I/O as a target daemon does it: handles opened by (initiator, host LUN number), fenced
//! access changes (no write admitted under a revoked access lands after the change returns),
//! flush, FUA, discard and write-zeroes.

use std::io::{IoSlice, IoSliceMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use vds_core::{Array, ErrorKind, InitiatorId, LunHandle, MaskSpec};

const MB: u64 = 1 << 20;
const W1: &str = "iqn.2024-01.org.example:writer";
const R1: &str = "iqn.2024-01.org.example:reader";
const ROUNDS: usize = 1000;
/// Each write: 1 MiB, as the C reproduction wrote.
const CHUNK: usize = MB as usize;

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// Three writers as initiator `W1` (two through handles at number `number`, one by LUN name
/// `name`) write 1 MiB of their own pattern at offset 0 until refused; once each has written
/// at least once, `revoke` runs. Returns the LUN's first MiB as `observe` reads it right after
/// `revoke` returned and again once every writer has stopped: equal if nothing landed after the
/// change returned. Each writer must end refused with `AccessDenied`.
fn race(
    a: &Array,
    name: &str,
    number: u32,
    round: usize,
    revoke: impl FnOnce(),
    observe: impl Fn() -> Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    let started = Arc::new(Barrier::new(4));
    let writes = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..3u8 {
        let (a, name) = (a.clone(), name.to_string());
        let (started, writes) = (started.clone(), writes.clone());
        let handle: Option<LunHandle> = (w < 2).then(|| a.open_lun(&id(W1), number).unwrap());
        threads.push(std::thread::spawn(move || {
            let buf = vec![(round as u8).wrapping_mul(3).wrapping_add(w + 1); CHUNK];
            let mut first = true;
            loop {
                let r = match &handle {
                    Some(h) => h.write_at(&buf, 0),
                    None => a.write_at(&name, &id(W1), &buf, 0),
                };
                match r {
                    Ok(()) => {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return e.kind(),
                }
                if first {
                    first = false;
                    started.wait();
                }
            }
        }));
    }
    started.wait();
    revoke();
    let after = observe();
    for t in threads {
        assert_eq!(t.join().unwrap(), ErrorKind::AccessDenied);
    }
    (after, observe())
}

fn read_as(a: &Array, name: &str, host: &str) -> Vec<u8> {
    let mut b = vec![0u8; CHUNK];
    a.read_at(name, &id(host), &mut b, 0).unwrap();
    b
}

fn fenced_mask_change(a: &Array) {
    a.create_lun("data", 4 * MB, &mask(&format!("{W1};{R1}=ro")))
        .unwrap();
    let number = a.access("data", &id(W1)).unwrap().unwrap().number;
    for round in 0..ROUNDS {
        a.set_mask("data", &mask(&format!("{W1};{R1}=ro"))).unwrap();
        let (after, end) = race(
            a,
            "data",
            number,
            round,
            || a.set_mask("data", &mask(&format!("{R1}=ro"))).unwrap(),
            || read_as(a, "data", R1),
        );
        assert!(
            after == end,
            "round {round}: the LUN changed after set_mask returned"
        );
    }
}

#[test]
fn no_write_lands_after_set_mask_removes_its_host_in_memory() {
    fenced_mask_change(&Array::in_memory());
}

#[test]
fn no_write_lands_after_set_mask_removes_its_host_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    fenced_mask_change(&Array::open(dir.path().join("pool")).unwrap());
}

#[test]
fn no_write_lands_after_read_only_demotion_or_removal_from_a_group() {
    let a = Array::in_memory();
    a.set_group("writers", &[id(W1)]).unwrap();
    a.create_lun("data", 4 * MB, &mask(&format!("@writers;{R1}=ro")))
        .unwrap();
    let number = a.access("data", &id(W1)).unwrap().unwrap().number;
    for round in 0..ROUNDS {
        let demote = round % 2 == 0;
        a.set_mask("data", &mask(&format!("@writers;{R1}=ro")))
            .unwrap();
        a.set_group("writers", &[id(W1)]).unwrap();
        let (after, end) = race(
            &a,
            "data",
            number,
            round,
            || {
                if demote {
                    // `=ro`: the writer may still read, not write.
                    a.set_mask("data", &mask(&format!("{W1}=ro;{R1}=ro")))
                        .unwrap()
                } else {
                    a.set_group("writers", &[]).unwrap()
                }
            },
            || read_as(&a, "data", R1),
        );
        assert!(
            after == end,
            "round {round} (demotion: {demote}): the LUN changed after the change returned"
        );
    }
}

#[test]
fn nothing_lands_on_the_damaged_lun_after_the_swap_returns() {
    let a = Array::in_memory();
    a.create_lun("a", 4 * MB, &mask(W1)).unwrap();
    a.create_lun("b", 4 * MB, &MaskSpec::None).unwrap();
    let number = a.access("a", &id(W1)).unwrap().unwrap().number;
    let (mut damaged, mut replacement) = ("a", "b");
    for round in 0..ROUNDS {
        let (after, end) = race(
            &a,
            damaged,
            number,
            round,
            || a.swap_lun(damaged, replacement).unwrap(),
            || {
                let mut b = vec![0u8; CHUNK];
                a.admin_read_at(damaged, &mut b, 0).unwrap();
                b
            },
        );
        assert!(
            after == end,
            "round {round}: the damaged LUN changed after the swap returned"
        );
        std::mem::swap(&mut damaged, &mut replacement);
    }
}

#[test]
fn a_write_held_by_a_freeze_does_not_hold_up_a_mask_change_and_is_refused_on_release() {
    let a = Array::in_memory();
    a.create_lun("data", 4 * MB, &mask(&format!("{W1};{R1}=ro")))
        .unwrap();
    let number = a.access("data", &id(W1)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W1), number).unwrap();
    h.write_at(b"before", 0).unwrap();
    // Were the held write counted, set_mask would wait for it until this deadline released it;
    // the freeze would then be over when set_mask returns.
    let frozen = a.freeze_luns(&["data"], Duration::from_secs(120)).unwrap();
    let writer = std::thread::spawn(move || h.write_at(b"frozen", 0));
    while frozen.held_writes() == 0 {
        std::thread::yield_now();
    }
    a.set_mask("data", &mask(&format!("{R1}=ro"))).unwrap();
    assert!(
        a.is_lun_frozen("data").unwrap(),
        "set_mask waited for the freeze to end"
    );
    assert_eq!(frozen.thaw().unwrap(), vds_core::ThawOutcome::Thawed);
    assert_eq!(
        writer.join().unwrap().unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
    let mut b = [0u8; 6];
    a.read_at("data", &id(R1), &mut b, 0).unwrap();
    assert_eq!(&b, b"before");
}

#[test]
fn a_handle_addresses_a_lun_by_host_number_and_is_checked_on_every_io() {
    let a = Array::in_memory();
    a.create_lun("data", 4 * MB, &mask(&format!("{W1};{R1}=ro")))
        .unwrap();
    a.set_host_number("data", &id(W1), 7).unwrap();
    assert_eq!(
        a.open_lun(&id(W1), 8).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let h = a.open_lun(&id(W1), 7).unwrap();
    assert_eq!((h.number(), h.size().unwrap()), (7, 4 * MB));
    h.write_at(b"hello", 4094).unwrap();
    // Vectored: two buffers written as one, read back split differently.
    h.writev(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")], 10)
        .unwrap();
    let (mut x, mut y) = ([0u8; 2], [0u8; 5]);
    h.readv(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)], 10)
        .unwrap();
    assert_eq!((&x, &y), (b"ab", b"cdefg"));
    let r_number = a.access("data", &id(R1)).unwrap().unwrap().number;
    let r = a.open_lun(&id(R1), r_number).unwrap();
    let mut b = [0u8; 5];
    r.read_at(&mut b, 4094).unwrap();
    assert_eq!(&b, b"hello");
    assert_eq!(
        r.write_at(b"x", 0).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
    assert_eq!(
        h.write_at(b"x", 4 * MB - 1 + 1).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    // Offline: refused as BadState, served again once online.
    a.set_online("data", false).unwrap();
    assert_eq!(
        h.read_at(&mut b, 0).unwrap_err().kind(),
        ErrorKind::BadState
    );
    a.set_online("data", true).unwrap();
    h.read_at(&mut b, 4094).unwrap();
    // Renumbered: the old number no longer addresses it.
    a.set_host_number("data", &id(W1), 9).unwrap();
    let e = h.read_at(&mut b, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDenied);
    assert!(e.to_string().contains("number 9"), "{e}");
    a.open_lun(&id(W1), 9)
        .unwrap()
        .read_at(&mut b, 4094)
        .unwrap();
    // Extended: the handle sees the new size.
    a.extend_lun("data", 8 * MB).unwrap();
    assert_eq!(r.size().unwrap(), 8 * MB);
    // Deleted: refused.
    a.delete_lun("data").unwrap();
    assert_eq!(
        r.read_at(&mut b, 0).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
}

#[test]
fn after_a_swap_the_old_handle_is_refused_and_the_same_number_reaches_the_replacement() {
    let a = Array::in_memory();
    a.create_lun("damaged", 4 * MB, &mask(W1)).unwrap();
    a.create_lun("backup", 4 * MB, &MaskSpec::None).unwrap();
    a.set_host_number("damaged", &id(W1), 3).unwrap();
    let old = a.open_lun(&id(W1), 3).unwrap();
    old.write_at(b"old", 0).unwrap();
    a.swap_lun("damaged", "backup").unwrap();
    assert_eq!(
        old.write_at(b"bad", 0).unwrap_err().kind(),
        ErrorKind::AccessDenied
    );
    let new = a.open_lun(&id(W1), 3).unwrap();
    new.write_at(b"new", 0).unwrap();
    let mut b = [0u8; 3];
    a.admin_read_at("backup", &mut b, 0).unwrap();
    assert_eq!(&b, b"new");
    a.admin_read_at("damaged", &mut b, 0).unwrap();
    assert_eq!(&b, b"old");
}

#[test]
fn discard_and_write_zeroes_read_as_zeros_and_snapshot_luns_keep_their_data() {
    let a = Array::in_memory();
    a.create_lun("src", 4 * MB, &mask(W1)).unwrap();
    let number = a.access("src", &id(W1)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W1), number).unwrap();
    let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8 + 1).collect();
    h.write_at(&data, 4096).unwrap();
    a.snapshot_lun("src", "snap").unwrap();
    h.discard(4096, 4096).unwrap();
    h.write_zeroes(3 * 4096 + 100, 200).unwrap();
    let mut got = vec![0u8; data.len()];
    h.read_at(&mut got, 4096).unwrap();
    let mut want = data.clone();
    want[..4096].fill(0);
    want[2 * 4096 + 100..2 * 4096 + 300].fill(0);
    assert!(got == want, "the source does not read as discarded");
    a.admin_read_at("snap", &mut got, 4096).unwrap();
    assert!(
        got == data,
        "the snapshot LUN lost data to a discard of its source"
    );
    assert_eq!(
        h.discard(4 * MB - 4096, 8192).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
}

#[test]
fn flush_needs_read_access_and_fua_write_access() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    {
        let a = Array::open(&pool).unwrap();
        a.create_lun("data", 4 * MB, &mask(&format!("{W1};{R1}=ro")))
            .unwrap();
        let n = |h: &str| a.access("data", &id(h)).unwrap().unwrap().number;
        let (w, r) = (
            a.open_lun(&id(W1), n(W1)).unwrap(),
            a.open_lun(&id(R1), n(R1)).unwrap(),
        );
        w.write_at(b"flushed", 0).unwrap();
        r.flush().unwrap();
        w.write_fua(b"fua", 4096).unwrap();
        assert_eq!(
            r.write_fua(b"no", 0).unwrap_err().kind(),
            ErrorKind::AccessDenied
        );
        a.set_mask("data", &MaskSpec::None).unwrap();
        assert_eq!(w.flush().unwrap_err().kind(), ErrorKind::AccessDenied);
    }
    let a = Array::open(&pool).unwrap();
    let mut b = [0u8; 7];
    a.admin_read_at("data", &mut b, 0).unwrap();
    assert_eq!(&b, b"flushed");
    a.admin_read_at("data", &mut b[..3], 4096).unwrap();
    assert_eq!(&b[..3], b"fua");
}

/// The bytes `extents` cover.
fn covered(extents: &[(u64, u64)]) -> u64 {
    extents.iter().map(|e| e.1).sum()
}

/// Checks that every byte of `h`'s first `len` bytes outside `extents` reads as zeros.
fn holes_read_as_zeros(h: &LunHandle, extents: &[(u64, u64)], len: u64) {
    let mut at = 0;
    let mut buf = vec![0u8; 1 << 20];
    for &(s, l) in extents.iter().chain([(len, 0)].iter()) {
        while at < s {
            let n = (s - at).min(buf.len() as u64) as usize;
            h.read_at(&mut buf[..n], at).unwrap();
            assert!(
                buf[..n].iter().all(|&b| b == 0),
                "a hole at {at} holds data"
            );
            at += n as u64;
        }
        at = s + l;
    }
}

fn allocation_counts_what_was_written(a: &Array) {
    const GB: u64 = 1 << 30;
    const BS: u64 = 4096;
    a.create_lun("big", GB, &mask(W1)).unwrap();
    let n = a.access("big", &id(W1)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W1), n).unwrap();
    assert_eq!(h.allocation(0, GB).unwrap(), vec![]);
    for b in [5u64, 70_000, GB / BS - 1] {
        h.write_at(&[b as u8 | 1; 4096], b * BS).unwrap();
    }
    let want = vec![(5 * BS, BS), (70_000 * BS, BS), (GB - BS, BS)];
    assert_eq!(h.allocation(0, GB).unwrap(), want);
    // A sub-range, clipped; a partial block counts whole (then clipped to what was asked).
    assert_eq!(
        h.allocation(5 * BS + 100, 10 * BS).unwrap(),
        vec![(5 * BS + 100, BS - 100)]
    );
    h.discard(70_000 * BS, BS).unwrap();
    assert_eq!(covered(&h.allocation(0, GB).unwrap()), 2 * BS);
    // A snapshot LUN sees its source's data, then its own writes; a later discard on the source
    // does not take data from it (the block is preserved for it).
    a.snapshot_lun("big", "snap").unwrap();
    a.set_mask("snap", &mask(R1)).unwrap();
    let rn = a.access("snap", &id(R1)).unwrap().unwrap().number;
    let s = a.open_lun(&id(R1), rn).unwrap();
    assert_eq!(
        s.allocation(0, GB).unwrap(),
        vec![(5 * BS, BS), (GB - BS, BS)]
    );
    s.write_at(&[9; 10], 3 * BS).unwrap();
    h.discard(5 * BS, BS).unwrap();
    assert_eq!(covered(&h.allocation(0, GB).unwrap()), BS);
    assert_eq!(
        s.allocation(0, GB).unwrap(),
        vec![(3 * BS, BS), (5 * BS, BS), (GB - BS, BS)]
    );
    // Stacked: a snapshot LUN of the snapshot LUN.
    a.snapshot_lun("snap", "snap2").unwrap();
    a.set_mask("snap2", &mask(R1)).unwrap();
    let rn2 = a.access("snap2", &id(R1)).unwrap().unwrap().number;
    let s2 = a.open_lun(&id(R1), rn2).unwrap();
    assert_eq!(covered(&s2.allocation(0, GB).unwrap()), 3 * BS);
    // Holes read as zeros (over the first 64 MiB, where the data is).
    for (lun, ext) in [
        (&h, h.allocation(0, 64 * MB).unwrap()),
        (&s2, s2.allocation(0, 64 * MB).unwrap()),
    ] {
        holes_read_as_zeros(lun, &ext, 64 * MB);
    }
}

#[test]
fn allocation_reports_exactly_the_blocks_written_in_memory() {
    allocation_counts_what_was_written(&Array::in_memory());
}

#[test]
fn allocation_reports_exactly_the_blocks_written_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    allocation_counts_what_was_written(&Array::open(dir.path().join("pool")).unwrap());
}

/// `blocks` (ascending) as byte extents, adjacent blocks merged.
fn extents_of(blocks: &[u64], bs: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in blocks {
        match out.last_mut() {
            Some((s, l)) if *s + *l == b * bs => *l += bs,
            _ => out.push((b * bs, bs)),
        }
    }
    out
}

#[test]
fn changed_extents_page_through_what_changed_blocks_lists() {
    const BS: u64 = 4096;
    let a = Array::in_memory();
    // 8 GiB: more than one window of the maps (2^20 blocks).
    a.create_lun("src", 8 << 30, &mask(W1)).unwrap();
    a.snapshot_lun("src", "s1").unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut written = Vec::new();
    for i in 0..400u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Runs of adjacent blocks, some across the window boundary at block 2^20.
        let b = if i % 50 == 0 {
            (1 << 20) - 2 + i / 50
        } else {
            rng % ((8 << 30) / BS - 4)
        };
        for k in 0..(rng >> 60) % 4 + 1 {
            written.push(b + k);
            a.write_at("src", &id(W1), &[1; 7], (b + k) * BS + 9)
                .unwrap();
        }
    }
    a.snapshot_lun("src", "s2").unwrap();
    a.set_mask("s2", &mask(W1)).unwrap();
    a.write_at("s2", &id(W1), &[2; 3], 77 * BS).unwrap();
    for (from, to) in [("s1", "s2"), ("s2", "s1"), ("s1", "src")] {
        let want = extents_of(&a.changed_blocks(from, to).unwrap(), BS);
        for max in [1usize, 3, 64, 10_000] {
            let (mut got, mut cursor) = (Vec::new(), Some(0));
            while let Some(c) = cursor {
                let (page, next) = a.changed_extents(from, to, c, max).unwrap();
                assert!(page.len() <= max && (next.is_none() || page.len() == max));
                got.extend(page);
                cursor = next;
            }
            assert_eq!(got, want, "{from} -> {to}, {max} per call");
        }
    }
    written.sort_unstable();
    written.dedup();
    let s1_src = a.changed_blocks("s1", "src").unwrap();
    assert!(written.iter().all(|b| s1_src.binary_search(b).is_ok()));
    assert_eq!(
        a.changed_extents("s1", "src", 100, 4).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        a.changed_extents("s1", "src", 0, 0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn import_and_export_copy_only_data_and_keep_holes() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    const BS: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    // A sparse 256 MiB image with data in three places (one of them a partial last block).
    let img = dir.path().join("in.img");
    let f = std::fs::File::create(&img).unwrap();
    let len = (256 << 20) + 100;
    f.set_len(len).unwrap();
    let parts: [(u64, Vec<u8>); 3] = [
        (0, vec![1; 5000]),
        (100 << 20, vec![2; 3 * BS as usize]),
        (len - 50, vec![3; 50]),
    ];
    for (at, d) in &parts {
        f.write_all_at(d, *at).unwrap();
    }
    drop(f);
    let a = Array::open(dir.path().join("pool")).unwrap();
    let op = a.import_lun("imported", &img);
    op.wait().unwrap();
    let info = a.lun("imported").unwrap();
    assert_eq!((info.size, info.mask.as_str()), ((256 << 20) + BS, ""));
    for (at, d) in &parts {
        let mut b = vec![0; d.len()];
        a.admin_read_at("imported", &mut b, *at).unwrap();
        assert!(b == *d, "data at {at}");
    }
    a.set_mask("imported", &mask(W1)).unwrap();
    let number = a.access("imported", &id(W1)).unwrap().unwrap().number;
    let allocated: u64 = a
        .open_lun(&id(W1), number)
        .unwrap()
        .allocation(0, info.size)
        .unwrap()
        .iter()
        .map(|r| r.1)
        .sum();
    assert_eq!(
        allocated,
        (2 + 3 + 1) * BS,
        "the import wrote more than the data blocks"
    );
    // Export: the same bytes, as sparse a file.
    let out = dir.path().join("out.img");
    a.export_lun("imported", &out).wait().unwrap();
    let back = std::fs::read(&out).unwrap();
    assert_eq!(back.len() as u64, info.size);
    let mut want = vec![0u8; info.size as usize];
    for (at, d) in &parts {
        want[*at as usize..*at as usize + d.len()].copy_from_slice(d);
    }
    assert!(back == want, "the exported image differs");
    assert!(
        std::fs::metadata(&out).unwrap().blocks() * 512 <= 64 * BS,
        "the export is not sparse"
    );
    // Refused: an existing file, an unknown LUN, an existing name, an empty image.
    assert_eq!(
        a.export_lun("imported", &out).wait().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        a.export_lun("nope", dir.path().join("x"))
            .wait()
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        a.import_lun("imported", &img).wait().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    std::fs::File::create(dir.path().join("empty")).unwrap();
    assert_eq!(
        a.import_lun("e", dir.path().join("empty"))
            .wait()
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert!(a.lun("e").is_err());
}

/// A split keeps the LUN, its number and its mask: I/O through a handle goes on while it runs
/// and after it, none refused (the LUN's I/O stops while the snapshot it reads through is
/// deleted and goes on on the LUN's own origin). Two threads write their own blocks and read
/// them back in a loop through handles during each round's split; every I/O must succeed and
/// the split LUN hold the source's image plus every write.
fn io_goes_on_through_a_split(a: &Array) {
    const SIZE: u64 = 4 * MB;
    const BS: usize = 4096;
    a.create_lun("db", SIZE, &MaskSpec::None).unwrap();
    let base: Vec<u8> = (0..SIZE as usize).map(|i| (i % 251) as u8).collect();
    a.set_mask("db", &mask(W1)).unwrap();
    a.write_at("db", &id(W1), &base, 0).unwrap();
    a.set_mask("db", &MaskSpec::None).unwrap();
    for round in 0..12u8 {
        let name = format!("split{round}");
        a.snapshot_lun("db", &name).unwrap();
        a.set_mask(&name, &mask(W1)).unwrap();
        let number = a.access(&name, &id(W1)).unwrap().unwrap().number;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let h = a.open_lun(&id(W1), number).unwrap();
                let (stop, started) = (stop.clone(), started.clone());
                std::thread::spawn(move || {
                    // Thread t owns the blocks b with b % 2 == t; returns what it wrote last.
                    let mut last = std::collections::BTreeMap::new();
                    let blocks = SIZE / BS as u64;
                    let mut i = 0u64;
                    let mut rb = vec![0u8; BS];
                    loop {
                        let b = (i * 7 % (blocks / 2)) * 2 + t;
                        let v = round
                            .wrapping_mul(31)
                            .wrapping_add((i % 200) as u8 + t as u8);
                        let wb = vec![v; BS];
                        h.write_at(&wb, b * BS as u64).unwrap_or_else(|e| {
                            panic!("round {round}: write of block {b} refused: {e}")
                        });
                        h.read_at(&mut rb, b * BS as u64).unwrap_or_else(|e| {
                            panic!("round {round}: read of block {b} refused: {e}")
                        });
                        assert_eq!(rb, wb, "round {round}: block {b} reads back otherwise");
                        last.insert(b, v);
                        if i == 0 {
                            started.wait();
                        }
                        i += 1;
                        if stop.load(Ordering::Relaxed) && i > 64 {
                            return last;
                        }
                    }
                })
            })
            .collect();
        started.wait();
        a.split_lun(&name).wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let mut expected = base.clone();
        for t in threads {
            for (b, v) in t.join().unwrap() {
                let at = b as usize * BS;
                expected[at..at + BS].fill(v);
            }
        }
        let mut got = vec![0u8; SIZE as usize];
        a.admin_read_at(&name, &mut got, 0).unwrap();
        assert!(got == expected, "round {round}: the split LUN lost a write");
        a.delete_lun(&name).unwrap();
    }
}

#[test]
fn io_through_a_handle_goes_on_through_a_split_in_memory() {
    io_goes_on_through_a_split(&Array::in_memory());
}

#[test]
fn io_through_a_handle_goes_on_through_a_split_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    io_goes_on_through_a_split(&Array::open(dir.path().join("pool")).unwrap());
}

/// A resync overwrites the target LUN with the source's contents: host I/O on the target is
/// refused while it runs (the handle opened before is revoked, `AccessDenied`, and reopening it
/// is refused `Busy`), so no write is acknowledged and then overwritten by the copy, and writes
/// acknowledged after it ended (through a handle opened again, as a client reconnects) are kept.
/// A host writes its own pattern in a loop through a handle while the target is resynced from
/// another LUN (a full copy) and from its own snapshot LUN (a revert).
fn no_acknowledged_write_is_lost_to_a_resync(a: &Array) {
    const SIZE: u64 = 32 * MB;
    const BS: usize = 4096;
    a.create_lun("target", SIZE, &mask(W1)).unwrap();
    a.create_lun("golden", SIZE, &mask(R1)).unwrap();
    let image: Vec<u8> = (0..SIZE as usize).map(|i| (i % 241) as u8 + 1).collect();
    a.set_mask("golden", &mask(W1)).unwrap();
    a.write_at("golden", &id(W1), &image, 0).unwrap();
    a.set_mask("golden", &MaskSpec::None).unwrap();
    a.snapshot_lun("target", "target.snap").unwrap();
    let number = a.access("target", &id(W1)).unwrap().unwrap().number;
    for (round, source) in ["golden", "target.snap", "golden"].into_iter().enumerate() {
        let h = a.open_lun(&id(W1), number).unwrap();
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (refused, ended, a) = (refused.clone(), ended.clone(), a.clone());
            std::thread::spawn(move || {
                // (block, value) of every acknowledged write after the first refusal; once the
                // resync has ended, 64 more writes (none refused: the test fails then).
                let mut after = std::collections::BTreeMap::new();
                let (mut i, mut since_end) = (0u64, 0);
                let mut h = Some(h);
                let mut revoked = false;
                while after.len() < 64 && since_end < 64 {
                    since_end += u32::from(ended.load(Ordering::Relaxed));
                    let b = i * 13 % (SIZE / BS as u64);
                    let v = (i % 250) as u8 + 3;
                    // A revoked handle is opened again, as a client reconnects.
                    let (wrote, r) = match &h {
                        Some(h) => (true, h.write_at(&vec![v; BS], b * BS as u64)),
                        None => (false, a.open_lun(&id(W1), number).map(|n| h = Some(n))),
                    };
                    match r {
                        Ok(()) if wrote && refused.load(Ordering::Relaxed) => {
                            after.insert(b, v);
                        }
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AccessDenied && !revoked => {
                            assert!(e.message().contains("reverted or resynced"), "{e}");
                            revoked = true;
                            h = None;
                            refused.store(true, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Busy, "round {round}: {e}");
                            refused.store(true, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                assert!(
                    revoked,
                    "round {round}: the handle opened before was not revoked"
                );
                after
            })
        };
        let resync = a.resync_lun(source, "target");
        while !refused.load(Ordering::Relaxed) && !resync.is_done() {
            std::thread::yield_now();
        }
        resync.wait().unwrap();
        ended.store(true, Ordering::Relaxed);
        let after = writer.join().unwrap();
        assert!(
            refused.load(Ordering::Relaxed),
            "round {round}: no host write was refused while the target was resynced from {source}"
        );
        let mut got = vec![0u8; BS];
        for (b, v) in after {
            a.admin_read_at("target", &mut got, b * BS as u64).unwrap();
            assert!(
                got.iter().all(|&x| x == v),
                "round {round}: block {b}, acknowledged after the resync from {source}, was lost"
            );
        }
    }
}

/// A handle on a snapshot LUN writes before and after the LUN is split from its source (which
/// replaces the LUN's volume; the handle caches the LUN's volume cell) and, with `during`, while
/// the split runs: every write acknowledged is in the split LUN, and nothing lands on the volume
/// the split retired. Returns each block's byte as the last acknowledged write left it (flushed).
fn writes_around_a_split_all_land(a: &Array, during: bool) -> Vec<u8> {
    a.create_lun("src", SPLIT_BLOCKS * SPLIT_BS, &MaskSpec::None)
        .unwrap();
    a.snapshot_lun("src", "snap").unwrap();
    a.set_mask("snap", &mask(W1)).unwrap();
    let number = a.access("snap", &id(W1)).unwrap().unwrap().number;
    let h = a.open_lun(&id(W1), number).unwrap();
    let byte = |round: u64| (round % 251) as u8 + 1;
    // `acked[b]` is the last round acknowledged on block `b` (round r writes block r % BLOCKS).
    let acked: Vec<AtomicU64> = (0..SPLIT_BLOCKS).map(|_| AtomicU64::new(0)).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Barrier::new(2);
    let writer_paused = Barrier::new(2);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut round = 1u64;
            // Until the split is done, and then one more pass over every block.
            let mut last = u64::MAX;
            while round < last {
                let b = round % SPLIT_BLOCKS;
                let block = vec![byte(round); SPLIT_BS as usize];
                h.write_at(&block, b * SPLIT_BS).unwrap();
                acked[b as usize].store(round, Ordering::Relaxed);
                round += 1;
                if round == SPLIT_BLOCKS + 1 {
                    if during {
                        started.wait();
                    } else {
                        // Hold still until the split is done.
                        writer_paused.wait();
                        writer_paused.wait();
                    }
                }
                if last == u64::MAX && stop.load(Ordering::Acquire) {
                    last = round + SPLIT_BLOCKS;
                }
            }
            h.flush().unwrap();
        });
        if during {
            started.wait();
        } else {
            // Before the split, not during it: the writer's first pass is over.
            writer_paused.wait();
        }
        a.split_lun("snap").wait().unwrap();
        if !during {
            writer_paused.wait();
        }
        // Release: pairs with the writer's Acquire load.
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
    });
    assert_eq!(a.lun("snap").unwrap().source, None, "the LUN is split");
    let want: Vec<u8> = acked
        .iter()
        .map(|r| byte(r.load(Ordering::Relaxed)))
        .collect();
    check_blocks(a, &want, "after the split");
    want
}

const SPLIT_BLOCKS: u64 = 64;
const SPLIT_BS: u64 = 4096;

/// LUN `snap`'s block `b` reads as `want[b]` throughout.
fn check_blocks(a: &Array, want: &[u8], when: &str) {
    for (b, &w) in want.iter().enumerate() {
        let mut got = vec![0u8; SPLIT_BS as usize];
        a.admin_read_at("snap", &mut got, b as u64 * SPLIT_BS)
            .unwrap();
        assert!(
            got.iter().all(|&x| x == w),
            "{when}: block {b} holds {} where the last acknowledged write wrote {w}",
            got[0]
        );
    }
}

#[test]
fn no_acknowledged_write_is_lost_to_a_resync_in_memory() {
    no_acknowledged_write_is_lost_to_a_resync(&Array::in_memory());
}

#[test]
fn no_acknowledged_write_is_lost_to_a_resync_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    no_acknowledged_write_is_lost_to_a_resync(&Array::open(dir.path().join("pool")).unwrap());
}

#[test]
fn writes_through_a_handle_during_a_split_all_land_in_memory() {
    writes_around_a_split_all_land(&Array::in_memory(), true);
}

#[test]
fn writes_through_a_handle_before_and_after_a_split_all_land_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let want = writes_around_a_split_all_land(&Array::open(&pool).unwrap(), false);
    let a = Array::open_existing(&pool).unwrap();
    assert_eq!(a.lun("snap").unwrap().source, None);
    check_blocks(&a, &want, "after a reopen");
}

#[test]
fn writes_through_a_handle_during_a_split_all_land_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let want = writes_around_a_split_all_land(&Array::open(&pool).unwrap(), true);
    let a = Array::open_existing(&pool).unwrap();
    assert_eq!(a.lun("snap").unwrap().source, None);
    check_blocks(&a, &want, "after a reopen");
}

/// Why: a restore in place (a revert to an engine shadow, a resync from a LUN or from the LUN's
/// own snapshot LUN) replaces the content under a connected client, whose cache (a mounted file
/// system, a guest's page cache) sits on the old one. As after a swap, every handle opened
/// before the restore is revoked for good when it starts (`AccessDenied`, reads and writes
/// alike, after the restore too); a handle opened again reaches the LUN and reads the restored
/// content; a handle opened after a restore is not revoked by it.
fn a_restore_revokes_the_handles_opened_before_it(a: &Array) {
    const BS: usize = 4096;
    let blocks = |v: u8| vec![v; 4 * BS];
    a.create_lun("db", MB, &mask(W1)).unwrap();
    a.create_lun("golden", MB, &mask(W1)).unwrap();
    let n = a.access("db", &id(W1)).unwrap().unwrap().number;
    let g = a.access("golden", &id(W1)).unwrap().unwrap().number;
    a.open_lun(&id(W1), g)
        .unwrap()
        .write_at(&blocks(0x60), 0)
        .unwrap();
    let read = |h: &LunHandle| {
        let mut b = vec![0u8; 4 * BS];
        h.read_at(&mut b, 0).map(|()| b)
    };
    let revoked = |h: &LunHandle, what: &str| {
        let e = read(h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{what}: {e}");
        assert!(
            e.message().contains("(\"db\") was reverted or resynced"),
            "{e}"
        );
        let e = h.write_at(&blocks(0x77), 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{what}: {e}");
        let e = h.flush().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{what}: {e}");
    };

    // A revert to an engine shadow.
    let h = a.open_lun(&id(W1), n).unwrap();
    h.write_at(&blocks(0x11), 0).unwrap();
    let shadow = a
        .engine_snapshot_set(&[("db", b"".as_slice())])
        .unwrap()
        .shadows[0]
        .1;
    h.write_at(&blocks(0x22), 0).unwrap();
    let other = a.open_lun(&id(W1), g).unwrap();
    a.revert_to_engine_shadow("db", shadow).wait().unwrap();
    revoked(&h, "after a revert");
    assert_eq!(
        read(&other).unwrap(),
        blocks(0x60),
        "another LUN's handle is not revoked"
    );
    let h2 = a.open_lun(&id(W1), n).unwrap();
    assert_eq!(
        read(&h2).unwrap(),
        blocks(0x11),
        "reopened: the reverted data"
    );
    h2.write_at(&blocks(0x33), 0).unwrap();
    revoked(&h, "still, after a write through the new handle");

    // A resync from another LUN (a full copy): the handle opened after the revert is revoked.
    a.resync_lun("golden", "db").wait().unwrap();
    revoked(&h2, "after a resync");
    let h3 = a.open_lun(&id(W1), n).unwrap();
    assert_eq!(
        read(&h3).unwrap(),
        blocks(0x60),
        "reopened: the resynced data"
    );

    // A resync from the LUN's own snapshot LUN (a revert inside the array).
    h3.write_at(&blocks(0x44), 0).unwrap();
    a.snapshot_lun("db", "db.snap").unwrap();
    h3.write_at(&blocks(0x55), 0).unwrap();
    a.resync_lun("db.snap", "db").wait().unwrap();
    revoked(&h3, "after a resync from its snapshot LUN");
    let h4 = a.open_lun(&id(W1), n).unwrap();
    assert_eq!(
        read(&h4).unwrap(),
        blocks(0x44),
        "reopened: the snapshot's data"
    );
    // By-name I/O addresses the LUN afresh: never revoked.
    let mut b = vec![0u8; 4 * BS];
    a.read_at("db", &id(W1), &mut b, 0).unwrap();
    assert_eq!(b, blocks(0x44));
    // The source of a resync is not restored: its handles go on.
    assert_eq!(read(&other).unwrap(), blocks(0x60));
}

#[test]
fn a_restore_revokes_the_handles_opened_before_it_in_memory() {
    a_restore_revokes_the_handles_opened_before_it(&Array::in_memory());
}

#[test]
fn a_restore_revokes_the_handles_opened_before_it_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    a_restore_revokes_the_handles_opened_before_it(&Array::open(dir.path().join("pool")).unwrap());
}
