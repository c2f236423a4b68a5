//! The `/v1` routes, one module per resource, and what they share: id and query parsing, the batch resource.

pub(crate) mod associations;
pub(crate) mod batches;
pub(crate) mod campaigns;
pub(crate) mod imports;
pub(crate) mod reviews;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kintell_ingest::domain::BatchRecord;
use serde::Serialize;
use serde_json::Value;

use crate::{ApiError, AppState};

/// Every `/v1` route but the webhooks.
pub(crate) fn v1() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/imports/{entity}",
            // The upload enforces its own limit while streaming.
            post(imports::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/batches", get(batches::list))
        .route("/v1/batches/{id}", get(batches::show))
        .route("/v1/batches/{id}/errors", get(batches::errors))
        .route("/v1/batches/{id}/resume", post(batches::resume))
        .route("/v1/batches/{id}/pause", post(batches::pause))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .route("/v1/associations/backfill", post(associations::backfill))
        .route("/v1/associations/runs", get(associations::runs))
        .route("/v1/associations/runs/{id}", get(associations::show))
        .route(
            "/v1/associations/runs/{id}/resume",
            post(associations::resume),
        )
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::show))
        .route("/v1/reviews/{id}/accept", post(reviews::accept))
        .route("/v1/reviews/{id}/reject", post(reviews::reject))
        .route("/v1/campaigns/metrics", get(campaigns::metrics))
}

/// The error body of every route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// The `error` object: a code, a message, and for some errors the batch concerned (`batch`), the state and
/// event of a refused transition (`state`, `event`), the holder of a lease (`owner`, `until`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    code: String,
    message: String,
}

/// A UUID from the path.
pub(crate) fn uuid(what: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a {what} id (a UUID)")))
}

/// A malformed query string or JSON body is a 400 with the JSON error body.
pub(crate) fn rejected(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// An option value the library refused to parse.
pub(crate) fn option<T, E: std::error::Error>(name: &str, r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_option",
            format!("invalid {name}: {}", crate::error::one_line(&e)),
        )
    })
}

/// The batch resource: the ledger row as `batches show --json` prints it, plus `progress` while this server runs
/// the batch (`phase`, bytes and rows done and in total, rows per second, ETA in seconds).
pub(crate) fn batch_json(state: &AppState, batch: &BatchRecord) -> Value {
    let mut v = serde_json::to_value(batch).unwrap_or(Value::Null);
    if let (Some(p), Value::Object(map)) = (state.jobs.progress(batch.id), &mut v) {
        let phase = match p.phase {
            kintell_ingest::batch::ProgressPhase::Scanning => "scanning",
            kintell_ingest::batch::ProgressPhase::Importing => "importing",
        };
        map.insert(
            "progress".to_owned(),
            serde_json::json!({
                "phase": phase,
                "bytes_done": p.bytes_done,
                "bytes_total": p.bytes_total,
                "rows_done": p.rows_done,
                "rows_total": p.rows_total,
                "fraction": p.fraction(),
                "rows_per_second": p.rows_per_second(),
                "eta_seconds": p.eta().map(|d| d.as_secs_f64()),
            }),
        );
    }
    v
}
