//! From a line's words to a [`Command`], and a whole script checked without running it.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;
use vds_core::InitiatorId;

use super::command::{
    Command, ContextWord, DeleteTarget, ShadowSelector, WriterAction, WriterListing,
    BACKUP_TYPE_WORDS, OPTION_WORDS,
};
use super::lex::{is_alias_name, words, Aliases, Word};
use super::output::{ExitCode, ScriptError, ScriptRun};
use crate::shadow::{Attributes, ProviderType};

/// The commands, as the first word of a line.
const VERBS: [&str; 20] = [
    "set", "load", "writer", "add", "begin", "end", "simulate", "create", "list", "delete",
    "expose", "unexpose", "import", "mask", "break", "revert", "resync", "exec", "reset", "exit",
];

/// A line that does not parse: where, the word at fault, what was expected there, and why.
///
/// Its text is `line N, column C: at "WORD": MESSAGE (expected EXPECTED)`, or `line N: at the
/// end of the line: ...` when a word is missing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SyntaxError {
    /// The 1-based line number.
    pub line: usize,
    /// The 1-based column (in characters) of the word at fault; `None` at the end of the line.
    pub column: Option<usize>,
    /// The word at fault as written (quotes included, aliases not expanded); `None` when a word
    /// is missing at the end of the line.
    pub token: Option<String>,
    /// What the parser expected there (`"a shadow id (a UUID)"`, `"on or off"`).
    pub expected: String,
    /// Why the line does not parse.
    pub message: String,
}

impl SyntaxError {
    pub(super) fn new(
        line: usize,
        at: Option<(String, usize)>,
        expected: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (token, column) = match at {
            Some((t, c)) => (Some(t), Some(c)),
            None => (None, None),
        };
        SyntaxError {
            line,
            column,
            token,
            expected: expected.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.token, self.column) {
            (Some(t), Some(c)) => write!(f, "line {}, column {c}: at {t:?}: ", self.line)?,
            _ => write!(f, "line {}: at the end of the line: ", self.line)?,
        }
        write!(f, "{} (expected {})", self.message, self.expected)
    }
}

impl std::error::Error for SyntaxError {}

impl From<SyntaxError> for crate::Error {
    /// An [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) error with the
    /// syntax error's text.
    fn from(e: SyntaxError) -> Self {
        crate::Error::new(crate::ErrorKind::InvalidArgument, e.to_string())
    }
}

/// The words of one line, read left to right.
struct Cursor<'a> {
    line: usize,
    words: &'a [Word],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Word> {
        self.words.get(self.at)
    }

    /// An error at the next word (or at the end of the line).
    fn error(&self, expected: &str, message: impl Into<String>) -> SyntaxError {
        let at = self.peek().map(|w| (w.raw.clone(), w.column));
        SyntaxError::new(self.line, at, expected, message)
    }

    /// An error at the word just read.
    fn error_prev(&self, expected: &str, message: impl Into<String>) -> SyntaxError {
        let w = &self.words[self.at - 1];
        SyntaxError::new(
            self.line,
            Some((w.raw.clone(), w.column)),
            expected,
            message,
        )
    }

    /// The next word, which must be one of `choices` (any ASCII case); its index in `choices`.
    fn keyword(&mut self, choices: &[&str], expected: &str) -> Result<usize, SyntaxError> {
        let Some(w) = self.peek() else {
            return Err(self.error(expected, "a word is missing"));
        };
        match choices.iter().position(|c| c.eq_ignore_ascii_case(&w.text)) {
            Some(i) => {
                self.at += 1;
                Ok(i)
            }
            None => Err(self.error(expected, format!("unknown word {:?}", w.text))),
        }
    }

    /// The next word if it is `keyword` (any ASCII case).
    fn optional(&mut self, keyword: &str) -> bool {
        let hit = self
            .peek()
            .is_some_and(|w| w.text.eq_ignore_ascii_case(keyword));
        self.at += usize::from(hit);
        hit
    }

    /// The next word, whatever it is, non-empty.
    fn value(&mut self, expected: &str) -> Result<String, SyntaxError> {
        let Some(w) = self.peek() else {
            return Err(self.error(expected, "a word is missing"));
        };
        if w.text.is_empty() {
            return Err(self.error(expected, "the word is empty"));
        }
        self.at += 1;
        Ok(w.text.clone())
    }

    fn uuid(&mut self, what: &str) -> Result<Uuid, SyntaxError> {
        let expected = format!("{what} (a UUID, braces allowed)");
        let text = self.value(&expected)?;
        Uuid::parse_str(&text)
            .map_err(|e| self.error_prev(&expected, format!("{text:?} is not a UUID: {e}")))
    }

    fn lun(&mut self) -> Result<String, SyntaxError> {
        const EXPECTED: &str = "a LUN name (1 to 64 letters, digits, '.', '_', '-')";
        let text = self.value(EXPECTED)?;
        vds_core::array::check_lun_name(&text)
            .map_err(|e| self.error_prev(EXPECTED, e.message().to_string()))?;
        Ok(text)
    }

    fn host(&mut self) -> Result<InitiatorId, SyntaxError> {
        const EXPECTED: &str = "an initiator id (iqn., eui., naa. or a 64-bit WWN)";
        let text = self.value(EXPECTED)?;
        InitiatorId::parse(&text).map_err(|e| self.error_prev(EXPECTED, e.message().to_string()))
    }

    fn alias_name(&mut self) -> Result<String, SyntaxError> {
        const EXPECTED: &str = "an alias name (a letter or '_', then letters, digits or '_')";
        let text = self.value(EXPECTED)?;
        if !is_alias_name(&text) {
            return Err(self.error_prev(EXPECTED, format!("{text:?} is not an alias name")));
        }
        Ok(text)
    }

    /// The line must end here.
    fn end(&self) -> Result<(), SyntaxError> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(self.error(
                "the end of the line",
                format!("unexpected word {:?}", w.text),
            )),
        }
    }
}

