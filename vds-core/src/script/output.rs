//! The structured result of a script run, its DiskRAID-like text, and its JSON form.
//!
//! [`Session::execute`](super::Session::execute) returns a [`ScriptRun`]: one [`LineResult`] per
//! executed line, each either an [`Output`] (typed rows, a record, or what a change did) or a
//! [`ScriptError`]. Text is a function of it ([`ScriptRun::render_text`], or `Display` on every
//! type); JSON is `serde_json::to_string(&run)`. The JSON field names below are stable: new fields
//! may be added, none is renamed or removed. (vss-core's DiskShadow-style run mirrors these types
//! on purpose; see there why they are not shared.)

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use std::collections::BTreeMap;

use super::ExitCode;
use crate::array::Array;
use crate::error::{Error, ErrorKind};
use crate::initiator::InitiatorId;
use crate::mask::{Access, Grant, LunHosts};
use crate::model::{Health, LunInfo, LunStatus, LunType, TransitionState};

/// Everything one run of a script did, line by line, and how it ended.
///
/// JSON: `{"exit_code": 0, "stopped_at": null, "ignored_errors": [], "lines": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptRun {
    /// DiskRAID's exit code of the whole run (a number in JSON): [`ExitCode::Ok`] when every line
    /// ran or failed under `noerr`, else the code of the error that stopped the script.
    pub exit_code: ExitCode,
    /// The line that ended the script before its end: a line that failed without `noerr`, or
    /// `exit`. `None` when the script ran to its last line.
    pub stopped_at: Option<usize>,
    /// The lines that failed but carried `noerr`, so the script went on (ascending).
    pub ignored_errors: Vec<usize>,
    /// One result per executed line, in order; blank and comment lines have none.
    pub lines: Vec<LineResult>,
}

impl ScriptRun {
    /// The error that stopped the script, if one did.
    pub fn stopping_error(&self) -> Option<&ScriptError> {
        let line = self.stopped_at?;
        self.lines
            .iter()
            .rev()
            .find(|l| l.line == line)
            .and_then(|l| l.outcome.as_ref().err())
    }

    /// The error that stopped the script, or else the first error `noerr` let pass.
    pub fn first_error(&self) -> Option<&ScriptError> {
        self.stopping_error()
            .or_else(|| self.lines.iter().find_map(|l| l.outcome.as_ref().err()))
    }

    /// Every error, in line order (those `noerr` let pass and the one that stopped the script).
    pub fn errors(&self) -> impl Iterator<Item = &ScriptError> {
        self.lines.iter().filter_map(|l| l.outcome.as_ref().err())
    }

    /// The DiskRAID-like text of the run: each line's output, and `line N: message` for each
    /// error (the same as `self.to_string()`).
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ScriptRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lines.iter().try_for_each(|l| fmt::Display::fmt(l, f))
    }
}

/// What one executed script line did.
///
/// JSON: `{"line": 2, "command": "list luns", "noerr": false, "status": "ok", "output": {...}}`,
/// or with `"status": "error"` an `"error": {...}` object in place of `"output"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    /// The 1-based line number in the script.
    pub line: usize,
    /// The line as written, without surrounding white space.
    pub command: String,
    /// The line ended with `noerr` (false for a line that does not parse).
    pub noerr: bool,
    /// What the command showed or changed, or why it failed.
    pub outcome: Result<Output, ScriptError>,
}

impl Serialize for LineResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("line", &self.line)?;
        m.serialize_entry("command", &self.command)?;
        m.serialize_entry("noerr", &self.noerr)?;
        match &self.outcome {
            Ok(out) => {
                m.serialize_entry("status", "ok")?;
                m.serialize_entry("output", out)?;
            }
            Err(e) => {
                m.serialize_entry("status", "error")?;
                m.serialize_entry("error", e)?;
            }
        }
        m.end()
    }
}

impl fmt::Display for LineResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(out) => fmt::Display::fmt(out, f),
            Err(e) => writeln!(f, "{e}"),
        }
    }
}

