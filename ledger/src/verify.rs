//! Verification: recompute the hash chain from the event rows themselves and check every
//! signed checkpoint, naming the first position that fails and why.
//!
//! [`ChainVerifier`] checks a sequence of entries from any source (the database here, an
//! export file offline); [`verify_database`] streams the ledger joined to the event rows.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use futures::TryStreamExt;
use sqlx::{FromRow, Row};

use chrono::{DateTime, Utc};

use crate::db::{entry_columns, Db, EventRow};
use crate::entry::{hash_from_slice, Entry, Hash, GENESIS};
use crate::error::LedgerError;
use crate::signing::{verify_checkpoint, Checkpoint, CheckpointProblem};

/// The first thing wrong with a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// Positions are not consecutive.
    Gap {
        /// The position expected next.
        expected: i64,
        /// The position found.
        found: i64,
    },
    /// A ledger entry's event row is missing.
    MissingEvent {
        /// The position.
        position: i64,
    },
    /// The recomputed hash differs from the stored one: the event or an earlier link
    /// was altered.
    HashMismatch {
        /// The position.
        position: i64,
    },
    /// A checkpoint's hash is not the ledger's hash at its position.
    CheckpointMismatch {
        /// The position.
        position: i64,
    },
    /// A checkpoint's signature does not verify.
    CheckpointSignature {
        /// The position.
        position: i64,
        /// Why.
        problem: CheckpointProblem,
    },
    /// A checkpoint refers to a position past the end of the ledger.
    CheckpointBeyondEnd {
        /// The position.
        position: i64,
    },
}

impl VerifyFailure {
    /// The position the failure names.
    pub fn position(&self) -> i64 {
        match self {
            Self::Gap { expected, .. } => *expected,
            Self::MissingEvent { position }
            | Self::HashMismatch { position }
            | Self::CheckpointMismatch { position }
            | Self::CheckpointSignature { position, .. }
            | Self::CheckpointBeyondEnd { position } => *position,
        }
    }
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { expected, found } => {
                write!(
                    f,
                    "position {expected}: missing (the next entry is {found})"
                )
            }
            Self::MissingEvent { position } => {
                write!(f, "position {position}: its event row is missing")
            }
            Self::HashMismatch { position } => write!(
                f,
                "position {position}: hash mismatch (the event was altered after sealing)"
            ),
            Self::CheckpointMismatch { position } => write!(
                f,
                "position {position}: the signed checkpoint's hash differs from the ledger's"
            ),
            Self::CheckpointSignature { position, problem } => {
                match problem {
                    CheckpointProblem::BadSignature => {
                        write!(f, "position {position}: checkpoint signature is invalid (forged or altered)")
                    }
                    CheckpointProblem::UnknownKey(id) => write!(
                        f,
                        "position {position}: checkpoint signed by key {id}, not the key given"
                    ),
                }
            }
            Self::CheckpointBeyondEnd { position } => {
                write!(
                    f,
                    "position {position}: checkpoint past the end of the ledger"
                )
            }
        }
    }
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries verified.
    pub entries: i64,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// The last position.
    pub head: i64,
    /// Its hash.
    pub head_hash: Hash,
}

/// Checks entries one at a time, in position order.
#[derive(Debug)]
pub struct ChainVerifier {
    key: VerifyingKey,
    checkpoints: BTreeMap<i64, Checkpoint>,
    checked_checkpoints: usize,
    expected: i64,
    previous: Hash,
}

impl ChainVerifier {
    /// Starts at position 1 with the genesis hash.
    pub fn new(key: VerifyingKey, checkpoints: Vec<Checkpoint>) -> Self {
        Self::starting_at(key, checkpoints, 1, GENESIS)
    }

    /// Starts at `position`, trusting `previous` as the hash before it (for verifying a
    /// slice of the ledger, such as an export of a period).
    pub fn starting_at(
        key: VerifyingKey,
        checkpoints: Vec<Checkpoint>,
        position: i64,
        previous: Hash,
    ) -> Self {
        Self {
            key,
            checkpoints: checkpoints.into_iter().map(|c| (c.position, c)).collect(),
            checked_checkpoints: 0,
            expected: position,
            previous,
        }
    }