/// Parses one line of a DiskShadow-style script (`line_no` is its 1-based number, for errors),
/// expanding `%NAME%` from `aliases`: `Ok(None)` for a blank or comment line.
///
/// Parsing changes nothing: record what a command does to the aliases with
/// [`Aliases::apply`] (and [`Aliases::created`]) once it has run.
pub fn parse_line(
    line_no: usize,
    text: &str,
    aliases: &Aliases,
) -> Result<Option<Command>, SyntaxError> {
    let words = words(line_no, text, aliases)?;
    if words.is_empty() {
        return Ok(None);
    }
    let mut c = Cursor {
        line: line_no,
        words: &words,
        at: 0,
    };
    let expected_verb = format!("a command ({})", VERBS.join(", "));
    let verb = VERBS[c.keyword(&VERBS, &expected_verb)?];
    let cmd = match verb {
        "set" => parse_set(&mut c)?,
        "load" => {
            c.keyword(&["metadata"], "metadata")?;
            Command::LoadMetadata(c.value("a file name")?)
        }
        "writer" => {
            let action = match c.keyword(&["verify", "exclude"], "verify or exclude")? {
                0 => WriterAction::Verify,
                _ => WriterAction::Exclude,
            };
            // DiskShadow takes the rest of the line as the name ("writer exclude System Writer").
            let rest = &words[c.at..];
            let name = rest
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if name.is_empty() {
                return Err(c.error("a writer or component name", "the name is missing"));
            }
            c.at = words.len();
            Command::Writer { action, name }
        }
        "add" => match c.keyword(&["volume", "alias"], "volume or alias")? {
            0 => parse_add_volume(&mut c)?,
            _ => Command::AddAlias {
                name: c.alias_name()?,
                value: {
                    let Some(w) = c.peek() else {
                        return Err(c.error("the alias's value", "a word is missing"));
                    };
                    c.at += 1;
                    w.text.clone()
                },
            },
        },
        "begin" => match c.keyword(&["backup", "restore"], "backup or restore")? {
            0 => Command::BeginBackup,
            _ => Command::BeginRestore,
        },
        "end" => match c.keyword(&["backup", "restore"], "backup or restore")? {
            0 => Command::EndBackup,
            _ => Command::EndRestore,
        },
        "simulate" => {
            c.keyword(&["restore"], "restore")?;
            Command::SimulateRestore
        }
        "create" => Command::Create,
        "list" => match c.keyword(
            &["shadows", "writers", "providers"],
            "shadows, writers or providers",
        )? {
            0 => Command::ListShadows(
                match c.keyword(&["all", "set", "id"], "all, set ID or id ID")? {
                    0 => ShadowSelector::All,
                    1 => ShadowSelector::Set(c.uuid("a set id")?),
                    _ => ShadowSelector::Id(c.uuid("a shadow id")?),
                },
            ),
            1 => Command::ListWriters(if c.peek().is_none() {
                WriterListing::Summary
            } else {
                match c.keyword(
                    &["metadata", "detailed", "status"],
                    "metadata, detailed, status or the end of the line",
                )? {
                    0 => WriterListing::Metadata,
                    1 => WriterListing::Detailed,
                    _ => WriterListing::Status,
                }
            }),
            _ => Command::ListProviders,
        },
        "delete" => {
            c.keyword(&["shadows"], "shadows")?;
            Command::DeleteShadows(
                match c.keyword(
                    &["all", "volume", "oldest", "set", "id", "exposed"],
                    "all, volume LUN, oldest LUN, set ID, id ID or exposed HOST",
                )? {
                    0 => DeleteTarget::All,
                    1 => DeleteTarget::Volume(c.lun()?),
                    2 => DeleteTarget::Oldest(c.lun()?),
                    3 => DeleteTarget::Set(c.uuid("a set id")?),
                    4 => DeleteTarget::Id(c.uuid("a shadow id")?),
                    _ => DeleteTarget::Exposed(c.host()?),
                },
            )
        }
        "expose" => Command::Expose {
            id: c.uuid("a shadow id")?,
            host: c.host()?,
        },
        "unexpose" => Command::Unexpose(c.uuid("a shadow id")?),
        "import" => Command::Import,
        "mask" => Command::Mask(c.uuid("a set id")?),
        "break" => {
            let writable = c.optional("writable");
            Command::Break {
                writable,
                set: c.uuid("a set id")?,
            }
        }
        "revert" => Command::Revert(c.uuid("a shadow id")?),
        "resync" => Command::Resync {
            id: c.uuid("a shadow id")?,
            target: match c.peek() {
                Some(_) => Some(c.lun()?),
                None => None,
            },
        },
        "exec" => Command::Exec(c.value("a file to run")?),
        "reset" => Command::Reset,
        _ => Command::Exit,
    };
    c.end()?;
    Ok(Some(cmd))
}

