//! Crash consistency of a whole pool: its log, checkpoint, lock, intents and orphans and every
//! LUN's engine files together, on the test-support crate's simulated directory
//! (`crash_sim::SimDir`: files as simulated devices with a volatile cache, names durable only after
//! their directory's sync, atomic renames).
//!
//! A seeded admin workload (LUN create and delete, masks set, added to and removed from, groups,
//! host numbers, snapshot LUNs, snapshot sets and their deletion, break, split, swap, extend,
//! online, LUN and pool metadata, checkpoints crossed) runs with writes of known data to the
//! LUNs, some flushed. The test keeps its own model of what each change does (the LUNs' names,
//! sizes, sources and data) and checks the live pool against it after every change; it records
//! the pool's whole observable admin state (`View`) after each change. Then, at every sync point
//! of the log (each file flush and directory sync, just before and just after), the directory is
//! rebuilt as a power loss could have left it (the pending writes and name changes all kept, all
//! lost, and random subsets) and the pool reopened on it:
//!
//! - once the pool's creation returned, it opens, and no LUN is damaged (nothing acknowledged is
//!   missing a volume);
//! - its admin state is that after the last acknowledged change, or after the one in flight
//!   (a prefix of the changes holding every acknowledged one: never a lost change, never half
//!   of one);
//! - every LUN reads, block by block, the value of its last flush or of a later write;
//! - no LUN directory was removed but one that the change in flight created or deleted: anything
//!   else open could not account for is in `orphans/`.
//!
//! The workload also clones, resyncs (a full copy and a revert from a snapshot LUN), exports and
//! imports LUNs, and takes, deletes, reverts to and exposes engine shadows: each of those is one
//! change to the harness, so a crash inside it must leave its old state or its new one (a clone
//! or an import half-filled is rolled back at open; a resync or a revert is finished).
//!
//! The test fails if it checked fewer crash states than a floor. `POOL_CRASH_SEED=<n>` runs
//! another workload (it may lack a kind of change the test asks for), `POOL_CRASH_TRACE=1` prints
//! each change as it is made.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cow_engine::fs::{EntryKind, Fs};
use umbra_test_support::crash_sim::{fates, sync_cuts, DirReplayer, Fate, Log, Node, Rng, SimDir};
use vds_core::model::LunStatus;
use vds_core::{Access, Array, ArrayOptions, InitiatorId, LunOptions, MaskSpec};

const BS: u64 = 4096;
/// Admin changes the workload makes.
const STEPS: usize = 115;
const POOL: &str = "/pool";
const HOSTS: [&str; 3] = [
    "iqn.2024-01.org.example:h1",
    "iqn.2024-01.org.example:h2",
    "iqn.2024-01.org.example:h3",
];
/// The initiator the workload writes its data as: every mask it sets grants it read-write.
const DATA: &str = "iqn.2024-01.org.example:data";

fn id(s: &str) -> InitiatorId {
    InitiatorId::parse(s).unwrap()
}

fn mask(s: &str) -> MaskSpec {
    MaskSpec::parse(s).unwrap()
}

/// Everything an administrator can observe of a pool, in a comparable form.
fn view(a: &Array) -> String {
    let mut out = String::new();
    for l in a.luns() {
        out += &format!(
            "lun {} {:?} size={} {:?} mask={:?} number={} source={:?} volatile={} meta={:?}\n",
            l.id,
            l.name,
            l.size,
            l.status,
            l.mask,
            l.number,
            l.source,
            l.volatile,
            a.lun_metadata(&l.name).unwrap()
        );
        if l.volatile {
            // Its engine shadows end with the pool (the live check counts them).
            continue;
        }
        for e in a.engine_shadows(&l.name).unwrap_or_default() {
            out += &format!(
                "  engine shadow {} {} size={} {:?}\n",
                e.id.get(),
                e.set,
                e.size,
                e.metadata
            );
        }
    }
    out += &format!("groups {:?}\n", a.groups());
    out += &format!("hosts {:?}\n", a.hosts());
    out += &format!("pool meta {:?}\n", a.pool_metadata());
    for h in HOSTS.iter().chain(&[DATA]) {
        out += &format!("view {h} {:?}\n", a.host_view(&id(h)));
    }
    out
}

/// The test's own model of one LUN.
#[derive(Clone, Debug)]
struct Lun {
    /// Each block's current fill value.
    current: Vec<u8>,
    /// Each block's values a crash may leave (the last flushed and every later write).
    allowed: Vec<Vec<u8>>,
    /// The LUN it is a snapshot LUN of, until split.
    source: Option<String>,
    /// A shadow LUN of a snapshot set, not yet broken: read-only, not written (`"exposed"` for
    /// a LUN exposing an engine shadow).
    shadow: Option<String>,
    /// The engine shadows of its volume: each id with the data it holds (one value a block).
    engine: Vec<(u64, Vec<u8>)>,
    /// The engine shadow (LUN, id) it exposes.
    exposes: Option<(String, u64)>,
    /// A volatile LUN: no snapshot LUN, set, clone or exposed shadow of it; its engine shadows
    /// end with the pool.
    volatile: bool,
}

impl Lun {
    fn new(blocks: usize) -> Lun {
        Lun {
            current: vec![0; blocks],
            allowed: vec![vec![0]; blocks],
            source: None,
            shadow: None,
            engine: Vec::new(),
            exposes: None,
            volatile: false,
        }
    }

