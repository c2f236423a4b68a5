//! The review queue, activity summaries and links, and campaign counts of the SQL stores.

use super::{Backend, SqlRow, execute, fetch, query, rows};
use crate::domain::{
    ActivityId, ActivityKind, AssociationId, CampaignId, CompanyId, Decision, InstanceId,
    ProgramInstance, UserId,
};
use crate::ports::{
    ActivityCounts, ActivitySummary, CampaignCounts, ReviewFilter, ReviewItem, StoreError,
    StoreResult,
};
use chrono::{DateTime, NaiveTime, Utc};
use sea_query::{
    Alias, Expr, ExprTrait, JoinType, Order, Query, SelectStatement, UnionType, Value,
};
use std::collections::HashMap;
use uuid::Uuid;

/// The columns of an activity table that make its summary: participant, volunteer (or NULL), activity time.
pub(super) fn summary_columns(
    kind: ActivityKind,
) -> (&'static str, Option<&'static str>, &'static str) {
    match kind {
        ActivityKind::KintellSession => (
            "participant_id",
            Some("volunteer_id"),
            "COALESCE(t.completed_at, t.scheduled_at)",
        ),
        ActivityKind::BuddyMatch => ("participant_id", Some("buddy_id"), "t.matched_at"),
        ActivityKind::CourseCompletion => ("user_id", None, "t.completed_at"),
    }
}

/// Adds the summary columns of the activity table aliased `t` as `s_participant`, `s_volunteer`, `s_at`,
/// `s_instance`.
fn summary_select(stmt: &mut SelectStatement, kind: ActivityKind) {
    let (participant, volunteer, at) = summary_columns(kind);
    stmt.expr_as(Expr::col((Alias::new("t"), participant)), "s_participant");
    match volunteer {
        Some(v) => stmt.expr_as(Expr::col((Alias::new("t"), v)), "s_volunteer"),
        None => stmt.expr_as(Expr::cust("NULL"), "s_volunteer"),
    };
    stmt.expr_as(Expr::cust(at), "s_at").expr_as(
        Expr::col((Alias::new("t"), "program_instance_id")),
        "s_instance",
    );
}

fn corrupt(table: &str, col: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{table}.{col}: {why}"),
    }
}

fn summary_of<R: SqlRow>(row: &R, kind: ActivityKind) -> StoreResult<ActivitySummary> {
    let table = query::activity_table(kind);
    let participant = row
        .uuid("s_participant")
        .map_err(|e| corrupt(table, "participant", e))?
        .ok_or_else(|| corrupt(table, "participant", "NULL"))?;
    Ok(ActivitySummary {
        participant_id: UserId(participant),
        volunteer_id: row
            .uuid("s_volunteer")
            .map_err(|e| corrupt(table, "volunteer", e))?
            .map(UserId),
        at: row
            .timestamp("s_at")
            .map_err(|e| corrupt(table, "time", e))?,
        program_instance_id: row
            .uuid("s_instance")
            .map_err(|e| corrupt(table, "program_instance_id", e))?
            .map(InstanceId),
    })
}

pub(super) async fn instances_by_id<B: Backend>(
    conn: &mut B::Conn,
    ids: &[InstanceId],
) -> StoreResult<Vec<ProgramInstance>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = Query::select()
        .columns(query::INSTANCES.columns.iter().copied())
        .from(query::INSTANCES.name)
        .and_where(Expr::col("id").is_in(ids.iter().map(|i| Value::Uuid(Some(i.uuid())))))
        .to_owned();
    let found = fetch::<B>(conn, &stmt, "looking programme instances up by id").await?;
    found.iter().map(rows::instance).collect()
}

