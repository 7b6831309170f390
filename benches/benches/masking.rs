//! vds-core masking at scale: 10,000 LUNs x 10,000 initiators with realistic masks.
//!
//! - a host's view through the per-host index vs a baseline that scans every LUN;
//! - an is-visible check with a parsed id (mask table, and through the array by LUN name);
//! - a typical mask change of 16 hosts, in memory, and persisted (one fsync) against a plain
//!   append + fsync of the same size in the same directory.
//!
//! The persisted cases run in a temporary directory inside the scratch directory of the file
//! benches (`$UMBRA_BENCH_DIR`, else the target directory's `tmp`), removed at the end.
//!
//! Run: `cargo bench -p umbra-benches --bench masking`

#![allow(missing_docs)] // criterion's macros generate undocumented items

mod common;

use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::bench_dir;
use criterion::{criterion_group, criterion_main, Criterion};
use vds_core::{Array, InitiatorId, LunId, MaskSpec, MaskTable};

const LUNS: u64 = 10_000;
const HOSTS: u64 = 10_000;

fn host(i: u64) -> InitiatorId {
    if i.is_multiple_of(2) {
        InitiatorId::parse(&format!("iqn.2024-01.com.example:host{i}")).unwrap()
    } else {
        InitiatorId::Port(0x1000_0000_c900_0000 | i)
    }
}

/// Each LUN is masked to a small cluster of three hosts (two read-write, one read-only); two
/// LUNs are shared by everyone. Every host sees about five LUNs.
fn build() -> MaskTable {
    let mut t = MaskTable::new();
    for l in 0..LUNS {
        let spec = if l < 2 {
            MaskSpec::parse("*").unwrap()
        } else {
            let h = |k: u64| host((l * 3 + k) % HOSTS).to_string();
            MaskSpec::parse(&format!("{};{};{}=ro", h(0), h(1), h(2))).unwrap()
        };
        t.add_lun(l, spec, None).unwrap();
    }
    t
}

fn view_by_scan(t: &MaskTable, h: &InitiatorId) -> Vec<LunId> {
    (0..LUNS).filter(|&l| t.access(l, h).is_some()).collect()
}

fn bench(c: &mut Criterion) {
    let t = build();
    let h = host(4242);
    assert_eq!(
        t.host_view(&h)
            .iter()
            .map(|(l, _)| *l)
            .collect::<std::collections::BTreeSet<_>>(),
        view_by_scan(&t, &h).into_iter().collect()
    );
    let mut g = c.benchmark_group("masking/host_view_10k_luns_10k_hosts");
    g.bench_function("index", |b| {
        b.iter(|| black_box(t.host_view(black_box(&h))))
    });
    g.bench_function("baseline_scan_all_luns", |b| {
        b.iter(|| black_box(view_by_scan(&t, black_box(&h))))
    });
    g.finish();

    let mut g = c.benchmark_group("masking/is_visible");
    let lun: LunId = 4242 / 3 * 3 / 3; // some LUN in the host's cluster, or not: either costs the same
    g.bench_function("mask_table", |b| {
        b.iter(|| black_box(t.access(black_box(lun), black_box(&h))))
    });
    let array = Array::in_memory();
    for l in 0..200u64 {
        let spec = MaskSpec::parse(&format!("{};{}", host(l), host(l + 1))).unwrap();
        array
            .create_lun(&format!("lun{l}"), 1 << 20, &spec)
            .unwrap();
    }
    let h7 = host(7);
    g.bench_function("array_by_name", |b| {
        b.iter(|| black_box(array.access(black_box("lun7"), black_box(&h7)).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("masking/change_16_hosts");
    let specs: Vec<MaskSpec> = (0..2u64)
        .map(|k| {
            let list: Vec<String> = (0..16)
                .map(|i| host(5000 + k * 16 + i).to_string())
                .collect();
            MaskSpec::parse(&list.join(";")).unwrap()
        })
        .collect();
    let mut t2 = t.clone();
    let mut flip = 0usize;
    g.bench_function("in_memory_mask_table", |b| {
        b.iter(|| {
            flip ^= 1;
            black_box(t2.set_mask(77, specs[flip].clone()).unwrap());
        })
    });
    let lists: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    let mem = Array::in_memory();
    mem.create_lun("x", 1 << 20, &MaskSpec::None).unwrap();
    g.bench_function("in_memory_array_with_parsing", |b| {
        b.iter(|| {
            flip ^= 1;
            mem.set_mask("x", &MaskSpec::parse(&lists[flip]).unwrap())
                .unwrap();
        })
    });
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let pool = Array::open(dir.path().join("pool")).unwrap();
    pool.create_lun("x", 1 << 20, &MaskSpec::None).unwrap();
    g.sample_size(20);
    g.bench_function("persisted_array", |b| {
        b.iter(|| {
            flip ^= 1;
            pool.set_mask("x", &specs[flip]).unwrap();
        })
    });
    let mut f = std::fs::File::create(dir.path().join("baseline.log")).unwrap();
    let record = vec![b'x'; 16 + lists[0].len() + 40];
    let mut at = 0u64;
    g.bench_function("baseline_append_and_fdatasync", |b| {
        b.iter(|| {
            f.write_all_at(&record, at).unwrap();
            f.sync_data().unwrap();
            at += record.len() as u64;
        })
    });
    f.flush().unwrap();
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
