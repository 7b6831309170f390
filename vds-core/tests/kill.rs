//! Persistence under a crash: a child process streams mask changes and reports each acknowledged
//! one; the parent kills it (SIGKILL) at a random point, reopens the pool, and checks that the state
//! equals a prefix of the changes that includes every acknowledged one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use vds_core::{Array, MaskSpec};

const CHILD_ENV: &str = "UMBRA_KILL_TEST_POOL";
const LUNS: usize = 4;
const STEPS: usize = 400;

fn host(i: usize) -> String {
    format!("iqn.2024-01.org.example:host{i}")
}

/// The change made at step `i`: LUN `i % LUNS` gets a mask derived from `i`.
fn step(i: usize) -> (String, MaskSpec) {
    let lun = format!("lun{}", i % LUNS);
    let mask = match i % 5 {
        0 => String::new(),
        1 => "*".to_string(),
        _ => (0..(i % 7 + 1))
            .map(|k| host((i + k) % 11))
            .collect::<Vec<_>>()
            .join(";"),
    };
    (lun, MaskSpec::parse(&mask).unwrap())
}

/// A reference array that applies the steps one by one.
struct Reference {
    array: Array,
    applied: usize,
}

impl Reference {
    fn new() -> Self {
        let array = Array::in_memory();
        for l in 0..LUNS {
            array
                .create_lun(&format!("lun{l}"), 1 << 20, &MaskSpec::None)
                .unwrap();
        }
        Reference { array, applied: 0 }
    }

    fn advance_to(&mut self, n: usize) {
        while self.applied < n {
            let (lun, mask) = step(self.applied);
            self.array.set_mask(&lun, &mask).unwrap();
            self.applied += 1;
        }
    }

    fn masks(&self) -> Vec<String> {
        (0..LUNS)
            .map(|l| self.array.get_mask(&format!("lun{l}")).unwrap())
            .collect()
    }
}

#[test]
fn child_process_entry() {
    let Ok(pool) = std::env::var(CHILD_ENV) else {
        return; // only runs as the child of the test below
    };
    let a = Array::open(&pool).unwrap();
    for l in 0..LUNS {
        a.create_lun(&format!("lun{l}"), 1 << 20, &MaskSpec::None)
            .unwrap();
    }
    println!("ready");
    for i in 0..STEPS {
        let (lun, mask) = step(i);
        a.set_mask(&lun, &mask).unwrap();
        println!("ack {i}");
    }
    println!("done");
}

#[test]
fn killed_admin_leaves_a_prefix_with_every_acknowledged_change() {
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545F4914F6CDD1Du64 ^ u64::from(std::process::id());
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &pool)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = (seed % (STEPS as u64 - 20)) as usize + 5;
        let mut acked: Option<usize> = None;
        let mut ready = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            // libtest prints "test child_process_entry ... " before the first line of output.
            if line.ends_with("ready") {
                ready = true;
            } else if let Some(n) = line.strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
                if acked.unwrap() >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(ready, "round {round}: the child never got going");
        let acked = acked.expect("some change acknowledged") + 1;
        let a = Array::open(&pool).unwrap();
        let got: Vec<String> = (0..LUNS)
            .map(|l| a.get_mask(&format!("lun{l}")).unwrap())
            .collect();
        // Every change we saw acknowledged is there, and the state is the result of some prefix
        // of the stream (the child may have gone on after the last line we read).
        let mut reference = Reference::new();
        let mut ok = false;
        for n in acked..=STEPS {
            reference.advance_to(n);
            if reference.masks() == got {
                ok = true;
                break;
            }
        }
        assert!(
            ok,
            "round {round}: state after kill at ack {acked} is no prefix: {got:?}"
        );
    }
}
