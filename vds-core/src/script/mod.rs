//! A DiskRAID-style script language over the [`Array`], with DiskRAID's exit codes.
//!
//! One command per line; `#` or `rem` starts a comment; a trailing `noerr` lets the script go on
//! after that line fails. Commands:
//!
//! ```text
//! list luns | targets | groups | hosts | subsystem
//! select lun <name>            select target <name>
//! detail lun                   detail target
//! create lun simple size=<n>[B|KB|MB|GB|TB] [name=<name>] [unmask=<list>]   (size in MB by default)
//! delete lun
//! extend lun size=<n>[unit]    (adds to the selected LUN)
//! unmask lun all | none | [add|remove] wwn=<hex>[;<hex>...] | [add|remove] initiator=<id>[;<id>...]
//!            | [add|remove] list=<entries>     (entries: id[=ro|rw] or @group, ;-separated)
//! online lun | offline lun
//! create target name=<name> iscsiname=<iqn> [portals=<addr:port>[,...]]
//! delete target
//! associate targets [add] <target>[,<target>...]
//! snapshot lun name=<new>      hardware snapshot of the selected LUN, masked to no one
//! swap lun with=<name>         fast recovery: <name> takes the selected LUN's hosts and numbers
//! split lun                    detach the selected snapshot LUN from its source
//! resync lun from=<name>       copy <name> onto the selected LUN
//! group set name=<g> members=<id>[;<id>...]    group delete name=<g>
//! number lun initiator=<id> number=<n>
//! exit
//! ```

use std::fmt::Write as _;

use crate::array::Array;
use crate::error::{Error, ErrorKind};
use crate::mask::LunHosts;

/// DiskRAID's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// No error occurred; the whole script ran.
    Ok = 0,
    /// A fatal error (the service could not be reached or used at all).
    Fatal = 1,
    /// Incorrect arguments on the command line.
    BadArguments = 2,
    /// The script file or output file could not be opened.
    ScriptFile = 3,
    /// A service (array) operation failed.
    ServiceFailure = 4,
    /// A command syntax error, or an object not selected / not found.
    Syntax = 5,
}

/// A parse or run error of one script line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The 1-based line number.
    pub line: usize,
    /// The exit code this error maps to.
    pub code: ExitCode,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Which kind of object a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A LUN.
    Lun,
    /// An iSCSI target.
    Target,
}

/// What `unmask lun` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmask {
    /// Replace the mask with this list.
    Set(String),
    /// Add these entries.
    Add(String),
    /// Remove these entries.
    Remove(String),
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `list ...`.
    List(String),
    /// `select lun|target <name>`.
    Select(Object, String),
    /// `detail lun|target`.
    Detail(Object),
    /// `create lun simple ...`.
    CreateLun {
        /// Size in bytes.
        size: u64,
        /// The name (generated if absent).
        name: Option<String>,
        /// The initial unmasking list.
        unmask: String,
    },
    /// `delete lun|target`.
    Delete(Object),
    /// `extend lun size=`: bytes to add.
    Extend(u64),
    /// `unmask lun ...`.
    Unmask(Unmask),
    /// `online lun` / `offline lun`.
    Online(bool),
    /// `create target ...`.
    CreateTarget {
        /// Administrative name.
        name: String,
        /// iSCSI name.
        iqn: String,
        /// Portals.
        portals: Vec<String>,
    },
    /// `associate targets [add] ...`.
    Associate {
        /// The targets.
        targets: Vec<String>,
        /// Add instead of replace.
        add: bool,
    },
    /// `snapshot lun name=`.
    Snapshot(String),
    /// `swap lun with=`.
    Swap(String),
    /// `split lun`.
    Split,
    /// `resync lun from=`.
    Resync(String),
    /// `group set name= members=`.
    GroupSet(String, Vec<String>),
    /// `group delete name=`.
    GroupDelete(String),
    /// `number lun initiator= number=`.
    Number(String, u32),
    /// `exit`.
    Exit,
}

fn syntax(msg: impl Into<String>) -> String {
    msg.into()
}

/// Splits a line into words; double quotes group words with spaces.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(syntax("unterminated quote"));
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