    /// A LUN holding `data`, durable.
    fn holding(data: &[u8]) -> Lun {
        Lun {
            current: data.to_vec(),
            allowed: data.iter().map(|&v| vec![v]).collect(),
            ..Lun::new(0)
        }
    }

    /// Its data becomes `data`, durable (what a resync or a revert leaves).
    fn set_durable(&mut self, data: Vec<u8>) {
        self.allowed = data.iter().map(|&v| vec![v]).collect();
        self.current = data;
    }

    /// Whether every block's value is durable (as a flush leaves it).
    fn durable(&self) -> bool {
        self.allowed.iter().all(|a| a.len() == 1)
    }

    /// A snapshot of `self` (flushed), standing on `source`.
    fn snapshot(&self, source: &str) -> Lun {
        Lun {
            source: Some(source.to_string()),
            ..Lun::holding(&self.current)
        }
    }
}

type Model = BTreeMap<String, Lun>;

/// An admin change as the test recorded it: the log positions at its call and its return, and
/// the pool's view and the data model after it.
struct Step {
    start: usize,
    end: usize,
    view: String,
    model: Model,
    what: String,
}

/// A data change: from `pos` on, the data model is `model` (the admin state unchanged).
struct DataPoint {
    pos: usize,
    model: Model,
}

struct Workload {
    array: Array,
    log: Log,
    model: Model,
    steps: Vec<Step>,
    data: Vec<DataPoint>,
    rng: Rng,
    next_name: u32,
    next_value: u8,
    refused: Vec<String>,
    sets: BTreeSet<String>,
}

impl Workload {
    /// Checks the live pool against the model: the same LUNs, sizes and sources.
    fn check_live(&self) {
        let luns = self.array.luns();
        let names: Vec<&str> = luns.iter().map(|l| l.name.as_str()).collect();
        let expected: Vec<&str> = self.model.keys().map(String::as_str).collect();
        assert_eq!(names, expected, "the pool's LUNs");
        for l in &luns {
            let m = &self.model[&l.name];
            assert_eq!(l.size, m.current.len() as u64 * BS, "LUN {}'s size", l.name);
            assert_eq!(l.source, m.source, "LUN {}'s source", l.name);
            let engine: Vec<u64> = self
                .array
                .engine_shadows(&l.name)
                .unwrap()
                .iter()
                .map(|e| e.id.get())
                .collect();
            let expected: Vec<u64> = m.engine.iter().map(|e| e.0).collect();
            assert_eq!(engine, expected, "LUN {}'s engine shadows", l.name);
        }
    }

    /// Runs admin change `what` (`f` returns whether it changed the model's expectations through
    /// `model`'s update, run only on success).
    fn admin(
        &mut self,
        what: String,
        f: impl FnOnce(&Array) -> vds_core::Result<()>,
        update: impl FnOnce(&mut Model),
    ) {
        let before = view(&self.array);
        if std::env::var_os("POOL_CRASH_TRACE").is_some() {
            eprintln!("step {}: {what}", self.steps.len());
        }
        let start = self.log.len();
        match f(&self.array) {
            Ok(()) => update(&mut self.model),
            Err(e) => {
                assert_eq!(
                    view(&self.array),
                    before,
                    "{what} failed ({e}) but changed the pool"
                );
                self.refused.push(format!("{what}: {e}"));
            }
        }
        self.check_live();
        let end = self.log.len();
        self.steps.push(Step {
            start,
            end,
            view: view(&self.array),
            model: self.model.clone(),
            what,
        });
    }

    fn data_point(&mut self) {
        self.data.push(DataPoint {
            pos: self.log.len(),
            model: self.model.clone(),
        });
    }

    fn pick(&mut self, filter: impl Fn(&str, &Lun) -> bool) -> Option<String> {
        let v: Vec<&String> = self
            .model
            .iter()
            .filter(|(n, l)| filter(n, l))
            .map(|(n, _)| n)
            .collect();
        if v.is_empty() {
            return None;
        }
        Some(v[self.rng.below(v.len() as u64) as usize].clone())
    }

    /// A (LUN, engine shadow) of the model: with `exposed`, any; otherwise one no LUN exposes.
    fn engine_shadow(&mut self, exposed: bool) -> Option<(String, u64)> {
        let v: Vec<(String, u64)> = self
            .model
            .iter()
            .flat_map(|(n, l)| l.engine.iter().map(move |e| (n.clone(), e.0)))
            .filter(|s| exposed || !self.model.values().any(|l| l.exposes.as_ref() == Some(s)))
            .collect();
        if v.is_empty() {
            return None;
        }
        Some(v[self.rng.below(v.len() as u64) as usize].clone())
    }

    /// A LUN to snapshot or clone (no shadow, not volatile), flushed so that the copy's image
    /// is its flushed data, and the name of the new LUN.
    fn flushed_source(&mut self) -> Option<(String, String)> {
        let src = self.pick(|_, l| l.shadow.is_none() && !l.volatile)?;
        if !self.flush(&src) {
            return None;
        }
        Some((src, self.name()))
    }

    fn name(&mut self) -> String {
        self.next_name += 1;
        format!("l{}", self.next_name)
    }

    fn has_dependents(&self, name: &str) -> bool {
        self.model
            .values()
            .any(|l| l.source.as_deref() == Some(name))
    }

    /// The LUN number at which [`DATA`] may write LUN `name` (online, masked read-write to it).
    fn writable(&self, name: &str) -> Option<u32> {
        // A shadow LUN (of a set, or exposing an engine shadow) is read-only whatever its mask.
        if self.model.get(name)?.shadow.is_some() {
            return None;
        }
        let online = self.array.lun(name).ok()?.status == LunStatus::Online;
        let g = self.array.access(name, &id(DATA)).ok()??;
        (online && g.access == Access::ReadWrite).then_some(g.number)
    }

