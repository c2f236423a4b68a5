//! A webhook event's session row as a one-row batch, written through the chunk writer inside the caller's unit of
//! work, so that the caller can record the delivery in the same transaction.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::batch::{BatchEvent, ErrorSample};
use crate::domain::{
    BatchId, BatchRecord, DomainRow, EntityKind, ImportMethod, NewBatch, ProgramType, SessionRow,
};
use crate::formats::RawRecord;
use crate::ports::{BatchGuard, StoreError, UnitOfWork};

use super::chunk::{self, ChunkContext, ChunkOutcome, Item, Scoring};
use super::ledger::apply;
use super::metadata;
use super::{ImportError, Ingestor};

/// What the batch of one webhook delivery records.
#[derive(Debug, Clone)]
pub(crate) struct WebhookBatch {
    /// `webhook:<event>:<delivery id>`.
    pub(crate) file_name: String,
    /// SHA-256 of the raw body, lower-case hex.
    pub(crate) file_hash: String,
    /// Size of the raw body.
    pub(crate) size: u64,
    /// Kept in `csv_metadata.webhook`.
    pub(crate) metadata: serde_json::Value,
    /// Create users for unknown emails.
    pub(crate) create_missing_users: bool,
    /// The ingest time (`created_at` of the batch, the time dates are judged against).
    pub(crate) now: DateTime<Utc>,
}

/// How the row of a webhook batch went.
#[derive(Debug)]
pub(crate) enum WebhookRow {
    /// Written; the batch is completed (in the unit, not yet committed).
    Written {
        /// The batch as saved.
        batch: Box<BatchRecord>,
        /// The chunk's counts.
        outcome: ChunkOutcome,
    },
    /// The checks of the database refused it (`unknown_user`, …): the caller rolls the unit back.
    Rejected(ErrorSample),
}

impl Ingestor {
    /// Loads the campaign index for one webhook delivery; `Err` says why association is unavailable (the row is
    /// then stored unassociated, as an import does).
    pub(crate) async fn webhook_scoring(&self) -> Result<Arc<Scoring>, String> {
        match self.store.load_catalog().await {
            Ok(catalog) => Ok(Arc::new(Scoring::new(&catalog, self.policy.clone()))),
            Err(e) => Err(metadata::one_line(&e)),
        }
    }

    /// Writes `row` as the only row of a new, completed batch of `spec` inside `unit` (which the caller commits or
    /// rolls back): the batch is inserted, started, checkpointed and completed through the state machine, and the
    /// row goes through the chunk writer as row 1 of a file would (identity, idempotency key, lineage,
    /// association, enrolments).
    ///
    /// # Errors
    /// [`ImportError::Store`]; [`ImportError::InvalidOption`] for an unusable host name.
    pub(crate) async fn webhook_row(
        &self,
        unit: &mut dyn UnitOfWork,
        spec: WebhookBatch,
        row: SessionRow,
        raw: RawRecord,
        scoring: Result<Arc<Scoring>, String>,
    ) -> Result<WebhookRow, ImportError> {
        let now = spec.now;
        let mut csv_metadata = serde_json::json!({ "webhook": spec.metadata });
        let new = NewBatch {
            id: BatchId(uuid::Uuid::now_v7()),
            file_name: spec.file_name,
            file_hash: spec.file_hash,
            file_size_bytes: Some(i64::try_from(spec.size).unwrap_or(i64::MAX)),
            entity_kind: EntityKind::KintellSessions,
            format: "webhook".to_owned(),
            program_type: ProgramType::Kintell,
            program_instance_id: None,
            source_system: "kintell".to_owned(),
            import_method: ImportMethod::Webhook,
            total_rows: 1,
            csv_metadata: csv_metadata.clone(),
            imported_by_service: self.imported_by.clone(),
            created_at: now,
        };
        let stored = unit.insert_batch(&new).await?;
        let (scoring, unavailable) = match scoring {
            Ok(s) => (Some(s), None),
            Err(why) => (None, Some(why)),
        };
        let ctx = ChunkContext {
            batch_id: stored.id,
            same_content: HashSet::from([stored.id]),
            instance: None,
            create_missing_users: spec.create_missing_users,
            columns: raw_columns(),
            volunteer_field: "volunteer_email",
            policy_version: self.policy.version.clone(),
            scoring,
            association_unavailable: unavailable.clone(),
            now,
        };
        let item = Item::Valid {
            row_number: 1,
            line_number: 1,
            row: DomainRow::Session(row),
            raw,
        };
        let outcome = chunk::write(unit, &ctx, vec![item]).await?;
        if let Some(sample) = outcome.summary.first().first() {
            return Ok(WebhookRow::Rejected(sample.clone()));
        }
        let owner = self.owner()?;
        let lease_until = self.lease_until(now);
        let moving = |e| ImportError::moving(stored.id, e);
        let started = apply(
            &stored,
            &BatchEvent::Start {
                owner,
                lease_until,
                now,
            },
            now,
        )
        .map_err(moving)?;
        let checkpoint = BatchEvent::Checkpoint {
            rows: outcome.rows,
            inserted: outcome.inserted,
            updated: outcome.updated,
            skipped: outcome.skipped,
            errors: outcome.errors,
            lease_until,
            now,
        };
        let checked = apply(&started, &checkpoint, now).map_err(moving)?;
        let mut done = apply(&checked, &BatchEvent::Complete { now }, now).map_err(moving)?;
        if let Some(why) = &unavailable {
            metadata::set_association_unavailable(&mut csv_metadata, why);
        }
        metadata::set_associations(&mut csv_metadata, outcome.associations);
        done.csv_metadata = csv_metadata;
        done.error_summary = Some(outcome.summary.to_json());
        if !unit.save_batch(&done, &BatchGuard::of(&stored)).await? {
            return Err(ImportError::Store(StoreError::Corrupt {
                what: format!(
                    "ingestion_batches {}: the batch changed inside its own unit",
                    stored.id
                ),
            }));
        }
        Ok(WebhookRow::Written {
            batch: Box::new(done),
            outcome,
        })
    }
}

/// The canonical column at each position of a webhook session row (the order of the body's fields).
fn raw_columns() -> Vec<Option<String>> {
    [
        "session_id",
        "session_type",
        "participant_email",
        "volunteer_email",
        "scheduled_at",
        "completed_at",
        "duration_minutes",
        "topics",
        "language_level",
    ]
    .into_iter()
    .map(|c| Some(c.to_owned()))
    .collect()
}
