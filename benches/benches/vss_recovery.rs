//! Fast recovery through the hardware provider (`vss_core::HardwareProvider::recover`).
//!
//! - `fast_recovery/{1_GiB,64_GiB}`: one recovery of a LUN of a pool directory (sparse, 9 blocks
//!   written): the shadow broken and swapped into the damaged LUN's place. Untimed between
//!   iterations: the LUN is swapped back, the recovered LUN deleted, a new shadow made. No data
//!   moves, so the two sizes should be within 1.5x of each other (issue 12's target); the
//!   baseline is the other size in the same run.
//!
//! Run: `cargo bench -p umbra-benches --bench vss_recovery`

mod common;

use std::time::{Duration, Instant};

use common::bench_dir;
use criterion::Criterion;
use uuid::Uuid;
use vds_core::{Array, InitiatorId, MaskSpec};
use vss_core::{Attributes, Context, HardwareProvider, Provider, ShadowRequest};

const BS: u64 = 4096;
const HOST: &str = "iqn.2024-01.org.example:server";
const NUMBER: u32 = 7;
const LONG: Duration = Duration::from_secs(3600);

/// Makes one shadow of LUN `lun` through the provider's sequence; returns its id.
fn shadow(hw: &HardwareProvider, lun: &str) -> Uuid {
    let set_id = Uuid::new_v4();
    let shadow_id = Uuid::new_v4();
    hw.begin_prepare(&ShadowRequest {
        set_id,
        shadow_id,
        volume: lun.to_string(),
        context: Context::BACKUP,
        attributes: Attributes::TRANSPORTABLE,
        count_in_set: 1,
    })
    .unwrap();
    hw.end_prepare(set_id, Instant::now() + LONG).unwrap();
    hw.pre_commit(set_id).unwrap();
    hw.commit(set_id, LONG).unwrap();
    hw.post_commit(set_id).unwrap();
    shadow_id
}

fn fast_recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("fast_recovery");
    for (label, size) in [("1_GiB", 1u64 << 30), ("64_GiB", 64u64 << 30)] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let a = Array::open(dir.path().join("pool")).unwrap();
        let host = InitiatorId::parse(HOST).unwrap();
        a.create_lun(
            "data",
            size,
            &MaskSpec::host(host.clone(), vds_core::Access::ReadWrite),
        )
        .unwrap();
        a.set_host_number("data", &host, NUMBER).unwrap();
        let h = a.open_lun(&host, NUMBER).unwrap();
        for n in (0..8).chain([size / BS - 1]) {
            h.write_at(&[1u8; BS as usize], n * BS).unwrap();
        }
        h.flush().unwrap();
        drop(h);
        let hw = HardwareProvider::new(a.clone());
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let id = shadow(&hw, "data");
                    let start = Instant::now();
                    let report = hw.recover(id, None).unwrap();
                    total += start.elapsed();
                    assert_eq!(report.bytes_moved, 0);
                    // Back as it was: the original in its place, the recovered LUN gone.
                    a.swap_lun(&report.recovered, "data").unwrap();
                    a.delete_lun(&report.recovered).unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    fast_recovery(&mut c);
    c.final_summary();
}
