//! The writer metadata document (VSS's WMD).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{broken, is_name, read, write, MetadataFormat, Version, NAME_RULE};
use crate::error::Result;

const WHAT: &str = "writer metadata document";

/// What a writer answers at identify: who it is and its components (VSS's Writer Metadata
/// Document).
///
/// Build one with [`WriterMetadata::new`] and fill its public fields; read one with
/// [`WriterMetadata::from_json`], write it with [`WriterMetadata::to_json`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterMetadata {
    format: MetadataFormat,
    version: Version,
    /// The writer's name (letters, digits, '.', '_', '-'; at most 64).
    pub writer: String,
    /// What kind of data the writer keeps.
    pub source_type: SourceType,
    /// How its components are restored.
    pub restore_method: RestoreMethod,
    /// Its components; their logical paths form a tree.
    pub components: Vec<Component>,
}

/// What kind of data a writer keeps (VSS `VSS_SOURCE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceType {
    /// A database with transactions (a log to replay).
    TransactedDb,
    /// A database without transactions.
    NonTransactedDb,
    /// Anything else.
    #[default]
    Other,
}

/// How a writer's components are restored (VSS `VSS_RESTOREMETHOD_ENUM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMethod {
    /// Restore only where the data is missing.
    IfNotThere,
    /// Restore over the data if it can be replaced.
    #[default]
    IfCanReplace,
    /// Stop the application, restore, start it again.
    StopRestoreStart,
    /// Restore to another location the writer names.
    AlternateLocation,
    /// Restore at the next boot.
    AtReboot,
    /// The writer restores in a way of its own.
    Custom,
}

/// A component of a writer: a database, a group of files, and the LUNs it lives on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Where it sits in the writer's tree: `""` at the root, else names joined by `/`.
    pub logical_path: String,
    /// Its name (no `/`), unique at its logical path.
    pub name: String,
    /// It can be selected for backup on its own (and brings its subcomponents with it).
    pub selectable: bool,
    /// It can be selected for restore on its own.
    pub selectable_for_restore: bool,
    /// The LUNs it lives on; empty means every LUN of the set.
    pub luns: Vec<String>,
    /// Components it cannot be backed up or restored without.
    pub dependencies: Vec<Dependency>,
}

/// A component another component depends on, maybe of another writer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// The writer owning it.
    pub writer: String,
    /// Its full path ([`Component::full_path`]).
    pub path: String,
}

impl Component {
    /// A selectable component at `logical_path` named `name`, on these LUNs (none: every LUN of
    /// the set), depending on nothing.
    pub fn new(
        logical_path: impl Into<String>,
        name: impl Into<String>,
        luns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Component {
            logical_path: logical_path.into(),
            name: name.into(),
            selectable: true,
            selectable_for_restore: true,
            luns: luns.into_iter().map(Into::into).collect(),
            dependencies: Vec::new(),
        }
    }

    /// The component's full path: its name under its logical path (`db/logs` for the component
    /// `logs` at `db`; `db` for `db` at the root).
    pub fn full_path(&self) -> String {
        if self.logical_path.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.logical_path, self.name)
        }
    }

    /// True if the component lives on every LUN of the set (its LUN list is empty).
    pub fn covers_every_lun(&self) -> bool {
        self.luns.is_empty()
    }
}

/// True if `path` is a path of names joined by single `/` (no empty segment).
fn is_logical_path(path: &str) -> bool {
    path.split('/').all(is_segment)
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

impl WriterMetadata {
    /// The metadata of `writer` with no component, [`SourceType::Other`] and
    /// [`RestoreMethod::IfCanReplace`].
    pub fn new(writer: impl Into<String>) -> Self {
        WriterMetadata {
            format: MetadataFormat,
            version: Version,
            writer: writer.into(),
            source_type: SourceType::Other,
            restore_method: RestoreMethod::IfCanReplace,
            components: Vec::new(),
        }
    }

    /// The metadata a writer that describes nothing gets: one selectable component at the root,
    /// named after the writer, covering every LUN of the set (an exec writer that prints nothing
    /// at identify).
    pub fn for_every_lun(writer: impl Into<String>) -> Self {
        let writer = writer.into();
        let mut m = WriterMetadata::new(writer.clone());
        m.components
            .push(Component::new("", writer, Vec::<String>::new()));
        m
    }

    /// The component at `full_path`, if any.
    pub fn component(&self, full_path: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.full_path() == full_path)
    }

    /// The components at or under `full_path` in the tree: the component itself and its
    /// subcomponents (what selecting it brings).
    pub fn subtree<'a>(&'a self, full_path: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.components.iter().filter(move |c| {
            let p = c.full_path();
            p == full_path
                || p.strip_prefix(full_path)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// Reads a document (see the [module documentation](crate::document) for its errors).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let doc: WriterMetadata = read(bytes, WHAT, MetadataFormat::TEXT)?;
        doc.check(WHAT, "")?;
        Ok(doc)
    }

    /// Writes the document in its canonical form, after checking it breaks no rule.
    pub fn to_json(&self) -> Result<String> {
        self.check(WHAT, "")?;
        write(self, WHAT)
    }

    /// Checks the rules the JSON grammar cannot say, naming the broken one with its JSON path
    /// (`at` prefixes the paths: the place of this document inside another).
    pub(crate) fn check(&self, what: &str, at: &str) -> Result<()> {
        if !is_name(&self.writer) {
            return Err(broken(
                what,
                &format!("{at}writer"),
                format_args!("writer name {:?} {NAME_RULE}", self.writer),
            ));
        }
        let mut paths = HashSet::new();
        for (i, c) in self.components.iter().enumerate() {
            let here = format!("{at}components[{i}]");
            if !is_segment(&c.name) || c.name.contains('/') {
                return Err(broken(
                    what,
                    &format!("{here}.name"),
                    format_args!(
                        "component name {:?} must be non-empty, without '/' or control characters",
                        c.name
                    ),
                ));
            }
            if !c.logical_path.is_empty() && !is_logical_path(&c.logical_path) {
                return Err(broken(
                    what,
                    &format!("{here}.logical_path"),
                    format_args!(
                        "logical path {:?} must be empty or names joined by single '/'",
                        c.logical_path
                    ),
                ));
            }
            let full = c.full_path();
            if !paths.insert(full.clone()) {
                return Err(broken(
                    what,
                    &here,
                    format_args!("a second component at {full:?}"),
                ));
            }
            let mut luns = HashSet::new();
            for (j, lun) in c.luns.iter().enumerate() {
                if !is_name(lun) {
                    return Err(broken(
                        what,
                        &format!("{here}.luns[{j}]"),
                        format_args!("LUN name {lun:?} {NAME_RULE}"),
                    ));
                }
                if !luns.insert(lun) {
                    return Err(broken(
                        what,
                        &format!("{here}.luns[{j}]"),
                        format_args!("LUN {lun:?} listed twice"),
                    ));
                }
            }
            for (j, d) in c.dependencies.iter().enumerate() {
                let dep = format!("{here}.dependencies[{j}]");
                if !is_name(&d.writer) {
                    return Err(broken(
                        what,
                        &format!("{dep}.writer"),
                        format_args!("writer name {:?} {NAME_RULE}", d.writer),
                    ));
                }
                if !is_logical_path(&d.path) {
                    return Err(broken(
                        what,
                        &format!("{dep}.path"),
                        format_args!(
                            "component path {:?} must be names joined by single '/'",
                            d.path
                        ),
                    ));
                }
                if d.writer == self.writer && d.path == full {
                    return Err(broken(what, &dep, "a component cannot depend on itself"));
                }
            }
        }
        Ok(())
    }
}
