//! Writer events, states and failures, with VSS's values.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// An event the coordinator sends a writer, named as exec writers receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriterEvent {
    /// `identify`: describe the components (writer metadata document).
    Identify,
    /// `prepare-backup`: a backup of the selected components begins.
    PrepareBackup,
    /// `prepare-snapshot`: get ready to freeze.
    PrepareSnapshot,
    /// `freeze`: consistent on disk, writes held.
    Freeze,
    /// `thaw`: writes resume.
    Thaw,
    /// `post-snapshot`: the shadows exist.
    PostSnapshot,
    /// `abort`: the set is abandoned; undo a freeze.
    Abort,
    /// `backup-complete`: the requester has the data.
    BackupComplete,
    /// `backup-shutdown`: the backup session ends.
    BackupShutdown,
    /// `pre-restore`: a restore of the selected components begins.
    PreRestore,
    /// `post-restore`: the restore is done.
    PostRestore,
}

impl WriterEvent {
    /// Every event, in the order a backup then a restore meets them (abort after thaw).
    pub const ALL: [WriterEvent; 11] = [
        WriterEvent::Identify,
        WriterEvent::PrepareBackup,
        WriterEvent::PrepareSnapshot,
        WriterEvent::Freeze,
        WriterEvent::Thaw,
        WriterEvent::PostSnapshot,
        WriterEvent::Abort,
        WriterEvent::BackupComplete,
        WriterEvent::BackupShutdown,
        WriterEvent::PreRestore,
        WriterEvent::PostRestore,
    ];

    /// The event's name: `identify`, `prepare-backup`, ... (the argument and `UMBRA_EVENT` of an
    /// exec writer, the line a session writer reads).
    pub fn as_str(self) -> &'static str {
        match self {
            WriterEvent::Identify => "identify",
            WriterEvent::PrepareBackup => "prepare-backup",
            WriterEvent::PrepareSnapshot => "prepare-snapshot",
            WriterEvent::Freeze => "freeze",
            WriterEvent::Thaw => "thaw",
            WriterEvent::PostSnapshot => "post-snapshot",
            WriterEvent::Abort => "abort",
            WriterEvent::BackupComplete => "backup-complete",
            WriterEvent::BackupShutdown => "backup-shutdown",
            WriterEvent::PreRestore => "pre-restore",
            WriterEvent::PostRestore => "post-restore",
        }
    }

    /// The state a writer is in once this event succeeded: waiting for freeze after
    /// prepare-snapshot, for thaw after freeze, for post-snapshot after thaw, for backup-complete
    /// after post-snapshot, stable otherwise.
    pub fn state_after(self) -> WriterState {
        match self {
            WriterEvent::PrepareSnapshot => WriterState::WaitingForFreeze,
            WriterEvent::Freeze => WriterState::WaitingForThaw,
            WriterEvent::Thaw => WriterState::WaitingForPostSnapshot,
            WriterEvent::PostSnapshot => WriterState::WaitingForBackupComplete,
            WriterEvent::Identify
            | WriterEvent::PrepareBackup
            | WriterEvent::Abort
            | WriterEvent::BackupComplete
            | WriterEvent::BackupShutdown
            | WriterEvent::PreRestore
            | WriterEvent::PostRestore => WriterState::Stable,
        }
    }

    /// The state recording that this event failed (`FAILED_AT_<step>`); `None` for abort, which
    /// VSS gives no failed state of its own (the writer keeps the state of the step that made
    /// the set abort).
    pub fn failed_state(self) -> Option<WriterState> {
        Some(match self {
            WriterEvent::Identify => WriterState::FailedAtIdentify,
            WriterEvent::PrepareBackup => WriterState::FailedAtPrepareBackup,
            WriterEvent::PrepareSnapshot => WriterState::FailedAtPrepareSnapshot,
            WriterEvent::Freeze => WriterState::FailedAtFreeze,
            WriterEvent::Thaw => WriterState::FailedAtThaw,
            WriterEvent::PostSnapshot => WriterState::FailedAtPostSnapshot,
            WriterEvent::BackupComplete => WriterState::FailedAtBackupComplete,
            WriterEvent::BackupShutdown => WriterState::FailedAtBackupShutdown,
            WriterEvent::PreRestore => WriterState::FailedAtPreRestore,
            WriterEvent::PostRestore => WriterState::FailedAtPostRestore,
            WriterEvent::Abort => return None,
        })
    }
}

impl fmt::Display for WriterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WriterEvent {
    type Err = Error;

    /// Parses an event's exact name (`freeze`, `post-snapshot`, ...).
    fn from_str(s: &str) -> Result<Self, Error> {
        WriterEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{s:?} is not a writer event (identify, prepare-backup, prepare-snapshot, \
                         freeze, thaw, post-snapshot, abort, backup-complete, backup-shutdown, \
                         pre-restore, post-restore)"
                    ),
                )
            })
    }
}

