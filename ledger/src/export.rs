//! Signed audit exports: a contiguous run of ledger entries as JSON Lines, verifiable
//! offline with nothing but the ledger's public key.
//!
//! Line 1 is the manifest: `{"manifest": {…}}` with the period asked for, the first and
//! last position exported, the hash before the first entry, the first and last hashes,
//! the number of entries, and the signed checkpoint the export ends at. Every further line
//! is `{"entry": {…}, "hash": "<hex>"}` in position order. The export runs from the first
//! entry of the period to the first signed checkpoint at or after its last entry, so the
//! chain recomputed from the manifest's `previous_hash` through every line must arrive at
//! a hash the ledger's key signed: changing any byte of any line, dropping a line or
//! reordering lines is detected, and the position is named.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Hash};
use crate::signing::{verify_checkpoint, Checkpoint};
use crate::verify::{ChainVerifier, VerifyFailure};

/// The export format's name and version.
pub const FORMAT: &str = "release-pilot-audit-export/1";

/// A checkpoint as exported (hex hash and signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedCheckpoint {
    /// The position it covers.
    pub position: i64,
    /// The chain hash there.
    pub hash: String,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature.
    pub signature: String,
}

impl From<&Checkpoint> for ExportedCheckpoint {
    fn from(c: &Checkpoint) -> Self {
        Self {
            position: c.position,
            hash: hex::encode(c.hash),
            signed_at: c.signed_at,
            key_id: c.key_id.clone(),
            signature: hex::encode(c.signature),
        }
    }
}

impl ExportedCheckpoint {
    fn decode(&self) -> Result<Checkpoint, ExportFailure> {
        let bad = |what: &str| {
            ExportFailure::Manifest(format!(
                "checkpoint {what} is not valid hex of the right length"
            ))
        };
        Ok(Checkpoint {
            position: self.position,
            hash: hex_array(&self.hash).ok_or_else(|| bad("hash"))?,
            signed_at: self.signed_at,
            key_id: self.key_id.clone(),
            signature: hex_array(&self.signature).ok_or_else(|| bad("signature"))?,
        })
    }
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The period asked for (recording time), start included.
    pub from: Option<DateTime<Utc>>,
    /// The period's end, excluded.
    pub to: Option<DateTime<Utc>>,
    /// The first position exported.
    pub first_position: i64,
    /// The last position exported (the checkpoint's).
    pub last_position: i64,
    /// The last position recorded within the period (entries after it up to the
    /// checkpoint are included so the chain reaches a signature).
    pub period_last_position: i64,
    /// Entries exported.
    pub entries: i64,
    /// The chain hash before the first entry (hex).
    pub previous_hash: String,
    /// The first entry's hash (hex).
    pub first_hash: String,
    /// The last entry's hash (hex); equals the checkpoint's.
    pub last_hash: String,
    /// The signed checkpoint the export ends at.
    pub checkpoint: ExportedCheckpoint,
}

/// One entry line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportLine {
    /// The entry.
    pub entry: Entry,
    /// Its chain hash as the ledger stores it (hex).
    pub hash: String,
}

/// The manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestLine {
    /// The manifest.
    pub manifest: Manifest,
}

/// Why an export does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportFailure {
    /// The file cannot be read.
    Io(String),
    /// The first line is not a valid manifest.
    Manifest(String),
    /// A line is not an entry line.
    Line {
        /// The line number (1-based; line 1 is the manifest).
        line: usize,
        /// The position the line should hold.
        position: i64,
        /// Why.
        reason: String,
    },
    /// The chain breaks at a position.
    Chain(VerifyFailure),
    /// The checkpoint's signature does not verify with the key given.
    Signature(String),
    /// The file holds a different number of entries than the manifest says.
    Count {
        /// What the manifest says.
        manifest: i64,
        /// What the file holds.
        found: i64,
    },
    /// The last entry is not the manifest's last position.
    Truncated {
        /// The manifest's last position.
        expected: i64,
        /// The last position in the file.
        found: i64,
    },
}