/// Parses `n[B|KB|MB|GB|TB|PB]` (MB when no unit).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        syntax(format!(
            "size {text:?} is not a number with an optional unit"
        ))
    })?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "B" => 1,
        "KB" => 1 << 10,
        "" | "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        "PB" => 1 << 50,
        u => {
            return Err(syntax(format!(
                "unknown size unit {u:?} (B, KB, MB, GB, TB, PB)"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| syntax(format!("size {text:?} is too large")))
}

struct Args {
    words: Vec<String>,
}

impl Args {
    fn key(&self, k: &str) -> Option<&str> {
        self.words.iter().find_map(|w| {
            let (a, b) = w.split_once('=')?;
            a.eq_ignore_ascii_case(k).then_some(b)
        })
    }

    fn need(&self, k: &str, cmd: &str) -> Result<&str, String> {
        self.key(k)
            .ok_or_else(|| syntax(format!("{cmd} needs {k}=")))
    }

    fn check_known(&self, allowed: &[&str], cmd: &str) -> Result<(), String> {
        for w in &self.words {
            let k = w.split_once('=').map_or(w.as_str(), |(k, _)| k);
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(k)) {
                return Err(syntax(format!("{cmd}: unexpected {w:?}")));
            }
        }
        Ok(())
    }
}

fn object(w: Option<&String>) -> Result<Object, String> {
    match w.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("lun") => Ok(Object::Lun),
        Some("target") => Ok(Object::Target),
        Some(o) => Err(syntax(format!("unknown object {o:?} (lun, target)"))),
        None => Err(syntax("missing object (lun, target)")),
    }
}

fn expect_lun(w: Option<&String>, cmd: &str) -> Result<(), String> {
    match w.map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("lun") => Ok(()),
        _ => Err(syntax(format!("{cmd} applies to a lun: use \"{cmd} lun\""))),
    }
}

