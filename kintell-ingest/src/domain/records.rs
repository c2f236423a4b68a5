//! Stored records: the rows of the catalogue, the batch ledger and the associations, as domain values.
//!
//! Every field is already a parsed domain value, so the fields are public; rows read back from a database are
//! parsed into these again.

use super::{ActivityId, AssociationId};
use super::{
    ActivityKind, BatchId, BatchStatus, CampaignId, CampaignStatus, CompanyId, Confidence,
    Decision, Email, EntityKind, GroupId, GroupType, ImportMethod, InstanceId, InstanceStatus, Key,
    Name, PersonName, ProgramSlug, ProgramType, RequestedAction, RunId, Tags, UserId, UserRole,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A row of `companies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// Stable id of the slug.
    pub id: CompanyId,
    /// Unique slug (the catalogue key).
    pub slug: Key,
    /// Display name.
    pub name: Name,
}

/// A row of `beneficiary_groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeneficiaryGroup {
    /// Stable id of the key.
    pub id: GroupId,
    /// Unique key.
    pub key: Key,
    /// Display name.
    pub name: Name,
    /// Free-form type, e.g. `refugees`.
    pub group_type: GroupType,
    /// Normalised tags: the profile a participant's tags are matched against.
    pub tags: Tags,
    /// Whether the group is in use (plays no part in association).
    pub is_active: bool,
}

/// A row of `campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Stable id of the key.
    pub id: CampaignId,
    /// Unique key.
    pub key: Key,
    /// Display name.
    pub name: Name,
    /// The company running it.
    pub company_id: CompanyId,
    /// The group it serves.
    pub beneficiary_group_id: GroupId,
    /// The programme kind it is limited to; `None` accepts every kind.
    pub program_type: Option<ProgramType>,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive; never before `start_date`.
    pub end_date: NaiveDate,
    /// Lifecycle status.
    pub status: CampaignStatus,
    /// Whether it takes part in association.
    pub is_active: bool,
    /// Volunteers wanted.
    pub target_volunteers: i32,
    /// Beneficiaries wanted; the capacity measure when `max_sessions` is absent.
    pub target_beneficiaries: i32,
    /// Session capacity.
    pub max_sessions: Option<i32>,
}

/// A row of `program_instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramInstance {
    /// Stable id of the slug.
    pub id: InstanceId,
    /// Unique slug.
    pub slug: ProgramSlug,
    /// Display name.
    pub program_name: Name,
    /// Programme kind.
    pub program_type: ProgramType,
    /// Owning company, if any.
    pub company_id: Option<CompanyId>,
    /// The campaign it belongs to, if any.
    pub campaign_id: Option<CampaignId>,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive; `None` means ongoing.
    pub end_date: Option<NaiveDate>,
    /// Lifecycle status.
    pub status: InstanceStatus,
    /// The system it comes from, e.g. `kintell` for instances named by a file.
    pub external_system: Option<String>,
    /// When it was first created; a later re-import keeps it.
    pub created_at: DateTime<Utc>,
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id of the lower-cased email.
    pub id: UserId,
    /// Unique, lower-cased.
    pub email: Email,
    /// Role.
    pub role: UserRole,
    /// First name.
    pub first_name: Option<PersonName>,
    /// Last name.
    pub last_name: Option<PersonName>,
    /// The company a volunteer works for (the key to association).
    pub company_id: Option<CompanyId>,
    /// Normalised tags: the beneficiary profile used for scoring.
    pub tags: Tags,
    /// Journey flags (`kintell_source`, `verification_status`, …), a JSON object.
    pub journey_flags: serde_json::Map<String, serde_json::Value>,
}