pub(super) async fn associations_of<B: Backend>(
    conn: &mut B::Conn,
    kind: ActivityKind,
    activities: &[ActivityId],
) -> StoreResult<Vec<crate::domain::Association>> {
    let mut out = Vec::new();
    // One statement per bind-limit's worth of ids: one for any realistic chunk.
    for ids in activities.chunks(B::MAX_BINDS.saturating_sub(1).max(1)) {
        let stmt = Query::select()
            .columns(query::ASSOCIATIONS.columns.iter().copied())
            .from(query::ASSOCIATIONS.name)
            .and_where(Expr::col("activity_kind").eq(kind.as_str()))
            .and_where(
                Expr::col("activity_id").is_in(ids.iter().map(|i| Value::Uuid(Some(i.uuid())))),
            )
            .to_owned();
        let found = fetch::<B>(conn, &stmt, "reading the associations of activities").await?;
        for row in &found {
            out.push(rows::association(row)?);
        }
    }
    Ok(out)
}

pub(super) async fn association_by_id<B: Backend>(
    conn: &mut B::Conn,
    id: AssociationId,
) -> StoreResult<Option<crate::domain::Association>> {
    let stmt = query::by_id(query::ASSOCIATIONS, id.uuid());
    let found = fetch::<B>(conn, &stmt, "reading an association").await?;
    found.first().map(rows::association).transpose()
}

pub(super) async fn activity_summary<B: Backend>(
    conn: &mut B::Conn,
    kind: ActivityKind,
    id: ActivityId,
) -> StoreResult<Option<ActivitySummary>> {
    let mut stmt = Query::select();
    stmt.from_as(query::activity_table(kind), Alias::new("t"))
        .and_where(Expr::col((Alias::new("t"), "id")).eq(Value::Uuid(Some(id.uuid()))));
    summary_select(&mut stmt, kind);
    let found = fetch::<B>(conn, &stmt, "reading an activity").await?;
    found.first().map(|r| summary_of(r, kind)).transpose()
}

pub(super) async fn set_activity_instance<B: Backend>(
    conn: &mut B::Conn,
    kind: ActivityKind,
    id: ActivityId,
    instance: Option<InstanceId>,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(query::activity_table(kind))
        .value(
            "program_instance_id",
            Value::Uuid(instance.map(InstanceId::uuid)),
        )
        .value("updated_at", B::now())
        .and_where(Expr::col("id").eq(Value::Uuid(Some(id.uuid()))))
        .to_owned();
    let changed = execute::<B>(conn, &stmt, "linking an activity to a programme instance").await?;
    Ok(changed > 0)
}

/// The review items of one activity kind, oldest first.
async fn reviews_of<B: Backend>(
    conn: &mut B::Conn,
    kind: ActivityKind,
    filter: &ReviewFilter,
) -> StoreResult<Vec<ReviewItem>> {
    let a = Alias::new("a");
    let mut stmt = Query::select();
    stmt.columns(
        query::ASSOCIATIONS
            .columns
            .iter()
            .map(|c| (a.clone(), Alias::new(*c))),
    )
    .from_as(query::ASSOCIATIONS.name, a.clone())
    .join_as(
        JoinType::InnerJoin,
        Alias::new(query::activity_table(kind)),
        Alias::new("t"),
        Expr::col((Alias::new("t"), "id")).equals((a.clone(), "activity_id")),
    )
    .and_where(Expr::col((a.clone(), "activity_kind")).eq(kind.as_str()))
    .and_where(Expr::col((a.clone(), "decision")).eq(Decision::Review.as_str()));
    summary_select(&mut stmt, kind);
    let (_, _, at) = summary_columns(kind);
    if let Some(campaign) = filter.campaign {
        stmt.and_where(
            Expr::col((a.clone(), "campaign_id")).eq(Value::Uuid(Some(campaign.uuid()))),
        );
    }
    if let Some(company) = filter.company {
        stmt.join_as(
            JoinType::InnerJoin,
            Alias::new("campaigns"),
            Alias::new("c"),
            Expr::col((Alias::new("c"), "id")).equals((a.clone(), "campaign_id")),
        )
        .and_where(
            Expr::col((Alias::new("c"), "company_id")).eq(Value::Uuid(Some(company.uuid()))),
        );
    }
    if let Some(from) = filter.from {
        stmt.and_where(
            Expr::cust(at).gte(B::timestamp(Some(from.and_time(NaiveTime::MIN).and_utc()))),
        );
    }
    if let Some(to) = filter.to.and_then(|d| d.succ_opt()) {
        stmt.and_where(
            Expr::cust(at).lt(B::timestamp(Some(to.and_time(NaiveTime::MIN).and_utc()))),
        );
    }
    stmt.order_by_expr(Expr::cust(at), Order::Asc)
        .order_by((a, "id"), Order::Asc);
    if let Some(limit) = filter.limit {
        stmt.limit(u64::from(limit));
    }
    let found = fetch::<B>(conn, &stmt, "listing the review queue").await?;
    found
        .iter()
        .map(|r| {
            Ok(ReviewItem {
                association: rows::association(r)?,
                activity: summary_of(r, kind)?,
            })
        })
        .collect()
}

