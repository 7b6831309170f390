//! `umbra shadow ...` and `umbra writers ...`: the shadow-copy commands, over vss-core's pool
//! coordinator. `shadow create` runs through vss-core's DiskShadow [`Session`] (the same
//! sequence a script's `create` runs); the command only translates arguments and output.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use vss_core::pool::{PoolCoordinator, PoolOptions, PoolProvider, RegisteredWriter, SetRecovery};
use vss_core::script::{Aliases, Command, ContextWord, Output, Session};
use vss_core::{
    Attributes, BackupComponents, BackupType, ErrorKind, ProviderType, ShadowProperties,
    ShadowSelector, Timeouts, WriterStatus,
};

use crate::cli::{
    BackupTypeArg, ContextArg, CreateArgs, ProviderArg, ShadowCommand, WritersCommand,
};
use crate::error::{vss_kind_name, Error, Result};
use crate::exit::Status;
use crate::output::{fields, table, wait, Report};
use crate::{parse, Ctx};

/// The pool's coordinator (hardware provider preferred unless `options` says otherwise): the
/// one place the shadow commands get theirs.
///
/// For a caller on the control socket, the pool's registered writers are the caller's: each is
/// replaced by one whose events the caller's own process runs.
///
/// Opening cleans up a set a dead requester left in progress (vss-core does it); that is
/// reported, never silent: a line on the caller's stderr (`umbra: cleaned up set ...`, the
/// same for a caller on the control socket), and in `--json` a `"cleaned"` array on the
/// command's document ([`with_cleanup_report`]).
pub fn coordinator(ctx: &Ctx, options: PoolOptions) -> Result<PoolCoordinator> {
    let pc = PoolCoordinator::open_with(ctx.open()?, options)?;
    if let Some(r) = pc.recovered() {
        let line = cleanup_text(r);
        if !ctx.json {
            ctx.caller.stderr(&format!("umbra: {line}\n"));
        }
        CLEANED.with(|c| c.borrow_mut().push(cleanup_json(r)));
    }
    if ctx.caller.remote() {
        for w in pc.registered_writers()? {
            pc.remove_writer(&w.name)?;
            pc.add_writer(ctx.caller.writer(&w)?)?;
        }
    }
    Ok(pc)
}

thread_local! {
    /// The dead requesters' sets that the coordinators the running command opened cleaned up,
    /// as JSON, taken by [`with_cleanup_report`].
    static CLEANED: std::cell::RefCell<Vec<Value>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A dead requester's set cleaned up, as JSON: `{"set_id", "pid", "luns", "writers_aborted":
/// [{"writer", "failure"}], "shadows_deleted": [ID]}`.
fn cleanup_json(r: &SetRecovery) -> Value {
    json!({
        "set_id": r.record.set_id,
        "pid": r.record.pid,
        "luns": r.record.luns,
        "writers_aborted": r.aborted.iter().map(|a| json!({
            "writer": a.writer,
            "failure": a.failure.as_ref().map(ToString::to_string),
        })).collect::<Vec<_>>(),
        "shadows_deleted": r.shadows_deleted,
    })
}

/// A dead requester's set cleaned up, in one line.
fn cleanup_text(r: &SetRecovery) -> String {
    let aborted: Vec<String> = r
        .aborted
        .iter()
        .map(|a| match &a.failure {
            None => a.writer.clone(),
            Some(f) => format!("{} (abort failed: {f})", a.writer),
        })
        .collect();
    format!(
        "cleaned up set {} left in progress by requester pid {}, which is gone: abort sent to \
         writers [{}], LUNs [{}] not frozen, {} shadow(s) of the set deleted",
        r.record.set_id,
        r.record.pid,
        aborted.join(", "),
        r.record.luns.join(", "),
        r.shadows_deleted.len()
    )
}

/// Runs `command` (one that may open the pool's coordinator) and adds what opening cleaned up,
/// if anything, to its JSON document: `"cleaned": [...]` (an error's too). (The text lines
/// went to the caller's stderr when the coordinator opened.)
pub fn with_cleanup_report(command: impl FnOnce() -> Result<Report>) -> Result<Report> {
    CLEANED.with(|c| c.borrow_mut().clear());
    let result = command();
    let cleaned = CLEANED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if cleaned.is_empty() {
        return result;
    }
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = Report::new("", e.to_json());
            r.failure = Some(e);
            r
        }
    };
    if report.json.is_object() {
        report.json["cleaned"] = Value::Array(cleaned);
    }
    Ok(report)
}

