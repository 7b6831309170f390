//! The executor of DiskShadow-style scripts: a [`Session`] runs parsed [`Command`]s against a
//! [`Coordinator`] (its providers do import, break, revert and resync), line by line, and fills
//! a [`ScriptRun`].
//!
//! The whole script is checked first ([`validate`], with stand-in ids for the aliases `create`
//! will define): a script with a line that does not parse runs nothing and ends with
//! [`ExitCode::Syntax`], its run holding one error per line that does not parse. Then each line is parsed again with the aliases defined so far and run;
//! the first failure stops the script with its line number and the dialect's exit code
//! ([`ExitCode::CommandFailed`], [`ExitCode::ScriptFile`] for `set metadata` / `load metadata`
//! files, [`ExitCode::ExecFailed`] for `exec`).
//!
//! `create` runs the backup sequence up to the shadows (identify, start set, add volumes,
//! prepare-backup, prepare-snapshot, freeze, commit, thaw, post-snapshot), defines
//! `VSS_SHADOW_SET` and `VSS_SHADOW_1`..`n`, and writes the backup components document to the
//! `set metadata` file, if any. The backup session stays open: `end backup` sends
//! backup-complete and backup-shutdown; a session still open when the run ends
//! ([`Session::finish`], or dropping the session) gets backup-shutdown only, which releases the
//! shadows of a context without `NO_AUTO_RELEASE` (`set context volatile`).
//!
//! `writer exclude NAME` leaves the writer out of the next `create` (it answers identify, then
//! gets no further event); `writer verify NAME` fails a `create` the writer did not take part in.
//! `expose ID HOST` and `unexpose ID` unmask one hardware shadow read-only to a host and mask it
//! off every host again; `mask SET` does the latter for every shadow of an imported set.
//! `list writers metadata` and `list writers detailed` identify the writers (when no backup is
//! open) and show their metadata documents.
//!
//! Not offered by this executor (each an [`ErrorKind::Unsupported`] failure naming the
//! command): `begin restore`, `end restore`, `simulate restore`.

use std::process::{Command as Process, ExitStatus};
use std::sync::Arc;

use uuid::Uuid;

use super::command::{
    Command, ContextWord, DeleteTarget, ShadowSelector, WriterAction, WriterListing,
};
use super::lex::Aliases;
use super::output::{
    CreatedShadow, ExitCode, LineResult, Output, ProviderRow, ScriptError, ScriptRun, WriterRow,
};
use super::parse::{parse_line, validate};
use crate::coordinator::{BackupSession, Coordinator, ShadowSelector as Select, WriterStatus};
use crate::document::BackupComponents;
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::shadow::{Attributes, BackupType, Context, Exposure, ProviderType, ShadowProperties};
use crate::writer::WriterState;

