//! Every projection, by name: what the projector runs and what `replay` rebuilds.

use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;

use crate::audit_index::AuditIndex;
use crate::dora_facts::DoraFacts;
use crate::environment_history::EnvironmentHistory;
use crate::exceptions::Exceptions;
use crate::release_timeline::ReleaseTimeline;
use crate::runner::{BatchError, Projection, ProjectionError};
use crate::traceability::Traceability;

/// One of the read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyProjection {
    /// [`AuditIndex`].
    AuditIndex,
    /// [`ReleaseTimeline`].
    ReleaseTimeline,
    /// [`EnvironmentHistory`].
    EnvironmentHistory,
    /// [`Traceability`].
    Traceability,
    /// [`DoraFacts`].
    DoraFacts,
    /// [`Exceptions`].
    Exceptions,
}

impl AnyProjection {
    /// Every projection, in the order the projector starts them.
    pub const ALL: [Self; 6] = [
        Self::AuditIndex,
        Self::ReleaseTimeline,
        Self::EnvironmentHistory,
        Self::Traceability,
        Self::DoraFacts,
        Self::Exceptions,
    ];

    /// The projection called `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl Projection for AnyProjection {
    fn name(&self) -> &'static str {
        match self {
            Self::AuditIndex => AuditIndex.name(),
            Self::ReleaseTimeline => ReleaseTimeline.name(),
            Self::EnvironmentHistory => EnvironmentHistory.name(),
            Self::Traceability => Traceability.name(),
            Self::DoraFacts => DoraFacts.name(),
            Self::Exceptions => Exceptions.name(),
        }
    }

    fn tables(&self) -> &'static [&'static str] {
        match self {
            Self::AuditIndex => AuditIndex.tables(),
            Self::ReleaseTimeline => ReleaseTimeline.tables(),
            Self::EnvironmentHistory => EnvironmentHistory.tables(),
            Self::Traceability => Traceability.tables(),
            Self::DoraFacts => DoraFacts.tables(),
            Self::Exceptions => Exceptions.tables(),
        }
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        match self {
            Self::AuditIndex => AuditIndex.apply(tx, entry).await,
            Self::ReleaseTimeline => ReleaseTimeline.apply(tx, entry).await,
            Self::EnvironmentHistory => EnvironmentHistory.apply(tx, entry).await,
            Self::Traceability => Traceability.apply(tx, entry).await,
            Self::DoraFacts => DoraFacts.apply(tx, entry).await,
            Self::Exceptions => Exceptions.apply(tx, entry).await,
        }
    }

    async fn apply_batch(&self, tx: &mut Tx, entries: &[Entry]) -> Result<(), BatchError> {
        match self {
            Self::AuditIndex => AuditIndex.apply_batch(tx, entries).await,
            Self::ReleaseTimeline => ReleaseTimeline.apply_batch(tx, entries).await,
            Self::EnvironmentHistory => EnvironmentHistory.apply_batch(tx, entries).await,
            Self::Traceability => Traceability.apply_batch(tx, entries).await,
            Self::DoraFacts => DoraFacts.apply_batch(tx, entries).await,
            Self::Exceptions => Exceptions.apply_batch(tx, entries).await,
        }
    }
}
