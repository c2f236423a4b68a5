//! What an import writes: activity and user rows with their people resolved and their lineage, enrolments, row
//! errors; and what a look-up of rows stored earlier returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ActivityId, BatchId, CompletionRow, CourseId, DeliveryId, EnrollmentRole, InstanceId, MatchRow,
    ProgramType, Provider, SessionRow, User, UserId, WebhookEvent,
};

/// How one written row went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    /// The key was new: the row was inserted.
    Inserted,
    /// The key existed with other values: the row was changed.
    Updated,
    /// The key existed with the same values: nothing was written (the row keeps its lineage).
    Unchanged,
}

/// The file record a write comes from: the lineage an inserted or changed activity row gets.
///
/// An inserted row gets `batch_id = first_batch_id = batch_id` and `source_row_number`; a changed row gets
/// `batch_id` and `source_row_number` and keeps its `first_batch_id`; an unchanged row keeps all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSource {
    /// The batch writing the row.
    pub batch_id: BatchId,
    /// The row's 1-based data record number in that batch's file.
    pub source_row_number: i64,
}

/// A row found by a key look-up, with the lineage it carries (for `duplicate_in_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRow {
    /// The stored row's id (the activity id, or the user id for users).
    pub id: uuid::Uuid,
    /// The batch that last inserted or changed it.
    pub batch_id: Option<BatchId>,
    /// Its record number in that batch's file.
    pub source_row_number: Option<i64>,
}

/// One written row: the id it has in the store (an existing row keeps its own) and how the write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The stored row's id.
    pub id: uuid::Uuid,
    /// Inserted, updated or unchanged.
    pub outcome: RowOutcome,
}

/// A session to upsert on (`kintell`, `external_session_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionWrite {
    /// The id a new row gets (UUIDv7); an existing row keeps its id.
    pub id: ActivityId,
    /// The values (its emails are informative; the people are the ids below).
    pub row: SessionRow,
    /// The participant.
    pub participant_id: UserId,
    /// The volunteer.
    pub volunteer_id: UserId,
    /// The instance to link; `None` leaves a stored link as it is (never overwritten with NULL).
    pub program_instance_id: Option<InstanceId>,
    /// Lineage.
    pub source: RowSource,
    /// `updated_at` of an inserted or changed row (and `created_at` of an inserted one).
    pub now: DateTime<Utc>,
}

/// The idempotency key of a buddy match, people resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MatchKey {
    /// The participant.
    pub participant_id: UserId,
    /// The buddy.
    pub buddy_id: UserId,
    /// When the match was made.
    pub matched_at: DateTime<Utc>,
}

/// A buddy match to upsert on (`participant_id`, `buddy_id`, `matched_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchWrite {
    /// The id a new row gets (UUIDv7).
    pub id: ActivityId,
    /// The values.
    pub row: MatchRow,
    /// The key, people resolved (its time equals `row.matched_at`).
    pub key: MatchKey,
    /// The instance to link; `None` leaves a stored link as it is.
    pub program_instance_id: Option<InstanceId>,
    /// Lineage.
    pub source: RowSource,
    /// `updated_at` of an inserted or changed row.
    pub now: DateTime<Utc>,
}

/// The idempotency key of a course completion, learner resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CompletionKey {
    /// The learner.
    pub user_id: UserId,
    /// The provider (lower-case).
    pub provider: Provider,
    /// The provider's course id (case-sensitive).
    pub course_id: CourseId,
}

/// A course completion to upsert on (`user_id`, `provider`, `course_id`); stored with `status = completed` and
/// `progress_percent = 100`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionWrite {
    /// The id a new row gets (UUIDv7).
    pub id: ActivityId,
    /// The values.
    pub row: CompletionRow,
    /// The key, learner resolved.
    pub key: CompletionKey,
    /// The instance to link; `None` leaves a stored link as it is.
    pub program_instance_id: Option<InstanceId>,
    /// Lineage.
    pub source: RowSource,
    /// `updated_at` of an inserted or changed row.
    pub now: DateTime<Utc>,
}

/// A user row of the users export, merged with the stored user by the pipeline, to upsert by email; its
/// `user_external_ids` row (`provider = 'kintell'`, `external_id = email`) is ensured and carries the lineage in its
/// `metadata` (`{"batch_id": …, "source_row_number": …}`), since `users` has no lineage columns.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    /// The full row as it must be stored (its id is the stable id of the email).
    pub user: User,
    /// `created_at` of a user this write creates (the export's `joined_kg_at`, or the import time).
    pub created_at: DateTime<Utc>,
    /// Lineage, kept on the external id row.
    pub source: RowSource,
    /// `updated_at` of an inserted or changed row.
    pub now: DateTime<Utc>,
}

/// A programme enrolment, written when an activity is linked to an instance. Unique on (`user_id`,
/// `program_instance_id`, `role`); a stored enrolment keeps its id and the earlier `enrolled_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The id a new row gets (UUIDv7).
    pub id: uuid::Uuid,
    /// The person.
    pub user_id: UserId,
    /// The instance.
    pub program_instance_id: InstanceId,
    /// The instance's programme type.
    pub program_type: ProgramType,
    /// Participant or volunteer.
    pub role: EnrollmentRole,
    /// The time of the first linked activity.
    pub enrolled_at: DateTime<Utc>,
}

/// A row of `ingestion_row_errors`; unique on (`batch_id`, `row_number`): writing it again rewrites it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowErrorRecord {
    /// The batch.
    pub batch_id: BatchId,
    /// 1-based data record number.
    pub row_number: i64,
    /// Physical line where the record starts.
    pub line_number: i64,
    /// The first problem's code (`missing_field`, `unknown_user`, …).
    pub code: String,
    /// The first problem's field (canonical name), if any.
    pub field: Option<String>,
    /// One line.
    pub message: String,
    /// All problems of the row, `[{code, field, message}, …]`.
    pub details: Option<serde_json::Value>,
    /// The record's values in file order (a JSON array of strings, see schema.md).
    pub raw_record: serde_json::Value,
}

/// A session as stored, in the terms of a file row: what a webhook event about it merges with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// The stored row's id.
    pub id: ActivityId,
    /// Its values, with its people's emails; `program_ref` is always `None` (the link is `program_instance_id`).
    pub row: SessionRow,
}

/// A row of `webhook_deliveries`: an applied webhook delivery and the response it got, replayed for a delivery id
/// seen again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The delivery id (primary key).
    pub delivery_id: DeliveryId,
    /// The event.
    pub event: WebhookEvent,
    /// When the delivery was received.
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the raw body, lower-case hex.
    pub body_sha256: String,
    /// The HTTP status the delivery was answered with.
    pub response_status: u16,
    /// The JSON body it was answered with.
    pub response_body: serde_json::Value,
    /// The batch the delivery wrote (`None` once that batch is deleted).
    pub batch_id: Option<BatchId>,
}
