//! Property tests of the mask table against a reference model: after any sequence of mask
//! operations, every host's view and every LUN's host list equal what the model says, host LUN
//! numbers never collide and stay stable, and a failed operation changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vds_core::{Access, ErrorKind, InitiatorId, LunHosts, LunId, MaskSpec, MaskTable, Principal};

/// The largest host LUN number (SAM flat addressing); one past it is refused.
const MAX_LUN_NUMBER: u32 = 16383;

/// Six hosts; each written in two spellings to check normalisation on the way in.
const HOSTS: [(&str, &str); 6] = [
    (
        "iqn.1991-05.com.microsoft:host0",
        "IQN.1991-05.COM.MICROSOFT:HOST0",
    ),
    (
        "iqn.1994-05.com.redhat:host1",
        "iqn.1994-05.com.RedHat:host1",
    ),
    ("10000000c9000002", "10:00:00:00:C9:00:00:02"),
    ("c003ff0000000003", "naa.c003ff0000000003"),
    ("eui.0200000000000004", "EUI.0200000000000004"),
    ("5000c50000000005", "0x5000C50000000005"),
];
const GROUPS: [&str; 2] = ["cluster-a", "cluster_b"];
/// Group names `set_group` must refuse (empty, a space, too long), so its errors are exercised.
const BAD_GROUPS: [&str; 3] = [
    "",
    "cluster a",
    "a-name-of-sixty-five-characters-is-one-too-long-for-a-group-name!",
];

fn host(i: usize) -> InitiatorId {
    InitiatorId::parse(HOSTS[i].0).unwrap()
}

#[derive(Debug, Clone)]
enum SpecGen {
    None,
    All(bool),
    List(Vec<(usize, bool, bool)>), // (index, is group, read-only)
}

impl SpecGen {
    fn text(&self, alt: bool) -> String {
        match self {
            SpecGen::None => String::new(),
            SpecGen::All(ro) => {
                if *ro {
                    "*=ro".into()
                } else {
                    "*".into()
                }
            }
            SpecGen::List(items) => items
                .iter()
                .scan(BTreeMap::new(), |seen, &(i, group, ro)| {
                    // A principal listed twice keeps its first access (conflicts are an error).
                    let key = if group {
                        (i % GROUPS.len(), true)
                    } else {
                        (i % HOSTS.len(), false)
                    };
                    Some((i, group, *seen.entry(key).or_insert(ro)))
                })
                .map(|(i, group, ro)| {
                    let p = if group {
                        format!("@{}", GROUPS[i % GROUPS.len()])
                    } else if alt {
                        HOSTS[i % HOSTS.len()].1.to_string()
                    } else {
                        HOSTS[i % HOSTS.len()].0.to_string()
                    };
                    if ro {
                        format!("{p}=ro")
                    } else {
                        p
                    }
                })
                .collect::<Vec<_>>()
                .join(";"),
        }
    }
}

