//! The review queue: list with the CLI's filters, show, accept, reject.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use kintell_ingest::domain::{ActivityKind, Association, AssociationId, Key, ProgramSlug};
use kintell_ingest::review::{ReviewQuery, ReviewQueue, ReviewView};
use serde::Deserialize;

use super::{option, rejected, uuid};
use crate::{ApiError, AppState};

/// Filters of the queue (those of `review list`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only proposals of campaigns of this company (slug).
    company: Option<String>,
    /// Only proposals of this campaign (key).
    campaign: Option<String>,
    /// Only activities of this kind (kintell_session, buddy_match, course_completion).
    kind: Option<String>,
    /// Only activities on or after this date (YYYY-MM-DD).
    #[param(value_type = Option<String>, format = Date)]
    from: Option<chrono::NaiveDate>,
    /// Only activities on or before this date (YYYY-MM-DD).
    #[param(value_type = Option<String>, format = Date)]
    to: Option<chrono::NaiveDate>,
    /// At most this many items.
    limit: Option<u32>,
}

/// The body of an accept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptBody {
    /// Who decides (recorded with the decision).
    by: String,
    /// Link to this instance (slug) instead of the proposed one; required when the proposal has none.
    program_instance: Option<String>,
}

/// The body of a reject.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    /// Who decides (recorded with the decision).
    by: String,
}

fn item_id(raw: &str) -> Result<AssociationId, ApiError> {
    uuid("review item", raw).map(AssociationId)
}

/// The items waiting for review, oldest activity first.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    params(ListQuery),
    responses((status = 200, description = "the items"), (status = 400, description = "a bad filter, an unknown company or campaign", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<ReviewView>>, ApiError> {
    let Query(q) = query.map_err(rejected)?;
    let query = ReviewQuery {
        company: q
            .company
            .as_deref()
            .map(|c| option("company", Key::parse(c)))
            .transpose()?,
        campaign: q
            .campaign
            .as_deref()
            .map(|c| option("campaign", Key::parse(c)))
            .transpose()?,
        kind: q
            .kind
            .as_deref()
            .map(|k| option("kind", ActivityKind::parse(k)))
            .transpose()?,
        from: q.from,
        to: q.to,
        limit: q.limit,
    };
    Ok(Json(
        ReviewQueue::new(state.store.clone())
            .list_by(&query)
            .await?,
    ))
}

/// One item: its reasons and candidates.
#[utoipa::path(
    get,
    path = "/v1/reviews/{id}",
    params(("id" = String, Path, description = "the item's (association's) id")),
    responses((status = 200, description = "the association"), (status = 404, description = "no such item", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Association>, ApiError> {
    let id = item_id(&id)?;
    Ok(Json(ReviewQueue::new(state.store.clone()).show(id).await?))
}

/// Accept an item: link the activity and enrol its people.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/accept",
    params(("id" = String, Path, description = "the item's id")),
    request_body = AcceptBody,
    responses(
        (status = 200, description = "the decided association"),
        (status = 400, description = "no `by`, or an unknown or unsuitable instance", body = super::ErrorBody),
        (status = 404, description = "no such item", body = super::ErrorBody),
        (status = 409, description = "the item is no longer waiting for review", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<AcceptBody>, JsonRejection>,
) -> Result<Json<Association>, ApiError> {
    let id = item_id(&id)?;
    let Json(body) = body.map_err(rejected)?;
    let instance = body
        .program_instance
        .as_deref()
        .map(|s| option("program_instance", ProgramSlug::parse(s)))
        .transpose()?;
    let decided = ReviewQueue::new(state.store.clone())
        .accept(id, instance.as_ref(), &body.by, chrono::Utc::now())
        .await?;
    state.metrics.observe_decisions(&[("accepted", 1)]);
    Ok(Json(decided))
}

/// Reject an item: record the decision and unlink the activity from the proposed instance.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/reject",
    params(("id" = String, Path, description = "the item's id")),
    request_body = RejectBody,
    responses(
        (status = 200, description = "the decided association"),
        (status = 400, description = "no `by`", body = super::ErrorBody),
        (status = 404, description = "no such item", body = super::ErrorBody),
        (status = 409, description = "the item is no longer waiting for review", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RejectBody>, JsonRejection>,
) -> Result<Json<Association>, ApiError> {
    let id = item_id(&id)?;
    let Json(body) = body.map_err(rejected)?;
    let decided = ReviewQueue::new(state.store.clone())
        .reject(id, &body.by, chrono::Utc::now())
        .await?;
    state.metrics.observe_decisions(&[("rejected", 1)]);
    Ok(Json(decided))
}
