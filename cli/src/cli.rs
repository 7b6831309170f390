//! The command line, as clap reads it: global options, then one command.
//!
//! Commands live in groups (`lun`, `host`, `group`, `shadow`, `writers`, `exec`, `demo`,
//! `serve`).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Administers an umbra pool: LUNs, masking, hosts, shadow copies with writers, and DiskRAID- and
/// DiskShadow-style scripts. Start with `umbra demo fast-recovery`, the main job end to end.
#[derive(Debug, Parser)]
#[command(name = "umbra", version, after_help = crate::exit::help_text())]
pub struct Cli {
    /// The pool directory (created on first use when missing or empty).
    #[arg(
        long,
        global = true,
        env = "UMBRA_POOL",
        default_value = "umbra-pool",
        value_name = "DIR"
    )]
    pub pool: PathBuf,
    /// Print one JSON document on stdout (errors included) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// LUNs: create, list, detail, extend, delete, online/offline, snapshot, split, mask, number,
    /// I/O, images.
    #[command(subcommand)]
    Lun(LunCommand),
    /// Hosts (named sets of initiator ports) and what an initiator sees.
    #[command(subcommand)]
    Host(HostCommand),
    /// Initiator groups (usable in unmasking lists as @NAME).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Shadow copies: create (a whole backup sequence with writers), list, delete, revert,
    /// resync, import, break, expose, recover.
    #[command(subcommand)]
    Shadow(ShadowCommand),
    /// Writers registered in the pool (part of every shadow set made on it).
    #[command(subcommand)]
    Writers(WritersCommand),
    /// Runs a DiskRAID- or DiskShadow-style script file.
    Exec(ExecArgs),
    /// Demonstrations on a pool of their own: `demo fast-recovery`, the seed's story.
    #[command(subcommand)]
    Demo(crate::demo::DemoCommand),
    /// Serves the pool's LUNs over NBD and takes other `umbra` commands on its control socket.
    Serve(crate::serve::ServeArgs),
}

/// `--provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// Engine-level shadows inside the LUNs.
    Software,
    /// Snapshot LUNs of the array (masked to no one, read-only).
    Hardware,
}

/// `--context`: DiskShadow's context words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContextArg {
    /// BACKUP: released when the command ends (only usable inside `exec` scripts).
    Volatile,
    /// APP_ROLLBACK (NAS_ROLLBACK with --nowriters): kept after the command.
    Persistent,
    /// CLIENT_ACCESSIBLE: persistent, no writers.
    Clientaccessible,
}

/// `--backup-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupTypeArg {
    /// COPY: writers do not truncate their logs.
    Copy,
    /// FULL: writers may truncate their logs at backup-complete.
    Full,
}

/// `umbra shadow create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The LUNs of the set (1 to 64).
    #[arg(required = true)]
    pub luns: Vec<String>,
    /// The provider preferred (the other takes what it refuses).
    #[arg(long, value_enum, default_value = "hardware")]
    pub provider: ProviderArg,
    /// The context.
    #[arg(long, value_enum, default_value = "persistent")]
    pub context: ContextArg,
    /// No writers take part (persistent becomes NAS_ROLLBACK).
    #[arg(long)]
    pub nowriters: bool,
    /// A transportable set (importable by another host: see --save and `shadow import`).
    #[arg(long)]
    pub transportable: bool,
    /// The backup type.
    #[arg(long, value_enum, default_value = "copy")]
    pub backup_type: BackupTypeArg,
    /// Writes the backup components document here (what `shadow import` reads).
    #[arg(long, value_name = "DOCFILE")]
    pub save: Option<PathBuf>,
    /// An exec writer for this set only (one process per event).
    #[arg(long = "writer", value_name = "NAME=CMD")]
    pub writers: Vec<String>,
    /// A session writer for this set only (one process, events on its stdin).
    #[arg(long = "session-writer", value_name = "NAME=CMD")]
    pub session_writers: Vec<String>,
    /// The freeze window (first freeze to last thaw): 60s by default (ms, s, m units).
    #[arg(long, value_name = "DUR")]
    pub freeze_timeout: Option<String>,
    /// The providers' hold window: 10s by default.
    #[arg(long, value_name = "DUR")]
    pub hold_timeout: Option<String>,
    /// Every other event's deadline: 60s by default.
    #[arg(long, value_name = "DUR")]
    pub event_timeout: Option<String>,
    /// Imports the set for this initiator once made (its shadow LUNs unmasked read-only to it).
    #[arg(long, value_name = "ID")]
    pub host: Option<String>,
}