pub(super) async fn list_reviews<B: Backend>(
    conn: &mut B::Conn,
    filter: &ReviewFilter,
) -> StoreResult<Vec<ReviewItem>> {
    let mut items = Vec::new();
    for &kind in ActivityKind::ALL {
        if filter.kind.is_none_or(|k| k == kind) {
            items.extend(reviews_of::<B>(conn, kind, filter).await?);
        }
    }
    let last = DateTime::<Utc>::MAX_UTC;
    items.sort_by(|x, y| {
        (x.activity.at.unwrap_or(last), x.association.id)
            .cmp(&(y.activity.at.unwrap_or(last), y.association.id))
    });
    if let Some(limit) = filter.limit {
        items.truncate(limit as usize);
    }
    Ok(items)
}

/// `(instance, person, role, kind, minutes)` of every linked activity, one SELECT per table joined by UNION ALL.
fn linked_people() -> SelectStatement {
    let part = |table: &str, person: &str, role: &str, kind: &str, minutes: &'static str| {
        Query::select()
            .expr_as(Expr::col("program_instance_id"), "instance_id")
            .expr_as(Expr::col(Alias::new(person)), "person_id")
            .expr_as(Expr::val(role), "role")
            .expr_as(Expr::val(kind), "kind")
            .expr_as(Expr::cust(minutes), "minutes")
            .expr_as(Expr::col("id"), "activity_id")
            .from(Alias::new(table))
            .and_where(Expr::col("program_instance_id").is_not_null())
            .to_owned()
    };
    let mut union = part(
        "kintell_sessions",
        "participant_id",
        "p",
        "s",
        "COALESCE(duration_minutes, 0)",
    );
    for next in [
        part("kintell_sessions", "volunteer_id", "v", "-", "0"),
        part("buddy_matches", "participant_id", "p", "m", "0"),
        part("buddy_matches", "buddy_id", "v", "-", "0"),
        part("learning_progress", "user_id", "p", "c", "0"),
    ] {
        union.union(UnionType::All, next);
    }
    union
}

/// Counts grouped by `group` (`pi.campaign_id` or `pi.id`), as `g, sessions, matches, completions, minutes,
/// participants, volunteers`.
fn counts_by(group: &'static str, company: Option<CompanyId>) -> SelectStatement {
    let mut stmt = Query::select();
    stmt.expr_as(Expr::cust(group), "g")
        .expr_as(
            Expr::cust("SUM(CASE WHEN x.kind = 's' THEN 1 ELSE 0 END)"),
            "sessions",
        )
        .expr_as(
            Expr::cust("SUM(CASE WHEN x.kind = 'm' THEN 1 ELSE 0 END)"),
            "matches",
        )
        .expr_as(
            Expr::cust("SUM(CASE WHEN x.kind = 'c' THEN 1 ELSE 0 END)"),
            "completions",
        )
        .expr_as(Expr::cust("SUM(x.minutes)"), "minutes")
        .expr_as(
            Expr::cust("COUNT(DISTINCT CASE WHEN x.role = 'p' THEN x.person_id END)"),
            "participants",
        )
        .expr_as(
            Expr::cust("COUNT(DISTINCT CASE WHEN x.role = 'v' THEN x.person_id END)"),
            "volunteers",
        )
        .from_subquery(linked_people(), Alias::new("x"))
        .join_as(
            JoinType::InnerJoin,
            Alias::new("program_instances"),
            Alias::new("pi"),
            Expr::col((Alias::new("pi"), "id")).equals((Alias::new("x"), "instance_id")),
        )
        .and_where(Expr::col((Alias::new("pi"), "campaign_id")).is_not_null())
        .add_group_by([Expr::cust(group)]);
    if let Some(company) = company {
        stmt.join_as(
            JoinType::InnerJoin,
            Alias::new("campaigns"),
            Alias::new("c"),
            Expr::col((Alias::new("c"), "id")).equals((Alias::new("pi"), "campaign_id")),
        )
        .and_where(
            Expr::col((Alias::new("c"), "company_id")).eq(Value::Uuid(Some(company.uuid()))),
        );
    }
    stmt
}