/// An error of vss-core's `kind` raised by the command itself (a check before the library).
fn vss_error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind: vss_kind_name(kind),
        status: Status::of_vss(kind),
        message: format!("{}: {}", kind.as_str(), message.into()),
    }
}

/// A shadow or set id.
fn id(text: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(text.trim_matches(|c| c == '{' || c == '}')).map_err(|e| {
        vss_error(
            ErrorKind::InvalidArgument,
            format!("{what} {text:?} is not a UUID: {e}"),
        )
    })
}

/// A duration: `500ms`, `2s`, `1m`, or a number of seconds.
pub fn duration(text: &str, what: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| {
        vss_error(
            ErrorKind::InvalidArgument,
            format!("{what} {text:?} is not a duration (500ms, 2s, 1m)"),
        )
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => {
            return Err(vss_error(
                ErrorKind::InvalidArgument,
                format!("{what} {text:?}: unknown unit {unit:?} (ms, s or m)"),
            ))
        }
    };
    if d.is_zero() {
        return Err(vss_error(
            ErrorKind::InvalidArgument,
            format!("{what} {text:?} must be more than 0"),
        ));
    }
    Ok(d)
}

/// `NAME=CMD` of `--writer` / `--session-writer`.
fn writer_spec(text: &str, session: bool) -> Result<RegisteredWriter> {
    let Some((name, cmd)) = text.split_once('=') else {
        // Invalid input (4), as a bad name or command in NAME=CMD is.
        return Err(Error::of_kind(
            vds_core::ErrorKind::InvalidArgument,
            format!("writer {text:?} is not NAME=CMD"),
        ));
    };
    let w = if session {
        RegisteredWriter::session(name, cmd)
    } else {
        RegisteredWriter::exec(name, cmd)
    };
    // Checks the name and command before anything is opened.
    w.writer()?;
    Ok(w)
}

/// One shadow as JSON.
fn shadow_json(s: &ShadowProperties) -> Value {
    json!({
        "id": s.shadow_id,
        "set_id": s.set_id,
        "source": s.original.name,
        "lun": (s.provider_type == ProviderType::Hardware).then(|| s.shadow.name.clone()),
        "provider": s.provider_type,
        "size_bytes": s.original.size,
        "attributes": s.attributes,
        "state": s.state,
        "exposure": s.exposure,
        "created_unix_ns": s
            .created
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    })
}

/// Shadows as a table.
fn shadow_table(rows: &[ShadowProperties]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|s| {
            [
                s.shadow_id.to_string(),
                s.set_id.to_string(),
                s.original.name.clone(),
                if s.provider_type == ProviderType::Hardware {
                    s.shadow.name.clone()
                } else {
                    "-".into()
                },
                s.provider_type.to_string(),
            ]
        })
        .collect();
    table(["ID", "SET", "SOURCE", "LUN", "PROVIDER"], &cells)
}

/// Writers' status as JSON rows.
fn writers_json(status: &[WriterStatus]) -> Value {
    Value::Array(
        status
            .iter()
            .map(|s| {
                json!({
                    "name": s.writer,
                    "state": s.state.as_str(),
                    "failure": s.failure.as_ref().map(|f| format!("{}: {}", f.kind(), f.message())),
                })
            })
            .collect(),
    )
}

fn writers_text(status: &[WriterStatus]) -> String {
    if status.is_empty() {
        return String::new();
    }
    let cells: Vec<[String; 3]> = status
        .iter()
        .map(|s| {
            [
                s.writer.clone(),
                s.state.as_str().to_string(),
                s.failure
                    .as_ref()
                    .map_or_else(String::new, |f| format!("{}: {}", f.kind(), f.message())),
            ]
        })
        .collect();
    table(["WRITER", "STATE", "FAILURE"], &cells)
}

/// Runs `umbra shadow ...` (a dead requester's set cleaned up on the way is reported:
/// [`with_cleanup_report`]).
pub fn run(c: ShadowCommand, ctx: &Ctx) -> Result<Report> {
    with_cleanup_report(|| run_shadow(c, ctx))
}

