//! A DiskRAID-style script language over the [`Array`], with DiskRAID's exit codes.
//!
//! One command per line; `#` or `rem` starts a comment; a trailing `noerr` lets the script go on
//! after that line fails. Commands:
//!
//! ```text
//! list luns | targets | groups | hosts | subsystem
//! select lun <name>            select target <name>
//! detail lun                   detail target
//! create lun simple size=<n>[unit] [name=<name>] [unmask=<list>]   (units as parse_size reads them; MB by default)
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
//!
//! # Selection, errors, exit codes and `noerr`
//!
//! `select lun|target <name>` makes that object the one later commands act on. A `select` that
//! fails (no such object, or a line that does not parse) leaves **nothing** of that kind
//! selected: the commands after it fail with "no LUN is selected" instead of acting on the
//! object selected before it. So `select lun keepme` / `select lun typo noerr` / `delete lun`
//! deletes nothing. A selection outlives the run ([`Session`] keeps it between runs), and so
//! does its clearing.
//!
//! Each failed line has DiskRAID's exit code for its kind of failure:
//!
//! | code | [`ExitCode`] | when |
//! |---|---|---|
//! | 0 | `Ok` | no error stopped the script (`exit` included) |
//! | 4 | `ServiceFailure` | the array refused or failed the command, invalid arguments included (a size that is not a block multiple, LUNs of different sizes, a LUN that is not a snapshot LUN) |
//! | 5 | `Syntax` | the line does not parse; a value the interpreter refuses before asking the array (an initiator id, an unmasking list, a LUN name); no object selected; the named object does not exist |
//!
//! (1, 2 and 3 are the command line's and the script file's, for a front end.)
//!
//! `noerr` at the end of a line makes a *failure of that command* not stop the script: the
//! error is recorded ([`ScriptRun::ignored_errors`]) and the run goes on, with exit code 0 if
//! nothing else stops it. It does not cover a line that **does not parse**: such a line stops
//! the script with exit code 5 even when it ends in `noerr`, since what the line was meant to
//! do, and so whether going on is safe, is unknown (a `noerr` alone on a line is such a line).
//! A value the interpreter refuses (code 5, but the line parsed) is a command failure, and
//! `noerr` lets it pass.
//!
//! # Results: structured, then text or JSON
//!
//! [`Session::execute`] (or [`run_script`] for a fresh session) returns a [`ScriptRun`]: the
//! final [`ExitCode`], the line that stopped the script ([`ScriptRun::stopped_at`]: a failure
//! without `noerr`, a line that does not parse, or `exit`), the lines whose failure `noerr` let
//! pass ([`ScriptRun::ignored_errors`]), and one [`LineResult`] per executed line: its number,
//! its text, its `noerr` flag, and either an [`Output`] (typed rows for `list`, a record for
//! `detail`, what a change did) or a [`ScriptError`] (line, exit code, [`ScriptErrorKind`],
//! message). Sizes are bytes (`u64`), names and initiator ids strings.
//!
//! The DiskRAID-like text is rendered from that result ([`ScriptRun::render_text`], or
//! `Display`), and [`Session::run`] is a thin wrapper that appends it to a `String`. Every result
//! type is `serde::Serialize`, so `serde_json::to_string(&run)` gives the same run as one JSON
//! document, with stable snake_case names (enums as snake_case strings, the exit code as
//! DiskRAID's number):
//!
//! ```
//! use vds_core::{script::run_script, Array};
//!
//! let array = Array::in_memory();
//! let run = run_script(&array, "create lun simple size=64 name=db\nlist luns\n");
//! assert_eq!(run.render_text().lines().next(), Some("Created LUN db; it is now the selected LUN."));
//! let json = serde_json::to_value(&run).unwrap();
//! assert_eq!(
//!     json,
//!     serde_json::json!({
//!         "exit_code": 0,
//!         "stopped_at": null,
//!         "ignored_errors": [],
//!         "lines": [
//!             {"line": 1, "command": "create lun simple size=64 name=db", "noerr": false,
//!              "status": "ok", "output": {"type": "lun_created", "name": "db"}},
//!             {"line": 2, "command": "list luns", "noerr": false, "status": "ok",
//!              "output": {"type": "luns", "rows": [
//!                  {"number": 0, "name": "db", "size": 67108864, "status": "online",
//!                   "health": "healthy", "mask": "", "source": null}]}}
//!         ]
//!     })
//! );
//! ```
//!
//! A failed line has `"status": "error"` and, in place of `"output"`, an `"error"` object:
//! `{"line": 3, "exit_code": 4, "kind": "already_exists", "message": "already exists: ..."}`.
//! Field names never change; new fields and new `"type"` values may be added.

