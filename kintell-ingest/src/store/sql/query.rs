//! Statements of the SQL stores, built with sea-query for either backend, and the multi-row upsert.

use super::{Backend, fetch, position, rowdoc, translate};
use crate::association::DecidedAssociation;
use crate::domain::{
    ActivityId, ActivityKind, Association, AssociationId, BatchId, BatchRecord, BeneficiaryGroup,
    Campaign, CampaignId, Company, CompletionKey, CompletionWrite, Confidence, CourseStatus,
    Decision, Enrollment, EntityKind, InstanceId, MatchKey, MatchWrite, NewBatch, ProgramInstance,
    RowErrorRecord, RowSource, RunId, SessionId, SessionWrite, Tags, User, UserWrite,
};
use crate::ports::{BatchFilter, BatchGuard, StoreError, StoreResult, UpsertCounts};
use crate::store::lineage;
use chrono::{DateTime, NaiveDate, Utc};
use sea_query::{
    Expr, ExprTrait, Func, InsertStatement, IntoIden, OnConflict, Order, Query, SelectStatement,
    TableRef, UpdateStatement, Value,
};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A table and the columns a read of it selects (what its domain record needs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) columns: &'static [&'static str],
}

pub(super) const COMPANIES: Table = Table {
    name: "companies",
    columns: &["id", "slug", "name"],
};

pub(super) const GROUPS: Table = Table {
    name: "beneficiary_groups",
    columns: &["id", "key", "name", "group_type", "tags", "is_active"],
};

pub(super) const CAMPAIGNS: Table = Table {
    name: "campaigns",
    columns: &[
        "id",
        "key",
        "name",
        "company_id",
        "beneficiary_group_id",
        "program_type",
        "start_date",
        "end_date",
        "status",
        "is_active",
        "target_volunteers",
        "target_beneficiaries",
        "max_sessions",
    ],
};

pub(super) const INSTANCES: Table = Table {
    name: "program_instances",
    columns: &[
        "id",
        "program_slug",
        "program_name",
        "program_type",
        "company_id",
        "campaign_id",
        "start_date",
        "end_date",
        "status",
        "external_system",
        "created_at",
    ],
};

pub(super) const USERS: Table = Table {
    name: "users",
    columns: &[
        "id",
        "email",
        "role",
        "first_name",
        "last_name",
        "company_id",
        "tags",
        "journey_flags",
    ],
};

pub(super) const ASSOCIATIONS: Table = Table {
    name: "activity_associations",
    columns: &[
        "id",
        "activity_kind",
        "activity_id",
        "campaign_id",
        "program_instance_id",
        "confidence",
        "decision",
        "reasons",
        "policy_version",
        "candidates",
        "batch_id",
        "run_id",
        "decided_by",
        "decided_at",
    ],
};

pub(super) const BATCHES: Table = Table {
    name: "ingestion_batches",
    columns: &[
        "id",
        "file_name",
        "file_hash",
        "file_size_bytes",
        "entity_kind",
        "format",
        "program_type",
        "program_instance_id",
        "source_system",
        "import_method",
        "status",
        "total_rows",
        "success_rows",
        "inserted_rows",
        "updated_rows",
        "skipped_rows",
        "error_rows",
        "last_processed_row",
        "error_file_path",
        "csv_metadata",
        "imported_by_service",
        "error_summary",
        "lease_owner",
        "lease_expires_at",
        "last_error",
        "requested_action",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
    ],
};

/// The table holding activities of `kind`.
pub(super) const fn activity_table(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::KintellSession => "kintell_sessions",
        ActivityKind::BuddyMatch => "buddy_matches",
        ActivityKind::CourseCompletion => "learning_progress",
    }
}

// --- Reads ---------------------------------------------------------------------------------------------------

fn select(table: Table) -> SelectStatement {
    Query::select()
        .columns(table.columns.iter().copied())
        .from(table.name)
        .to_owned()
}

/// Every row, by id.
pub(super) fn all(table: Table) -> SelectStatement {
    select(table).order_by("id", Order::Asc).to_owned()
}

/// The row with this id.
pub(super) fn by_id(table: Table, id: Uuid) -> SelectStatement {
    select(table).and_where(Expr::col("id").eq(id)).to_owned()
}

/// The rows whose text `column` is one of `keys`.
pub(super) fn by_texts<'a>(
    table: Table,
    column: &'static str,
    keys: impl IntoIterator<Item = &'a str>,
) -> SelectStatement {
    select(table)
        .and_where(Expr::col(column).is_in(keys.into_iter().map(text)))
        .to_owned()
}

/// The rows whose text `column` is one of `keys`, in as few statements as the backend allows: where rows travel
/// as JSON, the keys are one document (`column IN (SELECT json_array_elements_text(…))`), one parameter and one
/// statement text whatever their number; else an `IN` list of bind parameters.
pub(super) fn by_text_list<B: Backend>(
    table: Table,
    column: &'static str,
    keys: &[&str],
) -> StoreResult<SelectStatement> {
    if !B::ROWS_AS_JSON {
        return Ok(by_texts(table, column, keys.iter().copied()));
    }
    let doc = serde_json::to_string(keys).map_err(|e| StoreError::Backend {
        message: "writing a JSON key document".to_owned(),
        source: Box::new(e),
    })?;
    let mut list = Query::select();
    list.expr(
        Func::cust("json_array_elements_text").arg(Func::cast_as(Value::String(Some(doc)), "json")),
    );
    Ok(select(table)
        .and_where(Expr::col(column).in_subquery(list))
        .to_owned())
}

/// `COUNT(*)` of a table, as column `n`.
pub(super) fn count(table: &'static str) -> SelectStatement {
    Query::select()
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .from(table)
        .to_owned()
}

/// How many rows of `table` have one of these ids, as column `n`.
pub(super) fn count_ids(table: &'static str, ids: &[Uuid]) -> SelectStatement {
    Query::select()
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .from(table)
        .and_where(Expr::col("id").is_in(ids.iter().copied().map(uuid)))
        .to_owned()
}

/// The lineage columns of one activity.
pub(super) fn lineage(table: &'static str, id: ActivityId) -> SelectStatement {
    Query::select()
        .columns([
            "batch_id",
            "first_batch_id",
            "source_row_number",
            "program_instance_id",
        ])
        .from(table)
        .and_where(Expr::col("id").eq(id.uuid()))
        .to_owned()
}

/// The association of one activity.
pub(super) fn association_for(kind: ActivityKind, id: ActivityId) -> SelectStatement {
    select(ASSOCIATIONS)
        .and_where(Expr::col("activity_kind").eq(kind.as_str()))
        .and_where(Expr::col("activity_id").eq(id.uuid()))
        .to_owned()
}

/// Batches newest first: by `created_at`, then id, both descending.
fn newest_first(stmt: &mut SelectStatement) -> &mut SelectStatement {
    stmt.order_by("created_at", Order::Desc)
        .order_by("id", Order::Desc)
}

pub(super) fn batch_by_id(id: BatchId) -> SelectStatement {
    by_id(BATCHES, id.uuid())
}

pub(super) fn list_batches(filter: &BatchFilter) -> SelectStatement {
    let mut stmt = select(BATCHES);
    if let Some(status) = filter.status {
        stmt.and_where(Expr::col("status").eq(status.as_str()));
    }
    if let Some(entity) = filter.entity_kind {
        stmt.and_where(Expr::col("entity_kind").eq(entity.as_str()));
    }
    newest_first(&mut stmt);
    if let Some(limit) = filter.limit {
        stmt.limit(u64::from(limit));
    }
    stmt
}

/// Batches of `entity` whose text `column` equals `value`, newest first.
pub(super) fn batches_where(
    entity: EntityKind,
    column: &'static str,
    value: &str,
) -> SelectStatement {
    let mut stmt = select(BATCHES);
    stmt.and_where(Expr::col("entity_kind").eq(entity.as_str()))
        .and_where(Expr::col(column).eq(value));
    newest_first(&mut stmt);
    stmt
}

// --- Values --------------------------------------------------------------------------------------------------

fn text(s: &str) -> Value {
    Value::String(Some(s.to_owned()))
}

fn opt_text(s: Option<&str>) -> Value {
    Value::String(s.map(str::to_owned))
}

fn uuid(u: Uuid) -> Value {
    Value::Uuid(Some(u))
}

fn opt_uuid(u: Option<Uuid>) -> Value {
    Value::Uuid(u)
}

fn date(d: NaiveDate) -> Value {
    Value::ChronoDate(Some(d))
}

fn opt_date(d: Option<NaiveDate>) -> Value {
    Value::ChronoDate(d)
}

