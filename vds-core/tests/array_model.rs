//! Property test of the array's I/O gate against a reference model: after any sequence of mask
//! changes, no initiator ever reads or writes a LUN the model denies, read-only hosts never write,
//! and permitted I/O works.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vds_core::{Access, Array, ErrorKind, InitiatorId, MaskSpec};

const HOSTS: [&str; 4] = [
    "iqn.1991-05.com.microsoft:a",
    "10000000c9000002",
    "eui.0200000000000003",
    "iqn.1994-05.com.redhat:d",
];

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Vec<(usize, bool)>),
    All(usize, bool),
    None(usize),
    Add(usize, usize),
    Remove(usize, usize),
    Swap(usize, usize),
    Snapshot(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), prop::collection::vec((0..4usize, any::<bool>()), 1..4)).prop_map(|(l, h)| Op::Set(l, h)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(l, ro)| Op::All(l, ro)),
        1 => any::<usize>().prop_map(Op::None),
        2 => (any::<usize>(), 0..4usize).prop_map(|(l, h)| Op::Add(l, h)),
        2 => (any::<usize>(), 0..4usize).prop_map(|(l, h)| Op::Remove(l, h)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Swap(a, b)),
        1 => any::<usize>().prop_map(Op::Snapshot),
    ]
}

/// Per LUN: None = nobody, Some(None) = everybody with access, or a per-host map.
#[derive(Clone, Debug)]
enum M {
    Nobody,
    All(Access),
    Hosts(BTreeMap<usize, Access>),
}

fn allowed(m: &M, h: usize) -> Option<Access> {
    match m {
        M::Nobody => None,
        M::All(a) => Some(*a),
        M::Hosts(map) => map.get(&h).copied(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn io_is_allowed_exactly_where_the_model_allows_it(ops in prop::collection::vec(op(), 1..25)) {
        let a = Array::in_memory();
        let mut model: Vec<(String, M)> = Vec::new();
        for i in 0..3 {
            let name = format!("lun{i}");
            a.create_lun(&name, 1 << 20, &MaskSpec::None).unwrap();
            model.push((name, M::Nobody));
        }
        for op in ops {
            let n = model.len();
            match op {
                Op::Set(l, hosts) => {
                    let mut map = BTreeMap::new();
                    for (h, ro) in &hosts {
                        map.entry(*h).or_insert(if *ro { Access::ReadOnly } else { Access::ReadWrite });
                    }
                    let list: Vec<String> = map.iter().map(|(h, a)| match a {
                        Access::ReadOnly => format!("{}=ro", HOSTS[*h]),
                        Access::ReadWrite => HOSTS[*h].to_string(),
                    }).collect();
                    a.set_mask(&model[l % n].0, &mask(&list.join(";"))).unwrap();
                    model[l % n].1 = M::Hosts(map);
                }
                Op::All(l, ro) => {
                    // May be refused if a host's own number collides with the LUN's default one.
                    let acc = if ro { Access::ReadOnly } else { Access::ReadWrite };
                    if a.set_mask(&model[l % n].0, &mask(if ro { "*=ro" } else { "*" })).is_ok() {
                        model[l % n].1 = M::All(acc);
                    }
                }
                Op::None(l) => {
                    a.set_mask(&model[l % n].0, &MaskSpec::None).unwrap();
                    model[l % n].1 = M::Nobody;
                }
                Op::Add(l, h) => {
                    let r = a.add_to_mask(&model[l % n].0, &mask(HOSTS[h]));
                    match &mut model[l % n].1 {
                        M::All(_) => { r.unwrap(); }
                        m @ M::Nobody => { r.unwrap(); *m = M::Hosts(BTreeMap::from([(h, Access::ReadWrite)])); }
                        // An added entry states its access anew (read-write by default).
                        M::Hosts(map) => { r.unwrap(); map.insert(h, Access::ReadWrite); }
                    }
                }
                Op::Remove(l, h) => {
                    let r = a.remove_from_mask(&model[l % n].0, &mask(HOSTS[h]));
                    match &mut model[l % n].1 {
                        M::All(_) => prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
                        M::Nobody => r.unwrap(),
                        m @ M::Hosts(_) => {
                            r.unwrap();
                            if let M::Hosts(map) = m {
                                map.remove(&h);
                                if map.is_empty() { *m = M::Nobody; }
                            }
                        }
                    }
                }
                Op::Swap(x, y) => {
                    let (x, y) = (x % n, y % n);
                    if x != y {
                        a.swap_lun(&model[x].0, &model[y].0).unwrap();
                        model[y].1 = std::mem::replace(&mut model[x].1, M::Nobody);
                    }
                }
                Op::Snapshot(l) => {
                    let name = format!("snap{n}");
                    a.snapshot_lun(&model[l % n].0, &name).unwrap();
                    model.push((name, M::Nobody));
                }
            }
            for (name, m) in &model {
                for (h, host) in HOSTS.iter().enumerate() {
                    let id = InitiatorId::parse(host).unwrap();
                    let want = allowed(m, h);
                    let r = a.read_at(name, &id, &mut [0u8; 16], 512);
                    let w = a.write_at(name, &id, &[h as u8; 16], 512);
                    match want {
                        None => {
                            prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::AccessDenied);
                            prop_assert_eq!(w.unwrap_err().kind(), ErrorKind::AccessDenied);
                        }
                        Some(Access::ReadOnly) => {
                            prop_assert!(r.is_ok());
                            prop_assert_eq!(w.unwrap_err().kind(), ErrorKind::AccessDenied);
                        }
                        Some(Access::ReadWrite) => {
                            prop_assert!(r.is_ok());
                            prop_assert!(w.is_ok());
                        }
                    }
                    prop_assert_eq!(a.access(name, &id).unwrap().map(|g| g.access), want);
                }
            }
        }
    }
}
