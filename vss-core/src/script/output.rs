//! The structured result of a DiskShadow-style script run, its text, and its JSON form.
//!
//! Shaped like vds-core's DiskRAID `ScriptRun` (same field names: `exit_code`, `stopped_at`,
//! `lines`, each line's `line`, `command`, `status`, `output` or `error`), so a front end prints
//! either dialect's run the same way. DiskShadow has no `noerr`, so there is no `noerr` flag nor
//! `ignored_errors` list: the first failure stops the script. Field names never change; new
//! fields and new `"type"` values may be added.
//!
//! A mirror kept on purpose, not a shared generic: the dialects' exit codes, error fields (a
//! syntax error's column, token, expected) and `noerr` differ, and each dialect's JSON is its own
//! stable format.

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use uuid::Uuid;

use super::parse::SyntaxError;
use crate::error::ErrorKind;
use crate::shadow::{Attributes, BackupType, Context, ProviderType, ShadowProperties};
use crate::writer::WriterState;

/// The exit codes of the DiskShadow-style dialect.
///
/// Microsoft does not document DiskShadow's exit codes, so these are umbra's, numbered as
/// DiskRAID's (vds-core) where the meaning is shared, plus one for `exec`:
///
/// | code | meaning |
/// |---|---|
/// | 0 | every line ran (or the script reached `exit`) |
/// | 1 | fatal: the pool or the shadow-copy service could not be used at all |
/// | 2 | incorrect arguments on the command line (a front end's) |
/// | 3 | a file could not be read or written: the script, `set metadata`, `load metadata` |
/// | 4 | a command failed: the coordinator, a provider or a writer refused or failed it |
/// | 5 | a line does not parse (also every error [`validate`](super::validate) reports) |
/// | 6 | `exec`: the program could not be run or exited with a failure |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ExitCode {
    /// No error stopped the script.
    Ok = 0,
    /// The service could not be used at all.
    Fatal = 1,
    /// Incorrect arguments on the command line.
    BadArguments = 2,
    /// A file could not be read or written.
    ScriptFile = 3,
    /// A command failed.
    CommandFailed = 4,
    /// A line does not parse.
    Syntax = 5,
    /// An `exec` program could not be run or failed.
    ExecFailed = 6,
}

impl ExitCode {
    /// The process exit status (0 to 6).
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl Serialize for ExitCode {
    /// The number (0 to 6).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

/// Everything one run of a script did, line by line, and how it ended.
///
/// JSON: `{"exit_code": 0, "stopped_at": null, "lines": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptRun {
    /// The run's exit code: [`ExitCode::Ok`] unless an error stopped the script, else that
    /// error's code.
    pub exit_code: ExitCode,
    /// The line that ended the script before its end: a failure or `exit`. `None` when the
    /// script ran to its last line.
    pub stopped_at: Option<usize>,
    /// One result per line run, in order; blank and comment lines have none.
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

    /// Every error, in line order.
    pub fn errors(&self) -> impl Iterator<Item = &ScriptError> {
        self.lines.iter().filter_map(|l| l.outcome.as_ref().err())
    }

    /// The DiskShadow-like text of the run: each line's output, and `line N: message` for each
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

/// What one line of a script did.
///
/// JSON: `{"line": 2, "command": "create", "status": "ok", "output": {...}}`, or with
/// `"status": "error"` an `"error": {...}` object in place of `"output"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineResult {
    /// The 1-based line number in the script.
    pub line: usize,
    /// The line as written, without surrounding white space.
    pub command: String,
    /// What the command showed or did, or why it failed.
    pub outcome: Result<Output, ScriptError>,
}

impl Serialize for LineResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("line", &self.line)?;
        m.serialize_entry("command", &self.command)?;
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

/// Why one line of a script failed: a line that does not parse, or a command that failed.
///
/// JSON: `{"line": 3, "exit_code": 5, "kind": "syntax", "message": "...", "column": 8,
/// "token": "volatil", "expected": "clientaccessible, persistent or volatile"}`; `column`,
/// `token` and `expected` are `null` for an error that is not a syntax error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptError {
    /// The 1-based line number.
    pub line: usize,
    /// The exit code this error maps to (`exit_code` in JSON).
    #[serde(rename = "exit_code")]
    pub code: ExitCode,
    /// What kind of failure it is.
    pub kind: ScriptErrorKind,
    /// What went wrong (for a failed command: the error's text, kind first).
    pub message: String,
    /// A syntax error's column ([`SyntaxError::column`]).
    pub column: Option<usize>,
    /// A syntax error's word at fault ([`SyntaxError::token`]).
    pub token: Option<String>,
    /// What a syntax error expected ([`SyntaxError::expected`]).
    pub expected: Option<String>,
}

