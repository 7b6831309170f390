//! What the shadow-copy protocol needs from the array: freeze and thaw of a set of LUNs through
//! the array (all or none, one deadline) and how a freeze meets a fenced access change.

use std::sync::Arc;
use std::time::Duration;

use vds_core::{Array, ErrorKind, InitiatorId, MaskSpec, ThawOutcome};

const MB: u64 = 1 << 20;
const W1: &str = "iqn.2024-01.org.example:writer";
const R1: &str = "iqn.2024-01.org.example:reader";
/// Long enough never to pass in these tests, except where a test lets it pass on purpose.
const LONG: Duration = Duration::from_secs(3600);

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// An array with LUNs `a`, `b` and `c` of 1 MiB, each writable by `W1` and readable by `R1`.
fn array() -> Array {
    let a = Array::in_memory();
    for n in ["a", "b", "c"] {
        a.create_lun(n, MB, &mask(&format!("{W1};{R1}=ro")))
            .unwrap();
    }
    a
}

fn read(a: &Array, name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    a.read_at(name, &id(R1), &mut buf, 0).unwrap();
    buf
}

/// Spins until `held()` reports a held write, or the writer `t` finished (then the write was
/// not held, and the caller's assertions say so). No sleep: the writer either blocks in the
/// freeze or returns.
fn wait_held(held: impl Fn() -> usize, t: &std::thread::JoinHandle<vds_core::Result<()>>) {
    while held() == 0 && !t.is_finished() {
        std::thread::yield_now();
    }
}

#[test]
fn freeze_is_all_or_none() {
    let a = array();
    // An unknown LUN: nothing stays frozen.
    let e = a.freeze_luns(&["a", "nope"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    // A LUN named twice is frozen twice: BadState, naming it; the first is thawed.
    let e = a.freeze_luns(&["a", "b", "a"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("\"a\""), "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    assert!(!a.is_lun_frozen("b").unwrap());
    // A LUN frozen already: the second freeze fails and thaws only what it froze.
    let g = a.freeze_luns(&["b"], LONG).unwrap();
    let e = a.freeze_luns(&["a", "c", "b"], LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadState, "{e}");
    assert!(e.to_string().contains("\"b\""), "{e}");
    assert!(!a.is_lun_frozen("a").unwrap());
    assert!(!a.is_lun_frozen("c").unwrap());
    assert!(a.is_lun_frozen("b").unwrap());
    assert_eq!(g.names(), vec!["b"]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    assert!(!a.is_lun_frozen("b").unwrap());
    // Empty list.
    assert_eq!(
        a.freeze_luns(&[], LONG).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // Dropping the guard thaws.
    let g = a.freeze_luns(&["a", "b", "c"], LONG).unwrap();
    assert!(["a", "b", "c"].iter().all(|n| a.is_lun_frozen(n).unwrap()));
    drop(g);
    assert!(["a", "b", "c"].iter().all(|n| !a.is_lun_frozen(n).unwrap()));
}

#[test]
fn frozen_lun_holds_writes_until_thaw() {
    let a = array();
    a.write_at("a", &id(W1), &[1u8; 4096], 0).unwrap();
    let g = a.freeze_luns(&["a", "b"], LONG).unwrap();
    let t = {
        let a = a.clone();
        std::thread::spawn(move || a.write_at("a", &id(W1), &[2u8; 4096], 0))
    };
    wait_held(|| g.held_writes(), &t);
    assert_eq!(g.held_writes(), 1, "the write was not held by the freeze");
    // Reads go on; the held write has not landed.
    assert_eq!(read(&a, "a"), vec![1u8; 4096]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    t.join().unwrap().unwrap();
    assert_eq!(read(&a, "a"), vec![2u8; 4096]);
}

#[test]
fn thaw_after_the_deadline_reports_it_expired() {
    let a = array();
    let g = a
        .freeze_luns(&["a", "c"], Duration::from_millis(1))
        .unwrap();
    // This write is held until the deadline passes, then lands.
    a.write_at("c", &id(W1), &[7u8; 4096], 0).unwrap();
    assert_eq!(read(&a, "c"), vec![7u8; 4096]);
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Expired);
    assert!(!a.is_lun_frozen("c").unwrap());
}

/// A change of access never waits for a thaw: `set_mask` on a frozen LUN with a held write
/// returns, and the held write, released by the thaw, is refused under the new access.
#[test]
fn set_mask_on_a_frozen_lun_returns_and_the_held_write_is_refused() {
    let a = array();
    a.write_at("a", &id(W1), &[1u8; 4096], 0).unwrap();
    let h = {
        let number = a.access("a", &id(W1)).unwrap().unwrap().number;
        a.open_lun(&id(W1), number).unwrap()
    };
    let g = a.freeze_luns(&["a"], LONG).unwrap();
    let by_name = {
        let a = a.clone();
        std::thread::spawn(move || a.write_at("a", &id(W1), &[2u8; 4096], 0))
    };
    let h = Arc::new(h);
    let by_handle = {
        let h = h.clone();
        std::thread::spawn(move || h.write_at(&[3u8; 4096], 0))
    };
    wait_held(|| g.held_writes(), &by_name);
    while g.held_writes() < 2 && !by_handle.is_finished() && !by_name.is_finished() {
        std::thread::yield_now();
    }
    assert_eq!(g.held_writes(), 2, "both writes are held by the freeze");
    // Returns although two writes admitted under the old access are held: they are not in flight.
    a.set_mask("a", &mask(&format!("{R1}=ro"))).unwrap();
    assert_eq!(g.thaw().unwrap(), ThawOutcome::Thawed);
    for t in [by_name, by_handle] {
        let e = t.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDenied, "{e}");
    }
    assert_eq!(
        read(&a, "a"),
        vec![1u8; 4096],
        "a held write landed after its access went"
    );
}
