//! The mask table: who sees which LUN, with what access, at which host LUN number.
//!
//! Indexes kept in step with every change, so queries never scan all LUNs:
//! - per LUN: its [`MaskSpec`] and the resolved grants (host -> access, number);
//! - per host: the LUNs granted to it explicitly (by its own entry or a group) and the numbers it uses;
//! - the LUNs unmasked to every host (`*`), which every host sees at their default number.
//!
//! Every change is planned completely (validated, numbers chosen) before anything is modified, so a
//! failed change leaves the table exactly as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::spec::{check_name, Access, MaskSpec, Principal};
use crate::error::{Error, ErrorKind, Result};
use crate::initiator::InitiatorId;

/// A LUN's identity inside the table (never reused).
pub type LunId = u64;

/// The largest LUN number (the SAM flat addressing space).
pub const MAX_LUN_NUMBER: u32 = 16383;

/// What one host may do with one LUN, and where it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Read-write or read-only.
    pub access: Access,
    /// The LUN number the host sees it at.
    pub number: u32,
}

/// Who sees a LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LunHosts {
    /// Every host, at the LUN's default number unless it has a number of its own.
    All {
        /// The access every host gets.
        access: Access,
        /// The default LUN number.
        number: u32,
        /// Hosts with a number of their own for this LUN.
        own_numbers: BTreeMap<InitiatorId, Grant>,
    },
    /// Exactly these hosts (possibly none).
    Hosts(BTreeMap<InitiatorId, Grant>),
}

/// How a change altered one LUN's visibility, for notifications.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskDelta {
    /// The LUN.
    pub lun: LunId,
    /// Hosts that can see it now and could not before.
    pub gained: Vec<InitiatorId>,
    /// Hosts that could see it before and cannot now.
    pub lost: Vec<InitiatorId>,
    /// Hosts whose access or number changed.
    pub modified: Vec<InitiatorId>,
    /// Whether every host saw it before / sees it now.
    pub all_before: bool,
    /// See `all_before`.
    pub all_after: bool,
}

impl MaskDelta {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty()
            && self.lost.is_empty()
            && self.modified.is_empty()
            && self.all_before == self.all_after
    }
}

#[derive(Debug, Clone)]
struct LunMask {
    spec: MaskSpec,
    default_number: u32,
    grants: BTreeMap<InitiatorId, Grant>,
}

#[derive(Debug, Clone, Default)]
struct HostIndex {
    luns: BTreeMap<LunId, Grant>,
    numbers: BTreeMap<u32, LunId>,
}

/// The mask table.
#[derive(Debug, Clone, Default)]
pub struct MaskTable {
    luns: HashMap<LunId, LunMask>,
    /// LUNs unmasked to every host, by default number.
    star: BTreeMap<u32, LunId>,
    hosts: HashMap<InitiatorId, HostIndex>,
    groups: BTreeMap<String, BTreeSet<InitiatorId>>,
    group_luns: HashMap<String, BTreeSet<LunId>>,
    default_numbers: BTreeMap<u32, LunId>,
}

/// Number choices made while planning one change, so one change never hands a host a number twice.
#[derive(Default)]
struct Plan {
    taken: HashMap<InitiatorId, BTreeSet<u32>>,
}

impl MaskTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lun(&self, id: LunId) -> Result<&LunMask> {
        self.luns
            .get(&id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no LUN with id {id}")))
    }

    /// The LUN's mask spec.
    pub fn spec(&self, id: LunId) -> Result<&MaskSpec> {
        Ok(&self.lun(id)?.spec)
    }

    /// The LUN's array-wide default number (VDS `GetLunNumber`).
    pub fn default_number(&self, id: LunId) -> Result<u32> {
        Ok(self.lun(id)?.default_number)
    }

    /// True if the table has this LUN.
    pub fn contains(&self, id: LunId) -> bool {
        self.luns.contains_key(&id)
    }

