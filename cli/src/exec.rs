//! `umbra exec FILE`: runs a script. A DiskRAID script runs through vds-core's script `Session`,
//! a DiskShadow script through vss-core's (over the pool's coordinator). The whole file is parsed
//! before anything runs (before the pool is opened), so a malformed script changes nothing and
//! every line that does not parse is reported; once running, the first error (not covered by
//! DiskRAID's `noerr`) stops the script at its line. The umbra exit code follows the error's
//! kind; `--json` also gives the dialect, the file and the dialect's own code, for failures
//! (an unreadable script, lines that do not parse, a pool that cannot be used) too.

use std::path::Path;

use serde_json::json;
use vds_core::script::{parse_line, ScriptErrorKind, Session};
use vds_core::ErrorKind;
use vss_core::script as vss_script;

use crate::cli::{Dialect, ExecArgs};
use crate::error::{Error, Result};
use crate::exit::Status;
use crate::output::Report;
use crate::Ctx;

/// DiskShadow's own first words (no DiskRAID command starts with them).
const DISKSHADOW_WORDS: [&str; 15] = [
    "set", "begin", "end", "add", "writer", "expose", "unexpose", "load", "import", "break",
    "revert", "reset", "exec", "store", "mask",
];

/// DiskRAID's own first words (no DiskShadow command starts with them).
const DISKRAID_WORDS: [&str; 12] = [
    "select",
    "detail",
    "extend",
    "unmask",
    "online",
    "offline",
    "associate",
    "snapshot",
    "swap",
    "split",
    "group",
    "number",
];

/// The dialect of `script`, from its first command that only one dialect has (`create lun`,
/// `list shadows`, `begin backup`, ...); DiskRAID when no command tells (`exit` alone).
pub fn guess_dialect(script: &str) -> Dialect {
    for line in script.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .take(2)
            .map(str::to_ascii_lowercase)
            .collect();
        let Some(first) = words.first().map(String::as_str) else {
            continue;
        };
        if first.starts_with('#') || first == "rem" {
            continue;
        }
        let second = words.get(1).map(String::as_str).unwrap_or("");
        if DISKSHADOW_WORDS.contains(&first) {
            return Dialect::Diskshadow;
        }
        if DISKRAID_WORDS.contains(&first) {
            return Dialect::Diskraid;
        }
        match (first, second) {
            ("list", "shadows" | "writers" | "providers" | "metadata")
            | ("delete", "shadows")
            | ("create", "") => return Dialect::Diskshadow,
            // DiskRAID's is `resync lun ...`; DiskShadow's `resync ID [LUN]`.
            ("resync", w) if !w.is_empty() && w != "lun" => return Dialect::Diskshadow,
            ("list" | "create" | "delete" | "resync", _) => return Dialect::Diskraid,
            _ => {}
        }
    }
    Dialect::Diskraid
}

/// The umbra exit status of a script error.
fn status_of(kind: ScriptErrorKind) -> (Status, &'static str) {
    match kind {
        ScriptErrorKind::Syntax => (Status::InvalidInput, "invalid_argument"),
        ScriptErrorKind::NoSelection => (Status::InvalidInput, "invalid_argument"),
        ScriptErrorKind::Failed(k) => (Status::of_vds(k), k.name()),
    }
}

/// A script refused before or around its run (unreadable, a line that does not parse, the pool
/// not usable): umbra's error, the dialect's own exit code for it, and the refused run (one
/// error per line that does not parse), if any.
struct Refusal {
    error: Error,
    dialect_code: i32,
    run: Option<serde_json::Value>,
}

impl Refusal {
    /// `error`, with the dialect's own `code` (both dialects number these alike: 1 the pool
    /// could not be used, 2 bad arguments, 3 the script file, 5 syntax).
    fn new(error: Error, code: i32) -> Self {
        Refusal {
            error,
            dialect_code: code,
            run: None,
        }
    }
}

/// Runs `umbra exec`. Every outcome is one report carrying `dialect` (null when the script
/// could not be read and no `--dialect` was given), `file` and the dialect's own `exit_code`,
/// failures included; umbra's exit status is the error's.
///
/// A DiskShadow script opens the pool's coordinator: a dead requester's set it cleans up is
/// reported ([`crate::shadow::with_cleanup_report`]).
pub fn run(args: ExecArgs, ctx: &Ctx) -> Result<Report> {
    crate::shadow::with_cleanup_report(|| Ok(run_reported(&args, ctx)))
}