/// A parse or run error of one script line.
///
/// JSON: `{"line": 3, "exit_code": 4, "kind": "already_exists", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptError {
    /// The 1-based line number.
    pub line: usize,
    /// The exit code this error maps to (`exit_code` in JSON).
    #[serde(rename = "exit_code")]
    pub code: ExitCode,
    /// What kind of failure it is.
    pub kind: ScriptErrorKind,
    /// What went wrong (for an array error: the error's text, kind first).
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What kind of failure a [`ScriptError`] is.
///
/// JSON: one snake_case string: `"syntax"`, `"no_selection"`, or the [`ErrorKind`]'s name
/// (`"invalid_argument"`, `"invalid_initiator"`, `"not_found"`, `"already_exists"`,
/// `"access_denied"`, `"busy"`, `"bad_state"`, `"out_of_range"`, `"no_space"`, `"timeout"`,
/// `"cancelled"`, `"corrupt"`, `"unsupported_version"`, `"unsupported"`, `"io"`, `"internal"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptErrorKind {
    /// The line does not parse (exit code [`ExitCode::Syntax`]); the script stops, `noerr` or not.
    Syntax,
    /// The command needs a selected LUN or target and none is selected.
    NoSelection,
    /// The command failed with an error of this kind (from the array, or an argument the
    /// interpreter refused before calling it).
    Failed(ErrorKind),
}

impl ScriptErrorKind {
    /// The stable snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptErrorKind::Syntax => "syntax",
            ScriptErrorKind::NoSelection => "no_selection",
            ScriptErrorKind::Failed(k) => k.name(),
        }
    }
}

impl Serialize for ScriptErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for ExitCode {
    /// The DiskRAID number (0 to 5).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*self as i32)
    }
}

/// What a successful line showed or did.
///
/// JSON: an object whose `"type"` names the variant in snake_case (`"luns"`, `"lun_detail"`,
/// `"lun_created"`, ...) beside the variant's fields; a record variant's fields sit beside
/// `"type"` (`{"type": "lun_detail", "name": "db", "size": 67108864, ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// `list luns`: every LUN, by name.
    Luns {
        /// The rows.
        rows: Vec<LunRow>,
    },
    /// `list targets`.
    Targets {
        /// The rows.
        rows: Vec<TargetRow>,
    },
    /// `list hosts`.
    Hosts {
        /// The rows.
        rows: Vec<HostRow>,
    },
    /// `list groups`.
    Groups {
        /// The rows.
        rows: Vec<GroupRow>,
    },
    /// `list subsystem`.
    Subsystems {
        /// The rows.
        rows: Vec<SubsystemRow>,
    },
    /// `detail lun`.
    LunDetail(LunDetail),
    /// `detail target`.
    TargetDetail(TargetRow),
    /// `select lun`.
    LunSelected {
        /// The LUN.
        name: String,
    },
    /// `select target`.
    TargetSelected {
        /// The target.
        name: String,
    },
    /// `create lun`: the new LUN is selected.
    LunCreated {
        /// The LUN (given or generated).
        name: String,
    },
    /// `delete lun`.
    LunDeleted {
        /// The LUN.
        name: String,
    },
    /// `extend lun`.
    LunExtended {
        /// The LUN.
        name: String,
        /// Its new size in bytes.
        size: u64,
    },
    /// `unmask lun`.
    LunUnmasked {
        /// The LUN.
        name: String,
        /// The canonical unmasking list now in force (`""` for no one, `"*"` for all).
        mask: String,
    },
    /// `online lun` / `offline lun`.
    LunStatusSet {
        /// The LUN.
        name: String,
        /// Online (true) or offline.
        online: bool,
    },
    /// `create target`: the new target is selected.
    TargetCreated {
        /// The target.
        name: String,
    },
    /// `delete target`.
    TargetDeleted {
        /// The target.
        name: String,
    },
    /// `associate targets`.
    TargetsAssociated {
        /// The LUN.
        name: String,
        /// The targets named on the line.
        targets: Vec<String>,
        /// They were added to the LUN's targets (else they replaced them).
        add: bool,
    },
    /// `snapshot lun`.
    SnapshotCreated {
        /// The new snapshot LUN (masked to no one).
        name: String,
        /// The LUN it is a snapshot of.
        source: String,
    },
    /// `swap lun`.
    LunSwapped {
        /// The selected LUN, now masked to no one.
        name: String,
        /// The LUN that took its hosts and numbers.
        with: String,
    },
    /// `split lun`.
    LunSplit {
        /// The LUN.
        name: String,
    },
    /// `resync lun`.
    LunResynced {
        /// The LUN copied onto.
        name: String,
        /// The LUN copied from.
        from: String,
    },
    /// `group set`.
    GroupSet {
        /// The group (without `@`).
        name: String,
        /// The members as written on the line.
        members: Vec<String>,
    },
    /// `group delete`.
    GroupDeleted {
        /// The group (without `@`).
        name: String,
    },
    /// `number lun`.
    NumberSet {
        /// The LUN.
        lun: String,
        /// The initiator as written on the line.
        initiator: String,
        /// The LUN number it sees the LUN at.
        number: u32,
    },
    /// `exit`: the script ends here.
    Exit,
    /// Nothing to show (`detail target` when the selected target has gone).
    None,
}

