//! Contexts, attributes, backup and provider types, snapshot states and shadow properties, with
//! VSS's values (`_VSS_VOLUME_SNAPSHOT_ATTRIBUTES`, `_VSS_SNAPSHOT_CONTEXT`, `VSS_BACKUP_TYPE`,
//! `VSS_PROVIDER_TYPE`, `VSS_SNAPSHOT_STATE`), so the C face passes them through as numbers.
//!
//! In documents, flags are written as bitflags' text (`"PERSISTENT | TRANSPORTABLE"`, unknown
//! bits as `0x...`) and enumerations by their lower-case names (`"copy"`, `"hardware"`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};

bitflags::bitflags! {
    /// Attributes of a shadow (VSS `_VSS_VOLUME_SNAPSHOT_ATTRIBUTES`), with VSS's bit values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct Attributes: u32 {
        /// Survives the end of the session that made it.
        const PERSISTENT = 0x1;
        /// Not made writable for auto-recovery.
        const NO_AUTORECOVERY = 0x2;
        /// Meant to be read by users (previous versions).
        const CLIENT_ACCESSIBLE = 0x4;
        /// Not deleted when the requester's session ends.
        const NO_AUTO_RELEASE = 0x8;
        /// Made without writers.
        const NO_WRITERS = 0x10;
        /// May be imported by another host.
        const TRANSPORTABLE = 0x20;
        /// Not exposed as a device.
        const NOT_SURFACED = 0x40;
        /// Not made under the provider's transaction.
        const NOT_TRANSACTED = 0x80;
        /// Made by a hardware provider.
        const HARDWARE_ASSISTED = 0x10000;
        /// Copy-on-write (a differential shadow).
        const DIFFERENTIAL = 0x20000;
        /// A full copy (a plex).
        const PLEX = 0x40000;
        /// Imported on this host.
        const IMPORTED = 0x80000;
        /// Exposed on this host.
        const EXPOSED_LOCALLY = 0x100000;
        /// Exposed to other hosts.
        const EXPOSED_REMOTELY = 0x200000;
        /// Writable for auto-recovery.
        const AUTORECOVER = 0x400000;
        /// Made for a rollback recovery.
        const ROLLBACK_RECOVERY = 0x800000;
        /// Post-snapshot is delayed.
        const DELAYED_POSTSNAPSHOT = 0x1000000;
        /// Transactional file system recovery.
        const TXF_RECOVERY = 0x2000000;
        /// A file share shadow.
        const FILE_SHARE = 0x4000000;
    }
}

bitflags::bitflags! {
    /// A shadow context (VSS `_VSS_SNAPSHOT_CONTEXT`): a combination of [`Attributes`] bits
    /// naming how shadows are made and kept, with VSS's values. Attributes OR into a context
    /// (`Context::BACKUP | Attributes::TRANSPORTABLE`).
    ///
    /// The named contexts come widest first, so a value prints as the one context it is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    pub struct Context: u32 {
        /// Every context (for queries).
        const ALL = 0xFFFF_FFFF;
        /// Persistent, client accessible, kept after the session, no writers (previous versions).
        const CLIENT_ACCESSIBLE = 0x1D;
        /// Persistent, kept after the session, no writers.
        const NAS_ROLLBACK = 0x19;
        /// Persistent, client accessible, kept after the session, with writers.
        const CLIENT_ACCESSIBLE_WRITERS = 0x0D;
        /// Persistent, kept after the session, with writers.
        const APP_ROLLBACK = 0x09;
        /// No writers, auto-released.
        const FILE_SHARE_BACKUP = 0x10;
        /// The default: non-persistent, auto-released at the session's end, with writers.
        const BACKUP = 0x0;
        /// [`Attributes::PERSISTENT`] as a context bit.
        const PERSISTENT = Attributes::PERSISTENT.bits();
        /// [`Attributes::NO_AUTORECOVERY`] as a context bit.
        const NO_AUTORECOVERY = Attributes::NO_AUTORECOVERY.bits();
        /// [`Attributes::NO_AUTO_RELEASE`] as a context bit.
        const NO_AUTO_RELEASE = Attributes::NO_AUTO_RELEASE.bits();
        /// [`Attributes::NO_WRITERS`] as a context bit.
        const NO_WRITERS = Attributes::NO_WRITERS.bits();
        /// [`Attributes::TRANSPORTABLE`] as a context bit.
        const TRANSPORTABLE = Attributes::TRANSPORTABLE.bits();
        /// [`Attributes::HARDWARE_ASSISTED`] as a context bit.
        const HARDWARE_ASSISTED = Attributes::HARDWARE_ASSISTED.bits();
        /// [`Attributes::DIFFERENTIAL`] as a context bit.
        const DIFFERENTIAL = Attributes::DIFFERENTIAL.bits();
        /// [`Attributes::PLEX`] as a context bit.
        const PLEX = Attributes::PLEX.bits();
    }
}