    /// The hosts a spec resolves to, each with its effective access: a host's own entry wins over
    /// its groups; among groups read-write wins.
    fn resolve(&self, spec: &MaskSpec) -> Result<BTreeMap<InitiatorId, Access>> {
        let mut own = BTreeMap::new();
        let mut via_groups: BTreeMap<InitiatorId, Access> = BTreeMap::new();
        for (p, a) in spec.entries() {
            match p {
                Principal::Host(h) => {
                    own.insert(h.clone(), a);
                }
                Principal::Group(g) => {
                    let members = self.groups.get(g).ok_or_else(|| {
                        Error::new(ErrorKind::NotFound, format!("no initiator group {g:?}"))
                    })?;
                    for m in members {
                        let e = via_groups.entry(m.clone()).or_insert(a);
                        *e = (*e).max(a);
                    }
                }
            }
        }
        for (h, a) in via_groups {
            own.entry(h).or_insert(a);
        }
        Ok(own)
    }

    fn free_for(&self, host: &InitiatorId, n: u32, lun: LunId, plan: &Plan) -> bool {
        let used_by_host = self
            .hosts
            .get(host)
            .and_then(|h| h.numbers.get(&n))
            .is_some_and(|&l| l != lun);
        let star_other = self.star.get(&n).is_some_and(|&l| l != lun);
        let planned = plan.taken.get(host).is_some_and(|t| t.contains(&n));
        !used_by_host && !star_other && !planned
    }

