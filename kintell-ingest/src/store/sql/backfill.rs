//! The backfill statements of the SQL stores: the keyset page (one query joining the activity table to its people
//! and its association), its count, the set-based link of many activities, enrolments of an instance, and the
//! `association_runs` ledger.

use super::review::summary_columns;
use super::{Backend, SqlRow, execute, fetch, query, rows};
use crate::domain::{
    ActivityId, ActivityKind, Enrollment, InstanceId, NewRun, RunGuard, RunId, RunRecord,
};
use crate::ports::{BackfillFilter, BackfillRow, StoreError, StoreResult};
use sea_query::{
    Alias, Expr, ExprTrait, Func, InsertStatement, JoinType, Order, Query, SelectStatement,
    UpdateStatement, Value,
};

/// The columns of `association_runs` a read selects.
pub(super) const RUNS: query::Table = query::Table {
    name: "association_runs",
    columns: &[
        "id",
        "dry_run",
        "entity",
        "company_id",
        "start_date",
        "end_date",
        "only_unassociated",
        "batch_size",
        "status",
        "checkpoint",
        "stats",
        "lease_owner",
        "lease_expires_at",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
    ],
};

fn t() -> Alias {
    Alias::new("t")
}

fn uuid(u: uuid::Uuid) -> Value {
    Value::Uuid(Some(u))
}

/// The FROM, joins and WHERE of a page of `kind`: the activity table `t`, its participant `p`, its volunteer `v`
/// (when the table has one) and its association `a`.
fn filtered<B: Backend>(
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
) -> SelectStatement {
    let (participant, volunteer, at) = summary_columns(kind);
    let mut stmt = Query::select();
    stmt.from_as(query::activity_table(kind), t()).join_as(
        JoinType::InnerJoin,
        Alias::new("users"),
        Alias::new("p"),
        Expr::col((Alias::new("p"), "id")).equals((t(), participant)),
    );
    if let Some(v) = volunteer {
        stmt.join_as(
            JoinType::LeftJoin,
            Alias::new("users"),
            Alias::new("v"),
            Expr::col((Alias::new("v"), "id")).equals((t(), v)),
        );
    }
    stmt.join_as(
        JoinType::LeftJoin,
        Alias::new(query::ASSOCIATIONS.name),
        Alias::new("a"),
        Expr::col((Alias::new("a"), "activity_kind"))
            .eq(kind.as_str())
            .and(Expr::col((Alias::new("a"), "activity_id")).equals((t(), "id"))),
    );
    if let Some(after) = after {
        stmt.and_where(Expr::col((t(), "id")).gt(uuid(after.uuid())));
    }
    if let Some(company) = filter.company {
        let participant = Expr::col((Alias::new("p"), "company_id"));
        let resolved = if volunteer.is_some() {
            Func::coalesce([Expr::col((Alias::new("v"), "company_id")), participant]).into()
        } else {
            participant
        };
        stmt.and_where(resolved.eq(uuid(company.uuid())));
    }
    if let Some(from) = filter.from {
        stmt.and_where(Expr::cust(at).gte(B::timestamp(Some(from))));
    }
    if let Some(until) = filter.until {
        stmt.and_where(Expr::cust(at).lt(B::timestamp(Some(until))));
    }
    if filter.only_unassociated {
        stmt.and_where(Expr::cust(
            "(\"a\".\"decision\" IS NULL OR \"a\".\"decision\" = 'none')",
        ));
    }
    stmt
}

