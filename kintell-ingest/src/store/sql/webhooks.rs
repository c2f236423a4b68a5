//! Statements of the webhook deliveries: the sessions an event merges with, and `webhook_deliveries`.

use super::Backend;
use crate::domain::{DeliveryId, DeliveryRecord, SessionId};
use crate::ports::StoreResult;
use sea_query::{Alias, Expr, ExprTrait, InsertStatement, JoinType, Query, SelectStatement, Value};

/// The table of deliveries.
pub(super) const DELIVERIES: &str = "webhook_deliveries";

const DELIVERY_COLUMNS: [&str; 7] = [
    "delivery_id",
    "event",
    "received_at",
    "body_sha256",
    "response_status",
    "response_body",
    "batch_id",
];

fn s() -> Alias {
    Alias::new("s")
}

/// The sessions (source system `kintell`) with these external ids, with their people's emails as `p_email` and
/// `v_email` and the rating as text (`rating_text`), exact on both backends.
pub(super) fn sessions_with_people(ids: &[SessionId]) -> SelectStatement {
    let mut stmt = Query::select();
    stmt.columns(
        [
            "id",
            "external_session_id",
            "session_type",
            "scheduled_at",
            "completed_at",
            "duration_minutes",
            "feedback_text",
            "language_level",
            "topics",
            "metadata",
        ]
        .map(|c| (s(), Alias::new(c))),
    )
    .expr_as(Expr::cust("CAST(\"s\".\"rating\" AS TEXT)"), "rating_text")
    .expr_as(Expr::col((Alias::new("p"), "email")), "p_email")
    .expr_as(Expr::col((Alias::new("v"), "email")), "v_email")
    .from_as("kintell_sessions", s())
    .join_as(
        JoinType::InnerJoin,
        Alias::new("users"),
        Alias::new("p"),
        Expr::col((Alias::new("p"), "id")).equals((s(), "participant_id")),
    )
    .join_as(
        JoinType::InnerJoin,
        Alias::new("users"),
        Alias::new("v"),
        Expr::col((Alias::new("v"), "id")).equals((s(), "volunteer_id")),
    )
    .and_where(Expr::col((s(), "source_system")).eq(crate::store::lineage::KINTELL_PROVIDER))
    .and_where(
        Expr::col((s(), "external_session_id")).is_in(
            ids.iter()
                .map(|i| Value::String(Some(i.as_str().to_owned()))),
        ),
    );
    stmt
}

/// The delivery with this id.
pub(super) fn delivery(id: &DeliveryId) -> SelectStatement {
    Query::select()
        .columns(DELIVERY_COLUMNS)
        .from(DELIVERIES)
        .and_where(Expr::col("delivery_id").eq(id.as_str()))
        .to_owned()
}

/// Records a delivery.
pub(super) fn insert_delivery<B: Backend>(d: &DeliveryRecord) -> StoreResult<InsertStatement> {
    let mut stmt = Query::insert();
    stmt.into_table(DELIVERIES).columns(DELIVERY_COLUMNS);
    stmt.values([
        Expr::val(d.delivery_id.as_str()),
        Expr::val(d.event.as_str()),
        B::timestamp(Some(d.received_at)).into(),
        Expr::val(d.body_sha256.as_str()),
        Value::Int(Some(i32::from(d.response_status))).into(),
        B::json(Some(&d.response_body)).into(),
        Value::Uuid(d.batch_id.map(|b| b.uuid())).into(),
    ])
    .map_err(|e| crate::ports::StoreError::Backend {
        message: "building the insert of a webhook delivery".to_owned(),
        source: Box::new(e),
    })?;
    Ok(stmt)
}