/// `umbra shadow ...`.
#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Makes a shadow set of LUNs: the whole backup sequence with the pool's writers and these.
    Create(Box<CreateArgs>),
    /// Lists shadows (every one, or of a set, one id, or one LUN).
    #[command(group(ArgGroup::new("which").args(["set", "id", "lun"])))]
    List {
        /// The shadows of this set.
        #[arg(long, value_name = "ID")]
        set: Option<String>,
        /// This shadow.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// The shadows of this LUN.
        #[arg(long, value_name = "LUN")]
        lun: Option<String>,
    },
    /// Deletes shadows.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "set", "lun", "oldest", "all"])))]
    Delete {
        /// This shadow.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Every shadow of this set.
        #[arg(long, value_name = "ID")]
        set: Option<String>,
        /// Every shadow of this LUN.
        #[arg(long, value_name = "LUN")]
        lun: Option<String>,
        /// The oldest shadow of this LUN.
        #[arg(long, value_name = "LUN")]
        oldest: Option<String>,
        /// Every shadow.
        #[arg(long)]
        all: bool,
    },
    /// Reverts a LUN to its persistent software shadow.
    Revert {
        /// The shadow.
        id: String,
    },
    /// Copies a hardware shadow back over its LUN (changed blocks only; progress on stderr).
    Resync {
        /// The shadow.
        id: String,
    },
    /// Imports the transportable set a saved backup components document describes, for a host.
    Import {
        /// The document `shadow create --save` wrote.
        docfile: PathBuf,
        /// The importing initiator.
        #[arg(long, value_name = "ID")]
        host: String,
    },
    /// Makes every shadow of a set an ordinary read-write LUN.
    Break {
        /// The set.
        set_id: String,
    },
    /// Unmasks a hardware shadow's LUN, read-only, to an initiator.
    Expose {
        /// The shadow.
        id: String,
        /// The initiator.
        #[arg(long, value_name = "ID")]
        host: String,
    },
    /// Fast recovery: the shadow takes the damaged LUN's place at the same host LUN numbers.
    Recover {
        /// The damaged LUN.
        lun: String,
        /// The shadow of it to recover to.
        #[arg(long, value_name = "ID")]
        from: String,
    },
}

/// `umbra writers ...`.
#[derive(Debug, Subcommand)]
pub enum WritersCommand {
    /// Registers a writer in the pool: part of every set made on it from now on.
    Add {
        /// Its name (1 to 64 letters, digits, '.', '_', '-').
        name: String,
        /// Its shell command: run as `CMD EVENT` once per event (or once per set with --session).
        #[arg(allow_hyphen_values = true)]
        command: String,
        /// A session writer: one process per set, reading event names on stdin.
        #[arg(long)]
        session: bool,
    },
    /// Unregisters a writer.
    Remove {
        /// Its name.
        name: String,
    },
    /// Lists the registered writers.
    List,
}