fn tags_json(tags: &Tags) -> serde_json::Value {
    serde_json::Value::Array(
        tags.as_slice()
            .iter()
            .map(|t| serde_json::Value::String(t.as_str().to_owned()))
            .collect(),
    )
}

/// A row to upsert: its conflict key (a discriminant and a UUID) and its values in the spec's column order.
pub(super) struct KeyedRow {
    key: (&'static str, Uuid),
    values: Vec<Value>,
}

impl KeyedRow {
    fn by_id(id: Uuid, values: Vec<Value>) -> Self {
        KeyedRow {
            key: ("", id),
            values,
        }
    }
}

pub(super) fn company_row<B: Backend>(c: &Company) -> KeyedRow {
    KeyedRow::by_id(
        c.id.uuid(),
        vec![
            uuid(c.id.uuid()),
            text(c.slug.as_str()),
            text(c.name.as_str()),
        ],
    )
}

pub(super) fn group_row<B: Backend>(g: &BeneficiaryGroup) -> KeyedRow {
    KeyedRow::by_id(
        g.id.uuid(),
        vec![
            uuid(g.id.uuid()),
            text(g.key.as_str()),
            text(g.name.as_str()),
            text(g.group_type.as_str()),
            B::json(Some(&tags_json(&g.tags))),
            Value::Bool(Some(g.is_active)),
        ],
    )
}

pub(super) fn campaign_row<B: Backend>(c: &Campaign) -> KeyedRow {
    KeyedRow::by_id(
        c.id.uuid(),
        vec![
            uuid(c.id.uuid()),
            text(c.key.as_str()),
            text(c.name.as_str()),
            uuid(c.company_id.uuid()),
            uuid(c.beneficiary_group_id.uuid()),
            opt_text(c.program_type.map(|p| p.as_str())),
            date(c.start_date),
            date(c.end_date),
            text(c.status.as_str()),
            Value::Bool(Some(c.is_active)),
            Value::Int(Some(c.target_volunteers)),
            Value::Int(Some(c.target_beneficiaries)),
            Value::Int(c.max_sessions),
        ],
    )
}

pub(super) fn instance_row<B: Backend>(i: &ProgramInstance) -> KeyedRow {
    KeyedRow::by_id(
        i.id.uuid(),
        vec![
            uuid(i.id.uuid()),
            text(i.slug.as_str()),
            text(i.program_name.as_str()),
            text(i.program_type.as_str()),
            opt_uuid(i.company_id.map(|c| c.uuid())),
            opt_uuid(i.campaign_id.map(|c| c.uuid())),
            date(i.start_date),
            opt_date(i.end_date),
            text(i.status.as_str()),
            opt_text(i.external_system.as_deref()),
            B::timestamp(Some(i.created_at)),
        ],
    )
}

pub(super) fn user_row<B: Backend>(u: &User) -> KeyedRow {
    KeyedRow::by_id(
        u.id.uuid(),
        vec![
            uuid(u.id.uuid()),
            text(u.email.as_str()),
            text(u.role.as_str()),
            opt_text(u.first_name.as_ref().map(|n| n.as_str())),
            opt_text(u.last_name.as_ref().map(|n| n.as_str())),
            opt_uuid(u.company_id.map(|c| c.uuid())),
            B::json(Some(&tags_json(&u.tags))),
            B::json(Some(&serde_json::Value::Object(u.journey_flags.clone()))),
        ],
    )
}

/// An association as the store writes it: a record, or a decided association whose explanation is written as JSON
/// text from its outcome.
pub(super) trait AssociationWrite {
    /// The activity's kind and id: the key.
    fn activity(&self) -> (ActivityKind, ActivityId);

    /// The batch that decided it, if a batch did.
    fn batch(&self) -> Option<BatchId>;

    /// Its values in the order of the columns, `reasons` and `candidates` as bound by backend `B` (`copy`: as
    /// their JSON text, for COPY).
    fn values<B: Backend>(&self, copy: bool) -> StoreResult<Vec<Value>>;
}

impl AssociationWrite for Association {
    fn activity(&self) -> (ActivityKind, ActivityId) {
        (self.activity_kind, self.activity_id)
    }

    fn batch(&self) -> Option<BatchId> {
        self.batch_id
    }

    fn values<B: Backend>(&self, copy: bool) -> StoreResult<Vec<Value>> {
        let (reasons, candidates) = if copy {
            // COPY reads a `jsonb` column from its text, written from the documents where they are.
            (json_text(&self.reasons)?, json_text(&self.candidates)?)
        } else {
            (
                B::json(Some(&self.reasons)),
                B::json(Some(&self.candidates)),
            )
        };
        Ok(association_values::<B>(
            AssociationFields {
                id: self.id,
                kind: self.activity_kind,
                activity: self.activity_id,
                campaign: self.campaign_id,
                instance: self.program_instance_id,
                confidence: self.confidence,
                decision: self.decision,
                policy_version: &self.policy_version,
                batch: self.batch_id,
                run: self.run_id,
                decided_by: self.decided_by.as_deref(),
                decided_at: self.decided_at,
            },
            reasons,
            candidates,
        ))
    }
}

impl AssociationWrite for DecidedAssociation {
    fn activity(&self) -> (ActivityKind, ActivityId) {
        (self.activity_kind, self.activity_id)
    }

    fn batch(&self) -> Option<BatchId> {
        self.batch_id()
    }

    fn values<B: Backend>(&self, copy: bool) -> StoreResult<Vec<Value>> {
        let o = &self.outcome;
        let (reasons, candidates) = if copy {
            (
                Value::String(Some(o.reasons_text())),
                Value::String(Some(o.candidates_text())),
            )
        } else {
            (
                B::json_text(o.reasons_text()),
                B::json_text(o.candidates_text()),
            )
        };
        Ok(association_values::<B>(
            AssociationFields {
                id: self.id,
                kind: self.activity_kind,
                activity: self.activity_id,
                campaign: o.campaign,
                instance: o.instance,
                confidence: o.confidence,
                decision: o.decision,
                policy_version: &self.policy_version,
                batch: self.batch_id(),
                run: self.run_id(),
                decided_by: None,
                decided_at: None,
            },
            reasons,
            candidates,
        ))
    }
}

/// The columns of an association but its explanation.
struct AssociationFields<'a> {
    id: AssociationId,
    kind: ActivityKind,
    activity: ActivityId,
    campaign: Option<CampaignId>,
    instance: Option<InstanceId>,
    confidence: Confidence,
    decision: Decision,
    policy_version: &'a str,
    batch: Option<BatchId>,
    run: Option<RunId>,
    decided_by: Option<&'a str>,
    decided_at: Option<DateTime<Utc>>,
}

/// The row of an association for the upsert statement.
pub(super) fn association_row<B: Backend>(a: &impl AssociationWrite) -> StoreResult<KeyedRow> {
    let (kind, activity) = a.activity();
    Ok(KeyedRow {
        key: (kind.as_str(), activity.uuid()),
        values: a.values::<B>(false)?,
    })
}

/// The values of an association in the order of its columns, with its explanation as given.
fn association_values<B: Backend>(
    a: AssociationFields<'_>,
    reasons: Value,
    candidates: Value,
) -> Vec<Value> {
    vec![
        uuid(a.id.uuid()),
        text(a.kind.as_str()),
        uuid(a.activity.uuid()),
        opt_uuid(a.campaign.map(|c| c.uuid())),
        opt_uuid(a.instance.map(|i| i.uuid())),
        Value::SmallInt(Some(i16::from(a.confidence.get()))),
        text(a.decision.as_str()),
        reasons,
        text(a.policy_version),
        candidates,
        opt_uuid(a.batch.map(|b| b.uuid())),
        opt_uuid(a.run.map(|r| r.uuid())),
        opt_text(a.decided_by),
        B::timestamp(a.decided_at),
    ]
}

/// The key of an association: the activity's kind and id.
pub(super) fn association_key(a: &impl AssociationWrite) -> [Value; 2] {
    let (kind, activity) = a.activity();
    [text(kind.as_str()), uuid(activity.uuid())]
}

/// A JSON document's text, as a text value.
fn json_text(v: &serde_json::Value) -> StoreResult<Value> {
    serde_json::to_string(v)
        .map(|text| Value::String(Some(text)))
        .map_err(|e| StoreError::Backend {
            message: "writing an association's explanation".to_owned(),
            source: Box::new(e),
        })
}

// --- Batches -------------------------------------------------------------------------------------------------