fn spec_gen() -> impl Strategy<Value = SpecGen> {
    prop_oneof![
        1 => Just(SpecGen::None),
        1 => any::<bool>().prop_map(SpecGen::All),
        4 => prop::collection::vec((0..6usize, prop::bool::weighted(0.25), prop::bool::weighted(0.3)), 1..5)
            .prop_map(SpecGen::List),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    AddLun(SpecGen, bool),
    RemoveLun(usize),
    SetMask(usize, SpecGen, bool),
    SetGroup(usize, Vec<usize>),
    SetBadGroup(usize, Vec<usize>),
    DeleteGroup(usize),
    SetNumber(usize, usize, u32),
    Swap(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (spec_gen(), any::<bool>()).prop_map(|(s, a)| Op::AddLun(s, a)),
        1 => any::<usize>().prop_map(Op::RemoveLun),
        5 => (any::<usize>(), spec_gen(), any::<bool>()).prop_map(|(l, s, a)| Op::SetMask(l, s, a)),
        2 => (0..2usize, prop::collection::vec(0..6usize, 0..4)).prop_map(|(g, m)| Op::SetGroup(g, m)),
        1 => (0..BAD_GROUPS.len(), prop::collection::vec(0..6usize, 0..4)).prop_map(|(g, m)| Op::SetBadGroup(g, m)),
        1 => (0..2usize).prop_map(Op::DeleteGroup),
        2 => (any::<usize>(), 0..6usize, prop_oneof![8 => 0..8u32, 1 => Just(MAX_LUN_NUMBER), 1 => MAX_LUN_NUMBER + 1..=u32::MAX])
            .prop_map(|(l, h, n)| Op::SetNumber(l, h, n)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Swap(a, b)),
    ]
}

#[derive(Default, Clone)]
struct Model {
    luns: BTreeMap<LunId, MaskSpec>,
    groups: BTreeMap<String, BTreeSet<InitiatorId>>,
}

impl Model {
    fn access(&self, lun: LunId, h: &InitiatorId) -> Option<Access> {
        match self.luns.get(&lun)? {
            MaskSpec::None => None,
            MaskSpec::All(a) => Some(*a),
            MaskSpec::List(entries) => {
                if let Some(a) = entries.get(&Principal::Host(h.clone())) {
                    return Some(*a);
                }
                entries
                    .iter()
                    .filter_map(|(p, a)| match p {
                        Principal::Group(g)
                            if self.groups.get(g).is_some_and(|m| m.contains(h)) =>
                        {
                            Some(*a)
                        }
                        _ => None,
                    })
                    .max()
            }
        }
    }

    fn groups_known(&self, spec: &MaskSpec) -> bool {
        spec.groups().all(|g| self.groups.contains_key(g))
    }
}

type Numbers = BTreeMap<(InitiatorId, LunId), u32>;

fn numbers(t: &MaskTable) -> Numbers {
    let mut out = BTreeMap::new();
    for i in 0..HOSTS.len() {
        for (lun, g) in t.host_view(&host(i)) {
            out.insert((host(i), lun), g.number);
        }
    }
    out
}

fn check(t: &MaskTable, m: &Model) {
    for i in 0..HOSTS.len() {
        let h = host(i);
        let view = t.host_view(&h);
        let expect: BTreeMap<LunId, Access> = m
            .luns
            .keys()
            .filter_map(|&l| m.access(l, &h).map(|a| (l, a)))
            .collect();
        let got: BTreeMap<LunId, Access> = view.iter().map(|(l, g)| (*l, g.access)).collect();
        assert_eq!(got, expect, "view of host {h}");
        let nums: BTreeSet<u32> = view.iter().map(|(_, g)| g.number).collect();
        assert_eq!(
            nums.len(),
            view.len(),
            "host {h} sees two LUNs at one number: {view:?}"
        );
        for &l in m.luns.keys() {
            assert_eq!(t.access(l, &h).map(|g| g.access), m.access(l, &h));
        }
    }
    for (&l, spec) in &m.luns {
        assert_eq!(t.spec(l).unwrap(), spec);
        match t.lun_hosts(l).unwrap() {
            LunHosts::All { access, .. } => assert_eq!(spec, &MaskSpec::All(access)),
            LunHosts::Hosts(grants) => {
                let expect: BTreeSet<InitiatorId> = (0..HOSTS.len())
                    .map(host)
                    .filter(|h| m.access(l, h).is_some())
                    .collect();
                assert_eq!(grants.keys().cloned().collect::<BTreeSet<_>>(), expect);
            }
        }
    }
}

fn pick(m: &Model, i: usize) -> Option<LunId> {
    (!m.luns.is_empty()).then(|| *m.luns.keys().nth(i % m.luns.len()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mask_table_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut t = MaskTable::new();
        let mut m = Model::default();
        let mut next = 1;
        for op in ops {
            let before = numbers(&t);
            let snapshot = (t.host_view(&host(0)), m.luns.len());
            let mut stable_except: Vec<LunId> = vec![];
            let mut swapped: Option<(LunId, LunId)> = None;
            let result: Result<(), vds_core::Error> = match &op {
                Op::AddLun(s, alt) => {
                    let spec = MaskSpec::parse(&s.text(*alt)).unwrap();
                    let ok = m.groups_known(&spec);
                    let r = t.add_lun(next, spec.clone(), None).map(|_| ());
                    if r.is_ok() {
                        prop_assert!(ok);
                        m.luns.insert(next, spec);
                        next += 1;
                    } else {
                        prop_assert!(!ok || r.as_ref().unwrap_err().kind() == ErrorKind::InvalidArgument);
                    }
                    r
                }
                Op::RemoveLun(i) => match pick(&m, *i) {
                    Some(l) => {
                        m.luns.remove(&l);
                        t.remove_lun(l).map(|_| ())
                    }
                    None => Ok(()),
                },
                Op::SetMask(i, s, alt) => match pick(&m, *i) {
                    Some(l) => {
                        let spec = MaskSpec::parse(&s.text(*alt)).unwrap();
                        let ok = m.groups_known(&spec);
                        stable_except.push(l);
                        let r = t.set_mask(l, spec.clone()).map(|_| ());
                        if r.is_ok() {
                            prop_assert!(ok);
                            m.luns.insert(l, spec);
                        } else {
                            prop_assert!(!ok || r.as_ref().unwrap_err().kind() == ErrorKind::InvalidArgument);
                        }
                        r
                    }
                    None => Ok(()),
                },
                Op::SetGroup(g, members) => {
                    let members: BTreeSet<InitiatorId> = members.iter().map(|&i| host(i)).collect();
                    let name = GROUPS[*g].to_string();
                    let r = t.set_group(&name, members.clone()).map(|_| ());
                    // A valid name always succeeds here: every LUN naming the group can give its
                    // new members a number (only 8 LUN numbers are ever used).
                    prop_assert!(r.is_ok(), "set_group {} failed: {:?}", name, r);
                    m.groups.insert(name, members);
                    r
                }
                Op::SetBadGroup(g, members) => {
                    let members: BTreeSet<InitiatorId> = members.iter().map(|&i| host(i)).collect();
                    let r = t.set_group(BAD_GROUPS[*g], members).map(|_| ());
                    match &r {
                        Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
                        Ok(()) => prop_assert!(false, "bad group name {:?} accepted", BAD_GROUPS[*g]),
                    }
                    prop_assert!(t.group(BAD_GROUPS[*g]).is_none());
                    r
                }
                Op::DeleteGroup(g) => {
                    let name = GROUPS[*g];
                    let in_use = m.luns.values().any(|s| s.groups().any(|x| x == name));
                    let r = t.delete_group(name);
                    match (&r, m.groups.contains_key(name), in_use) {
                        (Ok(()), true, false) => { m.groups.remove(name); }
                        (Err(e), false, _) => prop_assert_eq!(e.kind(), ErrorKind::NotFound),
                        (Err(e), true, true) => prop_assert_eq!(e.kind(), ErrorKind::BadState),
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                    r
                }
                Op::SetNumber(i, h, n) => match pick(&m, *i) {
                    Some(l) => {
                        stable_except.push(l);
                        let (hh, n) = (host(*h), *n);
                        // What the model predicts, from the views and numbers before the call
                        // (checked against the model after every step).
                        let elsewhere = before.iter().any(|((x, lun), &k)| x == &hh && *lun != l && k == n);
                        // A `*` LUN's default number is refused even for a host that sees that
                        // LUN at a number of its own (the documented "sees a `*` LUN there").
                        let star_there = m.luns.iter().any(|(&lun, spec)| {
                            lun != l && matches!(spec, MaskSpec::All(_)) && t.default_number(lun).unwrap() == n
                        });
                        let expect = if n > MAX_LUN_NUMBER {
                            Err(ErrorKind::InvalidArgument)
                        } else if m.access(l, &hh).is_none() {
                            Err(ErrorKind::NotFound)
                        } else if before.get(&(hh.clone(), l)) == Some(&n) {
                            Ok(())
                        } else if elsewhere || star_there {
                            Err(ErrorKind::AlreadyExists)
                        } else {
                            Ok(())
                        };
                        let r = t.set_host_number(l, &hh, n).map(|_| ());
                        prop_assert_eq!(r.as_ref().map(|_| ()).map_err(|e| e.kind()), expect, "set_host_number({}, {}, {})", l, hh, n);
                        if r.is_ok() {
                            prop_assert_eq!(t.access(l, &hh).unwrap().number, n);
                        }
                        r
                    }
                    None => Ok(()),
                },
                Op::Swap(a, b) => match (pick(&m, *a), pick(&m, *b)) {
                    (Some(from), Some(to)) if from != to => {
                        t.swap(from, to).unwrap();
                        let spec = m.luns.insert(from, MaskSpec::None).unwrap();
                        m.luns.insert(to, spec);
                        swapped = Some((from, to));
                        Ok(())
                    }
                    _ => Ok(()),
                },
            };
            if result.is_err() {
                // Atomic: a failed change leaves every view and number as it was.
                prop_assert_eq!(numbers(&t), before.clone());
                prop_assert_eq!((t.host_view(&host(0)), m.luns.len()), snapshot);
            }
            check(&t, &m);
            // Numbers are stable: a host keeps its number for a LUN it still sees, unless that
            // LUN's number was set explicitly; after a swap the new LUN sits where the old was.
            let after = numbers(&t);
            for ((h, l), n) in &before {
                if stable_except.contains(l) && matches!(op, Op::SetNumber(..)) {
                    continue;
                }
                if let Some((from, to)) = swapped {
                    if *l == from {
                        prop_assert_eq!(after.get(&(h.clone(), to)), Some(n), "swap moved {} off its number", h);
                        continue;
                    }
                    if *l == to {
                        continue;
                    }
                }
                if let Some(n2) = after.get(&(h.clone(), *l)) {
                    prop_assert_eq!(n2, n, "host {} LUN {} renumbered", h, l);
                }
            }
        }
    }
}

#[test]
fn set_mask_strings_follow_vds() {
    assert_eq!(MaskSpec::parse("").unwrap(), MaskSpec::None);
    assert_eq!(MaskSpec::parse("  ").unwrap(), MaskSpec::None);
    assert_eq!(
        MaskSpec::parse("*").unwrap(),
        MaskSpec::All(Access::ReadWrite)
    );
    for bad in [
        "*;iqn.1991-05.com.microsoft:a",
        "iqn.1991-05.com.microsoft:a;;10000000c9000002",
        ";",
        "iqn.1991-05.com.microsoft:a;",
        "nonsense",
        "10000000c9000002=rx",
    ] {
        let e = MaskSpec::parse(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInitiator, "{bad:?}");
    }
    // Duplicates (in any spelling) are ignored; the canonical form is sorted and normalised.
    let s = MaskSpec::parse(
        " 10:00:00:00:C9:00:00:02 ; IQN.1991-05.com.microsoft:A;naa.10000000c9000002",
    )
    .unwrap();
    assert_eq!(
        s.to_string(),
        "10000000c9000002;iqn.1991-05.com.microsoft:a"
    );
    let s = MaskSpec::parse("@cluster-a=ro;10000000c9000002=RO").unwrap();
    assert_eq!(s.to_string(), "10000000c9000002=ro;@cluster-a=ro");
    assert!(MaskSpec::parse("10000000c9000002=ro;10000000c9000002=rw").is_err());
}

#[test]
fn set_mask_replaces_and_a_bad_list_changes_nothing() {
    let mut t = MaskTable::new();
    t.add_lun(1, MaskSpec::parse(HOSTS[0].0).unwrap(), None)
        .unwrap();
    t.set_mask(1, MaskSpec::parse(HOSTS[1].0).unwrap()).unwrap();
    assert!(t.access(1, &host(0)).is_none(), "replace, not add");
    assert!(t.access(1, &host(1)).is_some());
    assert!(MaskSpec::parse(&format!("{};bogus", HOSTS[2].0)).is_err());
    assert!(t.set_mask(1, MaskSpec::parse("@nogroup").unwrap()).is_err());
    assert!(
        t.access(1, &host(1)).is_some(),
        "unchanged after a failed change"
    );
}

#[test]
fn swap_puts_the_new_lun_exactly_where_the_old_was() {
    let mut t = MaskTable::new();
    let list = format!("{};{}=ro", HOSTS[0].0, HOSTS[1].0);
    t.add_lun(1, MaskSpec::parse(&list).unwrap(), None).unwrap();
    t.add_lun(2, MaskSpec::None, None).unwrap();
    t.set_host_number(1, &host(0), 7).unwrap();
    let before0 = t.access(1, &host(0)).unwrap();
    let before1 = t.access(1, &host(1)).unwrap();
    t.swap(1, 2).unwrap();
    assert_eq!(t.access(2, &host(0)), Some(before0));
    assert_eq!(t.access(2, &host(1)), Some(before1));
    assert_eq!(t.access(1, &host(0)), None);
    assert_eq!(t.spec(1).unwrap(), &MaskSpec::None);
    // Through `*`, the default number moves too.
    t.set_mask(2, MaskSpec::All(Access::ReadWrite)).unwrap();
    let n = t.default_number(2).unwrap();
    t.swap(2, 1).unwrap();
    assert_eq!(t.access(1, &host(5)).unwrap().number, n);
}
