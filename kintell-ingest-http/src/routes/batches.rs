//! The batch ledger: list, show, the error CSV, resume, pause, cancel.
//!
//! Choices where the specification is silent:
//! - `resume` continues the batch from the server's spooled copy of its upload, in the background, and answers
//!   202 with the batch once the run holds it; a batch whose spooled copy is gone (completed, cancelled, imported
//!   by the CLI or a webhook) answers 409 `no_spooled_input` unless the state machine refuses first.
//! - `pause` and `cancel` answer 200 with the batch: a request recorded for the worker holding it
//!   (`requested_action`), or the new state when no worker holds it.
//! - The error CSV is generated into memory before it is sent (it holds only the rejected rows).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kintell_ingest::domain::{BatchId, BatchRecord, BatchStatus};
use kintell_ingest::ingest::{ImportSource, write_error_csv};
use kintell_ingest::ports::BatchFilter;
use serde::Deserialize;
use serde_json::Value;

use super::{batch_json, option, rejected, uuid};
use crate::jobs::{self, Job, Started};
use crate::{ApiError, AppState};

/// Filters of the list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only batches in this status (pending, running, paused, completed, failed, cancelled).
    status: Option<String>,
    /// At most this many, newest first (default 50).
    limit: Option<u32>,
}

/// Options of the error CSV.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ErrorsQuery {
    /// Leave cells beginning with `=`, `+`, `-`, `@`, TAB or CR as they are.
    no_escape_formulas: Option<bool>,
}

fn batch_id(raw: &str) -> Result<BatchId, ApiError> {
    uuid("batch", raw).map(BatchId)
}

async fn found(state: &AppState, id: BatchId) -> Result<BatchRecord, ApiError> {
    state
        .store
        .get_batch(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("batch {id} does not exist")))
}

/// List batches, newest first.
#[utoipa::path(
    get,
    path = "/v1/batches",
    params(ListQuery),
    responses((status = 200, description = "the batches"), (status = 400, description = "a bad filter", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(q) = query.map_err(rejected)?;
    let status = q
        .status
        .as_deref()
        .map(|s| option("status", BatchStatus::parse(s)))
        .transpose()?;
    let batches = state
        .store
        .list_batches(&BatchFilter {
            status,
            entity_kind: None,
            limit: Some(q.limit.unwrap_or(50)),
        })
        .await?;
    Ok(Json(
        batches.iter().map(|b| batch_json(&state, b)).collect(),
    ))
}

/// One batch, with its progress while this server runs it.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    params(("id" = String, Path, description = "the batch id")),
    responses((status = 200, description = "the batch"), (status = 404, description = "no such batch", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let batch = found(&state, batch_id(&id)?).await?;
    Ok(Json(batch_json(&state, &batch)))
}

/// The rejected rows of a batch as CSV: the original columns, then `_error_row`, `_error_line`, `_error_code`,
/// `_error_field`, `_error_message`.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/errors",
    params(("id" = String, Path, description = "the batch id"), ErrorsQuery),
    responses((status = 200, description = "the error CSV (attachment)", content_type = "text/csv"), (status = 404, description = "no such batch", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn errors(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<ErrorsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = batch_id(&id)?;
    let Query(q) = query.map_err(rejected)?;
    let mut csv = Vec::new();
    write_error_csv(
        &state.store,
        id,
        &mut csv,
        !q.no_escape_formulas.unwrap_or(false),
    )
    .await?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"batch-{id}-errors.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// Resume a batch from the server's spooled copy of its upload, in the background.
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/resume",
    params(("id" = String, Path, description = "the batch id")),
    responses(
        (status = 202, description = "the batch, running again"),
        (status = 404, description = "no such batch", body = super::ErrorBody),
        (status = 409, description = "an illegal transition (the body names state and event), a live holder, or no spooled input", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let batch = found(&state, batch_id(&id)?).await?;
    let spool = state.uploads_dir().join(&batch.file_hash);
    let terminal = kintell_ingest::batch::is_terminal(batch.status);
    if !terminal && !tokio::fs::try_exists(&spool).await.unwrap_or(false) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_spooled_input",
            format!(
                "batch {} cannot be resumed here: this server holds no spooled copy of its file (upload it again, \
                 or resume it with the CLI and the file)",
                batch.id
            ),
        )
        .with("batch", &batch));
    }
    let source = ImportSource::from_path(spool).with_file_name(batch.file_name.clone());
    let ingestor = state.config.ingestor.clone();
    match jobs::start(&state, ingestor, Job::Resume(batch.id, source)).await {
        Started::Running(b) => {
            Ok((StatusCode::ACCEPTED, Json(batch_json(&state, &b))).into_response())
        }
        Started::Ended(outcome) => match *outcome {
            Ok(report) => {
                Ok((StatusCode::OK, Json(batch_json(&state, &report.batch))).into_response())
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Ask the worker holding a batch to pause after its current chunk.
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/pause",
    params(("id" = String, Path, description = "the batch id")),
    responses(
        (status = 200, description = "the batch with the request recorded, or paused"),
        (status = 404, description = "no such batch", body = super::ErrorBody),
        (status = 409, description = "an illegal transition: the body names state and event", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let batch = state.config.ingestor.request_pause(batch_id(&id)?).await?;
    Ok(Json(batch_json(&state, &batch)))
}

/// Cancel a batch (after the current chunk when a worker holds it).
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    params(("id" = String, Path, description = "the batch id")),
    responses(
        (status = 200, description = "the batch with the request recorded, or cancelled"),
        (status = 404, description = "no such batch", body = super::ErrorBody),
        (status = 409, description = "an illegal transition: the body names state and event", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let batch = state.config.ingestor.request_cancel(batch_id(&id)?).await?;
    if batch.status == BatchStatus::Cancelled {
        let spool = state.uploads_dir().join(&batch.file_hash);
        jobs::release_spool(
            &state,
            &spool,
            Some((batch.entity_kind, batch.file_hash.clone())),
        )
        .await;
    }
    Ok(Json(batch_json(&state, &batch)))
}