/// Inserts a new batch (`pending`, counters 0, `updated_at = created_at`) and returns it as stored.
pub(super) fn insert_batch<B: Backend>(b: &NewBatch) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(BATCHES.name)
        .columns([
            "id",
            "file_name",
            "file_hash",
            "file_size_bytes",
            "entity_kind",
            "format",
            "program_type",
            "program_instance_id",
            "source_system",
            "import_method",
            "status",
            "total_rows",
            "success_rows",
            "inserted_rows",
            "updated_rows",
            "skipped_rows",
            "error_rows",
            "last_processed_row",
            "csv_metadata",
            "imported_by_service",
            "created_at",
            "updated_at",
        ])
        .values(
            [
                uuid(b.id.uuid()),
                text(&b.file_name),
                text(&b.file_hash),
                Value::BigInt(b.file_size_bytes),
                text(b.entity_kind.as_str()),
                text(&b.format),
                text(b.program_type.as_str()),
                opt_uuid(b.program_instance_id.map(|i| i.uuid())),
                text(&b.source_system),
                text(b.import_method.as_str()),
                text(crate::domain::BatchStatus::Pending.as_str()),
                Value::BigInt(Some(b.total_rows)),
                Value::BigInt(Some(0)),
                Value::BigInt(Some(0)),
                Value::BigInt(Some(0)),
                Value::BigInt(Some(0)),
                Value::BigInt(Some(0)),
                Value::BigInt(Some(0)),
                B::json(Some(&b.csv_metadata)),
                opt_text(b.imported_by_service.as_deref()),
                B::timestamp(Some(b.created_at)),
                B::timestamp(Some(b.created_at)),
            ]
            .into_iter()
            .map(Expr::from),
        )
        .map_err(build_error)?;
    stmt.returning(Query::returning().columns(BATCHES.columns.iter().copied()));
    Ok(stmt)
}

/// Overwrites every column of a batch but `id` and `created_at` where the stored row still matches `guard`;
/// `updated_at` is the caller's (its clock, not the database's).
pub(super) fn save_batch<B: Backend>(b: &BatchRecord, guard: &BatchGuard) -> UpdateStatement {
    let lease_guard = match &guard.lease_owner {
        Some(owner) => Expr::col("lease_owner").eq(owner.as_str()),
        None => Expr::col("lease_owner").is_null(),
    };
    Query::update()
        .table(BATCHES.name)
        .values([
            ("file_name", Expr::from(text(&b.file_name))),
            ("file_hash", text(&b.file_hash).into()),
            ("file_size_bytes", Value::BigInt(b.file_size_bytes).into()),
            ("entity_kind", text(b.entity_kind.as_str()).into()),
            ("source_system", text(&b.source_system).into()),
            ("import_method", text(b.import_method.as_str()).into()),
            (
                "imported_by_service",
                opt_text(b.imported_by_service.as_deref()).into(),
            ),
            ("format", text(&b.format).into()),
            ("program_type", text(b.program_type.as_str()).into()),
            (
                "program_instance_id",
                opt_uuid(b.program_instance_id.map(|i| i.uuid())).into(),
            ),
            ("status", text(b.status.as_str()).into()),
            ("total_rows", Value::BigInt(Some(b.total_rows)).into()),
            ("success_rows", Value::BigInt(Some(b.success_rows)).into()),
            ("inserted_rows", Value::BigInt(Some(b.inserted_rows)).into()),
            ("updated_rows", Value::BigInt(Some(b.updated_rows)).into()),
            ("skipped_rows", Value::BigInt(Some(b.skipped_rows)).into()),
            ("error_rows", Value::BigInt(Some(b.error_rows)).into()),
            (
                "last_processed_row",
                Value::BigInt(Some(b.last_processed_row)).into(),
            ),
            (
                "error_file_path",
                opt_text(b.error_file_path.as_deref()).into(),
            ),
            ("csv_metadata", B::json(Some(&b.csv_metadata)).into()),
            ("error_summary", B::json(b.error_summary.as_ref()).into()),
            ("lease_owner", opt_text(b.lease_owner.as_deref()).into()),
            ("lease_expires_at", B::timestamp(b.lease_expires_at).into()),
            ("last_error", opt_text(b.last_error.as_deref()).into()),
            (
                "requested_action",
                opt_text(b.requested_action.map(|r| r.as_str())).into(),
            ),
            ("started_at", B::timestamp(b.started_at).into()),
            ("completed_at", B::timestamp(b.completed_at).into()),
            ("updated_at", B::timestamp(Some(b.updated_at)).into()),
        ])
        .and_where(Expr::col("id").eq(b.id.uuid()))
        .and_where(lease_guard)
        .and_where(Expr::col("status").eq(guard.status.as_str()))
        .and_where(Expr::col("last_processed_row").eq(guard.last_processed_row))
        .and_where(match guard.requested_action {
            Some(action) => Expr::col("requested_action").eq(action.as_str()),
            None => Expr::col("requested_action").is_null(),
        })
        .to_owned()
}

fn build_error(e: sea_query::error::Error) -> StoreError {
    StoreError::Backend {
        message: "building a statement".to_owned(),
        source: Box::new(e),
    }
}

// --- Upserts -------------------------------------------------------------------------------------------------

/// How one kind of row is upserted.
pub(super) struct Upsert {
    /// The table.
    pub(super) table: &'static str,
    /// The inserted columns, in the order of [`KeyedRow::values`].
    pub(super) columns: &'static [&'static str],
    /// The conflict target: the primary key, or the natural key for associations.
    conflict: &'static [&'static str],
    /// The columns an update overwrites; the row changes only when one of them differs.
    updated: &'static [&'static str],
    /// Whether the table has an `updated_at` to set on change.
    touches: bool,
    /// A further condition on the existing row for an update to happen (stickiness).
    sticky: Option<&'static str>,
}

pub(super) const UPSERT_COMPANIES: Upsert = Upsert {
    table: "companies",
    columns: COMPANIES.columns,
    conflict: &["id"],
    updated: &["slug", "name"],
    touches: true,
    sticky: None,
};

pub(super) const UPSERT_GROUPS: Upsert = Upsert {
    table: "beneficiary_groups",
    columns: GROUPS.columns,
    conflict: &["id"],
    updated: &["key", "name", "group_type", "tags", "is_active"],
    touches: true,
    sticky: None,
};

pub(super) const UPSERT_CAMPAIGNS: Upsert = Upsert {
    table: "campaigns",
    columns: CAMPAIGNS.columns,
    conflict: &["id"],
    updated: &[
        "key",
        "name",
        "company_id",
        "beneficiary_group_id",
        "program_type",
        "start_date",
        "end_date",
        "status",
        "is_active",
        "target_volunteers",
        "target_beneficiaries",
        "max_sessions",
    ],
    touches: true,
    sticky: None,
};

/// `created_at` is inserted but never updated: a re-import keeps the first creation time.
pub(super) const UPSERT_INSTANCES: Upsert = Upsert {
    table: "program_instances",
    columns: INSTANCES.columns,
    conflict: &["id"],
    updated: &[
        "program_slug",
        "program_name",
        "program_type",
        "company_id",
        "campaign_id",
        "start_date",
        "end_date",
        "status",
        "external_system",
    ],
    touches: true,
    sticky: None,
};

pub(super) const UPSERT_USERS: Upsert = Upsert {
    table: "users",
    columns: USERS.columns,
    conflict: &["id"],
    updated: &[
        "email",
        "role",
        "first_name",
        "last_name",
        "company_id",
        "tags",
        "journey_flags",
    ],
    touches: true,
    sticky: None,
};

/// Keyed by activity; the stored id is kept. A human decision never changes and an `explicit` one only gives way
/// to another `explicit` one: the condition is part of the statement, so no concurrent writer can slip between a
/// read and the write.
pub(super) const UPSERT_ASSOCIATIONS: Upsert = Upsert {
    table: "activity_associations",
    columns: ASSOCIATIONS.columns,
    conflict: &["activity_kind", "activity_id"],
    updated: &[
        "campaign_id",
        "program_instance_id",
        "confidence",
        "decision",
        "reasons",
        "policy_version",
        "candidates",
        "batch_id",
        "run_id",
        "decided_by",
        "decided_at",
    ],
    touches: true,
    sticky: Some(
        "\"activity_associations\".\"decision\" NOT IN ('accepted', 'rejected') \
         AND (\"activity_associations\".\"decision\" <> 'explicit' OR \"excluded\".\"decision\" = 'explicit')",
    ),
};