/// Parses one line: `Ok(None)` for a blank or comment line; the flag is `noerr`.
pub fn parse_line(line: &str) -> Result<Option<(Command, bool)>, String> {
    let line = line.split('#').next().unwrap_or("");
    let mut w = words(line)?;
    if w.is_empty() || w[0].eq_ignore_ascii_case("rem") {
        return Ok(None);
    }
    let noerr = w.last().is_some_and(|x| x.eq_ignore_ascii_case("noerr"));
    if noerr {
        w.pop();
    }
    let Some(verb) = w.first().map(|v| v.to_ascii_lowercase()) else {
        return Err(syntax("noerr needs a command before it"));
    };
    let rest = &w[1..];
    let args = Args {
        words: rest.iter().skip(1).cloned().collect(),
    };
    let cmd = match verb.as_str() {
        "list" => match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some(
                what @ ("luns" | "lun" | "targets" | "target" | "groups" | "group" | "hosts"
                | "host" | "subsystem" | "subsystems"),
            ) => Command::List(what.trim_end_matches('s').to_string()),
            _ => {
                return Err(syntax(
                    "list what? (luns, targets, groups, hosts, subsystem)",
                ))
            }
        },
        "select" => {
            let obj = object(rest.first())?;
            let name = match rest.get(1) {
                Some(n) => n.strip_prefix("name=").unwrap_or(n).to_string(),
                None => return Err(syntax("select needs a name")),
            };
            if rest.len() > 2 {
                return Err(syntax(format!("select: unexpected {:?}", rest[2])));
            }
            Command::Select(obj, name)
        }
        "detail" => Command::Detail(object(rest.first())?),
        "delete" => Command::Delete(object(rest.first())?),
        "create" => match object(rest.first())? {
            Object::Lun => {
                let kind = args.words.first().map(|s| s.to_ascii_lowercase());
                if kind.as_deref() != Some("simple") {
                    return Err(syntax("create lun: only \"simple\" LUNs are supported"));
                }
                let args = Args {
                    words: args.words[1..].to_vec(),
                };
                args.check_known(&["size", "name", "unmask"], "create lun")?;
                Command::CreateLun {
                    size: parse_size(args.need("size", "create lun")?)?,
                    name: args.key("name").map(str::to_string),
                    unmask: args.key("unmask").unwrap_or("").to_string(),
                }
            }
            Object::Target => {
                args.check_known(&["name", "iscsiname", "portals"], "create target")?;
                Command::CreateTarget {
                    name: args.need("name", "create target")?.to_string(),
                    iqn: args.need("iscsiname", "create target")?.to_string(),
                    portals: args
                        .key("portals")
                        .map(|p| p.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                }
            }
        },
        "extend" => {
            expect_lun(rest.first(), "extend")?;
            args.check_known(&["size"], "extend lun")?;
            Command::Extend(parse_size(args.need("size", "extend lun")?)?)
        }
        "unmask" => {
            expect_lun(rest.first(), "unmask")?;
            let mut ws = args.words.clone();
            let mode = match ws.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("add") => {
                    ws.remove(0);
                    1
                }
                Some("remove") => {
                    ws.remove(0);
                    2
                }
                _ => 0,
            };
            let list =
                match ws.as_slice() {
                    [one] if mode == 0 && one.eq_ignore_ascii_case("all") => "*".to_string(),
                    [one] if mode == 0 && one.eq_ignore_ascii_case("none") => String::new(),
                    [one] => match one.split_once('=') {
                        Some((k, v))
                            if ["wwn", "initiator", "list"]
                                .iter()
                                .any(|x| x.eq_ignore_ascii_case(k)) =>
                        {
                            if v.is_empty() {
                                return Err(syntax(format!("unmask lun: {k}= needs a value")));
                            }
                            v.to_string()
                        }
                        _ => return Err(syntax(format!("unmask lun: unexpected {one:?}"))),
                    },
                    _ => return Err(syntax(
                        "unmask lun all | none | [add|remove] wwn=... | initiator=... | list=...",
                    )),
                };
            Command::Unmask(match mode {
                1 => Unmask::Add(list),
                2 => Unmask::Remove(list),
                _ => Unmask::Set(list),
            })
        }
        "online" | "offline" => {
            expect_lun(rest.first(), &verb)?;
            args.check_known(&[], &verb)?;
            Command::Online(verb == "online")
        }
        "associate" => {
            match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("targets") | Some("target") => {}
                _ => return Err(syntax("associate targets [add] <target>[,<target>...]")),
            }
            let mut ws = args.words.clone();
            let add = ws.first().is_some_and(|x| x.eq_ignore_ascii_case("add"));
            if add {
                ws.remove(0);
            }
            let [list] = ws.as_slice() else {
                return Err(syntax("associate targets [add] <target>[,<target>...]"));
            };
            Command::Associate {
                targets: list.split(',').map(str::to_string).collect(),
                add,
            }
        }
        "snapshot" => {
            expect_lun(rest.first(), "snapshot")?;
            args.check_known(&["name"], "snapshot lun")?;
            Command::Snapshot(args.need("name", "snapshot lun")?.to_string())
        }
        "swap" => {
            expect_lun(rest.first(), "swap")?;
            args.check_known(&["with"], "swap lun")?;
            Command::Swap(args.need("with", "swap lun")?.to_string())
        }
        "split" => {
            expect_lun(rest.first(), "split")?;
            args.check_known(&[], "split lun")?;
            Command::Split
        }
        "resync" => {
            expect_lun(rest.first(), "resync")?;
            args.check_known(&["from"], "resync lun")?;
            Command::Resync(args.need("from", "resync lun")?.to_string())
        }
        "group" => {
            let sub = rest.first().map(|s| s.to_ascii_lowercase());
            match sub.as_deref() {
                Some("set") => {
                    args.check_known(&["name", "members"], "group set")?;
                    let members = args.key("members").unwrap_or("");
                    Command::GroupSet(
                        args.need("name", "group set")?.to_string(),
                        members
                            .split(';')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                Some("delete") => {
                    args.check_known(&["name"], "group delete")?;
                    Command::GroupDelete(args.need("name", "group delete")?.to_string())
                }
                _ => return Err(syntax("group set|delete name=...")),
            }
        }
        "number" => {
            expect_lun(rest.first(), "number")?;
            args.check_known(&["initiator", "number"], "number lun")?;
            let n = args.need("number", "number lun")?;
            Command::Number(
                args.need("initiator", "number lun")?.to_string(),
                n.parse()
                    .map_err(|_| syntax(format!("number {n:?} is not a LUN number")))?,
            )
        }
        "exit" => Command::Exit,
        other => return Err(syntax(format!("unknown command {other:?}"))),
    };
    Ok(Some((cmd, noerr)))
}

/// Runs a script against `array`, writing what it shows to `out`. Stops at the first failing line
/// (unless it ends with `noerr`) and returns that line's error.
pub struct Session<'a> {
    array: &'a Array,
    lun: Option<String>,
    target: Option<String>,
}

fn code_of(e: &Error) -> ExitCode {
    match e.kind() {
        ErrorKind::InvalidArgument
        | ErrorKind::InvalidInitiator
        | ErrorKind::NotFound
        | ErrorKind::OutOfRange => ExitCode::Syntax,
        _ => ExitCode::ServiceFailure,
    }
}

impl<'a> Session<'a> {
    /// A session with nothing selected.
    pub fn new(array: &'a Array) -> Self {
        Session {
            array,
            lun: None,
            target: None,
        }
    }