/// A writer's state (VSS `VSS_WRITER_STATE`), with VSS's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WriterState {
    /// Not known (not asked yet).
    Unknown = 0,
    /// Ready: between sets, or done with a step that waits for nothing.
    Stable = 1,
    /// Prepared; waiting for freeze.
    WaitingForFreeze = 2,
    /// Frozen; waiting for thaw.
    WaitingForThaw = 3,
    /// Thawed; waiting for post-snapshot.
    WaitingForPostSnapshot = 4,
    /// Waiting for the requester's backup-complete.
    WaitingForBackupComplete = 5,
    /// Identify failed.
    FailedAtIdentify = 6,
    /// Prepare-backup failed.
    FailedAtPrepareBackup = 7,
    /// Prepare-snapshot failed.
    FailedAtPrepareSnapshot = 8,
    /// Freeze failed (or did not answer in time).
    FailedAtFreeze = 9,
    /// Thaw failed.
    FailedAtThaw = 10,
    /// Post-snapshot failed.
    FailedAtPostSnapshot = 11,
    /// Backup-complete failed.
    FailedAtBackupComplete = 12,
    /// Pre-restore failed.
    FailedAtPreRestore = 13,
    /// Post-restore failed.
    FailedAtPostRestore = 14,
    /// Backup-shutdown failed.
    FailedAtBackupShutdown = 15,
}

impl WriterState {
    /// Every state, in order of value.
    pub const ALL: [WriterState; 16] = [
        WriterState::Unknown,
        WriterState::Stable,
        WriterState::WaitingForFreeze,
        WriterState::WaitingForThaw,
        WriterState::WaitingForPostSnapshot,
        WriterState::WaitingForBackupComplete,
        WriterState::FailedAtIdentify,
        WriterState::FailedAtPrepareBackup,
        WriterState::FailedAtPrepareSnapshot,
        WriterState::FailedAtFreeze,
        WriterState::FailedAtThaw,
        WriterState::FailedAtPostSnapshot,
        WriterState::FailedAtBackupComplete,
        WriterState::FailedAtPreRestore,
        WriterState::FailedAtPostRestore,
        WriterState::FailedAtBackupShutdown,
    ];

    /// VSS's value (`VSS_WS_STABLE` = 1, ...).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// VSS's name without its `VSS_WS_` prefix (`FAILED_AT_FREEZE`, `FAILED_AT_BACKUPSHUTDOWN`).
    pub fn as_str(self) -> &'static str {
        match self {
            WriterState::Unknown => "UNKNOWN",
            WriterState::Stable => "STABLE",
            WriterState::WaitingForFreeze => "WAITING_FOR_FREEZE",
            WriterState::WaitingForThaw => "WAITING_FOR_THAW",
            WriterState::WaitingForPostSnapshot => "WAITING_FOR_POST_SNAPSHOT",
            WriterState::WaitingForBackupComplete => "WAITING_FOR_BACKUP_COMPLETE",
            WriterState::FailedAtIdentify => "FAILED_AT_IDENTIFY",
            WriterState::FailedAtPrepareBackup => "FAILED_AT_PREPARE_BACKUP",
            WriterState::FailedAtPrepareSnapshot => "FAILED_AT_PREPARE_SNAPSHOT",
            WriterState::FailedAtFreeze => "FAILED_AT_FREEZE",
            WriterState::FailedAtThaw => "FAILED_AT_THAW",
            WriterState::FailedAtPostSnapshot => "FAILED_AT_POST_SNAPSHOT",
            WriterState::FailedAtBackupComplete => "FAILED_AT_BACKUP_COMPLETE",
            WriterState::FailedAtPreRestore => "FAILED_AT_PRE_RESTORE",
            WriterState::FailedAtPostRestore => "FAILED_AT_POST_RESTORE",
            WriterState::FailedAtBackupShutdown => "FAILED_AT_BACKUPSHUTDOWN",
        }
    }

    /// True for the `FAILED_AT_*` states.
    pub fn is_failed(self) -> bool {
        self.code() >= WriterState::FailedAtIdentify.code()
    }

    /// The event whose failure this state records; `None` for the states that are not failures.
    pub fn failed_event(self) -> Option<WriterEvent> {
        WriterEvent::ALL
            .into_iter()
            .find(|e| e.failed_state() == Some(self))
    }
}

impl TryFrom<u32> for WriterState {
    type Error = Error;
    fn try_from(code: u32) -> Result<Self, Error> {
        WriterState::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("writer state {code} is not one of VSS's (0 to 15)"),
                )
            })
    }
}

