//! Words of a script line: comments, double quotes, and `%ALIAS%` expansion from an [`Aliases`]
//! environment.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{Command, SyntaxError};

/// One word of a line, after its quotes are removed and its aliases expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    /// The word as written (quotes included, aliases not expanded), for messages.
    pub(super) raw: String,
    /// The word's value.
    pub(super) text: String,
    /// The 1-based column (in characters) where the word starts.
    pub(super) column: usize,
}

/// Splits `line` into words: white space separates words, double quotes group white space into a
/// word (`"System Writer"`; `""` is an empty word), a `#` starting a word outside quotes starts a
/// comment that runs to the end of the line, and `%NAME%` inside a word (quoted or not) is
/// replaced by the alias or environment variable `NAME` (`%%` is one `%`).
///
/// A line whose first word is `rem` (any case) is a comment: no words.
pub(super) fn words(
    line_no: usize,
    line: &str,
    aliases: &Aliases,
) -> Result<Vec<Word>, SyntaxError> {
    let mut out = Vec::new();
    let mut chars = line.chars().enumerate().peekable();
    loop {
        // Skip the white space before a word.
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, first)) = chars.peek() else {
            break;
        };
        if first == '#' {
            break;
        }
        let (mut raw, mut text, mut quoted) = (String::new(), String::new(), false);
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() && !quoted {
                break;
            }
            chars.next();
            raw.push(c);
            if c == '"' {
                quoted = !quoted;
            } else {
                text.push(c);
            }
        }
        let column = start + 1;
        if quoted {
            return Err(SyntaxError::new(
                line_no,
                Some((raw, column)),
                "a closing double quote",
                "the quote is not closed before the end of the line",
            ));
        }
        if out.is_empty() && text.eq_ignore_ascii_case("rem") && !raw.contains('"') {
            return Ok(Vec::new());
        }
        let text = aliases.expand(line_no, &raw, column, &text)?;
        if raw.contains('%') && text.contains('"') {
            return Err(SyntaxError::new(
                line_no,
                Some((raw, column)),
                "a word without double quotes",
                "an alias's value holds a double quote, which no word can hold",
            ));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(SyntaxError::new(
                line_no,
                Some((raw, column)),
                "a word without control characters",
                format!("the word holds the control character {c:?}"),
            ));
        }
        out.push(Word { raw, text, column });
    }
    Ok(out)
}