impl Upsert {
    /// `t.c IS DISTINCT FROM excluded.c OR …` over the updated columns.
    fn differs(&self) -> String {
        let parts: Vec<String> = self
            .updated
            .iter()
            .map(|c| {
                format!(
                    "\"{t}\".\"{c}\" IS DISTINCT FROM \"excluded\".\"{c}\"",
                    t = self.table
                )
            })
            .collect();
        format!("({})", parts.join(" OR "))
    }

    /// Positions of the conflict columns among the inserted ones.
    fn conflict_positions(&self) -> Vec<usize> {
        self.conflict
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| c == k))
            .collect()
    }

    /// The multi-row upsert of `rows`, returning one row per inserted or changed row.
    fn statement<B: Backend>(&self, rows: Vec<Vec<Value>>) -> StoreResult<InsertStatement> {
        let mut stmt = Query::insert();
        stmt.into_table(self.table)
            .columns(self.columns.iter().copied());
        insert_rows::<B>(
            &mut stmt,
            self.table,
            self.columns,
            rows.into_iter().map(Cow::Owned),
        )?;
        let mut on_conflict = OnConflict::columns(self.conflict.iter().copied());
        on_conflict.update_columns(self.updated.iter().copied());
        if self.touches {
            on_conflict.value("updated_at", B::now());
        }
        on_conflict.action_and_where(Expr::cust(self.differs()));
        if let Some(sticky) = self.sticky {
            on_conflict.action_and_where(Expr::cust(sticky));
        }
        stmt.on_conflict(on_conflict);
        let returning = match B::inserted_marker() {
            Some(marker) => Query::returning().expr(marker),
            None => Query::returning().columns(self.conflict.iter().copied()),
        };
        stmt.returning(returning);
        Ok(stmt)
    }

    /// The positions (`ord`) of the keys a stored row has, among `keys` (values of the conflict columns).
    pub(super) fn present<'a, B: Backend>(
        &self,
        keys: impl IntoIterator<Item = (i64, &'a [Value])>,
    ) -> StoreResult<SelectStatement> {
        let mut stmt = Query::select();
        stmt.expr_as(ord_column(), "ord")
            .from(keys_source::<B>(keys)?)
            .inner_join(self.table, join_keys(self.table, self.conflict, None));
        Ok(stmt)
    }

    /// How many of the keys of `rows` exist already (for backends without an inserted marker).
    fn existing<B: Backend>(&self, rows: &[Vec<Value>]) -> SelectStatement {
        let positions = self.conflict_positions();
        let key = |values: &Vec<Value>| -> Vec<Value> {
            positions
                .iter()
                .filter_map(|&p| values.get(p).cloned())
                .collect()
        };
        let condition = if let [single] = self.conflict {
            Expr::col(*single).is_in(rows.iter().flat_map(key).map(Expr::from))
        } else {
            // A row value against a VALUES list: the form both backends accept for composite keys.
            let one = format!("({})", vec!["?"; positions.len()].join(", "));
            let list = vec![one; rows.len()].join(", ");
            let columns: Vec<String> = self.conflict.iter().map(|c| format!("\"{c}\"")).collect();
            Expr::cust_with_values(
                format!("({}) IN (VALUES {list})", columns.join(", ")),
                rows.iter().flat_map(key),
            )
        };
        Query::select()
            .expr_as(Expr::cust("COUNT(*)"), "n")
            .from(self.table)
            .and_where(condition)
            .to_owned()
    }
}

/// Upserts `rows` in as few statements as the bind limit allows; with `copy_new`, where the backend can, the rows
/// whose keys no stored row has are copied (see [`copy_new_rows`]).
///
/// A key repeated within one call goes to a later statement, so each statement touches a row at most once (which
/// PostgreSQL requires) and the counts are those of applying the rows one after another.
pub(super) async fn run_upsert<B: Backend>(
    conn: &mut B::Conn,
    spec: &Upsert,
    rows: Vec<KeyedRow>,
    copy_new: bool,
) -> StoreResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    let per_statement = super::rows_per_statement::<B>(spec.columns.len());
    for generation in generations(rows) {
        let mut rest = generation;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(per_statement));
            let chunk = std::mem::replace(&mut rest, tail);
            counts.add(upsert_chunk::<B>(conn, spec, chunk, copy_new).await?);
        }
    }
    Ok(counts)
}

/// Splits rows into runs in which no key repeats: the first occurrence of every key, then the second, ….
fn generations(rows: Vec<KeyedRow>) -> Vec<Vec<Vec<Value>>> {
    let mut seen: HashMap<(&'static str, Uuid), usize> = HashMap::with_capacity(rows.len());
    let mut generations: Vec<Vec<Vec<Value>>> = Vec::new();
    for row in rows {
        let n = seen.entry(row.key).or_insert(0);
        match generations.get_mut(*n) {
            Some(generation) => generation.push(row.values),
            None => generations.push(vec![row.values]),
        }
        *n += 1;
    }
    generations
}

/// Upserts rows whose keys are distinct: those no stored row has by COPY where the backend can, the others (or
/// all) with the upsert statement.
async fn upsert_chunk<B: Backend>(
    conn: &mut B::Conn,
    spec: &Upsert,
    rows: Vec<Vec<Value>>,
    copy_new: bool,
) -> StoreResult<UpsertCounts> {
    let doing = format!("upserting {}", spec.table);
    if !B::COPY_NEW_ROWS || !copy_new {
        return upsert_statement::<B>(conn, spec, rows, &doing).await;
    }
    let positions = spec.conflict_positions();
    let keys: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            positions
                .iter()
                .filter_map(|&p| r.get(p).cloned())
                .collect()
        })
        .collect();
    let present = spec.present::<B>(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (position(i), k.as_slice())),
    )?;
    let copied = copy_new_rows::<B, _>(
        conn,
        spec.table,
        spec.columns,
        &present,
        rows.iter().enumerate().map(|(i, r)| (position(i), r)),
        |r| Ok(Cow::Borrowed(r.as_slice())),
        &doing,
    )
    .await?;
    let mut counts = UpsertCounts {
        inserted: copied.len() as u64,
        ..UpsertCounts::default()
    };
    let rest: Vec<Vec<Value>> = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !copied.contains(&position(*i)))
        .map(|(_, r)| r)
        .collect();
    if !rest.is_empty() {
        counts.add(upsert_statement::<B>(conn, spec, rest, &doing).await?);
    }
    Ok(counts)
}

/// The savepoint a COPY of new rows runs under, so that a key found taken undoes the COPY alone.
const COPY_SAVEPOINT: &str = "kintell_copy_new_rows";

/// Stores with `COPY … FROM STDIN` the rows (`(ord, row)`) whose `ord` the look-up `present` does not answer (no
/// stored row has their key), and returns those positions. `values` gives a row's values in the order of
/// `columns`; it is called for those rows only.
///
/// Nothing is stored, and every row is left to the caller's upsert statement (which handles both cases), when a key
/// turns out to be taken after all: repeated among the rows, or stored by a concurrent transaction since the
/// look-up. The COPY then fails on the unique index and is undone alone, by rolling back to a savepoint taken just
/// before it; any other failure is the caller's error. Called only where [`Backend::COPY_NEW_ROWS`] holds.
pub(super) async fn copy_new_rows<'a, B: Backend, T>(
    conn: &mut B::Conn,
    table: &'static str,
    columns: &[&str],
    present: &SelectStatement,
    rows: impl Iterator<Item = (i64, T)>,
    values: impl Fn(T) -> StoreResult<Cow<'a, [Value]>>,
    doing: &str,
) -> StoreResult<HashSet<i64>> {
    let found = fetch::<B>(conn, present, doing)
        .await?
        .iter()
        .map(|row| super::rows::ord(row, table))
        .collect::<StoreResult<HashSet<i64>>>()?;
    let mut ords = HashSet::new();
    let mut fresh = Vec::new();
    for (ord, row) in rows.filter(|(ord, _)| !found.contains(ord)) {
        ords.insert(ord);
        fresh.push(values(row)?);
    }
    if fresh.is_empty()
        || !copy_rows::<B>(conn, table, columns, fresh.iter().map(AsRef::as_ref), doing).await?
    {
        return Ok(HashSet::new());
    }
    Ok(ords)
}