fn parse_set(c: &mut Cursor<'_>) -> Result<Command, SyntaxError> {
    Ok(
        match c.keyword(
            &["context", "option", "backuptype", "metadata", "verbose"],
            "context, option, backuptype, metadata or verbose",
        )? {
            0 => {
                let word = match c.keyword(
                    &["clientaccessible", "persistent", "volatile"],
                    "clientaccessible, persistent or volatile",
                )? {
                    0 => ContextWord::ClientAccessible,
                    1 => ContextWord::Persistent {
                        nowriters: c.optional("nowriters"),
                    },
                    _ => ContextWord::Volatile {
                        nowriters: c.optional("nowriters"),
                    },
                };
                Command::SetContext(word)
            }
            1 => {
                let words: Vec<&str> = OPTION_WORDS.iter().map(|(w, _)| *w).collect();
                let expected = format!("an option ({})", words.join(", "));
                let mut set = Attributes::empty();
                loop {
                    if c.peek().is_none() && !set.is_empty() {
                        break;
                    }
                    let (_, bit) = OPTION_WORDS[c.keyword(&words, &expected)?];
                    if set.contains(bit) {
                        return Err(c.error_prev(&expected, "the option is given twice"));
                    }
                    set |= bit;
                    if set.contains(Attributes::DIFFERENTIAL | Attributes::PLEX) {
                        return Err(
                            c.error_prev(&expected, "differential and plex exclude each other")
                        );
                    }
                    if set.contains(Attributes::NO_AUTORECOVERY)
                        && set.intersects(Attributes::ROLLBACK_RECOVERY | Attributes::TXF_RECOVERY)
                    {
                        return Err(c.error_prev(
                            &expected,
                            "noautorecover excludes rollbackrecover and txfrecover",
                        ));
                    }
                }
                Command::SetOption(set)
            }
            2 => {
                let words: Vec<&str> = BACKUP_TYPE_WORDS.iter().map(|(w, _)| *w).collect();
                let expected = format!("a backup type ({})", words.join(", "));
                Command::SetBackupType(BACKUP_TYPE_WORDS[c.keyword(&words, &expected)?].1)
            }
            3 => Command::SetMetadata(c.value("a file name")?),
            _ => Command::SetVerbose(c.keyword(&["on", "off"], "on or off")? == 0),
        },
    )
}

fn parse_add_volume(c: &mut Cursor<'_>) -> Result<Command, SyntaxError> {
    let lun = c.lun()?;
    let (mut provider, mut alias) = (None, None);
    while c.peek().is_some() {
        let expected = "provider software|hardware, alias NAME or the end of the line";
        match c.keyword(&["provider", "alias"], expected)? {
            0 => {
                if provider.is_some() {
                    return Err(c.error_prev(expected, "provider is given twice"));
                }
                provider = Some(
                    match c.keyword(&["software", "hardware"], "software or hardware")? {
                        0 => ProviderType::Software,
                        _ => ProviderType::Hardware,
                    },
                );
            }
            _ => {
                if alias.is_some() {
                    return Err(c.error_prev(expected, "alias is given twice"));
                }
                alias = Some(c.alias_name()?);
            }
        }
    }
    Ok(Command::AddVolume {
        lun,
        provider,
        alias,
    })
}