fn run_shadow(c: ShadowCommand, ctx: &Ctx) -> Result<Report> {
    match c {
        ShadowCommand::Create(a) => create(*a, ctx),
        ShadowCommand::List { set, id: one, lun } => {
            let sel = match (set, one, lun) {
                (Some(s), _, _) => ShadowSelector::Set(id(&s, "set id")?),
                (_, Some(i), _) => ShadowSelector::Id(id(&i, "shadow id")?),
                (_, _, Some(l)) => ShadowSelector::Volume(l),
                _ => ShadowSelector::All,
            };
            let pc = coordinator(ctx, PoolOptions::default())?;
            if let ShadowSelector::Volume(l) = &sel {
                // An unknown LUN is not found (3), naming it; a LUN with no shadow lists none.
                pc.array().lun(l)?;
            }
            let rows = pc.query_shadows(&sel)?;
            if let ShadowSelector::Id(i) = sel {
                if rows.is_empty() {
                    return Err(vss_error(ErrorKind::NotFound, format!("no shadow {i}")));
                }
            }
            let json = json!({ "shadows": rows.iter().map(shadow_json).collect::<Vec<_>>() });
            Ok(Report::new(shadow_table(&rows), json))
        }
        ShadowCommand::Delete {
            id: one,
            set,
            lun,
            oldest,
            all,
        } => {
            let sel = match (one, set, lun, oldest) {
                (Some(i), ..) => ShadowSelector::Id(id(&i, "shadow id")?),
                (_, Some(s), ..) => ShadowSelector::Set(id(&s, "set id")?),
                (_, _, Some(l), _) => ShadowSelector::Volume(l),
                (_, _, _, Some(l)) => ShadowSelector::Oldest(l),
                _ => {
                    debug_assert!(all);
                    ShadowSelector::All
                }
            };
            let pc = coordinator(ctx, PoolOptions::default())?;
            let ids: Vec<Uuid> = pc
                .query_shadows(&sel)?
                .iter()
                .map(|s| s.shadow_id)
                .collect();
            pc.delete_shadows(&sel)?;
            let text: String = ids
                .iter()
                .map(|i| format!("deleted shadow {i}\n"))
                .collect();
            Ok(Report::new(text, json!({ "deleted": ids })))
        }
        ShadowCommand::Revert { id: i } => {
            let sid = id(&i, "shadow id")?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let lun = pc.shadow(sid)?.original.name;
            let h = pc.revert(sid)?;
            wait(h, "revert", ctx.progress_shown())?;
            Ok(Report::new(
                format!("LUN {lun} reverted to shadow {sid}\n"),
                json!({ "id": sid, "lun": lun }),
            ))
        }
        ShadowCommand::Resync { id: i } => {
            let sid = id(&i, "shadow id")?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let (p, props) = vss_core::script::provider_of(&pc, sid)?;
            let lun = props.original.name;
            // What the resync copied: the LUN's write statistics before and after.
            let before = p.written_bytes(&lun)?;
            let h = p.resync(sid, None)?;
            wait(h, "resync", ctx.progress_shown())?;
            let copied = before
                .zip(p.written_bytes(&lun)?)
                .map(|(b, a)| a.saturating_sub(b));
            let text = match copied {
                Some(n) => format!("shadow {sid} copied back over LUN {lun}: {n} bytes copied\n"),
                None => format!("shadow {sid} copied back over LUN {lun}\n"),
            };
            Ok(Report::new(
                text,
                json!({ "id": sid, "lun": lun, "bytes_copied": copied }),
            ))
        }
        ShadowCommand::Import { docfile, host } => {
            let initiator = parse::initiator(&host)?;
            let bytes = crate::control::staging::read_small(ctx, &docfile)
                .map_err(|e| Error::file("cannot read document", &docfile, e))?;
            let doc = BackupComponents::from_json(&bytes).map_err(|e| {
                vss_error(e.kind(), format!("{}: {}", docfile.display(), e.message()))
            })?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let (set_id, ids) = vss_core::script::import(&pc, &doc, &initiator.to_string())?;
            let rows = pc.query_shadows(&ShadowSelector::Set(set_id))?;
            let text = format!(
                "imported set {set_id} for {initiator}\n{}",
                shadow_table(&rows)
            );
            Ok(Report::new(
                text,
                json!({ "set_id": set_id, "host": initiator.to_string(), "ids": ids,
                        "shadows": rows.iter().map(shadow_json).collect::<Vec<_>>() }),
            ))
        }
        ShadowCommand::Break { set_id } => {
            let set = id(&set_id, "set id")?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let luns = vss_core::script::break_set(&pc, set)?;
            let text: String = luns
                .iter()
                .map(|l| format!("LUN {l} is now an ordinary LUN\n"))
                .collect();
            Ok(Report::new(text, json!({ "set_id": set, "luns": luns })))
        }
        ShadowCommand::Expose { id: i, host } => {
            let sid = id(&i, "shadow id")?;
            let initiator = parse::initiator(&host)?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let props = pc.shadow(sid)?;
            if props.provider_type != ProviderType::Hardware {
                return Err(vss_error(
                    ErrorKind::Unsupported,
                    format!("shadow {sid} is a software shadow: only a hardware shadow's LUN can be exposed to a host"),
                ));
            }
            // Through the provider, which records the exposure with the shadow.
            let (p, _) = vss_core::script::provider_of(&pc, sid)?;
            p.expose(sid, &initiator.to_string())?;
            Ok(Report::new(
                format!(
                    "shadow {sid} (LUN {}) exposed read-only to {initiator}\n",
                    props.shadow.name
                ),
                json!({ "id": sid, "lun": props.shadow.name, "host": initiator.to_string() }),
            ))
        }
        ShadowCommand::Recover { lun, from } => {
            let sid = id(&from, "shadow id")?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            let (p, props) = vss_core::script::provider_of(&pc, sid)?;
            if props.original.name != lun {
                return Err(vss_error(
                    ErrorKind::InvalidArgument,
                    format!(
                        "shadow {sid} is a shadow of LUN {}, not of {lun}",
                        props.original.name
                    ),
                ));
            }
            let r = p.recover(sid, None)?;
            let text = fields(&[
                ("damaged LUN (kept, masked)", r.damaged.clone()),
                ("recovered LUN", r.recovered.clone()),
                ("bytes moved", r.bytes_moved.to_string()),
                ("writes", r.writes.to_string()),
            ]);
            Ok(Report::new(
                text,
                json!({ "id": sid, "damaged": r.damaged, "recovered": r.recovered,
                                          "bytes_moved": r.bytes_moved, "writes": r.writes }),
            ))
        }
    }
}

