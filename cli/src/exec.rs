//! `umbra exec FILE`: runs a script. A DiskRAID script runs through vds-core's script `Session`,
//! a DiskShadow script through vss-core's (over the pool's coordinator). The whole file is parsed
//! before anything runs (before the pool is opened), so a malformed script changes nothing; once
//! running, the first error (not covered by DiskRAID's `noerr`) stops the script at its line.
//! The umbra exit code follows the error's kind; `--json` also gives the dialect's own code.

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

/// Runs `umbra exec`.
pub fn run(args: ExecArgs, ctx: &Ctx) -> Result<Report> {
    let script = read_script(ctx, &args.file)?;
    let dialect = args.dialect.unwrap_or_else(|| guess_dialect(&script));
    if dialect == Dialect::Diskshadow {
        return run_diskshadow(&args, &script, ctx);
    }
    // Every line parses before anything runs: a malformed script changes nothing.
    for (i, line) in script.lines().enumerate() {
        if let Err(m) = parse_line(line) {
            return Err(Error::of_kind(
                ErrorKind::InvalidArgument,
                format!(
                    "{} line {}: {m} (nothing was run)",
                    args.file.display(),
                    i + 1
                ),
            ));
        }
    }
    let array = ctx.open()?;
    let run = Session::new(&array).execute(&script);
    let failure = run.stopping_error().map(|e| {
        let (status, kind) = status_of(e.kind);
        (status, kind, e.line, e.message.clone())
    });
    let (code, text) = (run.exit_code as i32, run.render_text());
    Ok(script_report(
        &args.file,
        "diskraid",
        code,
        json!(run),
        text,
        failure,
    ))
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
fn run_diskshadow(args: &ExecArgs, script: &str, ctx: &Ctx) -> Result<Report> {
    let host = args
        .host
        .as_deref()
        .map(crate::parse::initiator)
        .transpose()?;
    // `%VARIABLE%`s are the caller's environment variables (served: the calling process's).
    let aliases = ctx
        .caller
        .script_aliases()
        .map_err(|e| Error::of_kind(ErrorKind::Io, format!("the caller's environment: {e}")))?;
    // Every line parses (aliases `create` defines stand in) before the pool is opened.
    let check = vss_script::validate(script, &aliases);
    if let Some(e) = check.errors.first() {
        return Err(Error::of_kind(
            ErrorKind::InvalidArgument,
            format!("{}: {e} (nothing was run)", args.file.display()),
        ));
    }
    let pc = crate::shadow::coordinator(ctx, vss_core::pool::PoolOptions::default())?;
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
    let (code, text) = (run.exit_code.code(), run.render_text());
    Ok(script_report(
        &args.file,
        "diskshadow",
        code,
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
        ];
        for s in shadow {
            assert_eq!(guess_dialect(s), Dialect::Diskshadow, "{s:?}");
        }
    }
}