    /// Chooses host `host`'s number for `lun`: the LUN's default number if free for the host, else
    /// the lowest free one.
    fn choose_number(
        &self,
        host: &InitiatorId,
        lun: LunId,
        default: u32,
        plan: &mut Plan,
    ) -> Result<u32> {
        let n = if self.free_for(host, default, lun, plan) {
            default
        } else {
            (0..=MAX_LUN_NUMBER)
                .find(|&n| self.free_for(host, n, lun, plan))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NoSpace,
                        format!("host {host} has no free LUN number"),
                    )
                })?
        };
        plan.taken.entry(host.clone()).or_default().insert(n);
        Ok(n)
    }

    /// Plans the grants of `lun` under `spec`: keeps numbers of hosts that stay, chooses numbers for
    /// new hosts.
    fn plan_grants(
        &self,
        lun: LunId,
        default: u32,
        old: &BTreeMap<InitiatorId, Grant>,
        spec: &MaskSpec,
        plan: &mut Plan,
    ) -> Result<BTreeMap<InitiatorId, Grant>> {
        if let MaskSpec::All(access) = spec {
            // Every host sees it; hosts with a number of their own keep it.
            return Ok(old
                .iter()
                .map(|(h, g)| {
                    (
                        h.clone(),
                        Grant {
                            access: *access,
                            number: g.number,
                        },
                    )
                })
                .collect());
        }
        let targets = self.resolve(spec)?;
        let mut grants = BTreeMap::new();
        for (h, access) in targets {
            let number = match old.get(&h) {
                Some(g) => g.number,
                None => self.choose_number(&h, lun, default, plan)?,
            };
            grants.insert(h, Grant { access, number });
        }
        Ok(grants)
    }

    /// Checks that unmasking `lun` to every host at `number` collides with no host's own numbers
    /// (hosts with a number of their own for `lun` keep it and are not affected).
    fn check_star(&self, lun: LunId, number: u32) -> Result<()> {
        if let Some((h, _)) = self.hosts.iter().find(|(_, idx)| {
            !idx.luns.contains_key(&lun) && idx.numbers.get(&number).is_some_and(|&l| l != lun)
        }) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "host {h} already sees another LUN at number {number}, this LUN's default number; \
                     give that host another number first"
                ),
            ));
        }
        Ok(())
    }

    /// Installs planned grants for `lun` (replacing its old ones) and returns the delta.
    fn install(
        &mut self,
        lun: LunId,
        spec: MaskSpec,
        grants: BTreeMap<InitiatorId, Grant>,
    ) -> MaskDelta {
        let m = self.luns.get_mut(&lun).expect("planned LUN exists");
        let old_spec = std::mem::replace(&mut m.spec, spec);
        let old_grants = std::mem::replace(&mut m.grants, grants.clone());
        let default = m.default_number;
        let all_before = matches!(old_spec, MaskSpec::All(_));
        let all_after = matches!(m.spec, MaskSpec::All(_));
        for g in old_spec.groups() {
            if let Some(s) = self.group_luns.get_mut(g) {
                s.remove(&lun);
                if s.is_empty() {
                    self.group_luns.remove(g);
                }
            }
        }
        let new_groups: Vec<String> = m.spec.groups().map(str::to_string).collect();
        for g in new_groups {
            self.group_luns.entry(g).or_default().insert(lun);
        }
        if all_before {
            self.star.remove(&default);
        }
        if all_after {
            self.star.insert(default, lun);
        }
        let mut delta = MaskDelta {
            lun,
            all_before,
            all_after,
            ..Default::default()
        };
        for (h, g) in &old_grants {
            if !grants.contains_key(h) {
                let idx = self.hosts.get_mut(h).expect("indexed host");
                idx.luns.remove(&lun);
                idx.numbers.remove(&g.number);
                if idx.luns.is_empty() {
                    self.hosts.remove(h);
                }
                delta.lost.push(h.clone());
            }
        }
        for (h, g) in &grants {
            let idx = self.hosts.entry(h.clone()).or_default();
            match old_grants.get(h) {
                Some(old) if old == g => {}
                Some(old) => {
                    idx.numbers.remove(&old.number);
                    idx.numbers.insert(g.number, lun);
                    idx.luns.insert(lun, *g);
                    delta.modified.push(h.clone());
                }
                None => {
                    idx.numbers.insert(g.number, lun);
                    idx.luns.insert(lun, *g);
                    delta.gained.push(h.clone());
                }
            }
        }
        delta
    }

    /// Adds LUN `id` with its mask (default deny: `MaskSpec::None` makes it visible to no one).
    /// The default number is the lowest unused one unless `number` names one.
    pub fn add_lun(&mut self, id: LunId, spec: MaskSpec, number: Option<u32>) -> Result<MaskDelta> {
        if self.luns.contains_key(&id) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("LUN id {id} exists"),
            ));
        }
        let default = match number {
            Some(n) if n > MAX_LUN_NUMBER => {
                return Err(Error::invalid(format!(
                    "LUN number {n} exceeds {MAX_LUN_NUMBER}"
                )))
            }
            Some(n) if self.default_numbers.contains_key(&n) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("LUN number {n} is already another LUN's default number"),
                ))
            }
            Some(n) => n,
            None => (0..=MAX_LUN_NUMBER)
                .find(|n| !self.default_numbers.contains_key(n))
                .ok_or_else(|| Error::new(ErrorKind::NoSpace, "no free LUN number in the array"))?,
        };
        if matches!(spec, MaskSpec::All(_)) {
            self.check_star(id, default)?;
        }
        let mut plan = Plan::default();
        let grants = self.plan_grants(id, default, &BTreeMap::new(), &spec, &mut plan)?;
        self.luns.insert(
            id,
            LunMask {
                spec: MaskSpec::None,
                default_number: default,
                grants: BTreeMap::new(),
            },
        );
        self.default_numbers.insert(default, id);
        Ok(self.install(id, spec, grants))
    }

    /// Recovery: adds LUN `id` with its saved default number and the hosts' saved numbers (hosts
    /// the spec grants but `numbers` lacks get new ones). Refused if a saved number collides.
    pub fn restore_lun(
        &mut self,
        id: LunId,
        spec: MaskSpec,
        default_number: u32,
        numbers: &BTreeMap<InitiatorId, u32>,
    ) -> Result<()> {
        self.add_lun(id, MaskSpec::None, Some(default_number))?;
        let access_all = match &spec {
            MaskSpec::All(a) => Some(*a),
            _ => None,
        };
        let targets: BTreeMap<InitiatorId, Access> = match access_all {
            Some(a) => numbers.keys().map(|h| (h.clone(), a)).collect(),
            None => self.resolve(&spec)?,
        };
        let mut plan = Plan::default();
        let mut grants = BTreeMap::new();
        for (h, access) in targets {
            let number = match numbers.get(&h) {
                Some(&n) if self.free_for(&h, n, id, &plan) => {
                    plan.taken.entry(h.clone()).or_default().insert(n);
                    n
                }
                Some(&n) => {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("saved LUN number {n} of host {h} collides"),
                    ))
                }
                None => self.choose_number(&h, id, default_number, &mut plan)?,
            };
            grants.insert(h, Grant { access, number });
        }
        self.install(id, spec, grants);
        Ok(())
    }

    /// The hosts with a grant of their own (or through a group) for LUN `id`.
    pub fn grants(&self, id: LunId) -> Result<&BTreeMap<InitiatorId, Grant>> {
        Ok(&self.lun(id)?.grants)
    }

    /// Removes LUN `id`; returns the delta (every host that saw it lost it).
    pub fn remove_lun(&mut self, id: LunId) -> Result<MaskDelta> {
        self.lun(id)?;
        let delta = self.install(id, MaskSpec::None, BTreeMap::new());
        let m = self.luns.remove(&id).expect("exists");
        self.default_numbers.remove(&m.default_number);
        Ok(delta)
    }

    /// VDS `SetMask`: replaces LUN `id`'s mask.
    pub fn set_mask(&mut self, id: LunId, spec: MaskSpec) -> Result<MaskDelta> {
        let m = self.lun(id)?;
        if matches!(spec, MaskSpec::All(_)) {
            self.check_star(id, m.default_number)?;
        }
        let mut plan = Plan::default();
        let grants = self.plan_grants(id, m.default_number, &m.grants, &spec, &mut plan)?;
        Ok(self.install(id, spec, grants))
    }

    /// Sets the number `host` sees LUN `id` at (the host must have its own or a group grant).
    /// Refused if the host already uses `number` for another LUN or sees a `*` LUN there.
    pub fn set_host_number(
        &mut self,
        id: LunId,
        host: &InitiatorId,
        number: u32,
    ) -> Result<MaskDelta> {
        if number > MAX_LUN_NUMBER {
            return Err(Error::invalid(format!(
                "LUN number {number} exceeds {MAX_LUN_NUMBER}"
            )));
        }
        let m = self.lun(id)?;
        let g = match (m.grants.get(host).copied(), &m.spec) {
            (Some(g), _) => g,
            (None, MaskSpec::All(access)) => Grant {
                access: *access,
                number: m.default_number,
            },
            (None, _) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("host {host} has no grant of its own or through a group for this LUN"),
                ))
            }
        };
        if g.number == number {
            return Ok(MaskDelta {
                lun: id,
                ..Default::default()
            });
        }
        if !self.free_for(host, number, id, &Plan::default()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("host {host} already sees another LUN at number {number}"),
            ));
        }
        let mut grants = m.grants.clone();
        grants.insert(host.clone(), Grant { number, ..g });
        let spec = m.spec.clone();
        Ok(self.install(id, spec, grants))
    }

    /// The fast-recovery swap: `to` takes over `from`'s mask, every host's LUN number for it, and its
    /// default number; `from` is masked to no one. Hosts see `to` exactly where `from` was.
    pub fn swap(&mut self, from: LunId, to: LunId) -> Result<Vec<MaskDelta>> {
        if from == to {
            return Err(Error::invalid("a LUN cannot take over its own place"));
        }
        let f = self.lun(from)?.clone();
        let t = self.lun(to)?.clone();
        // Clear both, swap the default numbers, then give `to` exactly `from`'s grants.
        let d_to_clear = self.install(to, MaskSpec::None, BTreeMap::new());
        let d_from = self.install(from, MaskSpec::None, BTreeMap::new());
        self.default_numbers.insert(f.default_number, to);
        self.default_numbers.insert(t.default_number, from);
        self.luns.get_mut(&to).expect("exists").default_number = f.default_number;
        self.luns.get_mut(&from).expect("exists").default_number = t.default_number;
        let mut d_to = self.install(to, f.spec, f.grants);
        // Report `to`'s change against its state before the swap.
        d_to.all_before = d_to_clear.all_before;
        let gained: BTreeSet<_> = d_to.gained.iter().cloned().collect();
        d_to.lost = d_to_clear
            .lost
            .iter()
            .filter(|h| !gained.contains(*h))
            .cloned()
            .collect();
        d_to.modified = d_to_clear
            .lost
            .iter()
            .filter(|h| gained.contains(*h))
            .cloned()
            .collect();
        d_to.gained.retain(|h| !d_to.modified.contains(h));
        Ok(vec![d_from, d_to])
    }

    /// Creates (or replaces the members of) initiator group `name`; LUNs masked to it follow.
    pub fn set_group(
        &mut self,
        name: &str,
        members: BTreeSet<InitiatorId>,
    ) -> Result<Vec<MaskDelta>> {
        check_name("group", name)?;
        let old = self.groups.insert(name.to_string(), members);
        let luns: Vec<LunId> = self
            .group_luns
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        // Plan every affected LUN before changing anything.
        let mut plan = Plan::default();
        let mut planned = Vec::new();
        for lun in &luns {
            let m = &self.luns[lun];
            match self.plan_grants(*lun, m.default_number, &m.grants, &m.spec, &mut plan) {
                Ok(g) => planned.push((*lun, m.spec.clone(), g)),
                Err(e) => {
                    match old {
                        Some(o) => self.groups.insert(name.to_string(), o),
                        None => self.groups.remove(name),
                    };
                    return Err(e);
                }
            }
        }
        Ok(planned
            .into_iter()
            .map(|(lun, spec, grants)| self.install(lun, spec, grants))
            .filter(|d| !d.is_empty())
            .collect())
    }

    /// Deletes group `name`; refused while a LUN's mask names it.
    pub fn delete_group(&mut self, name: &str) -> Result<()> {
        if !self.groups.contains_key(name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no initiator group {name:?}"),
            ));
        }
        if let Some(luns) = self.group_luns.get(name) {
            return Err(Error::new(
                ErrorKind::BadState,
                format!(
                    "group {name:?} is named in the mask of {} LUN(s)",
                    luns.len()
                ),
            ));
        }
        self.groups.remove(name);
        Ok(())
    }

    /// The members of group `name`.
    pub fn group(&self, name: &str) -> Option<&BTreeSet<InitiatorId>> {
        self.groups.get(name)
    }

    /// Every group, by name.
    pub fn groups(&self) -> &BTreeMap<String, BTreeSet<InitiatorId>> {
        &self.groups
    }

    /// What `host` may do with LUN `id`, and where it sees it; `None` if masked away.
    pub fn access(&self, id: LunId, host: &InitiatorId) -> Option<Grant> {
        if let Some(g) = self.hosts.get(host).and_then(|h| h.luns.get(&id)) {
            return Some(*g);
        }
        let m = self.luns.get(&id)?;
        match m.spec {
            MaskSpec::All(access) => Some(Grant {
                access,
                number: m.default_number,
            }),
            _ => None,
        }
    }

    /// The LUNs `host` sees, with access and number, in LUN-number order. Costs O(visible LUNs).
    pub fn host_view(&self, host: &InitiatorId) -> Vec<(LunId, Grant)> {
        let mut v: Vec<(LunId, Grant)> = self
            .hosts
            .get(host)
            .map(|h| h.luns.iter().map(|(l, g)| (*l, *g)).collect())
            .unwrap_or_default();
        let own = self.hosts.get(host);
        for (&number, &lun) in &self.star {
            if own.is_some_and(|h| h.luns.contains_key(&lun)) {
                continue;
            }
            if let MaskSpec::All(access) = self.luns[&lun].spec {
                v.push((lun, Grant { access, number }));
            }
        }
        v.sort_by_key(|(_, g)| g.number);
        v
    }

    /// Who sees LUN `id`.
    pub fn lun_hosts(&self, id: LunId) -> Result<LunHosts> {
        let m = self.lun(id)?;
        Ok(match m.spec {
            MaskSpec::All(access) => LunHosts::All {
                access,
                number: m.default_number,
                own_numbers: m.grants.clone(),
            },
            _ => LunHosts::Hosts(m.grants.clone()),
        })
    }
}