impl std::fmt::Display for ExportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the export: {e}"),
            Self::Manifest(e) => write!(f, "line 1: not a valid manifest: {e}"),
            Self::Line {
                line,
                position,
                reason,
            } => write!(f, "line {line} (position {position}): {reason}"),
            Self::Chain(failure) => write!(f, "{failure}"),
            Self::Signature(e) => write!(f, "the checkpoint signature does not verify: {e}"),
            Self::Count { manifest, found } => write!(
                f,
                "the manifest lists {manifest} entries but the file holds {found}"
            ),
            Self::Truncated { expected, found } => write!(
                f,
                "the export ends at position {found}, the manifest at {expected}: lines are missing at the end"
            ),
        }
    }
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Entries verified.
    pub entries: i64,
    /// First position.
    pub first_position: i64,
    /// Last position.
    pub last_position: i64,
    /// The checkpoint position it ends at.
    pub checkpoint: i64,
}

/// Verifies an export read from `reader` with `key`.
pub fn verify_export(
    reader: impl BufRead,
    key: &VerifyingKey,
) -> Result<ExportReport, ExportFailure> {
    let mut lines = reader.lines();
    let first = lines
        .next()
        .ok_or_else(|| ExportFailure::Manifest("the file is empty".into()))?
        .map_err(|e| ExportFailure::Io(e.to_string()))?;
    let manifest: ManifestLine =
        serde_json::from_str(&first).map_err(|e| ExportFailure::Manifest(e.to_string()))?;
    let manifest = manifest.manifest;
    if manifest.format != FORMAT {
        return Err(ExportFailure::Manifest(format!(
            "format {:?} is not {FORMAT:?}",
            manifest.format
        )));
    }
    let checkpoint = manifest.checkpoint.decode()?;
    verify_checkpoint(&checkpoint, key).map_err(|p| ExportFailure::Signature(format!("{p:?}")))?;
    if checkpoint.position != manifest.last_position
        || hex::encode(checkpoint.hash) != manifest.last_hash
    {
        return Err(ExportFailure::Manifest(
            "the checkpoint is not at the last position exported".into(),
        ));
    }
    let previous: Hash = hex_array(&manifest.previous_hash)
        .ok_or_else(|| ExportFailure::Manifest("previous_hash is not a 32-byte hex hash".into()))?;
    let mut verifier =
        ChainVerifier::starting_at(*key, vec![checkpoint], manifest.first_position, previous);
    let mut count = 0_i64;
    let mut last = manifest.first_position - 1;
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let position = last + 1;
        let line = line.map_err(|e| ExportFailure::Io(e.to_string()))?;
        let parsed: ExportLine = serde_json::from_str(&line).map_err(|e| ExportFailure::Line {
            line: number,
            position,
            reason: format!("not an entry line (altered): {e}"),
        })?;
        let stored: Hash = hex_array(&parsed.hash).ok_or_else(|| ExportFailure::Line {
            line: number,
            position,
            reason: "hash is not a 32-byte hex hash (altered)".into(),
        })?;
        verifier
            .feed(parsed.entry.position, Some(&parsed.entry), &stored)
            .map_err(ExportFailure::Chain)?;
        last = parsed.entry.position;
        count += 1;
    }
    if last != manifest.last_position {
        return Err(ExportFailure::Truncated {
            expected: manifest.last_position,
            found: last,
        });
    }
    if count != manifest.entries {
        return Err(ExportFailure::Count {
            manifest: manifest.entries,
            found: count,
        });
    }
    let report = verifier.finish().map_err(ExportFailure::Chain)?;
    Ok(ExportReport {
        entries: count,
        first_position: manifest.first_position,
        last_position: report.head,
        checkpoint: manifest.checkpoint.position,
    })
}

/// Why an export cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanProblem {
    /// Nothing was recorded in the period.
    Empty,
    /// No signed checkpoint covers the period's last entry yet.
    NotYetSigned {
        /// The period's last position.
        position: i64,
    },
}