/// One page: the rows of `kind` above `after` that pass `filter`, by id, at most `limit`.
pub(super) fn page<B: Backend>(
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
    limit: u32,
) -> SelectStatement {
    let (participant, volunteer, at) = summary_columns(kind);
    let mut stmt = filtered::<B>(kind, after, filter);
    stmt.expr_as(Expr::col((t(), "id")), "id");
    match kind {
        ActivityKind::KintellSession => {
            stmt.expr_as(Expr::col((t(), "session_type")), "session_type")
        }
        _ => stmt.expr_as(Expr::cust("NULL"), "session_type"),
    };
    stmt.expr_as(Expr::cust(at), "s_at")
        .expr_as(Expr::col((t(), participant)), "p_id")
        .expr_as(Expr::col((Alias::new("p"), "company_id")), "p_company")
        .expr_as(Expr::col((Alias::new("p"), "tags")), "p_tags");
    match volunteer {
        Some(v) => stmt
            .expr_as(Expr::col((t(), v)), "v_id")
            .expr_as(Expr::col((Alias::new("v"), "company_id")), "v_company"),
        None => stmt
            .expr_as(Expr::cust("NULL"), "v_id")
            .expr_as(Expr::cust("NULL"), "v_company"),
    };
    stmt.expr_as(Expr::col((t(), "program_instance_id")), "instance")
        .expr_as(Expr::col((Alias::new("a"), "decision")), "a_decision")
        .expr_as(Expr::col((Alias::new("a"), "campaign_id")), "a_campaign")
        .expr_as(
            Expr::col((Alias::new("a"), "program_instance_id")),
            "a_instance",
        )
        .order_by((t(), "id"), Order::Asc)
        .limit(u64::from(limit));
    stmt
}

/// `COUNT(*) AS n` of what the pages of `kind` above `after` will read.
pub(super) fn count<B: Backend>(
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
) -> SelectStatement {
    let mut stmt = filtered::<B>(kind, after, filter);
    stmt.expr_as(Expr::cust("COUNT(*)"), "n");
    stmt
}

/// Reads a page's rows.
pub(super) fn page_rows<R: SqlRow>(
    rows: &[R],
    kind: ActivityKind,
) -> StoreResult<Vec<BackfillRow>> {
    rows.iter().map(|r| rows::backfill_row(r, kind)).collect()
}

/// The bind parameters one link costs in a `VALUES` list: position, activity id, instance id.
pub(super) const LINK_BINDS: usize = 3;

/// Links each activity of `links` to its instance: `UPDATE … SET "program_instance_id" = "k"."column3" FROM <links>
/// AS "k" WHERE "id" = "k"."column2"`, one join rather than a `CASE` arm per link; ids are distinct.
pub(super) fn set_instances<B: Backend>(
    kind: ActivityKind,
    links: &[(ActivityId, InstanceId)],
) -> StoreResult<UpdateStatement> {
    let table = query::activity_table(kind);
    let keys: Vec<[Value; 2]> = links
        .iter()
        .map(|(id, instance)| [uuid(id.uuid()), uuid(instance.uuid())])
        .collect();
    let source = query::keys_source::<B>(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (i64::try_from(i).unwrap_or(i64::MAX), k.as_slice())),
    )?;
    Ok(Query::update()
        .table(table)
        .value("program_instance_id", Expr::cust(query::key_column(2)))
        .value("updated_at", B::now())
        .from(source)
        .and_where(Expr::cust(format!(
            "\"{table}\".\"id\" = {}",
            query::key_column(1)
        )))
        .to_owned())
}

/// The enrolments of one instance, by user and role.
pub(super) fn enrollments_of(instance: InstanceId) -> SelectStatement {
    Query::select()
        .columns([
            "id",
            "user_id",
            "program_instance_id",
            "program_type",
            "role",
            "enrolled_at",
        ])
        .from("program_enrollments")
        .and_where(Expr::col("program_instance_id").eq(uuid(instance.uuid())))
        .order_by("user_id", Order::Asc)
        .order_by("role", Order::Asc)
        .to_owned()
}

/// Reads enrolments.
pub(super) fn enrollment_rows<R: SqlRow>(rows: &[R]) -> StoreResult<Vec<Enrollment>> {
    rows.iter().map(rows::enrollment).collect()
}

// --- association_runs ------------------------------------------------------------------------------------------

fn invalid_batch_size() -> StoreError {
    StoreError::Invalid {
        constraint: "association_runs_batch_size_check".to_owned(),
    }
}

fn json_of<T: serde::Serialize>(v: &T, col: &str) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Backend {
        message: format!("encoding association_runs.{col}"),
        source: Box::new(e),
    })
}

