//! The kintell-ingest HTTP server as a library: [`router`] builds the axum [`Router`] over an [`AppState`], so a
//! host service can mount it and tests can drive it in-process. Handlers parse, call the library and map results;
//! nothing else.
//!
//! Served so far: `GET /health` (liveness), `GET /ready` (the database answers) and `GET /openapi.json`. The
//! `/v1` routes of the specification come with the import pipeline.
#![deny(missing_docs)]

mod error;
pub mod webhooks;

use axum::{Json, Router, extract::State, routing::get};
use kintell_ingest::store::Store;
use serde::Serialize;
use std::net::SocketAddr;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use error::ApiError;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store the server works on.
    pub store: Store,
}

impl AppState {
    /// State over `store`.
    pub fn new(store: Store) -> Self {
        AppState { store }
    }
}

/// The OpenAPI document of the routes served.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kintell-ingest",
        description = "Ingestion of volunteer-programme activity exports"
    ),
    paths(health, ready)
)]
pub struct ApiDoc;

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Why the server refuses to start with this authentication set-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// No token and no `--insecure-no-auth`.
    #[error(
        "KINTELL_API_TOKEN is not set: set it, or pass --insecure-no-auth on a loopback address"
    )]
    NoToken,
    /// `--insecure-no-auth` on an address other machines can reach.
    #[error("--insecure-no-auth is only allowed on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    /// An empty token would let anyone in.
    #[error("KINTELL_API_TOKEN is empty")]
    EmptyToken,
}

/// Checks the authentication set-up before the server binds: a bearer token is required, unless
/// `insecure_no_auth` is given and the bind address is loopback.
///
/// # Errors
/// [`AuthConfigError`] naming what is wrong.
pub fn check_auth_config(
    token: Option<&str>,
    insecure_no_auth: bool,
    bind: SocketAddr,
) -> Result<(), AuthConfigError> {
    match token {
        Some("") => Err(AuthConfigError::EmptyToken),
        Some(_) => Ok(()),
        None if !insecure_no_auth => Err(AuthConfigError::NoToken),
        None if !bind.ip().is_loopback() => Err(AuthConfigError::NotLoopback(bind)),
        None => Ok(()),
    }
}

/// The body of `/health` and `/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "the server is alive", body = Status)))]
async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers a query on the schema.
#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, description = "the database answers", body = Status),
        (status = 503, description = "the database does not answer or has no schema")
    )
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state
        .store
        .count_users()
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(Status { status: "ok" }))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