/// One row of `list luns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LunRow {
    /// The array-wide default LUN number.
    pub number: u32,
    /// The name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `"unknown"`, `"online"`, `"not_ready"`, `"offline"` or `"failed"` in JSON.
    #[serde(serialize_with = "ser::lun_status")]
    pub status: LunStatus,
    /// `"healthy"`, `"degraded"`, ... in JSON.
    #[serde(serialize_with = "ser::health")]
    pub health: Health,
    /// The canonical unmasking list (`""`: no one, `"*"`: every host).
    pub mask: String,
    /// For a snapshot LUN not yet split: the LUN it is a snapshot of.
    pub source: Option<String>,
}

/// `detail lun`: a LUN's properties and who sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LunDetail {
    /// The name.
    pub name: String,
    /// The internal id (never reused).
    pub id: u64,
    /// Size in bytes.
    pub size: u64,
    /// `"simple"`, ... in JSON.
    #[serde(serialize_with = "ser::lun_type")]
    pub lun_type: LunType,
    /// As in [`LunRow::status`].
    #[serde(serialize_with = "ser::lun_status")]
    pub status: LunStatus,
    /// As in [`LunRow::health`].
    #[serde(serialize_with = "ser::health")]
    pub health: Health,
    /// `"stable"`, `"extending"`, `"reconfiguring"` or `"unknown"` in JSON.
    #[serde(serialize_with = "ser::transition")]
    pub transition: TransitionState,
    /// The array-wide default LUN number.
    pub number: u32,
    /// The canonical unmasking list.
    pub mask: String,
    /// For a snapshot LUN not yet split: the LUN it is a snapshot of.
    pub source: Option<String>,
    /// A volatile LUN ([`crate::LunOptions::volatile`]); absent from the JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub volatile: bool,
    /// The hosts that see it.
    pub unmasked: UnmaskedHosts,
}

/// Who sees a LUN (`detail lun`'s "Unmasked hosts").
///
/// JSON: `{"scope": "all", "access": "read_write", "number": 0, "own_numbers": [...]}` or
/// `{"scope": "hosts", "hosts": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum UnmaskedHosts {
    /// Every host.
    All {
        /// `"read_only"` or `"read_write"` in JSON.
        #[serde(serialize_with = "ser::access")]
        access: Access,
        /// The default LUN number.
        number: u32,
        /// Hosts with a LUN number of their own (not shown in the text).
        own_numbers: Vec<HostGrant>,
    },
    /// Exactly these hosts (possibly none).
    Hosts {
        /// The hosts, by initiator id.
        hosts: Vec<HostGrant>,
    },
}

/// One host's access to a LUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostGrant {
    /// The initiator id, canonical form.
    pub initiator: String,
    /// `"read_only"` or `"read_write"` in JSON.
    #[serde(serialize_with = "ser::access")]
    pub access: Access,
    /// The LUN number the host sees the LUN at.
    pub number: u32,
}

/// One row of `list targets`, or `detail target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetRow {
    /// The administrative name.
    pub name: String,
    /// The iSCSI name.
    pub iqn: String,
    /// The portals (`address:port`).
    pub portals: Vec<String>,
    /// The ids of the LUNs associated with it.
    pub lun_ids: Vec<u64>,
}