impl ScriptError {
    /// A command on `line` that failed with `error`: exit code [`ExitCode::CommandFailed`],
    /// kind [`ScriptErrorKind::Failed`] of the error's kind.
    pub fn failed(line: usize, error: &crate::Error) -> Self {
        ScriptError::with_code(line, ExitCode::CommandFailed, error)
    }

    /// A file that could not be read or written for the command on `line`: exit code
    /// [`ExitCode::ScriptFile`].
    pub fn file(line: usize, error: &crate::Error) -> Self {
        ScriptError::with_code(line, ExitCode::ScriptFile, error)
    }

    /// An `exec` on `line` whose program could not run or failed (`message` says which, with
    /// its exit status): exit code [`ExitCode::ExecFailed`].
    pub fn exec_failed(line: usize, message: impl Into<String>) -> Self {
        ScriptError {
            line,
            code: ExitCode::ExecFailed,
            kind: ScriptErrorKind::ExecFailed,
            message: message.into(),
            column: None,
            token: None,
            expected: None,
        }
    }

    fn with_code(line: usize, code: ExitCode, error: &crate::Error) -> Self {
        ScriptError {
            line,
            code,
            kind: ScriptErrorKind::Failed(error.kind()),
            message: error.report(),
            column: None,
            token: None,
            expected: None,
        }
    }
}

impl From<SyntaxError> for ScriptError {
    /// Exit code [`ExitCode::Syntax`], kind [`ScriptErrorKind::Syntax`], the syntax error's
    /// fields kept.
    fn from(e: SyntaxError) -> Self {
        ScriptError {
            line: e.line,
            code: ExitCode::Syntax,
            kind: ScriptErrorKind::Syntax,
            message: e.message,
            column: e.column,
            token: e.token,
            expected: Some(e.expected),
        }
    }
}

impl fmt::Display for ScriptError {
    /// A syntax error as [`SyntaxError`] prints; any other as `line N: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected {
            Some(expected) if self.kind == ScriptErrorKind::Syntax => SyntaxError {
                line: self.line,
                column: self.column,
                token: self.token.clone(),
                expected: expected.clone(),
                message: self.message.clone(),
            }
            .fmt(f),
            _ => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// What kind of failure a [`ScriptError`] is.
///
/// JSON: one snake_case string: `"syntax"`, `"exec_failed"`, or the [`ErrorKind`]'s name
/// (`"invalid_argument"`, `"not_found"`, `"bad_state"`, `"snapshot_set_in_progress"`, ...: the
/// variant's name in snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptErrorKind {
    /// The line does not parse (exit code [`ExitCode::Syntax`]).
    Syntax,
    /// An `exec` program could not run or failed (exit code [`ExitCode::ExecFailed`]).
    ExecFailed,
    /// The command failed with an error of this kind.
    Failed(ErrorKind),
}

impl ScriptErrorKind {
    /// The stable snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptErrorKind::Syntax => "syntax",
            ScriptErrorKind::ExecFailed => "exec_failed",
            ScriptErrorKind::Failed(k) => k.name(),
        }
    }
}

impl Serialize for ScriptErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One shadow a `create` made, with the aliases that name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedShadow {
    /// The shadow's id.
    pub id: Uuid,
    /// The LUN it is a shadow of.
    pub source: String,
    /// The shadow LUN (hardware) or `None` (software: a snapshot inside the volume).
    pub lun: Option<String>,
    /// Its numbered alias (`VSS_SHADOW_1`, ...).
    pub alias: String,
    /// The alias `add volume ... alias` gave it.
    pub volume_alias: Option<String>,
}

/// One row of `list writers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterRow {
    /// The writer's name.
    pub name: String,
    /// Its state (`"STABLE"`, `"FAILED_AT_FREEZE"`, ... in JSON).
    #[serde(serialize_with = "writer_state")]
    pub state: WriterState,
    /// Its last failure (kind and message), if any.
    pub failure: Option<String>,
    /// Its components, by path (for `metadata`; `detailed` adds the LUNs each lives on).
    pub components: Vec<String>,
    /// Its writer metadata document (for `metadata` and `detailed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<crate::document::WriterMetadata>,
}

fn writer_state<S: Serializer>(v: &WriterState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// One row of `list providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderRow {
    /// The provider's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its type (`"software"`, `"hardware"` in JSON).
    pub provider_type: ProviderType,
}