    /// Checks the entry at `position` (`None` when its event row is missing) against the
    /// hash stored for it.
    pub fn feed(
        &mut self,
        position: i64,
        entry: Option<&Entry>,
        stored: &Hash,
    ) -> Result<(), VerifyFailure> {
        if position != self.expected {
            return Err(VerifyFailure::Gap {
                expected: self.expected,
                found: position,
            });
        }
        let entry = entry.ok_or(VerifyFailure::MissingEvent { position })?;
        let computed = entry
            .chain_hash(&self.previous)
            .map_err(|_| VerifyFailure::HashMismatch { position })?;
        if &computed != stored || entry.position != position {
            return Err(VerifyFailure::HashMismatch { position });
        }
        if let Some(checkpoint) = self.checkpoints.get(&position) {
            if checkpoint.hash != computed {
                return Err(VerifyFailure::CheckpointMismatch { position });
            }
            verify_checkpoint(checkpoint, &self.key)
                .map_err(|problem| VerifyFailure::CheckpointSignature { position, problem })?;
            self.checked_checkpoints += 1;
        }
        self.previous = computed;
        self.expected += 1;
        Ok(())
    }

    /// Ends verification: every checkpoint must have been reached.
    pub fn finish(self) -> Result<VerifyReport, VerifyFailure> {
        let head = self.expected - 1;
        if let Some((position, _)) = self.checkpoints.range(head + 1..).next() {
            return Err(VerifyFailure::CheckpointBeyondEnd {
                position: *position,
            });
        }
        Ok(VerifyReport {
            entries: head,
            checkpoints: self.checked_checkpoints,
            head,
            head_hash: self.previous,
        })
    }
}

/// Every stored checkpoint, in position order.
pub async fn checkpoints(db: &Db) -> Result<Vec<Checkpoint>, LedgerError> {
    type CheckpointRow = (i64, Vec<u8>, DateTime<Utc>, String, Vec<u8>);
    let rows: Vec<CheckpointRow> = crate::on!(db, |pool| {
        sqlx::query_as(
            "SELECT position, hash, signed_at, key_id, signature FROM ledger_checkpoints ORDER BY position",
        )
        .fetch_all(pool)
        .await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for (position, hash, signed_at, key_id, signature) in rows {
        out.push(Checkpoint {
            position,
            hash: hash_from_slice(&hash)?,
            signed_at,
            key_id,
            signature: signature.try_into().map_err(|_| {
                LedgerError::Corrupt("a checkpoint signature is not 64 bytes".into())
            })?,
        });
    }
    Ok(out)
}

/// Verifies the whole ledger in the database. `progress` is called with the number of
/// entries verified so far, every 10 000 entries.
pub async fn verify_database(
    db: &Db,
    key: &VerifyingKey,
    mut progress: impl FnMut(i64),
) -> Result<Result<VerifyReport, VerifyFailure>, LedgerError> {
    let mut verifier = ChainVerifier::new(*key, checkpoints(db).await?);
    crate::on!(db, |pool, lite| {
        let sql = format!(
            "SELECT l.position, l.hash, e.global_position IS NOT NULL AS present, {} \
             FROM ledger l LEFT JOIN events e ON e.global_position = l.global_position \
             ORDER BY l.position",
            entry_columns(lite)
        );
        let mut rows = sqlx::query(&sql).fetch(pool);
        let mut count = 0i64;
        while let Some(row) = rows.try_next().await? {
            let position: i64 = row.try_get("position")?;
            let stored = hash_from_slice(row.try_get("hash")?)?;
            let present: bool = row.try_get("present")?;
            let entry = if present {
                // A row that no longer reads as an entry was altered: name its position.
                match EventRow::from_row(&row)
                    .map_err(LedgerError::from)
                    .and_then(|r| r.entry(position))
                {
                    Ok(entry) => Some(entry),
                    Err(_) => return Ok(Err(VerifyFailure::HashMismatch { position })),
                }
            } else {
                None
            };
            if let Err(failure) = verifier.feed(position, entry.as_ref(), &stored) {
                return Ok(Err(failure));
            }
            count += 1;
            if count % 10_000 == 0 {
                progress(count);
            }
        }
    });
    Ok(verifier.finish())
}
