//! The backup components document (VSS's BCD).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    broken, is_name, read, write, ComponentsFormat, Version, WriterMetadata, MAX_VOLUMES_PER_SET,
    NAME_RULE,
};
use crate::error::Result;
use crate::shadow::{BackupType, Context, ShadowProperties};

const WHAT: &str = "backup components document";

/// What a requester keeps of a backup (VSS's Backup Components Document): the backup type and
/// context, the selected components with whether their backup succeeded, the writers' metadata,
/// and the snapshot set with its LUNs, so the backup can be restored later or the set imported
/// on another host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupComponents {
    format: ComponentsFormat,
    version: Version,
    /// The backup type ([`BackupType::Copy`] leaves the applications' history untouched).
    pub backup_type: BackupType,
    /// The context the set was made in (with its attributes: transportable, ...).
    pub context: Context,
    /// The selected components, in the order they were selected.
    pub selected: Vec<SelectedComponent>,
    /// The metadata of the writers taking part (one per writer name).
    pub writers: Vec<WriterMetadata>,
    /// The snapshot set, once it is made.
    pub snapshot_set: Option<SnapshotSet>,
}

/// A component selected for backup (or restore).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectedComponent {
    /// The writer owning it (one of the document's `writers`).
    pub writer: String,
    /// Its full path in that writer's metadata.
    pub path: String,
    /// The requester backed it up successfully (VSS `SetBackupSucceeded`); a writer truncates
    /// logs at backup-complete only for components whose backup succeeded.
    pub backup_succeeded: bool,
}

/// A snapshot set as a document carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSet {
    /// The set's id.
    pub set_id: Uuid,
    /// Its shadows (at most 64), with their original and shadow LUNs.
    pub shadows: Vec<ShadowProperties>,
}

impl BackupComponents {
    /// An empty document: nothing selected, no writer, no set yet.
    pub fn new(backup_type: BackupType, context: Context) -> Self {
        BackupComponents {
            format: ComponentsFormat,
            version: Version,
            backup_type,
            context,
            selected: Vec::new(),
            writers: Vec::new(),
            snapshot_set: None,
        }
    }

    /// The metadata of `writer`, if it takes part.
    pub fn writer(&self, writer: &str) -> Option<&WriterMetadata> {
        self.writers.iter().find(|w| w.writer == writer)
    }

    /// Reads a document (see the [module documentation](crate::document) for its errors).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let doc: BackupComponents = read(bytes, WHAT, ComponentsFormat::TEXT)?;
        doc.check()?;
        Ok(doc)
    }

    /// Writes the document in its canonical form, after checking it breaks no rule.
    pub fn to_json(&self) -> Result<String> {
        self.check()?;
        write(self, WHAT)
    }

    fn check(&self) -> Result<()> {
        let mut names = HashSet::new();
        for (i, w) in self.writers.iter().enumerate() {
            let at = format!("writers[{i}].");
            w.check(WHAT, &at)?;
            if !names.insert(w.writer.as_str()) {
                return Err(broken(
                    WHAT,
                    &format!("{at}writer"),
                    format_args!("a second metadata of writer {:?}", w.writer),
                ));
            }
        }
        let mut selected = HashSet::new();
        for (i, s) in self.selected.iter().enumerate() {
            let at = format!("selected[{i}]");
            let Some(w) = self.writer(&s.writer) else {
                return Err(broken(
                    WHAT,
                    &format!("{at}.writer"),
                    format_args!("writer {:?} has no metadata in the document", s.writer),
                ));
            };
            if w.component(&s.path).is_none() {
                return Err(broken(
                    WHAT,
                    &format!("{at}.path"),
                    format_args!("writer {:?} has no component {:?}", s.writer, s.path),
                ));
            }
            if !selected.insert((s.writer.as_str(), s.path.as_str())) {
                return Err(broken(
                    WHAT,
                    &at,
                    format_args!(
                        "component {:?} of writer {:?} selected twice",
                        s.path, s.writer
                    ),
                ));
            }
        }
        if let Some(set) = &self.snapshot_set {
            if set.shadows.len() > MAX_VOLUMES_PER_SET {
                return Err(broken(
                    WHAT,
                    "snapshot_set.shadows",
                    format_args!(
                        "{} shadows, more than a set holds ({MAX_VOLUMES_PER_SET})",
                        set.shadows.len()
                    ),
                ));
            }
            let mut ids = HashSet::new();
            let mut originals = HashSet::new();
            for (i, s) in set.shadows.iter().enumerate() {
                let at = format!("snapshot_set.shadows[{i}]");
                if s.set_id != set.set_id {
                    return Err(broken(
                        WHAT,
                        &format!("{at}.set_id"),
                        format_args!("set {} is not the document's set {}", s.set_id, set.set_id),
                    ));
                }
                if usize::try_from(s.count_in_set).ok() != Some(set.shadows.len()) {
                    return Err(broken(
                        WHAT,
                        &format!("{at}.count_in_set"),
                        format_args!(
                            "{} is not the set's {} shadows",
                            s.count_in_set,
                            set.shadows.len()
                        ),
                    ));
                }
                if !ids.insert(s.shadow_id) {
                    return Err(broken(
                        WHAT,
                        &format!("{at}.shadow_id"),
                        format_args!("shadow {} listed twice", s.shadow_id),
                    ));
                }
                for (field, lun) in [("original", &s.original), ("shadow", &s.shadow)] {
                    if !is_name(&lun.name) {
                        return Err(broken(
                            WHAT,
                            &format!("{at}.{field}.name"),
                            format_args!("LUN name {:?} {NAME_RULE}", lun.name),
                        ));
                    }
                }
                if !originals.insert(s.original.name.as_str()) {
                    return Err(broken(
                        WHAT,
                        &format!("{at}.original.name"),
                        format_args!("LUN {:?} has two shadows in the set", s.original.name),
                    ));
                }
            }
        }
        Ok(())
    }
}
