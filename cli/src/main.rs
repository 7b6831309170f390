//! `umbra`: administers an umbra pool directory from the command line, DiskRAID-style.
//!
//! `umbra [--pool DIR] [--json] COMMAND ...`. The pool is `--pool`, else `UMBRA_POOL`, else
//! `./umbra-pool`, created on first use. Human tables by default; `--json` (before or after the
//! command) prints exactly one JSON document on stdout, errors included. Exit codes: `exit.rs`.
//!
//! The command translates: it reads text into vds-core's typed values (every argument before the
//! pool is opened, so bad input changes nothing), calls the array, and prints what came back.
//! Logic another front end would need lives in vds-core.

mod chunks;
mod cli;
mod control;
mod demo;
mod error;
mod exec;
mod exit;
mod host;
mod lun;
mod output;
mod parse;
mod serve;
mod shadow;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use vds_core::Array;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::output::Report;

/// What every command is given: where the pool is, where its array comes from, the calling
/// side's files and writers, and how to print.
pub struct Ctx {
    /// The pool directory.
    pub pool: PathBuf,
    /// Print JSON.
    pub json: bool,
    /// `--pool` was on the command line (not `UMBRA_POOL` or the default): the demo keeps it.
    pub pool_given: bool,
    /// The served array when `umbra serve` runs the command for a caller on its control socket;
    /// `None`: the command opens the pool itself.
    pub array: Option<Array>,
    /// Where the command's files are read and written and its exec writers run.
    pub caller: Arc<dyn control::caller::Caller>,
}

impl Ctx {
    /// The pool's array: the server's, else opened (created on first use) here.
    pub fn open(&self) -> Result<Array> {
        match &self.array {
            Some(a) => Ok(a.clone()),
            None => {
                let array = Array::open(&self.pool)?;
                // The pool's lock is this process's now: a control socket there is a dead
                // server's.
                control::client::remove_stale(&self.pool);
                // A revert or copy a crash interrupted is finished in the background; a command
                // exits when it is done, which would stop it: wait for it, as the open once did.
                array.wait_resumed()?;
                Ok(array)
            }
        }
    }

    /// Whether progress bars are drawn ([`output::progress_shown`]: a served command's on the
    /// caller's terminal).
    pub fn progress_shown(&self) -> bool {
        output::progress_shown(self.json)
    }
}

fn dispatch(cli: Cli, pool_given: bool) -> Result<Report> {
    let ctx = Ctx {
        pool: cli.pool,
        json: cli.json,
        pool_given,
        array: None,
        caller: Arc::new(control::caller::Local),
    };
    dispatch_ctx(cli.command, &ctx)
}

/// Runs `command` with `ctx`: in this process, or in a server for a caller.
pub fn dispatch_ctx(command: Command, ctx: &Ctx) -> Result<Report> {
    match command {
        Command::Lun(c) => lun::run(c, ctx),
        Command::Host(c) => host::run_host(c, ctx),
        Command::Group(c) => host::run_group(c, ctx),
        Command::Shadow(c) => shadow::run(c, ctx),
        Command::Writers(c) => shadow::run_writers(c, ctx),
        Command::Exec(a) => exec::run(a, ctx),
        Command::Demo(c) => demo::run(c, ctx),
        Command::Serve(a) => serve::run(a, ctx),
    }
}

/// Prints `doc` as the one JSON document on stdout.
fn print_json(doc: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(doc).expect("a JSON value serialises");
    // A closed stdout leaves nothing to report to.
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// `text` (a clap error) with the global options its usage lines show bracketed as optional:
/// clap writes the arguments a command line gave into the usage line of its error
/// (`Usage: umbra lun create --pool <DIR> <NAME> <SIZE>`), which reads as if `--pool` (which has
/// `UMBRA_POOL` and a default) or `--json` were required.
fn optional_globals_in_usage(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with("Usage:") {
            out.push_str(line);
            continue;
        }
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let words: Vec<&str> = body.split(' ').collect();
        let mut fixed = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            match (words[i], words.get(i + 1)) {
                ("--pool", Some(&"<DIR>")) => {
                    fixed.push("[--pool <DIR>]".to_string());
                    i += 2;
                }
                ("--json", _) => {
                    fixed.push("[--json]".to_string());
                    i += 1;
                }
                (w, _) => {
                    fixed.push(w.to_string());
                    i += 1;
                }
            }
        }
        out.push_str(&fixed.join(" "));
        out.push_str(end);
    }
    out
}

/// Runs the command line and returns the exit code; every value (the pool included) is dropped
/// by then.
fn main_code() -> u8 {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, pool_given) = match parsed {
        Ok((c, m)) => (c, m.value_source("pool") == Some(ValueSource::CommandLine)),
        Err(e) => {
            let json = std::env::args().any(|a| a == "--json");
            if json && e.use_stderr() {
                let text = optional_globals_in_usage(&e.render().to_string());
                let err = Error::usage(text.trim_end().to_string());
                print_json(&err.to_json());
                return err.status.code();
            }
            if e.use_stderr() {
                // Usage errors to stderr with clap's code 2, the global options shown optional.
                eprint!("{}", optional_globals_in_usage(&e.render().to_string()));
            } else {
                // Help and version go to stdout with 0.
                let _ = e.print();
            }
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    let json = cli.json;
    // A pool served by `umbra serve`: the command goes to its control socket.
    let result = match (&cli.command, control::client::find(&cli.pool)) {
        (Command::Demo(_) | Command::Serve(_), _) | (_, control::client::Found::NoServer) => {
            dispatch(cli, pool_given)
        }
        (_, control::client::Found::Server(stream)) => {
            control::client::run(stream, std::env::args().skip(1).collect(), json)
        }
        (_, control::client::Found::Refused(e)) => Err(e),
    };
    finish(result, json)
}

/// Prints a command's result (its report, or its error) as `--json` or not says, and returns
/// the exit code.
fn finish(result: Result<Report>, json: bool) -> u8 {
    let failure = match result {
        Ok(report) => {
            if json {
                // A null document: the command printed its one document itself (`serve`).
                if !report.json.is_null() {
                    print_json(&report.json);
                }
            } else if !report.text.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out
                    .write_all(report.text.as_bytes())
                    .and_then(|()| out.flush());
            }
            report.failure.map(|f| (f, false))
        }
        Err(e) => Some((e, json)),
    };
    match failure {
        None => exit::Status::Success.code(),
        Some((e, print_as_json)) => {
            if print_as_json {
                print_json(&e.to_json());
            } else if !json {
                eprintln!("umbra: error: {e}");
            }
            e.status.code()
        }
    }
}

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(main_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lines_show_the_global_options_optional() {
        let text = "error: the following required arguments were not provided:\n  <SIZE>\n\n\
                    Usage: umbra lun create --pool <DIR> --json <NAME> <SIZE>\n\n\
                    For more information, try '--help'.\n";
        let fixed = optional_globals_in_usage(text);
        assert!(
            fixed.contains("Usage: umbra lun create [--pool <DIR>] [--json] <NAME> <SIZE>\n"),
            "{fixed}"
        );
        // Only usage lines change.
        assert_eq!(
            fixed.replace("[--pool <DIR>] [--json] ", "--pool <DIR> --json "),
            text
        );
    }
}