    /// Writes a new value to a block of a LUN [`DATA`] may write.
    fn write(&mut self) {
        let names: Vec<String> = self
            .model
            .keys()
            .filter(|n| self.writable(n).is_some())
            .cloned()
            .collect();
        if names.is_empty() {
            return;
        }
        let name = names[self.rng.below(names.len() as u64) as usize].clone();
        self.next_value = self.next_value % 250 + 1;
        let v = self.next_value;
        let blocks = self.model[&name].current.len() as u64;
        let b = self.rng.below(blocks) as usize;
        self.array
            .write_at(&name, &id(DATA), &vec![v; BS as usize], b as u64 * BS)
            .unwrap();
        let l = self.model.get_mut(&name).unwrap();
        l.current[b] = v;
        l.allowed[b].push(v);
        self.data_point();
    }

    /// Flushes LUN `name` through a handle of [`DATA`]'s; false (nothing done) when [`DATA`] may
    /// not write it.
    fn flush(&mut self, name: &str) -> bool {
        let Some(number) = self.writable(name) else {
            return false;
        };
        self.array
            .open_lun(&id(DATA), number)
            .unwrap()
            .flush()
            .unwrap();
        let l = self.model.get_mut(name).unwrap();
        l.allowed = l.current.iter().map(|&v| vec![v]).collect();
        self.data_point();
        true
    }