/// What a `--save` file that cannot be written is said to be, served or not.
const SAVE_DIR_UNWRITABLE: &str = "--save: cannot write in the directory of";

/// Checks that `path` can be written (`--save`) before the pool is opened and writers run: a
/// scratch file is made in its directory and removed.
///
/// Errors: the directory's OS error (a missing directory is not found, exit 3).
fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".umbra-save-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| Error::file(SAVE_DIR_UNWRITABLE, path, e))?;
    std::fs::remove_file(&probe)
        .map_err(|e| Error::file("--save: cannot remove the scratch file", &probe, e))?;
    Ok(())
}

/// `umbra shadow create`.
fn create(a: CreateArgs, ctx: &Ctx) -> Result<Report> {
    // Every argument is read before the pool is opened.
    if a.context == ContextArg::Volatile {
        return Err(Error::usage(
            "--context volatile: its shadows would be released when this command ends; \
             use it inside an exec script, or --context persistent",
        ));
    }
    let has_writers = !a.writers.is_empty() || !a.session_writers.is_empty();
    if has_writers && (a.nowriters || a.context == ContextArg::Clientaccessible) {
        return Err(Error::usage(
            "--writer/--session-writer with --nowriters or --context clientaccessible: \
             that context has no writers",
        ));
    }
    let mut extra = Vec::new();
    for w in &a.writers {
        extra.push(writer_spec(w, false)?);
    }
    for w in &a.session_writers {
        extra.push(writer_spec(w, true)?);
    }
    let mut timeouts = Timeouts::default();
    if let Some(t) = &a.freeze_timeout {
        timeouts.freeze_window = duration(t, "--freeze-timeout")?;
    }
    if let Some(t) = &a.hold_timeout {
        timeouts.hold_window = duration(t, "--hold-timeout")?;
    }
    if let Some(t) = &a.event_timeout {
        timeouts.event = duration(t, "--event-timeout")?;
    }
    let host = a.host.as_deref().map(parse::initiator).transpose()?;
    if host.is_some() && !a.transportable {
        return Err(Error::usage(
            "--host imports the set for that host, which only a transportable set can be: \
             add --transportable, or leave --host out",
        ));
    }
    let context = match a.context {
        ContextArg::Clientaccessible => ContextWord::ClientAccessible,
        _ => ContextWord::Persistent {
            nowriters: a.nowriters,
        },
    };
    let (pool_provider, provider) = match a.provider {
        ProviderArg::Hardware => (PoolProvider::Hardware, ProviderType::Hardware),
        ProviderArg::Software => (PoolProvider::Software, ProviderType::Software),
    };
    let backup_type = match a.backup_type {
        BackupTypeArg::Copy => BackupType::Copy,
        BackupTypeArg::Full => BackupType::Full,
    };
    let save = a.save.as_ref().map(|p| p.to_string_lossy().into_owned());
    // For a caller on the control socket the document is written here first, then sent.
    let saved_here = match &a.save {
        Some(p) => crate::control::staging::Export::begin_worded(ctx, p, false, |e| {
            Error::file(SAVE_DIR_UNWRITABLE, p, e)
        })?,
        None => None,
    };
    let save_here = saved_here
        .as_ref()
        .map(|s| s.path().to_string_lossy().into_owned())
        .or_else(|| save.clone());
    if let (Some(p), None) = (&a.save, &saved_here) {
        // Locally: the document's directory is checked writable before anything runs.
        check_writable(p)?;
    }

    let pc = coordinator(
        ctx,
        PoolOptions {
            timeouts,
            provider: pool_provider,
            ..PoolOptions::default()
        },
    )?;
    for lun in &a.luns {
        // An unknown LUN is not found (3), before any set starts.
        pc.array().lun(lun)?;
    }
    for w in &extra {
        if ctx.caller.remote() {
            // Named in the set's record: its abort is sent if the server dies mid-set.
            pc.add_writer_for(w, ctx.caller.writer(w)?)?;
        } else {
            pc.add_exec_writer(w)?;
        }
    }
    let mut session = Session::new(&pc, Aliases::isolated()).with_preferred_provider(provider);
    if let Some(h) = &host {
        session = session.with_host(h.to_string());
    }
    let mut commands = vec![Command::SetContext(context)];
    if a.transportable {
        commands.push(Command::SetOption(Attributes::TRANSPORTABLE));
    }
    commands.push(Command::SetBackupType(backup_type));
    if let Some(p) = &save_here {
        commands.push(Command::SetMetadata(p.clone()));
    }
    commands.push(Command::BeginBackup);
    for lun in &a.luns {
        commands.push(Command::AddVolume {
            lun: lun.clone(),
            provider: None,
            alias: None,
        });
    }
    commands.push(Command::Create);
    commands.push(Command::EndBackup);
    let mut created = None;
    for (i, c) in commands.iter().enumerate() {
        match session.run(i + 1, c) {
            Ok(Output::Created { set_id, .. }) => created = Some(set_id),
            Ok(_) => {}
            Err(e) => {
                let status = session.writer_status().to_vec();
                // A writer whose call outlived its deadline (an exec writer's process group is
                // killed then, so it returns at once) is answered with abort when it returns:
                // let that happen before this process exits, within one event's deadline.
                for (name, _) in pc.not_responding() {
                    pc.wait_until_responding(&name, timeouts.event);
                }
                let kind = match e.kind {
                    vss_core::script::ScriptErrorKind::Failed(k) => k,
                    _ => ErrorKind::Io,
                };
                let err = Error {
                    kind: vss_kind_name(kind),
                    status: Status::of_vss(kind),
                    message: e.message,
                };
                let mut json = err.to_json();
                json["writers"] = writers_json(&status);
                json["set_id"] = json!(created);
                let mut text = writers_text(&status);
                if created.is_some() {
                    text = format!(
                        "set {} was made; then:\n{text}",
                        created.unwrap_or_default()
                    );
                }
                let mut r = Report::new(text, json);
                r.failure = Some(err);
                return Ok(r);
            }
        }
    }
    let set_id = created.expect("create ran");
    let status = session.writer_status().to_vec();
    drop(session);
    if let Some(s) = saved_here {
        s.finish()?;
    }
    let mut rows = pc.query_shadows(&ShadowSelector::Set(set_id))?;
    // In the order the LUNs were given.
    rows.sort_by_key(|s| a.luns.iter().position(|l| *l == s.original.name));
    let mut imported = None;
    if let Some(h) = &host {
        let p = vss_core::script::provider_of(&pc, rows[0].shadow_id)?.0;
        p.import(set_id, &h.to_string())?;
        imported = Some(h.to_string());
        rows = pc.query_shadows(&ShadowSelector::Set(set_id))?;
        rows.sort_by_key(|s| a.luns.iter().position(|l| *l == s.original.name));
    }
    let mut text = format!("set {set_id}\n{}", shadow_table(&rows));
    text.push_str(&writers_text(&status));
    if let Some(p) = &save {
        text.push_str(&format!("backup components document saved to {p}\n"));
    }
    let json = json!({
        "set_id": set_id,
        "shadows": rows.iter().map(shadow_json).collect::<Vec<_>>(),
        "writers": writers_json(&status),
        "saved": save,
        "imported_for": imported,
    });
    let mut report = Report::new(text, json);
    // A writer failing after the shadows exist: the set is kept, the command exits 7.
    let failed: Vec<String> = status
        .iter()
        .filter(|s| s.state.as_str().starts_with("FAILED"))
        .map(|s| {
            format!(
                "writer {:?} {}{}",
                s.writer,
                s.state.as_str(),
                s.failure.as_ref().map_or_else(String::new, |f| format!(
                    " ({}: {})",
                    f.kind(),
                    f.message()
                ))
            )
        })
        .collect();
    if !failed.is_empty() {
        let err = Error {
            kind: vss_kind_name(ErrorKind::UnexpectedWriterError),
            status: Status::WriterFailed,
            message: format!("set {set_id} was made and kept, but {}", failed.join("; ")),
        };
        // A JSON consumer sees the failure beside the set's fields.
        report.json["error"] = err.to_json()["error"].clone();
        report.failure = Some(err);
    }
    Ok(report)
}