fn counts_of<R: SqlRow>(row: &R) -> StoreResult<(Uuid, ActivityCounts)> {
    let n = |col: &str| -> StoreResult<u64> {
        let v = row
            .int(col)
            .map_err(|e| corrupt("campaign counts", col, e))?
            .unwrap_or(0);
        u64::try_from(v).map_err(|e| corrupt("campaign counts", col, e))
    };
    let id = row
        .uuid("g")
        .map_err(|e| corrupt("campaign counts", "g", e))?
        .ok_or_else(|| corrupt("campaign counts", "g", "NULL"))?;
    Ok((
        id,
        ActivityCounts {
            sessions: n("sessions")?,
            matches: n("matches")?,
            completions: n("completions")?,
            session_minutes: n("minutes")?,
            participants: n("participants")?,
            volunteers: n("volunteers")?,
        },
    ))
}

pub(super) async fn campaign_counts<B: Backend>(
    conn: &mut B::Conn,
    company: Option<CompanyId>,
) -> StoreResult<CampaignCounts> {
    let doing = "counting campaign activity";
    let by_campaign = fetch::<B>(conn, &counts_by("pi.campaign_id", company), doing).await?;
    let by_instance = fetch::<B>(conn, &counts_by("pi.id", company), doing).await?;
    let mut reviews = Query::select();
    reviews
        .expr_as(Expr::col((Alias::new("a"), "campaign_id")), "g")
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .from_as(query::ASSOCIATIONS.name, Alias::new("a"))
        .and_where(Expr::col((Alias::new("a"), "decision")).eq(Decision::Review.as_str()))
        .and_where(Expr::col((Alias::new("a"), "campaign_id")).is_not_null())
        .add_group_by([Expr::col((Alias::new("a"), "campaign_id"))]);
    if let Some(company) = company {
        reviews
            .join_as(
                JoinType::InnerJoin,
                Alias::new("campaigns"),
                Alias::new("c"),
                Expr::col((Alias::new("c"), "id")).equals((Alias::new("a"), "campaign_id")),
            )
            .and_where(
                Expr::col((Alias::new("c"), "company_id")).eq(Value::Uuid(Some(company.uuid()))),
            );
    }
    let pending = fetch::<B>(conn, &reviews, doing).await?;

    let mut campaigns: HashMap<Uuid, (ActivityCounts, u64)> = HashMap::new();
    for row in &by_campaign {
        let (id, counts) = counts_of(row)?;
        campaigns.entry(id).or_default().0 = counts;
    }
    for row in &pending {
        let id = row
            .uuid("g")
            .map_err(|e| corrupt("activity_associations", "campaign_id", e))?
            .ok_or_else(|| corrupt("activity_associations", "campaign_id", "NULL"))?;
        let n = row
            .int("n")
            .map_err(|e| corrupt("activity_associations", "count", e))?
            .unwrap_or(0);
        campaigns.entry(id).or_default().1 = u64::try_from(n).unwrap_or(0);
    }
    let mut out = CampaignCounts {
        campaigns: campaigns
            .into_iter()
            .map(|(id, (counts, reviews))| (CampaignId(id), counts, reviews))
            .collect(),
        instances: by_instance
            .iter()
            .map(|r| counts_of(r).map(|(id, c)| (InstanceId(id), c)))
            .collect::<StoreResult<_>>()?,
    };
    out.campaigns.sort_by_key(|(id, _, _)| *id);
    out.instances.sort_by_key(|(id, _)| *id);
    Ok(out)
}
