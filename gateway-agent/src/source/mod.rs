//! Where resources come from: a directory of YAML files (this module), or Kubernetes.
//!
//! A source publishes [`SourceSnapshot`]s on a `tokio::sync::watch` channel: the complete,
//! consistent set of resources it currently holds, what it rejected and why, and a generation
//! that grows with every published change.

mod changes;
mod directory;
pub mod kubernetes;
mod pacing;
mod watcher;

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc};

use legate_crds::{
    ObjectRef, Resource,
    loader::{DocumentError, FileError},
};

pub use directory::{DirectoryState, Reach};
pub use watcher::{DirectorySource, SourceGuard};

/// Everything a source holds at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceSnapshot {
    /// Valid resources, in a deterministic order: by file path, then document index. Shared
    /// between snapshots while unchanged, so a consumer can tell an unchanged resource by its
    /// address.
    pub resources: Vec<Arc<Resource>>,
    /// Documents and files that were rejected, in the same order.
    pub rejected: Vec<Rejection>,
    /// Things skipped or ignored (unknown kinds, unknown fields), as log lines.
    pub warnings: Vec<String>,
    /// 1 for the first snapshot, then one more for every published change.
    pub generation: u64,
    /// Kubernetes only: each object as the API server holds it now (uid, generation, status),
    /// for the status writer. Rejected objects are here too.
    pub live: Arc<BTreeMap<ObjectRef, Arc<Live>>>,
    /// Kubernetes only: the gateway as its `GatewayInstallation` defines it now.
    pub gateway: Option<Arc<Gateway>>,
}

/// What a gateway's `GatewayInstallation` says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// `NAMESPACE/NAME` of the installation.
    pub installation: String,
    pub ambassador_id: String,
    /// The namespaces whose resources it takes (and watches).
    pub admitted: kubernetes::Admitted,
}

/// What the status writer needs of an object as the API server holds it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    pub uid: Option<String>,
    /// Changes with every write to the object, and only then.
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    /// `status` as last written (by us or anyone else), `None` when it has none.
    pub status: Option<serde_json::Value>,
}

impl SourceSnapshot {
    /// The same content, regardless of generation.
    pub fn same_content(&self, other: &Self) -> bool {
        self.resources.len() == other.resources.len()
            // Mostly the very same objects: no deep comparison for those.
            && self
                .resources
                .iter()
                .zip(&other.resources)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
            && self.rejected == other.rejected
            && self.warnings == other.warnings
            && self.live == other.live
            && self.gateway == other.gateway
    }
}

/// Whether a whole file or one document of it was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionScope {
    /// The file could not be read or is not YAML; its last good contents (if any) still serve.
    File,
    /// One document did not validate; the rest of its file loaded.
    Document,
}

/// Something that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub scope: RejectionScope,
    /// The file it came from.
    pub origin: String,
    /// 1-based document position, for a document rejection.
    pub index: Option<usize>,
    /// The object, as far as the document says who it is.
    pub object: Option<ObjectRef>,
    /// Why, in words (for status, events and logs).
    pub message: String,
}

impl Rejection {
    pub fn from_document(e: &DocumentError) -> Self {
        let message = e
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            scope: RejectionScope::Document,
            origin: e.origin.clone(),
            index: Some(e.index),
            object: e.object.clone(),
            message,
        }
    }

    /// A file error; `kept` says how many resources of its last good contents still serve.
    pub fn from_file(e: &FileError, kept: Option<usize>) -> Self {
        let (origin, what) = match e {
            FileError::Read { origin, source } => {
                (origin.clone(), format!("cannot read: {source}"))
            }
            FileError::Yaml { origin, message } => {
                (origin.clone(), format!("not valid YAML: {message}"))
            }
        };
        let message = match kept {
            Some(n) => format!("{what} (keeping its last good contents: {n} resources)"),
            None => what,
        };
        Self {
            scope: RejectionScope::File,
            origin,
            index: None,
            object: None,
            message,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(index) = self.index {
            write!(f, ": document {index}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: not a readable directory: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot start the directory watcher thread: {0}")]
    Thread(std::io::Error),
}

#[cfg(test)]
mod tests;
