//! Persistence under a crash: a child process streams administrative changes (masks, groups,
//! LUNs created and deleted, snapshot LUNs created and deleted, extends) and reports each
//! acknowledged one; the parent kills it (SIGKILL) at a point of its choosing, reopens the pool,
//! and checks that the state equals a prefix of the changes that includes every acknowledged one,
//! with nothing orphaned or damaged. The child checkpoints every 40 changes, so kills land
//! between, before and inside checkpoints.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use vds_core::{Array, MaskSpec};

const CHILD_ENV: &str = "UMBRA_KILL_TEST_POOL";
const LUNS: usize = 4;
/// Steps (about 1.3 changes each: creates and deletes are two) crossing several checkpoints.
const STEPS: usize = 300;
/// The child checkpoints after this many changes.
const CHECKPOINT_EVERY: u64 = 40;
/// The child never gets this close to its end before the kill.
const MARGIN: usize = 20;
const KB: u64 = 1 << 10;

fn host(i: usize) -> String {
    format!("iqn.2024-01.org.example:host{i}")
}

/// Makes the change of step `i` on `a` (the child and the reference alike).
fn step(a: &Array, i: usize) {
    let lun = format!("lun{}", i % LUNS);
    match i % 10 {
        0..=5 => {
            let mask = match i % 5 {
                0 => String::new(),
                1 => "*".to_string(),
                _ => (0..(i % 7 + 1))
                    .map(|k| host((i + k) % 11))
                    .collect::<Vec<_>>()
                    .join(";"),
            };
            a.set_mask(&lun, &MaskSpec::parse(&mask).unwrap()).unwrap();
        }
        6 => {
            let members: Vec<_> = (0..(i % 3 + 1))
                .map(|k| vds_core::InitiatorId::parse(&host(i + k)).unwrap())
                .collect();
            a.set_group(&format!("g{}", i % 3), &members).unwrap();
        }
        // Only lun1 and lun3 (i % 4 is 1 or 3 here) grow; snapshots are of lun0 and lun2.
        7 => {
            let size = a.lun(&lun).unwrap().size;
            a.extend_lun(&lun, size + 4 * KB).unwrap();
        }
        8 => {
            let snap = format!("snap-{lun}");
            if a.lun(&snap).is_ok() {
                a.delete_lun(&snap).unwrap();
            } else {
                a.snapshot_lun(&lun, &snap).unwrap();
            }
        }
        _ => {
            if a.lun("extra").is_ok() {
                a.delete_lun("extra").unwrap();
            } else {
                a.create_lun("extra", 16 * KB, &MaskSpec::None).unwrap();
            }
        }
    }
}

fn setup(a: &Array) {
    for l in 0..LUNS {
        a.create_lun(&format!("lun{l}"), 64 * KB, &MaskSpec::None)
            .unwrap();
    }
}

/// What is compared: every LUN (name, size, mask, source) and every group.
fn summary(a: &Array) -> String {
    let luns: Vec<String> = a
        .luns()
        .into_iter()
        .map(|l| format!("{} {} {:?} {:?}", l.name, l.size, l.mask, l.source))
        .collect();
    format!("{luns:?} {:?}", a.groups())
}

#[test]
fn child_process_entry() {
    let Ok(pool) = std::env::var(CHILD_ENV) else {
        return; // only runs as the child of the test below
    };
    let a = Array::open(&pool).unwrap();
    a.set_checkpoint_interval(CHECKPOINT_EVERY).unwrap();
    setup(&a);
    println!("ready");
    for i in 0..STEPS {
        step(&a, i);
        println!("ack {i}");
    }
    println!("done");
    // Wait to be killed: the kill always interrupts a live process.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn killed_admin_leaves_a_prefix_with_every_acknowledged_change() {
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545F4914F6CDD1Du64 ^ u64::from(std::process::id());
    // The reference state after each number of steps, computed once.
    let reference = Array::in_memory();
    setup(&reference);
    let mut after = vec![summary(&reference)];
    for i in 0..STEPS {
        step(&reference, i);
        after.push(summary(&reference));
    }
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let stderr_path = dir.path().join("child.stderr");
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &pool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Even rounds before the first checkpoint, odd ones after some.
        let (lo, hi) = if round % 2 == 0 {
            (2, 20)
        } else {
            (60, STEPS - MARGIN)
        };
        let kill_after = lo + (seed % (hi - lo) as u64) as usize;
        let mut acked: Option<usize> = None;
        let (mut ready, mut done) = (false, false);
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            // libtest prints "test child_process_entry ... " before the first line of output.
            if line.ends_with("ready") {
                ready = true;
            } else if line == "done" {
                done = true;
                break;
            } else if let Some(n) = line.strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
                if acked.unwrap() >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(
            ready,
            "round {round}: the child never got going; stderr:\n{stderr}"
        );
        assert!(
            !done && status.signal() == Some(libc::SIGKILL),
            "round {round}: the kill did not land before the child finished ({status}); \
             stderr:\n{stderr}"
        );
        let acked = acked.expect("some change acknowledged") + 1;
        assert!(acked < STEPS, "round {round}");
        let a = Array::open(&pool)
            .unwrap_or_else(|e| panic!("round {round}: reopen: {e}; child's stderr:\n{stderr}"));
        let got = summary(&a);
        assert!(a.orphans().is_empty(), "round {round}: {:?}", a.orphans());
        assert!(
            a.damaged_luns().is_empty(),
            "round {round}: {:?}",
            a.damaged_luns()
        );
        if round % 2 == 1 {
            let state = std::fs::read(pool.join("pool.state")).unwrap();
            let st: serde_json::Value = serde_json::from_slice(&state[28..]).unwrap();
            assert!(
                st["applied_seq"].as_u64().unwrap() > 0,
                "round {round}: the kill came after a checkpoint"
            );
        }
        // Every change we saw acknowledged is there, and the state is the result of some prefix
        // of the stream (the child may have gone on after the last line we read).
        let ok = after[acked..].contains(&got);
        assert!(
            ok,
            "round {round}: state after kill at ack {acked} is no prefix: {got}; child's \
             stderr:\n{stderr}"
        );
        // And the pool goes on.
        a.create_lun("after", 16 * KB, &MaskSpec::None).unwrap();
    }
}