mod output;

use crate::array::{check_lun_name, Array};
use crate::error::{Error, ErrorKind};
use crate::initiator::InitiatorId;
use crate::mask::MaskSpec;

pub use output::{
    GroupRow, HostGrant, HostRow, LineResult, LunDetail, LunRow, Output, ScriptError,
    ScriptErrorKind, ScriptRun, SubsystemRow, TargetRow, UnmaskedHosts,
};

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

/// The units a size may carry, as DiskRAID reads them: binary whichever spelling (`KB` and `KiB`
/// are both 1024 bytes).
const SIZE_UNITS: [&str; 11] = [
    "B", "KB", "KIB", "MB", "MIB", "GB", "GIB", "TB", "TIB", "PB", "PIB",
];

/// Parses a size as DiskRAID reads it: a number (a fraction allowed, rounded to the nearest
/// byte) with an optional unit, case-insensitive, a space allowed between: `B`, `KB`/`KiB`,
/// `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB`, `PB`/`PiB`, all binary (`1KB` is 1024 bytes); megabytes
/// when no unit is given (`64` is 64 MiB). The error names the text and says why it is refused.
///
/// ```
/// use vds_core::script::parse_size;
/// assert_eq!(parse_size("64"), Ok(64 << 20));
/// assert_eq!(parse_size("4 KiB"), Ok(4096));
/// assert_eq!(parse_size("1.5GB"), Ok(3 << 29));
/// assert!(parse_size("4 furlongs").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    /// Binary units, megabytes when none: the parse-size crate configured as DiskRAID reads sizes.
    const DISKRAID: parse_size::Config = parse_size::Config::new()
        .with_binary()
        .with_default_factor(1 << 20);
    let t = text.trim();
    let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[number.len()..];
    let number = number.trim_end();
    let refused = |why: &str| {
        syntax(format!(
            "size {text:?} {why}: a whole or decimal number with an optional unit (B, KB/KiB, \
             MB/MiB, GB/GiB, TB/TiB, PB/PiB; binary; MB when none)"
        ))
    };
    if number.is_empty() {
        return Err(refused("has no number"));
    }
    if !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') || number.matches('.').count() > 1 {
        return Err(refused("is not a number"));
    }
    if !unit.is_empty() && !SIZE_UNITS.iter().any(|u| u.eq_ignore_ascii_case(unit)) {
        return Err(refused(&format!("has an unknown unit {unit:?}")));
    }
    DISKRAID.parse_size(t).map_err(|e| match e {
        parse_size::Error::PosOverflow => syntax(format!("size {text:?} is too large")),
        _ => refused("does not parse"),
    })
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

/// A script session over an [`Array`]: it remembers the selected LUN and target from one line
/// (and one run) to the next.
pub struct Session<'a> {
    array: &'a Array,
    lun: Option<String>,
    target: Option<String>,
}

/// Why a command failed, before the line number is known.
struct Fail {
    code: ExitCode,
    kind: ScriptErrorKind,
    message: String,
}

impl Fail {
    fn no_selection(message: &str) -> Self {
        Fail {
            code: ExitCode::Syntax,
            kind: ScriptErrorKind::NoSelection,
            message: message.to_string(),
        }
    }

