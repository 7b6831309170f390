//! The command line, as clap reads it: global options, then one command.
//!
//! Commands live in groups (`lun`, `host`, `group`, `exec`, `demo`); the shadow-copy commands
//! (`shadow`, `writers`) join as groups of their own.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Administers an umbra pool: LUNs, masking, hosts, and DiskRAID-style scripts.
#[derive(Debug, Parser)]
#[command(name = "umbra", version, about, after_help = crate::exit::help_text())]
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
    /// Runs a script file. DiskRAID scripts run now; DiskShadow scripts are refused as not yet
    /// supported (exit code 2) until the shadow-copy coordinator lands.
    Exec(ExecArgs),
    /// Demonstrations on a pool of their own: `demo fast-recovery`, the seed's story.
    #[command(subcommand)]
    Demo(crate::demo::DemoCommand),
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
}

/// A script dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// DiskRAID-style: LUNs, masks, targets (vds-core's script language).
    Diskraid,
    /// DiskShadow-style: shadow copies (not yet supported: needs the shadow-copy coordinator).
    Diskshadow,
}