/// What a successful line showed or did.
///
/// JSON: an object whose `"type"` names the variant in snake_case (`"context_set"`,
/// `"created"`, `"shadows"`, ...) beside the variant's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Output {
    /// `set context`.
    ContextSet {
        /// The context now in force (bitflags text in JSON: `"APP_ROLLBACK"`).
        context: Context,
    },
    /// `set option`.
    OptionsSet {
        /// The attribute bits now in force.
        attributes: Attributes,
    },
    /// `set backuptype`.
    BackupTypeSet {
        /// The backup type now in force (`"copy"`, `"full"`, ...).
        backup_type: BackupType,
    },
    /// `set metadata`.
    MetadataFileSet {
        /// Where `create` writes the backup components document.
        path: String,
    },
    /// `set verbose`.
    VerboseSet {
        /// On or off.
        on: bool,
    },
    /// `load metadata`.
    MetadataLoaded {
        /// The file read.
        path: String,
        /// The set the document describes (`VSS_SHADOW_SET`).
        set_id: Option<Uuid>,
        /// The set's shadows in the document's order (`VSS_SHADOW_1`..`n`).
        shadows: Vec<Uuid>,
    },
    /// `writer verify` / `writer exclude`.
    WriterSelected {
        /// The writer or component.
        name: String,
        /// It must take part (verify) or is left out (exclude).
        included: bool,
    },
    /// `add volume`.
    VolumeAdded {
        /// The LUN.
        lun: String,
        /// The provider that will make its shadow.
        provider: ProviderType,
        /// The alias its shadow's id gets at `create`.
        alias: Option<String>,
    },
    /// `add alias`.
    AliasAdded {
        /// The alias.
        name: String,
        /// Its value.
        value: String,
    },
    /// `begin backup`, `end backup`, `begin restore`, `end restore`, `simulate restore`,
    /// `reset`: the step named.
    Step {
        /// The command's canonical text (`"begin backup"`).
        step: String,
    },
    /// `create`: the set made, with its aliases.
    Created {
        /// The set's id (`VSS_SHADOW_SET`).
        set_id: Uuid,
        /// Its shadows, in the order their LUNs were added.
        shadows: Vec<CreatedShadow>,
    },
    /// `list shadows`.
    Shadows {
        /// The shadows' properties.
        rows: Vec<ShadowProperties>,
    },
    /// `list writers`.
    Writers {
        /// The writers.
        rows: Vec<WriterRow>,
    },
    /// `list providers`.
    Providers {
        /// The providers.
        rows: Vec<ProviderRow>,
    },
    /// `delete shadows`.
    ShadowsDeleted {
        /// The shadows deleted.
        ids: Vec<Uuid>,
    },
    /// `expose`.
    Exposed {
        /// The shadow.
        id: Uuid,
        /// The initiator it is unmasked to (canonical form).
        host: String,
    },
    /// `unexpose`.
    Unexposed {
        /// The shadow.
        id: Uuid,
    },
    /// `import`.
    Imported {
        /// The set imported.
        set_id: Uuid,
        /// Its shadows.
        ids: Vec<Uuid>,
    },
    /// `mask`.
    Masked {
        /// The set.
        set_id: Uuid,
    },
    /// `break`.
    Broken {
        /// The set.
        set_id: Uuid,
        /// The LUNs that are now ordinary LUNs.
        luns: Vec<String>,
        /// Read-write (else read-only).
        writable: bool,
    },
    /// `revert`.
    Reverted {
        /// The shadow.
        id: Uuid,
        /// The LUN reverted.
        lun: String,
    },
    /// `resync`.
    Resynced {
        /// The shadow.
        id: Uuid,
        /// The LUN copied onto.
        lun: String,
        /// The bytes the resync wrote to that LUN (only the blocks that differed), from its I/O
        /// statistics before and after; `None` when the provider cannot read them
        /// ([`Provider::written_bytes`](crate::provider::Provider::written_bytes)).
        bytes: Option<u64>,
    },
    /// `exec`: the program exited with status 0.
    Executed {
        /// The program run.
        file: String,
    },
    /// `exit`: the script ends here.
    Exit,
}