impl fmt::Display for WriterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a writer failed an event (VSS's `VSS_E_WRITERERROR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A transient problem: the same backup may succeed later.
    Retryable,
    /// The writer cannot take part, and trying again will not help.
    NonRetryable,
    /// The event was not answered by its deadline (or the freeze window ended before thaw).
    Timeout,
    /// The set lacks LUNs the writer's selected components live on.
    InconsistentSnapshot,
    /// The writer ran out of memory, threads or processes; try again later.
    OutOfResources,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Retryable,
        FailureKind::NonRetryable,
        FailureKind::Timeout,
        FailureKind::InconsistentSnapshot,
        FailureKind::OutOfResources,
    ];

    /// A short stable name: `retryable`, `non-retryable`, `timeout`, `inconsistent snapshot`,
    /// `out of resources`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retryable => "retryable",
            FailureKind::NonRetryable => "non-retryable",
            FailureKind::Timeout => "timeout",
            FailureKind::InconsistentSnapshot => "inconsistent snapshot",
            FailureKind::OutOfResources => "out of resources",
        }
    }

    /// VSS's `HRESULT` (`VSS_E_WRITERERROR_RETRYABLE` = 0x800423F3, ...).
    pub fn hresult(self) -> u32 {
        match self {
            FailureKind::InconsistentSnapshot => 0x8004_23F0,
            FailureKind::OutOfResources => 0x8004_23F1,
            FailureKind::Timeout => 0x8004_23F2,
            FailureKind::Retryable => 0x8004_23F3,
            FailureKind::NonRetryable => 0x8004_23F4,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A writer's answer that an event failed: a kind and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct WriterFailure {
    kind: FailureKind,
    message: String,
}

impl WriterFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        WriterFailure {
            kind,
            message: message.into(),
        }
    }

    /// A [`FailureKind::Retryable`] failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        WriterFailure::new(FailureKind::Retryable, message)
    }

    /// A [`FailureKind::NonRetryable`] failure.
    pub fn non_retryable(message: impl Into<String>) -> Self {
        WriterFailure::new(FailureKind::NonRetryable, message)
    }

    /// The kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip_and_are_the_issues_spelling() {
        let names: Vec<&str> = WriterEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "identify",
                "prepare-backup",
                "prepare-snapshot",
                "freeze",
                "thaw",
                "post-snapshot",
                "abort",
                "backup-complete",
                "backup-shutdown",
                "pre-restore",
                "post-restore"
            ]
        );
        for e in WriterEvent::ALL {
            assert_eq!(e.to_string().parse::<WriterEvent>().unwrap(), e);
        }
        for bad in ["Freeze", "freeze ", "", "prepare_backup", "shutdown"] {
            let err = bad.parse::<WriterEvent>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.message().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn states_have_vss_values_and_each_step_its_failed_state() {
        for (i, s) in WriterState::ALL.iter().enumerate() {
            assert_eq!(s.code(), i as u32);
            assert_eq!(WriterState::try_from(i as u32).unwrap(), *s);
        }
        assert!(WriterState::try_from(16).is_err());
        assert_eq!(WriterState::FailedAtBackupShutdown.code(), 15);
        assert_eq!(WriterState::FailedAtFreeze.code(), 9);
        // Every step but abort has its own failed state, distinct, and the reverse map agrees.
        let mut seen = std::collections::HashSet::new();
        for e in WriterEvent::ALL {
            match e.failed_state() {
                Some(s) => {
                    assert!(s.is_failed());
                    assert!(seen.insert(s));
                    assert_eq!(s.failed_event(), Some(e));
                    let step = s.as_str().strip_prefix("FAILED_AT_").unwrap();
                    assert_eq!(
                        step.replace('_', ""),
                        e.as_str().replace('-', "").to_uppercase()
                    );
                }
                None => assert_eq!(e, WriterEvent::Abort),
            }
            assert!(!e.state_after().is_failed());
        }
        assert_eq!(seen.len(), 10);
        assert_eq!(
            WriterEvent::Freeze.state_after(),
            WriterState::WaitingForThaw
        );
        assert_eq!(WriterState::Stable.failed_event(), None);
    }

    #[test]
    fn failure_kinds_have_vss_codes() {
        assert_eq!(FailureKind::InconsistentSnapshot.hresult(), 0x800423F0);
        assert_eq!(FailureKind::OutOfResources.hresult(), 0x800423F1);
        assert_eq!(FailureKind::Timeout.hresult(), 0x800423F2);
        assert_eq!(FailureKind::Retryable.hresult(), 0x800423F3);
        assert_eq!(FailureKind::NonRetryable.hresult(), 0x800423F4);
        let f = WriterFailure::retryable("log full");
        assert_eq!(f.to_string(), "retryable: log full");
    }
}