impl Context {
    /// The context's bits as shadow attributes.
    pub fn attributes(self) -> Attributes {
        Attributes::from_bits_retain(self.bits())
    }

    /// True if shadows of this context involve writers (no [`Attributes::NO_WRITERS`] bit).
    pub fn has_writers(self) -> bool {
        !self.attributes().contains(Attributes::NO_WRITERS)
    }
}

impl Default for Context {
    /// [`Context::BACKUP`].
    fn default() -> Self {
        Context::BACKUP
    }
}

impl std::ops::BitOr<Attributes> for Context {
    type Output = Context;
    fn bitor(self, rhs: Attributes) -> Context {
        Context::from_bits_retain(self.bits() | rhs.bits())
    }
}

/// Implements `code()` and `TryFrom<u32>` for a C-like enum with explicit discriminants.
macro_rules! coded_enum {
    ($ty:ident, $what:literal, [$($v:ident),+ $(,)?]) => {
        impl $ty {
            /// Every value, in order of code.
            pub const ALL: &'static [$ty] = &[$($ty::$v),+];

            /// VSS's numeric value.
            pub fn code(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $ty {
            type Error = Error;
            fn try_from(code: u32) -> Result<Self> {
                $ty::ALL.iter().copied().find(|v| v.code() == code).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidArgument, format!("{} {code} is not one of VSS's", $what))
                })
            }
        }
    };
}

/// Flags as bitflags writes them (`PERSISTENT | TRANSPORTABLE`), or `empty` for no bit.
fn write_flags<B: bitflags::Flags>(
    flags: &B,
    empty: &str,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result
where
    B::Bits: bitflags::parser::WriteHex,
{
    if flags.is_empty() {
        f.write_str(empty)
    } else {
        bitflags::parser::to_writer(flags, f)
    }
}

impl std::fmt::Display for Attributes {
    /// The bits' names, `|`-separated (`PERSISTENT | TRANSPORTABLE`), or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_flags(self, "none", f)
    }
}

impl std::fmt::Display for Context {
    /// The context's names, `|`-separated (`APP_ROLLBACK`), or `BACKUP` (0).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_flags(self, "BACKUP", f)
    }
}

