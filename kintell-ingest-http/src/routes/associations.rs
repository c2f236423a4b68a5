//! Backfill runs: start one, list them, show one, resume one.
//!
//! Choices where the specification is silent:
//! - The options of `POST /v1/associations/backfill` are query parameters named as the CLI's
//!   `associate backfill` options with `_` (as for imports); the body is ignored.
//! - A run (or a resume) goes on in a task of its own and the request waits for its end, answering 200 with the
//!   run as it ended, as the CLI prints it. A client that goes away does not stop the run.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use kintell_ingest::backfill::{Backfill, BackfillOptions};
use kintell_ingest::domain::{BackfillEntity, Key, RunId, RunRecord, TimeZoneOffset};
use kintell_ingest::scoring::ScoringPolicy;
use serde::Deserialize;

use super::{option, rejected, uuid};
use crate::{ApiError, AppState};

/// The options of a backfill, named as the CLI's.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BackfillQuery {
    /// Only report what would change.
    dry_run: Option<bool>,
    /// sessions, matches, completions or all (default).
    entity: Option<String>,
    /// Only activities of this company (slug).
    company: Option<String>,
    /// Only activities on or after this date (YYYY-MM-DD).
    #[param(value_type = Option<String>, format = Date)]
    start_date: Option<chrono::NaiveDate>,
    /// Only activities on or before this date (YYYY-MM-DD).
    #[param(value_type = Option<String>, format = Date)]
    end_date: Option<chrono::NaiveDate>,
    /// Re-associate every activity, not only those without an association.
    all_rows: Option<bool>,
    /// Activities per page and transaction (1 to 100000, default 1000).
    batch_size: Option<u32>,
    /// The time zone of activity dates, ±HH:MM.
    policy_timezone: Option<String>,
}

/// The option of a resume.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResumeQuery {
    /// The time zone the run was started with, ±HH:MM.
    policy_timezone: Option<String>,
}

fn run_id(raw: &str) -> Result<RunId, ApiError> {
    uuid("backfill run", raw).map(RunId)
}

/// Runs `call` in a task of its own, so that a client going away does not stop it, and counts its decisions.
async fn detached(
    state: &AppState,
    backfill: Backfill,
    job: impl FnOnce(&Backfill) -> kintell_ingest::backfill::BackfillCall<'_> + Send + 'static,
) -> Result<RunRecord, ApiError> {
    let task = tokio::spawn(async move { job(&backfill).await });
    let run = task
        .await
        .map_err(|e| ApiError::internal("the backfill task failed", &e))??;
    if !run.dry_run {
        let s = &run.stats;
        state.metrics.observe_decisions(&[
            ("auto", s.auto),
            ("review", s.review),
            ("ignored", s.ignored),
            ("none", s.none_no_company + s.none_no_candidates),
        ]);
    }
    Ok(run)
}

/// Start a backfill run and wait for its end.
#[utoipa::path(
    post,
    path = "/v1/associations/backfill",
    params(BackfillQuery),
    responses(
        (status = 200, description = "the run as it ended"),
        (status = 400, description = "a bad option or an unknown company", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn backfill(
    State(state): State<AppState>,
    query: Result<Query<BackfillQuery>, QueryRejection>,
) -> Result<Json<RunRecord>, ApiError> {
    let Query(q) = query.map_err(rejected)?;
    let mut options = BackfillOptions::default().dry_run(q.dry_run.unwrap_or(false));
    if let Some(e) = &q.entity {
        options = options.entity(option("entity", BackfillEntity::parse(e))?);
    }
    if let Some(n) = q.batch_size {
        options = options.batch_size(n);
    }
    if let Some(c) = &q.company {
        options = options.company(option("company", Key::parse(c))?);
    }
    if let Some(d) = q.start_date {
        options = options.start_date(d);
    }
    if let Some(d) = q.end_date {
        options = options.end_date(d);
    }
    if q.all_rows.unwrap_or(false) {
        options = options.all_rows();
    }
    if let Some(z) = &q.policy_timezone {
        options = options.policy_timezone(option("policy_timezone", TimeZoneOffset::parse(z))?);
    }
    let backfill = Backfill::new(state.store.clone());
    let run = detached(&state, backfill, move |b| b.run(options)).await?;
    Ok(Json(run))
}

/// Every backfill run, newest first.
#[utoipa::path(
    get,
    path = "/v1/associations/runs",
    responses((status = 200, description = "the runs")),
    security(("bearer" = []))
)]
pub(crate) async fn runs(State(state): State<AppState>) -> Result<Json<Vec<RunRecord>>, ApiError> {
    Ok(Json(Backfill::new(state.store.clone()).runs().await?))
}

/// One backfill run.
#[utoipa::path(
    get,
    path = "/v1/associations/runs/{id}",
    params(("id" = String, Path, description = "the run id")),
    responses((status = 200, description = "the run"), (status = 404, description = "no such run", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    let id = run_id(&id)?;
    Ok(Json(Backfill::new(state.store.clone()).get(id).await?))
}

/// Continue a run from its checkpoint and wait for its end.
#[utoipa::path(
    post,
    path = "/v1/associations/runs/{id}/resume",
    params(("id" = String, Path, description = "the run id"), ResumeQuery),
    responses(
        (status = 200, description = "the run as it ended"),
        (status = 404, description = "no such run", body = super::ErrorBody),
        (status = 409, description = "the run is completed or cancelled, or a live worker holds it", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ResumeQuery>, QueryRejection>,
) -> Result<Json<RunRecord>, ApiError> {
    let id = run_id(&id)?;
    let Query(q) = query.map_err(rejected)?;
    let tz = q
        .policy_timezone
        .as_deref()
        .map(|z| option("policy_timezone", TimeZoneOffset::parse(z)))
        .transpose()?
        .unwrap_or_default();
    let backfill = Backfill::new(state.store.clone()).policy(ScoringPolicy::with_timezone(tz));
    let run = detached(&state, backfill, move |b| b.resume(id)).await?;
    Ok(Json(run))
}