/// Where a script's side effects outside the pool happen: the program an `exec` line runs and
/// the files `load metadata` reads and `create` writes (`set metadata`). [`LocalScriptIo`], the
/// default, is this process (`/bin/sh -c`, its working directory and environment); a front end
/// that runs scripts for another process (`umbra serve` for an `umbra` command on its control
/// socket) gives one that does them in that process, so relative paths, the environment and
/// the programs' parent are the script's caller's.
pub trait ScriptIo: Send + Sync {
    /// Runs `command` (an `exec` line, aliases expanded) as `/bin/sh -c COMMAND`, waits for it
    /// and returns its status; an error when it cannot be started.
    fn exec(&self, command: &str) -> std::io::Result<ExitStatus>;
    /// The whole of the file at `path` (`load metadata`).
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>>;
    /// Replaces the file at `path` with `bytes`, durably: written and synced under another name,
    /// then renamed in place and the directory synced (`set metadata`, at `create`).
    fn write_durably(&self, path: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// This process's [`ScriptIo`]: `/bin/sh -c` as its child, files by its working directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalScriptIo;

impl ScriptIo for LocalScriptIo {
    fn exec(&self, command: &str) -> std::io::Result<ExitStatus> {
        Process::new("/bin/sh").arg("-c").arg(command).status()
    }
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn write_durably(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_durably(path, bytes)
    }
}

/// Runs DiskShadow-style commands against a coordinator, keeping the script's state: context,
/// options, backup type, volumes added, the metadata file, the loaded document, the aliases and
/// the open backup session.
pub struct Session<'a> {
    coordinator: &'a Coordinator,
    aliases: Aliases,
    context: ContextWord,
    options: Attributes,
    backup_type: BackupType,
    metadata_file: Option<String>,
    loaded: Option<BackupComponents>,
    volumes: Vec<(String, Option<ProviderType>, Option<String>)>,
    verified: Vec<String>,
    excluded: Vec<String>,
    in_backup: bool,
    backup: Option<BackupSession>,
    host: Option<String>,
    preferred: Option<ProviderType>,
    last_status: Vec<WriterStatus>,
    io: Arc<dyn ScriptIo>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("context", &self.context)
            .field("options", &self.options)
            .field("backup_type", &self.backup_type)
            .field("volumes", &self.volumes)
            .field("in_backup", &self.in_backup)
            .finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    /// A session on `coordinator` with DiskShadow's defaults (context `volatile`, no options,
    /// backup type copy) and `aliases` as the alias environment.
    pub fn new(coordinator: &'a Coordinator, aliases: Aliases) -> Self {
        Session {
            coordinator,
            aliases,
            context: ContextWord::Volatile { nowriters: false },
            options: Attributes::empty(),
            backup_type: BackupType::Copy,
            metadata_file: None,
            loaded: None,
            volumes: Vec::new(),
            verified: Vec::new(),
            excluded: Vec::new(),
            in_backup: false,
            backup: None,
            host: None,
            preferred: None,
            last_status: Vec::new(),
            io: Arc::new(LocalScriptIo),
        }
    }

    /// Where `exec` lines run and metadata files are read and written ([`LocalScriptIo`], this
    /// process, unless given).
    pub fn with_io(mut self, io: Arc<dyn ScriptIo>) -> Self {
        self.io = io;
        self
    }

    /// The initiator that `import` imports the loaded set for (DiskShadow imports onto the
    /// machine it runs on; here the importing host is named).
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The provider type the coordinator prefers (the one a volume gets when it names none):
    /// `add volume LUN provider TYPE` naming the other one fails as unsupported rather than
    /// being ignored.
    pub fn with_preferred_provider(mut self, provider: ProviderType) -> Self {
        self.preferred = Some(provider);
        self
    }

    /// The aliases defined so far.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// The writers' status after the last `create` (or `end backup`): each writer's state and
    /// failure, as the coordinator reports them.
    pub fn writer_status(&self) -> &[WriterStatus] {
        &self.last_status
    }

    /// Runs a whole script: every line is checked first (nothing runs if one does not parse;
    /// the run then holds an error for **each** line that does not parse, and stops at the
    /// first), then run in order until the first failure or `exit`; the open backup session is then
    /// ended ([`Session::finish`]).
    pub fn execute(&mut self, script: &str) -> ScriptRun {
        let mut run = ScriptRun {
            exit_code: ExitCode::Ok,
            stopped_at: None,
            lines: Vec::new(),
        };
        // Every line that does not parse is reported (one line result each), not just the
        // first; nothing runs.
        if let Some(refused) = validate(script, &self.aliases).failed_run(script) {
            return refused;
        }
        for (i, text) in script.lines().enumerate() {
            let line = i + 1;
            let command = match parse_line(line, text, &self.aliases) {
                Ok(None) => continue,
                Ok(Some(c)) => c,
                Err(e) => {
                    // An alias that expands to something the dry run could not foresee.
                    self.stop(&mut run, line, text, ScriptError::from(e));
                    break;
                }
            };
            let outcome = self.run(line, &command);
            let is_exit = command == Command::Exit;
            match outcome {
                Ok(out) => run.lines.push(LineResult {
                    line,
                    command: text.trim().to_owned(),
                    outcome: Ok(out),
                }),
                Err(e) => {
                    self.stop(&mut run, line, text, e);
                    break;
                }
            }
            if is_exit {
                run.stopped_at = Some(line);
                break;
            }
        }
        if let Err(e) = self.finish() {
            if run.exit_code == ExitCode::Ok {
                let line = script.lines().count().max(1);
                self.stop(&mut run, line, "", ScriptError::failed(line, &e));
            }
        }
        run
    }

    fn stop(&self, run: &mut ScriptRun, line: usize, text: &str, e: ScriptError) {
        run.exit_code = e.code;
        run.stopped_at = Some(line);
        run.lines.push(LineResult {
            line,
            command: text.trim().to_owned(),
            outcome: Err(e),
        });
    }

    /// Ends the open backup session, if any, with backup-shutdown (a volatile set's shadows are
    /// released); the writers' status is kept for [`Session::writer_status`].
    ///
    /// Errors: a provider's error releasing a shadow.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(mut b) = self.backup.take() {
            let r = b.backup_shutdown();
            self.last_status = b.writer_status();
            return r;
        }
        Ok(())
    }

    /// Runs one command (`line` numbers its errors) and records what it does to the aliases.
    pub fn run(&mut self, line: usize, command: &Command) -> Result<Output, ScriptError> {
        let out = self.dispatch(line, command)?;
        if !matches!(command, Command::Create) {
            self.aliases.apply(command);
        }
        Ok(out)
    }

    fn context(&self) -> Context {
        self.context.context() | self.options
    }

    fn dispatch(&mut self, line: usize, command: &Command) -> Result<Output, ScriptError> {
        let failed = |e: Error| ScriptError::failed(line, &e);
        let unsupported = |what: &str| {
            ScriptError::failed(
                line,
                &Error::new(
                    ErrorKind::Unsupported,
                    format!("{what} is not offered by this build's DiskShadow executor"),
                ),
            )
        };
        Ok(match command {
            Command::SetContext(w) => {
                self.context = *w;
                Output::ContextSet {
                    context: self.context(),
                }
            }
            Command::SetOption(a) => {
                self.options = *a;
                Output::OptionsSet { attributes: *a }
            }
            Command::SetBackupType(t) => {
                self.backup_type = *t;
                Output::BackupTypeSet { backup_type: *t }
            }
            Command::SetMetadata(p) => {
                self.metadata_file = Some(p.clone());
                Output::MetadataFileSet { path: p.clone() }
            }
            Command::SetVerbose(on) => Output::VerboseSet { on: *on },
            Command::LoadMetadata(p) => {
                let bytes = self.io.read(p).map_err(|e| {
                    ScriptError::file(
                        line,
                        &Error::new(ErrorKind::NotFound, format!("cannot read {p}: {e}")),
                    )
                })?;
                let doc = BackupComponents::from_json(&bytes).map_err(|e| {
                    ScriptError::file(line, &Error::new(e.kind(), format!("{p}: {}", e.message())))
                })?;
                let set_id = doc.snapshot_set.as_ref().map(|s| s.set_id);
                let shadows: Vec<Uuid> = doc
                    .snapshot_set
                    .iter()
                    .flat_map(|s| s.shadows.iter().map(|p| p.shadow_id))
                    .collect();
                if let Some(id) = set_id {
                    self.aliases.loaded(id, &shadows);
                }
                self.loaded = Some(doc);
                Output::MetadataLoaded {
                    path: p.clone(),
                    set_id,
                    shadows,
                }
            }
            Command::Writer {
                action: WriterAction::Verify,
                name,
            } => {
                if self.excluded.contains(name) {
                    return Err(failed(Error::new(
                        ErrorKind::InvalidArgument,
                        format!("writer verify {name:?}: the writer is excluded"),
                    )));
                }
                self.verified.push(name.clone());
                Output::WriterSelected {
                    name: name.clone(),
                    included: true,
                }
            }
            Command::Writer {
                action: WriterAction::Exclude,
                name,
            } => {
                if self.verified.contains(name) {
                    return Err(failed(Error::new(
                        ErrorKind::InvalidArgument,
                        format!("writer exclude {name:?}: the writer is to be verified"),
                    )));
                }
                if !self.excluded.contains(name) {
                    self.excluded.push(name.clone());
                }
                Output::WriterSelected {
                    name: name.clone(),
                    included: false,
                }
            }
            Command::AddVolume {
                lun,
                provider,
                alias,
            } => {
                if let (Some(asked), Some(pref)) = (provider, self.preferred) {
                    if *asked != pref {
                        return Err(failed(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "add volume {lun}: provider {asked} was asked but this \
                                 session's coordinator prefers {pref}"
                            ),
                        )));
                    }
                }
                let mut known = false;
                for p in self.coordinator.providers() {
                    known |= p.knows_volume(lun).map_err(failed)?;
                }
                if !known {
                    return Err(failed(Error::new(
                        ErrorKind::NotFound,
                        format!("add volume {lun}: no LUN named {lun:?}"),
                    )));
                }
                if self.volumes.iter().any(|(l, _, _)| l == lun) {
                    return Err(failed(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("volume {lun} is already added"),
                    )));
                }
                self.volumes.push((lun.clone(), *provider, alias.clone()));
                Output::VolumeAdded {
                    lun: lun.clone(),
                    provider: provider
                        .or(self.preferred)
                        .unwrap_or(ProviderType::Hardware),
                    alias: alias.clone(),
                }
            }
            Command::AddAlias { name, value } => Output::AliasAdded {
                name: name.clone(),
                value: value.clone(),
            },
            Command::BeginBackup => {
                if self.in_backup {
                    return Err(failed(Error::new(
                        ErrorKind::BadState,
                        "begin backup: a backup is already begun",
                    )));
                }
                self.in_backup = true;
                Output::Step {
                    step: command.to_string(),
                }
            }
            Command::EndBackup => {
                if !self.in_backup {
                    return Err(failed(Error::new(
                        ErrorKind::BadState,
                        "end backup: no backup was begun",
                    )));
                }
                self.in_backup = false;
                if let Some(mut b) = self.backup.take() {
                    let r = b.backup_complete().and_then(|()| b.backup_shutdown());
                    self.last_status = b.writer_status();
                    r.map_err(failed)?;
                }
                Output::Step {
                    step: command.to_string(),
                }
            }
            Command::BeginRestore => return Err(unsupported("begin restore")),
            Command::EndRestore => return Err(unsupported("end restore")),
            Command::SimulateRestore => return Err(unsupported("simulate restore")),
            Command::Create => self.create(line)?,
            Command::ListShadows(s) => {
                let sel = match s {
                    ShadowSelector::All => Select::All,
                    ShadowSelector::Set(id) => Select::Set(*id),
                    ShadowSelector::Id(id) => Select::Id(*id),
                };
                Output::Shadows {
                    rows: self.coordinator.query_shadows(&sel).map_err(failed)?,
                }
            }
            Command::ListWriters(l) => Output::Writers {
                rows: self.writer_rows(*l).map_err(failed)?,
            },
            Command::ListProviders => Output::Providers {
                rows: self
                    .coordinator
                    .providers()
                    .iter()
                    .map(|p| ProviderRow {
                        id: p.id(),
                        name: p.name().to_owned(),
                        provider_type: p.provider_type(),
                    })
                    .collect(),
            },
            Command::DeleteShadows(t) => Output::ShadowsDeleted {
                ids: self.delete(t).map_err(failed)?,
            },
            Command::Expose { id, host } => {
                let (p, _) = provider_of(self.coordinator, *id).map_err(failed)?;
                p.expose(*id, &host.to_string()).map_err(failed)?;
                Output::Exposed {
                    id: *id,
                    host: host.to_string(),
                }
            }
            Command::Unexpose(id) => {
                let (p, _) = provider_of(self.coordinator, *id).map_err(failed)?;
                p.unexpose(*id).map_err(failed)?;
                Output::Unexposed { id: *id }
            }
            Command::Mask(set) => {
                let shadows = self
                    .coordinator
                    .query_shadows(&Select::Set(*set))
                    .map_err(failed)?;
                if shadows.is_empty() {
                    return Err(failed(Error::new(
                        ErrorKind::NotFound,
                        format!("mask {set}: no shadow of this set"),
                    )));
                }
                for s in shadows {
                    let (p, _) = provider_of(self.coordinator, s.shadow_id).map_err(failed)?;
                    p.unexpose(s.shadow_id).map_err(failed)?;
                }
                Output::Masked { set_id: *set }
            }
            Command::Import => {
                let Some(doc) = &self.loaded else {
                    return Err(failed(Error::new(
                        ErrorKind::BadState,
                        "import: no metadata is loaded (load metadata FILE first)",
                    )));
                };
                let Some(host) = self.host.clone() else {
                    return Err(failed(Error::new(
                        ErrorKind::InvalidArgument,
                        "import: no importing host was named (the front end names it: \
                         `umbra exec FILE --host ID`, `Session::with_host`)",
                    )));
                };
                let (set_id, ids) = import(self.coordinator, doc, &host).map_err(failed)?;
                Output::Imported { set_id, ids }
            }
            Command::Break { writable, set } => {
                let luns = break_set(self.coordinator, *set).map_err(failed)?;
                Output::Broken {
                    set_id: *set,
                    luns,
                    writable: *writable,
                }
            }
            Command::Revert(id) => {
                let (p, props) = provider_of(self.coordinator, *id).map_err(failed)?;
                p.revert(*id)
                    .and_then(|h| h.wait().map_err(Error::from))
                    .map_err(failed)?;
                Output::Reverted {
                    id: *id,
                    lun: props.original.name,
                }
            }
            Command::Resync { id, target } => {
                let (p, props) = provider_of(self.coordinator, *id).map_err(failed)?;
                let lun = target.clone().unwrap_or(props.original.name);
                let before = p.written_bytes(&lun).map_err(failed)?;
                p.resync(*id, target.as_deref())
                    .and_then(|h| h.wait().map_err(Error::from))
                    .map_err(failed)?;
                let after = p.written_bytes(&lun).map_err(failed)?;
                Output::Resynced {
                    id: *id,
                    bytes: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
                    lun,
                }
            }
            Command::Exec(file) => {
                let status = self.io.exec(file).map_err(|e| {
                    ScriptError::exec_failed(line, format!("exec {file}: cannot run: {e}"))
                })?;
                if !status.success() {
                    return Err(ScriptError::exec_failed(
                        line,
                        format!("exec {file}: {status}"),
                    ));
                }
                Output::Executed { file: file.clone() }
            }
            Command::Reset => {
                self.finish().map_err(failed)?;
                self.volumes.clear();
                self.verified.clear();
                self.excluded.clear();
                self.context = ContextWord::Volatile { nowriters: false };
                self.options = Attributes::empty();
                self.backup_type = BackupType::Copy;
                self.loaded = None;
                self.metadata_file = None;
                self.in_backup = false;
                Output::Step {
                    step: command.to_string(),
                }
            }
            Command::Exit => Output::Exit,
        })
    }

    /// `create`: the backup sequence up to the shadows, the aliases, the saved document.
    fn create(&mut self, line: usize) -> Result<Output, ScriptError> {
        let failed = |e: Error| ScriptError::failed(line, &e);
        if self.volumes.is_empty() {
            return Err(failed(Error::new(
                ErrorKind::BadState,
                "create: no volume was added (add volume LUN first)",
            )));
        }
        // A LUN no provider takes is refused before the set starts: nothing is written.
        for (lun, provider, _) in &self.volumes {
            let mut supported = false;
            for p in self.coordinator.providers() {
                if provider.is_some_and(|t| p.provider_type() != t) {
                    continue;
                }
                supported |= p.is_volume_supported(lun, self.context()).map_err(failed)?;
            }
            if !supported {
                let which = match provider {
                    Some(t) => format!("no {t} provider"),
                    None => "no provider".to_owned(),
                };
                return Err(failed(Error::new(
                    ErrorKind::VolumeNotSupported,
                    format!("create: {which} supports LUN {lun:?}"),
                )));
            }
        }
        // A set already made in this session ends before the next starts.
        self.finish().map_err(failed)?;
        let mut b = self.coordinator.backup(self.context(), self.backup_type);
        let made = (|| -> Result<Vec<ShadowProperties>> {
            b.gather_writer_metadata()?;
            for name in &self.excluded {
                b.exclude_writer(name)?;
            }
            b.start_set()?;
            for (lun, provider, _) in &self.volumes {
                b.add_volume_with(lun, provider.or(self.preferred))?;
            }
            b.prepare_for_backup()?;
            b.do_snapshot_set()
        })();
        self.last_status = b.writer_status();
        let shadows = made.map_err(failed)?;
        for name in &self.verified {
            let ok = self
                .last_status
                .iter()
                .any(|s| &s.writer == name && s.taking_part && !is_failed(s.state));
            if !ok {
                let _ = b.abort();
                self.last_status = b.writer_status();
                return Err(failed(Error::new(
                    ErrorKind::UnexpectedWriterError,
                    format!("writer verify {name:?}: the writer did not take part in the set (it was aborted)"),
                )));
            }
        }
        if let Some(path) = &self.metadata_file {
            let doc = b
                .backup_components()
                .and_then(|d| d.to_json())
                .map_err(failed)?;
            if let Err(e) = self.io.write_durably(path, doc.as_bytes()) {
                let _ = b.abort();
                return Err(ScriptError::file(
                    line,
                    &Error::new(
                        ErrorKind::Io,
                        format!("cannot write {path}: {e} (the set was aborted)"),
                    ),
                ));
            }
        }
        let set_id = b.set_id().expect("a made set has an id");
        let ids: Vec<Uuid> = shadows.iter().map(|s| s.shadow_id).collect();
        self.aliases.created(set_id, &ids).map_err(failed)?;
        let created = shadows
            .iter()
            .zip(&self.volumes)
            .enumerate()
            .map(|(i, (s, (_, _, alias)))| CreatedShadow {
                id: s.shadow_id,
                source: s.original.name.clone(),
                lun: (s.provider_type == ProviderType::Hardware).then(|| s.shadow.name.clone()),
                alias: format!("VSS_SHADOW_{}", i + 1),
                volume_alias: alias.clone(),
            })
            .collect();
        self.volumes.clear();
        // Kept open: `end backup` completes it; else the end of the run shuts it down (a
        // volatile set lives until then, as DiskShadow's live until it exits).
        self.backup = Some(b);
        Ok(Output::Created {
            set_id,
            shadows: created,
        })
    }

    /// The rows of `list writers`: the open backup's writers (or the last one's); for
    /// `metadata` and `detailed` with no backup open, the writers are identified now.
    fn writer_rows(&self, listing: WriterListing) -> Result<Vec<WriterRow>> {
        let wants_metadata = matches!(listing, WriterListing::Metadata | WriterListing::Detailed);
        let (status, docs) = match &self.backup {
            Some(b) => (b.writer_status(), b.writer_metadata()),
            None if wants_metadata => {
                let mut s = self.coordinator.backup(Context::BACKUP, self.backup_type);
                let docs = s.gather_writer_metadata()?;
                (s.writer_status(), docs)
            }
            None => (self.last_status.clone(), Vec::new()),
        };
        let mut rows: Vec<WriterRow> = status
            .iter()
            .map(|s| row(s, listing, docs.iter().find(|d| d.writer == s.writer)))
            .collect();
        for name in self.coordinator.writer_names() {
            if !rows.iter().any(|r| r.name == name) {
                rows.push(WriterRow {
                    name,
                    state: WriterState::Stable,
                    failure: None,
                    components: Vec::new(),
                    metadata: None,
                });
            }
        }
        Ok(rows)
    }

    fn delete(&self, target: &DeleteTarget) -> Result<Vec<Uuid>> {
        let sel = match target {
            DeleteTarget::All => Select::All,
            DeleteTarget::Volume(l) => Select::Volume(l.clone()),
            DeleteTarget::Oldest(l) => Select::Oldest(l.clone()),
            DeleteTarget::Set(id) => Select::Set(*id),
            DeleteTarget::Id(id) => Select::Id(*id),
            DeleteTarget::Exposed(host) => {
                let host = host.to_string();
                let ids: Vec<Uuid> = self
                    .coordinator
                    .shadows()?
                    .into_iter()
                    .filter(|s| matches!(&s.exposure, Exposure::Hosts { initiators } if initiators.contains(&host)))
                    .map(|s| s.shadow_id)
                    .collect();
                for id in &ids {
                    self.coordinator.delete_shadows(&Select::Id(*id))?;
                }
                return Ok(ids);
            }
        };
        let ids: Vec<Uuid> = self
            .coordinator
            .query_shadows(&sel)?
            .into_iter()
            .map(|s| s.shadow_id)
            .collect();
        self.coordinator.delete_shadows(&sel)?;
        Ok(ids)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn is_failed(state: WriterState) -> bool {
    state.as_str().starts_with("FAILED")
}

/// One writer's row of `list writers`.
fn row(
    s: &WriterStatus,
    listing: WriterListing,
    metadata: Option<&crate::document::WriterMetadata>,
) -> WriterRow {
    let (components, metadata) = match (listing, metadata) {
        (WriterListing::Metadata, Some(m)) => (
            m.components.iter().map(|c| c.full_path()).collect(),
            Some(m.clone()),
        ),
        (WriterListing::Detailed, Some(m)) => (
            m.components
                .iter()
                .map(|c| {
                    let on = if c.covers_every_lun() {
                        "every LUN of the set".to_owned()
                    } else {
                        c.luns.join(", ")
                    };
                    format!("{} (on {on})", c.full_path())
                })
                .collect(),
            Some(m.clone()),
        ),
        _ => (Vec::new(), None),
    };
    WriterRow {
        name: s.writer.clone(),
        state: s.state,
        failure: s
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.kind(), f.message())),
        components,
        metadata,
    }
}