/// What a new batch is created with; everything else starts at its default (`pending`, counters 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBatch {
    /// UUIDv7 chosen by the caller.
    pub id: BatchId,
    /// The file's name (base name for uploads; `webhook:<event>:<delivery>` for webhooks).
    pub file_name: String,
    /// Lower-case hex SHA-256 of the raw bytes.
    pub file_hash: String,
    /// Size in bytes.
    pub file_size_bytes: Option<i64>,
    /// What the batch ingests.
    pub entity_kind: EntityKind,
    /// Detected format id (`unknown` when none was detected, `legacy` for adopted rows).
    pub format: String,
    /// Programme kind of the batch.
    pub program_type: ProgramType,
    /// The instance every row is linked to, when the batch has one.
    pub program_instance_id: Option<InstanceId>,
    /// `kintell` unless told otherwise.
    pub source_system: String,
    /// How the rows arrived.
    pub import_method: ImportMethod,
    /// Number of data records found by the pre-pass.
    pub total_rows: i64,
    /// Header, format, unknown columns, comments, instance detection (JSON object).
    pub csv_metadata: serde_json::Value,
    /// Who started it (a service name or an operator).
    pub imported_by_service: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A row of `ingestion_batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Id (UUIDv7).
    pub id: BatchId,
    /// The file's name.
    pub file_name: String,
    /// Lower-case hex SHA-256 of the raw bytes.
    pub file_hash: String,
    /// Size in bytes.
    pub file_size_bytes: Option<i64>,
    /// What the batch ingests.
    pub entity_kind: EntityKind,
    /// Detected format id.
    pub format: String,
    /// Programme kind.
    pub program_type: ProgramType,
    /// The batch's instance, if any.
    pub program_instance_id: Option<InstanceId>,
    /// Source system.
    pub source_system: String,
    /// How the rows arrived.
    pub import_method: ImportMethod,
    /// Lifecycle status.
    pub status: BatchStatus,
    /// Data records in the file.
    pub total_rows: i64,
    /// `inserted_rows + updated_rows`.
    pub success_rows: i64,
    /// Rows inserted.
    pub inserted_rows: i64,
    /// Rows changed.
    pub updated_rows: i64,
    /// Rows found unchanged.
    pub skipped_rows: i64,
    /// Rows rejected.
    pub error_rows: i64,
    /// Records processed so far: the resume point.
    pub last_processed_row: i64,
    /// Where the CLI last wrote the error CSV.
    pub error_file_path: Option<String>,
    /// See [`NewBatch::csv_metadata`].
    pub csv_metadata: serde_json::Value,
    /// Who started it.
    pub imported_by_service: Option<String>,
    /// `{"by_code": …, "first": […]}`.
    pub error_summary: Option<serde_json::Value>,
    /// The worker holding the batch.
    pub lease_owner: Option<String>,
    /// Until when it holds it.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Why it failed or paused.
    pub last_error: Option<String>,
    /// A pause or cancel request waiting for the worker.
    pub requested_action: Option<RequestedAction>,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// Completion.
    pub completed_at: Option<DateTime<Utc>>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a stored activity row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityLineage {
    /// The batch that last inserted or changed the row.
    pub batch_id: Option<BatchId>,
    /// The batch that first inserted it.
    pub first_batch_id: Option<BatchId>,
    /// Its data record number in the file of `batch_id`.
    pub source_row_number: Option<i64>,
    /// The programme instance it is linked to.
    pub program_instance_id: Option<InstanceId>,
}

/// A row of `activity_associations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    /// Id (UUIDv7); also the review item's id.
    pub id: AssociationId,
    /// Which table the activity is in.
    pub activity_kind: ActivityKind,
    /// The activity row.
    pub activity_id: ActivityId,
    /// The proposed or chosen campaign.
    pub campaign_id: Option<CampaignId>,
    /// The proposed or chosen instance (kept whatever the decision).
    pub program_instance_id: Option<InstanceId>,
    /// 0..=100.
    pub confidence: Confidence,
    /// The decision.
    pub decision: Decision,
    /// `[{code, points, detail}, …]`.
    pub reasons: serde_json::Value,
    /// Scoring policy version.
    pub policy_version: String,
    /// Top three candidates `[{campaign, total, confidence}, …]`.
    pub candidates: serde_json::Value,
    /// The batch that decided it.
    pub batch_id: Option<BatchId>,
    /// The backfill run that decided it.
    pub run_id: Option<RunId>,
    /// Who decided, for human decisions.
    pub decided_by: Option<String>,
    /// When a human decided.
    pub decided_at: Option<DateTime<Utc>>,
}
