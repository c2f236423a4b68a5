//! Statements of the SQL stores, built with sea-query for either backend, and the multi-row upsert.

use super::{Backend, fetch};
use crate::domain::{
    ActivityId, ActivityKind, Association, BatchId, BatchRecord, BeneficiaryGroup, Campaign,
    Company, EntityKind, NewBatch, ProgramInstance, Tags, User,
};
use crate::ports::{BatchFilter, BatchGuard, StoreError, StoreResult, UpsertCounts};
use chrono::NaiveDate;
use sea_query::{
    Expr, ExprTrait, InsertStatement, OnConflict, Order, Query, SelectStatement, UpdateStatement,
    Value,
};
use std::collections::HashMap;
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

pub(super) fn association_row<B: Backend>(a: &Association) -> KeyedRow {
    KeyedRow {
        key: (a.activity_kind.as_str(), a.activity_id.uuid()),
        values: vec![
            uuid(a.id.uuid()),
            text(a.activity_kind.as_str()),
            uuid(a.activity_id.uuid()),
            opt_uuid(a.campaign_id.map(|c| c.uuid())),
            opt_uuid(a.program_instance_id.map(|i| i.uuid())),
            Value::SmallInt(Some(i16::from(a.confidence.get()))),
            text(a.decision.as_str()),
            B::json(Some(&a.reasons)),
            text(&a.policy_version),
            B::json(Some(&a.candidates)),
            opt_uuid(a.batch_id.map(|b| b.uuid())),
            opt_uuid(a.run_id.map(|r| r.uuid())),
            opt_text(a.decided_by.as_deref()),
            B::timestamp(a.decided_at),
        ],
    }
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
    table: &'static str,
    /// The inserted columns, in the order of [`KeyedRow::values`].
    columns: &'static [&'static str],
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
        for values in rows {
            stmt.values(values.into_iter().map(Expr::from))
                .map_err(build_error)?;
        }
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

/// Upserts `rows` in as few statements as the bind limit allows.
///
/// A key repeated within one call goes to a later statement, so each statement touches a row at most once (which
/// PostgreSQL requires) and the counts are those of applying the rows one after another.
pub(super) async fn run_upsert<B: Backend>(
    conn: &mut B::Conn,
    spec: &Upsert,
    rows: Vec<KeyedRow>,
) -> StoreResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    let per_statement = (B::MAX_BINDS / spec.columns.len()).max(1);
    for generation in generations(rows) {
        let mut rest = generation;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(per_statement));
            let chunk = std::mem::replace(&mut rest, tail);
            counts.add(upsert_chunk::<B>(conn, spec, chunk).await?);
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

async fn upsert_chunk<B: Backend>(
    conn: &mut B::Conn,
    spec: &Upsert,
    rows: Vec<Vec<Value>>,
) -> StoreResult<UpsertCounts> {
    let doing = format!("upserting {}", spec.table);
    let total = rows.len() as u64;
    let existed = match B::inserted_marker() {
        Some(_) => None,
        None => {
            let counted = fetch::<B>(conn, &spec.existing::<B>(&rows), &doing).await?;
            Some(super::rows::count(counted.first(), spec.table)?)
        }
    };
    let returned = fetch::<B>(conn, &spec.statement::<B>(rows)?, &doing).await?;
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