/// One row of `list hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRow {
    /// The host's name.
    pub name: String,
    /// Its initiator ids, canonical form.
    pub initiators: Vec<String>,
}

/// One row of `list groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRow {
    /// The group's name (without `@`).
    pub name: String,
    /// Its members' initiator ids, canonical form.
    pub members: Vec<String>,
}

/// One row of `list subsystem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubsystemRow {
    /// The friendly name.
    pub name: String,
    /// How many LUNs it holds.
    pub luns: usize,
    /// The LUN block size in bytes.
    pub block_size: u32,
    /// `VDS_SF_*` flags.
    pub flags: u32,
    /// Its controllers' names.
    pub controllers: Vec<String>,
}

impl From<LunInfo> for LunRow {
    fn from(l: LunInfo) -> Self {
        LunRow {
            number: l.number,
            name: l.name,
            size: l.size,
            status: l.status,
            health: l.health,
            mask: l.mask,
            source: l.source,
        }
    }
}

impl LunDetail {
    /// LUN `name`'s properties and who sees it, read from `array` (what `detail lun` shows; the
    /// `umbra lun detail` command shows the same). [`ErrorKind::NotFound`] if there is no such LUN.
    pub fn of(array: &Array, name: &str) -> Result<LunDetail, Error> {
        let l = array.lun(name)?;
        let grants = |h: BTreeMap<InitiatorId, Grant>| {
            h.into_iter()
                .map(|(id, g)| HostGrant {
                    initiator: id.to_string(),
                    access: g.access,
                    number: g.number,
                })
                .collect()
        };
        let unmasked = match array.lun_hosts(&l.name)? {
            LunHosts::All {
                access,
                number,
                own_numbers,
            } => UnmaskedHosts::All {
                access,
                number,
                own_numbers: grants(own_numbers),
            },
            LunHosts::Hosts(h) => UnmaskedHosts::Hosts { hosts: grants(h) },
        };
        Ok(LunDetail {
            name: l.name,
            id: l.id,
            size: l.size,
            lun_type: l.lun_type,
            status: l.status,
            health: l.health,
            transition: l.transition,
            number: l.number,
            mask: l.mask,
            source: l.source,
            volatile: l.volatile,
            unmasked,
        })
    }
}