/// Stores `rows` (values in the order of `columns`) with `COPY … FROM STDIN`, under a savepoint: `false`, and
/// nothing stored, when one of their keys is taken (the savepoint is then rolled back, and the transaction goes
/// on); any other failure is an error.
pub(super) async fn copy_rows<'a, B: Backend>(
    conn: &mut B::Conn,
    table: &'static str,
    columns: &[&str],
    rows: impl Iterator<Item = &'a [Value]>,
    doing: &str,
) -> StoreResult<bool> {
    let data = rowdoc::copy_text(columns.len(), rows)?;
    let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let statement = format!("COPY \"{table}\" ({}) FROM STDIN", names.join(", "));
    savepoint::<B>(conn, format!("SAVEPOINT {COPY_SAVEPOINT}"), doing).await?;
    match B::copy_in(conn, statement, data).await {
        Ok(_) => {
            savepoint::<B>(conn, format!("RELEASE SAVEPOINT {COPY_SAVEPOINT}"), doing).await?;
            Ok(true)
        }
        Err(sqlx::Error::Database(db)) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            savepoint::<B>(
                conn,
                format!("ROLLBACK TO SAVEPOINT {COPY_SAVEPOINT}"),
                doing,
            )
            .await?;
            savepoint::<B>(conn, format!("RELEASE SAVEPOINT {COPY_SAVEPOINT}"), doing).await?;
            Ok(false)
        }
        Err(e) => Err(translate::<B>(e, doing)),
    }
}

async fn savepoint<B: Backend>(conn: &mut B::Conn, sql: String, doing: &str) -> StoreResult<()> {
    B::execute(conn, sql, sea_query::Values(Vec::new()))
        .await
        .map(drop)
        .map_err(|e| translate::<B>(e, doing))
}

/// Upserts rows whose keys are distinct with one statement.
async fn upsert_statement<B: Backend>(
    conn: &mut B::Conn,
    spec: &Upsert,
    rows: Vec<Vec<Value>>,
    doing: &str,
) -> StoreResult<UpsertCounts> {
    let total = rows.len() as u64;
    let existed = match B::inserted_marker() {
        Some(_) => None,
        None => {
            let counted = fetch::<B>(conn, &spec.existing::<B>(&rows), doing).await?;
            Some(super::rows::count(counted.first(), spec.table)?)
        }
    };
    let returned = fetch::<B>(conn, &spec.statement::<B>(rows)?, doing).await?;
    let changed = returned.len() as u64;
    let unchanged = total.saturating_sub(changed);
    let inserted = match existed {
        // Rows left unchanged existed; the other existing rows are the updated ones.
        Some(existed) => changed.saturating_sub(existed.saturating_sub(unchanged)),
        None => {
            let mut inserted = 0;
            for row in &returned {
                if super::rows::inserted_flag(row, spec.table)? {
                    inserted += 1;
                }
            }
            inserted
        }
    };
    Ok(UpsertCounts {
        inserted,
        updated: changed - inserted,
        unchanged,
    })
}

// --- Keyed writes: activities, users of the users export, enrolments -----------------------------------------

/// The name of the `VALUES` list of keys a look-up joins: `(VALUES (ord, key…), …) AS "k"`. Both backends name
/// its columns `column1`, `column2`, …; `column1` is the position of the input row the key belongs to.
const KEYS: &str = "k";

/// `"k"."columnN"`: the `n`-th key column (1-based among the key columns; the position comes first).
pub(super) fn key_column(n: usize) -> String {
    format!("\"{KEYS}\".\"column{}\"", n + 1)
}

/// The keys of a call's rows as a `VALUES` list, each tuple led by its row's position.
fn keys_list<'a>(keys: impl IntoIterator<Item = (i64, &'a [Value])>) -> Vec<sea_query::ValueTuple> {
    keys.into_iter()
        .map(|(ord, key)| {
            let mut tuple = Vec::with_capacity(key.len() + 1);
            tuple.push(Value::BigInt(Some(ord)));
            tuple.extend(key.iter().cloned());
            sea_query::ValueTuple::Many(tuple)
        })
        .collect()
}

/// The keys list `(ord, key…)` as the source `"k"` of a look-up or an update, with columns `column1`, `column2`, ….
///
/// Where the backend sends rows as JSON: `(SELECT ("j"->>0)::bigint AS "column1", … FROM json_array_elements(?) "j")`,
/// typed after the first key; else (or for a key of a kind the documents do not carry) a `VALUES` list.
pub(super) fn keys_source<'a, B: Backend>(
    keys: impl IntoIterator<Item = (i64, &'a [Value])>,
) -> StoreResult<TableRef> {
    let keys: Vec<(i64, &[Value])> = keys.into_iter().collect();
    let types: Option<Vec<&str>> = keys.first().and_then(|(_, key)| {
        std::iter::once(Some("bigint"))
            .chain(key.iter().map(rowdoc::sql_type))
            .collect()
    });
    match types {
        Some(types) if B::ROWS_AS_JSON => {
            let doc = rowdoc::keys(&keys)?;
            let mut source = Query::select();
            for (i, ty) in types.iter().enumerate() {
                source.expr_as(
                    Expr::cust(format!("(\"j\"->>{i})::{ty}")),
                    format!("column{}", i + 1),
                );
            }
            source.from_function(
                Func::cust("json_array_elements")
                    .arg(Func::cast_as(Value::String(Some(doc)), "json")),
                "j",
            );
            Ok(TableRef::SubQuery(Box::new(source), KEYS.into_iden()))
        }
        _ => Ok(TableRef::ValuesList(keys_list(keys), KEYS.into_iden())),
    }
}

/// Adds `rows` (values in the order of `columns`) to a multi-row insert into `table`.
///
/// Where the backend sends rows as JSON, they are one document expanded into the table's own row type,
/// `SELECT … FROM json_populate_recordset(NULL::table, ?)`, so the statement has one parameter and one text
/// whatever the row count; else a `VALUES` list.
pub(super) fn insert_rows<'a, B: Backend>(
    stmt: &mut InsertStatement,
    table: &str,
    columns: &'static [&'static str],
    rows: impl IntoIterator<Item = Cow<'a, [Value]>>,
) -> StoreResult<()> {
    if B::ROWS_AS_JSON {
        let doc = rowdoc::objects(columns, rows)?;
        let source = Func::cust("json_populate_recordset")
            .arg(Expr::cust(format!("NULL::\"{table}\"")))
            .arg(Func::cast_as(Value::String(Some(doc)), "json"));
        let select = Query::select()
            .columns(columns.iter().copied())
            .from_function(source, "r")
            .to_owned();
        stmt.select_from(select).map_err(build_error)?;
    } else {
        for row in rows {
            stmt.values(row.into_owned().into_iter().map(Expr::from))
                .map_err(build_error)?;
        }
    }
    Ok(())
}

/// A look-up of the stored rows matching a call's keys, as `ord` (the input position), `id` and more columns.
pub(super) struct Lookup {
    pub(super) stmt: SelectStatement,
    /// The output columns, in order; `ord` and `id` among them.
    pub(super) columns: &'static [&'static str],
}

/// One row of a keyed write: its input position, its key, its id if it is new, and its inserted values.
pub(super) struct KeyedWrite {
    pub(super) ord: i64,
    pub(super) key: Vec<Value>,
    pub(super) id: Uuid,
    pub(super) values: Vec<Value>,
}

/// How an activity table is written: on its natural key, changing only rows whose values differ, with lineage.
pub(super) struct ActivitySpec {
    pub(super) table: &'static str,
    /// The inserted columns, in the order of [`KeyedWrite::values`].
    pub(super) columns: &'static [&'static str],
    /// The natural key (the conflict target), in the order of [`KeyedWrite::key`].
    key: &'static [&'static str],
    /// A key column with a fixed value, left out of [`KeyedWrite::key`] (`source_system` of sessions).
    fixed: Option<(&'static str, &'static str)>,
    /// The data columns: a row changes when one differs (or when a given instance does).
    compared: &'static [&'static str],
}

pub(super) const SESSIONS: ActivitySpec = ActivitySpec {
    table: "kintell_sessions",
    columns: &[
        "id",
        "source_system",
        "external_session_id",
        "session_type",
        "participant_id",
        "volunteer_id",
        "scheduled_at",
        "completed_at",
        "duration_minutes",
        "rating",
        "feedback_text",
        "language_level",
        "topics",
        "metadata",
        "program_instance_id",
        "batch_id",
        "first_batch_id",
        "source_row_number",
        "created_at",
        "updated_at",
    ],
    key: &["external_session_id"],
    fixed: Some(("source_system", lineage::KINTELL_PROVIDER)),
    compared: &[
        "session_type",
        "participant_id",
        "volunteer_id",
        "scheduled_at",
        "completed_at",
        "duration_minutes",
        "rating",
        "feedback_text",
        "language_level",
        "topics",
        "metadata",
    ],
};