/// Inserts a new run, `pending`, and returns it as stored.
pub(super) fn insert_run<B: Backend>(new: &NewRun) -> StoreResult<InsertStatement> {
    let r = RunRecord::new(new);
    let batch_size = i32::try_from(r.batch_size).map_err(|_| invalid_batch_size())?;
    let mut stmt = Query::insert();
    stmt.into_table(RUNS.name)
        .columns(RUNS.columns.iter().copied())
        .values(
            [
                uuid(r.id.uuid()),
                Value::Bool(Some(r.dry_run)),
                Value::String(Some(r.entity.as_str().to_owned())),
                Value::Uuid(r.company_id.map(|c| c.uuid())),
                Value::ChronoDate(r.start_date),
                Value::ChronoDate(r.end_date),
                Value::Bool(Some(r.only_unassociated)),
                Value::Int(Some(batch_size)),
                Value::String(Some(r.status.as_str().to_owned())),
                B::json(Some(&json_of(&r.checkpoint, "checkpoint")?)),
                B::json(Some(&json_of(&r.stats, "stats")?)),
                Value::String(None),
                B::timestamp(None),
                B::timestamp(None),
                B::timestamp(None),
                B::timestamp(Some(r.created_at)),
                B::timestamp(Some(r.updated_at)),
            ]
            .into_iter()
            .map(Expr::from),
        )
        .map_err(|e| StoreError::Backend {
            message: "building a statement".to_owned(),
            source: Box::new(e),
        })?;
    stmt.returning(Query::returning().columns(RUNS.columns.iter().copied()));
    Ok(stmt)
}

/// The run with this id.
pub(super) fn run_by_id(id: RunId) -> SelectStatement {
    query::by_id(RUNS, id.uuid())
}

/// Runs newest first.
pub(super) fn list_runs(limit: Option<u32>) -> SelectStatement {
    let mut stmt = Query::select();
    stmt.columns(RUNS.columns.iter().copied())
        .from(RUNS.name)
        .order_by("created_at", Order::Desc)
        .order_by("id", Order::Desc);
    if let Some(limit) = limit {
        stmt.limit(u64::from(limit));
    }
    stmt
}

/// Overwrites the mutable columns of a run where the stored row still matches `guard`.
pub(super) fn save_run<B: Backend>(
    r: &RunRecord,
    guard: &RunGuard,
) -> StoreResult<UpdateStatement> {
    let lease_guard = match &guard.lease_owner {
        Some(owner) => Expr::col("lease_owner").eq(owner.as_str()),
        None => Expr::col("lease_owner").is_null(),
    };
    Ok(Query::update()
        .table(RUNS.name)
        .values([
            ("status", Expr::val(r.status.as_str())),
            (
                "checkpoint",
                B::json(Some(&json_of(&r.checkpoint, "checkpoint")?)).into(),
            ),
            ("stats", B::json(Some(&json_of(&r.stats, "stats")?)).into()),
            ("lease_owner", Value::String(r.lease_owner.clone()).into()),
            ("lease_expires_at", B::timestamp(r.lease_expires_at).into()),
            ("started_at", B::timestamp(r.started_at).into()),
            ("completed_at", B::timestamp(r.completed_at).into()),
            ("updated_at", B::timestamp(Some(r.updated_at)).into()),
        ])
        .and_where(Expr::col("id").eq(uuid(r.id.uuid())))
        .and_where(lease_guard)
        .and_where(Expr::col("status").eq(guard.status.as_str()))
        .to_owned())
}

/// Runs a guarded save on any connection; whether it matched.
pub(super) async fn save<B: Backend>(
    conn: &mut B::Conn,
    run: &RunRecord,
    guard: &RunGuard,
) -> StoreResult<bool> {
    let changed = execute::<B>(conn, &save_run::<B>(run, guard)?, "saving a backfill run").await?;
    Ok(changed > 0)
}

/// Reads a page of a backfill on any connection.
pub(super) async fn read_page<B: Backend>(
    conn: &mut B::Conn,
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
    limit: u32,
) -> StoreResult<Vec<BackfillRow>> {
    let found = fetch::<B>(
        conn,
        &page::<B>(kind, after, filter, limit),
        "reading a page of a backfill",
    )
    .await?;
    page_rows(&found, kind)
}
