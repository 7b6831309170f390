//! The typed commands of a DiskShadow-style script and their canonical text.

use std::fmt;

use uuid::Uuid;
use vds_core::InitiatorId;

use super::lex::quote;
use crate::shadow::{Attributes, BackupType, Context, ProviderType};

/// The context words of `set context`, each one of VSS's contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextWord {
    /// `clientaccessible`: [`Context::CLIENT_ACCESSIBLE`] (persistent, no writers).
    ClientAccessible,
    /// `persistent`: [`Context::APP_ROLLBACK`]; `persistent nowriters`:
    /// [`Context::NAS_ROLLBACK`].
    Persistent {
        /// `nowriters` follows.
        nowriters: bool,
    },
    /// `volatile`: [`Context::BACKUP`] (released at the end of the session); `volatile
    /// nowriters`: [`Context::FILE_SHARE_BACKUP`].
    Volatile {
        /// `nowriters` follows.
        nowriters: bool,
    },
}

impl ContextWord {
    /// The VSS context the words name.
    pub fn context(self) -> Context {
        match self {
            ContextWord::ClientAccessible => Context::CLIENT_ACCESSIBLE,
            ContextWord::Persistent { nowriters: false } => Context::APP_ROLLBACK,
            ContextWord::Persistent { nowriters: true } => Context::NAS_ROLLBACK,
            ContextWord::Volatile { nowriters: false } => Context::BACKUP,
            ContextWord::Volatile { nowriters: true } => Context::FILE_SHARE_BACKUP,
        }
    }
}

impl fmt::Display for ContextWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextWord::ClientAccessible => "clientaccessible",
            ContextWord::Persistent { nowriters: false } => "persistent",
            ContextWord::Persistent { nowriters: true } => "persistent nowriters",
            ContextWord::Volatile { nowriters: false } => "volatile",
            ContextWord::Volatile { nowriters: true } => "volatile nowriters",
        })
    }
}

/// The words of `set option` and the [`Attributes`] bit each one sets, in canonical order.
pub const OPTION_WORDS: [(&str, Attributes); 6] = [
    ("differential", Attributes::DIFFERENTIAL),
    ("plex", Attributes::PLEX),
    ("transportable", Attributes::TRANSPORTABLE),
    ("rollbackrecover", Attributes::ROLLBACK_RECOVERY),
    ("txfrecover", Attributes::TXF_RECOVERY),
    ("noautorecover", Attributes::NO_AUTORECOVERY),
];

/// The words of `set backuptype` and the backup type each names.
pub const BACKUP_TYPE_WORDS: [(&str, BackupType); 5] = [
    ("copy", BackupType::Copy),
    ("full", BackupType::Full),
    ("incremental", BackupType::Incremental),
    ("differential", BackupType::Differential),
    ("log", BackupType::Log),
];

/// `writer verify` or `writer exclude`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriterAction {
    /// The writer (or component) must take part: the backup fails if it does not.
    Verify,
    /// The writer (or component) is left out.
    Exclude,
}

/// What `list writers` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriterListing {
    /// `list writers`: names and ids.
    Summary,
    /// `list writers metadata`: each writer's metadata document.
    Metadata,
    /// `list writers detailed`: metadata with every component and LUN.
    Detailed,
    /// `list writers status`: each writer's state and last failure.
    Status,
}

/// Which shadows `list shadows` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShadowSelector {
    /// `all`.
    All,
    /// `set ID`: the shadows of one set.
    Set(Uuid),
    /// `id ID`: one shadow.
    Id(Uuid),
}

/// Which shadows `delete shadows` deletes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeleteTarget {
    /// `all`.
    All,
    /// `volume LUN`: every shadow of the LUN.
    Volume(String),
    /// `oldest LUN`: the LUN's oldest shadow.
    Oldest(String),
    /// `set ID`: every shadow of the set.
    Set(Uuid),
    /// `id ID`: one shadow.
    Id(Uuid),
    /// `exposed HOST`: the shadows exposed to this initiator.
    Exposed(InitiatorId),
}