/// [`run`] without the cleanup report.
fn run_reported(args: &ExecArgs, ctx: &Ctx) -> Report {
    let mut dialect = args.dialect;
    match run_script(args, ctx, &mut dialect) {
        Ok(r) => r,
        Err(refusal) => {
            let mut doc = json!({
                "dialect": dialect.map(dialect_name),
                "file": args.file,
                "exit_code": refusal.dialect_code,
                "error": refusal.error.to_json()["error"].clone(),
            });
            if let Some(run) = refusal.run {
                doc["run"] = run;
            }
            let mut report = Report::new("", doc);
            report.failure = Some(refusal.error);
            report
        }
    }
}

/// The dialect's name in JSON.
fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Diskraid => "diskraid",
        Dialect::Diskshadow => "diskshadow",
    }
}

/// The refusal of a script with lines that do not parse: every one of them (`(line, text)`,
/// the text naming the line) in the message, nothing run.
fn syntax_refusal(file: &Path, bad: &[String], run: serde_json::Value) -> Refusal {
    let message = match bad {
        [one] => format!("{} {one} (nothing was run)", file.display()),
        many => format!(
            "{}: {} lines do not parse (nothing was run):\n  {}",
            file.display(),
            many.len(),
            many.join("\n  ")
        ),
    };
    Refusal {
        error: Error::of_kind(ErrorKind::InvalidArgument, message),
        dialect_code: vds_core::script::ExitCode::Syntax as i32,
        run: Some(run),
    }
}

fn run_script(
    args: &ExecArgs,
    ctx: &Ctx,
    dialect: &mut Option<Dialect>,
) -> std::result::Result<Report, Refusal> {
    let script = read_script(ctx, &args.file)
        .map_err(|e| Refusal::new(e, vds_core::script::ExitCode::ScriptFile as i32))?;
    let chosen = args.dialect.unwrap_or_else(|| guess_dialect(&script));
    *dialect = Some(chosen);
    if chosen == Dialect::Diskshadow {
        return run_diskshadow(args, &script, ctx);
    }
    // Every line parses before anything runs: a malformed script changes nothing, and every
    // line that does not parse is reported.
    let bad: Vec<vds_core::script::LineResult> = script
        .lines()
        .enumerate()
        .filter_map(|(i, text)| {
            let message = parse_line(text).err()?;
            Some(vds_core::script::LineResult {
                line: i + 1,
                command: text.trim().to_string(),
                noerr: false,
                outcome: Err(vds_core::script::ScriptError {
                    line: i + 1,
                    code: vds_core::script::ExitCode::Syntax,
                    kind: ScriptErrorKind::Syntax,
                    message,
                }),
            })
        })
        .collect();
    if let Some(first) = bad.first() {
        let refused = vds_core::script::ScriptRun {
            exit_code: vds_core::script::ExitCode::Syntax,
            stopped_at: Some(first.line),
            ignored_errors: Vec::new(),
            lines: bad.clone(),
        };
        let texts: Vec<String> = refused.errors().map(ToString::to_string).collect();
        return Err(syntax_refusal(&args.file, &texts, json!(refused)));
    }
    let array = ctx
        .open()
        .map_err(|e| Refusal::new(e, vds_core::script::ExitCode::Fatal as i32))?;
    let run = Session::new(&array).execute(&script);
    let failure = run.stopping_error().map(|e| {
        let (status, kind) = status_of(e.kind);
        (status, kind, e.line, e.message.clone())
    });
    let text = text_of_lines_run(&run.lines, |l| {
        l.outcome.is_err() && Some(l.line) == run.stopped_at
    });
    Ok(script_report(
        &args.file,
        "diskraid",
        run.exit_code as i32,
        json!(run),
        text,
        failure,
    ))
}

/// The text of a run's lines but the one that stopped it (`stopped`): that error is printed once,
/// on stderr, not in the text too.
fn text_of_lines_run<L: std::fmt::Display>(lines: &[L], stopped: impl Fn(&L) -> bool) -> String {
    lines
        .iter()
        .filter(|l| !stopped(l))
        .map(ToString::to_string)
        .collect()
}