    /// Runs `script`; returns the exit code and, if one line failed, its error.
    pub fn run(&mut self, script: &str, out: &mut String) -> (ExitCode, Option<ScriptError>) {
        let mut first_err = None;
        for (i, line) in script.lines().enumerate() {
            let n = i + 1;
            let (cmd, noerr) = match parse_line(line) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(message) => {
                    let e = ScriptError {
                        line: n,
                        code: ExitCode::Syntax,
                        message,
                    };
                    let _ = writeln!(out, "{e}");
                    return (ExitCode::Syntax, Some(e));
                }
            };
            if cmd == Command::Exit {
                break;
            }
            if let Err((code, message)) = self.exec(&cmd, out) {
                let e = ScriptError {
                    line: n,
                    code,
                    message,
                };
                let _ = writeln!(out, "{e}");
                if !noerr {
                    return (code, Some(e));
                }
                first_err.get_or_insert(e);
            }
        }
        (ExitCode::Ok, first_err)
    }

    fn selected_lun(&self) -> Result<&str, (ExitCode, String)> {
        self.lun.as_deref().ok_or((
            ExitCode::Syntax,
            "no LUN is selected (select lun <name>)".to_string(),
        ))
    }

    fn exec(&mut self, cmd: &Command, out: &mut String) -> Result<(), (ExitCode, String)> {
        let a = self.array;
        let svc = |e: Error| (code_of(&e), e.to_string());
        match cmd {
            Command::List(what) => match what.as_str() {
                "lun" => {
                    let _ = writeln!(
                        out,
                        "  LUN  Name                 Size          Status   Mask"
                    );
                    for l in a.luns() {
                        let _ = writeln!(
                            out,
                            "  {:<4} {:<20} {:>12}  {:<8} {}",
                            l.number,
                            l.name,
                            l.size,
                            format!("{:?}", l.status),
                            if l.mask.is_empty() { "(none)" } else { &l.mask }
                        );
                    }
                }
                "target" => {
                    for t in a.targets() {
                        let _ = writeln!(out, "  {:<20} {} ({} LUNs)", t.name, t.iqn, t.luns.len());
                    }
                }
                "host" => {
                    for (h, m) in a.hosts() {
                        let m: Vec<String> = m.iter().map(|i| i.to_string()).collect();
                        let _ = writeln!(out, "  {h}: {}", m.join(";"));
                    }
                }
                "group" => {
                    for (g, m) in a.groups() {
                        let m: Vec<String> = m.iter().map(|i| i.to_string()).collect();
                        let _ = writeln!(out, "  @{g}: {}", m.join(";"));
                    }
                }
                _ => {
                    for sub in a.provider().subsystems {
                        let _ = writeln!(
                            out,
                            "  Subsystem: {}, {} LUN(s), block size {}, flags {:#x}, {} controller(s)",
                            sub.name,
                            sub.luns,
                            sub.block_size,
                            sub.flags,
                            sub.controllers.len()
                        );
                    }
                }
            },
            Command::Select(Object::Lun, name) => {
                a.lun(name).map_err(svc)?;
                self.lun = Some(name.clone());
                let _ = writeln!(out, "LUN {name} is now the selected LUN.");
            }
            Command::Select(Object::Target, name) => {
                if !a.targets().iter().any(|t| &t.name == name) {
                    return Err((ExitCode::Syntax, format!("no target named {name:?}")));
                }
                self.target = Some(name.clone());
                let _ = writeln!(out, "Target {name} is now the selected target.");
            }
            Command::Detail(Object::Lun) => {
                let l = a.lun(self.selected_lun()?).map_err(svc)?;
                let _ = writeln!(out, "LUN {}\n  Id: {}\n  Size: {} bytes\n  Type: {:?}\n  Status: {:?}\n  Health: {:?}\n  LUN number: {}", l.name, l.id, l.size, l.lun_type, l.status, l.health, l.number);
                if let Some(s) = &l.source {
                    let _ = writeln!(out, "  Snapshot of: {s}");
                }
                match a.lun_hosts(&l.name).map_err(svc)? {
                    LunHosts::All { access, number, .. } => {
                        let _ = writeln!(out, "  Unmasked hosts: all ({access:?}, LUN {number})");
                    }
                    LunHosts::Hosts(h) if h.is_empty() => {
                        let _ = writeln!(out, "  Unmasked hosts: none");
                    }
                    LunHosts::Hosts(h) => {
                        let _ = writeln!(out, "  Unmasked hosts:");
                        for (id, g) in h {
                            let _ = writeln!(out, "    {id} ({:?}, LUN {})", g.access, g.number);
                        }
                    }
                }
            }
            Command::Detail(Object::Target) => {
                let name = self
                    .target
                    .as_deref()
                    .ok_or((ExitCode::Syntax, "no target is selected".to_string()))?;
                if let Some(t) = a.targets().into_iter().find(|t| t.name == name) {
                    let _ = writeln!(
                        out,
                        "Target {}\n  iSCSI name: {}\n  Portals: {}",
                        t.name,
                        t.iqn,
                        t.portals.join(", ")
                    );
                }
            }
            Command::CreateLun { size, name, unmask } => {
                let name = match name {
                    Some(n) => n.clone(),
                    None => (0..)
                        .map(|i| format!("lun{i}"))
                        .find(|n| a.lun(n).is_err())
                        .expect("a free name"),
                };
                a.create_lun(&name, *size, unmask).map_err(svc)?;
                self.lun = Some(name.clone());
                let _ = writeln!(out, "Created LUN {name}; it is now the selected LUN.");
            }
            Command::Delete(Object::Lun) => {
                let name = self.selected_lun()?.to_string();
                a.delete_lun(&name).map_err(svc)?;
                self.lun = None;
                let _ = writeln!(out, "Deleted LUN {name}.");
            }
            Command::Delete(Object::Target) => {
                let name = self
                    .target
                    .take()
                    .ok_or((ExitCode::Syntax, "no target is selected".to_string()))?;
                a.delete_target(&name).map_err(svc)?;
                let _ = writeln!(out, "Deleted target {name}.");
            }
            Command::Extend(add) => {
                let name = self.selected_lun()?;
                let l = a.lun(name).map_err(svc)?;
                let new = l
                    .size
                    .checked_add(*add)
                    .ok_or((ExitCode::Syntax, "size too large".to_string()))?;
                a.extend_lun(name, new).map_err(svc)?;
                let _ = writeln!(out, "LUN {name} is now {new} bytes.");
            }
            Command::Unmask(u) => {
                let name = self.selected_lun()?;
                match u {
                    Unmask::Set(l) => a.set_mask(name, l),
                    Unmask::Add(l) => a.add_to_mask(name, l),
                    Unmask::Remove(l) => a.remove_from_mask(name, l),
                }
                .map_err(svc)?;
                let _ = writeln!(
                    out,
                    "LUN {name} is unmasked to: {}",
                    a.get_mask(name).map_err(svc)?
                );
            }
            Command::Online(on) => {
                let name = self.selected_lun()?;
                a.set_online(name, *on).map_err(svc)?;
                let _ = writeln!(
                    out,
                    "LUN {name} is {}.",
                    if *on { "online" } else { "offline" }
                );
            }
            Command::CreateTarget { name, iqn, portals } => {
                let p: Vec<&str> = portals.iter().map(String::as_str).collect();
                a.create_target(name, iqn, &p).map_err(svc)?;
                self.target = Some(name.clone());
                let _ = writeln!(out, "Created target {name}.");
            }
            Command::Associate { targets, add } => {
                let name = self.selected_lun()?;
                let t: Vec<&str> = targets.iter().map(String::as_str).collect();
                a.associate_targets(name, &t, *add).map_err(svc)?;
                let _ = writeln!(out, "LUN {name} is associated with {}.", targets.join(", "));
            }
            Command::Snapshot(new) => {
                let name = self.selected_lun()?;
                a.snapshot_lun(name, new).map_err(svc)?;
                let _ = writeln!(
                    out,
                    "Snapshot LUN {new} of {name} created, masked to no one."
                );
            }
            Command::Swap(with) => {
                let name = self.selected_lun()?;
                a.swap_lun(name, with).map_err(svc)?;
                let _ = writeln!(
                    out,
                    "LUN {with} took the place of {name}; {name} is masked to no one."
                );
            }
            Command::Split => {
                let name = self.selected_lun()?;
                a.split_lun(name).wait().map_err(svc)?;
                let _ = writeln!(out, "LUN {name} is split from its source.");
            }
            Command::Resync(from) => {
                let name = self.selected_lun()?;
                a.resync_lun(from, name).wait().map_err(svc)?;
                let _ = writeln!(out, "LUN {name} is resynchronised from {from}.");
            }
            Command::GroupSet(g, members) => {
                let m: Vec<&str> = members.iter().map(String::as_str).collect();
                a.set_group(g, &m).map_err(svc)?;
                let _ = writeln!(out, "Group @{g} has {} member(s).", members.len());
            }
            Command::GroupDelete(g) => {
                a.delete_group(g).map_err(svc)?;
                let _ = writeln!(out, "Group @{g} deleted.");
            }
            Command::Number(ini, n) => {
                let name = self.selected_lun()?;
                a.set_host_number(name, ini, *n).map_err(svc)?;
                let _ = writeln!(out, "Initiator {ini} sees LUN {name} at number {n}.");
            }
            Command::Exit => {}
        }
        Ok(())
    }
}
