//! What an import reports: the batch as stored at the end, its counters, the associations by decision, notices.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{BatchRecord, Decision};

use super::metadata;

/// Stored activities by association decision (`explicit`, `auto`, `review`, `ignored`, `none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationCounts {
    /// Linked to an instance the import or the row named.
    pub explicit: u64,
    /// Linked by scoring.
    pub auto: u64,
    /// Waiting for a human.
    pub review: u64,
    /// Scored below the review threshold.
    pub ignored: u64,
    /// No company or no candidate campaign.
    pub none: u64,
}

impl AssociationCounts {
    /// Counts one activity with `decision` (human decisions are never made by an import and are not counted).
    pub fn record(&mut self, decision: Decision) {
        let slot = match decision {
            Decision::Explicit => &mut self.explicit,
            Decision::Auto => &mut self.auto,
            Decision::Review => &mut self.review,
            Decision::Ignored => &mut self.ignored,
            Decision::None => &mut self.none,
            Decision::Accepted | Decision::Rejected => return,
        };
        *slot += 1;
    }

    /// Adds another count to this one.
    pub fn add(&mut self, other: AssociationCounts) {
        self.explicit += other.explicit;
        self.auto += other.auto;
        self.review += other.review;
        self.ignored += other.ignored;
        self.none += other.none;
    }
}

/// The outcome of an import, a resume or a dry run.
///
/// The counters are the batch's (a resumed batch counts what every run of it did); the association counts are
/// kept in the batch's `csv_metadata`, so they too cover every run. Serialises to the `import --json` document:
/// `{"batch": {…}, "associations": {…}, "notices": […]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The batch as stored at the end (for a dry run: as it would have been).
    pub batch: BatchRecord,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows whose stored values changed.
    pub updated: u64,
    /// Rows found unchanged.
    pub skipped: u64,
    /// Rows rejected.
    pub errors: u64,
    /// Stored activities by association decision.
    pub associations: AssociationCounts,
    /// Things worth knowing that did not stop the import (same file name with other content, same content under
    /// another name, a resumed batch).
    pub notices: Vec<String>,
    /// Whether nothing was stored.
    pub dry_run: bool,
}

impl ImportReport {
    /// The report of `batch` as it stands.
    pub fn of_batch(batch: BatchRecord, notices: Vec<String>, dry_run: bool) -> Self {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        ImportReport {
            inserted: count(batch.inserted_rows),
            updated: count(batch.updated_rows),
            skipped: count(batch.skipped_rows),
            errors: count(batch.error_rows),
            associations: metadata::associations(&batch.csv_metadata),
            batch,
            notices,
            dry_run,
        }
    }

    /// The `import --json` document.
    pub fn to_json(&self) -> Value {
        let b = &self.batch;
        json!({
            "batch": {
                "id": b.id,
                "status": b.status,
                "file_name": b.file_name,
                "file_hash": b.file_hash,
                "entity_kind": b.entity_kind,
                "format": b.format,
                "program_type": b.program_type,
                "program_instance_id": b.program_instance_id,
                "total_rows": b.total_rows,
                "success_rows": b.success_rows,
                "inserted_rows": b.inserted_rows,
                "updated_rows": b.updated_rows,
                "skipped_rows": b.skipped_rows,
                "error_rows": b.error_rows,
                "last_processed_row": b.last_processed_row,
                "last_error": b.last_error,
                "error_summary": b.error_summary,
                "csv_metadata": b.csv_metadata,
                "started_at": b.started_at,
                "completed_at": b.completed_at,
            },
            "associations": self.associations,
            "notices": self.notices,
            "dry_run": self.dry_run,
        })
    }
}

impl Serialize for ImportReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}