    fn at(self, line: usize) -> ScriptError {
        ScriptError {
            line,
            code: self.code,
            kind: self.kind,
            message: self.message,
        }
    }
}

impl Fail {
    /// A value on the line that the interpreter refused before asking the array (an initiator
    /// id, an unmasking list, a LUN name): a syntax error (5); nothing was attempted.
    fn argument(e: Error) -> Self {
        Fail {
            code: ExitCode::Syntax,
            kind: ScriptErrorKind::Failed(e.kind()),
            message: e.to_string(),
        }
    }
}

/// An error from the array (the service): a selection error (5) when the object the line names
/// does not exist, else a service failure (4), invalid arguments included.
impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail {
            code: code_of(&e),
            kind: ScriptErrorKind::Failed(e.kind()),
            message: e.to_string(),
        }
    }
}

/// The exit code of an error the array returned (see `impl From<Error> for Fail`).
fn code_of(e: &Error) -> ExitCode {
    match e.kind() {
        ErrorKind::NotFound => ExitCode::Syntax,
        _ => ExitCode::ServiceFailure,
    }
}

/// Runs `script` on `array` in a fresh [`Session`] (nothing selected): see
/// [`Session::execute`].
pub fn run_script(array: &Array, script: &str) -> ScriptRun {
    Session::new(array).execute(script)
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

    /// Runs `script` line by line and returns what each line did.
    ///
    /// The script stops at a line that does not parse (exit code [`ExitCode::Syntax`]), at a line
    /// that fails without `noerr` (that error's exit code), or at `exit`; a line that fails with
    /// `noerr` is recorded in [`ScriptRun::ignored_errors`] and the script goes on. The exit code
    /// is [`ExitCode::Ok`] unless a failure stopped the script.
    pub fn execute(&mut self, script: &str) -> ScriptRun {
        let mut run = ScriptRun {
            exit_code: ExitCode::Ok,
            stopped_at: None,
            ignored_errors: Vec::new(),
            lines: Vec::new(),
        };
        for (i, text) in script.lines().enumerate() {
            let line = i + 1;
            let mut result = LineResult {
                line,
                command: text.trim().to_string(),
                noerr: false,
                outcome: Ok(Output::None),
            };
            let (cmd, noerr) = match parse_line(text) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(message) => {
                    self.forget_failed_select(text);
                    result.outcome = Err(ScriptError {
                        line,
                        code: ExitCode::Syntax,
                        kind: ScriptErrorKind::Syntax,
                        message,
                    });
                    run.exit_code = ExitCode::Syntax;
                    run.stopped_at = Some(line);
                    run.lines.push(result);
                    break;
                }
            };
            result.noerr = noerr;
            result.outcome = self.exec(&cmd).map_err(|f| f.at(line));
            let stop = match &result.outcome {
                Ok(Output::Exit) => true,
                Ok(_) => false,
                Err(_) if noerr => {
                    run.ignored_errors.push(line);
                    false
                }
                Err(e) => {
                    run.exit_code = e.code;
                    true
                }
            };
            run.lines.push(result);
            if stop {
                run.stopped_at = Some(line);
                break;
            }
        }
        run
    }

    /// Runs `script` and appends its text ([`ScriptRun::render_text`]) to `out`; returns the
    /// exit code and the error that stopped the script: `(ExitCode::Ok, None)` when no error
    /// stopped it (errors `noerr` let pass are in the text, and in [`Session::execute`]'s
    /// [`ScriptRun::ignored_errors`]), else that error's code and the error. Never an Ok code
    /// with an error, nor an error code without one.
    ///
    /// A thin wrapper over [`Session::execute`], kept for callers that want only text.
    pub fn run(&mut self, script: &str, out: &mut String) -> (ExitCode, Option<ScriptError>) {
        let run = self.execute(script);
        out.push_str(&run.render_text());
        (run.exit_code, run.stopping_error().cloned())
    }

    /// A `select` line that does not parse leaves nothing selected, as a failed select does:
    /// the LUN, the target, or both when the line does not say which.
    fn forget_failed_select(&mut self, text: &str) {
        let line = text.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace().map(str::to_ascii_lowercase);
        if w.next().as_deref() != Some("select") {
            return;
        }
        match w.next().as_deref() {
            Some("lun") => self.lun = None,
            Some("target") => self.target = None,
            _ => {
                self.lun = None;
                self.target = None;
            }
        }
    }

    fn selected_lun(&self) -> Result<&str, Fail> {
        self.lun
            .as_deref()
            .ok_or_else(|| Fail::no_selection("no LUN is selected (select lun <name>)"))
    }

    fn selected_target(&self) -> Result<&str, Fail> {
        self.target
            .as_deref()
            .ok_or_else(|| Fail::no_selection("no target is selected"))
    }

    fn exec(&mut self, cmd: &Command) -> Result<Output, Fail> {
        let a = self.array;
        Ok(match cmd {
            Command::List(what) => match what.as_str() {
                "lun" => Output::Luns {
                    rows: a.luns().into_iter().map(LunRow::from).collect(),
                },
                "target" => Output::Targets {
                    rows: a.targets().into_iter().map(target_row).collect(),
                },
                "host" => Output::Hosts {
                    rows: a
                        .hosts()
                        .into_iter()
                        .map(|(name, m)| HostRow {
                            name,
                            initiators: m.iter().map(ToString::to_string).collect(),
                        })
                        .collect(),
                },
                "group" => Output::Groups {
                    rows: a
                        .groups()
                        .into_iter()
                        .map(|(name, m)| GroupRow {
                            name,
                            members: m.iter().map(ToString::to_string).collect(),
                        })
                        .collect(),
                },
                _ => Output::Subsystems {
                    rows: a
                        .provider()
                        .subsystems
                        .into_iter()
                        .map(|s| SubsystemRow {
                            name: s.name,
                            luns: s.luns,
                            block_size: s.block_size,
                            flags: s.flags,
                            controllers: s.controllers.into_iter().map(|c| c.name).collect(),
                        })
                        .collect(),
                },
            },
            Command::Select(Object::Lun, name) => {
                // A failed select leaves nothing selected, so a later command cannot act on the
                // LUN selected before it.
                self.lun = None;
                a.lun(name)?;
                self.lun = Some(name.clone());
                Output::LunSelected { name: name.clone() }
            }
            Command::Select(Object::Target, name) => {
                self.target = None;
                if !a.targets().iter().any(|t| &t.name == name) {
                    return Err(Fail {
                        code: ExitCode::Syntax,
                        kind: ScriptErrorKind::Failed(ErrorKind::NotFound),
                        message: format!("no target named {name:?}"),
                    });
                }
                self.target = Some(name.clone());
                Output::TargetSelected { name: name.clone() }
            }
            Command::Detail(Object::Lun) => {
                Output::LunDetail(LunDetail::of(a, self.selected_lun()?)?)
            }
            Command::Detail(Object::Target) => {
                let name = self.selected_target()?;
                match a.targets().into_iter().find(|t| t.name == name) {
                    Some(t) => Output::TargetDetail(target_row(t)),
                    None => Output::None,
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
                // The name is checked before the list, as the array does.
                check_lun_name(&name).map_err(Fail::argument)?;
                let spec = MaskSpec::parse(unmask).map_err(Fail::argument)?;
                a.create_lun(&name, *size, &spec)?;
                self.lun = Some(name.clone());
                Output::LunCreated { name }
            }
            Command::Delete(Object::Lun) => {
                let name = self.selected_lun()?.to_string();
                a.delete_lun(&name)?;
                self.lun = None;
                Output::LunDeleted { name }
            }
            Command::Delete(Object::Target) => {
                let name = self.selected_target()?.to_string();
                self.target = None;
                a.delete_target(&name)?;
                Output::TargetDeleted { name }
            }
            Command::Extend(add) => {
                let name = self.selected_lun()?;
                let l = a.lun(name)?;
                let size = l.size.checked_add(*add).ok_or(Fail {
                    code: ExitCode::Syntax,
                    kind: ScriptErrorKind::Failed(ErrorKind::InvalidArgument),
                    message: "size too large".to_string(),
                })?;
                a.extend_lun(name, size)?;
                Output::LunExtended {
                    name: name.to_string(),
                    size,
                }
            }
            Command::Unmask(u) => {
                let name = self.selected_lun()?;
                let (Unmask::Set(l) | Unmask::Add(l) | Unmask::Remove(l)) = u;
                let spec = MaskSpec::parse(l).map_err(Fail::argument)?;
                match u {
                    Unmask::Set(_) => a.set_mask(name, &spec),
                    Unmask::Add(_) => a.add_to_mask(name, &spec),
                    Unmask::Remove(_) => a.remove_from_mask(name, &spec),
                }?;
                Output::LunUnmasked {
                    name: name.to_string(),
                    mask: a.get_mask(name)?,
                }
            }
            Command::Online(on) => {
                let name = self.selected_lun()?;
                a.set_online(name, *on)?;
                Output::LunStatusSet {
                    name: name.to_string(),
                    online: *on,
                }
            }
            Command::CreateTarget { name, iqn, portals } => {
                let p: Vec<&str> = portals.iter().map(String::as_str).collect();
                a.create_target(name, iqn, &p)?;
                self.target = Some(name.clone());
                Output::TargetCreated { name: name.clone() }
            }
            Command::Associate { targets, add } => {
                let name = self.selected_lun()?;
                let t: Vec<&str> = targets.iter().map(String::as_str).collect();
                a.associate_targets(name, &t, *add)?;
                Output::TargetsAssociated {
                    name: name.to_string(),
                    targets: targets.clone(),
                    add: *add,
                }
            }
            Command::Snapshot(new) => {
                let name = self.selected_lun()?;
                a.snapshot_lun(name, new)?;
                Output::SnapshotCreated {
                    name: new.clone(),
                    source: name.to_string(),
                }
            }
            Command::Swap(with) => {
                let name = self.selected_lun()?;
                a.swap_lun(name, with)?;
                Output::LunSwapped {
                    name: name.to_string(),
                    with: with.clone(),
                }
            }
            Command::Split => {
                let name = self.selected_lun()?;
                a.split_lun(name).wait()?;
                Output::LunSplit {
                    name: name.to_string(),
                }
            }
            Command::Resync(from) => {
                let name = self.selected_lun()?;
                a.resync_lun(from, name).wait()?;
                Output::LunResynced {
                    name: name.to_string(),
                    from: from.clone(),
                }
            }
            Command::GroupSet(g, members) => {
                let m = members
                    .iter()
                    .map(|m| InitiatorId::parse(m))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(Fail::argument)?;
                a.set_group(g, &m)?;
                Output::GroupSet {
                    name: g.clone(),
                    members: members.clone(),
                }
            }
            Command::GroupDelete(g) => {
                a.delete_group(g)?;
                Output::GroupDeleted { name: g.clone() }
            }
            Command::Number(ini, n) => {
                let name = self.selected_lun()?;
                let ini_id = InitiatorId::parse(ini).map_err(Fail::argument)?;
                a.set_host_number(name, &ini_id, *n)?;
                Output::NumberSet {
                    lun: name.to_string(),
                    initiator: ini.clone(),
                    number: *n,
                }
            }
            Command::Exit => Output::Exit,
        })
    }
}

fn target_row(t: crate::array::TargetInfo) -> TargetRow {
    TargetRow {
        name: t.name,
        iqn: t.iqn,
        portals: t.portals,
        lun_ids: t.luns.into_iter().collect(),
    }
}