    fn step(&mut self) {
        let masks = [
            format!("{};{DATA}", HOSTS[0]),
            format!("{}=ro;{};{DATA}", HOSTS[0], HOSTS[1]),
            "*".to_string(),
            format!("@cluster=ro;{DATA}"),
            DATA.to_string(),
        ];
        let mut pick = self.rng.below(27);
        let shadows = self
            .model
            .values()
            .any(|l| l.shadow.is_some() && l.exposes.is_none());
        let broken = self.steps.iter().any(|s| s.what.starts_with("break"));
        // A full pool makes room instead of refusing a new LUN.
        if matches!(pick, 0 | 1 | 10 | 11 | 12 | 19 | 21 | 25) && self.model.len() >= 7 {
            pick = 2;
        }
        if (pick == 12 || pick == 14) && shadows && (!broken || self.rng.percent(50)) {
            pick = 13;
        }
        match pick {
            0..=1 if self.model.len() < 7 => {
                let name = self.name();
                let blocks = 2 + self.rng.below(3) as usize;
                let m = masks[self.rng.below(masks.len() as u64) as usize].clone();
                let n = name.clone();
                let volatile = self.rng.percent(30);
                let opts = LunOptions { volatile };
                self.admin(
                    format!("create {name} ({blocks} blocks, mask {m:?}, volatile {volatile})"),
                    |a| a.create_lun_with(&n, blocks as u64 * BS, &mask(&m), opts),
                    |model| {
                        let mut l = Lun::new(blocks);
                        l.volatile = volatile;
                        model.insert(name, l);
                    },
                );
            }
            2 if self.model.len() > 2 => {
                let Some(name) = self.pick(|_, _| true) else {
                    return;
                };
                if self.has_dependents(&name) {
                    return;
                }
                let n = name.clone();
                self.admin(
                    format!("delete {name}"),
                    |a| a.delete_lun(&n),
                    |model| {
                        model.remove(&name);
                    },
                );
            }
            3..=5 => {
                for _ in 0..3 {
                    self.write();
                }
                if self.rng.percent(60) {
                    if let Some(name) = self.pick(|_, l| l.shadow.is_none()) {
                        self.flush(&name);
                    }
                }
                // A LUN the data initiator may not write (a snapshot LUN masked to no one at
                // birth, a LUN a swap replaced, one offline) is given a mask and brought online.
                if let Some(name) = self.pick(|_, l| l.shadow.is_none()) {
                    if self.writable(&name).is_none() {
                        let m = masks[self.rng.below(masks.len() as u64) as usize].clone();
                        self.admin(
                            format!("set mask of {name} to {m:?}"),
                            |a| a.set_mask(&name, &mask(&m)),
                            |_| {},
                        );
                        self.admin(
                            format!("online true: {name}"),
                            |a| a.set_online(&name, true),
                            |_| {},
                        );
                    }
                }
            }
            6 => {
                let Some(name) = self.pick(|_, _| true) else {
                    return;
                };
                let m = masks[self.rng.below(masks.len() as u64) as usize].clone();
                self.admin(
                    format!("set mask of {name} to {m:?}"),
                    |a| a.set_mask(&name, &mask(&m)),
                    |_| {},
                );
            }
            7 => {
                let Some(name) = self.pick(|_, _| true) else {
                    return;
                };
                let h = HOSTS[self.rng.below(3) as usize];
                if self.rng.percent(50) {
                    self.admin(
                        format!("add {h} to the mask of {name}"),
                        |a| a.add_to_mask(&name, &mask(h)),
                        |_| {},
                    );
                } else {
                    self.admin(
                        format!("remove {h} from the mask of {name}"),
                        |a| a.remove_from_mask(&name, &mask(h)),
                        |_| {},
                    );
                }
            }
            8 => {
                let members: Vec<InitiatorId> = HOSTS
                    .iter()
                    .filter(|_| self.rng.percent(50))
                    .map(|h| id(h))
                    .collect();
                let group = if self.rng.percent(50) {
                    "cluster"
                } else {
                    "spare"
                };
                if members.is_empty() && group == "spare" {
                    self.admin(
                        "delete group spare".into(),
                        |a| a.delete_group("spare"),
                        |_| {},
                    );
                } else {
                    self.admin(
                        format!("set group {group} to {} members", members.len()),
                        |a| a.set_group(group, &members),
                        |_| {},
                    );
                }
            }
            9 => {
                let Some(name) = self.pick(|_, _| true) else {
                    return;
                };
                let number = 10 + self.steps.len() as u32;
                self.admin(
                    format!("add h1 to the mask of {name}"),
                    |a| a.add_to_mask(&name, &mask(HOSTS[0])),
                    |_| {},
                );
                self.admin(
                    format!("host number {number} of {name} for h1"),
                    |a| a.set_host_number(&name, &id(HOSTS[0]), number),
                    |_| {},
                );
            }
            10..=11 if self.model.len() < 8 => {
                let Some((src, name)) = self.flushed_source() else {
                    return;
                };
                let (s, n) = (src.clone(), name.clone());
                self.admin(
                    format!("snapshot LUN {name} of {src}"),
                    |a| a.snapshot_lun(&s, &n),
                    |model| {
                        let snap = model[&src].snapshot(&src);
                        model.insert(name, snap);
                    },
                );
            }
            12 if self.model.len() < 7 => {
                let srcs: Vec<String> = self
                    .model
                    .iter()
                    .filter(|(_, l)| l.shadow.is_none() && l.source.is_none() && !l.volatile)
                    .map(|(n, _)| n.clone())
                    .take(2)
                    .collect();
                if srcs.is_empty() {
                    return;
                }
                for s in &srcs {
                    if !self.flush(s) {
                        return;
                    }
                }
                let names: Vec<String> = srcs.iter().map(|_| self.name()).collect();
                let pairs: Vec<(String, String)> =
                    srcs.iter().cloned().zip(names.iter().cloned()).collect();
                let set_name = std::cell::RefCell::new(String::new());
                let got = &set_name;
                self.admin(
                    format!("snapshot set {pairs:?}"),
                    |a| {
                        let p: Vec<(&str, &str)> = pairs
                            .iter()
                            .map(|(s, n)| (s.as_str(), n.as_str()))
                            .collect();
                        *got.borrow_mut() = a.snapshot_set(&p, &BTreeMap::new())?;
                        Ok(())
                    },
                    |model| {
                        for (s, n) in &pairs {
                            let mut snap = model[s].snapshot(s);
                            snap.shadow = Some(set_name.borrow().clone());
                            model.insert(n.clone(), snap);
                        }
                    },
                );
                let set = set_name.borrow().clone();
                if !set.is_empty() {
                    self.sets.insert(set);
                }
            }
            13 => {
                let Some(name) = self.pick(|_, l| l.shadow.is_some() && l.exposes.is_none()) else {
                    return;
                };
                self.admin(
                    format!("break shadow {name}"),
                    |a| a.break_shadow(&name),
                    |model| model.get_mut(&name).unwrap().shadow = None,
                );
            }
            14 => {
                let Some(set) = self.sets.iter().next().cloned() else {
                    return;
                };
                self.sets.remove(&set);
                let s = set.clone();
                self.admin(
                    format!("delete snapshot set {set}"),
                    |a| a.delete_snapshot_set(&s).map(|_| ()),
                    |model| model.retain(|_, l| l.shadow.as_deref() != Some(set.as_str())),
                );
            }
            15 => {
                let Some(name) = self.pick(|_, l| l.source.is_some() && l.shadow.is_none()) else {
                    return;
                };
                if self.has_dependents(&name) {
                    return;
                }
                self.admin(
                    format!("split {name}"),
                    |a| a.split_lun(&name).wait(),
                    |model| model.get_mut(&name).unwrap().source = None,
                );
            }
            16 => {
                let Some(damaged) = self.pick(|_, l| l.shadow.is_none()) else {
                    return;
                };
                let Some(repl) = self.pick(|n, l| n != damaged && l.shadow.is_none()) else {
                    return;
                };
                self.admin(
                    format!("swap {damaged} for {repl}"),
                    |a| a.swap_lun(&damaged, &repl),
                    |_| {},
                );
            }
            17 => {
                let Some(name) = self.pick(|_, l| l.source.is_none() && l.shadow.is_none()) else {
                    return;
                };
                let blocks = self.model[&name].current.len() + 1;
                self.admin(
                    format!("extend {name} to {blocks} blocks"),
                    |a| a.extend_lun(&name, blocks as u64 * BS),
                    |model| {
                        let l = model.get_mut(&name).unwrap();
                        l.current.push(0);
                        l.allowed.push(vec![0]);
                    },
                );
            }
            18 => {
                let Some(name) = self.pick(|_, _| true) else {
                    return;
                };
                let online = self.rng.percent(60);
                let v = format!("v{}", self.steps.len());
                self.admin(
                    format!("online {online}: {name}"),
                    |a| a.set_online(&name, online),
                    |_| {},
                );
                self.admin(
                    format!("metadata of {name}"),
                    |a| a.set_lun_metadata(&name, "note", Some(&v)),
                    |_| {},
                );
            }
            19 if self.model.len() < 8 => {
                let Some((src, name)) = self.flushed_source() else {
                    return;
                };
                let (s, n) = (src.clone(), name.clone());
                self.admin(
                    format!("clone {src} to {name}"),
                    |a| a.clone_lun(&s, &n).wait(),
                    |model| {
                        let c = Lun::holding(&model[&src].current);
                        model.insert(name, c);
                    },
                );
            }
            20 => {
                let Some(target) = self.pick(|_, l| l.shadow.is_none()) else {
                    return;
                };
                let blocks = self.model[&target].current.len();
                let Some(source) = self.pick(|n, l| n != target && l.current.len() == blocks)
                else {
                    return;
                };
                // The source's data durable, so that the copy is known whatever a crash does.
                if !self.model[&source].durable() && !self.flush(&source) {
                    return;
                }
                if !self.model[&source].durable() {
                    return;
                }
                let (s, t) = (source.clone(), target.clone());
                self.admin(
                    format!("resync {target} from {source}"),
                    |a| a.resync_lun(&s, &t).wait(),
                    |model| {
                        let data = model[&source].current.clone();
                        model.get_mut(&target).unwrap().set_durable(data);
                    },
                );
            }
            21 if self.model.len() < 8 => {
                let Some(src) = self.pick(|_, _| true) else {
                    return;
                };
                let image = format!("/image-{}", self.steps.len());
                let data = self.model[&src].current.clone();
                let img = image.clone();
                let refused = self.refused.len();
                self.admin(
                    format!("export {src} to {image}"),
                    |a| a.export_lun(&src, &img).wait(),
                    |_| {},
                );
                if self.refused.len() > refused {
                    return;
                }
                let name = self.name();
                let n = name.clone();
                self.admin(
                    format!("import {name} from {image}"),
                    |a| a.import_lun(&n, &image).wait(),
                    |model| {
                        model.insert(name, Lun::holding(&data));
                    },
                );
            }
            22 => {
                let luns: Vec<String> = self
                    .model
                    .iter()
                    .filter(|(_, l)| l.shadow.is_none() && l.engine.len() < 3)
                    .map(|(n, _)| n.clone())
                    .filter(|_| self.rng.percent(50))
                    .take(2)
                    .collect();
                if luns.is_empty() {
                    return;
                }
                let got = std::cell::RefCell::new(Vec::new());
                let (l2, g) = (luns.clone(), &got);
                self.admin(
                    format!("engine-set of {luns:?}"),
                    |a| {
                        let req: Vec<(&str, &[u8])> =
                            l2.iter().map(|n| (n.as_str(), n.as_bytes())).collect();
                        let set = a.engine_snapshot_set(&req)?;
                        *g.borrow_mut() = set.shadows;
                        Ok(())
                    },
                    |model| {
                        for (n, id) in got.borrow().iter() {
                            let l = model.get_mut(n).unwrap();
                            let data = l.current.clone();
                            // The set's freeze flushed the LUN.
                            l.allowed = data.iter().map(|&v| vec![v]).collect();
                            l.engine.push((id.get(), data));
                        }
                    },
                );
            }
            23 => {
                let Some((lun, id)) = self.engine_shadow(false) else {
                    return;
                };
                self.admin(
                    format!("engine-delete {id} of {lun}"),
                    |a| a.delete_engine_shadow(&lun, cow_engine::SnapshotId::new(id)),
                    |model| model.get_mut(&lun).unwrap().engine.retain(|e| e.0 != id),
                );
            }
            24 => {
                let Some((lun, id)) = self.engine_shadow(true) else {
                    return;
                };
                let blocks = self.model[&lun].current.len();
                let data = self.model[&lun]
                    .engine
                    .iter()
                    .find(|e| e.0 == id)
                    .unwrap()
                    .1
                    .clone();
                // A volatile LUN's revert cut by a crash cannot be finished (its shadow is gone).
                let l = &self.model[&lun];
                if data.len() != blocks || l.shadow.is_some() || l.volatile {
                    return;
                }
                self.admin(
                    format!("revert {lun} to engine shadow {id}"),
                    |a| {
                        a.revert_to_engine_shadow(&lun, cow_engine::SnapshotId::new(id))
                            .wait()
                    },
                    |model| {
                        model.get_mut(&lun).unwrap().set_durable(data);
                    },
                );
            }
            25 if self.model.len() < 8 => {
                let Some((lun, id)) = self.engine_shadow(false) else {
                    return;
                };
                if self.model[&lun].volatile {
                    return;
                }
                let data = self.model[&lun]
                    .engine
                    .iter()
                    .find(|e| e.0 == id)
                    .unwrap()
                    .1
                    .clone();
                let name = self.name();
                let (n, l) = (name.clone(), lun.clone());
                self.admin(
                    format!("expose {id} of {lun} as {name}"),
                    |a| a.expose_engine_shadow(&l, cow_engine::SnapshotId::new(id), &n),
                    |model| {
                        let e = Lun {
                            source: Some(lun.clone()),
                            shadow: Some("exposed".into()),
                            exposes: Some((lun, id)),
                            ..Lun::holding(&data)
                        };
                        model.insert(name, e);
                    },
                );
            }
            _ => {
                let v = format!("v{}", self.steps.len());
                let clear = self.rng.percent(20);
                self.admin(
                    format!("pool metadata (clear {clear})"),
                    |a| a.set_pool_metadata("k", if clear { None } else { Some(&v) }),
                    |_| {},
                );
            }
        }
    }
}