/// The report of a script run: `{"dialect", "file", "exit_code" (the dialect's own), "run"}`
/// plus `"error"` when a line stopped it (`failure`: umbra's status, the kind, the line and the
/// message).
fn script_report(
    file: &Path,
    dialect: &str,
    exit_code: i32,
    run: serde_json::Value,
    text: String,
    failure: Option<(Status, &'static str, usize, String)>,
) -> Report {
    let failure = failure.map(|(status, kind, line, message)| Error {
        kind,
        status,
        message: format!("{} line {line}: {message}", file.display()),
    });
    let mut doc = json!({
        "dialect": dialect,
        "file": file,
        "exit_code": exit_code,
        "run": run,
    });
    if let Some(f) = &failure {
        doc["error"] = f.to_json()["error"].clone();
    }
    let mut report = Report::new(text, doc);
    report.failure = failure;
    report
}

/// The umbra exit status and kind name of a DiskShadow script error.
fn shadow_status_of(kind: vss_script::ScriptErrorKind) -> (Status, &'static str) {
    match kind {
        vss_script::ScriptErrorKind::Syntax => (Status::InvalidInput, "syntax"),
        vss_script::ScriptErrorKind::ExecFailed => (Status::ScriptExecFailed, "exec_failed"),
        vss_script::ScriptErrorKind::Failed(k) => (Status::of_vss(k), kind.as_str()),
    }
}

/// Runs a DiskShadow script through vss-core's executor over the pool's coordinator.
fn run_diskshadow(
    args: &ExecArgs,
    script: &str,
    ctx: &Ctx,
) -> std::result::Result<Report, Refusal> {
    let host = args
        .host
        .as_deref()
        .map(crate::parse::initiator)
        .transpose()
        .map_err(|e| Refusal::new(e, vss_script::ExitCode::BadArguments.code()))?;
    // `%VARIABLE%`s are the caller's environment variables (served: the calling process's).
    let aliases = ctx
        .caller
        .script_aliases()
        .map_err(|e| Error::of_kind(ErrorKind::Io, format!("the caller's environment: {e}")))
        .map_err(|e| Refusal::new(e, vss_script::ExitCode::Fatal.code()))?;
    // Every line parses (aliases `create` defines stand in) before the pool is opened; every
    // line that does not is reported.
    let check = vss_script::validate(script, &aliases);
    if let Some(refused) = check.failed_run(script) {
        let texts: Vec<String> = check.errors.iter().map(ToString::to_string).collect();
        return Err(syntax_refusal(&args.file, &texts, json!(refused)));
    }
    let pc = crate::shadow::coordinator(ctx, vss_core::pool::PoolOptions::default())
        .map_err(|e| Refusal::new(e, vss_script::ExitCode::Fatal.code()))?;
    // `exec` lines and metadata files are the caller's (its children, its files).
    let mut session = vss_script::Session::new(&pc, aliases).with_io(ctx.caller.script_io());
    if let Some(h) = host {
        session = session.with_host(h.to_string());
    }
    let run = session.execute(script);
    drop(session);
    let failure = run.stopping_error().map(|e| {
        let (status, kind) = shadow_status_of(e.kind);
        (status, kind, e.line, e.message.clone())
    });
    let text = text_of_lines_run(&run.lines, |l| {
        l.outcome.is_err() && Some(l.line) == run.stopped_at
    });
    Ok(script_report(
        &args.file,
        "diskshadow",
        run.exit_code.code(),
        json!(run),
        text,
        failure,
    ))
}

/// The script's text; a missing or unreadable file named.
fn read_script(ctx: &Ctx, path: &Path) -> Result<String> {
    let bytes = crate::control::staging::read_small(ctx, path)
        .map_err(|e| Error::file("cannot read script", path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::of_kind(
            ErrorKind::InvalidArgument,
            format!(
                "script {} is not UTF-8 text (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialect_is_told_by_the_first_command_only_one_has() {
        let raid = [
            "create lun simple size=64 name=db",
            "# comment\n\nrem x\nlist luns",
            "select lun db\ndelete lun",
            "exit",
            "",
        ];
        for s in raid {
            assert_eq!(guess_dialect(s), Dialect::Diskraid, "{s:?}");
        }
        let shadow = [
            "set context persistent\nadd volume db\ncreate",
            "# backup\nbegin backup",
            "list shadows all",
            "delete shadows all",
            "exit\nwriter verify {x}",
            "resync 0be1728d-30cf-4e54-80d4-8eff57d91af5",
        ];
        for s in shadow {
            assert_eq!(guess_dialect(s), Dialect::Diskshadow, "{s:?}");
        }
    }
}