impl fmt::Display for Output {
    /// DiskShadow-like text, every line ending in a newline (nothing for [`Output::Exit`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::ContextSet { context } => {
                writeln!(f, "Context set to {}.", context)
            }
            Output::OptionsSet { attributes } => {
                writeln!(f, "Options set to {}.", attributes)
            }
            Output::BackupTypeSet { backup_type } => {
                writeln!(f, "Backup type set to {backup_type}.")
            }
            Output::MetadataFileSet { path } => {
                writeln!(f, "The backup components document will be saved to {path}.")
            }
            Output::VerboseSet { on } => {
                writeln!(f, "Verbose mode {}.", if *on { "on" } else { "off" })
            }
            Output::MetadataLoaded {
                path,
                set_id,
                shadows,
            } => match set_id {
                Some(id) => {
                    writeln!(f, "Loaded {path}: shadow set {{{id}}}.")?;
                    for (i, s) in shadows.iter().enumerate() {
                        writeln!(
                            f,
                            "Alias VSS_SHADOW_{} for shadow ID {{{s}}} set as environment variable.",
                            i + 1
                        )?;
                    }
                    writeln!(
                        f,
                        "Alias VSS_SHADOW_SET for shadow set ID {{{id}}} set as environment variable."
                    )
                }
                None => writeln!(f, "Loaded {path}."),
            },
            Output::WriterSelected { name, included } => writeln!(
                f,
                "Writer {name} {}.",
                if *included {
                    "must take part"
                } else {
                    "is excluded"
                }
            ),
            Output::VolumeAdded {
                lun,
                provider,
                alias,
            } => {
                write!(
                    f,
                    "Volume {lun} added to the shadow set ({provider} provider)"
                )?;
                match alias {
                    Some(a) => writeln!(f, ", alias {a}."),
                    None => writeln!(f, "."),
                }
            }
            Output::AliasAdded { name, value } => writeln!(f, "Alias {name} set to {value}."),
            Output::Step { step } => writeln!(f, "{step}: done."),
            Output::Created { set_id, shadows } => {
                for s in shadows {
                    writeln!(
                        f,
                        "Alias {} for shadow ID {{{}}} set as environment variable.",
                        s.alias, s.id
                    )?;
                    if let Some(a) = &s.volume_alias {
                        writeln!(
                            f,
                            "Alias {a} for shadow ID {{{}}} set as environment variable.",
                            s.id
                        )?;
                    }
                }
                writeln!(
                    f,
                    "Alias VSS_SHADOW_SET for shadow set ID {{{set_id}}} set as environment variable."
                )
            }
            Output::Shadows { rows } => {
                for s in rows {
                    writeln!(f, "* Shadow copy ID = {{{}}}", s.shadow_id)?;
                    writeln!(f, "  - Shadow copy set: {{{}}}", s.set_id)?;
                    writeln!(
                        f,
                        "  - Original count of shadow copies = {}",
                        s.count_in_set
                    )?;
                    writeln!(f, "  - Original volume name: {}", s.original.name)?;
                    writeln!(f, "  - Shadow copy device name: {}", s.shadow.name)?;
                    writeln!(f, "  - Provider type: {}", s.provider_type)?;
                    writeln!(f, "  - Attributes: {}", s.attributes)?;
                }
                writeln!(f, "Number of shadow copies listed: {}", rows.len())
            }
            Output::Writers { rows } => {
                for w in rows {
                    writeln!(f, "* WRITER \"{}\"", w.name)?;
                    writeln!(f, "  - State: [{}] {}", w.state.code(), w.state.as_str())?;
                    if let Some(fail) = &w.failure {
                        writeln!(f, "  - Last error: {fail}")?;
                    }
                    for c in &w.components {
                        writeln!(f, "  - Component \"{c}\"")?;
                    }
                    if let Some(m) = &w.metadata {
                        let doc = m.to_json().unwrap_or_else(|e| e.to_string());
                        writeln!(f, "  - Metadata document: {doc}")?;
                    }
                }
                writeln!(f, "{} writers listed.", rows.len())
            }
            Output::Providers { rows } => {
                for p in rows {
                    writeln!(f, "* ProviderID: {{{}}}", p.id)?;
                    writeln!(
                        f,
                        "  Type: [{}] {}",
                        p.provider_type.code(),
                        p.provider_type
                    )?;
                    writeln!(f, "  Name: {}", p.name)?;
                }
                writeln!(f, "{} provider(s) registered.", rows.len())
            }
            Output::ShadowsDeleted { ids } => {
                writeln!(f, "Number of shadow copies deleted: {}", ids.len())
            }
            Output::Exposed { id, host } => {
                writeln!(f, "Shadow {{{id}}} is exposed, read-only, to {host}.")
            }
            Output::Unexposed { id } => writeln!(f, "Shadow {{{id}}} is no longer exposed."),
            Output::Imported { set_id, ids } => writeln!(
                f,
                "Imported shadow set {{{set_id}}}: {} shadow copies.",
                ids.len()
            ),
            Output::Masked { set_id } => writeln!(f, "Shadow set {{{set_id}}} is masked."),
            Output::Broken {
                set_id,
                luns,
                writable,
            } => writeln!(
                f,
                "Shadow set {{{set_id}}} is broken: {} {} LUN(s).",
                luns.len(),
                if *writable { "read-write" } else { "read-only" }
            ),
            Output::Reverted { id, lun } => {
                writeln!(f, "LUN {lun} is reverted to shadow {{{id}}}.")
            }
            Output::Resynced { id, lun, bytes } => match bytes {
                Some(b) => writeln!(
                    f,
                    "LUN {lun} is resynchronised from shadow {{{id}}} ({b} bytes copied)."
                ),
                None => writeln!(f, "LUN {lun} is resynchronised from shadow {{{id}}}."),
            },
            Output::Executed { file } => writeln!(f, "{file} ran successfully."),
            Output::Exit => Ok(()),
        }
    }
}