/// The coordinator's provider of id `provider`; `what` names what needed it in the error.
fn provider_by_id(
    coordinator: &Coordinator,
    provider: Uuid,
    what: &str,
) -> Result<std::sync::Arc<dyn Provider>> {
    coordinator
        .providers()
        .into_iter()
        .find(|p| p.id() == provider)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{what}: its provider {provider} is not one of this coordinator's"),
            )
        })
}

/// The provider that made shadow `id`, with the shadow's properties.
///
/// Errors: [`ErrorKind::NotFound`] for an unknown shadow.
pub fn provider_of(
    coordinator: &Coordinator,
    id: Uuid,
) -> Result<(std::sync::Arc<dyn Provider>, ShadowProperties)> {
    let props = coordinator.shadow(id)?;
    let p = provider_by_id(coordinator, props.provider_id, &format!("shadow {id}"))?;
    Ok((p, props))
}

/// Imports the transportable set a backup components document describes for `host`, through
/// the provider that made it; returns the set id and its shadows' ids.
///
/// Errors: [`ErrorKind::InvalidDocument`] for a document with no set;
/// [`ErrorKind::NonTransportableBcd`] for a set that is not transportable; the provider's.
pub fn import(
    coordinator: &Coordinator,
    doc: &BackupComponents,
    host: &str,
) -> Result<(Uuid, Vec<Uuid>)> {
    let set = doc.snapshot_set.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidDocument,
            "backup components document: it describes no snapshot set (snapshot_set is null)",
        )
    })?;
    let first = set.shadows.first().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidDocument,
            format!(
                "backup components document: set {} has no shadow",
                set.set_id
            ),
        )
    })?;
    if !first.attributes.contains(Attributes::TRANSPORTABLE) {
        return Err(Error::new(
            ErrorKind::NonTransportableBcd,
            format!("set {} was not made transportable", set.set_id),
        ));
    }
    let p = provider_by_id(
        coordinator,
        first.provider_id,
        &format!("set {}", set.set_id),
    )?;
    let got = p.import(set.set_id, host)?;
    Ok((set.set_id, got.iter().map(|s| s.shadow_id).collect()))
}

/// Breaks every shadow of set `set_id` into an ordinary LUN; returns their LUNs.
///
/// Errors: [`ErrorKind::NotFound`] for a set with no shadow here; the provider's.
pub fn break_set(coordinator: &Coordinator, set_id: Uuid) -> Result<Vec<String>> {
    let shadows = coordinator.query_shadows(&Select::Set(set_id))?;
    let first = shadows
        .first()
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no shadow of set {set_id}")))?;
    provider_by_id(coordinator, first.provider_id, &format!("set {set_id}"))?.break_set(set_id)
}

/// Writes `bytes` to a new file at `path` (replacing one), synced before it is renamed in place.
fn write_durably(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = std::path::Path::new(path);
    let tmp = path.with_extension("tmp~");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