/// Implements `Display` for a C-like enum as its JSON name (kebab-case).
macro_rules! display_as_name {
    ($ty:ident, [$($v:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// The name as JSON and messages spell it (kebab-case).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            /// [`Self::as_str`].
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A backup type (VSS `VSS_BACKUP_TYPE`). [`BackupType::Copy`] leaves the applications' backup
/// history (log chains) untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u32)]
pub enum BackupType {
    /// Not set.
    Undefined = 0,
    /// Everything, and the history says so (logs may be truncated).
    #[default]
    Full = 1,
    /// What changed since the last full or incremental backup.
    Incremental = 2,
    /// What changed since the last full backup.
    Differential = 3,
    /// Logs only.
    Log = 4,
    /// Everything, history untouched: what a copy for testing or transport wants.
    Copy = 5,
    /// Another type.
    Other = 6,
}
coded_enum!(
    BackupType,
    "backup type",
    [Undefined, Full, Incremental, Differential, Log, Copy, Other]
);

display_as_name!(
    BackupType,
    [
        Undefined => "undefined",
        Full => "full",
        Incremental => "incremental",
        Differential => "differential",
        Log => "log",
        Copy => "copy",
        Other => "other",
    ]
);

/// A provider type (VSS `VSS_PROVIDER_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u32)]
pub enum ProviderType {
    /// Not known.
    Unknown = 0,
    /// The built-in software provider.
    System = 1,
    /// A software provider (cow-engine volumes).
    Software = 2,
    /// A hardware provider (the array's snapshot LUNs).
    Hardware = 3,
    /// A file share provider.
    FileShare = 4,
}
coded_enum!(
    ProviderType,
    "provider type",
    [Unknown, System, Software, Hardware, FileShare]
);

display_as_name!(
    ProviderType,
    [
        Unknown => "unknown",
        System => "system",
        Software => "software",
        Hardware => "hardware",
        FileShare => "file-share",
    ]
);

/// Where a shadow is in its life (VSS `VSS_SNAPSHOT_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u32)]
pub enum SnapshotState {
    /// Not known.
    Unknown = 0,
    /// Added to a set, not yet prepared.
    Preparing = 1,
    /// The provider is preparing it.
    ProcessingPrepare = 2,
    /// Prepared.
    Prepared = 3,
    /// The provider's pre-commit runs.
    ProcessingPrecommit = 4,
    /// Pre-committed.
    Precommitted = 5,
    /// The provider's commit runs (the point in time).
    ProcessingCommit = 6,
    /// Committed.
    Committed = 7,
    /// The provider's post-commit runs.
    ProcessingPostcommit = 8,
    /// The provider's pre-final-commit runs.
    ProcessingPrefinalcommit = 9,
    /// Pre-final-committed.
    PrefinalCommitted = 10,
    /// The provider's post-final-commit runs.
    ProcessingPostfinalcommit = 11,
    /// Made and usable.
    Created = 12,
    /// Its set was aborted.
    Aborted = 13,
    /// Deleted.
    Deleted = 14,
    /// Post-committed.
    Postcommitted = 15,
}
coded_enum!(
    SnapshotState,
    "snapshot state",
    [
        Unknown,
        Preparing,
        ProcessingPrepare,
        Prepared,
        ProcessingPrecommit,
        Precommitted,
        ProcessingCommit,
        Committed,
        ProcessingPostcommit,
        ProcessingPrefinalcommit,
        PrefinalCommitted,
        ProcessingPostfinalcommit,
        Created,
        Aborted,
        Deleted,
        Postcommitted,
    ]
);

/// A LUN as a document describes it, so another host can find it (transport, import).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunDescription {
    /// The LUN's name in its array (or the volume's name for a software shadow).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Who can see a shadow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Exposure {
    /// Masked to no one (a hardware shadow as it is made).
    #[default]
    Hidden,
    /// Exposed on this host under a path (a device node, a mount point).
    Local {
        /// The path.
        path: String,
    },
    /// Unmasked to these initiators (canonical ids), read-only unless broken.
    Hosts {
        /// The initiators, in canonical form.
        initiators: Vec<String>,
    },
}

impl std::fmt::Display for Exposure {
    /// `hidden`, `local at PATH`, or `unmasked to ID, ID`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exposure::Hidden => f.write_str("hidden"),
            Exposure::Local { path } => write!(f, "local at {path}"),
            Exposure::Hosts { initiators } => {
                write!(f, "unmasked to {}", initiators.join(", "))
            }
        }
    }
}

/// The properties of one shadow (VSS `VSS_SNAPSHOT_PROP`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowProperties {
    /// The shadow's id.
    pub shadow_id: Uuid,
    /// The id of the set it was made in.
    pub set_id: Uuid,
    /// How many shadows the set holds.
    pub count_in_set: u32,
    /// The LUN it is a shadow of.
    pub original: LunDescription,
    /// The shadow LUN (or volume) itself.
    pub shadow: LunDescription,
    /// The id of the provider that made it.
    pub provider_id: Uuid,
    /// The provider's type.
    pub provider_type: ProviderType,
    /// Its attributes (the set's context and options).
    pub attributes: Attributes,
    /// When it was made (its point in time).
    #[serde(rename = "created_unix_ns", with = "unix_ns")]
    pub created: SystemTime,
    /// Where it is in its life.
    pub state: SnapshotState,
    /// Who can see it.
    pub exposure: Exposure,
}

