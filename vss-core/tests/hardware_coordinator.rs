//! The coordinator over the hardware provider: a writer (`common::App`) that keeps writing
//! through a `LunHandle` until frozen; each set's shadow LUN holds exactly what the writer had acknowledged when its
//! freeze returned, and an auto-release set's shadow LUNs go at backup shutdown.

mod common;
mod hardware_common;
use hardware_common::{block, id, mask, open_as, read_block, BS, HOST_A, HOST_B};

use std::sync::Arc;

use common::App;
use vds_core::{Array, LunHandle};
use vss_core::{Context, Coordinator, HardwareProvider, Provider};

/// Blocks the writer cycles through after block 0 (which holds the counter of the last write).
const SPREAD: u64 = 16;

#[test]
fn each_hardware_shadow_holds_what_its_writer_acknowledged_before_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let a = Array::open(dir.path().join("pool")).unwrap();
    for lun in ["app1", "app2"] {
        a.create_lun(lun, 1 << 20, &mask(HOST_A)).unwrap();
    }
    let hw = Arc::new(HardwareProvider::new(a.clone()));
    let p: Arc<dyn Provider> = hw.clone();
    let c = Coordinator::with_timeouts([p], common::short());
    let lun_writes = |lun: LunHandle| {
        move |n: u64| {
            lun.write_at(&block(n, 1), (1 + n % SPREAD) * BS).unwrap();
            lun.write_at(&block(n, 0), 0).unwrap();
        }
    };
    let (a1, t1) = App::start("app1", lun_writes(open_as(&a, HOST_A, "app1")));
    let (a2, t2) = App::start("app2", lun_writes(open_as(&a, HOST_A, "app2")));
    c.add_writer(a1.clone()).unwrap();
    c.add_writer(a2.clone()).unwrap();
    for round in 0..3 {
        let mut b = common::prepared(&c, Context::BACKUP, &["app1", "app2"]);
        let shadows = b.do_snapshot_set().unwrap();
        assert_eq!(c.shadows().unwrap().len(), 2);
        for (app, s) in [(&a1, &shadows[0]), (&a2, &shadows[1])] {
            let acked = app.state.lock().at_freeze[round];
            assert_eq!(s.original.name, app.name);
            // Read as host B, unmasked for the check.
            a.set_mask(&s.shadow.name, &mask(HOST_B)).unwrap();
            let h = open_as(&a, HOST_B, &s.shadow.name);
            assert_eq!(
                read_block(&h, 0),
                block(acked, 0),
                "{} round {round}",
                app.name
            );
            for k in 1..=SPREAD {
                // The last write to block k (counters n with 1 + n % SPREAD == k) up to
                // `acked`; never written if none.
                let back = (acked % SPREAD + SPREAD - (k - 1)) % SPREAD;
                let expect = acked
                    .checked_sub(back)
                    .filter(|&m| m >= 1)
                    .map_or(vec![0u8; BS as usize], |m| block(m, 1));
                assert_eq!(read_block(&h, k), expect, "{} block {k}", app.name);
            }
            drop(h);
            a.set_mask(&s.shadow.name, &vds_core::MaskSpec::None)
                .unwrap();
        }
        // BACKUP is auto-release: the shadow LUNs go at backup shutdown.
        b.backup_shutdown().unwrap();
        assert!(hw.shadows().unwrap().is_empty(), "round {round}");
        for s in &shadows {
            assert!(a.lun(&s.shadow.name).is_err());
        }
        // Writes go on after thaw.
        let target = a1.state.lock().at_freeze[round] + 10;
        // (A bound only so a writer left frozen fails the test instead of hanging it.)
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut st = a1.state.lock();
        while st.acked < target && !a1.changed.wait_until(&mut st, until).timed_out() {}
        assert!(st.acked >= target, "the writer was left frozen");
    }
    a1.stop();
    a2.stop();
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(a.access("app1", &id(HOST_B)).unwrap(), None);
}
