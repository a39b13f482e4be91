//! Every failure names the file it is about and, where there is one, the document and field, so
//! `make bundle` says what to fix in `config/` rather than what went wrong inside the generator.

use std::fmt;

/// Where in the configuration something is: a file, and optionally a document and field in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based position of the document in its file, for multi-document YAML.
    pub document: Option<usize>,
    /// Dotted path from the document's root, e.g. `spec.template.spec.serviceAccountName`.
    pub field: Option<String>,
}

impl Location {
    pub fn file(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            document: None,
            field: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(document) = self.document {
            write!(f, ": document {document}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not found (listed in {listed_in})")]
    NotFound { file: String, listed_in: String },
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    /// A field is missing or does not hold what the bundle needs.
    #[error("{at}: {message}")]
    Field { at: Location, message: String },
    #[error("{file}: cannot write: {message}")]
    Emit { file: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