pub(super) const MATCHES: ActivitySpec = ActivitySpec {
    table: "buddy_matches",
    columns: &[
        "id",
        "participant_id",
        "buddy_id",
        "matched_at",
        "external_match_id",
        "status",
        "ended_at",
        "end_reason",
        "language",
        "interests",
        "location",
        "program_instance_id",
        "batch_id",
        "first_batch_id",
        "source_row_number",
        "created_at",
        "updated_at",
    ],
    key: &["participant_id", "buddy_id", "matched_at"],
    fixed: None,
    compared: &[
        "external_match_id",
        "status",
        "ended_at",
        "end_reason",
        "language",
        "interests",
        "location",
    ],
};

pub(super) const COMPLETIONS: ActivitySpec = ActivitySpec {
    table: "learning_progress",
    columns: &[
        "id",
        "user_id",
        "provider",
        "course_id",
        "course_name",
        "status",
        "progress_percent",
        "completed_at",
        "final_score",
        "credential_ref",
        "program_instance_id",
        "batch_id",
        "first_batch_id",
        "source_row_number",
        "created_at",
        "updated_at",
    ],
    key: &["user_id", "provider", "course_id"],
    fixed: None,
    compared: &[
        "course_name",
        "status",
        "progress_percent",
        "completed_at",
        "final_score",
        "credential_ref",
    ],
};

/// The columns of an activity look-up.
pub(super) const ACTIVITY_LOOKUP: &[&str] = &["ord", "id", "batch_id", "source_row_number"];

/// `(a IS DISTINCT FROM excluded.a OR …)` over `columns` of `table`, plus `extra` alternatives.
fn distinct(table: &str, columns: &[&str], extra: Option<String>) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{table}\".\"{c}\" IS DISTINCT FROM \"excluded\".\"{c}\""))
        .collect();
    parts.extend(extra);
    format!("({})", parts.join(" OR "))
}

/// The join of the keys list to `table` on the key columns (and the fixed one).
fn join_keys(table: &str, key: &[&str], fixed: Option<(&'static str, &'static str)>) -> Expr {
    let mut parts: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{table}\".\"{c}\" = {}", key_column(i + 1)))
        .collect();
    if let Some((column, value)) = fixed {
        parts.push(format!("\"{table}\".\"{column}\" = '{value}'"));
    }
    Expr::cust(parts.join(" AND "))
}

/// The values of the position column of the keys list, as the look-up names it.
fn ord_column() -> Expr {
    Expr::cust(format!("\"{KEYS}\".\"column1\""))
}

impl ActivitySpec {
    /// The bind parameters one row costs, look-up and write together.
    pub(super) fn binds_per_row(&self) -> usize {
        self.columns.len() + self.key.len() + 1
    }

    /// The stored rows with these keys: `ord`, `id`, `batch_id`, `source_row_number`.
    pub(super) fn lookup<'a, B: Backend>(
        &self,
        keys: impl IntoIterator<Item = (i64, &'a [Value])>,
    ) -> StoreResult<Lookup> {
        let t = self.table;
        let mut stmt = Query::select();
        stmt.expr_as(ord_column(), "ord")
            .column((t, "id"))
            .column((t, "batch_id"))
            .column((t, "source_row_number"));
        stmt.from(keys_source::<B>(keys)?);
        stmt.inner_join(t, join_keys(t, self.key, self.fixed));
        Ok(Lookup {
            stmt,
            columns: ACTIVITY_LOOKUP,
        })
    }

    /// The multi-row upsert of `rows`, returning the id of each row it inserted or changed.
    ///
    /// A changed row takes the data, the new lineage (`batch_id`, `source_row_number`) and `updated_at`, keeps
    /// `first_batch_id` and `created_at`, and keeps its instance when the write gives none.
    pub(super) fn upsert<'a, B: Backend>(
        &self,
        rows: impl IntoIterator<Item = &'a KeyedWrite>,
    ) -> StoreResult<InsertStatement> {
        let t = self.table;
        let mut stmt = Query::insert();
        stmt.into_table(t).columns(self.columns.iter().copied());
        insert_rows::<B>(
            &mut stmt,
            t,
            self.columns,
            rows.into_iter().map(|r| Cow::Borrowed(r.values.as_slice())),
        )?;
        let mut conflict: Vec<&str> = self.key.to_vec();
        conflict.extend(self.fixed.map(|(c, _)| c));
        let mut on_conflict = OnConflict::columns(conflict);
        on_conflict.update_columns(self.compared.iter().copied().chain([
            "batch_id",
            "source_row_number",
            "updated_at",
        ]));
        on_conflict.value(
            "program_instance_id",
            Expr::cust(format!(
                "COALESCE(\"excluded\".\"program_instance_id\", \"{t}\".\"program_instance_id\")"
            )),
        );
        let instance_changes = format!(
            "(\"excluded\".\"program_instance_id\" IS NOT NULL AND \"{t}\".\"program_instance_id\" IS DISTINCT FROM \"excluded\".\"program_instance_id\")"
        );
        on_conflict.action_and_where(Expr::cust(distinct(
            t,
            self.compared,
            Some(instance_changes),
        )));
        stmt.on_conflict(on_conflict);
        stmt.returning(Query::returning().columns(["id"]));
        Ok(stmt)
    }
}

/// The lineage columns of an activity insert: instance, batch, first batch, row number, created, updated.
fn activity_tail<B: Backend>(
    instance: Option<crate::domain::InstanceId>,
    source: &RowSource,
    now: chrono::DateTime<chrono::Utc>,
) -> [Value; 6] {
    [
        opt_uuid(instance.map(|i| i.uuid())),
        uuid(source.batch_id.uuid()),
        uuid(source.batch_id.uuid()),
        Value::BigInt(Some(source.source_row_number)),
        B::timestamp(Some(now)),
        B::timestamp(Some(now)),
    ]
}

fn string_list<B: Backend>(items: Option<&Vec<String>>) -> Value {
    let json = items.map(|v| {
        serde_json::Value::Array(v.iter().cloned().map(serde_json::Value::String).collect())
    });
    B::json(json.as_ref())
}

/// The key of a session: its external id (the source system is fixed).
pub(super) fn session_key(id: &SessionId) -> Vec<Value> {
    vec![text(id.as_str())]
}

/// The key of a buddy match.
pub(super) fn match_key<B: Backend>(k: &MatchKey) -> Vec<Value> {
    vec![
        uuid(k.participant_id.uuid()),
        uuid(k.buddy_id.uuid()),
        B::timestamp(Some(k.matched_at)),
    ]
}

/// The key of a course completion.
pub(super) fn completion_key(k: &CompletionKey) -> Vec<Value> {
    vec![
        uuid(k.user_id.uuid()),
        text(k.provider.as_str()),
        text(k.course_id.as_str()),
    ]
}

pub(super) fn session_write<B: Backend>(ord: i64, w: &SessionWrite) -> KeyedWrite {
    let r = &w.row;
    let metadata = r.metadata.clone().map(serde_json::Value::Object);
    let mut values: Vec<Value> = vec![
        uuid(w.id.uuid()),
        text(lineage::KINTELL_PROVIDER),
        text(r.session_id.as_str()),
        text(r.session_type.as_str()),
        uuid(w.participant_id.uuid()),
        uuid(w.volunteer_id.uuid()),
        B::timestamp(Some(r.scheduled_at)),
        B::timestamp(r.completed_at),
        Value::Int(r.duration_minutes.map(|d| i32::from(d.get()))),
        Value::String(r.rating.map(|x| x.to_string())),
        opt_text(r.feedback_text.as_deref()),
        opt_text(r.language_level.map(|l| l.as_str())),
        string_list::<B>(r.topics.as_ref()),
        B::json(metadata.as_ref()),
    ];
    values.extend(activity_tail::<B>(w.program_instance_id, &w.source, w.now));
    KeyedWrite {
        ord,
        key: session_key(&r.session_id),
        id: w.id.uuid(),
        values,
    }
}

pub(super) fn match_write<B: Backend>(ord: i64, w: &MatchWrite) -> KeyedWrite {
    let r = &w.row;
    let mut values: Vec<Value> = vec![
        uuid(w.id.uuid()),
        uuid(w.key.participant_id.uuid()),
        uuid(w.key.buddy_id.uuid()),
        B::timestamp(Some(w.key.matched_at)),
        opt_text(r.external_match_id.as_deref()),
        text(r.status.as_str()),
        B::timestamp(r.ended_at),
        opt_text(r.end_reason.map(|e| e.as_str())),
        opt_text(r.language.as_deref()),
        string_list::<B>(r.interests.as_ref()),
        opt_text(r.location.as_deref()),
    ];
    values.extend(activity_tail::<B>(w.program_instance_id, &w.source, w.now));
    KeyedWrite {
        ord,
        key: match_key::<B>(&w.key),
        id: w.id.uuid(),
        values,
    }
}