/// The LUN directories (ids) in `luns/` and `orphans/` of a crash image.
fn lun_dirs(names: &BTreeMap<PathBuf, Node>, sub: &str) -> BTreeSet<String> {
    let dir = Path::new(POOL).join(sub);
    names
        .keys()
        .filter(|k| k.parent() == Some(dir.as_path()))
        .filter_map(|k| k.file_name()?.to_str().map(str::to_string))
        .collect()
}

/// The LUN ids of a view.
fn ids(view: &str) -> BTreeSet<String> {
    view.lines()
        .filter_map(|l| l.strip_prefix("lun "))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect()
}

/// Why `a`'s data does not match `model` (`None`: it does).
fn data_mismatch(a: &Array, model: &Model) -> Option<String> {
    let mut buf = vec![0u8; BS as usize];
    for (name, l) in model {
        for (b, allowed) in l.allowed.iter().enumerate() {
            if let Err(e) = a.admin_read_at(name, &mut buf, b as u64 * BS) {
                return Some(format!("LUN {name} block {b} does not read: {e}"));
            }
            if !allowed.iter().any(|&v| buf.iter().all(|&x| x == v)) {
                return Some(format!(
                    "LUN {name} block {b} reads {} (allowed {allowed:?})",
                    buf[0]
                ));
            }
        }
    }
    None
}

