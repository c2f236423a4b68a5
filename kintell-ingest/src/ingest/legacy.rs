//! Legacy lineage: activity rows older than batches, linked to one synthetic `legacy_import` batch per table.

use chrono::{DateTime, Utc};

use crate::domain::{
    ActivityKind, BatchId, BatchRecord, EntityKind, ImportMethod, NewBatch, ProgramType,
};
use crate::ports::StoreError;

use super::Ingestor;
use super::prepass::empty_hash;

/// What adoption did for one activity table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegacyAdoption {
    /// The table.
    pub kind: ActivityKind,
    /// Its legacy batch as stored (its counters count every row it ever adopted).
    pub batch: BatchRecord,
    /// Rows linked by this call.
    pub adopted: u64,
}

/// What [`Ingestor::adopt_legacy`] did, one entry per activity table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegacyReport {
    /// Sessions, matches, completions.
    pub adoptions: Vec<LegacyAdoption>,
}

impl LegacyReport {
    /// Rows linked by this call, over all tables.
    pub fn adopted(&self) -> u64 {
        self.adoptions.iter().map(|a| a.adopted).sum()
    }
}

impl Ingestor {
    /// Links every activity row whose `batch_id` is NULL to its table's legacy batch (`file_name =
    /// 'legacy_import'`, `import_method = 'legacy'`, `format = 'legacy'`, the SHA-256 of no bytes, status
    /// `completed`), created at `now` when missing. Idempotent: a second call adds only rows still unlinked.
    ///
    /// # Errors
    /// [`StoreError`]; each table is adopted in a transaction of its own.
    pub async fn adopt_legacy(&self, now: DateTime<Utc>) -> Result<LegacyReport, StoreError> {
        let mut adoptions = Vec::new();
        for &kind in ActivityKind::ALL {
            let (entity, program_type) = match kind {
                ActivityKind::KintellSession => (EntityKind::KintellSessions, ProgramType::Kintell),
                ActivityKind::BuddyMatch => (EntityKind::BuddyMatches, ProgramType::Buddy),
                ActivityKind::CourseCompletion => {
                    (EntityKind::CourseCompletions, ProgramType::Upskilling)
                }
            };
            let new = NewBatch {
                id: BatchId(uuid::Uuid::now_v7()),
                file_name: "legacy_import".to_owned(),
                file_hash: empty_hash(),
                file_size_bytes: Some(0),
                entity_kind: entity,
                format: "legacy".to_owned(),
                program_type,
                program_instance_id: None,
                source_system: "legacy".to_owned(),
                import_method: ImportMethod::Legacy,
                total_rows: 0,
                csv_metadata: serde_json::json!({}),
                imported_by_service: self.imported_by.clone(),
                created_at: now,
            };
            let (batch, adopted) = self.store.adopt_legacy(kind, &new).await?;
            adoptions.push(LegacyAdoption {
                kind,
                batch,
                adopted,
            });
        }
        Ok(LegacyReport { adoptions })
    }
}