impl fmt::Display for Output {
    /// DiskRAID-like text, every line ending in a newline (nothing for [`Output::Exit`] and
    /// [`Output::None`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Luns { rows } => {
                writeln!(f, "  LUN  Name                 Size          Status   Mask")?;
                for l in rows {
                    writeln!(
                        f,
                        "  {:<4} {:<20} {:>12}  {:<8} {}",
                        l.number,
                        l.name,
                        l.size,
                        format!("{:?}", l.status),
                        if l.mask.is_empty() { "(none)" } else { &l.mask }
                    )?;
                }
                Ok(())
            }
            Output::Targets { rows } => rows.iter().try_for_each(|t| {
                writeln!(f, "  {:<20} {} ({} LUNs)", t.name, t.iqn, t.lun_ids.len())
            }),
            Output::Hosts { rows } => rows
                .iter()
                .try_for_each(|h| writeln!(f, "  {}: {}", h.name, h.initiators.join(";"))),
            Output::Groups { rows } => rows
                .iter()
                .try_for_each(|g| writeln!(f, "  @{}: {}", g.name, g.members.join(";"))),
            Output::Subsystems { rows } => rows.iter().try_for_each(|s| {
                writeln!(
                    f,
                    "  Subsystem: {}, {} LUN(s), block size {}, flags {:#x}, {} controller(s)",
                    s.name,
                    s.luns,
                    s.block_size,
                    s.flags,
                    s.controllers.len()
                )
            }),
            Output::LunDetail(l) => {
                writeln!(
                    f,
                    "LUN {}\n  Id: {}\n  Size: {} bytes\n  Type: {:?}\n  Status: {:?}\n  Health: {:?}\n  LUN number: {}",
                    l.name, l.id, l.size, l.lun_type, l.status, l.health, l.number
                )?;
                if let Some(s) = &l.source {
                    writeln!(f, "  Snapshot of: {s}")?;
                }
                match &l.unmasked {
                    UnmaskedHosts::All { access, number, .. } => {
                        writeln!(f, "  Unmasked hosts: all ({access:?}, LUN {number})")
                    }
                    UnmaskedHosts::Hosts { hosts } if hosts.is_empty() => {
                        writeln!(f, "  Unmasked hosts: none")
                    }
                    UnmaskedHosts::Hosts { hosts } => {
                        writeln!(f, "  Unmasked hosts:")?;
                        hosts.iter().try_for_each(|h| {
                            writeln!(f, "    {} ({:?}, LUN {})", h.initiator, h.access, h.number)
                        })
                    }
                }
            }
            Output::TargetDetail(t) => writeln!(
                f,
                "Target {}\n  iSCSI name: {}\n  Portals: {}",
                t.name,
                t.iqn,
                t.portals.join(", ")
            ),
            Output::LunSelected { name } => writeln!(f, "LUN {name} is now the selected LUN."),
            Output::TargetSelected { name } => {
                writeln!(f, "Target {name} is now the selected target.")
            }
            Output::LunCreated { name } => {
                writeln!(f, "Created LUN {name}; it is now the selected LUN.")
            }
            Output::LunDeleted { name } => writeln!(f, "Deleted LUN {name}."),
            Output::LunExtended { name, size } => writeln!(f, "LUN {name} is now {size} bytes."),
            Output::LunUnmasked { name, mask } => {
                writeln!(f, "LUN {name} is unmasked to: {mask}")
            }
            Output::LunStatusSet { name, online } => writeln!(
                f,
                "LUN {name} is {}.",
                if *online { "online" } else { "offline" }
            ),
            Output::TargetCreated { name } => writeln!(f, "Created target {name}."),
            Output::TargetDeleted { name } => writeln!(f, "Deleted target {name}."),
            Output::TargetsAssociated { name, targets, .. } => {
                writeln!(f, "LUN {name} is associated with {}.", targets.join(", "))
            }
            Output::SnapshotCreated { name, source } => writeln!(
                f,
                "Snapshot LUN {name} of {source} created, masked to no one."
            ),
            Output::LunSwapped { name, with } => writeln!(
                f,
                "LUN {with} took the place of {name}; {name} is masked to no one."
            ),
            Output::LunSplit { name } => writeln!(f, "LUN {name} is split from its source."),
            Output::LunResynced { name, from } => {
                writeln!(f, "LUN {name} is resynchronised from {from}.")
            }
            Output::GroupSet { name, members } => {
                writeln!(f, "Group @{name} has {} member(s).", members.len())
            }
            Output::GroupDeleted { name } => writeln!(f, "Group @{name} deleted."),
            Output::NumberSet {
                lun,
                initiator,
                number,
            } => writeln!(
                f,
                "Initiator {initiator} sees LUN {lun} at number {number}."
            ),
            Output::Exit | Output::None => Ok(()),
        }
    }
}

/// snake_case JSON names for the model's enums (whose own serde names are their persisted form).
mod ser {
    use serde::Serializer;

    use crate::mask::Access;
    use crate::model::{Health, LunStatus, LunType, TransitionState};

    pub(super) fn lun_status<S: Serializer>(v: &LunStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            LunStatus::Unknown => "unknown",
            LunStatus::Online => "online",
            LunStatus::NotReady => "not_ready",
            LunStatus::Offline => "offline",
            LunStatus::Failed => "failed",
        })
    }

    pub(super) fn health<S: Serializer>(v: &Health, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Rebuilding => "rebuilding",
            Health::Stale => "stale",
            Health::Failing => "failing",
            Health::Failed => "failed",
            Health::Degraded => "degraded",
        })
    }

    pub(super) fn lun_type<S: Serializer>(v: &LunType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            LunType::Unknown => "unknown",
            LunType::Default => "default",
            LunType::Simple => "simple",
        })
    }

    pub(super) fn transition<S: Serializer>(v: &TransitionState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            TransitionState::Unknown => "unknown",
            TransitionState::Stable => "stable",
            TransitionState::Extending => "extending",
            TransitionState::Reconfiguring => "reconfiguring",
        })
    }

    pub(super) fn access<S: Serializer>(v: &Access, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            Access::ReadOnly => "read_only",
            Access::ReadWrite => "read_write",
        })
    }
}