pub(super) fn completion_write<B: Backend>(ord: i64, w: &CompletionWrite) -> KeyedWrite {
    let r = &w.row;
    let mut values: Vec<Value> = vec![
        uuid(w.id.uuid()),
        uuid(w.key.user_id.uuid()),
        text(w.key.provider.as_str()),
        text(w.key.course_id.as_str()),
        opt_text(r.course_name.as_deref()),
        text(CourseStatus::Completed.as_str()),
        Value::Int(Some(100)),
        B::timestamp(Some(r.completed_at)),
        Value::String(r.final_score.map(|s| s.to_string())),
        opt_text(r.credential_ref.as_deref()),
    ];
    values.extend(activity_tail::<B>(w.program_instance_id, &w.source, w.now));
    KeyedWrite {
        ord,
        key: completion_key(&w.key),
        id: w.id.uuid(),
        values,
    }
}

/// Runs a keyed write and its look-up of the rows it finds; returns the look-up's rows (the rows as they were
/// before the write) and the ids the write inserted or changed.
///
/// Where the backend allows it, both are one statement: `WITH "w" AS (<upsert> RETURNING "id") SELECT … FROM "w"
/// UNION ALL <look-up>`. The look-up then reads the snapshot the statement started with, so it sees the rows as
/// they were before the write, exactly as a look-up just before it does.
pub(super) async fn write_with_lookup<B: Backend>(
    conn: &mut B::Conn,
    table: &'static str,
    lookup: Lookup,
    upsert: InsertStatement,
    doing: &str,
) -> StoreResult<(Vec<B::Row>, HashSet<Uuid>)> {
    if !B::WRITES_IN_CTE {
        let before = fetch::<B>(conn, &lookup.stmt, doing).await?;
        let written = fetch::<B>(conn, &upsert, doing).await?;
        let ids = written
            .iter()
            .map(|r| super::rows::id(r, table))
            .collect::<StoreResult<_>>()?;
        return Ok((before, ids));
    }
    let mut written = Query::select();
    for column in lookup.columns {
        if *column == "id" {
            written.column("id");
        } else {
            written.expr_as(Expr::cust("NULL"), *column);
        }
    }
    written.expr_as(Expr::cust("TRUE"), "written").from("w");
    let mut before = lookup.stmt;
    before.expr_as(Expr::cust("FALSE"), "written");
    written.union(sea_query::UnionType::All, before);
    let cte = sea_query::CommonTableExpression::new()
        .query(upsert)
        .table_name("w")
        .to_owned();
    let stmt = sea_query::WithClause::new()
        .cte(cte)
        .to_owned()
        .query(written);
    let rows = fetch::<B>(conn, &stmt, doing).await?;
    let mut ids = HashSet::new();
    let mut before = Vec::with_capacity(rows.len());
    for row in rows {
        if super::rows::flag(&row, "written", table)? {
            ids.insert(super::rows::id(&row, table)?);
        } else {
            before.push(row);
        }
    }
    Ok((before, ids))
}

// --- Users of the users export ---------------------------------------------------------------------------------

/// The columns of the users export's look-up: the stored user, and the user holding its `kintell` external id.
pub(super) const USER_ROWS_LOOKUP: &[&str] = &["ord", "id", "ext_user_id"];

/// The columns of [`user_sources`].
pub(super) const USER_SOURCES_LOOKUP: &[&str] = &["ord", "id", "metadata"];

const EXTERNAL_IDS: &str = "user_external_ids";

/// The users with these emails (one key column) and who holds each one's `kintell` external id.
pub(super) fn user_rows_lookup<'a, B: Backend>(
    keys: impl IntoIterator<Item = (i64, &'a [Value])>,
) -> StoreResult<Lookup> {
    let mut stmt = Query::select();
    stmt.expr_as(ord_column(), "ord")
        .column((USERS.name, "id"))
        .expr_as(Expr::col(("e", "user_id")), "ext_user_id");
    stmt.from(keys_source::<B>(keys)?);
    stmt.inner_join(USERS.name, join_keys(USERS.name, &["email"], None))
        .join_as(
            sea_query::JoinType::LeftJoin,
            EXTERNAL_IDS,
            "e",
            Expr::cust(format!(
                "\"e\".\"provider\" = '{}' AND \"e\".\"external_id\" = {}",
                lineage::KINTELL_PROVIDER,
                key_column(1)
            )),
        );
    Ok(Lookup {
        stmt,
        columns: USER_ROWS_LOOKUP,
    })
}

/// The users with these emails that have their own `kintell` external id, with its metadata.
pub(super) fn user_sources<'a, B: Backend>(
    keys: impl IntoIterator<Item = (i64, &'a [Value])>,
) -> StoreResult<Lookup> {
    let mut stmt = Query::select();
    stmt.expr_as(ord_column(), "ord")
        .column((USERS.name, "id"))
        .column(("e", "metadata"));
    stmt.from(keys_source::<B>(keys)?);
    stmt.inner_join(USERS.name, join_keys(USERS.name, &["email"], None))
        .join_as(
            sea_query::JoinType::InnerJoin,
            EXTERNAL_IDS,
            "e",
            Expr::cust(format!(
                "\"e\".\"provider\" = '{}' AND \"e\".\"external_id\" = \"users\".\"email\" \
                 AND \"e\".\"user_id\" = \"users\".\"id\"",
                lineage::KINTELL_PROVIDER
            )),
        );
    Ok(Lookup {
        stmt,
        columns: USER_SOURCES_LOOKUP,
    })
}

/// The columns of a users-export upsert.
const USER_ROW_COLUMNS: &[&str] = &[
    "id",
    "email",
    "role",
    "first_name",
    "last_name",
    "company_id",
    "tags",
    "journey_flags",
    "created_at",
    "updated_at",
];

/// The bind parameters one user costs, look-up and write together.
pub(super) const USER_ROW_BINDS: usize = USER_ROW_COLUMNS.len() + 2;

/// The values of a users-export upsert.
pub(super) fn user_write<B: Backend>(ord: i64, w: &UserWrite) -> KeyedWrite {
    let u = &w.user;
    let mut values = user_row::<B>(u).values;
    values.push(B::timestamp(Some(w.created_at)));
    values.push(B::timestamp(Some(w.now)));
    KeyedWrite {
        ord,
        key: vec![text(u.email.as_str())],
        id: u.id.uuid(),
        values,
    }
}

/// Upserts users by email: an existing user keeps its id and `created_at` and changes only when a value differs.
pub(super) fn upsert_user_rows<B: Backend>(rows: &[KeyedWrite]) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(USERS.name)
        .columns(USER_ROW_COLUMNS.iter().copied());
    insert_rows::<B>(
        &mut stmt,
        USERS.name,
        USER_ROW_COLUMNS,
        rows.iter().map(|r| Cow::Borrowed(r.values.as_slice())),
    )?;
    let compared = [
        "role",
        "first_name",
        "last_name",
        "company_id",
        "tags",
        "journey_flags",
    ];
    let mut on_conflict = OnConflict::columns(["email"]);
    on_conflict.update_columns(compared.into_iter().chain(["updated_at"]));
    on_conflict.action_and_where(Expr::cust(distinct(USERS.name, &compared, None)));
    stmt.on_conflict(on_conflict);
    stmt.returning(Query::returning().columns(["id"]));
    Ok(stmt)
}

/// The `kintell` external id of a user, with the write's lineage.
pub(super) fn external_id_values<B: Backend>(
    user: Uuid,
    email: &str,
    source: &RowSource,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    vec![
        uuid(lineage::external_id_row_id(
            lineage::KINTELL_PROVIDER,
            email,
        )),
        uuid(user),
        text(lineage::KINTELL_PROVIDER),
        text(email),
        B::json(Some(&lineage::source_metadata(source))),
        B::timestamp(Some(now)),
        B::timestamp(Some(now)),
    ]
}

/// Inserts external ids or rewrites their metadata, but only where the stored row belongs to the same user;
/// returns the id of every row written, so a row held by another user is the one missing.
pub(super) fn upsert_external_ids<B: Backend>(
    rows: Vec<Vec<Value>>,
) -> StoreResult<InsertStatement> {
    const COLUMNS: &[&str] = &[
        "id",
        "user_id",
        "provider",
        "external_id",
        "metadata",
        "created_at",
        "updated_at",
    ];
    let mut stmt = Query::insert();
    stmt.into_table(EXTERNAL_IDS)
        .columns(COLUMNS.iter().copied());
    insert_rows::<B>(
        &mut stmt,
        EXTERNAL_IDS,
        COLUMNS,
        rows.into_iter().map(Cow::Owned),
    )?;
    let mut on_conflict = OnConflict::columns(["provider", "external_id"]);
    on_conflict.update_columns(["metadata", "updated_at"]);
    on_conflict.action_and_where(Expr::cust(
        "\"user_external_ids\".\"user_id\" = \"excluded\".\"user_id\"",
    ));
    stmt.on_conflict(on_conflict);
    stmt.returning(Query::returning().columns(["id"]));
    Ok(stmt)
}