/// A time as whole nanoseconds since the Unix epoch (UTC), exact for every time the system clock
/// gives from 1970 to 2554.
mod unix_ns {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        t: &SystemTime,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let ns = t
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .ok_or_else(|| serde::ser::Error::custom("a time outside 1970..2554"))?;
        s.serialize_u64(ns)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<SystemTime, D::Error> {
        let ns = u64::deserialize(d)?;
        Ok(UNIX_EPOCH + Duration::from_nanos(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_have_vss_values_and_print_as_one_name() {
        assert_eq!(Context::BACKUP.bits(), 0);
        assert_eq!(Context::FILE_SHARE_BACKUP.bits(), 0x10);
        assert_eq!(Context::NAS_ROLLBACK.bits(), 0x19);
        assert_eq!(Context::APP_ROLLBACK.bits(), 0x09);
        assert_eq!(Context::CLIENT_ACCESSIBLE.bits(), 0x1D);
        assert_eq!(Context::CLIENT_ACCESSIBLE_WRITERS.bits(), 0x0D);
        assert_eq!(Context::ALL.bits(), 0xFFFF_FFFF);
        assert_eq!(Attributes::HARDWARE_ASSISTED.bits(), 0x10000);
        assert_eq!(Attributes::FILE_SHARE.bits(), 0x400_0000);
        // Each named context is built from the attributes VSS says it is.
        let a = |c: Context| c.attributes();
        assert_eq!(
            a(Context::CLIENT_ACCESSIBLE),
            Attributes::PERSISTENT
                | Attributes::CLIENT_ACCESSIBLE
                | Attributes::NO_AUTO_RELEASE
                | Attributes::NO_WRITERS
        );
        assert_eq!(
            a(Context::APP_ROLLBACK),
            Attributes::PERSISTENT | Attributes::NO_AUTO_RELEASE
        );
        assert!(!Context::NAS_ROLLBACK.has_writers());
        assert!(Context::APP_ROLLBACK.has_writers());
        for (c, text) in [
            (Context::NAS_ROLLBACK, "\"NAS_ROLLBACK\""),
            (
                Context::CLIENT_ACCESSIBLE_WRITERS,
                "\"CLIENT_ACCESSIBLE_WRITERS\"",
            ),
            (
                Context::BACKUP | Attributes::TRANSPORTABLE,
                "\"TRANSPORTABLE\"",
            ),
            (Context::BACKUP, "\"\""),
        ] {
            assert_eq!(serde_json::to_string(&c).unwrap(), text);
            assert_eq!(serde_json::from_str::<Context>(text).unwrap(), c);
        }
    }

    #[test]
    fn enumerations_have_vss_codes() {
        assert_eq!(BackupType::Copy.code(), 5);
        assert_eq!(BackupType::try_from(5).unwrap(), BackupType::Copy);
        assert_eq!(
            BackupType::try_from(7).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(ProviderType::Hardware.code(), 3);
        assert_eq!(SnapshotState::Created.code(), 12);
        assert_eq!(SnapshotState::Postcommitted.code(), 15);
        for (i, s) in SnapshotState::ALL.iter().enumerate() {
            assert_eq!(s.code(), i as u32);
        }
        assert_eq!(
            serde_json::to_string(&BackupType::Copy).unwrap(),
            "\"copy\""
        );
    }
}
