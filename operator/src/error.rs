//! Reconcile errors: each names what it was doing and to which object, and maps to a stable
//! label for metrics and Events.

use crate::children::Slot;

/// What the operator was doing to a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Read,
    Apply,
    Delete,
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Apply => "apply",
            Self::Delete => "delete",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed; requeued with backoff.
    #[error("cannot {verb} {slot}: {source}")]
    Kube {
        verb: Verb,
        slot: Box<Slot>,
        #[source]
        source: kube::Error,
    },
    /// Listing the Namespaces a selector admits, or the children found by label, failed.
    #[error("cannot list {what} labelled {selector:?}: {source}")]
    List {
        what: String,
        selector: String,
        #[source]
        source: kube::Error,
    },
    /// Reading or writing the installation itself (status, finalizer) failed.
    #[error("cannot {action} the GatewayInstallation: {source}")]
    Installation {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn kube(verb: Verb, slot: &Slot, source: kube::Error) -> Self {
        Self::Kube {
            verb,
            slot: Box::new(slot.clone()),
            source,
        }
    }

    /// A stable label: the metric's `error` label and the Warning Event's reason.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { verb, .. } => match verb {
                Verb::Read => "ReadFailed",
                Verb::Apply => "ApplyFailed",
                Verb::Delete => "DeleteFailed",
            },
            Self::List { .. } => "ListFailed",
            Self::Installation { .. } => "StatusFailed",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "FinalizerFailed",
            },
        }
    }
}