// --- Enrolments ------------------------------------------------------------------------------------------------

const ENROLLMENTS: &str = "program_enrollments";

/// The columns of an enrolment look-up.
pub(super) const ENROLLMENT_LOOKUP: &[&str] = &["ord", "id", "enrolled_at"];

pub(super) const ENROLLMENT_COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "program_instance_id",
    "program_type",
    "role",
    "enrolled_at",
    "status",
];

/// The bind parameters one enrolment costs, look-up and write together.
pub(super) const ENROLLMENT_BINDS: usize = ENROLLMENT_COLUMNS.len() + 4;

/// The key of an enrolment.
pub(super) fn enrollment_key(e: &Enrollment) -> Vec<Value> {
    vec![
        uuid(e.user_id.uuid()),
        uuid(e.program_instance_id.uuid()),
        text(e.role.as_str()),
    ]
}

pub(super) fn enrollment_lookup<'a, B: Backend>(
    keys: impl IntoIterator<Item = (i64, &'a [Value])>,
) -> StoreResult<Lookup> {
    let mut stmt = Query::select();
    stmt.expr_as(ord_column(), "ord")
        .column((ENROLLMENTS, "id"))
        .column((ENROLLMENTS, "enrolled_at"));
    stmt.from(keys_source::<B>(keys)?);
    stmt.inner_join(
        ENROLLMENTS,
        join_keys(
            ENROLLMENTS,
            &["user_id", "program_instance_id", "role"],
            None,
        ),
    );
    Ok(Lookup {
        stmt,
        columns: ENROLLMENT_LOOKUP,
    })
}

/// The values of an enrolment, in the order of [`ENROLLMENT_COLUMNS`].
pub(super) fn enrollment_values<B: Backend>(e: &Enrollment) -> Vec<Value> {
    vec![
        uuid(e.id),
        uuid(e.user_id.uuid()),
        uuid(e.program_instance_id.uuid()),
        text(e.program_type.as_str()),
        text(e.role.as_str()),
        B::timestamp(Some(e.enrolled_at)),
        text(crate::domain::EnrollmentStatus::Active.as_str()),
    ]
}

/// Inserts enrolments; an existing one takes only an earlier `enrolled_at`.
pub(super) fn upsert_enrollments<B: Backend>(rows: &[Enrollment]) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(ENROLLMENTS)
        .columns(ENROLLMENT_COLUMNS.iter().copied());
    let values = rows.iter().map(|e| Cow::Owned(enrollment_values::<B>(e)));
    insert_rows::<B>(&mut stmt, ENROLLMENTS, ENROLLMENT_COLUMNS, values)?;
    let mut on_conflict = OnConflict::columns(["user_id", "program_instance_id", "role"]);
    on_conflict.update_column("enrolled_at");
    on_conflict.value("updated_at", B::now());
    on_conflict.action_and_where(Expr::cust(format!(
        "\"excluded\".\"enrolled_at\" < \"{ENROLLMENTS}\".\"enrolled_at\""
    )));
    stmt.on_conflict(on_conflict);
    stmt.returning(Query::returning().columns(["id"]));
    Ok(stmt)
}

// --- Row errors --------------------------------------------------------------------------------------------------

const ROW_ERRORS: Table = Table {
    name: "ingestion_row_errors",
    columns: &[
        "batch_id",
        "row_number",
        "line_number",
        "code",
        "field",
        "message",
        "details",
        "raw_record",
    ],
};

/// The bind parameters one row error costs.
pub(super) const ROW_ERROR_BINDS: usize = 8;

/// Writes row errors, rewriting a stored one of the same (`batch_id`, `row_number`).
pub(super) fn put_row_errors<B: Backend>(rows: &[&RowErrorRecord]) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(ROW_ERRORS.name)
        .columns(ROW_ERRORS.columns.iter().copied());
    let values = rows.iter().map(|r| {
        Cow::Owned(vec![
            uuid(r.batch_id.uuid()),
            Value::BigInt(Some(r.row_number)),
            Value::BigInt(Some(r.line_number)),
            text(&r.code),
            opt_text(r.field.as_deref()),
            text(&r.message),
            B::json(r.details.as_ref()),
            B::json(Some(&r.raw_record)),
        ])
    });
    insert_rows::<B>(&mut stmt, ROW_ERRORS.name, ROW_ERRORS.columns, values)?;
    let mut on_conflict = OnConflict::columns(["batch_id", "row_number"]);
    on_conflict.update_columns([
        "line_number",
        "code",
        "field",
        "message",
        "details",
        "raw_record",
    ]);
    stmt.on_conflict(on_conflict);
    Ok(stmt)
}

/// A page of a batch's row errors: `row_number > after_row`, by row number, at most `limit`.
pub(super) fn row_errors(batch: BatchId, after_row: i64, limit: u32) -> SelectStatement {
    select(ROW_ERRORS)
        .and_where(Expr::col("batch_id").eq(batch.uuid()))
        .and_where(Expr::col("row_number").gt(after_row))
        .order_by("row_number", Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

// --- Legacy lineage --------------------------------------------------------------------------------------------

/// The oldest legacy batch of an entity.
pub(super) fn legacy_batch(entity: EntityKind) -> SelectStatement {
    select(BATCHES)
        .and_where(Expr::col("entity_kind").eq(entity.as_str()))
        .and_where(Expr::col("file_name").eq(lineage::LEGACY_FILE_NAME))
        .and_where(Expr::col("import_method").eq(crate::domain::ImportMethod::Legacy.as_str()))
        .and_where(Expr::col("format").eq(lineage::LEGACY_FORMAT))
        .order_by("created_at", Order::Asc)
        .order_by("id", Order::Asc)
        .limit(1)
        .to_owned()
}

/// Inserts a batch row as it is, every column given.
pub(super) fn insert_batch_record<B: Backend>(b: &BatchRecord) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(BATCHES.name)
        .columns(BATCHES.columns.iter().copied())
        .values(
            [
                uuid(b.id.uuid()),
                text(&b.file_name),
                text(&b.file_hash),
                Value::BigInt(b.file_size_bytes),
                text(b.entity_kind.as_str()),
                text(&b.format),
                text(b.program_type.as_str()),
                opt_uuid(b.program_instance_id.map(|i| i.uuid())),
                text(&b.source_system),
                text(b.import_method.as_str()),
                text(b.status.as_str()),
                Value::BigInt(Some(b.total_rows)),
                Value::BigInt(Some(b.success_rows)),
                Value::BigInt(Some(b.inserted_rows)),
                Value::BigInt(Some(b.updated_rows)),
                Value::BigInt(Some(b.skipped_rows)),
                Value::BigInt(Some(b.error_rows)),
                Value::BigInt(Some(b.last_processed_row)),
                opt_text(b.error_file_path.as_deref()),
                B::json(Some(&b.csv_metadata)),
                opt_text(b.imported_by_service.as_deref()),
                B::json(b.error_summary.as_ref()),
                opt_text(b.lease_owner.as_deref()),
                B::timestamp(b.lease_expires_at),
                opt_text(b.last_error.as_deref()),
                opt_text(b.requested_action.map(|r| r.as_str())),
                B::timestamp(b.started_at),
                B::timestamp(b.completed_at),
                B::timestamp(Some(b.created_at)),
                B::timestamp(Some(b.updated_at)),
            ]
            .into_iter()
            .map(Expr::from),
        )
        .map_err(build_error)?;
    Ok(stmt)
}

/// Links every row of `table` without a batch to `batch` (its first batch too, unless it has one).
pub(super) fn adopt_rows(table: &'static str, batch: BatchId) -> UpdateStatement {
    Query::update()
        .table(table)
        .values([
            ("batch_id", Expr::from(uuid(batch.uuid()))),
            (
                "first_batch_id",
                sea_query::Func::coalesce([
                    Expr::col("first_batch_id"),
                    Expr::from(uuid(batch.uuid())),
                ])
                .into(),
            ),
        ])
        .and_where(Expr::col("batch_id").is_null())
        .to_owned()
}
