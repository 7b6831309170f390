//! A DiskShadow-style script language for the shadow-copy protocol: a tokenizer and parser from
//! script text to typed [`Command`]s with line numbers, `%ALIAS%` expansion, a dry run
//! ([`validate`]) that reports every line that does not parse, and the structured result of a
//! run ([`ScriptRun`]) that an executor fills and a front end prints as text or JSON.
//!
//! The grammar (keywords in any ASCII case; `ID` a shadow or set id, a UUID with or without
//! braces; `LUN` a LUN name; `HOST` an initiator id; `FILE` and `NAME` any word):
//!
//! ```text
//! set context clientaccessible | persistent [nowriters] | volatile [nowriters]
//! set option [differential | plex] [transportable] [[rollbackrecover] [txfrecover] | noautorecover]
//! set backuptype copy | full | incremental | differential | log
//! set metadata FILE            load metadata FILE           set verbose on | off
//! writer verify | exclude NAME...          (the rest of the line is the name)
//! add volume LUN [provider software | hardware] [alias NAME]
//! add alias NAME VALUE
//! begin backup | end backup | begin restore | end restore | simulate restore
//! create
//! list shadows all | set ID | id ID        list writers [metadata | detailed | status]
//! list providers
//! delete shadows all | volume LUN | oldest LUN | set ID | id ID | exposed HOST
//! expose ID HOST               unexpose ID
//! import                       mask ID
//! break [writable] ID          revert ID                    resync ID [LUN]
//! exec FILE                    reset                        exit
//! ```
//!
//! One command per line; DiskShadow has no line continuation and neither has this. A line
//! whose first word is `rem`, or a word starting with `#` outside quotes, starts a comment.
//! Double quotes group white space into one word (`writer exclude "System Writer"`).
//!
//! Context words map to VSS's contexts ([`ContextWord::context`]): `persistent` is
//! [`Context::APP_ROLLBACK`](crate::Context::APP_ROLLBACK), `persistent nowriters`
//! `NAS_ROLLBACK`, `volatile` `BACKUP`, `volatile nowriters` `FILE_SHARE_BACKUP`,
//! `clientaccessible` `CLIENT_ACCESSIBLE`. Option words map to [`Attributes`](crate::Attributes)
//! bits ([`OPTION_WORDS`]): `differential` `DIFFERENTIAL`, `plex` `PLEX`, `transportable`
//! `TRANSPORTABLE`, `rollbackrecover` `ROLLBACK_RECOVERY`, `txfrecover` `TXF_RECOVERY`,
//! `noautorecover` `NO_AUTORECOVERY`.
//!
//! # Aliases
//!
//! `%NAME%` in a word is replaced by the alias `NAME` ([`Aliases`]): `add alias NAME VALUE`
//! defines one at once; `add volume LUN alias NAME` names the id of that LUN's shadow once
//! `create` has made it; every `create` defines `VSS_SHADOW_1` .. `VSS_SHADOW_n` (its shadows, in
//! the order their LUNs were added) and `VSS_SHADOW_SET` (its set). A name no alias defines is
//! looked up among the environment variables. `%%` is a `%`.
//!
//! # Errors and exit codes
//!
//! A line that does not parse is a [`SyntaxError`] naming the line, the word (and its column),
//! what was expected and why. Each failed line of a run carries one of the dialect's
//! [`ExitCode`]s: 0 ok, 1 fatal, 2 command-line arguments, 3 a file, 4 a command failed, 5 a line
//! does not parse, 6 an `exec` program failed.
//!
//! ```
//! use vss_core::script::{parse_line, validate, Aliases, Command, ContextWord, ExitCode};
//! use vss_core::Context;
//!
//! let env = Aliases::isolated();
//! let cmd = parse_line(1, "SET Context Persistent NoWriters", &env).unwrap().unwrap();
//! assert_eq!(cmd, Command::SetContext(ContextWord::Persistent { nowriters: true }));
//! assert_eq!(cmd.to_string(), "set context persistent nowriters");
//! if let Command::SetContext(w) = cmd {
//!     assert_eq!(w.context(), Context::NAS_ROLLBACK);
//! }
//!
//! let script = "set context persistent\nadd volume db alias data\ncreate\n\
//!               expose %data% iqn.2024-01.com.example:backup\nset option plex differential\n";
//! let report = validate(script, &env);
//! assert_eq!(report.exit_code, ExitCode::Syntax);
//! assert_eq!(report.commands.len(), 4);
//! let e = &report.errors[0];
//! assert_eq!((e.line, e.token.as_deref()), (5, Some("differential")));
//! assert_eq!(
//!     e.to_string(),
//!     "line 5, column 17: at \"differential\": differential and plex exclude each other \
//!      (expected an option (differential, plex, transportable, rollbackrecover, txfrecover, \
//!      noautorecover))"
//! );
//! ```

mod command;
mod exec;
mod lex;
mod output;
mod parse;

pub use command::{
    Command, ContextWord, DeleteTarget, ShadowSelector, WriterAction, WriterListing,
    BACKUP_TYPE_WORDS, OPTION_WORDS,
};
pub use exec::{break_set, import, provider_of, LocalScriptIo, ScriptIo, Session};
pub use lex::{is_alias_name, Aliases};
pub use output::{
    CreatedShadow, ExitCode, LineResult, Output, ProviderRow, ScriptError, ScriptErrorKind,
    ScriptRun, WriterRow,
};
pub use parse::{parse_line, validate, ParsedLine, SyntaxError, Validation};
