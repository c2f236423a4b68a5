//! What every store shares about lineage: the users export's external id rows, and the legacy batches that adopt
//! activity rows older than the batch ledger.

use crate::domain::{
    ActivityKind, BatchId, BatchRecord, BatchStatus, EntityKind, ImportMethod, NewBatch, RowSource,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The `provider` of the external id the users export ensures.
pub(crate) const KINTELL_PROVIDER: &str = "kintell";

/// The `file_name` (and, with [`LEGACY_FORMAT`], the mark) of a legacy batch.
pub(crate) const LEGACY_FILE_NAME: &str = "legacy_import";

/// The `format` of a legacy batch.
pub(crate) const LEGACY_FORMAT: &str = "legacy";

/// The id of the external id row (`provider`, `external_id`): stable, so every store and every retry of a unit
/// writes the same one without a clock.
pub(crate) fn external_id_row_id(provider: &str, external_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("kintell-ingest:user_external_id:{provider}:{external_id}").as_bytes(),
    )
}

/// The `metadata` of an external id row written by `source`.
pub(crate) fn source_metadata(source: &RowSource) -> serde_json::Value {
    serde_json::json!({
        "batch_id": source.batch_id.uuid().to_string(),
        "source_row_number": source.source_row_number,
    })
}

/// The lineage kept in an external id row's `metadata`; absent keys (a row written by someone else) are `None`.
///
/// # Errors
/// What is wrong with a key that is present but malformed.
pub(crate) fn metadata_source(
    metadata: Option<&serde_json::Value>,
) -> Result<(Option<BatchId>, Option<i64>), String> {
    let Some(metadata) = metadata else {
        return Ok((None, None));
    };
    let batch_id = match metadata.get("batch_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(BatchId(
            Uuid::parse_str(s).map_err(|e| format!("batch_id {s:?}: {e}"))?,
        )),
        Some(other) => return Err(format!("batch_id {other} is not a string")),
    };
    let row = match metadata.get("source_row_number") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| format!("source_row_number {v} is not an integer"))?,
        ),
    };
    Ok((batch_id, row))
}

/// The entity kind of the batches that write activities of `kind`.
pub(crate) const fn entity_of(kind: ActivityKind) -> EntityKind {
    match kind {
        ActivityKind::KintellSession => EntityKind::KintellSessions,
        ActivityKind::BuddyMatch => EntityKind::BuddyMatches,
        ActivityKind::CourseCompletion => EntityKind::CourseCompletions,
    }
}

/// Whether `batch` is the legacy batch of `kind`'s table.
pub(crate) fn is_legacy(batch: &BatchRecord, kind: ActivityKind) -> bool {
    batch.entity_kind == entity_of(kind)
        && batch.file_name == LEGACY_FILE_NAME
        && batch.import_method == ImportMethod::Legacy
        && batch.format == LEGACY_FORMAT
}

/// The oldest of the legacy batches of `kind` among `batches` (there is one unless someone made more by hand).
pub(crate) fn oldest_legacy<'a>(
    batches: impl IntoIterator<Item = &'a BatchRecord>,
    kind: ActivityKind,
) -> Option<&'a BatchRecord> {
    batches
        .into_iter()
        .filter(|b| is_legacy(b, kind))
        .min_by_key(|b| (b.created_at, b.id))
}

/// The legacy batch of `kind` created from `new` for `adopted` rows: the marks of a legacy batch (file name,
/// import method, format, entity kind) are forced, so a later call finds it whatever `new` said; status
/// `completed`, every row a success and an insert.
pub(crate) fn new_legacy_batch(new: &NewBatch, kind: ActivityKind, adopted: i64) -> BatchRecord {
    BatchRecord {
        id: new.id,
        file_name: LEGACY_FILE_NAME.to_owned(),
        file_hash: new.file_hash.clone(),
        file_size_bytes: new.file_size_bytes,
        entity_kind: entity_of(kind),
        format: LEGACY_FORMAT.to_owned(),
        program_type: new.program_type,
        program_instance_id: new.program_instance_id,
        source_system: new.source_system.clone(),
        import_method: ImportMethod::Legacy,
        status: BatchStatus::Completed,
        total_rows: adopted,
        success_rows: adopted,
        inserted_rows: adopted,
        updated_rows: 0,
        skipped_rows: 0,
        error_rows: 0,
        last_processed_row: adopted,
        error_file_path: None,
        csv_metadata: new.csv_metadata.clone(),
        imported_by_service: new.imported_by_service.clone(),
        error_summary: None,
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        requested_action: None,
        started_at: Some(new.created_at),
        completed_at: Some(new.created_at),
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

/// A legacy batch after `adopted` more rows were linked to it at `now`: its counters grow by that many. Nothing
/// changes when no row was adopted.
pub(crate) fn grown_legacy_batch(
    mut batch: BatchRecord,
    adopted: i64,
    now: DateTime<Utc>,
) -> BatchRecord {
    if adopted > 0 {
        batch.total_rows += adopted;
        batch.success_rows += adopted;
        batch.inserted_rows += adopted;
        batch.last_processed_row += adopted;
        batch.updated_at = now;
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_tolerates_foreign_rows() {
        let source = RowSource {
            batch_id: BatchId(Uuid::from_u128(7)),
            source_row_number: 12,
        };
        let m = source_metadata(&source);
        assert_eq!(
            metadata_source(Some(&m)),
            Ok((Some(source.batch_id), Some(12)))
        );
        assert_eq!(metadata_source(None), Ok((None, None)));
        assert_eq!(
            metadata_source(Some(&serde_json::json!({"other": 1}))),
            Ok((None, None))
        );
        assert!(metadata_source(Some(&serde_json::json!({"batch_id": "nope"}))).is_err());
        assert!(metadata_source(Some(&serde_json::json!({"source_row_number": "1"}))).is_err());
    }

    #[test]
    fn external_id_rows_have_stable_ids() {
        assert_eq!(
            external_id_row_id("kintell", "a@b.org"),
            external_id_row_id("kintell", "a@b.org")
        );
        assert_ne!(
            external_id_row_id("kintell", "a@b.org"),
            external_id_row_id("kintell", "c@b.org")
        );
    }
}
