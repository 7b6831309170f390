//! What a command prints: a human text (tables, by default) and a JSON document (`--json`), built
//! together so both say the same; plus the table and size formatting the text uses, and the
//! progress bar of commands that copy data.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use vds_core::AsyncHandle;

/// A command's result, in both forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The human text (ends in a newline, or is empty).
    pub text: String,
    /// The JSON document.
    pub json: serde_json::Value,
    /// The command ran and reports a failure it also describes in `text` and `json` (a script
    /// stopped by an error): the process exits with its status after printing the report.
    pub failure: Option<crate::error::Error>,
}

impl Report {
    /// A report of `text` and `json`.
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Self {
        Report {
            text: text.into(),
            json,
            failure: None,
        }
    }
}

/// A table: a header row and rows, columns padded to their widest cell, two spaces apart.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for r in rows {
        line(&r.each_ref().map(String::as_str));
    }
    out
}

/// Key/value lines, the keys padded to the widest.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<w$} {v}\n", format!("{k}:")))
        .collect()
}

/// A size for people: exact in the largest binary unit that divides it (`64 MiB`), else with
/// one decimal (`1.5 GiB`), else bytes.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = None;
    for (i, u) in UNITS.iter().enumerate() {
        if bytes >= 1 << (10 * (i + 1)) {
            unit = Some((i, *u));
        }
    }
    match unit {
        None => format!("{bytes} B"),
        Some((i, u)) => {
            let div = 1u64 << (10 * (i + 1));
            if bytes.is_multiple_of(div) {
                format!("{} {u}", bytes / div)
            } else {
                format!("{:.1} {u}", bytes as f64 / div as f64)
            }
        }
    }
}

/// An unmasking list for people: `(no one)`, `* (every host)`, or the list.
pub fn mask(text: &str) -> String {
    match text {
        "" => "(no one)".to_string(),
        "*" => "* (every host)".to_string(),
        m => m.to_string(),
    }
}

/// Makes the terminal a served command's progress bars are drawn on (the caller's).
pub type TermFactory = Box<dyn Fn() -> Box<dyn TermLike>>;

thread_local! {
    /// Set while this thread runs a command for a caller on the control socket: the caller's
    /// terminal (`Some(Some(..))`), or none (`Some(None)`: the caller draws no bars).
    static CALLER_TERM: std::cell::RefCell<Option<Option<TermFactory>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a command run for a caller) with its progress bars drawn on `term`, the caller's
/// terminal, or on none.
pub fn with_caller_term<T>(term: Option<TermFactory>, f: impl FnOnce() -> T) -> T {
    CALLER_TERM.with(|t| *t.borrow_mut() = Some(term));
    let r = f();
    CALLER_TERM.with(|t| *t.borrow_mut() = None);
    r
}

/// Whether progress bars are drawn: not with `--json`, not when stderr is not a terminal; for a
/// caller on the control socket, when the caller draws them (on its own stderr).
pub fn progress_shown(json: bool) -> bool {
    match CALLER_TERM.with(|t| t.borrow().as_ref().map(Option::is_some)) {
        Some(caller) => !json && caller,
        None => !json && std::io::stderr().is_terminal(),
    }
}

/// A progress bar on stderr over `total` units (`bytes` formats them as bytes), hidden unless
/// `shown`.
pub fn bar(total: u64, what: &str, bytes: bool, shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let target = CALLER_TERM
        .with(|t| t.borrow().as_ref().and_then(|f| f.as_ref().map(|f| f())))
        .map_or_else(ProgressDrawTarget::stderr, ProgressDrawTarget::term_like);
    let pb = ProgressBar::with_draw_target(Some(total), target);
    let template = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})"
    } else {
        "{msg} [{bar:30}] {pos}%"
    };
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Waits for a long operation of the array, drawing its percent done (hidden unless `shown`).
pub fn wait<T>(handle: AsyncHandle<T>, what: &str, shown: bool) -> vds_core::Result<T> {
    let pb = bar(100, what, false, shown);
    if shown {
        // Wakes when the operation finishes, or every tenth of a second to redraw the bar.
        while !handle.wait_for(Duration::from_millis(100)) {
            pb.set_position(u64::from(handle.percent()));
        }
    }
    let r = handle.wait();
    if r.is_ok() {
        // The operation says at most 99% until it is done (its last step, a flush, may take a
        // while): done, the bar is drawn at 100% and left, so it never ends at 99%.
        pb.finish();
    } else {
        pb.abandon();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4 KiB");
        assert_eq!(size(64 << 20), "64 MiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(size(1 << 40), "1 TiB");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let t = table(
            ["NAME", "SIZE", "MASK"],
            &[
                ["db".into(), "64 MiB".into(), "*".into()],
                ["scratch".into(), "1 MiB".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME     SIZE    MASK\ndb       64 MiB  *\nscratch  1 MiB\n"
        );
    }
}