/// The manifest of an export of entries recorded in `[from, to)` (either bound open).
pub async fn plan(
    db: &crate::db::Db,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Result<Manifest, PlanProblem>, crate::LedgerError> {
    let range: (Option<i64>, Option<i64>) = crate::on!(db, |pool| {
        sqlx::query_as(
            "SELECT min(l.position) AS first, max(l.position) AS last FROM ledger l \
             JOIN events e ON e.global_position = l.global_position \
             WHERE ($1 IS NULL OR e.recorded_at >= $1) AND ($2 IS NULL OR e.recorded_at < $2)",
        )
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?
    });
    let (Some(first), Some(period_last)) = range else {
        return Ok(Err(PlanProblem::Empty));
    };
    let checkpoint = crate::verify::checkpoints(db)
        .await?
        .into_iter()
        .find(|c| c.position >= period_last);
    let Some(checkpoint) = checkpoint else {
        return Ok(Err(PlanProblem::NotYetSigned {
            position: period_last,
        }));
    };
    let hash_at = |position: i64| async move {
        if position == 0 {
            return Ok::<Hash, crate::LedgerError>(crate::entry::GENESIS);
        }
        let bytes: Vec<u8> = crate::on!(db, |pool| {
            sqlx::query_scalar("SELECT hash FROM ledger WHERE position = $1")
                .bind(position)
                .fetch_one(pool)
                .await?
        });
        crate::entry::hash_from_slice(&bytes)
    };
    Ok(Ok(Manifest {
        format: FORMAT.to_owned(),
        from,
        to,
        first_position: first,
        last_position: checkpoint.position,
        period_last_position: period_last,
        entries: checkpoint.position - first + 1,
        previous_hash: hex::encode(hash_at(first - 1).await?),
        first_hash: hex::encode(hash_at(first).await?),
        last_hash: hex::encode(checkpoint.hash),
        checkpoint: ExportedCheckpoint::from(&checkpoint),
    }))
}

/// One export line written straight from a row: strings escaped, payload and metadata
/// copied as the JSON text the database stored (a text with a line break goes through
/// the parser so the line stays one line).
fn line_from_row(row: crate::db::SealedRow) -> Result<String, crate::LedgerError> {
    let quoted = |value: &str| -> Result<String, crate::LedgerError> {
        serde_json::to_string(value)
            .map_err(|e| crate::LedgerError::Corrupt(format!("an entry cannot be written: {e}")))
    };
    let raw_json = |column: &str, raw: String| -> Result<String, crate::LedgerError> {
        if !raw.contains(['\n', '\r']) {
            return Ok(raw);
        }
        let value: serde_json::Value = serde_json::from_str(&raw)
            .map_err(|e| crate::LedgerError::Corrupt(format!("{column} is not JSON: {e}")))?;
        Ok(value.to_string())
    };
    let event = row.event;
    Ok(format!(
        "{{\"entry\":{{\"position\":{},\"aggregate_type\":{},\"aggregate_id\":{},\"sequence\":{},\"event_type\":{},\"event_version\":{},\"payload\":{},\"metadata\":{},\"recorded_at\":\"{}\"}},\"hash\":\"{}\"}}\n",
        row.position,
        quoted(&event.aggregate_type)?,
        quoted(&event.aggregate_id)?,
        event.sequence,
        quoted(&event.event_type)?,
        quoted(&event.event_version)?,
        raw_json("payload", event.payload)?,
        raw_json("metadata", event.metadata)?,
        crate::entry::format_recorded_at(event.recorded_at),
        hex::encode(row.hash),
    ))
}

/// The entry lines of `manifest`, in chunks of up to `batch` lines (each ending in a
/// newline), read as they are sent.
pub fn lines(
    db: crate::db::Db,
    manifest: &Manifest,
    batch: i64,
) -> impl futures::Stream<Item = Result<String, crate::LedgerError>> + Send + 'static {
    let last = manifest.last_position;
    let sql = format!(
        "SELECT l.position, l.hash, {} FROM ledger l JOIN events e ON e.global_position = l.global_position \
         WHERE l.position > $1 AND l.position <= $2 ORDER BY l.position",
        crate::db::entry_columns(db.is_sqlite())
    );
    futures::stream::try_unfold(manifest.first_position - 1, move |after| {
        let (db, sql) = (db.clone(), sql.clone());
        async move {
            if after >= last {
                return Ok(None);
            }
            let rows: Vec<crate::db::SealedRow> = crate::on!(&db, |pool| {
                sqlx::query_as(&sql)
                    .bind(after)
                    .bind((after + batch).min(last))
                    .fetch_all(pool)
                    .await?
            });
            if rows.is_empty() {
                return Ok(None);
            }
            let mut chunk = String::with_capacity(rows.len() * 700);
            let mut next = after;
            for row in rows {
                chunk.push_str(&line_from_row(row)?);
                next += 1;
            }
            Ok(Some((chunk, next)))
        }
    })
}