/// Runs `umbra writers ...` (a dead requester's set cleaned up on the way is reported:
/// [`with_cleanup_report`]).
pub fn run_writers(c: WritersCommand, ctx: &Ctx) -> Result<Report> {
    with_cleanup_report(|| writers(c, ctx))
}

fn writers(c: WritersCommand, ctx: &Ctx) -> Result<Report> {
    match c {
        WritersCommand::Add {
            name,
            command,
            session,
        } => {
            let w = if session {
                RegisteredWriter::session(&name, &command)
            } else {
                RegisteredWriter::exec(&name, &command)
            };
            w.writer()?;
            let pc = coordinator(ctx, PoolOptions::default())?;
            pc.register_writer(&w)?;
            Ok(Report::new(
                format!("writer {name} registered\n"),
                json!({ "name": name, "command": command, "session": session }),
            ))
        }
        WritersCommand::Remove { name } => {
            let pc = coordinator(ctx, PoolOptions::default())?;
            pc.unregister_writer(&name)?;
            Ok(Report::new(
                format!("writer {name} removed\n"),
                json!({ "removed": name }),
            ))
        }
        WritersCommand::List => {
            let pc = coordinator(ctx, PoolOptions::default())?;
            let ws = pc.registered_writers()?;
            let cells: Vec<[String; 3]> = ws
                .iter()
                .map(|w| {
                    [
                        w.name.clone(),
                        if w.session { "session" } else { "exec" }.into(),
                        w.command.clone(),
                    ]
                })
                .collect();
            Ok(Report::new(
                table(["NAME", "KIND", "COMMAND"], &cells),
                json!({ "writers": ws.iter().map(|w| json!({"name": w.name, "command": w.command, "session": w.session})).collect::<Vec<_>>() }),
            ))
        }
    }
}