#[test]
fn a_pool_survives_a_crash_at_every_sync_point_of_an_admin_workload() {
    let log = Log::new();
    let sim = SimDir::new(&log);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let array = Array::open_in(fs.clone(), POOL, ArrayOptions::default()).unwrap();
    // Checkpoints are crossed several times.
    array.set_checkpoint_interval(16).unwrap();
    let created = log.len();
    let mut w = Workload {
        array,
        log: log.clone(),
        model: Model::new(),
        steps: Vec::new(),
        data: Vec::new(),
        rng: Rng::new(
            std::env::var("POOL_CRASH_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0x9e11),
        ),
        next_name: 0,
        next_value: 0,
        refused: Vec::new(),
        sets: BTreeSet::new(),
    };
    w.steps.push(Step {
        start: 0,
        end: created,
        view: view(&w.array),
        model: Model::new(),
        what: "open".into(),
    });
    for name in ["a", "b"] {
        let n = name.to_string();
        w.admin(
            format!("create {name}"),
            |a| a.create_lun(name, 3 * BS, &mask(&format!("{};{DATA}", HOSTS[0]))),
            |m| {
                m.insert(n, Lun::new(3));
            },
        );
    }
    while w.steps.len() < STEPS {
        w.step();
    }
    let kinds: BTreeSet<&str> = w
        .steps
        .iter()
        .map(|s| s.what.split(' ').next().unwrap())
        .collect();
    assert!(
        w.refused.len() * 4 < w.steps.len(),
        "too many changes refused: {:#?}",
        w.refused
    );
    for k in [
        "create",
        "delete",
        "set",
        "add",
        "remove",
        "host",
        "snapshot",
        "break",
        "split",
        "swap",
        "extend",
        "online",
        "pool",
        "clone",
        "resync",
        "export",
        "import",
        "engine-set",
        "engine-delete",
        "revert",
        "expose",
    ] {
        assert!(
            kinds.contains(k),
            "the workload has no {k:?} change: {kinds:?}; refused: {:#?}",
            w.refused
        );
    }
    assert!(
        w.steps.iter().any(|s| s.what.contains("volatile true")),
        "the workload makes no volatile LUN"
    );
    sim.kill();
    let Workload {
        steps,
        data,
        array,
        refused,
        ..
    } = w;
    drop(array);

    let events = log.events();
    let cuts = sync_cuts(&events);

    let mut r = DirReplayer::new(&events);
    let mut rng = Rng::new(0x5eed);
    let (mut states, mut opened, mut in_flight_seen) = (0u64, 0u64, 0u64);
    for &cut in &cuts {
        r.advance(cut);
        // The changes acknowledged at `cut`, and the one in flight (if it had begun).
        let acked = steps.iter().filter(|s| s.end <= cut).count();
        let in_flight = steps.get(acked).filter(|s| s.start < cut);
        // Nothing pending: one crash state only; otherwise all kept, all lost, and (at every other
        // cut) a random subset.
        let choices = match (r.pending().is_empty(), cut % 2) {
            (true, _) => 1,
            (false, 0) => 3,
            (false, _) => 2,
        };
        for choice in 0..choices {
            let crashed = r.build(fates(choice, &mut rng), &Log::discarding());
            let names = crashed.names();
            let before_luns = lun_dirs(&names, "luns");
            let before_orphans = lun_dirs(&names, "orphans");
            states += 1;
            let cfs: Arc<dyn Fs> = Arc::new(crashed.clone());
            let a = match Array::open_existing_in(cfs.clone(), POOL) {
                Ok(a) => a,
                Err(e) => {
                    assert!(
                        acked == 0,
                        "crash at {cut}/{} (choice {choice}, after {:?}): the pool does not \
                         open: {}",
                        events.len(),
                        steps[acked - 1].what,
                        e.report()
                    );
                    continue;
                }
            };
            opened += 1;
            let at = || {
                format!(
                    "crash at {cut} (choice {choice}) after {:?}{}",
                    steps[acked.max(1) - 1].what,
                    in_flight.map_or(String::new(), |s| format!(", in {:?}", s.what))
                )
            };
            // A revert or resync the crash cut is finished in the background: the checks below
            // are of the pool once it is done.
            if let Err(e) = a.wait_resumed() {
                panic!("{}: a resumed operation failed: {}", at(), e.report());
            }
            assert!(
                a.damaged_luns().is_empty(),
                "{}: damaged LUNs {:?}",
                at(),
                a.damaged_luns()
            );
            let got = view(&a);
            let mut candidates: Vec<(&String, Model)> = Vec::new();
            if acked > 0 {
                let last = &steps[acked - 1];
                // The data as the writes since the last change left it.
                let model = data
                    .iter()
                    .rev()
                    .find(|d| d.pos <= cut && d.pos >= last.end)
                    .map_or(last.model.clone(), |d| d.model.clone());
                candidates.push((&last.view, model));
            }
            if let Some(s) = in_flight {
                candidates.push((&s.view, s.model.clone()));
            }
            let matching: Vec<&(&String, Model)> =
                candidates.iter().filter(|(v, _)| **v == got).collect();
            assert!(
                !matching.is_empty(),
                "{}: the pool holds\n{got}\nexpected one of\n{}",
                at(),
                candidates
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join("--- or\n")
            );
            if matching.len() < candidates.len() {
                in_flight_seen += 1;
            }
            let mismatches: Vec<String> = matching
                .iter()
                .filter_map(|(_, m)| data_mismatch(&a, m))
                .collect();
            assert!(
                mismatches.len() < matching.len(),
                "{}: {}",
                at(),
                mismatches.join("; ")
            );
            // Nothing open could not account for is gone: a LUN directory removed is one the
            // change in flight created or deleted.
            let after_names = crashed.names();
            let base = |n: &String| n.split('.').next().unwrap().to_string();
            let kept: BTreeSet<String> = lun_dirs(&after_names, "luns")
                .iter()
                .chain(&lun_dirs(&after_names, "orphans"))
                .map(base)
                .collect();
            let settled = ids(candidates[0].0);
            let after_flight = in_flight.map(|s| ids(&s.view));
            let live = ids(&got);
            for d in before_luns.iter().chain(&before_orphans).map(base) {
                if kept.contains(&d) {
                    continue;
                }
                let created_in_flight = !settled.contains(&d);
                let deleted_in_flight = after_flight.as_ref().is_some_and(|f| !f.contains(&d));
                assert!(
                    !live.contains(&d) && (created_in_flight || deleted_in_flight),
                    "{}: LUN directory {d} was removed",
                    at()
                );
            }
            for lun in ids(&got) {
                assert_eq!(
                    cfs.kind(&Path::new(POOL).join("luns").join(&lun)).unwrap(),
                    Some(EntryKind::Dir),
                    "{}: LUN {lun} has no directory",
                    at()
                );
            }
        }
    }
    eprintln!(
        "{} changes ({} refused), {} events, {} cuts: {states} crash states checked, {opened} \
         opened, {in_flight_seen} of them inside a change",
        steps.len(),
        refused.len(),
        events.len(),
        cuts.len()
    );
    assert!(states >= 2500, "only {states} crash states checked");
    assert!(opened >= 2400, "only {opened} crash states opened");
}

/// A recorded pool on a simulated directory with LUNs `a`, `b` and `c` (2 blocks, masked to the
/// first host), each with its name's first byte written to block 0, and a snapshot set of the
/// three (`sa`, `sb`, `sc`), whose name is returned.
fn recorded_pool_with_a_set() -> (Log, SimDir, Array, String) {
    let log = Log::new();
    let sim = SimDir::new(&log);
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let a = Array::open_in(fs, POOL, ArrayOptions::default()).unwrap();
    for name in ["a", "b", "c"] {
        a.create_lun(name, 2 * BS, &mask(HOSTS[0])).unwrap();
        a.write_at(name, &id(HOSTS[0]), &[name.as_bytes()[0]; BS as usize], 0)
            .unwrap();
    }
    let set = a
        .snapshot_set(&[("a", "sa"), ("b", "sb"), ("c", "sc")], &BTreeMap::new())
        .unwrap();
    (log, sim, a, set)
}

/// Reopens the pool `events` recorded on the crash images of every cut from `start` to `end`
/// (the pending writes all kept, and all lost), passing each to `check` with its cut and fate.
fn each_crash(
    events: &[umbra_test_support::crash_sim::Event],
    start: usize,
    end: usize,
    mut check: impl FnMut(usize, Fate, Array),
) {
    let mut r = DirReplayer::new(events);
    for cut in start..=end {
        r.advance(cut);
        for fate in [Fate::Kept, Fate::Lost] {
            let crashed: Arc<dyn Fs> = Arc::new(r.build(|_| fate, &Log::discarding()));
            let a = Array::open_existing_in(crashed, POOL)
                .unwrap_or_else(|e| panic!("crash at {cut} ({fate:?}): {}", e.report()));
            a.wait_resumed()
                .unwrap_or_else(|e| panic!("crash at {cut} ({fate:?}): resumed: {}", e.report()));
            check(cut, fate, a);
        }
    }
}

/// Why: `delete_snapshot_set` deleted the set's LUNs one pool record after another, so a crash
/// between two of them left the set half deleted (found by the harness above). Now every crash
/// state of the delete holds the whole set or none of it, and the pool opens either way.
#[test]
fn a_snapshot_set_is_deleted_whole_or_not_at_all_after_a_crash() {
    let (log, sim, a, set) = recorded_pool_with_a_set();
    let start = log.len();
    a.delete_snapshot_set(&set).unwrap();
    let end = log.len();
    sim.kill();
    drop(a);

    let (mut whole, mut none) = (0, 0);
    each_crash(&log.events(), start, end, |cut, fate, a| {
        let shadows = a.snapshot_set_luns(&set);
        match shadows.len() {
            0 => none += 1,
            3 => whole += 1,
            _ => panic!("crash at {cut} ({fate:?}): the set holds {shadows:?}"),
        }
        assert!(a.damaged_luns().is_empty(), "crash at {cut}");
        // The sources and their data are untouched.
        let mut buf = vec![0u8; BS as usize];
        for name in ["a", "b", "c"] {
            a.admin_read_at(name, &mut buf, 0).unwrap();
            assert!(
                buf.iter().all(|&x| x == name.as_bytes()[0]),
                "crash at {cut}"
            );
        }
    });
    assert!(whole > 0 && none > 0, "whole {whole}, none {none}");
}

/// Import, export, clone and split name their files on the pool's file system: on a simulated
/// directory the image exported is a file of it, imported back it holds the same data, and a
/// clone split into its own directory reads the same; a pool reopened on the tree as it stands
/// holds them all.
#[test]
fn import_export_clone_and_split_run_on_the_pools_file_system() {
    let sim = SimDir::new(&Log::discarding());
    let fs: Arc<dyn Fs> = Arc::new(sim.clone());
    let a = Array::open_in(fs.clone(), POOL, ArrayOptions::default()).unwrap();
    a.create_lun("src", 4 * BS, &mask(HOSTS[0])).unwrap();
    a.write_at("src", &id(HOSTS[0]), &[7; BS as usize], BS)
        .unwrap();
    a.export_lun("src", "/src.img").wait().unwrap();
    let img = fs.read_file(Path::new("/src.img")).unwrap();
    assert_eq!(img.len() as u64, 4 * BS);
    assert!(img[BS as usize..2 * BS as usize].iter().all(|&b| b == 7));
    assert!(img[..BS as usize].iter().all(|&b| b == 0));
    a.import_lun("copy", "/src.img").wait().unwrap();
    a.clone_lun("src", "clone").wait().unwrap();
    let lun = a.lun("clone").unwrap();
    assert_eq!(lun.source, None, "the clone is split from its source");
    let names = sim.names();
    assert!(
        names.contains_key(&PathBuf::from(format!("{POOL}/luns/{}/origin.img", lun.id))),
        "the split wrote the clone's origin in its directory"
    );
    drop(a);
    let a = Array::open_existing_in(fs, POOL).unwrap();
    let mut buf = vec![0u8; BS as usize];
    for name in ["src", "copy", "clone"] {
        a.admin_read_at(name, &mut buf, BS).unwrap();
        assert!(buf.iter().all(|&b| b == 7), "{name}");
    }
    assert!(a.orphans().is_empty());
}

/// Why: importing a transportable set (metadata and a mask on every shadow LUN) and breaking it
/// (a break and a mask on each) took one pool record per LUN and change, so a crash between two
/// left the set half imported or half broken. `Array::batch` makes them one record: every crash
/// state of a batch holds all of it or none of it.
#[test]
fn a_batch_is_applied_whole_or_not_at_all_after_a_crash() {
    use vds_core::AdminOp;
    let (log, sim, a, _) = recorded_pool_with_a_set();
    let shadows = ["sa", "sb", "sc"];
    let import: Vec<AdminOp> = shadows
        .iter()
        .flat_map(|s| {
            [
                AdminOp::SetLunMetadata {
                    lun: s.to_string(),
                    key: "vss:exposure".into(),
                    value: Some("h2".into()),
                },
                AdminOp::AddToMask {
                    lun: s.to_string(),
                    entries: mask(&format!("{}=ro", HOSTS[1])),
                },
            ]
        })
        .collect();
    let brk: Vec<AdminOp> = shadows
        .iter()
        .flat_map(|s| {
            [
                AdminOp::BreakShadow { lun: s.to_string() },
                AdminOp::AddToMask {
                    lun: s.to_string(),
                    entries: mask(HOSTS[1]),
                },
            ]
        })
        .collect();
    // A batch whose last change fails changes nothing.
    let mut bad = import.clone();
    bad.push(AdminOp::BreakShadow { lun: "nope".into() });
    let before = view(&a);
    let e = a.batch(&bad).unwrap_err();
    assert!(e.to_string().contains("change 7 of the batch"), "{e}");
    assert_eq!(view(&a), before, "a failed batch changed the pool");
    let views = [view(&a), String::new(), String::new()];
    let start = log.len();
    a.batch(&import).unwrap();
    let mid = log.len();
    let imported = view(&a);
    a.batch(&brk).unwrap();
    let end = log.len();
    let broken = view(&a);
    for s in shadows {
        assert!(!a.is_shadow(s).unwrap());
        assert_eq!(
            a.access(s, &id(HOSTS[1])).unwrap().unwrap().access,
            Access::ReadWrite
        );
    }
    sim.kill();
    drop(a);
    let views = [views[0].clone(), imported, broken];

    let mut seen = [0; 3];
    each_crash(&log.events(), start, end, |cut, fate, a| {
        let got = view(&a);
        // Before the import's end, the state before it or after it; then after it or after the
        // break.
        let allowed: &[usize] = if cut <= mid { &[0, 1] } else { &[1, 2] };
        let Some(&which) = allowed.iter().find(|&&i| views[i] == got) else {
            panic!("crash at {cut} ({fate:?}): the pool holds\n{got}");
        };
        seen[which] += 1;
    });
    assert!(seen.iter().all(|&n| n > 0), "states seen: {seen:?}");
}