/// One line of a script that parses to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedLine {
    /// The 1-based line number.
    pub line: usize,
    /// The command, aliases expanded (its canonical text in JSON).
    #[serde(serialize_with = "as_text")]
    pub command: Command,
}

fn as_text<S: serde::Serializer>(c: &Command, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(c)
}

/// What [`validate`] found: every command that parses and every line that does not.
///
/// JSON: `{"exit_code": 5, "commands": [{"line": 1, "command": "set context persistent"}, ...],
/// "errors": [{"line": 2, "exit_code": 5, "kind": "syntax", ...}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Validation {
    /// [`ExitCode::Syntax`] if a line does not parse, else [`ExitCode::Ok`].
    pub exit_code: ExitCode,
    /// The lines that parse, in order, up to `exit` (the lines after it never run).
    pub commands: Vec<ParsedLine>,
    /// The lines that do not parse, in order, each a [`ScriptError`] of kind `syntax`.
    pub errors: Vec<ScriptError>,
}

impl Validation {
    /// True if every line parses.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The syntax errors as one line each (`line N, column C: ...`), nothing when every line
    /// parses.
    pub fn render_text(&self) -> String {
        self.errors.iter().map(|e| format!("{e}\n")).collect()
    }

    /// A [`ScriptRun`] that reports these errors as the executor would have, had it refused the
    /// script before running any of it: `None` if every line parses, else a run of exit code
    /// [`ExitCode::Syntax`] stopped at the first bad line, with one line result per bad line.
    pub fn failed_run(&self, script: &str) -> Option<ScriptRun> {
        let first = self.errors.first()?;
        let text: Vec<&str> = script.lines().collect();
        Some(ScriptRun {
            exit_code: ExitCode::Syntax,
            stopped_at: Some(first.line),
            lines: self
                .errors
                .iter()
                .map(|e| super::LineResult {
                    line: e.line,
                    command: text.get(e.line - 1).map_or("", |t| t.trim()).to_string(),
                    outcome: Err(e.clone()),
                })
                .collect(),
        })
    }
}

/// Parses a whole script without running any of it and reports **every** line that does not
/// parse (with its line number), not just the first: what a front end checks before it touches
/// the pool.
///
/// Aliases are followed as a run would define them ([`Aliases`]): `add alias` at once, `add
/// volume ... alias` and `VSS_SHADOW_n` / `VSS_SHADOW_SET` at each `create`, with stand-in ids
/// ([`Aliases::placeholder_id`]) for the shadows a dry run does not make, so `%VSS_SHADOW_1%`
/// after a `create` of one volume parses and `%VSS_SHADOW_2%` does not (after a `load metadata`,
/// whose file it does not read, `VSS_SHADOW_1` to `VSS_SHADOW_64` parse). Checking stops at
/// `exit`. `aliases` is the environment the script starts in (use [`Aliases::new`] for the
/// process's environment variables); it is not changed.
pub fn validate(script: &str, aliases: &Aliases) -> Validation {
    let mut env = aliases.clone();
    let (mut commands, mut errors) = (Vec::new(), Vec::new());
    for (i, text) in script.lines().enumerate() {
        let line = i + 1;
        match parse_line(line, text, &env) {
            Ok(None) => {}
            Ok(Some(command)) => {
                env.apply(&command);
                if let Command::LoadMetadata(_) = command {
                    // The document is not read: any shadow a set can hold may be named.
                    let ids: Vec<Uuid> = (1..=crate::document::MAX_VOLUMES_PER_SET)
                        .map(Aliases::placeholder_id)
                        .collect();
                    env.loaded(Aliases::placeholder_id(0), &ids);
                }
                if command == Command::Create {
                    let ids: Vec<Uuid> = (1..=env.pending_volumes())
                        .map(Aliases::placeholder_id)
                        .collect();
                    env.created(Aliases::placeholder_id(0), &ids)
                        .expect("one id per volume added");
                }
                let exit = command == Command::Exit;
                commands.push(ParsedLine { line, command });
                if exit {
                    break;
                }
            }
            Err(e) => errors.push(ScriptError::from(e)),
        }
    }
    Validation {
        exit_code: if errors.is_empty() {
            ExitCode::Ok
        } else {
            ExitCode::Syntax
        },
        commands,
        errors,
    }
}