/// `umbra lun ...`.
#[derive(Debug, Subcommand)]
pub enum LunCommand {
    /// Creates a LUN of SIZE, masked to no one unless --unmask says otherwise.
    Create {
        /// The LUN's name.
        name: String,
        /// Its size (64 is 64 MiB; 1GB, 512KiB, ...): a multiple of the pool's block size.
        #[arg(allow_hyphen_values = true)]
        size: String,
        /// The initial unmasking list (VDS SetMask text: "" none, * all, a;b, ID=ro, @group).
        #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
        unmask: Option<String>,
        /// A volatile LUN: no metadata journal; its data is durable on flush, its engine
        /// snapshots last until the pool closes (no snapshot LUN of it can be made).
        #[arg(long)]
        volatile: bool,
    },
    /// Lists every LUN.
    List,
    /// Shows a LUN's properties and who sees it.
    Detail {
        /// The LUN.
        name: String,
    },
    /// Grows a LUN: to SIZE, or by SIZE when it starts with "+".
    Extend {
        /// The LUN.
        name: String,
        /// The new size, or +SIZE to add.
        #[arg(allow_hyphen_values = true)]
        size: String,
    },
    /// Deletes a LUN (refused while snapshot LUNs depend on it).
    Delete {
        /// The LUN.
        name: String,
    },
    /// Brings a LUN online (its I/O served).
    Online {
        /// The LUN.
        name: String,
    },
    /// Takes a LUN offline (its I/O refused; its masking kept).
    Offline {
        /// The LUN.
        name: String,
    },
    /// Makes a hardware-style snapshot LUN of SOURCE, masked to no one.
    Snapshot {
        /// The LUN to snapshot.
        source: String,
        /// The new snapshot LUN's name.
        name: String,
    },
    /// Makes a snapshot LUN independent of its source (copies its data; progress on stderr).
    Split {
        /// The snapshot LUN.
        name: String,
    },
    /// Sets a LUN's unmasking list (replaces it, as VDS SetMask), or adds or removes entries.
    #[command(group(ArgGroup::new("how").required(true).args(["list", "add", "remove"])))]
    Unmask {
        /// The LUN.
        name: String,
        /// The new list: "" no one, * every host, a;b these, ID=ro read-only, @group a group.
        #[arg(allow_hyphen_values = true)]
        list: Option<String>,
        /// Entries to add to the list.
        #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
        add: Option<String>,
        /// Entries to remove from the list.
        #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
        remove: Option<String>,
    },
    /// Sets the LUN number initiator ID sees the LUN at.
    Number {
        /// The LUN.
        name: String,
        /// The initiator id (IQN, EUI, NAA, WWN in any common spelling).
        id: String,
        /// The LUN number (0 to 16383).
        n: u32,
    },
    /// Writes FILE's bytes into the LUN at --offset, as initiator ID (refused where masked).
    Write {
        /// The LUN.
        name: String,
        /// The initiator the I/O comes from.
        #[arg(long = "as", value_name = "ID")]
        initiator: String,
        /// Where to write, in bytes (a unit allowed: 4KiB).
        #[arg(long, value_name = "BYTES", default_value = "0")]
        offset: String,
        /// The file whose bytes are written.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
    /// Reads the LUN as initiator ID, to --out FILE or stdout (--json needs --out).
    Read {
        /// The LUN.
        name: String,
        /// The initiator the I/O comes from.
        #[arg(long = "as", value_name = "ID")]
        initiator: String,
        /// Where to start, in bytes (a unit allowed).
        #[arg(long, value_name = "BYTES", default_value = "0")]
        offset: String,
        /// How many bytes (to the end of the LUN when omitted).
        #[arg(long, value_name = "BYTES")]
        length: Option<String>,
        /// The file to write the bytes to (created or replaced).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Makes a raw image file a new LUN, masked to no one (progress on stderr).
    Import {
        /// The new LUN's name.
        name: String,
        /// The raw image.
        file: PathBuf,
    },
    /// Writes a LUN's contents to a new raw image file (progress on stderr).
    Export {
        /// The LUN.
        name: String,
        /// The image to create (refused if it exists).
        file: PathBuf,
    },
}

/// `umbra host ...`.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// The LUNs initiator ID sees, with their LUN numbers and access.
    View {
        /// The initiator id.
        id: String,
    },
    /// Registers host NAME with its initiator ports (or replaces them).
    Set {
        /// The host's name (masks name it as @NAME).
        name: String,
        /// Its initiator ids, separated by ";" or ",".
        ids: String,
    },
    /// Deletes host NAME (refused while a mask names it).
    Delete {
        /// The host.
        name: String,
    },
    /// Lists every host with its initiators.
    List,
}

/// `umbra group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Creates or replaces initiator group NAME.
    Set {
        /// The group's name (masks name it as @NAME).
        name: String,
        /// Its members' initiator ids, separated by ";" or ",".
        ids: String,
    },
    /// Deletes group NAME (refused while a mask names it).
    Delete {
        /// The group.
        name: String,
    },
    /// Lists every group with its members.
    List,
}

/// `umbra exec FILE`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The script.
    pub file: PathBuf,
    /// The script's dialect (guessed from its first command when omitted).
    #[arg(long, value_enum)]
    pub dialect: Option<Dialect>,
    /// DiskShadow: the initiator that `import` imports the loaded set for.
    #[arg(long, value_name = "ID")]
    pub host: Option<String>,
}

/// A script dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// DiskRAID-style: LUNs, masks, targets (vds-core's script language).
    Diskraid,
    /// DiskShadow-style: shadow copies (vss-core's script language).
    Diskshadow,
}