/// One command of a DiskShadow-style script, as parsed (aliases expanded).
///
/// `Display` writes its canonical text: lower-case keywords, single spaces, ids in hyphenated
/// lower case, values quoted where needed and `%` written `%%`, so that the text parses back
/// (with any alias environment) to the same command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// `set context clientaccessible | persistent [nowriters] | volatile [nowriters]`.
    SetContext(ContextWord),
    /// `set option [differential|plex] [transportable] [[rollbackrecover] [txfrecover] |
    /// noautorecover]`: the attribute bits of [`OPTION_WORDS`] (at least one).
    SetOption(Attributes),
    /// `set backuptype copy|full|incremental|differential|log`.
    SetBackupType(BackupType),
    /// `set metadata FILE`: where `create` saves the backup components document.
    SetMetadata(String),
    /// `set verbose on|off`.
    SetVerbose(bool),
    /// `load metadata FILE`: a backup components document for `import` or a restore.
    LoadMetadata(String),
    /// `writer verify|exclude NAME` (the rest of the line is the name).
    Writer {
        /// Verify or exclude.
        action: WriterAction,
        /// The writer's (or component's) name.
        name: String,
    },
    /// `add volume LUN [provider software|hardware] [alias NAME]`.
    AddVolume {
        /// The LUN.
        lun: String,
        /// The provider asked for ([`ProviderType::Software`] or [`ProviderType::Hardware`]).
        provider: Option<ProviderType>,
        /// The alias its shadow's id gets at `create`.
        alias: Option<String>,
    },
    /// `add alias NAME VALUE`.
    AddAlias {
        /// The alias.
        name: String,
        /// Its value.
        value: String,
    },
    /// `begin backup`.
    BeginBackup,
    /// `end backup`.
    EndBackup,
    /// `begin restore`.
    BeginRestore,
    /// `end restore`.
    EndRestore,
    /// `simulate restore`.
    SimulateRestore,
    /// `create`: the shadow set of the volumes added, in the context and options set.
    Create,
    /// `list shadows all | set ID | id ID`.
    ListShadows(ShadowSelector),
    /// `list writers [metadata|detailed|status]`.
    ListWriters(WriterListing),
    /// `list providers`.
    ListProviders,
    /// `delete shadows all | volume LUN | oldest LUN | set ID | id ID | exposed HOST`.
    DeleteShadows(DeleteTarget),
    /// `expose ID HOST`: the shadow unmasked, read-only, to the initiator.
    Expose {
        /// The shadow.
        id: Uuid,
        /// The initiator.
        host: InitiatorId,
    },
    /// `unexpose ID`.
    Unexpose(Uuid),
    /// `import`: the transportable set of the loaded metadata.
    Import,
    /// `mask SET`: an imported hardware set masked off this host again.
    Mask(Uuid),
    /// `break [writable] SET`: the set's shadows become ordinary LUNs (read-only unless
    /// `writable`).
    Break {
        /// Read-write LUNs.
        writable: bool,
        /// The set.
        set: Uuid,
    },
    /// `revert ID`: the shadow's LUN reverted to it.
    Revert(Uuid),
    /// `resync ID [LUN]`: the shadow copied back over its LUN (or over `LUN`).
    Resync {
        /// The shadow.
        id: Uuid,
        /// Another destination than the shadow's own LUN.
        target: Option<String>,
    },
    /// `exec FILE`: runs a program; the script stops if it fails.
    Exec(String),
    /// `reset`: back to the defaults (volumes added, context, options, loaded metadata).
    Reset,
    /// `exit`: the script ends here.
    Exit,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::SetContext(c) => write!(f, "set context {c}"),
            Command::SetOption(a) => {
                f.write_str("set option")?;
                for (word, bit) in OPTION_WORDS {
                    if a.contains(bit) {
                        write!(f, " {word}")?;
                    }
                }
                Ok(())
            }
            Command::SetBackupType(t) => {
                let word = BACKUP_TYPE_WORDS
                    .iter()
                    .find(|(_, b)| b == t)
                    .map_or("copy", |(w, _)| w);
                write!(f, "set backuptype {word}")
            }
            Command::SetMetadata(p) => write!(f, "set metadata {}", quote(p)),
            Command::SetVerbose(on) => {
                write!(f, "set verbose {}", if *on { "on" } else { "off" })
            }
            Command::LoadMetadata(p) => write!(f, "load metadata {}", quote(p)),
            Command::Writer { action, name } => write!(
                f,
                "writer {} {}",
                match action {
                    WriterAction::Verify => "verify",
                    WriterAction::Exclude => "exclude",
                },
                quote(name)
            ),
            Command::AddVolume {
                lun,
                provider,
                alias,
            } => {
                write!(f, "add volume {}", quote(lun))?;
                match provider {
                    Some(ProviderType::Hardware) => f.write_str(" provider hardware")?,
                    Some(_) => f.write_str(" provider software")?,
                    None => {}
                }
                if let Some(a) = alias {
                    write!(f, " alias {a}")?;
                }
                Ok(())
            }
            Command::AddAlias { name, value } => write!(f, "add alias {name} {}", quote(value)),
            Command::BeginBackup => f.write_str("begin backup"),
            Command::EndBackup => f.write_str("end backup"),
            Command::BeginRestore => f.write_str("begin restore"),
            Command::EndRestore => f.write_str("end restore"),
            Command::SimulateRestore => f.write_str("simulate restore"),
            Command::Create => f.write_str("create"),
            Command::ListShadows(s) => match s {
                ShadowSelector::All => f.write_str("list shadows all"),
                ShadowSelector::Set(id) => write!(f, "list shadows set {id}"),
                ShadowSelector::Id(id) => write!(f, "list shadows id {id}"),
            },
            Command::ListWriters(l) => f.write_str(match l {
                WriterListing::Summary => "list writers",
                WriterListing::Metadata => "list writers metadata",
                WriterListing::Detailed => "list writers detailed",
                WriterListing::Status => "list writers status",
            }),
            Command::ListProviders => f.write_str("list providers"),
            Command::DeleteShadows(t) => match t {
                DeleteTarget::All => f.write_str("delete shadows all"),
                DeleteTarget::Volume(l) => write!(f, "delete shadows volume {}", quote(l)),
                DeleteTarget::Oldest(l) => write!(f, "delete shadows oldest {}", quote(l)),
                DeleteTarget::Set(id) => write!(f, "delete shadows set {id}"),
                DeleteTarget::Id(id) => write!(f, "delete shadows id {id}"),
                DeleteTarget::Exposed(h) => {
                    write!(f, "delete shadows exposed {}", quote(&h.to_string()))
                }
            },
            Command::Expose { id, host } => write!(f, "expose {id} {}", quote(&host.to_string())),
            Command::Unexpose(id) => write!(f, "unexpose {id}"),
            Command::Import => f.write_str("import"),
            Command::Mask(id) => write!(f, "mask {id}"),
            Command::Break { writable, set } => {
                if *writable {
                    write!(f, "break writable {set}")
                } else {
                    write!(f, "break {set}")
                }
            }
            Command::Revert(id) => write!(f, "revert {id}"),
            Command::Resync { id, target } => match target {
                Some(t) => write!(f, "resync {id} {}", quote(t)),
                None => write!(f, "resync {id}"),
            },
            Command::Exec(p) => write!(f, "exec {}", quote(p)),
            Command::Reset => f.write_str("reset"),
            Command::Exit => f.write_str("exit"),
        }
    }
}