/// True if `name` can name an alias: an ASCII letter or `_`, then ASCII letters, digits and `_`.
pub fn is_alias_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Writes `text` as one word that reads back as `text`: `%` doubled, and the whole in double
/// quotes when it is empty, holds white space, or starts with `#`.
pub(super) fn quote(text: &str) -> String {
    let escaped = text.replace('%', "%%");
    if text.is_empty() || text.contains(char::is_whitespace) || text.starts_with('#') {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// How an [`Aliases`] environment looks up a name it does not define itself.
type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The alias environment `%NAME%` reads: the aliases a script defined, then environment
/// variables.
///
/// - `add alias NAME VALUE` defines `NAME` at once.
/// - `add volume LUN alias NAME` defines `NAME` when the next `create` succeeds, as the id of
///   that LUN's shadow (DiskShadow's rule: the alias waits for the shadow).
/// - `create` defines `VSS_SHADOW_1` ... `VSS_SHADOW_n`, the ids of its n shadows in the order
///   their LUNs were added, and `VSS_SHADOW_SET`, its set id; a `VSS_SHADOW_k` of an earlier
///   `create` with more volumes is removed, so no alias names a shadow of another set.
/// - `load metadata` defines `VSS_SHADOW_SET` and `VSS_SHADOW_1`..`n` for the set its document
///   describes, in the document's order ([`Aliases::loaded`]).
/// - `reset` forgets the volumes added (and so their pending aliases); defined aliases stay.
///
/// Script aliases are looked up ignoring ASCII case (`%vss_shadow_set%` works), environment
/// variables by their exact name. A name neither defines is a syntax error naming it.
///
/// The executor calls [`Aliases::apply`] after each command that succeeded and
/// [`Aliases::created`] after a `create` ([`Aliases::loaded`] after a `load metadata`);
/// [`validate`](super::validate) does the same with stand-in ids ([`Aliases::placeholder_id`]):
/// as it reads no file, after a `load metadata` it accepts `VSS_SHADOW_1` to `VSS_SHADOW_64`
/// (a set holds at most 64), and the run refuses at its line one the document does not define.
#[derive(Clone)]
pub struct Aliases {
    defined: BTreeMap<String, (String, String)>,
    pending: Vec<Option<String>>,
    lookup: Lookup,
}

impl std::fmt::Debug for Aliases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aliases")
            .field("defined", &self.defined)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Default for Aliases {
    /// [`Aliases::new`].
    fn default() -> Self {
        Aliases::new()
    }
}

impl Aliases {
    /// An environment with no script aliases, falling back to this process's environment
    /// variables.
    pub fn new() -> Self {
        Aliases::with_lookup(|name| std::env::var(name).ok())
    }

    /// An environment with no script aliases and no environment variables (a dry run that must
    /// not depend on the caller's environment, tests).
    pub fn isolated() -> Self {
        Aliases::with_lookup(|_| None)
    }

    /// An environment with no script aliases whose environment variables are exactly `vars`.
    pub fn with_environment<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Aliases::with_lookup(move |name| vars.get(name).cloned())
    }

    fn with_lookup(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Aliases {
            defined: BTreeMap::new(),
            pending: Vec::new(),
            lookup: Arc::new(f),
        }
    }

    /// Defines (or redefines) the script alias `name`.
    ///
    /// # Errors
    /// `InvalidArgument` if `name` is not an alias name ([`is_alias_name`]).
    pub fn define(&mut self, name: &str, value: impl Into<String>) -> crate::Result<()> {
        if !is_alias_name(name) {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidArgument,
                format!(
                    "alias name {name:?} is not a letter or _ followed by letters, digits or _"
                ),
            ));
        }
        self.defined
            .insert(name.to_ascii_uppercase(), (name.to_string(), value.into()));
        Ok(())
    }

    /// The value `%name%` expands to: the script alias of that name (any ASCII case), else the
    /// environment variable.
    pub fn get(&self, name: &str) -> Option<String> {
        match self.defined.get(&name.to_ascii_uppercase()) {
            Some((_, v)) => Some(v.clone()),
            None => (self.lookup)(name),
        }
    }

    /// The script aliases defined so far, as `(name as first written, value)`, by name.
    pub fn defined(&self) -> impl Iterator<Item = (&str, &str)> {
        self.defined.values().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many volumes were added since the last `create` or `reset`.
    pub fn pending_volumes(&self) -> usize {
        self.pending.len()
    }

    /// Records what a command that succeeded does to the environment: `add alias` defines,
    /// `add volume` queues the volume (and its alias) for the next `create`, `reset` forgets the
    /// queued volumes. A `create` is recorded by [`Aliases::created`], which needs its ids.
    pub fn apply(&mut self, command: &Command) {
        match command {
            Command::AddAlias { name, value } => {
                // The parser only builds commands with valid names.
                let _ = self.define(name, value.clone());
            }
            Command::AddVolume { alias, .. } => self.pending.push(alias.clone()),
            Command::Reset => self.pending.clear(),
            _ => {}
        }
    }

    /// Records a `create` that made the set `set_id` with `shadows`, one per volume added, in
    /// the order the volumes were added: defines `VSS_SHADOW_SET`, `VSS_SHADOW_1`..`n` and the
    /// volumes' own aliases, removes the `VSS_SHADOW_k` beyond `n`, and empties the queue.
    ///
    /// # Errors
    /// `InvalidArgument` if `shadows` does not hold one id per volume added; nothing changes.
    pub fn created(&mut self, set_id: Uuid, shadows: &[Uuid]) -> crate::Result<()> {
        if shadows.len() != self.pending.len() {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidArgument,
                format!(
                    "create made {} shadows but {} volumes were added",
                    shadows.len(),
                    self.pending.len()
                ),
            ));
        }
        self.defined
            .retain(|k, _| !k.strip_prefix("VSS_SHADOW_").is_some_and(is_number));
        // The names below are valid alias names.
        let _ = self.define("VSS_SHADOW_SET", set_id.to_string());
        for (i, (id, alias)) in shadows.iter().zip(&self.pending.clone()).enumerate() {
            let _ = self.define(&format!("VSS_SHADOW_{}", i + 1), id.to_string());
            if let Some(a) = alias {
                let _ = self.define(a, id.to_string());
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// Records a `load metadata` of a document describing the set `set_id` with `shadows` (in
    /// the document's order), as DiskShadow does: defines `VSS_SHADOW_SET` and
    /// `VSS_SHADOW_1`..`n`, and removes the `VSS_SHADOW_k` beyond `n`. The volumes queued for
    /// the next `create` stay queued.
    pub fn loaded(&mut self, set_id: Uuid, shadows: &[Uuid]) {
        self.defined
            .retain(|k, _| !k.strip_prefix("VSS_SHADOW_").is_some_and(is_number));
        // The names below are valid alias names.
        let _ = self.define("VSS_SHADOW_SET", set_id.to_string());
        for (i, id) in shadows.iter().enumerate() {
            let _ = self.define(&format!("VSS_SHADOW_{}", i + 1), id.to_string());
        }
    }

    /// The stand-in id [`validate`](super::validate) gives the `n`th (from 1) shadow of a
    /// `create` it does not run; `n = 0` is the stand-in set id. Stand-ins are
    /// `00000000-0000-4000-8000-` followed by `n` in 12 hex digits.
    pub fn placeholder_id(n: usize) -> Uuid {
        Uuid::from_u128(0x4000_8000_0000_0000_0000 | (n as u128 & 0xFFFF_FFFF_FFFF))
    }

    /// Expands every `%NAME%` of one word.
    fn expand(
        &self,
        line_no: usize,
        raw: &str,
        column: usize,
        text: &str,
    ) -> Result<String, SyntaxError> {
        if !text.contains('%') {
            return Ok(text.to_string());
        }
        let err = |expected: &str, message: String| {
            SyntaxError::new(line_no, Some((raw.to_string(), column)), expected, message)
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(r) = after.strip_prefix('%') {
                out.push('%');
                rest = r;
                continue;
            }
            let Some(end) = after.find('%') else {
                return Err(err(
                    "%NAME% or %% for a percent sign",
                    "a lone % (write %% for a percent sign)".into(),
                ));
            };
            let name = &after[..end];
            if !is_alias_name(name) {
                return Err(err(
                    "%NAME% or %% for a percent sign",
                    format!(
                        "{:?} is not an alias name (write %% for a percent sign)",
                        name
                    ),
                ));
            }
            match self.get(name) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(err(
                        "a defined alias or environment variable",
                        format!("no alias or environment variable named {name}"),
                    ))
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
